"""Which keys of a run's metrics to read, and on which test set.

A run logs its metrics under prefixes: a target of a multi-target loop
(``d3/R1``), one of several metrics (``reid/R1``), a distance mode
(``d3/mnet/R1``) or the mean over targets (``mean/R1``).
:func:`run_target` picks the prefix to read (``--target``,
:func:`add_target_argument`) or says what the run has, :func:`pick` reads
one metric under it, and :func:`test_set` tells the test set of a prefix
(``<target>/num_query``), so that :func:`one_test_set` and
:func:`check_paired_test_sets` refuse a mean or a pairing over different
test sets.
"""
import argparse
import math
from typing import List, Optional, Sequence, Tuple


def add_target_argument(parser: argparse.ArgumentParser) -> None:
    """``--target``, shared by the tools that read runs' metrics (see
    :func:`run_target`)."""
    parser.add_argument(
        '--target',
        help='read the metrics under this prefix: a target of a '
        'multi-target run (e.g. d3, d3/reid), or one metric of a run '
        'evaluated with several (e.g. reid); needed where a run logs '
        'several')


def targets_of(metrics: dict) -> List[str]:
    """The top-level targets of a run's metrics (``d3`` of ``d3/R1``)."""
    return sorted({k.split('/')[0] for k in metrics if '/' in k})


def aggregates_of(metrics: dict,
                  means: Optional[Sequence[str]] = None) -> List[str]:
    """The top-level names of ``targets_of`` that are means over targets:
    those of ``means`` (:func:`run_plans.loop_means`) the run logs."""
    return [t for t in targets_of(metrics) if t in (means or ())]


def _plural(number: int, noun: str, plural: Optional[str] = None) -> str:
    return f'{number} {noun if number == 1 else plural or noun + "s"}'


def _describe_targets(metrics: dict,
                      means: Optional[Sequence[str]] = None) -> str:
    """``N targets (a, b)``, then the means over them apart (a mean is not
    a target, and its number is a summary, not a protocol's); without a
    multi-target loop (``means`` None) ``N prefixes (my, reid)``: those of
    the metrics of one target, or of a run whose loop is not known."""
    found = aggregates_of(metrics, means)
    targets = [t for t in targets_of(metrics) if t not in found]
    if means is None:
        return (f'{_plural(len(targets), "prefix", "prefixes")} '
                f'({", ".join(targets) or "none"})')
    text = (f'{_plural(len(targets), "target")} '
            f'({", ".join(targets) or "none"})')
    if found:
        text += (f' and their mean over targets ({", ".join(found)}; a '
                 'summary, not a number to report)')
    return text


def _metric_prefixes(metrics: dict, target: str) -> List[str]:
    """``<target>/<p>`` for each ``p`` of a target whose keys are all
    beneath a metric prefix (``d3/reid/R1``, ``d3/my/n``: a target of a
    multi-target loop with several metrics); [] when ``target`` logs keys
    of its own (``d3/R1``)."""
    beneath = [
        k[len(target) + 1:] for k in metrics if k.startswith(f'{target}/')
    ]
    if not beneath or any('/' not in k for k in beneath):
        return []
    return sorted({f'{target}/{k.split("/")[0]}' for k in beneath})


def run_target(metrics: dict,
               target: Optional[str] = None,
               where: str = 'the run',
               hint: str = 'name the one to read',
               means: Optional[Sequence[str]] = None) -> Optional[str]:
    """The prefix of the keys to read: ``target`` or the run's only one.

    Args:
        metrics (dict): A run's last evaluation.
        target (str, optional): The target asked for (e.g. ``d3``, or
            ``d3/mnet`` for a distance mode).
        where (str): The run, for messages.
        hint (str): What to do about several targets, for the message.
        means (Sequence[str], optional): The prefixes of the means over
            targets of the run's loop (:func:`loop_means`); None for a run
            without a multi-target loop (or not known).

    Returns:
        str | None: The prefix (None when the run has no prefixed metric).

    Raises:
        ValueError: No ``target`` is given and the run has several, or the
            run has no key under ``target``, or only keys beneath its
            metrics' prefixes: all name what the run has.
    """
    found = targets_of(metrics)
    if target is None:
        if len(found) > 1:
            raise ValueError(f'{where}: its metrics are of '
                             f'{_describe_targets(metrics, means)}; {hint}')
        target = found[0] if found else None
    elif not any(k.startswith(f'{target}/') for k in metrics):
        raise ValueError(f'{where}: no target {target!r} in its last '
                         'evaluation; it has '
                         f'{_describe_targets(metrics, means)}')
    beneath = _metric_prefixes(metrics, target) if target else []
    if beneath:
        raise ValueError(
            f'{where}: {target!r} logs its keys beneath the prefixes of its '
            f'metrics ({", ".join(beneath)}), none of its own; give '
            '--target with one of them')
    return target


def pick(metrics: dict,
         name: str,
         target: Optional[str] = None,
         where: str = 'the run'):
    """The value of ``<target>/<name>``, without ``target`` of the run's
    only target (:func:`run_target`, whose errors it raises); None when the
    run did not log that metric.

    Raises:
        ValueError: The logged value is NaN or infinite (a metric of one's
            own, a hand-edited log): no mean or interval can use it.
    """
    prefix = run_target(metrics, target, where)
    if prefix is None:
        return None
    value = metrics.get(f'{prefix}/{name}')
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f'{where}: {prefix}/{name} was logged as {value}; '
                         'a mean or an interval over seeds cannot use it')
    return value


def _num_query(metrics: dict, prefix: str):
    """``<prefix>/num_query``, else that of the closest prefix above it
    (``d3/num_query`` for ``d3/mnet``: every distance mode and metric of a
    target scores the same queries); None when none is logged."""
    parts = prefix.split('/')
    for end in range(len(parts), 0, -1):
        value = metrics.get('/'.join(parts[:end] + ['num_query']))
        if value is not None:
            return value
    return None


