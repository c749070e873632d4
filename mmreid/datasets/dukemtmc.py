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

    Published counts (as torchreid and fast-reid print them): train 702
    ids / 16,522 images, query 702 / 2,228, gallery 1,110 (702 + 408
    gallery-only) / 17,661, 8 cameras in every split.

    The folders are Market-1501's, so only the name pattern, the camera
    count and the archive folder differ from :class:`Market1501`.
    """

    METAINFO = dict(dataset_name='dukemtmc')
    #: Verified: the numbers specs/datasets.md §2.2 does not tag
    #: [unverified] (the train ids and the cameras).
    PUBLISHED_COUNTS = dict(
        train=dict(ids=702, images=16522, cams=8, verified=('ids', 'cams')),
        query=dict(ids=702, images=2228, cams=8, verified=('cams', )),
        gallery=dict(ids=1110, images=17661, cams=8, verified=('cams', )))
    #: Name of the folder in the official archive.
    ARCHIVE_FOLDERS = ('DukeMTMC-reID', )
    DISTRACTOR_PID = None  # Duke has no distractor label
    LAYOUT = ('data/dukemtmc-reid/DukeMTMC-reID/   (data_root: this folder '
              'or its parent)\n'
              '  bounding_box_train/   0001_c2_f0046182.jpg ...\n'
              '  bounding_box_test/    (gallery, incl. gallery-only ids)\n'
              '  query/                0005_c2_f0046985.jpg ...')
    NAME_PATTERN = re.compile(r'^(\d+)_c(\d)_f\d+\.jpg$', re.ASCII)
    NUM_CAMS = 8
