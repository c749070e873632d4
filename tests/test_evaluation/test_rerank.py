import numpy as np
import pytest
import torch

from mmreid.evaluation.functional import k_reciprocal_rerank
from mmreid.evaluation.functional.rerank import k_reciprocal_rerank_distances
from mmreid.evaluation.metrics import ReIDMetric


def dense_rerank(query, gallery, k1, k2, lambda_value):
    """k-reciprocal re-ranking written from the paper's definitions with
    dense (N, N) float64 matrices and Python sets."""
    feats = np.concatenate([query, gallery]).astype(np.float64)
    num_query, num = len(query), len(feats)
    dist = ((feats[:, None, :] - feats[None, :, :])**2).sum(-1)
    dist = dist / dist.max(axis=1, keepdims=True)
    ranking = np.argsort(dist, axis=1, kind='stable')

    def nearest(i, k):
        return set(ranking[i, :k].tolist())

    def reciprocal(i, k):
        return {j for j in nearest(i, k + 1) if i in nearest(j, k + 1)}

    half = int(round(k1 / 2))
    weights = np.zeros((num, num))
    for i in range(num):
        members = reciprocal(i, k1)
        expansion = set(members)
        for cand in members:
            cand_set = reciprocal(cand, half)
            if len(cand_set & members) > 2 / 3 * len(cand_set):
                expansion |= cand_set
        cols = sorted(expansion)
        weight = np.exp(-dist[i, cols])
        weights[i, cols] = weight / weight.sum()
    if k2 > 1:
        weights = np.stack(
            [weights[ranking[i, :k2]].mean(axis=0) for i in range(num)])
    jaccard = np.zeros((num_query, num - num_query))
    for i in range(num_query):
        for j in range(num_query, num):
            overlap = np.minimum(weights[i], weights[j]).sum()
            jaccard[i, j - num_query] = 1 - overlap / (2 - overlap)
    return (1 - lambda_value) * jaccard + lambda_value * dist[:num_query,
                                                              num_query:]


def clustered_features(seed, num_query, num_gallery, dim=8, num_ids=6):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(num_ids, dim))
    pids = rng.integers(0, num_ids, num_query + num_gallery)
    feats = centers[pids] + rng.normal(scale=0.7, size=(len(pids), dim))
    return feats[:num_query], feats[num_query:]


@pytest.mark.parametrize('seed', range(3))
@pytest.mark.parametrize('k1,k2,lambda_value', [(20, 6, 0.3), (7, 1, 0.0),
                                                (5, 3, 0.6)])
def test_matches_dense_reference(seed, k1, k2, lambda_value):
    query, gallery = clustered_features(seed, 20, 60)
    expected = dense_rerank(query, gallery, k1, k2, lambda_value)
    for budget in (128, 0.01):
        result = k_reciprocal_rerank(
            torch.from_numpy(query),
            torch.from_numpy(gallery),
            k1=k1,
            k2=k2,
            lambda_value=lambda_value,
            memory_budget_mb=budget)
        assert result.shape == (20, 60)
        np.testing.assert_allclose(result.numpy(), expected, atol=1e-5)


@pytest.mark.parametrize('k2', [1, 2])
def test_tiny_case_worked_out_by_hand(k2):
    """3 queries, 6 gallery on a line, k1 = 1, lambda = 0.3 (Zhong et al.,
    CVPR 2017, Eq. 5-12). Each query is the mutual nearest neighbour of
    one gallery item (g3 and g4 of each other); g5's nearest is g2, which
    prefers q2. With k1 = 1, R*(i) is i and its mutual nearest neighbour,
    and V[i] holds exp(-d) over it, normalised."""
    query = np.array([[0.], [10.], [30.]])
    gallery = np.array([[1.], [12.], [33.], [20.], [21.5], [50.]])
    feats = np.concatenate([query, gallery])[:, 0]
    dist = (feats[:, None] - feats[None])**2
    dist /= dist.max(axis=1, keepdims=True)
    jaccard = np.ones((3, 6))
    if k2 == 1:
        # q and its gallery partner share their pair: the overlap is what
        # each gives the other, e^-d / (1 + e^-d).
        for q in range(3):
            gives = np.exp(-dist[[q, 3 + q], [3 + q, q]])
            overlap = (gives / (1 + gives)).sum()
            jaccard[q, q] = 1 - overlap / (2 - overlap)
    else:
        # Local query expansion over N(i, 2) = {i, its nearest}: both
        # members of a pair get the same mean, overlap 1. g5 gets
        # (e_g5 + V[g2]) / 2, which meets (V[q2] + V[g2]) / 2 in V[g2] / 2:
        # overlap 1/2, Jaccard 1 - (1/2) / (3/2).
        jaccard[range(3), range(3)] = 0
        jaccard[2, 5] = 2 / 3
    expected = 0.7 * jaccard + 0.3 * dist[:3, 3:]
    result = k_reciprocal_rerank(query, gallery, k1=1, k2=k2)
    np.testing.assert_allclose(result.numpy(), expected, atol=1e-12)


