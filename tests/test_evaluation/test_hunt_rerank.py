"""Wrong-number hunt: re-ranking, query expansion and verification.

Every expected number here comes from a small, slow reference written from
the definitions, never from mmreid's code:

* k-reciprocal re-ranking from Zhong et al. (CVPR 2017), Eq. 1-12, with
  the conventions that ``mmreid.evaluation.functional.rerank`` documents
  (``R(i, k) = {j in N(i, k + 1) : i in N(j, k + 1)}``, expansion by the
  ``R(c, round(k1 / 2))`` sharing more than 2/3 of their members, ``V``
  normalised per row, local query expansion over ``N(i, k2)``, each row
  of the original distance divided by its maximum): dense float64
  matrices and Python sets;
* alpha query expansion (Radenovic et al., TPAMI 2019) as the
  ``query_expansion`` docstring writes it;
* CMC, AP and INP from ``specs/evaluation.md`` section 3, ranked by a
  stable sort (``tie_policy='stable'``) after the Market rule (section
  2.2);
* TPR at FPR from the textbook ROC: every threshold on the pair score
  ``-distance`` is tried and the best TPR whose FPR does not exceed the
  requested one is kept (positive pair = same pid, spec section 11.1).
"""
import numpy as np
import pytest
import torch

from mmreid.evaluation.functional import (k_reciprocal_rerank,
                                          k_reciprocal_rerank_distances)
from mmreid.evaluation.metrics import ReIDMetric
from ..fixtures.metric_samples import data_samples
from ..fixtures.rerank_reference import paper_rerank

# ---------------------------------------------------------------------------
# References written from the definitions.


def textbook_rank_metrics(dist, q_pids, g_pids, q_cams, g_cams):
    """Mean R1, AP and INP (fractions) under the Market rule, ranking each
    query's kept gallery by a stable sort; queries without a positive are
    skipped (spec sections 2.2, 2.3, 3)."""
    r1, aps, inps = [], [], []
    for i in range(len(q_pids)):
        kept = ~((g_pids == q_pids[i]) & (g_cams == q_cams[i]))
        row, pids = dist[i][kept], g_pids[kept]
        match = pids[np.argsort(row, kind='stable')] == q_pids[i]
        ranks = np.flatnonzero(match) + 1
        if not len(ranks):
            continue
        r1.append(float(ranks[0] == 1))
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
        inps.append(len(ranks) / ranks[-1])
    return np.mean(r1), np.mean(aps), np.mean(inps)


def textbook_tpr_at_fpr(dist, q_pids, g_pids, q_cams, g_cams, fpr):
    """Best TPR over every threshold on ``-dist`` whose FPR is at most
    ``fpr``; Market-rule pairs are neither positive nor negative."""
    same = q_pids[:, None] == g_pids[None, :]
    kept = ~(same & (q_cams[:, None] == g_cams[None, :]))
    score = -np.asarray(dist, dtype=np.float64)
    pos, neg = score[same & kept], score[~same & kept]
    best = 0.0
    for threshold in np.concatenate([np.unique(score[kept]), [np.inf]]):
        if (neg >= threshold).sum() / len(neg) <= fpr:
            best = max(best, (pos >= threshold).sum() / len(pos))
    return best


def alpha_qe(query, gallery, k, alpha):
    """``normalize(q + sum_{i<=k} max(cos, 0)**alpha g_i)`` of unit
    vectors over the ``k`` most cosine-similar gallery items (alpha 0:
    every neighbour weighs 1)."""
    query = query / np.linalg.norm(query, axis=1, keepdims=True)
    gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    out = []
    for q in query:
        sim = gallery @ q
        total = q.copy()
        for idx in np.argsort(-sim, kind='stable')[:k]:
            total += (max(sim[idx], 0.0)**alpha if alpha else 1.0) * \
                gallery[idx]
        out.append(total / np.linalg.norm(total))
    return np.array(out)


# ---------------------------------------------------------------------------
# Data.


