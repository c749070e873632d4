"""Sort a query chunk's positives and place other items among them.

The helpers of :class:`~.rank.RankAccumulator`. A "bucket" is the number
of a query's positives ranked before an item; with the positives sorted,
it is all the rank computation needs to know about a negative.
"""
from typing import Tuple

import torch


def sort_positives(dist: torch.Tensor, pos: torch.Tensor,
                   num_pos: torch.Tensor,
                   max_pos: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Each query's positives sorted by (distance, gallery index).

    Args:
        dist: Distances, shape (Qc, G).
        pos: Kept positives, shape (Qc, G).
        num_pos: Positives per query, shape (Qc,).
        max_pos: ``num_pos.max()``, M.

    Returns:
        tuple: Distances padded with +inf, shape (Qc, M + 1) (the spare
        column makes every bucket a valid column index), and gallery
        indices padded with G, shape (Qc, M).
    """
    num_q, num_g = dist.shape
    rows, cols = pos.nonzero(as_tuple=True)
    starts = num_pos.cumsum(0) - num_pos
    slots = torch.arange(rows.numel(), device=dist.device) - starts[rows]
    pos_dist = dist.new_full((num_q, max_pos + 1), float('inf'))
    pos_dist[rows, slots] = dist[rows, cols]
    pos_idx = torch.full((num_q, max_pos + 1),
                         num_g,
                         dtype=torch.long,
                         device=dist.device)
    pos_idx[rows, slots] = cols
    # nonzero() lists a row's positives by gallery index and the sort is
    # stable, so tied positives keep gallery order and the padding stays
    # after a +inf positive.
    pos_dist, order = torch.sort(pos_dist, dim=1, stable=True)
    return pos_dist, pos_idx.gather(1, order)[:, :max_pos]


def tie_blocks(pos_dist: torch.Tensor, is_real: torch.Tensor) -> torch.Tensor:
    """Index of each sorted positive's group of equal distances.

    Args:
        pos_dist: Sorted positive distances, shape (Qc, M).
        is_real: False on padding, shape (Qc, M).

    Returns:
        torch.Tensor: Non-decreasing int64 ids per row, shape (Qc, M);
        padding gets M, above every real id.
    """
    num_q, max_pos = pos_dist.shape
    new_block = pos_dist[:, 1:] != pos_dist[:, :-1]
    blocks = torch.cat([new_block.new_zeros((num_q, 1)), new_block],
                       dim=1).long().cumsum(dim=1)
    return blocks.masked_fill_(~is_real, max_pos)


def float32_order_key(values: torch.Tensor) -> torch.Tensor:
    """Map float32 values to int64 keys in [0, 2**32) with the same order.

    ``-0.0`` and ``0.0`` get the same key; NaN is not supported.

    Args:
        values: float32 tensor, any shape.

    Returns:
        torch.Tensor: int64 keys, same shape; ``a < b`` iff
        ``key(a) < key(b)`` and ``a == b`` iff the keys are equal.
    """
    # Adding +0.0 turns -0.0 into +0.0. Read as int32, non-negative floats
    # already sort like their bits; negative ones sort backwards, so their
    # 31 low bits are flipped.
    bits = (values + 0.0).view(torch.int32)
    bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    return bits.long() + 2**31


class RaggedSearch:
    """Count, for items of arbitrary rows, the positives of their row below.

    ``torch.searchsorted`` wants one sorted row per row of values, but the
    items to place belong to arbitrary rows. With a row offset added to an
    order-preserving key of each distance, every row's positives become
    one slice of a single sorted sequence, so one native 1-D search places
    any set of items, on any device. float32 distances map to 32-bit
    integer keys (:func:`float32_order_key`), so the offset key is
    ``row * 2**32 + key``; other dtypes are first replaced by their
    position among all the chunk's positive distances (one more search).

    Args:
        pos_dist: Sorted positive distances, padded, shape (Qc, >= M).
        is_real: False on padding, shape (Qc, M).
    """

    def __init__(self, pos_dist: torch.Tensor, is_real: torch.Tensor) -> None:
        num_q, self.width = is_real.shape
        real_dist = pos_dist[:, :self.width].contiguous()
        if real_dist.dtype == torch.float32:
            self.pooled = None
            self.row_span = 2**32
            # Every real key is below 2**32 - 1 (+inf maps to 0xff800000).
            pos_key = float32_order_key(real_dist).masked_fill_(
                ~is_real, self.row_span - 1)
        else:
            self.pooled = torch.sort(real_dist[is_real]).values
            self.row_span = self.pooled.numel() + 1
            pos_key = torch.searchsorted(self.pooled, real_dist)
            pos_key.masked_fill_(~is_real, self.pooled.numel())
        row_offsets = torch.arange(
            0, num_q * self.row_span, self.row_span, device=pos_dist.device)
        self.keys = (pos_key + row_offsets[:, None]).view(-1)

    def count_below(self, rows: torch.Tensor,
                    values: torch.Tensor) -> torch.Tensor:
        """Number of positives of ``rows[i]`` strictly below ``values[i]``.

        Args:
            rows: Query row of each value, shape (K,).
            values: Distances, shape (K,), the dtype of ``pos_dist``.

        Returns:
            torch.Tensor: int64 counts, shape (K,).
        """
        if self.pooled is None:
            value_key = float32_order_key(values)
        else:
            value_key = torch.searchsorted(self.pooled, values)
        value_key += rows * self.row_span
        return torch.searchsorted(self.keys, value_key) - rows * self.width


class TieResolver:
    """Buckets of negatives tied with a positive, under a tie policy.

    A tied negative's pessimistic bucket is the position of the first
    positive it ties with. Under ``'optimistic'`` it moves past the whole
    tied block of positives; under ``'stable'`` past those with a lower
    gallery index. The positives of a row, sorted by (distance, index),
    are strictly increasing under the integer key
    ``block * (G + 1) + index`` (padding: block M, index G); a row offset
    makes the chunk one sorted sequence, so one search places all tied
    negatives.

    Args:
        blocks: Tie-block ids of the sorted positives, shape (Qc, M).
        pos_idx: Their gallery indices, padding G, shape (Qc, M).
        num_g: Gallery size G.
        tie_policy: ``'stable'`` or ``'optimistic'``.
    """

    def __init__(self, blocks: torch.Tensor, pos_idx: torch.Tensor, num_g: int,
                 tie_policy: str) -> None:
        num_q, self.width = blocks.shape
        self.blocks = blocks
        self.num_g = num_g
        self.tie_policy = tie_policy
        self.span = num_g + 1
        self.row_span = (self.width + 1) * self.span
        row_offsets = torch.arange(
            0, num_q * self.row_span, self.row_span, device=blocks.device)
        self.keys = (blocks * self.span + pos_idx +
                     row_offsets[:, None]).view(-1)

    def buckets(self, rows: torch.Tensor, cols: torch.Tensor,
                bucket: torch.Tensor) -> torch.Tensor:
        """Move tied negatives to their bucket under the policy.

        Args:
            rows: Query rows of the tied negatives, shape (T,).
            cols: Their gallery indices, shape (T,).
            bucket: Their pessimistic buckets, shape (T,).

        Returns:
            torch.Tensor: Their buckets under the policy, shape (T,).
        """
        block = self.blocks[rows, bucket]
        if self.tie_policy == 'stable':
            # Positives of the block with a lower gallery index go first.
            index = cols
        else:
            # Every positive of the block goes first.
            index = torch.full_like(cols, self.num_g)
        keys = rows * self.row_span + block * self.span + index
        return torch.searchsorted(self.keys, keys) - rows * self.width
