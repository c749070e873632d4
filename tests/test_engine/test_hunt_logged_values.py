"""Wrong-number hunt: the values a training run logs.

What a run writes to its log and ``<stamp>/vis_data/scalars.json`` (the
same tags go to TensorBoard and W&B), checked against the definitions of
docs/visualization.md ("What a log line shows") and the log's own legend
(``ReIDLogProcessor.train_line_legend``). Each run is the tiny SynthReID
config (``tests/fixtures/tiny_config.py``, 5 iterations an epoch); a hook
or the model records what each iteration really computed, and every
expected value is computed here from that record.

The tests of defects (fixed since) assert the correct behaviour and fail
on the code before each fix.
"""
import glob
import itertools
import json
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.structures import BaseDataElement

from mmreid.engine.runner import ReIDRunner
from mmreid.models.reiders.reid_model import ReIDModel
from mmreid.registry import HOOKS, MODELS
from ..fixtures.tiny_config import write_tiny_config

_RUNS = itertools.count()

#: What the hooks and models of this module saw, reset by :func:`train`.
RECORDED = dict(outputs=[], val_losses=[], norms=[])


@HOOKS.register_module(force=True)
class HuntLoggedValuesRecorder(Hook):
    """Record each training iteration's own outputs (the loss terms and
    measurements of that batch alone) and, when the optimizer clips, the
    norm of the gradients it is about to clip."""

    def before_train(self, runner):
        wrapper = runner.optim_wrapper
        clip = getattr(wrapper, 'clip_func', None)
        if clip is None:
            return

        def recording_clip(params, **kwargs):
            params = list(params)
            squares = sum(
                float(p.grad.double().pow(2).sum()) for p in params
                if p.grad is not None)
            RECORDED['norms'].append((runner.iter + 1, math.sqrt(squares)))
            return clip(params, **kwargs)

        wrapper.clip_func = recording_clip

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        RECORDED['outputs'].append(
            {k: float(torch.as_tensor(v).detach())
             for k, v in outputs.items()})


@MODELS.register_module(force=True)
class HuntValLossModel(ReIDModel):
    """A ``ReIDModel`` whose ``val_step`` also returns a loss, as mmengine's
    ``ValLoop`` collects it (a ``BaseDataElement`` with ``loss`` last).

    The loss of a batch is the number of validation batches before it, so
    the mean of each validation is known exactly from the record.
    """

    def val_step(self, data):
        outputs = super().val_step(data)
        value = float(len(RECORDED['val_losses']))
        RECORDED['val_losses'].append(value)
        loss = BaseDataElement(loss=dict(loss_cls=torch.tensor(value)))
        return list(outputs) + [loss]


