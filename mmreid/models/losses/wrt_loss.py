import torch
import torch.nn as nn
import torch.nn.functional as F

from mmreid.registry import MODELS
from .checks import check_weight
from .triplet_loss import check_pair_labels, pairwise_euclidean


def _softmax_weights(values: torch.Tensor,
                     mask: torch.Tensor,
                     exact: bool = False) -> torch.Tensor:
    """Row-wise softmax of ``values`` restricted to ``mask`` (0 elsewhere).

    ``exact=False`` follows the reference: ``exp(v - m) * mask /
    (sum(exp(v - m) * mask) + 1e-6)`` with ``m`` the max over ``values *
    mask``, which counts the masked-out entries as 0. For the negatives
    (``values = -d <= 0``) that makes ``m = 0`` and the weights sum to
    ``S / (S + 1e-6)`` with ``S = sum_k exp(-d_k)``: about 0 once the
    nearest negative is farther than about 14. ``exact=True`` takes ``m``
    over the masked entries only, so a row with any masked entry sums to
    1; a row with none gets zeros.

    Args:
        values (Tensor): Shape (N, N).
        mask (Tensor): 1 for the entries of the softmax, shape (N, N).
        exact (bool): Max over the masked entries only.

    Returns:
        Tensor: Weights, shape (N, N).
    """
    if not exact:
        max_v = (values * mask).max(dim=1, keepdim=True).values
        exp = torch.exp(values - max_v) * mask
        return exp / (exp.sum(dim=1, keepdim=True) + 1e-6)
    max_v = values.masked_fill(mask == 0, float('-inf')).max(
        dim=1, keepdim=True).values
    max_v = max_v.masked_fill(~torch.isfinite(max_v), 0.0)
    # Masked-out entries to exp(-inf) = 0 before the exponential: their
    # v - m is up to the nearest masked distance, and exp of that is inf
    # (then inf * 0 = NaN) once it passes about 88.7 in fp32.
    exp = torch.exp((values - max_v).masked_fill(mask == 0, float('-inf')))
    total = exp.sum(dim=1, keepdim=True)
    return exp / total.masked_fill(total == 0, 1.0)


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
    ``mangye16/Cross-Modal-Re-ID-baseline``, by default with its
    stabilised softmax, which departs from the formula above at large
    distances.

    **The reference's negative-weight collapse (default).** The reference
    subtracts the row max of ``values * mask``, i.e. of ``-d`` with the
    masked-out positives counted as 0, so the max is 0, and adds 1e-6 to
    the denominator. The negative weights then sum to ``S / (S + 1e-6)``,
    ``S = sum_{k in N(i)} exp(-d_ik)``, not to 1: 0.5 when the nearest
    negative is at 13.8 (``exp(-13.8) ~ 1e-6``), about 0.002 at 20. Past
    that ``d_n -> 0`` and the anchor's loss becomes ``softplus(d_p)``: the
    negative term vanishes, and with it the push on negatives. The
    positive weights are unaffected (``d >= 0``, so the max is right).
    Kept as the default for fidelity to AGW's published numbers;
    ``exact_softmax=True`` gives the formula above (weights that sum to 1
    at every distance). Un-normalised features (``normalize_feature``
    False, as AGW) are the ones that can reach that regime;
    ``configs/mbn/README.md`` reports where mmreid's trained VI models
    sit.

    Distances are computed in fp32 even under AMP (see
    :func:`pairwise_euclidean`).

    Args:
        normalize_feature (bool): L2-normalise the features first.
            Defaults to False (as AGW).
        loss_weight (float): Multiplier of the loss. Defaults to 1.
        exact_softmax (bool): Take the softmax max over the masked entries
            only, so the weights of each row sum to 1 as the definition
            reads. Defaults to False (the reference's computation, see
            above).
    """

    #: Mined per identity: a batch needs K >= 2 images of an identity
    #: (``TrainSetupCheckHook`` checks the sampler).
    needs_positives = True
    #: Contrasts with other identities of the batch: a batch needs P >= 2
    #: identities (``TrainSetupCheckHook`` checks the sampler).
    needs_negatives = True

    def __init__(self,
                 normalize_feature: bool = False,
                 loss_weight: float = 1.0,
                 exact_softmax: bool = False) -> None:
        super().__init__()
        self.normalize_feature = normalize_feature
        self.loss_weight = check_weight('WRTLoss', 'loss_weight', loss_weight)
        self.exact_softmax = exact_softmax

    def forward(self, feats: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            feats (Tensor): Embeddings, shape (N, D).
            labels (Tensor): Identities, shape (N,).

        Returns:
            Tensor: Scalar loss.
        """
        if feats.dim() != 2:
            raise ValueError(f'WRTLoss expects feats (N, D), got '
                             f'{tuple(feats.shape)}')
        check_pair_labels(labels, feats.size(0), 'WRTLoss')
        feats = feats.float()
        if self.normalize_feature:
            feats = F.normalize(feats, dim=1)
        dist = pairwise_euclidean(feats, feats)
        labels = labels.to(feats.device)
        is_pos = (labels.unsqueeze(0) == labels.unsqueeze(1)).float()
        is_neg = 1.0 - is_pos
        dist_ap = dist * is_pos
        dist_an = dist * is_neg
        weights_ap = _softmax_weights(dist_ap, is_pos, self.exact_softmax)
        weights_an = _softmax_weights(-dist_an, is_neg, self.exact_softmax)
        furthest_positive = (dist_ap * weights_ap).sum(dim=1)
        closest_negative = (dist_an * weights_an).sum(dim=1)
        loss = F.softplus(furthest_positive - closest_negative).mean()
        return self.loss_weight * loss
