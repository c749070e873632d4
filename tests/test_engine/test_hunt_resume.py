"""Wrong-number hunt: a resumed training run is the run that was stopped.

docs/get_started.md (section 6) promises that ``--resume`` "continues the
run the checkpoint comes from, with that run's config, and refuses what it
cannot continue", and that a resumed run ends with the weights of the
uninterrupted one (bitwise on one CPU: docs/benchmarks.md, "Reproducible
training on a GPU"). Each test here trains a tiny BoT (or GMN) model for a
few iterations, stops or resumes it as a user would, and compares the
result with the uninterrupted run, the definition of a correct resume.
"""
import itertools

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from mmreid.engine.runner import ReIDRunner
from mmreid.registry import HOOKS
from mmreid.utils import load_trusted_checkpoint
from ..fixtures.tiny_config import write_tiny_config

_RUNS = itertools.count()

#: Two epochs of 5 steps (36 images, P x K = 4 x 2), no validation: the
#: resumes below start at epoch 2 (iteration 5).
TWO_EPOCHS = '''
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=2)
val_dataloader = val_cfg = val_evaluator = None
'''

#: A tiny GMN model (M-Net on the pair features, DP from epoch 2, PIC):
#: its DP draws dropout masks from the global RNGs at every iteration.
TINY_GMN = '''
model = dict(
    type='GMNReID',
    backbone=dict(type='ReIDResNet', depth=18, last_stride=1,
                  base_channels=8, stem_channels=8, init_cfg=None),
    neck=dict(type='GlobalAvgPool'),
    head=dict(
        type='GMNHead', in_channels=64, num_classes=8,
        mnet=dict(hidden_channels=16, num_layers=1, output='logit'),
        loss_gmn=dict(type='PairVerificationLoss', balance='balanced'),
        pair_feat='post_bn', pair_norm='l2', pair_mining='all',
        dp=dict(rate=0.5, position='pair', mode='append', n_copies=1,
                warmup_epochs=1),
        pic=dict(weight=10.0, space='input')))
custom_hooks = [dict(type='GMNDPWarmupHook')]
train_dataloader['dataset']['pipeline'] = [
    dict(type='ReIDLoadImageFromFile'),
    dict(type='ReIDResize', size=(32, 16)),
    dict(type='ReIDRandomFlip', prob=0.5),
    dict(type='ReIDRandomErasing', prob=0.5),
    dict(type='PackReIDInputs'),
]
'''


class Stop(Exception):
    """Raised by :class:`HuntResumeProbe` to end a run (not a
    RuntimeError, which a refused resume raises)."""


@HOOKS.register_module(force=True)
class HuntResumeProbe(Hook):
    """Records every training iteration of a run (its index, loss terms
    and first learning rate, in :attr:`steps`) and, with
    ``stop_before_train``, the model's weights once the checkpoint is
    loaded (in :attr:`loaded`), then stops the run with :class:`Stop`;
    ``fail_at`` raises :class:`Stop` before that iteration."""

    priority = 'HIGHEST'

    def __init__(self, stop_before_train=False, fail_at=None):
        self.stop_before_train = stop_before_train
        self.fail_at = fail_at
        self.steps = []
        self.loaded = None

    def before_train(self, runner):
        if self.stop_before_train:
            self.loaded = {
                k: v.detach().clone()
                for k, v in runner.model.state_dict().items()
            }
            raise Stop('stopped before training')

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.fail_at is not None and runner.iter == self.fail_at:
            raise Stop(f'failed at iteration {runner.iter}')

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        self.steps.append((runner.iter, runner.optim_wrapper.get_lr()['lr'],
                           {k: float(v.detach())
                            for k, v in outputs.items()}))


def build_runner(config, work_dir, **options):
    """A runner of ``config`` in ``work_dir`` with :class:`HuntResumeProbe`
    (its ``probe`` option) after the config's custom hooks."""
    cfg = Config.fromfile(config)
    probe = options.pop('probe', {})
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    # One name per runner: mmengine keys its logger and message hub by it.
    cfg.experiment_name = f'hunt_resume_{next(_RUNS)}'
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
        dict(type='HuntResumeProbe', **probe)
    ]
    return ReIDRunner.from_cfg(cfg)


def probe_of(runner):
    """The runner's :class:`HuntResumeProbe`."""
    return next(h for h in runner.hooks if isinstance(h, HuntResumeProbe))


def differing_tensors(a, b):
    """Keys of ``a`` whose tensor ``b`` lacks or holds another value of."""
    return [
        key for key, value in a.items()
        if key not in b or not torch.equal(b[key], value)
    ]


