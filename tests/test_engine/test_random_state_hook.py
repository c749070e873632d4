import logging
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmengine.dataset import Compose
from mmengine.runner import EpochBasedTrainLoop

from mmreid.datasets.transforms import ReIDRandomFlip, ReIDResize, sample_rng
from mmreid.engine.hooks import TrainRandomStateHook


def draws():
    return (random.random(), float(np.random.rand()), torch.rand(3).tolist(),
            torch.nn.functional.dropout(torch.ones(8), 0.5).tolist())


def fake_runner(seed=0,
                iteration=0,
                epoch=0,
                iters_per_epoch=10,
                transforms=(),
                sampler=None,
                sampler_cfg=None,
                randomness=None):
    loop = object.__new__(EpochBasedTrainLoop)
    dataset = SimpleNamespace(pipeline=Compose(list(transforms)))
    loop.dataloader = type(
        'Loader', (),
        dict(
            __len__=lambda self: iters_per_epoch,
            dataset=dataset,
            sampler=object() if sampler is None else sampler))()
    loop._iter, loop._epoch = iteration, epoch
    return SimpleNamespace(
        seed=seed,
        iter=iteration,
        train_loop=loop,
        train_dataloader=loop.dataloader,
        cfg=dict(
            train_dataloader=dict(
                sampler=sampler_cfg or dict(type='DefaultSampler'))),
        _randomness_cfg=dict(randomness or dict(seed=seed)))


def test_iteration_draws_depend_only_on_seed_and_iteration():
    hook = TrainRandomStateHook()
    hook.before_train_iter(fake_runner(seed=3, iteration=7), 0)
    first = draws()
    # Whatever ran before (an uninterrupted run's earlier iterations, or a
    # freshly resumed process), iteration 7 draws the same numbers.
    torch.rand(100)
    np.random.rand(17)
    random.random()
    hook.before_train_iter(fake_runner(seed=3, iteration=7), 5)
    assert draws() == first
    hook.before_train_iter(fake_runner(seed=3, iteration=8), 0)
    assert draws() != first
    hook.before_train_iter(fake_runner(seed=4, iteration=7), 0)
    assert draws() != first


def test_ranks_draw_differently(monkeypatch):
    from mmreid.engine.hooks import random_state_hook
    hook = TrainRandomStateHook()
    hook.before_train_iter(fake_runner(iteration=2), 0)
    rank0 = draws()
    monkeypatch.setattr(random_state_hook, 'get_rank', lambda: 1)
    hook.before_train_iter(fake_runner(iteration=2), 0)
    assert draws() != rank0


def test_resume_from_a_mid_epoch_checkpoint_is_refused():
    hook = TrainRandomStateHook()
    hook.before_train(fake_runner(iteration=20, epoch=2))
    with pytest.raises(
            RuntimeError,
            match=r'middle of epoch 3 \(iteration 24, 4 of its '
            r'10 iterations'):
        hook.before_train(fake_runner(iteration=24, epoch=2))


def test_resume_with_other_steps_per_epoch_names_the_change():
    """Epochs of 3 steps before, 10 now: not "-14 of its 10 done"."""
    hook = TrainRandomStateHook()
    with pytest.raises(RuntimeError) as info:
        hook.before_train(fake_runner(iteration=6, epoch=2))
    message = str(info.value)
    assert 'saved at iteration 6 after 2 epochs, not after 2 x 10' in message
    assert 'its epochs had 3 steps. The steps per epoch changed' in message
    assert 'middle' not in message and '-14' not in message
    # Longer epochs before: 2 x 15 = 30 is past the end of epoch 3 here.
    with pytest.raises(RuntimeError) as info:
        hook.before_train(fake_runner(iteration=30, epoch=2))
    assert 'its epochs had 15 steps' in str(info.value)
    assert 'middle' not in str(info.value)
    # Ambiguous: epoch 2 at 11 of 10 + 1, or the end of epochs of 11 steps.
    with pytest.raises(RuntimeError) as info:
        hook.before_train(fake_runner(iteration=11, epoch=1))
    assert 'middle of epoch 2 (iteration 11, 1 of its 10' in str(info.value)
    assert 'If it was saved at the end of epoch 1, its epochs had 11 ' \
        'steps, not 10' in str(info.value)


