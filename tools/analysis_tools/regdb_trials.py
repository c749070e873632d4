"""RegDB's number: the mean over its ten trials' models, both directions.

RegDB's protocol trains one model per trial (the ten 206/206 identity
splits, 1..10) and reports CMC, mAP and mINP averaged over the ten
models, in both directions: visible -> thermal (visible queries) and
thermal -> visible (the same features, the other modality queried).
For each trial of ``--trials`` this tool reads (or trains) the run of
CONFIG with that trial, ``WORK_DIR/<config name>_trial<T>_seed<S>``,
trained with ``--cfg-options train_dataloader.dataset.trial=T
val_dataloader.dataset.trial=T test_dataloader.dataset.trial=T`` as
``compare_configs.py`` trains a seed's run (same rules for a finished
run, a run of another config, ``--no-train``). The run's final
validation gives the config's direction; the other direction is
``tools/test.py`` of the same final checkpoint with
``test_dataloader.dataset.direction`` and ``test_evaluator.direction``
flipped, into ``WORK_DIR/<config name>_trial<T>_<direction>_seed<S>``
(read when it is a test of that checkpoint started after the training,
tested again when not)::

    python tools/analysis_tools/regdb_trials.py \\
        configs/mbn/agw_r50_1xb64-81e_regdb-v2t.py \\
        --work-dir work_dirs/agw_regdb --out agw_regdb.md

The table has one row per trial and direction (R1, R10, R20, mAP, mINP
of the keys ``regdb-<direction>/<metric>``) and, per direction, the
mean ± population std over the trials (the spread of the ten models;
``(n=K)`` when fewer than ten trials are given). Both directions are
the default, as the protocol reports both; ``--directions v2t`` gives
one. A config whose datasets are not ``RegDB``, a trial outside 1..10
or given twice, ``--cfg-options`` that set a trial or a direction (the
tool sets them), a run of another trial (its recorded config differs)
and runs whose metric keys differ are errors.
"""
import argparse
import os.path as osp
import sys
from typing import Callable, Dict, List, Sequence

from mmreid.datasets import RegDB

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from compare_configs import add_table_arguments, show_table  # noqa
from paired_stats import mean_cell  # noqa
from run_plans import RUN_ERRORS  # noqa
from run_plans import DistinctSeeds  # noqa
from run_plans import add_run_arguments  # noqa
from run_plans import expected_config  # noqa
from run_plans import run  # noqa
from run_plans import run_dir  # noqa

#: RegDB's trials, 1..10.
TRIALS = tuple(range(1, RegDB.NUM_TRIALS + 1))
#: Visible -> thermal (visible queries; RegDB's default) and thermal ->
#: visible.
DIRECTIONS = RegDB.DIRECTIONS
METRICS = ('R1', 'R10', 'R20', 'mAP', 'mINP')
#: The datasets a trial's run sets the trial of.
TRIAL_DATASETS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
#: The settings the tool gives every run; ``--cfg-options`` may not.
TOOL_SETTINGS = ('trial', 'direction')


class DistinctTrials(DistinctSeeds):
    """``--trials``: each of RegDB's trials (1..10) once."""
    noun = 'trial'

    def __call__(self, parser, namespace, values, option_string=None):
        outside = [t for t in values if t not in TRIALS]
        if outside:
            parser.error(
                f'{option_string} {" ".join(map(str, values))}: trial(s) '
                f'{", ".join(map(str, outside))} outside 1..{len(TRIALS)}; '
                f'RegDB has {len(TRIALS)} trials')
        super().__call__(parser, namespace, values, option_string)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='a RegDB config')
    parser.add_argument(
        '--trials',
        nargs='+',
        type=int,
        default=list(TRIALS),
        action=DistinctTrials,
        help='the trials averaged, each once (default: 1..10)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='the runs\' randomness.seed (default: 0)')
    add_run_arguments(parser, 'work_dirs/regdb_trials', seeds=False)
    parser.add_argument(
        '--directions',
        nargs='+',
        choices=DIRECTIONS,
        default=list(DIRECTIONS),
        help='the directions tabulated (default: both, as the protocol '
        'reports)')
    add_table_arguments(parser, METRICS)
    args = parser.parse_args(argv)
    args.directions = list(dict.fromkeys(args.directions))
    return args


def trial_options(trial: int) -> List[str]:
    """The ``--cfg-options`` of the run of ``trial``."""
    return [f'{key}.dataset.trial={trial}' for key in TRIAL_DATASETS]


def flip_options(direction: str) -> List[str]:
    """The ``--cfg-options`` of ``tools/test.py`` that test ``direction``
    (the shipped configs' ``test_dataloader = val_dataloader`` is a copy
    once merged: the validation keeps its direction)."""
    return [
        f'test_dataloader.dataset.direction={direction}',
        f'test_evaluator.direction={direction}'
    ]


def check_options(cfg_options: Sequence[str]) -> None:
    """Refuse ``--cfg-options`` that set what the tool sets per run.

    Raises:
        ValueError: An option sets a ``trial`` or a ``direction``.
    """
    for option in cfg_options:
        key = option.split('=')[0]
        if key.split('.')[-1] in TOOL_SETTINGS:
            raise ValueError(
                f'--cfg-options {option}: the tool sets every run\'s trial '
                '(--trials) and tests both directions (--directions); '
                'leave it out')


