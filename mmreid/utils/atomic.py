"""Files that appear complete or not at all."""
import os
import os.path as osp
import tempfile
from contextlib import contextmanager
from typing import IO, Iterator


@contextmanager
def open_atomic(path: str, mode: str = 'wb', **kwargs) -> Iterator[IO]:
    """Open a temporary file next to ``path`` for writing; on a clean exit
    it is renamed to ``path``, on an error it is removed.

    An interrupted write never leaves a truncated file under ``path`` (nor
    replaces a complete one with it).

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
    path = osp.abspath(path)
    os.makedirs(osp.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=osp.dirname(path), prefix=f'.{osp.basename(path)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
