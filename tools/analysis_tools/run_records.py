"""What a run's work dir records: its evaluations and the config it ran.

Every training or ``tools/test.py`` run in a work dir is a timestamp
folder (:data:`STAMP`). Read here: the last evaluation of each
(:func:`evaluations`, :func:`last_validation`), the merged config a run
recorded (:func:`config_record`) and what it differs in from the config
compared (:func:`config_differences`), the final step and checkpoint of
a config's run (:func:`final_step`, :func:`final_checkpoint`), and
whether the work dir holds the finished run of a config
(:func:`finished_result`). Nothing is trained here: ``run_plans.run``
trains (or tests) a run that is missing or unfinished.
"""
import json
import os
import os.path as osp
import re
import sys
from typing import Iterator, List, Optional, Tuple


def last_validation(work_dir: str) -> dict:
    """Metrics of the last evaluation logged in ``work_dir`` ({} if none).

    A training run logs its validations in ``<stamp>/vis_data/
    scalars.json``; ``tools/test.py CONFIG CHECKPOINT --work-dir DIR``
    writes its metrics to ``<stamp>/<stamp>.json``. Both are read
    (:func:`evaluations`), the latest stamp last. It does not check that
    the run finished or which config it ran: :func:`finished_result`
    does, for :func:`run_plans.run`.
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
#: The timestamp folders, one per run started: mmengine's
#: ``%Y%m%d_%H%M%S``, with ``_N`` where runs started in one second
#: (:func:`mmreid.engine.runner.work_dir_lock.claim_log_stamp`).
STAMP = re.compile(r'^\d{8}_\d{6}(_[1-9]\d*)?$')


def stamp_order(stamp: str) -> Tuple[str, int]:
    """Sort key of a :data:`STAMP` folder: the time, then the ``_N`` of
    runs started in the same second (``_10`` after ``_9``)."""
    time, _, number = stamp[:15], stamp[15:16], stamp[16:]
    return time, int(number or 0)


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

    Raises:
        ValueError: A line of a log is not JSON (a run killed while
            writing it), naming the file, the line and the run's folder.
    """
    found = []
    stamps = sorted((d for d in (
        os.listdir(work_dir) if osp.isdir(work_dir) else [])
                     if STAMP.match(d) and osp.isdir(osp.join(work_dir, d))),
                    key=stamp_order)
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
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise ValueError(
                            f'{path} line {number} is not JSON '
                            f'({error.msg}): a run killed while writing its '
                            'log leaves its last line cut. Move the run\'s '
                            f'folder {osp.join(work_dir, stamp)} out of the '
                            'work dir, or train that seed again') from error
                    if isinstance(record, dict) and any('/' in k
                                                        for k in record):
                        last = record
            if last is not None:
                found.append((stamp, kind, last))
    return found


def training_before(work_dir: str, stamp: str) -> Optional[str]:
    """The latest training run in ``work_dir`` started before ``stamp``.

    A training logs its losses in ``<stamp>/vis_data/scalars.json`` (a
    ``tools/test.py`` run logs none there).

    Returns:
        str | None: Its stamp; None when there is none.
    """
    before = [
        d for d in (os.listdir(work_dir) if osp.isdir(work_dir) else [])
        if STAMP.match(d) and stamp_order(d) < stamp_order(stamp)
    ]
    for candidate in sorted(before, key=stamp_order, reverse=True):
        if logs_losses(work_dir, candidate):
            return candidate
    return None


def scalar_records(work_dir: str, stamp: str) -> Iterator[dict]:
    """The records the run ``stamp`` logged in
    ``<stamp>/vis_data/scalars.json`` (none without the file; a cut line is
    skipped)."""
    path = osp.join(work_dir, stamp, 'vis_data', 'scalars.json')
    if not osp.isfile(path):
        return
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                yield record


def logs_losses(work_dir: str, stamp: str) -> bool:
    """Whether the run ``stamp`` is a training: it logged a loss in
    ``<stamp>/vis_data/scalars.json``."""
    return any('loss' in r for r in scalar_records(work_dir, stamp))


def reached_step(work_dir: str, stamp: str, unit: str, final: int) -> bool:
    """Whether the training ``stamp`` logged its final step: a validation
    at ``final`` or, for an epoch-based run, a training line of epoch
    ``final`` (the run that wrote the final checkpoint did).

    Args:
        work_dir (str): The run's work dir.
        stamp (str): The training's timestamp folder.
        unit (str): ``'epoch'`` or ``'iteration'`` (:func:`final_step`).
        final (int): The final step.
    """
    for record in scalar_records(work_dir, stamp):
        if 'loss' not in record and record.get('step') == final:
            return True
        if unit == 'epoch' and 'loss' in record and \
                record.get('epoch') == final:
            return True
    return False