def train(root, synth_root, extra):
    """Train the tiny config with ``extra`` lines in ``root / 'run'``.

    Returns:
        list[dict]: The records of the run's ``scalars.json``.
    """
    for record in RECORDED.values():
        record.clear()
    config = write_tiny_config(root / 'tiny.py', synth_root, extra)
    cfg = Config.fromfile(config)
    cfg.work_dir = str(root / 'run')
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
        dict(type='HuntLoggedValuesRecorder')
    ]
    # One name per runner: mmengine keys its logger and message hub by it.
    cfg.experiment_name = f'hunt_logged_values_{next(_RUNS)}'
    ReIDRunner.from_cfg(cfg).train()
    (path, ) = glob.glob(osp.join(cfg.work_dir, '*', 'vis_data',
                                  'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def window_mean(own, key, step, window=10):
    """The mean of ``key`` over the iterations of the window of ``step``
    (the last ``window`` iterations, ``step`` included) that logged it.

    Returns:
        float | None: None when none of them did.
    """
    values = [o[key] for o in own[max(0, step - window):step] if key in o]
    return sum(values) / len(values) if values else None


# ---------------------------------------------------------------------------
# Validation losses
# ---------------------------------------------------------------------------
VAL_LOSSES = """
model['type'] = 'HuntValLossModel'
param_scheduler = []
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=2,
                 val_interval=1)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=2))
"""


def test_each_validation_logs_its_own_validation_losses(
        tmp_path, synth_root):
    """A validation's losses are that validation's, not a running mean.

    What the user does: their model's ``val_step`` returns a loss besides
    the predictions (mmengine's ``ValLoop`` protocol, which
    ``ReIDValLoop`` keeps: a ``BaseDataElement(loss=...)`` last), and they
    validate after each iteration of a 2-iteration run, reading ``loss_cls``
    and ``val_loss`` from each validation's line of ``scalars.json``
    (and the log, and TensorBoard).

    What they get: the first validation's value, then the mean of the
    first two validations: mmreid's
    ``mean_pattern`` (``TRAINING_MEAN_PATTERN``, meant for the training
    keys, "which have no ``/``") matches ``loss_cls`` and ``val_loss``,
    which a single-target validation logs without a prefix, and
    mmengine's ``LogProcessor`` then logs the mean of the last
    ``window_size`` (10) validations. A validation loss that falls reads
    as falling more slowly, one that rises as flat.

    What is right: each validation's ``loss_cls`` is the mean over its
    own batches (mmengine's ``_parse_losses``: a validation's loss is the
    mean of its batches' losses), and ``val_loss`` the sum of its loss
    terms; docs/visualization.md: the losses a ``val_step`` returns are
    per validation (per target in a multi-target loop), and the log
    processor's comment: "every evaluation key ... is logged as
    computed". Computed here from the per-batch values the model
    recorded.
    """
    records = train(tmp_path, synth_root, VAL_LOSSES)
    vals = [r for r in records if 'reid/mAP' in r]
    assert [r['step'] for r in vals] == [1, 2]
    losses = RECORDED['val_losses']
    assert len(losses) % 2 == 0
    per_val = len(losses) // 2
    for i, record in enumerate(vals):
        own = losses[i * per_val:(i + 1) * per_val]
        expected = sum(own) / len(own)
        assert record['loss_cls'] == pytest.approx(expected), i
        assert record['val_loss'] == pytest.approx(expected), i


# ---------------------------------------------------------------------------
# Measurements a batch may leave out
# ---------------------------------------------------------------------------
GMN_REPLACE = """
model['type'] = 'GMNReID'
model['head'] = dict(type='GMNHead', in_channels=64, num_classes=8,
                     mnet=dict(hidden_channels=16),
                     dp=dict(mode='replace', warmup_epochs=1))
custom_hooks = [dict(type='GMNDPWarmupHook')]
val_cfg = val_dataloader = val_evaluator = None
test_evaluator = dict(type='ReIDMetric')
param_scheduler = []
log_processor = dict(window_size=2)
train_cfg = dict(by_epoch=True, max_epochs=2)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=2))
"""


def test_a_measurement_the_window_lacks_is_not_logged(tmp_path, synth_root):
    """GMN's M-Net accuracies are not logged once no batch measures them.

    What the user does: trains GMN with DP in replace mode
    (``head.dp.mode='replace'``, on from epoch 2 here,
    ``warmup_epochs=1``), a smoothing window of 2 iterations
    (``log_processor.window_size=2``), and plots ``mnet_acc`` from
    ``scalars.json`` to see how the M-Net learns.

    What they get: after DP is on, every training line still carries
    ``mnet_acc``, ``mnet_pos_acc`` and ``mnet_neg_acc``, frozen at the
    mean of the last iterations of epoch 1, to the end of the run
    (mmengine's running mean is over the last ``window_size`` values the
    key ever had, however old): a flat curve at a number no batch of
    those iterations measured.

    What is right: configs/gmn/README.md: with ``dp.mode='replace'`` "no
    clean pair reaches the M-Net once DP is on, and all three are left
    out"; docs/visualization.md: the measurements a batch may leave out
    are means "over the iterations of the window that logged them", so a
    line whose window holds no such iteration has no value for them
    (left out, not an earlier one). Computed here from each iteration's
    own outputs.
    """
    records = train(tmp_path, synth_root, GMN_REPLACE)
    lines = [r for r in records if 'loss' in r]
    own = RECORDED['outputs']
    assert len(lines) == len(own) == 10
    # DP off in epoch 1 (every batch measures), on in epoch 2 (none does).
    assert [o['dp_on'] for o in own] == [0.0] * 5 + [1.0] * 5
    assert all('mnet_acc' in o for o in own[:5])
    assert not any('mnet_acc' in o for o in own[5:])
    for step, logged in enumerate(lines, 1):
        assert logged['step'] == step
        for key in ('mnet_acc', 'mnet_pos_acc', 'mnet_neg_acc'):
            expected = window_mean(own, key, step, window=2)
            if expected is None:
                assert key not in logged, (step, key, logged.get(key))
            else:
                assert logged[key] == pytest.approx(expected), (step, key)


# ---------------------------------------------------------------------------
# Behaviour a logged number depends on (test gaps; correct today)
# ---------------------------------------------------------------------------
WEIGHTED = """
optim_wrapper = dict(accumulative_counts=2, clip_grad=dict(max_norm=1e6))
param_scheduler = []
train_cfg = dict(by_epoch=True, max_epochs=1)
val_cfg = val_dataloader = val_evaluator = None
log_processor = dict(window_size=3)
"""
WEIGHTS = """loss_cls=dict(type='ReIDCrossEntropyLoss', label_smooth_eps=0.1,
                  loss_weight=0.5),
    loss_tri=dict(type='TripletLoss', margin=0.3, loss_weight=2.0)"""


@HOOKS.register_module(force=True)
class HuntHeadInputs(Hook):
    """Keep, per training iteration, the head's pooled features ``f_t``,
    its logits and the batch's labels (forward hooks of the model)."""

    def before_train(self, runner):
        self.seen = []
        RECORDED['head'] = self.seen

        def keep(name):

            def hook(module, args, out):
                if module.training:  # not the validation's forwards
                    out = out[-1] if isinstance(out, (tuple, list)) else out
                    self.seen[-1][name] = out.detach().double()

            return hook

        runner.model.head.classifier.register_forward_hook(keep('logits'))
        runner.model.neck.register_forward_hook(keep('f_t'))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        labels = torch.cat([s.gt_label for s in data_batch['data_samples']])
        self.seen.append(dict(labels=labels))


def reference_losses(seen, eps=0.1, margin=0.3):
    """Label-smoothed cross-entropy and batch-hard triplet loss of one
    batch, from their definitions (Szegedy et al. 2016, section 7;
    Hermans et al. 2017, eq. 5)."""
    logits, labels, feats = seen['logits'], seen['labels'], seen['f_t']
    num = logits.size(1)
    target = torch.full_like(logits, eps / num)
    target[torch.arange(len(labels)), labels] += 1 - eps
    cross_entropy = -(target * logits.log_softmax(1)).sum(1).mean()
    dist = (feats[:, None] - feats[None]).pow(2).sum(-1).clamp(
        min=1e-12).sqrt()
    same = labels[:, None] == labels[None]
    hardest_pos = dist.masked_fill(~same, -1).max(1).values
    hardest_neg = dist.masked_fill(same, float('inf')).min(1).values
    triplet = (hardest_pos - hardest_neg + margin).clamp(min=0).mean()
    return float(cross_entropy), float(triplet)


def test_logged_loss_terms_carry_their_loss_weights(tmp_path, synth_root):
    """``loss_cls`` and ``loss_tri`` are weighted; ``loss`` is their sum.

    What the user does: weighs the identity loss by 0.5 and the triplet
    loss by 2 (``loss_weight``), accumulates the gradients of 2 batches
    per update (``optim_wrapper.accumulative_counts=2``) and reads the
    terms of the training lines (``log_processor.window_size=3``).

    What is right: each iteration's ``loss_cls`` is 0.5 x the
    label-smoothed cross-entropy of its logits, ``loss_tri`` 2 x the
    batch-hard triplet loss (margin 0.3) of its pooled features, ``loss``
    their sum (what mmengine back-propagates, divided by
    ``accumulative_counts`` for the backward only: the logged loss is the
    batch's, comparable with a run without accumulation); each line shows
    their means over the last 3 iterations (docs/visualization.md, "What
    a log line shows"). The losses are computed here from the head's
    inputs of the same forward. ``grad_norm`` (logged with ``clip_grad``,
    here too large to clip) comes from the updates only, iterations 2, 4
    and 5 (the epoch's last): each line's is the mean over the updates of
    its 3 iterations, and the line of iteration 1, whose window has none,
    leaves it out (docs/visualization.md; mmengine's mean of the last 3
    updates spanned up to 6 iterations).
    """
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root, WEIGHTED,
                               head_extra=WEIGHTS)
    cfg = Config.fromfile(config)
    cfg.work_dir = str(tmp_path / 'run')
    cfg.custom_hooks = [
        dict(type='HuntHeadInputs'),
        dict(type='HuntLoggedValuesRecorder')
    ]
    cfg.experiment_name = f'hunt_logged_values_{next(_RUNS)}'
    for record in RECORDED.values():
        record.clear()
    ReIDRunner.from_cfg(cfg).train()
    (path, ) = glob.glob(osp.join(cfg.work_dir, '*', 'vis_data',
                                  'scalars.json'))
    with open(path) as f:
        lines = [r for r in map(json.loads, f) if 'loss' in r]
    own = RECORDED['outputs']
    assert len(lines) == len(own) == len(RECORDED['head']) == 5
    for seen, out in zip(RECORDED['head'], own):
        cross_entropy, triplet = reference_losses(seen)
        assert out['loss_cls'] == pytest.approx(0.5 * cross_entropy,
                                                rel=1e-5)
        assert out['loss_tri'] == pytest.approx(2.0 * triplet, rel=1e-5)
        assert out['loss'] == pytest.approx(
            0.5 * cross_entropy + 2.0 * triplet, rel=1e-5)
    for step, logged in enumerate(lines, 1):
        assert logged['step'] == step
        for key in ('loss', 'loss_cls', 'loss_tri'):
            assert logged[key] == pytest.approx(
                window_mean(own, key, step, window=3), rel=1e-6), (step, key)
    assert [step for step, _ in RECORDED['norms']] == [2, 4, 5]
    updates = [dict() for _ in own]
    for step, norm in RECORDED['norms']:
        updates[step - 1]['grad_norm'] = norm
    for step, logged in enumerate(lines, 1):
        expected = window_mean(updates, 'grad_norm', step, window=3)
        if expected is None:
            assert 'grad_norm' not in logged, step
        else:
            assert logged['grad_norm'] == pytest.approx(
                expected, rel=1e-5), step


CLIPPED = """
optim_wrapper = dict(clip_grad=dict(max_norm=0.5))
param_scheduler = []
train_cfg = dict(by_epoch=True, max_epochs=1)
val_cfg = val_dataloader = val_evaluator = None
log_processor = dict(window_size=2)
"""


def test_logged_grad_norm_is_the_norm_before_clipping(tmp_path, synth_root):
    """``grad_norm`` is the total gradient norm clipping was applied to.

    What the user does: clips the gradients
    (``optim_wrapper.clip_grad=dict(max_norm=0.5)``) and reads
    ``grad_norm`` from the training lines to see how often, and how much,
    clipping bites (``log_processor.window_size=2``).

    What is right: the total 2-norm of all parameter gradients of the
    update before they are clipped (``torch.nn.utils.clip_grad_norm_``
    returns it: a logged norm at or below ``max_norm`` would say that
    nothing was clipped), averaged over the last 2 iterations (the
    legend: ``grad_norm`` is one of the running means). Recomputed here
    from the gradients handed to the clipping function.
    """
    records = train(tmp_path, synth_root, CLIPPED)
    lines = [r for r in records if 'loss' in r]
    norms = RECORDED['norms']
    assert [step for step, _ in norms] == [1, 2, 3, 4, 5]
    assert all(norm > 0.5 for _, norm in norms)  # every update clipped
    own = [dict(grad_norm=norm) for _, norm in norms]
    assert [r['step'] for r in lines] == [1, 2, 3, 4, 5]
    for step, logged in enumerate(lines, 1):
        assert logged['grad_norm'] == pytest.approx(
            window_mean(own, 'grad_norm', step, window=2), rel=1e-5)


TWO_EPOCHS = """
param_scheduler = []
train_cfg = dict(by_epoch=True, max_epochs=2)
val_cfg = val_dataloader = val_evaluator = None
"""


def test_a_resumed_run_logs_the_lines_of_the_run_that_went_through(
        tmp_path, synth_root):
    """The running means of a resumed run span the resume.

    What the user does: a two-epoch run is stopped after epoch 1 and
    resumed from ``epoch_1.pth`` (``--resume``); they plot the losses of
    the resumed run's ``scalars.json``.

    What is right: its training lines are steps 6 to 10, once each, and
    hold the values of the run that went through: the same loss terms,
    their means over the last 10 iterations reaching back into epoch 1
    (the window the legend defines, whatever the process that ran them),
    and the same accuracy and rate (the resume is deterministic here:
    ``randomness.deterministic``, ``TrainRandomStateHook``).
    """
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root, TWO_EPOCHS)

    def run(work_dir, **options):
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(options)
        cfg.work_dir = str(tmp_path / work_dir)
        cfg.experiment_name = f'hunt_logged_values_{next(_RUNS)}'
        ReIDRunner.from_cfg(cfg).train()
        (path, ) = glob.glob(osp.join(cfg.work_dir, '*', 'vis_data',
                                      'scalars.json'))
        with open(path) as f:
            return [r for r in map(json.loads, f) if 'loss' in r]

    straight = run('straight')
    resumed = run('resumed', resume=True,
                  load_from=str(tmp_path / 'straight' / 'epoch_1.pth'))
    assert [r['step'] for r in straight] == list(range(1, 11))
    assert [r['step'] for r in resumed] == list(range(6, 11))
    for again, first in zip(resumed, straight[5:]):
        assert (again['epoch'], again['iter']) == (first['epoch'],
                                                   first['iter'])
        for key in ('loss', 'loss_cls', 'loss_tri', 'accuracy', 'lr'):
            assert again[key] == pytest.approx(first[key], rel=1e-6), (
                again['step'], key)


