"""MBN - BN against the measured modality gap, paired by seed.

Each ``BN_CONFIG:MBN_CONFIG`` pair is a plain-BN model and its MBN twin on
the same data, recipe and seeds (an ``ir_gap`` setting, an architecture, a
batch composition). For every pair the table gives:

* the modality gap of the trained BN model and of the trained MBN model:
  ``modality_gap.py``'s standardised mean difference, averaged over the
  norm inputs whose name starts with ``--layers`` (default
  ``backbone.layer``: the shared layer1-4), on a mixed batch of
  ``--num-per-modality`` (4 at least) visible and infrared training
  images (draw seed 0, training mode), mean and range over the seeds,
  and the noise floor of the BN runs (``modality_gap.py``'s, mean over
  the same norm inputs and the seeds);
* the metric of BN and of MBN (mean ± population std over the seeds);
* MBN - BN, paired by seed, with its 95 % Student-t interval and the
  values per seed;
* for each pair after the first, the difference of the paired effects
  (this pair's MBN - BN minus the first pair's, seed by seed) with its
  interval: "the effect grows with the gap" predicts it positive where the
  BN gap is larger.

Runs are found (or trained) as by ``compare_configs.py``
(``WORK_DIR/<config name>_seed<S>``, last validation of the log; a config
whose seeds, or a BN and MBN run, were evaluated on different test sets,
``<target>/num_query``, is an error; ``--target`` names the prefix to
read where a run logs several, e.g. ``--target sysu`` of a multi-target
run, ``--target reid`` of one evaluated with ``[ReIDMetric, MyMetric]``,
checked from the configs before any run is trained); the gap
of a run is measured on its last checkpoint, with the run's config and
``--cfg-options``, and cached next to it
(``modality_gap_<N>.json``, with the sha256 of the checkpoint and of the
merged config: a run trained again into the same work dir, or a changed
config, is measured again)::

    M=configs/mbn
    python tools/analysis_tools/gap_effect.py \\
        $M/agw_r18_synthreid-vi-v2.py:$M/mbn-agw_r18_synthreid-vi-v2.py \\
        $M/agw_r18_synthreid-vi-v2_ir-gap-1.0.py:\\
    $M/mbn-agw_r18_synthreid-vi-v2_ir-gap-1.0.py \\
        --seeds 0 1 2 --work-dir work_dirs/mbn_gap --plot mbn_gap.png
"""
import argparse
import hashlib
import json
import math
import os.path as osp
import statistics
import sys
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from compare_configs import add_table_arguments, show_table  # noqa
from paired_stats import paired_interval  # noqa
from run_plans import add_run_arguments  # noqa
from run_plans import plan_runs  # noqa
from run_plans import run_dir  # noqa
from run_plans import run_names  # noqa
from run_plans import runs_of  # noqa
from run_records import final_checkpoint, final_step  # noqa
from run_targets import add_target_argument  # noqa
from run_targets import check_paired_test_sets  # noqa
from run_targets import one_test_set  # noqa
from run_targets import pick  # noqa
from run_targets import run_target  # noqa


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'pairs', nargs='+', help='BN_CONFIG:MBN_CONFIG, one per setting')
    add_run_arguments(parser, 'work_dirs/gap_effect')
    add_table_arguments(parser, ['R1', 'mAP'])
    add_target_argument(parser)
    parser.add_argument(
        '--layers',
        default='backbone.layer',
        help='average the gap over the norm inputs whose name starts with '
        'this (default: the ResNet layer1-4)')
    parser.add_argument('--num-per-modality', type=int, default=128)
    parser.add_argument('--plot', help='also draw MBN - BN against the gap')
    args = parser.parse_args(argv)
    if len(args.seeds) < 2:
        parser.error('paired intervals need two seeds at least')
    if args.num_per_modality < 4:
        parser.error('--num-per-modality must be >= 4: the floor column is '
                     'the gap between two halves of the visible images, of '
                     f'2 at least each; got {args.num_per_modality}')
    pairs = []
    for pair in args.pairs:
        parts = pair.split(':')
        if len(parts) != 2 or not all(parts):
            parser.error(f'a pair is BN_CONFIG:MBN_CONFIG, got {pair!r}')
        pairs.append(tuple(parts))
    args.pairs = pairs
    return args


