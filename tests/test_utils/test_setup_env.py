import os

import pytest

from mmreid.utils.setup_env import (CUBLAS_WORKSPACE_VAR,
                                    setup_deterministic_cublas)


@pytest.mark.parametrize('before', [None, ''])
def test_unset_cublas_config_is_set(monkeypatch, before):
    if before is None:
        monkeypatch.delenv(CUBLAS_WORKSPACE_VAR, raising=False)
    else:
        monkeypatch.setenv(CUBLAS_WORKSPACE_VAR, before)
    assert setup_deterministic_cublas() is True
    assert os.environ[CUBLAS_WORKSPACE_VAR] == ':4096:8'


@pytest.mark.parametrize('value', [':4096:8', ':16:8'])
def test_deterministic_cublas_config_is_kept(monkeypatch, value):
    monkeypatch.setenv(CUBLAS_WORKSPACE_VAR, value)
    assert setup_deterministic_cublas() is False
    assert os.environ[CUBLAS_WORKSPACE_VAR] == value


def test_other_cublas_config_is_refused(monkeypatch):
    monkeypatch.setenv(CUBLAS_WORKSPACE_VAR, ':0:0')
    with pytest.raises(ValueError, match=r"CUBLAS_WORKSPACE_CONFIG=':0:0'"):
        setup_deterministic_cublas()
