"""What an evaluation report shows: the results table and per-query facts.

Two pure parts, no mmengine:

* :func:`results_rows` / :func:`format_results_table` turn the flat metric
  dict of a test or validation run (``reid/R1``, ``d3/mnet/mAP``,
  ``sysu-all/R1_std`` ...) into one table, a row per target, distance mode or
  metric, columns R1 R5 R10 R20 mAP mINP;
* :func:`analyse_queries` ranks every query's gallery once and keeps, per
  query, its AP, INP, the rank of its first correct match, its top-k list
  and its AP and first match per gallery camera (or modality), from which
  the HTML report draws its curves, histograms and camera-pair tables;
* :func:`query_sampling_error` (and :func:`trial_sampling_errors` for
  protocols that average over gallery trials) says how far a mean over the
  queries (R1, mAP) would move with another draw of the test identities.
"""
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from mmreid.evaluation.functional import (compute_distance,
                                          rule_with_junk_label)
from mmreid.evaluation.functional.rank import (AP_MODES, CMC_MODES,
                                               DEFAULT_MEMORY_BUDGET_MB,
                                               TIE_POLICIES,
                                               chunk_rows_for_budget,
                                               ranking_precision)
from mmreid.evaluation.functional.reference import reference_threshold_ap

#: Columns of the results table, in order.
RESULT_COLUMNS = ('R1', 'R5', 'R10', 'R20', 'mAP', 'mINP')

# A per-split or per-trial key part: ``split0``, ``trial3``.
_PARTITION = re.compile(r'^(split|trial)\d+$')


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    if isinstance(value, torch.Tensor):
        return float(value.item()) if value.numel() == 1 else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass
class ResultRow:
    """One row of the results table.

    Attributes:
        name (str): The key prefix (``'reid'``, ``'d3/mnet'``), or
            ``default_name`` for unprefixed keys.
        values (dict[str, float]): Column -> value (percent).
        stds (dict[str, float]): Column -> standard deviation over the
            protocol's splits or trials, where reported.
        primary_of (str, optional): Set on a distance-mode row whose
            values the parent reports unprefixed (the primary mode).
    """
    name: str
    values: Dict[str, float] = field(default_factory=dict)
    stds: Dict[str, float] = field(default_factory=dict)
    primary_of: Optional[str] = None


def results_rows(metrics: Dict[str, Any],
                 columns: Sequence[str] = RESULT_COLUMNS,
                 default_name: str = 'all') -> List[ResultRow]:
    """Group a flat metric dict into table rows.

    A key ``<prefix>/<column>`` gives the value of ``<prefix>``'s row and
    ``<prefix>/<column>_std`` its spread; keys with a ``split<i>`` or
    ``trial<t>`` part (single partitions) and keys of other names (counts,
    TPR@FPR) are left out. A prefix whose values and spreads all repeat
    those of one of its distance-mode rows (``reid`` and ``reid/mnet``,
    ``sysu-all`` and ``sysu-all/mnet``: the metric reports its primary mode
    unprefixed as well) is not shown twice: the mode row is marked with
    ``primary_of`` instead.

    Args:
        metrics (dict): Flat metrics, e.g. from ``runner.test()``.
        columns (Sequence[str]): Metric names to show, in order.
        default_name (str): Row name of keys without a prefix.

    Returns:
        list[ResultRow]: Rows in the order their first key appears.
    """
    rows: Dict[str, ResultRow] = dict()
    for key, raw in metrics.items():
        parts = str(key).split('/')
        if any(_PARTITION.match(part) for part in parts[:-1]):
            continue
        name, is_std = parts[-1], False
        if name.endswith('_std'):
            name, is_std = name[:-len('_std')], True
        value = _number(raw)
        if name not in columns or value is None:
            continue
        prefix = '/'.join(parts[:-1]) or default_name
        row = rows.setdefault(prefix, ResultRow(prefix))
        (row.stds if is_std else row.values)[name] = value
    for prefix, row in list(rows.items()):
        modes = [
            other for name, other in rows.items()
            if name.startswith(prefix + '/') and '/' not in name[len(prefix) +
                                                                 1:]
        ]
        same = [
            m for m in modes if m.values == row.values and m.stds == row.stds
        ]
        if row.values and same:
            same[0].primary_of = prefix
            del rows[prefix]
    return [row for row in rows.values() if row.values]


