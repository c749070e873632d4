"""Negatives ranked before each positive: the two exact counting paths.

:class:`~.rank.RankAccumulator` needs, per query of a chunk, how many
negatives come before each of its sorted positives (under the tie policy).
Two paths give the same numbers:

- :func:`kernel_counts`: the compiled numba kernel (:mod:`.count_kernel`)
  scans each distance row once per positive, on the CPU.
- :func:`search_counts`: the torch search (no numba, CUDA). Each negative
  up to the query's last positive is summarised by its *bucket*, the
  number of positives before it; a per-query histogram of the buckets,
  cumulated, gives the counts (see the module docstring of :mod:`.rank`).

Both take the chunk's positives as one :class:`ChunkPositives` and the
gallery's dense pid index (:class:`GalleryPidIndex`) when CMC is
de-duplicated.
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch

from . import count_kernel
from .positives import RaggedSearch, TieResolver

#: The message of a distance row with NaN.
NAN_MESSAGE = 'the distance matrix contains NaN'


@dataclass
class ChunkPositives:
    """The kept positives of one query chunk and what is not a negative.

    Attributes:
        num_pos (Tensor): Positives per query, shape (Qc,).
        pos_dist (Tensor): Their distances, sorted, ``+inf`` padded, shape
            (Qc, M + 1).
        pos_idx (Tensor): Their gallery indices, shape (Qc, M).
        not_neg (Tensor, optional): Positives and removed items, shape
            (Qc, G), when the junk rule needs the whole gallery; else None
            and ``own`` lists them.
        own (Tensor, optional): Flat indices ``row * G + col`` (K,) of
            every item sharing its query's pid, grouped by row in
            ascending row order, the only non-negatives when ``not_neg``
            is None. Both paths count them like negatives and take their
            counts back, which cancels them exactly.
    """
    num_pos: torch.Tensor
    pos_dist: torch.Tensor
    pos_idx: torch.Tensor
    not_neg: Optional[torch.Tensor]
    own: Optional[torch.Tensor]

    @property
    def max_pos(self) -> int:
        """M, the padded number of positives per query."""
        return self.pos_idx.shape[1]

    @property
    def valid(self) -> torch.Tensor:
        """Queries with a positive, shape (Qc,)."""
        return self.num_pos > 0

    @property
    def is_real(self) -> torch.Tensor:
        """False on padding, shape (Qc, M)."""
        return (torch.arange(self.max_pos, device=self.num_pos.device)
                < self.num_pos[:, None])


@dataclass(frozen=True)
class GalleryPidIndex:
    """Dense pid indices of the gallery, for de-duplicated CMC.

    Attributes:
        index (Tensor): Index in ``[0, P)`` of each item's pid, shape (G,).
        index_np (np.ndarray): The same, contiguous, for the kernel.
        num_pids (int): P, the number of distinct gallery pids.
    """
    index: torch.Tensor
    index_np: np.ndarray
    num_pids: int

    @classmethod
    def of(cls, g_pids: torch.Tensor) -> 'GalleryPidIndex':
        """Index the pids (G,) of a gallery."""
        uniques, index = torch.unique(g_pids, return_inverse=True)
        return cls(index, np.ascontiguousarray(index.cpu().numpy()),
                   len(uniques))


class OwnItems:
    """A chunk's same-pid items, placed among their query's positives.

    The kernel counts a query's same-pid items like negatives; they are
    taken back per positive. Laid out by row (Qc, S), S the most same-pid
    items of a query, one sorted search of each row's positives places
    them all: O(Qc x (S + M)) memory, never an (items x positives) table.
    Each count is read off a difference table cumulated along the
    positives.

    Args:
        dist: Distances, shape (Qc, G).
        chunk: The chunk's positives, with ``own`` set.

    Attributes:
        first_at (Tensor): Index of each item's first positive at or
            beyond its distance (``d <= pos[j]`` from there), (Qc, S).
        after (Tensor): Index of its first positive beyond it (``d <
            pos[j]`` from there), (Qc, S).
    """

    def __init__(self, dist: torch.Tensor, chunk: ChunkPositives) -> None:
        num_q, self.num_g = dist.shape
        self.chunk = chunk
        own = chunk.own
        rows = own // self.num_g
        per_row = torch.bincount(rows, minlength=num_q)
        width = int(per_row.max()) if own.numel() else 0
        # ``own`` is grouped by row: its slot is its place in the group.
        slot = torch.arange(
            own.numel(),
            device=own.device) - (per_row.cumsum(0) - per_row)[rows]
        self.cols = own.new_zeros((num_q, width))
        self.cols[rows, slot] = own - rows * self.num_g
        own_dist = dist.new_zeros((num_q, width))
        own_dist[rows, slot] = dist.view(-1)[own]
        # Padding and NaN (which compares false) take nothing back.
        self.valid = torch.arange(width, device=own.device) < per_row[:, None]
        self.valid &= ~own_dist.isnan()
        pos_dist = chunk.pos_dist.contiguous()
        self.first_at = torch.searchsorted(pos_dist, own_dist)
        self.after = torch.searchsorted(pos_dist, own_dist, right=True)

    def counts_from(self,
                    start: torch.Tensor,
                    valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per positive, the items whose ``start`` is at or before it.

        Args:
            start: Each item's first positive counted, shape (Qc, S).
            valid: The items to count, default every real item.

        Returns:
            torch.Tensor: int64 counts, shape (Qc, M), 0 on padding.
        """
        max_pos = self.chunk.max_pos
        valid = self.valid if valid is None else valid
        index = start.clamp(max=max_pos).masked_fill_(~valid, max_pos)
        table = torch.zeros((len(start), max_pos + 1),
                            dtype=torch.long,
                            device=start.device)
        table.scatter_add_(1, index,
                           torch.ones_like(table[:1, :1]).expand_as(index))
        del index
        return table.cumsum_(1)[:, :max_pos] * self.chunk.is_real

    def tied_before(self) -> torch.Tensor:
        """Per positive, the items equal to it with a lower gallery index
        (the stable policy's tied items), int64, shape (Qc, M)."""
        chunk = self.chunk
        span = self.num_g + 1
        # Positives sort by (distance, index): with the start of their tie
        # block as the distance, the key block * (G + 1) + index strictly
        # increases along a row; padding sorts last.
        real_dist = chunk.pos_dist[:, :chunk.max_pos].contiguous()
        pos_key = torch.searchsorted(chunk.pos_dist.contiguous(), real_dist)
        pos_key = (pos_key * span + chunk.pos_idx).masked_fill_(
            ~chunk.is_real, (chunk.max_pos + 1) * span)
        # An item tied with positives [first_at, after) precedes those of
        # its block with a higher index: from the first key above its own.
        higher = torch.searchsorted(
            pos_key, self.first_at * span + self.cols, right=True)
        tied = self.valid & (self.first_at < self.after)
        return self.counts_from(higher, tied) - self.counts_from(
            self.after, tied)


