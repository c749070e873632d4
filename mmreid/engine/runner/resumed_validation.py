"""The validation a resumed run runs again before it trains.

A checkpoint is written before its step's validation (mmengine's
``CheckpointHook.after_train_epoch``, then the loop validates), so a run
stopped during that validation left it undone, and its best checkpoint
chosen without it. :class:`~mmreid.engine.runner.ReIDRunner` registers
:class:`ResumedValidationHook` where :func:`resumed_step_validated` says
the resumed step is one the schedule validates.
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


def resumed_step_validated(runner) -> Optional[str]:
    """The step a run resumed at (``'epoch 3'``, ``'iteration
    400'``) where the training loop validates after it, as its
    ``run`` decides; else None."""
    from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
    loop = runner._train_loop
    if runner._val_loop is None or runner._resumed_from is None:
        return None
    if isinstance(loop, EpochBasedTrainLoop):
        unit, step, last = 'epoch', loop.epoch, loop.max_epochs
    elif isinstance(loop, IterBasedTrainLoop):
        unit, step, last = 'iteration', loop.iter, loop.max_iters
    else:
        return None
    loop._decide_current_val_interval()
    if step > 0 and step >= loop.val_begin and (
            step % loop.val_interval == 0 or step == last):
        return f'{unit} {step}'
    return None
