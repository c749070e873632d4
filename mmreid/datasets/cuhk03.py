import os.path as osp
import re
from typing import List, Optional

from mmreid.registry import DATASETS
from .base_reid_dataset import BaseReIDDataset, list_images


@DATASETS.register_module()
class CUHK03NP(BaseReIDDataset):
    """CUHK03 under the new protocol (Zhong et al., CVPR 2017).

    The Market-style NP release has one sub-tree per variant; file names
    ``<pid>_c<view>_<idx>.png`` with view 1..2 (camid 0..1). Every identity
    is seen by one camera pair, so the Market rule (drop gallery images of
    the query's pid and camid) applies unchanged. There is no junk and no
    distractor label.

    ``variant`` has no default on purpose: peers disagree (fast-reid uses
    labeled, torchreid detected) and the two give different numbers. The
    raw ``cuhk-03.mat`` release must first be converted to this layout.

    Args:
        data_root (str): The folder holding ``labeled/`` and ``detected/``.
        split (str): ``'train'`` or ``'test'`` (query then gallery).
        variant (str): ``'labeled'`` (hand-drawn boxes) or ``'detected'``
            (DPM boxes). Required.
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO = dict(dataset_name='cuhk03-np')
    VARIANTS = ('labeled', 'detected')
    FOLDERS = dict(
        train='bounding_box_train', query='query', gallery='bounding_box_test')
    LAYOUT = ('data/cuhk03-np/\n'
              '  labeled/\n'
              '    bounding_box_train/   0001_c1_1.png  0001_c2_1.png ...\n'
              '    bounding_box_test/\n'
              '    query/\n'
              '  detected/\n'
              '    bounding_box_train/, bounding_box_test/, query/')
    NAME_PATTERN = re.compile(r'^(\d+)_c(\d)_\d+\.png$')
    NUM_VIEWS = 2

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 variant: Optional[str] = None,
                 **kwargs) -> None:
        if variant not in self.VARIANTS:
            raise ValueError(
                f'CUHK03NP needs variant="labeled" or variant="detected" '
                f'(no default: peers disagree), got {variant!r}')
        self.variant = variant
        self.REQUIRED_PATHS = tuple(
            osp.join(variant, folder) for folder in self.FOLDERS.values())
        metainfo = dict(dataset_name=f'cuhk03-np-{variant}', variant=variant)
        metainfo.update(kwargs.pop('metainfo', None) or {})
        super().__init__(data_root, split=split, metainfo=metainfo, **kwargs)

    def parse_split(self, role: str) -> List[dict]:
        folder = osp.join(self.data_root, self.variant, self.FOLDERS[role])
        records = []
        for name in list_images(folder):
            path = osp.join(folder, name)
            match = self.parse_name(self.NAME_PATTERN, path)
            pid, view = int(match.group(1)), int(match.group(2))
            if not 1 <= view <= self.NUM_VIEWS:
                raise ValueError(f'CUHK03 views are c1 or c2, got c{view} in '
                                 f'{path!r}')
            records.append(dict(img_path=path, pid=pid, camid=view - 1))
        return records
