"""Verification metrics: TPR at a given FPR over query-gallery pairs.

Every kept (query, gallery) pair is a verification trial: a positive pair
has the same pid, a negative pair different pids, and the score is the
negative distance (fast-reid's ``roc.py`` swaps the labels and so reports
the negative-pair rejection rate, see the evaluation spec, section 11).
Pairs removed by the junk rule are neither positives nor negatives, as in
the rank metrics.

``TPR@FPR=x`` is the TPR of the best threshold whose FPR does not exceed
``x``: a threshold accepts every pair at or below a distance, so with the
``k`` = max{i : i / N <= x} allowed negatives (``N`` negatives), the
threshold lies strictly below the ``(k + 1)``-th smallest negative
distance ``t``, and ``TPR = #{positive d < t} / P``. Negatives tied with
``t`` are never split, so the FPR bound holds even with ties.

The result is exact, in the distances' own precision: float64 distances
are compared in float64 (as the ranking compares them), every other dtype
in float32. ``t`` is found by a radix selection over the order-preserving
keys of the distances, 16 bits a pass: pass 1 histograms the top 16 bits
of every negative's key, each later pass the next 16 bits of the
negatives that share the bits selected so far (two passes for the 32-bit
keys of float32, four for the 64-bit keys of float64). Only positive
distances (a few per query) and one 65,536-bin histogram per FPR and pass
are kept; the distances are seen one chunk of queries at a time, so
memory is O(chunk x G) and no Q x G array is ever held.
"""
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from mmreid.utils.deprecation import renamed_keyword
from .distance import ArrayLike, GalleryDistance, to_tensor
from .junk_rules import JunkRule, rule_with_junk_label
from .rank import (DEFAULT_MEMORY_BUDGET_MB, DeviceLike, _as_labels,
                   chunk_rows_for_budget, ranking_precision)

DEFAULT_FPRS = (1e-4, 1e-3, 1e-2)
DIGIT_BITS = 16
NUM_BINS = 1 << DIGIT_BITS
SIGN_BIT = 1 << 31
INT64_MIN = -(1 << 63)

# () -> iterable of (start row, distances of the rows (Qc, G)); called
# once per pass.
ChunkSource = Callable[[], Iterable[tuple]]


@dataclass(eq=False)
class VerificationResult:
    """TPR at FPR over query-gallery pairs.

    Attributes:
        fprs (np.ndarray): The requested FPRs, shape (F,).
        tpr (np.ndarray): TPR at each FPR as a fraction, shape (F,).
        thresholds (np.ndarray): The distance ``t`` of each FPR: pairs
            strictly closer than ``t`` are accepted, shape (F,); ``inf``
            when every negative may be accepted.
        num_pos (int): Number of positive pairs, P.
        num_neg (int): Number of negative pairs, N.
    """
    fprs: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    num_pos: int
    num_neg: int


def float_keys(dist: torch.Tensor) -> torch.Tensor:
    """Order-preserving unsigned keys of float values, as int64.

    Float64 values get 64-bit keys, every other dtype the 32-bit keys of
    its float32 value (exact for float16 and bfloat16).

    Args:
        dist: Float values, any shape, without NaN.

    Returns:
        torch.Tensor: int64 keys with the values' order: in [0, 2**32)
        for 32-bit keys; for 64-bit keys, read as unsigned 64-bit
        integers (the int64 two's complement bits), see
        :func:`key_to_float`.
    """
    if dist.dtype == torch.float64:
        # Adding +0.0 turns -0.0 into +0.0, so equal values get equal keys.
        bits = (dist + 0.0).contiguous().view(torch.int64)
        # Non-negative floats: set the top bit; negative ones: flip all.
        return torch.where(bits >= 0, bits ^ INT64_MIN, ~bits)
    bits = (dist.float() + 0.0).contiguous().view(torch.int32).long()
    # Non-negative floats order like their bits; negative ones in reverse.
    return torch.where(bits >= 0, bits + SIGN_BIT, -1 - bits)


