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
different test sets, are errors.
A mean over one seed is shown as ``(n=1)``, without a spread, one over
fewer seeds than given with its ``n``; the ``seeds paired`` column
counts the pairs of each interval (per metric where they differ). The
same config file under two spellings (``./a.py``, ``a.py``) is one
config; ``--seeds`` with a seed twice is refused::

    python tools/analysis_tools/compare_configs.py \
        configs/snr/baseline_r18_synthreid.py \
        configs/snr/snr_r18_synthreid.py \
        --baseline configs/snr/baseline_r18_synthreid.py --seeds 0 1 2
"""
import argparse
import json
import os
import os.path as osp
import re
import statistics
import subprocess
import sys
from typing import List, Optional, Sequence, Tuple

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


class DistinctSeeds(argparse.Action):
    """``--seeds``: each seed once.

    A seed given twice would be counted as two independent runs (its
    values twice in every mean, std and interval, the interval narrowed by
    a degree of freedom that is not there), so a repeat is an error naming
    it. A subclass with another :attr:`noun` does the same for other runs
    (``--trials``).
    """
    #: What one value is, in the message.
    noun = 'seed'

    def __call__(self, parser, namespace, values, option_string=None):
        repeated = sorted(s for s in set(values) if values.count(s) > 1)
        if repeated:
            parser.error(
                f'{option_string} {" ".join(map(str, values))}: '
                f'{self.noun}(s) {", ".join(map(str, repeated))} given more '
                f'than once; each {self.noun} is one run, so give every '
                f'{self.noun} once')
        setattr(namespace, self.dest, list(values))


def add_run_arguments(parser: argparse.ArgumentParser,
                      work_dir: str,
                      seeds: bool = True) -> None:
    """The options of :func:`run`, shared by the tools that compare runs:
    ``--seeds`` (distinct; left out with ``seeds=False``, for a tool of
    one seed), ``--work-dir`` (default ``work_dir``), ``--cfg-options``,
    ``--no-train`` and ``--trust-retested``."""
    if seeds:
        parser.add_argument(
            '--seeds',
            nargs='+',
            type=int,
            default=[0, 1, 2],
            action=DistinctSeeds,
            help='the runs\' randomness.seed, each once (default: 0 1 2)')
    parser.add_argument('--work-dir', default=work_dir)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='passed to every run that has to be trained, e.g. key=value')
    parser.add_argument(
        '--no-train',
        action='store_true',
        help='only read finished runs: a missing or unfinished run (no '
        'validation at its last epoch) is an error instead of being '
        'trained')
    parser.add_argument(
        '--trust-retested',
        action='store_true',
        help='also read a tools/test.py result of a final checkpoint '
        'outside the run\'s work dir, in a folder of the run\'s name (e.g. '
        'v2 checkpoints re-tested into a v2.1 work dir). Without it such a '
        'result is refused: a folder name does not tell which experiment '
        'trained the checkpoint, so with it you vouch for that')


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
    return parser.parse_args(argv)


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


def add_target_argument(parser: argparse.ArgumentParser) -> None:
    """``--target``, shared by the tools that read runs' metrics (see
    :func:`run_target`)."""
    parser.add_argument(
        '--target',
        help='read the metrics under this prefix: a target of a '
        'multi-target run (e.g. d3, d3/reid), or one metric of a run '
        'evaluated with several (e.g. reid); needed where a run logs '
        'several')


def last_validation(work_dir: str) -> dict:
    """Metrics of the last evaluation logged in ``work_dir`` ({} if none).

    A training run logs its validations in ``<stamp>/vis_data/
    scalars.json``; ``tools/test.py CONFIG CHECKPOINT --work-dir DIR``
    writes its metrics to ``<stamp>/<stamp>.json``. Both are read
    (:func:`evaluations`), the latest stamp last. It does not check that
    the run finished or which config it ran: :func:`finished_result`
    does, for :func:`run`.
    """
    found = evaluations(work_dir)
    return found[-1][2] if found else {}


#: Settings of a recorded config that say how a run was started or
#: watched, not what it trained or evaluated (``log_processor`` writes the
#: log lines: runs recorded before default_runtime named
#: ``ReIDLogProcessor`` hold the same metrics).
RUN_ONLY_KEYS = ('work_dir', 'resume', 'visualizer', 'log_processor')
#: Hooks ``tools/test.py`` adds for its drawings; they change no metric.
DRAWING_HOOKS = ('RankedListHook', 'EvalReportHook')
#: The loops whose end is known: the unit of their logged validation
#: steps, the setting of the last one and ``log_metric_by_epoch``.
LOOPS = {
    'EpochBasedTrainLoop': ('epoch', 'max_epochs', True),
    'IterBasedTrainLoop': ('iteration', 'max_iters', False)
}
#: mmengine's timestamp folders (``%Y%m%d_%H%M%S``), one per run started.
STAMP = re.compile(r'^\d{8}_\d{6}$')


def expected_config(config: str, seed: int, cfg_options: Sequence[str]):
    """The merged config ``tools/train.py`` builds for one run.

    Args:
        config (str): The config file.
        seed (int): The run's ``randomness.seed``.
        cfg_options (Sequence[str]): ``key=value`` options, given after
            the seed as in the training command.

    Returns:
        mmengine.Config: The config the run trains.
    """
    from mmreid.utils.config import load_config
    return load_config(
        config, parse_cfg_options([f'randomness.seed={seed}', *cfg_options]))


def parse_cfg_options(cfg_options: Sequence[str]) -> Optional[dict]:
    """``key=value`` strings as ``tools/train.py --cfg-options`` reads
    them (``ReIDDictAction``); ``None`` for none."""
    from mmreid.utils.config.options import ReIDDictAction
    if not cfg_options:
        return None
    parser = argparse.ArgumentParser(prog='--cfg-options')
    parser.add_argument('options', nargs='+', action=ReIDDictAction)
    return parser.parse_args(list(cfg_options)).options


def final_step(cfg, config: str) -> Tuple[str, int]:
    """The unit of the logged validation steps and the final step.

    A run has finished when its last validation is logged at this step
    (mmengine validates the last epoch or iteration whatever
    ``val_interval``).

    Args:
        cfg (mmengine.Config): The run's merged config.
        config (str): Its file, for messages.

    Returns:
        tuple[str, int]: ``('epoch', max_epochs)`` or ``('iteration',
        max_iters)``.

    Raises:
        ValueError: The loop or the logging does not say when the run
            finished.
    """
    train_cfg = cfg.get('train_cfg') or {}
    loop = train_cfg.get('type')
    if loop is None and 'by_epoch' not in train_cfg:
        raise ValueError(f'{config}: train_cfg has neither type nor '
                         'by_epoch, so its loop (and last step) is unknown')
    if loop is None:
        loop = 'EpochBasedTrainLoop' if train_cfg['by_epoch'] \
            else 'IterBasedTrainLoop'
    logger = (cfg.get('default_hooks') or {}).get('logger') or {}
    by_epoch = logger.get('log_metric_by_epoch', True)
    unit, key, logged_by_epoch = LOOPS.get(loop, (None, None, None))
    if unit is not None and bool(by_epoch) == logged_by_epoch:
        if not isinstance(train_cfg.get(key), int):
            raise ValueError(f'{config}: train_cfg.{key} is '
                             f'{train_cfg.get(key)!r}, not a number of '
                             f'{unit}s')
        return unit, train_cfg[key]
    if loop == 'IterBasedTrainLoop':
        raise ValueError(
            f'{config}: an iteration-based run logs its validations at '
            'epoch 0, so whether it finished cannot be told; set '
            'default_hooks.logger.log_metric_by_epoch=False')
    if loop == 'EpochBasedTrainLoop':
        raise ValueError(
            f'{config}: its validations are logged by iteration '
            '(default_hooks.logger.log_metric_by_epoch=False), so whether '
            'an epoch-based run reached train_cfg.max_epochs cannot be told')
    raise ValueError(f'{config}: train_cfg.type {loop!r}: whether a run of '
                     'this loop finished cannot be told')


def evaluations(work_dir: str) -> List[Tuple[str, str, dict]]:
    """The last evaluation of every run in ``work_dir``, oldest first.

    Returns:
        list[tuple[str, str, dict]]: ``(stamp, kind, metrics)`` with kind
        ``'train'`` (the last validation logged in
        ``<stamp>/vis_data/scalars.json``, with its ``step``) or
        ``'test'`` (``tools/test.py``'s ``<stamp>/<stamp>.json``).
    """
    found = []
    stamps = sorted(
        d for d in (os.listdir(work_dir) if osp.isdir(work_dir) else [])
        if STAMP.match(d) and osp.isdir(osp.join(work_dir, d)))
    for stamp in stamps:
        for kind, path in (('train',
                            osp.join(work_dir, stamp, 'vis_data',
                                     'scalars.json')),
                           ('test', osp.join(work_dir, stamp,
                                             f'{stamp}.json'))):
            if not osp.isfile(path):
                continue
            last = None
            with open(path) as f:
                for line in f:
                    if line.strip():
                        record = json.loads(line)
                        if any('/' in k for k in record):
                            last = record
            if last is not None:
                found.append((stamp, kind, last))
    return found


def config_record(work_dir: str, stamp: str, config: str):
    """The merged config the run ``stamp`` recorded.

    ``<stamp>/vis_data/config.py`` (mmengine's ``LocalVisBackend``), or
    for the latest run the config mmengine dumps into the work dir.

    Raises:
        ValueError: Neither is there.
    """
    from mmreid.utils.config import read_config
    path = osp.join(work_dir, stamp, 'vis_data', 'config.py')
    if osp.isfile(path):
        return read_config(path)
    latest = max(d for d in os.listdir(work_dir) if STAMP.match(d))
    dumped = osp.join(work_dir, osp.basename(config))
    if stamp == latest and osp.isfile(dumped):
        return read_config(dumped)
    raise ValueError(
        f'{work_dir}: no record of the config its run {stamp} used (no '
        f'{stamp}/vis_data/config.py' +
        (f', and {osp.basename(config)} there is of a later run)' if stamp !=
         latest else f' nor {osp.basename(config)})') +
        f', so it cannot be told whether the run is one of {config}')


def _plain(value):
    """Config values as plain dicts and lists (tuples as lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _differences(a, b, key: str = '') -> List[Tuple[str, object, object]]:
    """``(dotted key, value in a, value in b)`` where a and b differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            sub = f'{key}.{k}' if key else str(k)
            out += _differences(a.get(k, '<unset>'), b.get(k, '<unset>'), sub)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += _differences(x, y, f'{key}[{i}]')
        return out
    return [] if a == b else [(key, a, b)]


#: Hooks ``_base_/default_runtime.py`` listed in ``custom_hooks`` before
#: they became ``default_hooks`` (same hooks, same order): their keys there.
MOVED_HOOKS = {
    'TrainSetupCheckHook': 'setup_check',
    'FeatureProgressHook': 'feature_progress'
}


def _hooks_as_now(cfg: dict) -> None:
    """Move :data:`MOVED_HOOKS` from ``custom_hooks`` to ``default_hooks``
    (a config written before the move, or its run's record)."""
    hooks = cfg.get('custom_hooks')
    defaults = cfg.get('default_hooks')
    if not isinstance(hooks, list) or not isinstance(defaults, dict):
        return
    kept = []
    for hook in hooks:
        key = MOVED_HOOKS.get(hook.get('type')) \
            if isinstance(hook, dict) else None
        if key is None or key in defaults:
            kept.append(hook)
        else:
            defaults[key] = hook
    if len(kept) < len(hooks):
        cfg['custom_hooks'] = kept
        if not kept:
            cfg.pop('custom_hooks')


def config_differences(expected, record, tested: bool) -> List[str]:
    """What differs between the config compared and a run's record.

    Ignored: :data:`RUN_ONLY_KEYS`, ``load_from`` of a resumed run and
    ``load_strict = True`` (the default). For a ``tools/test.py`` result
    (``tested``) also its ``load_from`` (checked apart), ``randomness``
    (a test draws nothing) and the hooks of its drawings. A run recorded
    before the start-up check hooks moved from ``custom_hooks`` to
    ``default_hooks`` (:data:`MOVED_HOOKS`) has the same hooks.

    Returns:
        list[str]: ``key: value here, value in the run`` per difference.
    """
    here, run = _plain(expected.to_dict()), _plain(record.to_dict())
    for cfg in (here, run):
        _hooks_as_now(cfg)
    ignored = list(RUN_ONLY_KEYS)
    if run.get('resume') or tested:
        ignored.append('load_from')
    if tested:
        ignored.append('randomness')
        hooks = [
            h for h in run.get('custom_hooks') or []
            if not (isinstance(h, dict) and h.get('type') in DRAWING_HOOKS)
        ]
        if hooks or 'custom_hooks' in here:
            run['custom_hooks'] = hooks
        else:
            run.pop('custom_hooks', None)
    for cfg in (here, run):
        for key in ignored:
            cfg.pop(key, None)
        if cfg.get('load_strict', True) is True:
            cfg.pop('load_strict', None)
    return [
        f'{key}: {_short(a)} here, {_short(b)} in the run'
        for key, a, b in _differences(here, run)
    ]


def _short(value, width: int = 60) -> str:
    text = repr(value) if value != '<unset>' else 'unset'
    return text if len(text) <= width else text[:width - 3] + '...'


def finished_result(
        config: str,
        work_dir: str,
        expected,
        label: Optional[str] = None,
        trust_retested: bool = False,
        tests_of: Optional[str] = None) -> Tuple[Optional[dict], str]:
    """The metrics of the finished run of ``expected`` in ``work_dir``.

    The latest evaluation decides: a training's last validation counts
    when it is at the final epoch (iteration), a ``tools/test.py``
    result when it tested the final checkpoint in ``work_dir`` itself
    (compared as real paths; a relative ``load_from`` is read from the
    current directory, as ``tools/test.py`` was given it); either only
    with the config the run recorded equal to ``expected``.

    A checkpoint elsewhere may have been trained by any experiment that
    named its folder alike (another learning rate, another tree): a
    folder name says nothing of what trained it. It is read only with
    ``trust_retested`` (``--trust-retested``: the user vouches for it), and
    then still only from a folder named as ``work_dir``.

    With ``tests_of``, ``work_dir`` holds the ``tools/test.py`` results of
    the final checkpoint of the run in ``tests_of`` (e.g. with the test
    set changed by ``--cfg-options``): its latest evaluation must be a
    test of that checkpoint (real paths), and one not started after the
    latest run in ``tests_of`` (its stamp not later) is stale (that run
    may have written the checkpoint again): testing again gives the
    result.

    Args:
        config (str): The config file (for messages).
        work_dir (str): The run's work dir.
        expected (mmengine.Config): The merged config of the run.
        label (str, optional): The config, seed and options in messages
            (default: ``config``).
        trust_retested (bool): Also read a test of a final checkpoint
            outside ``work_dir``, in a folder of the same name. Defaults
            to False.
        tests_of (str, optional): The work dir of the run whose final
            checkpoint ``work_dir``'s tests test; None (the default) for
            a run of its own.

    Returns:
        tuple[dict | None, str]: The metrics, or None and why there are
        none yet (missing, unfinished): training would give them.

    Raises:
        ValueError: The run is of another config, lacks a record of its
            config, or was re-tested on another checkpoint than the final
            one in its work dir (in ``tests_of``; or is a training there):
            training would not make it a result.
    """
    label = label or config
    unit, final = final_step(expected, config)
    found = evaluations(work_dir)
    if not found:
        return None, ('no validation metrics (the run is missing or has '
                      'not validated yet)')
    stamp, kind, metrics = found[-1]
    record = config_record(work_dir, stamp, config)
    name = final_checkpoint(unit, final)
    if tests_of is not None:
        if kind != 'test':
            raise ValueError(
                f'{work_dir}: its latest evaluation ({stamp}) is a training, '
                f'not a tools/test.py result: it holds the tests of '
                f'{osp.join(tests_of, name)} only. Give another --work-dir, '
                f'or remove {stamp}')
        why = _test_of(work_dir, stamp, record.get('load_from'), tests_of,
                       name, label)
        if why:
            return None, why
    elif kind == 'test':
        checkpoint = record.get('load_from')
        if not isinstance(checkpoint, str) or \
                osp.basename(checkpoint) != name:
            raise ValueError(
                f'{work_dir}: its latest evaluation ({stamp}, tools/test.py) '
                f'tested {checkpoint!r}, not the final checkpoint {name} of '
                f'{label}; re-test that one, or remove {stamp}')
        # The final checkpoint of this run, not of another seed's run:
        # tools/test.py CONFIG a_seed0/epoch_N.pth --work-dir a_seed1
        # would put seed 0's result in seed 1's row.
        folder = osp.basename(osp.dirname(osp.normpath(checkpoint)))
        if folder != osp.basename(osp.normpath(work_dir)):
            raise ValueError(
                f'{work_dir}: its latest evaluation ({stamp}, tools/test.py) '
                f'tested {checkpoint!r}, the final checkpoint of another '
                f'run (folder {folder!r}), not of {label}; re-test '
                f'{osp.join(work_dir, name)}, or remove {stamp}')
        # ... and of this experiment: a folder of the same name elsewhere
        # may hold another experiment's run.
        own = osp.realpath(osp.dirname(checkpoint)) == osp.realpath(work_dir)
        if not own and not trust_retested:
            raise ValueError(
                f'{work_dir}: its latest evaluation ({stamp}, tools/test.py) '
                f'tested {checkpoint!r}, outside this work dir: which '
                f'experiment trained it cannot be told from its folder '
                f'name. Re-test {osp.join(work_dir, name)}, or pass '
                f'--trust-retested if that checkpoint is the final one of '
                f'{label}')
        if not own:
            print(
                f'{work_dir}: reading the test ({stamp}) of {checkpoint}, '
                'outside this work dir (--trust-retested)',
                file=sys.stderr)
    elif metrics.get('step') != final:
        return None, (f'unfinished: its last validation ({stamp}) is at '
                      f'{unit} {metrics.get("step")} of {final}')
    differences = config_differences(expected, record, kind == 'test')
    if differences:
        shown = '; '.join(differences[:6])
        more = len(differences) - 6
        raise ValueError(
            f'{work_dir}: its run ({stamp}) was '
            f'{"tested" if kind == "test" else "trained"} with another '
            f'config than {label}: {shown}' +
            (f'; and {more} more' if more > 0 else '') +
            '. Give another --work-dir, or remove the run to train it '
            'again')
    return metrics, ''


def final_checkpoint(unit: str, final: int) -> str:
    """The file name of a run's final checkpoint (``epoch_81.pth``), from
    :func:`final_step`."""
    return f'{"epoch" if unit == "epoch" else "iter"}_{final}.pth'


def _test_of(work_dir: str, stamp: str, checkpoint, tests_of: str, name: str,
             label: str) -> str:
    """Check that the test ``stamp`` in ``work_dir`` is of the final
    checkpoint ``name`` of the run in ``tests_of`` (see
    :func:`finished_result`).

    Returns:
        str: Why it is stale ('' when it is not): a later run in
        ``tests_of`` may have written the checkpoint again.

    Raises:
        ValueError: It tested another checkpoint.
    """
    wanted = osp.join(tests_of, name)
    if not isinstance(checkpoint, str) or \
            osp.basename(checkpoint) != name or \
            osp.realpath(osp.dirname(checkpoint)) != osp.realpath(tests_of):
        raise ValueError(
            f'{work_dir}: its latest evaluation ({stamp}, tools/test.py) '
            f'tested {checkpoint!r}, not {wanted}, the final checkpoint of '
            f'{label}; give another --work-dir, or remove {stamp}')
    runs = sorted(d for d in os.listdir(tests_of) if STAMP.match(d)) \
        if osp.isdir(tests_of) else []
    if runs and stamp <= runs[-1]:
        return (f'stale: its test ({stamp}) is not later than the run '
                f'({runs[-1]}) in {tests_of}, which may have written '
                f'{name} again')
    return ''


def run_dir(work_dir: str, name: str, seed: int) -> str:
    """The work dir of the run ``name`` with ``seed`` (:func:`run`)."""
    return osp.join(work_dir, f'{name}_seed{seed}')


def needs_training(config: str, seed: int, args) -> bool:
    """Whether :func:`run` would train the run of ``config`` and ``seed``:
    it is missing or unfinished and ``--no-train`` is not given (a work
    dir :func:`run` refuses is left to it to say so)."""
    if args.no_train:
        return False
    name = osp.splitext(osp.basename(config))[0]
    work_dir = run_dir(args.work_dir, name, seed)
    expected = expected_config(config, seed, args.cfg_options)
    try:
        metrics, _ = finished_result(config, work_dir, expected, config,
                                     getattr(args, 'trust_retested', False))
    except ValueError:
        return False
    return metrics is None


def run(config: str,
        seed: int,
        args,
        name: Optional[str] = None,
        tests_of: Optional[str] = None) -> dict:
    """The metrics of one finished run, trained first when it is not.

    The run is ``<args.work_dir>/<name>_seed<seed>``; see
    :func:`finished_result` for what counts as finished.

    Args:
        config (str): The config file.
        seed (int): The seed.
        args: ``work_dir``, ``cfg_options`` (``key=value`` strings) and
            ``no_train`` (a run that is not finished is an error).
        name (str, optional): The run's name; defaults to the config's
            file name without ``.py``.
        tests_of (str, optional): The work dir of a finished run: this
            run is then ``tools/test.py`` of its final checkpoint (with
            ``args.cfg_options``, e.g. another test set), tested when it
            is not (see :func:`finished_result`).

    Returns:
        dict: The metrics of its final evaluation.

    Raises:
        ValueError: The work dir holds a run it cannot read as this one
            (:func:`finished_result`).
        FileNotFoundError: With ``no_train``, the run is missing or
            unfinished.
        RuntimeError: The training (test) failed or gave no final
            validation.
    """
    name = name or osp.splitext(osp.basename(config))[0]
    work_dir = run_dir(args.work_dir, name, seed)
    expected = expected_config(config, seed, args.cfg_options)
    label = f'{config} (seed {seed}' + (
        f', --cfg-options {" ".join(args.cfg_options)})'
        if args.cfg_options else ')')
    trust = getattr(args, 'trust_retested', False)
    metrics, why = finished_result(config, work_dir, expected, label, trust,
                                   tests_of)
    if metrics is not None:
        return metrics
    if tests_of is None:
        what, cmd = 'training', [
            sys.executable,
            osp.join(REPO, 'tools', 'train.py'), config
        ]
    else:
        checkpoint = osp.join(tests_of,
                              final_checkpoint(*final_step(expected, config)))
        what, cmd = 'test', [
            sys.executable,
            osp.join(REPO, 'tools', 'test.py'), config, checkpoint
        ]
    cmd += [
        '--work-dir', work_dir, '--cfg-options', f'randomness.seed={seed}'
    ] + args.cfg_options
    if args.no_train:
        raise FileNotFoundError(
            f'{work_dir}: {why}, and --no-train is set; '
            f'{"train" if tests_of is None else "test"} it with: '
            f'{" ".join(cmd)}')
    print(' '.join(cmd), flush=True)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (REPO, env.get('PYTHONPATH')) if p)
    try:
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError as error:
        raise RuntimeError(
            f'{work_dir}: the {what} of {label} failed (exit status '
            f'{error.returncode}; its error is above, its log in '
            f'{work_dir}): {" ".join(cmd)}') from error
    metrics, why = finished_result(config, work_dir, expected, label, trust,
                                   tests_of)
    if metrics is None:
        raise RuntimeError(f'{work_dir}: {why} after {what}; does its '
                           'config validate at the end?')
    return metrics


#: What :func:`run` raises for a run it cannot read or train.
RUN_ERRORS = (ValueError, FileNotFoundError, RuntimeError)


def runs_of(config: str, seeds: Sequence[int], args) -> dict:
    """``{seed: metrics}`` of the runs of ``config`` (:func:`run`), for
    a tool's ``main()``: a run that cannot be read or trained ends the
    tool with ``error: ...`` (exit status 1), as its other errors do, not
    with a traceback.

    Args:
        config (str): The config file.
        seeds (Sequence[int]): The seeds.
        args: As for :func:`run`.

    Returns:
        dict: The metrics of each seed's final evaluation.
    """
    try:
        return {seed: run(config, seed, args) for seed in seeds}
    except RUN_ERRORS as error:
        raise SystemExit(f'error: {error}')


def targets_of(metrics: dict) -> List[str]:
    """The top-level targets of a run's metrics (``d3`` of ``d3/R1``)."""
    return sorted({k.split('/')[0] for k in metrics if '/' in k})


def _loop_mean(loop) -> Optional[str]:
    """The prefix of the mean over targets a loop config logs, if any.

    A multi-target loop (a config with ``targets``) logs the mean over
    its targets under its ``aggregate_prefix``: the config's, else the
    loop class's default (``mean``); ``None`` logs none.
    """
    import inspect

    from mmreid.registry import LOOPS
    if not isinstance(loop, dict) or 'targets' not in loop:
        return None
    if 'aggregate_prefix' in loop:
        prefix = loop['aggregate_prefix']
    else:
        loop_class = LOOPS.get(loop.get('type'))
        parameter = inspect.signature(loop_class).parameters.get(
            'aggregate_prefix') if loop_class is not None else None
        prefix = parameter.default if parameter is not None else None
    return prefix if isinstance(prefix, str) else None


def loop_means(cfg) -> Optional[Tuple[str, ...]]:
    """The prefixes of the means over targets the config's loops log.

    Only the multi-target loops' ``aggregate_prefix`` (:func:`_loop_mean`
    of ``val_cfg`` and ``test_cfg``) is a mean; no other prefix is,
    whatever it logs (a user's metric ``my`` beside ``reid`` is a second
    metric of one target, not a mean over targets).

    Args:
        cfg (mmengine.Config): A run's merged config.

    Returns:
        tuple[str, ...] | None: The prefixes, each once (none for a loop
        with ``aggregate_prefix=None``); None when neither loop is a
        multi-target one, so the run's prefixes are its metrics'.
    """
    loops = [cfg.get('val_cfg'), cfg.get('test_cfg')]
    if not any(isinstance(loop, dict) and 'targets' in loop for loop in loops):
        return None
    found = (_loop_mean(loop) for loop in loops)
    return tuple(dict.fromkeys(p for p in found if p is not None))


class _Untold(Exception):
    """A config that does not tell what its run will log."""


def _metric_prefixes_of(evaluator) -> List[Optional[str]]:
    """The prefix of each metric of an evaluator config, in order, as the
    metric derives it from its arguments (mmreid's metrics:
    ``key_prefix``, e.g. ``regdb-<direction>``; others: ``prefix``, else
    the class's ``default_prefix``, as mmengine's ``BaseMetric``).

    Raises:
        _Untold: A metric is no config, or its class is not registered.
    """
    from mmreid.registry import METRICS
    if isinstance(evaluator, dict) and 'metrics' in evaluator:
        evaluator = evaluator['metrics']  # mmengine's Evaluator form
    metrics = evaluator if isinstance(evaluator,
                                      (list, tuple)) else [evaluator]
    prefixes = []
    for metric in metrics:
        if not isinstance(metric, dict) or not metric:
            raise _Untold
        metric_class = METRICS.get(metric.get('type'))
        if metric_class is None:
            raise _Untold
        options = {k: v for k, v in metric.items() if k != 'type'}
        if hasattr(metric_class, 'key_prefix'):
            prefixes.append(metric_class.key_prefix(**options))
        else:
            prefixes.append(
                options.get('prefix')
                or getattr(metric_class, 'default_prefix', None))
    return prefixes


def validation_keys(cfg) -> Optional[List[str]]:
    """The prefixes of the keys a run's validations log, from its config.

    A multi-target ``val_cfg`` logs ``<target>/`` for a target with one
    metric, ``<target>/<metric prefix>/`` for each of several, and its
    mean (``mean/``, :func:`_loop_mean`); another loop logs
    ``<metric prefix>/`` for each metric of ``val_evaluator``.

    Args:
        cfg (mmengine.Config): A run's merged config.

    Returns:
        list[str] | None: The prefixes, each ending in ``/``; None where
        the config does not tell (no evaluator, a metric class that is
        not registered).
    """
    loop = cfg.get('val_cfg')
    try:
        if not (isinstance(loop, dict) and 'targets' in loop):
            return [
                f'{p}/' for p in _metric_prefixes_of(cfg.get('val_evaluator'))
                if p
            ]
        keys = []
        for target in loop['targets']:
            prefixes = _metric_prefixes_of(target.get('evaluator'))
            keys += [f'{target.get("name")}/'] if len(prefixes) == 1 else [
                f'{target.get("name")}/{p}/' for p in prefixes if p
            ]
    except _Untold:
        return None
    return keys + [f'{p}/' for p in (_loop_mean(loop), ) if p is not None]


def check_planned_target(cfg, config: str, target: Optional[str]) -> None:
    """Refuse, before training, a run whose metrics ``target`` will not
    tell apart (see :func:`run_target`), from its config.

    Raises:
        ValueError: As :func:`run_target` would after training; nothing
            when the config does not tell (:func:`validation_keys`).
    """
    keys = validation_keys(cfg)
    if keys is None:
        return
    if target is not None and not any(
            k.startswith(f'{target}/') for k in keys):
        # A distance mode (d3/mnet) is the metric's to log: check d3.
        target = target.split('/')[0]
    run_target(
        dict.fromkeys(keys), target,
        f'{config} (its val_cfg and val_evaluator, before training)',
        'give --target with one of them', loop_means(cfg))


def plan_runs(configs: Sequence[str], args) -> dict:
    """Read each config before any run is trained, for a tool's
    ``main()``: a config that cannot be read, or whose runs to train would
    log metrics ``args.target`` does not pick from
    (:func:`check_planned_target`), ends the tool with ``error: ...``.

    Args:
        configs (Sequence[str]): The config files.
        args: As for :func:`run`, and ``target``.

    Returns:
        dict: config -> the prefixes of the means over targets its loops
        log (:func:`loop_means`).
    """
    means = {}
    for config in configs:
        try:
            cfg = expected_config(config, args.seeds[0], args.cfg_options)
        except RUN_ERRORS as error:
            raise SystemExit(f'error: {error}')
        means[config] = loop_means(cfg)
        if any(needs_training(config, seed, args) for seed in args.seeds):
            try:
                check_planned_target(cfg, config, args.target)
            except ValueError as error:
                raise SystemExit(f'error: {error}')
    return means


def aggregates_of(metrics: dict,
                  means: Optional[Sequence[str]] = None) -> List[str]:
    """The top-level names of ``targets_of`` that are means over targets:
    those of ``means`` (:func:`loop_means`) the run logs."""
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
    run did not log that metric."""
    prefix = run_target(metrics, target, where)
    return metrics.get(f'{prefix}/{name}') if prefix is not None else None


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


def describe_test_set(prefix: str, value) -> str:
    """A :func:`test_set` value for messages: ``2102 queries
    (d3/num_query)``, or for an aggregate prefix the targets it averages
    with their queries."""
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
        dict: seed -> test set, for the runs that log one.

    Raises:
        ValueError: Two seeds were evaluated on different test sets; it
            names both, per seed.
    """
    found = {
        seed: test_set(metrics, prefix, means)
        for seed, metrics in runs.items()
        if test_set(metrics, prefix, means) is not None
    }
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
            sets; names both.
    """
    (name_a, prefix_a, sets_a), (name_b, prefix_b, sets_b) = a, b
    for seed in sorted(sets_a.keys() & sets_b.keys()):
        if sets_a[seed] != sets_b[seed]:
            raise ValueError(
                f'{name_b} (seed {seed}) was evaluated on '
                f'{describe_test_set(prefix_b, sets_b[seed])}, {name_a} on '
                f'{describe_test_set(prefix_a, sets_a[seed])}: different '
                'test sets are not paired')


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
    its count) have been evaluated on the same test set (:func:`test_set`:
    ``<prefix>/num_query``, or for ``mean`` the targets averaged and
    their counts): otherwise a mean over seeds would mix test sets.

    Args:
        rows (list): ``(config, {seed: metrics})`` per config.
        target (str, optional): ``--target``.
        means (dict, optional): config -> the prefixes of the means over
            targets its loops log (:func:`loop_means`).

    Returns:
        dict: config -> its prefix (None when its runs have none).

    Raises:
        ValueError: See :func:`run_target`; or a config's runs differ in
            prefix or number of queries.
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


def key_label(prefixes: dict) -> str:
    """The keys read, for the first header cell."""
    found = set(prefixes.values())
    if len(found) == 1:
        prefix = found.pop()
        return f'key {prefix}/<metric>' if prefix else 'key <metric>'
    return 'key <target>/<metric>, target per row'


def row_label(config: str, prefixes: dict) -> str:
    name = osp.basename(config)
    if len(set(prefixes.values())) > 1:
        name += f' ({prefixes[config]})'
    return name


def paired_table(rows: list,
                 baseline: str,
                 args,
                 prefixes: dict,
                 means: Optional[dict] = None) -> str:
    """Markdown table of paired differences against ``baseline``;
    ``means`` as in :func:`check_targets`.

    Raises:
        ValueError: A config was evaluated on another test set than the
            baseline (another target, or another number of queries).
    """
    means = means or {}
    runs_of = dict(rows)
    base = runs_of[baseline]
    base_prefix = prefixes[baseline]
    header = (f'| config - {osp.basename(baseline)} '
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
            a = test_set(base[seed], base_prefix, means.get(baseline))
            b = test_set(runs[seed], base_prefix, means.get(config))
            if a is not None and b is not None and a != b:
                raise ValueError(
                    f'{config} (seed {seed}) was evaluated on '
                    f'{describe_test_set(base_prefix, b)}, the baseline '
                    f'{baseline} on {describe_test_set(base_prefix, a)}: '
                    'different test sets are not paired')
        cells, used = [], []
        for metric in args.metrics:
            pairs = [(pick(base[s], metric,
                           base_prefix), pick(runs[s], metric, base_prefix))
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
        lines.append(f'| {row_label(config, prefixes)} | ' +
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
    rows = []
    for config in args.configs:
        rows.append((config, runs_of(config, args.seeds, args)))
    try:
        prefixes = check_targets(rows, args.target, means)
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
        lines.append(f'| {row_label(config, prefixes)} | ' +
                     ' | '.join(cells) + f' | {"; ".join(per_seed)} |')
    table = '\n'.join(lines)
    if args.baseline:
        try:
            table += '\n\n' + paired_table(rows, args.baseline, args, prefixes,
                                           means)
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
