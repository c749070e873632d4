"""Wrong-number hunt: numerical precision of the printed numbers.

The references here are written from the definitions, never from mmreid's
code:

* CMC, AP (cumsum form) and INP from ``specs/evaluation.md`` section 3,
  each query's kept gallery (Market rule, section 2.2) ordered by
  ascending distance under the tie policy of section 4.2 (a Python sort
  on ``(distance, policy key, gallery index)``);
* threshold AP as ``sklearn.metrics.average_precision_score`` defines it:
  the sum over distinct score thresholds of the recall step times the
  precision of everything at or above the threshold (section 4.1);
* distances in float64 (``numpy``) from their textbook formulas.

The promise checked throughout: the distances are computed in fp32
(specs/evaluation.md section 1) "so that the tie structure is
reproducible", and the order of each query's gallery is "the same on CPU
and GPU and for every chunk size" (docs/get_started.md, section 5), so a
memory setting (``memory_budget_mb``) never changes a printed number.
"""
import numpy as np
import pytest
import torch

from mmreid.evaluation.functional import count_kernel, evaluate_rank
from mmreid.evaluation.metrics import ReIDMetric
from ..fixtures.metric_samples import data_samples

# ---------------------------------------------------------------------------
# References written from the definitions.


def textbook_metrics(dist, q_pids, g_pids, q_cams, g_cams, tie_policy,
                     ap_mode):
    """Per valid query: first rank, AP and INP (fractions), Market rule.

    Args:
        dist (np.ndarray): Distances (Q, G), compared in float64.
        q_pids, g_pids, q_cams, g_cams (np.ndarray): Labels.
        tie_policy (str): ``'stable'``: (distance, index);
            ``'pessimistic'``: negatives before tied positives;
            ``'optimistic'``: positives before tied negatives.
        ap_mode (str): ``'cumsum'`` (mean of j / r_j) or ``'threshold'``
            (sklearn's step-wise AP over distinct distances).

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray]: First ranks, APs and
        INPs of the valid queries, in query order.
    """
    first, aps, inps = [], [], []
    for i in range(len(q_pids)):
        kept = ~((g_pids == q_pids[i]) & (g_cams == q_cams[i]))
        row = dist[i][kept].astype(np.float64)
        pos = g_pids[kept] == q_pids[i]
        if not pos.any():
            continue
        sign = {'stable': 0, 'pessimistic': 1, 'optimistic': -1}[tie_policy]
        order = sorted(
            range(len(row)), key=lambda j: (row[j], sign * int(pos[j]), j))
        ranks = np.flatnonzero(pos[order]) + 1
        first.append(ranks[0])
        inps.append(len(ranks) / ranks[-1])
        if ap_mode == 'cumsum':
            aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
            continue
        ap, recall = 0.0, 0.0
        for threshold in np.unique(row):
            accepted = row <= threshold
            true_pos = int((pos & accepted).sum())
            step = true_pos / pos.sum() - recall
            if step > 0:
                ap += step * true_pos / accepted.sum()
                recall = true_pos / pos.sum()
        aps.append(ap)
    return np.array(first), np.array(aps), np.array(inps)


# ---------------------------------------------------------------------------
# Data.


def run_metric(metric, samples, batch_size=16):
    """Feed the samples in batches, then evaluate, as the test loop does."""
    for start in range(0, len(samples), batch_size):
        metric.process(None, samples[start:start + batch_size])
    return metric.evaluate(len(metric.results))


def quantised_problem(seed, num_query=40, num_gallery=200, dim=16):
    """Quantised features (entries in {0, 1, 2}, as a binarised or
    low-bit embedding gives): many gallery items are exactly equally
    similar to a query, the tie source named in specs/evaluation.md
    section 4.1. Queries on camera 0, gallery on camera 1."""
    rng = np.random.default_rng(seed)
    query = rng.integers(0, 3, (num_query, dim)).astype(np.float32)
    gallery = rng.integers(0, 3, (num_gallery, dim)).astype(np.float32)
    query[query.sum(1) == 0, 0] = 1
    gallery[gallery.sum(1) == 0, 0] = 1
    q_pids = rng.integers(0, 10, num_query)
    g_pids = rng.integers(0, 10, num_gallery)
    return (query, gallery, q_pids, g_pids, np.zeros(num_query, np.int64),
            np.ones(num_gallery, np.int64))


