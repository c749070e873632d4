"""A config that redefines a variable its base already substituted is
refused (mmengine reads a base on its own: the leaf's value reaches the
variable only)."""
import os.path as osp

import pytest

from mmreid.utils.config import load_config
from ..fixtures.processes import REPO


def leaf(tmp_path, base, text, name='leaf.py'):
    path = tmp_path / name
    path.write_text(f"_base_ = ['{osp.join(REPO, base)}']\n{text}")
    return str(path)


def test_a_variable_the_base_used_is_refused(tmp_path):
    # The DIMN base puts cuhk03_variant into its CUHK03 source; a leaf
    # asking for the labeled boxes still trained on the detected ones.
    path = leaf(tmp_path, 'configs/snr/snr_r50_1xb64-120e_dimn-protocol.py',
                "cuhk03_variant = 'labeled'\n")
    with pytest.raises(ValueError) as info:
        load_config(path)
    message = str(info.value)
    assert "sets cuhk03_variant = 'labeled'" in message
    assert "the base's value ('detected')" in message
    assert 'train_dataloader.dataset.datasets.3.dataset.variant' in message


def test_an_image_size_the_pipelines_used_is_refused(tmp_path):
    path = leaf(tmp_path, 'configs/baseline/bot_r50_1xb64-120e_market1501.py',
                'img_size = (384, 128)\n')
    with pytest.raises(
            ValueError,
            match=r"base's value \(\(256, 128\)\).*pipeline.1.size"):
        load_config(path)


def test_a_variable_with_its_keys_overridden_is_fine(tmp_path):
    # The RegDB leaves redefine trial with the dataloaders that use it.
    path = leaf(
        tmp_path, 'configs/mbn/agw_r50_1xb64-81e_regdb-v2t.py', '''
trial = 3
train_dataloader = dict(dataset=dict(trial=trial))
val_dataloader = dict(dataset=dict(trial=trial))
test_dataloader = val_dataloader
model = dict(backbone=dict())
''')
    cfg = load_config(path)
    assert cfg.val_dataloader.dataset.trial == 3
