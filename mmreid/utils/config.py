"""Adjustments that ``tools/train.py`` and ``tools/test.py`` make to a
config before building the runner."""
import ast
import logging
import os
import os.path as osp
import re
import sys
import warnings
from typing import Any, Collection, List, Optional, Sequence

import torch
from mmengine.config import Config, DictAction

from .atomic import open_atomic


def load_config(path: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None,
                launcher: str = 'none',
                phase: str = 'train') -> Config:
    """Read a config, apply ``--cfg-options`` and pick the work dir.

    The work dir is, in order: ``work_dir``, the config's ``work_dir``, or
    ``./work_dirs/<config name>``. ``phase`` is what the run does
    (``'train'`` or ``'test'``), see :func:`read_config`.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path!r} does not exist'
                                f'{config_suggestion(path)}')
    cfg = read_config(path, phase)
    cfg.launcher = launcher
    merge_cfg_options(cfg, cfg_options, path, phase=phase)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    use_reid_loops(cfg)
    return cfg


#: Config sections a test run does not read: a base variable that only
#: these still follow is no trap for it (see :func:`check_base_variables`).
TRAINING_ONLY_KEYS = frozenset({
    'train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler',
    'val_dataloader', 'val_cfg', 'val_evaluator', 'auto_scale_lr'
})


def read_config(path: str, phase: str = 'train') -> Config:
    """``Config.fromfile`` after mmreid's own classes are registered.

    ``Config.fromfile`` runs the config's ``custom_imports``. A user's
    module that replaces an mmreid class
    (``@MODELS.register_module(name='TripletLoss', force=True)``) must run
    after mmreid's module registered it: in the other order mmreid's
    import fails with "TripletLoss is already registered", blaming the
    user's module.

    A base named by a package that mmengine cannot resolve
    (``'mmreid::baseline/...'``) is refused first
    (:func:`check_package_bases`), and so is a base path that names no file
    (:func:`check_base_files`) and a ``{{_base_.name}}`` inside
    an expression (:func:`check_base_placeholders`). It then refuses a
    config that redefines a variable its base already substituted
    (:func:`check_base_variables`); for ``phase='test'`` only in the
    sections a test reads.

    Args:
        path (str): The config file.
        phase (str): ``'train'`` (every section) or ``'test'``.

    Returns:
        Config: The config.
    """
    from .setup_env import register_all_modules
    if phase not in ('train', 'test'):
        raise ValueError(f"phase must be 'train' or 'test', got {phase!r}")
    register_all_modules(init_default_scope=False)
    check_package_bases(path)
    check_base_files(path)
    check_base_placeholders(path)
    cfg = Config.fromfile(path)
    check_base_variables(
        path, cfg, ignore=TRAINING_ONLY_KEYS if phase == 'test' else ())
    return cfg


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
        todo += [
            osp.normpath(osp.join(osp.dirname(source), base)) for base in bases
            if '::' not in base
        ]


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
            if '::' in base or '{{' in base:
                continue  # check_package_bases; mmengine's {{fileDirname}}
            resolved = osp.normpath(osp.join(folder, base))
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


def _read_only(path: str) -> dict:
    """A config file's merged values, its ``custom_imports`` not run.

    The bases of a config (and their probed copies) are read to compare
    values only. ``Config.fromfile`` would import a base's
    ``custom_imports`` after the config's own: a base's
    ``force=True`` registration then replaced the config's component of
    the same name, and a module the config no longer imports had to exist.
    """
    return Config.fromfile(path, import_custom_modules=False).to_dict()


def _first_keys(keys: List[str], shown: int = 6) -> str:
    """``'a, b, c and 4 more'``: config keys for a message."""
    more = len(keys) - shown
    return ', '.join(keys[:shown]) + (f' and {more} more' if more > 0 else '')


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


def _probed_value(node, fields: Sequence[tuple] = ()):
    """The AST of another value for an assignment's value ``node``: a
    number + 7, a string + ``'~'``, a tuple of them changed likewise, a
    dict (literal or ``dict(...)``) with its ``fields`` (key paths, see
    :func:`_paths`) set to :data:`_PROBE`, a list with a :data:`_PROBE`
    item added; None when there is no other value to make (a bool, None,
    an expression). A field inside a nested dict is probed there, so
    that the inheriting file's dict still merges into it."""
    import ast
    if _is_dict_node(node):
        return _probed_dict(node, fields)
    if isinstance(node, ast.List):
        return ast.List(elts=node.elts + [ast.Constant(_PROBE)], ctx=node.ctx)
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError):
        return None

    def other(v):
        if isinstance(v, bool) or v is None:
            return None
        if isinstance(v, str):
            return v + '~'
        if isinstance(v, (int, float)):
            return v + 7
        if isinstance(v, (list, tuple)):
            items = [other(x) for x in v]
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
                            builders: Optional[dict] = None) -> Optional[dict]:
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
    """
    import ast
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        copies = {}

        def copy(source: str, probe: bool) -> Optional[str]:
            source = osp.abspath(source)
            if (source, probe) in copies:
                return copies[(source, probe)]
            with open(source, encoding='utf-8') as f:
                tree = ast.parse(f.read())
            folder = osp.dirname(source)
            for node in tree.body:
                if not isinstance(node, ast.Assign) or len(node.targets) != 1 \
                        or not isinstance(node.targets[0], ast.Name):
                    continue
                target = node.targets[0].id
                if target == '_base_':
                    for const in ast.walk(node.value):
                        if isinstance(const, ast.Constant) and isinstance(
                                const.value, str) and '::' not in const.value:
                            base = copy(osp.join(folder, const.value), True)
                            if base is None:
                                return None
                            const.value = base
                elif target == name and probe:
                    node.value = _probed_value(node.value, fields)
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


def check_base_variables(path: str,
                         cfg: Config,
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
        base_path = osp.normpath(osp.join(osp.dirname(path), base))
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


def close_configs(path: str, bases: bool = False) -> List[str]:
    """The config files named closest to ``path``, which does not exist:
    in its folder, else in ``configs/``; files under a ``_base_`` folder
    only with ``bases`` (a config is run, a base is inherited)."""
    import difflib
    import glob
    folder = osp.dirname(path) or '.'
    candidates = glob.glob(osp.join(folder, '*.py')) if osp.isdir(
        folder) else glob.glob(osp.join('configs', '**', '*.py'),
                               recursive=True)
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


#: Top-level keys that the runner or mmreid read from the merged config,
#: besides the arguments of mmengine's ``Runner`` (:func:`_runner_keys`):
#: mmengine's ``Runner`` reads ``model_wrapper_cfg``,
#: ``find_unused_parameters``, ``sync_bn``, ``activation_checkpointing``,
#: ``efficient_conv_bn_eval`` and ``compile``, the tools ``runner_type``,
#: :class:`~mmreid.engine.runner.ReIDRunner` ``load_strict`` and
#: ``resume_world_size_check``, and
#: :class:`~mmreid.engine.hooks.TrainSetupCheckHook` ``combine_all``.
#: Every other top-level key is a variable the config file used while it
#: was parsed (``data_root``, ``batch_size``, ``max_epochs``, ...).
#: ``test_pipeline`` is one of those variables: the API and the tools run
#: the test dataloader's pipeline, as ``tools/test.py`` does, and read a
#: top-level ``test_pipeline`` only when the config has no test dataloader
#: (:mod:`mmreid.utils.pipeline_source`); an override of it that the
#: dataloaders would not see is then refused like any other.
READ_TOP_LEVEL_KEYS = frozenset({
    'launcher', 'load_strict', 'resume_world_size_check', 'model_wrapper_cfg',
    'custom_imports', 'find_unused_parameters', 'work_dir', 'load_from',
    'resume', 'cfg', 'dist_params', 'gpu_ids', 'auto_scale_lr', 'sync_bn',
    'activation_checkpointing', 'efficient_conv_bn_eval', 'compile',
    'runner_type', 'combine_all'
})


def _runner_keys() -> frozenset:
    import inspect

    from mmengine.runner import Runner
    return frozenset(inspect.signature(Runner.__init__).parameters)


def _leaves(value: Any, prefix: str = ''):
    """``(dotted key, leaf value)`` of a config value, lists included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f'{prefix}.{key}' if prefix else key)
    elif isinstance(value, (list, tuple)):
        yield prefix, value
        for i, item in enumerate(value):
            yield from _leaves(item, f'{prefix}.{i}')
    else:
        yield prefix, value


