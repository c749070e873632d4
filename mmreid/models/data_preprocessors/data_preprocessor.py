from numbers import Number
from typing import List, Optional, Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample


@MODELS.register_module()
class ReIDDataPreprocessor(BaseDataPreprocessor):
    """Move a batch to the device, stack it and normalise it.

    Images arrive as uint8 RGB tensors (N, 3, H, W) (stacked by
    ``default_collate``) or as a list of (3, H, W) tensors of one size; they
    leave as float (N, 3, H, W) ``(x - mean) / std``. Normalising here, on
    the device, keeps the dataloader workers on uint8 data.

    Args:
        mean (Sequence[Number]): Per-channel mean, RGB order, 0-255 scale.
            Defaults to ImageNet's.
        std (Sequence[Number]): Per-channel std. Defaults to ImageNet's.
        non_blocking (bool): Asynchronous host-to-device copies.
    """

    def __init__(self,
                 mean: Sequence[Number] = (123.675, 116.28, 103.53),
                 std: Sequence[Number] = (58.395, 57.12, 57.375),
                 non_blocking: bool = True) -> None:
        super().__init__(non_blocking=non_blocking)
        if len(mean) != len(std):
            raise ValueError(f'mean and std must have the same length, got '
                             f'{len(mean)} and {len(std)}')
        self.register_buffer(
            'mean',
            torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer(
            'std',
            torch.tensor(std, dtype=torch.float32).view(-1, 1, 1), False)

    def forward(self, data: dict, training: bool = False) -> dict:
        """Normalise ``data['inputs']`` and move everything to the device.

        Args:
            data (dict): ``inputs`` (Tensor (N, 3, H, W) or list of
                (3, H, W) tensors) and ``data_samples`` (list of
                :class:`ReIDDataSample`).
            training (bool): Unused; kept for the mmengine interface.

        Returns:
            dict: ``inputs`` float (N, 3, H, W) and ``data_samples``.
        """
        inputs = data['inputs']
        if isinstance(inputs, (list, tuple)):
            shapes = {tuple(x.shape) for x in inputs}
            if len(shapes) > 1:
                raise ValueError(
                    f'images of one batch must have one size; got {shapes}. '
                    'Resize them in the pipeline.')
            inputs = torch.stack(list(inputs))
        if inputs.dim() != 4 or inputs.size(1) != self.mean.size(0):
            raise ValueError(f'expected images of shape (N, '
                             f'{self.mean.size(0)}, H, W), got '
                             f'{tuple(inputs.shape)}')
        inputs = inputs.to(self.device, non_blocking=self._non_blocking)
        inputs = (inputs.float() - self.mean) / self.std
        data_samples: Optional[List[ReIDDataSample]] = data.get('data_samples')
        if data_samples is not None:
            data_samples = self.cast_data(data_samples)
        return dict(inputs=inputs, data_samples=data_samples)
