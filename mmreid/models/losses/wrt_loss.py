import torch
import torch.nn as nn
import torch.nn.functional as F

from mmreid.registry import MODELS
from .triplet_loss import pairwise_euclidean


def _softmax_weights(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax of ``values`` restricted to ``mask`` (0 elsewhere).

    As the reference: ``exp(v - max) * mask / (sum(exp(v - max) * mask) +
    1e-6)`` with the max over ``values * mask``.
    """
    max_v = (values * mask).max(dim=1, keepdim=True).values
    exp = torch.exp(values - max_v) * mask
    return exp / (exp.sum(dim=1, keepdim=True) + 1e-6)


@MODELS.register_module()
class WRTLoss(nn.Module):
    """Weighted regularized triplet loss of the AGW baseline (Ye et al.).

    For each anchor ``i`` with Euclidean distances ``d_ij`` (positives
    include the anchor itself)::

        w_ij+ = softmax_{j in P(i)}(d_ij)       d_p = sum_j w_ij+ d_ij
        w_ik- = softmax_{k in N(i)}(-d_ik)      d_n = sum_k w_ik- d_ik
        loss  = mean_i log(1 + exp(d_p - d_n))  (soft margin, no margin)

    Hard positives and negatives get the largest weights, without a margin
    to tune. Follows ``loss.TripletLoss_WRT`` of
    ``mangye16/Cross-Modal-Re-ID-baseline`` (including its 1e-6 in the
    softmax denominator).

    Args:
        normalize_feature (bool): L2-normalise the features first.
            Defaults to False (as AGW).
        loss_weight (float): Multiplier of the loss. Defaults to 1.
    """

    #: Mined per identity: a batch needs K >= 2 images of an identity
    #: (``TrainSetupCheckHook`` checks the sampler).
    needs_positives = True

    def __init__(self,
                 normalize_feature: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.normalize_feature = normalize_feature
        self.loss_weight = loss_weight

    def forward(self, feats: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            feats (Tensor): Embeddings, shape (N, D).
            labels (Tensor): Identities, shape (N,).

        Returns:
            Tensor: Scalar loss.
        """
        if feats.dim() != 2 or labels.numel() != feats.size(0):
            raise ValueError(f'WRTLoss expects feats (N, D) and N labels, '
                             f'got {tuple(feats.shape)} and '
                             f'{labels.numel()} labels')
        feats = feats.float()
        if self.normalize_feature:
            feats = F.normalize(feats, dim=1)
        dist = pairwise_euclidean(feats, feats)
        labels = labels.to(feats.device)
        is_pos = (labels.unsqueeze(0) == labels.unsqueeze(1)).float()
        is_neg = 1.0 - is_pos
        dist_ap = dist * is_pos
        dist_an = dist * is_neg
        weights_ap = _softmax_weights(dist_ap, is_pos)
        weights_an = _softmax_weights(-dist_an, is_neg)
        furthest_positive = (dist_ap * weights_ap).sum(dim=1)
        closest_negative = (dist_an * weights_an).sum(dim=1)
        loss = F.softplus(furthest_positive - closest_negative).mean()
        return self.loss_weight * loss
