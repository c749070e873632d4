"""Checks of a config's bases, run by
:func:`~mmreid.utils.config.read_config`: ``_base_`` entries that name no
file or a package mmengine cannot resolve, ``{{_base_.name}}`` used
inside an expression, and a variable that a config redefines after its
base already substituted it."""
import ast
import os.path as osp
import re
from typing import Optional, Sequence

from mmengine.config import Config

from .keys import READ_TOP_LEVEL_KEYS, _first_keys, _runner_keys
from .paths import _mmreid_config, _shown_path, base_file, close_configs
from .probe import (_following_keys, _paths, _plain_value, _read_only,
                    _read_with_probed_bases, _value_at)


def _config_files(path: str):
    """``(file, its _base_ entries)`` of a config and of every base file
    it reads by path (a ``'package::config'`` base is not followed)."""
    todo, seen = [osp.abspath(path)], set()
    while todo:
        source = todo.pop()
        if source in seen or not osp.isfile(source):
            continue
        seen.add(source)
        bases = Config._get_base_files(source)
        yield source, bases
        todo += [base_file(source, base) for base in bases if '::' not in base]


#: mmengine's ``{{_base_.name}}`` placeholder (``Config._pre_substitute_
#: base_vars``).
_BASE_PLACEHOLDER = re.compile(r'\{\{\s*_base_\.([\w\.]+)\s*\}\}')


def _whole_value(node: ast.AST, parent: Optional[ast.AST]) -> bool:
    """Whether ``node`` stands alone as a value where ``parent`` holds it:
    assigned, a keyword's or a dict's value, a list or tuple item, or an
    argument of a function of the config's own."""
    import builtins
    if isinstance(parent, (ast.Assign, ast.AnnAssign, ast.Return)):
        return parent.value is node
    if isinstance(parent, ast.Dict):
        return any(value is node for value in parent.values)
    if isinstance(parent, ast.Call):
        return not (isinstance(parent.func, ast.Name)
                    and hasattr(builtins, parent.func.id))
    return isinstance(parent, (ast.keyword, ast.List, ast.Tuple))


def _placeholder_in_expression(source: str) -> Optional[tuple]:
    """``(line, base variable, variable holding it or None)`` of the first
    ``{{_base_.name}}`` of a config file used inside an expression, either
    itself or through a variable assigned from it; None if there is none."""
    with open(source, encoding='utf-8') as f:
        text = f.read()
    marks: dict = {}

    def mark(match) -> str:
        name = f'_mmreid_base_placeholder_{len(marks)}'
        marks[name] = match.group(1)
        return name

    code = _BASE_PLACEHOLDER.sub(mark, text)
    if not marks:
        return None
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None  # mmengine says where
    parents = {
        child: node
        for node in ast.walk(tree)
        for child in ast.iter_child_nodes(node)
    }
    held = {
        node.targets[0].id: marks[node.value.id]
        for node in ast.walk(tree) if isinstance(node, ast.Assign)
        and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Name) and node.value.id in marks
    }
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name) or not isinstance(
                node.ctx, ast.Load) or _whole_value(node, parents.get(node)):
            continue
        if node.id in marks:
            return node.lineno, marks[node.id], None
        if node.id in held:
            return node.lineno, held[node.id], node.id
    return None


def check_base_placeholders(path: str) -> None:
    """Refuse a ``{{_base_.name}}`` used inside an expression, in the
    config or any of its bases.

    mmengine replaces the placeholder by a string before the file runs
    and puts the base's value in its place after: inside an expression
    the string takes part. ``{{_base_.test_targets}} + [mine]`` failed
    with a raw "TypeError: can only concatenate str (not "list") to str",
    ``dict({{_base_.x}}, ...)`` with "dictionary update sequence element
    #0 has length 1", and ``{{_base_.img_size}}[0]`` silently gave
    ``'_'``. ``_base_.name`` (no braces) is the base's value as Python.

    Args:
        path (str): The config file.

    Raises:
        ValueError: Naming the file, the line, the base variable and the
            ``_base_.name`` form to write instead.
    """
    for source, _ in _config_files(path):
        if not source.endswith('.py'):
            continue
        found = _placeholder_in_expression(source)
        if found is None:
            continue
        line, name, variable = found
        with open(source, encoding='utf-8') as f:
            shown = f.read().split('\n')[line - 1].strip()
        through = f' (through {variable}, assigned from it)' \
            if variable else ''
        raise ValueError(
            f'{_shown_path(source)}:{line}: {{{{_base_.{name}}}}} is used '
            f'inside an expression{through}: {shown!r}. mmengine puts the '
            f'base\'s value there after the file ran, and until then it is '
            f'a string, so the expression would fail or compute with that '
            f'string. Write _base_.{name} instead (no braces): the base\'s '
            f'value as Python, e.g. test_cfg = dict(targets='
            f'_base_.test_cfg.targets + [mine]) (docs/customize.md, '
            f'"Adding a target to a multi-target config").')


