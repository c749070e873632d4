"""Files that appear complete or not at all."""
import os
import os.path as osp
import re
import shutil
import socket
import stat
import threading
import uuid
from contextlib import contextmanager
from typing import IO, Iterator, List, Optional

import cv2
import numpy as np
from mmengine.logging import print_log

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


def pid_namespace() -> Optional[int]:
    """This process's pid namespace: the inode number of
    ``/proc/self/ns/pid`` (Linux), or None where ``/proc`` does not show
    it (another system, or ``/proc`` not mounted).

    A pid names a process only within its namespace, and containers that
    share a host name need not share it (``docker run --uts=host`` or two
    containers given the same ``--hostname``, Kubernetes pods with
    ``hostNetwork``).
    """
    try:
        return os.stat('/proc/self/ns/pid').st_ino
    except OSError:
        return None


def temp_name(name: str) -> str:
    """A name for the temporary file (or folder) that becomes ``name``.

    ``.<name>.tmp-<host>-pidns<inode>-<pid>-<hex>``: hidden, and naming the
    process that writes it (its host, its pid namespace, see
    :func:`pid_namespace`, and its pid there), so that one a killed process
    left can be told from one being written (see
    :func:`remove_stale_temps`). Where the namespace is not known the name
    has no ``pidns`` field, as before it was added:
    ``.<name>.tmp-<host>-<pid>-<hex>``.

    Args:
        name (str): The base name of the output.

    Returns:
        str: A base name in the same folder, unique to this call.
    """
    namespace = pid_namespace()
    space = '' if namespace is None else f'pidns{namespace}-'
    return (f'.{name}.tmp-{socket.gethostname()}-{space}{os.getpid()}-'
            f'{uuid.uuid4().hex}')


#: What a writer that replaces a folder appends to its :func:`temp_name` to
#: name the previous folder while it moves the new one in (see
#: :func:`recover_replaced_folders`).
REPLACED_SUFFIX = '.old'


def _temp_pattern(name: Optional[str], suffix: str = '') -> 're.Pattern':
    # The names of temp_name (plus suffix); SynthReID's first release wrote
    # no host and earlier releases no pid namespace. The host is the
    # shortest that parses, so that a pidns field is never read as the
    # host's end.
    base = '.+' if name is None else re.escape(name)
    return re.compile(rf'\.{base}\.tmp-(?:(?P<host>.+?)-)?'
                      rf'(?:pidns(?P<ns>\d+)-)?(?P<pid>\d+)-[0-9a-f]{{32}}'
                      rf'{re.escape(suffix)}')


def _same_pid_space(match: 're.Match', host: str,
                    namespace: Optional[int]) -> bool:
    """Whether the writer a :func:`temp_name` names has its pid among
    this process's: this host and this pid namespace.

    A name without a host counts as this host's, one without a namespace
    (written before it was named, or where /proc was absent) as this
    namespace's, as they were read before; one with a namespace when this
    process's is not known, as another's.
    """
    if match.group('host') not in (None, host):
        return False
    if match.group('ns') is None:
        return True
    return namespace is not None and int(match.group('ns')) == namespace


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host.

    Another user's process counts; so does a pid no process can have,
    which is not known to be dead.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale_temps(folder: str,
                       name: Optional[str] = None,
                       folders: bool = False,
                       other_hosts: bool = False) -> List[str]:
    """Remove the temporary files (see :func:`temp_name`) that killed
    processes left in ``folder``, with one log line naming them.

    A temporary file is removed when its writer ran on this host, in this
    pid namespace (see :func:`pid_namespace`), and is no longer alive.
    Another host's is kept: on a file system several nodes share (the work
    dirs of a cluster), its pid says nothing here and its writer may be
    running. So is another pid namespace's, for the same reason: a
    container that shares this host name but not its pids. A live
    process's is kept too, its own included: it may be writing it (and a
    dead writer's pid that a new process has taken keeps its file, never
    the other way round). A name without a host (SynthReID's first
    release) counts as this host's, and one without a pid namespace
    (earlier releases, or a writer without ``/proc``) as this
    namespace's, as those releases read them: where the host name is
    shared but the pids are not, such a file of a live writer can still be
    taken for a dead one's (whose rename then fails, its output left as it
    was). Where this process's namespace is not known, a name with one is
    another's. A file that cannot be removed is left.

    Args:
        folder (str): The folder to clean.
        name (str, optional): Only the temporary files of this output;
            those of any by default.
        folders (bool): Remove temporary folders, with their content,
            instead of files.
        other_hosts (bool): Remove those of other hosts and other pid
            namespaces too, for a caller that holds a lock every writer on
            any host takes.

    Returns:
        list[str]: The removed paths.
    """
    pattern = _temp_pattern(name)
    host, namespace = socket.gethostname(), pid_namespace()
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for entry in sorted(n for n in names if '.tmp-' in n):
        match = pattern.fullmatch(entry)
        if match is None:
            continue
        path = osp.join(folder, entry)
        if not (osp.isdir(path) if folders else osp.isfile(path)):
            continue
        if _same_pid_space(match, host, namespace):
            if pid_alive(int(match.group('pid'))):
                continue
        elif not other_hosts:
            continue
        try:
            if folders:
                shutil.rmtree(path)
            else:
                os.remove(path)
        except OSError:
            if osp.lexists(path):
                continue
        removed.append(path)
    if removed:
        print_log(
            f'Removed {len(removed)} temporary '
            f'{"folder" if folders else "file"}(s) that killed processes '
            f'left: {", ".join(removed)}',
            logger='current')
    return removed


