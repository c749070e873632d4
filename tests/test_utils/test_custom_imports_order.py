"""A config's bases are read without running their ``custom_imports``.

mmreid reads each base of a config on its own to find a variable that the
config redefines too late
(:func:`mmreid.utils.config.bases.check_base_variables`).
Reading a base with ``Config.fromfile`` ran the base's ``custom_imports``
after the config's own: a base's ``force=True`` registration replaced the
one the config imports, so the run built the base's component although the
config (and its dump in the work dir) named the other module.
"""
import os.path as osp
import sys

import pytest

from mmreid.apis import init_model
from mmreid.registry import MODELS
from mmreid.utils.config import load_config, read_config
from ..fixtures.processes import REPO

BASE = osp.join(REPO, 'configs/baseline/bot_r18_synthreid.py')

#: Two versions of one neck, registered under the same name with
#: force=True; each says which version it is.
NECK = '''import torch.nn as nn

from mmreid.registry import MODELS


@MODELS.register_module(force=True)
class VersionedTestNeck(nn.Module):
    version = {version}

    def forward(self, inputs):
        return (inputs[-1].mean((2, 3)), )
'''


@pytest.fixture
def versioned(tmp_path, monkeypatch):
    """``(v1.py, v2.py)``: a base importing neck version 1 and its child
    importing version 2, as the child's config file paths."""
    modules = {v: f'mmreid_test_versioned_neck_v{v}' for v in (1, 2)}
    for version, module in modules.items():
        (tmp_path / f'{module}.py').write_text(NECK.format(version=version))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / 'v1.py').write_text(
        f"_base_ = ['{BASE}']\n"
        f"custom_imports = dict(imports=['{modules[1]}'], "
        'allow_failed_imports=False)\n'
        "model = dict(neck=dict(_delete_=True, type='VersionedTestNeck'))\n")
    (tmp_path / 'v2.py').write_text(
        "_base_ = ['./v1.py']\n"
        f"custom_imports = dict(imports=['{modules[2]}'], "
        'allow_failed_imports=False)\n')
    yield str(tmp_path / 'v2.py')
    MODELS.module_dict.pop('VersionedTestNeck', None)
    for module in modules.values():
        sys.modules.pop(module, None)


@pytest.mark.parametrize(
    'read',
    [read_config, lambda path: read_config(path, phase='test'), load_config],
    ids=['read_config', 'read_config-test', 'load_config'])
def test_a_childs_forced_registration_survives_reading_its_bases(
        versioned, read):
    cfg = read(versioned)
    assert cfg.custom_imports.imports == ['mmreid_test_versioned_neck_v2']
    assert MODELS.get('VersionedTestNeck').version == 2


def test_init_model_builds_the_childs_component(versioned):
    model = init_model(versioned)
    assert type(model.neck).version == 2


def test_a_module_only_a_base_imports_is_not_imported(tmp_path):
    # The child dropped a module of its base that no longer exists.
    (tmp_path / 'old.py').write_text(
        f"_base_ = ['{BASE}']\n"
        "custom_imports = dict(imports=['mmreid_test_removed_module'], "
        'allow_failed_imports=False)\n')
    (tmp_path / 'new.py').write_text(
        "_base_ = ['./old.py']\n"
        'custom_imports = dict(_delete_=True, imports=[], '
        'allow_failed_imports=False)\n')
    cfg = read_config(str(tmp_path / 'new.py'))
    assert cfg.custom_imports.imports == []
