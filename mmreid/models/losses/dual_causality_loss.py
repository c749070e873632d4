import logging
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log

from mmreid.registry import MODELS
from .checks import check_weight
from .triplet_loss import hard_example_mining, pairwise_euclidean


@MODELS.register_module()
class DualCausalityLoss(nn.Module):
    """Dual causality loss of SNR (Jin et al., CVPR 2020), one stage.

    With ``sp`` = softplus and batch-hard distances mined **independently in
    each space** s in {0: GAP(IN(F)), +: GAP(F_pos), -: GAP(F_neg)}
    (``D^s_ap(i)`` the farthest positive, the anchor itself included,
    ``D^s_an(i)`` the nearest negative; Euclidean on un-normalised vectors,
    ``sqrt(clamp(|x|^2 + |y|^2 - 2 x.y, 1e-12))``)::

        L+ = mean_i[sp(D+_ap - D0_ap) + sp(D0_an - D+_an)]
        L- = mean_i[sp(D0_ap - D-_ap) + sp(D-_an - D0_an)]
        L  = L+ + L-

    Adding the identity-relevant residual should pull positives closer and
    push negatives farther than plain IN; adding the irrelevant one should
    do the opposite. Nothing is detached. Computed in fp32.

    **Degeneracy (reproduced on purpose, spec SNR §3.3).** GAP(IN(F)) equals
    the IN bias beta for every sample, so every ``D0`` is the clamp floor
    ``sqrt(1e-12) = 1e-6`` with zero gradient (up to float cancellation for
    large ``|beta|``). The loss optimised is therefore a decomposed
    soft-margin triplet on ``f+`` plus an "anti-triplet" on ``f-``; the IN
    scale gamma gets no gradient from it. This is the authors' computation;
    a variant making the reference term non-trivial would be a new method.

    Anchors without a negative in the batch are ignored (as
    :class:`TripletLoss`). Every anchor has a positive (itself), and either
    all anchors have a negative or none does (a batch of one identity);
    such a batch gives a loss of 0 that still reaches every input, and
    logs no term and no reference distance: nothing was measured, and a
    logged 0 would read as a satisfied loss and pull the logged averages
    (over the iterations that log a key) toward 0.

    The first time a reference distance exceeds :attr:`D0_WARN` (1e-4,
    spec SNR §3.6), a warning gives its value: the cancellation has grown
    large enough to give the reference term a gradient.

    **The authors' ablation flags.** ``use_pos``/``use_neg`` follow the
    paper's equations (L+ / L-). The authors' code splits differently:
    ``--only-P`` keeps the anchor-positive terms of both losses
    (``sp(D+_ap - D0_ap) + sp(D0_ap - D-_ap)``), ``--only-N`` the
    anchor-negative ones. ``terms=('pos_ap', 'neg_ap')`` and
    ``terms=('pos_an', 'neg_an')`` reproduce them.

    Args:
        use_pos (bool): Include L+ (``False``: the "only L-" ablation).
            Defaults to True.
        use_neg (bool): Include L- (``False``: the "only L+" ablation).
            Defaults to True.
        terms (Sequence[str], optional): The terms to sum, a non-empty
            subset of ``('pos_ap', 'pos_an', 'neg_ap', 'neg_an')`` (the
            four softplus terms above, in that order); replaces
            ``use_pos``/``use_neg``, which must then stay True. Defaults
            to None (the terms of ``use_pos``/``use_neg``).
        loss_weight (float): Multiplier of the loss. Defaults to 1.
        log_terms (bool): Return the four terms and the reference distances
            when asked (``return_terms``), so the model logs them. Off by
            default: per stage they are six numbers per log line, the
            ``d0_*`` a constant by design. Defaults to False.
    """

    #: Mined per identity: a batch needs K >= 2 images of an identity
    #: (``TrainSetupCheckHook`` checks the sampler).
    needs_positives = True
    #: Contrasts with other identities of the batch: a batch needs P >= 2
    #: identities (``TrainSetupCheckHook`` checks the sampler).
    needs_negatives = True

    TERMS = ('pos_ap', 'pos_an', 'neg_ap', 'neg_an')
    #: A reference distance above this is warned about once (spec §3.6).
    D0_WARN = 1e-4

    def __init__(self,
                 use_pos: bool = True,
                 use_neg: bool = True,
                 terms: Optional[Sequence[str]] = None,
                 loss_weight: float = 1.0,
                 log_terms: bool = False) -> None:
        super().__init__()
        if not (use_pos or use_neg):
            raise ValueError('at least one of use_pos and use_neg is needed')
        if terms is None:
            terms = (('pos_ap', 'pos_an') if use_pos else
                     ()) + (('neg_ap', 'neg_an') if use_neg else ())
        else:
            if isinstance(terms, str):
                terms = (terms, )
            terms = tuple(terms)
            if not (use_pos and use_neg):
                raise ValueError('DualCausalityLoss: give either terms or '
                                 'use_pos/use_neg, not both')
            unknown = [t for t in terms if t not in self.TERMS]
            if not terms or unknown or len(set(terms)) != len(terms):
                raise ValueError(f'DualCausalityLoss terms must be distinct '
                                 f'names from {self.TERMS}, got {terms!r}')
        #: The summed terms, in the order of ``TERMS``.
        self.terms = tuple(t for t in self.TERMS if t in terms)
        self.use_pos = any(t.startswith('pos_') for t in self.terms)
        self.use_neg = any(t.startswith('neg_') for t in self.terms)
        self.loss_weight = check_weight('DualCausalityLoss', 'loss_weight',
                                        loss_weight)
        self.log_terms = log_terms
        self._warned_d0 = False

    @staticmethod
    def _mine(feats: torch.Tensor,
              labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        dist = pairwise_euclidean(feats, feats)
        return hard_example_mining(dist, labels)

    def _check_reference(self, d0_ap: torch.Tensor,
                         d0_an: torch.Tensor) -> None:
        """Warn once when a reference distance exceeds :attr:`D0_WARN`."""
        largest = float(torch.maximum(d0_ap.detach().max(),
                                      d0_an.detach().max()))
        if largest <= self.D0_WARN:
            return
        self._warned_d0 = True
        print_log(
            f'DualCausalityLoss: a reference distance D0 = d(GAP(IN(F))) '
            f'reached {largest:.3g}, above {self.D0_WARN:g}. It is 1e-6 by '
            'construction (GAP(IN(F)) is the IN bias for every sample, spec '
            'SNR §3.3); float cancellation with a large IN bias makes it '
            'larger and gives the reference term a gradient. Set '
            'log_terms=True to log d0_ap/d0_an every iteration. (Warned '
            'once.)',
            logger='current',
            level=logging.WARNING)

    def forward(
        self,
        feat: torch.Tensor,
        feat_pos: torch.Tensor,
        feat_neg: torch.Tensor,
        labels: torch.Tensor,
        return_terms: bool = False
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, Dict[str, torch.Tensor]]]:
        """Compute the loss.

        Args:
            feat (Tensor): GAP(IN(F)), shape (N, C).
            feat_pos (Tensor): GAP(F_pos), shape (N, C).
            feat_neg (Tensor): GAP(F_neg), shape (N, C).
            labels (Tensor): Identities, shape (N,).
            return_terms (bool): Also return a dict of log values: with
                ``log_terms`` the detached means of the four terms
                (``pos_ap``, ``pos_an``, ``neg_ap``, ``neg_an``) and of the
                reference distances (``d0_ap``, ``d0_an``), else empty;
                also empty for a batch without negatives (nothing
                measured).

        Returns:
            Tensor | tuple[Tensor, dict]: Scalar loss, and the terms if
            asked.
        """
        d0_ap, d0_an = self._mine(feat.float(), labels)
        # The same anchors lack a negative in every space; drop them before
        # any arithmetic so that no inf - inf reaches the graph.
        valid = torch.isfinite(d0_an)
        if not valid.any():
            # One identity: no term is defined. The 0 keeps every input in
            # the graph; the log gets no term (not a 0 that reads as a
            # satisfied loss).
            loss = (feat.sum() + feat_pos.sum() + feat_neg.sum()) * 0.0
            terms = dict()
        else:
            d0_ap, d0_an = d0_ap[valid], d0_an[valid]
            if not self._warned_d0:
                self._check_reference(d0_ap, d0_an)
            terms = dict()
            if self.use_pos:
                dp_ap, dp_an = self._mine(feat_pos.float(), labels)
                terms['pos_ap'] = F.softplus(dp_ap[valid] - d0_ap).mean()
                terms['pos_an'] = F.softplus(d0_an - dp_an[valid]).mean()
            if self.use_neg:
                dn_ap, dn_an = self._mine(feat_neg.float(), labels)
                terms['neg_ap'] = F.softplus(d0_ap - dn_ap[valid]).mean()
                terms['neg_an'] = F.softplus(dn_an[valid] - d0_an).mean()
            terms = {k: terms[k] for k in self.terms}
            loss = sum(terms.values())
        loss = self.loss_weight * loss
        if not return_terms:
            return loss
        if not self.log_terms:
            return loss, {}
        logs = {k: v.detach() for k, v in terms.items()}
        if valid.any():
            logs['d0_ap'] = d0_ap.detach().mean()
            logs['d0_an'] = d0_an.detach().mean()
        return loss, logs
