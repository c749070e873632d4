"""Paired statistics over seeds, for the tools that compare runs.

The two-sided 95 % quantile of Student's t (:func:`t975`), the mean paired
difference of two configs' runs with its 95 % interval
(:func:`paired_interval`) and a table's mean over seeds
(:func:`mean_cell`), shared by ``compare_configs.py``,
``style_decomposition.py``, ``gap_effect.py``, ``regdb_trials.py`` and
``paired_query_error.py``.
"""
import statistics
from typing import Sequence, Tuple

#: Two-sided 95 % quantiles of Student's t, t(0.975; df) for df = 1..30.
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f'need df >= 1, got {df}')
    if df <= len(T975):
        return T975[df - 1]
    # Cornish-Fisher expansion around the normal quantile (error < 1e-3
    # beyond df = 30).
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 *
                                                                         df**2)


def paired_interval(base: Sequence[float],
                    other: Sequence[float]) -> Tuple[float, float, float]:
    """Mean paired difference ``other - base`` and its 95 % t-interval.

    Args:
        base (Sequence[float]): The baseline's value per seed.
        other (Sequence[float]): The other config's value for the same
            seeds, in the same order.

    Returns:
        tuple[float, float, float]: mean difference, lower and upper bound.
    """
    if len(base) != len(other):
        raise ValueError(f'{len(base)} baseline values, {len(other)} others')
    if len(base) < 2:
        raise ValueError('a paired interval needs two seeds at least')
    diffs = [b - a for a, b in zip(base, other)]
    mean = statistics.fmean(diffs)
    half = t975(len(diffs) - 1) * statistics.stdev(diffs) / len(diffs)**0.5
    return mean, mean - half, mean + half


def mean_cell(values: Sequence[float], num_seeds: int) -> str:
    """``mean ± population std``; ``(n=K)`` when only K of the seeds have
    a value, and no spread from one value."""
    if not values:
        return '-'
    if len(values) == 1:
        return f'{values[0]:.1f} (n=1)'
    cell = (f'{statistics.fmean(values):.1f} ± '
            f'{statistics.pstdev(values):.1f}')
    return cell + (f' (n={len(values)})' if len(values) < num_seeds else '')
