"""The per-query analysis behind the HTML report.

:func:`analyse_queries` ranks every query's gallery once and keeps, per
query, its AP, INP, the rank of its first correct match, its top-k list and
its AP and first match per gallery camera (or modality), from which the HTML
report draws its curves, histograms and camera-pair tables
(:class:`QueryAnalysis`, :class:`PairStats`). A metric that already scores
every query against the whole gallery feeds its distance chunks to a
:class:`QueryAnalyser` instead; :func:`own_gallery_pairs` scores each
gallery group on its own for gallery-dependent distances. No mmengine.
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from mmreid.evaluation.functional import compute_distance, rule_with_junk_label
from mmreid.evaluation.functional.rank import (AP_MODES, CMC_MODES,
                                               DEFAULT_MEMORY_BUDGET_MB,
                                               TIE_POLICIES,
                                               chunk_rows_for_budget,
                                               ranking_precision)
from mmreid.evaluation.functional.reference import reference_threshold_ap
from mmreid.evaluation.sampling_error import (SamplingError,
                                              query_sampling_error)


@dataclass
class PairStats:
    """Retrieval of the queries of one group against one gallery group.

    Attributes:
        num_valid (int): Queries with a kept positive in the group.
        rank1_hits (int): Of those, queries whose first kept item of the
            group is a positive.
        ap_sum (float): Sum of their APs within the group.
    """
    num_valid: int = 0
    rank1_hits: int = 0
    ap_sum: float = 0.0

    @property
    def rank1(self) -> float:
        """R1 in percent (NaN without valid queries)."""
        return 100.0 * self.rank1_hits / self.num_valid \
            if self.num_valid else float('nan')

    @property
    def mAP(self) -> float:
        """mAP in percent (NaN without valid queries)."""
        return 100.0 * self.ap_sum / self.num_valid \
            if self.num_valid else float('nan')


@dataclass
class QueryAnalysis:
    """Per-query retrieval facts of one query set against its gallery.

    Q queries, G gallery items, k = ``topk``. Ranks are 1-based among the
    gallery items the junk rule keeps for the query.

    Attributes:
        ap (np.ndarray): AP per query, (Q,), NaN without a kept positive.
        inp (np.ndarray): INP per query, (Q,), NaN likewise.
        first_rank (np.ndarray): Rank of the first positive in the full
            ranked list, (Q,), 0 when there is none; not de-duplicated
            under ``cmc_mode='dedup'`` (not the rank ``cmc`` counts).
        topk_index (np.ndarray): Gallery indices of the top k, (Q, k), -1
            where fewer items are kept.
        topk_distance (np.ndarray): Their distances, (Q, k), NaN padded.
        topk_match (np.ndarray): Whether each is a positive, (Q, k).
        cmc (np.ndarray): CMC over valid queries, (max_rank,), fractions;
            NaN without valid queries.
        camera_pairs (dict): ``(query camid, gallery camid)`` ->
            :class:`PairStats`: each query ranked against the gallery items
            of one camera only.
        modality_pairs (dict): The same per (query, gallery) modality; empty
            without modalities.
        q_pids (np.ndarray, optional): The queries' pids, (Q,), which
            :meth:`sampling_errors` groups by.
        cmc_mode (str): How ``cmc`` counts ranks (see
            :class:`QueryAnalyser`); ``first_rank`` is the position in the
            full ranked list either way.
    """
    ap: np.ndarray
    inp: np.ndarray
    first_rank: np.ndarray
    topk_index: np.ndarray
    topk_distance: np.ndarray
    topk_match: np.ndarray
    cmc: np.ndarray
    camera_pairs: Dict[Tuple[int, int], PairStats]
    modality_pairs: Dict[Tuple[int, int], PairStats]
    q_pids: Optional[np.ndarray] = None
    cmc_mode: str = 'standard'

    @property
    def valid(self) -> np.ndarray:
        """Queries with a kept positive, (Q,) bool."""
        return ~np.isnan(self.ap)

    @property
    def mAP(self) -> float:
        """mAP in percent over valid queries (NaN without any)."""
        return 100.0 * float(np.mean(self.ap[self.valid])) \
            if self.valid.any() else float('nan')

    @property
    def mINP(self) -> float:
        """mINP in percent over valid queries (NaN without any)."""
        return 100.0 * float(np.mean(self.inp[self.valid])) \
            if self.valid.any() else float('nan')

    def sampling_errors(self) -> Dict[str, 'SamplingError']:
        """R1 and mAP (percent) over the valid queries with their query
        sampling errors (:func:`query_sampling_error`); needs ``q_pids``."""
        if self.q_pids is None:
            raise ValueError('the analysis has no q_pids to group by')
        valid = self.valid
        pids = self.q_pids[valid]
        return dict(
            R1=query_sampling_error(100.0 * (self.first_rank[valid] == 1),
                                    pids),
            mAP=query_sampling_error(100.0 * self.ap[valid], pids))


def _as_array(values, name: str, length: Optional[int] = None) -> np.ndarray:
    array = np.asarray(
        values.detach().cpu() if isinstance(values, torch.Tensor) else values)
    if array.ndim != 1 or (length is not None and len(array) != length):
        raise ValueError(f'{name} must have shape ({length},), got '
                         f'{array.shape}')
    return array


def own_image_codes(
        q_images: Optional[Sequence], g_images: Optional[Sequence]
) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Integer codes of the query and gallery images, equal where a
    gallery item is a query's own image.

    QMUL-iLIDS's ten splits list an image that is a query in one split and
    a gallery image in another once per role, so their union holds it
    twice: ranked against the union, the query would find its own copy at
    distance 0 (kept by the camera rule, the copy has the gallery's
    camid). No split ranks an image against itself.

    Args:
        q_images (Sequence, optional): Each query's image (its path), (Q,);
            None entries are nobody's image.
        g_images (Sequence, optional): Each gallery item's image, (G,).

    Returns:
        tuple[np.ndarray, np.ndarray] | None: ``(q_codes (Q,), g_codes
        (G,))`` int64, or None when either is None or no query's image is
        in the gallery (nothing to remove).
    """
    if q_images is None or g_images is None:
        return None
    codes: Dict[Any, int] = {}

    def encode(images: Sequence, missing: int) -> np.ndarray:
        return np.array([
            missing if image is None else codes.setdefault(image, len(codes))
            for image in images
        ], np.int64)

    # None is -1 among the queries and -2 in the gallery: never equal.
    q_codes, g_codes = encode(q_images, -1), encode(g_images, -2)
    if not np.isin(q_codes, g_codes).any():
        return None
    return q_codes, g_codes


