"""Wrong-number hunt: optimizer, parameter groups and schedules.

The learning rate and weight decay every parameter trains with, checked
step by step against the recipes of ``configs/*/README.md`` and
``/work/shared/specs/*.md`` from their definitions (reference values
computed here, not read from mmreid or mmengine), with the optimizers and
schedulers built from the shipped configs as the runner builds them.
"""
import copy
import glob
import itertools
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS

from mmreid.engine.runner import ReIDRunner
from mmreid.models.layers import MBN
from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample
from ..fixtures.processes import REPO
from ..fixtures.tiny_config import write_tiny_config

_RUNS = itertools.count()

#: The shipped AGW schedule (mbn_vireid.md section 3.3).
AGW_SCHEDULE = f'{REPO}/configs/_base_/schedules/agw_sgd_81e.py'
#: The shipped BoT schedule (snr.md section 4, baseline README).
BOT_SCHEDULE = f'{REPO}/configs/_base_/schedules/bot_adam_120e.py'
#: A small AGW model (ResNet-18 two-stream) with the R50 model's names.
AGW_CONFIG = f'{REPO}/configs/mbn/agw_r18_synthreid-vi-v2.py'
#: The same with MBN in the shared stages and non-local norms.
MBN_AGW_CONFIG = f'{REPO}/configs/mbn/mbn-agw_r18_synthreid-vi-v2.py'


def build_model(config):
    """The model of a shipped config, initialised, seeded."""
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(Config.fromfile(config).model))
    model.init_weights()
    return model


def runner_optimizer(model, optim_wrapper):
    """The optimizer wrapper as ``ReIDRunner`` builds it for ``model``
    (its checks included), without building a whole runner."""
    runner = ReIDRunner.__new__(ReIDRunner)
    runner.model = model
    return runner.build_optim_wrapper(copy.deepcopy(optim_wrapper))


def build_schedulers(optim_wrapper, schedule_cfg, epoch_length):
    """The config's schedulers, built as mmengine's runner builds them
    (``convert_to_iter_based`` with ``len(train_dataloader)``)."""
    built = []
    for item in copy.deepcopy(schedule_cfg):
        item = dict(item)
        if item.pop('convert_to_iter_based', False):
            cls = PARAM_SCHEDULERS.get(item.pop('type'))
            built.append(
                cls.build_iter_from_epoch(
                    optim_wrapper, epoch_length=epoch_length, **item))
        else:
            built.append(
                PARAM_SCHEDULERS.build(dict(item, optimizer=optim_wrapper)))
    return built


def vi_batch(n=16, height=64, width=32):
    """A training batch of 4 identities x 4 images, alternately visible
    and infrared."""
    inputs = [
        torch.randint(0, 256, (3, height, width), dtype=torch.uint8)
        for _ in range(n)
    ]
    samples = []
    for i in range(n):
        sample = ReIDDataSample().set_gt_label(i // 4)
        sample.set_metainfo(dict(modality=i % 2))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def group_of(optim_wrapper, model):
    """``{parameter name: its param group}``."""
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        names[id(p)]: group
        for group in optim_wrapper.optimizer.param_groups
        for p in group['params']
    }


#: mmengine warns when a scheduler steps before the optimizer (no
#: training here: only the schedule is followed).
NO_STEP_WARNING = pytest.mark.filterwarnings(
    'ignore:Detected call of `scheduler.step\\(\\)`')


@pytest.fixture(scope='module')
def agw_model():
    return build_model(AGW_CONFIG)


@NO_STEP_WARNING
def test_agw_schedule_follows_the_reference_epoch_by_epoch(agw_model):
    """A user trains the shipped AGW recipe (agw_sgd_81e.py). By
    mbn_vireid.md section 3.3 the BNNeck and the classifier train at
    0.1 and every other parameter at 0.01, times (e+1)/10 in epochs
    0-9, 1 in 10-19, 0.1 in 20-49 and 0.01 from 50 to 80; SGD with
    weight decay 5e-4 on every parameter, BN included. The schedule is
    epoch-wise (no ``convert_to_iter_based``): one value per epoch."""
    cfg = Config.fromfile(AGW_SCHEDULE)
    optim = runner_optimizer(agw_model, cfg.optim_wrapper)
    groups = group_of(optim, agw_model)
    fast = {'head.bnneck.weight', 'head.classifier.weight'}
    trainable = {n for n, p in agw_model.named_parameters() if p.requires_grad}
    assert fast <= trainable
    assert set(groups) == trainable
    for name, group in groups.items():
        assert group['weight_decay'] == 5e-4, name
        assert group['momentum'] == 0.9 and group['nesterov'], name
    schedulers = build_schedulers(optim, cfg.param_scheduler, 7)
    assert cfg.train_cfg.max_epochs == 81
    for epoch in range(81):
        if epoch < 10:
            factor = (epoch + 1) / 10
        elif epoch < 20:
            factor = 1.0
        elif epoch < 50:
            factor = 0.1
        else:
            factor = 0.01
        for name, group in groups.items():
            base = 0.1 if name in fast else 0.01
            assert group['lr'] == pytest.approx(base * factor), (epoch, name)
        # mmengine's ParamSchedulerHook, after an epoch.
        for scheduler in schedulers:
            assert scheduler.by_epoch
            scheduler.step()


