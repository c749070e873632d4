"""The validation a resumed run runs again before it trains.

A checkpoint is written before its step's validation (mmengine's
``CheckpointHook.after_train_epoch``, then the loop validates), so a run
stopped during that validation left it undone, and its best checkpoint
chosen without it. :class:`~mmreid.engine.runner.ReIDRunner` registers
:class:`ResumedValidationHook` where :func:`resumed_step_validated` says
the resumed step is one the schedule validates and its checkpoint was
written before that validation.

Some checkpoints are written after it: mmengine's ``CheckpointHook`` with
``save_best`` writes ``epoch_N.pth`` again after a new best, once the
schedulers have stepped on epoch N's validation (``ReduceOnPlateauLR``), and
an iteration checkpoint inside an epoch follows the validation of the epoch
before. Validating such a step again handed the same numbers to the
schedulers a second time (a plateau scheduler counted one more validation
without improvement). :class:`ValidatedStepHook` records in the
checkpoint's ``meta['validated']`` whether its step's validation had run;
a checkpoint that says so is not validated again.
"""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log


class ResumedValidationHook(Hook):
    """Runs again the validation of the step a run resumes from (see
    :meth:`ReIDRunner.load_or_resume`), after the other hooks'
    ``before_train``, as the training loop ran it after that step: a
    checkpoint is written before its step's validation, so a run stopped
    during that validation left it undone."""

    def __init__(self, checkpoint: str, step: str, last: bool) -> None:
        self.checkpoint = checkpoint
        self.step = step
        self.last = last

    def before_train(self, runner) -> None:
        where = ('is at the end of the schedule' if self.last else
                 f'is at {self.step}, which the schedule validates')
        print_log(
            f'{self.checkpoint} {where}: validating it again (a checkpoint '
            'is written before its validation, which a run stopped during '
            'it did not finish; a finished one gives the same numbers).',
            logger='current')
        runner.val_loop.run()


#: The ``meta`` key of a training checkpoint that says whether the
#: validation of its step (``meta['epoch']`` of an epoch-based loop,
#: ``meta['iter']`` of an iteration-based one) had run when it was saved.
VALIDATED_META_KEY = 'validated'


def _loop_step(runner, loop=None) -> Optional[tuple]:
    """``(unit, meta key, step)`` of mmengine's training loop of
    ``runner``: the step its validation comes after; None for another
    loop."""
    from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
    loop = runner._train_loop if loop is None else loop
    if isinstance(loop, EpochBasedTrainLoop):
        return 'epoch', 'epoch', loop.epoch
    if isinstance(loop, IterBasedTrainLoop):
        return 'iteration', 'iter', loop.iter
    return None


class ValidatedStepHook(Hook):
    """Records in each checkpoint a training saves whether the validation
    of the checkpoint's step had run (``meta['validated']``, see
    :data:`VALIDATED_META_KEY`).

    The step validated is taken in ``after_val_epoch``, before the
    ``CheckpointHook`` (``VERY_LOW``) saves a best checkpoint there, hence
    the ``VERY_HIGH`` priority.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self.validated = None

    def after_val_epoch(self, runner, metrics=None) -> None:
        step = _loop_step(runner)
        self.validated = None if step is None else step[1:]

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        step = _loop_step(runner)
        meta = checkpoint.get('meta')
        if step is None or not isinstance(meta, dict):
            return
        key = step[1]
        meta[VALIDATED_META_KEY] = self.validated == (key, meta.get(key))


def resumed_step_validated(runner) -> Optional[str]:
    """The step a run resumed at (``'epoch 3'``, ``'iteration
    400'``) where the training loop validates after it, as its
    ``run`` decides, and whose validation its checkpoint was saved
    before; else None.

    A checkpoint whose ``meta['validated']`` is true was saved after that
    validation (by :class:`ValidatedStepHook`): it is not validated again,
    with a log line. One without the key (an earlier release's) is.
    """
    if runner._val_loop is None or runner._resumed_from is None:
        return None
    found = _loop_step(runner)
    if found is None:
        return None
    unit, _, step = found
    loop = runner._train_loop
    last = loop.max_epochs if unit == 'epoch' else loop.max_iters
    loop._decide_current_val_interval()
    if not (step > 0 and step >= loop.val_begin and
            (step % loop.val_interval == 0 or step == last)):
        return None
    meta = getattr(runner, 'resumed_meta', None) or {}
    if meta.get(VALIDATED_META_KEY) is True:
        print_log(
            f'{runner._resumed_from} was saved after the validation of '
            f"{unit} {step} (meta['{VALIDATED_META_KEY}']): it is not "
            'validated again, so the schedulers (ReduceOnPlateauLR) and '
            'the best checkpoint count that validation once.',
            logger='current')
        return None
    return f'{unit} {step}'
