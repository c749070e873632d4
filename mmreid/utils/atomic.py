"""Files that appear complete or not at all."""
import os
import os.path as osp
import stat
import tempfile
import threading
from contextlib import contextmanager
from typing import IO, Iterator

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the system
    allows (``/proc/self/status`` on Linux).

    Elsewhere it is set and restored at once: ``os.umask`` is the only way
    to read it. The umask is the process's, so in the meantime it is set
    to the restrictive ``0o077`` rather than ``0``: a file another thread
    creates then is private, never world-writable.
    """
    try:
        with open('/proc/self/status', encoding='ascii') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        umask = os.umask(0o077)
        os.umask(umask)
    return umask


def output_mode(path: str, folder: bool = False) -> int:
    """The permission bits a plain ``open(path, 'w')`` (or, with ``folder``,
    ``os.mkdir(path)``) would leave on ``path``.

    That is the mode of an existing ``path``, which writing in place keeps,
    or else ``0o666`` (``0o777`` for a folder) less the umask. A temporary
    file (``tempfile.mkstemp``: ``0o600``, ``mkdtemp``: ``0o700``) renamed
    to ``path`` is given it first, so that the output is as readable as one
    written directly.
    """
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is not None and (stat.S_ISDIR(st.st_mode) if folder else
                           stat.S_ISREG(st.st_mode)):
        return stat.S_IMODE(st.st_mode)
    return (0o777 if folder else 0o666) & ~current_umask()


def set_output_mode(tmp: str, path: str, folder: bool = False) -> None:
    """Give ``tmp``, about to be renamed to ``path``, the mode of
    :func:`output_mode`; where the file system keeps no modes (an
    ``OSError``), ``tmp`` is left as it is."""
    try:
        os.chmod(tmp, output_mode(path, folder))
    except OSError:
        pass


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary path next to ``path`` for a writer that takes a path; on
    a clean exit the file there is renamed to ``path``, on an error it is
    removed.

    The temporary file (``.<name>.<random>.tmp`` in the folder of ``path``)
    exists, empty, when the block starts. A process killed in the block
    leaves it behind, never a truncated ``path``. ``path`` gets the
    permissions a plain ``open(path, 'wb')`` would give it (see
    :func:`output_mode`).

    Args:
        path (str): The file to write.

    Examples:
        >>> with atomic_path('epoch_3.pth') as tmp:
        ...     torch.save(checkpoint, tmp)
    """
    path = osp.abspath(path)
    os.makedirs(osp.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=osp.dirname(path), prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    os.close(fd)
    try:
        yield tmp
        set_output_mode(tmp, path)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


@contextmanager
def open_atomic(path: str, mode: str = 'wb', **kwargs) -> Iterator[IO]:
    """Open a temporary file next to ``path`` for writing; on a clean exit
    it is renamed to ``path``, on an error it is removed.

    An interrupted write never leaves a truncated file under ``path`` (nor
    replaces a complete one with it). The file gets the permissions a plain
    ``open(path, mode)`` would give it (see :func:`output_mode`).

    Args:
        path (str): The file to write.
        mode (str): ``'wb'`` or ``'w'``.
        **kwargs: Passed to :func:`open` (e.g. ``encoding``).

    Examples:
        >>> with open_atomic('report.html', 'w', encoding='utf-8') as f:
        ...     f.write(page)
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_TRUNC), mode,
                       **kwargs) as f:
            yield f
