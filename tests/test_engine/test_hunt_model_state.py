"""Wrong-number hunt: the model's modes and state across training,
validation and testing.

Each ``xfail(strict=True)`` test asserts the correct behaviour of a defect
found by using mmreid as the docs describe; it passes (XFAIL) while the
defect is there and fails loudly (XPASS) once it is fixed. The other tests
pin behaviour that decides a printed number and that no other test would
notice breaking.
"""
import copy
import itertools

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapper
from torch.nn.modules.batchnorm import _BatchNorm

from mmreid.engine.runner import ReIDRunner
from mmreid.registry import HOOKS, MODELS
from mmreid.structures import ReIDDataSample
from ..fixtures.tiny_config import write_tiny_config
from ..fixtures.tiny_models import (TINY_AGW_MBN_MODEL, TINY_BOT_MODEL,
                                    randomize_statistics)


def _batch(num: int = 8, classes: int = 4, seed: int = 0) -> dict:
    """A training batch of ``num`` uint8 32 x 16 images, ``num // classes``
    of each identity, the first half visible and the second infrared."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(
        0, 256, (num, 3, 32, 16), generator=gen, dtype=torch.uint8)
    samples = []
    for i in range(num):
        sample = ReIDDataSample()
        sample.set_gt_label(i % classes)
        sample.set_metainfo(dict(modality=int(i >= num // 2)))
        samples.append(sample)
    return dict(inputs=images, data_samples=samples)


def _build(cfg: dict, seed: int = 0):
    """The model of ``cfg``, initialised with torch seed ``seed``."""
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(cfg))
    model.init_weights()
    return model


def _train_step(model, batch: dict) -> None:
    """One training step as the runner takes it (``train_step``), with a
    learning rate of 0: only the running statistics may change."""
    model.train()
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0))
    model.train_step(batch, wrapper)


def _batch_norms(model):
    """Every ``_BatchNorm`` of ``model`` (an MBN's inner ones too)."""
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, _BatchNorm)
    }


# ---------------------------------------------------------------------------
# Gradient checkpointing (with_cp) and the running statistics
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    'cfg', [TINY_BOT_MODEL, TINY_AGW_MBN_MODEL], ids=['bn', 'mbn'])
def test_with_cp_updates_the_running_statistics_once_per_step(cfg):
    """``with_cp=True`` trains the same running statistics as without it.

    What the user does: sets ``model.backbone.with_cp=True`` (mmpretrain's
    ResNet option, which mmreid passes through; docs/get_started.md lists
    it among the "switches of training mode only", and the MBN spec,
    section 2.8, keeps the modality labels on the layers so that "the
    gradient-checkpointing recomputation (``with_cp=True``)" sees them) to
    save memory, and trains.

    What they get: the backward pass recomputes each checkpointed block in
    training mode, and that second forward updates every BatchNorm (and
    every MBN modality) of the blocks again: after one step
    ``num_batches_tracked`` is 2 and the running mean and variance moved
    by momentum 0.1 twice (an effective momentum of 0.19). The trained
    model's test-time statistics, and so every number ``tools/test.py``
    prints for it, differ from those of the same run without ``with_cp``,
    and nothing says so.

    What is right: a BatchNorm updates its running statistics once per
    training forward of a batch with the configured momentum (PyTorch's
    BatchNorm definition; MBN spec section 2.3: "each updated only from
    its own sub-batch with the usual momentum (0.1)"), so one step gives
    ``num_batches_tracked == 1`` and the statistics of the run without
    checkpointing.
    """
    plain = _build(cfg)
    cfg_cp = copy.deepcopy(cfg)
    cfg_cp['backbone']['with_cp'] = True
    checkpointed = _build(cfg_cp)
    checkpointed.load_state_dict(plain.state_dict())
    for model in (plain, checkpointed):
        _train_step(model, _batch())
    counts = {
        name: int(bn.num_batches_tracked)
        for name, bn in _batch_norms(checkpointed).items()
    }
    twice = sorted(name for name, count in counts.items() if count != 1)
    assert not twice, (f'{len(twice)} batch norms counted one training step '
                       f'as {counts[twice[0]]} updates, e.g. {twice[:3]}')
    expected = plain.state_dict()
    for key, value in checkpointed.state_dict().items():
        if key.endswith(('running_mean', 'running_var')):
            torch.testing.assert_close(value, expected[key], msg=key)


# ---------------------------------------------------------------------------
# The runner's activation_checkpointing
# ---------------------------------------------------------------------------
_RUNS = itertools.count()


