from typing import Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmreid.registry import MODELS

Features = Union[torch.Tensor, Tuple[torch.Tensor, ...]]


def _apply(pool, inputs: Features) -> Features:
    if isinstance(inputs, tuple):
        return tuple(pool(x) for x in inputs)
    if isinstance(inputs, torch.Tensor):
        return pool(inputs)
    raise TypeError(f'expected a tensor or a tuple of tensors, got '
                    f'{type(inputs).__name__}')


@MODELS.register_module()
class GlobalAvgPool(nn.Module):
    """Global average pooling neck: (N, C, H, W) -> (N, C).

    Accepts a tensor or the backbone's tuple of stage outputs, and returns
    the same structure.
    """

    def forward(self, inputs: Features) -> Features:
        return _apply(lambda x: x.mean(dim=(2, 3)), inputs)


@MODELS.register_module()
class GeMPool(nn.Module):
    """Generalized-mean pooling (Radenović et al., TPAMI 2018).

    ``(mean(x.clamp(min=eps) ** p)) ** (1 / p)`` over H, W: p = 1 is average
    pooling and p -> inf max pooling. ReID models commonly use p = 3.

    Computed in fp32 (fp64 inputs stay fp64) with autocast disabled, so
    the output is fp32 under AMP: ``x ** p`` overflows fp16 for
    ``x > 65504 ** (1 / p)`` (40 for p = 3), and bf16 keeps under three
    digits of the pooled feature that the metric loss and the test
    distance use. (CUDA autocast already runs ``pow`` in fp32; this makes
    every device do the whole pooling so.) A channel whose ``x ** p``
    underflows or overflows fp32 (all zero at p >= 7.5 with eps = 1e-6;
    values near 100 at p = 20) is pooled as ``m * mean((x / m) ** p) **
    (1 / p)`` with m its maximum, the same value, finite with finite
    gradients; every other channel bit for bit as the plain form.

    Args:
        p (float): Initial exponent. Defaults to 3.
        eps (float): Clamp before the power, for stable gradients.
        learnable (bool): Whether p is trained. Defaults to True.
    """

    def __init__(self,
                 p: float = 3.0,
                 eps: float = 1e-6,
                 learnable: bool = True) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f'GeM exponent p must be positive, got {p}')
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=learnable)
        self.eps = eps

    def _gem(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C), fp32 for fp16/bf16 inputs."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            if x.dtype in (torch.float16, torch.bfloat16):
                x = x.float()
            p = self.p.to(x.dtype)
            x = x.clamp(min=self.eps)
            # x ** p underflows where a channel is zero everywhere (eps **
            # p is 0 in fp32 from p = 7.5 with eps = 1e-6: the mean is 0,
            # not eps ** p, and p's gradient NaN) and overflows for large
            # x. Such channels take the same mean of x scaled by the
            # channel's maximum; the others the plain form, bit for bit.
            # Each branch sees only its channels' values (1 elsewhere), so
            # neither gradient meets an inf.
            with torch.no_grad():
                pooled = F.adaptive_avg_pool2d(x.pow(p), 1)
                normal = torch.isfinite(pooled) & (
                    pooled >= torch.finfo(x.dtype).tiny)
            ones = torch.ones_like(x)
            plain = F.adaptive_avg_pool2d(
                torch.where(normal, x, ones).pow(p), 1).pow(1.0 / p)
            peak = x.amax(dim=(2, 3), keepdim=True).detach()
            scaled = peak * F.adaptive_avg_pool2d(
                torch.where(normal, ones, x / peak).pow(p), 1).pow(1.0 / p)
            return torch.where(normal, plain, scaled).flatten(1)

    def forward(self, inputs: Features) -> Features:
        return _apply(self._gem, inputs)

    def extra_repr(self) -> str:
        return f'p={self.p.item():.4f}, eps={self.eps}'