def name_of(config: str, names: Optional[Dict[str, str]] = None) -> str:
    """A config's run name: from ``names`` (``run_plans.run_names`` of
    all the pairs' configs: ``a/agw`` where another folder holds an
    ``agw.py``), else its file name without ``.py``."""
    return names[config] if names else osp.splitext(osp.basename(config))[0]


def check_test_sets(sides: list,
                    target: Optional[str] = None,
                    means: Optional[dict] = None,
                    names: Optional[Dict[str, str]] = None) -> None:
    """Refuse a BN/MBN pair unless both were evaluated on one test set.

    The runs of each config (across seeds) and BN and MBN (seed by seed)
    must have the same target and test set
    (``run_targets.test_set``: ``<target>/num_query``), as
    ``compare_configs.py`` requires of a ``--baseline`` pair.

    Args:
        sides (list): ``(config, {seed: metrics})`` of BN, then MBN.
        target (str, optional): ``--target``: the prefix to read; without
            it a run must log one (``run_targets.run_target``).
        means (dict, optional): config -> the prefixes of the means over
            targets its loops log (``run_plans.loop_means``).
        names (dict, optional): config -> its run name (:func:`name_of`).

    Raises:
        ValueError: Names the config (and seed), the target and the two
            test sets; or the targets of a run that ``target`` does not
            pick from.
    """
    means = means or {}
    found = []
    for config, runs in sides:
        name = name_of(config, names)
        prefixes = {
            seed:
            run_target(metrics, target, f'{name}, seed {seed}',
                       'give --target with one of them', means.get(config))
            for seed, metrics in runs.items()
        }
        if len(set(prefixes.values())) > 1:
            raise ValueError(f'{name}: its runs have different '
                             f'targets ({prefixes})')
        prefix = next(iter(prefixes.values()))
        found.append((name, prefix,
                      one_test_set(runs, prefix, name, means.get(config))))
    (bn, bn_prefix, bn_sets), (mbn, mbn_prefix, mbn_sets) = found
    if bn_prefix != mbn_prefix:
        raise ValueError(f'{mbn} is read under {mbn_prefix!r}, {bn} under '
                         f'{bn_prefix!r}: different test sets are not paired')
    check_paired_test_sets((bn, bn_prefix, bn_sets),
                           (mbn, mbn_prefix, mbn_sets))


def last_checkpoint(work_dir: str, out_dir: Optional[str] = None) -> str:
    """The checkpoint named by mmengine's ``last_checkpoint`` file, in
    ``work_dir`` or the run's ``CheckpointHook`` ``out_dir``
    (``mmreid.utils.checkpoint.last_run_checkpoint``: a copied work dir is
    measured on its own checkpoint, not the original folder's)."""
    from mmreid.utils.checkpoint import last_run_checkpoint
    checkpoint = last_run_checkpoint(work_dir, out_dir)
    if checkpoint is None:
        raise FileNotFoundError(f'{work_dir}: no last_checkpoint file; the '
                                f'gap is measured on the trained model')
    return checkpoint


def summarise(rows: List[dict], layers: str, where: str) -> Dict[str, float]:
    """Mean gap and floor over the chosen norm inputs."""
    chosen = [
        r for r in rows
        if r['layer'].startswith(layers) and r.get('gap') is not None
    ]
    if not chosen:
        raise ValueError(f'{where}: no norm input with a gap starts with '
                         f'{layers!r}')
    infinite = [r['layer'] for r in chosen if math.isinf(r['gap'])]
    if infinite:
        raise ValueError(
            f'{where}: the modality gap at {infinite[0]} is infinite (a '
            f'channel constant within each modality at different values); '
            f'no mean gap over {layers!r} to plot')
    floors = [r['floor'] for r in chosen if r.get('floor') is not None]
    return dict(
        gap=statistics.fmean(r['gap'] for r in chosen),
        floor=statistics.fmean(floors) if floors else float('nan'),
        layers=len(chosen))


