"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) without dense N x N.

With ``N = Q + G`` samples (queries and gallery together) and original
distances ``d`` (squared Euclidean by default), each row divided by its
maximum over all ``N`` columns:

1. ``N(i, k)``: the ``k`` nearest samples of ``i`` (itself included).
2. ``R(i, k1) = {j in N(i, k1 + 1) : i in N(j, k1 + 1)}``.
3. Expansion ``R*(i)``: ``R(i, k1)`` plus every ``R(c, h)``,
   ``h = round(k1 / 2)``, of a candidate ``c in R(i, k1)`` that shares
   more than 2/3 of its members with ``R(i, k1)``.
4. ``V[i, j] = exp(-d(i, j)) / sum_{j' in R*(i)} exp(-d(i, j'))`` on
   ``R*(i)``, 0 elsewhere; local query expansion replaces ``V[i]`` by the
   mean of ``V[j]`` over ``j in N(i, k2)``.
5. Jaccard distance ``1 - m / (2 - m)``, ``m = sum_k min(V[i, k],
   V[j, k])``; the result is ``(1 - lambda) * jaccard + lambda * d``.

Only the ``k1 + 1`` nearest neighbours of each sample are kept, ``V`` is
sparse (at most ``(k1 + 1)(h + 2)`` entries a row before expansion, ``k2``
times that after), and ``m`` is accumulated through an inverted index, so
nothing of size N x N is ever allocated. Memory, beyond the features and
the (Q, G) float32 output:

- row blocks of distances, ``memory_budget_mb`` at a time;
- neighbour lists, ``N (k1 + 1)`` int64 (16 MB for MSMT17, N = 93,820);
- ``V`` after query expansion: about ``N * k2 * (k1 + 1) * (h + 2)``
  entries at 16 bytes in the worst case, typically a few hundred per row
  (a few GB at most for MSMT17).

