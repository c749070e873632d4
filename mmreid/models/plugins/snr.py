from collections import OrderedDict
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmreid.registry import MODELS
from ..weight_init import init_in_mmreid_scope


@MODELS.register_module()
class SNR(BaseModule):
    """Style Normalization and Restitution (Jin et al., CVPR 2020).

    Placed after a ResNet stage (see ``ReIDResNet(plugins=...)``). For a
    stage map ``F`` (N, C, H, W):

    * style normalisation ``F_in = IN(F)`` (affine, instance statistics also
      at test time);
    * residual ``R = F - F_in``;
    * channel gate on the residual ``a = sigmoid(W2 relu(W1 GAP(R) + b1) +
      b2)`` of shape (N, C, 1, 1), reduction ``r``;
    * restitution ``F_pos = F_in + a * R`` (the output, fed to the next
      stage) and ``F_neg = F_in + (1 - a) * R`` (training only).

    Identities: ``F_pos + F_neg = F + F_in``; ``a = 1`` gives ``F_pos = F``,
    ``a = 0`` gives ``F_pos = IN(F)``.

    **Auxiliary outputs.** In training mode (and with restitution,
    ``has_aux_outputs``) the forward returns ``(F_pos, aux)`` where ``aux``
    holds the pooled triple of the dual causality loss, each (N, C) in
    fp32::

        feat=GAP(F_in), feat_pos=GAP(F_pos), feat_neg=GAP(F_neg),
        log_gate=mean gate value (detached scalar, only with log_gate=True)

    The keys without the ``log_`` prefix are the keyword arguments of
    :class:`DualCausalityLoss`. Because ``a`` is constant over H x W, the
    pooled features are computed from ``GAP(F_in)`` and ``GAP(R)``
    (``GAP(F_neg) = GAP(F_in) + (1 - a) * GAP(R)``), which equals pooling
    the full maps without materialising ``F_neg``. In eval mode only
    ``F_pos`` is computed and a tensor is returned. Note that ``GAP(F_in)``
    equals the IN bias ``beta`` for every sample (see the spec, SNR §3.3).

    With ``restitution=False`` the module is plain IN after the stage
    (Baseline-A-IN): it returns ``IN(F)`` and no auxiliary outputs.

    Args:
        in_channels (int): Channels C of the stage map.
        reduction (int): Gate reduction ratio r; hidden width ``C // r``.
            Defaults to 16.
        restitution (bool): Build the gate and restitute the residual.
            Defaults to True.
        eps (float): IN epsilon. Defaults to 1e-5.
        log_gate (bool): Add the mean gate value to the auxiliary outputs,
            which the model logs per stage. Defaults to False (quiet logs).
        init_cfg (dict, optional): Initialisation config. Defaults to None
            (IN weight 1, bias 0; gate convs Kaiming normal fan_out/relu,
            bias 0).
    """

    _abbr_ = 'snr'
    #: Not in the ImageNet networks pretrained weights come from:
    #: ``init_cfg=dict(type='Pretrained')`` leaves it at its initialisation
    #: (see :func:`mmreid.models.weight_init.load_pretrained`).
    not_in_pretrained = True

    def __init__(self,
                 in_channels: int,
                 reduction: int = 16,
                 restitution: bool = True,
                 eps: float = 1e-5,
                 log_gate: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        hidden = in_channels // reduction
        if restitution and hidden < 1:
            raise ValueError(f'in_channels // reduction must be >= 1, got '
                             f'{in_channels} // {reduction}')
        self.in_channels = in_channels
        self.reduction = reduction
        self.restitution = restitution
        self.log_gate = log_gate
        self.in_norm = nn.InstanceNorm2d(
            in_channels, eps=eps, affine=True, track_running_stats=False)
        if restitution:
            self.gate = nn.Sequential(
                OrderedDict(
                    pool=nn.AdaptiveAvgPool2d(1),
                    fc1=nn.Conv2d(in_channels, hidden, 1, bias=True),
                    relu=nn.ReLU(inplace=True),
                    fc2=nn.Conv2d(hidden, in_channels, 1, bias=True),
                    sigmoid=nn.Sigmoid()))
        else:
            self.gate = None
        self._reset_parameters()

    @property
    def has_aux_outputs(self) -> bool:
        """Whether training forwards return ``(F_pos, aux)``: with
        restitution (see ``ReIDResNet``'s auxiliary outputs)."""
        return self.gate is not None

    def _reset_parameters(self) -> None:
        nn.init.ones_(self.in_norm.weight)
        nn.init.zeros_(self.in_norm.bias)
        if self.gate is not None:
            for conv in (self.gate.fc1, self.gate.fc2):
                nn.init.kaiming_normal_(
                    conv.weight, mode='fan_out', nonlinearity='relu')
                nn.init.zeros_(conv.bias)

    @init_in_mmreid_scope
    def init_weights(self) -> None:
        """The spec's initialisation, unless ``init_cfg`` is given."""
        if self.init_cfg:
            super().init_weights()
        else:
            self._reset_parameters()

    def decompose(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """All maps of the module, for analysis and tests.

        Args:
            x (Tensor): Stage map F, shape (N, C, H, W).

        Returns:
            dict[str, Tensor]: ``in`` (IN(F)), ``residual`` (R), ``gate``
            (a, (N, C, 1, 1)), ``pos`` (F_pos) and ``neg`` (F_neg), the maps
            of shape (N, C, H, W). Without restitution only ``in``.
        """
        f_in = self._instance_norm(x)
        if self.gate is None:
            return {'in': f_in}
        residual = x - f_in
        a = self.gate(residual)
        return {
            'in': f_in,
            'residual': residual,
            'gate': a,
            'pos': f_in + a * residual,
            'neg': f_in + (1 - a) * residual,
        }

    def _instance_norm(self, x: torch.Tensor) -> torch.Tensor:
        """IN(F), in fp32 under autocast (spec SNR §3.2's precision).

        Under AMP the stage map is half precision. An IN output rounded to
        it would move GAP(IN(F)) off beta by about 1e-3, and the reference
        distance D0, 1e-6 by construction (§3.3), would get a value and a
        gradient. So IN runs on the fp32 map; ``F - IN(F)`` and the output
        are fp32 too, and the next convolution casts them back.
        """
        if not torch.is_autocast_enabled(x.device.type):
            return self.in_norm(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.in_norm(x.float())

    def _pooled_triple(self, f_in: torch.Tensor, residual: torch.Tensor,
                       a: torch.Tensor) -> Dict[str, torch.Tensor]:
        """GAP of F_in, F_pos and F_neg, each (N, C), in fp32."""
        pooled_in = f_in.float().mean(dim=(2, 3))
        pooled_res = residual.float().mean(dim=(2, 3))
        a = a.float().flatten(1)
        aux = dict(
            feat=pooled_in,
            feat_pos=pooled_in + a * pooled_res,
            feat_neg=pooled_in + (1 - a) * pooled_res)
        if self.log_gate:
            aux['log_gate'] = a.detach().mean()
        return aux

    def forward(
        self, x: torch.Tensor
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, Dict[str, torch.Tensor]]]:
        """Apply SNR to a stage map.

        Args:
            x (Tensor): Stage map F, shape (N, C, H, W).

        Returns:
            Tensor | tuple[Tensor, dict]: ``F_pos`` (N, C, H, W) (``IN(F)``
            without restitution); in training mode with restitution
            ``(F_pos, aux)``, see the class docstring.
        """
        f_in = self._instance_norm(x)
        if self.gate is None:
            return f_in
        residual = x - f_in
        a = self.gate(residual)
        out = f_in + a * residual
        if not self.training:
            return out
        return out, self._pooled_triple(f_in, residual, a)
