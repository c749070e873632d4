from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmreid.registry import MODELS
from .checks import check_weight


def upcast(x: torch.Tensor) -> torch.Tensor:
    """``x`` in fp32 if it is fp16/bf16, else unchanged (fp64 stays)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def pairwise_euclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between rows, shape (N, M).

    The expanded form is clamped before the square root; the small floor
    keeps the gradient finite for identical rows.

    Computed in fp32 (fp64 inputs stay fp64) with autocast disabled: under
    AMP, ``x @ y.t()`` would otherwise run in fp16/bf16 although the inputs
    are fp32, and ``|x|^2 + |y|^2 - 2 x.y`` cancels catastrophically in
    low precision (spec SNR §3.2: distances in fp32 even under AMP).

    Args:
        x (Tensor): Shape (N, D).
        y (Tensor): Shape (M, D).

    Returns:
        Tensor: Shape (N, M), fp32 (fp64 for fp64 inputs).
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        x, y = upcast(x), upcast(y)
        dist = (
            x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1).unsqueeze(0) -
            2.0 * x @ y.t())
        return dist.clamp(min=1e-12).sqrt()


def check_pair_labels(labels: torch.Tensor, num: int, owner: str) -> None:
    """Refuse labels that are not one per sample, shape (num,).

    Args:
        labels (Tensor): The labels given.
        num (int): The number of samples (rows of the features).
        owner (str): Who was given them, for the message.

    Raises:
        ValueError: Names the shape given and the one expected.
    """
    if labels.dim() != 1 or labels.numel() != num:
        raise ValueError(
            f'{owner} expects one label per sample, shape ({num},), got '
            f'{tuple(labels.shape)}: (N, 1) or (1, N) labels would compare '
            'other pairs than the same-identity ones (flatten them)')


def hard_example_mining(
        dist: torch.Tensor,
        labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Batch-hard mining (Hermans et al., 2017).

    Args:
        dist (Tensor): Distances, shape (N, N).
        labels (Tensor): Identities, shape (N,).

    Returns:
        tuple[Tensor, Tensor]: For each anchor, the distance to its farthest
        positive and to its nearest negative, each shape (N,).

    Raises:
        ValueError: ``labels`` is not one label per row of ``dist``, shape
            (N,): (N, 1) labels (pids stacked from data samples) broadcast
            to (N, N, 1) masks and gave a loss of other pairs.
    """
    check_pair_labels(labels, dist.size(0), 'batch-hard mining')
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    # The anchor itself counts as a positive at distance ~0, which only
    # matters if it has no other positive.
    dist_ap = dist.masked_fill(~same, float('-inf')).max(dim=1).values
    dist_an = dist.masked_fill(same, float('inf')).min(dim=1).values
    return dist_ap, dist_an


@MODELS.register_module()
class TripletLoss(nn.Module):
    """Batch-hard triplet loss with a margin or a soft margin.

    For each anchor, ``max(0, d(a, p_hard) - d(a, n_hard) + margin)``; with
    ``margin=None`` the soft-margin form ``log(1 + exp(d_ap - d_an))``.
    Anchors without a negative in the batch are ignored.

    Args:
        margin (float, optional): The margin; None for soft margin.
            Defaults to 0.3.
        normalize_feature (bool): L2-normalise features first.
        loss_weight (float): Multiplier of the loss. Defaults to 1.
    """

    #: Mined per identity: a batch needs K >= 2 images of an identity
    #: (``TrainSetupCheckHook`` checks the sampler).
    needs_positives = True
    #: Contrasts with other identities of the batch: a batch needs P >= 2
    #: identities (``TrainSetupCheckHook`` checks the sampler).
    needs_negatives = True

    def __init__(self,
                 margin: Optional[float] = 0.3,
                 normalize_feature: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if margin is not None:
            # NaN passed a `margin < 0` test and made every loss NaN.
            margin = check_weight('TripletLoss', 'margin', margin)
        self.margin = margin
        self.normalize_feature = normalize_feature
        self.loss_weight = check_weight('TripletLoss', 'loss_weight',
                                        loss_weight)

    def forward(self, feats: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            feats (Tensor): Embeddings, shape (N, D).
            labels (Tensor): Identities, shape (N,).

        Returns:
            Tensor: Scalar loss.
        """
        feats = feats.float()
        if self.normalize_feature:
            feats = F.normalize(feats, dim=1)
        dist = pairwise_euclidean(feats, feats)
        dist_ap, dist_an = hard_example_mining(dist, labels)
        valid = torch.isfinite(dist_an)
        if not valid.any():
            return feats.sum() * 0.0
        diff = dist_ap[valid] - dist_an[valid]
        if self.margin is None:
            loss = F.softplus(diff).mean()
        else:
            loss = F.relu(diff + self.margin).mean()
        return self.loss_weight * loss
