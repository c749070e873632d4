import torch
import torch.nn as nn

from mmreid.registry import MODELS


@MODELS.register_module()
class IBN(nn.Module):
    """Instance-batch normalization of IBN-Net-a (Pan et al., ECCV 2018).

    The first ``round(num_features * ratio)`` channels are instance
    normalised (with affine parameters), the rest batch normalised. IN
    removes per-image appearance statistics (style) from the shallow
    features while BN keeps their content discriminative; IBN-Net-a puts it
    in place of the first BN of every residual block of stages 1-3.

    Usable wherever a norm layer is built (``_abbr_`` is ``'bn'``, so
    ``build_norm_layer(dict(type='IBN'), C, postfix=1)`` names it ``bn1``).
    Keys: ``IN.weight``, ``IN.bias`` and ``BN.*`` as in the IBN-Net release.

    Args:
        num_features (int): Channels C.
        ratio (float): Fraction of channels that are instance normalised,
            in (0, 1). Defaults to 0.5.
        eps (float): As in the BN/IN layers. Defaults to 1e-5.
        momentum (float): BN momentum. Defaults to 0.1.
    """

    _abbr_ = 'bn'

    def __init__(self,
                 num_features: int,
                 ratio: float = 0.5,
                 eps: float = 1e-5,
                 momentum: float = 0.1,
                 requires_grad: bool = True) -> None:
        super().__init__()
        if not 0 < ratio < 1:
            raise ValueError(f'IBN ratio must be in (0, 1), got {ratio}')
        self.num_features = num_features
        self.half = int(round(num_features * ratio))
        if not 0 < self.half < num_features:
            raise ValueError(f'IBN ratio {ratio} leaves no IN or no BN '
                             f'channel out of {num_features}')
        self.IN = nn.InstanceNorm2d(self.half, eps=eps, affine=True)
        self.BN = nn.BatchNorm2d(
            num_features - self.half, eps=eps, momentum=momentum)
        for param in self.parameters():
            param.requires_grad_(requires_grad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        if x.size(1) != self.num_features:
            raise ValueError(f'IBN expects {self.num_features} channels, '
                             f'got input of shape {tuple(x.shape)}')
        x_in, x_bn = torch.split(x, [self.half, x.size(1) - self.half], 1)
        return torch.cat([self.IN(x_in.contiguous()), self.BN(x_bn)], 1)