def _option_items(options: dict, prefix: str = ''):
    """``(dotted key, value)`` of options, a dict value field by field
    (``Config.merge_from_dict`` merges it into the config's dict)."""
    for key, value in options.items():
        key = f'{prefix}.{key}' if prefix else str(key)
        if isinstance(value, dict) and value:
            yield from _option_items(value, key)
        else:
            yield key, value


class _Removed:
    """The new value of a field that an option's ``_delete_=True`` drops.

    Args:
        depth (int): How many keys the field lies below the dict that the
            ``_delete_`` replaces (1 for ``resize.backend`` of
            ``resize._delete_``).
    """

    def __init__(self, depth: int):
        self.depth = depth

    def __repr__(self) -> str:
        return '<removed by _delete_>'


def _dict_fields(value: dict, prefix: str):
    """The dotted keys of a dict's fields that are not dicts."""
    for key, item in value.items():
        where = f'{prefix}.{key}'
        if isinstance(item, dict):
            yield from _dict_fields(item, where)
        else:
            yield where


def _option_overrides(options: dict, config: dict) -> List[tuple]:
    """:func:`_option_items`, with what ``_delete_`` does.

    ``Config.merge_from_dict`` replaces a dict that an option gives with
    ``_delete_=True`` (``cfg_options={'resize': dict(_delete_=True,
    size=(256, 128))}``, or ``resize._delete_=True`` with ``resize.size``)
    instead of merging into it: each field of the config's dict that the
    options do not set is dropped, and comes as ``(key, _Removed)``.
    mmengine 0.10.7 honours ``_delete_`` under a dict's key only; a list
    item (``pipeline.1._delete_``) is merged into, with a ``_delete_``
    field.

    Args:
        options (dict): The options, ``key -> value``.
        config (dict): The config, before the options.

    Returns:
        list[tuple]: ``(dotted key, value)``, without the ``_delete_``
        flags.
    """
    items = list(_option_items(options))
    given = {key for key, _ in items}
    overrides = [(k, v) for k, v in items if k.split('.')[-1] != '_delete_']
    for key, flag in items:
        parent = key.split('.')[:-1]
        if key.split('.')[-1] != '_delete_' or not flag or not parent:
            continue
        old = _option_value(config, '.'.join(parent))
        holder = _option_value(config, '.'.join(parent[:-1])) \
            if len(parent) > 1 else config
        if not isinstance(old, dict) or not isinstance(holder, dict):
            continue
        overrides += [(field, _Removed(field.count('.') + 1 - len(parent)))
                      for field in _dict_fields(old, '.'.join(parent))
                      if field not in given]
    return overrides


