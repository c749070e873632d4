import os
import re
import signal
import time

import numpy as np
import pytest
import torch

import mmreid.evaluation.functional.count_kernel as count_kernel
import mmreid.evaluation.functional.rank as rank_module
from mmreid.evaluation.functional import evaluate_rank, reference_evaluate_rank
from mmreid.evaluation.functional.junk_rules import market_junk
from mmreid.evaluation.functional.positives import float32_order_key

POLICIES = ('stable', 'pessimistic', 'optimistic')


def market_as_callable(same_pid, q_camids, g_camids):
    """The market rule as a user callable: the rank computation cannot
    know it only removes same-pid items, so it takes the (Qc, G) mask
    path instead of the same-pid table."""
    return market_junk(same_pid, q_camids, g_camids)


def reference(*problem, junk_rule='market', **options):
    """The brute-force reference, which knows the rules by name only."""
    if junk_rule is market_as_callable:
        junk_rule = 'market'
    return reference_evaluate_rank(*problem, junk_rule=junk_rule, **options)


def toy_market():
    """Three queries against ten gallery items (market rule).

    Gallery (pid, camid):
        0: (1, 0)  1: (2, 1)  2: (1, 1)  3: (0, 1)  4: (3, 0)
        5: (1, 2)  6: (2, 2)  7: (0, 0)  8: (1, 1)  9: (4, 1)
    pid 0 items (3, 7) are distractors and must count as negatives.
    """
    g_pids = np.array([1, 2, 1, 0, 3, 1, 2, 0, 1, 4])
    g_camids = np.array([0, 1, 1, 1, 0, 2, 2, 0, 1, 1])
    q_pids = np.array([1, 5, 2])
    q_camids = np.array([0, 0, 1])
    distmat = np.array([
        # Query 0 (pid 1, cam 0): item 0 is pid 1 on cam 0 -> removed.
        # Kept order: 1n 2p 3n 4n 5p 6n 7n 8p 9n -> positives at 2, 5, 8
        # (the pid 0 items 3 and 7 push the positives down).
        # AP = (1/2 + 2/5 + 3/8) / 3 = 0.425, INP = 3/8.
        [.1, .2, .3, .4, .5, .6, .7, .8, .9, 1.],
        # Query 1 (pid 5): no pid 5 in the gallery -> skipped.
        [.5, .4, .3, .2, .1, .6, .7, .8, .9, 1.],
        # Query 2 (pid 2, cam 1): item 1 is pid 2 on cam 1 -> removed.
        # Kept order: 4 (.2) 3 (.3) 6p (.4) ... -> positive at 3.
        # AP = INP = 1/3.
        [.5, .1, .9, .3, .2, .8, .4, .6, .7, .95],
    ])
    return distmat, q_pids, g_pids, q_camids, g_camids


def test_hand_computed_market(search_path):
    distmat, q_pids, g_pids, q_camids, g_camids = toy_market()
    result = evaluate_rank(
        distmat, q_pids, g_pids, q_camids, g_camids, max_rank=12)
    assert result.num_query == 3
    assert result.num_valid_query == 2
    np.testing.assert_array_equal(result.valid_mask, [True, False, True])
    np.testing.assert_allclose(result.all_AP, [0.425, 1 / 3])
    np.testing.assert_allclose(result.all_INP, [3 / 8, 1 / 3])
    assert result.mAP == pytest.approx((0.425 + 1 / 3) / 2)
    assert result.mINP == pytest.approx((3 / 8 + 1 / 3) / 2)
    # First matches at ranks 2 and 3; every later CMC entry is 1, even
    # beyond the 9 kept items (no stale tail).
    expected_cmc = np.array([0, .5] + [1.] * 10)
    np.testing.assert_allclose(result.cmc, expected_cmc)
    np.testing.assert_array_equal(result.all_first_rank, [2, 3])
    # Beyond max_rank the rank is kept, not clipped.
    short = evaluate_rank(
        distmat, q_pids, g_pids, q_camids, g_camids, max_rank=1)
    np.testing.assert_array_equal(short.all_first_rank, [2, 3])


