"""``ReIDRunner``'s randomness and cuDNN settings over runs of one process.

:class:`~mmreid.engine.runner.randomness.RandomnessMixin` over a stand-in
for mmengine's ``Runner`` that does what its ``setup_env`` and
``set_randomness`` do to torch (``env_cfg.cudnn_benchmark`` turns
``cudnn.benchmark`` on; mmengine's ``set_random_seed`` sets the
determinism): sequences of runs too long to build real runners for
(``test_dumped_seed`` builds them for the common cases).
"""
import os
from types import SimpleNamespace

import torch
from mmengine.runner.utils import set_random_seed

from mmreid.engine.runner.randomness import RandomnessMixin
from mmreid.utils.setup_env import CUBLAS_WORKSPACE_VAR


class MMEngineRunner:
    """What mmengine's ``Runner`` does in these two steps."""

    def setup_env(self, env_cfg):
        if env_cfg.get('cudnn_benchmark'):
            torch.backends.cudnn.benchmark = True

    def set_randomness(self, seed, diff_rank_seed=False, deterministic=False):
        self.seed = set_random_seed(
            seed, deterministic=deterministic, diff_rank_seed=diff_rank_seed)


class Runner(RandomnessMixin, MMEngineRunner):
    pass


def start(benchmark=False, deterministic=False, seed=0):
    """A run's start as mmengine's ``Runner.__init__`` orders it."""
    runner = Runner()
    runner.setup_env(dict(cudnn_benchmark=benchmark))
    runner.set_randomness(seed, deterministic=deterministic)
    return runner


def test_a_benchmark_run_after_a_deterministic_one_benchmarks(
        torch_settings):
    start(deterministic=True)
    start(benchmark=True)
    assert torch_settings.benchmark


def test_runs_in_a_row_give_back_the_settings_before_the_first(
        torch_settings):
    """Two deterministic (or benchmarking) runs, then one that asks for
    neither: the second must not take the first's settings for the
    user's."""
    start(deterministic=True)
    start(deterministic=True)
    start()
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch_settings.deterministic
    start(benchmark=True)
    start(benchmark=True)
    start()
    assert not torch_settings.benchmark
    start(benchmark=True, deterministic=True)
    start(benchmark=True)
    start()
    assert not torch_settings.benchmark
    assert not torch.are_deterministic_algorithms_enabled()


def test_the_users_warn_only_comes_back(torch_settings):
    torch.use_deterministic_algorithms(True, warn_only=True)
    start(deterministic=True)
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    start()
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()


def test_a_deterministic_run_sets_cublas(torch_settings, monkeypatch):
    monkeypatch.delenv(CUBLAS_WORKSPACE_VAR)
    runner = start(deterministic=True)
    assert os.environ[CUBLAS_WORKSPACE_VAR] == ':4096:8'
    assert any(CUBLAS_WORKSPACE_VAR in note
               for note in runner.__dict__['_notes_for_log'])


def test_a_seed_left_to_chance_is_rank_0s(monkeypatch):
    """Every rank draws a seed; the run goes on with rank 0's, broadcast
    (each rank's own would initialise and shuffle differently)."""
    import mmengine.dist
    monkeypatch.setattr(mmengine.dist, 'get_world_size', lambda *args: 2)

    def broadcast(objects, src=0, group=None):
        objects[0] = 777  # rank 0's draw

    monkeypatch.setattr(mmengine.dist, 'broadcast_object_list', broadcast)
    assert start(seed=None).seed == 777


def test_a_note_once_the_logger_is_built_is_logged_at_once(
        torch_settings, monkeypatch):
    """A resume sets the randomness again after mmengine built the
    logger: its notes are logged then, not kept for a logger to come."""
    monkeypatch.delenv(CUBLAS_WORKSPACE_VAR)
    runner, logged = Runner(), []
    runner.logger = SimpleNamespace(info=logged.append)
    runner.set_randomness(0, deterministic=True)
    assert any(CUBLAS_WORKSPACE_VAR in message for message in logged)
    assert '_notes_for_log' not in runner.__dict__
