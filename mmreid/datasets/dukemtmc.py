import os.path as osp
import re

from mmreid.registry import DATASETS
from .market1501 import Market1501


@DATASETS.register_module()
class DukeMTMCReID(Market1501):
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

    The folders are Market-1501's, so only the name pattern, the camera
    count and the root resolution differ from :class:`Market1501`.
    """

    METAINFO = dict(dataset_name='dukemtmc')
    #: Name of the folder in the official archive.
    ARCHIVE_FOLDER = 'DukeMTMC-reID'
    DISTRACTOR_PID = None  # Duke has no distractor label
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
