"""Errors for an unknown ``type`` that say where it is and what was meant.

mmengine answers a misspelt ``type`` with "X is not in the mmreid::model
registry", without the config key and without a hint. The build function
installed here by :mod:`mmreid.registry` leaves every successful build as it
is; only when the ``type`` of the config it builds is unknown does it raise
:class:`UnknownTypeError`, which names

* the config key path (``model.backbone.type``), found by following the
  nested builds down from the outermost one and, under a ``Runner``, by
  locating that outermost config in the runner's config;
* the closest registered names of every relevant scope: the names the
  registry reaches without a prefix (its own and its ancestors') and those
  of the other scopes, written with their prefix (``mmpretrain.ResNet``).

When the name is one of mmreid's but the config has no
``default_scope``, it says to set ``default_scope = 'mmreid'``; when it is
registered on a registry of another kind (a metric on ``MODELS``), it says
where, and on which registry to register it. These hints (and the closest
names) are :mod:`~mmreid.utils.registry_advice`'s.

It also refuses, with :class:`ShadowedTypeError`, a ``type`` that names an
mmreid class while an ancestor registry (mmengine's root) holds another
class under the same name: a class of the user's registered there would
otherwise never be built, without a word.

:func:`check_optimizer_type`, :func:`check_type` and
:func:`resolve_collate_fn` give the same error for a ``type`` that mmengine
looks up outside a build (the optimizer, a dataloader's ``collate_fn``) or
whose config it changes first (the visualizer).

:func:`config_type_name` is the class name a config's ``type`` (or a built
object) stands for, for the checks that look a component up by name.
"""
import difflib
import re
import sys
import threading
from functools import wraps
from typing import Any, Callable, List, Optional, Sequence, Tuple

from .registry_advice import other_kind_advice, scope_advice, suggestions

_BUILDING = threading.local()


def config_type_name(cfg: Any) -> Optional[str]:
    """The class name a config (or a built object) builds, if it says.

    Args:
        cfg: A config dict (``type`` a registered name, possibly scoped as
            ``'mmpretrain.ResNet'``, or a class), or a built object.

    Returns:
        str | None: The class name without scope (``'ResNet'``); None for
        a dict without a readable ``type``.
    """
    kind = cfg.get('type') if isinstance(cfg, dict) else type(cfg)
    if isinstance(kind, type):
        return kind.__name__
    return kind.split('.')[-1] if isinstance(kind, str) else None


class UnknownTypeError(KeyError):
    """A config's ``type`` is registered in no registry it can reach.

    A ``KeyError``, as mmengine's own error, so ``except KeyError`` keeps
    working; ``str()`` gives the message unquoted.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


class ShadowedTypeError(KeyError):
    """A config's ``type`` names an mmreid class and, in an ancestor
    registry, another class that the build would silently pass over.

    A ``KeyError``, as :class:`UnknownTypeError`; ``str()`` gives the
    message unquoted.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


#: mmreid's names that shadow a class of an ancestor registry on purpose,
#: by (registry name, type), with the package of the class shadowed:
#: mmreid's ``LoggerHook`` and ``Pretrained`` (mmengine's, extended) and
#: the deprecated aliases ``LoadImageFromFile`` and ``RandomFlip`` (mmcv's;
#: they warn). Any other clash is refused when built.
INTENDED_SHADOWS = {
    ('hook', 'LoggerHook'): 'mmengine',
    ('weight initializer', 'Pretrained'): 'mmengine',
    ('transform', 'LoadImageFromFile'): 'mmcv',
    ('transform', 'RandomFlip'): 'mmcv',
}


def _qualname(obj: Any) -> str:
    return f'{getattr(obj, "__module__", "?")}.' \
        f'{getattr(obj, "__qualname__", obj)}'


