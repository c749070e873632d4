"""Wrong-number hunt: what a training run logs and selects.

The learning rates a run trains with against the ones it logs and scales,
the validation records of ``vis_data/scalars.json`` and the checkpoints
``CheckpointHook(save_best=...)`` keeps. Each run is a tiny SynthReID
training (``tests/fixtures/tiny_config.py``, 5 iterations an epoch); a
hook records what the optimizer and the model really held, and every
expected value is computed here from its definition.

The tests of defects (fixed since) assert the correct behaviour and fail
on the code before each fix.
"""
import glob
import itertools
import json
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from mmreid.engine.runner import ReIDRunner
from mmreid.registry import HOOKS
from mmreid.utils import load_trusted_checkpoint
from ..fixtures.multi_target import TWO_DISTANCE_TARGETS
from ..fixtures.tiny_config import write_tiny_config

_RUNS = itertools.count()

#: What :class:`HuntLoggingRecorder` saw, reset by :func:`train`.
RECORDED = dict(iters=[], vals=[])


class _Stop(Exception):
    """Raised by the recorder to end a run after its first iteration."""


@HOOKS.register_module(force=True)
class HuntLoggingRecorder(Hook):
    """Record each iteration's learning rates as the optimizer held them
    when it stepped, and the model's weights after each validation.

    Args:
        stop_after_first (bool): End the run (with :class:`_Stop`) right
            before its first iteration, once its rates are recorded.
    """

    # After every other hook: CheckpointHook (VERY_LOW) has saved the best
    # checkpoint of a validation when after_val_epoch comes here.
    priority = 'LOWEST'

    def __init__(self, stop_after_first=False):
        self.stop_after_first = stop_after_first

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        groups = runner.optim_wrapper.optimizer.param_groups
        RECORDED['iters'].append(dict(
            epoch=runner.epoch + 1,
            step=runner.iter + 1,
            lrs=[group['lr'] for group in groups]))
        if self.stop_after_first:
            raise _Stop()

    def after_val_epoch(self, runner, metrics=None):
        model = runner.model
        RECORDED['vals'].append(dict(
            epoch=runner.epoch,
            iter=runner.iter,
            state={k: v.detach().clone()
                   for k, v in model.state_dict().items()}))


def train(root, synth_root, extra, stop_after_first=False):
    """Train the tiny config with ``extra`` lines in ``root / 'run'``.

    Returns:
        str: The work dir.
    """
    RECORDED['iters'].clear()
    RECORDED['vals'].clear()
    config = write_tiny_config(root / 'tiny.py', synth_root, extra)
    cfg = Config.fromfile(config)
    cfg.work_dir = str(root / 'run')
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
        dict(type='HuntLoggingRecorder', stop_after_first=stop_after_first)
    ]
    # One name per runner: mmengine keys its logger and message hub by it.
    cfg.experiment_name = f'hunt_logging_{next(_RUNS)}'
    ReIDRunner.from_cfg(cfg).train()
    return cfg.work_dir


