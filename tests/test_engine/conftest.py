import pytest


@pytest.fixture
def torch_settings(monkeypatch):
    """torch's determinism and cuDNN settings as no run of this process
    changed them (all off), given back after the test; the settings the
    runs of the process put back are forgotten
    (:mod:`mmreid.utils.setup_env`). Gives ``torch.backends.cudnn``."""
    import torch

    from mmreid.utils import setup_env
    from mmreid.utils.setup_env import CUBLAS_WORKSPACE_VAR
    monkeypatch.setattr(setup_env, '_BEFORE_DETERMINISTIC', None)
    monkeypatch.setattr(setup_env, '_BEFORE_BENCHMARK', None)
    # A deterministic run sets it where unset; monkeypatch puts it back.
    monkeypatch.setenv(CUBLAS_WORKSPACE_VAR, ':4096:8')
    cudnn = torch.backends.cudnn
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(),
              cudnn.deterministic, cudnn.benchmark)
    torch.use_deterministic_algorithms(False)
    cudnn.deterministic = cudnn.benchmark = False
    yield cudnn
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    cudnn.deterministic, cudnn.benchmark = before[2:]
