"""query_sampling_error and trial_sampling_errors: the standard errors of a
mean over the queries, independent and clustered by identity."""
from types import SimpleNamespace

import numpy as np
import pytest

from mmreid.evaluation.sampling_error import (query_sampling_error,
                                              trial_sampling_errors)


def test_sampling_error_of_independent_hits_is_binomial():
    # One query per identity: both errors are the binomial one, with the
    # sample variance's n - 1 (p (1 - p) / (n - 1) for 0/1 values).
    hits = np.array([1] * 30 + [0] * 70, float)
    error = query_sampling_error(hits, np.arange(100))
    assert error.value == pytest.approx(0.3)
    assert error.se_independent == pytest.approx(np.sqrt(0.3 * 0.7 / 99))
    assert error.se_clustered == pytest.approx(error.se_independent)
    assert (error.num_queries, error.num_identities) == (100, 100)
    assert error.design_effect == pytest.approx(1.0)


def test_queries_that_agree_within_an_identity_count_once():
    # 40 identities with 5 queries each, all 5 hit or all 5 miss: the test
    # set holds 40 independent draws, not 200.
    rng = np.random.default_rng(0)
    per_identity = rng.random(40) < 0.3
    hits = np.repeat(per_identity, 5).astype(float)
    pids = np.repeat(np.arange(100, 140), 5)
    error = query_sampling_error(hits, pids)
    p = per_identity.mean()
    assert error.value == pytest.approx(p)
    assert error.se_clustered == pytest.approx(
        np.std(per_identity, ddof=1) / np.sqrt(40))
    assert error.se_independent == pytest.approx(np.sqrt(p * (1 - p) / 199))
    assert error.se_clustered > 2 * error.se_independent
    assert error.num_identities == 40


def test_clustered_error_is_the_spread_over_redrawn_identities():
    # Identities of unequal sizes with identity-level accuracies: resample
    # the identities with replacement and compare the spread of the mean.
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 9, 300)
    pids = np.repeat(np.arange(300), sizes)
    accuracy = rng.beta(0.6, 1.4, 300)
    hits = (rng.random(len(pids)) < accuracy[pids]).astype(float)
    error = query_sampling_error(hits, pids)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    totals = np.add.reduceat(hits, starts)
    means = []
    for _ in range(4000):
        drawn = rng.integers(0, 300, 300)
        means.append(totals[drawn].sum() / sizes[drawn].sum())
    assert np.std(means) == pytest.approx(error.se_clustered, rel=0.06)
    assert error.se_clustered > 1.2 * error.se_independent


def test_sampling_error_bad_input():
    with pytest.raises(ValueError, match=r'shape \(n,\)'):
        query_sampling_error([1.0, 0.0], [0, 1, 2])
    with pytest.raises(ValueError, match='finite'):
        query_sampling_error([1.0, np.nan], [0, 1])
    with pytest.raises(ValueError, match='no query'):
        query_sampling_error([], [])
    single = query_sampling_error([1.0, 0.0], [5, 5])
    assert np.isnan(single.se_clustered) and single.se_independent > 0


def test_trial_sampling_errors_average_each_query_over_its_valid_trials():
    # Three queries (pids 4, 4, 9); the third has no positive in trial 1.
    trials = [
        SimpleNamespace(
            valid_mask=np.array([True, True, True]),
            all_first_rank=np.array([1, 3, 1]),
            all_AP=np.array([1.0, 0.25, 0.5])),
        SimpleNamespace(
            valid_mask=np.array([True, True, False]),
            all_first_rank=np.array([2, 1]),
            all_AP=np.array([0.5, 1.0])),
    ]
    errors = trial_sampling_errors(trials, [4, 4, 9])
    # Per query: R1 hits 1/2, 1/2, 1; APs 0.75, 0.625, 0.5.
    assert errors['R1'].value == pytest.approx(100 * 2 / 3)
    assert errors['mAP'].value == pytest.approx(100 * 1.875 / 3)
    assert errors['R1'].num_identities == 2
    with pytest.raises(ValueError, match='trial 0 has 3 queries, q_pids 2'):
        trial_sampling_errors(trials, [4, 4])
    trials[1].all_first_rank = None
    with pytest.raises(ValueError, match='trial 1 has no all_first_rank'):
        trial_sampling_errors(trials, [4, 4, 9])


@pytest.mark.parametrize('num', [7, 38, 100, 1000])
def test_equal_values_have_no_spread_and_no_design_effect(num):
    """Every AP 1/3: np.mean rounded, leaving standard errors of about
    1e-15 whose ratio, the design effect, read 3.1 at n = 38 (the report
    printed it) where it is undefined."""
    values = np.full(num, 100 / 3)
    result = query_sampling_error(values, np.arange(num) % 13)
    assert result.value == values[0]
    assert result.se_independent == 0 and result.se_clustered == 0
    assert np.isnan(result.design_effect)


def test_one_query_has_no_standard_error():
    """Fewer than two queries, resp. identities, leave the standard
    errors undefined (NaN, query_sampling_error docstring), not an
    exception or a zero that reads as an exact number."""
    error = query_sampling_error([100.0], [3])
    assert error.value == 100.0
    assert np.isnan(error.se_independent) and np.isnan(error.se_clustered)
    assert (error.num_queries, error.num_identities) == (1, 1)


def test_a_query_valid_in_no_trial_is_left_out():
    """A query without a kept positive in any trial has no R1 or AP: the
    values and errors are those of the other queries (trial_query_means),
    not an error about NaN values."""
    trials = [
        SimpleNamespace(
            valid_mask=np.array([True, True, False]),
            all_first_rank=np.array([1, 2]),
            all_AP=np.array([1.0, 0.5])) for _ in range(2)
    ]
    errors = trial_sampling_errors(trials, [4, 5, 9])
    assert errors['R1'].value == pytest.approx(50.0)
    assert errors['mAP'].value == pytest.approx(75.0)
    assert (errors['R1'].num_queries, errors['R1'].num_identities) == (2, 2)
