import os.path as osp
import re
from typing import List

from mmreid.registry import DATASETS
from .base_reid_dataset import BaseReIDDataset, list_images


@DATASETS.register_module()
class DukeMTMCReID(BaseReIDDataset):
    """DukeMTMC-reID (Zheng et al., ICCV 2017).

    File names ``<pid>_c<cam>_f<frame>.jpg``; cameras 1..8 become camid
    0..7. There is no junk and no distractor label; the gallery holds 408
    identities that never appear in the query (kept as negatives).

    ``data_root`` may point at the ``DukeMTMC-reID`` folder itself (the one
    holding ``bounding_box_train/``) or at its parent: when the three folders
    are not found under ``data_root`` but ``data_root/DukeMTMC-reID`` exists,
    that sub-folder is used.

    Note:
        The dataset was withdrawn by its creators; mmreid never downloads it.

    Args:
        data_root (str): The ``DukeMTMC-reID`` folder or its parent.
        split (str): ``'train'`` or ``'test'`` (query then gallery).
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO = dict(dataset_name='dukemtmc')
    #: Name of the folder in the official archive.
    ARCHIVE_FOLDER = 'DukeMTMC-reID'
    FOLDERS = dict(
        train='bounding_box_train', query='query', gallery='bounding_box_test')
    REQUIRED_PATHS = ('bounding_box_train', 'bounding_box_test', 'query')
    LAYOUT = ('data/dukemtmc-reid/DukeMTMC-reID/   (data_root: this folder '
              'or its parent)\n'
              '  bounding_box_train/   0001_c2_f0046182.jpg ...\n'
              '  bounding_box_test/    (gallery, incl. gallery-only ids)\n'
              '  query/                0005_c2_f0046985.jpg ...')
    NAME_PATTERN = re.compile(r'^(\d+)_c(\d)_f\d+\.jpg$')
    NUM_CAMS = 8

    def __init__(self, data_root: str, *args, **kwargs) -> None:
        super().__init__(self.resolve_root(data_root), *args, **kwargs)

    @classmethod
    def resolve_root(cls, data_root: str) -> str:
        """Return ``data_root`` or its ``DukeMTMC-reID`` sub-folder.

        Args:
            data_root (str): The folder given in the config.

        Returns:
            str: The folder that holds ``bounding_box_train/`` etc.; the
            given one when neither has the layout (the layout check then
            reports what is missing).
        """
        if not data_root or all(
                osp.exists(osp.join(data_root, p))
                for p in cls.REQUIRED_PATHS):
            return data_root
        nested = osp.join(data_root, cls.ARCHIVE_FOLDER)
        return nested if osp.isdir(nested) else data_root

    def parse_split(self, role: str) -> List[dict]:
        folder = osp.join(self.data_root, self.FOLDERS[role])
        records = []
        for name in list_images(folder):
            path = osp.join(folder, name)
            match = self.parse_name(self.NAME_PATTERN, path)
            pid, cam = int(match.group(1)), int(match.group(2))
            if not 1 <= cam <= self.NUM_CAMS:
                raise ValueError(f'DukeMTMC-reID cameras are c1..c'
                                 f'{self.NUM_CAMS}, got c{cam} in {path!r}')
            records.append(dict(img_path=path, pid=pid, camid=cam - 1))
        return records
