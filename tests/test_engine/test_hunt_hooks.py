"""Wrong-number hunt: the hooks that decide which weights a number is of.

During training mmengine's ``CheckpointHook``, ``EMAHook`` and
``EarlyStoppingHook`` and mmreid's ``RankedListHook``/``EvalReportHook``
decide which weights are validated, saved, drawn and later tested. Each
test trains the tiny SynthReID config (``tests/fixtures/tiny_config.py``,
5 iterations an epoch, a validation set of 7 queries) as a user would and
checks the outputs against numbers computed here from the saved weights
and from the definitions (Zheng et al., "Scalable Person
Re-identification: A Benchmark", ICCV 2015: the Market-1501 mAP).

The tests of defects are marked ``xfail(strict=True)``: they assert the
correct behaviour and pass once the defect is fixed (then XPASS, and the
mark goes).
"""
import glob
import itertools
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate

from mmreid.engine.runner import ReIDRunner
from mmreid.registry import DATASETS, MODELS
from mmreid.utils import load_trusted_checkpoint
from ..fixtures.tiny_config import write_tiny_config

_RUNS = itertools.count()


def build(root, synth_root, extra):
    """A :class:`ReIDRunner` of the tiny config with ``extra`` lines,
    working in ``root / 'run'``, as ``tools/train.py`` builds it."""
    config = write_tiny_config(root / 'tiny.py', synth_root, extra)
    cfg = Config.fromfile(config)
    cfg.work_dir = str(root / 'run')
    # One name per runner: mmengine keys its logger and message hub by it.
    cfg.experiment_name = f'hunt_hooks_{next(_RUNS)}'
    return ReIDRunner.from_cfg(cfg)