def straight_and_resumed(config, tmp_path):
    """Train ``config`` without a stop, and again resumed from the first
    run's epoch 1 checkpoint; returns both runners."""
    straight = build_runner(config, tmp_path / 'straight')
    straight.train()
    resumed = build_runner(
        config,
        tmp_path / 'resumed',
        resume=True,
        load_from=str(tmp_path / 'straight' / 'epoch_1.pth'))
    resumed.train()
    return straight, resumed


def test_resume_between_accumulated_batches_repeats_the_run(
        tmp_path, synth_root):
    """``optim_wrapper.accumulative_counts=2`` with epochs of 5 steps: the
    uninterrupted run updates at iterations 1, 3, 5, ..., the update of
    iteration 5 summing the gradients of iterations 4 and 5. The epoch 1
    checkpoint (after iteration 4) does not hold iteration 4's gradient,
    so a ``--resume`` from it updates at iteration 5 with iteration 5's
    half-weighted gradient alone. mmengine logs one warning ("the result
    may be influenced slightly") and the run ends with other weights (all
    104 tensors differ here): a number the promise "a resumed run ends
    with the weights of the uninterrupted one" (docs/get_started.md,
    section 6) makes wrong. Right: the same weights, or a refusal naming
    the checkpoint and the accumulation (as another ``accumulative_counts``
    already is)."""
    config = write_tiny_config(
        tmp_path / 'accumulate.py', synth_root,
        TWO_EPOCHS + 'optim_wrapper = dict(accumulative_counts=2)\n')
    straight = build_runner(config, tmp_path / 'straight')
    straight.train()
    ckpt = str(tmp_path / 'straight' / 'epoch_1.pth')
    assert load_trusted_checkpoint(ckpt)['meta']['iter'] == 5
    resumed = build_runner(
        config, tmp_path / 'resumed', resume=True, load_from=ckpt)
    try:
        resumed.train()
    except RuntimeError as error:  # refused: right as well
        assert 'epoch_1.pth' in str(error)
        assert 'accumulative_counts' in str(error)
        return
    final = [
        load_trusted_checkpoint(str(tmp_path / run / 'epoch_2.pth'))
        for run in ('straight', 'resumed')
    ]
    differ = differing_tensors(final[0]['state_dict'], final[1]['state_dict'])
    assert not differ, (f'{len(differ)} tensors differ from the '
                        f'uninterrupted run, e.g. {differ[:3]}')


EMA = "custom_hooks = [dict(type='EMAHook', momentum={})]\n"


@pytest.fixture(scope='module')
def ema_run(tmp_path_factory, synth_root):
    """A two-epoch run with mmengine's ``EMAHook``: (its folder, its
    epoch 1 checkpoint)."""
    root = tmp_path_factory.mktemp('hunt_resume_ema')
    config = write_tiny_config(root / 'ema.py', synth_root,
                               TWO_EPOCHS + EMA.format(0.1))
    build_runner(config, root / 'run').train()
    return root, str(root / 'run' / 'epoch_1.pth')


def test_resume_without_the_ema_hook_goes_on_from_the_trained_weights(
        ema_run, tmp_path, synth_root):
    """With ``EMAHook`` a checkpoint's ``state_dict`` holds the averaged
    weights and ``ema_state_dict`` the trained ones (mmengine swaps them
    when it saves). A ``--resume`` with a config without the hook (the
    user dropped it, or a config of another run) loads ``state_dict``: the
    run goes on training from the averaged weights with the Adam moments
    of the trained ones, without a word, and ends elsewhere than the run
    it continues. Right: refused (the run's hooks changed), or the trained
    weights loaded."""
    _, ckpt = ema_run
    checkpoint = load_trusted_checkpoint(ckpt)
    trained = {
        k[len('module.'):]: v
        for k, v in checkpoint['ema_state_dict'].items()
        if k.startswith('module.')
    }
    assert differing_tensors(checkpoint['state_dict'], trained)
    config = write_tiny_config(tmp_path / 'plain.py', synth_root, TWO_EPOCHS)
    runner = build_runner(
        config,
        tmp_path / 'resumed',
        resume=True,
        load_from=ckpt,
        probe=dict(stop_before_train=True))
    try:
        runner.train()
    except RuntimeError as error:  # refused: right as well
        assert 'EMAHook' in str(error)
        return
    except Stop:
        pass
    loaded = probe_of(runner).loaded
    differ = differing_tensors(trained, loaded)
    assert not differ, (f'the resumed model holds the averaged weights: '
                        f'{len(differ)} tensors differ from the trained '
                        f'ones, e.g. {differ[:3]}')


@pytest.mark.parametrize('change', [
    'optim_wrapper = dict(clip_grad=dict(max_norm=0.01))\n',
    EMA.format(0.5),
],
                         ids=['clip_grad', 'ema_momentum'])
