"""An epoch-based run whose sampler no hook gives its epoch is refused.

Written against the behaviour before the check: with
``default_hooks = dict(sampler_seed=None)`` (no ``DistSamplerSeedHook``)
mmengine's ``EpochBasedTrainLoop`` never called ``set_epoch``, so every
epoch repeated epoch 0 exactly: the same indices in the same order, with
the same per-sample augmentation seeds.
"""
import itertools

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import DefaultSampler
from mmengine.hooks import DistSamplerSeedHook, Hook
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from mmreid.engine.runner import ReIDRunner
from ..fixtures.tiny_config import write_tiny_config

_RUNS = itertools.count()

#: One step per epoch: the 8 identities of the tiny set in one batch of
#: 8 x 8 images (IdentitySampler.num_steps = ceil(8 groups / 8) = 1), at a
#: constant learning rate.
ONE_STEP_EPOCH = '''
train_dataloader['batch_size'] = 64
train_dataloader['sampler'] = dict(type='IdentitySampler', batch_size=64,
                                   num_instances=8)
param_scheduler = []
'''
NO_SEED_HOOK = 'default_hooks = dict(sampler_seed=None)\n'
ITER_LOOP = '''
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=3,
                 val_interval=100)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=100))
'''


class EpochProbe(Hook):
    """Records the sampler's epoch and first index at each iteration."""

    priority = 'LOWEST'

    def __init__(self):
        self.seen = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        sampler = runner.train_loop.dataloader.sampler
        self.seen.append((sampler.epoch, int(next(iter(sampler)))))


class MySeedHook(DistSamplerSeedHook):
    """A user's subclass of mmengine's hook."""


def build(tmp_path, synth_root, extra):
    config = write_tiny_config(tmp_path / f'cfg{next(_RUNS)}.py', synth_root,
                               ONE_STEP_EPOCH + extra)
    cfg = Config.fromfile(config)
    cfg.work_dir = str(tmp_path / 'run')
    cfg.experiment_name = f'sampler_epoch_{next(_RUNS)}'
    runner = ReIDRunner.from_cfg(cfg)
    probe = EpochProbe()
    runner.register_hook(probe)
    return runner, probe


def test_an_epoch_loop_without_the_seed_hook_is_refused(tmp_path, synth_root):
    runner, probe = build(tmp_path, synth_root, NO_SEED_HOOK)
    with pytest.raises(ValueError) as info:
        runner.train()
    message = str(info.value)
    assert 'EpochBasedTrainLoop' in message
    assert 'IdentitySampler' in message
    assert 'default_hooks.sampler_seed' in message
    assert 'repeat epoch 0' in message
    assert "dict(type='DistSamplerSeedHook')" in message
    # Before the first iteration.
    assert probe.seen == [] and runner.iter == 0


def test_with_the_seed_hook_every_epoch_draws_anew(tmp_path, synth_root):
    """The default hook, or a subclass of it given in custom_hooks."""
    epochs = 'train_cfg = dict(max_epochs=3)\n'
    for extra in (epochs, NO_SEED_HOOK + epochs):
        runner, probe = build(tmp_path, synth_root, extra)
        if 'sampler_seed=None' in extra:
            runner.register_hook(MySeedHook())
        runner.train()
        assert [epoch for epoch, _ in probe.seen] == [0, 1, 2]


def test_an_iteration_loop_without_the_seed_hook_is_accepted(
        tmp_path, synth_root):
    """IterBasedTrainLoop's iterator calls set_epoch itself at each new
    pass over the data: three passes of one step see epochs 0, 1, 2."""
    runner, probe = build(tmp_path, synth_root, NO_SEED_HOOK + ITER_LOOP)
    runner.train()
    assert isinstance(runner.train_loop, IterBasedTrainLoop)
    assert [epoch for epoch, _ in probe.seen] == [0, 1, 2]


def epoch_loop(dataloader):
    """An EpochBasedTrainLoop holding ``dataloader`` (nothing else
    built)."""
    loop = EpochBasedTrainLoop.__new__(EpochBasedTrainLoop)
    loop.dataloader = dataloader
    return loop


def test_the_batch_samplers_sampler_counts_and_others_do_not():
    from mmreid.engine.runner.runner_config import check_sampler_gets_its_epoch
    data = list(range(8))
    seeded = DefaultSampler(data, shuffle=True, seed=0)
    batched = DataLoader(data, batch_sampler=BatchSampler(seeded, 2, False))
    with pytest.raises(ValueError, match='DefaultSampler'):
        check_sampler_gets_its_epoch(epoch_loop(batched), [])
    check_sampler_gets_its_epoch(epoch_loop(batched), [DistSamplerSeedHook()])
    # torch's RandomSampler has no set_epoch: it draws anew by itself.
    plain = DataLoader(
        data,
        sampler=RandomSampler(
            data, generator=torch.Generator().manual_seed(0)))
    check_sampler_gets_its_epoch(epoch_loop(plain), [])