def shadowed_type(obj_type: str, registry) -> Optional[Tuple]:
    """The ancestor's class that mmreid's class ``obj_type`` hides.

    Args:
        obj_type (str): A ``type`` without a scope prefix.
        registry (Registry): The registry the build searches.

    Returns:
        tuple | None: ``(registry holding mmreid's class, that class,
        ancestor registry, its class)`` when ``obj_type`` resolves to a
        class of mmreid's own (not one a user registered there) and an
        ancestor registry holds another class under that name that is not
        in :data:`INTENDED_SHADOWS`; else None.
    """
    registry.import_from_location()
    node = registry
    while node is not None and obj_type not in node.module_dict:
        node = node.parent
    if node is None or node.scope != 'mmreid':
        return None
    own = node.module_dict[obj_type]
    if not getattr(own, '__module__', '').startswith('mmreid.'):
        return None  # a user's class registered on mmreid's registry
    ancestor = node.parent
    while ancestor is not None:
        other = ancestor.module_dict.get(obj_type)
        if other is not None and other is not own:
            package = getattr(other, '__module__', '').split('.')[0]
            if INTENDED_SHADOWS.get((node.name, obj_type)) != package:
                return node, own, ancestor, other
        ancestor = ancestor.parent
    return None


def shadowed_message(obj_type: str, found: Tuple, stack: Sequence) -> str:
    """The text of :class:`ShadowedTypeError`."""
    node, own, ancestor, other = found
    path, relative_to = config_key_path(stack)
    where = f"{path}.type='{obj_type}'" if path else f"type='{obj_type}'"
    if relative_to:
        where += f" (in a type='{relative_to}' config)"
    import mmreid.registry as mmreid_registry
    variable = next((name for name in mmreid_registry.__all__
                     if getattr(mmreid_registry, name) is node), 'MODELS')
    return (f'{where} names two classes: mmreid\'s {_qualname(own)} '
            f'({node.scope}::{node.name}), which the build takes, and '
            f'{_qualname(other)}, registered under the same name in '
            f'{ancestor.scope}::{ancestor.name}, which a config of scope '
            f'{node.scope!r} never reaches.\nRegister your class on '
            f'mmreid\'s registry: '
            f'`from mmreid.registry import {variable}` and '
            f'`@{variable}.register_module(name={obj_type!r}, force=True)` '
            f'to replace mmreid\'s, or give it another name (see '
            f'docs/customize.md).')


def _check_shadowed(cfg: Any, registry, default_args, stack) -> None:
    """Raise :class:`ShadowedTypeError` if ``cfg``'s type is shadowed."""
    if not isinstance(cfg, dict) or registry is None:
        return
    obj_type = cfg.get('type')
    if obj_type is None and isinstance(default_args, dict):
        obj_type = default_args.get('type')
    if not isinstance(obj_type, str) or '.' in obj_type:
        return  # a class, or a name with its scope: no ambiguity
    with registry.switch_scope_and_registry(cfg.get('_scope_')) as searched:
        found = shadowed_type(obj_type, searched)
    if found is not None:
        raise ShadowedTypeError(shadowed_message(obj_type, found, stack))


def check_not_shadowed(cfg: Any, registry) -> None:
    """:class:`ShadowedTypeError` for a config that code resolves with
    ``registry.get`` instead of building it (a backbone's plugins, given
    to mmcv's ``build_plugin_layer`` as a class): the check that the
    registry's build makes.

    Args:
        cfg: The config (``dict(type=...)``).
        registry (Registry): The registry its type is looked up in.
    """
    _check_shadowed(cfg, registry, None, [cfg])


class ConfigArgumentError(TypeError):
    """A config gives its ``type`` an argument the class does not take.

    A ``TypeError``, as Python's own, so ``except TypeError`` keeps
    working; the message names the key path of the config.
    """


#: Python's own message (``X.__init__() got an unexpected ...``), not a
#: class's deliberate error that quotes it.
_UNEXPECTED = re.compile(r"\(\) got an unexpected keyword argument '(\w+)'")


def argument_message(where: str, cfg: dict, argument: str,
                     obj_cls: Any) -> str:
    """The text of :class:`ConfigArgumentError`.

    Args:
        where (str): The key path of ``cfg`` (``model.head.loss_tri``).
        cfg (dict): The config.
        argument (str): The argument ``obj_cls`` does not take.
        obj_cls: The class built, for the names it takes.
    """
    import inspect
    name = getattr(obj_cls, '__name__', str(cfg.get('type')))
    lines = [f'{where} (type={name!r}) gives {argument}='
             f'{cfg[argument]!r}, which {name} does not take.']
    if argument == '_delete_':
        lines.append('_delete_ is removed only where the dict replaces a '
                     'base config\'s dict under the same key; the base '
                     'has none here, so leave _delete_ out.')
        return '\n'.join(lines)
    try:
        names = [
            n for n in inspect.signature(obj_cls).parameters
            if n not in ('self', 'args', 'kwargs')
        ]
    except Exception:  # never hide the original error
        names = []
    near = difflib.get_close_matches(argument, names, n=3, cutoff=0.6)
    if near:
        lines.append(f'Did you mean {" or ".join(near)}?')
    lines.append('If it comes from a base config whose dict this config '
                 'replaces with another type, write _delete_=True in the '
                 'new dict (see docs/customize.md).')
    if re.fullmatch(r'[\w.]+', where):
        # A top-level key path: the other route to another type.
        lines.append(f'If --cfg-options {where}.type={name} gave the new '
                     f'type, the old fields were kept: give '
                     f'{where}._delete_=True with it, and each field the new '
                     f'type needs.')
    return '\n'.join(lines)