def test_another_training_setting_is_refused(ema_run, tmp_path, synth_root,
                                             change):
    """``--resume`` refuses another optimizer, schedule, accumulation,
    pipeline or model (docs/get_started.md, section 6: "continues the run
    the checkpoint comes from, with that run's config"), since the rest
    of the run would be trained otherwise while the work dir's config
    copy credits all its epochs to the new config. Gradient clipping
    (``optim_wrapper.clip_grad``, here added: the losses of the resumed
    iterations 6-9 differ from the uninterrupted run's) and the EMA
    momentum (the averaged weights that are validated and saved) change
    the run as much, and are resumed silently. Right: refused, naming
    the setting, as ``accumulative_counts`` is."""
    root, ckpt = ema_run
    if 'clip_grad' in change:
        change += EMA.format(0.1)
    config = write_tiny_config(tmp_path / 'changed.py', synth_root,
                               TWO_EPOCHS + change)
    runner = build_runner(
        config,
        tmp_path / 'resumed',
        resume=True,
        load_from=ckpt,
        probe=dict(stop_before_train=True))
    with pytest.raises(RuntimeError, match='epoch_1.pth'):
        try:
            runner.train()
        except Stop:
            pytest.fail(f'resumed with {change.strip()!r} without a word')


def test_a_failed_training_with_persistent_workers_releases_the_work_dir(
        tmp_path, synth_root):
    """A notebook or script whose training fails mid-epoch (here at
    iteration 3) and runs ``resume=True`` again in the same process: with
    ``persistent_workers=True`` (as the shipped SynthReID configs set) the
    dataloader workers, forked while the run held
    ``<work_dir>/.mmreid-train.lock``, stay alive with its file open, so
    the lock outlives the failed run and the resume is refused as
    "another training run" naming this process's own pid. A failed
    training releases the work dir (tests/test_engine/
    test_resume_checks.py::test_a_failed_training_releases_the_work_dir);
    it must do so whatever its loader settings."""
    from mmreid.engine.runner.work_dir_lock import (lock_work_dir,
                                                    unlock_work_dir)
    config = write_tiny_config(
        tmp_path / 'workers.py', synth_root, TWO_EPOCHS +
        'train_dataloader.update(num_workers=1, persistent_workers=True)\n')
    runner = build_runner(
        config, tmp_path / 'run', probe=dict(fail_at=3))
    try:
        with pytest.raises(Stop):
            runner.train()
        unlock_work_dir(lock_work_dir(str(tmp_path / 'run')))
    finally:
        iterator = getattr(runner.train_dataloader, '_iterator', None)
        if iterator is not None:
            iterator._shutdown_workers()


def test_gmn_resume_repeats_the_dp_draws_and_the_run(tmp_path, synth_root):
    """GMN's DP (on from epoch 2 here, ``warmup_epochs=1``) draws dropout
    masks from the global RNGs at every iteration, with random flips and
    erasing in the pipeline. Resumed from the epoch 1 checkpoint, the run
    must train the iterations of epoch 2 with the uninterrupted run's
    losses (DP on) and learning rates, and end with its weights and Adam
    moments, bit for bit on the CPU."""
    config = write_tiny_config(tmp_path / 'gmn.py', synth_root,
                               TWO_EPOCHS + TINY_GMN)
    straight, resumed = straight_and_resumed(config, tmp_path)
    expected = probe_of(straight).steps
    assert [step for step, _, _ in expected] == list(range(10))
    assert probe_of(resumed).steps == expected[5:]
    # DP off in epoch 1, on in epoch 2 (the resumed one).
    assert [terms['dp_on'] for _, _, terms in expected] == [0] * 5 + [1] * 5
    final = [
        load_trusted_checkpoint(str(tmp_path / run / 'epoch_2.pth'))
        for run in ('straight', 'resumed')
    ]
    assert not differing_tensors(final[0]['state_dict'],
                                 final[1]['state_dict'])
    moments = [f['optimizer']['state'] for f in final]
    assert moments[0].keys() == moments[1].keys()
    for key, state in moments[0].items():
        assert not differing_tensors(state, moments[1][key]), key


def test_ema_resume_restores_the_averaged_and_the_trained_weights(
        ema_run, tmp_path):
    """With ``EMAHook`` a resume must restore both the trained weights
    (they go on training) and the averaged ones (they are validated and
    saved): the resumed run ends with the uninterrupted run's
    ``state_dict`` and ``ema_state_dict``, bit for bit."""
    root, ckpt = ema_run
    config = str(root / 'ema.py')
    build_runner(
        config, tmp_path / 'resumed', resume=True, load_from=ckpt).train()
    final = [
        load_trusted_checkpoint(str(folder / 'epoch_2.pth'))
        for folder in (root / 'run', tmp_path / 'resumed')
    ]
    for key in ('state_dict', 'ema_state_dict'):
        assert not differing_tensors(final[0][key], final[1][key]), key
