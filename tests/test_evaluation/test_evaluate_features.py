import math

import numpy as np
import pytest
import torch

from mmreid.evaluation.functional import (chunk_rows_for_budget,
                                          compute_distance, evaluate_features,
                                          evaluate_rank)


def problem(seed=0, num_query=30, num_gallery=200, exact=True):
    """Features with pid structure.

    With ``exact``, every feature has 16 entries of +-1 and 16 zeros, so
    its norm is exactly 4 and all dot products, normalised or not, are
    exact: distances are bit-identical however the queries are chunked.
    """
    generator = torch.Generator().manual_seed(seed)
    num_pids, dim = 12, 32
    centers = torch.randint(0, 2, (num_pids, dim), generator=generator) * 2 - 1

    def sample(pids):
        feats = centers[pids].clone()
        flip = torch.rand(feats.shape, generator=generator) < 0.25
        feats[flip] *= -1
        order = torch.rand(feats.shape, generator=generator).argsort(dim=1)
        feats = (feats * (order < dim // 2)).float()
        if not exact:
            feats += torch.rand(feats.shape, generator=generator)
        return feats

    q_pids = torch.randint(0, num_pids, (num_query, ), generator=generator)
    g_pids = torch.randint(0, num_pids, (num_gallery, ), generator=generator)
    q_camids = torch.randint(0, 4, (num_query, ), generator=generator)
    g_camids = torch.randint(0, 4, (num_gallery, ), generator=generator)
    return sample(q_pids), sample(g_pids), q_pids, g_pids, q_camids, g_camids


def assert_equal_results(result, expected):
    np.testing.assert_array_equal(result.cmc, expected.cmc)
    np.testing.assert_array_equal(result.all_AP, expected.all_AP)
    np.testing.assert_array_equal(result.all_INP, expected.all_INP)
    np.testing.assert_array_equal(result.valid_mask, expected.valid_mask)


@pytest.mark.parametrize('metric', ['euclidean', 'sqeuclidean', 'cosine'])
@pytest.mark.parametrize('normalize', [False, True])
@pytest.mark.parametrize('budget_mb', [0.01, 0.05, 100])
def test_equals_evaluate_rank_of_full_matrix(metric, normalize, budget_mb):
    query, gallery, *labels = problem()
    expected = evaluate_rank(
        compute_distance(query, gallery, metric, normalize),
        *labels,
        tie_policy='stable')
    result = evaluate_features(
        query,
        gallery,
        *labels,
        distance=metric,
        normalize=normalize,
        memory_budget_mb=budget_mb)
    assert_equal_results(result, expected)


def test_rank_options_are_forwarded():
    query, gallery, *labels = problem(1)
    options = dict(
        max_rank=7,
        junk_rule='none',
        tie_policy='optimistic',
        ap_mode='threshold',
        cmc_mode='dedup')
    expected = evaluate_rank(
        compute_distance(query, gallery), *labels, **options)
    result = evaluate_features(query, gallery, *labels, **options)
    assert len(result.cmc) == 7
    assert_equal_results(result, expected)


def test_float_features_match_within_rounding():
    query, gallery, *labels = problem(2, exact=False)
    expected = evaluate_rank(compute_distance(query, gallery), *labels)
    result = evaluate_features(
        query.numpy(), gallery.numpy(), *labels, memory_budget_mb=0.02)
    np.testing.assert_allclose(result.cmc, expected.cmc)
    assert result.mAP == pytest.approx(expected.mAP, abs=1e-6)


def test_scorer_chunks_respect_budget():
    query, gallery, *labels = problem(3, num_query=45, num_gallery=300)
    budget_mb = 0.1
    max_rows = chunk_rows_for_budget(len(gallery), budget_mb)
    assert 1 < max_rows < len(query)  # the budget must force chunking
    calls = []

    def scorer(query_chunk, gallery_feats):
        calls.append(len(query_chunk))
        assert gallery_feats.shape == gallery.shape
        # Negated similarity, returned as numpy to check conversion.
        return (-query_chunk @ gallery_feats.t()).numpy()

    result = evaluate_features(
        query, gallery, *labels, distance=scorer, memory_budget_mb=budget_mb)
    assert max(calls) <= max_rows
    assert len(calls) == math.ceil(len(query) / max_rows)
    assert sum(calls) == len(query)
    expected = evaluate_rank(-query @ gallery.t(), *labels)
    assert_equal_results(result, expected)


def test_budget_scales_with_gallery_size():
    rows = chunk_rows_for_budget(10000, 64)
    assert chunk_rows_for_budget(20000, 64) in (rows // 2, rows // 2 + 1)
    assert chunk_rows_for_budget(10**9, 1) == 1


def test_scorer_gets_normalized_features():

    def scorer(query_chunk, gallery_feats):
        torch.testing.assert_close(
            query_chunk.norm(dim=1), torch.ones(len(query_chunk)))
        torch.testing.assert_close(
            gallery_feats.norm(dim=1), torch.ones(len(gallery_feats)))
        return -query_chunk @ gallery_feats.t()

    query, gallery, *labels = problem(4)
    result = evaluate_features(
        query * 5, gallery, *labels, distance=scorer, normalize=True)
    expected = evaluate_features(
        query, gallery, *labels, distance=scorer, normalize=True)
    np.testing.assert_allclose(result.all_AP, expected.all_AP, atol=1e-7)


def test_invalid_inputs():
    query, gallery, q_pids, g_pids, q_camids, g_camids = problem(5)
    labels = (q_pids, g_pids, q_camids, g_camids)
    with pytest.raises(ValueError, match='scorer returned'):
        evaluate_features(
            query, gallery, *labels, distance=lambda q, g: q @ q.t())
    with pytest.raises(ValueError, match='query pids'):
        evaluate_features(query[:-1], gallery, *labels)
    with pytest.raises(ValueError, match='gallery pids'):
        evaluate_features(query, gallery[:-1], *labels)
    with pytest.raises(TypeError, match='chunk_size'):
        evaluate_features(query, gallery, *labels, chunk_size=4)


@pytest.mark.parametrize('metric', ['euclidean', 'sqeuclidean'])
@pytest.mark.parametrize('tie_policy', ['stable', 'pessimistic', 'optimistic'])
@pytest.mark.parametrize('ap_mode', ['cumsum', 'threshold'])
def test_integer_features_keep_exact_ties(metric, tie_policy, ap_mode):
    # Quantised features: many items are at exactly the same distance, and
    # the tie policy must order those, not the rounding of a square root
    # squared again. Every fp32 sum here is an exact integer (< 2**24).
    rng = np.random.default_rng(3)
    dim, num_pids = 16, 15
    centers = rng.integers(-2, 3, (num_pids, dim))

    def sample(pids):
        return centers[pids] + rng.integers(-1, 2, (len(pids), dim))

    q_pids = rng.integers(0, num_pids, 80)
    g_pids = rng.integers(0, num_pids, 600)
    query, gallery = sample(q_pids), sample(g_pids)
    labels = (q_pids, g_pids, rng.integers(0, 3, 80), rng.integers(0, 3, 600))
    # Exact squared distances (int64); the Euclidean distance orders and
    # ties items exactly like its square.
    exact = ((query[:, None, :] - gallery[None, :, :])**2).sum(-1)
    # Many ties in every row.
    assert max(len(np.unique(row)) for row in exact) < exact.shape[1] / 3
    options = dict(tie_policy=tie_policy, ap_mode=ap_mode)
    expected = evaluate_rank(exact, *labels, **options)
    result = evaluate_features(
        query.astype(np.float32),
        gallery.astype(np.float32),
        *labels,
        distance=metric,
        **options)
    assert_equal_results(result, expected)


@pytest.mark.parametrize('normalize', [False, True])
def test_multi_equals_each_distance_alone(normalize):
    """One pass over the query chunks for several distances gives each
    distance's result of evaluate_features, and calls every scorer on the
    same chunks, in the order given."""
    from mmreid.evaluation.functional import evaluate_features_multi
    query, gallery, *labels = problem(6, exact=False)
    calls = []

    def dot(query_chunk, gallery_feats):
        calls.append(('dot', query_chunk.data_ptr(), len(query_chunk)))
        return -query_chunk @ gallery_feats.t()

    def manhattan(query_chunk, gallery_feats):
        calls.append(('l1', query_chunk.data_ptr(), len(query_chunk)))
        return torch.cdist(query_chunk, gallery_feats, p=1)

    distances = dict(
        euclid='euclidean', dot=dot, cosine='cosine', l1=manhattan)
    results = evaluate_features_multi(
        query,
        gallery,
        *labels,
        distances=distances,
        normalize=normalize,
        memory_budget_mb=0.01,
        tie_policy='stable')
    assert list(results) == list(distances)
    chunks = [c for c in calls if c[0] == 'dot']
    assert len(chunks) > 2  # several query chunks
    # Interleaved per chunk: dot then l1 on the same (normalised) chunk.
    assert [c[0] for c in calls] == ['dot', 'l1'] * len(chunks)
    assert all(a[1:] == b[1:] for a, b in zip(calls[::2], calls[1::2]))
    for name, distance in distances.items():
        alone = evaluate_features(
            query,
            gallery,
            *labels,
            distance=distance,
            normalize=normalize,
            memory_budget_mb=0.01,
            tie_policy='stable')
        assert_equal_results(results[name], alone)
    with pytest.raises(ValueError, match='at least one'):
        evaluate_features_multi(query, gallery, *labels, distances={})
    with pytest.raises(ValueError, match="scorer 'bad' returned"):
        evaluate_features_multi(
            query,
            gallery,
            *labels,
            distances=dict(ok='euclidean', bad=lambda q, g: q @ q.t()))


@pytest.mark.parametrize('metric', ['euclidean', 'sqeuclidean'])
def test_normalize_ranks_the_unit_features(metric):
    """normalize=True ranks L2-normalised features: with features of
    different norms that is not the ranking of the raw ones."""
    query, gallery, *labels = problem(7, exact=False)
    query = query * torch.linspace(0.2, 5, len(query))[:, None]
    gallery = gallery * torch.linspace(5, 0.2, len(gallery))[:, None]

    def unit(feats):
        feats = feats.double()
        return feats / feats.norm(dim=1, keepdim=True)

    expected = evaluate_rank(
        torch.cdist(unit(query), unit(gallery)), *labels, tie_policy='stable')
    raw = evaluate_features(query, gallery, *labels, distance=metric)
    assert abs(raw.mAP - expected.mAP) > 1e-3
    result = evaluate_features(
        query, gallery, *labels, distance=metric, normalize=True)
    np.testing.assert_allclose(result.all_AP, expected.all_AP, atol=1e-9)
    np.testing.assert_array_equal(result.cmc, expected.cmc)