Size limit: the output alone is ``4 Q G`` bytes (3.8 GB for MSMT17), so
MSMT17 is about the largest practical size on a machine with 16 GB; the
running time is dominated by the N x N distance passes (two of them).
"""
import numbers
import warnings
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F

from .distance import (ArrayLike, check_normalizable, exact_fp32_matmul,
                       pad_gemm_rows, to_tensor)
from .rank import DEFAULT_MEMORY_BUDGET_MB, DeviceLike

# (start, stop) -> original distances of rows start:stop to all N samples.
RowSource = Callable[[int, int], torch.Tensor]


def _rows_per_block(num_cols: int, memory_budget_mb: float) -> int:
    # A block row holds the distances plus topk and gather temporaries.
    return max(1, int(memory_budget_mb * 2**20 // (max(num_cols, 1) * 16)))


def _reciprocal(neighbors: torch.Tensor, block: int) -> torch.Tensor:
    """Which neighbours ``j`` of ``i`` have ``i`` among their neighbours.

    Args:
        neighbors: Nearest-neighbour lists, shape (N, K).
        block: Rows per step.

    Returns:
        torch.Tensor: bool, shape (N, K).
    """
    num, _ = neighbors.shape
    out = torch.empty(
        neighbors.shape, dtype=torch.bool, device=neighbors.device)
    for start in range(0, num, block):
        rows = torch.arange(
            start, min(start + block, num), device=neighbors.device)
        back = neighbors[neighbors[rows]]  # (B, K, K)
        out[rows] = (back == rows[:, None, None]).any(-1)
    return out


def _expansion(neighbors: torch.Tensor, recip: torch.Tensor,
               half_neighbors: torch.Tensor, half_recip: torch.Tensor,
               rows: torch.Tensor, num: int) -> torch.Tensor:
    """Sorted members of ``R*(i)`` for some rows, padded with ``num``.

    Returns:
        torch.Tensor: int64, shape (B, K + K * (h + 1)); each row sorted,
        duplicates and padding replaced by ``num``.
    """
    members = torch.where(recip[rows], neighbors[rows], num)  # (B, K)
    cand = neighbors[rows]  # (B, K)
    cand_members = torch.where(half_recip[cand], half_neighbors[cand],
                               -1)  # (B, K, h + 1); -1 matches nothing
    shared = (cand_members[..., None] == members[:, None, None, :]).any(-1)
    size = half_recip[cand].sum(-1)
    accept = recip[rows] & (shared.sum(-1) * 3 > 2 * size)
    extra = torch.where(accept[..., None] & (cand_members >= 0), cand_members,
                        num).flatten(1)
    merged, _ = torch.cat([members, extra], dim=1).sort(dim=1)
    repeated = torch.zeros_like(merged, dtype=torch.bool)
    repeated[:, 1:] = merged[:, 1:] == merged[:, :-1]
    return merged.masked_fill(repeated, num)


def check_rerank_options(k1: int = 20,
                         k2: int = 6,
                         lambda_value: float = 0.3,
                         owner: str = 'k-reciprocal re-ranking') -> None:
    """Refuse re-ranking options outside their definition.

    Zhong et al. (CVPR 2017): ``k1`` and ``k2`` are neighbourhood sizes,
    ``1 <= k2 <= k1 + 1``, and the final distance ``(1 - lambda) *
    jaccard + lambda * d`` weighs the two with ``lambda in [0, 1]``.

    Args:
        k1, k2, lambda_value: As in :func:`k_reciprocal_rerank`.
        owner: Who was given them, for the error.

    Raises:
        ValueError: ``k1`` or ``k2`` is not an integer or out of range,
            or ``lambda_value`` is not a number in [0, 1].
    """
    for name, value in (('k1', k1), ('k2', k2)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f'{owner}: {name} must be an integer, got '
                             f'{value!r} ({type(value).__name__})')
    if not 1 <= k2 <= k1 + 1 or k1 < 1:
        raise ValueError(f'{owner}: need k1 >= 1 and 1 <= k2 <= k1 + 1, got '
                         f'k1={k1}, k2={k2}')
    if isinstance(lambda_value, bool) or not isinstance(
            lambda_value, numbers.Real) or not 0 <= lambda_value <= 1:
        raise ValueError(f'{owner}: lambda_value (the weight of the '
                         'original distance) must be a number in [0, 1], '
                         f'got {lambda_value!r}')


def _check_not_empty(num_query: int, num_gallery: int) -> None:
    """Refuse an empty query or gallery: nothing to re-rank."""
    if num_query < 1 or num_gallery < 1:
        raise ValueError('k-reciprocal re-ranking needs at least one query '
                         f'and one gallery sample, got {num_query} queries '
                         f'and {num_gallery} gallery samples')


def k_reciprocal_from_rows(rows: RowSource,
                           num_query: int,
                           num_total: int,
                           k1: int = 20,
                           k2: int = 6,
                           lambda_value: float = 0.3,
                           memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
                           device: DeviceLike = None) -> torch.Tensor:
    """Re-ranked query-gallery distances from a row source.

    Args:
        rows: ``(start, stop) -> (stop - start, N)`` original distances of
            samples ``start:stop`` (queries first, then gallery) to all.
        num_query: Q; the gallery is samples ``Q:N``.
        num_total: N = Q + G.
        k1: Size of the k-reciprocal neighbourhood.
        k2: Neighbours averaged by local query expansion (1: none).
        lambda_value: Weight of the original distance, in [0, 1].
        memory_budget_mb: Budget of one block of rows or contributions.
        device: Where to compute.

    Returns:
        torch.Tensor: Distances, shape (Q, G), in the rows' dtype.
    """
    check_rerank_options(k1, k2, lambda_value)
    _check_not_empty(num_query, num_total - num_query)
    if k1 + 1 > num_total:
        raise ValueError(f'k1 + 1 = {k1 + 1} exceeds the {num_total} samples')
    num_gallery = num_total - num_query
    block = _rows_per_block(num_total, memory_budget_mb)

    # Pass 1: neighbour lists and row maxima.
    neighbors, row_max = [], []
    for start in range(0, num_total, block):
        dist = rows(start, min(start + block, num_total))
        dtype = dist.dtype
        row_max.append(dist.max(dim=1).values)
        neighbors.append(
            dist.topk(k1 + 1, dim=1, largest=False, sorted=True).indices)
    neighbors, row_max = torch.cat(neighbors), torch.cat(row_max)
    flat = (row_max <= 0).nonzero()
    if len(flat):
        # Every distance of the row is 0: d / max is 0 / 0.
        first = int(flat[0])
        role = 'query' if first < num_query else 'gallery sample'
        index = first if first < num_query else first - num_query
        raise ValueError(
            f'k-reciprocal re-ranking: every distance of {role} {index} to '
            f'the {num_total} samples is 0 ({len(flat)} such samples): all '
            'the features are identical (a collapsed model?), and the '
            'definition divides each row by its largest distance')
    device = neighbors.device
    half = int(round(k1 / 2))
    half_neighbors = neighbors[:, :half + 1].contiguous()
    # The reciprocity check holds (rows, k1 + 1, k1 + 1) int64 at a time.
    step = max(1, int(memory_budget_mb * 2**20 // ((k1 + 1)**2 * 16)))
    recip = _reciprocal(neighbors, step)
    half_recip = _reciprocal(half_neighbors, step)

    # Pass 2: V as COO, one block of rows at a time.
    v_rows, v_cols, v_vals = [], [], []
    for start in range(0, num_total, block):
        stop = min(start + block, num_total)
        index = torch.arange(start, stop, device=device)
        members = _expansion(neighbors, recip, half_neighbors, half_recip,
                             index, num_total)
        valid = members < num_total
        dist = rows(start, stop) / row_max[start:stop, None]
        weight = torch.exp(-dist.gather(1, members.clamp(max=num_total - 1)))
        weight = weight * valid
        weight = weight / weight.sum(dim=1, keepdim=True)
        row_idx = index[:, None].expand_as(members)
        v_rows.append(row_idx[valid])
        v_cols.append(members[valid])
        v_vals.append(weight[valid])
    size = (num_total, num_total)
    v_matrix = torch.sparse_coo_tensor(
        torch.stack([torch.cat(v_rows), torch.cat(v_cols)]),
        torch.cat(v_vals),
        size,
        check_invariants=False).coalesce()
    del v_rows, v_cols, v_vals
    if k2 > 1:
        # V_qe[i] = mean of V[j], j in N(i, k2): a sparse product.
        mean_rows = torch.arange(
            num_total, device=device).repeat_interleave(k2)
        averaging = torch.sparse_coo_tensor(
            torch.stack([mean_rows, neighbors[:, :k2].reshape(-1)]),
            torch.full((num_total * k2, ), 1 / k2, dtype=dtype, device=device),
            size,
            check_invariants=False).coalesce()
        with warnings.catch_warnings():
            # torch calls its sparse CSR support beta; the product is
            # checked against a dense reference in the tests.
            warnings.simplefilter('ignore', UserWarning)
            v_matrix = torch.sparse.mm(averaging, v_matrix).coalesce()

    # Inverted index over the gallery rows: column k -> (gallery j, V[j,k]).
    v_idx, v_val = v_matrix.indices(), v_matrix.values()
    is_gallery = v_idx[0] >= num_query
    g_row, g_col = v_idx[0][is_gallery] - num_query, v_idx[1][is_gallery]
    g_val = v_val[is_gallery]
    order = torch.argsort(g_col, stable=True)
    g_row, g_col, g_val = g_row[order], g_col[order], g_val[order]
    col_count = torch.bincount(g_col, minlength=num_total)
    col_start = torch.cumsum(col_count, 0) - col_count
    # Query rows of V_qe (indices are sorted by row after coalesce).
    is_query = ~is_gallery
    q_row, q_col, q_val = v_idx[0][is_query], v_idx[1][is_query], v_val[
        is_query]
    work = col_count[q_col]
    row_work = torch.zeros(num_query, dtype=torch.long, device=device)
    row_work.index_add_(0, q_row, work)

    # Pass 3: Jaccard and original distances for blocks of queries,
    # sized so that one block's contributions fit the budget.
    out = torch.empty(num_query, num_gallery, dtype=dtype, device=device)
    max_work = max(1, int(memory_budget_mb * 2**20 // 40))
    row_ptr = torch.searchsorted(q_row,
                                 torch.arange(num_query + 1, device=device))
    start = 0
    cum_work = torch.cumsum(row_work, 0).cpu()
    while start < num_query:
        done = int(cum_work[start - 1]) if start else 0
        stop = int(torch.searchsorted(cum_work, done + max_work, right=True))
        stop = min(max(stop, start + 1), num_query, start + block)
        lo, hi = int(row_ptr[start]), int(row_ptr[stop])
        entry_work = work[lo:hi]
        entry = torch.arange(
            hi - lo, device=device).repeat_interleave(entry_work)
        offset = torch.arange(
            len(entry),
            device=device) - (torch.cumsum(entry_work, 0) - entry_work)[entry]
        pos = col_start[q_col[lo:hi]][entry] + offset
        overlap = torch.zeros(
            (stop - start) * num_gallery, dtype=dtype, device=device)
        overlap.index_add_(0, (q_row[lo:hi][entry] - start) * num_gallery +
                           g_row[pos],
                           torch.minimum(q_val[lo:hi][entry], g_val[pos]))
        overlap = overlap.view(stop - start, num_gallery)
        jaccard = 1 - overlap / (2 - overlap)
        original = rows(start, stop)[:, num_query:] / row_max[start:stop, None]
        out[start:stop] = (
            jaccard * (1 - lambda_value) + original * lambda_value)
        start = stop
    return out


def _feature_rows(feats: torch.Tensor) -> RowSource:
    """Squared Euclidean distances of a block of rows to all rows."""
    sq_norm = feats.pow(2).sum(dim=1)

    def rows(start: int, stop: int) -> torch.Tensor:
        with exact_fp32_matmul(feats.device):
            # Padded: a few-row GEMM rounds otherwise, and a row's
            # distances (its k-reciprocal neighbours among near-ties)
            # would depend on the block it falls in.
            prod = (pad_gemm_rows(feats[start:stop])
                    @ feats.t())[:stop - start]
        dist = (sq_norm[start:stop, None] + sq_norm[None, :]).add_(
            prod, alpha=-2).clamp_(min=0)
        # A sample is at distance 0 from itself; rounding may say 1e-7.
        index = torch.arange(stop - start, device=feats.device)
        dist[index, index + start] = 0
        return dist

    return rows


def k_reciprocal_rerank(query_feats: ArrayLike,
                        gallery_feats: ArrayLike,
                        k1: int = 20,
                        k2: int = 6,
                        lambda_value: float = 0.3,
                        normalize: bool = False,
                        memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
                        device: DeviceLike = None) -> torch.Tensor:
    """k-reciprocal re-ranked query-gallery distances from features.

    The original distance is the squared Euclidean distance of the
    (optionally L2-normalised) features, computed in float32 (float64 if
    the features are float64).

    Args:
        query_feats: Query features, shape (Q, D).
        gallery_feats: Gallery features, shape (G, D).
        k1: Size of the k-reciprocal neighbourhood (paper: 20), an int.
        k2: Neighbours of local query expansion (paper: 6), an int in
            ``[1, k1 + 1]``.
        lambda_value: Weight of the original distance (paper: 0.3), in
            [0, 1].
        normalize: L2-normalise the features first (use it for cosine
            models).
        memory_budget_mb: Budget of one block of working memory.
        device: Where to compute; defaults to the query features' device.

    Returns:
        torch.Tensor: Re-ranked distances, shape (Q, G).
    """
    query, gallery = to_tensor(query_feats), to_tensor(gallery_feats)
    # A NaN feature (a diverged model) makes every re-ranked distance NaN:
    # the Jaccard term mixes each row with its neighbours'.
    for feats, name in ((query, 'query_feats'), (gallery, 'gallery_feats')):
        if feats.dim() == 2:
            _check_finite(
                feats, name,
                max(1, _rows_per_block(feats.shape[1], memory_budget_mb)),
                'k_reciprocal_rerank', 'features')
    device = torch.device(device) if device is not None else query.device
    dtype = torch.float64 if query.dtype == torch.float64 else torch.float32
    feats = torch.cat([query, gallery]).to(device=device, dtype=dtype)
    if normalize:
        check_normalizable(query, 'query')
        check_normalizable(gallery, 'gallery')
        feats = F.normalize(feats, dim=1)
    return k_reciprocal_from_rows(
        _feature_rows(feats), len(query), len(feats), k1, k2, lambda_value,
        memory_budget_mb, device)


# Symmetry (and a smallest diagonal) is checked up to this fraction of the
# larger of the two rows' largest |distance| (each row is divided by its
# maximum before use), for the distance itself or for its square. A float32
# distance from the expanded form ``|a|^2 + |b|^2 - 2 a.b`` is symmetric up
# to the rounding of the sum, a few eps * sqrt(D) of the squared norms: 1e-6
# of the row's largest distance for 2048-d ReLU features, 4e-5 when the
# features share a large common part (distances 50x smaller than the
# norms); 1e-3 leaves a margin of 25x. Its square root (the Euclidean
# distance) keeps that rounding in its square, but near 0 the root makes it
# the root of the rounding in the distance itself (7e-4 of the row's
# largest distance, 7e-3 with a large common part), hence the square. An
# asymmetric score (a learned pair scorer, a one-sided divergence, a
# transposed block) differs by far more.
SYMMETRY_RTOL = 1e-3


def _abs_max(block: torch.Tensor, dim: int) -> torch.Tensor:
    """Largest ``|entry|`` along ``dim``, without an ``abs`` temporary."""
    if block.numel() == 0:
        shape = list(block.shape)
        del shape[dim]
        return block.new_zeros(shape)
    return torch.maximum(block.amax(dim), block.amin(dim).neg())


def _rounding_excess(first: torch.Tensor, second: torch.Tensor,
                     scale: torch.Tensor) -> torch.Tensor:
    """How far apart two distances are, in :data:`SYMMETRY_RTOL` units of
    their rows' scale: ``min(|a - b| / s, |a^2 - b^2| / s^2)``, so that the
    rounding of a distance or of its square passes (below 1).

    Args:
        first, second: Distances, broadcastable.
        scale: The larger of the two rows' largest |distance|.

    Returns:
        torch.Tensor: The excess, 0 for equal distances.
    """
    scale = scale.clamp(min=torch.finfo(scale.dtype).tiny)
    diff = (first - second).abs_().div_(scale)
    ratio = (first + second).abs_().div_(scale).clamp_(max=1)
    return diff.mul_(ratio).div_(SYMMETRY_RTOL)


def _check_finite(block: torch.Tensor,
                  name: str,
                  step: int,
                  caller: str = 'k_reciprocal_rerank_distances',
                  what: str = 'distances') -> None:
    """Refuse a NaN or infinite entry of a 2-D ``block`` (distances, or
    features), naming the first one; ``step`` rows at a time."""
    for start in range(0, len(block), step):
        bad = ~torch.isfinite(block[start:start + step])
        if bad.any():
            row, col = (int(x) for x in bad.nonzero()[0])
            raise ValueError(
                f'{caller}: {name}, shape '
                f'{tuple(block.shape)}, has a non-finite entry: '
                f'{name}[{start + row}, {col}] = '
                f'{float(block[start + row, col])}; expected finite '
                f'{what}')


def _check_symmetric(block: torch.Tensor, name: str, row_scale: torch.Tensor,
                     dtype: torch.dtype, step: int) -> None:
    """Refuse a square block with ``d[i, j] != d[j, i]`` beyond rounding
    (see :data:`SYMMETRY_RTOL`), naming the most asymmetric pair.

    Compared ``step`` rows at a time: a few (step, n) temporaries.
    """
    worst, where = 0.0, None
    for start in range(0, len(block), step):
        stop = min(start + step, len(block))
        rows = block[start:stop].to(dtype)
        cols = block[:, start:stop].t().to(dtype)
        excess = _rounding_excess(
            rows, cols,
            torch.maximum(row_scale[start:stop, None], row_scale[None]))
        value, index = excess.flatten().max(0)
        if float(value) > worst:
            worst = float(value)
            where = (start + int(index) // len(block), int(index) % len(block))
    if worst <= 1:
        return
    i, j = where
    forward, backward = float(block[i, j]), float(block[j, i])
    scale = float(max(row_scale[i], row_scale[j]))
    raise ValueError(
        f'k_reciprocal_rerank_distances: {name}, shape {tuple(block.shape)}, '
        f'is not symmetric: {name}[{i}, {j}] = {forward:.6g} but '
        f'{name}[{j}, {i}] = {backward:.6g}, the largest asymmetry '
        f'(|difference| {abs(forward - backward):.3g}, the largest |distance| '
        f'of rows {i} and {j} being {scale:.6g}); expected a symmetric '
        'distance, d(i, j) = d(j, i) up to float rounding (relative '
        f'{SYMMETRY_RTOL:g}). Re-ranking reads each block\'s rows as its '
        'columns too (the gallery rows from q_g_dist transposed), so an '
        'asymmetric score (a learned pair scorer, a one-sided divergence) '
        'has no k-reciprocal re-ranking: symmetrise it first (e.g. '
        '(d + d.T) / 2) if that is what is meant, and pass the blocks as '
        '(q_g_dist, q_q_dist, g_g_dist).')


def _check_own_nearest(diagonal_block: torch.Tensor, name: str,
                       other: torch.Tensor, other_name: str,
                       other_transposed: bool, row_scale: torch.Tensor,
                       dtype: torch.dtype, sample: str) -> None:
    """Refuse a sample whose distance to itself is not its smallest
    (beyond rounding): ``N(i, k)`` of the definition includes ``i``.

    Args:
        diagonal_block: The square block holding ``d(i, i)``, (n, n).
        name: Its name, for the error.
        other: The query-gallery block, the rest of the rows.
        other_name: Its name.
        other_transposed: The rows are ``other``'s columns (gallery).
        row_scale: Each row's largest |distance|, shape (n, ).
        dtype: The dtype of the computation.
        sample: ``'query'`` or ``'gallery sample'``, for the error.
    """
    own = diagonal_block.diagonal().to(dtype)
    in_block, block_col = diagonal_block.min(1)
    in_block = in_block.to(dtype)
    # Both blocks are non-empty (k_reciprocal_rerank_distances refuses an
    # empty query or gallery first).
    in_other, other_idx = other.min(0 if other_transposed else 1)
    in_other = in_other.to(dtype)
    smallest = torch.minimum(in_block, in_other)
    excess = _rounding_excess(own, torch.minimum(own, smallest), row_scale)
    value, row = excess.max(0) if len(excess) else (excess.new_zeros(()), 0)
    if float(value) <= 1:
        return
    row = int(row)
    if in_other[row] < in_block[row]:
        col = int(other_idx[row])
        where = (f'{other_name}[{col}, {row}]'
                 if other_transposed else f'{other_name}[{row}, {col}]')
        closest = float(in_other[row])
    else:
        where = f'{name}[{row}, {int(block_col[row])}]'
        closest = float(in_block[row])
    raise ValueError(
        f'k_reciprocal_rerank_distances: {name}[{row}, {row}] = '
        f'{float(own[row]):.6g} is not the smallest distance of {sample} '
        f'{row}: {where} = {closest:.6g} is smaller (beyond float rounding, '
        f'relative {SYMMETRY_RTOL:g} of the row\'s largest |distance| '
        f'{float(row_scale[row]):.6g}); expected a distance, which is '
        'smallest from a sample to itself (N(i, k) of the definition '
        'includes i; e.g. 0 on the diagonal). A similarity (larger = '
        'closer) must be made a distance first, e.g. 1 - cos.')


def check_distance_blocks(q_g: torch.Tensor, q_q: torch.Tensor,
                          g_g: torch.Tensor, dtype: torch.dtype,
                          memory_budget_mb: float) -> None:
    """Refuse distance blocks that are no distance of N samples.

    :func:`k_reciprocal_from_rows` reads the full (N, N) distance, built
    from the blocks with the gallery rows ``[q_g.T, g_g]``, as the
    definition's ``d``: it must be finite, not negative (each row is divided
    by its largest distance), symmetric (``q_q`` and ``g_g``; ``q_g``
    stands for both its own and the gallery-query block) and have each
    sample nearest to itself (``N(i, k)`` includes ``i``). These hold up to
    float rounding (see :data:`SYMMETRY_RTOL`). A diagonal that is
    the smallest of its row but not 0 is accepted: it enters the
    definition only as the weight ``exp(-d(i, i))`` of ``V[i, i]``, and
    the float32 Euclidean distance of a sample to itself is the square
    root of a rounding error (measured up to 7e-3 of the row's largest
    distance).

    Args:
        q_g, q_q, g_g: The blocks, shapes (Q, G), (Q, Q), (G, G).
        dtype: The dtype of the computation.
        memory_budget_mb: Budget of the temporaries of one step.

    Raises:
        ValueError: A block has a non-finite or negative entry, a square
            block is not symmetric, or a sample's distance to itself is not
            its smallest; names the block, the entries and what was
            expected.
    """
    names = ('q_g_dist', 'q_q_dist', 'g_g_dist')
    for block, name in zip((q_g, q_q, g_g), names):
        _check_finite(
            block, name,
            max(1, _rows_per_block(block.shape[1], memory_budget_mb)))
    query_scale = torch.maximum(_abs_max(q_q, 1), _abs_max(q_g, 1)).to(dtype)
    gallery_scale = torch.maximum(_abs_max(g_g, 1), _abs_max(q_g, 0)).to(dtype)
    # Five (step, n) temporaries of up to 8 bytes; 16 a row budgeted.
    step = max(1, _rows_per_block(len(q_q), memory_budget_mb) * 2 // 5)
    _check_symmetric(q_q, names[1], query_scale, dtype, step)
    step = max(1, _rows_per_block(len(g_g), memory_budget_mb) * 2 // 5)
    _check_symmetric(g_g, names[2], gallery_scale, dtype, step)
    _check_own_nearest(q_q, names[1], q_g, names[0], False, query_scale, dtype,
                       'query')
    _check_own_nearest(g_g, names[2], q_g, names[0], True, gallery_scale,
                       dtype, 'gallery sample')
    for block, name, scale in ((q_g, names[0], query_scale),
                               (q_q, names[1], query_scale),
                               (g_g, names[2], gallery_scale)):
        _check_nonnegative(block, name, scale, dtype)


def _check_nonnegative(block: torch.Tensor, name: str,
                       row_scale: torch.Tensor, dtype: torch.dtype) -> None:
    """Refuse a negative distance (beyond :data:`SYMMETRY_RTOL` of its
    row's largest |distance|).

    The definition weights a neighbour by ``exp(-d / max_row d)`` and
    scales the original term by the row's largest distance: with negative
    distances (a negated similarity, ``-cos``) that maximum can be negative
    and the division reverses the row's order.

    Args:
        block: A distance block, (n, m).
        name: Its name, for the error.
        row_scale: Each row's largest |distance|, shape (n, ).
        dtype: The dtype of the computation.
    """
    if block.numel() == 0:
        return
    smallest, col = block.min(1)
    excess = -smallest.to(dtype) / row_scale.clamp_min(
        torch.finfo(dtype).tiny)
    value, row = excess.max(0)
    if float(value) <= SYMMETRY_RTOL:
        return
    row = int(row)
    raise ValueError(
        f'k_reciprocal_rerank_distances: {name}[{row}, {int(col[row])}] = '
        f'{float(smallest[row]):.6g} is negative (beyond float rounding, '
        f'relative {SYMMETRY_RTOL:g} of the row\'s largest |distance| '
        f'{float(row_scale[row]):.6g}); expected a distance >= 0: the '
        'definition divides each row by its largest distance, which a '
        'negated similarity makes negative, reversing the order. For a '
        'similarity s in [-1, 1] pass 1 - s.')


def k_reciprocal_rerank_distances(
        q_g_dist: ArrayLike,
        q_q_dist: ArrayLike,
        g_g_dist: ArrayLike,
        k1: int = 20,
        k2: int = 6,
        lambda_value: float = 0.3,
        memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
        device: Optional[DeviceLike] = None) -> torch.Tensor:
    """k-reciprocal re-ranking from the three distance blocks.

    The blocks are used as the original distance as given (the paper's
    setting is the squared Euclidean distance); a dense (G, G) block is
    itself O(G^2), so prefer :func:`k_reciprocal_rerank` for large sets.
    They must be one distance of the ``Q + G`` samples: finite, ``q_q`` and
    ``g_g`` symmetric (the gallery rows are ``[q_g.T, g_g]``) and each
    sample nearest to itself, and not negative, up to float rounding (see
    :func:`check_distance_blocks`); a similarity, a negated similarity or an
    asymmetric pair score is refused.

    Args:
        q_g_dist: Query-gallery distances, shape (Q, G).
        q_q_dist: Query-query distances, shape (Q, Q).
        g_g_dist: Gallery-gallery distances, shape (G, G).
        k1, k2, lambda_value, memory_budget_mb: As in
            :func:`k_reciprocal_rerank`.
        device: Where to compute; defaults to ``q_g_dist``'s device.

    Returns:
        torch.Tensor: Re-ranked distances, shape (Q, G).

    Raises:
        ValueError: The shapes do not match, or the blocks are not a
            distance as above; names the block and the entries.
    """
    blocks: Tuple[torch.Tensor, ...] = tuple(
        to_tensor(x) for x in (q_g_dist, q_q_dist, g_g_dist))
    device = torch.device(device) if device is not None else blocks[0].device
    q_g, q_q, g_g = (x.to(device) for x in blocks)
    num_query, num_gallery = q_g.shape
    if q_q.shape != (num_query, num_query) or g_g.shape != (num_gallery,
                                                            num_gallery):
        raise ValueError(f'block shapes {tuple(q_g.shape)}, '
                         f'{tuple(q_q.shape)}, {tuple(g_g.shape)} do not '
                         'match')
    _check_not_empty(num_query, num_gallery)
    dtype = torch.float64 if q_g.dtype == torch.float64 else torch.float32
    check_distance_blocks(q_g, q_q, g_g, dtype, memory_budget_mb)

    def rows(start: int, stop: int) -> torch.Tensor:
        parts = []
        if start < num_query:
            end = min(stop, num_query)
            parts.append(torch.cat([q_q[start:end], q_g[start:end]], dim=1))
        if stop > num_query:
            begin = max(start, num_query) - num_query
            end = stop - num_query
            parts.append(
                torch.cat([q_g[:, begin:end].t(), g_g[begin:end]], dim=1))
        return torch.cat(parts).to(dtype)

    return k_reciprocal_from_rows(rows, num_query, num_query + num_gallery, k1,
                                  k2, lambda_value, memory_budget_mb, device)
