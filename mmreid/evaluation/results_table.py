"""The results table: a test or validation run's metrics as one table.

:func:`results_rows` groups the flat metric dict of a run (``reid/R1``,
``d3/mnet/mAP``, ``sysu-all/R1_std`` ...) into a row per target, distance
mode or metric, columns R1 R5 R10 R20 mAP mINP (:data:`RESULT_COLUMNS`);
:func:`format_results_table` prints them as text, and the HTML report
(:mod:`mmreid.visualization.html_report`) shows the same rows. Pure, no
mmengine.
"""
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch

#: Columns of the results table, in order.
RESULT_COLUMNS = ('R1', 'R5', 'R10', 'R20', 'mAP', 'mINP')

# A per-split or per-trial key part: ``split0``, ``trial3``.
#: A key part naming a partition of a split or trial protocol.
PARTITION_NAME = re.compile(r'^(split|trial)\d+$')


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    if isinstance(value, torch.Tensor):
        return float(value.item()) if value.numel() == 1 else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass
class ResultRow:
    """One row of the results table.

    Attributes:
        name (str): The key prefix (``'reid'``, ``'d3/mnet'``), or
            ``default_name`` for unprefixed keys.
        values (dict[str, float]): Column -> value (percent).
        stds (dict[str, float]): Column -> standard deviation over the
            protocol's splits or trials, where reported.
        primary_of (str, optional): Set on a distance-mode row whose
            values the parent reports unprefixed (the primary mode); on
            every such row where several modes have those values (a tie:
            the numbers cannot tell which of them is the primary).
    """
    name: str
    values: Dict[str, float] = field(default_factory=dict)
    stds: Dict[str, float] = field(default_factory=dict)
    primary_of: Optional[str] = None


def results_rows(metrics: Dict[str, Any],
                 columns: Sequence[str] = RESULT_COLUMNS,
                 default_name: str = 'all') -> List[ResultRow]:
    """Group a flat metric dict into table rows.

    A key ``<prefix>/<column>`` gives the value of ``<prefix>``'s row and
    ``<prefix>/<column>_std`` its spread; keys with a ``split<i>`` or
    ``trial<t>`` part (single partitions) and keys of other names (counts,
    TPR@FPR) are left out. A prefix whose values and spreads all repeat
    those of one of its distance-mode rows (``reid`` and ``reid/mnet``,
    ``sysu-all`` and ``sysu-all/mnet``: the metric reports its primary mode
    unprefixed as well) is not shown twice: the mode row is marked with
    ``primary_of`` instead; where several mode rows repeat them (tied
    modes), all of them are, as the primary is one of them.

    Args:
        metrics (dict): Flat metrics, e.g. from ``runner.test()``.
        columns (Sequence[str]): Metric names to show, in order.
        default_name (str): Row name of keys without a prefix.

    Returns:
        list[ResultRow]: Rows in the order their first key appears.
    """
    rows: Dict[str, ResultRow] = dict()
    for key, raw in metrics.items():
        parts = str(key).split('/')
        if any(PARTITION_NAME.match(part) for part in parts[:-1]):
            continue
        name, is_std = parts[-1], False
        if name.endswith('_std'):
            name, is_std = name[:-len('_std')], True
        value = _number(raw)
        if name not in columns or value is None:
            continue
        prefix = '/'.join(parts[:-1]) or default_name
        row = rows.setdefault(prefix, ResultRow(prefix))
        (row.stds if is_std else row.values)[name] = value
    for prefix, row in list(rows.items()):
        modes = [
            other for name, other in rows.items()
            if name.startswith(prefix + '/') and '/' not in name[len(prefix) +
                                                                 1:]
        ]
        same = [
            m for m in modes
            if _same(m.values, row.values) and _same(m.stds, row.stds)
        ]
        if row.values and same:
            for mode in same:
                mode.primary_of = prefix
            del rows[prefix]
    return [row for row in rows.values() if row.values]


def _same(a: Dict[str, float], b: Dict[str, float]) -> bool:
    """Whether two column -> value dicts hold the same values, a NaN
    (a value the metric could not compute) matching a NaN."""
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def inside_bounds(value: float, precision: int = 2) -> str:
    """``value`` (a percentage) with ``precision`` decimals, or as many more
    (up to 6) as keep a value strictly inside (0, 100) off the bounds it
    does not reach: an R20 of 99.9974 (one query missed in one of 10
    trials) is ``99.997``, not ``100.00``; an R1 of 0.0026 is ``0.003``."""
    text = f'{value:.{precision}f}'
    digits = precision
    while 0 < value < 100 and float(text) in (0.0, 100.0) \
            and digits < precision + 6:
        digits += 1
        text = f'{value:.{digits}f}'
    return text


def format_results_table(metrics: Dict[str, Any],
                         columns: Sequence[str] = RESULT_COLUMNS,
                         precision: int = 2,
                         default_name: str = 'all') -> str:
    """The results of an evaluation as one text table.

    Example:
        >>> print(format_results_table({'reid/R1': 91.2, 'reid/mAP': 80.1,
        ...                             'reid/num_query': 3368}))
        row  |    R1 |   mAP
        -----+-------+------
        reid | 91.20 | 80.10

    Args:
        metrics (dict): Flat metrics (see :func:`results_rows`).
        columns (Sequence[str]): Metric names to show, in order; a column
            that no row reports is dropped.
        precision (int): Decimals. Defaults to 2.
        default_name (str): Row name of keys without a prefix.

    Returns:
        str: The table (rows ``mean±std`` where a spread is reported, ``-``
        where a row lacks a column or its value is not finite, e.g. a NaN,
        as in the HTML report; ``*`` on the primary distance mode, or on
        every mode tied with it), or ``''`` when no key matches.
    """
    rows = results_rows(metrics, columns, default_name)
    shown = [c for c in columns if any(c in row.values for row in rows)]
    if not shown:
        return ''

    def cell(row: ResultRow, column: str) -> str:
        value = row.values.get(column)
        if value is None or not math.isfinite(value):
            return '-'
        text = inside_bounds(value, precision)
        if column in row.stds:
            std = row.stds[column]
            text += f'±{std:.{precision}f}' if math.isfinite(std) else '±-'
        return text

    table = [['row'] + shown]
    primaries: Dict[str, List[str]] = dict()
    for row in rows:
        name = row.name
        if row.primary_of is not None:
            name += ' *'
            primaries.setdefault(row.primary_of, []).append(row.name)
        table.append([name] + [cell(row, c) for c in shown])
    notes = [
        f'* {modes[0]} is also reported as {parent}/<metric>'
        if len(modes) == 1 else f'* {", ".join(modes)} are equal; one of '
        f'them is also reported as {parent}/<metric>'
        for parent, modes in primaries.items()
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(shown) + 1)]
    lines = [
        ' | '.join(
            text.rjust(width) if i else text.ljust(width)
            for i, (text, width) in enumerate(zip(r, widths))) for r in table
    ]
    lines.insert(1, '-+-'.join('-' * width for width in widths))
    return '\n'.join(lines + notes)
