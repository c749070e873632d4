import os.path as osp
import re
from typing import List, Optional, Sequence

from mmreid.registry import DATASETS
from .base_reid_dataset import BaseReIDDataset, list_images


@DATASETS.register_module()
class Market1501(BaseReIDDataset):
    """Market-1501 (Zheng et al., ICCV 2015).

    File names ``<pid>_c<cam>s<seq>_<frame>_<box>.jpg``; pid ``-1`` marks junk
    boxes (dropped) and pid ``0`` distractors (kept in the gallery only).
    Any other negative pid (``-5``, ``-0``, ``-01``) raises, naming the
    file. Cameras 1..6 become camid 0..5.

    ``data_root`` may be the ``Market-1501-v15.09.15`` folder itself (the
    one holding ``bounding_box_train/``) or its parent, as torchreid and
    fast-reid accept: when the three folders are not under ``data_root``
    but are under ``data_root/Market-1501-v15.09.15``, that folder is used.

    Published counts (the paper; torchreid and fast-reid print the same):
    train 751 ids / 12,936 images, query 750 / 3,368, gallery 751 (750 +
    the distractor label 0) / 15,913 (19,732 files minus 3,819 junk),
    6 cameras in every split.

    Args:
        data_root (str): The ``Market-1501-v15.09.15`` folder or its parent.
        split (str): ``'train'`` or ``'test'``.
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO = dict(dataset_name='market1501')
    #: Verified: the numbers specs/datasets.md §2.1 does not tag
    #: [unverified] (it tags the train images and the query and gallery
    #: ids; only the gallery's breakdown of 15,913).
    PUBLISHED_COUNTS = dict(
        train=dict(ids=751, images=12936, cams=6, verified=('ids', 'cams')),
        query=dict(ids=750, images=3368, cams=6, verified=('images', 'cams')),
        gallery=dict(
            ids=751, images=15913, cams=6, verified=('images', 'cams')))
    #: Names of the dataset folder in the official archive; ``data_root``
    #: may be the folder that holds one of them.
    ARCHIVE_FOLDERS: Sequence[str] = ('Market-1501-v15.09.15', )
    DISTRACTOR_PID = 0
    FOLDERS = dict(
        train='bounding_box_train', query='query', gallery='bounding_box_test')
    REQUIRED_PATHS = ('bounding_box_train', 'bounding_box_test', 'query')
    LAYOUT = ('data/market1501/   (data_root: this folder, or the one '
              'holding Market-1501-v15.09.15/)\n'
              '  bounding_box_train/   0002_c1s1_000451_03.jpg ...\n'
              '  bounding_box_test/    (gallery; pid 0 distractors, '
              'pid -1 junk)\n'
              '  query/                0001_c1s1_001051_00.jpg ...')
    NAME_PATTERN = re.compile(r'^(-?\d+)_c(\d+)s\d+_\d+_\d+\.jpg$', re.ASCII)
    #: The only negative pid field a name may carry: junk, dropped.
    JUNK_FIELD = '-1'
    #: Highest camera number, or None for no upper bound. Subclasses with
    #: the same folder structure change the pattern and this number.
    NUM_CAMS: Optional[int] = 6

    def __init__(self, data_root: str, *args, **kwargs) -> None:
        super().__init__(self.resolve_root(data_root), *args, **kwargs)

    @classmethod
    def resolve_root(cls, data_root: str) -> str:
        """Return ``data_root`` or its archive sub-folder.

        Args:
            data_root (str): The folder given in the config.

        Returns:
            str: The folder that holds ``bounding_box_train/`` etc.: the
            given one when it has them or has no archive sub-folder (the
            layout check then reports what is missing).
        """
        if not data_root or all(
                osp.exists(osp.join(data_root, p))
                for p in cls.REQUIRED_PATHS):
            return data_root
        nested = [
            osp.join(data_root, name) for name in cls.ARCHIVE_FOLDERS
            if osp.isdir(osp.join(data_root, name))
        ]
        # An incomplete archive folder is still the one meant: the layout
        # check then names what it lacks.
        return nested[0] if nested else data_root

    def parse_split(self, role: str) -> List[dict]:
        folder = osp.join(self.data_root, self.FOLDERS[role])
        records = []
        for name in list_images(folder):
            path = osp.join(folder, name)
            match = self.parse_name(self.NAME_PATTERN, path)
            if match.group(1).startswith('-') and \
                    match.group(1) != self.JUNK_FIELD:
                # int() would make -5 an identity and -0 a distractor.
                raise ValueError(
                    f'{self.dataset_name}: pid {match.group(1)!r} in '
                    f'{path!r}: the only negative pid is '
                    f'{self.JUNK_FIELD} (junk); identities are 0 '
                    '(distractor) or positive')
            pid, cam = int(match.group(1)), int(match.group(2))
            if cam < 1 or (self.NUM_CAMS is not None and cam > self.NUM_CAMS):
                highest = self.NUM_CAMS or 'N'
                raise ValueError(f'{self.dataset_name} cameras are c1..'
                                 f'c{highest}, got c{cam} in {path!r}')
            records.append(dict(img_path=path, pid=pid, camid=cam - 1))
        return records