def file_sha256(path: str) -> str:
    """The sha256 of a file's bytes (through links)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def run_config(config: str, cfg_options: Sequence[str] = ()):
    """The merged config of a run, with the ``--cfg-options`` it was
    trained with (``key=value`` strings): the model and the training
    images the gap is measured on."""
    from run_plans import parse_cfg_options

    from mmreid.utils.config import load_config
    return load_config(config, parse_cfg_options(cfg_options))


def config_sha256(config: str, cfg_options: Sequence[str] = ()) -> str:
    """The sha256 of the merged config (its bases, settings and
    ``cfg_options``, not the file's text): what the gap is measured
    with."""
    from run_records import _plain
    text = json.dumps(
        _plain(run_config(config, cfg_options).to_dict()),
        sort_keys=True,
        default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def cache_key(config: str,
              checkpoint: str,
              cfg_options: Sequence[str] = ()) -> Dict[str, str]:
    """What a cached gap was measured on: the checkpoint's and the
    merged config's sha256 (a run trained again into the same work dir
    leaves a checkpoint of the same path and size)."""
    return dict(
        checkpoint_sha256=file_sha256(checkpoint),
        config_sha256=config_sha256(config, cfg_options))


def _measure(config: str,
             checkpoint: str,
             num_per_modality: int,
             cfg_options: Sequence[str] = ()) -> list:
    """``modality_gap.py``'s rows for ``checkpoint``, with the run's
    config (:func:`run_config`)."""
    import copy

    import torch
    from modality_gap import measure_modality_gap, mixed_batch

    from mmreid.apis import init_model
    from mmreid.utils import register_all_modules
    register_all_modules()
    model = init_model(run_config(config, cfg_options), checkpoint)
    batch = mixed_batch(model.cfg, num_per_modality, 0,
                        model.data_preprocessor)
    model = copy.deepcopy(model)
    data = model.data_preprocessor(batch, False)
    modality = [int(s.metainfo['modality']) for s in data['data_samples']]
    model.train()
    with torch.no_grad():
        return measure_modality_gap(
            model, data['inputs'], modality,
            lambda x: model.head.predict(model.extract_feat(x)))


def final_run_checkpoint(cfg, config: str, last: str) -> str:
    """The final checkpoint of the run, beside ``last``.

    The table's metrics are the finished run's final validation
    (:func:`run_plans.runs_of`), so the gap beside them is measured on
    the final checkpoint (``epoch_<max_epochs>.pth``), not on whatever
    ``last_checkpoint`` names: a later training into the same work dir,
    cut off before validating, points it at an earlier epoch's file.

    Args:
        cfg (mmengine.Config): The run's merged config.
        config (str): Its file, for messages.
        last (str): The checkpoint ``last_checkpoint`` names.

    Raises:
        FileNotFoundError: The final checkpoint is not there.
    """
    final = osp.join(
        osp.dirname(last), final_checkpoint(*final_step(cfg, config)))
    if not osp.isfile(final):
        raise FileNotFoundError(
            f'{final}: no final checkpoint of the run of {config} (its '
            f'last_checkpoint names {last}); the gap is measured on the '
            'model whose metrics are shown')
    if osp.realpath(final) != osp.realpath(last):
        print(
            f'{osp.dirname(last)}: last_checkpoint names {last} (a later '
            f'training that did not finish); measuring the final '
            f'checkpoint {final}, whose metrics are shown',
            file=sys.stderr,
            flush=True)
    return final


def measure_gap(config: str,
                work_dir: str,
                num_per_modality: int,
                cfg_options: Sequence[str] = ()) -> list:
    """``modality_gap.py``'s rows for the run's final checkpoint.

    The model and the training images are those of the run: ``config``
    with the ``cfg_options`` (``key=value`` strings) it was trained with.
    Cached in ``WORK_DIR/modality_gap_<N>.json`` with :func:`cache_key`;
    a cache of another checkpoint (by content) or config is measured
    again, saying so.
    """
    cache = osp.join(work_dir, f'modality_gap_{num_per_modality}.json')
    out_dir = None
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        hooks = run_config(config, cfg_options).get('default_hooks') or {}
        out_dir = (hooks.get('checkpoint') or {}).get('out_dir')
    last = last_checkpoint(work_dir, out_dir)
    checkpoint = final_run_checkpoint(
        run_config(config, cfg_options), config, last)
    key = cache_key(config, checkpoint, cfg_options)
    if osp.isfile(cache):
        with open(cache) as f:
            cached = json.load(f)
        stale = [k for k, v in key.items() if cached.get(k) != v]
        if not stale:
            return cached['rows']
        what = ' and '.join(k.split('_')[0] for k in stale)
        print(
            f'{cache}: cached for another {what} than {checkpoint} with '
            f'{config} (by sha256); measuring the gap again',
            file=sys.stderr,
            flush=True)
    rows = _measure(config, checkpoint, num_per_modality, cfg_options)
    from mmreid.utils.atomic import open_atomic
    with open_atomic(cache, 'w') as f:
        json.dump(
            dict(
                key,
                config=config,
                cfg_options=list(cfg_options),
                checkpoint=checkpoint,
                rows=rows), f)
    return rows


def fmt(values: Sequence[float], digits: int = 1) -> str:
    return (f'{statistics.fmean(values):.{digits}f} ± '
            f'{statistics.pstdev(values):.{digits}f}')


def fmt_range(values: Sequence[float]) -> str:
    return f'{statistics.fmean(values):.3f} ({min(values):.3f}-' \
           f'{max(values):.3f})'


def interval(base: Sequence[float], other: Sequence[float]) -> str:
    mean, low, high = paired_interval(base, other)
    return f'{mean:+.1f} [{low:+.1f}, {high:+.1f}]'


#: What the gap table's columns are.
GAP_LEGEND = (
    'Gaps: modality_gap.py\'s mean over the norm inputs, per seed (range '
    'over the seeds); floor: the same statistic between two halves of the '
    'visible images, whose half-size groups make it about sqrt(2) times '
    'what a modality comparison without any gap gives. Metrics: mean ± '
    'population std (ddof=0) over the seeds; [95 % CI]: Student t '
    'interval of the mean paired (same seed) difference, from its sample '
    'std.')


def tables(settings: List[dict], metrics: Sequence[str],
           seeds: Sequence[int]) -> str:
    """The Markdown tables from measured settings.

    Args:
        settings: One dict per pair: ``name``, ``bn_gap``, ``mbn_gap``,
            ``floor`` (lists over the seeds) and ``bn``, ``mbn`` (dicts
            metric -> list over the seeds).
        metrics: Metric names, in table order.
        seeds: The seeds, for the headers.
    """
    seed_list = ', '.join(map(str, seeds))
    lines = [
        '| setting (BN config) | BN gap, mean (range) | MBN gap | floor | ' +
        ' | '.join(f'BN {m} | MBN {m} | MBN - BN {m} [95 % CI] | '
                   f'per seed ({seed_list})' for m in metrics) + ' |',
        '|---|---|---|---|' + '---|---|---|---|' * len(metrics)
    ]
    for s in settings:
        cells = [
            s['name'],
            fmt_range(s['bn_gap']),
            fmt_range(s['mbn_gap']),
            f'{statistics.fmean(s["floor"]):.3f}'
        ]
        for m in metrics:
            diffs = [b - a for a, b in zip(s['bn'][m], s['mbn'][m])]
            cells += [
                fmt(s['bn'][m]),
                fmt(s['mbn'][m]),
                interval(s['bn'][m], s['mbn'][m]),
                ', '.join(f'{d:+.1f}' for d in diffs)
            ]
        lines.append('| ' + ' | '.join(cells) + ' |')
    out = '\n'.join(lines) + '\n\n' + GAP_LEGEND
    if len(settings) > 1:
        first = settings[0]

        def effect(s, m):
            return [b - a for a, b in zip(s['bn'][m], s['mbn'][m])]

        lines = [
            f'| (MBN - BN) of the setting - (MBN - BN) of {first["name"]} '
            '| BN gap - first BN gap | ' +
            ' | '.join(f'{m} [95 % CI]' for m in metrics) + ' |',
            '|---|---|' + '---|' * len(metrics)
        ]
        for s in settings[1:]:
            gap = statistics.fmean(s['bn_gap']) - statistics.fmean(
                first['bn_gap'])
            lines.append(f'| {s["name"]} | {gap:+.3f} | ' + ' | '.join(
                interval(effect(first, m), effect(s, m))
                for m in metrics) + ' |')
        out += '\n\n' + '\n'.join(lines)
    return out


def plot(settings: List[dict], metric: str, path: str) -> None:
    """MBN - BN (mean, 95 % interval) against the trained BN gap."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for s in settings:
        mean, low, high = paired_interval(s['bn'][metric], s['mbn'][metric])
        gap = statistics.fmean(s['bn_gap'])
        ax.errorbar(
            gap,
            mean,
            yerr=[[mean - low], [high - mean]],
            xerr=[[gap - min(s['bn_gap'])], [max(s['bn_gap']) - gap]],
            fmt='o',
            capsize=3)
        ax.annotate(
            s['name'], (gap, mean),
            textcoords='offset points',
            xytext=(5, 5),
            fontsize=7)
    ax.axhline(0, color='grey', lw=0.8)
    ax.set_xlabel('modality gap of the trained BN model (mean over the '
                  'shared norm inputs)')
    ax.set_ylabel(f'MBN - BN, {metric} (95 % CI over seeds)')
    fig.tight_layout()
    from mmreid.utils.atomic import open_atomic
    try:
        with open_atomic(path, 'wb') as f:
            fig.savefig(f, dpi=120, format=osp.splitext(path)[1][1:] or None)
    finally:
        plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    configs = [c for pair in args.pairs for c in pair]
    means = plan_runs(configs, args)
    names = run_names(configs)
    settings = []
    for bn_config, mbn_config in args.pairs:
        setting = dict(
            name=name_of(bn_config, names),
            bn_gap=[],
            mbn_gap=[],
            floor=[],
            bn={m: []
                for m in args.metrics},
            mbn={m: []
                 for m in args.metrics})
        runs = {
            config: runs_of(config, args.seeds, args, names[config])
            for config in (bn_config, mbn_config)
        }
        try:
            check_test_sets([(c, runs[c]) for c in (bn_config, mbn_config)],
                            args.target, means, names)
        except ValueError as error:
            raise SystemExit(f'error: {error}')
        for seed in args.seeds:
            for side, config in (('bn', bn_config), ('mbn', mbn_config)):
                name = name_of(config, names)
                metrics = runs[config][seed]
                for m in args.metrics:
                    try:
                        value = pick(metrics, m, args.target,
                                     f'{name}, seed {seed}')
                    except ValueError as error:  # run_target's, a NaN
                        raise SystemExit(f'error: {error}')
                    if value is None:
                        raise SystemExit(f'error: {name}, seed {seed}: no '
                                         f'{m!r} in its last validation')
                    setting[side][m].append(value)
                work_dir = run_dir(args.work_dir, name, seed)
                summary = summarise(
                    measure_gap(config, work_dir, args.num_per_modality,
                                args.cfg_options), args.layers,
                    f'{name}, seed {seed}')
                setting[f'{side}_gap'].append(summary['gap'])
                if side == 'bn':
                    setting['floor'].append(summary['floor'])
        settings.append(setting)
    text = (f'Seeds {", ".join(map(str, args.seeds))}; gap over the norm '
            f'inputs starting with {args.layers!r}, '
            f'{args.num_per_modality} + {args.num_per_modality} training '
            f'images.\n\n' + tables(settings, args.metrics, args.seeds))
    show_table(text, args.out)
    if args.plot:
        plot(settings, args.metrics[0], args.plot)


if __name__ == '__main__':
    main()
