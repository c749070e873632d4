"""open_atomic, atomic_path: a file appears complete or not at all."""
import os
import stat

import pytest

from mmreid.utils import atomic
from mmreid.utils.atomic import (atomic_path, current_umask, open_atomic,
                                 output_mode)


def test_written_file_appears_on_a_clean_exit(tmp_path):
    path = tmp_path / 'sub' / 'out.txt'
    with open_atomic(str(path), 'w', encoding='utf-8') as f:
        f.write('done')
        assert not path.exists()  # not under its name before the end
    assert path.read_text() == 'done'
    assert os.listdir(path.parent) == ['out.txt']


def test_an_error_leaves_nothing_and_keeps_the_old_file(tmp_path):
    path = tmp_path / 'out.bin'
    with pytest.raises(RuntimeError, match='interrupted'):
        with open_atomic(str(path)) as f:
            f.write(b'half')
            raise RuntimeError('interrupted')
    assert os.listdir(tmp_path) == []
    path.write_bytes(b'complete')
    with pytest.raises(RuntimeError):
        with open_atomic(str(path)) as f:
            f.write(b'half')
            raise RuntimeError('interrupted')
    assert path.read_bytes() == b'complete'
    assert os.listdir(tmp_path) == ['out.bin']


def test_atomic_path_for_writers_that_take_a_path(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    path.write_bytes(b'complete')
    with pytest.raises(RuntimeError, match='interrupted'):
        with atomic_path(str(path)) as tmp:
            assert os.path.dirname(tmp) == str(tmp_path)
            with open(tmp, 'wb') as f:
                f.write(b'half')
            raise RuntimeError('interrupted')
    assert path.read_bytes() == b'complete'
    assert os.listdir(tmp_path) == ['epoch_1.pth']
    with atomic_path(str(path)) as tmp:
        with open(tmp, 'wb') as f:
            f.write(b'new')
        assert path.read_bytes() == b'complete'
    assert path.read_bytes() == b'new'
    assert os.listdir(tmp_path) == ['epoch_1.pth']


def test_bad_mode():
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"):
        with open_atomic('x', 'a'):
            pass


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(
    'mask, expected', [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
    ids=['umask022', 'umask077', 'umask002'])
def test_written_file_has_the_mode_of_a_plain_open(tmp_path, umask, mask,
                                                   expected):
    """Not the temporary file's private 0600: a result written with
    umask 022 is readable by the group and others, as with open()."""
    umask(mask)
    with open_atomic(str(tmp_path / 'out.json'), 'w') as f:
        f.write('{}')
    with open(tmp_path / 'plain.json', 'w') as f:
        f.write('{}')
    assert mode_of(tmp_path / 'out.json') == expected
    assert mode_of(tmp_path / 'plain.json') == expected


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    """As writing in place would: a file made group-writable (or private)
    stays so when a new version replaces it."""
    umask(0o022)
    path = tmp_path / 'out.bin'
    for mode in (0o664, 0o600):
        path.write_bytes(b'old')
        path.chmod(mode)
        with open_atomic(str(path)) as f:
            f.write(b'new')
        assert path.read_bytes() == b'new'
        assert mode_of(path) == mode


@pytest.mark.parametrize('from_proc', [True, False])
def test_current_umask_leaves_the_umask(umask, monkeypatch, from_proc):
    if not from_proc:  # no /proc (not Linux): set and restored
        def no_proc(*args, **kwargs):
            raise OSError('no /proc')
        monkeypatch.setattr(atomic, 'open', no_proc, raising=False)
    for mask in (0o027, 0o002):
        umask(mask)
        assert current_umask() == mask
        assert os.umask(mask) == mask


def test_output_mode_of_a_folder(tmp_path, umask):
    umask(0o022)
    assert output_mode(str(tmp_path / 'new'), folder=True) == 0o755
    assert output_mode(str(tmp_path / 'new')) == 0o644
    (tmp_path / 'kept').mkdir(mode=0o750)
    os.chmod(tmp_path / 'kept', 0o750)
    assert output_mode(str(tmp_path / 'kept'), folder=True) == 0o750
    # A folder where a file is to go (or a file where a folder) is not
    # what is replaced: the new one's mode.
    assert output_mode(str(tmp_path / 'kept')) == 0o644
    umask(0o077)
    assert output_mode(str(tmp_path / 'new'), folder=True) == 0o700
