import numpy as np
import pytest
import torch

from mmreid.evaluation.functional import k_reciprocal_rerank
from mmreid.evaluation.functional.rerank import k_reciprocal_rerank_distances
from mmreid.evaluation.metrics import ReIDMetric
from ..fixtures.rerank_reference import paper_rerank


def dense_rerank(query, gallery, k1, k2, lambda_value):
    """k-reciprocal re-ranking written from the paper's definitions with
    dense (N, N) float64 matrices and Python sets, on the squared Euclidean
    distance of the features."""
    return paper_rerank(query, gallery, k1, k2, lambda_value)


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


def sq_dist(a, b):
    return ((a[:, None] - b[None])**2).sum(-1)


def distance_blocks(seed=3, num_query=6, num_gallery=15):
    query, gallery = clustered_features(seed, num_query, num_gallery)
    pairs = ((query, gallery), (query, query), (gallery, gallery))
    return tuple(sq_dist(a, b) for a, b in pairs)


@pytest.mark.parametrize('num_query,num_gallery', [(0, 5), (3, 0)])
def test_an_empty_query_or_gallery_is_refused(num_query, num_gallery):
    """Nothing to re-rank: refused with the counts, from features and from
    distance blocks alike (the blocks gave torch's reduction error, the
    features one about k1)."""
    match = (f'needs at least one query and one gallery sample, got '
             f'{num_query} queries and {num_gallery} gallery samples')
    with pytest.raises(ValueError, match=match):
        k_reciprocal_rerank(
            torch.randn(num_query, 4), torch.randn(num_gallery, 4), k1=1,
            k2=1)
    with pytest.raises(ValueError, match=match):
        k_reciprocal_rerank_distances(
            torch.rand(num_query, num_gallery),
            torch.zeros(num_query, num_query),
            torch.zeros(num_gallery, num_gallery), k1=1, k2=1)


@pytest.mark.parametrize('which', ['q_q_dist', 'g_g_dist'])
def test_an_asymmetric_block_is_refused(which):
    """The gallery rows of the full (N, N) distance are read from
    ``q_g_dist`` transposed and each block's rows stand for its columns
    too: an asymmetric block (a learned pair scorer, a one-sided
    divergence) has no k-reciprocal re-ranking, and was re-ranked as if
    it were one."""
    q_g, q_q, g_g = distance_blocks()
    block = q_q if which == 'q_q_dist' else g_g
    # One pair scored one way: d[1, 4] exceeds d[4, 1] by half the
    # block's largest distance.
    block[1, 4] += 0.5 * block.max()
    with pytest.raises(
            ValueError,
            match=rf'{which}, shape \({len(block)}, {len(block)}\), is not '
            r'symmetric: .*\[1, 4\] = .* but .*\[4, 1\] = .*'
            r'expected .*d\(i, j\) = d\(j, i\)'):
        k_reciprocal_rerank_distances(q_g, q_q, g_g, k1=4, k2=2)


def test_a_similarity_block_is_refused():
    """N(i, k) counts each sample among its own nearest: a similarity
    (cosine: 1 on the diagonal, larger = closer) makes i its own farthest
    sample, and a diagonal above the row's minimum drops i from N(i, k)."""
    query, gallery = clustered_features(4, 6, 15)
    unit_q = query / np.linalg.norm(query, axis=1, keepdims=True)
    unit_g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    with pytest.raises(
            ValueError,
            match=r'q_q_dist\[(\d+), \1\] = 1 is not the smallest distance '
            r'of query \1: .*_dist\[\1, \d+\] = .* is smaller'):
        k_reciprocal_rerank_distances(
            unit_q @ unit_g.T,
            unit_q @ unit_q.T,
            unit_g @ unit_g.T,
            k1=4,
            k2=2)
    # A gallery sample nearer to a query (q_g_dist's column: the gallery
    # row of the full distance) than to itself.
    q_g, q_q, g_g = distance_blocks()
    q_g[2, 3] = 0
    g_g[3, 3] = 0.5 * np.delete(g_g[3], 3).min()
    with pytest.raises(
            ValueError,
            match=r'g_g_dist\[3, 3\] = .* is not the smallest distance of '
            r'gallery sample 3: q_g_dist\[2, 3\] = 0 is smaller'):
        k_reciprocal_rerank_distances(q_g, q_q, g_g, k1=4, k2=2)


