"""Entry points: evaluate a distance matrix or stream one from features."""
from typing import Callable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from mmreid.utils.threads import compute_thread_count, torch_threads

from .distance import ArrayLike, GalleryDistance, to_tensor
from .junk_rules import JunkRule
from .rank import (DEFAULT_MEMORY_BUDGET_MB, DeviceLike, RankAccumulator,
                   ReIDEvalResult, chunk_rows_for_budget)

# scorer(query_chunk (Qc, D), gallery (G, D)) -> distances (Qc, G)
Scorer = Callable[[torch.Tensor, torch.Tensor], ArrayLike]


def evaluate_rank(distmat: ArrayLike,
                  q_pids: ArrayLike,
                  g_pids: ArrayLike,
                  q_camids: ArrayLike,
                  g_camids: ArrayLike,
                  max_rank: int = 50,
                  junk_rule: Union[str, JunkRule] = 'market',
                  tie_policy: str = 'stable',
                  ap_mode: str = 'cumsum',
                  cmc_mode: str = 'standard',
                  chunk_size: Optional[int] = None,
                  device: DeviceLike = None) -> ReIDEvalResult:
    """CMC, mAP and mINP of a query-gallery distance matrix.

    Per query, the gallery items removed by ``junk_rule`` are ignored; the
    rest is ordered by ascending distance under ``tie_policy`` (default
    ``'stable'``: ascending (distance, gallery index)). Queries with no
    kept positive are skipped and counted in ``num_valid_query``. The
    result is exact (identical to a full stable sort under the same
    policy) and independent of ``chunk_size`` and ``device``; see
    :mod:`.rank` for the algorithm. On the CPU with numba installed, a
    compiled kernel does the counting at a cost independent of the
    model's strength, on ``torch.get_num_threads()`` threads capped by the
    CPUs the process may use (:func:`mmreid.utils.threads.usable_cpu_count`);
    without numba the torch search gives the same numbers.

    Args:
        distmat: Distances, shape (Q, G), smaller = more similar. Numpy or
            torch, CPU or CUDA; only ``chunk_size`` rows at a time are
            moved to ``device``.
        q_pids: Query pids, shape (Q,).
        g_pids: Gallery pids, shape (G,).
        q_camids: Query camids, shape (Q,).
        g_camids: Gallery camids, shape (G,).
        max_rank: Length of the CMC curve.
        junk_rule: ``'market'``, ``'none'``, ``'sysu'`` or a callable
            ``(same_pid (Qc, G), q_camids (Qc,), g_camids (G,)) -> removed
            (Qc, G) or None``.
        tie_policy: ``'stable'``, ``'pessimistic'`` or ``'optimistic'``.
        ap_mode: ``'cumsum'`` or ``'threshold'`` (sklearn-style, tie
            policy independent).
        cmc_mode: ``'standard'`` or ``'dedup'`` (CMC over distinct pids).
        chunk_size: Queries per chunk; by default derived from
            ``DEFAULT_MEMORY_BUDGET_MB`` and G.
        device: Where to compute; defaults to the matrix's device.

    Returns:
        ReIDEvalResult: The metrics as fractions.
    """
    # A numpy matrix (possibly a read-only memory map) is converted chunk
    # by chunk, never copied whole.
    dist = distmat
    if isinstance(dist, (list, tuple)):
        dist = np.asarray(dist)
    if not isinstance(dist, np.ndarray):
        dist = to_tensor(dist)
    if dist.ndim != 2:
        raise ValueError(f'distmat must be 2-D, got shape '
                         f'{tuple(dist.shape)}')
    num_query, num_gallery = dist.shape
    if len(q_pids) != num_query or len(g_pids) != num_gallery:
        raise ValueError(f'distmat has shape {tuple(dist.shape)} but there '
                         f'are {len(q_pids)} query and {len(g_pids)} '
                         'gallery pids')
    accumulator = RankAccumulator(
        q_pids,
        g_pids,
        q_camids,
        g_camids,
        max_rank=max_rank,
        junk_rule=junk_rule,
        tie_policy=tie_policy,
        ap_mode=ap_mode,
        cmc_mode=cmc_mode,
        device=device if device is not None else getattr(
            dist, 'device', 'cpu'))
    if chunk_size is None:
        chunk_size = chunk_rows_for_budget(num_gallery,
                                           DEFAULT_MEMORY_BUDGET_MB)
    if chunk_size < 1:
        raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
    for start in range(0, num_query, chunk_size):
        accumulator.update(to_tensor(dist[start:start + chunk_size]))
    return accumulator.result()


