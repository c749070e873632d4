import torch
import torch.nn as nn
import torch.nn.functional as F

from mmreid.registry import MODELS
from mmreid.utils.deprecation import deprecated_registry_alias
from .checks import check_weight


@MODELS.register_module()
class ReIDCrossEntropyLoss(nn.Module):
    """Identity cross-entropy with optional label smoothing.

    With smoothing eps and C classes the target is ``1 - eps + eps / C`` for
    the true class and ``eps / C`` elsewhere (Szegedy et al., 2016; the BoT
    recipe uses eps = 0.1).

    Args:
        label_smooth_eps (float): Smoothing eps in [0, 1). Defaults to 0.
        loss_weight (float): Multiplier of the loss. Defaults to 1.
    """

    def __init__(self,
                 label_smooth_eps: float = 0.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= label_smooth_eps < 1.0:
            raise ValueError(f'label_smooth_eps must be in [0, 1), got '
                             f'{label_smooth_eps}')
        self.label_smooth_eps = label_smooth_eps
        self.loss_weight = check_weight('ReIDCrossEntropyLoss', 'loss_weight',
                                        loss_weight)

    def forward(self, logits: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            logits (Tensor): Class scores, shape (N, C).
            labels (Tensor): Class indices, shape (N,).

        Returns:
            Tensor: Scalar loss.
        """
        if labels.numel() and (labels.min() < 0
                               or labels.max() >= logits.size(1)):
            raise ValueError(
                f'labels must be in [0, {logits.size(1)}), got range '
                f'[{int(labels.min())}, {int(labels.max())}]: does the '
                'classifier size match the number of training identities?')
        # In fp32, as the metric losses: fp16 logits (a model in .half()
        # outside autocast) overflow the log-sum-exp over C classes.
        loss = F.cross_entropy(
            logits.float(), labels, label_smoothing=self.label_smooth_eps)
        return self.loss_weight * loss


deprecated_registry_alias(MODELS, 'CrossEntropyLoss', ReIDCrossEntropyLoss,
                          'mmpretrain.CrossEntropyLoss')
