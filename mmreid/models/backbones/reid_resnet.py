from typing import Sequence

from mmpretrain.models.backbones import ResNet

from mmreid.registry import MODELS


@MODELS.register_module()
class ReIDResNet(ResNet):
    """mmpretrain's ResNet with the ReID last-stride option.

    Person ReID keeps the last stage at stride 1 (Luo et al., "Bag of Tricks",
    2019): a 256x128 input then gives a 16x8 instead of an 8x4 final map,
    which helps fine-grained identity cues for no extra parameters. The
    parameter names are mmpretrain's (and torchvision's), so ImageNet
    checkpoints load unchanged.

    Args:
        depth (int): 18, 34, 50, 101 or 152.
        last_stride (int): Stride of the last stage. Defaults to 1.
        strides (Sequence[int]): Strides of the first stages; the last entry
            is replaced by ``last_stride``. Defaults to (1, 2, 2, 2).
        out_indices (Sequence[int]): Stages whose outputs are returned.
            Defaults to (3,).
        **kwargs: See :class:`mmpretrain.models.ResNet`.
    """

    def __init__(self,
                 depth: int,
                 last_stride: int = 1,
                 strides: Sequence[int] = (1, 2, 2, 2),
                 out_indices: Sequence[int] = (3, ),
                 **kwargs) -> None:
        if last_stride not in (1, 2):
            raise ValueError(f'last_stride must be 1 or 2, got {last_stride}')
        strides = tuple(strides[:-1]) + (last_stride, )
        super().__init__(
            depth=depth, strides=strides, out_indices=out_indices, **kwargs)
        self.last_stride = last_stride
