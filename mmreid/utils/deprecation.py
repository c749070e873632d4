"""Old names kept for one release, each warning once with its new name.

mmreid's ``CrossEntropyLoss``, ``LoadImageFromFile``, ``RandomErasing``,
``RandomFlip`` and ``ColorJitter`` used the names of mmpretrain/mmcv
classes that take other arguments (or, for ``LoadImageFromFile``, give
another channel order), so a config ported from mmpretrain failed with a
``TypeError`` far from its cause. They are now ``ReID``-prefixed; the old
names still build the new class, with a :class:`FutureWarning` (a warning
for the users of configs, shown by default) the first time each is used.

Every other deprecation of mmreid warns through :func:`warn_deprecated`,
with a :class:`FutureWarning` too: a ``DeprecationWarning`` raised inside
mmreid is hidden by Python's default filters, so a user running
``tools/train.py`` with an old config key would never see it.
"""
import functools
import inspect
import warnings
from typing import Callable, Dict, Set, Tuple

#: (registry name, old name) of the aliases that have warned already.
_WARNED: Set[Tuple[str, str]] = set()

#: Old name -> new name of every alias registered (for the docs and tests).
RENAMED: Dict[str, str] = {}


def warn_deprecated(message: str, stacklevel: int = 2) -> None:
    """Warn that a name, keyword or config key is deprecated.

    Args:
        message (str): What is deprecated and what to use instead.
        stacklevel (int): As :func:`warnings.warn`'s, counted from the
            caller of this function: 2 points at the code that called the
            deprecated thing. Defaults to 2.
    """
    warnings.warn(message, FutureWarning, stacklevel=stacklevel + 1)


def _warn_once(key: Tuple[str, str], message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warn_deprecated(message, stacklevel=3)


def deprecated_registry_alias(registry, old_name: str, new_cls: type,
                              foreign: str) -> Callable:
    """Register ``old_name`` in ``registry`` as an alias of ``new_cls``.

    Building ``dict(type=old_name, ...)`` builds ``new_cls`` with the same
    arguments and warns once (per process) with the new name. Arguments
    that ``new_cls`` does not take, as those of the OpenMMLab class of the
    old name, raise a ``TypeError`` that names both classes.

    Args:
        registry (Registry): The mmreid registry of ``new_cls``.
        old_name (str): The name used before, e.g. ``'RandomErasing'``.
        new_cls (type): The class registered under its new name.
        foreign (str): How a config names the OpenMMLab class that
            ``old_name`` shadowed, e.g. ``'mmpretrain.RandomErasing'``.

    Returns:
        Callable: The registered alias (builds a ``new_cls``).
    """
    new_name = new_cls.__name__
    signature = inspect.signature(new_cls)

    def build_renamed(*args, **kwargs):
        try:
            signature.bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(
                f"type='{old_name}' is mmreid's {new_name} (renamed; the "
                f'old name is deprecated), which cannot take these '
                f'arguments: {e}. For the OpenMMLab class of that name '
                f"write type='{foreign}'; for mmreid's write "
                f"type='{new_name}' with its arguments.") from None
        _warn_once((registry.name, old_name),
                   f"type='{old_name}' is deprecated and will be removed in "
                   f"the next release: mmreid's class is now "
                   f"type='{new_name}' (the old name is mmreid's, not "
                   f"{foreign}).")
        return new_cls(*args, **kwargs)

    build_renamed.__name__ = old_name
    build_renamed.__qualname__ = old_name
    build_renamed.__doc__ = (f'Deprecated name of :class:`{new_name}`; '
                             f'builds one and warns once.')
    # Introspection (inspect.signature, tools) sees the class it builds.
    build_renamed.__wrapped__ = new_cls
    registry.register_module(name=old_name, module=build_renamed)
    RENAMED[old_name] = new_name
    return build_renamed


def deprecated_attribute(module_name: str, renamed: Dict[str, type],
                         name: str) -> type:
    """``module.__getattr__`` for the old Python names of renamed classes.

    Args:
        module_name (str): ``__name__`` of the package that exported them.
        renamed (dict[str, type]): Old name -> new class.
        name (str): The attribute looked up.

    Returns:
        type: The new class, after a once-only :class:`FutureWarning`.

    Raises:
        AttributeError: ``name`` is not an old name.
    """
    if name not in renamed:
        raise AttributeError(
            f'module {module_name!r} has no attribute {name!r}')
    new_cls = renamed[name]
    _warn_once((module_name, name),
               f'{module_name}.{name} is deprecated and will be removed in '
               f'the next release: use {module_name}.{new_cls.__name__}')
    return new_cls


def renamed_keyword(old: str, new: str) -> Callable:
    """Accept a function's keyword ``old``, renamed ``new``, for one release.

    A call with ``old=`` gets a :class:`FutureWarning` naming ``new``
    and runs as if ``new=`` had been given.

    Args:
        old (str): The old keyword.
        new (str): The keyword of the decorated function.

    Returns:
        Callable: The decorator.

    Raises:
        TypeError: (from the decorated call) both keywords are given.
    """

    def decorate(func: Callable) -> Callable:
        name = func.__qualname__.replace('.__init__', '')

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f'{name}() got both {new}= and its '
                                    f'deprecated alias {old}=; give {new} '
                                    'only')
                warn_deprecated(
                    f'{name}({old}=...) is deprecated and will be removed: '
                    f'use {new}=...')
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return wrapper

    return decorate
