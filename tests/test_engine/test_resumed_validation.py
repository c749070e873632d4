"""Which resumed step is validated again, as mmengine's loops decide.

``test_resume_checks`` resumes real runs (an epoch the interval validates,
one it does not, the finished run); these cases, on mmengine's loops with
the attributes their ``__init__`` sets, cover the rest of the rule: the
last step whatever the interval, ``dynamic_intervals``, iteration-based
loops and step 0.
"""
from types import SimpleNamespace

import pytest
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from mmengine.runner.utils import calc_dynamic_intervals

from mmreid.engine.runner.resumed_validation import (ResumedValidationHook,
                                                     ValidatedStepHook,
                                                     resumed_step_validated)


def loop_at(loop_type, step, last, val_interval, val_begin=1,
            dynamic_intervals=None):
    """A ``loop_type`` resumed at ``step`` of ``last``, without the
    runner and dataloader its ``__init__`` builds."""
    loop = object.__new__(loop_type)
    if loop_type is EpochBasedTrainLoop:
        loop._epoch, loop._max_epochs = step, last
    else:
        loop._iter, loop._max_iters = step, last
    loop.val_interval, loop.val_begin = val_interval, val_begin
    loop.dynamic_milestones, loop.dynamic_intervals = calc_dynamic_intervals(
        val_interval, dynamic_intervals)
    return loop


def validated(loop, val_loop=True, resumed_from='epoch_1.pth', meta=None):
    runner = SimpleNamespace(
        _train_loop=loop,
        _val_loop=object() if val_loop else None,
        _resumed_from=resumed_from,
        resumed_meta=meta)
    return resumed_step_validated(runner)


@pytest.mark.parametrize('loop_type,unit', [(EpochBasedTrainLoop, 'epoch'),
                                            (IterBasedTrainLoop, 'iteration')
                                            ])
def test_the_steps_the_loop_validates_are_validated_again(loop_type, unit):
    # Multiples of the interval, from val_begin on.
    assert validated(loop_at(loop_type, 4, 10, 2)) == f'{unit} 4'
    assert validated(loop_at(loop_type, 3, 10, 2)) is None
    assert validated(loop_at(loop_type, 2, 10, 2, val_begin=3)) is None
    # The last step whatever the interval: a run stopped during the final
    # validation never had it.
    assert validated(loop_at(loop_type, 10, 10, 3)) == f'{unit} 10'
    # Nothing before the first step, even with val_begin=0.
    assert validated(loop_at(loop_type, 0, 10, 1, val_begin=0)) is None
    # No validation loop, or a start that resumed nothing.
    assert validated(loop_at(loop_type, 4, 10, 2), val_loop=False) is None
    assert validated(loop_at(loop_type, 4, 10, 2), resumed_from=None) is None


def test_dynamic_intervals_decide_as_the_loop_does():
    """From epoch 2 on every epoch is validated (interval 1): epoch 3 is,
    which the base interval 4 would not validate."""
    loop = loop_at(EpochBasedTrainLoop, 3, 9, 4, dynamic_intervals=[(2, 1)])
    assert validated(loop) == 'epoch 3'
    loop = loop_at(EpochBasedTrainLoop, 3, 9, 1, dynamic_intervals=[(2, 4)])
    assert validated(loop) is None


def test_the_hook_validates_and_says_why(monkeypatch):
    from mmreid.engine.runner import resumed_validation
    runs, logged = [], []
    monkeypatch.setattr(resumed_validation, 'print_log',
                        lambda message, **kwargs: logged.append(message))
    runner = SimpleNamespace(
        val_loop=SimpleNamespace(run=lambda: runs.append(1)))
    ResumedValidationHook('epoch_1.pth', 'epoch 1',
                          last=False).before_train(runner)
    ResumedValidationHook('epoch_2.pth', 'epoch 2',
                          last=True).before_train(runner)
    assert runs == [1, 1]
    assert logged[0].startswith(
        'epoch_1.pth is at epoch 1, which the schedule validates: '
        'validating it again')
    assert logged[1].startswith(
        'epoch_2.pth is at the end of the schedule: validating it again')


@pytest.mark.parametrize('loop_type,unit', [(EpochBasedTrainLoop, 'epoch'),
                                            (IterBasedTrainLoop, 'iteration')
                                            ])
def test_the_first_validated_step_val_begin_is_validated_again(
        loop_type, unit):
    """mmengine's loops validate from ``val_begin`` on, that step included:
    a run stopped during the validation of step ``val_begin`` (the first
    one of its schedule) would resume with it never run, and its best
    checkpoint chosen without it."""
    assert validated(loop_at(loop_type, 3, 10, 1, val_begin=3)) == f'{unit} 3'
    assert validated(loop_at(loop_type, 4, 10, 2, val_begin=4)) == f'{unit} 4'
    # One step earlier is not validated by the schedule.
    assert validated(loop_at(loop_type, 3, 10, 1, val_begin=4)) is None


@pytest.mark.parametrize('loop_type,unit,key', [
    (EpochBasedTrainLoop, 'epoch', 'epoch'),
    (IterBasedTrainLoop, 'iteration', 'iter'),
])
def test_a_checkpoint_saved_after_its_validation_is_not_validated_again(
        loop_type, unit, key):
    """``save_best`` writes ``epoch_N.pth`` again after a new best, once
    the schedulers have stepped on that validation: validating it again
    would count it twice (ReduceOnPlateauLR). ``meta['validated']`` says
    which save came after the validation of the checkpoint's step."""
    hook = ValidatedStepHook()
    runner = SimpleNamespace(_train_loop=loop_at(loop_type, 3, 10, 1))

    def saved(step):
        checkpoint = dict(meta={key: step})
        hook.before_save_checkpoint(runner, checkpoint)
        return checkpoint['meta']

    # Step 4's checkpoint written before its validation (the loop counts
    # step 3 done, the checkpoint step 4), then validated and written again.
    assert saved(4)['validated'] is False
    runner._train_loop = loop_at(loop_type, 4, 10, 1)
    hook.after_val_epoch(runner, {})
    assert saved(4)['validated'] is True
    # The next step's first save is before its validation.
    assert saved(5)['validated'] is False
    loop = loop_at(loop_type, 4, 10, 1)
    assert validated(loop, meta=dict(validated=True)) is None
    assert validated(loop, meta=dict(validated=False)) == f'{unit} 4'
    # A checkpoint of an earlier release, without the record.
    assert validated(loop, meta={}) == f'{unit} 4'