def key_to_float(key: int, wide: bool = False) -> float:
    """Inverse of :func:`float_keys` for one key.

    Args:
        key: A key; for 64-bit keys the unsigned value or the int64 one.
        wide: Whether it is a 64-bit key (of a float64 value).

    Returns:
        float: The value.
    """
    if not wide:
        bits = key - SIGN_BIT if key >= SIGN_BIT else -1 - key
        return float(np.array([bits], dtype=np.int32).view(np.float32)[0])
    key &= (1 << 64) - 1
    bits = key - (1 << 63) if key >= 1 << 63 else -1 - key
    return float(np.array([bits], dtype=np.int64).view(np.float64)[0])


def key_digit(keys: torch.Tensor, index: int, num_digits: int) -> torch.Tensor:
    """The ``index``-th 16-bit digit of keys, most significant first."""
    return (keys >> (DIGIT_BITS * (num_digits - 1 - index))) & (NUM_BINS - 1)


def key_prefix(keys: torch.Tensor, length: int,
               num_digits: int) -> torch.Tensor:
    """The first ``length`` (>= 1, < ``num_digits``) digits of keys, as
    one non-negative integer."""
    shift = DIGIT_BITS * (num_digits - length)
    mask = (1 << DIGIT_BITS * length) - 1
    return (keys >> shift) & mask


def max_false_positives(fpr: float, num_neg: int) -> int:
    """The largest ``k`` with ``k / num_neg <= fpr`` (in float64)."""
    k = min(int(np.floor(fpr * num_neg)), num_neg)
    # floor(fpr * N) can be off by one where fpr * N rounds.
    while k < num_neg and (k + 1) / num_neg <= fpr:
        k += 1
    while k > 0 and k / num_neg > fpr:
        k -= 1
    return k


def fpr_value(fpr: float) -> float:
    """An FPR as a float; a float32 or float16 one as the decimal written.

    ``np.float32(0.001)`` holds 0.0010000000474974513, the float32
    nearest to the 0.001 the user wrote; that decimal is the shortest
    one that reads back as the float32, and it is the FPR read here
    (0.001). Python floats and float64 values are kept as they are.

    Args:
        fpr: An FPR.

    Returns:
        float: The FPR.
    """
    if isinstance(fpr, np.floating) and fpr.dtype.itemsize < 8:
        return float(np.format_float_scientific(fpr, unique=True))
    return float(fpr)


def fpr_key(fpr: float) -> str:
    """The metric key of the TPR at an FPR, naming that FPR exactly.

    The shortest scientific form that reads back as ``fpr``: the
    one-digit ``.0e`` form whenever it is exact (``TPR@FPR=1e-04``,
    ``TPR@FPR=5e-02``), else as many digits as needed
    (``TPR@FPR=2.5e-01``, ``TPR@FPR=1.4e-01``), so distinct FPRs never
    share a key and a key never names another FPR. A float32 or float16
    FPR reads back in its own precision: ``np.float32(0.001)`` is keyed
    ``TPR@FPR=1e-03``, the decimal it was written as (see
    :func:`fpr_value`).

    Args:
        fpr: An FPR.

    Returns:
        str: ``'TPR@FPR=<fpr>'``.
    """
    fpr = fpr_value(fpr)
    for digits in range(17):
        text = f'{fpr:.{digits}e}'
        if float(text) == fpr:
            break
    return f'TPR@FPR={text}'


