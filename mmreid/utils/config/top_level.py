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


class _Unknown:
    """A value the dumped-literal reader does not evaluate: unequal to
    everything, itself included."""

    def __eq__(self, other):
        return False

    __hash__ = None


def _literal(node: ast.AST):
    """The value of a literal as a dumped config writes it: constants,
    tuples, lists, dict displays and ``dict(key=...)`` calls; anything
    else is an :class:`_Unknown`."""
    if isinstance(node, ast.Call) and isinstance(
            node.func, ast.Name) and node.func.id == 'dict' and \
            not node.args and all(k.arg for k in node.keywords):
        return {k.arg: _literal(k.value) for k in node.keywords}
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_literal(item) for item in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict) and all(
            isinstance(key, ast.Constant) for key in node.keys):
        return {
            key.value: _literal(value)
            for key, value in zip(node.keys, node.values)
        }
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        return _Unknown()


def _values(value) -> Iterator:
    """``value`` and every value nested in it."""
    yield value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _values(item)


def _written_out(tree: ast.Module) -> Set[str]:
    """The top-level names of a dumped config whose value is written out
    where the config used it.

    A run writes its merged config (mmengine's ``Config.dump``): every
    top-level name of the config and its bases, helper variables
    included, with each use replaced by the value. There ``mode = 'all'``
    reads as an unused name close to ``model``. A file that assigns no
    ``_base_`` and reads none of its own names is taken for such a copy,
    and in it a name counts as used when another top-level value holds its
    value: equal, or for a dict, a dict holding all its items (the
    ``dict(target_dataloader, dataset=...)`` form)."""
    assigned = {
        node.targets[0].id: node.value
        for node in tree.body if isinstance(node, ast.Assign)
        and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
    }
    if '_base_' in assigned or _used(tree) & set(assigned):
        return set()
    values = {name: _literal(node) for name, node in assigned.items()}
    found = set()
    for name, value in values.items():
        if isinstance(value, _Unknown) or value in ({}, [], ()):
            continue
        for other, held in values.items():
            if other != name and any(
                    _holds(nested, value) for nested in _values(held)):
                found.add(name)
                break
    return found


def _holds(nested, value) -> bool:
    """Whether ``nested`` is ``value`` or, for dicts, holds its items."""
    if isinstance(value, dict) and isinstance(nested, dict):
        return all(key in nested and nested[key] == item
                   for key, item in value.items())
    return nested == value


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
    and it is close to a key the run reads. In the copy of its config a
    run writes, a helper variable is kept where its value is written out
    (:func:`_written_out`).

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
    used |= set().union(*map(_written_out, files.values())) if files else set()
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