def check_package_bases(path: str) -> None:
    """Refuse a ``_base_`` of the ``'package::config'`` form that mmengine
    cannot resolve, in the config or any of its bases.

    mmengine 0.10.7 resolves it only for its own list of OpenMMLab
    packages; ``_base_ = ['mmreid::baseline/bot_r18_synthreid.py']`` ended
    in its bare "AssertionError: mmengine does not support to load mmreid
    config.".

    Args:
        path (str): The config file.

    Raises:
        ValueError: Naming the file, the base and, for an mmreid config,
            the path to give instead (relative to the file).
    """
    from mmengine.config.utils import MODULE2PACKAGE
    for source, bases in _config_files(path):
        folder = osp.dirname(source)
        for base in bases:
            package, scoped, name = base.partition('::')
            if not scoped or package in MODULE2PACKAGE:
                continue
            found = _mmreid_config(name) if package == 'mmreid' else None
            fix = (f"Give the path of the config file instead, relative to "
                   f"this file's folder: _base_ = "
                   f"['{osp.relpath(found, folder)}'] (or absolute: "
                   f"{found})" if found else
                   'Give the path of the config file instead (relative to '
                   "this file's folder, or absolute)")
            raise ValueError(
                f'{_shown_path(source)}: _base_ {base!r}: mmengine resolves '
                f"the 'package::config' form only for its own list of "
                f'OpenMMLab packages ({", ".join(sorted(MODULE2PACKAGE))}), '
                f'not for {package}. {fix}.')


def check_base_files(path: str) -> None:
    """Refuse a ``_base_`` path that names no file, in the config or any
    of its bases.

    mmengine ended in a bare ``FileNotFoundError`` of the joined path,
    without the config that names it or the base as written there.

    Args:
        path (str): The config file.

    Raises:
        FileNotFoundError: Naming the file, the base as written, the path
            it resolves to (relative to the file's folder) and the closest
            existing config names.
    """
    for source, bases in _config_files(path):
        folder = osp.dirname(source)
        for base in bases:
            if '::' in base:
                continue  # check_package_bases
            resolved = base_file(source, base)
            if osp.isfile(resolved):
                continue
            close = [
                f"_base_ = ['{osp.relpath(c, folder)}']"
                for c in close_configs(resolved, bases=True)
            ]
            hint = f'; did you mean {" or ".join(close)}?' if close else ''
            raise FileNotFoundError(
                f'{_shown_path(source)}: _base_ {base!r} is {resolved}, '
                f'which does not exist (a relative base is read from the '
                f'folder of the file that names it){hint}')


def check_base_variables(path: str, cfg: Config,
                         ignore: Sequence[str] = ()) -> None:
    """Refuse a config that redefines a variable its base already used.

    mmengine reads a base file on its own, so the base's top-level
    variables (``img_size``, ``cuhk03_variant``, ``data_root``, a
    ``resize = dict(...)``) are substituted into its datasets, pipelines
    and schedules before the config that inherits it is read; redefining
    the variable there changes the variable only (``cuhk03_variant =
    'labeled'`` in a leaf of the DIMN base still trained on the detected
    boxes). The keys that still follow a base's value are found by reading
    the config again with another value of the variable in its bases: a
    key of the config that changes with it (one the config does not write
    itself) is an error. A key the runner reads is such a variable too
    where a base builds another key from it: with ``test_dataloader =
    val_dataloader`` in the base, a leaf that changes ``val_dataloader``
    alone would leave ``tools/test.py`` on the base's test set, batch size
    or evaluator. (Boolean switches are left to the checks of what they
    switch, e.g. ``combine_all`` in
    :class:`~mmreid.engine.hooks.TrainSetupCheckHook`.)

    Args:
        path (str): The config file.
        cfg (Config): It, as read.
        ignore (Sequence[str]): Top-level sections the run does not read.

    Raises:
        ValueError: Naming the variable, the base, both values and the
            keys that keep the base's value.
    """
    read = (READ_TOP_LEVEL_KEYS | _runner_keys()) - set(ignore)
    merged = None
    for base in Config._get_base_files(path):
        if '::' in base:
            continue  # a package's config (mmpretrain::...)
        base_path = base_file(path, base)
        plain = _read_only(base_path)
        merged = cfg.to_dict() if merged is None else merged
        for name, old in plain.items():
            if name not in merged or old is None or isinstance(old, bool):
                continue
            new = merged[name]
            if _plain_value(new) == _plain_value(old):
                continue
            # A dict is probed in the fields the config changes (a
            # config's dict merges into the base's, so only those fields
            # are its own).
            fields = sorted(
                {
                    key
                    for key, value in _paths(new)
                    if key and not isinstance(value, (dict, list, tuple)) and
                    _plain_value(_value_at(old, key)) != _plain_value(value)
                }
                if isinstance(old, dict) and isinstance(new, dict) else set(),
                key=repr)
            if isinstance(old, dict) and not fields:
                continue
            probed = _read_with_probed_bases(path, name, fields)
            if probed is None:
                continue
            kept = _following_keys(probed, merged, read)
            if kept:
                shown = _first_keys(['.'.join(map(str, k)) for k in kept])
                raise ValueError(
                    f'{path} sets {name} = {new!r}, but {name} is a '
                    f'variable of its base {base_path}, substituted when '
                    f'that file was read (mmengine does not read a base '
                    f'again with the inheriting file\'s variables), so these '
                    f'keys still hold the base\'s value ({old!r}): '
                    f'{shown}. Set those keys in {osp.basename(path)} too.')