def _ap_of(matches: np.ndarray, dist: np.ndarray, ap_mode: str) -> float:
    positions = np.flatnonzero(matches) + 1
    if ap_mode == 'threshold':
        return reference_threshold_ap(dist, matches)
    return float(np.mean(np.arange(1, len(positions) + 1) / positions))


def _ranked(dist: np.ndarray, same: np.ndarray, tie_policy: str) -> np.ndarray:
    """Gallery order of each row, best first, under a tie policy."""
    if tie_policy == 'stable':
        return np.argsort(dist, axis=1, kind='stable')
    # Ties on distance keep the order of the secondary key: negatives
    # first when pessimistic, positives first when optimistic; lexsort is
    # stable and sorts by its last key first.
    secondary = same if tie_policy == 'pessimistic' else ~same
    return np.lexsort((secondary.astype(np.int8), dist), axis=1)


class QueryAnalyser:
    """Build a :class:`QueryAnalysis` from distances given chunk by chunk.

    :func:`analyse_queries` computes the chunks itself; a metric that
    already scores every query against the whole gallery (``ReIDMetric``,
    see its ``analysis_request``) feeds its own chunks instead, so a
    report does not score the pairs a second time.

    Args:
        q_pids, g_pids, q_camids, g_camids: Labels, (Q,) and (G,).
        q_modalities, g_modalities (optional): Modality labels, (Q,) and
            (G,), for the modality-pair table.
        junk_rule (str): ``'market'``, ``'none'`` or ``'sysu'``.
        tie_policy (str): ``'stable'``, ``'pessimistic'`` or
            ``'optimistic'``.
        ap_mode (str): ``'cumsum'`` or ``'threshold'``.
        topk (int): Length of the kept ranked lists.
        max_rank (int): Length of the CMC curve.
        cmc_mode (str): ``'standard'`` or ``'dedup'``: the CMC curve over
            the ranked list or over its distinct pids (SYSU-MM01's), as
            the metric's ``cmc_mode``. ``first_rank`` is the position in
            the ranked list either way.
        q_images, g_images (Sequence, optional): The queries' and gallery
            items' images (their paths), (Q,) and (G,): a gallery item that
            is its query's own image is removed from that query's ranking,
            as the junk rule removes (see :func:`own_image_codes`).
    """

    def __init__(self,
                 q_pids,
                 g_pids,
                 q_camids,
                 g_camids,
                 q_modalities=None,
                 g_modalities=None,
                 junk_rule: str = 'market',
                 tie_policy: str = 'stable',
                 ap_mode: str = 'cumsum',
                 topk: int = 10,
                 max_rank: int = 50,
                 cmc_mode: str = 'standard',
                 q_images: Optional[Sequence] = None,
                 g_images: Optional[Sequence] = None) -> None:
        if tie_policy not in TIE_POLICIES:
            raise ValueError(f'tie_policy must be one of {TIE_POLICIES}, got '
                             f'{tie_policy!r}')
        if ap_mode not in AP_MODES:
            raise ValueError(f'ap_mode must be one of {AP_MODES}, got '
                             f'{ap_mode!r}')
        if cmc_mode not in CMC_MODES:
            raise ValueError(f'cmc_mode must be one of {CMC_MODES}, got '
                             f'{cmc_mode!r}')
        if topk < 1 or max_rank < 1:
            raise ValueError(f'topk and max_rank must be >= 1, got {topk} '
                             f'and {max_rank}')
        self.q_pids = _as_array(q_pids, 'q_pids')
        self.num_query = len(self.q_pids)
        self.g_pids = _as_array(g_pids, 'g_pids')
        self.num_gallery = len(self.g_pids)
        self.q_camids = _as_array(q_camids, 'q_camids', self.num_query)
        self.g_camids = _as_array(g_camids, 'g_camids', self.num_gallery)
        self.with_modality = (
            q_modalities is not None and g_modalities is not None)
        if self.with_modality:
            self.q_modalities = _as_array(q_modalities, 'q_modalities',
                                          self.num_query)
            self.g_modalities = _as_array(g_modalities, 'g_modalities',
                                          self.num_gallery)
        # Under 'market' also the junk-labelled (pid -1) gallery items, as
        # the rank metrics.
        self.junk = rule_with_junk_label(junk_rule, self.q_pids, self.g_pids)
        for name, images, length in (('q_images', q_images, self.num_query),
                                     ('g_images', g_images, self.num_gallery)):
            if images is not None and len(images) != length:
                raise ValueError(f'{name} must have shape ({length},), got '
                                 f'{len(images)} items')
        self.own_images = own_image_codes(q_images, g_images)
        self.tie_policy = tie_policy
        self.ap_mode = ap_mode
        self.max_rank = int(max_rank)
        self.cmc_mode = cmc_mode
        num_query = self.num_query
        self.ap = np.full(num_query, np.nan)
        self.inp = np.full(num_query, np.nan)
        self.first_rank = np.zeros(num_query, np.int64)
        #: The rank the CMC counts: ``first_rank``, or in ``'dedup'`` mode
        #: 1 + the distinct pids ranked before the first match.
        self.cmc_rank = np.zeros(num_query, np.int64)
        self.topk_index = np.full((num_query, topk), -1, np.int64)
        self.topk_distance = np.full((num_query, topk), np.nan)
        self.topk_match = np.zeros((num_query, topk), bool)
        self.camera_pairs: Dict[Tuple[int, int], PairStats] = dict()
        self.modality_pairs: Dict[Tuple[int, int], PairStats] = dict()
        self._g_pids_t = torch.as_tensor(self.g_pids)
        self._g_camids_t = torch.as_tensor(self.g_camids)
        self._next = 0

    def update(self, dist) -> None:
        """Add the next chunk of queries.

        Args:
            dist (Tensor | np.ndarray): Distances of the next ``Qc``
                queries (in order) to the whole gallery, (Qc, G), smaller
                = closer.
        """
        # The precision the metric ranks in (RankAccumulator).
        dist = ranking_precision(torch.as_tensor(dist).detach().cpu())
        start, stop = self._next, self._next + len(dist)
        if dist.ndim != 2 or dist.shape[1] != self.num_gallery \
                or stop > self.num_query:
            raise ValueError(
                f'QueryAnalyser expected distances of queries {start}.. '
                f'(at most {self.num_query - start}) to {self.num_gallery} '
                f'gallery items, got shape {tuple(dist.shape)}')
        self._next = stop
        topk = self.topk_index.shape[1]
        q_pids_t = torch.as_tensor(self.q_pids[start:stop])
        same = q_pids_t[:, None] == self._g_pids_t
        removed = self.junk(same, torch.as_tensor(self.q_camids[start:stop]),
                            self._g_camids_t)
        dist, same = dist.numpy(), same.numpy()
        removed = None if removed is None else removed.numpy()
        if self.own_images is not None:
            q_codes, g_codes = self.own_images
            own = q_codes[start:stop, None] == g_codes[None, :]
            removed = own if removed is None else removed | own
        order = _ranked(dist, same, self.tie_policy)
        for row in range(stop - start):
            q = start + row
            ranked = order[row]
            if removed is not None:
                ranked = ranked[~removed[row][ranked]]
            matches = same[row][ranked]
            shown = ranked[:topk]
            self.topk_index[q, :len(shown)] = shown
            self.topk_distance[q, :len(shown)] = dist[row][shown]
            self.topk_match[q, :len(shown)] = matches[:topk]
            if matches.any():
                positions = np.flatnonzero(matches) + 1
                self.first_rank[q] = positions[0]
                self.cmc_rank[q] = positions[0] if self.cmc_mode == \
                    'standard' else 1 + len(
                        np.unique(self.g_pids[ranked[:positions[0] - 1]]))
                self.ap[q] = _ap_of(matches, dist[row][ranked], self.ap_mode)
                self.inp[q] = len(positions) / positions[-1]
            groups = [(self.camera_pairs, self.q_camids[q],
                       self.g_camids[ranked])]
            if self.with_modality:
                groups.append((self.modality_pairs, self.q_modalities[q],
                               self.g_modalities[ranked]))
            for pairs, q_group, g_groups in groups:
                for g_group in np.unique(g_groups):
                    inside = g_groups == g_group
                    sub = matches[inside]
                    stats = pairs.setdefault((int(q_group), int(g_group)),
                                             PairStats())
                    if not sub.any():
                        continue
                    stats.num_valid += 1
                    stats.rank1_hits += int(sub[0])
                    stats.ap_sum += _ap_of(sub, dist[row][ranked][inside],
                                           self.ap_mode)

    def result(self) -> QueryAnalysis:
        """The analysis, once every query has been added.

        Raises:
            RuntimeError: Some queries were never added.
        """
        if self._next != self.num_query:
            raise RuntimeError(f'QueryAnalyser got distances for '
                               f'{self._next} of {self.num_query} queries')
        valid = ~np.isnan(self.ap)
        ranks = np.arange(1, self.max_rank + 1)
        cmc = ((self.cmc_rank[valid][:, None] <= ranks[None]).mean(0)
               if valid.any() else np.full(self.max_rank, np.nan))
        return QueryAnalysis(self.ap, self.inp, self.first_rank,
                             self.topk_index, self.topk_distance,
                             self.topk_match, cmc,
                             dict(sorted(self.camera_pairs.items())),
                             dict(sorted(self.modality_pairs.items())),
                             self.q_pids, self.cmc_mode)


