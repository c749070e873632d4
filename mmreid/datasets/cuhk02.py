import os.path as osp
import re
from typing import List

from mmreid.registry import DATASETS
from .base_reid_dataset import BaseReIDDataset, list_images


@DATASETS.register_module()
class CUHK02(BaseReIDDataset):
    """CUHK02 (Li and Wang, CVPR 2013), train-only.

    Five camera pairs ``P1..P5``, each with two views ``cam1``/``cam2``.
    File names ``<pid>_<idx>.png``; pids are unique within a camera pair
    only, so an identity is ``(pair, pid)``: the same number in two pairs is
    two identities. Training labels are ``0..N-1`` in sorted order of
    ``(pair, pid)``. camid = ``2 * (pair - 1) + (view - 1)`` (10 cameras).

    Args:
        data_root (str): The folder holding ``Dataset/``.
        split (str): Only ``'train'``; ``'test'`` raises ``ValueError``.
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO = dict(dataset_name='cuhk02')
    NUM_PAIRS = 5
    NUM_VIEWS = 2
    REQUIRED_PATHS = tuple(f'Dataset/P{pair}/cam{view}'
                           for pair in range(1, 6) for view in (1, 2))
    LAYOUT = ('data/cuhk02/\n'
              '  Dataset/\n'
              '    P1/cam1/   <pid>_<idx>.png ...\n'
              '    P1/cam2/   <pid>_<idx>.png ...\n'
              '    ...\n'
              '    P5/cam1/, P5/cam2/')
    NAME_PATTERN = re.compile(r'^(\d+)_\d+\.png$')

    def __init__(self, data_root: str, split: str = 'train', **kwargs) -> None:
        if split != 'train':
            raise ValueError(
                f'CUHK02 is a train-only dataset: it has no query/gallery '
                f'split in mmreid, got split={split!r}')
        super().__init__(data_root, split=split, **kwargs)

    def parse_split(self, role: str) -> List[dict]:
        records = []
        for pair in range(1, self.NUM_PAIRS + 1):
            for view in range(1, self.NUM_VIEWS + 1):
                folder = osp.join(self.data_root, 'Dataset', f'P{pair}',
                                  f'cam{view}')
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

    def _finish(self, record: dict, role: str, pid: int) -> dict:
        out = super()._finish(record, role, pid)
        # Keep the original identity, readable and serialisable.
        out['pair'], out['local_pid'] = record['pid']
        return out