def warnings_of(runner, monkeypatch):
    from mmreid.engine.hooks import random_state_hook
    messages = []
    monkeypatch.setattr(
        random_state_hook,
        'print_log',
        lambda msg, logger=None, level=logging.INFO: messages.append(
            (msg, level)))
    TrainRandomStateHook().before_train(runner)
    assert all(level == logging.WARNING for _, level in messages)
    return ' '.join(msg for msg, _ in messages)


def test_warns_when_augmentation_would_draw_from_worker_state(monkeypatch):
    from mmcv.transforms import RandomFlip as MMCVRandomFlip

    from mmreid.datasets.samplers.identity_sampler import EpochPlanSampler
    seeded = object.__new__(EpochPlanSampler)
    seeded.seed = 0
    plain = object()
    assert warnings_of(
        fake_runner(
            transforms=[ReIDResize(), ReIDRandomFlip()], sampler=seeded),
        monkeypatch) == ''
    assert warnings_of(fake_runner(transforms=[ReIDResize()]),
                       monkeypatch) == ''
    message = warnings_of(
        fake_runner(transforms=[ReIDRandomFlip()], sampler=plain), monkeypatch)
    assert 'sampler object gives no per-sample augmentation seeds' in message
    message = warnings_of(
        fake_runner(transforms=[MMCVRandomFlip(prob=0.5)], sampler=seeded),
        monkeypatch)
    assert 'RandomFlip in the training pipeline draw from' in message


class GlobalStateBrightness(BaseTransform):
    """A user's transform as one writes it by default: numpy's global RNG,
    without mmcv's cache_randomness mark."""

    def transform(self, results):
        results['delta'] = np.random.uniform(-30, 30)
        return results


class SampleRngBrightness(BaseTransform):
    """The same, as docs/customize.md says: from sample_rng."""

    draws_from_sample_rng = True

    @cache_randomness
    def _draw(self, rng):
        return rng.uniform(-30, 30)

    def transform(self, results):
        results['delta'] = self._draw(sample_rng(results))
        return results


class Deterministic(BaseTransform):

    def transform(self, results):
        return results


class SeededFromInput(BaseTransform):
    """A transform whose generator is seeded from its input, as its class
    declares: the same input gets the same draw in any worker."""

    draws_at_random = False

    def transform(self, results):
        results['delta'] = np.random.default_rng(len(results)).uniform()
        return results


def test_a_transform_that_declares_no_draws_is_not_warned(monkeypatch):
    from mmreid.datasets.samplers.identity_sampler import EpochPlanSampler
    seeded = object.__new__(EpochPlanSampler)
    seeded.seed = 0
    assert warnings_of(
        fake_runner(transforms=[SeededFromInput()], sampler=seeded),
        monkeypatch) == ''
    undeclared = type('Undeclared', (SeededFromInput, ),
                      dict(draws_at_random=None))
    assert warnings_of(
        fake_runner(transforms=[undeclared()], sampler=seeded),
        monkeypatch).startswith('Undeclared in the training pipeline')


def test_a_user_transform_drawing_from_numpy_is_named(monkeypatch):
    """Only a transform with mmcv's cache_randomness mark was found; one
    calling np.random in transform() silently lost the exact resume."""
    from mmreid.datasets.samplers.identity_sampler import EpochPlanSampler
    seeded = object.__new__(EpochPlanSampler)
    seeded.seed = 0
    message = warnings_of(
        fake_runner(
            transforms=[ReIDResize(), GlobalStateBrightness()],
            sampler=seeded), monkeypatch)
    assert message.startswith('GlobalStateBrightness in the training '
                              'pipeline draw from')
    assert 'sample_rng(results)' in message
    assert 'draws_from_sample_rng = True' in message
    for quiet in (SampleRngBrightness(), Deterministic()):
        assert warnings_of(
            fake_runner(transforms=[quiet], sampler=seeded), monkeypatch) == ''


def test_mmreids_transforms_are_not_taken_for_global_draws():
    from mmreid.engine.hooks.random_state_hook import global_draws
    from mmreid.registry import TRANSFORMS
    TRANSFORMS.import_from_location()
    classes = [
        c for c in TRANSFORMS.module_dict.values() if isinstance(c, type)
    ]
    assert len(classes) >= 8
    assert [c.__name__ for c in classes if global_draws(c)] == []
    assert global_draws(GlobalStateBrightness)
    assert not global_draws(SampleRngBrightness)


