"""Deprecated module path (one release): the GMN pair scoring now lives in
two modules, one idea each.

- :mod:`.mnet_logits`: the exact M-Net logit kernels (direct and
  decomposed forms, the BatchNorm fold, chunk sizing).
- :mod:`.mnet_distance`: the GMN distance policy (``'mnet'``, ``'euclid'``,
  ``'fused'``, top-k rerank, the caching scorer that checks the
  decomposition) and its :class:`PairDistanceOptions`.

Import from those modules (or from :mod:`mmreid.evaluation.functional`).
"""
from .mnet_distance import (DEFAULT_CHECK_QUERIES, DEFAULT_MAX_LOGIT_ERROR,
                            PAIR_DISTANCE_MODES, MNetPairScorer,
                            PairDistanceOptions, make_mnet_scorer,
                            mnet_distances)
from .mnet_logits import (PAIR_SCORING_METHODS, decomposed_chunk_shape,
                          fold_mnet_batchnorm, max_abs_logit_error,
                          mnet_pair_logits)

__all__ = [
    'mnet_pair_logits', 'mnet_distances', 'max_abs_logit_error',
    'MNetPairScorer', 'make_mnet_scorer', 'fold_mnet_batchnorm',
    'decomposed_chunk_shape', 'PAIR_SCORING_METHODS', 'PAIR_DISTANCE_MODES',
    'DEFAULT_MAX_LOGIT_ERROR', 'DEFAULT_CHECK_QUERIES', 'PairDistanceOptions'
]
