"""The closest names and advice for an unknown ``type``.

The hints of :func:`~mmreid.utils.registry_suggestions.unknown_type_message`
(the text of :class:`~mmreid.utils.registry_suggestions.UnknownTypeError`):

* :func:`suggestions`: the closest registered names of every relevant scope,
  each as a config writes it (``mmpretrain.ResNet`` for another scope's);
* :func:`scope_advice`: an mmreid name looked up without
  ``default_scope = 'mmreid'``;
* :func:`other_kind_advice`: a name registered on a registry of another
  kind (a metric on ``MODELS``), and the registry to register it on.
"""
import difflib
from importlib import import_module
from typing import List, Optional

#: Packages whose registry scope is worth importing to suggest its names.
_KNOWN_SCOPES = ('mmpretrain', )


def _score(wanted: str, name: str) -> float:
    """Similarity in [0, 1]; case-only differences and one name inside the
    other (``ResNet`` in ``ReIDResNet``) count as close."""
    wanted, name = wanted.lower(), name.lower()
    if wanted == name:
        return 1.0
    ratio = difflib.SequenceMatcher(None, wanted, name).ratio()
    if min(len(wanted), len(name)) >= 4 and (wanted in name or name in wanted):
        ratio = max(ratio, 0.8)
    return ratio


def suggestions(obj_type: str,
                registry,
                per_scope: int = 2,
                cutoff: float = 0.7) -> List[str]:
    """Closest registered names to ``obj_type`` in every relevant scope.

    Args:
        obj_type (str): The unknown type, with or without a scope prefix.
        registry (Registry): The registry that was searched.
        per_scope (int): At most this many names of each scope.
        cutoff (float): Least similarity (see :func:`_score`) of a name.

    Returns:
        list[str]: Quoted names, those of the searched scope first, then
        scope by scope, closest first; each as a config writes it:
        no prefix for the names of the searched registry and its ancestors
        (an ancestor's scope follows in brackets), the scope prefix for
        those of the other scopes (``'mmpretrain.ResNet'``).
    """
    wanted = obj_type.split('.')[-1]
    # One group per scope: the searched registry with its ancestors (names
    # reachable without a prefix) first, then every other scope.
    groups = [[]]
    node = registry
    while node is not None:
        for name in node.module_dict:
            shown = f"'{name}'" if node.scope == registry.scope else \
                f"'{name}' ({node.scope})"
            groups[0].append((_score(wanted, name), shown))
        root, node = node, node.parent
    for scope in _KNOWN_SCOPES:
        try:
            import_module(f'{scope}.registry')
        except ImportError:
            continue
    for scope, child in sorted(root.children.items()):
        if scope == registry.scope:
            continue
        try:
            child.import_from_location()
        except Exception:  # a broken optional package must not hide ours
            pass
        groups.append([(_score(wanted, name), f"'{scope}.{name}'")
                       for name in child.module_dict])
    best = [
        sorted((-score, shown) for score, shown in group
               if score >= cutoff)[:per_scope] for group in groups
    ]
    # The searched scope first, the others by their closest name.
    best = best[:1] + sorted(near for near in best[1:] if near)
    return [shown for group in best for _, shown in group]


def _root_of(registry):
    """The mmengine root registry above ``registry``."""
    while registry.parent is not None:
        registry = registry.parent
    return registry


def _tree(registry) -> list:
    """``registry`` and all its descendants."""
    found, todo = [], [registry]
    while todo:
        node = todo.pop()
        found.append(node)
        todo.extend(node.children.values())
    return found


def _mmreid_variable(registry) -> str:
    """The name under which :mod:`mmreid.registry` exports the registry of
    the kind of ``registry`` (``'METRICS'`` for any metric registry)."""
    import mmreid.registry as mmreid_registry
    root = _root_of(registry)
    return next((name for name in mmreid_registry.__all__
                 if getattr(mmreid_registry, name).parent is root),
                root.name.upper())


def scope_advice(obj_type: str, registry) -> Optional[str]:
    """Why an unprefixed mmreid name was not found: the default scope.

    Args:
        obj_type (str): The unknown type.
        registry (Registry): The registry that was searched.

    Returns:
        str | None: Advice to set ``default_scope = 'mmreid'`` when
        ``obj_type`` has no scope prefix, was searched outside mmreid's
        registries and is one of mmreid's names; else None.
    """
    if '.' in obj_type or registry.scope == 'mmreid':
        return None
    mmreid_child = _root_of(registry).children.get('mmreid')
    if mmreid_child is None or obj_type not in mmreid_child.module_dict:
        return None
    from mmengine.registry import DefaultScope
    current = DefaultScope.get_current_instance()
    # A runner whose config has no default_scope sets 'mmengine'.
    scope = None if current is None else current.scope_name
    if scope in (None, 'mmengine'):
        reason = ('the config sets no default_scope, so a name without a '
                  "prefix is looked up in mmengine's registries")
    else:
        reason = (f'the config sets default_scope = {scope!r}, so a name '
                  f'without a prefix is looked up in {scope!r}\'s registries')
    return (f"'{obj_type}' is mmreid's ({mmreid_child.scope}::"
            f'{mmreid_child.name}), but {reason}: add default_scope = '
            "'mmreid' to the config (mmreid's configs have it from "
            'configs/_base_/default_runtime.py).')


def other_kind_advice(obj_type: str, registry) -> Optional[str]:
    """Where a class registered on a registry of another kind is.

    A metric registered on ``MODELS`` (or a transform on ``MODELS``) is
    unknown to the metric (transform) registries, which are the only
    ones a build searches.

    Args:
        obj_type (str): The unknown type, with or without a scope prefix.
        registry (Registry): The registry that was searched.

    Returns:
        str | None: The registries of other kinds that hold the name, with
        the registry to register it on; None if none holds it.
    """
    wanted = obj_type.split('.')[-1]
    own_root = _root_of(registry)
    from mmengine.registry import root as mmengine_roots
    roots = [
        root for root in vars(mmengine_roots).values()
        if isinstance(root, type(own_root)) and root is not own_root
    ]
    holders = [
        f'{node.scope}::{node.name}' for root in roots for node in _tree(root)
        if wanted in node.module_dict
    ]
    if not holders:
        return None
    variable = _mmreid_variable(registry)
    return (f"'{wanted}' is registered in {', '.join(holders)}, a registry "
            f'of another kind; a {registry.name} is looked up in the '
            f'{registry.name} registries only. If it is a {registry.name}, '
            f'register it on {variable} (`from mmreid.registry import '
            f'{variable}`, `@{variable}.register_module()`).')