def test_a_query_pid_between_gallery_pids_is_not_valid(search_path):
    """A query whose pid the gallery lacks has no positive: it is left
    out, also where its pid sorts between gallery pids (pid 2 among 1, 3
    and 5), where a lookup by sorted position finds the next pid's items.
    toy_market's absent pid sorts after every gallery pid."""
    g_pids = np.array([1, 3, 3, 5])
    g_camids = np.array([1, 1, 2, 1])
    q_pids = np.array([2, 3])
    q_camids = np.array([0, 0])
    # Query 1 (pid 3): kept order 0n 1p 2p 3n -> positives at 2 and 3.
    distmat = np.array([[.4, .1, .2, .3], [.1, .2, .3, .4]])
    for junk_rule in ('market', 'none'):
        result = evaluate_rank(
            distmat, q_pids, g_pids, q_camids, g_camids, max_rank=4,
            junk_rule=junk_rule)
        assert result.num_valid_query == 1
        np.testing.assert_array_equal(result.valid_mask, [False, True])
        np.testing.assert_allclose(result.all_AP, [(1 / 2 + 2 / 3) / 2])
        np.testing.assert_allclose(result.all_INP, [2 / 3])
        np.testing.assert_allclose(result.cmc, [0, 1, 1, 1])


def test_hand_computed_no_junk(search_path):
    distmat, q_pids, g_pids, q_camids, g_camids = toy_market()
    result = evaluate_rank(
        distmat,
        q_pids,
        g_pids,
        q_camids,
        g_camids,
        junk_rule='none',
        max_rank=3)
    # Query 0 keeps item 0: positives at 1, 3, 6, 9.
    # Query 2 keeps item 1 (.1, first): positives at 1 and 4.
    np.testing.assert_allclose(result.all_AP, [(1 + 2 / 3 + 3 / 6 + 4 / 9) / 4,
                                               (1 + 2 / 4) / 2])
    np.testing.assert_allclose(result.all_INP, [4 / 9, 2 / 4])
    np.testing.assert_allclose(result.cmc, [1, 1, 1])


def test_sysu_rule():
    # 0-based camids: SYSU cam3 (IR indoor) is camid 2, cam2 is camid 1.
    g_pids = np.array([1, 1, 2, 1])
    g_camids = np.array([1, 0, 1, 3])
    distmat = np.array([[.1, .2, .3, .4], [.1, .2, .3, .4]])
    # A camid 2 query drops every camid 1 item (items 0 and 2, any pid):
    # kept 1p 3p -> AP 1. A camid 5 query drops nothing: 0p 1p 2n 3p.
    result = evaluate_rank(
        distmat, [1, 1],
        g_pids, [2, 5],
        g_camids,
        junk_rule='sysu',
        max_rank=4)
    np.testing.assert_allclose(result.all_AP, [1, (1 + 1 + 3 / 4) / 3])
    np.testing.assert_allclose(result.all_INP, [1, 3 / 4])


def toy_ties():
    """Two queries (pid 1, cam 0) with tied distances.

    Gallery (pid, camid): 0: (2, 1) 1: (1, 1) 2: (3, 1) 3: (1, 2)
    4: (4, 2); positives are items 1 and 3.
    """
    g_pids = np.array([2, 1, 3, 1, 4])
    g_camids = np.array([1, 1, 1, 2, 2])
    distmat = np.array([
        # Row 0: 4n (.1), 3p (.2), then 0n 1p 2n all at .5.
        [.5, .5, .5, .2, .1],
        # Row 1: 4n (.1), then 0n 1p 3p all at .3, then 2n (.9).
        [.3, .3, .9, .3, .1],
    ])
    return distmat, np.array([1, 1]), g_pids, np.array([0, 0]), g_camids


@pytest.mark.parametrize(
    'tie_policy, ap, inp, cmc',
    [
        # stable: row 0 -> 4 3p 0 1p 2, positives at 2, 4;
        #         row 1 -> 4 0 1p 3p 2, positives at 3, 4.
        ('stable', [(1 / 2 + 2 / 4) / 2,
                    (1 / 3 + 2 / 4) / 2], [2 / 4, 2 / 4], [0, .5, 1, 1]),
        # pessimistic: row 0 -> 4 3p 0 2 1p (2, 5); row 1 as stable (3, 4).
        ('pessimistic', [(1 / 2 + 2 / 5) / 2,
                         (1 / 3 + 2 / 4) / 2], [2 / 5, 2 / 4], [0, .5, 1, 1]),
        # optimistic: row 0 -> 4 3p 1p 0 2 (2, 3); row 1 -> 4 1p 3p 0 2 (2, 3).
        ('optimistic', [(1 / 2 + 2 / 3) / 2] * 2, [2 / 3] * 2, [0, 1, 1, 1]),
    ])
