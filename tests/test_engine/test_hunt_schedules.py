"""Wrong-number hunt: the learning rate and optimizer state of each step.

The rate and weight decay every parameter group is stepped with, read from
the optimizer at each ``optimizer.step`` (a step pre-hook) of tiny runs,
or from the built parameter groups, against the schedule the config and
the method's spec define (/work/shared/specs, configs/*/README.md,
docs/get_started.md) and the definitions of mmengine's schedulers. The
expected values are computed here from those definitions.
"""
import copy
import itertools

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from mmreid.engine.runner import ReIDRunner
from mmreid.registry import MODELS
from ..fixtures.processes import REPO
from ..fixtures.tiny_config import write_tiny_config

_RUNS = itertools.count()

#: The shipped AGW schedule (mbn_vireid.md section 3.3): SGD, 10x for the
#: BNNeck and the classifier (``custom_keys``).
AGW_SCHEDULE = f'{REPO}/configs/_base_/schedules/agw_sgd_81e.py'
#: A small AGW model (ResNet-18 two-stream) with the R50 model's names.
AGW_CONFIG = f'{REPO}/configs/mbn/agw_r18_synthreid-vi-v2.py'
#: The tiny config's Adam rate (``bot_adam_120e.py``).
LR = 3.5e-4


class Stopped(Exception):
    """Raised by :class:`StepRates` to end a run early."""


class StepRates(Hook):
    """Records ``(iteration, [lr of each param group])`` at every
    ``optimizer.step`` of a training, read from the optimizer itself (a
    step pre-hook), and raises :class:`Stopped` before the iteration
    ``stop_at`` (after ``stop_after`` recorded steps when given)."""

    priority = 'LOWEST'

    def __init__(self, stop_at=None, stop_after=None):
        self.stop_at = stop_at
        self.stop_after = stop_after
        self.steps = []

    def before_train(self, runner):
        def record(optimizer, args, kwargs):
            self.steps.append(
                (runner.iter, [g['lr'] for g in optimizer.param_groups]))
            if self.stop_after is not None \
                    and len(self.steps) >= self.stop_after:
                raise Stopped(f'stopped at iteration {runner.iter}')

        self.handle = runner.optim_wrapper.optimizer.register_step_pre_hook(
            record)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.stop_at is not None and runner.iter == self.stop_at:
            raise Stopped(f'stopped before iteration {runner.iter}')

    def after_train(self, runner):
        self.handle.remove()


def train(config, work_dir, probe, **options):
    """Train ``config`` in ``work_dir`` with ``probe`` registered, until
    it ends or the probe stops it."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'hunt_schedules_{next(_RUNS)}'
    runner = ReIDRunner.from_cfg(cfg)
    runner.register_hook(probe, 'LOWEST')
    try:
        runner.train()
    except Stopped:
        pass
    finally:
        if getattr(probe, 'handle', None) is not None:
            probe.handle.remove()
    return runner


def runner_optimizer(model, optim_wrapper):
    """The optimizer wrapper as ``ReIDRunner`` builds it for ``model``
    (its checks included), without building a whole runner."""
    runner = ReIDRunner.__new__(ReIDRunner)
    runner.model = model
    return runner.build_optim_wrapper(copy.deepcopy(optim_wrapper))


def group_of(optim_wrapper, model):
    """``{parameter name: its param group}``."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        names[id(p)]: group
        for group in optim_wrapper.optimizer.param_groups
        for p in group['params']
    }


@pytest.fixture(scope='module')
def agw_model():
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(Config.fromfile(AGW_CONFIG).model))
    model.init_weights()
    return model