def _override(key: str,
              new: Any,
              config: dict,
              option: str = '--cfg-options') -> str:
    """``key=value`` for the fix a message suggests. A field that a
    ``_delete_`` drops is dropped where ``key`` lies by the ``_delete_`` of
    its dict, or by replacing the list that holds that dict (mmengine
    merges into a list item). On the command line (``option`` is
    ``--cfg-options``) a list of dicts cannot be given, so the fix there
    sets the field, and says where the list can be replaced."""
    parts = key.split('.')[:-new.depth] if isinstance(new, _Removed) else []
    if not parts:
        return f'{key}={new!r}'
    if len(parts) > 1 and isinstance(
            _option_value(config, '.'.join(parts[:-1])), (list, tuple)):
        holder = '.'.join(parts[:-1])
        if option != '--cfg-options':
            return f'{holder}=[...]'
        return (f'{key}=<a value> (an option cannot drop a field of a list '
                f'item: to drop it, give {holder} = [...] in a config '
                f'that inherits this one)')
    return f'{".".join(parts)}._delete_=True'


def check_variable_overrides(cfg: Config,
                             cfg_options: dict,
                             path: str,
                             option: str = '--cfg-options',
                             phase: str = 'train') -> None:
    """Refuse ``--cfg-options`` that set a variable the config already
    used.

    A config's top-level variables (``data_root = 'data/market1501/'``,
    ``batch_size``, ``max_epochs``, ``img_size``, a ``synth = dict(...)``
    template) are substituted into the datasets, loaders and schedules
    when the file is parsed; overriding the variable afterwards changes
    nothing else (mmengine merges keys, it does not re-run the file), so
    the run would silently use the old value. Such an override is an error
    when the old value is found under other keys, which it names. A dict
    value is checked field by field, as it is merged. An option on a key
    the run reads is an error where the files copied that key into
    another one (:func:`_check_copied_runner_keys`).

    Args:
        cfg (Config): The config as read, before the options.
        cfg_options (dict): The options, ``key -> value``.
        path (str): The config file, for the message.
        option (str): How the caller names the options, for the message.
        phase (str): What the run does, ``'train'`` or ``'test'`` (see
            :func:`read_config`): a test run does not read the sections
            of :data:`TRAINING_ONLY_KEYS`, so a copy among them need not
            follow an option. Defaults to ``'train'``.

    Raises:
        ValueError: An override of a variable whose old value other keys
            hold.
    """
    read = READ_TOP_LEVEL_KEYS | _runner_keys()
    plain = cfg.to_dict()
    items = _option_overrides(cfg_options, plain)
    for key, new in items:
        root = str(key).split('.')[0]
        if root in read or root not in plain:
            continue
        old = _option_value(plain, key)
        if old is KeyError or old is None or isinstance(
                old, (bool, dict)) or old == new:
            continue
        # Keys the run reads (not other variables, e.g. a pipeline
        # template).
        holders = [
            where for where, value in _leaves(plain)
            if where.split('.')[0] in read and value == old
            and type(value) is type(old)
        ]
        if not holders:
            continue
        # Keys of the variable's phase first (test_pipeline ->
        # test_dataloader, test_cfg), then keys named like the variable
        # (batch_size -> *.batch_size).
        name = str(key).split('.')[-1]
        phase = root.split('_')[0] + '_'
        holders.sort(key=lambda k: (not k.startswith(phase), k.split('.')[-1]
                                    != name))
        shown = _first_keys(holders)
        raise ValueError(
            f'{option} {key}={new!r}: {root!r} is a variable of '
            f'{path} that was already substituted when the file was read, '
            f'so this override would change nothing: these keys keep '
            f'{old!r}: {shown}. Override those keys instead, e.g. '
            f'{option} {_override(holders[0], new, plain, option)} (a key '
            f'holding the same value by chance is listed too).')
    followed = read - TRAINING_ONLY_KEYS if phase == 'test' else read
    _check_copied_runner_keys(items, plain, path, option, read, followed)


def _option_value(config: dict, key: str) -> Any:
    """The value of ``config`` at an option's dotted ``key``, a list item
    by index too (``test_pipeline.1.size``, as
    ``Config.merge_from_dict`` sets it); KeyError where there is none."""
    value = config
    for part in key.split('.'):
        if isinstance(value, (list, tuple)) and part.isdigit() \
                and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return KeyError
    return value


def _shown_path(source: str) -> str:
    """A config file for a message: relative to the working directory
    where it is under it."""
    relative = osp.relpath(source)
    return source if relative.startswith('..') else relative


def _nested(a: tuple, b: tuple) -> bool:
    """Whether one key path is the other or lies under it."""
    return a[:len(b)] == b or b[:len(a)] == a


def _copied_key_error(option: str, key: str, new: Any, kept: List[str],
                      builders: dict, path: str, plain: dict) -> ValueError:
    """The error of :func:`_check_copied_runner_keys` for option ``key``
    whose field ``kept`` (dotted keys) would not follow; ``builders`` as
    :func:`_read_with_probed_bases` fills it."""
    root = key.split('.')[0]
    targets = sorted({k.split('.')[0] for k in kept})
    files = sorted({
        _shown_path(f)
        for target in targets
        for f in builders.get(target, ())
    })
    if len(files) == 1:
        where = f'in {files[0]} when that file is read'
    else:
        where = (f'in {" and ".join(files)}' if files else
                 f'by the files of {path}') + ' when they are read'
    shown = _first_keys([
        f'{k} (stays {"unset" if v is KeyError else repr(v)})' for k in kept
        for v in [_option_value(plain, k)]
    ])
    fixes = ' '.join(
        dict.fromkeys(_override(k, new, plain, option) for k in kept))
    return ValueError(
        f'{option} {key}={new!r}: {" and ".join(targets)} '
        f'{"is" if len(targets) == 1 else "are"} built from {root} {where} '
        f'(options are merged into the keys, the files are not read '
        f'again), so this option would change {root} only; these keys '
        f'would not follow: {shown}. Set them too: '
        f'{option} {_override(key, new, plain, option)} {fixes}')