def clustered(seed, num_query, num_gallery, dim=6, num_ids=5, scale=0.6):
    """Features around one centre per pid, with pids and 0-based camids.

    Returns:
        tuple: query, gallery (float64 arrays), q_pids, g_pids, q_cams,
        g_cams (int64 arrays).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids, dim))
    pids = rng.integers(0, num_ids, num_query + num_gallery)
    feats = centres[pids] + scale * rng.normal(size=(len(pids), dim))
    cams = rng.integers(0, 3, len(pids))
    return (feats[:num_query], feats[num_query:], pids[:num_query],
            pids[num_query:], cams[:num_query], cams[num_query:])


def run_metric(metric, samples, batch_size=7):
    for start in range(0, len(samples), batch_size):
        metric.process(None, samples[start:start + batch_size])
    return metric.evaluate(len(metric.results))


# ---------------------------------------------------------------------------
# Defects.


def test_a_negated_similarity_is_refused_or_keeps_its_order():
    """A user with a cosine-similarity model converts it to a distance
    "by negation" (``specs/evaluation.md`` section 1: "Similarities are
    converted by negation") and passes ``-cos`` blocks to
    ``k_reciprocal_rerank_distances``. They are finite, symmetric and each
    sample is nearest to itself (``-1`` on the diagonal), so every check
    passes and re-ranked numbers come back.

    With ``lambda_value=1`` the definition (Zhong et al. Eq. 12,
    ``d* = (1 - lambda) d_J + lambda d``) leaves the original distance
    alone: the gallery must be ranked exactly as by ``-cos``. mmreid
    divides each row by its maximum (the docstring's normalisation,
    which presumes ``d >= 0``), and for ReLU-like (positive) features
    every ``-cos`` row maximum is negative: the division flips the sign,
    so the most similar gallery item is ranked last. At the default
    ``lambda_value=0.3`` the same flip (and ``exp(-d / max)`` weighting
    far samples most) prints a plausible but wrong mAP. Right: refuse a
    negative distance (naming the block and the entry), or rank as the
    definition says.
    """
    rng = np.random.default_rng(0)
    feats = np.abs(rng.normal(size=(20, 6))) + 0.05
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    query, gallery = feats[:5], feats[5:]
    q_g, q_q, g_g = -query @ gallery.T, -query @ query.T, -gallery @ gallery.T
    with pytest.raises(ValueError, match=r'q_g_dist\[.*is negative.*1 - s'):
        k_reciprocal_rerank_distances(
            q_g, q_q, g_g, k1=4, k2=2, lambda_value=1.0)
    # 1 - cos, the distance the message names, ranks as the definition says
    out = k_reciprocal_rerank_distances(
        1 + q_g, 1 + q_q, 1 + g_g, k1=4, k2=2, lambda_value=1.0)
    np.testing.assert_array_equal(
        np.argsort(out.numpy(), axis=1, kind='stable'),
        np.argsort(1 + q_g, axis=1, kind='stable'))


# ---------------------------------------------------------------------------
# Test gaps: right now, but no test would notice a break.


@pytest.mark.parametrize('num_query,num_gallery,k1,k2,lambda_value', [
    (3, 4, 6, 7, 0.3),
    (9, 5, 13, 14, 0.2),
    (4, 12, 5, 6, 0.0),
    (4, 12, 3, 4, 1.0),
])
def test_gallery_smaller_than_k1_and_widest_k2_match_the_paper(
        num_query, num_gallery, k1, k2, lambda_value):
    """A small target (gallery of 4-12 items, fewer than ``k1``; ``k1 + 1``
    up to all ``N`` samples, so neighbourhoods run through the queries),
    ``k2 = k1 + 1`` (local expansion over the whole neighbour list) and odd
    ``k1`` (``round(k1 / 2)`` rounds half to even: 3 for 5 and 6 for 13)
    give the paper's distances, in float64 to rounding and in float32 to
    float32 rounding, whatever the memory budget."""
    query, gallery, *_ = clustered(num_query + k1, num_query, num_gallery)
    expected = paper_rerank(query, gallery, k1, k2, lambda_value)
    for budget in (256, 0.0005):
        for dtype, atol in ((torch.float64, 1e-12), (torch.float32, 2e-6)):
            got = k_reciprocal_rerank(
                torch.tensor(query, dtype=dtype),
                torch.tensor(gallery, dtype=dtype),
                k1=k1,
                k2=k2,
                lambda_value=lambda_value,
                memory_budget_mb=budget)
            assert got.dtype == dtype
            np.testing.assert_allclose(
                got.double().numpy(), expected, atol=atol)


def test_rerank_of_tied_features_does_not_depend_on_the_memory_budget():
    """Quantised features (integers) tie many distances, also at the
    ``k1 + 1``-th neighbour, where the definition leaves the choice open.
    Whatever mmreid picks, the printed number must not change with
    ``memory_budget_mb`` (the blocks of rows it computes at a time): the
    docstring calls the budget a bound on working memory, not an
    option of the method."""
    rng = np.random.default_rng(3)
    feats = np.round(1.2 * rng.normal(size=(48, 3)))
    query, gallery = feats[:8], feats[8:]
    for k1, k2 in ((3, 2), (6, 3), (10, 6)):
        full = k_reciprocal_rerank(
            query, gallery, k1=k1, k2=k2, memory_budget_mb=256)
        for budget in (0.01, 0.0005):
            chunked = k_reciprocal_rerank(
                query, gallery, k1=k1, k2=k2, memory_budget_mb=budget)
            np.testing.assert_allclose(
                chunked.numpy(), full.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize('distance,normalize', [('euclidean', False),
                                                ('cosine', False),
                                                ('euclidean', True)])
def test_metric_rerank_and_tpr_match_the_definitions(distance, normalize):
    """``ReIDMetric(rerank=..., verification_fprs=...)`` as the class
    docstring's example configures it prints R1, mAP, mINP and
    ``TPR@FPR=...`` of the paper's re-ranked distance (squared Euclidean,
    of unit features for a cosine model or ``normalize=True``), ranked and
    thresholded by their textbook definitions; with a budget small enough
    to split every pass into blocks of a few rows."""
    query, gallery, *labels = clustered(11, 10, 30)
    rerank = dict(k1=7, k2=3, lambda_value=0.3)
    fprs = (0.0, 0.05, 0.2)
    metric = ReIDMetric(
        distance=distance,
        normalize=normalize,
        rerank=rerank,
        verification_fprs=fprs,
        memory_budget_mb=0.002)
    metrics = run_metric(metric, data_samples(query, gallery, *labels))
    dist = paper_rerank(
        query.astype(np.float32),
        gallery.astype(np.float32),
        **rerank,
        normalize=normalize or distance == 'cosine')
    r1, m_ap, m_inp = textbook_rank_metrics(dist, *labels)
    assert metrics['reid/R1'] == pytest.approx(100 * r1, abs=1e-9)
    assert metrics['reid/mAP'] == pytest.approx(100 * m_ap, abs=1e-4)
    assert metrics['reid/mINP'] == pytest.approx(100 * m_inp, abs=1e-4)
    for fpr in fprs:
        expected = textbook_tpr_at_fpr(dist, *labels, fpr)
        assert metrics[f'reid/TPR@FPR={fpr:.0e}'] == pytest.approx(
            100 * expected, abs=1e-9)


@pytest.mark.parametrize('k,alpha', [(3, 0), (4, 3.0)])
def test_metric_query_expansion_matches_the_definitions(k, alpha):
    """``ReIDMetric(query_expansion=dict(k, alpha), verification_fprs)``
    ranks and thresholds the Euclidean distances of the alpha-QE queries
    to the L2-normalised gallery (``ReIDMetric`` docstring: "query and
    gallery features are then L2-normalised"); the expansion looks at the
    whole gallery, junk included (``query_expansion`` docstring)."""
    query, gallery, *labels = clustered(12, 9, 28)
    fprs = (0.01, 0.1)
    metric = ReIDMetric(
        query_expansion=dict(k=k, alpha=alpha),
        verification_fprs=fprs,
        memory_budget_mb=0.001)
    metrics = run_metric(metric, data_samples(query, gallery, *labels))
    query = query.astype(np.float32).astype(np.float64)
    gallery = gallery.astype(np.float32).astype(np.float64)
    expanded = alpha_qe(query, gallery, k, alpha)
    unit = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    dist = np.sqrt(((expanded[:, None] - unit[None])**2).sum(-1))
    r1, m_ap, m_inp = textbook_rank_metrics(dist, *labels)
    assert metrics['reid/R1'] == pytest.approx(100 * r1, abs=1e-9)
    assert metrics['reid/mAP'] == pytest.approx(100 * m_ap, abs=1e-4)
    assert metrics['reid/mINP'] == pytest.approx(100 * m_inp, abs=1e-4)
    for fpr in fprs:
        expected = textbook_tpr_at_fpr(dist, *labels, fpr)
        assert metrics[f'reid/TPR@FPR={fpr:.0e}'] == pytest.approx(
            100 * expected, abs=1e-9)


@pytest.mark.parametrize('options', [
    dict(k=2, alpha=float('nan')),
    dict(k=2, alpha=float('inf')),
    dict(k=-1),
    dict(k=1.5),
])
def test_query_expansion_options_are_refused_at_construction(options):
    """``ReIDMetric(query_expansion=dict(k=2, alpha=nan))`` was accepted:
    every expanded query became NaN, and the metric stopped only after the
    whole extraction with "the distance matrix contains NaN", which does
    not name the cause. An option outside its definition (k an integer
    >= 0, alpha a finite number >= 0) is refused when the metric is
    built, naming it."""
    name = 'alpha' if 'alpha' in options else 'k'
    with pytest.raises(ValueError, match=rf'query_expansion=\.\.\.\): {name}'):
        ReIDMetric(query_expansion=options)


def test_identical_features_are_refused_with_their_cause():
    """A collapsed model gives every sample the same feature: each row's
    largest distance is 0, the definition's ``d / max`` is 0 / 0, and
    re-ranking returned NaN, refused later as "the distance matrix
    contains NaN". It is refused naming the cause."""
    feats = np.ones((8, 4), dtype=np.float32)
    with pytest.raises(ValueError, match='every distance of query 0 .* is 0'):
        k_reciprocal_rerank(feats[:3], feats[3:], k1=2, k2=1)