def test_norm_decay_mult_reaches_the_bnneck_of_custom_keys(agw_model):
    """A user trains the shipped AGW recipe (``agw_sgd_81e.py``: SGD,
    ``custom_keys`` 'head.bnneck' and 'head.classifier' at
    ``lr_mult=10``) without weight decay on normalisation layers, the
    BoT/fast-reid variant: ``paramwise_cfg.norm_decay_mult=0``. Every
    BatchNorm of the backbone gets weight decay 0, but the BNNeck, a
    ``BatchNorm1d`` too, keeps 5e-4: mmengine's constructor applies a
    ``custom_keys`` entry instead of every other paramwise setting (its
    ``decay_mult`` defaults to 1), so the one norm layer the head
    normalises the retrieval feature with is decayed, without a word,
    while the config says no norm layer is. By the definition of
    ``norm_decay_mult`` (weight decay x the value on the weights of norm
    layers) its decay is 5e-4 x 0 = 0. Right: 0 with its lr 0.1 kept, or
    the combination refused naming ``norm_decay_mult`` (as mmreid refuses
    it with an MBN's affine, for the same reason)."""
    cfg = Config.fromfile(AGW_SCHEDULE)
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg['paramwise_cfg']['norm_decay_mult'] = 0.
    try:
        optim = runner_optimizer(agw_model, optim_cfg)
    except (ValueError, KeyError) as error:
        assert 'norm_decay_mult' in str(error)
        assert "custom_keys['head.bnneck']" in str(error)
        # The entry the message advises is followed as written.
        optim_cfg['paramwise_cfg']['custom_keys']['head.bnneck'] = dict(
            lr_mult=10, decay_mult=0.)
        optim = runner_optimizer(agw_model, optim_cfg)
    groups = group_of(optim, agw_model)
    norms = [
        name for name, module in agw_model.named_modules()
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
        and module.weight is not None and module.weight.requires_grad
    ]
    assert 'head.bnneck' in norms and len(norms) > 20
    assert groups['head.bnneck.weight']['lr'] == pytest.approx(0.1)
    decayed = [n for n in norms if groups[f'{n}.weight']['weight_decay']]
    assert not decayed, decayed


#: Epochs of 3 steps of 16 images (8 identities x 2), the validation in
#: one batch: the least a run needs.
SHORT_EPOCHS = '''
train_dataloader['batch_size'] = 16
train_dataloader['sampler']['batch_size'] = 16
val_dataloader['batch_size'] = 16
'''

#: ReduceOnPlateauLR on the validated mAP (patience 0: x0.1 at the first
#: validation that does not improve on the best), validated every epoch,
#: the best checkpoint kept by the same key; two epochs.
PLATEAU = SHORT_EPOCHS + '''
param_scheduler = [
    dict(type='ReduceOnPlateauLR', monitor='reid/mAP', rule='greater',
         patience=0, factor=0.1, by_epoch=True),
]
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
default_hooks = dict(checkpoint=dict(
    type='CheckpointHook', interval=1, save_best='reid/mAP', rule='greater'))
'''


def test_resume_after_a_best_epoch_keeps_the_plateau_schedule(
        tmp_path, synth_root):
    """A user trains with ``ReduceOnPlateauLR`` on ``reid/mAP`` (patience
    0) and ``save_best='reid/mAP'``; the job is preempted during epoch 2
    and requeued with ``--resume``. Epoch 1's validation is the first, so
    it is a new best: by the definition of ReduceOnPlateau (reduce once
    the monitored value has not improved for more than ``patience``
    validations) the rate stays 3.5e-4 for epoch 2, as in the run that was
    not stopped. mmengine's ``CheckpointHook`` writes ``epoch_1.pth`` again
    after a new best (the scheduler then holds epoch 1's validation), and
    the resume validates epoch 1 again ("a finished one gives the same
    numbers", the log says), which hands the same mAP to the scheduler a
    second time: no improvement, x0.1. The resumed epoch 2 trains at
    3.5e-5, its mAP and best checkpoint are not those of the run it
    continues, where docs/get_started.md (section 6) promises that "the
    resumed run ends with the validations, weights and best checkpoint of
    the uninterrupted one". Right: 3.5e-4 at the first step of the resumed
    epoch 2."""
    config = write_tiny_config(tmp_path / 'plateau.py', synth_root, PLATEAU)
    first = StepRates(stop_at=3)
    train(config, tmp_path / 'run', first)
    assert [it for it, _ in first.steps] == [0, 1, 2]
    assert all(lrs == [pytest.approx(LR)] for _, lrs in first.steps)
    resumed = StepRates(stop_after=1)
    train(
        config,
        tmp_path / 'run',
        resumed,
        resume=True,
        load_from=str(tmp_path / 'run' / 'epoch_1.pth'))
    (it, lrs), = resumed.steps
    assert it == 3
    assert lrs == [pytest.approx(LR)], 'the resumed epoch 2 trains at x0.1'


def warm_up(it, steps):
    """The factor of mmengine's ``LinearLR(start_factor=0.1)`` over
    ``steps`` iterations at iteration ``it``: linear from 0.1 at the first
    to 1 at the last (``steps - 1`` increments), 1 afterwards."""
    return 0.1 + 0.9 * min(it, steps - 1) / (steps - 1)