def test_float32_and_distance_blocks():
    query, gallery = clustered_features(5, 12, 40)
    expected = dense_rerank(query, gallery, 10, 4, 0.3)
    result = k_reciprocal_rerank(
        query.astype(np.float32), gallery.astype(np.float32), k1=10, k2=4)
    assert result.dtype == torch.float32
    np.testing.assert_allclose(result.numpy(), expected, atol=1e-5)

    def sq_dist(a, b):
        return ((a[:, None] - b[None])**2).sum(-1)

    result = k_reciprocal_rerank_distances(
        sq_dist(query, gallery),
        sq_dist(query, query),
        sq_dist(gallery, gallery),
        k1=10,
        k2=4,
        memory_budget_mb=0.01)
    np.testing.assert_allclose(result.numpy(), expected, atol=1e-5)


def test_lambda_one_gives_the_normalised_distance():
    # With lambda = 1 only the original distance is left: squared
    # Euclidean divided by each query's maximum over all N samples.
    query, gallery = clustered_features(2, 6, 15)
    feats = np.concatenate([query, gallery])
    dist = ((query[:, None] - feats[None])**2).sum(-1)
    expected = (dist / dist.max(axis=1, keepdims=True))[:, 6:]
    result = k_reciprocal_rerank(query, gallery, k1=4, k2=2, lambda_value=1)
    np.testing.assert_allclose(result.numpy(), expected, atol=1e-12)


def test_invalid_parameters():
    query, gallery = clustered_features(0, 4, 10)
    with pytest.raises(ValueError, match='k2'):
        k_reciprocal_rerank(query, gallery, k1=3, k2=5)
    with pytest.raises(ValueError, match='exceeds'):
        k_reciprocal_rerank(query, gallery, k1=20)


@pytest.mark.parametrize('options, match', [
    (dict(lambda_value=-2), r'lambda_value .*\[0, 1\], got -2'),
    (dict(lambda_value=5), r'lambda_value .*\[0, 1\], got 5'),
    (dict(lambda_value=float('nan')), r'lambda_value .*\[0, 1\], got nan'),
    (dict(lambda_value='0.3'), r"lambda_value .*\[0, 1\], got '0.3'"),
    (dict(k1=4.0), r'k1 must be an integer, got 4.0 \(float\)'),
    (dict(k1=4, k2=2.5), r'k2 must be an integer, got 2.5 \(float\)'),
    (dict(k1=True), r'k1 must be an integer, got True \(bool\)'),
    (dict(k1=0, k2=1), r'need k1 >= 1 .*got k1=0, k2=1'),
])
def test_options_outside_the_definition_are_refused(options, match):
    """d* = (1 - lambda) d_J + lambda d with lambda in [0, 1] and integer
    neighbourhood sizes (Zhong et al., CVPR 2017): anything else was used
    as given (lambda 5 printed an mAP) or failed deep inside topk."""
    query, gallery = clustered_features(0, 4, 10)
    options = dict(dict(k1=4, k2=2), **options)
    with pytest.raises(ValueError, match=match):
        k_reciprocal_rerank(query, gallery, **options)
    dist = np.random.default_rng(0).random((4, 10))
    with pytest.raises(ValueError, match=match):
        k_reciprocal_rerank_distances(dist, np.zeros((4, 4)), np.zeros(
            (10, 10)), **options)
    # The metric refuses them when it is built, naming the option.
    with pytest.raises(
            ValueError, match=r'ReIDMetric\(rerank=...\).*' + match):
        ReIDMetric(rerank=options)


def test_lambda_and_k_at_their_bounds_are_accepted():
    query, gallery = clustered_features(1, 5, 12)
    bounds = [
        dict(k1=4, k2=1, lambda_value=0),
        dict(k1=np.int64(4), k2=5, lambda_value=1),
        # k1 + 1 = N: every sample is among every sample's neighbours.
        dict(k1=16, k2=17, lambda_value=0.5),
    ]
    for options in bounds:
        ReIDMetric(rerank=options)
        result = k_reciprocal_rerank(query, gallery, **options)
        assert result.shape == (5, 12) and torch.isfinite(result).all()
