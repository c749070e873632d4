"""The check of ``--cfg-options`` that would change a key without the keys
made from it: a variable the config file already substituted, or a key
the run reads that the config's files copied into another one."""
from typing import Any, Collection, List

from mmengine.config import Config

from .keys import (READ_TOP_LEVEL_KEYS, TRAINING_ONLY_KEYS, _dict_fields,
                   _first_keys, _option_items, _option_value, _runner_keys)
from .paths import _shown_path
from .probe import _following_keys, _plain_value, _read_with_probed_bases


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


def _option_overrides(options: dict, config: dict) -> List[tuple]:
    """:func:`~mmreid.utils.config.keys._option_items`, with what
    ``_delete_`` does.

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
            :func:`~mmreid.utils.config.read_config`): a test run does not
            read the sections of
            :data:`~mmreid.utils.config.keys.TRAINING_ONLY_KEYS`, so a copy
            among them need not follow an option. Defaults to ``'train'``.

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
        if isinstance(old, dict) or old is not KeyError and old == new:
            continue
        built = False  # holders built from the value, not holding it
        chance = False  # holders may hold the value by chance
        if old is KeyError or isinstance(old, bool):
            # A field the variable's dict lacks (reid_evaluator.distance),
            # or a flag (many keys hold True by chance): found by reading
            # the files with the field set to a probe value; a top-level
            # flag has none, and is left to what it switches.
            if '.' not in str(key):
                continue
            holders = _none_holders(path, str(key), plain, read)
        elif old is None:
            # Too many keys hold None by chance: the keys made from the
            # variable are found by reading the files with it changed.
            holders = _none_holders(path, str(key), plain, read)
        else:
            # Keys the run reads (not other variables, e.g. a pipeline
            # template) that hold the old value.
            holders = [
                where for where, value in _leaves(plain)
                if where.split('.')[0] in read and value == old
                and type(value) is type(old)
            ]
            # Small numbers are held by chance (num_workers=2 beside
            # dp_warmup_epochs = 2): the keys that follow the variable
            # are found by reading the files with it changed. Those
            # holding the old value keep it; the others were built from
            # it (data_root + 'market1501/'); none when a leaf set the
            # key it fed (pic.weight = 100.0). Holding the value is all
            # that tells where the files cannot be read so.
            probed = _probed_holders(path, str(key), plain, read)
            if probed is None:
                chance = True
            else:
                # A tuple follows item by item (size.0 for size), a list
                # as a whole (pipeline for pipeline.1.size).
                kept = [
                    where for where in holders if any(
                        _nested(tuple(k.split('.')), tuple(where.split('.')))
                        for k in probed)
                ]
                built = bool(probed) and not kept
                holders = kept or probed
                # A variable no file reads (a setting read by a tool, not
                # by the run) is the option's to set; one that files read
                # but that feeds no key (a leaf set the key) is not.
                users = _files_reading(path, root) if not probed else []
                if users:
                    fed = _fed_keys(users, str(key), read)
                    raise ValueError(
                        f'{option} {key}={new!r}: {root!r} is a variable '
                        f'that the files of {path} use, but every key it '
                        f'fed is set otherwise (a config that inherits the '
                        f'one using it gives the key its own value): read '
                        f'with another value of it the config is the same, '
                        f'so this override would change nothing. Override '
                        f'the keys the run reads instead'
                        f'{_fed_message(fed, plain)}.')
        if not holders:
            continue
        # Keys of the variable's phase first (test_pipeline ->
        # test_dataloader, test_cfg), then keys named like the variable
        # (batch_size -> *.batch_size).
        name = str(key).split('.')[-1]
        root_phase = root.split('_')[0] + '_'
        holders.sort(key=lambda k:
                     (not k.startswith(root_phase), k.split('.')[-1] != name))
        shown = _first_keys(holders)
        if built:
            example = holders[0]
            raise ValueError(
                f'{option} {key}={new!r}: {root!r} is a variable of '
                f'{path} that was already substituted when the file was '
                f'read, so this override would change nothing: these keys '
                f'were built from its value {old!r}: {shown}. Override '
                f'those keys instead, each with its own value (e.g. '
                f'{option} {example}=..., now '
                f'{_option_value(plain, example)!r}).')
        keep = ('were built from it without this field' if old is KeyError
                else f'keep {old!r}')
        by_chance = (' (a key holding the same value by chance is listed '
                     'too)' if chance else '')
        raise ValueError(
            f'{option} {key}={new!r}: {root!r} is a variable of '
            f'{path} that was already substituted when the file was read, '
            f'so this override would change nothing: these keys {keep}: '
            f'{shown}. Override those keys instead, e.g. '
            f'{option} {_override(holders[0], new, plain, option)}'
            f'{by_chance}.')
    followed = read - TRAINING_ONLY_KEYS if phase == 'test' else read
    _check_copied_runner_keys(items, plain, path, option, read, followed)


def _none_holders(path: str, key: str, plain: dict,
                  read: Collection[str]) -> List[str]:
    """The keys the run reads that the files made from variable ``key``
    (dotted) while it held None: ``path`` read again with that None
    changed (:func:`~mmreid.utils.config.probe._read_with_probed_bases`);
    none when the files cannot be read so."""
    root, *rest = key.split('.')
    probed = _read_with_probed_bases(
        path, root, [tuple(rest)] if rest else (), leaf=True, none=True)
    if probed is None:
        return []
    return [
        '.'.join(map(str, k))
        for k in _following_keys(probed, plain, read, probe_only=True)
    ]


def _files_reading(path: str, name: str) -> List[str]:
    """The files of ``path`` (itself and the bases it reads) in which an
    expression uses the variable ``name`` (``name`` or
    ``{{_base_.name}}``), not only assigns it; a file that cannot be
    parsed is among them (it cannot be told)."""
    import ast

    from .bases import _BASE_PLACEHOLDER, _config_files
    users = []
    for source, _ in _config_files(path):
        with open(source, encoding='utf-8') as f:
            text = _BASE_PLACEHOLDER.sub(r'_base_.\1', f.read())
        try:
            tree = ast.parse(text)
        except SyntaxError:
            users.append(source)
            continue
        if any(
                isinstance(n, ast.Name) and n.id == name
                and isinstance(n.ctx, ast.Load)
                or isinstance(n, ast.Attribute) and n.attr == name
                and isinstance(n.value, ast.Name) and n.value.id == '_base_'
                for n in ast.walk(tree)):
            users.append(source)
    return users


def _fed_keys(users: List[str], key: str,
              read: Collection[str]) -> List[tuple]:
    """``(dotted key, file)``: the keys the run reads that variable ``key``
    (dotted) feeds in each file of ``users`` read on its own (with the
    bases it reads), found by reading that file again with another value
    of it; none for a file that cannot be read so."""
    from .probe import _read_only
    root, *rest = key.split('.')
    fed: List[tuple] = []
    for source in users:
        probed = _read_with_probed_bases(
            source, root, [tuple(rest)] if rest else (), leaf=True)
        if probed is None:
            continue
        try:
            alone = _read_only(source)
        except Exception:
            continue
        fed += [('.'.join(map(str, k)), source)
                for k in _following_keys(probed, alone, read)
                if not any(where == '.'.join(map(str, k)) for where, _ in fed)]
    return fed


def _fed_message(fed: List[tuple], plain: dict) -> str:
    """``': KEY (fed from it in FILE, now VALUE), ...'`` for the message
    of a variable whose keys are set otherwise; empty without keys."""
    if not fed:
        return ''
    return ': ' + _first_keys([
        f'{where} (fed from it in {_shown_path(source)}, now '
        f'{_option_value(plain, where)!r})' for where, source in fed
    ])


def _probed_holders(path: str, key: str, plain: dict,
                    read: Collection[str]) -> Any:
    """The keys the run reads that follow variable ``key`` (dotted) when
    ``path`` is read again with another value of it (see
    :func:`~mmreid.utils.config.probe._read_with_probed_bases`): a list,
    empty when none follows; None when the value cannot be probed or the
    files cannot be read so."""
    root, *rest = key.split('.')
    probed = _read_with_probed_bases(
        path, root, [tuple(rest)] if rest else (), leaf=True)
    if probed is None:
        return None
    return [
        '.'.join(map(str, k)) for k in _following_keys(probed, plain, read)
    ]


def _nested(a: tuple, b: tuple) -> bool:
    """Whether one key path is the other or lies under it."""
    return a[:len(b)] == b or b[:len(a)] == a


def _copied_key_error(option: str, key: str, new: Any, kept: List[str],
                      builders: dict, path: str, plain: dict) -> ValueError:
    """The error of :func:`_check_copied_runner_keys` for option ``key``
    whose field ``kept`` (dotted keys) would not follow; ``builders`` as
    :func:`~mmreid.utils.config.probe._read_with_probed_bases` fills it."""
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
    option's key are found as
    :func:`~mmreid.utils.config.bases.check_base_variables` finds them: the
    config is read again with the option's fields probed in every
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
