import os.path as osp
import re
from typing import List, Tuple

from mmreid.registry import DATASETS
from .base_reid_dataset import BaseReIDDataset, DatasetLayoutError, list_images


@DATASETS.register_module()
class CUHK02(BaseReIDDataset):
    """CUHK02 (Li and Wang, CVPR 2013), train-only.

    Five camera pairs ``P1..P5``, each with two views ``cam1``/``cam2``.
    File names ``<pid>_<idx>.png``; pids are unique within a camera pair
    only, so an identity is ``(pair, pid)``: the same number in two pairs is
    two identities. Training labels are ``0..N-1`` in sorted order of
    ``(pair, pid)``. camid = ``2 * (pair - 1) + (view - 1)`` (10 cameras).

    Two layouts are accepted: the release's ``Dataset/P1..P5`` (fast-reid)
    and ``P1..P5`` directly under ``data_root`` (MetaBIN); a root holding
    both is refused as ambiguous.

    Published counts (the paper): 1,816 identities, 7,264 images (two per
    identity and view), 10 cameras.

    Args:
        data_root (str): The folder holding ``Dataset/`` (or ``P1``..``P5``).
        split (str): Only ``'train'``; ``'test'`` raises ``ValueError``.
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO = dict(dataset_name='cuhk02')
    #: specs/datasets.md §1 tags the 1,816 ids [unverified] (§2.5 the
    #: per-pair breakdown); the images and cameras are not.
    PUBLISHED_COUNTS = dict(
        train=dict(
            ids=1816, images=7264, cams=10, verified=('images', 'cams')))
    NUM_PAIRS = 5
    NUM_VIEWS = 2
    #: The accepted folders holding ``P1..P5``, relative to ``data_root``.
    PAIR_PARENTS = ('Dataset', '')
    LAYOUT = ('data/cuhk02/\n'
              '  Dataset/\n'
              '    P1/cam1/   <pid>_<idx>.png ...\n'
              '    P1/cam2/   <pid>_<idx>.png ...\n'
              '    ...\n'
              '    P5/cam1/, P5/cam2/\n'
              'or (MetaBIN) data/cuhk02/P1/cam1/ ... P5/cam2/')
    NAME_PATTERN = re.compile(r'^(\d+)_\d+\.png$', re.ASCII)

    def __init__(self, data_root: str, split: str = 'train', **kwargs) -> None:
        if split != 'train':
            raise ValueError(
                f'CUHK02 is a train-only dataset: it has no query/gallery '
                f'split in mmreid, got split={split!r}')
        super().__init__(data_root, split=split, **kwargs)

    def pair_parent(self) -> str:
        """The folder holding ``P1..P5``, relative to ``data_root``."""
        found = [
            parent for parent in self.PAIR_PARENTS
            if osp.isdir(osp.join(self.data_root, parent, 'P1'))
        ]
        if len(found) > 1:
            raise DatasetLayoutError(
                f'CUHK02: data_root={self.data_root!r} holds both '
                f'Dataset/P1 and P1: point data_root at one tree. Expected '
                f'layout:\n{self.LAYOUT}')
        return found[0] if found else self.PAIR_PARENTS[0]

    def images_root(self) -> str:
        """The folder holding ``P1..P5``: ``data_root`` or its
        ``Dataset`` folder, so that both spellings of one copy compare as
        one source (:func:`~.multi_source.built_source_identity`)."""
        return osp.join(self.data_root, self.pair_parent())

    def check_layout(self) -> None:
        self.REQUIRED_PATHS = tuple(
            osp.join(self.pair_parent(), f'P{pair}', f'cam{view}')
            for pair in range(1, self.NUM_PAIRS + 1)
            for view in range(1, self.NUM_VIEWS + 1))
        super().check_layout()

    def parse_split(self, role: str) -> List[dict]:
        parent = osp.join(self.data_root, self.pair_parent())
        records = []
        for pair in range(1, self.NUM_PAIRS + 1):
            for view in range(1, self.NUM_VIEWS + 1):
                folder = osp.join(parent, f'P{pair}', f'cam{view}')
                camid = self.NUM_VIEWS * (pair - 1) + (view - 1)
                for name in list_images(folder):
                    path = osp.join(folder, name)
                    match = self.parse_name(self.NAME_PATTERN, path)
                    records.append(
                        dict(
                            img_path=path,
                            # (pair, pid) tuples sort by pair, then pid,
                            # which is the relabelling order.
                            pid=(pair, int(match.group(1))),
                            camid=camid))
        return records

    def original_pid(self, record: dict, role: str) -> Tuple[int, int]:
        """``(pair, pid)`` as :meth:`parse_split` gives it (no int)."""
        return record['pid']

    def _finish(self, record: dict, role: str, pid: int) -> dict:
        out = super()._finish(record, role, pid)
        # Keep the original identity, readable and serialisable.
        out['pair'], out['local_pid'] = record['pid']
        return out