def _check_copied_runner_keys(items: List[tuple], plain: dict, path: str,
                              option: str, read: Collection[str],
                              followed: Collection[str]) -> None:
    """Refuse an option on a runner key that the config's files copied
    into another runner key.

    With ``test_dataloader = val_dataloader`` in a base, the test loader is
    a copy made when that file was read; ``--cfg-options
    val_dataloader.dataset.data_root=X`` then changes the validation loader
    only, and ``tools/test.py`` tests the old set. The keys built from an
    option's key are found as :func:`check_base_variables` finds them:
    the config is read again with the option's fields probed in every
    file that assigns the key (the config file included); a field that
    reached another key the run reads is an error unless the options set
    that key's field too. Changing the copy alone
    (``test_dataloader.batch_size``) is fine: nothing follows it. So is a
    copy the run does not read: with ``val_dataloader = test_dataloader``,
    ``tools/test.py --cfg-options test_dataloader.batch_size=7`` (but not
    ``tools/train.py``, which validates with the copy).

    Args:
        items (list[tuple]): The options as ``(dotted key, value)``
            (:func:`_option_overrides`).
        plain (dict): The config as read, before the options.
        path (str): The config file.
        option (str): How the caller names the options, for the message.
        read (Collection[str]): The top-level keys the run reads.
        followed (Collection[str]): Those of them that must follow an
            option on the key they were copied from.

    Raises:
        ValueError: Naming the option, the keys that would keep their
            value, the file that builds them and the options to add.
    """
    given = {key for key, _ in items}
    by_root: dict = {}
    for key, new in items:
        root, _, rest = key.partition('.')
        old = _option_value(plain, key)
        # A whole section (val_dataloader=None) replaces the key, and an
        # empty dict merges nothing.
        if root not in read or not rest or not isinstance(
                plain.get(root), (dict, list)) or isinstance(new, dict) \
                or _plain_value(old) == _plain_value(new):
            continue
        by_root.setdefault(root, []).append((key, new))
    for root, options in by_root.items():
        fields = [tuple(key.split('.')[1:]) for key, _ in options]
        builders: dict = {}
        probed = _read_with_probed_bases(
            path, root, fields, leaf=True, builders=builders)
        if probed is None:
            continue
        followers = [
            tuple(map(str, key)) for key in _following_keys(
                probed, plain, set(followed) - {root}, probe_only=True)
        ]
        for (key, new), field in zip(options, fields):
            # The other key's same field where the copy holds it there (or
            # a dict or list above it); a key that no option's field
            # explains (a copy in another place) as it is.
            kept = []
            for follower in followers:
                if _nested(follower[1:], field):
                    need = '.'.join(follower[:1] + field)
                elif not any(_nested(follower[1:], f) for f in fields):
                    need = '.'.join(follower)
                else:
                    continue
                if need not in kept and not any(
                        need == g or need.startswith(g + '.') for g in given):
                    kept.append(need)
            if kept:
                raise _copied_key_error(option, key, new, kept, builders, path,
                                        plain)


def _reads_new_key(root: str, cfg: Config, read: Collection[str]) -> bool:
    """Whether the run reads a top-level key ``root`` that ``cfg`` lacks:
    one of ``read``, or a ``test_pipeline`` where no test dataloader has a
    pipeline (see
    :func:`~mmreid.utils.pipeline_source.inference_pipelines`)."""
    if root in read:
        return True
    if root == 'test_pipeline':
        from .pipeline_source import split_pipelines
        return not split_pipelines(cfg, 'test')
    return False


def check_option_keys(cfg: Config,
                      cfg_options: dict,
                      path: str,
                      option: str = '--cfg-options') -> None:
    """Refuse an option whose top-level key the config does not have and
    the run does not read.

    ``Config.merge_from_dict`` adds such a key without a word, and nothing
    reads it: ``--cfg-options max_epoch=1`` (a typo of the variable
    ``max_epochs``) trained the config's epochs.

    Args:
        cfg (Config): The config as read, before the options.
        cfg_options (dict): The options, ``key -> value``.
        path (str): The config file, for the message.
        option (str): How the caller names the options, for the message.

    Raises:
        ValueError: Naming the option, and the config's (or the run's)
            closest top-level keys.
    """
    import difflib
    read = READ_TOP_LEVEL_KEYS | _runner_keys() - {'self'}
    for key, value in cfg_options.items():
        root = str(key).split('.')[0]
        if root in cfg or _reads_new_key(root, cfg, read):
            continue
        close = difflib.get_close_matches(
            root, sorted(set(cfg.keys()) | read), n=3, cutoff=0.6)
        message = [
            f'{option} {key}={value!r}: {root!r} is not a top-level key of '
            f'{path}, nor one the run reads, so the option would add a key '
            f'that nothing reads and the run would go on without it.'
        ]
        if close:
            message.append(f'Did you mean {" or ".join(close)}?')
        if osp.isfile(path):
            message.append(f'(python tools/misc/print_config.py {path} '
                           f'shows the keys.)')
        raise ValueError(' '.join(message))


