"""A ``_base_`` path that names no file: mmengine ended in a bare
``FileNotFoundError: [Errno 2] No such file or directory: '.../x.py'``,
without the config that names it or the base as written there."""
import os.path as osp

import pytest

from mmreid.utils.config import read_config
from ..fixtures.processes import REPO


def test_a_missing_base_names_the_config_the_base_and_its_path(tmp_path):
    (tmp_path / 'bot_base.py').write_text('lr = 0.1\n')
    (tmp_path / 'mine.py').write_text("_base_ = ['./bot_bsae.py']\n")
    with pytest.raises(FileNotFoundError) as info:
        read_config(str(tmp_path / 'mine.py'))
    message = str(info.value)
    assert message.startswith(
        f"{tmp_path / 'mine.py'}: _base_ './bot_bsae.py' is "
        f"{tmp_path / 'bot_bsae.py'}, which does not exist")
    assert message.endswith("did you mean _base_ = ['bot_base.py']?")


def test_a_missing_base_of_a_base_names_that_base(tmp_path):
    # A base is read from the folder of the file that names it, and a
    # config under _base_/ is a fine suggestion for a base.
    (tmp_path / '_base_').mkdir()
    (tmp_path / '_base_' / 'schedule.py').write_text('max_epochs = 2\n')
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'sub' /
     'mid.py').write_text("_base_ = ['../_base_/schedul.py']\n")
    (tmp_path / 'leaf.py').write_text("_base_ = ['./sub/mid.py']\n")
    with pytest.raises(FileNotFoundError) as info:
        read_config(str(tmp_path / 'leaf.py'))
    message = str(info.value)
    assert message.startswith(
        f"{tmp_path / 'sub' / 'mid.py'}: _base_ '../_base_/schedul.py' is "
        f"{tmp_path / '_base_' / 'schedul.py'}, which does not exist")
    assert message.endswith("did you mean _base_ = ['../_base_/schedule.py']?")
    # The suggestion, written there, is read.
    (tmp_path / 'sub' /
     'mid.py').write_text("_base_ = ['../_base_/schedule.py']\n")
    assert read_config(str(tmp_path / 'leaf.py')).max_epochs == 2


def test_nothing_close_suggests_nothing(tmp_path):
    (tmp_path / 'mine.py').write_text("_base_ = ['/nowhere/qqqq_zzzz_0.py']\n")
    with pytest.raises(FileNotFoundError) as info:
        read_config(str(tmp_path / 'mine.py'))
    assert str(info.value).endswith(
        '/nowhere/qqqq_zzzz_0.py, which does not exist (a relative base is '
        'read from the folder of the file that names it)')


def test_a_base_in_a_removed_folder_suggests_the_config_of_that_name(
        tmp_path, monkeypatch):
    # The audit's case: a base in a worktree that was removed since. With
    # no such folder, the closest names come from configs/ of the working
    # directory (here the checkout), written relative to the config.
    monkeypatch.chdir(REPO)
    (tmp_path / 'mine.py').write_text(
        "_base_ = ['../removed/configs/baseline/bot_r18_synthreid.py']\n")
    with pytest.raises(FileNotFoundError) as info:
        read_config(str(tmp_path / 'mine.py'))
    shipped = osp.join(REPO, 'configs', 'baseline', 'bot_r18_synthreid.py')
    assert f"_base_ = ['{osp.relpath(shipped, tmp_path)}']" in str(info.value)


def _file_dirname_config(tmp_path):
    """A config whose base is named with mmengine's ``{{fileDirname}}``,
    which mmengine replaces by the config's folder."""
    (tmp_path / 'base.py').write_text(
        'x = 1\ntest_cfg = dict(type="L", v=x)\n')
    (tmp_path / 'mine.py').write_text(
        "_base_ = ['{{fileDirname}}/base.py']\n")
    return str(tmp_path / 'mine.py')


def test_a_base_named_with_file_dirname_is_no_missing_base(tmp_path):
    """``{{fileDirname}}`` is mmengine's: such a base exists and must not
    be reported as a missing file."""
    from mmreid.utils.config.bases import check_base_files
    check_base_files(_file_dirname_config(tmp_path))


def test_a_config_with_a_file_dirname_base_is_read(tmp_path):
    """mmengine reads such a config; mmreid must read it too (and check
    its base's variables), not end in a raw FileNotFoundError of
    ``.../{{fileDirname}}/base.py``."""
    path = _file_dirname_config(tmp_path)
    assert read_config(path).test_cfg.v == 1
    # The base's variable, used in its test_cfg, redefined here.
    with open(path, 'a') as f:
        f.write('x = 2\n')
    with pytest.raises(ValueError, match='test_cfg.v'):
        read_config(path)
    # The other predefined variables, as mmengine replaces them.
    (tmp_path / 'mine_base.py').write_text('y = 3\n')
    (tmp_path / 'mine.py').write_text(
        "_base_ = ['{{ fileBasenameNoExtension }}_base{{fileExtname}}']\n")
    assert read_config(path).y == 3
