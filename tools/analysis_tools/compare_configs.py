"""Train several configs with several seeds and tabulate their results.

Each (config, seed) run is ``tools/train.py CONFIG --work-dir ... --cfg-options
randomness.seed=SEED`` in a fresh process; the metrics of its last validation
(the end of training: DG protocols report the last epoch) are read from the
run's ``vis_data/scalars.json``. The table gives each metric's mean and
population std over seeds, and each run's values::

    python tools/analysis_tools/compare_configs.py \
        configs/snr/baseline_r18_synthreid.py \
        configs/snr/snr_r18_synthreid.py \
        --seeds 0 1 2 --work-dir work_dirs/snr_vs_baseline --out table.md

A run is finished when the latest evaluation in its work dir is its
final validation (at ``train_cfg.max_epochs``, or ``max_iters``) or a
``tools/test.py`` result of its final checkpoint in that work dir
(``<run name>_seed<seed>/epoch_<max_epochs>.pth``, compared as real
paths: a checkpoint re-tested, e.g. on a larger test set). A test of a
checkpoint elsewhere is refused unless ``--trust-retested`` is given
(then from a folder of the run's name only: another seed's checkpoint
is refused): which experiment trained a checkpoint cannot be told from
its folder's name. The merged config
that run recorded (``<stamp>/vis_data/config.py``, else the config mmengine
dumps into the work dir) must be the config with the seed and
``--cfg-options``
(``work_dir``, ``resume`` and ``visualizer`` aside; for a test also its
checkpoint, seed and drawing hooks). A finished run is not trained again,
so an interrupted comparison resumes where it stopped; a missing or
unfinished one is trained from the start. A work dir whose run is of
another config (or a test of another checkpoint) is an error naming it and
what differs: give another ``--work-dir``. ``--no-train`` only reads: a
missing or unfinished run is an error naming its work dir (use it while the
runs are trained elsewhere, where a missing or unfinished run would
otherwise start a second training into the same work dir).

``--baseline CONFIG`` adds a second table: for every other config and
metric, the mean over seeds of the paired difference (config - baseline,
same seed) with its 95 % Student-t interval, so "A beats B" comes with an
error bar (it needs two seeds at least; the seed pairs the runs' random
initialisation and sampling, not their data). The interval is over
training seeds on one fixed test set: how far a difference would move
with another draw of the test identities is
``tools/analysis_tools/paired_query_error.py`` (from two ``tools/test.py
--report`` folders). ``--target NAME`` reads the ``NAME/<metric>`` keys
(e.g. ``d3``, ``d3-d0style``, ``d3/mnet`` for a distance mode); it is
required when a run's metrics are of several targets (SynthReID v2 logs
``d3``, ``d3-d0style``, ``d0``, ``d0-d3style`` and ``mean``, the
``aggregate_prefix`` of its multi-target loop) or of several metrics
(``val_evaluator = [ReIDMetric, MyMetric]`` logs ``reid/`` and ``my/``:
``--target reid``; a target with several metrics in a multi-target loop
logs ``d3/reid/``, ``d3/my/``: ``--target d3/reid``), and a target a
run lacks is an error listing the targets it has. Where a run is to be
trained this is checked first, from its config (its ``val_cfg`` targets
and evaluators' prefixes), so no run is trained to be refused. The first
header cell names the keys read. Without ``--target`` runs of one
target each may differ in it (each row then names its own); a config
whose seeds differ in target or in ``<target>/num_query`` (the test
set; for ``--target mean``, the mean over targets, the targets it
averages and their ``num_query``), and a ``--baseline`` pair on
different test sets, are errors; so are seeds, or a pair, of which one
logs that count and the other does not (a metric of one's own that logs
no ``num_query``): their test sets cannot be compared.
A mean over one seed is shown as ``(n=1)``, without a spread, one over
fewer seeds than given with its ``n``; the ``seeds paired`` column
counts the pairs of each interval (per metric where they differ). The
same config file under two spellings (``./a.py``, ``a.py``) is one
config; ``--seeds`` with a seed twice is refused. A run is
``WORK_DIR/<config file name without .py>_seed<S>``; configs of one file
name in different folders are told apart by the shortest parent path
(runs ``WORK_DIR/a/tiny_seed<S>`` and ``WORK_DIR/c/tiny_seed<S>``, rows
``a/tiny.py`` and ``c/tiny.py``). A ``--metrics`` name that no run
reports (``map`` for ``mAP``) is an error listing the names they report;
a metric only some runs lack is ``-`` in their cells::

    python tools/analysis_tools/compare_configs.py \
        configs/snr/baseline_r18_synthreid.py \
        configs/snr/snr_r18_synthreid.py \
        --baseline configs/snr/baseline_r18_synthreid.py --seeds 0 1 2
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from paired_stats import mean_cell, paired_interval  # noqa
from run_plans import add_run_arguments, plan_runs, run_names, runs_of  # noqa
from run_targets import add_target_argument  # noqa
from run_targets import describe_test_set  # noqa
from run_targets import one_test_set  # noqa
from run_targets import pick  # noqa
from run_targets import reads_prefix  # noqa
from run_targets import run_target  # noqa
from run_targets import test_set  # noqa

METRICS = ('R1', 'R5', 'mAP', 'mINP')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='configs to compare')
    add_run_arguments(parser, 'work_dirs/compare')
    add_table_arguments(parser, METRICS)
    parser.add_argument(
        '--baseline',
        help='config to compare the others with: paired per-seed '
        'differences with 95 %% intervals')
    add_target_argument(parser)
    args = parser.parse_args(argv)
    # argparse leaves the default list itself where --metrics is not given:
    # only names given are refused when no run reports them (a default
    # metric a protocol does not log stays a '-' column).
    args.metrics_given = args.metrics is not parser.get_default('metrics')
    return args


def add_table_arguments(parser: argparse.ArgumentParser,
                        metrics: Sequence[str]) -> None:
    """``--metrics`` (default ``metrics``) and ``--out``, shared by the
    tools that print tables (:func:`show_table`)."""
    parser.add_argument(
        '--metrics',
        nargs='+',
        default=list(metrics),
        help='metric names without prefix')
    parser.add_argument('--out', help='also write the Markdown table(s) here')


def normalise_configs(configs: Sequence[str],
                      baseline: Optional[str]) -> Tuple[List[str], str]:
    """The configs without ``./`` and the like, the baseline first when it
    is not among them; the same file given twice (under any spelling) is
    an error.

    Returns:
        tuple[list[str], str | None]: The configs and the baseline, as
        spelt in the list.
    """
    seen = {}
    for given in configs:
        real = osp.realpath(given)
        if real in seen:
            raise ValueError(f'{given} is given twice (also as '
                             f'{seen[real]}): each config is one row')
        seen[real] = osp.normpath(given)
    out = list(seen.values())
    if baseline is not None:
        real = osp.realpath(baseline)
        if real not in seen:
            seen[real] = osp.normpath(baseline)
            out.insert(0, seen[real])
        baseline = seen[real]
    return out, baseline


def check_targets(rows: list,
                  target: Optional[str],
                  means: Optional[dict] = None) -> dict:
    """The prefix every config's runs are read under, checked.

    A config's runs must be read under one prefix and (where they log
    its count) have been evaluated on the same test set
    (:func:`run_targets.test_set`: ``<prefix>/num_query``, or for ``mean``
    the targets averaged and their counts): otherwise a mean over seeds
    would mix test sets.

    Args:
        rows (list): ``(config, {seed: metrics})`` per config.
        target (str, optional): ``--target``.
        means (dict, optional): config -> the prefixes of the means over
            targets its loops log (:func:`run_plans.loop_means`).

    Returns:
        dict: config -> its prefix (None when its runs have none).

    Raises:
        ValueError: See :func:`run_targets.run_target`; or a config's runs
            differ in prefix or number of queries.
    """
    prefixes = {}
    means = means or {}
    for config, runs in rows:
        found = {
            seed:
            run_target(metrics, target, f'{config} (seed {seed})',
                       'give --target with one of them', means.get(config))
            for seed, metrics in runs.items()
        }
        if len(set(found.values())) > 1:
            raise ValueError(f'{config}: its runs have different targets '
                             f'({found}): give --target')
        prefix = next(iter(found.values()))
        one_test_set(runs, prefix, config, means.get(config))
        prefixes[config] = prefix
    return prefixes


def reported_metrics(rows: list, prefixes: dict) -> List[str]:
    """The metric names any run reports under its config's prefix (what
    ``run_targets.pick`` can read: ``R1`` of ``d3/R1``), sorted.

    Args:
        rows (list): ``(config, {seed: metrics})`` per config.
        prefixes (dict): config -> its prefix (:func:`check_targets`).
    """
    found = set()
    for config, runs in rows:
        prefix = prefixes[config]
        if prefix is None:
            continue  # pick reads nothing without a prefix
        for metrics in runs.values():
            found.update(k[len(prefix) + 1:] for k in metrics
                         if k.startswith(f'{prefix}/'))
    return sorted(found)


def check_metrics(rows: list, metrics: Sequence[str], prefixes: dict) -> None:
    """Refuse a ``--metrics`` name that no run reports.

    A metric some runs lack is a gap in their cells (``-``); one that no
    run of any config reports is a misspelt name (``map``, ``Rank5``),
    whose columns would be ``-`` throughout.

    Args:
        rows (list): ``(config, {seed: metrics})`` per config.
        metrics (Sequence[str]): The names asked for.
        prefixes (dict): config -> its prefix (:func:`check_targets`).

    Raises:
        ValueError: Names the metrics no run reports, the keys read and
            the metric names the runs report.
    """
    found = reported_metrics(rows, prefixes)
    missing = [m for m in metrics if m not in found]
    if missing:
        raise ValueError(
            f'--metrics {" ".join(missing)}: no run reports '
            f'{"it" if len(missing) == 1 else "them"} (read as '
            f'{key_label(prefixes)[4:]}); the runs report '
            f'{", ".join(found) or "no metric under that prefix"}')


def key_label(prefixes: dict) -> str:
    """The keys read, for the first header cell."""
    found = set(prefixes.values())
    if len(found) == 1:
        prefix = found.pop()
        return f'key {prefix}/<metric>' if prefix else 'key <metric>'
    return 'key <target>/<metric>, target per row'


def config_label(config: str, names: Optional[dict] = None) -> str:
    """A config's label: its file name, or with ``names``
    (``run_plans.run_names``) its run name and extension (``a/tiny.py``
    where another folder holds a ``tiny.py``)."""
    if names is None:
        return osp.basename(config)
    return names[config] + osp.splitext(config)[1]


def row_label(config: str,
              prefixes: dict,
              names: Optional[dict] = None) -> str:
    name = config_label(config, names)
    if len(set(prefixes.values())) > 1:
        name += f' ({prefixes[config]})'
    return name


def paired_table(rows: list,
                 baseline: str,
                 args,
                 prefixes: dict,
                 means: Optional[dict] = None,
                 names: Optional[dict] = None) -> str:
    """Markdown table of paired differences against ``baseline``;
    ``means`` as in :func:`check_targets`, ``names`` as in
    :func:`config_label`.

    Raises:
        ValueError: A config was evaluated on another test set than the
            baseline (another target, or another number of queries).
    """
    means = means or {}
    runs_of = dict(rows)
    base = runs_of[baseline]
    base_prefix = prefixes[baseline]
    header = (f'| config - {config_label(baseline, names)} '
              f'({key_label(prefixes)}) | ' +
              ' | '.join(f'Δ{m} [95 % CI]'
                         for m in args.metrics) + ' | seeds paired |')
    lines = [header, '|---' * (len(args.metrics) + 2) + '|']
    for config, runs in rows:
        if config == baseline:
            continue
        if prefixes[config] != base_prefix:
            raise ValueError(
                f'{config} is read under {prefixes[config]!r}, the baseline '
                f'{baseline} under {base_prefix!r}: different test sets are '
                'not paired')
        for seed in args.seeds:
            if not (reads_prefix(base[seed], base_prefix)
                    and reads_prefix(runs[seed], base_prefix)):
                continue  # the seed is not paired (pick finds nothing)
            a = test_set(base[seed], base_prefix, means.get(baseline))
            b = test_set(runs[seed], base_prefix, means.get(config))
            if a != b:
                raise ValueError(
                    f'{config} (seed {seed}) was evaluated on '
                    f'{describe_test_set(base_prefix, b)}, the baseline '
                    f'{baseline} on {describe_test_set(base_prefix, a)}: '
                    'different test sets are not paired')
        cells, used = [], []
        for metric in args.metrics:
            pairs = [(pick(base[s], metric, base_prefix,
                           f'{config_label(baseline, names)}, seed {s}'),
                      pick(runs[s], metric, base_prefix,
                           f'{config_label(config, names)}, seed {s}'))
                     for s in args.seeds]
            pairs = [(a, b) for a, b in pairs
                     if a is not None and b is not None]
            used.append(len(pairs))
            if len(pairs) < 2:
                cells.append('-')
                continue
            mean, low, high = paired_interval(*zip(*pairs))
            cells.append(f'{mean:+.1f} [{low:+.1f}, {high:+.1f}]')
        seeds = str(used[0]) if len(set(used)) == 1 else ', '.join(
            f'{m} {n}' for m, n in zip(args.metrics, used))
        lines.append(f'| {row_label(config, prefixes, names)} | ' +
                     ' | '.join(cells) + f' | {seeds} |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    try:
        args.configs, args.baseline = normalise_configs(
            args.configs, args.baseline)
    except ValueError as error:
        raise SystemExit(f'error: {error}')
    if args.baseline and len(args.seeds) < 2:
        raise SystemExit('error: --baseline needs two seeds at least')
    means = plan_runs(args.configs, args)
    names = run_names(args.configs)
    rows = []
    for config in args.configs:
        rows.append((config, runs_of(config, args.seeds, args, names[config])))
    try:
        prefixes = check_targets(rows, args.target, means)
        if args.metrics_given:
            check_metrics(rows, args.metrics, prefixes)
        for config, runs in rows:  # a NaN is refused before any table
            for seed in args.seeds:
                for metric in args.metrics:
                    pick(runs[seed], metric, prefixes[config],
                         f'{config_label(config, names)}, seed {seed}')
    except ValueError as error:
        raise SystemExit(f'error: {error}')
    header = f'| config ({key_label(prefixes)}) | ' + ' | '.join(
        f'{m} mean ± std' for m in args.metrics) + \
        f' | {"/".join(args.metrics[:2])} per seed (' + \
        ', '.join(str(s) for s in args.seeds) + ') |'
    lines = [header, '|---' * (len(args.metrics) + 2) + '|']
    for config, runs in rows:
        prefix = prefixes[config]
        cells = []
        for metric in args.metrics:
            values = [pick(runs[s], metric, prefix) for s in args.seeds]
            cells.append(
                mean_cell([v for v in values if v is not None],
                          len(args.seeds)))
        per_seed = []
        for seed in args.seeds:
            values = [pick(runs[seed], m, prefix) for m in args.metrics[:2]]
            per_seed.append('/'.join('-' if v is None else f'{v:.1f}'
                                     for v in values))
        lines.append(f'| {row_label(config, prefixes, names)} | ' +
                     ' | '.join(cells) + f' | {"; ".join(per_seed)} |')
    table = '\n'.join(lines)
    if args.baseline:
        try:
            table += '\n\n' + paired_table(rows, args.baseline, args, prefixes,
                                           means, names)
        except ValueError as error:
            raise SystemExit(f'error: {error}')
    show_table(table, args.out)


def show_table(text: str, out: Optional[str]) -> None:
    """Print a tool's table and, with ``out`` (``--out``), write it
    there too, atomically (no half-written file is left)."""
    print(text)
    if out:
        from mmreid.utils.atomic import open_atomic  # torch: only here
        with open_atomic(out, 'w') as f:
            f.write(text + '\n')


if __name__ == '__main__':
    main()