def unexpected_argument(error: TypeError, cfg: Any) -> Optional[str]:
    """The argument of ``cfg`` that ``error`` (Python's "unexpected
    keyword argument") is about, else None."""
    found = _UNEXPECTED.search(str(error))
    if found is None or not isinstance(cfg, dict) \
            or found.group(1) not in cfg:
        return None
    return found.group(1)


def _stack() -> list:
    if not hasattr(_BUILDING, 'stack'):
        _BUILDING.stack = []
    return _BUILDING.stack


def _registry_arg(args: tuple, kwargs: dict):
    """The ``registry`` and ``default_args`` of a build-function call."""
    registry = kwargs.get('registry', args[0] if args else None)
    default_args = kwargs.get('default_args',
                              args[1] if len(args) > 1 else None)
    return registry, default_args


def _unknown_type(cfg: Any, registry, default_args) -> Optional[Tuple]:
    """``(type, searched registry)`` when ``cfg``'s type is unknown."""
    if not isinstance(cfg, dict) or registry is None:
        return None
    obj_type = cfg.get('type')
    if obj_type is None and isinstance(default_args, dict):
        obj_type = default_args.get('type')
    if not isinstance(obj_type, str):
        return None
    with registry.switch_scope_and_registry(cfg.get('_scope_')) as searched:
        if searched.get(obj_type) is None:
            return obj_type, searched
    return None


def with_suggestions(build_func: Callable) -> Callable:
    """Wrap a registry build function (``build_from_cfg`` and kin).

    Args:
        build_func (Callable): Called as ``build_func(cfg, *args,
            registry=..., **kwargs)`` by :meth:`Registry.build`.

    Returns:
        Callable: The same build, which records the config it builds (for
        the key path of a nested failure), turns mmengine's error for an
        unknown ``type`` of that config into :class:`UnknownTypeError` and
        refuses a shadowed one (:class:`ShadowedTypeError`).
    """
    if getattr(build_func, '_mmreid_suggestions', False):
        return build_func

    @wraps(build_func)
    def build(cfg, *args, **kwargs):
        stack = _stack()
        stack.append(cfg)
        try:
            _check_shadowed(cfg, *_registry_arg(args, kwargs), list(stack))
            return build_func(cfg, *args, **kwargs)
        except (UnknownTypeError, ShadowedTypeError, ConfigArgumentError):
            raise
        except TypeError as error:
            argument = unexpected_argument(error, cfg)
            if argument is None:
                raise
            try:
                registry, _ = _registry_arg(args, kwargs)
                obj_type = cfg.get('type')
                with registry.switch_scope_and_registry(
                        cfg.get('_scope_')) as searched:
                    obj_cls = searched.get(obj_type) if isinstance(
                        obj_type, str) else obj_type
                path, relative_to = config_key_path(list(stack))
                where = path or 'the config'
                if relative_to:
                    where += f" (in a type='{relative_to}' config)"
                message = argument_message(where, cfg, argument, obj_cls)
            except Exception:  # never hide the original error
                raise error from None
            raise ConfigArgumentError(message) from error
        except KeyError:
            registry, default_args = _registry_arg(args, kwargs)
            try:
                unknown = _unknown_type(cfg, registry, default_args)
            except Exception:  # never hide the original error
                unknown = None
            if unknown is None:
                raise  # some other KeyError, or one from a deeper build
            obj_type, searched = unknown
            raise UnknownTypeError(
                unknown_type_message(obj_type, searched,
                                     list(stack))) from None
        finally:
            stack.pop()

    build._mmreid_suggestions = True
    return build


