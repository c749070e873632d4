"""The work dir's training lock: a stale lock file is taken over.

``<work_dir>/.mmreid-train.lock`` stays in the work dir after a run ends
(killed or not); the lock itself is the system's ``flock``, released with
the process. A later run takes the file over and writes itself into it,
so that a third run refused while it trains is told who holds the work
dir, not the long-dead first run.
"""
import os

import pytest

from mmreid.engine.runner.work_dir_lock import (LOCK_NAME, lock_work_dir,
                                                unlock_work_dir)


def test_a_stale_lock_file_is_taken_over_and_names_the_new_holder(tmp_path):
    """A lock file left by a dead process does not refuse a run, and the
    refusal of a second run names the live holder only."""
    stale = 'pid 999999 on a-dead-host, started 2020-01-01T00:00:00\n'
    (tmp_path / LOCK_NAME).write_text(stale)
    held = lock_work_dir(str(tmp_path))
    assert held is not None
    try:
        with open(tmp_path / LOCK_NAME) as f:
            lines = f.read().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f'pid {os.getpid()} ')
        with pytest.raises(RuntimeError) as info:
            lock_work_dir(str(tmp_path))
        message = str(info.value)
        assert f'(pid {os.getpid()} on ' in message
        assert '999999' not in message and 'a-dead-host' not in message
    finally:
        unlock_work_dir(held)
    # Released: the next run takes it.
    unlock_work_dir(lock_work_dir(str(tmp_path)))


def test_a_work_dir_that_does_not_exist_yet_is_made_and_locked(tmp_path):
    """A new ``--work-dir`` gets the lock too: a second run started on it
    before the first wrote anything is refused."""
    work_dir = tmp_path / 'new' / 'run'
    held = lock_work_dir(str(work_dir))
    try:
        assert (work_dir / LOCK_NAME).is_file()
        with pytest.raises(RuntimeError, match='another training run'):
            lock_work_dir(str(work_dir))
    finally:
        unlock_work_dir(held)


def test_a_forked_process_neither_keeps_nor_weakens_the_lock(tmp_path):
    """Dataloader workers forked while a run holds the lock share its open
    lock file. While the run holds it a second run is refused, whatever
    the workers do; once the run releases it, the next run takes the work
    dir although the workers still hold the file (persistent workers of a
    failed run, then a resume in the same process)."""
    held = lock_work_dir(str(tmp_path))
    assert held is not None
    go_on, release = os.pipe()
    child = os.fork()
    if child == 0:  # a worker: holds the inherited lock file until told
        try:
            os.close(release)
            os.read(go_on, 1)
        finally:
            os._exit(0)
    os.close(go_on)
    try:
        with pytest.raises(RuntimeError, match='another training run'):
            lock_work_dir(str(tmp_path))
        unlock_work_dir(held)
        # The worker still runs with the file open; the work dir is free.
        assert os.waitpid(child, os.WNOHANG) == (0, 0)
        again = lock_work_dir(str(tmp_path))
        try:
            with pytest.raises(RuntimeError, match='another training run'):
                lock_work_dir(str(tmp_path))
        finally:
            unlock_work_dir(again)
    finally:
        os.close(release)
        os.waitpid(child, 0)
