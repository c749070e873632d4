"""The query sampling error: how far a mean over the queries would move.

:func:`query_sampling_error` gives a mean of per-query values (an R1 hit, an
AP) with two standard errors, one as if the queries were independent draws
and one with the test identities as the draws (:class:`SamplingError`);
:func:`trial_sampling_errors` does the same for protocols that average over
gallery trials, each query's values first averaged over its trials
(:func:`trial_query_means`). Pure numpy, no mmengine.
"""
from dataclasses import dataclass
from typing import Any, Dict, Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class SamplingError:
    """A mean over queries and two standard errors of it.

    Attributes:
        value (float): The mean.
        se_independent (float): Its standard error if the queries were
            independent draws (for a 0/1 value such as an R1 hit, the
            binomial ``sqrt(p (1 - p) / n)`` up to ``n / (n - 1)``).
        se_clustered (float): Its standard error when the identities are
            the independent draws and each brings all its queries: the
            test identities of a ReID set are sampled, not its images.
        num_queries (int): n.
        num_identities (int): The identities among them.
    """
    value: float
    se_independent: float
    se_clustered: float
    num_queries: int
    num_identities: int

    @property
    def design_effect(self) -> float:
        """``(se_clustered / se_independent) ** 2``, the factor by which
        the identities inflate the variance: the n queries are worth
        ``n / design_effect`` independent ones (NaN when
        ``se_independent`` is 0)."""
        if self.se_independent == 0:
            return float('nan')
        return (self.se_clustered / self.se_independent)**2


def trial_query_means(results: Sequence[Any],
                      num_query: int) -> Tuple[np.ndarray, ...]:
    """Each query's R1 hit and AP averaged over the gallery trials in which
    it has a kept positive.

    Args:
        results (Sequence[ReIDEvalResult]): One per trial, all over the
            same ``num_query`` queries, with ``all_first_rank``.
        num_query (int): Q.

    Returns:
        tuple[np.ndarray, np.ndarray, np.ndarray]: ``seen`` (Q,) bool, a
        kept positive in some trial; the mean R1 hit and the mean AP, (Q,)
        fractions, NaN where not seen.
    """
    if not results:
        raise ValueError('no trial result')
    hits = np.zeros(num_query)
    aps = np.zeros(num_query)
    count = np.zeros(num_query)
    for trial, result in enumerate(results):
        valid = np.asarray(result.valid_mask, bool)
        if valid.shape != (num_query, ):
            raise ValueError(f'trial {trial} has {len(valid)} queries, '
                             f'q_pids {num_query}')
        if result.all_first_rank is None:
            raise ValueError(f'trial {trial} has no all_first_rank')
        hits[valid] += np.asarray(result.all_first_rank) == 1
        aps[valid] += np.asarray(result.all_AP)
        count[valid] += 1
    seen = count > 0
    with np.errstate(invalid='ignore', divide='ignore'):
        return seen, np.where(seen, hits / count,
                              np.nan), np.where(seen, aps / count, np.nan)


def trial_sampling_errors(results: Sequence[Any],
                          q_pids) -> Dict[str, SamplingError]:
    """R1 and mAP (percent) of a protocol that averages over gallery
    trials, with their query sampling errors.

    Each query's R1 hit and AP are first averaged over the trials in which
    it has a kept positive (:func:`trial_query_means`); the errors are then
    those of the mean over the queries (:func:`query_sampling_error`), so
    they describe the drawing of the test identities, the trials'
    galleries being fixed. When every query is valid in every trial the
    values are the protocol's R1 and mAP (the mean over trials of each
    trial's mean).

    Args:
        results (Sequence[ReIDEvalResult]): One per trial, all over the
            same Q queries, with ``all_first_rank``.
        q_pids: The queries' pids, shape (Q,).

    Returns:
        dict[str, SamplingError]: ``'R1'`` and ``'mAP'``.
    """
    q_pids = np.asarray(q_pids)
    seen, hits, aps = trial_query_means(results, len(q_pids))
    return dict(
        R1=query_sampling_error(100.0 * hits[seen], q_pids[seen]),
        mAP=query_sampling_error(100.0 * aps[seen], q_pids[seen]))


def query_sampling_error(values, groups) -> SamplingError:
    """Standard errors of the mean of per-query values.

    With n queries of values ``v_i`` and mean ``m``, the independent-draws
    standard error is ``sqrt(n / (n - 1) * sum_i (v_i - m)^2) / n``. The
    clustered one treats each group (identity) g as one draw with total
    ``t_g = sum_{i in g} v_i`` over its ``n_g`` queries, and takes the
    variance of the ratio ``m = sum_g t_g / sum_g n_g`` to first order:
    ``sqrt(G / (G - 1) * sum_g (t_g - m n_g)^2) / n`` for G groups. With
    one query per group the two are equal; when the queries of an identity
    succeed or fail together, the clustered one is the larger.

    Args:
        values: Per-query values, shape (n,), e.g. 100 * (first rank == 1)
            for R1 in percent, or 100 * AP.
        groups: Per-query group labels (the query pids), shape (n,).

    Returns:
        SamplingError: The mean and both standard errors (NaN with fewer
        than two queries, resp. two groups).
    """
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups)
    if values.ndim != 1 or groups.shape != values.shape:
        raise ValueError(f'values and groups must both have shape (n,), got '
                         f'{values.shape} and {groups.shape}')
    if not np.isfinite(values).all():
        raise ValueError('values must be finite (select the valid queries '
                         'first)')
    num = len(values)
    if num == 0:
        raise ValueError('no query to average')
    # Equal values have their value as the mean exactly: np.mean of 38
    # copies of 1/3 rounds, and the rounding left standard errors of 1e-15
    # whose ratio, the design effect, read 3.1 instead of undefined.
    mean = float(values[0]) if (values == values[0]).all() else float(
        values.mean())
    _, index = np.unique(groups, return_inverse=True)
    num_groups = int(index.max()) + 1
    se_independent = se_clustered = float('nan')
    if num > 1:
        se_independent = float(
            np.sqrt(num / (num - 1) * np.sum((values - mean)**2)) / num)
    if num_groups > 1:
        residual = np.bincount(
            index, weights=values - mean, minlength=num_groups)
        se_clustered = float(
            np.sqrt(num_groups / (num_groups - 1) * np.sum(residual**2)) / num)
    return SamplingError(mean, se_independent, se_clustered, num, num_groups)