def evaluate_features(query_feats: ArrayLike,
                      gallery_feats: ArrayLike,
                      q_pids: ArrayLike,
                      g_pids: ArrayLike,
                      q_camids: ArrayLike,
                      g_camids: ArrayLike,
                      metric: Union[str, Scorer] = 'euclidean',
                      normalize: bool = False,
                      memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
                      device: DeviceLike = None,
                      **rank_options) -> ReIDEvalResult:
    """Rank metrics from features, one query chunk of distances at a time.

    The Q x G matrix is never held: each chunk of queries is scored
    against the whole gallery and ranked right away, so peak memory is the
    features plus ``memory_budget_mb`` (plus what a custom scorer itself
    allocates). The result equals ``evaluate_rank(compute_distance(...))``
    whenever the scorer gives the same rows chunked as unchunked.

    Args:
        query_feats: Query features, shape (Q, D).
        gallery_feats: Gallery features, shape (G, D).
        q_pids: Query pids, shape (Q,).
        g_pids: Gallery pids, shape (G,).
        q_camids: Query camids, shape (Q,).
        g_camids: Gallery camids, shape (G,).
        metric: ``'euclidean'``, ``'sqeuclidean'``, ``'cosine'`` or a
            scorer ``(query_chunk (Qc, D), gallery (G, D)) -> distances
            (Qc, G)`` (smaller = more similar), e.g. a learned pair
            matcher; negate similarities before returning them.
        normalize: L2-normalise the features first (also before a
            scorer).
        memory_budget_mb: Budget for one chunk's distances and ranking;
            the chunk has :func:`chunk_rows_for_budget` rows.
        device: Where distances and ranks are computed; defaults to the
            query features' device.
        **rank_options: ``max_rank``, ``junk_rule``, ``tie_policy``,
            ``ap_mode``, ``cmc_mode`` of :func:`evaluate_rank`.

    Returns:
        ReIDEvalResult: The metrics as fractions.
    """
    query = to_tensor(query_feats)
    gallery = to_tensor(gallery_feats)
    device = torch.device(device) if device is not None else query.device
    if query.ndim != 2 or gallery.ndim != 2:
        raise ValueError('features must be 2-D (num_samples, dim), got '
                         f'{tuple(query.shape)} and {tuple(gallery.shape)}')
    num_query, num_gallery = len(query), len(gallery)
    if 'chunk_size' in rank_options:
        raise TypeError('evaluate_features derives the chunk size from '
                        'memory_budget_mb; chunk_size is not accepted')
    accumulator = RankAccumulator(
        q_pids, g_pids, q_camids, g_camids, device=device, **rank_options)
    if accumulator.num_query != num_query:
        raise ValueError(f'{num_query} query features but '
                         f'{accumulator.num_query} query pids')
    if accumulator.num_gallery != num_gallery:
        raise ValueError(f'{num_gallery} gallery features but '
                         f'{accumulator.num_gallery} gallery pids')

    gallery = gallery.to(device)
    if callable(metric):
        scorer = metric
        if normalize:
            gallery = F.normalize(gallery.float(), dim=1)
    else:
        # Normalisation is row by row, so chunks give the same bits as
        # the whole set.
        distance = GalleryDistance(gallery, metric, normalize)

        def scorer(query_chunk, gallery_all):
            return distance(query_chunk)

    chunk_size = chunk_rows_for_budget(num_gallery, memory_budget_mb)
    # The GEMM gains from threads, but not from more than the process may
    # use (affinity, cgroup quota): those would only wait for each other.
    num_threads = (
        compute_thread_count()
        if device.type == 'cpu' else torch.get_num_threads())
    for start in range(0, num_query, chunk_size):
        query_chunk = query[start:start + chunk_size].to(device)
        with torch_threads(num_threads):
            if callable(metric) and normalize:
                query_chunk = F.normalize(query_chunk.float(), dim=1)
            dist = to_tensor(scorer(query_chunk, gallery))
        if tuple(dist.shape) != (len(query_chunk), num_gallery):
            raise ValueError(f'the scorer returned shape {tuple(dist.shape)}'
                             f' for {len(query_chunk)} queries and '
                             f'{num_gallery} gallery items')
        accumulator.update(dist)
    return accumulator.result()