def install(roots: Sequence) -> None:
    """Give ``roots`` and their existing descendants the suggesting build.

    A child registry copies its parent's build function when it is
    created, so registries created later inherit it; those created
    earlier (another package's, imported first) are updated here when they
    still use their root's function.
    """
    for root in roots:
        original = root.build_func
        root.build_func = with_suggestions(original)
        todo = list(root.children.values())
        while todo:
            child = todo.pop()
            if child.build_func is original:
                child.build_func = root.build_func
            todo.extend(child.children.values())


# Key paths.


def _format_path(parts: Sequence) -> str:
    text = ''
    for part in parts:
        if isinstance(part, int):
            text += f'[{part}]'
        else:
            text += f'.{part}' if text else str(part)
    return text


def _find_paths(node: Any, target: Any) -> List[list]:
    """Paths of ``target`` inside ``node``: the same object if there is
    one, else equal ones."""
    same, equal = [], []

    def visit(value, path):
        if path:
            if value is target:
                same.append(path)
                return
            if isinstance(value, dict) and value == target:
                equal.append(path)
                return
        if isinstance(value, dict):
            for key, item in value.items():
                visit(item, path + [key])
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                visit(item, path + [i])

    visit(node, [])
    return same or equal


def _runner_cfg() -> Optional[dict]:
    """The config of the ``Runner`` that is building, if any.

    A registry sees only the sub-config it builds; the full config is the
    runner's. It is looked up on the call stack, on the error path only.
    """
    try:
        from mmengine.runner import Runner
    except ImportError:  # pragma: no cover
        return None
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get('self')
        if isinstance(owner, Runner):
            cfg = getattr(owner, 'cfg', None)
            # mmengine's Config wraps its dict.
            return cfg if cfg is None or isinstance(cfg, dict) else dict(
                cfg.items())
        frame = frame.f_back
    return None


def config_key_path(stack: Sequence[dict]) -> Tuple[str, str]:
    """Where the innermost config of ``stack`` sits.

    Args:
        stack (Sequence[dict]): The configs being built, outermost first.

    Returns:
        tuple[str, str]: The key path (``model.backbone``; ``''`` when
        unknown) and, when it could not be rooted in a runner's config, the
        ``type`` of the outermost config it is relative to.
    """
    relative: list = []
    for parent, child in zip(stack[:-1], stack[1:]):
        paths = _find_paths(parent, child)
        if not paths:
            relative = None
            break
        relative += paths[0]
    root_cfg = _runner_cfg()
    if root_cfg is not None:
        if relative is not None:
            roots = _find_paths(root_cfg, stack[0])
            if roots:
                return ', '.join(
                    _format_path(root + relative) for root in roots), ''
        found = _find_paths(root_cfg, stack[-1])
        if found:
            return ', '.join(_format_path(p) for p in found), ''
    outer = stack[0].get('type') if isinstance(stack[0], dict) else None
    if relative:
        return _format_path(relative), str(outer)
    return '', ''


# Messages (their hints are in mmreid.utils.registry_advice).


def unknown_type_message(obj_type: str,
                         registry,
                         stack: Sequence,
                         where: Optional[str] = None) -> str:
    """The text of :class:`UnknownTypeError`.

    Args:
        obj_type (str): The unknown type.
        registry (Registry): The registry that was searched.
        stack (Sequence[dict]): The configs being built, outermost first,
            for the key path (:func:`config_key_path`).
        where (str, optional): What the message begins with in place of
            the key path found from ``stack``, e.g.
            ``"collate_fn.type='x' (in a dataloader config)"``.
    """
    if where is None:
        path, relative_to = config_key_path(stack)
        where = f"{path}.type='{obj_type}'" if path else \
            f"type='{obj_type}'"
        if relative_to:
            where += f" (in a type='{relative_to}' config)"
    chain, node = [], registry.parent
    while node is not None:
        chain.append(f'{node.scope}::{node.name}')
        node = node.parent
    searched = f'{registry.scope}::{registry.name}'
    scope = obj_type.split('.')[0] if '.' in obj_type else None
    if scope is not None and scope != registry.scope:
        searched = f'{scope}::{registry.name}'
    elif chain:
        searched += f' (nor in {", ".join(chain)})'
    lines = [f'{where} is not registered in {searched}.']
    near = suggestions(obj_type, registry)
    for advice in (scope_advice(obj_type, registry),
                   other_kind_advice(obj_type, registry)):
        if advice is not None:
            lines.append(advice)
    if near:
        listed = ', '.join(near[:-1]) + ' or ' + near[-1] \
            if len(near) > 1 else near[0]
        lines.append(f'Did you mean {listed}?')
        if any('.' in n.split(' ')[0] for n in near):
            lines.append('A name of another scope is written with its '
                         'prefix, as above.')
    else:
        lines.append('No registered name is close to it.')
    own = 'function' if registry.name == 'function' else 'class'
    lines.append(f'A {own} of your own must be registered and its module '
                 'imported (custom_imports; see docs/customize.md).')
    return '\n'.join(lines)


