"""SynthReID folder bookkeeping: manifest, lock, progress.

Nothing here decides a pixel: :mod:`.synthetic` plans, renders and checks a
folder with these helpers.
"""
import contextlib
import errno
import json
import os
import os.path as osp
import sys
from typing import Dict, Iterator, Optional, TextIO

import cv2
import numpy as np
from mmengine.utils import ProgressBar, Timer

MANIFEST = 'synthreid.json'


def _read_manifest(root: str) -> Optional[dict]:
    """The manifest of ``root``, or None if it has none.

    Raises:
        FileExistsError: The manifest is not a JSON object (truncated or
            corrupt); names the file and the folder to delete.
    """
    path = osp.join(root, MANIFEST)
    if not osp.isfile(path):
        return None
    with open(path, 'rb') as f:
        data = f.read()
    try:
        manifest = json.loads(data.decode('utf-8'))
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        problem = f'is not valid JSON ({error})'
    else:
        if isinstance(manifest, dict):
            return manifest
        problem = f'holds a {type(manifest).__name__}, not a JSON object'
    raise FileExistsError(
        f'SynthReID: the manifest {path!r} {problem}: it is truncated or '
        f'corrupt, so the folder cannot be checked. Delete {root!r}; it is '
        f'regenerated on next use.')


#: CPU features numpy and OpenCV dispatch their kernels on: vectorised
#: transcendental functions (numpy's AVX-512 ``exp``/``sin``) and resize or
#: blur paths can round differently on another class of CPU.
_DISPATCH_FEATURES = ('AVX512F', 'AVX512_SKX', 'AVX2', 'FMA3', 'AVX', 'SSE41',
                      'ASIMD', 'ASIMDHP', 'SVE')


def _cpu_features() -> str:
    """The machine and the dispatch features numpy sees, e.g.
    ``'x86_64 AVX,AVX2,AVX512F,...'``."""
    import platform
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__
    found = sorted(f for f in _DISPATCH_FEATURES if __cpu_features__.get(f))
    return f'{platform.machine()} {",".join(found)}'


def _renderer_versions() -> dict:
    """What the rendered pixels depend on besides mmreid: the numpy and
    OpenCV versions and the CPU features their kernels dispatch on."""
    return dict(
        numpy=np.__version__, opencv=cv2.__version__, cpu=_cpu_features())


#: errno values of a file system (or folder) where locks cannot be taken.
_NO_LOCKS = (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EACCES,
             errno.EROFS)


def _lock_path(parent: str, base: str) -> str:
    return osp.join(parent, f'.{base}.lock')


@contextlib.contextmanager
def _generation_lock(parent: str, base: str) -> Iterator[bool]:
    """Hold an exclusive lock for writing ``parent/base``.

    Processes that generate the same folder at once (the ranks of a DDP job,
    two jobs started together) take turns: the first renders, the others
    wait here and then find the finished folder. The lock is an ``flock``
    on a hidden sibling file, released by the kernel when its holder dies,
    so a killed generation never blocks the next one. The file is removed
    on release; a waiter that then holds a lock on a removed file retries.

    Yields:
        bool: Whether the lock is held. False where the file system (or the
        platform) has no locks: every process then renders and the first
        rename wins, as before.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover (Windows)
        yield False
        return
    path = _lock_path(parent, base)
    fd = None
    try:
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                sys.stdout.write(f'SynthReID: waiting for another process '
                                 f'that is writing {osp.join(parent, base)}'
                                 f'\n')
                sys.stdout.flush()
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            # The previous holder removed the file while this process
            # waited: lock the new one.
            os.close(fd)
            fd = None
    except OSError as error:
        if fd is not None:
            os.close(fd)
            fd = None
        if error.errno not in _NO_LOCKS:
            raise
    if fd is None:
        yield False
        return
    try:
        yield True
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:  # pragma: no cover
            pass
        os.close(fd)


class _Progress:
    """Progress of a generation: a bar on a terminal, else a few lines.

    A bar redrawn once per image would flood a log file, so a stream that is
    not a terminal gets a line at every tenth of the work instead.
    """

    def __init__(self, total: int, folder: str,
                 stream: Optional[TextIO]) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.bar: Optional[ProgressBar] = None
        if stream is None:
            return
        stream.write(f'SynthReID: rendering {total} images into {folder}\n')
        stream.flush()
        self.tty = bool(getattr(stream, 'isatty', lambda: False)())
        self.step = max(1, -(-total // (50 if self.tty else 10)))
        self.bar = ProgressBar(total, file=stream) if self.tty else None
        self.timer = Timer()

    def update(self, num: int = 1) -> None:
        before, self.done = self.done, self.done + num
        if self.stream is None or (self.done // self.step == before //
                                   self.step and self.done != self.total):
            return
        if self.bar is not None:
            self.bar.update(self.done - self.bar.completed)
        else:
            self.stream.write(f'SynthReID: {self.done}/{self.total} images, '
                              f'{self.timer.since_start():.0f}s\n')
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None and self.stream is not None:
            self.stream.write('\n')
            self.stream.flush()


def check_parsed_counts(root: str, dataset: str, split: str,
                        found: Dict[str, int], expected: Dict[str,
                                                              int]) -> None:
    """Refuse a generated split whose files differ from its manifest.

    Args:
        root (str): The SynthReID root (named in the message).
        dataset (str): Dataset name for the message (``'synthreid-d0'``).
        split (str): ``'train'`` or ``'test'``.
        found (dict[str, int]): What the parser found, per role or folder.
        expected (dict[str, int]): What the manifest lists, same keys.

    Raises:
        RuntimeError: A count differs; names the split and both counts.
    """
    bad = [k for k in expected if found.get(k) != expected[k]]
    if bad:
        what = '; '.join(f'{k}: found {found.get(k)}, manifest lists '
                         f'{expected[k]}' for k in bad)
        raise RuntimeError(
            f'SynthReID: {dataset} split {split!r} under {root!r} does not '
            f'match its manifest {osp.join(root, MANIFEST)!r} ({what}): '
            f'images were deleted or added after generation. Delete '
            f'{root!r}; it is regenerated on next use.')
