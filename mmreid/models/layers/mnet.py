"""The metric network (M-Net) of GMN (Qi et al., arXiv:2306.11991)."""
from typing import Callable, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmreid.evaluation.functional.mnet_logits import fold_mnet_batchnorm
from mmreid.registry import MODELS
from ..weight_init import init_in_mmreid_scope

OUTPUTS = ('logit', 'two_way_softmax')


@MODELS.register_module()
class MNet(BaseModule):
    """A small MLP that scores a sample-pair feature: same person or not.

    ``f_sp (N, D) -> [Linear(no bias) -> BatchNorm1d -> ReLU] x num_layers
    -> Linear -> z (N,)``, where ``z`` is the logit of "same identity".

    With ``output='two_way_softmax'`` the last layer has two outputs
    (different, same), the "square layer + verification" design of Zheng
    et al. (TOMM'17); ``z`` is then their difference ``o_same - o_diff``,
    so that ``sigmoid(z)`` is the softmax probability of "same" and the
    binary cross-entropy on ``z`` equals the 2-way cross-entropy.

    Args:
        in_channels (int): Pair-feature dimension D.
        hidden_channels (int): Width H of the hidden layers. Defaults to
            512.
        num_layers (int): Number of hidden layers, 1 or 2. Defaults to 1.
        output (str): ``'logit'`` (default) or ``'two_way_softmax'``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 hidden_channels: int = 512,
                 num_layers: int = 1,
                 output: str = 'logit',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_layers not in (1, 2):
            raise ValueError(f'MNet num_layers must be 1 or 2, got '
                             f'{num_layers!r}')
        if output not in OUTPUTS:
            raise ValueError(f'MNet output must be one of {OUTPUTS}, got '
                             f'{output!r}')
        if in_channels <= 0 or hidden_channels <= 0:
            raise ValueError('MNet in_channels and hidden_channels must be '
                             f'positive, got {in_channels}, '
                             f'{hidden_channels}')
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.output = output
        layers = []
        channels = in_channels
        for _ in range(num_layers):
            layers += [
                nn.Linear(channels, hidden_channels, bias=False),
                nn.BatchNorm1d(hidden_channels),
                nn.ReLU(inplace=True)
            ]
            channels = hidden_channels
        self.hidden = nn.Sequential(*layers)
        self.fc_out = nn.Linear(hidden_channels, 1 if output == 'logit' else 2)

    @init_in_mmreid_scope
    def init_weights(self) -> None:
        """mmengine's ``init_weights`` in the mmreid scope."""
        super().init_weights()

    def forward(
        self,
        pair_feats: torch.Tensor,
        return_hidden: bool = False
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Score pair features.

        Args:
            pair_feats (Tensor): Shape (N, D).
            return_hidden (bool): Also return the last hidden activation
                (after ReLU), shape (N, H).

        Returns:
            Tensor | tuple[Tensor, Tensor]: Logits ``z`` of shape (N,)
            (and the hidden activation).
        """
        hidden = self.hidden(pair_feats)
        logits = self._logit(self.fc_out(hidden))
        return (logits, hidden) if return_hidden else logits

    def _logit(self, out: torch.Tensor) -> torch.Tensor:
        if self.output == 'logit':
            return out[:, 0]
        return out[:, 1] - out[:, 0]

    def _out_params(self) -> Tuple[torch.Tensor, torch.Tensor]:
        weight, bias = self.fc_out.weight, self.fc_out.bias
        if self.output == 'logit':
            return weight[0], bias[0]
        return weight[1] - weight[0], bias[1] - bias[0]

    @staticmethod
    def _fold(linear: nn.Linear,
              bn: nn.BatchNorm1d) -> Tuple[torch.Tensor, torch.Tensor]:
        """Fold an eval-mode BatchNorm1d into the bias-free Linear before
        it (the one fold: :func:`fold_mnet_batchnorm`)."""
        return fold_mnet_batchnorm(linear.weight, bn)

    @torch.no_grad()
    def folded_params(
            self) -> Dict[str, Optional[Union[torch.Tensor, Callable]]]:
        """The eval-mode M-Net as the pair scorer's parameters.

        The first hidden layer's BatchNorm (running statistics) is folded
        into its Linear. With one hidden layer the M-Net is
        ``z = out_weight . relu(weight @ f_sp + bias) + out_bias``; with
        two, ``tail`` maps the first hidden activation (after ReLU,
        shape (N, H)) to ``z`` (N,) and ``out_weight``/``out_bias`` are
        those of the last layer (already applied by ``tail``).

        Returns:
            dict: ``weight`` (H, D), ``bias`` (H,), ``out_weight`` (H,),
            ``out_bias`` (scalar tensor), all fp32 detached copies, and
            ``tail`` (a callable or None), the keyword arguments of
            :func:`mmreid.evaluation.functional.mnet_distances`.
        """
        weight, bias = self._fold(self.hidden[0], self.hidden[1])
        out_weight, out_bias = self._out_params()
        params = dict(
            weight=weight.detach().float().clone(),
            bias=bias.detach().float().clone(),
            out_weight=out_weight.detach().float().clone(),
            out_bias=out_bias.detach().float().clone(),
            tail=None)
        if self.num_layers == 2:
            w2, b2 = self._fold(self.hidden[3], self.hidden[4])
            w2, b2 = w2.detach().float(), b2.detach().float()
            w_out = out_weight.detach().float()
            b_out = out_bias.detach().float()

            def tail(hidden: torch.Tensor) -> torch.Tensor:
                h2 = torch.relu(hidden @ w2.to(hidden.device).t() +
                                b2.to(hidden.device))
                return h2 @ w_out.to(hidden.device) + b_out.to(hidden.device)

            params['tail'] = tail
        return params