def check_fprs(fprs: Sequence[float], name: str = 'fprs') -> tuple:
    """FPRs as floats (see :func:`fpr_value`), each in [0, 1], none
    repeated.

    Args:
        fprs: The FPRs to report.
        name: The argument's name, for the error.

    Returns:
        tuple[float]: The FPRs, in order.

    Raises:
        ValueError: An FPR is NaN, outside [0, 1] or repeated (it would
            report the same key twice).
    """
    values = tuple(fpr_value(x) for x in fprs)
    bad = [x for x in values if not 0.0 <= x <= 1.0]
    if bad:
        raise ValueError(f'{name} must lie in [0, 1], got {bad} in '
                         f'{list(values)}')
    repeated = sorted({x for x in values if values.count(x) > 1})
    if repeated:
        raise ValueError(f'{name} repeats {repeated} in {list(values)}: '
                         'each FPR is reported once')
    return values


def tpr_at_fpr(chunks: ChunkSource,
               q_pids: ArrayLike,
               g_pids: ArrayLike,
               q_camids: ArrayLike,
               g_camids: ArrayLike,
               fprs: Sequence[float] = DEFAULT_FPRS,
               junk_rule: Union[str, JunkRule] = 'market',
               device: DeviceLike = None) -> VerificationResult:
    """TPR at FPR from distances given one chunk of queries at a time.

    Args:
        chunks: Called once per pass (twice at most); each call yields
            ``(start, dist)`` with ``dist`` the distances of queries
            ``start:start + len(dist)`` to the whole gallery, shape
            (Qc, G), covering every query once.
        q_pids: Query pids, shape (Q,).
        g_pids: Gallery pids, shape (G,).
        q_camids: Query camids, shape (Q,).
        g_camids: Gallery camids, shape (G,).
        fprs: FPRs in [0, 1].
        junk_rule: Pairs to drop, as in :func:`evaluate_rank` (under
            ``'market'`` also those of a pid -1 gallery item).
        device: Where the histograms are computed.

    Returns:
        VerificationResult: TPR and thresholds per FPR.

    Raises:
        ValueError: An FPR is NaN or outside [0, 1], a distance is NaN,
            or no positive pair (the TPR is undefined) or no negative pair
            (the FPR is undefined) is left.
    """
    fprs = np.asarray(fprs, dtype=np.float64).reshape(-1)
    if not ((fprs >= 0) & (fprs <= 1)).all():
        raise ValueError(f'fprs must lie in [0, 1], got {fprs.tolist()}')
    device = torch.device(device) if device is not None else None
    labels = [
        _as_labels(q_pids, 'q_pids'),
        _as_labels(g_pids, 'g_pids'),
        _as_labels(q_camids, 'q_camids'),
        _as_labels(g_camids, 'g_camids')
    ]
    # Junk-labelled gallery items make no pair with any query.
    rule = rule_with_junk_label(junk_rule, labels[0], labels[1])

    # Whether the keys are 64-bit (float64 distances), set by the first
    # chunk: the distances are compared in their own precision.
    wide: List[bool] = []

    def split(start: int, dist: torch.Tensor):
        """Kept positive distances and negative keys of one chunk."""
        dist = to_tensor(dist)
        if device is not None:
            dist = dist.to(device)
        q_pid, g_pid, q_cam, g_cam = (x.to(dist.device) for x in labels)
        stop = start + len(dist)
        if dist.ndim != 2 or dist.shape[1] != len(g_pid):
            raise ValueError(f'a chunk has shape {tuple(dist.shape)} for '
                             f'{len(g_pid)} gallery items')
        # Integers as float64 (exact to 2**53, refused beyond), complex
        # refused, as the ranking does.
        dist = ranking_precision(dist)
        if torch.isnan(dist).any():
            raise ValueError('distances must not be NaN')
        if not wide:
            wide.append(dist.dtype == torch.float64)
        if wide[0]:
            # Exact for every float dtype.
            dist = dist.double()
        elif dist.dtype == torch.float64:
            raise ValueError('the distance chunks mix float64 with the '
                             'float32 keys of the first chunk (not float64): '
                             'give all chunks one dtype')
        else:
            dist = dist.float()
        same_pid = q_pid[start:stop, None] == g_pid[None, :]
        kept = rule(same_pid, q_cam[start:stop], g_cam)
        kept = (torch.ones_like(same_pid) if kept is None else ~kept)
        return dist[same_pid & kept], float_keys(dist[~same_pid & kept])

    # Pass 1: positives and the histogram of the keys' first digits.
    positives, first_hist = [], None
    for start, dist in chunks():
        pos_dist, neg_keys = split(start, dist)
        positives.append(pos_dist.cpu())
        hist = torch.bincount(
            key_digit(neg_keys, 0, 4 if wide[0] else 2), minlength=NUM_BINS)
        first_hist = hist if first_hist is None else first_hist + hist
    pos_dist = torch.cat(positives) if positives else torch.zeros(0)
    num_digits = 4 if wide and wide[0] else 2
    first_hist = (
        first_hist.cpu() if first_hist is not None else torch.zeros(
            NUM_BINS, dtype=torch.long))
    num_neg, num_pos = int(first_hist.sum()), len(pos_dist)
    if not num_pos:
        raise ValueError(
            'no positive pair (same pid) is left after the '
            f'{junk_rule!r} junk rule among {num_neg} negative pairs: the '
            'TPR is undefined')
    if not num_neg:
        raise ValueError(
            'no negative pair (another pid) is left after the '
            f'{junk_rule!r} junk rule among {num_pos} positive pairs: the '
            'FPR is undefined')

    # The 0-based rank of t among the negatives, per FPR (None: no t).
    targets = [max_false_positives(fpr, num_neg) for fpr in fprs]
    targets = [None if t is not None and t >= num_neg else t for t in targets]
    # rank of t -> (digits of t's key selected so far, as an integer; the
    # rank of t among the negatives whose keys start with them).
    selected = {
        rank: select_digit(first_hist, 0, rank)
        for rank in set(t for t in targets if t is not None)
    }

    # Later passes: the next digit of the keys that share each prefix.
    for index in range(1, num_digits):
        if not selected:
            break
        hists = {
            prefix: torch.zeros(NUM_BINS, dtype=torch.long)
            for prefix, _ in selected.values()
        }
        for start, dist in chunks():
            _, neg_keys = split(start, dist)
            prefixes = key_prefix(neg_keys, index, num_digits)
            for prefix in hists:
                digits = key_digit(neg_keys[prefixes == prefix], index,
                                   num_digits)
                hists[prefix] += torch.bincount(
                    digits, minlength=NUM_BINS).cpu()
        selected = {
            rank: select_digit(hists[prefix], prefix, rank_in_prefix)
            for rank, (prefix, rank_in_prefix) in selected.items()
        }

    tpr, thresholds = [], []
    for rank in targets:
        if rank is None:
            threshold = float('inf')
            accepted = num_pos
        else:
            threshold = key_to_float(selected[rank][0], num_digits == 4)
            accepted = int((pos_dist < threshold).sum())
        thresholds.append(threshold)
        tpr.append(accepted / num_pos)
    return VerificationResult(
        fprs=fprs,
        tpr=np.asarray(tpr),
        thresholds=np.asarray(thresholds),
        num_pos=num_pos,
        num_neg=num_neg)


