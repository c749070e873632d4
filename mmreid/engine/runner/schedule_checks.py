"""Learning-rate schedules that mmengine would follow otherwise than written.

``ReIDRunner.build_param_scheduler`` refuses, before the first iteration:

* in an ``IterBasedTrainLoop``, a scheduler stepped by epochs
  (``by_epoch=True``): mmengine's ``ParamSchedulerHook`` steps it after
  each epoch, and this loop ends its only epoch after its last iteration,
  so the schedule never moves; and one converted from epochs without an
  ``end`` (mmengine ends it after the loop's one "epoch" of
  ``len(train_dataloader)`` iterations);
* a ``LinearLR``, ``ConstantLR`` or ``PolyLR`` (and their momentum and
  generic ``*ParamScheduler`` forms) whose span ``end - begin`` is a single
  step, e.g. a one-epoch warm-up with ``convert_to_iter_based=True`` when
  an epoch has one iteration: mmengine moves them in ``end - begin - 1``
  steps, so they never reach their end value and the rest of the run keeps
  the first one;
* with gradient accumulation (``optim_wrapper.accumulative_counts=k``),
  a scheduler counted in iterations (``by_epoch=False``, or converted)
  whose values change over a span ``end - begin`` of at most k
  iterations: ``ParamSchedulerHook`` steps it every iteration, the
  weights change once every k, so at most one update falls within it
  (a warm-up of 3 iterations with k=4 was never applied).
"""
from typing import Any, List, Optional, Tuple

from mmengine.optim.scheduler.param_scheduler import (ConstantParamScheduler,
                                                      LinearParamScheduler,
                                                      PolyParamScheduler)
from mmengine.runner import IterBasedTrainLoop

from .resume_checks import scheduler_label

#: (label, built scheduler, its config dict or None).
Entry = Tuple[str, Any, Optional[dict]]


def _per_optimizer(schedulers: Any) -> dict:
    """``{optimizer name or '': list}`` of a ``param_scheduler`` value."""
    if isinstance(schedulers, dict) and 'type' not in schedulers:
        return {
            name: _per_optimizer(items)['']
            for name, items in schedulers.items()
        }
    if isinstance(schedulers, (list, tuple)):
        return {'': list(schedulers)}
    return {'': [] if schedulers is None else [schedulers]}


def labelled_schedulers(built: Any, configs: Any = None) -> List[Entry]:
    """The built schedulers with their config and a label for messages.

    Args:
        built (list | dict): What ``Runner.build_param_scheduler`` returns:
            a list, or a dict of lists per optimizer.
        configs (list | dict, optional): The ``param_scheduler`` they were
            built from; one list for all optimizers, or one per optimizer.

    Returns:
        list[tuple]: ``(label, scheduler, config)`` in order, the label
        from :func:`~.resume_checks.scheduler_label`
        (``param_scheduler[0]``, ``param_scheduler['name'][0]``);
        ``config`` is None where it is not a dict (a scheduler given
        built).
    """
    built = _per_optimizer(built)
    configs = _per_optimizer(configs)
    entries = []
    for name, schedulers in built.items():
        items = configs.get(name, configs.get('', []))
        for i, scheduler in enumerate(schedulers):
            config = items[i] if i < len(items) and len(items) == len(
                schedulers) else None
            entries.append((scheduler_label(name, i), scheduler,
                            config if isinstance(config, dict) else None))
    return entries


def check_schedulers_step(loop: Any, entries: List[Entry],
                          steps_per_epoch: int) -> None:
    """Refuse schedulers counted in epochs of an ``IterBasedTrainLoop``.

    Args:
        loop: The built training loop; other loops are not checked.
        entries (list[tuple]): :func:`labelled_schedulers`.
        steps_per_epoch (int): ``len(train_dataloader)``, for the message.

    Raises:
        ValueError: A scheduler with ``by_epoch=True``, or one converted
            from epochs without an ``end`` that stops before
            ``max_iters``; names it and the fix.
    """
    if not isinstance(loop, IterBasedTrainLoop):
        return
    fix = ('Write it with by_epoch=False and begin, end and milestones in '
           'iterations, or keep epochs with convert_to_iter_based=True and '
           f'an explicit end (an epoch is len(train_dataloader) = '
           f'{steps_per_epoch} iterations).')
    for label, scheduler, config in entries:
        kind = type(scheduler).__name__
        # ReduceOnPlateau is stepped after each validation (mmengine allows
        # it with by_epoch=True only), in either loop.
        if scheduler.by_epoch and not getattr(scheduler, 'need_val_args',
                                              False):
            raise ValueError(
                f'{label} ({kind}) is stepped by epochs (by_epoch=True), but '
                f'train_cfg is an IterBasedTrainLoop (max_iters='
                f'{loop.max_iters}): mmengine steps such a scheduler after '
                'each epoch, and this loop ends its only epoch after its '
                f'last iteration, so the {scheduler.param_name} schedule '
                f'would never move from its first value. {fix}')
        converted = config is not None and config.get('convert_to_iter_based',
                                                      False)
        if converted and 'end' not in config \
                and scheduler.end < loop.max_iters:
            raise ValueError(
                f'{label} ({kind}) is converted from epochs '
                '(convert_to_iter_based=True) without an `end`, in an '
                'IterBasedTrainLoop: mmengine ends it after the loop\'s one '
                f'epoch, at iteration {scheduler.end} of {loop.max_iters}, '
                'so its later epochs (milestones) would never come. '
                f'{fix}')


