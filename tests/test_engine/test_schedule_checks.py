"""The runner refuses a learning-rate schedule mmengine would not follow.

mmengine steps ``by_epoch=True`` schedulers only after an epoch, which an
``IterBasedTrainLoop`` ends after its last iteration, and moves its
``LinearLR``/``ConstantLR``/``PolyLR`` in ``end - begin - 1`` steps, none
for a span of one step: in both cases the run trained on silently at the
first value of the schedule.
"""
import itertools

import pytest
import torch
from mmengine.config import Config
from mmengine.optim.scheduler import (ConstantLR, CosineAnnealingLR, LinearLR,
                                      MultiStepLR, PolyLR)

from mmreid.engine.runner import ReIDRunner
from mmreid.engine.runner.schedule_checks import (
    check_schedulers_reach_their_end, check_schedulers_step,
    labelled_schedulers)
from ..fixtures.tiny_config import write_tiny_config

_RUNS = itertools.count()

#: The tiny config's training loop replaced by an iteration-based one; the
#: start-up checks switched off, which must not switch these off.
ITER_LOOP = '''
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters={},
                 val_interval=100)
default_hooks = dict(setup_check=None, checkpoint=dict(by_epoch=False))
'''

#: One step per epoch: the 8 identities of the tiny set in one batch of
#: 8 x 8 images (no identity has more than 8: one group each, and
#: IdentitySampler.num_steps = ceil(8 groups / 8) = 1).
ONE_STEP_EPOCH = '''
train_dataloader['batch_size'] = 64
train_dataloader['sampler'] = dict(type='IdentitySampler', batch_size=64,
                                   num_instances=8)
'''


def build_runner(config, work_dir):
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'schedule_checks_{next(_RUNS)}'
    return ReIDRunner.from_cfg(cfg)


def test_epoch_schedulers_in_an_iteration_loop_are_refused(
        tmp_path, synth_root):
    """The tiny config's MultiStepLR (by_epoch=True) would never step."""
    config = write_tiny_config(tmp_path / 'iter.py', synth_root,
                               ITER_LOOP.format(20))
    runner = build_runner(config, tmp_path / 'run')
    with pytest.raises(ValueError) as info:
        runner.train()
    message = str(info.value)
    assert 'param_scheduler[1] (MultiStepLR) is stepped by epochs' in message
    assert 'IterBasedTrainLoop (max_iters=20)' in message
    assert 'by_epoch=False' in message and 'convert_to_iter_based' in message
    assert runner.iter == 0


def test_reduce_on_plateau_in_an_iteration_loop_is_not_refused(
        tmp_path, synth_root):
    """mmengine allows ReduceOnPlateauLR with by_epoch=True only and steps
    it after each validation, in either loop: it was refused as a
    scheduler 'stepped by epochs' (the review's reproducer)."""
    plateau = ITER_LOOP.format(4) + '''
param_scheduler = [
    dict(type='ReduceOnPlateauLR', monitor='reid/mAP', rule='greater',
         patience=0, factor=0.5, by_epoch=True),
]
'''
    config = write_tiny_config(tmp_path / 'plateau.py', synth_root, plateau)
    runner = build_runner(config, tmp_path / 'run')
    runner.train()
    assert runner.iter == 4


def test_converted_scheduler_without_end_in_an_iteration_loop(
        tmp_path, synth_root):
    """Converted without `end`, mmengine ends it after one 'epoch'."""
    converted = ITER_LOOP.format(20) + '''
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[2], gamma=0.1,
         convert_to_iter_based=True),
]
'''
    config = write_tiny_config(tmp_path / 'conv.py', synth_root, converted)
    with pytest.raises(ValueError) as info:
        build_runner(config, tmp_path / 'run').train()
    assert 'param_scheduler[1] (MultiStepLR) is converted from epochs' \
        in str(info.value)
    assert 'at iteration 5 of 20' in str(info.value)


def test_iteration_schedulers_in_an_iteration_loop_train(tmp_path, synth_root):
    written = ITER_LOOP.format(3) + '''
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2),
    dict(type='MultiStepLR', by_epoch=True, milestones=[2], gamma=0.1,
         begin=0, end=4, convert_to_iter_based=True),
]
'''
    config = write_tiny_config(tmp_path / 'ok.py', synth_root, written)
    runner = build_runner(config, tmp_path / 'run')
    runner.train()
    assert runner.iter == 3


def test_one_step_warm_up_is_refused(tmp_path, synth_root):
    """The tiny config's one-epoch warm-up over 1 iteration stays at
    start_factor for the whole run."""
    config = write_tiny_config(tmp_path / 'one.py', synth_root, ONE_STEP_EPOCH)
    runner = build_runner(config, tmp_path / 'run')
    with pytest.raises(ValueError) as info:
        runner.train()
    message = str(info.value)
    assert 'param_scheduler[0] (LinearLR) spans a single iteration' \
        in message
    assert 'epochs 0 to 1 converted to iterations 0 to 1 with ' \
        'len(train_dataloader) = 1 step per epoch (IdentitySampler, ' \
        'batch_size 64, 1 process)' in message
    assert 'start_factor=0.1' in message and 'end - begin >= 2' in message
    assert runner.iter == 0


def built(kind, begin, end, **kwargs):
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return kind(optimizer, begin=begin, end=end, by_epoch=False, **kwargs)


