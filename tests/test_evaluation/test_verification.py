import numpy as np
import pytest
import torch

from mmreid.evaluation.functional import (compute_distance,
                                          evaluate_verification,
                                          evaluate_verification_features)
from mmreid.evaluation.functional.verification import (check_fprs, float_keys,
                                                       fpr_key, key_to_float,
                                                       max_false_positives,
                                                       tpr_at_fpr)


def naive_tpr_at_fpr(distmat,
                     q_pids,
                     g_pids,
                     q_camids,
                     g_camids,
                     fpr,
                     junk=True):
    """ROC by hand: try every threshold, keep the best TPR with FPR <= x.

    A threshold ``t`` accepts the pairs with ``-d >= t``; the candidate
    thresholds are the distinct scores plus +inf (accept nothing).
    """
    same = q_pids[:, None] == g_pids[None, :]
    kept = ~(same & (q_camids[:, None] == g_camids[None, :])) if junk \
        else np.ones_like(same)
    scores = -distmat.astype(np.float64)
    pos, neg = scores[same & kept], scores[~same & kept]
    best = 0.0
    for t in np.concatenate([np.unique(scores[kept]), [np.inf]]):
        if (neg >= t).sum() / len(neg) <= fpr:
            best = max(best, (pos >= t).sum() / len(pos))
    return best


def random_case(seed, num_query=15, num_gallery=50, num_pids=5, ties=False):
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(0, num_pids, num_query)
    g_pids = rng.integers(0, num_pids, num_gallery)
    q_camids = rng.integers(0, 3, num_query)
    g_camids = rng.integers(0, 3, num_gallery)
    dist = rng.random((num_query, num_gallery)).astype(np.float32)
    dist += (q_pids[:, None] != g_pids[None, :]) * np.float32(0.3)
    if ties:
        dist = np.round(dist * 8) / 8
    return dist.astype(np.float32), q_pids, g_pids, q_camids, g_camids


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('ties', [False, True])
@pytest.mark.parametrize('junk_rule', ['market', 'none'])
def test_matches_naive_roc(seed, ties, junk_rule):
    case = random_case(seed, ties=ties)
    fprs = (0.0, 0.01, 0.05, 0.1, 0.29, 0.5, 1.0)
    for chunk_size in (1, 4, 100):
        result = evaluate_verification(
            *case, fprs=fprs, junk_rule=junk_rule, chunk_size=chunk_size)
        expected = [
            naive_tpr_at_fpr(*case, fpr, junk=junk_rule == 'market')
            for fpr in fprs
        ]
        np.testing.assert_allclose(result.tpr, expected, atol=1e-12)
    same = case[1][:, None] == case[2][None, :]
    junk = same & (case[3][:, None] == case[4][None, :])
    if junk_rule == 'none':
        junk[:] = False
    assert result.num_pos == (same & ~junk).sum()
    assert result.num_neg == (~same & ~junk).sum()


def test_hand_computed():
    # One query, pid 1 on camera 0. Gallery: positive at 0.1 (other
    # camera), negatives at 0.2 and 0.4, positive at 0.3, a junk positive
    # on camera 0 at 0.0 which must not count as a positive.
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.0]], dtype=np.float32)
    q_pids, g_pids = np.array([1]), np.array([1, 2, 1, 3, 1])
    q_cams, g_cams = np.array([0]), np.array([1, 1, 1, 1, 0])
    result = evaluate_verification(
        dist, q_pids, g_pids, q_cams, g_cams, fprs=(0.0, 0.5, 1.0))
    # FPR 0: only d < 0.2 accepted -> 1 of 2 positives.
    # FPR 0.5: one negative allowed -> d < 0.4 -> both positives.
    np.testing.assert_allclose(result.tpr, [0.5, 1.0, 1.0])
    np.testing.assert_allclose(result.thresholds[:2], [0.2, 0.4])
    assert result.thresholds[2] == np.inf
    assert (result.num_pos, result.num_neg) == (2, 2)
    # Labels are not inverted: a model that puts negatives first gets 0.
    result = evaluate_verification(
        1 - dist, q_pids, g_pids, q_cams, g_cams, fprs=(0.0, ))
    assert result.tpr[0] == 0.0


def test_ties_never_exceed_the_fpr():
    # Four negatives tied with the positive: FPR 0.25 allows one of them,
    # but a threshold cannot split a tie, so nothing is accepted.
    dist = np.array([[0.5, 0.5, 0.5, 0.5, 0.5]], dtype=np.float32)
    result = evaluate_verification(
        dist, [1], [1, 2, 3, 4, 5], [0], [1, 1, 1, 1, 1], fprs=(0.25, ))
    assert result.tpr[0] == 0.0


