"""Exact CMC, mAP and mINP without sorting the gallery.

Only the ranks of a query's positives are needed: the rank of its
``j``-th positive (sorted) is ``j`` plus the number of negatives before
it. On the CPU, with numba installed, :mod:`.count_kernel` counts those
directly, one SIMD scan of the distance row per positive: the cost does
not depend on how deep the positives sit, i.e. on the model's strength.
Otherwise (no numba, CUDA) the torch search below gives the same
numbers.

The torch search: once the query's ``m``
positive distances are sorted, each negative is summarised by its bucket,
the number of positives ranked before it; a histogram of the buckets,
cumulated, gives the number of negatives before the ``j``-th positive, so
its rank is ``r_j = j + #negatives before it``. Negatives beyond the last
positive change no rank, so one comparison pass finds the items to place
(a small part of the gallery for a useful model) and one integer search
each places them. This costs O(G + K log m) per query instead of the
O(G log G) of a full sort, and the working memory is O(chunk_size x G):
no Q x G index or match matrix is ever built.

The positives come from the gallery grouped by pid once, so for the
built-in rules that only remove same-pid items (``'market'``,
``'none'``) no (chunk, G) pid or junk mask is built either: every item up
to the last positive is placed, then the same-pid items are placed again
and their counts taken back, which cancels them exactly. Other rules
(``'sysu'``, user callables) and de-duplicated CMC use the masks.

The counting itself (the kernel path and the torch search) is in
:mod:`.rank_counting`; this module holds the public :func:`evaluate_rank`,
the streaming :class:`RankAccumulator` that both entry points feed, and the
metrics computed from the counts.

Tie policy, i.e. the order of the kept gallery items of a query:

- ``'stable'`` (default): ascending (distance, gallery index), exactly
  what a stable sort of the distance row gives.
- ``'pessimistic'``: a positive comes after every negative at the same
  distance (a lower bound of every metric).
- ``'optimistic'``: a positive comes before every negative at the same
  distance (an upper bound).

Positives tied among themselves keep gallery order under every policy,
which changes no metric. The result depends neither on the chunking nor
on the device. Peers (fast-reid, torchreid) sort with an unstable
``np.argsort``; their numbers are reproducible, and equal to ours, only on
tie-free distances.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from mmreid.utils.threads import compute_thread_count, torch_threads

from . import count_kernel
from .distance import ArrayLike, release_freed_memory, to_tensor
from .junk_rules import (JunkRule, get_junk_rule, junk_label_gallery,
                         same_pid_form)
from .positives import sort_positives, tie_blocks
from .rank_counting import (NAN_MESSAGE, ChunkPositives, GalleryPidIndex,
                            kernel_counts, search_counts)

DeviceLike = Union[str, torch.device, None]

TIE_POLICIES = ('stable', 'pessimistic', 'optimistic')
AP_MODES = ('cumsum', 'threshold')
CMC_MODES = ('standard', 'dedup')

# Working memory per (query, gallery) entry of a chunk, in bytes: the
# distance, a few bool masks, the int64 bucket index reused as histogram
# key, and the temporaries of the tie check. Measured peak is lower; the
# margin keeps ``memory_budget_mb`` an upper bound.
BYTES_PER_ENTRY = 40
# The chunk of distances read (or, from features, computed) at a time; on
# the CPU it is ranked in smaller sub-chunks (CPU_CHUNK_ELEMENTS). Pass a
# larger budget on GPU, where big chunks are fastest.
DEFAULT_MEMORY_BUDGET_MB = 128
# Above this fraction of (query, gallery) pairs to place, a dense
# per-row search beats the ragged one (measured on CPU).
DENSE_SEARCH_FRACTION = 0.25

#: Distances ranked at a time on the CPU, whatever the chunks fed to
#: :meth:`RankAccumulator.update`: about 1M entries keep the working set
#: in cache (see docs/benchmarks.md, "Evaluation speed and memory").
CPU_CHUNK_ELEMENTS = 2**20

#: Distances processed between two heap trims on the CPU (32M = 128 MB of
#: fp32): rare enough to cost nothing measurable on Market, frequent enough
#: to keep MSMT17's resident memory far below 1 GB.
TRIM_EVERY_ELEMENTS = 32 * 1024 * 1024

#: Integer distances are ranked as float64, which holds every integer up
#: to this magnitude exactly; larger ones are refused, as rounding could
#: tie or reorder them.
MAX_EXACT_INT_DISTANCE = 2**53


@dataclass(eq=False)
class ReIDEvalResult:
    """Retrieval metrics of one query set against one gallery.

    All values are fractions in [0, 1], not percentages.

    Attributes:
        cmc (np.ndarray): CMC curve, shape (max_rank,); ``cmc[k - 1]`` is
            the fraction of valid queries with a match in the top ``k``.
        mAP (float): Mean average precision over valid queries.
        mINP (float): Mean inverse negative penalty over valid queries.
        all_AP (np.ndarray): AP of each valid query, shape (V,).
        all_INP (np.ndarray): INP of each valid query, shape (V,).
        num_query (int): Number of queries, Q.
        num_valid_query (int): Queries with at least one kept positive, V.
        valid_mask (np.ndarray): Which queries are valid, shape (Q,).
        all_first_rank (np.ndarray, optional): The rank the CMC counts for
            each valid query, shape (V,), 1-based: ``cmc[k - 1] ==
            mean(all_first_rank <= k)``.
    """
    cmc: np.ndarray
    mAP: float
    mINP: float
    all_AP: np.ndarray
    all_INP: np.ndarray
    num_query: int
    num_valid_query: int
    valid_mask: np.ndarray
    all_first_rank: Optional[np.ndarray] = None

    def percentages(self, ranks: Sequence[int]) -> Dict[str, float]:
        """The reported metrics in percent: ``R{k}`` for each k, ``mAP``,
        ``mINP``.

        Args:
            ranks (Sequence[int]): CMC ranks to report, each in
                [1, max_rank].
        """
        metrics = {f'R{k}': float(self.cmc[k - 1]) * 100 for k in ranks}
        metrics['mAP'] = float(self.mAP) * 100
        metrics['mINP'] = float(self.mINP) * 100
        return metrics


def chunk_rows_for_budget(num_gallery: int, memory_budget_mb: float) -> int:
    """Number of query rows whose working memory fits in a budget.

    Args:
        num_gallery: Gallery size G.
        memory_budget_mb: Budget in MiB for one chunk of distances and the
            rank computation on it.

    Returns:
        int: At least 1.
    """
    row_bytes = max(num_gallery, 1) * BYTES_PER_ENTRY
    return max(1, int(memory_budget_mb * 2**20) // row_bytes)


def _as_labels(value: ArrayLike, name: str) -> torch.Tensor:
    """Convert pids or camids to a 1-D int64 tensor.

    Args:
        value: Integer labels, shape (N,): a tensor, array or sequence.
            An empty array or sequence (N = 0) is read as int64 whatever
            its dtype (``[]`` is float64 to NumPy).
        name: The argument's name, for the error.

    Returns:
        torch.Tensor: The labels as int64, shape (N,).

    Raises:
        TypeError: The labels are not integers (floats, strings, bools,
            objects); names the argument, its dtype and a value.
    """
    if isinstance(value, torch.Tensor):
        labels = value.detach().reshape(-1)
        is_int = not (labels.is_floating_point() or labels.is_complex()
                      or labels.dtype == torch.bool)
    else:
        labels = np.asarray(value).reshape(-1)
        if labels.size == 0:
            labels = labels.astype(np.int64)
        is_int = labels.dtype.kind in 'iu'
    if not is_int:
        example = labels[0] if len(labels) else None
        if hasattr(example, 'item'):  # a NumPy or torch scalar
            example = example.item()
        raise TypeError(f'{name} must be integers (pids or camids, one '
                        f'per item), got dtype {labels.dtype} (e.g. '
                        f'{example!r})')
    if isinstance(labels, np.ndarray):
        # torch cannot view a negative stride (g_pids[::-1]).
        labels = np.ascontiguousarray(labels)
    return torch.as_tensor(labels).long().contiguous()


def _check_option(name: str, value: str, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f'{name} must be one of {choices}, got {value!r}')


def ranking_precision(dist: torch.Tensor) -> torch.Tensor:
    """Distances in the precision they are ranked in.

    float32 and float64 stay as they are (float32 would turn float64
    distances that differ below its resolution into ties); integers become
    float64 (the ranking pads with +inf), exact up to magnitude 2**53
    (:data:`MAX_EXACT_INT_DISTANCE`); halves become float32 (exact; not
    every kernel takes halves).

    Args:
        dist: Distances, shape (Qc, G), any real dtype.

    Returns:
        torch.Tensor: ``dist`` as float32 or float64.

    Raises:
        TypeError: Complex distances (no order to rank by).
        ValueError: Integer distances beyond 2**53 in magnitude, which
            float64 would round; names the largest.
    """
    if dist.is_complex():
        raise TypeError(f'distances must be real, got {dist.dtype}: '
                        'complex numbers have no order to rank by (pass '
                        'their real part or magnitude explicitly)')
    if not dist.is_floating_point():
        if dist.numel() and dist.dtype != torch.bool:
            extreme = max(abs(int(dist.max())), abs(int(dist.min())))
            if extreme > MAX_EXACT_INT_DISTANCE:
                raise ValueError(
                    f'integer distances must lie within +-2**53 = '
                    f'{MAX_EXACT_INT_DISTANCE} to be ranked exactly (as '
                    f'float64), got one of magnitude {extreme}; rescale '
                    'them or pass them as floats')
        return dist.double()
    if dist.dtype in (torch.float16, torch.bfloat16):
        return dist.float()
    return dist


class RankAccumulator:
    """Turn distance rows, streamed chunk by chunk, into rank metrics.

    Feed the rows of the Q x G distance matrix in query order with
    :meth:`update` (any chunk sizes), then call :meth:`result`. Both
    :func:`evaluate_rank` and :func:`evaluate_features` use it, so a
    chunked scorer and a precomputed matrix give identical results.

    Args:
        q_pids: Query pids, shape (Q,).
        g_pids: Gallery pids, shape (G,). pids are compared as they are:
            Market-1501's pid 0 distractors are negatives of every query
            (no query has pid 0 there), and the positives of a pid 0
            query where 0 is an identity (MSMT17's 0-based labels);
            pid -1 junk is ignored under ``'market'`` and
            refused otherwise (and as a query pid), see
            :func:`~.junk_rules.junk_label_gallery`.
        q_camids: Query camids, shape (Q,).
        g_camids: Gallery camids, shape (G,).
        max_rank: Length of the CMC curve.
        junk_rule: ``'market'`` (same pid and camid removed), ``'none'``,
            ``'sysu'`` or a :data:`~.junk_rules.JunkRule` callable.
        tie_policy: ``'stable'``, ``'pessimistic'`` or ``'optimistic'``
            (see the module docstring).
        ap_mode: ``'cumsum'``: AP = mean_j j / r_j under the tie policy;
            ``'threshold'``: sklearn's ``average_precision_score`` on the
            negated distances, which scores a tied block as one threshold
            and ignores the tie policy.
        cmc_mode: ``'standard'`` or ``'dedup'``: CMC on the ranked list
            with repeated pids removed (SYSU-MM01, LLCM); AP and INP always
            use the full list.
        device: Where the rank computation runs; chunks are moved there.
    """

    def __init__(self,
                 q_pids: ArrayLike,
                 g_pids: ArrayLike,
                 q_camids: ArrayLike,
                 g_camids: ArrayLike,
                 max_rank: int = 50,
                 junk_rule: Union[str, JunkRule] = 'market',
                 tie_policy: str = 'stable',
                 ap_mode: str = 'cumsum',
                 cmc_mode: str = 'standard',
                 device: DeviceLike = None) -> None:
        _check_option('tie_policy', tie_policy, TIE_POLICIES)
        _check_option('ap_mode', ap_mode, AP_MODES)
        _check_option('cmc_mode', cmc_mode, CMC_MODES)
        if int(max_rank) < 1:
            raise ValueError(f'max_rank must be >= 1, got {max_rank}')
        self.max_rank = int(max_rank)
        self.junk_rule = get_junk_rule(junk_rule)
        self.tie_policy = tie_policy
        self.ap_mode = ap_mode
        self.cmc_mode = cmc_mode
        self.device = torch.device(device or 'cpu')
        self._since_trim = 0

        self.q_pids = _as_labels(q_pids, 'q_pids')
        self.q_camids = _as_labels(q_camids, 'q_camids')
        self.g_pids = _as_labels(g_pids, 'g_pids').to(self.device)
        self.g_camids = _as_labels(g_camids, 'g_camids').to(self.device)
        if len(self.q_pids) != len(self.q_camids):
            raise ValueError(f'{len(self.q_pids)} query pids but '
                             f'{len(self.q_camids)} query camids')
        if len(self.g_pids) != len(self.g_camids):
            raise ValueError(f'{len(self.g_pids)} gallery pids but '
                             f'{len(self.g_camids)} gallery camids')
        self.num_query = len(self.q_pids)
        self.num_gallery = len(self.g_pids)
        if self.num_gallery == 0:
            raise ValueError('the gallery is empty (0 gallery pids), so '
                             'no query has a positive in the gallery: '
                             f'there is nothing to rank the {self.num_query}'
                             ' queries against')
        # Junk-labelled gallery items are ignored by every query: their
        # columns are dropped from each chunk before it is ranked.
        self._kept_cols = None
        junk = junk_label_gallery(junk_rule, self.q_pids, self.g_pids.cpu())
        if junk is not None:
            self._kept_cols = (~junk).nonzero().flatten().to(self.device)
            self.g_pids = self.g_pids[self._kept_cols]
            self.g_camids = self.g_camids[self._kept_cols]
        # Dense pid indices let the de-duplication use a (Qc, P)
        # occupancy table instead of a sort.
        self._pid_index = (
            GalleryPidIndex.of(self.g_pids) if cmc_mode == 'dedup' else None)
        # A built-in rule that only removes items of the query's own pid
        # has a form on those items alone; the chunks then need no
        # (Qc, G) pid or junk masks. De-duplicated CMC marks pids of
        # negatives, which needs the masks.
        self._local_junk = None
        if cmc_mode == 'standard':
            self._local_junk = same_pid_form(self.junk_rule)
        if self._local_junk is not None:
            self._group_by_pid()
        # The compiled counting kernel (numba) where it applies; the torch
        # search below gives the same results everywhere else.
        self._use_kernel = (
            self.device.type == 'cpu' and count_kernel.available())
        self._num_threads = compute_thread_count()
        # Without masks the kernel reads the original distances.
        self._kernel_checks_nan = (
            self._use_kernel and self._local_junk is not None)
        self._num_seen = 0
        self._chunks = []

    def _group_by_pid(self) -> None:
        """Index the gallery by pid, once.

        A query's same-pid items are then one slice of ``_pid_order``
        (gallery indices sorted by pid, ascending within a pid).
        """
        self._pid_order = torch.sort(self.g_pids, stable=True).indices
        pids, sizes = torch.unique_consecutive(
            self.g_pids[self._pid_order], return_counts=True)
        # One extra empty group for query pids absent from the gallery.
        self._group_sizes = torch.cat([sizes, sizes.new_zeros(1)])
        self._group_starts = self._group_sizes.cumsum(0) - self._group_sizes
        q_pids = self.q_pids.to(self.device)
        group = torch.searchsorted(pids, q_pids).clamp(max=len(pids))
        found = torch.zeros_like(q_pids, dtype=torch.bool)
        if len(pids):
            found = pids[group.clamp(max=len(pids) - 1)] == q_pids
        self._q_group = torch.where(found, group, len(pids)).cpu()

    def update(self, dist: torch.Tensor) -> None:
        """Consume the distance rows of the next queries.

        Args:
            dist: Distances of the next Qc queries to the whole gallery,
                shape (Qc, G); smaller = more similar. Any real dtype.
        """
        if self.device.type != 'cpu':
            self._update(to_tensor(dist))
            return
        # With the kernel, torch only does small or memory-bound passes:
        # one thread, and the kernel's own pool takes the rows.
        with torch_threads(1 if self._use_kernel else self._num_threads):
            self._update(to_tensor(dist))

    def _update(self, dist: torch.Tensor) -> None:
        """:meth:`update` under the chosen torch thread count."""
        start, stop = self._num_seen, self._num_seen + dist.shape[0]
        if dist.ndim != 2 or dist.shape[1] != self.num_gallery:
            raise ValueError(f'expected distances of shape (Qc, '
                             f'{self.num_gallery}), got {tuple(dist.shape)}')
        if stop > self.num_query:
            raise ValueError(f'got distances for {stop} queries, expected '
                             f'{self.num_query}')
        if self._kept_cols is not None:
            dist = dist.index_select(1, self._kept_cols.to(dist.device))
        step = len(dist)
        if self.device.type == 'cpu' and not self._use_kernel:
            # Sub-chunks whose working set stays in cache are fastest; the
            # kernel works row by row anyway.
            step = max(1, CPU_CHUNK_ELEMENTS // max(self.num_gallery, 1))
        parts = []
        for begin in range(0, len(dist), step):
            part = dist[begin:begin + step].to(self.device)
            part = ranking_precision(part)
            # max() propagates NaN and, unlike isnan(), allocates nothing.
            # The kernel checks the rows it reads itself, saving a pass.
            if (not self._kernel_checks_nan and part.numel()
                    and torch.isnan(part.max())):
                raise ValueError(NAN_MESSAGE)
            parts.append(
                self._rank_chunk(part.contiguous(), start + begin,
                                 start + begin + len(part)))
        # A chunk with NaN is rejected whole: nothing of it is kept.
        self._chunks += parts
        self._num_seen = stop
        if self.device.type == 'cpu':
            self._since_trim += dist.numel()
            if self._since_trim >= TRIM_EVERY_ELEMENTS:
                del dist
                release_freed_memory()
                self._since_trim = 0

    def _same_pid_items(self, start: int,
                        stop: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Gallery items sharing each query's pid, read from pid groups.

        Args:
            start: First query of the chunk.
            stop: One past its last query.

        Returns:
            tuple: ``cols`` (Qc, S) gallery indices in ascending order per
            row, padded with 0, and ``is_item`` (Qc, S), False on padding;
            S is the largest group of the chunk's pids.
        """
        group = self._q_group[start:stop].to(self.device)
        sizes = self._group_sizes[group]
        width = int(sizes.max()) if len(sizes) else 0
        slot = torch.arange(width, device=self.device)
        is_item = slot < sizes[:, None]
        index = (self._group_starts[group][:, None] + slot).masked_fill_(
            ~is_item, 0)
        cols = self._pid_order[index].masked_fill_(~is_item, 0)
        return cols, is_item

    def _positives(self, dist: torch.Tensor, start: int,
                   stop: int) -> ChunkPositives:
        """Each query's kept positives and what is not a negative.

        Args:
            dist: Distances, shape (Qc, G).
            start: First query of the chunk.
            stop: One past its last query.

        Returns:
            ChunkPositives: ``num_pos``, ``pos_dist`` and ``pos_idx`` as
            returned by :func:`sort_positives`, then ``not_neg`` (a (Qc,
            G) mask) when the junk rule needs the whole gallery, else
            ``own`` (the same-pid items).
        """
        num_q, num_g = dist.shape
        q_camids = self.q_camids[start:stop].to(self.device)
        if self._local_junk is None:
            q_pids = self.q_pids[start:stop].to(self.device)
            same_pid = q_pids[:, None] == self.g_pids[None, :]
            removed = self.junk_rule(same_pid, q_camids, self.g_camids)
            if removed is None:
                pos, not_neg = same_pid, same_pid
            else:
                pos = same_pid & ~removed
                not_neg = same_pid | removed
            num_pos = torch.count_nonzero(pos, dim=1)
            max_pos = int(num_pos.max()) if num_q else 0
            pos_dist, pos_idx = sort_positives(dist, pos, num_pos, max_pos)
            return ChunkPositives(num_pos, pos_dist, pos_idx, not_neg, None)
        # The rule only removes items of the query's own pid: work on the
        # few same-pid items instead of (Qc, G) masks.
        cols, is_item = self._same_pid_items(start, stop)
        removed = self._local_junk(q_camids, self.g_camids[cols])
        pos = is_item if removed is None else is_item & ~removed
        num_pos = torch.count_nonzero(pos, dim=1)
        max_pos = int(num_pos.max()) if num_q else 0
        pos_dist, slot = sort_positives(
            dist.gather(1, cols), pos, num_pos, max_pos)
        padded = torch.cat([cols, cols.new_full((num_q, 1), num_g)], dim=1)
        pos_idx = padded.gather(1, slot)
        rows = torch.arange(num_q, device=self.device)[:, None]
        own = (rows * num_g + cols)[is_item]
        return ChunkPositives(num_pos, pos_dist, pos_idx, None, own)

    def _rank_chunk(self, dist: torch.Tensor, start: int, stop: int) -> tuple:
        """Ranks of the positives of one query chunk.

        Args:
            dist: Distances, shape (Qc, G), floating point, no NaN.
            start: First query of the chunk.
            stop: One past its last query.

        Returns:
            tuple: ``valid`` (Qc,) bool, ``first_rank`` (Qc,) int64 (the
            CMC rank, de-duplicated in ``'dedup'`` mode), ``ap`` and
            ``inp`` (Qc,) float64; values of invalid queries are 0.
        """
        num_q = dist.shape[0]
        device = dist.device
        chunk = self._positives(dist, start, stop)
        num_pos, pos_dist = chunk.num_pos, chunk.pos_dist
        valid = chunk.valid
        max_pos = chunk.max_pos
        if max_pos == 0:
            if (self._kernel_checks_nan and dist.numel()
                    and torch.isnan(dist.max())):
                raise ValueError(NAN_MESSAGE)
            zeros = torch.zeros(num_q, dtype=torch.float64)
            no_rank = torch.zeros(num_q, dtype=torch.long)
            return valid.cpu(), no_rank, zeros, zeros
        blocks = None
        if self.ap_mode == 'threshold' or (self.tie_policy != 'pessimistic'
                                           and not self._use_kernel):
            blocks = tie_blocks(pos_dist[:, :max_pos], chunk.is_real)
        seen = None
        if self._use_kernel:
            before, before_pessimistic, first_rank = kernel_counts(
                dist, chunk, self.tie_policy, self.ap_mode, self._pid_index,
                self._num_threads, self._kernel_checks_nan)
        else:
            hist, hist_pessimistic, seen = search_counts(
                dist, chunk, blocks, self.tie_policy, self.ap_mode,
                self._pid_index, DENSE_SEARCH_FRACTION)
            # A negative in bucket b precedes exactly the positives j > b.
            before = hist[:, :max_pos].cumsum(dim=1)
            before_pessimistic = before
            if hist_pessimistic is not hist:
                before_pessimistic = hist_pessimistic[:, :max_pos].cumsum(
                    dim=1)

        # r_j = j + #negatives before the j-th positive (1-based j).
        positions = torch.arange(
            1, max_pos + 1, device=device, dtype=torch.long)
        ranks = before + positions
        if self.cmc_mode == 'standard':
            first_rank = ranks[:, 0]
        elif not self._use_kernel:
            first_rank = 1 + seen.sum(dim=1)
        if self.ap_mode == 'cumsum':
            precision = positions.double() / ranks.double()
        else:
            # sklearn's AP sums, over distinct positive distances, the
            # recall step times the precision at that threshold, i.e. the
            # pessimistic precision at the end of each tied block.
            ranks_p = before_pessimistic + positions
            block_end = torch.searchsorted(blocks, blocks, right=True) - 1
            precision = (positions.double() / ranks_p.double()).gather(
                1, block_end)
        last = (num_pos - 1).clamp(min=0)[:, None]
        # A row sum would change its summation order with the padded
        # width, i.e. with the chunking; a running sum read at the last
        # real positive gives the same bits for any chunk size.
        ap = precision.cumsum(dim=1).gather(1, last).squeeze(1)
        ap /= num_pos.double().clamp(min=1)
        inp = num_pos.double() / ranks.gather(1, last).squeeze(1).double()
        zero = torch.zeros((), dtype=torch.float64, device=device)
        ap = torch.where(valid, ap, zero)
        inp = torch.where(valid, inp, zero)
        first_rank = torch.where(valid, first_rank, 0)
        return valid.cpu(), first_rank.cpu(), ap.cpu(), inp.cpu()

    def result(self) -> ReIDEvalResult:
        """Aggregate the consumed chunks.

        Returns:
            ReIDEvalResult: The metrics as fractions.
        """
        if self._num_seen != self.num_query:
            raise RuntimeError(f'distances were given for {self._num_seen} '
                               f'of {self.num_query} queries')
        if self.num_query == 0:
            raise ValueError('there is no query to evaluate')
        valid, first_rank, ap, inp = (
            torch.cat(parts) for parts in zip(*self._chunks))
        num_valid = int(valid.sum())
        if num_valid == 0:
            raise ValueError('no query has a positive in the gallery after '
                             'the junk rule; check the pids, camids and '
                             'query/gallery roles')
        all_first_rank = first_rank[valid]
        hits = torch.bincount(
            all_first_rank.clamp(max=self.max_rank + 1),
            minlength=self.max_rank + 2)
        # CMC(k) = 1[r_1 <= k]: ranks beyond a short gallery still count
        # as hits at every larger k (no stale tail values).
        cmc = hits[1:self.max_rank + 1].cumsum(0).double() / num_valid
        all_ap = ap[valid].numpy()
        all_inp = inp[valid].numpy()
        return ReIDEvalResult(
            cmc=cmc.numpy(),
            mAP=float(all_ap.mean()),
            mINP=float(all_inp.mean()),
            all_AP=all_ap,
            all_INP=all_inp,
            num_query=self.num_query,
            num_valid_query=num_valid,
            valid_mask=valid.numpy(),
            all_first_rank=all_first_rank.numpy())


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

    Per query, the gallery items removed by ``junk_rule`` are ignored (under
    ``'market'`` also every gallery item of pid -1, Market-1501's junk
    label; a pid -1 query is refused, see
    :func:`~.junk_rules.junk_label_gallery`); the rest is ordered by
    ascending distance under ``tie_policy`` (default ``'stable'``:
    ascending (distance, gallery index)). Queries with no
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