def test_hand_computed_ties(tie_policy, ap, inp, cmc, search_path):
    distmat, q_pids, g_pids, q_camids, g_camids = toy_ties()
    result = evaluate_rank(
        distmat,
        q_pids,
        g_pids,
        q_camids,
        g_camids,
        max_rank=4,
        tie_policy=tie_policy)
    np.testing.assert_allclose(result.all_AP, ap)
    np.testing.assert_allclose(result.all_INP, inp)
    np.testing.assert_allclose(result.cmc, cmc)


@pytest.mark.parametrize('tie_policy', POLICIES)
def test_hand_computed_threshold_ap(tie_policy, search_path):
    distmat, q_pids, g_pids, q_camids, g_camids = toy_ties()
    result = evaluate_rank(
        distmat,
        q_pids,
        g_pids,
        q_camids,
        g_camids,
        ap_mode='threshold',
        tie_policy=tie_policy)
    # sklearn's average_precision_score(is_pos, -dist), by hand:
    # row 0: threshold .2 -> 1 of 2 items positive, recall +1/2;
    #        threshold .5 -> 2 of 5, recall +1/2: AP = .5*.5 + .5*.4.
    # row 1: threshold .3 -> 2 of 4 items positive, recall +1: AP = .5,
    #        unlike every cumsum value (5/12 stable, 7/12 optimistic).
    np.testing.assert_allclose(result.all_AP, [.45, .5])
    # The tie policy still orders CMC and INP.
    cumsum = evaluate_rank(
        distmat, q_pids, g_pids, q_camids, g_camids, tie_policy=tie_policy)
    np.testing.assert_allclose(result.all_INP, cumsum.all_INP)
    np.testing.assert_allclose(result.cmc, cumsum.cmc)


def test_hand_computed_dedup_cmc(search_path):
    # Ranked gallery pids: 5 5 7 3p 7 3p (query pid 3, cam 0).
    g_pids = np.array([5, 5, 7, 3, 7, 3])
    g_camids = np.array([1, 1, 1, 1, 1, 2])
    distmat = np.array([[.1, .2, .3, .4, .5, .6]])
    kwargs = dict(max_rank=5)
    standard = evaluate_rank(distmat, [3], g_pids, [0], g_camids, **kwargs)
    dedup = evaluate_rank(
        distmat, [3], g_pids, [0], g_camids, cmc_mode='dedup', **kwargs)
    np.testing.assert_allclose(standard.cmc, [0, 0, 0, 1, 1])
    # Distinct pids 5, 7, 3: the match is third.
    np.testing.assert_allclose(dedup.cmc, [0, 0, 1, 1, 1])
    assert standard.all_first_rank.tolist() == [4]
    assert dedup.all_first_rank.tolist() == [3]
    # AP and INP use the full list: positives at 4 and 6.
    for result in (standard, dedup):
        np.testing.assert_allclose(result.all_AP, [(1 / 4 + 2 / 6) / 2])
        np.testing.assert_allclose(result.all_INP, [2 / 6])


def random_problem(seed,
                   num_query=13,
                   num_gallery=60,
                   num_pids=6,
                   num_cams=3,
                   levels=None,
                   dtype=np.float32):
    """Random labels; distances quantised to ``levels`` values for ties."""
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(0, num_pids, num_query)
    g_pids = rng.integers(0, num_pids, num_gallery)
    q_camids = rng.integers(0, num_cams, num_query)
    g_camids = rng.integers(0, num_cams, num_gallery)
    distmat = rng.random((num_query, num_gallery))
    if levels is not None:
        distmat = np.floor(distmat * levels)
    return distmat.astype(dtype), q_pids, g_pids, q_camids, g_camids


def assert_same_result(result, expected):
    np.testing.assert_array_equal(result.valid_mask, expected['valid_mask'])
    assert result.num_valid_query == expected['num_valid_query']
    np.testing.assert_allclose(result.cmc, expected['cmc'], rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        result.all_AP, expected['all_AP'], rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        result.all_INP, expected['all_INP'], rtol=0, atol=1e-12)
    assert result.mAP == pytest.approx(expected['mAP'], abs=1e-12)
    assert result.mINP == pytest.approx(expected['mINP'], abs=1e-12)


