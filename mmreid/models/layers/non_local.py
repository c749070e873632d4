from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule

from mmreid.registry import MODELS
from ..weight_init import has_pretrained_init, init_in_mmreid_scope


@MODELS.register_module()
class AGWNonLocal(BaseModule):
    """The non-local block of the AGW baseline (Ye et al., TPAMI 2021).

    A dot-product non-local block (Wang et al., CVPR 2018) as in the
    reference code (``mangye16/Cross-Modal-Re-ID-baseline``,
    ``model.Non_local``)::

        f = theta(x)^T phi(x) / N        (N = H * W, no softmax)
        z = x + W(f g(x))                (W = 1x1 conv + norm)

    The norm of ``W`` is zero-initialised (gamma = beta = 0), so the block
    is the identity at initialisation and an ImageNet backbone keeps its
    behaviour. It is per-sample except for that norm, which may be ``MBN``
    (``norm_cfg=dict(type='MBN')``).

    Args:
        in_channels (int): Channels C.
        reduc_ratio (int, optional): ``inter_channels = C // reduc_ratio``.
            Defaults to None: the reference's ``reduc_ratio // reduc_ratio
            = 1`` intermediate channel (a quirk of the reference code that
            its published numbers use).
        norm_cfg (dict): Norm of ``W``. Defaults to ``dict(type='BN')``.
        init_cfg (dict, optional): Initialisation config.

    Keys (as the reference): ``g``, ``theta``, ``phi`` (1x1 convs with
    bias), ``W.0`` (conv) and ``W.1`` (norm).
    """

    #: Not in the ImageNet networks pretrained weights come from:
    #: ``init_cfg=dict(type='Pretrained')`` leaves it at its initialisation
    #: (see :func:`mmreid.models.weight_init.load_pretrained`).
    not_in_pretrained = True

    def __init__(self,
                 in_channels: int,
                 reduc_ratio: Optional[int] = None,
                 norm_cfg: dict = dict(type='BN'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if reduc_ratio is None:
            inter_channels = 1
        else:
            if reduc_ratio < 1 or in_channels % reduc_ratio:
                raise ValueError(
                    f'reduc_ratio must divide in_channels ({in_channels}), '
                    f'got {reduc_ratio}')
            inter_channels = in_channels // reduc_ratio
        self.in_channels = in_channels
        self.inter_channels = inter_channels
        self.g = nn.Conv2d(in_channels, inter_channels, 1)
        self.theta = nn.Conv2d(in_channels, inter_channels, 1)
        self.phi = nn.Conv2d(in_channels, inter_channels, 1)
        _, norm = build_norm_layer(norm_cfg, in_channels)
        self.W = nn.Sequential(nn.Conv2d(inter_channels, in_channels, 1), norm)
        self.zero_init_norm()

    def zero_init_norm(self) -> None:
        """gamma = beta = 0 in ``W``'s norm: the block starts as identity."""
        for param in self.W[1].parameters():
            nn.init.zeros_(param)

    @init_in_mmreid_scope
    def init_weights(self) -> None:
        """The ``init_cfg``, then ``W``'s norm at 0, unless a pretrained
        ``init_cfg`` loaded it."""
        super().init_weights()
        if not has_pretrained_init(self.init_cfg):
            self.zero_init_norm()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, H, W)."""
        n, _, h, w = x.shape
        g_x = self.g(x).flatten(2).transpose(1, 2)  # (N, HW, c)
        theta_x = self.theta(x).flatten(2).transpose(1, 2)  # (N, HW, c)
        phi_x = self.phi(x).flatten(2)  # (N, c, HW)
        f = torch.matmul(theta_x, phi_x) / (h * w)  # (N, HW, HW)
        y = torch.matmul(f, g_x).transpose(1,
                                           2).reshape(n, self.inter_channels,
                                                      h, w)
        return x + self.W(y)