def test_a_non_finite_block_is_refused():
    q_g, q_q, g_g = distance_blocks()
    q_g[2, 7] = np.nan
    with pytest.raises(
            ValueError,
            match=r'q_g_dist, shape \(6, 15\), has a non-finite entry: '
            r'q_g_dist\[2, 7\] = nan'):
        k_reciprocal_rerank_distances(q_g, q_q, g_g, k1=4, k2=2)


@pytest.mark.parametrize('name', ['query_feats', 'gallery_feats'])
def test_a_non_finite_feature_is_refused(name):
    """A NaN feature (a diverged model) turned every re-ranked distance
    into NaN, the Jaccard term mixing each row with its neighbours'."""
    feats = dict(
        query_feats=torch.randn(
            4, 8, generator=torch.Generator().manual_seed(0)),
        gallery_feats=torch.randn(
            12, 8, generator=torch.Generator().manual_seed(1)))
    feats[name][3, 5] = float('inf')
    with pytest.raises(
            ValueError,
            match=rf'k_reciprocal_rerank: {name}, shape \({len(feats[name])}, '
            rf'8\), has a non-finite entry: {name}\[3, 5\] = inf; '
            'expected finite features'):
        k_reciprocal_rerank(**feats, k1=4, k2=2)


def expanded_form_euclidean(feats):
    """float32 ``sqrt(|a|^2 + |b|^2 - 2 a.b)``, clamped at 0, with the dot
    products of the two triangles summed in opposite orders (as two GEMM
    blockings may): symmetric up to float32 rounding, not exactly."""
    feats = torch.as_tensor(feats, dtype=torch.float32)
    sq_norm = feats.pow(2).sum(1)
    forward = feats @ feats.t()
    backward = feats.flip(1) @ feats.flip(1).t()
    upper = torch.ones_like(forward, dtype=torch.bool).triu()
    dots = torch.where(upper, forward, backward)
    return (sq_norm[:, None] + sq_norm[None] - 2 * dots).clamp(min=0).sqrt()


def test_float32_expanded_form_distances_are_accepted():
    """Realistic 2048-d features (non-negative, as after a ReLU, a few
    near-duplicate images) in float32 through the expanded form: the
    rounding leaves the blocks asymmetric and the diagonal above some
    clamped near-duplicate distances by up to ~1e-3 of the row's largest
    distance (the square root of the rounding of the square), which is
    float rounding of a symmetric distance and must pass."""
    gen = torch.Generator().manual_seed(0)
    centers = torch.relu(torch.randn(12, 2048, generator=gen) + 0.5)
    pids = torch.randint(0, 12, (160, ), generator=gen)
    feats = torch.relu(centers[pids] +
                       0.3 * torch.randn(160, 2048, generator=gen))
    # Near-duplicates of queries and of gallery samples in the gallery.
    feats[100:120] = feats[30:50] + 1e-4 * torch.randn(20, 2048, generator=gen)
    dist = expanded_form_euclidean(feats)
    q_g, q_q, g_g = dist[:40, 40:], dist[:40, :40], dist[40:, 40:]
    # The case is real: the blocks are not exactly symmetric, and a
    # near-duplicate's distance is below the diagonal.
    assert (q_q != q_q.t()).any() and (g_g != g_g.t()).any()
    assert (dist.diagonal() > dist.min(1).values).any()
    result = k_reciprocal_rerank_distances(
        q_g, q_q, g_g, k1=10, k2=4, memory_budget_mb=0.05)
    assert result.shape == (40, 120) and torch.isfinite(result).all()


