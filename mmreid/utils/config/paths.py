"""Config files by name: mmreid's own configs, the closest existing names
to a config path that does not exist, and a config file as a message
shows it."""
import os
import os.path as osp
import re
from typing import List, Optional


def base_file(naming_file: str, base: str) -> str:
    """The file a ``_base_`` entry of ``naming_file`` names, as mmengine
    finds it: its predefined variables (``{{fileDirname}}``,
    ``{{fileBasename}}``, ``{{fileBasenameNoExtension}}``,
    ``{{fileExtname}}``) are those of ``naming_file``, and a relative
    path is read from that file's folder."""
    folder = osp.dirname(osp.abspath(naming_file))
    name = osp.basename(naming_file)
    values = dict(
        fileDirname=folder,
        fileBasename=name,
        fileBasenameNoExtension=osp.splitext(name)[0],
        fileExtname=osp.splitext(name)[1])
    for key, value in values.items():
        base = re.sub(r'\{\{\s*' + key + r'\s*\}\}',
                      value.replace('\\', '/'), base)
    return osp.normpath(osp.join(folder, base))


def _mmreid_config(name: str) -> Optional[str]:
    """The file of mmreid's config ``name`` (``'baseline/x.py'``): in the
    installed package (``mmreid/.mim/configs``) or the checkout's
    ``configs/``; None where neither has it."""
    import mmreid
    package = osp.dirname(osp.abspath(mmreid.__file__))
    for folder in (osp.join(package, '.mim', 'configs'),
                   osp.join(osp.dirname(package), 'configs')):
        if osp.isfile(osp.join(folder, name)):
            return osp.realpath(osp.join(folder, name))
    return None


def close_configs(path: str, bases: bool = False) -> List[str]:
    """The config files named closest to ``path``, which does not exist:
    in its folder, else in ``configs/``; files under a ``_base_`` folder
    only with ``bases`` (a config is run, a base is inherited)."""
    import difflib
    import glob
    folder = osp.dirname(path) or '.'
    candidates = glob.glob(osp.join(
        folder, '*.py')) if osp.isdir(folder) else glob.glob(
            osp.join('configs', '**', '*.py'), recursive=True)
    names = {
        osp.basename(c): c
        for c in candidates if bases or '_base_' not in c.split(os.sep)
    }
    close = difflib.get_close_matches(
        osp.basename(path), list(names), n=3, cutoff=0.6)
    return [names[c] for c in close]


def config_suggestion(path: str) -> str:
    """``'; did you mean ...?'`` for a config path that does not exist:
    the closest names in its folder, else in ``configs/``."""
    close = close_configs(path)
    if not close:
        return ''
    return '; did you mean ' + ' or '.join(map(repr, close)) + '?'


def check_config_file(path: str) -> None:
    """Refuse a config path that names no file, with the closest names.

    The one check every entry point runs before reading a config (the
    tools, the demo, :func:`~mmreid.apis.init_model`), so that a misspelt
    name gets the same answer everywhere.

    Args:
        path (str): The config file as the user gave it.

    Raises:
        FileNotFoundError: ``"config file 'X' does not exist; did you mean
            'Y'?"`` (the suggestion where a name is close), or that ``X``
            is a folder.
    """
    if osp.isfile(path):
        return
    if osp.isdir(path):
        raise FileNotFoundError(f'config file {path!r} is a folder; give '
                                'the config file (a .py) in it')
    raise FileNotFoundError(f'config file {path!r} does not exist'
                            f'{config_suggestion(path)}')


def _shown_path(source: str) -> str:
    """A config file for a message: relative to the working directory
    where it is under it."""
    relative = osp.relpath(source)
    return source if relative.startswith('..') else relative