def kernel_counts(dist: torch.Tensor, chunk: ChunkPositives, tie_policy: str,
                  ap_mode: str, pid_index: Optional[GalleryPidIndex],
                  num_threads: int, check_nan: bool) -> tuple:
    """Negatives before each positive, counted by the compiled kernel.

    Args:
        dist: Distances, shape (Qc, G), float32 or float64 on the CPU.
        chunk: The chunk's positives.
        tie_policy: ``'stable'``, ``'pessimistic'`` or ``'optimistic'``.
        ap_mode: ``'cumsum'`` or ``'threshold'``.
        pid_index: The gallery's pid index in ``'dedup'`` CMC mode, else
            None.
        num_threads: Threads of the kernel.
        check_nan: Raise on NaN in the rows the kernel reads (the caller
            did not check them). Only without ``chunk.not_neg``: the
            masked rows mark non-negatives with NaN.

    Returns:
        tuple: ``before`` (Qc, M), the negatives ranked before each
        positive under the tie policy, and the same under the pessimistic
        policy (the same tensor unless ``ap_mode`` is ``'threshold'``);
        int64, 0 on padding. Then, with ``pid_index``, the de-duplicated
        CMC rank (Qc,) (else None).
    """
    max_pos = chunk.max_pos
    num_pos, pos_dist, pos_idx = chunk.num_pos, chunk.pos_dist, chunk.pos_idx
    own = chunk.own
    values = dist
    if chunk.not_neg is not None:
        # NaN fails every comparison: only negatives are counted.
        values = dist.masked_fill(chunk.not_neg, float('nan'))
    values = values.numpy()
    positives = np.ascontiguousarray(pos_dist[:, :max_pos].numpy())
    counts = num_pos.numpy()
    lt, le, has_nan = count_kernel.count_below(values, positives, counts,
                                               num_threads)
    if check_nan and has_nan.any():
        raise ValueError(NAN_MESSAGE)
    lt, le = torch.from_numpy(lt), torch.from_numpy(le)
    own_items = None
    if own is not None:
        own_items = OwnItems(dist, chunk)
        lt -= own_items.counts_from(own_items.after)
        le -= own_items.counts_from(own_items.first_at)
    if tie_policy == 'pessimistic':
        before = le
    elif tie_policy == 'optimistic':
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
                    counts[picked], num_threads))
            if own_items is not None:
                # Same-pid items of the tied rows, taken back.
                tied -= own_items.tied_before()[tied_rows]
            before[tied_rows] += tied
    before_pessimistic = le if ap_mode == 'threshold' else before
    first_rank = None
    if pid_index is not None:
        # Masks are built in this mode: ``values`` holds negatives only.
        first_idx = torch.where(num_pos > 0, pos_idx[:, 0], -1)
        first_rank = 1 + torch.from_numpy(
            count_kernel.count_pids_before_first(
                values, np.ascontiguousarray(
                    positives[:, 0]), first_idx.numpy(), pid_index.index_np,
                pid_index.num_pids, tie_policy, num_threads))
    return before, before_pessimistic, first_rank