def test_set(metrics: dict,
             prefix: Optional[str],
             means: Optional[Sequence[str]] = None):
    """What tells the test set of the keys under ``prefix`` apart.

    For a target (``d3``, or ``d3/mnet`` for a distance mode) it is its
    number of queries, ``<prefix>/num_query`` (or that of the target).
    An aggregate prefix such as ``mean`` (the mean over targets of
    ``MultiTargetValLoop``, one of ``means``) has no count of its own; its
    test set is that of every target it averages, i.e. all the others.

    Args:
        metrics (dict): A run's last evaluation.
        prefix (str, optional): The prefix of the keys read (see
            :func:`run_target`).
        means (Sequence[str], optional): The prefixes of the means over
            targets of the run's loop (:func:`loop_means`); None for a run
            without a multi-target loop (or not known).

    Returns:
        int | tuple | None: ``<prefix>/num_query``; for an aggregate
        prefix the sorted ``(target, <target>/num_query)`` pairs of the
        targets it averages (with ``mean/mnet``: ``<target>/mnet``);
        None when the run logs no count for it (e.g. only per split).
    """
    if prefix is None:
        return None
    value = _num_query(metrics, prefix)
    if value is not None:
        return value
    head, _, rest = prefix.partition('/')
    if not any(k.startswith(f'{head}/') for k in metrics):
        return None  # not in the run at all: run_target says so
    if head not in aggregates_of(metrics, means):
        return None
    others = [t for t in targets_of(metrics) if t != head]
    return tuple(
        sorted((t, _num_query(metrics, f'{t}/{rest}' if rest else t))
               for t in others))


def reads_prefix(metrics: dict, prefix: Optional[str]) -> bool:
    """Whether a run logs any key under ``prefix``'s target (``d3`` of
    ``d3/mnet``), so that its test set there can be asked for."""
    if prefix is None:
        return False
    head = prefix.partition('/')[0]
    return any(k.startswith(f'{head}/') for k in metrics)


def describe_test_set(prefix: str, value) -> str:
    """A :func:`test_set` value for messages: ``2102 queries
    (d3/num_query)``, or for an aggregate prefix the targets it averages
    with their queries."""
    if value is None:
        return f'a test set of unknown size (no {prefix}/num_query logged)'
    if not isinstance(value, tuple):
        return f'{value} queries ({prefix}/num_query)'
    return 'the targets ' + ', '.join(
        f'{t} ({q} queries)' if q is not None else f'{t} (no num_query)'
        for t, q in value) + f' ({prefix} averages them)'


def one_test_set(runs: dict,
                 prefix: Optional[str],
                 where: str,
                 means: Optional[Sequence[str]] = None) -> dict:
    """The :func:`test_set` of ``prefix`` in each run of one config,
    checked to be one test set (runs that log no count are left out).

    Args:
        runs (dict): seed -> the run's metrics.
        prefix (str, optional): The prefix of the keys read.
        where (str): The config (and what is read), for messages.
        means (Sequence[str], optional): The prefixes of the means over
            targets of the config's loop (:func:`loop_means`).

    Returns:
        dict: seed -> test set, for the runs that log one; empty when no
        run logs one (a metric that logs no ``num_query``).

    Raises:
        ValueError: Two seeds were evaluated on different test sets; it
            names both, per seed. Or some runs under ``prefix`` log their
            test set and others do not: whether the others were evaluated
            on the same one cannot be checked.
    """
    found = {
        seed: test_set(metrics, prefix, means)
        for seed, metrics in runs.items() if reads_prefix(metrics, prefix)
    }
    unknown = sorted(seed for seed, value in found.items() if value is None)
    if unknown and len(unknown) < len(found):
        raise ValueError(
            f'{where}: the runs of seeds {unknown} log no test set count '
            f'({prefix}/num_query), the others do: whether all were '
            'evaluated on one test set cannot be checked')
    found = {s: v for s, v in found.items() if v is not None}
    if len(set(found.values())) > 1:
        shown = '; '.join(f'seed {seed}: {describe_test_set(prefix, value)}'
                          for seed, value in found.items())
        raise ValueError(f'{where}: its runs were evaluated on different '
                         f'test sets ({shown})')
    return found


def check_paired_test_sets(a: Tuple[str, str, dict], b: Tuple[str, str,
                                                              dict]) -> None:
    """Refuse pairing seeds of two configs evaluated on other test sets.

    Args:
        a (tuple): ``(name, prefix, seed -> test set)`` of one side, the
            last from :func:`one_test_set`.
        b (tuple): The same for the other side.

    Raises:
        ValueError: A seed both sides ran was evaluated on different test
            sets; names both. Or one side logs its test sets and the other
            none (they cannot be compared).
    """
    (name_a, prefix_a, sets_a), (name_b, prefix_b, sets_b) = a, b
    if bool(sets_a) != bool(sets_b):
        logged, silent = (name_a, name_b) if sets_a else (name_b, name_a)
        raise ValueError(
            f'{logged} logs the size of its test set, {silent} does not '
            f'({prefix_b if sets_a else prefix_a}/num_query): whether they '
            'were evaluated on one test set cannot be checked, so they are '
            'not paired')
    for seed in sorted(sets_a.keys() & sets_b.keys()):
        if sets_a[seed] != sets_b[seed]:
            raise ValueError(
                f'{name_b} (seed {seed}) was evaluated on '
                f'{describe_test_set(prefix_b, sets_b[seed])}, {name_a} on '
                f'{describe_test_set(prefix_a, sets_a[seed])}: different '
                'test sets are not paired')
