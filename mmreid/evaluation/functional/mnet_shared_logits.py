"""One M-Net's logits shared by its ``'mnet'`` and ``'fused'`` modes.

A GMN evaluation reports several modes of one M-Net (spec section 8):
:func:`~mmreid.evaluation.functional.evaluate_features_multi` calls each
mode's scorer on every query chunk, and the ``'mnet'`` and ``'fused'``
modes need the same logits. :func:`share_mnet_logits` lets them compute
those once per chunk, with the results of the scorers they replace, bit
for bit.
"""
from typing import Callable, Dict

import torch

from .mnet_distance import MNetPairScorer, PairDistanceOptions, fuse_distances


class _ChunkLogits:
    """The ``'mnet'`` distances ``-z`` of the last (query chunk, gallery)
    pair, computed once for every mode derived from them.

    The chunk and gallery are compared by identity and version counter (an
    in-place change recomputes); one chunk's logits are kept.
    """

    def __init__(self, scorer: MNetPairScorer) -> None:
        self.scorer = scorer
        self._inputs = None
        self._neg_logits = None

    def __call__(self, query_chunk: torch.Tensor,
                 gallery: torch.Tensor) -> torch.Tensor:
        inputs = self._inputs
        if (inputs is None or inputs[0] is not query_chunk
                or inputs[1] is not gallery
                or inputs[2:] != (query_chunk._version, gallery._version)):
            self._inputs = self._neg_logits = None  # free the last first
            neg_logits = self.scorer(query_chunk, gallery)
            self._inputs = (query_chunk, gallery, query_chunk._version,
                            gallery._version)
            self._neg_logits = neg_logits
        return self._neg_logits


class SharedLogitScorer:
    """An ``'mnet'`` or ``'fused'`` scorer whose M-Net logits are shared
    with the other modes of the same M-Net (see :func:`share_mnet_logits`).

    Called like :class:`MNetPairScorer`, with the same results; the
    decomposition check and its attributes (``last_check``,
    ``check_queries``, ...) are those of the shared ``'mnet'`` scorer.

    Args:
        logits: The shared logits of one query chunk.
        options: This mode's options (``distance`` ``'mnet'`` without
            ``topk``, or ``'fused'``).
    """

    #: Pair scores (no ``topk``): see
    #: :attr:`MNetPairScorer.gallery_dependent`.
    gallery_dependent = False

    def __init__(self, logits: _ChunkLogits,
                 options: PairDistanceOptions) -> None:
        if options.distance not in ('mnet', 'fused') or options.topk:
            raise ValueError(f'logits can be shared by the mnet (without '
                             f'topk) and fused modes, got {options}')
        self._logits = logits
        self.options = options

    def __getattr__(self, name: str):
        # Only reached for names this object does not have.
        if name.startswith('_'):
            raise AttributeError(name)
        return getattr(self._logits.scorer, name)

    def __call__(self, query_chunk: torch.Tensor,
                 gallery: torch.Tensor) -> torch.Tensor:
        """Distances (Qc, G) of a query chunk against the gallery."""
        neg_logits = self._logits(query_chunk, gallery)
        if self.options.distance == 'mnet':
            return neg_logits.clone()  # the shared copy stays intact
        return fuse_distances(query_chunk, gallery, neg_logits.neg(),
                              self.options.fuse_beta)


def share_mnet_logits(
        scorers: Dict[str, MNetPairScorer]) -> Dict[str, Callable]:
    """Let the modes of one M-Net compute its logits once per query chunk.

    When ``scorers`` has an ``'mnet'`` scorer without ``topk`` and a
    ``'fused'`` one, both are replaced by :class:`SharedLogitScorer` s that
    compute the logits of a (query chunk, gallery) pair once:
    :func:`~mmreid.evaluation.functional.evaluate_features_multi` calls
    the modes on each chunk in turn. Their results are those of the
    scorers they replace, bit for bit. Otherwise ``scorers`` is returned
    as it is.

    Args:
        scorers: Mode name -> :class:`MNetPairScorer`, all of one M-Net
            with the same method, memory budget, device and check.

    Returns:
        dict[str, Callable]: The scorers, in the same order.
    """
    mnet, fused = scorers.get('mnet'), scorers.get('fused')
    if mnet is None or fused is None or mnet.options.topk is not None:
        return dict(scorers)
    logits = _ChunkLogits(mnet)
    shared = dict(scorers)
    shared['mnet'] = SharedLogitScorer(logits, mnet.options)
    shared['fused'] = SharedLogitScorer(logits, fused.options)
    return shared


__all__ = ['SharedLogitScorer', 'share_mnet_logits']