def _dict_literal_text(value: Any) -> Optional[str]:
    """The dict literal an option value holds as text, else None.

    mmengine's ``DictAction`` keeps ``{'k1': 20}`` and ``dict(k1=20)`` as
    strings (without spaces) and splits ``{'k1':20,'k2':6}`` at its commas
    into a list of strings; both are given back as one text.
    """
    if isinstance(value, (list, tuple)) and value \
            and all(isinstance(v, str) for v in value):
        value = ','.join(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if (text.startswith('{') and text.endswith('}')) or \
            (text.startswith('dict(') and text.endswith(')')):
        return text
    return None


def _holds_dict_literal(text: str) -> bool:
    """Whether an option's text holds a dict literal outside its quoted
    strings, anywhere in it: a ``dict(`` call or braces around a colon
    (``{}`` too)."""
    quote, braces = None, 0
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in '\'"':
            quote = char
        elif char == '{':
            braces += 1
            if text[i + 1:i + 2] == '}':
                return True
        elif char == '}':
            braces = max(braces - 1, 0)
        elif (char == ':' and braces) or (
                text.startswith('dict(', i)
                and not (text[i - 1:i].isalnum() or text[i - 1:i] == '_')):
            return True
    return False


def _literal_value(text: str) -> Any:
    """The dict, or list or tuple of items, that a literal's text states,
    read without running it, or None.

    ``DictAction`` strips the leading quote of each comma-split piece
    (``'k2':6`` arrives as ``k2':6``); it is put back before reading.
    """
    from mmreid.engine.runner.resume_checks import config_literal
    requoted = re.sub(r"([{,])(\w+)(['\"])(?=:)", r'\1\3\2\3', text)
    for candidate in (text, requoted):
        try:
            value = config_literal(ast.parse(candidate, mode='eval').body)
        except (SyntaxError, ValueError, TypeError, RecursionError):
            continue
        if isinstance(value, (dict, list, tuple)):
            return value
    return None


def _option_text(value: Any) -> str:
    """``value`` as it is written after ``key=`` in ``--cfg-options``."""
    return value if isinstance(value, str) else repr(value).replace(' ', '')


def _dotted_options(value: dict, prefix: str) -> str:
    """A dict's fields as ``--cfg-options`` dotted keys under ``prefix``."""
    return ' '.join(f'{k}={_option_text(v)}'
                    for k, v in _option_items(value, prefix))


def dict_literal_message(key: str,
                         text: str,
                         option: str = '--cfg-options') -> str:
    """Why a dict literal given as an option's value is refused, with the
    dotted keys that give its fields instead.

    Args:
        key (str): The option's key, e.g. ``'test_evaluator.rerank'``.
        text (str): The literal, e.g. ``"dict(k1=20,k2=6)"``.
        option (str): How the caller names the options.

    Returns:
        str: The message.
    """
    value = _literal_value(text)
    head = (f'{option} {key}={text}: a dict literal is not read as a dict '
            f'there: it arrives as text (split at its commas if it has '
            f'any), and {key} would get that text, not a dict.')
    if isinstance(value, dict) or not text.strip().startswith(('[', '(')):
        keys = _dotted_options(value or {}, key) or \
            f'{key}.<field>=<value> for each field'
        return f'{head} Give its fields as dotted keys instead: ' \
            f'{option} {keys}'
    keys = ' '.join(
        _dotted_options(item, f'{key}.{i}')
        for i, item in enumerate(value or ()) if isinstance(item, dict)) or \
        f'{key}.<index>.<field>=<value> for each field'
    return (f'{head} Give the fields of items that {key} already has as '
            f'dotted keys with the item\'s index instead: {option} {keys}; '
            f'a list with new items goes in a config that inherits this one '
            f'({key} = [...] there replaces the base\'s list).')


def check_dict_literal_options(cfg: Config,
                               cfg_options: dict,
                               option: str = '--cfg-options') -> None:
    """Refuse an option whose value is a dict literal kept as text.

    ``--cfg-options "test_evaluator.rerank={'k1':20,'k2':6}"`` reached the
    metric as a list of strings (``["{'k1':20", "k2':6}"]``), and
    ``dict(k1=20)`` as a string, with no word on the fix. A key whose
    config value is a string is left alone (a string is what it takes).

    Args:
        cfg (Config): The config as read, before the options.
        cfg_options (dict): The options, ``key -> value``.
        option (str): How the caller names the options, for the message.

    Raises:
        ValueError: Naming the option and the dotted keys to give instead
            (:func:`dict_literal_message`).
    """
    for key, value in cfg_options.items():
        text = _dict_literal_text(value)
        if text is None or isinstance(
                _option_value(cfg.to_dict(), str(key)), str):
            continue
        raise ValueError(dict_literal_message(str(key), text, option))


def check_list_item_deletes(cfg: Config,
                            cfg_options: dict,
                            option: str = '--cfg-options') -> None:
    """Refuse an option that puts ``_delete_`` directly in a list item.

    mmengine 0.10.7 honours ``_delete_`` under a dict's key only: an item
    of a list (``test_dataloader.dataset.pipeline.1._delete_=True``, or
    ``test_cfg.targets.0=dict(_delete_=True, ...)``) is merged into, so the
    fields the option meant to drop are kept, and ``_delete_`` reaches the
    item as a field of its own (a transform then failed on an unexpected
    argument that the message blamed on the base).

    Args:
        cfg (Config): The config as read, before the options.
        cfg_options (dict): The options, ``key -> value``.
        option (str): How the caller names the options, for the message.

    Raises:
        ValueError: Naming the option, the list, the fields that would be
            kept and the ways to drop them.
    """
    plain = cfg.to_dict()
    items = list(_option_items(cfg_options))
    given = {key for key, _ in items}
    for key, flag in items:
        parts = key.split('.')
        if parts[-1] != '_delete_' or len(parts) < 3 \
                or not parts[-2].isdigit():
            continue
        item, holder = '.'.join(parts[:-1]), '.'.join(parts[:-2])
        if not isinstance(_option_value(plain, holder), (list, tuple)):
            continue
        old = _option_value(plain, item)
        kept = [
            f'{field}={_option_value(plain, field)!r}' for field in (
                _dict_fields(old, item) if isinstance(old, dict) else ())
            if field not in given
        ]
        raise ValueError(
            f'{option} {key}={flag!r}: {item} is an item of the list '
            f'{holder}, and mmengine honours _delete_ only under a dict\'s '
            f'key: the option would merge into the item, keep its other '
            f'fields ({", ".join(kept) or "none"}) and give it a field '
            f'named _delete_. Leave _delete_ out and set the fields to '
            f'change ({option} {item}.<field>=<value>), or write a config '
            f'that inherits this one and gives {holder} whole (a list in a '
            f'config replaces the base\'s).')


def _item_name(item: Any) -> str:
    """An item of a config list for a message: its ``type`` or ``name``
    (a target of a multi-target loop), else its value."""
    if isinstance(item, dict):
        for field in ('type', 'name'):
            if isinstance(item.get(field), str):
                return item[field]
        return 'dict(...)'
    return repr(item)


def _list_key_message(option: str, key: str, value: Any, where: str,
                      items: Sequence, rest: List[str],
                      index: Optional[str]) -> str:
    """Why option ``key`` cannot reach into the list ``items`` at
    ``where`` (:func:`check_list_keys`); ``rest`` are the key's parts
    after the list and its ``index`` (a part that is no index: None)."""
    listed = ', '.join(f'{i} {_item_name(item)}'
                       for i, item in enumerate(items))
    what = (f'a key into it names an item by its index, not {rest[0]!r}'
            if index is None else f'it has no item {index}')
    # The items that have the key's next field; else every item.
    fields = rest[1:] if index is not None else rest
    having = [
        i for i, item in enumerate(items)
        if fields and isinstance(item, dict) and fields[0] in item
    ] or list(range(len(items)))[:1]
    tail = '.'.join(fields)
    fixes = ' '.join(f'{where}.{i}{"." + tail if tail else ""}='
                     f'{_option_text(value)}' for i in having)
    return (f'{option} {key}={value!r}: {where} is a list of {len(items)} '
            f'items ({listed}), and {what}. Name the item to change by its '
            f'index, e.g. {option} {fixes}')


def _tuple_key_message(option: str, key: str, value: Any, where: str,
                       items: tuple, rest: List[str]) -> str:
    """Why option ``key`` cannot reach into the tuple ``items`` at
    ``where`` (:func:`check_list_keys`): mmengine merges into a list's
    items only; ``rest`` are the key's parts after the tuple."""
    whole = f'{where}=(...)'
    if len(rest) == 1 and rest[0].isdigit() and int(rest[0]) < len(items):
        changed = list(items)
        changed[int(rest[0])] = value
        whole = f'{where}={_option_text(tuple(changed))}'
    return (f'{option} {key}={value!r}: {where} is a tuple, {items!r}, and '
            f'mmengine merges an option into the items of a list only. '
            f'Give the tuple whole: {option} {whole}')


def check_list_keys(cfg: Config,
                    cfg_options: dict,
                    option: str = '--cfg-options') -> None:
    """Refuse an option whose dotted key walks into a list of the config
    with a part that is not one of its indices, or into a tuple.

    A user who adds a metric makes ``test_evaluator`` a list; then
    ``test_evaluator.distance=cosine`` failed in mmengine's merge with a
    raw "TypeError: list indices must be integers or slices, not str"
    (an index past the end with a "KeyError" printing the whole list, a
    tuple's item, ``pipeline.1.size.0=384``, with "size is a dict in the
    child config but is of type tuple"). A list replaced whole
    (``_delete_=True`` in a dict option) is not walked.

    Args:
        cfg (Config): The config as read, before the options.
        cfg_options (dict): The options, ``key -> value``.
        option (str): How the caller names the options, for the message.

    Raises:
        ValueError: Naming the option, the list, its items and the
            indexed keys to give instead.
    """
    plain = cfg.to_dict()
    items = list(_option_items(cfg_options))
    replaced = [
        k[:-len('._delete_')] + '.' for k, flag in items
        if k.endswith('._delete_') and flag
    ]
    for key, value in items:
        if any(key.startswith(r) for r in replaced):
            continue
        parts = key.split('.')
        node = plain
        for i, part in enumerate(parts):
            if isinstance(node, tuple):
                raise ValueError(
                    _tuple_key_message(option, key, value, '.'.join(parts[:i]),
                                       node, parts[i:]))
            if isinstance(node, list):
                if part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                    continue
                index = part if part.isdigit() else None
                raise ValueError(
                    _list_key_message(option, key, value, '.'.join(parts[:i]),
                                      node, parts[i:], index))
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]