@pytest.fixture(params=['ragged', 'dense', 'kernel'])
def search_path(request, monkeypatch):
    """Run a test with each way of placing negatives among positives:
    the torch search (ragged or dense) and the compiled counting kernel
    (numba, optional). The hand-computed tests above take it too: without
    it they ran only the path the installed packages pick."""
    if request.param == 'kernel':
        monkeypatch.setattr(count_kernel, 'ENABLED', True)
        if not count_kernel.available():
            pytest.skip('numba is not installed')
    else:
        monkeypatch.setattr(count_kernel, 'ENABLED', False)
    fraction = 2.0 if request.param == 'ragged' else 0.0
    monkeypatch.setattr(rank_module, 'DENSE_SEARCH_FRACTION', fraction)
    return request.param


@pytest.mark.parametrize('tie_policy', POLICIES)
@pytest.mark.parametrize('ap_mode', ['cumsum', 'threshold'])
@pytest.mark.parametrize('cmc_mode', ['standard', 'dedup'])
@pytest.mark.parametrize('junk_rule',
                         ['market', 'none', 'sysu', market_as_callable])
def test_tied_matches_reference(search_path, tie_policy, ap_mode, cmc_mode,
                                junk_rule):
    for seed in range(3):
        problem = random_problem(seed, levels=4 + 3 * seed)
        options = dict(
            max_rank=20,
            junk_rule=junk_rule,
            tie_policy=tie_policy,
            ap_mode=ap_mode,
            cmc_mode=cmc_mode)
        expected = reference(*problem, **options)
        for chunk_size in (1, 4, None):
            result = evaluate_rank(*problem, chunk_size=chunk_size, **options)
            assert_same_result(result, expected)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_chunked_equals_unchunked_and_reference(search_path, dtype):
    problem = random_problem(
        7, num_query=40, num_gallery=300, num_pids=20, dtype=dtype)
    expected = reference_evaluate_rank(*problem)
    for chunk_size in (1, 3, 7, 16, 40, 1000):
        assert_same_result(
            evaluate_rank(*problem, chunk_size=chunk_size), expected)


def test_infinite_distances_match_reference(search_path):
    distmat, *labels = random_problem(3, levels=5)
    distmat[distmat == 0] = -np.inf
    distmat[distmat == 4] = np.inf
    for tie_policy in POLICIES:
        expected = reference_evaluate_rank(
            distmat, *labels, tie_policy=tie_policy)
        result = evaluate_rank(
            distmat, *labels, tie_policy=tie_policy, chunk_size=5)
        assert_same_result(result, expected)


def test_float32_order_key():
    special = [
        0.0, -0.0, np.inf, -np.inf, 1e-45, -1e-45, 1.17e-38,
        np.finfo(np.float32).max, -np.finfo(np.float32).max, 1.0
    ]
    rng = np.random.default_rng(0)
    values = np.concatenate([
        special,
        rng.normal(scale=10, size=300),
        rng.choice([-1, 1], 40) * rng.random(40) * 1e-40,  # subnormals
    ]).astype(np.float32)
    keys = float32_order_key(torch.from_numpy(values)).numpy()
    assert keys.dtype == np.int64
    assert keys.min() >= 0 and keys.max() < 2**32 - 1
    a, b = values[:, None], values[None, :]
    np.testing.assert_array_equal(
        np.sign(keys[:, None] - keys[None, :]), (a > b).astype(int) - (a < b))


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('junk_rule', ['market', market_as_callable])
def test_negative_and_signed_zero_distances(search_path, dtype, junk_rule):
    # -0.0 and 0.0 are one distance: they must tie, not order.
    distmat, *labels = random_problem(
        8, num_query=30, num_gallery=120, levels=5, dtype=dtype)
    distmat = distmat - 2  # -2 .. 2
    distmat[distmat == 0] = -0.0
    distmat[:, ::3][distmat[:, ::3] == -0.0] = 0.0
    assert np.signbit(distmat[distmat == 0]).any()
    assert not np.signbit(distmat[distmat == 0]).all()
    for tie_policy in POLICIES:
        options = dict(tie_policy=tie_policy, junk_rule=junk_rule)
        expected = reference(distmat, *labels, **options)
        for chunk_size in (4, None):
            result = evaluate_rank(
                distmat, *labels, chunk_size=chunk_size, **options)
            assert_same_result(result, expected)


