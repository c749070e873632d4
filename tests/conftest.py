import os

import pytest

# In-process CUDA tests turn on torch.use_deterministic_algorithms, under
# which a CUDA GEMM raises unless this is set before the first one (torch
# reads it once per process). Tests of the tools' own handling of it pass
# the variable explicitly (run_tool's env).
os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')

#: At most this many test workers: each holds its own torch and data.
MAX_WORKERS = 8


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per CPU this process may use (affinity and
    cgroup quota, as mmreid counts them), at most :data:`MAX_WORKERS`."""
    from mmreid.utils.threads import usable_cpu_count
    return max(1, min(usable_cpu_count(), MAX_WORKERS))


def pytest_configure(config):
    """Workers of ``-n N`` share the CPUs: torch threads split among them
    instead of every worker starting one thread per CPU."""
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))
    if workers > 1:
        import torch

        from mmreid.utils.threads import usable_cpu_count
        torch.set_num_threads(max(1, usable_cpu_count() // workers))


def pytest_collection_modifyitems(config, items):
    """Skip the ``cuda``-marked tests on a machine without CUDA."""
    import torch
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs CUDA (marked cuda)')
    for item in items:
        if item.get_closest_marker('cuda') is not None:
            item.add_marker(skip)


class _NoSleepTime:
    """The ``time`` module without ``sleep``: see
    :func:`no_epoch_transition_sleep`."""

    def __getattr__(self, name):
        import time
        return getattr(time, name)

    @staticmethod
    def sleep(seconds):
        pass


@pytest.fixture(autouse=True, scope='session')
def no_epoch_transition_sleep():
    """mmengine's ``_InfiniteDataloaderIterator`` (the iterator of an
    ``IterBasedTrainLoop``) sleeps 2 s each time it restarts the
    dataloader, "to prevent a possible deadlock" of dataloader workers at
    the epoch transition. In-process tests pass over their few batches
    many times, so the sleep was most of their time. The tools (new
    processes) keep it."""
    import mmengine.runner.loops as loops
    original = loops.time
    loops.time = _NoSleepTime()
    yield
    loops.time = original


@pytest.fixture(autouse=True, scope='session')
def mmreid_scope():
    """Build from configs as the runner does: in the mmreid default scope."""
    from mmreid.utils import register_all_modules
    register_all_modules(init_default_scope=True)


@pytest.fixture(scope='session')
def synth_root(tmp_path_factory):
    """One SynthReID folder for the session (generated on first use)."""
    return str(tmp_path_factory.mktemp('synthreid'))


@pytest.fixture
def make_config(tmp_path, synth_root):
    """Write the tiny tool-test config with optional extra lines.

    ``make_config(extra='', head_extra='', name='tiny.py')`` returns the
    path of the written config (see :mod:`tests.fixtures.tiny_config`).
    """
    from .fixtures.tiny_config import write_tiny_config

    def make(extra: str = '',
             head_extra: str = '',
             name: str = 'tiny.py') -> str:
        return write_tiny_config(tmp_path / name, synth_root, extra,
                                 head_extra)

    return make


@pytest.fixture
def umask():
    """``umask(0o022)`` sets the process's umask for the test; the previous
    one is restored after it (the umask is the whole process's)."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield os.umask
    os.umask(previous)
