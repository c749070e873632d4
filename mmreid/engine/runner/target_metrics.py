"""The metrics of a multi-target evaluation, merged and tabulated.

:func:`merge_target_metrics` puts every target's metrics under its name and
adds their mean over targets (summary keys only, see :func:`is_summary_key`
and :func:`averaged_over_targets`); :func:`format_metric_table` shows them
as a table. The loops of :mod:`~mmreid.engine.runner.multi_target_loops`
use both.
"""
import logging
import re
from typing import (Any, Callable, Collection, Dict, List, Optional, Sequence,
                    Union)

import torch
from mmengine.logging import print_log

from mmreid.evaluation.metrics import ReIDMetric

#: A split of a split-based protocol: ``split0/``, ``trial3/`` ...
_SPLIT_PATTERN = re.compile(r'^(split|trial)\d+$')


def is_summary_key(key: str) -> bool:
    """Whether a target's metric key is a summary to average over targets.

    Per-split values (``split<i>/...``), spreads (``..._std``) and counts
    (``num_...``) are not summaries: the mean over targets of a split index
    or of a count means nothing.

    Args:
        key (str): A metric key without the target name, e.g. ``'mAP'``,
            ``'split3/R1'`` or ``'num_query'``.

    Returns:
        bool: ``True`` for keys such as ``'mAP'`` or ``'R1'``.
    """
    parts = key.split('/')
    if any(_SPLIT_PATTERN.match(part) for part in parts[:-1]):
        return False
    name = parts[-1]
    return not (name.startswith('num_') or name.endswith('_std'))


