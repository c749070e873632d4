"""Compare two configs on SynthReID v2's four targets, paired by seed.

SynthReID v2 (``configs/_base_/datasets/synthreid.py``)
evaluates every run on the unseen style ``d3``, the same d3 test files
rendered in the seen style d0 (``d3-d0style``), the seen domain ``d0`` and
d0's test files in d3's style (``d0-d3style``). Beyond the four targets,
the table gives what they separate, per seed and then paired:

* style cost on d3 = d3-d0style - d3 and on d0 = d0 - d0-d3style (the
  same files in two styles: cameras, identities, poses and noise fixed);
* the fraction kept under the style shift, d3 / d3-d0style and
  d0-d3style / d0 (%);
* camera + identity cost = d0 - d3-d0style (both in the seen style).

For each row: mean ± population std of A and of B over the seeds, the mean
paired difference B - A with its 95 % Student-t interval, and the values
per seed. Runs are found (or trained) as by ``compare_configs.py``, and
as there, runs evaluated on different test sets (``<target>/num_query``
of any of the four targets, across the seeds of a config or between A
and B) are an error::

    python tools/analysis_tools/style_decomposition.py \\
        configs/snr/baseline_r18_synthreid-v2.py \\
        configs/snr/snr_r18_synthreid-v2.py \\
        --seeds 0 1 2 --work-dir work_dirs/snr_v2

A model with several test distances (GMN: ``mnet``, ``euclid``,
``fused``) logs ``TARGET/MODE/METRIC``; ``--mode-b mnet`` reads those.
The same config twice with two modes compares two distances of the same
checkpoints (``--mode-a euclid --mode-b mnet``).
"""
import argparse
import math
import os.path as osp
import statistics
import sys
from typing import Dict, List, Optional

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from compare_configs import add_table_arguments, show_table  # noqa
from paired_stats import paired_interval  # noqa
from run_plans import add_run_arguments, run_names, runs_of  # noqa
from run_targets import check_paired_test_sets, one_test_set  # noqa


def _percent(part: float, whole: float) -> float:
    """``100 * part / whole``; NaN (shown as n/a) when ``whole`` is 0, as
    for a model at chance on the style-shifted target."""
    return 100 * part / whole if whole else math.nan


