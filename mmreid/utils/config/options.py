"""``--cfg-options`` checked against the config they change, and merged.

:func:`merge_cfg_options` is where every entry point merges options: it
refuses a top-level key nothing reads, a dict literal kept as text
(:class:`ReIDDictAction` refuses it on the command line already), a key
that walks into a list by a name or into a tuple, a ``_delete_`` in a
list item, a key that would reach a dict key holding a dot, and an
override that the keys made from it would not follow
(:mod:`mmreid.utils.config.overrides`).
"""
import ast
import os.path as osp
import re
from typing import Any, Collection, List, Optional, Sequence

from mmengine.config import Config, DictAction

from .keys import (READ_TOP_LEVEL_KEYS, _dict_fields, _option_items,
                   _option_value, _runner_keys)
from .overrides import check_variable_overrides


def _reads_new_key(root: str, cfg: Config, read: Collection[str]) -> bool:
    """Whether the run reads a top-level key ``root`` that ``cfg`` lacks:
    one of ``read``, or a ``test_pipeline`` where no test dataloader has a
    pipeline (see
    :func:`~mmreid.utils.pipeline_source.inference_pipelines`)."""
    if root in read:
        return True
    if root == 'test_pipeline':
        from ..pipeline_source import split_pipelines
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


def _dotted_dict_key(value: Any) -> Optional[str]:
    """The first dict key holding a dot in ``value`` (a dict, or a list
    or tuple of them, at any depth), else None: no dotted option key
    reaches it (mmengine splits an option's key at every dot)."""
    items = value.items() if isinstance(value, dict) else enumerate(
        value if isinstance(value, (list, tuple)) else ())
    for key, item in items:
        if isinstance(value, dict) and '.' in str(key):
            return str(key)
        found = _dotted_dict_key(item)
        if found is not None:
            return found
    return None


def _dotted_key_advice(key: str, dotted: str) -> str:
    """Where to give a dict key that holds a dot, for the messages."""
    return (f'mmengine splits an option\'s key at every dot, so no option '
            f'key reaches {key}[{dotted!r}] ({key}.{dotted}.<field> would '
            f'add an entry {dotted.split(".")[0]!r} instead): give it in a '
            f'config file that inherits this one.')


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
    dotted = _dotted_dict_key(value)
    if dotted is not None:
        return f'{head} {_dotted_key_advice(key, dotted)}'
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


def check_dotted_dict_keys(cfg: Config,
                           cfg_options: dict,
                           option: str = '--cfg-options') -> None:
    """Refuse an option whose key would reach a config dict key that holds
    a dot (``custom_keys={'head.classifier': dict(lr_mult=10)}``).

    mmengine splits an option's key at every dot:
    ``optim_wrapper.paramwise_cfg.custom_keys.head.classifier.lr_mult=20``
    added an entry ``'head'`` holding ``classifier=dict(lr_mult=20)`` and
    left ``'head.classifier'`` at x10.

    Args:
        cfg (Config): The config as read, before the options.
        cfg_options (dict): The options, ``key -> value``.
        option (str): How the caller names the options, for the message.

    Raises:
        ValueError: Naming the option, the dict key and where to give it.
    """
    plain = cfg.to_dict()
    for key, value in _option_items(cfg_options):
        parts, node = key.split('.'), plain
        for i, part in enumerate(parts):
            if not isinstance(node, dict):
                break
            rest = '.'.join(parts[i:])
            dotted = [
                k for k in node if '.' in str(k) and (
                    rest == str(k) or rest.startswith(f'{k}.'))
            ]
            if dotted:
                raise ValueError(
                    f'{option} {key}={value!r}: '
                    f'{_dotted_key_advice(".".join(parts[:i]), dotted[0])}')
            if part not in node:
                break
            node = node[part]


def merge_cfg_options(cfg: Config,
                      cfg_options: Optional[dict],
                      path: str,
                      option: str = '--cfg-options',
                      phase: str = 'train') -> None:
    """Merge ``cfg_options`` into ``cfg`` after :func:`check_option_keys`,
    :func:`check_list_keys`, :func:`check_list_item_deletes`,
    :func:`check_dotted_dict_keys` and
    :func:`~mmreid.utils.config.overrides.check_variable_overrides`;
    every entry point that takes options merges them here. ``phase`` is
    what the run does, ``'train'`` or ``'test'``, as for
    :func:`~mmreid.utils.config.read_config`.

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
        check_dotted_dict_keys(cfg, cfg_options, option)
        check_variable_overrides(cfg, cfg_options, path, option, phase)
        imports = any(
            str(key).split('.')[0] == 'custom_imports' for key in cfg_options)
        cfg.merge_from_dict(cfg_options)
        if imports and cfg.get('custom_imports'):
            from mmengine.utils import import_modules_from_strings
            import_modules_from_strings(**cfg['custom_imports'])


#: A quoted item with a space inside (``'my data'``).
_QUOTED_SPACE = re.compile(r"""(['"])[^'"]*\s[^'"]*\1""")


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
        spaced = {}
        for item in values:
            key, _, value = item.partition('=')
            value = value.strip()
            nested = value.startswith(('[', '('))
            if _holds_dict_literal(value) and (',' in value or nested):
                parser.error(dict_literal_message(key, value, option_string))
            # mmengine removes every space of a value: 'data/market 1501'
            # became another folder, 'data/market1501'.
            if nested and _QUOTED_SPACE.search(value):
                parser.error(
                    f'{option_string} {item!r}: a quoted item of the list '
                    'holds a space, which the option parser would remove; '
                    'give that key in a config file instead')
            if not nested and ' ' in value.strip('\'"'):
                spaced[key] = self._parse_int_float_bool(value.strip('\'"'))
        super().__call__(parser, namespace, values, option_string)
        getattr(namespace, self.dest).update(spaced)