def _short_run(config: str, work_dir, **options):
    """Train ``config`` for two iterations without validation, as
    ``tools/train.py`` with ``--cfg-options`` ``options`` would; returns
    the runner."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(
        dict(
            options, **{
                'train_cfg':
                dict(
                    _delete_=True,
                    type='IterBasedTrainLoop',
                    max_iters=2,
                    val_interval=100),
                'param_scheduler': [],
                'default_hooks.checkpoint':
                dict(type='CheckpointHook', interval=2, by_epoch=False),
                'val_cfg': None,
                'val_dataloader': None,
                'val_evaluator': None,
            }))
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'hunt_model_state_{next(_RUNS)}'
    runner = ReIDRunner.from_cfg(cfg)
    runner.train()
    return runner


@pytest.mark.parametrize('modules', [['backbone'], 'backbone', ['head']])
def test_activation_checkpointing_is_refused_before_the_run(
        tmp_path, synth_root, modules):
    """``activation_checkpointing`` is refused, pointing to ``with_cp``.

    What the user does: to save memory, sets the runner's
    ``activation_checkpointing`` key (a top-level key mmreid's config
    check accepts as one mmengine's ``Runner`` reads) to the module that
    holds nearly all activations, ``['backbone']``, and trains.

    What they got: mmengine wraps ``backbone.forward`` in
    ``torch.utils.checkpoint.checkpoint`` (reentrant). Its only input, the
    preprocessed images, requires no gradient, so the checkpointed output
    does not either: no gradient reached a single backbone parameter, and
    the run trained the head on a backbone left at its initial weights,
    with one torch ``UserWarning`` ("None of the inputs have
    requires_grad=True. Gradients will be None") in the log. Any other
    module (``['head']``) has its BatchNorms recomputed in training mode,
    a second running-statistics update per step.

    What is right: gradient checkpointing trades memory for compute and
    leaves the gradients as they are (Chen et al., "Training Deep Nets
    with Sublinear Memory Cost", 2016); mmengine's does not here, so the
    key is refused before the run writes anything, naming it and
    ``model.backbone.with_cp``, which checkpoints the backbone's blocks
    with unchanged gradients and statistics
    (``test_with_cp_updates_the_running_statistics_once_per_step``).
    """
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)
    with pytest.raises(ValueError) as info:
        _short_run(config, tmp_path / 'ckpt', activation_checkpointing=modules)
    message = str(info.value)
    assert f'activation_checkpointing={modules!r}' in message
    assert 'model.backbone.with_cp=True' in message
    assert not (tmp_path / 'ckpt').exists()


def test_activation_checkpointing_none_or_empty_is_accepted(
        tmp_path, synth_root):
    """``activation_checkpointing=None`` or ``[]`` (mmengine: nothing
    wrapped) is no request and the run builds."""
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)
    for value in (None, []):
        cfg = Config.fromfile(config)
        cfg.activation_checkpointing = value
        cfg.work_dir = str(tmp_path / f'run_{value!r}')
        cfg.experiment_name = f'hunt_model_state_{next(_RUNS)}'
        ReIDRunner.from_cfg(cfg)


# ---------------------------------------------------------------------------
# Frozen stages across training, validation and a fine-tuning load
# ---------------------------------------------------------------------------
#: What :class:`HuntModelStateProbe` saw before each training iteration.
SEEN = []


@HOOKS.register_module(force=True)
class HuntModelStateProbe(Hook):
    """Records, before every training iteration, each module's mode, each
    parameter's ``requires_grad`` and the model's buffers."""

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = runner.model
        SEEN.append(
            dict(
                iter=runner.iter,
                modes={n: m.training
                       for n, m in model.named_modules()},
                grads={
                    n: p.requires_grad
                    for n, p in model.named_parameters()
                },
                buffers={
                    k: v.clone()
                    for k, v in model.state_dict().items()
                    if 'running' in k or 'num_batches' in k
                }))


def test_frozen_stages_keep_their_mode_and_loaded_statistics(
        tmp_path, synth_root):
    """A fine-tuning run with ``frozen_stages`` keeps the loaded BN
    statistics of the frozen stages, through validations.

    What the user does: fine-tunes a trained model (``load_from``) with
    ``model.backbone.frozen_stages=1`` (stem and layer1 frozen), validating
    after every epoch.

    What is right: mmpretrain's ``frozen_stages`` puts the frozen stages
    in eval mode with ``requires_grad=False`` on every ``train()``: after
    each validation (which puts the whole model in eval mode) the next
    training iteration has exactly the modes of a freshly ``train()``-ed
    model, the frozen BN layers keep the checkpoint's running statistics
    (a BN in eval mode does not update them), the others do train, and the
    saved checkpoint holds the loaded frozen statistics.
    """
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)
    cfg = Config.fromfile(config)
    source = randomize_statistics(MODELS.build(cfg.model.to_dict()), seed=3)
    loaded = {k: v.clone() for k, v in source.state_dict().items()}
    torch.save(dict(state_dict=loaded, meta=dict()), tmp_path / 'src.pth')
    cfg.merge_from_dict({
        'model.backbone.frozen_stages': 1,
        'load_from': str(tmp_path / 'src.pth'),
        # A validation after each of three steps, in one batch.
        'train_cfg':
        dict(
            _delete_=True,
            type='IterBasedTrainLoop',
            max_iters=3,
            val_interval=1),
        'param_scheduler': [],
        'default_hooks.checkpoint':
        dict(type='CheckpointHook', interval=3, by_epoch=False),
        'val_dataloader.batch_size': 32,
        'custom_hooks': [dict(type='HuntModelStateProbe')],
    })
    cfg.work_dir = str(tmp_path / 'run')
    cfg.experiment_name = f'hunt_model_state_{next(_RUNS)}'
    SEEN.clear()
    ReIDRunner.from_cfg(cfg).train()

    reference = MODELS.build(cfg.model.to_dict()).train()
    modes = {n: m.training for n, m in reference.named_modules()}
    grads = {n: p.requires_grad for n, p in reference.named_parameters()}
    frozen = ('backbone.bn1.', 'backbone.layer1.')
    assert [seen['iter'] for seen in SEEN] == [0, 1, 2]
    for seen in SEEN:
        assert seen['modes'] == modes, seen['iter']
        assert seen['grads'] == grads, seen['iter']
        for key, value in seen['buffers'].items():
            if key.startswith(frozen):
                assert torch.equal(value, loaded[key]), (seen['iter'], key)
    # The trained stages did update their statistics (the check is live).
    last = SEEN[-1]['buffers']
    assert not torch.equal(last['backbone.layer2.0.bn1.running_mean'],
                           loaded['backbone.layer2.0.bn1.running_mean'])
    saved = torch.load(
        tmp_path / 'run' / 'iter_3.pth', map_location='cpu',
        weights_only=False)['state_dict']
    for key, value in loaded.items():
        if key.startswith(frozen):
            assert torch.equal(saved[key], value), key