def test_policy_bounds():
    problem = random_problem(11, num_query=30, num_gallery=200, levels=6)
    results = {
        policy: evaluate_rank(*problem, tie_policy=policy)
        for policy in POLICIES
    }
    low, mid, high = (
        results[p] for p in ('pessimistic', 'stable', 'optimistic'))
    for attr in ('all_AP', 'all_INP', 'cmc'):
        assert np.all(getattr(low, attr) <= getattr(mid, attr) + 1e-12)
        assert np.all(getattr(mid, attr) <= getattr(high, attr) + 1e-12)
    # The fixture is tied enough for the bounds to be strict.
    assert low.mAP < mid.mAP < high.mAP


def test_tie_free_policies_and_ap_modes_agree():
    problem = random_problem(5, num_query=20, num_gallery=100)
    base = evaluate_rank(*problem)
    for policy in POLICIES:
        for ap_mode in ('cumsum', 'threshold'):
            result = evaluate_rank(
                *problem, tie_policy=policy, ap_mode=ap_mode)
            np.testing.assert_allclose(result.all_AP, base.all_AP, atol=1e-12)
            np.testing.assert_allclose(result.cmc, base.cmc)


def test_single_positive_map_equals_minp():
    rng = np.random.default_rng(0)
    num_ids = 25
    # One gallery image per id, on another camera than its query.
    q_pids = np.arange(num_ids)
    g_pids = rng.permutation(num_ids)
    distmat = rng.random((num_ids, num_ids)).astype(np.float32)
    result = evaluate_rank(distmat, q_pids, g_pids, np.zeros(num_ids, int),
                           np.ones(num_ids, int))
    assert result.num_valid_query == num_ids
    np.testing.assert_allclose(result.all_AP, result.all_INP)
    assert result.mAP == pytest.approx(result.mINP)
    assert result.mAP < 1


def test_tie_free_gallery_permutation_invariance():
    distmat, q_pids, g_pids, q_camids, g_camids = random_problem(
        9, num_query=20, num_gallery=150)
    order = np.random.default_rng(1).permutation(len(g_pids))
    result = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids)
    permuted = evaluate_rank(distmat[:, order], q_pids, g_pids[order],
                             q_camids, g_camids[order])
    np.testing.assert_allclose(result.cmc, permuted.cmc)
    np.testing.assert_allclose(result.all_AP, permuted.all_AP, atol=1e-12)
    np.testing.assert_allclose(result.all_INP, permuted.all_INP, atol=1e-12)


def test_tied_gallery_permutation_changes_only_stable():
    # Row 1 of the tie toy: 0n 1p 3p tie at .3. Under the stable policy
    # the gallery order decides; pessimistic/optimistic ignore it.
    distmat, q_pids, g_pids, q_camids, g_camids = toy_ties()
    order = np.array([1, 3, 0, 2, 4])  # positives before the tied neg
    for policy, changes in [('stable', True), ('pessimistic', False),
                            ('optimistic', False)]:
        before = evaluate_rank(
            distmat, q_pids, g_pids, q_camids, g_camids, tie_policy=policy)
        after = evaluate_rank(
            distmat[:, order],
            q_pids,
            g_pids[order],
            q_camids,
            g_camids[order],
            tie_policy=policy)
        assert (before.all_AP[1] != after.all_AP[1]) == changes


def test_numpy_and_torch_inputs():
    distmat, q_pids, g_pids, q_camids, g_camids = random_problem(4)
    expected = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids)
    as_torch = evaluate_rank(
        torch.from_numpy(distmat), torch.from_numpy(q_pids),
        torch.from_numpy(g_pids), torch.from_numpy(q_camids),
        torch.from_numpy(g_camids))
    as_lists = evaluate_rank(distmat.tolist(), q_pids.tolist(),
                             g_pids.tolist(), q_camids.tolist(),
                             g_camids.tolist())
    read_only = distmat.copy()
    read_only.flags.writeable = False
    as_read_only = evaluate_rank(read_only, q_pids, g_pids, q_camids, g_camids)
    for result in (as_torch, as_lists, as_read_only):
        np.testing.assert_array_equal(result.cmc, expected.cmc)
        np.testing.assert_array_equal(result.all_AP, expected.all_AP)
        np.testing.assert_array_equal(result.all_INP, expected.all_INP)


def test_integer_and_half_distances():
    distmat, *labels = random_problem(6, levels=5)
    expected = reference_evaluate_rank(distmat, *labels)
    for converted in (distmat.astype(np.int64), distmat.astype(np.float16),
                      torch.from_numpy(distmat).bfloat16()):
        assert_same_result(evaluate_rank(converted, *labels), expected)