def scalars(work_dir):
    """The records of the run's ``<stamp>/vis_data/scalars.json``."""
    (path, ) = glob.glob(osp.join(work_dir, '*', 'vis_data',
                                  'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_log(work_dir):
    """The text of the run's ``<stamp>/<stamp>.log``."""
    (path, ) = glob.glob(osp.join(work_dir, '*', '*.log'))
    with open(path, encoding='utf-8') as f:
        return f.read()


def reference_map(cfg, state_dict):
    """The Market-1501 mAP (in percent) of ``state_dict`` on the config's
    validation set, computed here from its definition.

    Each query ranks the gallery by Euclidean distance of the test
    features (ties by gallery order), without the gallery items of its own
    pid and camera (junk); its AP is the mean over its true matches of
    the precision at their ranks; queries without a true match are left
    out; mAP is the mean over the others.
    """
    model = MODELS.build(cfg.model)
    model.load_state_dict(state_dict)
    model.eval()
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    samples = []
    with torch.no_grad():
        for i in range(len(dataset)):
            (sample, ) = model.test_step(default_collate([dataset[i]]))
            samples.append((sample.pred_feature.reshape(-1).double(),
                            int(sample.gt_label), int(sample.camid),
                            sample.role))
    gallery = [s for s in samples if s[3] == 'gallery']
    aps = []
    for feature, pid, camid, role in samples:
        if role != 'query':
            continue
        kept = [(float((g[0] - feature).norm()), j, g[1])
                for j, g in enumerate(gallery)
                if not (g[1] == pid and g[2] == camid)]
        matches = [g_pid == pid for _, _, g_pid in sorted(kept)]
        if not any(matches):
            continue
        hits = np.cumsum(matches)
        aps.append(
            np.mean([hits[k] / (k + 1) for k in np.flatnonzero(matches)]))
    return 100 * float(np.mean(aps))


# ---------------------------------------------------------------------------
# EMAHook with save_best: validated, saved and tested weights
# ---------------------------------------------------------------------------
EMA_BEST = """
param_scheduler = []
optim_wrapper = dict(optimizer=dict(lr=0.01))
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1,
                    save_best='reid/mAP', rule='greater'))
custom_hooks = [dict(type='EMAHook', momentum=0.5)]
"""


def test_ema_best_checkpoint_scores_the_logged_best(tmp_path, synth_root):
    """With ``EMAHook`` the best checkpoint tests at the logged best mAP.

    What the user does: trains with mmengine's ``EMAHook`` (the averaged
    weights are validated; docs/get_started.md, section 6: the
    checkpoint's ``state_dict`` holds them) and keeps the best epoch by
    ``save_best='reid/mAP'`` (docs/visualization.md, "Keeping the best
    checkpoint"), then tests ``best_reid_mAP_epoch_<e>.pth``.

    What is right: ``e`` is the epoch of the highest logged ``reid/mAP``,
    and the mAP of that file's ``state_dict``, computed here from the
    definition on the same validation set, is the logged value; the last
    epoch's checkpoint likewise scores its own logged value (the weights
    saved are the ones validated, averaged, not the raw ones).
    """
    runner = build(tmp_path, synth_root, EMA_BEST)
    runner.train()
    work_dir = runner.work_dir
    logged = {r['step']: r['reid/mAP'] for r in scalars(work_dir)
              if 'reid/mAP' in r}
    assert sorted(logged) == [1, 2]
    best = max(logged, key=lambda e: (logged[e], -e))
    names = sorted(p for p in os.listdir(work_dir) if p.startswith('best_'))
    assert names == [f'best_reid_mAP_epoch_{best}.pth']
    cfg = Config.fromfile(str(tmp_path / 'tiny.py'))
    for name, epoch in ((names[0], best), ('epoch_2.pth', 2)):
        checkpoint = load_trusted_checkpoint(osp.join(work_dir, name))
        assert 'ema_state_dict' in checkpoint
        assert reference_map(cfg, checkpoint['state_dict']) == \
            pytest.approx(logged[epoch], abs=1e-3), name


# ---------------------------------------------------------------------------
# An iteration-based run: checkpoints and pictures of each validation
# ---------------------------------------------------------------------------
ITER_BASED = """
param_scheduler = []
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=3,
                 val_interval=2)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=2,
                    save_best='reid/mAP', rule='greater'))
custom_hooks = [
    dict(type='RankedListHook', phases=('val', ), num_queries=1, topk=2,
         out_dir='lists'),
    dict(type='EvalReportHook', phases=('val', ), num_queries=1, topk=2,
         max_rank=5, out_dir='report'),
]
"""


@pytest.fixture(scope='module')
def iteration_based(tmp_path_factory, synth_root):
    """One iteration-based run of the tiny config (3 iterations,
    validating after iterations 2 and 3: mmengine validates the last one
    too), written on ``_base_/default_runtime.py`` as
    docs/get_started.md describes such a loop: ``train_cfg`` and the
    checkpoint interval in iterations, the base's ``CheckpointHook``
    otherwise as it is (no ``by_epoch``: the runner saves such a run by
    iteration), the pictures and the report of every validation.

    Returns:
        str: The run's work dir.
    """
    root = tmp_path_factory.mktemp('hunt_hooks_iter')
    runner = build(root, synth_root, ITER_BASED)
    runner.train()
    return runner.work_dir


def test_iteration_based_checkpoints_are_named_by_their_iteration(
        iteration_based):
    """The best checkpoint of an iteration-based run names its iteration.

    What the user does: trains with an ``IterBasedTrainLoop``
    (``max_iters=3``, ``val_interval=2``) on ``_base_/default_runtime.py``
    with ``default_hooks.checkpoint=dict(interval=2,
    save_best='reid/mAP', rule='greater')``. The runner logs such a run
    by iteration (docs/get_started.md: it sets
    ``log_processor.by_epoch=False`` and ``log_metric_by_epoch=False``).

    What they get: the ``CheckpointHook`` stays ``by_epoch=True`` and the
    loop never advances its epoch: no ``iter_2.pth``/``iter_3.pth`` (the
    interval is never reached; a job stopped mid-run has no checkpoint),
    only ``epoch_1.pth`` at the end, and every better validation is saved
    as ``best_reid_mAP_epoch_0.pth`` with the log line "The best
    checkpoint with X reid/mAP at 0 epoch": which iteration's weights the
    file holds (and the logged best belongs to) cannot be told.

    What is right: checkpoints every 2 iterations and at the last
    (``iter_2.pth``, ``iter_3.pth``, no ``iter_1.pth``) and the best named
    by the iteration of the highest logged ``reid/mAP``
    (``best_reid_mAP_iter_<i>.pth``, with ``meta['iter'] == i``); the
    runner sets ``default_hooks.checkpoint.by_epoch=False``, as it does
    for the logger, and the work dir's config copy says so.
    """
    work_dir = iteration_based
    logged = {r['step']: r['reid/mAP'] for r in scalars(work_dir)
              if 'reid/mAP' in r}
    assert sorted(logged) == [2, 3]
    best = max(logged, key=lambda i: (logged[i], -i))
    files = set(os.listdir(work_dir))
    assert sorted(p for p in files if p.startswith('best_')) == [
        f'best_reid_mAP_iter_{best}.pth'
    ]
    checkpoint = load_trusted_checkpoint(
        osp.join(work_dir, f'best_reid_mAP_iter_{best}.pth'))
    assert checkpoint['meta']['iter'] == best
    assert sorted(p for p in files if p.startswith(('iter_', 'epoch_'))) \
        == ['iter_2.pth', 'iter_3.pth']
    copy = Config.fromfile(osp.join(work_dir, 'tiny.py'))
    assert copy.default_hooks.checkpoint.by_epoch is False


def test_an_iteration_based_run_saved_by_epoch_is_refused(
        tmp_path, synth_root):
    """``default_hooks.checkpoint.by_epoch=True`` written out with an
    ``IterBasedTrainLoop`` is refused when the runner is built, naming
    the key: the hook would never reach its interval (the loop never
    advances its epoch)."""
    extra = ITER_BASED.replace('interval=2,', 'interval=2, by_epoch=True,')
    with pytest.raises(
            ValueError, match=r'default_hooks\.checkpoint\.by_epoch=True'):
        build(tmp_path, synth_root, extra)


@pytest.mark.parametrize('folder', ['lists', 'report'])
def test_iteration_based_validations_keep_their_pictures_and_report(
        iteration_based, folder):
    """Each validation of an iteration-based run keeps its own outputs.

    What the user does: the run above with
    ``RankedListHook(phases=('val', ))`` and
    ``EvalReportHook(phases=('val', ))`` (their docstrings: the pictures
    and the report of a validation go to a subfolder of their own,
    ``val_epoch_<n>``), to see how the ranked lists change over training.

    What they get: the loop never advances its epoch, so both validations
    write ``val_epoch_0``; the second replaces the first as "an earlier
    run's output" (so the log says), and the pictures of the validation
    after iteration 2 are gone. The report's ``val_epoch_0`` likewise
    holds only the last validation.

    What is right: one subfolder per validation, named by its iteration
    (``val_iter_2``, ``val_iter_3``), each holding that validation's
    pictures (``report.html`` for the report).
    """
    work_dir = iteration_based
    out = osp.join(work_dir, folder)
    folders = sorted(os.listdir(out))
    assert folders == ['val_iter_2', 'val_iter_3'], folders
    for name in folders:
        assert os.listdir(osp.join(out, name)), name
        if folder == 'report':
            assert 'report.html' in os.listdir(osp.join(out, name))
    assert "replaced an earlier run's output" not in run_log(work_dir)
    # The pictures sent to the visualizer are at the iteration too.
    (images, ) = glob.glob(osp.join(work_dir, '*', 'vis_data', 'vis_image'))
    steps = {name.rpartition('_')[2] for name in os.listdir(images)}
    assert steps == {'2.png', '3.png'}, sorted(os.listdir(images))


# ---------------------------------------------------------------------------
# Early stopping (mmengine's EarlyStoppingHook, built from mmreid configs)
# ---------------------------------------------------------------------------
EARLY_STOP = """
param_scheduler = []
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=2))
custom_hooks = [dict(type='EarlyStoppingHook', monitor={monitor!r},
                     rule='greater', stopping_threshold={threshold})]
"""


def test_an_early_stopped_run_keeps_the_weights_it_stopped_with(
        tmp_path, synth_root):
    """The weights of an early-stopped run's last validation are saved.

    What the user does: adds mmengine's ``EarlyStoppingHook`` (the
    registry builds it from an mmreid config) to stop once ``reid/mAP``
    passes a threshold (``stopping_threshold``), with the checkpoint
    interval of the schedule (here every 2 epochs of 2), then tests the
    run's last checkpoint (``<work_dir>/last_checkpoint``), whose number
    the last validation logged.

    What they get: the run stops after epoch 1 ("Stopping threshold
    reached") and ends without an error, but ``CheckpointHook`` saves the
    last epoch only when it is ``max_epochs``: no checkpoint and no
    ``last_checkpoint`` at all (with a longer schedule, the last one is an
    earlier epoch's, whose number is not the one logged last). The
    trained model is lost, and a ``--resume`` trains from epoch 1.

    What is right: the run saves the weights it stopped with
    (``last_checkpoint`` names ``epoch_1.pth``, a checkpoint of epoch 1
    holding the final weights), as ``CheckpointHook`` saves the last
    epoch of a schedule.
    """
    runner = build(tmp_path, synth_root,
                   EARLY_STOP.format(monitor='reid/mAP', threshold=0.0))
    runner.train()
    assert runner.epoch == 1  # stopped after the first of 2 epochs
    final = {
        k: v.detach().clone()
        for k, v in runner.model.state_dict().items()
    }
    last = osp.join(runner.work_dir, 'last_checkpoint')
    assert osp.isfile(last), sorted(os.listdir(runner.work_dir))
    with open(last) as f:
        path = f.read().strip()
    assert osp.basename(path) == 'epoch_1.pth'
    checkpoint = load_trusted_checkpoint(path)
    assert checkpoint['meta']['epoch'] == 1
    for key, value in final.items():
        assert torch.equal(checkpoint['state_dict'][key], value), key


@pytest.mark.parametrize(
    'monitor,refused', [
        ('reid/mAPX', "EarlyStoppingHook.monitor='reid/mAPX' is not a key "
         'validation reported; it reported: '),
        ('mAP', "EarlyStoppingHook.monitor='mAP' is not a key validation "
         "reports: every key of this validation (ReIDValLoop) begins with "
         "'reid/'"),
    ],
    ids=['typo', 'no prefix'])
def test_an_early_stopping_key_validation_does_not_report_is_refused(
        tmp_path, synth_root, monitor, refused):
    """An ``EarlyStoppingHook`` monitor validation does not report is
    refused, as a ``save_best`` key is.

    What the user does: ``EarlyStoppingHook(monitor='reid/mAPX', ...)`` (a
    typo; or ``'mAP'`` without the metric's prefix), expecting the run to
    stop at the threshold.

    What they get: mmengine's hook (``strict=False`` by default) skips
    every check with a Python warning that mmreid writes into the log,
    and the run trains its whole schedule, as if the hook were not there.

    What is right (README: "a ``save_best`` key validation does not
    report" fails early with the fix; the promise of no warning lost in
    the log): refused, naming the key, before training or at the first
    validation, as :class:`~mmreid.engine.hooks.TrainSetupCheckHook` does
    for ``save_best``: a key without the evaluator's prefix before
    training, another after the first validation (logged first).
    """
    runner = build(
        tmp_path, synth_root,
        EARLY_STOP.format(monitor=monitor, threshold=0.0) +
        'train_cfg.update(max_epochs=1)\n')
    with pytest.raises(ValueError) as info:
        runner.train()
    assert str(info.value).startswith(refused), str(info.value)
    assert runner.iter == (5 if '/' in monitor else 0)