def _dead_writers(folder: str, name: str, suffix: str) -> List[str]:
    """The folders in ``folder`` named :func:`temp_name` of ``name`` plus
    ``suffix`` whose writer is dead: this host, this pid namespace, no
    such process (as :func:`remove_stale_temps` judges them)."""
    pattern = _temp_pattern(name, suffix)
    host, namespace = socket.gethostname(), pid_namespace()
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for entry in sorted(names):
        match = pattern.fullmatch(entry)
        path = osp.join(folder, entry)
        if (match is not None and osp.isdir(path)
                and _same_pid_space(match, host, namespace)
                and not pid_alive(int(match.group('pid')))):
            found.append(path)
    return found


def recover_replaced_folders(folder: str, name: str) -> Optional[str]:
    """Put back the previous folder that a process killed while replacing
    ``folder/name`` left hidden, and remove the stale ones.

    A writer that replaces a folder as a whole moves the previous one to
    its :func:`temp_name` plus :data:`REPLACED_SUFFIX` (``.old``), then its
    new one to ``name``, then removes the previous one. Killed between the
    two renames it leaves no ``name``: the previous, complete folder is
    only that hidden ``.old`` one. Here, where ``name`` is missing, the
    newest such folder of a dead writer (judged as in
    :func:`remove_stale_temps`: this host, this pid namespace) is renamed
    back to ``name``; the others, and all of them where ``name`` exists (a
    writer killed after its swap, while removing the previous folder), are
    removed. A live writer's, another host's or another pid namespace's is
    kept. One log line names what was restored and removed.

    Args:
        folder (str): The folder that holds ``name``.
        name (str): The base name of the replaced folder.

    Returns:
        str | None: The hidden path that was renamed back to ``name``, or
        None where none was.
    """
    leftovers = _dead_writers(folder, name, REPLACED_SUFFIX)
    path = osp.join(folder, name)
    restored = None
    if leftovers and not osp.lexists(path):
        newest = max(leftovers, key=lambda p: (os.stat(p).st_mtime, p))
        os.rename(newest, path)
        leftovers.remove(newest)
        restored = newest
    removed = []
    for leftover in leftovers:
        shutil.rmtree(leftover, ignore_errors=True)
        if not osp.lexists(leftover):
            removed.append(leftover)
    if restored is not None:
        print_log(
            f'Restored {path} from {restored}: the previous set that a '
            f'process killed while replacing it left aside.',
            logger='current')
    if removed:
        print_log(
            f'Removed {len(removed)} previous folder(s) of {path} that '
            f'processes killed while replacing it left: '
            f'{", ".join(removed)}',
            logger='current')
    return restored


@contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """A temporary path next to ``path`` for a writer that takes a path; on
    a clean exit the file there is renamed to ``path``, on an error it is
    removed.

    The temporary file (``.<name>.tmp-<host>-pidns<inode>-<pid>-<hex>`` in
    the folder of ``path``, see :func:`temp_name`) exists, empty, when the
    block starts. A process killed in the block leaves it behind, never a
    truncated ``path``; the next write in that folder removes it (see
    :func:`remove_stale_temps`; from another host or pid namespace, it is
    left). ``path``
    gets the permissions a plain ``open(path, 'wb')`` would give it (see
    :func:`output_mode`).

    Args:
        path (str): The file to write.

    Examples:
        >>> with atomic_path('epoch_3.pth') as tmp:
        ...     torch.save(checkpoint, tmp)
    """
    path = osp.abspath(path)
    folder, name = osp.split(path)
    os.makedirs(folder, exist_ok=True)
    remove_stale_temps(folder)
    tmp = osp.join(folder, temp_name(name))
    # Private until renamed, as tempfile.mkstemp's.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
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


def write_image(path: str, image_rgb: np.ndarray) -> None:
    """Write an RGB picture, in the format its extension names, through
    :func:`open_atomic`: a run killed meanwhile leaves no cut picture.

    Args:
        path (str): The file, e.g. ``'best_0.jpg'`` or ``'grid.png'``.
        image_rgb (np.ndarray): (H, W, 3) ``uint8``, RGB.

    Raises:
        OSError: The picture cannot be encoded in that format; names
            ``path``.
    """
    ext = osp.splitext(path)[1] or '.png'
    ok, data = cv2.imencode(
        ext, cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f'cannot encode the picture for {path!r}')
    with open_atomic(path) as f:
        f.write(data.tobytes())


