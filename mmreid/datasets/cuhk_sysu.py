import os.path as osp
import re
from typing import Dict, List, Optional

from mmreid.registry import DATASETS
from .base_reid_dataset import BaseReIDDataset, DatasetLayoutError, list_images


@DATASETS.register_module()
class CUHKSYSU(BaseReIDDataset):
    """CUHK-SYSU person crops (Xiao et al., CVPR 2017), train-only.

    Two preparations of the crops are accepted:

    * fast-reid's (``cuhk_sysu.py``): ``cropped_images/p<pid>_s<scene>
      [...].jpg``; published counts 11,934 identities, 34,574 images;
    * MetaBIN's (``make_cropped_image.m``): ``cropped_image/p<pid:05d>_
      n<k:02d>_s<scene:05d>_hard<0|1>.png``, cut from ``Person.mat``. Its
      counts are not published, so they are not checked.

    A root holding both folders is refused as ambiguous. All images are
    training images with one dummy camera (camid 0); pids are relabelled
    to ``0..N-1`` in sorted order, so the split can be a source of
    :class:`ConcatReIDDataset`.

    Args:
        data_root (str): The folder holding ``cropped_images/`` (or
            ``cropped_image/``).
        split (str): Only ``'train'``; ``'test'`` raises ``ValueError``.
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO = dict(dataset_name='cuhk-sysu')
    #: crop folder -> (file-name pattern, published counts or None).
    PREPARATIONS: Dict[str, tuple] = {
        'cropped_images':
        (re.compile(r'^p(\d+)_s\d+(?:_[^/]*)?\.jpg$', re.ASCII),
         dict(train=dict(ids=11934, images=34574, cams=1, verified=True))),
        'cropped_image':
        (re.compile(r'^p(\d+)_n\d+_s\d+_hard[01]\.png$', re.ASCII), None),
    }
    IMAGE_FOLDER = 'cropped_images'
    LAYOUT = ('data/cuhk_sysu/\n'
              '  cropped_images/   p1_s1.jpg  p1_s2.jpg  p10_s13.jpg ...\n'
              '                    (p<pid>_s<scene>...jpg, fast-reid crops)\n'
              'or (MetaBIN) data/cuhk_sysu/cropped_image/   '
              'p00001_n01_s00001_hard0.png ...')

    def __init__(self, data_root: str, split: str = 'train', **kwargs) -> None:
        if split != 'train':
            raise ValueError(
                f'CUHK-SYSU (cropped) is a train-only dataset: it has no '
                f'query/gallery split in mmreid, got split={split!r}')
        super().__init__(data_root, split=split, **kwargs)

    def image_folder(self) -> str:
        """The crop folder of this copy (``cropped_images`` or
        ``cropped_image``)."""
        found = [
            name for name in self.PREPARATIONS
            if osp.isdir(osp.join(self.data_root or '', name))
        ]
        if len(found) > 1:
            raise DatasetLayoutError(
                f'CUHK-SYSU: data_root={self.data_root!r} holds both '
                f'{found[0]}/ and {found[1]}/ (two preparations with other '
                f'identities): keep one. Expected layout:\n{self.LAYOUT}')
        return found[0] if found else self.IMAGE_FOLDER

    def check_layout(self) -> None:
        self.REQUIRED_PATHS = (self.image_folder(), )
        super().check_layout()

    def published_counts(self) -> Optional[Dict[str, dict]]:
        return self.PREPARATIONS[self.image_folder()][1]

    def parse_split(self, role: str) -> List[dict]:
        name = self.image_folder()
        folder = osp.join(self.data_root, name)
        pattern = self.PREPARATIONS[name][0]
        records = []
        for name in list_images(folder):
            path = osp.join(folder, name)
            match = self.parse_name(pattern, path)
            records.append(
                dict(img_path=path, pid=int(match.group(1)), camid=0))
        return records