def scalars(work_dir):
    """The records of the run's ``<stamp>/vis_data/scalars.json``."""
    (path, ) = glob.glob(osp.join(work_dir, '*', 'vis_data',
                                  'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# ---------------------------------------------------------------------------
# The learning rate: logged, trained with, scaled
# ---------------------------------------------------------------------------
PARAMWISE = """
optim_wrapper = dict(
    optimizer=dict(lr=0.001),
    paramwise_cfg=dict(custom_keys={'head.classifier': dict(lr_mult=10)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[2], gamma=0.1),
]
train_cfg = dict(by_epoch=True, max_epochs=3, val_interval=3)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=3))
"""


def test_logged_lr_and_base_lr_are_the_rates_the_groups_trained_with(
        tmp_path, synth_root):
    """``lr`` and ``base_lr`` of every training line are the rates used.

    What the user does: trains with a x10 classifier
    (``paramwise_cfg``, as the AGW schedule), a warm-up converted to
    iterations and a step decay by epoch, and reads ``lr`` and
    ``base_lr`` from ``scalars.json`` (the log's legend: ``lr`` is the
    first parameter group's, ``base_lr`` the optimizer's rate, that of the
    groups without a multiplier; docs/visualization.md, "What a log line
    shows").

    What is right: at each iteration, the rate the backbone's groups
    stepped with, recorded from the optimizer before the step; the
    classifier at 10 times it; the warm-up reaching the config's 0.001 on
    the last iteration of epoch 1 (``end - begin - 1`` steps, as
    docs/get_started.md says) and the x0.1 decay from epoch 3 on (the
    milestone after epoch 2).
    """
    work_dir = train(tmp_path, synth_root, PARAMWISE)
    train_lines = [r for r in scalars(work_dir) if 'loss' in r]
    used = RECORDED['iters']
    assert len(train_lines) == len(used) == 15
    for logged, own in zip(train_lines, used):
        assert logged['step'] == own['step']
        rates = sorted(set(own['lrs']))
        # Two rates in use: the groups without a multiplier and x10.
        assert len(rates) == 2 and rates[1] == pytest.approx(10 * rates[0])
        assert logged['lr'] == pytest.approx(own['lrs'][0], rel=1e-12)
        assert logged['lr'] == pytest.approx(rates[0], rel=1e-12)
        assert logged['base_lr'] == pytest.approx(rates[0], rel=1e-12)
    base = [min(own['lrs']) for own in used]
    # Warm-up: from 0.1 x lr, linear, at the full rate on iteration 5.
    assert base[0] == pytest.approx(1e-4)
    assert base[4] == pytest.approx(1e-3)
    steps = [b - a for a, b in zip(base[:4], base[1:5])]
    assert steps == pytest.approx([steps[0]] * 4)
    assert base[5:10] == pytest.approx([1e-3] * 5)
    assert base[10:] == pytest.approx([1e-4] * 5)


ACCUMULATED = """
optim_wrapper = dict(accumulative_counts=8)
auto_scale_lr = dict(base_batch_size=64, enable=True)
param_scheduler = []
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
"""


def test_auto_scale_lr_counts_the_accumulated_batch(tmp_path, synth_root):
    """``--auto-scale-lr`` scales by the images of one optimizer update.

    What the user does: the BoT recipe's batch is 64 images (16
    identities x 4; ``auto_scale_lr.base_batch_size=64``). Short of GPU
    memory, they take 8 images a step and accumulate 8 steps a update
    (``optim_wrapper.accumulative_counts=8``, mmengine's gradient
    accumulation: each update averages the gradients of 64 images) and
    pass ``--auto-scale-lr`` so the rate follows the batch.

    What they get: the rate is divided by 8 (0.00035 x 8 / 64 =
    4.375e-05), and the run logs ``batch per step: 8 images per process x
    1 process = 8; lr 4.375e-05 = the config's 0.00035 x 8 / 64``: the
    recipe trained at an eighth of its rate, silently.

    What is right: the linear scaling rule (Goyal et al., 2017,
    "Accurate, Large Minibatch SGD", section 2.1) scales the rate with the
    minibatch of one SGD update: processes x batch_size x
    accumulative_counts = 64 here, the base, so the rate stays the
    config's 0.00035 (or the combination is refused, naming
    ``accumulative_counts``).
    """
    with pytest.raises(ValueError) as info:
        train(tmp_path, synth_root, ACCUMULATED, stop_after_first=True)
    assert 'auto_scale_lr with optim_wrapper.accumulative_counts=8' in \
        str(info.value)
    assert RECORDED['iters'] == []  # refused before the first step


# ---------------------------------------------------------------------------
# Validation records and the best checkpoint
# ---------------------------------------------------------------------------
ITER_BASED = """
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=3),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=6,
                 val_interval=3)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=3, by_epoch=False))
"""


@pytest.fixture(scope='module')
def iteration_based(tmp_path_factory, synth_root):
    """One iteration-based run of the tiny config (6 iterations of an
    epoch of 5, validating after iterations 3 and 6), written as a user
    would on ``_base_/default_runtime.py``: ``train_cfg`` and schedulers
    in iterations, logging left as the base sets it.

    Returns:
        dict: ``work_dir`` and the recorded ``vals``, or ``refused``: the
        message of a refusal before training.
    """
    root = tmp_path_factory.mktemp('hunt_logging_iter')
    try:
        work_dir = train(root, synth_root, ITER_BASED)
    except ValueError as error:
        return dict(refused=str(error))
    return dict(work_dir=work_dir, vals=list(RECORDED['vals']))


def test_iteration_based_validations_are_logged_at_their_iteration(
        iteration_based):
    """Each validation of an iteration-based run is logged at its step.

    What the user does: trains with an ``IterBasedTrainLoop``
    (``max_iters=6``, ``val_interval=3``; docs/get_started.md describes
    its schedule checks) and plots ``reid/mAP`` over training from
    ``vis_data/scalars.json`` or TensorBoard (``--vis-backend``).

    What they get: both validations written with ``"step": 0``. mmengine's
    ``LoggerHook`` logs validation metrics at ``runner.epoch`` unless
    ``log_metric_by_epoch=False``, and an iteration-based loop never
    advances its epoch; the run says nothing (only
    ``tools/analysis_tools/run_records.py`` refuses such a run later).
    A curve of validation scores collapses onto one step, and which
    iteration a score belongs to cannot be read back.

    What is right: the validation after iteration 3 is logged at step 3,
    the one after iteration 6 at step 6, the unit of the training records
    of the same file (or the config is refused before training, naming
    ``log_metric_by_epoch``).
    """
    if 'refused' in iteration_based:
        assert 'log_metric_by_epoch' in iteration_based['refused']
        return
    assert [v['iter'] for v in iteration_based['vals']] == [3, 6]
    records = scalars(iteration_based['work_dir'])
    assert [r['step'] for r in records if 'loss' in r] == list(range(1, 7))
    assert [r['step'] for r in records if 'reid/mAP' in r] == [3, 6]


def test_iteration_based_training_lines_count_the_run_s_iterations(
        iteration_based):
    """The batch counter of an iteration-based run's lines is right.

    What the user does: the run above, reading its training lines for
    how far it got.

    What they get: ``Epoch(train) [1][6/5]`` on the last line (mmreid's
    ``_base_/default_runtime.py`` sets ``log_processor.by_epoch=True``,
    and mmengine then shows the loop's iteration over the length of the
    dataloader, in an epoch that never advances), ``Epoch(val) [0]`` for
    the validations; nothing refuses or corrects it.

    What is right: a counter ``[i/n]`` has ``i <= n``, and the last
    training line counts iteration 6 of the run's 6 (``Iter(train)
    [6/6]``), or the config is refused before training, naming
    ``log_processor.by_epoch``.
    """
    if 'refused' in iteration_based:
        assert 'log_processor' in iteration_based['refused']
        return
    work_dir = iteration_based['work_dir']
    (log, ) = glob.glob(osp.join(work_dir, '*', '*.log'))
    with open(log) as f:
        lines = [line for line in f if '(train)' in line]
    counters = [[(int(i), int(n))
                 for i, n in re.findall(r'\[\s*(\d+)/(\d+)\]', line)]
                for line in lines]
    assert len(counters) == 6
    for line, found in zip(lines, counters):
        assert found and all(i <= n for i, n in found), line
    assert counters[-1][-1] == (6, 6), lines[-1]


MULTI_TARGET_BEST = TWO_DISTANCE_TARGETS.format(first='d2') + """
optim_wrapper = dict(optimizer=dict(lr=0.01))
param_scheduler = []
train_cfg = dict(by_epoch=True, max_epochs=3, val_interval=2)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1,
                    save_best=['mean/mAP', 'd0/R1'], rule='greater'))
"""


def test_best_checkpoints_of_a_multi_target_run_follow_the_logged_metrics(
        tmp_path, synth_root):
    """The kept ``best_*.pth`` are the epochs the logged keys select.

    What the user does: a multi-target run validating every 2 of 3 epochs
    keeps the best checkpoint by ``mean/mAP`` and by ``d0/R1``
    (docs/visualization.md, "Keeping the best checkpoint") and the last
    checkpoint only (``max_keep_ckpts=1``).

    What is right: validations after epochs 2 and 3 (mmengine validates
    the last epoch whatever ``val_interval``); ``mean/mAP`` the mean of
    the targets' mAP (the ``mean`` row: every target alike); for each
    key, ``best_<key>_epoch_<e>.pth`` with ``e`` the first epoch of the
    highest logged value (rule ``greater``: a tie keeps the earlier
    epoch), holding the weights validated then; besides them only
    ``epoch_3.pth``.
    """
    work_dir = train(tmp_path, synth_root, MULTI_TARGET_BEST)
    vals = [r for r in scalars(work_dir) if 'd2/mAP' in r]
    assert [r['step'] for r in vals] == [2, 3]
    assert [v['epoch'] for v in RECORDED['vals']] == [2, 3]
    for record in vals:
        assert record['mean/mAP'] == pytest.approx(
            (record['d2/mAP'] + record['d0/mAP']) / 2, rel=1e-12)
    expected = {'epoch_3.pth', 'last_checkpoint', 'tiny.py'}
    for key in ('mean/mAP', 'd0/R1'):
        scores = [r[key] for r in vals]
        best = scores.index(max(scores))
        epoch = vals[best]['step']
        name = f"best_{key.replace('/', '_')}_epoch_{epoch}.pth"
        expected.add(name)
        checkpoint = load_trusted_checkpoint(osp.join(work_dir, name))
        assert checkpoint['meta']['epoch'] == epoch
        validated = RECORDED['vals'][best]['state']
        for param, value in checkpoint['state_dict'].items():
            assert torch.equal(value, validated[param]), (key, param)
    kept = {
        osp.basename(p)
        for p in glob.glob(osp.join(work_dir, '*'))
        if not osp.isdir(p)
    }
    assert kept == expected