def select_digit(hist: torch.Tensor, prefix: int, rank: int) -> tuple:
    """One radix step: the digit of the ``rank``-th key (0-based) among
    those counted by ``hist``.

    Args:
        hist: Counts of the next digit of the keys that start with
            ``prefix``, shape (NUM_BINS,).
        prefix: The digits selected so far, as one integer.
        rank: The rank among the keys that start with ``prefix``.

    Returns:
        tuple[int, int]: The prefix extended by the selected digit, and
        the rank among the keys that start with it.
    """
    cum = torch.cumsum(hist, 0)
    digit = int(torch.searchsorted(cum, rank, right=True))
    below = int(cum[digit - 1]) if digit else 0
    return (prefix << DIGIT_BITS) | digit, rank - below


def evaluate_verification(distmat: ArrayLike,
                          q_pids: ArrayLike,
                          g_pids: ArrayLike,
                          q_camids: ArrayLike,
                          g_camids: ArrayLike,
                          fprs: Sequence[float] = DEFAULT_FPRS,
                          junk_rule: Union[str, JunkRule] = 'market',
                          chunk_size: Optional[int] = None,
                          device: DeviceLike = None) -> VerificationResult:
    """TPR at FPR of a query-gallery distance matrix.

    Args:
        distmat: Distances, shape (Q, G), numpy (a memory map works) or
            torch; compared in float64 when float64 or integer (exact to
            2**53, refused beyond), else in float32; complex is refused.
        q_pids, g_pids, q_camids, g_camids: Labels, shapes (Q,), (G,).
        fprs: FPRs in [0, 1].
        junk_rule: ``'market'``, ``'none'``, ``'sysu'`` or a callable.
        chunk_size: Queries per chunk; by default from
            ``DEFAULT_MEMORY_BUDGET_MB``.
        device: Where to compute.

    Returns:
        VerificationResult: TPR and thresholds per FPR.
    """
    num_query, num_gallery = distmat.shape
    if chunk_size is None:
        chunk_size = chunk_rows_for_budget(num_gallery,
                                           DEFAULT_MEMORY_BUDGET_MB)

    def chunks():
        for start in range(0, num_query, chunk_size):
            yield start, to_tensor(distmat[start:start + chunk_size])

    return tpr_at_fpr(chunks, q_pids, g_pids, q_camids, g_camids, fprs,
                      junk_rule, device)