def _applies(flag: Union[bool, Callable[[str], bool]], key: str) -> bool:
    """A flag of :func:`averaged_over_targets` for one of its keys."""
    return bool(flag(key)) if callable(flag) else bool(flag)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def merge_target_metrics(
        target_metrics: Dict[str, Dict[str, Any]],
        aggregate_prefix: Optional[str] = 'mean',
        metric_prefixes: Optional[Dict[str, Sequence[Optional[str]]]] = None,
        averaged: Optional[Dict[str, Sequence[Any]]] = None,
        loss_keys: Optional[Dict[str,
                                 Collection[str]]] = None) -> Dict[str, Any]:
    """Prefix each target's metrics with its name and add their mean.

    The mean is taken of every summary key (see :func:`is_summary_key`)
    that all targets report with a numeric value. A target with several
    metrics reports ``<metric prefix>/<key>`` (``'reid/mAP'``,
    ``'cos/mAP'``); such a key is matched, in a target with one metric of
    that prefix, by its plain key, and averaged as
    ``<aggregate_prefix>/<metric prefix>/<key>``. The keys of a metric
    that is not ``averaged`` are never in the mean: only the metric knows
    which of its keys are counts (``n``) rather than scores. Nor are the
    ``loss_keys``, which come from the model rather than a metric: a mean
    over targets of their losses is no metric. Summary keys left out of
    the mean otherwise are logged as a warning, with the targets that lack
    them.

    Example:
        >>> merge_target_metrics({
        ...     'd3': {'mAP': 40.0, 'num_query': 9},
        ...     'prid': {'split0/mAP': 50.0, 'split1/mAP': 70.0,
        ...              'mAP': 60.0, 'mAP_std': 10.0}})
        {'d3/mAP': 40.0, 'd3/num_query': 9, 'prid/split0/mAP': 50.0,
         'prid/split1/mAP': 70.0, 'prid/mAP': 60.0, 'prid/mAP_std': 10.0,
         'mean/mAP': 50.0}

    Args:
        target_metrics (dict[str, dict]): The metrics of every target, in
            report order, keyed by target name; each target's keys carry
            no target name (``'mAP'``, ``'split0/R1'``).
        aggregate_prefix (str, optional): Prefix of the mean over
            targets. ``None`` adds no mean. Defaults to ``'mean'``.
        metric_prefixes (dict[str, Sequence], optional): The prefixes of
            each target's metrics, in evaluator order (the loops give
            them); without them no key is matched by metric prefix.
        averaged (dict[str, Sequence[bool | Callable]], optional): Per
            target, in the order of ``metric_prefixes``, whether each
            metric's keys may be averaged over targets, or which (see
            :func:`averaged_over_targets`; the loops give them). Without
            it every metric's are.
        loss_keys (dict[str, Collection[str]], optional): Per target, the
            keys that no metric reports: the model's losses that the loop
            adds (``loss_cls``, ``val_loss``). They are logged under the
            target's name and never averaged.

    Returns:
        dict: ``<target>/<key>`` for every key of every target, then
        ``<aggregate_prefix>/<key>``.
    """
    if aggregate_prefix is not None and aggregate_prefix in target_metrics:
        raise ValueError(f'target name {aggregate_prefix!r} is the prefix '
                         'of the mean over targets; rename the target or '
                         'set aggregate_prefix')
    merged: Dict[str, Any] = dict()
    for name, metrics in target_metrics.items():
        for key, value in metrics.items():
            merged[f'{name}/{key}'] = value
    if aggregate_prefix is None or not target_metrics:
        return merged
    prefixes = {
        name: tuple(p for p in (metric_prefixes or {}).get(name, ()) if p)
        for name in target_metrics
    }
    # '<metric prefix>/...' keys of the targets with several metrics.
    by_metric = {
        p
        for name, ps in prefixes.items()
        if len(metric_prefixes.get(name, ())) > 1 for p in ps
    } if metric_prefixes else set()

    def is_averaged(name: str, key: str) -> bool:
        """Whether ``key`` of target ``name`` is of an averaged metric."""
        if key in (loss_keys or {}).get(name, ()):
            return False
        flags = (averaged or {}).get(name)
        if flags is None:
            return True
        own = tuple((metric_prefixes or {}).get(name, ()))
        if len(own) == 1:
            return _applies(flags[0], key)
        head = key.partition('/')[0] if '/' in key else None
        index = own.index(head) if head in own else (
            own.index(None) if None in own else None)
        if index is None:
            return False
        return _applies(flags[index], key if head is None else
                        key.partition('/')[2])

    def source(name: str, key: str) -> Optional[str]:
        """The key of target ``name`` that ``key`` is matched by."""
        metrics = target_metrics[name]
        if key not in metrics:
            head, _, rest = key.partition('/')
            # Only a target whose one metric is ``head`` logs its keys
            # plain; beside a metric without a prefix, a plain key is
            # that metric's.
            own = tuple((metric_prefixes or {}).get(name, ()))
            if not (head in by_metric and own == (head, )):
                return None
            key = rest
        return key if key in metrics and _is_number(
            metrics[key]) and is_averaged(name, key) else None

    keys = list(
        dict.fromkeys(key for name, metrics in target_metrics.items()
                      for key in metrics
                      if is_summary_key(key) and is_averaged(name, key)))
    used = {name: set() for name in target_metrics}
    for key in keys:
        sources = {name: source(name, key) for name in target_metrics}
        if any(src is None for src in sources.values()):
            continue
        values = [float(target_metrics[n][k]) for n, k in sources.items()]
        merged[f'{aggregate_prefix}/{key}'] = sum(values) / len(values)
        for name, src in sources.items():
            used[name].add(src)
    left_out: Dict[tuple, List[str]] = dict()
    for key in keys:
        if any(key in used[name] for name in target_metrics):
            continue
        lacking = tuple(
            name for name in target_metrics if source(name, key) is None)
        left_out.setdefault(lacking, []).append(key)
    if left_out:
        reasons = '; '.join(f'{", ".join(names)} (not reported as a number '
                            f'by {", ".join(map(repr, lacking))})'
                            for lacking, names in left_out.items())
        if by_metric:
            reasons += ('. A target with several metrics reports '
                        "'<metric prefix>/<key>'; give every target one "
                        'metric, or metrics with the same prefixes, to '
                        'average them')
        print_log(
            f'the mean over targets ({aggregate_prefix}/...) leaves out '
            f'{reasons}',
            logger='current',
            level=logging.WARNING)
    return merged