@NO_STEP_WARNING
def test_bot_warm_up_is_linear_over_ten_epochs_of_iterations():
    """A user trains the shipped BoT schedule (bot_adam_120e.py, used by
    every R50 BoT and SNR config). By snr.md section 4 (and the baseline
    README) the rate rises linearly from 0.1 x 3.5e-4 at the first
    iteration to 3.5e-4 at the last iteration of epoch 10
    (``convert_to_iter_based``: a per-iteration ramp), then is x0.1 from
    epoch 40 and x0.01 from epoch 70, for 120 epochs. Adam, weight decay
    5e-4 on every parameter."""
    cfg = Config.fromfile(BOT_SCHEDULE)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    optim = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    assert type(optim.optimizer).__name__ == 'Adam'
    group, = optim.optimizer.param_groups
    assert group['weight_decay'] == 5e-4
    steps = 3
    schedulers = build_schedulers(optim, cfg.param_scheduler, steps)
    warm = 10 * steps
    for epoch in range(cfg.train_cfg.max_epochs):
        for i in range(steps):
            it = epoch * steps + i
            factor = 0.1 + 0.9 * min(it, warm - 1) / (warm - 1)
            factor *= 1.0 if epoch < 40 else 0.1 if epoch < 70 else 0.01
            assert group['lr'] == pytest.approx(3.5e-4 * factor), (epoch, i)
            for scheduler in schedulers:
                if not scheduler.by_epoch:
                    scheduler.step()
        for scheduler in schedulers:
            if scheduler.by_epoch:
                scheduler.step()


def test_frozen_bnneck_bias_gets_no_update_and_the_rest_trains(agw_model):
    """A user trains AGW with its SGD recipe (momentum, Nesterov, weight
    decay on every parameter). The BNNeck bias is frozen at 0
    (mbn_vireid.md section 3.1, snr.md section 2) and AGW's GeM exponent
    is fixed (p = 3): after real optimizer steps they must be unchanged,
    weight decay and momentum included, while every other parameter,
    both modality stems included, has moved."""
    model = copy.deepcopy(agw_model).train()
    cfg = Config.fromfile(AGW_SCHEDULE)
    optim = runner_optimizer(model, cfg.optim_wrapper)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    torch.manual_seed(0)
    data = vi_batch()
    for _ in range(2):
        model.train_step(data, optim)
    frozen = sorted(n for n, p in model.named_parameters()
                    if not p.requires_grad)
    assert frozen == ['head.bnneck.bias', 'neck.p']
    assert torch.count_nonzero(model.head.bnneck.bias) == 0
    assert float(model.neck.p) == 3.0
    for name, param in model.named_parameters():
        moved = not torch.equal(before[name], param.detach())
        assert moved == param.requires_grad, name


def read_lrs(work_dir):
    """``{iteration (1-based): lr}`` of a run's training records in
    ``vis_data/scalars.json`` (the tiny config logs every iteration)."""
    found = {}
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')):
        with open(path, encoding='utf-8') as f:
            for line in f:
                record = json.loads(line)
                if 'lr' in record:
                    found[record['step']] = record['lr']
    return found


#: A warm-up of two epochs (converted to iterations) cut by a x0.1 step
#: at epoch 1: a checkpoint at epoch 1 is in the middle of the warm-up.
MID_WARM_UP = '''
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.1,
         begin=0, end=2),
]
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=10)
'''


def tiny_runner(config, work_dir, **options):
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'hunt_optim_{next(_RUNS)}'
    return ReIDRunner.from_cfg(cfg)


def test_resume_in_the_middle_of_the_warm_up_logs_the_scheduled_lr(
        tmp_path, synth_root):
    """A user's run stops after epoch 1 of a two-epoch warm-up and is
    resumed from ``epoch_1.pth``. The logged (and trained) rate of
    iteration i (0-based, L steps an epoch) is by definition
    3.5e-4 x (0.1 + 0.9 i / (2L - 1)) x (0.1 from epoch 1), in the run
    that went through and in the resumed one alike."""
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root, MID_WARM_UP)
    tiny_runner(config, tmp_path / 'full').train()
    full = read_lrs(tmp_path / 'full')
    steps = len(full) // 2
    assert steps >= 2 and sorted(full) == list(range(1, 2 * steps + 1))

    def expected(it):
        factor = 0.1 + 0.9 * it / (2 * steps - 1)
        return 3.5e-4 * factor * (0.1 if it >= steps else 1.0)

    for step, lr in full.items():
        assert lr == pytest.approx(expected(step - 1)), step
    tiny_runner(
        config,
        tmp_path / 'resumed',
        resume=True,
        load_from=str(tmp_path / 'full' / 'epoch_1.pth')).train()
    resumed = read_lrs(tmp_path / 'resumed')
    assert sorted(resumed) == list(range(steps + 1, 2 * steps + 1))
    for step, lr in resumed.items():
        assert lr == pytest.approx(expected(step - 1)), step


