"""Sample-pair losses of GMN (Qi et al., arXiv:2306.11991): the pair
verification loss L_gmn and the pair-identity center loss L_pic."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmreid.registry import MODELS
from .checks import check_weight

BALANCE_MODES = ('balanced', 'plain_mean', 'pos_weight')


@MODELS.register_module()
class PairVerificationLoss(nn.Module):
    """Binary cross-entropy on M-Net logits: same identity or not (L_gmn).

    Positives are ~5 % of the pairs of a PK batch, hence the class
    balance. With ``z`` the logits, ``P+``/``P-`` the positive/negative
    pairs:

    * ``'balanced'`` (default): ``0.5 * mean_{P+} softplus(-z) +
      0.5 * mean_{P-} softplus(z)`` (a side without pairs is left out and
      the other gets weight 1);
    * ``'plain_mean'``: the plain BCE mean over all pairs;
    * ``'pos_weight'``: BCE with positives weighted ``|P-| / |P+|``,
      averaged over all pairs (``BCEWithLogitsLoss(pos_weight=...)``).

    Args:
        balance (str): One of ``'balanced'``, ``'plain_mean'``,
            ``'pos_weight'``.
        loss_weight (float): Multiplier of the loss. Defaults to 1.
    """

    #: Mined per identity: a batch needs K >= 2 images of an identity
    #: (``TrainSetupCheckHook`` checks the sampler).
    needs_positives = True
    #: Contrasts with other identities of the batch: a batch needs P >= 2
    #: identities (``TrainSetupCheckHook`` checks the sampler).
    needs_negatives = True

    def __init__(self,
                 balance: str = 'balanced',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if balance not in BALANCE_MODES:
            raise ValueError(f'PairVerificationLoss balance must be one of '
                             f'{BALANCE_MODES}, got {balance!r}')
        self.balance = balance
        self.loss_weight = check_weight('PairVerificationLoss', 'loss_weight',
                                        loss_weight)

    def forward(self, logits: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            logits (Tensor): Pair logits ``z``, shape (N,).
            targets (Tensor): 1 for same-identity pairs, else 0, shape
                (N,) (bool, int or float).

        Returns:
            Tensor: Scalar loss.
        """
        if logits.shape != targets.shape:
            raise ValueError(f'logits {tuple(logits.shape)} and targets '
                             f'{tuple(targets.shape)} must have one shape')
        logits = logits.float()
        if not ((targets == 0) | (targets == 1)).all():
            # The +-1 convention of SoftMarginLoss made every pair a
            # positive (bool(-1) is True).
            found = torch.unique(targets[(targets != 0) & (targets != 1)])
            raise ValueError(
                'pair targets must be 1 (same identity) or 0, got values '
                f'{found[:5].tolist()}')
        pos = targets.bool()
        if logits.numel() == 0:
            return logits.sum() * 0.0
        if self.balance == 'plain_mean':
            loss = F.binary_cross_entropy_with_logits(logits, pos.float())
        elif self.balance == 'pos_weight':
            num_pos = pos.sum().clamp(min=1)
            pos_weight = (pos.numel() - pos.sum()) / num_pos
            loss = F.binary_cross_entropy_with_logits(
                logits, pos.float(), pos_weight=pos_weight.float())
        else:
            terms = []
            if pos.any():
                terms.append(F.softplus(-logits[pos]).mean())
            if (~pos).any():
                terms.append(F.softplus(logits[~pos]).mean())
            loss = sum(terms) / len(terms)
        return self.loss_weight * loss


def group_ids(keys: torch.Tensor) -> torch.Tensor:
    """Consecutive group ids of equal key rows.

    Args:
        keys (Tensor): Shape (N,) or (N, K), e.g. pair-identity keys
            ``(min(y_i, y_j), max(y_i, y_j))``.

    Returns:
        Tensor: Shape (N,), long, in ``0..num_groups-1``.
    """
    if keys.dim() == 1:
        keys = keys.unsqueeze(1)
    return torch.unique(keys, dim=0, return_inverse=True)[1].reshape(-1)


@MODELS.register_module()
class PICLoss(nn.Module):
    """Pair-identity center loss (L_pic): pair features of one
    pair-identity should agree.

    The centers are mini-batch means, not learned parameters (there are
    ~N(N+1)/2 pair-identities for N source identities). For each group
    ``k`` of at least ``min_group_size`` pairs with the same key,
    ``c_k = mean_k f``; the loss is
    ``mean_k (1/n_k) sum_{p in k} ||f_p - c_k||^2``.

    Detaching the centers does not change the gradient
    (``sum_p (f_p - c_k) = 0``); ``detach_center`` exists to check that.

    Args:
        center (str): How centers are made; only ``'batch_mean'`` (learned
            or momentum centers per pair-identity are infeasible).
        min_group_size (int): Groups with fewer pairs are skipped.
            Defaults to 2 (a single pair is its own center).
        detach_center (bool): Stop the gradient through the centers.
            Defaults to False.
        loss_weight (float): Multiplier of the loss (the paper's
            lambda). Defaults to 1.
    """

    #: Mined per identity: a batch needs K >= 2 images of an identity
    #: (``TrainSetupCheckHook`` checks the sampler).
    needs_positives = True

    def __init__(self,
                 center: str = 'batch_mean',
                 min_group_size: int = 2,
                 detach_center: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if center != 'batch_mean':
            raise ValueError(f"PICLoss center must be 'batch_mean', got "
                             f'{center!r}: there are ~N(N+1)/2 '
                             'pair-identities, too many for learned centers')
        if min_group_size < 1:
            raise ValueError(f'PICLoss min_group_size must be >= 1, got '
                             f'{min_group_size}')
        self.min_group_size = min_group_size
        self.detach_center = detach_center
        self.loss_weight = check_weight('PICLoss', 'loss_weight', loss_weight)

    def forward(self,
                feats: torch.Tensor,
                keys: torch.Tensor,
                groups: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Compute the loss.

        Args:
            feats (Tensor): Pair features, shape (N, C).
            keys (Tensor): Pair-identity keys, shape (N,) or (N, K); rows
                with equal keys form a group.
            groups (Tensor, optional): Precomputed :func:`group_ids` of
                ``keys``.

        Returns:
            Tensor: Scalar loss (0 when no group is large enough).
        """
        if feats.dim() != 2 or feats.size(0) != keys.size(0):
            raise ValueError(f'feats must be (N, C) with one key per row, '
                             f'got {tuple(feats.shape)} and '
                             f'{tuple(keys.shape)}')
        feats = feats.float()
        if groups is None:
            groups = group_ids(keys)
        num_groups = int(groups.max()) + 1 if groups.numel() else 0
        counts = torch.bincount(groups, minlength=num_groups)
        valid = counts >= self.min_group_size
        if not valid.any():
            return feats.sum() * 0.0
        sums = feats.new_zeros(num_groups, feats.size(1))
        sums = sums.index_add(0, groups, feats)
        centers = sums / counts.clamp(min=1).unsqueeze(1).to(feats.dtype)
        if self.detach_center:
            centers = centers.detach()
        # index_select, not centers[groups]: the backward of advanced
        # indexing adds repeated rows in a varying order on the CPU
        # (see gmn_head.gather_rows).
        sq_dist = (feats - centers.index_select(0, groups)).pow(2).sum(1)
        per_group = feats.new_zeros(num_groups).index_add(0, groups, sq_dist)
        per_group = per_group / counts.clamp(min=1).to(feats.dtype)
        return self.loss_weight * per_group[valid].mean()