def analyse_queries(query_feats: torch.Tensor,
                    gallery_feats: torch.Tensor,
                    q_pids,
                    g_pids,
                    q_camids,
                    g_camids,
                    q_modalities=None,
                    g_modalities=None,
                    distance: Union[str, Callable] = 'euclidean',
                    normalize: bool = False,
                    junk_rule: str = 'market',
                    tie_policy: str = 'stable',
                    ap_mode: str = 'cumsum',
                    topk: int = 10,
                    max_rank: int = 50,
                    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
                    cmc_mode: str = 'standard',
                    q_images: Optional[Sequence] = None,
                    g_images: Optional[Sequence] = None) -> QueryAnalysis:
    """Rank every query's gallery and keep what a report shows of it.

    Distances come chunk by chunk (never the whole Q x G matrix); each
    query's kept gallery (see ``junk_rule``) is sorted in full under
    ``tie_policy``, so AP, INP and the CMC equal those of
    :func:`~mmreid.evaluation.functional.evaluate_features` with the same
    arguments. The chunks go to a
    :class:`QueryAnalyser`.

    Args:
        query_feats (Tensor): (Q, D).
        gallery_feats (Tensor): (G, D).
        q_pids, g_pids, q_camids, g_camids: Labels, (Q,) and (G,).
        q_modalities, g_modalities (optional): Modality labels, (Q,) and
            (G,), for the modality-pair table.
        distance (str | Callable): ``'euclidean'``, ``'sqeuclidean'``,
            ``'cosine'`` or a scorer ``(query (Qc, D), gallery (G, D)) ->
            (Qc, G)``, smaller = closer.
        normalize (bool): L2-normalise the features first.
        junk_rule (str): ``'market'``, ``'none'`` or ``'sysu'``.
        tie_policy (str): ``'stable'``, ``'pessimistic'`` or
            ``'optimistic'``.
        ap_mode (str): ``'cumsum'`` or ``'threshold'``.
        topk (int): Length of the kept ranked lists.
        max_rank (int): Length of the CMC curve.
        memory_budget_mb (float): Budget of one chunk of distances.
        cmc_mode (str): ``'standard'`` or ``'dedup'`` (see
            :class:`QueryAnalyser`).
        q_images, g_images (Sequence, optional): The images (paths), (Q,)
            and (G,): a query's own image is removed from its gallery (see
            :class:`QueryAnalyser`); a gallery-dependent ``distance`` (a
            true ``gallery_dependent`` attribute) scores that query against
            the gallery without it.

    Returns:
        QueryAnalysis: The per-query facts.
    """
    query_feats = torch.as_tensor(query_feats).float().cpu()
    gallery_feats = torch.as_tensor(gallery_feats).float().cpu()
    num_query, num_gallery = len(query_feats), len(gallery_feats)
    analyser = QueryAnalyser(
        _as_array(q_pids, 'q_pids', num_query),
        _as_array(g_pids, 'g_pids', num_gallery),
        q_camids,
        g_camids,
        q_modalities,
        g_modalities,
        junk_rule=junk_rule,
        tie_policy=tie_policy,
        ap_mode=ap_mode,
        topk=topk,
        max_rank=max_rank,
        cmc_mode=cmc_mode,
        q_images=q_images,
        g_images=g_images)
    if callable(distance):
        if normalize:
            query_feats = torch.nn.functional.normalize(query_feats, dim=1)
            gallery_feats = torch.nn.functional.normalize(gallery_feats, dim=1)
        scorer = distance
    else:

        def scorer(query, gallery):
            return compute_distance(query, gallery, distance, normalize)

    # A gallery-dependent distance (GMN's top-k rerank) is not computed
    # on the gallery and then cut: the query's own image, at distance 0,
    # would take one of its k ranked places.
    gallery_dependent = getattr(distance, 'gallery_dependent', False)
    own_images = analyser.own_images if gallery_dependent else None
    chunk = chunk_rows_for_budget(num_gallery, memory_budget_mb)
    for start in range(0, num_query, chunk):
        stop = min(start + chunk, num_query)
        with torch.no_grad():
            dist = scorer(query_feats[start:stop], gallery_feats)
            if own_images is not None:
                dist = _scored_without_own_images(scorer, query_feats,
                                                  gallery_feats, dist, start,
                                                  own_images)
            analyser.update(dist)
    return analyser.result()


