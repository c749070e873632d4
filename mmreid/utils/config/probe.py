"""Probing a config variable: the config read again with another value of
one top-level variable in its files (copied, ``custom_imports`` not run),
to find the keys that follow the variable's value.

:func:`~mmreid.utils.config.bases.check_base_variables` and
:func:`~mmreid.utils.config.overrides.check_variable_overrides` find with
it the keys that a base or an option would leave on the old value.
"""
import os.path as osp
from typing import Any, Collection, List, Optional, Sequence

from mmengine.config import Config

from .paths import base_file


def _read_only(path: str) -> dict:
    """A config file's merged values, its ``custom_imports`` not run.

    The bases of a config (and their probed copies) are read to compare
    values only. ``Config.fromfile`` would import a base's
    ``custom_imports`` after the config's own: a base's
    ``force=True`` registration then replaced the config's component of
    the same name, and a module the config no longer imports had to exist.
    """
    return Config.fromfile(path, import_custom_modules=False).to_dict()


def _plain_value(value: Any) -> Any:
    """Lists and tuples alike, for comparing config values."""
    if isinstance(value, (list, tuple)):
        return [_plain_value(v) for v in value]
    return value


def _paths(value: Any, path: tuple = ()):
    """``(path, value)`` of every scalar and list of a config value; a
    path is a tuple of keys and indices (dict keys may hold dots)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, path + (key, ))
    elif isinstance(value, (list, tuple)):
        yield path, value
        for i, item in enumerate(value):
            yield from _paths(item, path + (i, ))
    else:
        yield path, value


def _value_at(tree: Any, path: tuple) -> Any:
    """The value at ``path`` (see :func:`_paths`), or KeyError."""
    for part in path:
        if isinstance(tree, dict) and part in tree:
            tree = tree[part]
        elif isinstance(tree, (list, tuple)) and isinstance(part, int) \
                and part < len(tree):
            tree = tree[part]
        else:
            return KeyError
    return tree


#: A value no config holds: what a probed variable's copies carry.
_PROBE = 'mmreid-variable-probe'


def _is_dict_node(node) -> bool:
    """Whether an AST node is a dict literal or a ``dict(...)`` call."""
    import ast
    return isinstance(node, ast.Dict) or (isinstance(node, ast.Call)
                                          and isinstance(node.func, ast.Name)
                                          and node.func.id == 'dict')


def _probed_dict(node, fields: Sequence[tuple]):
    """:func:`_probed_value` of a dict literal or ``dict(...)`` call."""
    import ast
    groups: dict = {}
    for field in fields:
        groups.setdefault(field[0], []).append(tuple(field[1:]))
    if isinstance(node, ast.Dict):
        items = [(k.value if isinstance(k, ast.Constant) else None, v)
                 for k, v in zip(node.keys, node.values)]
    else:
        items = [(k.arg, k.value) for k in node.keywords]
    given = {key: value for key, value in items if key is not None}
    probed = {}
    for key, rests in groups.items():
        sub = given.get(key)
        if sub is not None and all(rests) and _is_dict_node(sub):
            probed[key] = _probed_dict(sub, rests)
        else:
            probed[key] = ast.Constant(_PROBE)
    items = [(k, probed.pop(k, v) if k is not None else v) for k, v in items]
    items += list(probed.items())
    if isinstance(node, ast.Dict):
        return ast.Dict(
            keys=[None if k is None else ast.Constant(k) for k, _ in items],
            values=[v for _, v in items])
    return ast.Call(
        func=node.func,
        args=node.args,
        keywords=[ast.keyword(arg=k, value=v) for k, v in items])


def _probed_value(node, fields: Sequence[tuple] = (), none: bool = False):
    """The AST of another value for an assignment's value ``node``: a
    number + 7, a string + ``'~'``, a tuple of them changed likewise, a
    dict (literal or ``dict(...)``) with its ``fields`` (key paths, see
    :func:`_paths`) set to :data:`_PROBE`, a list with a :data:`_PROBE`
    item added, with ``none`` a None made :data:`_PROBE`; None when there
    is no other value to make (a bool, None, an expression). A field
    inside a nested dict is probed there, so that the inheriting file's
    dict still merges into it."""
    import ast
    if _is_dict_node(node):
        return _probed_dict(node, fields)
    if isinstance(node, ast.List):
        return ast.List(elts=node.elts + [ast.Constant(_PROBE)], ctx=node.ctx)
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None
    if value is None and none:
        return ast.Constant(_PROBE)

    def other(v):
        if isinstance(v, bool) or v is None:
            return None
        if isinstance(v, str):
            return v + '~'
        if isinstance(v, (int, float)):
            return v + 7
        if isinstance(v, (list, tuple)):
            # A bool item flips: a sequence of flags (SNR's stages) then
            # has another value too.
            items = [(not x) if isinstance(x, bool) else other(x) for x in v]
            return None if any(x is None for x in items) else type(v)(items)
        return None

    changed = other(value)
    return None if changed is None else ast.parse(
        repr(changed), mode='eval').body


def _names(node, name: str) -> bool:
    """Whether an expression reads the variable ``name`` (``name`` or
    ``{{_base_.name}}``)."""
    import ast
    return any(
        isinstance(n, ast.Name) and n.id == name
        or isinstance(n, ast.Attribute) and n.attr == name
        and isinstance(n.value, ast.Name) and n.value.id == '_base_'
        for n in ast.walk(node))


def _read_with_probed_bases(path: str,
                            name: str,
                            fields: Sequence[tuple] = (),
                            leaf: bool = False,
                            builders: Optional[dict] = None,
                            none: bool = False) -> Optional[dict]:
    """``path`` read with another value of ``name`` (of its ``fields``, for
    a dict) in every base that assigns it (the bases copied, with
    ``_base_`` pointing at the copies); the file itself keeps its own
    unless ``leaf``. None when a base's value has no other value to take
    (see :func:`_probed_value`) or the copy cannot be read.

    Args:
        path (str): The config file.
        name (str): The top-level variable to probe.
        fields (Sequence[tuple]): Key paths of a dict ``name`` to probe.
        leaf (bool): Probe ``name`` in ``path`` itself too.
        builders (dict, optional): Filled with ``key -> [files]``: the
            top-level keys a file assigns from an expression naming
            ``name`` (``test_dataloader = val_dataloader``).
        none (bool): Probe a ``name = None`` too (see
            :func:`_probed_value`).
    """
    import ast
    import tempfile
    from copy import deepcopy as copy_node
    with tempfile.TemporaryDirectory() as tmp:
        copies = {}

        def copy(source: str, probe: bool) -> Optional[str]:
            source = osp.abspath(source)
            if (source, probe) in copies:
                return copies[(source, probe)]
            with open(source, encoding='utf-8') as f:
                tree = ast.parse(f.read())
            # Values of the file's variables so far, for a variable
            # assigned from another (``val_dataloader = loader``).
            assigned = {}
            for node in tree.body:
                if not isinstance(node, ast.Assign) or len(node.targets) != 1 \
                        or not isinstance(node.targets[0], ast.Name):
                    continue
                target = node.targets[0].id
                value = node.value
                if isinstance(value, ast.Name) and value.id in assigned:
                    value = assigned[value.id]
                assigned[target] = value
                if target == '_base_':
                    for const in ast.walk(node.value):
                        if isinstance(const, ast.Constant) and isinstance(
                                const.value, str) and '::' not in const.value:
                            base = copy(base_file(source, const.value), True)
                            if base is None:
                                return None
                            const.value = base
                elif target == name and probe:
                    # A variable's value is probed as a copy of its own:
                    # the other variable and its other copies keep theirs.
                    node.value = _probed_value(copy_node(value), fields, none)
                    if node.value is None:
                        return None
                elif target != name and builders is not None and _names(
                        node.value, name):
                    builders.setdefault(target, []).append(source)
            ast.fix_missing_locations(tree)
            out = osp.join(tmp, f'{len(copies)}_{osp.basename(source)}')
            with open(out, 'w', encoding='utf-8') as f:
                f.write(ast.unparse(tree))
            copies[(source, probe)] = out
            return out

        try:
            copied = copy(path, leaf)
            return None if copied is None else _read_only(copied)
        except Exception:
            return None


def _following_keys(probed: dict,
                    merged: dict,
                    roots: Collection[str],
                    probe_only: bool = False) -> List[tuple]:
    """The keys under ``roots`` that a probed read
    (:func:`_read_with_probed_bases`) changed: key paths (see
    :func:`_paths`), a list that holds the probe item for its items.
    ``probe_only`` keeps only the keys that carry :data:`_PROBE` (what a
    probed dict field or list reached), not other differences between the
    files and ``merged``."""
    kept = []
    for key, value in _paths(probed):
        if key[0] not in roots or isinstance(value, (dict, list, tuple)):
            continue
        if probe_only and value != _PROBE:
            continue
        if _plain_value(_value_at(merged, key)) == _plain_value(value):
            continue
        if value == _PROBE and isinstance(key[-1], int):
            key = key[:-1]  # a list that holds the probe item
        if key not in kept:
            kept.append(key)
    # A list that follows the variable stands for its items.
    return [k for k in kept if not any(k[:-1] == d for d in kept)]
