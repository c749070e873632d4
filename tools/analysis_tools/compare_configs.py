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

A run whose work dir already holds results is not trained again, so an
interrupted comparison resumes where it stopped. ``--no-train`` only reads:
a run without results is an error naming its work dir (use it while the
runs are trained elsewhere, where a missing or unfinished run would
otherwise start a second training into the same work dir). A work dir may
also hold a ``tools/test.py`` result (a checkpoint re-tested elsewhere, e.g.
on a larger test set): the latest evaluation in it is read.

``--baseline CONFIG`` adds a second table: for every other config and
metric, the mean over seeds of the paired difference (config - baseline,
same seed) with its 95 % Student-t interval, so "A beats B" comes with an
error bar (it needs two seeds at least; the seed pairs the runs' random
initialisation and sampling, not their data). The interval is over
training seeds on one fixed test set: how far a difference would move
with another draw of the test identities is
``tools/analysis_tools/paired_query_error.py`` (from two ``tools/test.py
--report`` folders). ``--target NAME`` reads a
multi-target run's ``NAME/<metric>`` keys (e.g. ``d3``, ``d3-d0style``)::

    python tools/analysis_tools/compare_configs.py \
        configs/snr/baseline_r18_synthreid.py \
        configs/snr/snr_r18_synthreid.py \
        --baseline configs/snr/baseline_r18_synthreid.py --seeds 0 1 2
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
from typing import Optional, Sequence, Tuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
METRICS = ('R1', 'R5', 'mAP', 'mINP')
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


def add_run_arguments(parser: argparse.ArgumentParser, work_dir: str) -> None:
    """The options of :func:`run`, shared by the tools that compare runs:
    ``--seeds``, ``--work-dir`` (default ``work_dir``), ``--cfg-options``
    and ``--no-train``."""
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--work-dir', default=work_dir)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='passed to every run that has to be trained, e.g. key=value')
    parser.add_argument(
        '--no-train',
        action='store_true',
        help='only read finished runs: a run without validation metrics '
        'is an error instead of being trained')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='configs to compare')
    add_run_arguments(parser, 'work_dirs/compare')
    parser.add_argument(
        '--metrics',
        nargs='+',
        default=list(METRICS),
        help='metric names without prefix')
    parser.add_argument('--out', help='also write the Markdown table here')
    parser.add_argument(
        '--baseline',
        help='config to compare the others with: paired per-seed '
        'differences with 95 %% intervals')
    parser.add_argument(
        '--target',
        help='multi-target runs: read the metrics of this target '
        '(its prefix, e.g. d3)')
    return parser.parse_args()


def last_validation(work_dir: str) -> dict:
    """Metrics of the last evaluation logged in ``work_dir`` ({} if none).

    A training run logs its validations in ``<stamp>/vis_data/
    scalars.json``; ``tools/test.py CONFIG CHECKPOINT --work-dir DIR``
    writes its metrics to ``<stamp>/<stamp>.json``. Both are read, the
    latest stamp last, so a checkpoint re-tested (e.g. on a larger test
    set) is tabulated like a finished run.
    """
    found = {}
    paths = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    paths += [
        p for p in glob.glob(osp.join(work_dir, '*', '*.json'))
        if osp.basename(p) == osp.basename(osp.dirname(p)) + '.json'
    ]
    # The stamp folder orders them; within one, the test result is last.
    for path in sorted(
            paths,
            key=lambda p: (osp.relpath(p, work_dir).split(osp.sep)[0],
                           p.endswith('scalars.json') is False)):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if any('/' in k for k in record):
                    found = record
    return found