def test_hierarchical_tags_carry_the_means_the_line_shows(monkeypatch):
    """``log_with_hierarchy=True`` logs the means as the line does.

    What the user does: sets ``log_processor.log_with_hierarchy=True`` to
    get ``train/loss`` (not ``loss``) in TensorBoard and
    ``scalars.json``.

    What they got: ``train/loss`` was the iteration's own loss while the
    log line showed the mean of the window: mmengine matches
    ``mean_pattern`` against the prefixed key, which
    ``TRAINING_MEAN_PATTERN`` (keys without ``/``) does not match.

    What is right: the same mean as the line (the legend: the loss is a
    mean over the last ``window_size`` iterations), whatever the tag.
    """
    from types import SimpleNamespace

    from mmengine.logging import MessageHub

    from mmreid.engine.runner import ReIDLogProcessor
    from mmreid.engine.runner import log_processor as module
    monkeypatch.setattr(module, 'print_log', lambda *args, **kwargs: None)
    hub = MessageHub.get_instance('hierarchical_tags_carry_the_means')
    for loss in (2.0, 4.0):
        hub.update_scalar('train/loss', loss)
        hub.update_scalar('train/lr', 0.1)
    loop = SimpleNamespace(dataloader=[None] * 5)
    runner = SimpleNamespace(
        message_hub=hub,
        train_loop=loop,
        _train_loop=loop,
        epoch=0,
        iter=1,
        max_epochs=2,
        max_iters=10)
    processor = ReIDLogProcessor(
        window_size=10,
        log_with_hierarchy=True,
        mean_pattern=module.TRAINING_MEAN_PATTERN)
    tag, line = processor.get_log_after_iter(runner, 1, 'train')
    assert tag['train/loss'] == pytest.approx(3.0)
    assert 'loss: 3.0000' in line
