"""The config a run records (the work dir's copy, vis_data, its checkpoints)
holds the seeds it drew; its torch settings are its own."""
import itertools
import os.path as osp

import pytest
from mmengine.config import Config

from mmreid.engine.runner import ReIDRunner
from ..fixtures.tiny_config import write_tiny_config

_RUNS = itertools.count()


def started_runner(config, work_dir, **options):
    """A runner whose training loop is built and that has passed
    ``load_or_resume``, where the config copy is written."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'dumped_seed_{next(_RUNS)}'
    runner = ReIDRunner.from_cfg(cfg)
    runner.train_loop  # builds the training dataloader, as train() does
    runner.load_or_resume()
    return runner


def test_a_drawn_seed_is_written_into_the_copy(tmp_path, synth_root):
    """randomness.seed=None: the drawn seed was logged and in meta['seed'],
    but the copy said seed=None, so training it again drew another."""
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)
    runner = started_runner(config, tmp_path / 'run',
                            **{'randomness.seed': None})
    copy = osp.join(tmp_path, 'run', 'tiny.py')
    assert isinstance(runner.seed, int)
    assert Config.fromfile(copy).randomness.seed == runner.seed
    with open(copy) as f:
        assert f.readline() == (
            f'# randomness.seed: None in the config; {runner.seed} is the '
            "seed this run drew (its checkpoints' meta['seed'])\n")
    # And so does the config mmengine's vis backend records (it said
    # seed=None).
    recorded = osp.join(runner.log_dir, 'vis_data', 'config.py')
    assert Config.fromfile(recorded).randomness.seed == runner.seed
    # The run's own config is unchanged.
    assert runner.cfg.randomness.seed is None


def test_the_sampler_seed_of_diff_rank_seed_is_written(tmp_path, synth_root):
    """diff_rank_seed: mmengine gives the sampler no seed, so it draws its
    own, which the copy must hold too."""
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)
    runner = started_runner(
        config, tmp_path / 'run', **{
            'randomness.seed': 3,
            'randomness.diff_rank_seed': True
        })
    copy = Config.fromfile(osp.join(tmp_path, 'run', 'tiny.py'))
    assert copy.randomness.seed == 3
    assert copy.train_dataloader.sampler.seed == \
        runner.train_dataloader.sampler.seed
    # The run's own config is unchanged.
    assert runner.cfg.train_dataloader.sampler.get('seed') is None


def test_a_json_config_gets_a_json_copy(tmp_path, synth_root):
    """The notes on the drawn seeds are comments of a Python copy: a JSON
    copy must stay JSON."""
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)
    Config.fromfile(config).dump(str(tmp_path / 'tiny.json'))
    runner = started_runner(
        str(tmp_path / 'tiny.json'), tmp_path / 'run',
        **{'randomness.seed': None})
    copy = Config.fromfile(str(tmp_path / 'run' / 'tiny.json'))
    assert copy.randomness.seed == runner.seed


@pytest.mark.parametrize('local', [True, False])
def test_a_checkpoint_records_the_config_with_its_drawn_seeds(
        tmp_path, synth_root, monkeypatch, local):
    """A checkpoint's meta['cfg'] (kept by publish_model.py) said
    ``randomness.seed=None`` and no sampler seed, so the config a model-zoo
    checkpoint carries trained another model. mmengine writes a checkpoint
    for a remote backend (S3, petrel) itself, not through a local
    temporary file (``local=False`` stands for one)."""
    import torch

    from mmreid.engine.runner import reid_runner
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)
    runner = started_runner(
        config, tmp_path / 'run', **{
            'randomness.seed': None,
            'randomness.diff_rank_seed': True
        })
    if not local:
        monkeypatch.setattr(reid_runner, '_is_local', lambda *args: False)
    runner.save_checkpoint(str(tmp_path), 'saved.pth', save_optimizer=False,
                           save_param_scheduler=False)
    meta = torch.load(
        tmp_path / 'saved.pth', map_location='cpu', weights_only=False)['meta']
    recorded = Config.fromstring(meta['cfg'], '.py')
    assert recorded.randomness.seed == meta['seed'] == runner.seed
    assert recorded.train_dataloader.sampler.seed == meta['sampler_seed'] \
        == runner.train_dataloader.sampler.seed
    # The run's own config is unchanged.
    assert runner.cfg.randomness.seed is None
    assert runner.cfg.train_dataloader.sampler.get('seed') is None


def test_a_given_seed_leaves_the_copy_as_the_config(tmp_path, synth_root):
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)
    started_runner(config, tmp_path / 'run')
    with open(osp.join(tmp_path, 'run', 'tiny.py')) as f:
        text = f.read()
    assert not text.startswith('#')
    assert Config.fromfile(osp.join(tmp_path, 'run',
                                    'tiny.py')).randomness.seed == 0


def test_a_rank_other_than_0_builds_a_visualizer_and_writes_no_copy(
        tmp_path, synth_root, monkeypatch):
    """Rank 0 alone writes the work dir's copy (mmengine's ``dump_config``
    is ``master_only``), and every rank builds a visualizer: mmengine's
    ``Runner.__init__`` calls ``visualizer.add_config`` on each one."""
    import mmengine.dist.utils as dist_utils

    # What master_only asks: this process is rank 1 of a distributed run.
    monkeypatch.setattr(
        dist_utils, 'is_main_process', lambda group=None: False)
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)
    runner = started_runner(config, tmp_path / 'run')
    assert runner.visualizer is not None
    assert not osp.exists(osp.join(tmp_path, 'run', 'tiny.py'))


def test_runs_of_one_process_draw_their_own_seeds(tmp_path, synth_root):
    """mmengine drew ``seed=None`` from numpy's global state, which an
    earlier run left seeded (TrainRandomStateHook seeds it every
    iteration): every later ``seed=None`` run of a sweep in one process
    drew one and the same seed. As a run leaves it, numpy's state is the
    same before each runner here."""
    import numpy as np
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)
    seeds = []
    for index in range(3):
        np.random.seed(0)
        cfg = Config.fromfile(config)
        cfg.merge_from_dict({'randomness.seed': None})
        cfg.work_dir = str(tmp_path / f'run{index}')
        cfg.experiment_name = f'dumped_seed_{next(_RUNS)}'
        seeds.append(ReIDRunner.from_cfg(cfg).seed)
    assert len(set(seeds)) == 3, seeds
    assert all(isinstance(s, int) and 0 <= s < 2**31 for s in seeds)


def test_a_run_does_not_inherit_an_earlier_runs_determinism(
        tmp_path, synth_root, torch_settings):
    """``deterministic=True`` turned torch's deterministic algorithms and
    cudnn.deterministic on for the rest of the process: a later run with
    ``deterministic=False`` ran under them while its log said False.
    Settings made before any such run are kept."""
    import torch
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)

    def build(deterministic, name):
        cfg = Config.fromfile(config)
        cfg.merge_from_dict({'randomness.deterministic': deterministic})
        cfg.work_dir = str(tmp_path / name)
        cfg.experiment_name = f'dumped_seed_{next(_RUNS)}'
        return ReIDRunner.from_cfg(cfg)

    for user_setting in (False, True):
        torch.use_deterministic_algorithms(user_setting)
        torch_settings.deterministic = torch_settings.benchmark = False
        build(True, f'a{user_setting}')
        assert torch.are_deterministic_algorithms_enabled()
        assert torch_settings.deterministic
        build(False, f'b{user_setting}')
        assert torch.are_deterministic_algorithms_enabled() is user_setting
        assert not torch_settings.deterministic


def test_a_run_does_not_inherit_an_earlier_runs_cudnn_benchmark(
        tmp_path, synth_root, torch_settings):
    """``env_cfg.cudnn_benchmark=True`` turned cudnn.benchmark on for the
    rest of the process: a later run with ``cudnn_benchmark=False`` chose
    its cuDNN algorithms by timing them while its config said False. What
    each run had to say about it went into the log of the runner built
    before it (the logger mmengine calls current then)."""
    cudnn = torch_settings
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)
    put_back = 'cudnn.benchmark, which an earlier run of this process'
    runs = itertools.count()

    def build(benchmark, deterministic=False):
        cfg = Config.fromfile(config)
        cfg.merge_from_dict({
            'env_cfg.cudnn_benchmark': benchmark,
            'randomness.deterministic': deterministic
        })
        cfg.work_dir = str(tmp_path / f'run{next(runs)}')
        cfg.experiment_name = f'dumped_seed_{next(_RUNS)}'
        runner = ReIDRunner.from_cfg(cfg)
        with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
            return f.read()

    for user_setting in (False, True):
        cudnn.benchmark = user_setting
        first = build(True)
        assert cudnn.benchmark
        second = build(False)
        assert cudnn.benchmark is user_setting
        assert (put_back in second) is not user_setting
        assert put_back not in first
    # A deterministic run turns it off on its own; the user's setting
    # comes back after it either way.
    for user_setting in (False, True):
        cudnn.benchmark = user_setting
        build(True, deterministic=True)
        assert not cudnn.benchmark
        build(False)
        assert cudnn.benchmark is user_setting
    # The determinism note goes into the log of the run it is about.
    build(False, deterministic=True)
    assert 'randomness.deterministic=False: torch' in build(False)


def test_a_given_sampler_seed_under_diff_rank_seed_is_not_noted_as_drawn(
        tmp_path, synth_root):
    """diff_rank_seed with a sampler seed the config gives: nothing was
    drawn, so the copy is the config, without a note that says the
    sampler seed was None in the config and drawn by the run."""
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)
    runner = started_runner(
        config, tmp_path / 'run', **{
            'randomness.seed': 3,
            'randomness.diff_rank_seed': True,
            'train_dataloader.sampler.seed': 7
        })
    assert runner.train_dataloader.sampler.seed == 7
    with open(osp.join(tmp_path, 'run', 'tiny.py')) as f:
        text = f.read()
    assert not text.startswith('#'), text.splitlines()[0]
    copy = Config.fromfile(osp.join(tmp_path, 'run', 'tiny.py'))
    assert copy.train_dataloader.sampler.seed == 7
    assert copy.randomness.seed == 3