def test_features_equal_distmat():
    generator = torch.Generator().manual_seed(0)
    query, gallery = torch.randn(
        9, 6, generator=generator), torch.randn(
            31, 6, generator=generator)
    labels = (torch.arange(9) % 4, torch.arange(31) % 4,
              torch.zeros(9, dtype=torch.long), torch.arange(31) % 2)
    for metric in ('euclidean', 'cosine'):
        expected = evaluate_verification(
            compute_distance(query, gallery, metric),
            *labels,
            fprs=(0.05, 0.2))
        result = evaluate_verification_features(
            query,
            gallery,
            *labels,
            distance=metric,
            fprs=(0.05, 0.2),
            memory_budget_mb=1e-4)
        np.testing.assert_allclose(result.tpr, expected.tpr)
    scorer = lambda q, g: torch.cdist(q, g)  # noqa: E731
    result = evaluate_verification_features(
        query, gallery, *labels, distance=scorer, fprs=(0.05, 0.2))
    expected = evaluate_verification(
        torch.cdist(query, gallery), *labels, fprs=(0.05, 0.2))
    np.testing.assert_allclose(result.tpr, expected.tpr)


def test_float_keys_preserve_order():
    values = torch.tensor(
        [-np.inf, -3.5, -1e-30, -0.0, 0.0, 1e-30, 0.25, 7.0, np.inf])
    keys = float_keys(values)
    assert (keys[1:] >= keys[:-1]).all()
    assert keys[3] == keys[4]  # -0.0 == 0.0
    assert (keys >= 0).all() and (keys < 2**32).all()
    for value, key in zip(values.tolist(), keys.tolist()):
        assert key_to_float(key) == value


def test_max_false_positives():
    assert max_false_positives(0.29, 100) == 29
    assert max_false_positives(0.07, 100) == 7
    assert max_false_positives(1e-4, 9999) == 0
    assert max_false_positives(1.0, 10) == 10


def test_invalid_inputs():
    case = random_case(0)
    with pytest.raises(ValueError, match='fprs'):
        evaluate_verification(*case, fprs=(1.5, ))
    dist = case[0].copy()
    dist[0, 0] = np.nan
    with pytest.raises(ValueError, match='NaN'):
        evaluate_verification(dist, *case[1:])


@pytest.mark.parametrize(
    'fpr',
    [1e-4, 1e-3, 1e-2, 0.1, 0.0, 1.0, 0.05, 0.25, 0.14, 1.5e-3, 1 / 3, 5e-324])
def test_verification_key_reads_back_as_its_fpr(fpr):
    key = fpr_key(fpr)
    assert key.startswith('TPR@FPR=')
    assert float(key[len('TPR@FPR='):]) == fpr
    # The one-digit form whenever it is exact (the keys logs use).
    if float(f'{fpr:.0e}') == fpr:
        assert key == f'TPR@FPR={fpr:.0e}'
    assert [fpr_key(x) for x in (1e-4, 1e-3, 1e-2)
            ] == ['TPR@FPR=1e-04', 'TPR@FPR=1e-03', 'TPR@FPR=1e-02']


@pytest.mark.parametrize('dtype, written, key', [
    (np.float32, '1e-4', 'TPR@FPR=1e-04'),
    (np.float32, '0.001', 'TPR@FPR=1e-03'),
    (np.float32, '5e-2', 'TPR@FPR=5e-02'),
    (np.float32, '0.25', 'TPR@FPR=2.5e-01'),
    (np.float32, '0.14', 'TPR@FPR=1.4e-01'),
    (np.float32, '1.5e-3', 'TPR@FPR=1.5e-03'),
    (np.float32, '0.33333334', 'TPR@FPR=3.3333334e-01'),
    (np.float16, '0.001', 'TPR@FPR=1e-03'),
])
def test_a_float32_fpr_is_keyed_by_the_decimal_it_was_written_as(
        dtype, written, key):
    # np.float32('0.001') holds 0.0010000000474974513: its key is the
    # shortest decimal that reads back as it in float32, i.e. the one
    # written, not the float64 expansion.
    fpr = dtype(written)
    assert fpr_key(fpr) == key
    assert dtype(key[len('TPR@FPR='):]) == fpr
    # The metric evaluates the FPR its key names.
    assert check_fprs([fpr]) == (float(written), )


def test_float64_fpr_keys_are_unchanged_by_the_float32_reading():
    assert fpr_key(np.float64(0.001)) == 'TPR@FPR=1e-03'
    # A float64 holding a float32's expansion names that expansion.
    expansion = float(np.float32(0.001))
    key = fpr_key(expansion)
    assert key != 'TPR@FPR=1e-03'
    assert float(key[len('TPR@FPR='):]) == expansion
    # A float32 FPR and the float64 decimal it was written as are one FPR.
    with pytest.raises(ValueError, match=r'fprs repeats \[0.001\]'):
        check_fprs([np.float32(0.001), 0.001])