def config_record(work_dir: str, stamp: str, config: str):
    """The merged config the run ``stamp`` recorded.

    ``<stamp>/vis_data/config.py`` (mmengine's ``LocalVisBackend``), or
    for the latest run, a training, the config copy it wrote into the work
    dir (a ``tools/test.py`` run keeps a training's copy there).

    Raises:
        ValueError: Neither is there.
    """
    from mmreid.utils.config import read_config
    path = osp.join(work_dir, stamp, 'vis_data', 'config.py')
    if osp.isfile(path):
        return read_config(path)
    latest = max((d for d in os.listdir(work_dir) if STAMP.match(d)),
                 key=stamp_order)
    dumped = osp.join(work_dir, osp.basename(config))
    if stamp == latest and osp.isfile(dumped) and logs_losses(
            work_dir, stamp):
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
    with the config the run recorded equal to ``expected``, and a test
    only with the training before it in ``work_dir``
    (:func:`training_before`), which wrote the checkpoint, of
    ``expected`` too (seed included).

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
        else:
            _check_trained_as(work_dir, stamp, expected, config, name, label)
    elif metrics.get('step') != final:
        return None, (f'unfinished: its last validation ({stamp}) is at '
                      f'{unit} {metrics.get("step")} of {final}')
    else:
        check_no_later_final(work_dir, stamp, unit, final, name)
    differences = config_differences(expected, record, kind == 'test')
    if differences:
        raise ValueError(
            f'{work_dir}: its run ({stamp}) was '
            f'{"tested" if kind == "test" else "trained"} with another '
            f'config than {label}: {_shown_differences(differences)}. Give '
            'another --work-dir, or remove the run to train it again')
    return metrics, ''


def check_no_later_final(work_dir: str, stamp: str, unit: str, final: int,
                         name: str) -> None:
    """Refuse a training whose final checkpoint a later training rewrote.

    A second training into the work dir that reached the final step but
    logged no validation (stopped during it, or ``--no-validate``) left
    the first run's final validation the latest record, while
    ``name`` and ``last_checkpoint`` are its own: a tool that reads the
    metrics of the one and the checkpoint of the other (``gap_effect.py``,
    a re-test by ``regdb_trials.py``) showed numbers of two models side by
    side. A later training cut off before the final step wrote no ``name``
    and is not refused here.

    Raises:
        ValueError: Names both runs and the checkpoint.
    """
    later = [
        d for d in os.listdir(work_dir)
        if STAMP.match(d) and stamp_order(d) > stamp_order(stamp)
        and logs_losses(work_dir, d) and reached_step(work_dir, d, unit,
                                                      final)
    ]
    if later:
        last = max(later, key=stamp_order)
        raise ValueError(
            f'{work_dir}: the training {last} started after the run '
            f'{stamp} whose final validation is read, reached {unit} '
            f'{final} and wrote {name} again without a validation of its '
            f'own: the metrics and the checkpoint would be of two models. '
            f'Remove {last} and train the run again, or give another '
            '--work-dir')


def _check_trained_as(work_dir: str, stamp: str, expected, config: str,
                      name: str, label: str) -> None:
    """Check that the training that wrote ``work_dir``'s final checkpoint
    ``name``, re-tested by ``stamp``, is of ``expected``: the test's
    record has the config it was tested with, which says nothing of the
    config (learning rate, seed) the weights were trained with.

    Raises:
        ValueError: No training before the test, or the latest one was
            trained with another config; names the differences.
    """
    trained = training_before(work_dir, stamp)
    if trained is None:
        raise ValueError(
            f'{work_dir}: its latest evaluation ({stamp}, tools/test.py) '
            f'tested {name}, but the work dir holds no training before it: '
            f'which config trained that checkpoint cannot be told. Train '
            f'{label} there again, or remove {stamp}')
    unit, final = final_step(expected, config)
    if not reached_step(work_dir, trained, unit, final):
        # A training cut off before the end, after the one that wrote the
        # checkpoint: the latest training is not the checkpoint's.
        raise ValueError(
            f'{work_dir}: its latest evaluation ({stamp}, tools/test.py) '
            f'tested {name}, but the latest training before it, {trained}, '
            f'stopped before {unit} {final} and did not write that file: '
            'which run trained it, with which config, cannot be told. '
            f'Remove {trained} (a cut-off run) if the checkpoint is of the '
            'training before it, or train the config there again')
    differences = config_differences(
        expected, config_record(work_dir, trained, config), False)
    if differences:
        raise ValueError(
            f'{work_dir}: its latest evaluation ({stamp}, tools/test.py) '
            f'tested {name}, trained by the run {trained} with another '
            f'config than {label}: {_shown_differences(differences)}; a '
            're-test does not make it a result of this config. Give '
            'another --work-dir, or remove the runs to train it again')


def _shown_differences(differences: List[str]) -> str:
    """The first six differences of :func:`config_differences`, then how
    many more there are."""
    more = len(differences) - 6
    return '; '.join(differences[:6]) + (f'; and {more} more'
                                         if more > 0 else '')


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
    runs = sorted((d for d in os.listdir(tests_of) if STAMP.match(d)),
                  key=stamp_order) if osp.isdir(tests_of) else []
    if runs and stamp_order(stamp) <= stamp_order(runs[-1]):
        return (f'stale: its test ({stamp}) is not later than the run '
                f'({runs[-1]}) in {tests_of}, which may have written '
                f'{name} again')
    return ''