def _scored_without_own_images(scorer: Callable, query_feats: torch.Tensor,
                               gallery_feats: torch.Tensor, dist, start: int,
                               own_images: Tuple[np.ndarray, np.ndarray]):
    """The distances of queries ``start ..`` (``dist``, (Qc, G)) with each
    query that has its own image in the gallery scored again against the
    gallery without it; its own columns get +inf (the analyser removes
    them). For a gallery-dependent ``scorer`` only.
    """
    q_codes, g_codes = own_images
    rows = np.flatnonzero(np.isin(q_codes[start:start + len(dist)], g_codes))
    if not len(rows):
        return dist
    dist = torch.as_tensor(dist).clone()
    for row in rows:
        keep = torch.as_tensor(np.flatnonzero(g_codes != q_codes[start + row]))
        query = query_feats[start + row:start + row + 1]
        dist[row] = float('inf')
        dist[row, keep] = torch.as_tensor(scorer(
            query, gallery_feats[keep])).to(dist.dtype).reshape(-1)
    return dist


def own_gallery_pairs(
    query_feats: torch.Tensor,
    gallery_feats: torch.Tensor,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    q_modalities=None,
    g_modalities=None,
    distance: Union[str, Callable] = 'euclidean',
    normalize: bool = False,
    junk_rule: str = 'market',
    tie_policy: str = 'stable',
    ap_mode: str = 'cumsum',
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
    q_images: Optional[Sequence] = None,
    g_images: Optional[Sequence] = None
) -> Tuple[Dict[Tuple[int, int], PairStats], Dict[Tuple[int, int], PairStats]]:
    """The camera-pair and modality-pair tables with each gallery group
    scored on its own.

    :class:`QueryAnalyser` takes a pair's cell from the whole-gallery
    ranking, which is the ranking of that group's gallery only when a
    pair's distance does not depend on the rest of the gallery. For a
    gallery-dependent distance (GMN's top-k rerank, whose distances are
    positions in the ranking of the gallery it is given) each camera's
    (modality's) gallery is scored here by ``distance`` alone, as
    ``DGSplitMetric`` scores each split's gallery.

    Args:
        query_feats (Tensor): (Q, D).
        gallery_feats (Tensor): (G, D).
        q_pids, g_pids, q_camids, g_camids: Labels, (Q,) and (G,).
        q_modalities, g_modalities (optional): Modality labels, (Q,) and
            (G,); without them the modality table is empty.
        distance, normalize, junk_rule, tie_policy, ap_mode,
            memory_budget_mb, q_images, g_images: As
            :func:`analyse_queries`.

    Returns:
        tuple[dict, dict]: ``camera_pairs`` and ``modality_pairs`` as in
        :class:`QueryAnalysis`.
    """
    num_gallery = len(gallery_feats)
    g_pids = _as_array(g_pids, 'g_pids', num_gallery)
    g_camids = _as_array(g_camids, 'g_camids', num_gallery)
    with_modality = q_modalities is not None and g_modalities is not None
    if with_modality:
        g_modalities = _as_array(g_modalities, 'g_modalities', num_gallery)
    tables = dict(camera_pairs=dict(), modality_pairs=dict())
    groups = [('camera_pairs', g_camids)]
    if with_modality:
        groups.append(('modality_pairs', g_modalities))
    for table, g_groups in groups:
        for value in np.unique(g_groups):
            cols = np.flatnonzero(g_groups == value)
            part = analyse_queries(
                query_feats,
                torch.as_tensor(gallery_feats)[torch.as_tensor(cols)],
                q_pids,
                g_pids[cols],
                q_camids,
                g_camids[cols],
                q_modalities if with_modality else None,
                g_modalities[cols] if with_modality else None,
                distance=distance,
                normalize=normalize,
                junk_rule=junk_rule,
                tie_policy=tie_policy,
                ap_mode=ap_mode,
                topk=1,
                max_rank=1,
                memory_budget_mb=memory_budget_mb,
                q_images=q_images,
                g_images=None
                if g_images is None else [g_images[i] for i in cols])
            tables[table].update(getattr(part, table))
    return (dict(sorted(tables['camera_pairs'].items())),
            dict(sorted(tables['modality_pairs'].items())))