@pytest.mark.parametrize('kind,kwargs', [
    (LinearLR, dict(start_factor=0.1)),
    (LinearLR, dict(start_factor=1.0, end_factor=0.5)),
    (ConstantLR, dict(factor=0.5)),
    (PolyLR, dict(eta_min=0.0)),
])
def test_one_step_linear_constant_poly_are_refused(kind, kwargs):
    """A one-step LinearLR decay (start_factor 1 to end_factor 0.5)
    stays at its start as a one-step warm-up does."""
    entries = labelled_schedulers([built(kind, 3, 4, **kwargs)])
    with pytest.raises(
            ValueError,
            match=rf'param_scheduler\[0\] '
            rf'\({kind.__name__}\) spans a single iteration '
            r'\(begin=3, end=4 \(iterations\)\)'):
        check_schedulers_reach_their_end(entries, 10)
    # Two steps reach the end value.
    check_schedulers_reach_their_end(
        labelled_schedulers([built(kind, 3, 5, **kwargs)]), 10)


def test_one_step_poly_of_several_groups_is_refused():
    """A group already at eta_min does not make the others decay."""
    optimizer = torch.optim.SGD([{
        'params': [torch.nn.Parameter(torch.zeros(1))],
        'lr': 0.0
    }, {
        'params': [torch.nn.Parameter(torch.zeros(1))],
        'lr': 1.0
    }])
    poly = PolyLR(optimizer, begin=0, end=1, by_epoch=False, eta_min=0.0)
    with pytest.raises(ValueError, match='never decays to eta_min=0.0'):
        check_schedulers_reach_their_end(labelled_schedulers([poly]), 1)


@pytest.mark.parametrize(
    'scheduler',
    [
        # One step of these is their formula's first value, as for more.
        lambda: built(MultiStepLR, 0, 1, milestones=[1]),
        lambda: built(CosineAnnealingLR, 0, 1, eta_min=0.0),
        # No change to make.
        lambda: built(LinearLR, 0, 1, start_factor=1.0),
        lambda: built(ConstantLR, 0, 1, factor=1.0),
        lambda: built(PolyLR, 0, 1, eta_min=1.0),
    ])
def test_one_step_schedulers_that_work_are_accepted(scheduler):
    check_schedulers_reach_their_end(labelled_schedulers([scheduler()]), 1)


def test_labels_follow_the_optimizers():
    schedulers = dict(
        a=[built(MultiStepLR, 0, 9, milestones=[1])],
        b=[built(MultiStepLR, 0, 9, milestones=[1])])
    config = [dict(type='MultiStepLR', milestones=[1])]
    labels = [
        label for label, _, cfg in labelled_schedulers(schedulers, config)
        if cfg == config[0]
    ]
    assert labels == ["param_scheduler['a'][0]", "param_scheduler['b'][0]"]


def iteration_loop(max_iters):
    from mmengine.runner import IterBasedTrainLoop
    loop = IterBasedTrainLoop.__new__(IterBasedTrainLoop)
    loop._max_iters = max_iters
    return loop


def test_a_converted_scheduler_without_end_must_reach_the_last_iteration():
    """Converted from epochs of 5 iterations without an `end`, mmengine
    ends the schedule at iteration 5: fine for 5 iterations, refused for
    6, also when it is the schedule of one of several optimizers."""
    config = dict(
        type='MultiStepLR',
        by_epoch=True,
        milestones=[2],
        convert_to_iter_based=True)
    converted = built(MultiStepLR, 0, 5, milestones=[10])
    entries = labelled_schedulers([converted], [config])
    check_schedulers_step(iteration_loop(5), entries, 5)
    with pytest.raises(ValueError, match='at iteration 5 of 6'):
        check_schedulers_step(iteration_loop(6), entries, 5)
    ended = dict(config, end=1)
    entries = labelled_schedulers(
        dict(a=[built(MultiStepLR, 0, 5, milestones=[10])], b=[converted]),
        dict(a=[ended], b=[config]))
    with pytest.raises(
            ValueError,
            match=r"^param_scheduler\['b'\]\[0\] .* at "
            'iteration 5 of 6'):
        check_schedulers_step(iteration_loop(6), entries, 5)


def test_a_one_epoch_span_is_named_in_epochs():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    warm_up = LinearLR(
        optimizer, begin=0, end=1, by_epoch=True, start_factor=0.1)
    with pytest.raises(
            ValueError,
            match=r'spans a single epoch \(begin=0, end=1 \(epochs\)\)'):
        check_schedulers_reach_their_end(labelled_schedulers([warm_up]), 5)


def accumulated(kind, begin, end, counts, **kwargs):
    """``kind`` over iterations ``begin`` to ``end`` of an optimizer
    wrapper updating once every ``counts`` steps."""
    from mmengine.optim import OptimWrapper
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    wrapper = OptimWrapper(optimizer, accumulative_counts=counts)
    return kind(wrapper, begin=begin, end=end, by_epoch=False, **kwargs)


def test_an_iteration_span_within_one_update_is_refused():
    """With accumulative_counts=4 a span of at most 4 iterations holds at
    most one update; 5 iterations hold two, and a scheduler of one value
    over its span loses nothing."""
    from mmreid.engine.runner.schedule_checks import \
        check_schedulers_span_updates
    for end in (1, 4):
        warm_up = accumulated(LinearLR, 0, end, 4, start_factor=0.1)
        with pytest.raises(
                ValueError,
                match=rf'param_scheduler\[0\] \(LinearLR\) spans {end} '
                'iteration.*accumulative_counts=4'):
            check_schedulers_span_updates(labelled_schedulers([warm_up]))
    for scheduler in (accumulated(LinearLR, 0, 5, 4, start_factor=0.1),
                      accumulated(LinearLR, 0, 4, 1, start_factor=0.1),
                      accumulated(ConstantLR, 0, 4, 4, factor=1.0)):
        check_schedulers_span_updates(labelled_schedulers([scheduler]))