class MentionsNumpy(BaseTransform):
    """Deterministic: unlike np.random.uniform(-30, 30), it adds 10."""

    def transform(self, results):
        # Not np.random.uniform(-30, 30): the same for every sample.
        results['delta'] = 10
        results['note'] = 'np.random.uniform() is not called'
        return results


def test_a_mention_in_a_comment_or_string_is_no_draw():
    """The search reads code, not the docstring, comments and strings:
    a deterministic transform that only mentions np.random was taken for
    a random one (a warning in training, a refusal in evaluation)."""
    from mmreid.engine.hooks.random_state_hook import global_draws
    from mmreid.utils.pipeline_check import is_random_transform
    assert not global_draws(MentionsNumpy)
    assert not is_random_transform(MentionsNumpy)
    assert global_draws(GlobalStateBrightness)


def test_sampler_takes_the_restored_run_seed():
    from mmreid.datasets.samplers import IdentitySampler

    class Pids:

        def __len__(self):
            return 8

        def get_pids(self):
            return [0, 0, 1, 1, 2, 2, 3, 3]

    def sampler_after_before_train(**kwargs):
        sampler = IdentitySampler(
            Pids(), batch_size=4, num_instances=2, seed=11)
        hook = TrainRandomStateHook()
        hook.before_train(fake_runner(seed=7, sampler=sampler, **kwargs))
        return sampler.seed

    # randomness=dict(seed=None): mmengine built the sampler with a fresh
    # seed (11), then restored the checkpoint's (7).
    assert sampler_after_before_train(
        sampler_cfg=dict(type='IdentitySampler')) == 7
    # A seed of the sampler's own, or one mmengine drew for all ranks.
    assert sampler_after_before_train(
        sampler_cfg=dict(type='IdentitySampler', seed=11)) == 11
    assert sampler_after_before_train(
        sampler_cfg=dict(type='IdentitySampler'),
        randomness=dict(seed=None, diff_rank_seed=True)) == 11


def test_shared_sampler_seed_is_restored_or_its_loss_warned(monkeypatch):
    """randomness=dict(seed=None, diff_rank_seed=True): the sampler's seed
    is a draw of its own, which the checkpoint's meta['sampler_seed']
    gives back."""
    from mmreid.datasets.samplers import IdentitySampler
    from mmreid.engine.hooks import random_state_hook

    class Pids:

        def __len__(self):
            return 8

        def get_pids(self):
            return [0, 0, 1, 1, 2, 2, 3, 3]

    def resumed(meta, iteration=10):
        sampler = IdentitySampler(
            Pids(), batch_size=4, num_instances=2, seed=11)
        runner = fake_runner(
            seed=7,
            iteration=iteration,
            epoch=iteration // 10,
            sampler=sampler,
            sampler_cfg=dict(type='IdentitySampler'),
            randomness=dict(seed=None, diff_rank_seed=True))
        runner.resumed_meta = meta
        messages = []
        monkeypatch.setattr(
            random_state_hook,
            'print_log',
            lambda msg, logger=None, level=logging.INFO: messages.append(
                (msg, level)))
        TrainRandomStateHook().before_train(runner)
        return sampler.seed, [(m, lv) for m, lv in messages if 'seed' in m]

    seed, messages = resumed(dict(seed=7, sampler_seed=5))
    assert seed == 5
    assert [level for _, level in messages] == [logging.INFO]
    # A checkpoint that does not record it: a new draw, said loudly.
    seed, messages = resumed(dict(seed=7))
    assert seed == 11
    assert len(messages) == 1 and messages[0][1] == logging.WARNING
    assert "no meta['sampler_seed']" in messages[0][0]
    assert 'train_dataloader.sampler.seed' in messages[0][0]
    # A new run keeps its draw, silently.
    assert resumed(None, iteration=0) == (11, [])
    # A resume without meta (another runner's, or a checkpoint without
    # it) has a new draw as well, said as loudly.
    seed, messages = resumed(None)
    assert seed == 11 and [lv for _, lv in messages] == [logging.WARNING]