def line_blocks(query=(0.0, 1.0), gallery=(0.5, 10.0), shift=0.0):
    """``|x - y| + shift`` of points on a line, as (q_g, q_q, g_g) float64
    blocks: a symmetric distance with each sample nearest to itself."""
    q = torch.tensor(query, dtype=torch.float64)
    g = torch.tensor(gallery, dtype=torch.float64)
    return tuple((a[:, None] - b[None]).abs() + shift
                 for a, b in ((q, g), (q, q), (g, g)))


def test_the_symmetry_tolerance_is_relative_to_the_rows_largest_distance():
    """A pair passes when ``min(|a - b| / s, |a^2 - b^2| / s^2)`` is below
    1e-3, ``s`` the larger of the two rows' largest |distance| over the
    full (N, N) distance (the q_g block included): the rounding of a
    distance or of its square. Points 0, 1 (query) and 0.5, 10
    (gallery), d = |x - y|."""
    # g_g[0, 1] = 9.5; rows' largest |distance|: gallery 0 9.5, gallery 1
    # 10 (to query 0): s = 10, |a + b| / s >= 1, so |a - b| / 10 counts.
    for delta, passes in ((0.009, True), (0.011, False)):
        q_g, q_q, g_g = line_blocks()
        g_g[0, 1] += delta
        if passes:
            k_reciprocal_rerank_distances(q_g, q_q, g_g, k1=2, k2=1)
        else:
            with pytest.raises(
                    ValueError,
                    match=r'g_g_dist, shape \(2, 2\), is not symmetric: '
                    r'g_g_dist\[0, 1\] = 9\.511 but g_g_dist\[1, 0\] = 9\.5'):
                k_reciprocal_rerank_distances(q_g, q_q, g_g, k1=2, k2=1)
    # q_q[0, 1] = 1, far below s = 10 (query 0's distance to gallery 10,
    # in q_g): the square's rounding counts, |(1 + d)^2 - 1| / 100.
    # d = 0.04: 8.16e-4 passes (|a - b| / s alone would be 4e-3); d =
    # 0.06: 1.236e-3 is refused.
    for delta, passes in ((0.04, True), (0.06, False)):
        q_g, q_q, g_g = line_blocks()
        q_q[1, 0] += delta
        if passes:
            k_reciprocal_rerank_distances(q_g, q_q, g_g, k1=2, k2=1)
        else:
            with pytest.raises(ValueError, match=r'q_q_dist, .* symmetric'):
                k_reciprocal_rerank_distances(q_g, q_q, g_g, k1=2, k2=1)
    # The scale is the largest |distance|: all distances shifted to
    # [10, 20] keep s = 20, and a difference of 0.015 (7.5e-4 of s)
    # passes. (Shifted to [-20, -10] they are refused: no distance is
    # negative, see test_hunt_rerank.)
    q_g, q_q, g_g = line_blocks(shift=10.0)
    g_g[0, 1] += 0.015
    k_reciprocal_rerank_distances(q_g, q_q, g_g, k1=2, k2=1)
    with pytest.raises(ValueError, match='is negative'):
        k_reciprocal_rerank_distances(*line_blocks(shift=-20.0), k1=2, k2=1)


