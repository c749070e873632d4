from typing import Sequence

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmreid.registry import TRANSFORMS
from mmreid.structures import ReIDDataSample


@TRANSFORMS.register_module()
class PackReIDInputs(BaseTransform):
    """Pack the image and its identity into the mmreid model inputs.

    The image stays ``uint8`` (4x less memory to move between dataloader
    workers than float); the data preprocessor moves the batch to the
    device, converts and normalises it. The channel order is unchanged (RGB
    from :class:`ReIDLoadImageFromFile`).

    Required Keys:

    - img (np.ndarray): (H, W, C) or (H, W).

    Optional Keys:

    - pid: becomes ``gt_label``; absent for images without a label.
    - the ``meta_keys`` that are present.

    Added Keys:

    - inputs (torch.Tensor): (C, H, W), the image's dtype, contiguous.
    - data_samples (:obj:`ReIDDataSample`): ``gt_label`` = pid, shape (1,),
      and a metainfo entry for each of ``meta_keys`` found in the results.

    Args:
        meta_keys (Sequence[str]): Keys copied into the metainfo; a key
            missing from the results is skipped. Defaults to
            ``('img_path', 'sample_idx', 'img_shape', 'ori_shape', 'camid',
            'modality', 'role', 'dataset', 'dsetid')``.
    """

    DEFAULT_META_KEYS = ('img_path', 'sample_idx', 'img_shape', 'ori_shape',
                         'camid', 'modality', 'role', 'dataset', 'dsetid')

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        if isinstance(meta_keys, str):
            meta_keys = (meta_keys, )
        self.meta_keys = tuple(meta_keys)

    @staticmethod
    def format_image(img: np.ndarray) -> torch.Tensor:
        """(H, W[, C]) array -> contiguous (C, H, W) tensor, no dtype change.
        """
        if img.ndim == 2:
            img = img[..., None]
        # One copy: HWC -> CHW; the tensor shares the copy's memory.
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))

    def transform(self, results: dict) -> dict:
        if 'img' not in results:
            raise KeyError('PackReIDInputs needs "img" in the results; is '
                           'ReIDLoadImageFromFile missing from the pipeline?')
        data_sample = ReIDDataSample()
        if results.get('pid') is not None:
            data_sample.set_gt_label(results['pid'])
        data_sample.set_metainfo(
            {key: results[key]
             for key in self.meta_keys if key in results})
        return dict(
            inputs=self.format_image(results['img']), data_samples=data_sample)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(meta_keys={self.meta_keys})'
