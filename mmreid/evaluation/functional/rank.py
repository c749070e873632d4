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
from .junk_rules import JunkRule, get_junk_rule, same_pid_form
from .positives import RaggedSearch, TieResolver, sort_positives, tie_blocks

DeviceLike = Union[str, torch.device, None]

TIE_POLICIES = ('stable', 'pessimistic', 'optimistic')
NAN_MESSAGE = 'the distance matrix contains NaN'
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
    """
    cmc: np.ndarray
    mAP: float
    mINP: float
    all_AP: np.ndarray
    all_INP: np.ndarray
    num_query: int
    num_valid_query: int
    valid_mask: np.ndarray

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
    """Convert pids or camids to a 1-D int64 tensor."""
    if isinstance(value, torch.Tensor):
        labels = value.detach()
    else:
        labels = torch.as_tensor(np.asarray(value))
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f'{name} must be integers, got {labels.dtype}')
    return labels.reshape(-1).long()


def _check_option(name: str, value: str, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f'{name} must be one of {choices}, got {value!r}')


class RankAccumulator:
    """Turn distance rows, streamed chunk by chunk, into rank metrics.

    Feed the rows of the Q x G distance matrix in query order with
    :meth:`update` (any chunk sizes), then call :meth:`result`. Both
    :func:`evaluate_rank` and :func:`evaluate_features` use it, so a
    chunked scorer and a precomputed matrix give identical results.

    Args:
        q_pids: Query pids, shape (Q,).
        g_pids: Gallery pids, shape (G,). pid 0 distractors are ordinary
            negatives.
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
        if cmc_mode == 'dedup':
            # Dense pid indices let the de-duplication use a (Qc, P)
            # occupancy table instead of a sort.
            uniques, self.g_pid_index = torch.unique(
                self.g_pids, return_inverse=True)
            self.num_g_pids = len(uniques)
            self._g_pid_index_np = np.ascontiguousarray(
                self.g_pid_index.cpu().numpy())
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
        step = len(dist)
        if self.device.type == 'cpu' and not self._use_kernel:
            # Sub-chunks whose working set stays in cache are fastest; the
            # kernel works row by row anyway.
            step = max(1, CPU_CHUNK_ELEMENTS // max(self.num_gallery, 1))
        parts = []
        for begin in range(0, len(dist), step):
            part = dist[begin:begin + step].to(self.device)
            if not part.is_floating_point():
                # Exact for integers below 2**53; the search needs floats
                # to pad with +inf.
                part = part.double()
            elif part.dtype in (torch.float16, torch.bfloat16):
                part = part.float()  # exact; not every kernel takes halves
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

    def _positives(self, dist: torch.Tensor, start: int, stop: int) -> tuple:
        """Each query's kept positives and what is not a negative.

        Args:
            dist: Distances, shape (Qc, G).
            start: First query of the chunk.
            stop: One past its last query.

        Returns:
            tuple: ``num_pos`` (Qc,), ``pos_dist`` (Qc, M + 1) and
            ``pos_idx`` (Qc, M) as returned by :func:`sort_positives`,
            then ``not_neg``: a (Qc, G) mask of the positives and removed
            items when the junk rule needs the whole gallery, else None
            and ``own``: the flat indices (K,) of every item sharing its
            query's pid, which are then the only non-negatives.
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
            return num_pos, pos_dist, pos_idx, not_neg, None
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
        return num_pos, pos_dist, pos_idx, None, own

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
        num_pos, pos_dist, pos_idx, not_neg, own = self._positives(
            dist, start, stop)
        valid = num_pos > 0
        max_pos = pos_idx.shape[1]
        if max_pos == 0:
            if (self._kernel_checks_nan and dist.numel()
                    and torch.isnan(dist.max())):
                raise ValueError(NAN_MESSAGE)
            zeros = torch.zeros(num_q, dtype=torch.float64)
            no_rank = torch.zeros(num_q, dtype=torch.long)
            return valid.cpu(), no_rank, zeros, zeros
        is_real = torch.arange(max_pos, device=device) < num_pos[:, None]
        blocks = None
        if self.ap_mode == 'threshold' or (self.tie_policy != 'pessimistic'
                                           and not self._use_kernel):
            blocks = tie_blocks(pos_dist[:, :max_pos], is_real)
        seen = None
        if self._use_kernel:
            before, before_pessimistic, first_rank = self._kernel_counts(
                dist, not_neg, own, num_pos, pos_dist, pos_idx, is_real)
        else:
            hist, hist_pessimistic, seen = self._histograms(
                dist, not_neg, own, valid, num_pos, pos_dist, pos_idx, is_real,
                blocks)
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

    def _kernel_counts(self, dist: torch.Tensor,
                       not_neg: Optional[torch.Tensor],
                       own: Optional[torch.Tensor], num_pos: torch.Tensor,
                       pos_dist: torch.Tensor, pos_idx: torch.Tensor,
                       is_real: torch.Tensor) -> tuple:
        """Negatives before each positive, counted by the compiled kernel.

        Args:
            dist: Distances, shape (Qc, G), float32 or float64 on the CPU.
            not_neg: Positives and removed items, shape (Qc, G), or None
                when ``own`` lists them.
            own: Flat indices of the same-pid items, shape (K,), or None.
                The kernel counts every item; their counts are taken back.
            num_pos: Positives per query, shape (Qc,).
            pos_dist: Sorted positive distances, +inf padded, (Qc, M + 1).
            pos_idx: Their gallery indices, shape (Qc, M).
            is_real: False on padding, shape (Qc, M).

        Returns:
            tuple: ``before`` (Qc, M), the negatives ranked before each
            positive under the tie policy, and the same under the
            pessimistic policy (the same tensor unless ``ap_mode`` is
            ``'threshold'``); int64, 0 on padding. Then, in ``'dedup'``
            mode, the de-duplicated CMC rank (Qc,) (else None).
        """
        num_g = dist.shape[1]
        max_pos = is_real.shape[1]
        values = dist
        if not_neg is not None:
            # NaN fails every comparison: only negatives are counted.
            values = dist.masked_fill(not_neg, float('nan'))
        values = values.numpy()
        positives = np.ascontiguousarray(pos_dist[:, :max_pos].numpy())
        counts = num_pos.numpy()
        lt, le, has_nan = count_kernel.count_below(values, positives, counts,
                                                   self._num_threads)
        if self._kernel_checks_nan and has_nan.any():
            raise ValueError(NAN_MESSAGE)
        lt, le = torch.from_numpy(lt), torch.from_numpy(le)
        if own is not None:
            rows = own // num_g
            own_dist = dist.view(-1)[own][:, None]
            own_pos = pos_dist[rows, :max_pos]
            real = is_real[rows]
            lt.index_add_(0, rows, -((own_dist < own_pos) & real).long())
            le.index_add_(0, rows, -((own_dist <= own_pos) & real).long())
        if self.tie_policy == 'pessimistic':
            before = le
        elif self.tie_policy == 'optimistic':
            before = lt
        else:
            # A tied negative precedes the tied positives of higher index.
            before = lt.clone()
            tied_rows = (le > lt).any(dim=1).nonzero().squeeze(1)
            if tied_rows.numel():
                picked = tied_rows.numpy()
                tied = torch.from_numpy(
                    count_kernel.count_tied_before(
                        values[picked], positives[picked],
                        np.ascontiguousarray(pos_idx.numpy()[picked]),
                        counts[picked], self._num_threads))
                if own is not None:
                    # Same-pid items of the tied rows, taken back.
                    in_tied = torch.zeros(
                        len(dist), dtype=torch.long).index_fill_(
                            0, tied_rows, 1).cumsum(0) - 1
                    keep = torch.isin(rows, tied_rows)
                    own_dist, own_pos = own_dist[keep], own_pos[keep]
                    cols = (own[keep] - rows[keep] * num_g)[:, None]
                    own_tied = ((own_dist == own_pos)
                                & (cols < pos_idx[rows[keep]])
                                & real[keep])
                    tied.index_add_(0, in_tied[rows[keep]], -own_tied.long())
                before[tied_rows] += tied
        before_pessimistic = le if self.ap_mode == 'threshold' else before
        first_rank = None
        if self.cmc_mode == 'dedup':
            # Masks are built in this mode: ``values`` holds negatives only.
            first_idx = torch.where(num_pos > 0, pos_idx[:, 0], -1)
            first_rank = 1 + torch.from_numpy(
                count_kernel.count_pids_before_first(
                    values, np.ascontiguousarray(positives[:, 0]),
                    first_idx.numpy(), self._g_pid_index_np, self.num_g_pids,
                    self.tie_policy, self._num_threads))
        return before, before_pessimistic, first_rank

    def _histograms(self, dist: torch.Tensor, not_neg: Optional[torch.Tensor],
                    own: Optional[torch.Tensor], valid: torch.Tensor,
                    num_pos: torch.Tensor, pos_dist: torch.Tensor,
                    pos_idx: torch.Tensor, is_real: torch.Tensor,
                    blocks: Optional[torch.Tensor]) -> tuple:
        """Count the negatives of each query by bucket.

        Args:
            dist: Distances, shape (Qc, G).
            not_neg: Positives and removed items, shape (Qc, G), or None
                when ``own`` lists them.
            own: Flat indices of the same-pid items, shape (K,), or None.
                They are placed like every other item and their counts
                taken back, which removes exactly what they added.
            valid: Queries with a positive, shape (Qc,).
            num_pos: Positives per query, shape (Qc,).
            pos_dist: Sorted positive distances, +inf padded, (Qc, M + 1).
            pos_idx: Their gallery indices, shape (Qc, M).
            is_real: False on padding, shape (Qc, M).
            blocks: Tie-block ids, shape (Qc, M), or None when neither the
                tie policy nor the AP mode needs them.

        Returns:
            tuple: ``hist`` (Qc, M + 2) under the tie policy,
            ``hist_pessimistic`` (the same tensor unless ``ap_mode`` is
            ``'threshold'`` and the policy is not pessimistic) and, in
            ``'dedup'`` mode, ``seen`` (Qc, P): which pids have an item
            before the first positive (else None).
        """
        num_q, num_g = dist.shape
        max_pos = is_real.shape[1]
        device = dist.device
        # Negatives beyond the last positive follow them all and change no
        # rank: only those up to it are placed, a small fraction of the
        # gallery for any useful model. Invalid queries get the bound
        # -inf; their counts are discarded.
        neg_inf = torch.tensor(float('-inf'), dtype=dist.dtype, device=device)
        last_pos = torch.where(
            valid,
            pos_dist.gather(1, (num_pos - 1).clamp(min=0)[:, None])[:, 0],
            neg_inf)[:, None]
        window = dist <= last_pos
        if not_neg is not None:
            window.masked_fill_(not_neg, False)
        if window.device.type == 'cpu':
            # numpy's flatnonzero is faster than torch's nonzero here
            # (docs/benchmarks.md, "Evaluation speed and memory").
            in_window = torch.from_numpy(np.flatnonzero(window.numpy()))
        else:
            in_window = window.view(-1).nonzero().squeeze(1)
        del window
        flat_dist = dist.view(-1)
        if own is not None:
            own = own[flat_dist[own] <= last_pos.view(-1)[own // num_g]]

        # hist[q, b]: negatives of query q with b positives before them;
        # b = M + 1 is never used, it keeps rows apart.
        stride = max_pos + 2
        size = num_q * stride
        hist = torch.zeros(size, dtype=torch.long, device=device)
        hist_pessimistic = hist.clone() if (
            self.ap_mode == 'threshold'
            and self.tie_policy != 'pessimistic') else None
        seen = None
        if self.cmc_mode == 'dedup':
            seen = torch.zeros(
                num_q * self.num_g_pids, dtype=torch.bool, device=device)

        if in_window.numel() > DENSE_SEARCH_FRACTION * dist.numel():
            # A weak model leaves most of the gallery before its last
            # positive; one search per row is then cheaper.
            dense_bucket = torch.searchsorted(
                pos_dist, dist, out_int32=True).view(-1)
            search = None
        else:
            dense_bucket = None
            search = RaggedSearch(pos_dist, is_real)
        resolver = []  # built on the first tie

        flat_pos_dist = pos_dist.view(-1)

        def place(flat: torch.Tensor, sign: int) -> None:
            rows = flat // num_g
            # index_select is several times faster than x[index] here.
            values = flat_dist.index_select(0, flat)
            if dense_bucket is None:
                bucket = search.count_below(rows, values)
            else:
                bucket = dense_bucket.index_select(0, flat).long()
            if hist_pessimistic is not None:
                hist_pessimistic.add_(
                    torch.bincount(rows * stride + bucket, minlength=size),
                    alpha=sign)
            if self.tie_policy != 'pessimistic':
                # d <= last positive, so bucket indexes a real positive.
                at = rows * (max_pos + 1) + bucket
                tied = flat_pos_dist.index_select(0, at) == values
                # Ties are rare in real distances: any() is cheaper than
                # an empty nonzero().
                if tied.any():
                    tied = tied.nonzero().squeeze(1)
                    if not resolver:
                        resolver.append(
                            TieResolver(blocks, pos_idx, num_g,
                                        self.tie_policy))
                    tie_rows = rows[tied]
                    bucket[tied] = resolver[0].buckets(
                        tie_rows, flat[tied] - tie_rows * num_g, bucket[tied])
            hist.add_(
                torch.bincount(rows * stride + bucket, minlength=size),
                alpha=sign)
            if seen is not None:
                self._mark_pids(seen, flat[bucket == 0], num_g)

        # Slices bound the per-item temporaries to a fraction of the
        # chunk even when most of the gallery lies in the window.
        slice_len = max(1, dist.numel() // 8)
        for begin in range(0, in_window.numel(), slice_len):
            place(in_window[begin:begin + slice_len], 1)
        if own is not None and own.numel():
            place(own, -1)
        del in_window
        hist = hist.view(num_q, stride)
        if hist_pessimistic is None:
            hist_pessimistic = hist
        else:
            hist_pessimistic = hist_pessimistic.view(num_q, stride)
        if seen is not None:
            seen = seen.view(num_q, self.num_g_pids)
        return hist, hist_pessimistic, seen

    def _mark_pids(self, seen: torch.Tensor, flat: torch.Tensor,
                   num_g: int) -> None:
        """Mark the pids of some chunk items in a (Qc, P) table.

        Args:
            seen: Flat occupancy table, shape (Qc * P,), updated in place.
            flat: Flat indices ``row * G + col`` of the items, shape (K,).
            num_g: Gallery size G.
        """
        rows = flat // num_g
        pid_index = self.g_pid_index[flat - rows * num_g]
        seen[rows * self.num_g_pids + pid_index] = True

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
        first_rank = first_rank[valid].clamp(max=self.max_rank + 1)
        hits = torch.bincount(first_rank, minlength=self.max_rank + 2)
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
            valid_mask=valid.numpy())