def test_integer_distances_beyond_float64_are_refused():
    """Integer distances were ranked as float64, which rounds above 2**53:
    [2**60 + 1, 2**60, 2**60 + 2] with the positive strictly nearest
    (index 1) gave R1 = 0 and mAP = 0.5 instead of 1 and 1."""
    labels = ([1], [2, 1, 3], [0], [1, 1, 1])
    big = np.array([[2**60 + 1, 2**60, 2**60 + 2]], np.int64)
    for dist in (big, -big, torch.from_numpy(big)):
        with pytest.raises(
                ValueError,
                match=rf'2\*\*53 = {2**53}.*magnitude {2**60 + 2}'):
            evaluate_rank(dist, *labels)
    # Up to 2**53 every integer is exact in float64: ranked as given.
    edge = np.array([[2**53, 2**53 - 1, -2**53]], np.int64)
    result = evaluate_rank(edge, [1], [2, 1, 1], [0], [1, 1, 1])
    # Positives at ranks 2 (2**53 - 1) and 1 (-2**53): AP = (1/1 + 2/2)/2.
    assert result.cmc[0] == 1.0 and result.mAP == 1.0
    result = evaluate_rank(edge, *labels)
    assert result.cmc[0] == 0.0 and result.mAP == 0.5


def test_integer_distances_just_above_2_53_are_refused():
    """float64 is exact up to 2**53 and rounds 2**53 + 1 to 2**53: in
    [2**53 + 1, 2**53, 2**53 + 2] the positive (index 1) is strictly
    nearest, but ranked as float64 it ties the negative before it, R1 = 0
    and mAP = 0.5 instead of 1 and 1. The first magnitudes past 2**53 are
    refused, not only far larger ones."""
    labels = ([1], [2, 1, 3], [0], [1, 1, 1])
    # The second's largest is 2**53 + 1 itself: its positive would be
    # ranked third instead of second (mAP 1/3 instead of 1/2).
    rows = ([2**53 + 1, 2**53, 2**53 + 2], [2**53 + 1, 2**53, 0])
    for dist in (np.array([row], np.int64) for row in rows):
        with pytest.raises(
                ValueError,
                match=rf'2\*\*53 = {2**53}.*magnitude {dist.max()};'):
            evaluate_rank(dist, *labels)


def test_complex_distances_are_refused():
    """Complex distances lost their imaginary part with only a torch
    warning."""
    dist = np.array([[0.1 + 0j, 0.2 - 5j, 0.3 + 0j]], np.complex64)
    with pytest.raises(TypeError, match='distances must be real.*complex64'):
        evaluate_rank(dist, [1], [2, 1, 3], [0], [1, 1, 1])


# Bools in any container are refused, not ranked as pids 1 and 0.
@pytest.mark.parametrize('name, value, dtype, example', [
    ('q_pids', ['a'], '<U1', "'a'"),
    ('g_camids', np.array([0.0, 1.0, 1.0]), 'float64', '0.0'),
    ('g_pids', torch.tensor([True, False, True]), 'torch.bool', 'True'),
    ('g_pids', np.array([True, False, True]), 'bool', 'True'),
    ('g_pids', [True, False, True], 'bool', 'True'),
    ('q_camids', np.array([None], dtype=object), 'object', 'None'),
])
def test_non_integer_labels_are_refused_naming_the_argument(
        name, value, dtype, example):
    """String pids raised torch's "can't convert np.ndarray of type
    numpy.str_", naming no argument."""
    labels = dict(
        q_pids=[1], g_pids=[2, 1, 3], q_camids=[0], g_camids=[1, 1, 1])
    labels[name] = value
    with pytest.raises(
            TypeError,
            match=rf'^{name} must be integers .*got dtype '
            rf'{re.escape(dtype)} \(e.g. {re.escape(example)}\)$'):
        evaluate_rank(np.zeros((1, 3)), **labels)


def test_an_empty_gallery_is_named():
    """An empty gallery given as lists raised "g_pids must be integers,
    got torch.float64" (an empty list is read as floats)."""
    empty = np.zeros(0, np.int64)
    for labels in (([1], [], [0], []), ([1], empty, [0], empty)):
        with pytest.raises(
                ValueError,
                match='^the gallery is empty.*rank the 1 queries against$'):
            evaluate_rank(np.zeros((1, 0)), *labels)