def test_float64_keys_preserve_order():
    values = torch.tensor([
        -np.inf, -3.5, -1e-300, -0.0, 0.0, 5e-324, 1e-300, 1.0, 1.0 + 1e-15,
        7.0, np.inf
    ],
                          dtype=torch.float64)
    keys = float_keys(values)
    unsigned = [key & (2**64 - 1) for key in keys.tolist()]
    assert unsigned == sorted(unsigned)
    assert len(set(unsigned)) == len(unsigned) - 1  # -0.0 == 0.0
    for value, key in zip(values.tolist(), keys.tolist()):
        assert key_to_float(key, wide=True) == value


def test_float64_distances_are_compared_in_float64():
    """A positive 1e-9 closer than both negatives: the ranking puts it
    first, and a threshold between them accepts it and no negative, so
    TPR@FPR=0 is 1 (rounded to float32 all three tied: 0)."""
    dist = np.array([[1.0, 1.0 + 1e-9, 1.0 + 2e-9]])
    result = evaluate_verification(
        dist, [0], [0, 1, 2], [0], [1, 1, 1], fprs=(0.0, 0.5))
    np.testing.assert_array_equal(result.tpr, [1.0, 1.0])
    assert result.thresholds.tolist() == [1.0 + 1e-9, 1.0 + 2e-9]


@pytest.mark.parametrize('dtype', [np.int64, np.int32])
def test_integer_distances_are_compared_exactly(dtype):
    """Integer distances were cast to float32: 2**24 + 1 and + 2 tied with
    2**24, so TPR@FPR=0 came out 0. They are compared as the ranking
    compares them (float64, exact to 2**53)."""
    base = 2**24 if dtype == np.int32 else 2**40
    dist = np.array([[base + 1, base + 2, base + 3]], dtype=dtype)
    result = evaluate_verification(
        dist, [0], [0, 1, 2], [0], [1, 1, 1], fprs=(0.0, 0.5))
    np.testing.assert_array_equal(result.tpr, [1.0, 1.0])
    assert result.thresholds.tolist() == [base + 2, base + 3]


def test_complex_and_inexact_integer_distances_are_refused():
    """The rules of the ranking (rank.ranking_precision): no order for
    complex numbers, no exact float64 for integers beyond 2**53."""
    labels = ([0], [0, 1], [0], [1, 1])
    with pytest.raises(TypeError, match='distances must be real'):
        evaluate_verification(np.array([[1 + 1j, 2 + 0j]]), *labels)
    with pytest.raises(ValueError, match='within \\+-2\\*\\*53'):
        evaluate_verification(np.array([[2**60, 1]]), *labels)


@pytest.mark.parametrize('seed', range(3))
def test_float64_matches_naive_roc(seed):
    """Distances a few ulps of float32 apart around 1 (plus negatives and
    infinities): float64 thresholds, as the naive ROC in float64."""
    _, q_pids, g_pids, q_camids, g_camids = random_case(seed)
    rng = np.random.default_rng(100 + seed)
    dist = 1.0 + rng.integers(0, 40, (len(q_pids), len(g_pids))) * 1e-9
    dist -= (q_pids[:, None] == g_pids[None, :]) * 5e-9
    dist[rng.random(dist.shape) < 0.05] = -2.0
    dist[rng.random(dist.shape) < 0.05] = np.inf
    case = (dist, q_pids, g_pids, q_camids, g_camids)
    fprs = (0.0, 0.01, 0.1, 0.3, 0.5, 0.9, 1.0)
    expected = [naive_tpr_at_fpr(*case, fpr) for fpr in fprs]
    for chunk_size in (1, 7, 100):
        result = evaluate_verification(*case, fprs=fprs, chunk_size=chunk_size)
        np.testing.assert_allclose(result.tpr, expected, atol=1e-12)
    # float32 would round most of these distances together.
    rounded = [
        naive_tpr_at_fpr(dist.astype(np.float32), *case[1:], fpr)
        for fpr in fprs
    ]
    assert rounded != expected


def test_chunks_mixing_float64_with_float32_are_refused():
    dist = np.array([[0.1, 0.2], [0.3, 0.4]])

    def chunks():
        yield 0, torch.tensor(dist[:1], dtype=torch.float32)
        yield 1, torch.tensor(dist[1:], dtype=torch.float64)

    with pytest.raises(ValueError, match='mix float64'):
        tpr_at_fpr(chunks, [0, 1], [0, 1], [0, 0], [1, 1])


def test_nan_fpr_is_refused():
    """An FPR of NaN passed the range check and failed later with a bare
    NaN-to-int error."""
    case = random_case(0)
    with pytest.raises(ValueError, match=r'fprs must lie in \[0, 1\].*nan'):
        evaluate_verification(*case, fprs=(0.1, float('nan')))


