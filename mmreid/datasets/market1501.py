import os.path as osp
import re
from typing import List, Optional

from mmreid.registry import DATASETS
from .base_reid_dataset import BaseReIDDataset, list_images


@DATASETS.register_module()
class Market1501(BaseReIDDataset):
    """Market-1501 (Zheng et al., ICCV 2015).

    File names ``<pid>_c<cam>s<seq>_<frame>_<box>.jpg``; pid ``-1`` marks junk
    boxes (dropped) and pid ``0`` distractors (kept in the gallery only).
    Cameras 1..6 become camid 0..5.

    Args:
        data_root (str): The ``Market-1501-v15.09.15`` folder.
        split (str): ``'train'`` or ``'test'``.
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO = dict(dataset_name='market1501')
    DISTRACTOR_PID = 0
    FOLDERS = dict(
        train='bounding_box_train', query='query', gallery='bounding_box_test')
    REQUIRED_PATHS = ('bounding_box_train', 'bounding_box_test', 'query')
    LAYOUT = ('data/market1501/\n'
              '  bounding_box_train/   0002_c1s1_000451_03.jpg ...\n'
              '  bounding_box_test/    (gallery; pid 0 distractors, '
              'pid -1 junk)\n'
              '  query/                0001_c1s1_001051_00.jpg ...')
    NAME_PATTERN = re.compile(r'^(-?\d+)_c(\d+)s\d+_\d+_\d+\.jpg$')
    #: Highest camera number, or None for no upper bound. Subclasses with
    #: the same folder structure change the pattern and this number.
    NUM_CAMS: Optional[int] = 6

    def parse_split(self, role: str) -> List[dict]:
        folder = osp.join(self.data_root, self.FOLDERS[role])
        records = []
        for name in list_images(folder):
            path = osp.join(folder, name)
            match = self.parse_name(self.NAME_PATTERN, path)
            pid, cam = int(match.group(1)), int(match.group(2))
            if cam < 1 or (self.NUM_CAMS is not None
                           and cam > self.NUM_CAMS):
                highest = self.NUM_CAMS or 'N'
                raise ValueError(f'{self.dataset_name} cameras are c1..'
                                 f'c{highest}, got c{cam} in {path!r}')
            records.append(dict(img_path=path, pid=pid, camid=cam - 1))
        return records
