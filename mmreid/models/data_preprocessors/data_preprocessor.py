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

    A float batch is taken on the scale of ``mean``/``std``. With the
    0-255 defaults, a float batch on the 0-1 scale (e.g. torchvision's
    ``ToTensor()`` output) would give wrong features, so it is refused: one
    whose values all lie in [0, 1] and are not all integers. A batch on the
    0-255 scale that came from uint8 (dark or padded ones included) is
    integer-valued, so it passes; another one is refused only if none of
    its values is above 1, i.e. 1/255 of white. Mean and std on the 0-1
    scale (torchreid's ``[0.485, 0.456, 0.406]``) take 0-1 float images: a
    batch of 0-255 pixels (an integer dtype, or floats above 1) is refused
    with the 0-255 values to set instead.

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
        if not all(float(v) > 0 for v in std):
            # 0 gives infinite inputs (found later, if at all, as NaN
            # distances); a negative value flips the channel's sign.
            raise ValueError(f'ReIDDataPreprocessor std must be positive, '
                             f'got {list(std)}')
        self.register_buffer(
            'mean',
            torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer(
            'std',
            torch.tensor(std, dtype=torch.float32).view(-1, 1, 1), False)
        # 0-255 mean/std (ImageNet's 0-1 ones are below 1; mean 0, std 1
        # is no normalisation, for either scale).
        self._on_255_scale = max(
            [abs(float(v)) for v in mean] + [float(v) for v in std],
            default=0) > 1
        self._identity = all(float(v) == 0 for v in mean) and all(
            float(v) == 1 for v in std)

    def _check_scale(self, inputs: torch.Tensor) -> None:
        """Refuse a float batch (N, C, H, W) on the 0-1 scale when mean and
        std are on the 0-255 scale (see the class docstring), and an
        integer batch of another dtype than uint8 with values outside
        0-255 (a 16-bit image, as mmcv's loader gives with
        ``color_type='unchanged'``), or a bool one."""
        if inputs.dtype == torch.bool:
            raise ValueError('ReIDDataPreprocessor got a bool batch; it '
                             'takes 0-255 images (uint8)')
        if not (inputs.is_floating_point() or inputs.dtype == torch.uint8
                or inputs.numel() == 0):
            # As int64: torch has no min/max of uint16/32 on the CPU.
            wide = inputs.to(torch.int64)
            low, high = torch.stack([wide.amin(), wide.amax()]).tolist()
            if low < 0 or high > 255:
                raise ValueError(
                    f'ReIDDataPreprocessor got a {inputs.dtype} batch with '
                    f'values in [{low}, {high}]: it takes 0-255 images '
                    '(uint8, as ReIDLoadImageFromFile gives), and would '
                    'normalise these as if they were. Convert 16-bit '
                    'images to 8 bits in the pipeline.')
        if not inputs.numel():
            return
        if not self._on_255_scale:
            if not self._identity:
                self._check_0_1_scale(inputs)
            return
        if not inputs.is_floating_point():
            return
        low, high, fractional = torch.stack([
            inputs.amin(),
            inputs.amax(), (inputs != inputs.round()).any().to(inputs.dtype)
        ]).tolist()
        if low >= 0 and high <= 1 and fractional:
            mean = [round(v, 4) for v in self.mean.flatten().tolist()]
            std = [round(v, 4) for v in self.std.flatten().tolist()]
            raise ValueError(
                f'ReIDDataPreprocessor got a float batch on the 0-1 scale '
                f'(values in [{low:.4g}, {high:.4g}], not integers), but '
                f'model.data_preprocessor.mean={mean} and std={std} are on '
                'the 0-255 scale, so the features would be wrong. Feed '
                '0-255 images (uint8, as ReIDLoadImageFromFile gives; '
                "torchvision's ToTensor() output times 255), or, for 0-1 "
                'images, set model.data_preprocessor.mean='
                f'{[round(v / 255, 4) for v in mean]} and std='
                f'{[round(v / 255, 4) for v in std]}')

    def _check_0_1_scale(self, inputs: torch.Tensor) -> None:
        """Refuse a batch of 0-255 pixels (any integer dtype, or floats
        above 1) when mean and std are on the 0-1 scale (torchreid's and
        torchvision's ``[0.485, 0.456, 0.406]``): ``(x - 0.485) / 0.229``
        of a 0-255 pixel is about 870, and every feature would be wrong."""
        high = float(inputs.amax()) if inputs.is_floating_point() else None
        if high is not None and high <= 1:
            return
        mean = [round(v, 4) for v in self.mean.flatten().tolist()]
        std = [round(v, 4) for v in self.std.flatten().tolist()]
        got = (f'a {inputs.dtype} batch' if high is None else
               f'a float batch with values up to {high:.4g}')
        raise ValueError(
            f'ReIDDataPreprocessor got {got} (0-255 pixels), but '
            f'model.data_preprocessor.mean={mean} and std={std} are on the '
            '0-1 scale, so the features would be wrong. For 0-255 images '
            '(uint8, as ReIDLoadImageFromFile gives) set mean='
            f'{[round(v * 255, 3) for v in mean]} and std='
            f'{[round(v * 255, 3) for v in std]}')

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
        self._check_scale(inputs)
        inputs = (inputs.float() - self.mean) / self.std
        data_samples: Optional[List[ReIDDataSample]] = data.get('data_samples')
        if data_samples is not None:
            data_samples = self.cast_data(data_samples)
        return dict(inputs=inputs, data_samples=data_samples)