@pytest.mark.cuda
@pytest.mark.parametrize('levels', [None, 5])
def test_cuda_matches_cpu(levels):
    problem = random_problem(2, num_query=50, num_gallery=400, levels=levels)
    for policy in POLICIES:
        for cmc_mode in ('standard', 'dedup'):
            options = dict(tie_policy=policy, cmc_mode=cmc_mode)
            cpu = evaluate_rank(*problem, **options)
            gpu = evaluate_rank(
                torch.from_numpy(problem[0]).cuda(),
                *problem[1:],
                chunk_size=7,
                **options)
            np.testing.assert_array_equal(gpu.cmc, cpu.cmc)
            np.testing.assert_allclose(gpu.all_AP, cpu.all_AP, atol=1e-12)
            np.testing.assert_allclose(gpu.all_INP, cpu.all_INP, atol=1e-12)


def test_invalid_inputs():
    distmat, q_pids, g_pids, q_camids, g_camids = toy_market()
    labels = (q_pids, g_pids, q_camids, g_camids)
    with pytest.raises(ValueError, match='tie_policy'):
        evaluate_rank(distmat, *labels, tie_policy='random')
    with pytest.raises(ValueError, match='ap_mode'):
        evaluate_rank(distmat, *labels, ap_mode='sklearn')
    with pytest.raises(ValueError, match='cmc_mode'):
        evaluate_rank(distmat, *labels, cmc_mode='unique')
    with pytest.raises(ValueError, match='junk_rule'):
        evaluate_rank(distmat, *labels, junk_rule='cuhk')
    with pytest.raises(ValueError, match='shape'):
        evaluate_rank(distmat[:, :5], *labels)
    with pytest.raises(ValueError, match='NaN'):
        nan_distmat = distmat.copy()
        nan_distmat[2, 3] = np.nan
        evaluate_rank(nan_distmat, *labels)
    with pytest.raises(TypeError, match='integers'):
        evaluate_rank(distmat, q_pids.astype(float), *labels[1:])
    with pytest.raises(ValueError, match='no query has a positive'):
        evaluate_rank(distmat, q_pids + 100, *labels[1:])
    for junk_rule in ('market', 'sysu'):
        with pytest.raises(ValueError, match='no query has a positive'):
            evaluate_rank(
                distmat[:, :0],
                q_pids,
                g_pids[:0],
                q_camids,
                g_camids[:0],
                junk_rule=junk_rule)


@pytest.mark.parametrize('junk_rule', ['market', market_as_callable])
def test_many_positives_and_threads_match_reference(search_path, monkeypatch,
                                                    junk_rule):
    # ~150 positives per query: the kernel sorts such rows instead of
    # scanning them once per positive. Small blocks on 3 threads: rows
    # are counted in parallel.
    monkeypatch.setattr(count_kernel, 'BLOCK_ELEMENTS', 600)
    monkeypatch.setattr(rank_module, 'compute_thread_count', lambda: 3)
    for levels in (None, 7):
        problem = random_problem(
            4, num_query=25, num_gallery=320, num_pids=2, levels=levels)
        for tie_policy in POLICIES:
            options = dict(junk_rule=junk_rule, tie_policy=tie_policy)
            expected = reference(*problem, **options)
            assert expected['num_valid_query'] > 0
            for chunk_size in (6, None):
                result = evaluate_rank(
                    *problem, chunk_size=chunk_size, **options)
                assert_same_result(result, expected)


@pytest.mark.parametrize('junk_rule', ['market', 'sysu'])
def test_nan_is_rejected_on_every_path(search_path, junk_rule):
    distmat, *labels = random_problem(5, num_query=9)
    # A NaN in a row without positives, and in a row with positives.
    labels[0][0] = 99
    for row in (0, 4):
        nan_distmat = distmat.copy()
        nan_distmat[row, 7] = np.nan
        for chunk_size in (1, None):
            with pytest.raises(ValueError, match='NaN'):
                evaluate_rank(
                    nan_distmat,
                    *labels,
                    junk_rule=junk_rule,
                    chunk_size=chunk_size)


@pytest.mark.parametrize('junk_rule', ['market', market_as_callable])
def test_nan_in_the_first_or_last_gallery_column_is_rejected(
        search_path, junk_rule):
    """A NaN distance fails every comparison: wherever it sits in the row,
    an unchecked one would silently drop its item from the ranking and
    print a wrong number. The edge columns are where a scan bound is off
    by one."""
    distmat, *labels = random_problem(5, num_query=9)
    num_gallery = distmat.shape[1]
    for row in range(len(distmat)):
        for col in (0, num_gallery - 1):
            nan_distmat = distmat.copy()
            nan_distmat[row, col] = np.nan
            with pytest.raises(ValueError, match='NaN'):
                evaluate_rank(nan_distmat, *labels, junk_rule=junk_rule)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