def trained_direction(cfg, config: str) -> str:
    """The direction of the config's validation, checked to be RegDB's.

    Args:
        cfg (mmengine.Config): The merged config of a trial's run.
        config (str): Its file, for messages.

    Returns:
        str: ``'v2t'`` or ``'t2v'``.

    Raises:
        ValueError: A dataloader's dataset is not ``RegDB``.
    """
    for key in TRIAL_DATASETS:
        dataset = (cfg.get(key) or {}).get('dataset') or {}
        if dataset.get('type') != 'RegDB':
            raise ValueError(
                f'{config}: {key}.dataset is of type '
                f'{dataset.get("type")!r}, not RegDB: the mean over RegDB '
                'trials is of models trained and tested on RegDB trials; '
                'give a RegDB config (configs/mbn/*regdb*.py)')
    return cfg.val_dataloader.dataset.get('direction', DIRECTIONS[0])


def run_name(config: str, trial: int) -> str:
    """The name of the run of ``trial`` (``run``)."""
    return f'{osp.splitext(osp.basename(config))[0]}_trial{trial}'


def work_dir_of(args, trial: int, direction: str, trained: str) -> str:
    """The work dir of the results of ``trial`` in ``direction``: the
    run's own for the ``trained`` direction, else its test's."""
    name = run_name(args.config, trial)
    return run_dir(args.work_dir,
                   name if direction == trained else f'{name}_{direction}',
                   args.seed)


def trial_results(config: str, trial: int, direction: str, args) -> dict:
    """``{direction: metrics}`` of the model of ``trial``: its final
    validation (``direction``) and, where asked, its test in the other
    direction; trained and tested when not done (``run``)."""
    name = run_name(config, trial)
    options = args.cfg_options + trial_options(trial)
    found = {direction: run(config, args.seed, given(args, options), name)}
    for other in args.directions:
        if other != direction:
            found[other] = run(
                config,
                args.seed,
                given(args, options + flip_options(other)),
                f'{name}_{other}',
                tests_of=run_dir(args.work_dir, name, args.seed))
    return found


def given(args, cfg_options: List[str]) -> argparse.Namespace:
    """``args`` with other ``cfg_options`` (``run``'s)."""
    return argparse.Namespace(**dict(vars(args), cfg_options=cfg_options))


def keys_of(metrics: dict, direction: str) -> List[str]:
    """The keys of ``direction`` in a run's metrics."""
    return sorted(k for k in metrics if k.startswith(f'regdb-{direction}/'))


def check_keys(results: Dict[int, dict], direction: str,
               metrics: Sequence[str], where: Callable[[int], str]) -> None:
    """Refuse runs that lack a metric or differ in their keys.

    Args:
        results (dict): trial -> the metrics of ``direction``.
        direction (str): ``'v2t'`` or ``'t2v'``.
        metrics (Sequence[str]): The metrics tabulated.
        where (Callable): trial -> its run's work dir, for messages.

    Raises:
        ValueError: A run lacks ``regdb-<direction>/<metric>``, or its keys
            differ from the first trial's; names both.
    """
    first = next(iter(results))
    expected = keys_of(results[first], direction)
    for trial, found in results.items():
        keys = keys_of(found, direction)
        missing = [
            f'regdb-{direction}/{m}' for m in metrics
            if f'regdb-{direction}/{m}' not in found
        ]
        if missing:
            raise ValueError(
                f'{where(trial)}: no {", ".join(missing)} in '
                f'its last evaluation; it logs '
                f'{", ".join(sorted(k for k in found if "/" in k))}. '
                f'Expected RegDBMetric(direction={direction!r}) keys')
        if keys != expected:
            only_here = sorted(set(keys) - set(expected))
            only_there = sorted(set(expected) - set(keys))
            raise ValueError(
                f'{where(trial)}: its {direction} keys differ '
                f'from those of trial {first} '
                f'({where(first)}): only here '
                f'{", ".join(only_here) or "none"}; only there '
                f'{", ".join(only_there) or "none"}. A mean over trials is '
                'of one metric: evaluate every trial alike')


def table(results: Dict[int, dict], directions: Sequence[str],
          metrics: Sequence[str], seed: int) -> str:
    """Markdown table: a row per trial and direction, then per direction
    the mean ± population std over the trials (:func:`mean_cell`).

    Args:
        results (dict): trial -> direction -> metrics.
        directions (Sequence[str]): The directions, in table order.
        metrics (Sequence[str]): The metrics, in column order.
        seed (int): The runs' seed, for the header.

    Returns:
        str: The table.
    """
    lines = [
        f'| trial (seed {seed}; key regdb-<direction>/<metric>) | '
        'direction | ' + ' | '.join(metrics) + ' |',
        '|---' * (len(metrics) + 2) + '|'
    ]
    for direction in directions:
        for trial, found in results.items():
            lines.append(f'| {trial} | {direction} | ' + ' | '.join(
                f'{found[direction][f"regdb-{direction}/{m}"]:.1f}'
                for m in metrics) + ' |')
        cells = [
            mean_cell([
                found[direction][f'regdb-{direction}/{m}']
                for found in results.values()
            ], len(TRIALS)) for m in metrics
        ]
        lines.append(f'| mean ± std over trials | {direction} | ' +
                     ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    try:
        check_options(args.cfg_options)
        cfg = expected_config(args.config, args.seed,
                              args.cfg_options + trial_options(args.trials[0]))
        direction = trained_direction(cfg, args.config)
        results = {
            trial: trial_results(args.config, trial, direction, args)
            for trial in args.trials
        }
        for other in args.directions:
            of_other = {
                trial: found[other]
                for trial, found in results.items()
            }
            check_keys(of_other, other, args.metrics,
                       lambda t: work_dir_of(args, t, other, direction))
    except RUN_ERRORS as error:
        raise SystemExit(f'error: {error}')
    text = table(results, args.directions, args.metrics, args.seed)
    show_table(text, args.out)


if __name__ == '__main__':
    main()
