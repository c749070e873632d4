"""Rank metrics streamed from features, one query chunk of distances at a
time.

:func:`evaluate_rank` (a precomputed distance matrix) lives with its
machinery in :mod:`.rank`; it is re-exported here for one release.
"""
from typing import Callable, Dict, Mapping, Optional, Union

import torch
import torch.nn.functional as F

from mmreid.utils.deprecation import renamed_keyword
from mmreid.utils.threads import compute_thread_count, torch_threads
from .distance import (ArrayLike, GalleryDistance, check_normalizable,
                       to_tensor)
from .rank import (DEFAULT_MEMORY_BUDGET_MB, DeviceLike, RankAccumulator,
                   ReIDEvalResult, chunk_rows_for_budget, evaluate_rank)

# scorer(query_chunk (Qc, D), gallery (G, D)) -> distances (Qc, G)
Scorer = Callable[[torch.Tensor, torch.Tensor], ArrayLike]


@renamed_keyword('metric', 'distance')
def evaluate_features(query_feats: ArrayLike,
                      gallery_feats: ArrayLike,
                      q_pids: ArrayLike,
                      g_pids: ArrayLike,
                      q_camids: ArrayLike,
                      g_camids: ArrayLike,
                      distance: Union[str, Scorer] = 'euclidean',
                      normalize: bool = False,
                      memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
                      device: DeviceLike = None,
                      observer: Optional[Callable[[torch.Tensor],
                                                  None]] = None,
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
        distance: ``'euclidean'``, ``'sqeuclidean'``, ``'cosine'`` or a
            scorer ``(query_chunk (Qc, D), gallery (G, D)) -> distances
            (Qc, G)`` (smaller = more similar), e.g. a learned pair
            matcher; negate similarities before returning them.
            ``metric=`` is its deprecated alias.
        normalize: L2-normalise the features first (also before a
            scorer).
        memory_budget_mb: Budget for one chunk's distances and ranking;
            the chunk has :func:`chunk_rows_for_budget` rows.
        device: Where distances and ranks are computed; defaults to the
            query features' device.
        observer: Called with each chunk's distances (Qc, G), queries in
            order, before they are ranked; it must not change them (e.g.
            :meth:`~mmreid.evaluation.query_analysis.QueryAnalyser.update`),
            so a caller can use the same distances without scoring again.
        **rank_options: ``max_rank``, ``junk_rule``, ``tie_policy``,
            ``ap_mode``, ``cmc_mode`` of :func:`evaluate_rank`.

    Returns:
        ReIDEvalResult: The metrics as fractions.
    """
    return evaluate_features_multi(
        query_feats,
        gallery_feats,
        q_pids,
        g_pids,
        q_camids,
        g_camids, {'': distance},
        normalize=normalize,
        memory_budget_mb=memory_budget_mb,
        device=device,
        observers=None if observer is None else {'': observer},
        **rank_options)['']


def evaluate_features_multi(query_feats: ArrayLike,
                            gallery_feats: ArrayLike,
                            q_pids: ArrayLike,
                            g_pids: ArrayLike,
                            q_camids: ArrayLike,
                            g_camids: ArrayLike,
                            distances: Mapping[str, Union[str, Scorer]],
                            normalize: bool = False,
                            memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
                            device: DeviceLike = None,
                            observers: Optional[Mapping[str, Callable[
                                [torch.Tensor], None]]] = None,
                            **rank_options) -> Dict[str, ReIDEvalResult]:
    """:func:`evaluate_features` for several distances in one pass.

    Every query chunk is scored by each distance in turn, in the order
    given, and ranked right away, so scorers that share work between modes
    on the same chunk (GMN's ``'mnet'`` and ``'fused'`` share the M-Net
    logits, see :meth:`~mmreid.models.GMNReID.scorers`) compute it once.
    Each distance's chunk is ranked before the next one is computed: peak
    memory is that of one distance plus what the scorers keep. Each result
    equals :func:`evaluate_features` with that distance alone (same chunks,
    same scorer calls).

    Args:
        query_feats, gallery_feats, q_pids, g_pids, q_camids, g_camids:
            As in :func:`evaluate_features`.
        distances: Name -> distance (a name of :func:`evaluate_features`
            or a scorer ``(query_chunk (Qc, D), gallery (G, D)) ->
            distances (Qc, G)``); at least one.
        normalize, memory_budget_mb, device, **rank_options: As in
            :func:`evaluate_features`.
        observers: Name of a distance -> called with each of its chunks'
            distances (see ``observer`` of :func:`evaluate_features`).

    Returns:
        dict[str, ReIDEvalResult]: The metrics of each distance, by name,
        in the order of ``distances``.
    """
    if not distances:
        raise ValueError('evaluate_features_multi needs at least one '
                         'distance')
    observers = dict(observers or {})
    unknown = sorted(set(observers) - set(distances))
    if unknown:
        raise ValueError(f'observers for {unknown}, which are not among '
                         f'the distances {list(distances)}')
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
    accumulators = {
        name:
        RankAccumulator(
            q_pids, g_pids, q_camids, g_camids, device=device, **rank_options)
        for name in distances
    }
    first = next(iter(accumulators.values()))
    if first.num_query != num_query:
        raise ValueError(f'{num_query} query features but '
                         f'{first.num_query} query pids')
    if first.num_gallery != num_gallery:
        raise ValueError(f'{num_gallery} gallery features but '
                         f'{first.num_gallery} gallery pids')

    gallery = gallery.to(device)
    scorers = {
        name:
        distance if callable(distance) else _feature_scorer(
            GalleryDistance(gallery, distance, normalize))
        for name, distance in distances.items()
    }
    custom = [callable(distance) for distance in distances.values()]
    scored_gallery = gallery
    if normalize and any(custom):
        check_normalizable(query, 'query')
        check_normalizable(gallery, 'gallery')
        scored_gallery = F.normalize(gallery.float(), dim=1)

    chunk_size = chunk_rows_for_budget(num_gallery, memory_budget_mb)
    # The GEMM gains from threads, but not from more than the process may
    # use (affinity, cgroup quota): those would only wait for each other.
    num_threads = (
        compute_thread_count()
        if device.type == 'cpu' else torch.get_num_threads())
    for start in range(0, num_query, chunk_size):
        query_chunk = query[start:start + chunk_size].to(device)
        scored_chunk = query_chunk
        if scored_gallery is not gallery:
            # Scorers see normalised features (row by row: chunks give
            # the bits of the whole set).
            with torch_threads(num_threads):
                scored_chunk = F.normalize(query_chunk.float(), dim=1)
        for (name, scorer), is_custom in zip(scorers.items(), custom):
            with torch_threads(num_threads):
                dist = to_tensor(
                    scorer(scored_chunk, scored_gallery) if is_custom else
                    scorer(query_chunk, gallery))
            if tuple(dist.shape) != (len(query_chunk), num_gallery):
                raise ValueError(f'the scorer{f" {name!r}" if name else ""} '
                                 f'returned shape {tuple(dist.shape)} for '
                                 f'{len(query_chunk)} queries and '
                                 f'{num_gallery} gallery items')
            if name in observers:
                observers[name](dist)
            accumulators[name].update(dist)
            del dist  # before the next distance of this chunk
    return {name: acc.result() for name, acc in accumulators.items()}


def _feature_scorer(gallery_distance: GalleryDistance) -> Scorer:
    """A scorer of a feature distance over its (fixed) gallery.

    Normalisation is row by row, so chunks give the same bits as the whole
    set.
    """

    def scorer(query_chunk, gallery_all):
        return gallery_distance(query_chunk)

    return scorer


# evaluate_rank: its old import path, kept for one release.
__all__ = [
    'evaluate_features', 'evaluate_features_multi', 'evaluate_rank', 'Scorer'
]
