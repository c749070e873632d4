"""open_atomic: a file appears complete or not at all."""
import os

import pytest

from mmreid.utils.atomic import open_atomic


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


def test_bad_mode():
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"):
        with open_atomic('x', 'a'):
            pass
