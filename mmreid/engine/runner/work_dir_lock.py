"""One training run per work dir, one log folder per run.

Two trainings started on one ``--work-dir`` (two jobs of an array, a job
requeued while the first still runs) write the same ``epoch_N.pth``,
``last_checkpoint``, best checkpoint and config copy, and when they start
in the same second the same log folder: the work dir then holds a mixture
that a resume or the analysis tools read as one run. A training run holds
an exclusive lock on ``<work_dir>/.mmreid-train.lock`` (``fcntl.flock``,
which the system releases when the process ends, also when it is killed)
and a second one is refused, naming the first.

Every run (training or ``tools/test.py``) logs into a timestamp folder
of its own (:func:`claim_log_stamp`): mmengine names it after the second
the run started, so two runs started in one second on one work dir wrote
one log file, one ``vis_data/scalars.json`` and one metrics file, and two
runners built in one second in one process (mmengine names their logger,
message hub and visualizer after the experiment and that second) shared
them.
"""
import datetime
import errno
import itertools
import os
import os.path as osp
import socket
from typing import IO, Optional

from mmengine.logging import print_log

#: The lock file, in the work dir.
LOCK_NAME = '.mmreid-train.lock'

#: The timestamps the runners of this process took.
_TAKEN_STAMPS: set = set()


def claim_log_stamp(work_dir: str, stamp: str) -> str:
    """The timestamp of a run's log folder, ``<work_dir>/<stamp>``, taken
    for this run alone.

    ``stamp`` (mmengine's ``%Y%m%d_%H%M%S``) where its folder can be made
    here and no runner of this process took it, else ``stamp_1``,
    ``stamp_2``, ... The folder is made (``os.mkdir``, which fails where
    another process made it first), so two runs never get one.

    Args:
        work_dir (str): The run's work dir (it exists).
        stamp (str): The second the run started, as mmengine writes it.

    Returns:
        str: The run's timestamp; its folder exists.
    """
    for number in itertools.count():
        name = f'{stamp}_{number}' if number else stamp
        if name in _TAKEN_STAMPS:
            continue
        try:
            os.mkdir(osp.join(work_dir, name))
        except FileExistsError:
            continue
        _TAKEN_STAMPS.add(name)
        return name


class RunStampMixin:
    """``setup_env`` of :class:`~mmreid.engine.runner.ReIDRunner`:
    mmengine's, with a timestamp of this run alone
    (:func:`claim_log_stamp`, claimed by rank 0 and broadcast)."""

    def setup_env(self, env_cfg: dict) -> None:
        super().setup_env(env_cfg)
        from mmengine.dist import broadcast_object_list
        stamp = [
            claim_log_stamp(self._work_dir, self._timestamp)
            if self._rank == 0 else None
        ]
        if self._world_size > 1:
            broadcast_object_list(stamp)
        self._timestamp = stamp[0]


def lock_work_dir(work_dir: str) -> Optional[IO]:
    """Take the work dir's training lock.

    Args:
        work_dir (str): The run's work dir (created if missing).

    Returns:
        IO | None: The open lock file: the lock lasts while it is open
        (:func:`unlock_work_dir`). None where the file system has no locks
        (a warning says the work dir is not protected).

    Raises:
        RuntimeError: Another process holds the lock; its pid, host and
            start time are named.
    """
    import fcntl
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, LOCK_NAME)
    handle = open(path, 'a+', encoding='utf-8')
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or 'another process'
        handle.close()
        raise RuntimeError(
            f'another training run is using the work dir {work_dir!r} '
            f'({holder}; it holds {path}): two runs in one work dir '
            'overwrite each other\'s checkpoints, best checkpoint and '
            'config copy, and a resume or the analysis tools would read a '
            'mixture of the two. Give each run its own --work-dir, or wait '
            'for the other to end.') from None
    except OSError as error:
        if error.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS,
                               errno.EINVAL):
            handle.close()
            raise
        handle.close()
        print_log(
            f'the file system of {work_dir!r} takes no file lock '
            f'({error.strerror}): a second training run started on this '
            'work dir would not be refused.',
            logger='current',
            level=30)
        return None
    handle.seek(0)
    handle.truncate()
    started = datetime.datetime.now().isoformat(timespec='seconds')
    handle.write(f'pid {os.getpid()} on {socket.gethostname()}, started '
                 f'{started}\n')
    handle.flush()
    return handle


def unlock_work_dir(handle: Optional[IO]) -> None:
    """Release a lock :func:`lock_work_dir` took.

    An ``flock`` lock belongs to the open file, which processes forked
    while the run held it share (dataloader workers, persistent ones
    outliving a failed run): closing this process's handle would leave
    the lock to them, and a resume in this process would be refused as
    another run. ``LOCK_UN`` releases it for all of them; a second run
    is refused only while the lock is held.
    """
    if handle is not None:
        import fcntl
        try:
            fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()
