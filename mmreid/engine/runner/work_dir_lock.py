"""One training run per work dir.

Two trainings started on one ``--work-dir`` (two jobs of an array, a job
requeued while the first still runs) write the same ``epoch_N.pth``,
``last_checkpoint``, best checkpoint and config copy, and when they start
in the same second the same log folder: the work dir then holds a mixture
that a resume or the analysis tools read as one run. A training run holds
an exclusive lock on ``<work_dir>/.mmreid-train.lock`` (``fcntl.flock``,
which the system releases when the process ends, also when it is killed)
and a second one is refused, naming the first.
"""
import datetime
import errno
import os
import os.path as osp
import socket
from typing import IO, Optional

from mmengine.logging import print_log

#: The lock file, in the work dir.
LOCK_NAME = '.mmreid-train.lock'


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
    """Release a lock :func:`lock_work_dir` took (closing releases it)."""
    if handle is not None:
        handle.close()