#: (row name, function of one run's four target values).
DERIVED = (
    ('style cost on {u} = {u}-{s}style - {u}',
     lambda v, u, s: v[f'{u}-{s}style'] - v[u]),
    ('style cost on {s} = {s} - {s}-{u}style',
     lambda v, u, s: v[s] - v[f'{s}-{u}style']),
    ('kept under the style shift, {u} / {u}-{s}style (%)',
     lambda v, u, s: _percent(v[u], v[f'{u}-{s}style'])),
    ('kept under the style shift, {s}-{u}style / {s} (%)',
     lambda v, u, s: _percent(v[f'{s}-{u}style'], v[s])),
    ('camera + identity cost = {s} - {u}-{s}style',
     lambda v, u, s: v[s] - v[f'{u}-{s}style']),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config_a', help='the reference (baseline) config')
    parser.add_argument('config_b', help='the config compared with it')
    add_run_arguments(parser, 'work_dirs/style_decomposition')
    add_table_arguments(parser, ['R1', 'mAP'])
    parser.add_argument('--mode-a', help='distance mode of A (e.g. euclid)')
    parser.add_argument('--mode-b', help='distance mode of B (e.g. mnet)')
    parser.add_argument(
        '--unseen', default='d3', help='the unseen-style target')
    parser.add_argument('--seen', default='d0', help='the seen-style target')
    args = parser.parse_args(argv)
    if len(args.seeds) < 2:
        parser.error('paired intervals need two seeds at least')
    return args


def targets_of(unseen: str, seen: str) -> List[str]:
    """The four targets, in table order."""
    return [unseen, f'{unseen}-{seen}style', seen, f'{seen}-{unseen}style']


def read_values(metrics: dict, targets: List[str], metric: str,
                mode: Optional[str], where: str) -> Dict[str, float]:
    """The values of ``metric`` on every target of one run.

    Raises:
        KeyError: A target is missing from the run, named with the keys
            the run has, or was logged as a value that is not a finite
            number (NaN, inf): a mean over seeds or a paired interval of
            it is no number either (``n/a`` is kept for a ratio over a
            zero, which the table derives).
    """
    values = {}
    for target in targets:
        key = f'{target}/{mode}/{metric}' if mode else f'{target}/{metric}'
        if key not in metrics:
            near = sorted(k for k in metrics if k.endswith(f'/{metric}'))
            raise KeyError(f'{where}: no {key!r} in its last validation; '
                           f'it has {near}')
        try:
            value = float(metrics[key])
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise KeyError(f'{where}: {key!r} was logged as '
                           f'{metrics[key]!r}, not a finite number')
        values[target] = value
    return values


def check_test_sets(sides: list, targets: List[str]) -> None:
    """Refuse A and B unless every target read was one test set.

    For every target, the runs of each side (across its seeds) and A and
    B (seed by seed) must have been evaluated on the same test set
    (``run_targets.test_set``: ``<target>/num_query``), as
    ``compare_configs.py`` requires: a mean over seeds or a paired
    difference across test sets (v2 against v2.1) is not one quantity.

    Args:
        sides (list): ``(name, config, mode, {seed: metrics})`` of A, B.
        targets (List[str]): The targets read.

    Raises:
        ValueError: Names the config (and seed), the target and the two
            test sets.
    """
    for target in targets:
        found = []
        for name, config, mode, runs in sides:
            prefix = f'{target}/{mode}' if mode else target
            found.append(
                (name, prefix, one_test_set(runs, prefix,
                                            f'{name} on {target}')))
        check_paired_test_sets(*found)


def label(config: str,
          mode: Optional[str],
          names: Optional[Dict[str, str]] = None) -> str:
    """A side's name: the config's run name (``names``, from
    ``run_plans.run_names``: ``a/tiny`` where another folder holds a
    ``tiny.py``; else its file name without ``.py``) and its mode."""
    name = names[config] if names else osp.splitext(osp.basename(config))[0]
    return f'{name} ({mode})' if mode else name


#: What the table's spreads are.
SPREAD_LEGEND = ('mean ± population std (ddof=0) over the seeds; [95 % CI]: '
                 'Student t interval of the mean paired (same seed) '
                 'difference, from its sample std.')


def table(per_seed_a: List[Dict[str, float]],
          per_seed_b: List[Dict[str, float]], targets: List[str], unseen: str,
          seen: str, name_a: str, name_b: str) -> str:
    """The Markdown table of one metric."""

    def fmt(values):
        return (f'{statistics.fmean(values):.1f} ± '
                f'{statistics.pstdev(values):.1f}')

    rows = [(t, [v[t] for v in per_seed_a], [v[t] for v in per_seed_b])
            for t in targets]
    for template, fn in DERIVED:
        rows.append(
            (template.format(u=unseen, s=seen),
             [fn(v, unseen, seen)
              for v in per_seed_a], [fn(v, unseen, seen) for v in per_seed_b]))
    lines = [
        f'| quantity | {name_a} | {name_b} | {name_b} - {name_a} [95 % CI] '
        f'| per seed ({name_a} / {name_b}) |', '|---|---|---|---|---|'
    ]
    for name, a, b in rows:
        seeds = '; '.join(f'{x:.1f} / {y:.1f}'.replace('nan', 'n/a')
                          for x, y in zip(a, b))
        if any(math.isnan(x) for x in a + b):
            # A ratio over a zero on some seed: no mean, no interval.
            lines.append(f'| {name} | n/a | n/a | n/a | {seeds} |')
            continue
        mean, low, high = paired_interval(a, b)
        lines.append(f'| {name} | {fmt(a)} | {fmt(b)} | {mean:+.1f} '
                     f'[{low:+.1f}, {high:+.1f}] | {seeds} |')
    return '\n'.join(lines) + '\n\n' + SPREAD_LEGEND


def main(argv=None):
    args = parse_args(argv)
    targets = targets_of(args.unseen, args.seen)
    # A run it cannot read or train ends the tool with ``error: ...``.
    names = run_names([args.config_a, args.config_b])
    runs = {
        config: runs_of(config, args.seeds, args, names[config])
        for config in dict.fromkeys((args.config_a, args.config_b))
    }
    name_a = label(args.config_a, args.mode_a, names)
    name_b = label(args.config_b, args.mode_b, names)
    if name_a == name_b:
        raise SystemExit(f'A and B are the same ({name_a}): give another '
                         'config or another --mode-a/--mode-b')
    out = []
    for metric in args.metrics:
        per_seed = {}
        for side, config, mode in (('a', args.config_a, args.mode_a),
                                   ('b', args.config_b, args.mode_b)):
            try:
                per_seed[side] = [
                    read_values(runs[config][seed], targets, metric, mode,
                                f'{label(config, None, names)}, seed {seed}')
                    for seed in args.seeds
                ]
            except KeyError as error:
                raise SystemExit(f'error: {error.args[0]}')
        out.append(f'{metric} (seeds {", ".join(map(str, args.seeds))}):\n\n' +
                   table(per_seed['a'], per_seed['b'], targets, args.unseen,
                         args.seen, name_a, name_b))
    try:
        check_test_sets(
            [(name, config, mode, runs[config])
             for name, config, mode in ((name_a, args.config_a, args.mode_a),
                                        (name_b, args.config_b, args.mode_b))],
            targets)
    except ValueError as error:
        raise SystemExit(f'error: {error}')
    text = '\n\n'.join(out)
    show_table(text, args.out)


if __name__ == '__main__':
    main()