def test_norm_decay_mult_reaches_the_mbn_affine():
    """A user compares BN and MBN AGW (the MBN paper's ablation) with
    ``optim_wrapper.paramwise_cfg = dict(norm_decay_mult=0.)``, no weight
    decay on normalisation layers. In the BN model every BN affine gets
    weight decay 0; in the MBN model the shared affine gamma, beta of the
    MBN layers (a normalisation layer, mbn_vireid.md section 2: a BN whose
    statistics are per modality) keep the full 5e-4, silently, so the two
    arms of the comparison train with different regularisation. Right:
    every MBN affine gets 5e-4 x 0 = 0, as the BNs do (or the setting is
    refused, naming it)."""
    cfg = Config.fromfile(MBN_AGW_CONFIG)
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg['paramwise_cfg'] = dict(norm_decay_mult=0.)
    model = MODELS.build(copy.deepcopy(cfg.model))
    try:
        optim = runner_optimizer(model, optim_cfg)
    except (ValueError, TypeError) as error:
        assert 'norm_decay_mult' in str(error)
        return
    groups = group_of(optim, model)
    affine = [
        f'{prefix}.{name}' for prefix, module in model.named_modules()
        if isinstance(module, MBN)
        for name, _ in module.named_parameters(recurse=False)
    ]
    assert len(affine) > 20
    plain = [
        n for n, m in model.named_modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    assert plain and all(groups[f'{n}.weight']['weight_decay'] == 0
                         for n in plain if f'{n}.weight' in groups)
    decayed = [n for n in affine if groups[n]['weight_decay'] != 0]
    assert not decayed, decayed[:4]


#: The AGW reference's parameter groups as mbn_vireid.md section 3.3
#: maps them to mmengine: ``custom_keys`` 'bottleneck' (the reference
#: code's name for the BNNeck; mmreid's is ``head.bnneck``).
SPEC_AGW_KEYS = dict(custom_keys={
    'bottleneck': dict(lr_mult=10),
    'classifier': dict(lr_mult=10)
})


def test_custom_key_matching_no_parameter_is_refused(agw_model):
    """A user writes the AGW optimizer as mbn_vireid.md section 3.3 gives
    its mmengine equivalent, ``custom_keys={'bottleneck': lr_mult=10,
    'classifier': lr_mult=10}``. mmreid's BNNeck is ``head.bnneck``: no
    parameter name contains 'bottleneck', so the BNNeck trains at 0.01
    instead of the recipe's 0.1, without a word. Right: a key that
    selects no parameter is refused, naming it (bad input gets a clear
    error naming the key)."""
    cfg = Config.fromfile(AGW_SCHEDULE)
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg['paramwise_cfg'] = SPEC_AGW_KEYS
    with pytest.raises((ValueError, KeyError), match='bottleneck'):
        runner_optimizer(agw_model, optim_cfg)


def test_unknown_paramwise_key_is_refused(agw_model):
    """A user asks for no weight decay on norms and misspells the key,
    ``paramwise_cfg=dict(norm_decay_mul=0.)``. Every BN keeps weight
    decay 5e-4 and the run reports numbers of a recipe the user did not
    ask for. Right: the key is refused, naming it and the keys
    ``paramwise_cfg`` takes."""
    cfg = Config.fromfile(AGW_SCHEDULE)
    optim_cfg = copy.deepcopy(cfg.optim_wrapper)
    optim_cfg['paramwise_cfg'] = dict(norm_decay_mul=0.)
    with pytest.raises((ValueError, KeyError), match='norm_decay_mul'):
        runner_optimizer(agw_model, optim_cfg)


def test_schedule_without_its_hook_is_refused(tmp_path, synth_root):
    """A user's config has ``default_hooks = dict(param_scheduler=None)``
    (mmengine's documented way to leave a default hook out) and the
    shipped ``param_scheduler``. Nothing steps the schedulers: the whole
    run trains at the warm-up's first value, 0.1 x lr (3.5e-5), and logs
    it, while the config promises the warm-up and the decays. mmreid
    refuses the same case for the sampler (no DistSamplerSeedHook, every
    epoch would repeat epoch 0). Right: refused before the first
    iteration, naming ``param_scheduler``."""
    config = write_tiny_config(
        tmp_path / 'tiny.py', synth_root,
        'train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=10)\n'
        'default_hooks = dict(param_scheduler=None)\n')
    runner = tiny_runner(config, tmp_path / 'run')
    with pytest.raises(ValueError, match='param_scheduler'):
        runner.train()
    assert not osp.exists(tmp_path / 'run' / 'epoch_1.pth')