def test_a_wrapper_that_drops_the_sample_seeds_is_named(
        synth_root, monkeypatch):
    """mmengine's RepeatDataset hands the inner dataset a plain int, so
    its random transforms lose their per-sample seed: said, naming it."""
    from mmengine.dataset import RepeatDataset

    import mmreid.engine.hooks.random_state_hook as module
    from mmreid.datasets import SynthReID
    from mmreid.datasets.samplers import IdentitySampler
    from mmreid.datasets.samplers.sample_seed import SeededIndex
    inner = SynthReID(
        data_root=synth_root,
        num_domains=3,
        size='tiny',
        seed=0,
        img_size=(32, 16),
        domain=0,
        pipeline=[dict(type='ReIDRandomFlip')])
    wrapped = RepeatDataset(inner, times=2)
    given = []
    monkeypatch.setattr(inner, 'prepare_data',
                        lambda idx: given.append(idx) or {})
    wrapped[SeededIndex(3, seed=7)]
    assert type(given[0]) is int  # the seed is gone
    sampler = IdentitySampler(inner, batch_size=4, num_instances=2)
    warned = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kwargs: warned.append(msg))
    runner = SimpleNamespace(
        train_dataloader=SimpleNamespace(dataset=wrapped, sampler=sampler))
    TrainRandomStateHook._check_pipeline(runner)
    message, = warned
    assert 'wrapped in RepeatDataset' in message
    assert 'ReIDRandomFlip draw from' in message
    # The dataset itself (or ConcatReIDDataset) passes the seeds on.
    warned.clear()
    runner.train_dataloader.dataset = inner
    TrainRandomStateHook._check_pipeline(runner)
    assert warned == []


def test_a_wrapper_of_wrappers_is_searched_at_any_depth(monkeypatch):
    """``RepeatDataset(ConcatDataset([...]))`` drops the seeds as well: the
    pipelines two wrappers down must be searched, or the loss of the
    per-sample seeds went unsaid."""
    import mmreid.engine.hooks.random_state_hook as module

    class Jitter:
        _methods_with_randomness = ['transform']

    inner = SimpleNamespace(pipeline=SimpleNamespace(transforms=[Jitter()]))
    concat = SimpleNamespace(datasets=[inner, inner])
    repeat = SimpleNamespace(dataset=concat)
    warned = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kwargs: warned.append(msg))
    sampler = SimpleNamespace(yields_sample_seeds=True)
    module._check_wrapped_dataset(repeat, sampler)
    message, = warned
    assert 'Jitter draw from' in message


#: The tiny config as an iteration-based run of 4 steps (one dataloader
#: pass has 5) with two dataloader workers, a checkpoint every 2 steps,
#: no validation.
ITERATION_BASED = '''
train_dataloader.update(num_workers=2)
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False,
                        begin=0, end=2)]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4)
val_dataloader = val_cfg = val_evaluator = None
log_processor = dict(by_epoch=False)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=2,
                                     by_epoch=False))
'''


@pytest.mark.parametrize('randomness', [
    dict(seed=None, deterministic=True),
    dict(seed=None, diff_rank_seed=True, deterministic=True)
])
def test_an_iteration_based_resume_with_workers_repeats_the_run(
        tmp_path, synth_root, randomness):
    """mmengine's IterBasedTrainLoop starts its dataloader iterator when it
    is built, before the resume restores the sampler's seed: with workers
    the iterator prefetched, so the rest of the first pass followed the
    plan of the seed drawn for the resumed start (104/126 tensors
    differed from the uninterrupted run's)."""
    from mmengine.config import Config

    from mmreid.engine.runner import ReIDRunner
    from mmreid.utils import load_trusted_checkpoint
    from ..fixtures.tiny_config import write_tiny_config
    config = write_tiny_config(tmp_path / 'iter.py', synth_root,
                               ITERATION_BASED)

    def train(work_dir, **options):
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(dict(options, randomness=randomness))
        cfg.work_dir = str(work_dir)
        cfg.experiment_name = f'iteration_resume_{work_dir.name}'
        ReIDRunner.from_cfg(cfg).train()
        return load_trusted_checkpoint(str(work_dir / 'iter_4.pth'))

    straight = train(tmp_path / 'straight')
    resumed = train(
        tmp_path / 'resumed',
        resume=True,
        load_from=str(tmp_path / 'straight' / 'iter_2.pth'))
    assert resumed['meta']['iter'] == 4
    differ = [
        key for key, value in straight['state_dict'].items()
        if not torch.equal(resumed['state_dict'][key], value)
    ]
    assert not differ, f'{len(differ)} tensors differ, e.g. {differ[:3]}'
