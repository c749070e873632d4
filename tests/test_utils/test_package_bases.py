"""``_base_ = ['mmreid::...']``: mmengine 0.10.7 resolves the package
form only for its own list of OpenMMLab packages, and said so with a bare
``AssertionError: mmengine does not support to load mmreid config.``."""
import os.path as osp

import pytest

from mmreid.utils.config import read_config
from ..fixtures.processes import REPO

CONFIG = 'baseline/bot_r18_synthreid.py'


def test_an_mmreid_package_base_names_the_path_to_use(tmp_path):
    (tmp_path / 'mine.py').write_text(f"_base_ = ['mmreid::{CONFIG}']\n")
    with pytest.raises(ValueError) as info:
        read_config(str(tmp_path / 'mine.py'))
    message = str(info.value)
    assert f"mine.py: _base_ 'mmreid::{CONFIG}': mmengine resolves" in message
    relative = osp.relpath(osp.join(REPO, 'configs', CONFIG), tmp_path)
    assert f"_base_ = ['{relative}']" in message
    # The path given works.
    (tmp_path / 'fixed.py').write_text(f"_base_ = ['{relative}']\n")
    assert read_config(str(tmp_path / 'fixed.py')).model.backbone.depth == 18


def test_a_package_base_of_a_base_names_that_base(tmp_path):
    (tmp_path / 'base.py').write_text(f"_base_ = ['mmreid::{CONFIG}']\n")
    (tmp_path / 'leaf.py').write_text("_base_ = ['./base.py']\n")
    with pytest.raises(ValueError, match="base.py: _base_ 'mmreid::"):
        read_config(str(tmp_path / 'leaf.py'))


def test_a_package_base_mmengine_resolves_is_left_to_it(tmp_path):
    # mmengine resolves 'package::config' for its own OpenMMLab list
    # (MODULE2PACKAGE, mmpretrain included): not refused here.
    from mmreid.utils.config.bases import check_package_bases
    path = tmp_path / 'mine.py'
    path.write_text("_base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py']\n")
    check_package_bases(str(path))