def test_schedule_stepped_by_two_hooks_is_refused_or_stepped_once(
        tmp_path, synth_root):
    """A user's config keeps ``default_hooks.param_scheduler`` and also
    lists ``dict(type='ParamSchedulerHook', priority='LOW')`` in
    ``custom_hooks`` (a restated hook, which mmreid registers once when it
    equals the default one, but keeps when only its priority differs).
    Both hooks step every scheduler after each iteration: the one-epoch
    warm-up of 3 steps from lr / 10 reaches the full rate at step 1
    (0.1, 1.0, 1.0 x 3.5e-4), a milestone would come at half its epoch,
    and the log shows these rates as the config's schedule. By
    ``LinearLR``'s definition step 1 trains at (0.1 + 0.9 / 2) x 3.5e-4.
    Right: that rate, or the second hook refused before the first
    iteration, naming ``ParamSchedulerHook`` (as mmreid refuses a
    schedule that no hook steps)."""
    config = write_tiny_config(
        tmp_path / 'twice.py', synth_root, SHORT_EPOCHS + '''
custom_hooks = [dict(type='ParamSchedulerHook', priority='LOW')]
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
]
''')
    probe = StepRates(stop_after=2)
    try:
        train(config, tmp_path / 'run', probe)
    except (ValueError, RuntimeError) as error:
        assert 'ParamSchedulerHook' in str(error)
        assert not probe.steps
        return
    assert [it for it, _ in probe.steps] == [0, 1]
    for it, lrs in probe.steps:
        assert lrs == [pytest.approx(LR * warm_up(it, 3))], (it, lrs)


def test_auto_scale_lr_scales_every_group_and_the_warm_up_start(
        tmp_path, synth_root):
    """A user trains with ``--auto-scale-lr`` (``auto_scale_lr.enable``)
    a config tuned for 32 images per step on 16, with the classifier at
    ``lr_mult=10`` and a one-epoch warm-up from lr / 10 converted to
    iterations (3 here). By the linear scaling rule every group's rate is
    the config's x 16 / 32, so at iteration i the backbone trains at
    3.5e-4 x 0.5 x (0.1 + 0.9 i / 2) and the classifier at 10 times that,
    the warm-up's start included."""
    config = write_tiny_config(
        tmp_path / 'scaled.py', synth_root, SHORT_EPOCHS + '''
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={'head.classifier': dict(lr_mult=10)}))
auto_scale_lr = dict(base_batch_size=32, enable=True)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
]
''')
    probe = StepRates(stop_after=3)
    runner = train(config, tmp_path / 'run', probe)
    names = {id(p): n for n, p in runner.model.named_parameters()}
    firsts = [
        names[id(g['params'][0])]
        for g in runner.optim_wrapper.optimizer.param_groups
    ]
    assert 'head.classifier.weight' in firsts and len(firsts) > 20
    assert [it for it, _ in probe.steps] == [0, 1, 2]
    for it, lrs in probe.steps:
        base = LR * 16 / 32 * warm_up(it, 3)
        for name, lr in zip(firsts, lrs):
            mult = 10 if name.startswith('head.classifier') else 1
            assert lr == pytest.approx(base * mult, rel=1e-9), (it, name)


def test_iteration_loop_follows_iteration_and_converted_schedulers(
        tmp_path, synth_root):
    """A user trains with an ``IterBasedTrainLoop`` (4 iterations, epochs
    of 3) and the form docs/get_started.md (section 3) gives for it: a
    warm-up ``by_epoch=False`` over iterations 0-2 from lr / 10, and a
    x0.1 step at epoch 1 written in epochs with
    ``convert_to_iter_based=True`` and an explicit ``end``. By their
    definitions the rate of iteration i is 3.5e-4 x (0.1 + 0.9 i / 2) for
    i < 3, and 3.5e-4 x 0.1 from iteration 3 (= 1 epoch of 3 steps)."""
    config = write_tiny_config(
        tmp_path / 'iters.py', synth_root, SHORT_EPOCHS + '''
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4,
                 val_interval=100)
val_dataloader = val_cfg = val_evaluator = None
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=100))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3),
    dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.1,
         begin=0, end=2, convert_to_iter_based=True),
]
''')
    probe = StepRates()
    train(config, tmp_path / 'run', probe)
    assert [it for it, _ in probe.steps] == [0, 1, 2, 3]
    for it, lrs in probe.steps:
        expected = LR * warm_up(it, 3) * (0.1 if it >= 3 else 1.0)
        assert lrs == [pytest.approx(expected, rel=1e-9)], it
