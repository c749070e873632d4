"""Plan and train the runs of configs over seeds.

A run is ``tools/train.py CONFIG`` with one seed (and ``--cfg-options``)
in ``<work dir>/<run name>_seed<seed>`` (:func:`run_dir`; the run name is
the config's file name without ``.py``, under the shortest parent path
that tells apart configs of one file name in different folders,
:func:`run_names`): :func:`run`
gives its final metrics, training (or testing) it first when its work
dir holds no finished run (``run_records.finished_result``), and
:func:`runs_of` does so per seed for a tool's ``main()``. Before any run
is trained, :func:`plan_runs` reads each config: the keys its
validations will log (:func:`validation_keys`, :func:`loop_means`) must
let ``--target`` pick one prefix (:func:`check_planned_target`). The
run options the comparing tools share are :func:`add_run_arguments`.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from run_records import final_checkpoint, final_step, finished_result  # noqa
from run_targets import run_target  # noqa

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


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


def run_dir(work_dir: str, name: str, seed: int) -> str:
    """The work dir of the run ``name`` with ``seed`` (:func:`run`)."""
    return osp.join(work_dir, f'{name}_seed{seed}')


def run_names(configs: Sequence[str]) -> Dict[str, str]:
    """The run name of each config, for its work dirs and its label.

    A config's name is its file name without the extension (``tiny``);
    configs of one file name in different folders are named with the
    shortest parent path that tells them apart (``a/tiny`` and
    ``c/tiny``: runs ``<work dir>/a/tiny_seed<seed>``), so that neither
    trains into nor reads the other's runs. The same file under two
    spellings (``./a.py``, ``a.py``) is one config of one name.

    Args:
        configs (Sequence[str]): The config files.

    Returns:
        dict[str, str]: config (as given) -> its run name.
    """
    # real path -> the folders and the name of its first spelling's
    # absolute path
    paths = {}
    for config in configs:
        real = osp.realpath(config)
        if real not in paths:
            folders = osp.dirname(osp.abspath(config)).split(os.sep)
            stem = osp.splitext(osp.basename(config))[0]
            paths[real] = [p for p in folders if p] + [stem]

    def named(real: str, depth: int) -> str:
        """The name under the last ``depth`` folders of ``real``."""
        return '/'.join(paths[real][-1 - depth:])

    names = {}
    for real, path in paths.items():
        same = [r for r in paths if r != real and paths[r][-1] == path[-1]]
        # The fewest folders that tell it from the others, else all of
        # them (/a/x.py beside /b/a/x.py: a/x and b/a/x).
        names[real] = '/'.join(path)
        for depth in range(len(path)):
            if all(named(real, depth) != named(r, depth) for r in same):
                names[real] = named(real, depth)
                break
    return {config: names[osp.realpath(config)] for config in configs}


def needs_training(config: str,
                   seed: int,
                   args,
                   name: Optional[str] = None) -> bool:
    """Whether :func:`run` would train the run of ``config`` and ``seed``
    (``name`` as there): it is missing or unfinished and ``--no-train`` is
    not given (a work dir :func:`run` refuses is left to it to say so)."""
    if args.no_train:
        return False
    name = name or osp.splitext(osp.basename(config))[0]
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
    :func:`run_records.finished_result` for what counts as finished.

    Args:
        config (str): The config file.
        seed (int): The seed.
        args: ``work_dir``, ``cfg_options`` (``key=value`` strings) and
            ``no_train`` (a run that is not finished is an error).
        name (str, optional): The run's name (:func:`run_names`);
            defaults to the config's file name without ``.py``.
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


def runs_of(config: str,
            seeds: Sequence[int],
            args,
            name: Optional[str] = None) -> dict:
    """``{seed: metrics}`` of the runs of ``config`` (:func:`run`), for
    a tool's ``main()``: a run that cannot be read or trained ends the
    tool with ``error: ...`` (exit status 1), as its other errors do, not
    with a traceback.

    Args:
        config (str): The config file.
        seeds (Sequence[int]): The seeds.
        args: As for :func:`run`.
        name (str, optional): The run name, as for :func:`run` (the
            tool's :func:`run_names` of all its configs).

    Returns:
        dict: The metrics of each seed's final evaluation.
    """
    try:
        return {seed: run(config, seed, args, name) for seed in seeds}
    except RUN_ERRORS as error:
        raise SystemExit(f'error: {error}')


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
    tell apart (see :func:`run_targets.run_target`), from its config.

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
        configs (Sequence[str]): The config files, all those of the tool
            (their runs are named by :func:`run_names`).
        args: As for :func:`run`, and ``target``.

    Returns:
        dict: config -> the prefixes of the means over targets its loops
        log (:func:`loop_means`).
    """
    means = {}
    names = run_names(configs)
    for config in configs:
        try:
            cfg = expected_config(config, args.seeds[0], args.cfg_options)
        except RUN_ERRORS as error:
            raise SystemExit(f'error: {error}')
        means[config] = loop_means(cfg)
        if any(
                needs_training(config, seed, args, names[config])
                for seed in args.seeds):
            try:
                check_planned_target(cfg, config, args.target)
            except ValueError as error:
                raise SystemExit(f'error: {error}')
    return means
