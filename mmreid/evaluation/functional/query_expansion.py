"""Average / alpha query expansion (AQE, alpha-QE) of query features.

Each query is replaced by a weighted mean of itself and its ``k`` nearest
gallery features (Chum et al., ICCV 2007; alpha-QE: Radenovic et al.,
TPAMI 2019), all L2-normalised::

    q' = normalize(q + sum_{i=1..k} max(cos(q, g_i), 0) ** alpha * g_i)

The query's own weight is ``cos(q, q) ** alpha = 1``; ``alpha = 0`` gives
the plain average (AQE). Neighbours are the ``k`` most cosine-similar
gallery items of the whole gallery: the junk rule is not applied, since
expansion is unsupervised and must not look at labels.
"""
import math
import numbers

import torch
import torch.nn.functional as F

from .distance import (ArrayLike, check_normalizable, exact_fp32_matmul,
                       pad_gemm_rows, to_tensor)
from .rank import DEFAULT_MEMORY_BUDGET_MB, DeviceLike


def check_query_expansion_options(k: int = 5,
                                  alpha: float = 0.0,
                                  owner: str = 'query_expansion') -> None:
    """Refuse query-expansion options outside their definition: ``k`` an
    integer >= 0 (its upper bound, the gallery size, is checked when the
    gallery is known) and ``alpha`` a finite number >= 0 (a NaN gave NaN
    queries, refused only after extraction as a NaN distance).

    Args:
        k, alpha: As in :func:`query_expansion`.
        owner: Who was given them, for the error.

    Raises:
        ValueError: Names the option and its value.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 0:
        raise ValueError(f'{owner}: k (gallery neighbours per query) must be '
                         f'an integer >= 0, got {k!r}')
    if isinstance(alpha, bool) or not isinstance(
            alpha, numbers.Real) or not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f'{owner}: alpha (the exponent of the similarity '
                         f'weights) must be a finite number >= 0, got '
                         f'{alpha!r}')


def query_expansion(query_feats: ArrayLike,
                    gallery_feats: ArrayLike,
                    k: int = 5,
                    alpha: float = 0.0,
                    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
                    device: DeviceLike = None) -> torch.Tensor:
    """Expand queries with their nearest gallery features.

    Args:
        query_feats: Query features, shape (Q, D).
        gallery_feats: Gallery features, shape (G, D).
        k: Gallery neighbours per query (0 only normalises the queries).
        alpha: Exponent of the similarity weights; 0 = plain average.
        memory_budget_mb: Budget of one chunk of queries: their
            similarities to the gallery and their ``k`` gathered gallery
            neighbours with a weighted copy (``2 k D`` values a query).
        device: Where to compute; defaults to the query features' device.

    Returns:
        torch.Tensor: L2-normalised expanded queries, shape (Q, D), in
        float32 (float64 for float64 features).

    Raises:
        ValueError: ``k`` or ``alpha`` out of range, or a query and its
            weighted neighbours cancel (sum within rounding of zero), which
            leaves its direction undefined.
    """
    query, gallery = to_tensor(query_feats), to_tensor(gallery_feats)
    if isinstance(k, numbers.Integral) and not 0 <= k <= len(gallery):
        raise ValueError(f'k must lie in [0, {len(gallery)}], got {k}')
    check_query_expansion_options(k, alpha)
    device = torch.device(device) if device is not None else query.device
    dtype = torch.float64 if query.dtype == torch.float64 else torch.float32
    check_normalizable(query, 'query')
    check_normalizable(gallery, 'gallery')
    query = F.normalize(query.to(device=device, dtype=dtype), dim=1)
    gallery = F.normalize(gallery.to(device=device, dtype=dtype), dim=1)
    if k == 0:
        return query
    # A query's similarities (8 bytes a gallery item) and its (k, D)
    # neighbours, gathered and weighted.
    row_bytes = (
        max(len(gallery), 1) * 8 +
        2 * k * gallery.shape[1] * gallery.element_size())
    chunk = max(1, int(memory_budget_mb * 2**20 // row_bytes))
    expanded = torch.empty_like(query)
    for start in range(0, len(query), chunk):
        query_chunk = query[start:start + chunk]
        with exact_fp32_matmul(device):
            # Padded: a few-row GEMM rounds otherwise, and a query's
            # neighbours would depend on the chunk it falls in.
            similarity = (pad_gemm_rows(query_chunk)
                          @ gallery.t())[:len(query_chunk)]
        top_sim, top_idx = similarity.topk(k, dim=1)
        # A negative similarity to the power alpha is undefined; such a
        # neighbour is dissimilar anyway, so it gets no weight (alpha > 0).
        weight = top_sim.clamp(min=0).pow(alpha)
        expanded[start:start +
                 chunk] = query_chunk + (weight[..., None] *
                                         gallery[top_idx]).sum(dim=1)
        _check_no_cancellation(expanded[start:start + chunk], weight, start, k,
                               alpha)
    return F.normalize(expanded, dim=1)


def _check_no_cancellation(expanded: torch.Tensor, weight: torch.Tensor,
                           start: int, k: int, alpha: float) -> None:
    """Refuse expanded queries whose sum cancelled to rounding noise.

    ``q + sum w_i g_i`` of unit vectors can cancel (with ``alpha = 0``
    every neighbour weighs 1, dissimilar ones too); its direction is then
    undefined, and normalising the noise would give an arbitrary query,
    or a zero one that ties every distance.

    Args:
        expanded: Unnormalised expanded queries, shape (Qc, D).
        weight: Their neighbours' weights, shape (Qc, k).
        start: Index of the first query of the chunk.
        k, alpha: The expansion's arguments, for the error.

    Raises:
        ValueError: A norm is within the rounding error of the sum.
    """
    eps = torch.finfo(expanded.dtype).eps
    norm = expanded.norm(dim=1)
    bound = (1 + weight.sum(dim=1)) * 4 * eps
    bad = torch.nonzero(norm <= bound).flatten()
    if len(bad):
        index = start + int(bad[0])
        raise ValueError(
            f'query_expansion(k={k}, alpha={alpha}): query {index} cancels '
            f'against its {k} neighbours (|q + sum w g| = '
            f'{float(norm[bad[0]]):.1e}, {len(bad)} such queries in this '
            'chunk), so its expanded direction is undefined; use a '
            'smaller k or alpha > 0 (dissimilar neighbours then weigh 0)')
