"""Brute-force rank metrics: a full sort per query, straight from the spec.

Slow (O(Q G log G)) and meant only to check the fast path in tests and
benchmarks; use :func:`~.evaluate.evaluate_rank` for real evaluation.
"""
from typing import Dict

import numpy as np


def reference_sort(dist: np.ndarray, is_pos: np.ndarray,
                   tie_policy: str) -> np.ndarray:
    """Order one query's kept gallery items under a tie policy.

    Args:
        dist: Distances of the kept items, in gallery order, shape (N,).
        is_pos: Whether each item is a positive, shape (N,).
        tie_policy: ``'stable'``, ``'pessimistic'`` or ``'optimistic'``.

    Returns:
        np.ndarray: Positions into ``dist``, best first, shape (N,).
    """
    if tie_policy == 'stable':
        return np.argsort(dist, kind='stable')
    # lexsort sorts by the last key first and is stable; the secondary key
    # puts negatives (0) before positives (1) when pessimistic.
    secondary = is_pos if tie_policy == 'pessimistic' else ~is_pos
    return np.lexsort((secondary.astype(np.int8), dist))


def reference_threshold_ap(dist: np.ndarray, is_pos: np.ndarray) -> float:
    """sklearn's ``average_precision_score(is_pos, -dist)``, by hand.

    Each distinct distance is one threshold: AP = sum over thresholds of
    (recall step) x (precision of all items at or below it).
    """
    num_pos = is_pos.sum()
    ap = 0.0
    for threshold in np.unique(dist[is_pos]):
        selected = dist <= threshold
        true_pos = is_pos[selected].sum()
        step = is_pos[dist == threshold].sum() / num_pos
        ap += step * true_pos / selected.sum()
    return float(ap)


def reference_evaluate_rank(distmat: np.ndarray,
                            q_pids: np.ndarray,
                            g_pids: np.ndarray,
                            q_camids: np.ndarray,
                            g_camids: np.ndarray,
                            max_rank: int = 50,
                            junk_rule: str = 'market',
                            tie_policy: str = 'stable',
                            ap_mode: str = 'cumsum',
                            cmc_mode: str = 'standard') -> Dict:
    """Rank metrics by sorting each query's whole kept gallery.

    Args:
        distmat: Distances, shape (Q, G).
        q_pids, g_pids, q_camids, g_camids: Labels, shapes (Q,) and (G,).
        max_rank: CMC length.
        junk_rule: ``'market'``, ``'none'`` or ``'sysu'`` (0-based camids:
            camid 2 queries drop camid 1 items).
        tie_policy: ``'stable'``, ``'pessimistic'`` or ``'optimistic'``.
        ap_mode: ``'cumsum'`` or ``'threshold'``.
        cmc_mode: ``'standard'`` or ``'dedup'``.

    Returns:
        dict: ``cmc`` (max_rank,), ``mAP``, ``mINP``, ``all_AP``,
        ``all_INP``, ``num_valid_query``, ``valid_mask`` (fractions).
    """
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    cmc_rows, all_ap, all_inp, valid_mask = [], [], [], []
    for q in range(len(q_pids)):
        same_pid = g_pids == q_pids[q]
        if junk_rule == 'market':
            # Market-1501's junk label (pid -1) is ignored too.
            removed = (same_pid & (g_camids == q_camids[q])) | (g_pids == -1)
        elif junk_rule == 'none':
            removed = np.zeros_like(same_pid)
        elif junk_rule == 'sysu':
            removed = (g_camids == 1) & (q_camids[q] == 2)
        else:
            raise ValueError(junk_rule)
        keep = ~removed
        dist, is_pos = distmat[q][keep], same_pid[keep]
        pids = g_pids[keep]
        valid_mask.append(bool(is_pos.any()))
        if not is_pos.any():
            continue
        order = reference_sort(dist, is_pos, tie_policy)
        matches = is_pos[order]
        pos_ranks = np.flatnonzero(matches) + 1
        if cmc_mode == 'dedup':
            _, first = np.unique(pids[order], return_index=True)
            first_rank = int((np.sort(first) <= pos_ranks[0] - 1).sum())
        else:
            first_rank = int(pos_ranks[0])
        cmc_rows.append(np.arange(1, max_rank + 1) >= first_rank)
        if ap_mode == 'cumsum':
            ap = np.mean(np.arange(1, len(pos_ranks) + 1) / pos_ranks)
        else:
            ap = reference_threshold_ap(dist, is_pos)
        all_ap.append(ap)
        all_inp.append(len(pos_ranks) / pos_ranks[-1])
    cmc = np.mean(cmc_rows, axis=0) if cmc_rows else np.zeros(max_rank)
    return dict(
        cmc=cmc,
        mAP=float(np.mean(all_ap)) if all_ap else 0.0,
        mINP=float(np.mean(all_inp)) if all_inp else 0.0,
        all_AP=np.asarray(all_ap),
        all_INP=np.asarray(all_inp),
        num_valid_query=len(all_ap),
        valid_mask=np.asarray(valid_mask))
