"""Wrong-number hunt: training-run integrity and the tools around a run.

The config-copy test asserts the correct behaviour of a defect found by
using the tools as the docs describe (fixed since; it fails on the code
before the fix). The other test pins behaviour that decides a printed
number and that no other test would notice breaking.
"""
import glob
import itertools
import json
import os.path as osp
import shutil

import pytest
from mmengine.config import Config
from mmengine.hooks import Hook

from mmreid.engine.runner import ReIDRunner
from mmreid.registry import HOOKS
from ..fixtures.tiny_config import write_tiny_config

_RUNS = itertools.count()


def build_runner(config, work_dir, **options):
    """A :class:`ReIDRunner` of ``config`` with ``--cfg-options``-like
    ``options``, as ``tools/train.py`` builds it."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    # One name per runner: mmengine keys its logger and message hub by it.
    cfg.experiment_name = f'hunt_run_{next(_RUNS)}'
    return ReIDRunner.from_cfg(cfg)


#: The training outputs of every iteration of the runs of this module.
RECORDED = []


@HOOKS.register_module(force=True)
class HuntRecordOutputs(Hook):
    """Keep each training iteration's own outputs (loss terms, accuracy)."""

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        RECORDED.append({k: float(v) for k, v in outputs.items()})


@pytest.fixture(scope='module')
def trained(tmp_path_factory, synth_root):
    """A tiny two-epoch run: (config, work dir, its epoch 1 checkpoint).

    Its iterations' own outputs are in :data:`RECORDED`.
    """
    root = tmp_path_factory.mktemp('hunt_run')
    config = write_tiny_config(root / 'tiny.py', synth_root)
    RECORDED.clear()
    build_runner(
        config,
        root / 'run',
        custom_hooks=[dict(type='HuntRecordOutputs')]).train()
    ckpt = str(root / 'run' / 'epoch_1.pth')
    assert osp.isfile(ckpt)
    return config, str(root / 'run'), ckpt


# ---------------------------------------------------------------------------
# The work dir's config copy
# ---------------------------------------------------------------------------
def test_start_refused_by_setup_check_keeps_the_config_copy(trained,
                                                            tmp_path):
    """A resume refused by ``TrainSetupCheckHook`` keeps the config copy.

    What the user does: a run was stopped after epoch 1 (its work dir holds
    ``epoch_1.pth`` and ``tiny.py``, the config copy that
    ``tools/test.py <work_dir>/tiny.py <ckpt>`` evaluates with). The
    requeued job resumes it with extra ``--cfg-options``, one of which the
    start-up checks refuse (``save_best='auto'``), the other changing the
    test distance to cosine.

    What they get: the start is refused, yet ``<work_dir>/tiny.py`` is now
    the refused config: ``tools/test.py`` with it ranks the run's
    checkpoints by cosine instead of the euclidean distance the run was
    configured and validated with, and nothing says the copy changed.

    What is right: ``ReIDRunner``'s docstring and ``dump_config``'s promise
    that a start that is refused leaves the copy of the run whose
    checkpoints sit next to it as it was (docs/get_started.md §6,
    the copy is the record of the run).
    """
    config, run_dir, _ = trained
    work_dir = tmp_path / 'run'
    work_dir.mkdir()
    shutil.copy(osp.join(run_dir, 'epoch_1.pth'), work_dir)
    copy = work_dir / 'tiny.py'
    shutil.copy(osp.join(run_dir, 'tiny.py'), copy)
    before = copy.read_bytes()
    runner = build_runner(
        config,
        work_dir,
        resume=True,
        load_from=str(work_dir / 'epoch_1.pth'),
        **{
            'default_hooks.checkpoint.save_best': 'auto',
            'test_evaluator.metric': 'cosine',
        })
    with pytest.raises(ValueError, match='auto'):
        runner.train()
    assert not osp.exists(work_dir / 'epoch_2.pth')
    assert Config.fromfile(str(copy)).test_evaluator.metric == \
        'euclidean', 'the refused config replaced the copy'
    assert copy.read_bytes() == before


# ---------------------------------------------------------------------------
# The training lines' numbers
# ---------------------------------------------------------------------------
def test_logged_losses_are_means_of_the_last_ten_iterations(trained):
    """The training values of ``scalars.json`` are what the log legend says.

    What the user does: reads ``loss``, ``loss_cls``, ``loss_tri`` and
    ``accuracy`` of the training lines (the log and
    ``<stamp>/vis_data/scalars.json``), e.g. to plot a loss curve.

    What is right (the legend the run logs before its first training line,
    ``ReIDLogProcessor.train_line_legend``): the loss terms are means over
    the last ``log_processor.window_size`` = 10 iterations, also across the
    epoch boundary (iteration 7 of 10 averages iterations 1-7); the
    others (``accuracy``) are the iteration's own value. Computed here from
    each iteration's own outputs, recorded by a hook.
    """
    _, run_dir, _ = trained
    (scalars, ) = glob.glob(osp.join(run_dir, '*', 'vis_data',
                                     'scalars.json'))
    with open(scalars) as f:
        lines = [json.loads(line) for line in f]
    train = [r for r in lines if 'loss' in r]
    own = RECORDED
    assert len(own) == len(train) == 10  # 2 epochs of 5 steps
    for i, logged in enumerate(train):
        assert logged['step'] == i + 1
        window = own[max(0, i + 1 - 10):i + 1]
        for key in ('loss', 'loss_cls', 'loss_tri'):
            mean = sum(o[key] for o in window) / len(window)
            assert logged[key] == pytest.approx(mean, rel=1e-6), (i, key)
        assert logged['accuracy'] == pytest.approx(own[i]['accuracy'])
        # The total is the sum of its terms, iteration by iteration.
        assert own[i]['loss'] == pytest.approx(own[i]['loss_cls'] +
                                               own[i]['loss_tri'])