def merge_cfg_options(cfg: Config,
                      cfg_options: Optional[dict],
                      path: str,
                      option: str = '--cfg-options',
                      phase: str = 'train') -> None:
    """Merge ``cfg_options`` into ``cfg`` after :func:`check_option_keys`,
    :func:`check_list_keys`, :func:`check_list_item_deletes` and
    :func:`check_variable_overrides`;
    every entry point that takes options merges them here. ``phase`` is
    what the run does, ``'train'`` or ``'test'``, as for
    :func:`read_config`.

    ``Config.fromfile`` imports the file's ``custom_imports`` when it reads
    it, before any option; ``custom_imports`` given as an option (a user's
    module of components, ``--cfg-options custom_imports.imports=[...]``)
    is imported here, so that the components it registers are found.
    """
    if cfg_options:
        check_dict_literal_options(cfg, cfg_options, option)
        check_option_keys(cfg, cfg_options, path, option)
        check_list_keys(cfg, cfg_options, option)
        check_list_item_deletes(cfg, cfg_options, option)
        check_variable_overrides(cfg, cfg_options, path, option, phase)
        imports = any(
            str(key).split('.')[0] == 'custom_imports' for key in cfg_options)
        cfg.merge_from_dict(cfg_options)
        if imports and cfg.get('custom_imports'):
            from mmengine.utils import import_modules_from_strings
            import_modules_from_strings(**cfg['custom_imports'])