@pytest.mark.parametrize('which', ['q_g_dist', 'q_q_dist', 'g_g_dist'])
def test_a_refusal_names_the_entry_when_checked_row_by_row(which):
    """A small memory budget checks the blocks a row at a time; the
    error still names the entry by its row in the whole block, and every
    block is checked for a non-finite entry."""
    q_g, q_q, g_g = distance_blocks()  # 6 queries, 15 gallery samples
    blocks = dict(q_g_dist=q_g, q_q_dist=q_q, g_g_dist=g_g)
    blocks[which][4, 5] = np.nan
    with pytest.raises(
            ValueError,
            match=rf'{which}, shape .* has a non-finite entry: '
            rf'{which}\[4, 5\] = nan'):
        k_reciprocal_rerank_distances(
            q_g, q_q, g_g, k1=4, k2=2, memory_budget_mb=1e-9)
    q_g, q_q, g_g = distance_blocks()
    g_g[9, 2] += 0.5 * g_g.max()
    with pytest.raises(
            ValueError,
            match=r'g_g_dist, shape \(15, 15\), is not symmetric: '
            r'g_g_dist\[(2, 9|9, 2)\] = .* but g_g_dist\[(9, 2|2, 9)\]'):
        k_reciprocal_rerank_distances(
            q_g, q_q, g_g, k1=4, k2=2, memory_budget_mb=1e-9)


def test_a_gallery_rows_scale_includes_its_query_distances():
    """A gallery sample's row of the full (N, N) distance is its q_g_dist
    column followed by its g_g_dist row, so the symmetry tolerance of a
    g_g_dist pair is relative to the largest of both (as for q_q_dist).
    Queries 0 and 100, gallery 0.5 and 2 on a line: g_g_dist[0, 1] = 1.5,
    the gallery rows' largest |distance| 99.5 (to query 100). Measured
    against g_g_dist alone (1.5), rounding of the large q_g distances was
    refused as an asymmetry."""
    # 0.05 on 1.5 is 5e-4 of s = 99.5, and its square's rounding 1.5e-5:
    # float rounding of that row.
    q_g, q_q, g_g = line_blocks(query=(0.0, 100.0), gallery=(0.5, 2.0))
    g_g[0, 1] += 0.05
    result = k_reciprocal_rerank_distances(q_g, q_q, g_g, k1=2, k2=1)
    assert result.shape == (2, 2) and torch.isfinite(result).all()
    # 3 on 1.5: |a^2 - b^2| / s^2 = 1.8e-3, beyond rounding.
    q_g, q_q, g_g = line_blocks(query=(0.0, 100.0), gallery=(0.5, 2.0))
    g_g[0, 1] += 3.0
    with pytest.raises(ValueError, match=r'g_g_dist, shape \(2, 2\), is not '
                       r'symmetric: g_g_dist\[0, 1\] = 4\.5'):
        k_reciprocal_rerank_distances(q_g, q_q, g_g, k1=2, k2=1)


@pytest.mark.parametrize('which', ['q_g_dist', 'q_q_dist', 'g_g_dist'])
def test_every_row_is_checked_for_a_non_finite_entry(which):
    """Checked a row at a time (a small memory budget), a NaN in any row
    of any block is refused: a row left out would re-rank every distance
    into NaN through the Jaccard term."""
    for row in range(len(distance_blocks()[0])):
        q_g, q_q, g_g = distance_blocks()  # 6 queries, 15 gallery samples
        blocks = dict(q_g_dist=q_g, q_q_dist=q_q, g_g_dist=g_g)
        blocks[which][row, 1] = np.nan
        with pytest.raises(
                ValueError,
                match=rf'{which}, shape .* has a non-finite entry: '
                rf'{which}\[{row}, 1\] = nan'):
            k_reciprocal_rerank_distances(
                q_g, q_q, g_g, k1=4, k2=2, memory_budget_mb=1e-9)


def test_float64_distance_blocks_are_re_ranked_in_float64():
    """float64 blocks are re-ranked in float64, as float64 features are:
    the result matches the definition to float64 rounding and keeps its
    dtype (a float32 computation would be off by ~1e-7 and return
    float32)."""
    query, gallery = clustered_features(6, 8, 24)
    expected = dense_rerank(query, gallery, 6, 3, 0.3)
    result = k_reciprocal_rerank_distances(
        sq_dist(query, gallery),
        sq_dist(query, query),
        sq_dist(gallery, gallery),
        k1=6,
        k2=3)
    assert result.dtype == torch.float64
    np.testing.assert_allclose(result.numpy(), expected, atol=1e-12)