def _stuck(scheduler) -> Optional[str]:
    """What a one-step ``scheduler`` never does, or None if it works."""
    if isinstance(scheduler, LinearParamScheduler):
        if scheduler.start_factor != scheduler.end_factor:
            return (f'its factor stays at start_factor='
                    f'{scheduler.start_factor} and never reaches end_factor='
                    f'{scheduler.end_factor}')
    elif isinstance(scheduler, ConstantParamScheduler):
        if scheduler.factor != 1:
            return (f'its factor={scheduler.factor} is applied and never '
                    'undone')
    elif isinstance(scheduler, PolyParamScheduler):
        if any(value != scheduler.eta_min for value in scheduler.base_values):
            return (f'it never decays to eta_min={scheduler.eta_min} and '
                    'stays at its start value')
    return None


def check_schedulers_reach_their_end(entries: List[Entry],
                                     steps_per_epoch: int,
                                     loader: str = '') -> None:
    """Refuse a Linear, Constant or Poly scheduler spanning one step.

    mmengine's ``LinearParamScheduler``, ``ConstantParamScheduler`` and
    ``PolyParamScheduler`` move in ``end - begin - 1`` steps (their
    ``total_iters``): with ``end - begin == 1`` they take their first value
    and the span is over, so the end value (``end_factor``, the undone
    ``factor``, ``eta_min``) never comes. Schedulers of other types, and
    these with two steps or more, work.

    Args:
        entries (list[tuple]): :func:`labelled_schedulers`.
        steps_per_epoch (int): ``len(train_dataloader)``.
        loader (str): What decided ``steps_per_epoch``, for the message.

    Raises:
        ValueError: Naming the scheduler, its span (and the steps per
            epoch where it was converted from epochs) and the fix.
    """
    for label, scheduler, config in entries:
        if scheduler.end - scheduler.begin != 1:
            continue
        stuck = _stuck(scheduler)
        if stuck is None:
            continue
        kind = type(scheduler).__name__
        unit = 'epoch' if scheduler.by_epoch else 'iteration'
        span = f'begin={scheduler.begin}, end={scheduler.end} ({unit}s)'
        converted = not scheduler.by_epoch and config is not None \
            and config.get('convert_to_iter_based', False)
        more = ''
        if converted:
            span = (f'epochs {config.get("begin", 0)} to {config.get("end")}'
                    f' converted to iterations {scheduler.begin} to '
                    f'{scheduler.end} with len(train_dataloader) = '
                    f'{steps_per_epoch} step per epoch{loader}')
            more = (', or more steps per epoch (a larger training set, '
                    'fewer processes or a smaller batch)')
        raise ValueError(
            f'{label} ({kind}) spans a single {unit} ({span}): mmengine\'s '
            f'{kind} moves in end - begin - 1 = 0 steps, so {stuck}; the '
            f'rest of the run would keep that {scheduler.param_name}. Make '
            'it span at least 2 steps: end - begin >= 2 epochs, or '
            f'by_epoch=False with end - begin >= 2 iterations{more}.')


def _constant_over_span(scheduler) -> bool:
    """Whether ``scheduler`` gives one value over its whole span (a
    ``LinearLR`` with ``start_factor == end_factor``, a ``ConstantLR``
    with ``factor=1``, a ``PolyLR`` already at ``eta_min``)."""
    if isinstance(scheduler, LinearParamScheduler):
        return scheduler.start_factor == scheduler.end_factor
    if isinstance(scheduler, ConstantParamScheduler):
        return scheduler.factor == 1
    if isinstance(scheduler, PolyParamScheduler):
        return all(value == scheduler.eta_min
                   for value in scheduler.base_values)
    return False


def check_schedulers_span_updates(entries: List[Entry]) -> None:
    """Refuse an iteration schedule shorter than one accumulated update.

    mmengine's ``ParamSchedulerHook`` steps the schedulers after every
    iteration, but with ``optim_wrapper.accumulative_counts=k`` the
    weights change once every k iterations, each update at the rate of
    its last iteration. A scheduler counted in iterations whose span
    ``end - begin`` is at most k has at most one update within it, so its
    schedule (a warm-up of 3 iterations with k=4) is never applied.
    Epoch schedulers, spans of more than k iterations and schedulers that
    keep one value over their span are accepted.

    Args:
        entries (list[tuple]): :func:`labelled_schedulers`; each
            scheduler's ``optimizer`` is the optimizer wrapper whose
            ``accumulative_counts`` applies.

    Raises:
        ValueError: Naming the scheduler, its span, ``accumulative_counts``
            and the fix.
    """
    for label, scheduler, config in entries:
        counts = getattr(scheduler.optimizer, '_accumulative_counts', 1)
        span = scheduler.end - scheduler.begin
        if counts <= 1 or scheduler.by_epoch or span > counts \
                or _constant_over_span(scheduler):
            continue
        kind = type(scheduler).__name__
        converted = config is not None and config.get('convert_to_iter_based',
                                                      False)
        origin = (f'epochs {config.get("begin", 0)} to {config.get("end")} '
                  'converted to ' if converted else '')
        raise ValueError(
            f'{label} ({kind}) spans {span} iteration'
            f'{"s" if span > 1 else ""} ({origin}begin={scheduler.begin}, '
            f'end={scheduler.end}), not more than optim_wrapper.'
            f'accumulative_counts={counts}: mmengine steps the schedulers '
            f'every iteration but the weights change once every {counts} '
            'iterations, each update at the rate of its last iteration, so '
            'at most one update falls within it and its '
            f'{scheduler.param_name} schedule would not be applied. Count '
            f'it in updates: make end - begin {counts} x the updates it '
            f'should cover (e.g. end={scheduler.begin + span * counts}), or '
            'train without accumulation.')
