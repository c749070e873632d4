import os.path as osp
import re
from typing import List

from mmreid.registry import DATASETS
from .base_reid_dataset import BaseReIDDataset, list_images


@DATASETS.register_module()
class CUHKSYSU(BaseReIDDataset):
    """CUHK-SYSU person crops (Xiao et al., CVPR 2017), train-only.

    The crops are cut from the person-search release as in fast-reid's
    ``cuhk_sysu.py``: ``cropped_images/p<pid>_s<scene>[...].jpg``. All
    images are training images with one dummy camera (camid 0); pids are
    relabelled to ``0..N-1`` in sorted order, so the split can be a source
    of :class:`ConcatReIDDataset`.

    Args:
        data_root (str): The folder holding ``cropped_images/``.
        split (str): Only ``'train'``; ``'test'`` raises ``ValueError``.
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO = dict(dataset_name='cuhk-sysu')
    IMAGE_FOLDER = 'cropped_images'
    REQUIRED_PATHS = (IMAGE_FOLDER, )
    LAYOUT = ('data/cuhk_sysu/\n'
              '  cropped_images/   p1_s1.jpg  p1_s2.jpg  p10_s13.jpg ...\n'
              '                    (p<pid>_s<scene>...jpg, fast-reid crops)')
    NAME_PATTERN = re.compile(r'^p(\d+)_s\d+(?:_[^/]*)?\.jpg$')

    def __init__(self, data_root: str, split: str = 'train', **kwargs) -> None:
        if split != 'train':
            raise ValueError(
                f'CUHK-SYSU (cropped) is a train-only dataset: it has no '
                f'query/gallery split in mmreid, got split={split!r}')
        super().__init__(data_root, split=split, **kwargs)

    def parse_split(self, role: str) -> List[dict]:
        folder = osp.join(self.data_root, self.IMAGE_FOLDER)
        records = []
        for name in list_images(folder):
            path = osp.join(folder, name)
            match = self.parse_name(self.NAME_PATTERN, path)
            records.append(
                dict(img_path=path, pid=int(match.group(1)), camid=0))
        return records
