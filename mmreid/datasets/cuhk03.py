import os
import os.path as osp
import re
from typing import Dict, List, Optional

from mmreid.registry import DATASETS
from .base_reid_dataset import BaseReIDDataset, DatasetLayoutError, list_images
from .dataset_options import own_metainfo


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

    ``data_root`` is the folder holding ``labeled/`` and ``detected/`` or,
    one level up, the folder that holds exactly one such folder (the
    release unpacked as ``data/cuhk03-np/cuhk03-np/labeled/...``).

    Published counts (Zhong et al., as torchreid prints them): train 767
    ids / 7,368 (labeled) or 7,365 (detected) images, query 700 / 1,400,
    gallery 700 / 5,328 (labeled) or 5,332 (detected), 2 views.

    Args:
        data_root (str): The folder holding ``labeled/`` and ``detected/``
            (or its parent, see above).
        split (str): ``'train'`` or ``'test'`` (query then gallery).
        variant (str): ``'labeled'`` (hand-drawn boxes) or ``'detected'``
            (DPM boxes). Required.
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO = dict(dataset_name='cuhk03-np')
    #: variant -> role -> published counts. specs/datasets.md §2.4 tags
    #: the train images [unverified] (its 767 train ids recur untagged in
    #: §4.2).
    VARIANT_COUNTS: Dict[str, Dict[str, dict]] = dict(
        labeled=dict(
            train=dict(ids=767, images=7368, cams=2, verified=('ids', 'cams')),
            query=dict(ids=700, images=1400, cams=2, verified=True),
            gallery=dict(ids=700, images=5328, cams=2, verified=True)),
        detected=dict(
            train=dict(ids=767, images=7365, cams=2, verified=('ids', 'cams')),
            query=dict(ids=700, images=1400, cams=2, verified=True),
            gallery=dict(ids=700, images=5332, cams=2, verified=True)))
    VARIANTS = ('labeled', 'detected')
    FOLDERS = dict(
        train='bounding_box_train', query='query', gallery='bounding_box_test')
    LAYOUT = ('data/cuhk03-np/   (data_root: this folder, or its parent '
              'when that holds only it)\n'
              '  labeled/\n'
              '    bounding_box_train/   0001_c1_1.png  0001_c2_1.png ...\n'
              '    bounding_box_test/\n'
              '    query/\n'
              '  detected/\n'
              '    bounding_box_train/, bounding_box_test/, query/')
    NAME_PATTERN = re.compile(r'^(\d+)_c(\d)_\d+\.png$', re.ASCII)
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
        data_root = self.resolve_root(data_root)
        metainfo = own_metainfo(
            type(self).__name__,
            dict(dataset_name=f'cuhk03-np-{variant}', variant=variant),
            kwargs.pop('metainfo', None))
        super().__init__(data_root, split=split, metainfo=metainfo, **kwargs)

    def resolve_root(self, data_root: str) -> str:
        """``data_root``, or its only sub-folder with the variant's tree.

        Args:
            data_root (str): The folder given in the config.

        Returns:
            str: ``data_root`` when it has ``<variant>/`` or when no
            sub-folder has the whole tree (the layout check then names
            what is missing).

        Raises:
            DatasetLayoutError: Several sub-folders have the whole tree
                (an old and a new extraction): which one is meant cannot
                be told.
        """
        if not data_root or not osp.isdir(data_root) or osp.isdir(
                osp.join(data_root, self.variant)):
            return data_root
        nested = [
            osp.join(data_root, name)
            for name in sorted(os.listdir(data_root)) if all(
                osp.isdir(osp.join(data_root, name, p))
                for p in self.REQUIRED_PATHS)
        ]
        if len(nested) > 1:
            raise DatasetLayoutError(
                f'{type(self).__name__}: data_root {data_root!r} holds '
                f'{len(nested)} copies of the tree '
                f'({", ".join(map(repr, nested))}); set data_root to the '
                'one to use.')
        return nested[0] if nested else data_root

    def published_counts(self) -> Dict[str, dict]:
        return self.VARIANT_COUNTS[self.variant]

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