def check_optimizer_type(optim_wrapper: Any, registry) -> None:
    """Refuse an unknown ``optim_wrapper.optimizer.type`` before building.

    mmengine's ``DefaultOptimWrapperConstructor`` looks the optimizer class
    up itself (not through a build), so a misspelt type reached the user as
    ``TypeError: None is not a callable object``. This raises the same
    :class:`UnknownTypeError` as every other unknown ``type``.

    Args:
        optim_wrapper: The runner's ``optim_wrapper`` config (anything
            else, e.g. a built wrapper, is left alone).
        registry (Registry): The optimizer registry.

    Raises:
        UnknownTypeError: The optimizer type is registered nowhere the
            constructor looks.
    """
    if not isinstance(optim_wrapper, dict):
        return
    optimizer = optim_wrapper.get('optimizer')
    if not isinstance(optimizer, dict):
        return
    obj_type = optimizer.get('type')
    if not isinstance(obj_type, str):
        return
    with registry.switch_scope_and_registry(None) as searched:
        if searched.get(obj_type) is not None:
            return
    raise UnknownTypeError(
        unknown_type_message(obj_type, searched, [optim_wrapper, optimizer]))


def check_type(cfg: Any, registry, path: str) -> None:
    """Refuse an unknown ``type`` of the config at key ``path``.

    For a config that its builder changes before the build (mmengine's
    ``Runner.build_visualizer`` adds ``name`` and ``save_dir``), whose key
    path cannot be found again in the runner's config.

    Args:
        cfg: The config (anything but a dict is left alone).
        registry (Registry): The registry that builds it.
        path (str): Its config key, e.g. ``'visualizer'``.

    Raises:
        UnknownTypeError: Its type is registered nowhere the build looks.
    """
    unknown = _unknown_type(cfg, registry, None)
    if unknown is not None:
        obj_type, searched = unknown
        raise UnknownTypeError(
            unknown_type_message(
                obj_type, searched, [cfg], where=f"{path}.type='{obj_type}'"))


def resolve_collate_fn(dataloader: Any, registry) -> Any:
    """The dataloader config with its ``collate_fn`` type looked up.

    mmengine's ``Runner.build_dataloader`` looks ``collate_fn.type`` up
    itself (not through a build) in its root function registry, without
    the default scope: a misspelt type reached the user as "TypeError:
    the first argument must be callable", and a function registered on
    mmreid's ``FUNCTIONS`` needed its ``mmreid.`` prefix. Here the type is
    looked up as every other ``type`` is (the default scope's registry,
    then its ancestors) and handed over as the function itself.

    Args:
        dataloader: A dataloader config (anything else, e.g. a built
            ``DataLoader``, is returned as it is).
        registry (Registry): mmengine's root function registry.

    Returns:
        The config, or a copy whose ``collate_fn.type`` is the function.

    Raises:
        UnknownTypeError: The type is registered nowhere; names the key
            (``train_dataloader.collate_fn.type``) and the closest names.
    """
    if not isinstance(dataloader, dict):
        return dataloader
    collate = dataloader.get('collate_fn')
    if not isinstance(collate, dict) or not isinstance(
            collate.get('type'), str):
        return dataloader
    obj_type = collate['type']
    with registry.switch_scope_and_registry(None) as searched:
        function = searched.get(obj_type)
    if function is None:
        path, relative_to = config_key_path([dataloader, collate])
        where = f"{path}.type='{obj_type}'" if path and not relative_to \
            else f"collate_fn.type='{obj_type}' (in a dataloader config)"
        raise UnknownTypeError(
            unknown_type_message(
                obj_type, searched, [dataloader, collate], where=where))
    return dict(dataloader, collate_fn=dict(collate, type=function))