#: The scores :class:`~mmreid.evaluation.ReIDMetric` reports (its counts
#: are ``num_*``), under a ranking mode's prefix or none.
REID_SCORE = re.compile(r'^(R\d+|mAP|mINP|TPR@FPR=.+)$')


def is_reid_score(key: str) -> bool:
    """Whether ``key`` (``'mAP'``, ``'mnet/R1'``) is a score that
    :class:`~mmreid.evaluation.ReIDMetric` itself reports."""
    return bool(REID_SCORE.match(key.split('/')[-1]))


def averaged_over_targets(metric: Any) -> Union[bool, Callable[[str], bool]]:
    """Whether the mean over targets may average ``metric``'s keys.

    mmreid's metrics (:class:`~mmreid.evaluation.ReIDMetric` and its
    subclasses) report scores, counts as ``num_*`` and spreads as
    ``*_std``, which :func:`is_summary_key` tells apart. Another metric
    may report a count under any name (``n``), whose mean over targets
    means nothing, so its keys are averaged only where its class says
    ``mean_over_targets = True``. A user's subclass of ``ReIDMetric`` may
    add such a key (``missed_at_rank1``): only the scores ``ReIDMetric``
    itself reports (:func:`is_reid_score`) are averaged, unless the class
    says ``mean_over_targets``.

    Args:
        metric (BaseMetric): A metric of a target's evaluator.

    Returns:
        bool | Callable[[str], bool]: ``metric.mean_over_targets`` where
        set, True for one of mmreid's own classes, :func:`is_reid_score`
        for a user's ``ReIDMetric`` subclass, else False.
    """
    declared = getattr(metric, 'mean_over_targets', None)
    if declared is not None:
        return bool(declared)
    if not isinstance(metric, ReIDMetric):
        return False
    if type(metric).__module__.startswith('mmreid.'):
        return True
    return is_reid_score


def format_metric_table(target_metrics: Dict[str, Dict[str, Any]],
                        merged: Optional[Dict[str, Any]] = None,
                        aggregate_prefix: Optional[str] = 'mean',
                        precision: int = 2) -> str:
    """A text table of the summary metrics: targets as rows.

    A value that comes with a ``<key>_std`` (split-based targets) is shown
    as ``mean±std``.

    Args:
        target_metrics (dict[str, dict]): Metrics of every target without
            the target name, as given to :func:`merge_target_metrics`.
        merged (dict, optional): Output of :func:`merge_target_metrics`;
            its ``<aggregate_prefix>/<key>`` values make the last row.
        aggregate_prefix (str, optional): Name of the mean row.
        precision (int): Decimals shown. Defaults to 2.

    Returns:
        str: The table, one line per target, columns separated by ``|``.
    """
    columns: List[str] = []
    for metrics in target_metrics.values():
        for key, value in metrics.items():
            if (is_summary_key(key) and _is_number(value)
                    and key not in columns):
                columns.append(key)

    def cell(metrics: Dict[str, Any], key: str) -> str:
        if key not in metrics or not _is_number(metrics[key]):
            return '-'
        text = f'{float(metrics[key]):.{precision}f}'
        std = metrics.get(f'{key}_std')
        if std is not None and _is_number(std):
            text += f'±{float(std):.{precision}f}'
        return text

    rows = [['target'] + columns]
    for name, metrics in target_metrics.items():
        rows.append([name] + [cell(metrics, key) for key in columns])
    if merged is not None and aggregate_prefix is not None:
        prefix = f'{aggregate_prefix}/'
        mean = {
            key[len(prefix):]: value
            for key, value in merged.items() if key.startswith(prefix)
        }
        if mean:
            rows.append([aggregate_prefix] +
                        [cell(mean, key) for key in columns])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        ' | '.join(
            text.rjust(width) if i else text.ljust(width)
            for i, (text, width) in enumerate(zip(row, widths)))
        for row in rows
    ]
    lines.insert(1, '-+-'.join('-' * width for width in widths))
    return '\n'.join(lines)