def check_replaceable(path: str,
                      outputs: Optional[str] = None,
                      what: str = 'the writer') -> List[str]:
    """Refuse a folder that a writer could not replace as a whole.

    Args:
        path (str): The output folder (it may not exist).
        outputs (str, optional): A regular expression that the name of
            every entry the writer puts in the folder matches in full
            (e.g. ``r'report\\.html|per_query\\.npz'``); the temporary
            files of :func:`temp_name` count as its too. None: the writer
            replaces only an empty folder (a user's data may be there).
        what (str): The writer, as the message names it.

    Returns:
        list[str]: The entries of ``path`` (an earlier run's outputs),
        sorted; empty where there is no such folder.

    Raises:
        NotADirectoryError: ``path`` is not a folder.
        FileExistsError: ``path`` holds entries the writer does not
            write, named in the message.
    """
    if osp.lexists(path) and not osp.isdir(path):
        raise NotADirectoryError(f'{what}: {path!r} is not a directory')
    if not osp.isdir(path):
        return []
    entries = sorted(os.listdir(path))
    if outputs is None:
        others = entries
    else:
        pattern, temp = re.compile(outputs), _temp_pattern(None)
        others = [
            e for e in entries
            if pattern.fullmatch(e) is None and temp.fullmatch(e) is None
        ]
    if others:
        shown = others[:10] + ([f'... ({len(others) - 10} more)']
                               if len(others) > 10 else [])
        raise FileExistsError(
            f'{what}: {path!r} holds {shown}, which it does not write; it '
            'replaces that folder as a whole with one run\'s output and '
            'never writes into a folder with other files, so give an empty '
            'or new folder (or move them out)')
    return entries


@contextmanager
def atomic_folder(path: str,
                  outputs: Optional[str] = None,
                  what: str = 'the writer') -> Iterator[str]:
    """A temporary folder beside ``path`` to write one run's whole output
    in; on a clean exit it takes the place of ``path``, on an error it is
    removed.

    A reader sees the previous run's complete folder or this run's, never
    a half-written one, a mix of both, nor a previous run's stale files
    beside this run's. ``path`` is refused when it holds entries the
    writer does not write (``outputs``; with None, any entry: only an
    empty folder is replaced), at the start and again (another process
    may have written there) before the swap; see
    :func:`check_replaceable`. The previous run's entries that were
    replaced are named in one log line.

    An error (or Ctrl-C) leaves the previous folder. A process killed in
    the block leaves its temporary folder, which the next write removes
    (see :func:`remove_stale_temps`); one killed between moving the
    previous folder aside (as :func:`temp_name` plus
    :data:`REPLACED_SUFFIX`) and moving the new one in leaves the previous
    folder hidden, and the next write puts it back first (see
    :func:`recover_replaced_folders`). The folder gets the permissions of
    a plain ``os.mkdir(path)`` (see :func:`output_mode`).

    Args:
        path (str): The output folder; a link to one is followed.
        outputs (str, optional): The names the writer's entries match (see
            :func:`check_replaceable`). Defaults to None.
        what (str): The writer, as the messages name it.

    Raises:
        NotADirectoryError, FileExistsError: See
            :func:`check_replaceable`.
        ValueError: ``path`` is the current directory or holds it.

    Examples:
        >>> with atomic_folder('report', r'report\\.html', 'Report') as tmp:
        ...     with open(osp.join(tmp, 'report.html'), 'w') as f:
        ...         f.write(page)
    """
    path = osp.realpath(path)
    cwd = osp.realpath(os.getcwd())
    if cwd == path or cwd.startswith(path + os.sep):
        raise ValueError(
            f'{what}: the output folder {path!r} holds the current '
            'directory, which replacing the folder would take away; give '
            'a folder beside or below the current directory')
    parent, name = osp.split(path)
    recover_replaced_folders(parent, name)
    check_replaceable(path, outputs, what)
    os.makedirs(parent, exist_ok=True)
    remove_stale_temps(parent, name, folders=True)
    tmp = osp.join(parent, temp_name(name))
    old = osp.join(parent, temp_name(name) + REPLACED_SUFFIX)
    os.mkdir(tmp, 0o700)
    try:
        yield tmp
        replaced = check_replaceable(path, outputs, what)
        set_output_mode(tmp, path, folder=True)
        if osp.isdir(path):
            os.rename(path, old)
        os.rename(tmp, path)
    finally:
        if osp.isdir(old) and not osp.lexists(path):
            # Interrupted between the two renames: the previous one back.
            os.rename(old, path)
        for leftover in (tmp, old):
            if osp.isdir(leftover):
                shutil.rmtree(leftover)
    if replaced:
        shown = replaced[:10] + ([f'... ({len(replaced) - 10} more)']
                                 if len(replaced) > 10 else [])
        print_log(
            f'{what}: replaced an earlier run\'s output in {path}: '
            f'{", ".join(shown)}',
            logger='current')