def format_results_table(metrics: Dict[str, Any],
                         columns: Sequence[str] = RESULT_COLUMNS,
                         precision: int = 2,
                         default_name: str = 'all') -> str:
    """The results of an evaluation as one text table.

    Example:
        >>> print(format_results_table({'reid/R1': 91.2, 'reid/mAP': 80.1,
        ...                             'reid/num_query': 3368}))
        row  |    R1 |   mAP
        -----+-------+------
        reid | 91.20 | 80.10

    Args:
        metrics (dict): Flat metrics (see :func:`results_rows`).
        columns (Sequence[str]): Metric names to show, in order; a column
            that no row reports is dropped.
        precision (int): Decimals. Defaults to 2.
        default_name (str): Row name of keys without a prefix.

    Returns:
        str: The table (rows ``mean±std`` where a spread is reported, ``-``
        where a row lacks a column, ``*`` on the primary distance mode), or
        ``''`` when no key matches.
    """
    rows = results_rows(metrics, columns, default_name)
    shown = [c for c in columns if any(c in row.values for row in rows)]
    if not shown:
        return ''

    def cell(row: ResultRow, column: str) -> str:
        if column not in row.values:
            return '-'
        text = f'{row.values[column]:.{precision}f}'
        if column in row.stds:
            text += f'±{row.stds[column]:.{precision}f}'
        return text

    table = [['row'] + shown]
    notes = []
    for row in rows:
        name = row.name
        if row.primary_of is not None:
            name += ' *'
            notes.append(f'* {row.name} is also reported as '
                         f'{row.primary_of}/<metric>')
        table.append([name] + [cell(row, c) for c in shown])
    widths = [max(len(r[i]) for r in table) for i in range(len(shown) + 1)]
    lines = [
        ' | '.join(
            text.rjust(width) if i else text.ljust(width)
            for i, (text, width) in enumerate(zip(r, widths))) for r in table
    ]
    lines.insert(1, '-+-'.join('-' * width for width in widths))
    return '\n'.join(lines + notes)


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
        cmc (np.ndarray): CMC over valid queries, (max_rank,), fractions.
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
        """mAP in percent over valid queries."""
        return 100.0 * float(np.mean(self.ap[self.valid])) \
            if self.valid.any() else 0.0

    @property
    def mINP(self) -> float:
        """mINP in percent over valid queries."""
        return 100.0 * float(np.mean(self.inp[self.valid])) \
            if self.valid.any() else 0.0

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


@dataclass(frozen=True)
class SamplingError:
    """A mean over queries and two standard errors of it.

    Attributes:
        value (float): The mean.
        se_independent (float): Its standard error if the queries were
            independent draws (for a 0/1 value such as an R1 hit, the
            binomial ``sqrt(p (1 - p) / n)`` up to ``n / (n - 1)``).
        se_clustered (float): Its standard error when the identities are
            the independent draws and each brings all its queries: the
            test identities of a ReID set are sampled, not its images.
        num_queries (int): n.
        num_identities (int): The identities among them.
    """
    value: float
    se_independent: float
    se_clustered: float
    num_queries: int
    num_identities: int

    @property
    def design_effect(self) -> float:
        """``(se_clustered / se_independent) ** 2``, the factor by which
        the identities inflate the variance: the n queries are worth
        ``n / design_effect`` independent ones (NaN when
        ``se_independent`` is 0)."""
        if self.se_independent == 0:
            return float('nan')
        return (self.se_clustered / self.se_independent)**2


def trial_query_means(results: Sequence[Any],
                      num_query: int) -> Tuple[np.ndarray, ...]:
    """Each query's R1 hit and AP averaged over the gallery trials in which
    it has a kept positive.

    Args:
        results (Sequence[ReIDEvalResult]): One per trial, all over the
            same ``num_query`` queries, with ``all_first_rank``.
        num_query (int): Q.

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray]: ``seen`` (Q,) bool, a
        kept positive in some trial; the mean R1 hit and the mean AP, (Q,)
        fractions, NaN where not seen.
    """
    if not results:
        raise ValueError('no trial result')
    hits = np.zeros(num_query)
    aps = np.zeros(num_query)
    count = np.zeros(num_query)
    for trial, result in enumerate(results):
        valid = np.asarray(result.valid_mask, bool)
        if valid.shape != (num_query, ):
            raise ValueError(f'trial {trial} has {len(valid)} queries, '
                             f'q_pids {num_query}')
        if result.all_first_rank is None:
            raise ValueError(f'trial {trial} has no all_first_rank')
        hits[valid] += np.asarray(result.all_first_rank) == 1
        aps[valid] += np.asarray(result.all_AP)
        count[valid] += 1
    seen = count > 0
    with np.errstate(invalid='ignore', divide='ignore'):
        return seen, np.where(seen, hits / count,
                              np.nan), np.where(seen, aps / count, np.nan)