def use_reid_loops(cfg: Config) -> None:
    """Evaluate with mmreid's loops when the config names no loop type.

    mmengine builds its own ``ValLoop``/``TestLoop`` for a ``val_cfg`` or
    ``test_cfg`` without ``type``; those never hand the model's distance
    (GMN's M-Net) to the metric. ``ReIDValLoop``/``ReIDTestLoop`` do, with
    the same iterations and keys otherwise.
    """
    for key, loop in (('val_cfg', 'ReIDValLoop'), ('test_cfg',
                                                   'ReIDTestLoop')):
        loop_cfg = cfg.get(key, None)
        if isinstance(loop_cfg, dict) and 'type' not in loop_cfg:
            loop_cfg['type'] = loop


class ReIDDictAction(DictAction):
    """mmengine's ``DictAction``; a value with a dict literal that it
    cannot read as a dict is a usage error naming the dotted keys to give
    instead (:func:`dict_literal_message`), with the value as typed.

    Those are a literal with a comma (``key=dict(k1=20,k2=6)``, also
    inside a list: ``custom_hooks=[dict(type='X',priority=1)]``: its
    comma search recursed without end; ``{'k1':20,'k2':6}`` was split into
    pieces with their quotes stripped) and a literal inside a list or
    tuple. A whole value ``{...}`` or ``dict(...)`` without a comma
    arrives as a string, which a string key may take: the config decides
    (:func:`check_dict_literal_options`).
    """

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values:
            key, _, value = item.partition('=')
            value = value.strip()
            nested = value.startswith(('[', '('))
            if _holds_dict_literal(value) and (',' in value or nested):
                parser.error(dict_literal_message(key, value, option_string))
        super().__call__(parser, namespace, values, option_string)


def add_runtime_args(parser, cfg_example: str) -> None:
    """The options ``tools/train.py`` and ``tools/test.py`` share.

    ``--cfg-options``, ``--launcher`` and ``--local-rank`` (passed by
    ``torch.distributed.launch``; torchrun sets ``LOCAL_RANK`` instead).
    """
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ReIDDictAction,
        help=f'override config keys, e.g. {cfg_example}')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runtime_args(parser):
    """Parse, exporting LOCAL_RANK for launchers that pass it as a flag;
    a ``--launcher`` whose environment is missing is a usage error
    (:func:`check_launcher_env`)."""
    args = parser.parse_args()
    try:
        check_launcher_env(args.launcher)
    except ValueError as error:
        parser.error(str(error))
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


