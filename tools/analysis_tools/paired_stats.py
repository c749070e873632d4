"""Paired statistics over seeds, for the tools that compare runs.

The two-sided 95 % quantile of Student's t (:func:`t975`), the mean paired
difference of two configs' runs with its 95 % interval
(:func:`paired_interval`) and a table's mean over seeds
(:func:`mean_cell`), shared by ``compare_configs.py``,
``style_decomposition.py``, ``gap_effect.py``, ``regdb_trials.py`` and
``paired_query_error.py``.
"""
import math
import statistics
from typing import Sequence, Tuple


def _regularized_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b)``, the regularized incomplete beta function, from its
    continued fraction (DLMF 8.17.22, evaluated by the modified Lentz
    method), on the side where it converges fast (DLMF 8.17.4)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _regularized_beta(b, a, 1.0 - x)
    front = math.exp(
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) +
        a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    value = d
    for m in range(1, 10000):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) *
                                                        (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            value *= c * d
        if abs(c * d - 1.0) < 1e-16:
            break
    return front * value


def _t_upper_tail(t: float, df: float) -> float:
    """P(T > t) of Student's t with ``df`` degrees of freedom, t >= 0:
    ``I_{df / (df + t^2)}(df / 2, 1 / 2) / 2``."""
    return 0.5 * _regularized_beta(df / 2, 0.5, df / (df + t * t))


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom,
    to about 1e-12: ``P(T > t) = 0.025`` solved by bisection on the tail
    from its definition (a 3-decimal table, 4.303 for 4.302653 at df 2,
    moved the last printed digit of about 1 % of the intervals)."""
    if df < 1:
        raise ValueError(f'need df >= 1, got {df}')
    low, high = 1.959, 12.71  # the normal's quantile, df = 1's
    for _ in range(200):
        middle = (low + high) / 2
        if _t_upper_tail(middle, df) > 0.025:
            low = middle
        else:
            high = middle
        if high - low < 1e-13:
            break
    return (low + high) / 2


def _finite(values: Sequence[float]) -> Sequence[float]:
    """``values``, refused when one is NaN or infinite (``statistics``
    fails on them with an AttributeError)."""
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ValueError(f'a value over seeds is {bad[0]} (of {list(values)})'
                         ': no mean or interval can use it')
    return values


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
    diffs = [b - a for a, b in zip(_finite(base), _finite(other))]
    mean = statistics.fmean(diffs)
    half = t975(len(diffs) - 1) * statistics.stdev(diffs) / len(diffs)**0.5
    return mean, mean - half, mean + half


def mean_cell(values: Sequence[float], num_seeds: int) -> str:
    """``mean ± population std``; ``(n=K)`` when only K of the seeds have
    a value, and no spread from one value."""
    if not values:
        return '-'
    _finite(values)
    if len(values) == 1:
        return f'{values[0]:.1f} (n=1)'
    cell = (f'{statistics.fmean(values):.1f} ± '
            f'{statistics.pstdev(values):.1f}')
    return cell + (f' (n={len(values)})' if len(values) < num_seeds else '')