def run(config: str, seed: int, args) -> dict:
    name = osp.splitext(osp.basename(config))[0]
    work_dir = osp.join(args.work_dir, f'{name}_seed{seed}')
    metrics = last_validation(work_dir)
    if metrics:
        return metrics
    cmd = [
        sys.executable,
        osp.join(REPO, 'tools', 'train.py'), config, '--work-dir', work_dir,
        '--cfg-options', f'randomness.seed={seed}'
    ] + args.cfg_options
    if args.no_train:
        raise FileNotFoundError(
            f'{work_dir}: no validation metrics (the run is missing or has '
            f'not finished) and --no-train is set; train it with: '
            f'{" ".join(cmd)}')
    print(' '.join(cmd), flush=True)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO, env.get('PYTHONPATH')) if p)
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    metrics = last_validation(work_dir)
    if not metrics:
        raise RuntimeError(f'{work_dir}: the run logged no validation '
                           'metrics; does its config validate at the end?')
    return metrics


def pick(metrics: dict, name: str, target: Optional[str] = None):
    """The value of ``<prefix>/<name>`` (the single-target key), or of
    ``<target>/<name>`` when a target is given."""
    if target is not None:
        return metrics.get(f'{target}/{name}')
    for key, value in metrics.items():
        if key.split('/')[-1] == name and key.count('/') == 1:
            return value
    return None


def paired_table(rows: list, baseline: str, args) -> str:
    """Markdown table of paired differences against ``baseline``."""
    runs_of = dict(rows)
    base = runs_of[baseline]
    header = f'| config - {osp.basename(baseline)} | ' + ' | '.join(
        f'Δ{m} [95 % CI]' for m in args.metrics) + ' | seeds |'
    lines = [header, '|---' * (len(args.metrics) + 2) + '|']
    for config, runs in rows:
        if config == baseline:
            continue
        cells, used = [], 0
        for metric in args.metrics:
            pairs = [(pick(base[s], metric,
                           args.target), pick(runs[s], metric, args.target))
                     for s in args.seeds]
            pairs = [(a, b) for a, b in pairs
                     if a is not None and b is not None]
            if len(pairs) < 2:
                cells.append('-')
                continue
            used = max(used, len(pairs))
            mean, low, high = paired_interval(*zip(*pairs))
            cells.append(f'{mean:+.1f} [{low:+.1f}, {high:+.1f}]')
        lines.append(f'| {osp.basename(config)} | ' + ' | '.join(cells) +
                     f' | {used} |')
    return '\n'.join(lines)


def main():
    args = parse_args()
    if args.baseline and args.baseline not in args.configs:
        args.configs.insert(0, args.baseline)
    if args.baseline and len(args.seeds) < 2:
        raise SystemExit('--baseline needs two seeds at least')
    rows = []
    for config in args.configs:
        runs = {seed: run(config, seed, args) for seed in args.seeds}
        rows.append((config, runs))
    header = '| config | ' + ' | '.join(
        f'{m} mean ± std' for m in args.metrics) + \
        f' | {"/".join(args.metrics[:2])} per seed (' + \
        ', '.join(str(s) for s in args.seeds) + ') |'
    lines = [header, '|---' * (len(args.metrics) + 2) + '|']
    for config, runs in rows:
        cells = []
        per_seed = []
        for metric in args.metrics:
            values = [pick(runs[s], metric, args.target) for s in args.seeds]
            values = [v for v in values if v is not None]
            if not values:
                cells.append('-')
                continue
            cells.append(f'{statistics.fmean(values):.1f} ± '
                         f'{statistics.pstdev(values):.1f}')
        for seed in args.seeds:
            values = [
                pick(runs[seed], m, args.target) for m in args.metrics[:2]
            ]
            per_seed.append('/'.join(f'{v:.1f}' for v in values
                                     if v is not None))
        lines.append(f'| {osp.basename(config)} | ' + ' | '.join(cells) +
                     f' | {"; ".join(per_seed)} |')
    table = '\n'.join(lines)
    if args.baseline:
        table += '\n\n' + paired_table(rows, args.baseline, args)
    print(table)
    if args.out:
        from mmreid.utils.atomic import open_atomic  # torch: only here
        with open_atomic(args.out, 'w') as f:
            f.write(table + '\n')


if __name__ == '__main__':
    main()