#: ``--launcher`` -> (the environment variables mmengine starts the
#: process group from, what sets them).
LAUNCHER_ENV = dict(
    pytorch=(('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
             'torchrun: start the run with `bash tools/dist_train.sh CONFIG '
             'GPUS [options]` or `bash tools/dist_test.sh CONFIG CHECKPOINT '
             'GPUS [options]`'),
    slurm=(('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
           'srun: start the run with `bash tools/slurm_train.sh` or '
           '`bash tools/slurm_test.sh`'),
    mpi=(('OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_RANK',
          'OMPI_COMM_WORLD_SIZE'),
         'mpirun: start the run with `mpirun -np N python tools/train.py '
         '... --launcher mpi` (or tools/test.py)'))


def check_launcher_env(launcher: str, environ: Optional[dict] = None) -> None:
    """Refuse a ``--launcher`` whose process was not started by it.

    ``--launcher pytorch`` without torchrun ended in torch's "Error
    initializing torch.distributed using env:// rendezvous: environment
    variable RANK expected, but not set" (``slurm`` and ``mpi`` in a bare
    ``KeyError``).

    Args:
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or
            ``'mpi'``.
        environ (dict, optional): The environment; ``os.environ`` if None.

    Raises:
        ValueError: Naming the launcher, the missing variables and how to
            start the run.
    """
    if launcher not in LAUNCHER_ENV:
        return
    environ = os.environ if environ is None else environ
    names, starter = LAUNCHER_ENV[launcher]
    missing = [name for name in names if name not in environ]
    if missing:
        raise ValueError(
            f'--launcher {launcher}: {", ".join(missing)} '
            f'{"is" if len(missing) == 1 else "are"} not set, so this '
            f'process was not started by {starter}; for a single process, '
            f'leave --launcher out.')


def _require_cuda_for_amp(option: str = '--amp',
                          fix: str = 'run without --amp on the CPU') -> None:
    if not torch.cuda.is_available():
        raise RuntimeError(f'{option} needs a CUDA device, and none is '
                           f'available; {fix}.')


def check_amp_device(optim_wrapper) -> None:
    """The check of ``--amp`` for a config that sets AMP itself.

    mmengine's ``AmpOptimWrapper`` fails on the CPU with a bare
    ``AssertionError``; this names the key and the fp32 alternative.

    Args:
        optim_wrapper (dict | Any): The ``optim_wrapper`` config (or a
            built wrapper, which is left alone).

    Raises:
        RuntimeError: ``optim_wrapper.type`` is ``AmpOptimWrapper`` and
            there is no CUDA device.
    """
    if not isinstance(optim_wrapper, dict):
        return
    kind = optim_wrapper.get('type')
    name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    if name.rpartition('.')[2] == 'AmpOptimWrapper':
        _require_cuda_for_amp(
            f'optim_wrapper.type={name!r}',
            "to train in fp32 on the CPU, set optim_wrapper.type="
            "'OptimWrapper' and remove its AMP arguments (loss_scale, "
            'dtype)')


def enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper to mmengine's ``AmpOptimWrapper``.

    Raises:
        RuntimeError: Without a CUDA device (mmengine's AMP wrapper supports
            accelerators only); silently training in fp32 instead would
            change the numbers a user asked for.
    """
    _require_cuda_for_amp()
    optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if optim_wrapper == 'AmpOptimWrapper':
        return
    if optim_wrapper != 'OptimWrapper':
        raise ValueError(f'--amp works with optim_wrapper.type '
                         f'"OptimWrapper", the config has {optim_wrapper!r}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def enable_amp_inference(cfg: Config) -> None:
    """Run the test loop under fp16 autocast (mmengine ``test_cfg.fp16``)."""
    _require_cuda_for_amp()
    cfg.test_cfg = cfg.get('test_cfg') or dict()
    cfg.test_cfg['fp16'] = True


def enable_auto_scale_lr(cfg: Config, path: str) -> None:
    """``--auto-scale-lr``: scale the learning rate by the total batch.

    mmengine multiplies the learning rate by ``world_size * batch_size /
    auto_scale_lr.base_batch_size``; the base is the batch the config's
    learning rate was tuned for, and only the config can say it.

    Args:
        cfg (Config): The config; its ``auto_scale_lr.enable`` is set.
        path (str): The config file, for the error.

    Raises:
        ValueError: The config names no ``auto_scale_lr.base_batch_size``.
    """
    auto_scale_lr = cfg.get('auto_scale_lr', None)
    if not isinstance(auto_scale_lr, dict) \
            or auto_scale_lr.get('base_batch_size') is None:
        raise ValueError(
            f'--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
            f'config, the total batch its learning rate was tuned for '
            f'(e.g. auto_scale_lr = dict(base_batch_size=64) for a 1xb64 '
            f'config); {path} names none')
    auto_scale_lr['enable'] = True


def disable_validation(cfg: Config) -> None:
    """Train without evaluating between epochs.

    A ``default_hooks.checkpoint.save_best`` has nothing to select by: it
    is dropped with its ``rule``, with a log line (mmengine would keep no
    best checkpoint without a word; a list ``rule`` left without its
    ``save_best`` would fail in mmengine's ``CheckpointHook``).
    """
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg[key] = None
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if isinstance(checkpoint, dict) and checkpoint.get('save_best'):
        from mmengine.logging import print_log
        print_log(
            f'--no-validate: no best checkpoint is kept (default_hooks.'
            f'checkpoint.save_best={checkpoint["save_best"]!r} needs '
            f'validation); the interval and last checkpoints are saved',
            logger='current')
        checkpoint['save_best'] = None
        checkpoint.pop('rule', None)


def adapt_to_device(cfg: Config) -> None:
    """Let distributed configs run on CPU processes (gloo) too.

    NCCL needs GPUs, and mmengine 0.10.7's pytorch launcher calls
    ``torch.cuda.set_device`` unconditionally. Without a GPU the backend
    becomes gloo and, for torchrun (``--launcher pytorch``), the process
    group is created here so that mmengine finds it ready. The same config
    and launcher then run on a laptop, in CI, and on a GPU cluster.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        warnings.warn('no CUDA device: using the gloo backend instead of '
                      'nccl for distributed training on the CPU')
        dist_cfg['backend'] = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            # Scoped: mmengine looks the wrapper up in its root registry.
            type='mmreid.CPUAwareDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    if launcher == 'pytorch' and not torch.distributed.is_initialized():
        kwargs = {k: v for k, v in dist_cfg.items() if k != 'backend'}
        torch.distributed.init_process_group(
            backend=dist_cfg['backend'], **kwargs)


def dump_atomic(obj, path: str) -> None:
    """Write ``obj`` with mmengine's ``dump`` through a temporary file.

    The file appears complete or not at all: an interrupted run never
    leaves a truncated result that a later script would read.
    """
    from mmengine.fileio import dump
    suffix = os.path.splitext(path)[1].lstrip('.')
    if suffix not in ('json', 'yaml', 'yml', 'pkl', 'pickle'):
        raise ValueError(f'--out must end in .json, .yaml or .pkl, got '
                         f'{path!r}')
    mode = 'wb' if suffix in ('pkl', 'pickle') else 'w'
    with open_atomic(path, mode) as f:
        dump(obj, f, file_format=suffix)


def shutdown_distributed() -> None:
    """End a finished distributed run cleanly, with exit status 0.

    The process group is destroyed after a barrier. Then, in a distributed
    run only, the process leaves with ``os._exit(0)`` once the logs and
    streams are flushed: gloo's C++ threads can still abort the interpreter
    at teardown ("terminate called without an active exception", exit
    -6) on a loaded machine, which turned finished runs into failed ones.
    Everything the run writes is written (and closed) before this point.
    """
    if torch.distributed.is_available() and \
            torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
