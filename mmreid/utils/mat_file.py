"""The one reader of MATLAB (v5) protocol files.

Datasets (GRID partitions), metrics (SYSU-MM01 ``rand_perm_cam.mat``) and
converters (CUHK03 new protocol) read ``.mat`` files with ``mat4py`` and
must fail the same way on a missing package, a missing file, a file that
is not MATLAB v5 or a file without the expected variables.
"""
import os.path as osp
from typing import Any, Dict, Optional, Sequence


class MatVariableError(KeyError, ValueError):
    """A ``.mat`` file lacks a variable its protocol needs.

    A ``KeyError`` (a missing key of the file's content) and a
    ``ValueError`` (a wrong file), so callers that catch either keep
    working.
    """

    def __str__(self) -> str:
        # KeyError would quote the message as a repr.
        return str(self.args[0]) if self.args else ''


def load_mat(path: str,
             variables: Sequence[str],
             what: str,
             expected: Optional[str] = None) -> Dict[str, Any]:
    """Read a MATLAB (v5) file with ``mat4py`` and check its variables.

    Args:
        path: The ``.mat`` file.
        variables: Names the file must hold.
        what: What the file is, for the messages (e.g. ``'GRID
            partitions'``).
        expected: The expected layout, appended to the messages about a
            wrong file.

    Returns:
        dict: Every variable of the file, as ``mat4py`` reads it (nested
        lists and dicts).

    Raises:
        ImportError: ``mat4py`` is not installed.
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` cannot be parsed as a MATLAB v5 file.
        MatVariableError: A name of ``variables`` is not in the file.
    """
    suffix = f'; expected {expected}' if expected else ''
    try:
        import mat4py
    except ImportError as error:
        raise ImportError(f'reading {what} needs mat4py (pip install '
                          'mat4py)') from error
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what}: file {path!r} not found')
    try:
        data = mat4py.loadmat(path)
    except Exception as error:  # mat4py raises bare ParseErrors
        raise ValueError(f'{path}: cannot be read as a MATLAB (v5) file '
                         f'with mat4py ({type(error).__name__}: {error})'
                         f'{suffix}') from error
    missing = [name for name in variables if name not in data]
    if missing:
        names = ', '.join(f'"{name}"' for name in missing)
        raise MatVariableError(f'{path}: no variable {names}, found '
                               f'{sorted(data)}{suffix}')
    return data