@pytest.mark.parametrize('num_pos', [3, 130])
def test_count_kernel_counts_like_numpy(monkeypatch, dtype, num_pos):
    # 130 positives take the kernel's sort branch, 3 its scans.
    monkeypatch.setattr(count_kernel, 'ENABLED', True)
    if not count_kernel.available():
        pytest.skip('numba is not installed')
    rng = np.random.default_rng(0)
    values = np.floor(rng.random((6, 400)) * 9).astype(dtype) - 4
    values[values == 0] = -0.0
    values[:, ::7] = np.nan  # not counted
    values[:, 1::11] = np.inf
    values[:, 2::13] = -np.inf
    values[3, 5] = np.nan
    positives = np.sort(
        rng.choice([-np.inf, -4, -1, 0, 2, np.inf], (6, num_pos)),
        axis=1).astype(dtype)
    counts = np.array([num_pos, 0, 1, num_pos, 2, num_pos], dtype=np.int64)
    positions = np.tile(rng.integers(0, 400, num_pos), (6, 1))
    for threads in (1, 3):
        lt, le, has_nan = count_kernel.count_below(values, positives, counts,
                                                   threads)
        tied = count_kernel.count_tied_before(values, positives, positions,
                                              counts, threads)
        assert has_nan.all()
        for row in range(6):
            kept = values[row][~np.isnan(values[row])]
            for j in range(num_pos):
                p = positives[row, j]
                if j >= counts[row]:
                    assert lt[row, j] == le[row, j] == tied[row, j] == 0
                    continue
                assert lt[row, j] == np.sum(kept < p)
                assert le[row, j] == np.sum(kept <= p)
                assert tied[row, j] == np.sum(values[row, :positions[row,
                                                                     j]] == p)


def test_kernel_threads_work_in_a_forked_child(monkeypatch):
    monkeypatch.setattr(count_kernel, 'ENABLED', True)
    if not count_kernel.available() or not hasattr(os, 'fork'):
        pytest.skip('needs numba and fork')
    monkeypatch.setattr(count_kernel, 'BLOCK_ELEMENTS', 100)
    monkeypatch.setattr(rank_module, 'compute_thread_count', lambda: 2)
    problem = random_problem(1, num_query=20, num_gallery=100)
    expected = evaluate_rank(*problem)  # the parent's pool now exists
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 iff the result is the same
        try:
            result = evaluate_rank(*problem)
            os._exit(
                0 if np.array_equal(result.all_AP, expected.all_AP) else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail('the forked child hung on the rank kernel\'s thread pool')


@pytest.mark.parametrize('kernel', [True, False])
def test_inputs_torch_or_numpy_cannot_view_are_evaluated(monkeypatch, kernel):
    """Distances that require a gradient (a model's output in training
    mode) crashed in NumPy's view only with the count kernel; a NumPy array
    with a negative stride (``d[:, ::-1]``) crashed in torch's. Both give
    the numbers of a plain copy."""
    if kernel and not count_kernel.available():
        pytest.skip('numba is not installed')
    monkeypatch.setattr(count_kernel, 'ENABLED', kernel)
    rng = np.random.default_rng(3)
    dist = rng.random((6, 9))
    q_pids, g_pids = np.arange(6) % 3, np.arange(9) % 3
    q_cams, g_cams = np.zeros(6, int), np.ones(9, int)
    plain = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
    graded = evaluate_rank(
        torch.tensor(dist, requires_grad=True), q_pids, g_pids, q_cams, g_cams)
    flipped = evaluate_rank(dist[:, ::-1][:, ::-1], q_pids, g_pids[::-1][::-1],
                            q_cams, g_cams)
    reversed_ = evaluate_rank(dist[:, ::-1], q_pids, g_pids[::-1], q_cams,
                              g_cams[::-1])
    for result in (graded, flipped):
        assert result.mAP == plain.mAP and np.array_equal(
            result.cmc, plain.cmc)
    # Distinct distances: gallery order does not matter.
    assert reversed_.mAP == pytest.approx(plain.mAP, abs=1e-12)
