"""A config file's top-level names checked against the keys the run
reads, by :func:`~mmreid.utils.config.read_config`."""
import ast
import difflib
from typing import Dict, Iterator, Set, Tuple

from .bases import _BASE_PLACEHOLDER, _config_files
from .keys import READ_TOP_LEVEL_KEYS, _runner_keys
from .paths import _shown_path


def _tree(source: str) -> ast.Module:
    """A config file's syntax tree, each ``{{_base_.name}}`` read as the
    attribute ``_base_.name``; an empty tree where it does not parse
    (mmengine says where)."""
    with open(source, encoding='utf-8') as f:
        text = _BASE_PLACEHOLDER.sub(r'_base_.\1', f.read())
    try:
        return ast.parse(text)
    except SyntaxError:
        return ast.Module(body=[], type_ignores=[])


def _assigned(tree: ast.Module) -> Iterator[Tuple[str, int]]:
    """``(name, line)`` of each name a file's top level assigns."""
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        else:
            continue
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    yield name.id, node.lineno


def _used(tree: ast.Module) -> Set[str]:
    """The names a file reads: as variables, and as ``_base_.name``."""
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            used.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(
                node.value, ast.Name) and node.value.id == '_base_':
            used.add(node.attr)
    return used


def check_top_level_names(path: str) -> None:
    """Refuse a top-level name of a config that looks like a misspelt key
    the run reads.

    mmengine keeps every top-level name of a config file, and the run
    reads the keys it knows: ``randomnes = dict(seed=3)`` (for
    ``randomness``) or ``load_form = '...'`` (for ``load_from``) trained
    with the base's seed, from random weights, without a word (the same
    key as an option is refused by
    :func:`~mmreid.utils.config.options.check_option_keys`). A name of the
    config or of its bases is refused where the run does not read it, no
    file of the config reads it as a variable (``_base_.name`` included)
    and it is close to a key the run reads.

    Args:
        path (str): The config file.

    Raises:
        ValueError: Naming the file, the line, the name and the key the
            run reads.
    """
    read = sorted((READ_TOP_LEVEL_KEYS | _runner_keys()) - {'self'})
    files: Dict[str, ast.Module] = {
        source: _tree(source)
        for source, _ in _config_files(path) if source.endswith('.py')
    }
    used = set().union(*map(_used, files.values())) if files else set()
    for source, tree in files.items():
        for name, line in _assigned(tree):
            if name in read or name in used or name.startswith('_'):
                continue
            close = difflib.get_close_matches(name, read, 1, cutoff=0.8)
            if not close:
                continue
            raise ValueError(
                f'{_shown_path(source)}:{line}: {name!r} is not a top-level '
                f'key the run reads, nor a variable this config uses, so the '
                f'run would go on without it. Did you mean {close[0]!r}? '
                f'(python tools/misc/print_config.py {_shown_path(path)} '
                f'shows the keys.)')