def trial_sampling_errors(results: Sequence[Any],
                          q_pids) -> Dict[str, SamplingError]:
    """R1 and mAP (percent) of a protocol that averages over gallery
    trials, with their query sampling errors.

    Each query's R1 hit and AP are first averaged over the trials in which
    it has a kept positive (:func:`trial_query_means`); the errors are then
    those of the mean over the queries (:func:`query_sampling_error`), so
    they describe the drawing of the test identities, the trials'
    galleries being fixed. When every query is valid in every trial the
    values are the protocol's R1 and mAP (the mean over trials of each
    trial's mean).

    Args:
        results (Sequence[ReIDEvalResult]): One per trial, all over the
            same Q queries, with ``all_first_rank``.
        q_pids: The queries' pids, shape (Q,).

    Returns:
        dict[str, SamplingError]: ``'R1'`` and ``'mAP'``.
    """
    q_pids = np.asarray(q_pids)
    seen, hits, aps = trial_query_means(results, len(q_pids))
    return dict(
        R1=query_sampling_error(100.0 * hits[seen], q_pids[seen]),
        mAP=query_sampling_error(100.0 * aps[seen], q_pids[seen]))


def query_sampling_error(values, groups) -> SamplingError:
    """Standard errors of the mean of per-query values.

    With n queries of values ``v_i`` and mean ``m``, the independent-draws
    standard error is ``sqrt(n / (n - 1) * sum_i (v_i - m)^2) / n``. The
    clustered one treats each group (identity) g as one draw with total
    ``t_g = sum_{i in g} v_i`` over its ``n_g`` queries, and takes the
    variance of the ratio ``m = sum_g t_g / sum_g n_g`` to first order:
    ``sqrt(G / (G - 1) * sum_g (t_g - m n_g)^2) / n`` for G groups. With
    one query per group the two are equal; when the queries of an identity
    succeed or fail together, the clustered one is the larger.

    Args:
        values: Per-query values, shape (n,), e.g. 100 * (first rank == 1)
            for R1 in percent, or 100 * AP.
        groups: Per-query group labels (the query pids), shape (n,).

    Returns:
        SamplingError: The mean and both standard errors (NaN with fewer
        than two queries, resp. two groups).
    """
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups)
    if values.ndim != 1 or groups.shape != values.shape:
        raise ValueError(f'values and groups must both have shape (n,), got '
                         f'{values.shape} and {groups.shape}')
    if not np.isfinite(values).all():
        raise ValueError('values must be finite (select the valid queries '
                         'first)')
    num = len(values)
    if num == 0:
        raise ValueError('no query to average')
    mean = float(values.mean())
    _, index = np.unique(groups, return_inverse=True)
    num_groups = int(index.max()) + 1
    se_independent = se_clustered = float('nan')
    if num > 1:
        se_independent = float(
            np.sqrt(num / (num - 1) * np.sum((values - mean)**2)) / num)
    if num_groups > 1:
        residual = np.bincount(
            index, weights=values - mean, minlength=num_groups)
        se_clustered = float(
            np.sqrt(num_groups / (num_groups - 1) * np.sum(residual**2)) / num)
    return SamplingError(mean, se_independent, se_clustered, num, num_groups)


def _as_array(values, name: str, length: Optional[int] = None) -> np.ndarray:
    array = np.asarray(
        values.detach().cpu() if isinstance(values, torch.Tensor) else values)
    if array.ndim != 1 or (length is not None and len(array) != length):
        raise ValueError(f'{name} must have shape ({length},), got '
                         f'{array.shape}')
    return array


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
                 cmc_mode: str = 'standard') -> None:
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
        same = torch.as_tensor(
            self.q_pids[start:stop])[:, None] == self._g_pids_t
        removed = self.junk(same, torch.as_tensor(self.q_camids[start:stop]),
                            self._g_camids_t)
        dist, same = dist.numpy(), same.numpy()
        removed = None if removed is None else removed.numpy()
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
               if valid.any() else np.zeros(self.max_rank))
        return QueryAnalysis(self.ap, self.inp, self.first_rank,
                             self.topk_index, self.topk_distance,
                             self.topk_match, cmc,
                             dict(sorted(self.camera_pairs.items())),
                             dict(sorted(self.modality_pairs.items())),
                             self.q_pids, self.cmc_mode)


def analyse_queries(
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
        topk: int = 10,
        max_rank: int = 50,
        memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
        cmc_mode: str = 'standard') -> QueryAnalysis:
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
        cmc_mode=cmc_mode)
    if callable(distance):
        if normalize:
            query_feats = torch.nn.functional.normalize(query_feats, dim=1)
            gallery_feats = torch.nn.functional.normalize(gallery_feats, dim=1)
        scorer = distance
    else:

        def scorer(query, gallery):
            return compute_distance(query, gallery, distance, normalize)

    chunk = chunk_rows_for_budget(num_gallery, memory_budget_mb)
    for start in range(0, num_query, chunk):
        stop = min(start + chunk, num_query)
        with torch.no_grad():
            analyser.update(scorer(query_feats[start:stop], gallery_feats))
    return analyser.result()


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
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB
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
            memory_budget_mb: As :func:`analyse_queries`.

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
                memory_budget_mb=memory_budget_mb)
            tables[table].update(getattr(part, table))
    return (dict(sorted(tables['camera_pairs'].items())),
            dict(sorted(tables['modality_pairs'].items())))