def test_no_positive_pair_is_refused():
    """Without a positive pair the TPR (0 / 0) was printed as 0."""
    dist = np.array([[0.1, 0.2, 0.3]], dtype=np.float32)
    with pytest.raises(ValueError, match='no positive pair.*undefined'):
        evaluate_verification(dist, [1], [2, 3, 4], [0], [1, 1, 1])
    # Its only positive on the query's camera is junk under 'market'.
    with pytest.raises(ValueError, match="no positive pair.*'market'"):
        evaluate_verification(dist, [1], [1, 3, 4], [0], [0, 1, 1])


def test_scorer_gets_normalised_query_and_gallery():
    """normalize=True with a scorer: both sides are L2-normalised before
    they are scored."""
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(9, 6, generator=generator) * 3
    gallery = torch.randn(31, 6, generator=generator) * 5
    labels = (torch.arange(9) % 4, torch.arange(31) % 4,
              torch.zeros(9, dtype=torch.long), torch.arange(31) % 2)
    fprs = (0.05, 0.2, 0.5)
    result = evaluate_verification_features(
        query,
        gallery,
        *labels,
        distance=lambda q, g: torch.cdist(q, g),
        normalize=True,
        fprs=fprs)
    unit_q = query / query.norm(dim=1, keepdim=True)
    unit_g = gallery / gallery.norm(dim=1, keepdim=True)
    expected = evaluate_verification(
        torch.cdist(unit_q, unit_g), *labels, fprs=fprs)
    np.testing.assert_allclose(result.tpr, expected.tpr)
    np.testing.assert_allclose(
        result.thresholds, expected.thresholds, rtol=1e-5)


def test_max_false_positives_never_overshoots_the_fpr():
    """``floor(fpr * N)`` rounds up to ``k`` where ``fpr`` lies just below
    ``k / N``; taking it would report a threshold whose FPR exceeds the
    one the user asked for."""
    for num_neg in (6, 10, 11, 12, 49):
        for allowed in range(num_neg + 1):
            for fpr in (allowed / num_neg,
                        np.nextafter(allowed / num_neg, 0.0),
                        np.nextafter(allowed / num_neg, 1.0)):
                fpr = float(min(max(fpr, 0.0), 1.0))
                largest = max(k for k in range(num_neg + 1)
                              if k / num_neg <= fpr)
                assert max_false_positives(fpr, num_neg) == largest
    # 5 / 6 - 1 ulp: floor(fpr * 6) is 5, but 5 / 6 exceeds it.
    assert max_false_positives(np.nextafter(5 / 6, 0.0), 6) == 4


@pytest.mark.parametrize('distance', ['euclidean', 'sqeuclidean'])
def test_features_normalize_applies_to_builtin_distances(distance):
    """normalize=True with a built-in distance scores the L2-normalised
    features; ignoring it would print the TPR of the raw features."""
    generator = torch.Generator().manual_seed(2)
    query = torch.randn(9, 6, generator=generator) * (
        torch.rand(9, 1, generator=generator) * 5 + 0.2)
    gallery = torch.randn(31, 6, generator=generator) * (
        torch.rand(31, 1, generator=generator) * 5 + 0.2)
    labels = (torch.arange(9) % 4, torch.arange(31) % 4,
              torch.zeros(9, dtype=torch.long), torch.arange(31) % 2)
    fprs = (0.05, 0.2, 0.5)
    unit_q = query.double() / query.double().norm(dim=1, keepdim=True)
    unit_g = gallery.double() / gallery.double().norm(dim=1, keepdim=True)
    reference = torch.cdist(unit_q, unit_g)
    if distance == 'sqeuclidean':
        reference = reference**2
    expected = evaluate_verification(reference, *labels, fprs=fprs)
    result = evaluate_verification_features(
        query, gallery, *labels, distance=distance, normalize=True,
        fprs=fprs)
    np.testing.assert_allclose(result.tpr, expected.tpr)
    np.testing.assert_allclose(
        result.thresholds, expected.thresholds, rtol=1e-5)


def test_a_scorer_of_the_wrong_shape_is_refused():
    """A scorer whose output does not have one column per gallery item
    (a dropped column, an extra trailing axis) is refused with a
    ValueError naming the shape, not a bare indexing error."""
    query, gallery = torch.randn(3, 4), torch.randn(5, 4)
    labels = ([0, 1, 2], [0, 1, 2, 0, 1], [0, 0, 0], [1, 1, 1, 1, 1])
    scorers = (lambda q, g: torch.cdist(q, g)[:, :-1],
               lambda q, g: torch.cdist(q, g)[..., None])
    for scorer in scorers:
        with pytest.raises(ValueError, match='a chunk has shape'):
            evaluate_verification_features(
                query, gallery, *labels, distance=scorer)