def items_to_place(
        dist: torch.Tensor,
        chunk: ChunkPositives) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The items of each query up to its last positive.

    Negatives beyond the last positive follow them all and change no rank:
    only those up to it are placed, a small fraction of the gallery for any
    useful model. Invalid queries get the bound -inf; their counts are
    discarded.

    Args:
        dist: Distances, shape (Qc, G).
        chunk: The chunk's positives.

    Returns:
        tuple: ``in_window`` (K,), the flat indices of the negatives (and,
        when ``chunk.own`` is set, same-pid items) at or before their
        query's last positive, ascending, and ``own`` (K',): the same-pid
        items among them, or None.
    """
    num_g = dist.shape[1]
    neg_inf = torch.tensor(float('-inf'), dtype=dist.dtype, device=dist.device)
    last = (chunk.num_pos - 1).clamp(min=0)[:, None]
    last_pos = torch.where(chunk.valid,
                           chunk.pos_dist.gather(1, last)[:, 0], neg_inf)[:,
                                                                          None]
    window = dist <= last_pos
    if chunk.not_neg is not None:
        window.masked_fill_(chunk.not_neg, False)
    if window.device.type == 'cpu':
        # numpy's flatnonzero is faster than torch's nonzero here.
        in_window = torch.from_numpy(np.flatnonzero(window.numpy()))
    else:
        in_window = window.view(-1).nonzero().squeeze(1)
    del window
    own = chunk.own
    if own is not None:
        own = own[dist.view(-1)[own] <= last_pos.view(-1)[own // num_g]]
    return in_window, own


class NegativeHistogram:
    """Per-query histograms of the buckets of placed items.

    ``hist[q, b]`` counts the negatives of query ``q`` with ``b``
    positives before them under the tie policy; ``b = M + 1`` is never
    used, it keeps the rows apart in the flat table.

    Args:
        dist: Distances, shape (Qc, G).
        chunk: The chunk's positives.
        blocks: Tie-block ids (Qc, M), or None when neither the tie policy
            nor the AP mode needs them.
        tie_policy: ``'stable'``, ``'pessimistic'`` or ``'optimistic'``.
        count_pessimistic: Also keep the histogram under the pessimistic
            policy (``ap_mode='threshold'`` with another policy).
        pid_index: The gallery's pid index in ``'dedup'`` CMC mode: the
            pids with an item before the first positive are then marked.
        dense: Bucket the items by one search of every row (a weak model
            leaves most of the gallery before its last positive) instead
            of a ragged search per placed item.
    """

    def __init__(self, dist: torch.Tensor, chunk: ChunkPositives,
                 blocks: Optional[torch.Tensor], tie_policy: str,
                 count_pessimistic: bool, pid_index: Optional[GalleryPidIndex],
                 dense: bool) -> None:
        num_q, self.num_g = dist.shape
        device = dist.device
        self.max_pos = chunk.max_pos
        self.stride = self.max_pos + 2
        self.size = num_q * self.stride
        self.num_q = num_q
        self.flat_dist = dist.view(-1)
        self.flat_pos_dist = chunk.pos_dist.view(-1)
        self.pos_idx = chunk.pos_idx
        self.blocks = blocks
        self.tie_policy = tie_policy
        self.pid_index = pid_index
        self.hist = torch.zeros(self.size, dtype=torch.long, device=device)
        self.hist_pessimistic = self.hist.clone() \
            if count_pessimistic else None
        self.seen = None
        if pid_index is not None:
            self.seen = torch.zeros(
                num_q * pid_index.num_pids, dtype=torch.bool, device=device)
        if dense:
            self.dense_bucket = torch.searchsorted(
                chunk.pos_dist, dist, out_int32=True).view(-1)
            self.search = None
        else:
            self.dense_bucket = None
            self.search = RaggedSearch(chunk.pos_dist, chunk.is_real)
        self._resolver: Optional[TieResolver] = None  # built on first tie

    def place(self, flat: torch.Tensor, sign: int) -> None:
        """Add (``sign=1``) or take back (``-1``) items to the histograms.

        Args:
            flat: Flat indices ``row * G + col`` of the items, shape (K,),
                each at or before its query's last positive.
            sign: 1 or -1.
        """
        rows = flat // self.num_g
        # index_select is several times faster than x[index] here.
        values = self.flat_dist.index_select(0, flat)
        bucket = self._buckets(flat, rows, values)
        if self.hist_pessimistic is not None:
            self._add(self.hist_pessimistic, rows, bucket, sign)
        if self.tie_policy != 'pessimistic':
            self._resolve_ties(flat, rows, values, bucket)
        self._add(self.hist, rows, bucket, sign)
        if self.seen is not None:
            self._mark_pids(flat[bucket == 0])

    def _buckets(self, flat: torch.Tensor, rows: torch.Tensor,
                 values: torch.Tensor) -> torch.Tensor:
        """Positives strictly before each item (pessimistic ties), (K,)."""
        if self.dense_bucket is None:
            return self.search.count_below(rows, values)
        return self.dense_bucket.index_select(0, flat).long()

    def _add(self, hist: torch.Tensor, rows: torch.Tensor,
             bucket: torch.Tensor, sign: int) -> None:
        hist.add_(
            torch.bincount(rows * self.stride + bucket, minlength=self.size),
            alpha=sign)

    def _resolve_ties(self, flat: torch.Tensor, rows: torch.Tensor,
                      values: torch.Tensor, bucket: torch.Tensor) -> None:
        """Move items tied with a positive to their policy's bucket, in
        place."""
        # d <= last positive, so bucket indexes a real positive.
        at = rows * (self.max_pos + 1) + bucket
        tied = self.flat_pos_dist.index_select(0, at) == values
        # Ties are rare in real distances: any() is cheaper than an empty
        # nonzero().
        if not tied.any():
            return
        tied = tied.nonzero().squeeze(1)
        if self._resolver is None:
            self._resolver = TieResolver(self.blocks, self.pos_idx, self.num_g,
                                         self.tie_policy)
        tie_rows = rows[tied]
        bucket[tied] = self._resolver.buckets(
            tie_rows, flat[tied] - tie_rows * self.num_g, bucket[tied])

    def _mark_pids(self, flat: torch.Tensor) -> None:
        """Mark the pids of some chunk items in the (Qc, P) table."""
        rows = flat // self.num_g
        pid_index = self.pid_index.index[flat - rows * self.num_g]
        self.seen[rows * self.pid_index.num_pids + pid_index] = True

    def result(self) -> tuple:
        """``hist`` (Qc, M + 2), ``hist_pessimistic`` (the same tensor
        unless counted apart) and ``seen`` (Qc, P) or None."""
        hist = self.hist.view(self.num_q, self.stride)
        hist_pessimistic = hist
        if self.hist_pessimistic is not None:
            hist_pessimistic = self.hist_pessimistic.view(
                self.num_q, self.stride)
        seen = self.seen
        if seen is not None:
            seen = seen.view(self.num_q, self.pid_index.num_pids)
        return hist, hist_pessimistic, seen


def search_counts(dist: torch.Tensor, chunk: ChunkPositives,
                  blocks: Optional[torch.Tensor], tie_policy: str,
                  ap_mode: str, pid_index: Optional[GalleryPidIndex],
                  dense_search_fraction: float) -> tuple:
    """Count the negatives of each query by bucket (the torch search).

    Args:
        dist: Distances, shape (Qc, G).
        chunk: The chunk's positives.
        blocks: Tie-block ids, shape (Qc, M), or None when neither the tie
            policy nor the AP mode needs them.
        tie_policy: ``'stable'``, ``'pessimistic'`` or ``'optimistic'``.
        ap_mode: ``'cumsum'`` or ``'threshold'``.
        pid_index: The gallery's pid index in ``'dedup'`` CMC mode, else
            None.
        dense_search_fraction: Above this fraction of the chunk placed,
            every row is searched once instead of each placed item.

    Returns:
        tuple: ``hist`` (Qc, M + 2) under the tie policy,
        ``hist_pessimistic`` (the same tensor unless ``ap_mode`` is
        ``'threshold'`` and the policy is not pessimistic) and, with
        ``pid_index``, ``seen`` (Qc, P): which pids have an item before
        the first positive (else None).
    """
    in_window, own = items_to_place(dist, chunk)
    histogram = NegativeHistogram(
        dist,
        chunk,
        blocks,
        tie_policy,
        count_pessimistic=(ap_mode == 'threshold'
                           and tie_policy != 'pessimistic'),
        pid_index=pid_index,
        dense=in_window.numel() > dense_search_fraction * dist.numel())
    # Slices bound the per-item temporaries to a fraction of the chunk
    # even when most of the gallery lies in the window.
    slice_len = max(1, dist.numel() // 8)
    for begin in range(0, in_window.numel(), slice_len):
        histogram.place(in_window[begin:begin + slice_len], 1)
    if own is not None and own.numel():
        histogram.place(own, -1)
    del in_window
    return histogram.result()


__all__: List[str] = [
    'ChunkPositives', 'GalleryPidIndex', 'OwnItems', 'kernel_counts',
    'search_counts', 'NegativeHistogram', 'items_to_place', 'NAN_MESSAGE'
]