def clustered_problem(seed, num_query=60, num_gallery=400, dim=48):
    """Continuous ReLU features around one centre per pid (a trained
    model's pooled features), with 0-based camids."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(30, dim))
    pids = rng.integers(0, 30, num_query + num_gallery)
    feats = np.maximum(centres[pids] * 0.6 + rng.normal(size=(len(pids), dim)),
                       0).astype(np.float32)
    cams = rng.integers(0, 4, len(pids))
    return (feats[:num_query], feats[num_query:], pids[:num_query],
            pids[num_query:], cams[:num_query], cams[num_query:])


#: Budgets (MiB) of the runs compared: the default, then budgets that cut
#: the queries into chunks of a few rows (as a user short of memory on a
#: large gallery gets) and of one row.
BUDGETS = (128, 0.01, 1e-4)

# ---------------------------------------------------------------------------
# Defects.


def test_query_expansion_metrics_do_not_depend_on_the_memory_budget():
    """A user evaluates with ``ReIDMetric(query_expansion=dict(k=3))`` and
    lowers ``memory_budget_mb`` because the gallery is large (the class
    docstring calls it the "Budget of one chunk of distances and
    ranking"). The printed R1/mAP change with the budget: on quantised
    features (seed 27 below), R1 15.0 % / mAP 12.90 % at the default
    budget but R1 12.5 % / mAP 12.67 % at ``1e-4`` (one-row chunks); seed
    19 prints mAP 12.14 % / 12.28 % / 12.14 % at the three budgets (16 of
    30 seeds tried change a printed number).

    Right: a memory budget changes how many queries are processed at a
    time, never a number (docs/get_started.md section 5: the order is "the
    same ... for every chunk size"; specs/evaluation.md section 4.2:
    "independent of chunking"). ``GalleryDistance`` keeps that promise by
    padding every query chunk to ``MIN_GEMM_ROWS`` rows, since BLAS
    computes a few rows with other kernels that round differently.
    ``query_expansion`` multiplies ``query_chunk @ gallery.t()`` unpadded,
    in chunks of ``memory_budget_mb * 2**20 // (G * 8)`` rows, so a
    query's similarities, hence its neighbour weights, and, where two
    neighbours tie at the k-th place, the neighbours themselves, depend on
    the chunk it falls in.
    """
    for seed in (27, 19, 16, 1, 3):
        problem = quantised_problem(seed)
        printed = [
            run_metric(
                ReIDMetric(
                    query_expansion=dict(k=3, alpha=0),
                    memory_budget_mb=budget), data_samples(*problem))
            for budget in BUDGETS
        ]
        for budget, metrics in zip(BUDGETS[1:], printed[1:]):
            assert metrics == printed[0], (
                f'seed {seed}: memory_budget_mb={budget} printed '
                f'{metrics}, the default budget {printed[0]}')


def test_cosine_rerank_metrics_do_not_depend_on_the_memory_budget():
    """A user evaluates a cosine model (AGW's ``distance='cosine'``) with
    ``ReIDMetric(rerank=dict(k1=6, k2=3, lambda_value=0.3))`` and lowers
    ``memory_budget_mb``. On quantised features the printed numbers change
    with the budget: seed 6 below prints mAP 12.37 % / 12.24 % / 12.17 %
    at the three budgets, seed 13 R1 15.0 % / 12.5 % / 15.0 % (each of 15
    seeds tried changes mAP).

    Right: the budget bounds working memory only (``k_reciprocal_rerank``
    docstring: "Budget of one block of working memory"; docs/get_started.md
    section 5 and specs/evaluation.md section 4.2: the same order for
    every chunk size). ``_feature_rows`` (rerank.py) computes each block
    of ``|a|^2 + |b|^2 - 2 a.b`` with ``torch.addmm`` on the block's rows
    unpadded, so a row's fp32 distances depend on the block it falls in;
    distances of unit features that tie in exact arithmetic then order,
    and the ``k1 + 1`` nearest neighbours (``topk``) are chosen, by a
    rounding that changes with the budget. (float64 or integer features,
    as in ``test_hunt_rerank.py``, are exact and do not show it.)
    """
    for seed in (6, 12, 13):
        problem = quantised_problem(seed)
        printed = [
            run_metric(
                ReIDMetric(
                    distance='cosine',
                    rerank=dict(k1=6, k2=3, lambda_value=0.3),
                    memory_budget_mb=budget), data_samples(*problem))
            for budget in BUDGETS
        ]
        for budget, metrics in zip(BUDGETS[1:], printed[1:]):
            assert metrics == printed[0], (
                f'seed {seed}: memory_budget_mb={budget} printed '
                f'{metrics}, the default budget {printed[0]}')


# ---------------------------------------------------------------------------
# Test gaps: behaviour that is right, which no other test pins this way.


@pytest.mark.parametrize('distance,normalize', [('euclidean', False),
                                                ('cosine', False),
                                                ('euclidean', True)])
def test_printed_metrics_of_float_features_do_not_depend_on_the_budget(
        distance, normalize):
    """``ReIDMetric`` on continuous (inexact) fp32 features prints the
    same bits at every ``memory_budget_mb``, down to one-row chunks, and
    those equal the definitions (spec section 3) on float64 distances.
    The features are far enough apart for float32 to keep their order.
    (The chunk tests elsewhere use features whose products are exact, so
    they would not see a chunk-dependent rounding.)"""
    problem = clustered_problem(3)
    printed = [
        run_metric(
            ReIDMetric(
                distance=distance,
                normalize=normalize,
                memory_budget_mb=budget), data_samples(*problem))
        for budget in BUDGETS
    ]
    for metrics in printed[1:]:
        assert metrics == printed[0]
    query, gallery = (x.astype(np.float64) for x in problem[:2])
    if normalize or distance == 'cosine':
        query = query / np.linalg.norm(query, axis=1, keepdims=True)
        gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    if distance == 'cosine':
        dist = 1 - query @ gallery.T
    else:
        dist = np.sqrt(((query[:, None] - gallery[None]) ** 2).sum(-1))
    first, aps, inps = textbook_metrics(dist, *problem[2:], 'stable',
                                        'cumsum')
    assert printed[0]['reid/R1'] == pytest.approx(100 * np.mean(first == 1),
                                                  abs=1e-12)
    assert printed[0]['reid/mAP'] == pytest.approx(100 * aps.mean(),
                                                   abs=1e-9)
    assert printed[0]['reid/mINP'] == pytest.approx(100 * inps.mean(),
                                                    abs=1e-9)


@pytest.mark.parametrize('kernel', [True, False])
@pytest.mark.parametrize('dtype', [np.float64, np.float32, np.float16])
def test_tie_policies_and_ap_modes_match_the_definitions(
        kernel, dtype, monkeypatch):
    """Distances with exact ties (+-0, +inf included) in every float
    dtype, on the numba kernel and on the torch search: first ranks, APs
    and INPs equal the definitions under every tie policy and AP mode.
    float64 distances that differ below float32's resolution
    (``1 + 1e-12``) are ranked in float64, not tied."""
    monkeypatch.setattr(count_kernel, 'ENABLED', kernel)
    if kernel and not count_kernel.available():
        pytest.skip('numba is not installed')
    rng = np.random.default_rng(11)
    values = [0.0, -0.0, 0.5, 1.0, 1.5, 2.0, np.inf]
    if dtype == np.float64:
        values += [1.0 + 1e-12, 1.0 + 2e-12]
    dist = rng.choice(values, (12, 40)).astype(dtype)
    labels = (rng.integers(0, 4, 12), rng.integers(0, 4, 40),
              rng.integers(0, 3, 12), rng.integers(0, 3, 40))
    for tie_policy in ('stable', 'pessimistic', 'optimistic'):
        for ap_mode in ('cumsum', 'threshold'):
            result = evaluate_rank(
                torch.from_numpy(dist),
                *labels,
                max_rank=41,
                tie_policy=tie_policy,
                ap_mode=ap_mode,
                chunk_size=5)
            first, aps, inps = textbook_metrics(dist, *labels, tie_policy,
                                                ap_mode)
            np.testing.assert_array_equal(result.all_first_rank, first)
            np.testing.assert_allclose(result.all_AP, aps, atol=1e-12)
            np.testing.assert_allclose(result.all_INP, inps, atol=1e-12)