@renamed_keyword('metric', 'distance')
def evaluate_verification_features(
        query_feats: ArrayLike,
        gallery_feats: ArrayLike,
        q_pids: ArrayLike,
        g_pids: ArrayLike,
        q_camids: ArrayLike,
        g_camids: ArrayLike,
        distance: Union[str, Callable] = 'euclidean',
        normalize: bool = False,
        fprs: Sequence[float] = DEFAULT_FPRS,
        junk_rule: Union[str, JunkRule] = 'market',
        memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
        device: DeviceLike = None) -> VerificationResult:
    """TPR at FPR from features; distances are computed chunk by chunk.

    The distances are computed twice (once per pass), which is cheaper
    than holding them.

    Args:
        query_feats: Query features, shape (Q, D).
        gallery_feats: Gallery features, shape (G, D).
        q_pids, g_pids, q_camids, g_camids: Labels, shapes (Q,), (G,).
        distance: ``'euclidean'``, ``'sqeuclidean'``, ``'cosine'`` or a
            scorer ``(query_chunk, gallery) -> distances`` (``metric=`` is
            its deprecated alias).
        normalize: L2-normalise the features first.
        fprs: FPRs in [0, 1].
        junk_rule: ``'market'``, ``'none'``, ``'sysu'`` or a callable.
        memory_budget_mb: Budget of one chunk of distances.
        device: Where to compute; defaults to the query features' device.

    Returns:
        VerificationResult: TPR and thresholds per FPR.
    """
    query, gallery = to_tensor(query_feats), to_tensor(gallery_feats)
    device = torch.device(device) if device is not None else query.device
    gallery = gallery.to(device)
    chunk_size = chunk_rows_for_budget(len(gallery), memory_budget_mb)
    if callable(distance) and normalize:
        gallery = F.normalize(gallery.float(), dim=1)
    gallery_distance = None if callable(distance) else GalleryDistance(
        gallery, distance, normalize)

    def chunks():
        for start in range(0, len(query), chunk_size):
            query_chunk = query[start:start + chunk_size].to(device)
            if callable(distance):
                if normalize:
                    query_chunk = F.normalize(query_chunk.float(), dim=1)
                yield start, to_tensor(distance(query_chunk, gallery))
            else:
                yield start, gallery_distance(query_chunk)

    return tpr_at_fpr(chunks, q_pids, g_pids, q_camids, g_camids, fprs,
                      junk_rule, device)
