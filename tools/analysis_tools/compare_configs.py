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
interrupted comparison resumes where it stopped.
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
METRICS = ('R1', 'R5', 'mAP', 'mINP')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', help='configs to compare')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--work-dir', default='work_dirs/compare')
    parser.add_argument(
        '--metrics',
        nargs='+',
        default=list(METRICS),
        help='metric names without prefix')
    parser.add_argument('--out', help='also write the Markdown table here')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='passed to every run, e.g. key=value')
    return parser.parse_args()


def last_validation(work_dir: str) -> dict:
    """Metrics of the last validation logged in ``work_dir`` ({} if none)."""
    found = {}
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
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


def pick(metrics: dict, name: str):
    """The value of ``<prefix>/<name>`` (the single-target key)."""
    for key, value in metrics.items():
        if key.split('/')[-1] == name and key.count('/') == 1:
            return value
    return None


def main():
    args = parse_args()
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
            values = [pick(runs[s], metric) for s in args.seeds]
            values = [v for v in values if v is not None]
            if not values:
                cells.append('-')
                continue
            cells.append(f'{statistics.fmean(values):.1f} ± '
                         f'{statistics.pstdev(values):.1f}')
        for seed in args.seeds:
            per_seed.append('/'.join(f'{pick(runs[seed], m):.1f}'
                                     for m in args.metrics[:2]
                                     if pick(runs[seed], m) is not None))
        lines.append(f'| {osp.basename(config)} | ' + ' | '.join(cells) +
                     f' | {"; ".join(per_seed)} |')
    table = '\n'.join(lines)
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(table + '\n')


if __name__ == '__main__':
    main()
