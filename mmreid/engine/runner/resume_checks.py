"""What a checkpoint was trained with, against what resumes it.

``ReIDRunner.load_or_resume`` refuses a resume that would continue another
run than the checkpoint's: other dataset metainfo, another batch size or
sampler (``meta['train_loader']``), another optimizer type or
hyperparameters, other schedulers, epochs of another number of steps.
These functions read both sides and list the differences, one readable line
each.
"""
import ast
import inspect
import numbers
import pickle
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

from mmreid.utils.registry_suggestions import config_type_name


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def _same(a: Any, b: Any) -> bool:
    """Equality of the same type, numbers of any type by value (``0`` and
    ``0.0`` give the same schedule; a bool is no number here), numpy
    arrays compared as pickles."""
    if all(
            isinstance(x, numbers.Real) and not isinstance(x, bool)
            for x in (a, b)):
        return bool(a == b)
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return pickle.dumps(a) == pickle.dumps(b)


def metainfo_differences(saved: Any,
                         current: Any,
                         path: str = '') -> List[str]:
    """Where two dataset metainfos differ, one line per leaf.

    Args:
        saved: The checkpoint's ``meta['dataset_meta']``.
        current: The configured training set's ``metainfo``.
        path (str): Prefix of the reported keys.

    Returns:
        list[str]: ``"<key path>: <saved> in the checkpoint, <current>
        now"`` for every differing leaf (a key or entry that only one side
        has included).
    """
    where = path or 'metainfo'
    if isinstance(saved, dict) and isinstance(current, dict):
        found = []
        for key in list(saved) + [k for k in current if k not in saved]:
            sub = f'{path}.{key}' if path else str(key)
            if key not in current:
                found.append(f'{sub}: {_short(saved[key])} in the '
                             'checkpoint, absent now')
            elif key not in saved:
                found.append(f'{sub}: absent in the checkpoint, '
                             f'{_short(current[key])} now')
            else:
                found += metainfo_differences(saved[key], current[key], sub)
        return found
    if isinstance(saved, (list, tuple)) and isinstance(current, (list, tuple)):
        if len(saved) != len(current):
            return [f'{where}: {len(saved)} entries in the checkpoint, '
                    f'{len(current)} now']
        found = []
        for i, (a, b) in enumerate(zip(saved, current)):
            found += metainfo_differences(a, b, f'{path}[{i}]')
        return found
    if _same(saved, current):
        return []
    return [f'{where}: {_short(saved)} in the checkpoint, {_short(current)} '
            'now']


def _basic(value: Any) -> Any:
    """``value`` as plain data (a checkpoint loads it with
    ``weights_only=True``): dicts, lists, numbers, strings; anything else,
    e.g. a class given as a config ``type``, as its name."""
    if isinstance(value, dict):
        return {str(key): _basic(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_basic(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, type):
        return f'{value.__module__}.{value.__qualname__}'
    return repr(value)


def train_loader_plan(cfg: Any) -> Optional[dict]:
    """What decides a training run's steps: the per-process batch size and
    the sampler's config (``meta['train_loader']`` of a checkpoint).

    Args:
        cfg (Config | None): The run's config.

    Returns:
        dict | None: ``{'batch_size': ..., 'sampler': ...}`` as plain data,
        or None without a ``train_dataloader`` config.
    """
    loader = cfg.get('train_dataloader') if cfg is not None else None
    if not isinstance(loader, dict):
        return None
    sampler = loader.get('sampler')
    if isinstance(sampler, dict):  # 'mmreid.X' and X build the same
        sampler = dict(sampler, type=config_type_name(sampler))
    return _basic(dict(batch_size=loader.get('batch_size'), sampler=sampler))


def config_ast(text: Any) -> ast.Module:
    """The syntax tree of a dumped config.

    A checkpoint's ``meta['cfg']`` is the config as Python text; it is
    parsed, never executed (a checkpoint is data). A resume parses it once
    (:meth:`~mmreid.engine.runner.resuming.ResumeMixin.check_resumable`)
    and every check reads the tree.

    Args:
        text: A checkpoint's ``meta['cfg']``.

    Returns:
        ast.Module: Its tree; an empty one (which assigns nothing) when the
        text is not a config.
    """
    if isinstance(text, str):
        try:
            return ast.parse(text)
        except SyntaxError:
            pass
    return ast.Module(body=[], type_ignores=[])


def config_text_value(text: Any, name: str) -> Optional[ast.expr]:
    """The expression assigned to ``name`` in a dumped config.

    Args:
        text: A checkpoint's ``meta['cfg']``, or its tree
            (:func:`config_ast`).
        name (str): A top-level variable, e.g. ``'param_scheduler'``.

    Returns:
        ast.expr | None: Its value's syntax tree, or None when the text is
        not a config or does not assign ``name``.
    """
    tree = text if isinstance(text, ast.Module) else config_ast(text)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name
                for t in node.targets):
            return node.value
    return None


def config_literal(node: Optional[ast.expr]) -> Any:
    """The value of a dumped config expression, without running it.

    A dumped config (``Config.pretty_text``) writes its values as
    literals and ``dict(key=...)`` calls; those are read, anything else
    (a name, another call, an operator) is refused.

    Args:
        node (ast.expr, optional): An expression of :func:`config_ast`'s
            tree, e.g. from :func:`config_text_value`.

    Returns:
        The value: dicts, lists, tuples, numbers, strings, bools, None.

    Raises:
        ValueError: ``node`` is None or not such a literal.
    """
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == 'dict' and not node.args \
            and all(k.arg is not None for k in node.keywords):
        return {k.arg: config_literal(k.value) for k in node.keywords}
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {
            config_literal(k): config_literal(v)
            for k, v in zip(node.keys, node.values)
        }
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [config_literal(item) for item in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if node is None:
        raise ValueError('no value')
    return ast.literal_eval(node)  # constants, -1; ValueError otherwise


def _keyword(call: Any, name: str) -> Optional[ast.expr]:
    """The value of keyword ``name`` in a ``dict(...)`` call's tree."""
    if isinstance(call, ast.Call):
        for item in call.keywords:
            if item.arg == name:
                return item.value
    return None


def scheduler_types_in_config_text(text: Any) -> Optional[List[str]]:
    """The ``param_scheduler`` types of a dumped config, without running it.

    Args:
        text: A checkpoint's ``meta['cfg']``, or its tree
            (:func:`config_ast`).

    Returns:
        list[str] | None: The ``type`` of every scheduler in order, or None
        when the text does not say.
    """
    value = config_text_value(text, 'param_scheduler')
    if value is None:
        return None
    items = value.elts if isinstance(value, (ast.List, ast.Tuple)) \
        else [value]
    types = []
    for item in items:
        kind = _keyword(item, 'type')
        types.append(kind.value if isinstance(kind, ast.Constant)
                     and isinstance(kind.value, str) else '?')
    return types


#: Scheduler constructor arguments that are not settings.
_NOT_SETTINGS = {'self', 'optimizer', 'last_step', 'verbose', 'args',
                 'kwargs'}


def scheduler_settings(scheduler) -> List[str]:
    """The state keys of ``scheduler`` that its config sets.

    Its constructor arguments (over the class hierarchy) that the state
    holds, e.g. ``begin``, ``end``, ``by_epoch``, ``milestones``,
    ``gamma``, plus ``base_values`` (the optimizer's learning rates the
    schedule starts from); not the progress (``last_step``, the last
    values).
    """
    names = set()
    for klass in type(scheduler).__mro__:
        init = klass.__dict__.get('__init__')
        if init is not None:
            names.update(inspect.signature(init).parameters)
    state = scheduler.state_dict()
    keys = sorted(k for k in names - _NOT_SETTINGS if k in state)
    if 'base_values' in state:
        keys.append('base_values')
    return keys


def scheduler_label(name: str, index: Optional[int] = None) -> str:
    """How the messages name an optimizer's schedulers, or one of them.

    Args:
        name (str): The optimizer's name; ``''`` where there is one.
        index (int, optional): The scheduler's position in the list.

    Returns:
        str: ``param_scheduler`` or ``param_scheduler['name']``, followed
        by ``[index]`` where given.
    """
    label = f'param_scheduler[{name!r}]' if name else 'param_scheduler'
    return label if index is None else f'{label}[{index}]'


class SchedulerDifference(NamedTuple):
    """One way the configured schedulers differ from a checkpoint's.

    Attributes:
        text (str): The line for the message.
        scheduler: The configured scheduler it is about, or None for a
            difference of a whole list.
        key (str, optional): The setting that differs (``'end'``,
            ``'milestones'``, ...), or None for another difference.
    """
    text: str
    scheduler: Any = None
    key: Optional[str] = None


def scheduler_differences(
        saved: Any, schedulers: Any,
        saved_types: Optional[Sequence[str]]) -> List[SchedulerDifference]:
    """How the configured schedulers differ from a checkpoint's.

    Args:
        saved: The checkpoint's ``param_schedulers`` (a list of state
            dicts, or a dict of such lists per optimizer).
        schedulers: The built schedulers (a list, or a dict of lists).
        saved_types (Sequence[str], optional): The checkpoint's scheduler
            types, for the message.

    Returns:
        list[SchedulerDifference]: One per difference; empty when they
        agree.
    """
    if isinstance(schedulers, dict) != isinstance(saved, dict):
        return [
            SchedulerDifference('the checkpoint and the config disagree on '
                                'whether each optimizer has its own '
                                'schedulers')
        ]
    if not isinstance(schedulers, dict):
        schedulers, saved = {'': schedulers}, {'': saved}
    found = []
    for name in sorted(set(schedulers) | set(saved)):
        mine = list(schedulers.get(name) or [])
        theirs = list(saved.get(name) or [])
        my_types = [type(s).__name__ for s in mine]
        if len(mine) != len(theirs):
            old = f' ({", ".join(saved_types)})' if saved_types and len(
                saved_types) == len(theirs) and not name else ''
            found.append(
                SchedulerDifference(
                    f'{scheduler_label(name)}: {len(theirs)} schedulers in '
                    f'the checkpoint{old}, {len(mine)} in this config '
                    f'({", ".join(my_types)})'))
            continue
        for i, (scheduler, state) in enumerate(zip(mine, theirs)):
            kind = type(scheduler).__name__
            where = f'{scheduler_label(name, i)} ({kind})'
            if set(state) != set(scheduler.state_dict()):
                old = f'a {saved_types[i]}' if saved_types and not name \
                    and len(saved_types) == len(theirs) \
                    else 'a scheduler of another type'
                found.append(
                    SchedulerDifference(f'{where}: {old} in the checkpoint',
                                        scheduler))
                continue
            current = scheduler.state_dict()
            for key in scheduler_settings(scheduler):
                if not _same(state[key], current[key]):
                    found.append(
                        SchedulerDifference(
                            f'{where}: {key} {_short(state[key])} in the '
                            f'checkpoint, {_short(current[key])} in this '
                            'config', scheduler, key))
    return found


def optimizer_type_in_config_text(text: Any) -> Optional[str]:
    """The ``optim_wrapper.optimizer.type`` of a dumped config, not run.

    Args:
        text: A checkpoint's ``meta['cfg']`` (the config as Python text),
            or its tree (:func:`config_ast`).

    Returns:
        str | None: The type, or None when the text does not say (e.g. one
        optimizer per submodule).
    """
    kind = _keyword(
        _keyword(config_text_value(text, 'optim_wrapper'), 'optimizer'),
        'type')
    if isinstance(kind, ast.Constant) and isinstance(kind.value, str):
        return kind.value
    return None


#: Param-group keys that are not hyperparameters: the parameters and their
#: names (torch >= 2.6).
_NOT_HYPERPARAMETERS = ('params', 'param_names')


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists and tensors as numbers, to compare."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, 'tolist'):
        return value.tolist()
    return value


def param_group_differences(saved: Sequence[dict],
                            current: Sequence[dict],
                            scheduled: Sequence[str] = (),
                            label: str = 'optimizer') -> List[str]:
    """How the configured optimizer's param groups differ from a
    checkpoint's.

    Every hyperparameter is compared (``lr``, ``weight_decay``, ``betas``,
    ``momentum``, ``nesterov``, ``eps``, ...; ``lr_mult``/``decay_mult``
    show in the values of each group). Not compared: the parameters (only
    their number), keys only this config's groups have (a newer torch
    release adds some) and the ``initial_*`` records of schedulers. For a
    key a scheduler changes, ``k``, the value the schedule starts from,
    ``initial_k``, is compared instead of ``k``.

    Args:
        saved (Sequence[dict]): The checkpoint's
            ``optimizer['param_groups']``.
        current (Sequence[dict]): The built optimizer's ``param_groups``.
        scheduled (Sequence[str]): The ``param_name`` of every configured
            scheduler (``'lr'``, ``'momentum'``; a momentum scheduler also
            drives Adam's ``betas[0]``, so only ``betas[1]`` is compared).
        label (str): Prefix of the reported keys.

    Returns:
        list[str]: ``"<label>.param_groups[i].<key>: <saved> in the
        checkpoint, <current> in this config"`` per difference; empty when
        they agree.
    """
    if len(saved) != len(current):
        return [
            f'{label}.param_groups: {len(saved)} groups in the '
            f'checkpoint, {len(current)} in this config (e.g. another '
            f'optim_wrapper.paramwise_cfg)'
        ]
    found = []
    for i, (theirs, mine) in enumerate(zip(saved, current)):
        where = f'{label}.param_groups[{i}]'
        if len(theirs.get('params', ())) != len(mine.get('params', ())):
            found.append(f'{where}: {len(theirs.get("params", ()))} '
                         f'parameters in the checkpoint, '
                         f'{len(mine.get("params", ()))} in this config')
        for key in theirs:
            if key in _NOT_HYPERPARAMETERS or key.startswith('initial_'):
                continue
            compared = key
            old, new = theirs.get(key), mine.get(key)
            if key in scheduled:
                compared = f'initial_{key}'
                if compared not in theirs or compared not in mine:
                    continue
                old, new = theirs[compared], mine[compared]
            elif key == 'betas' and 'momentum' in scheduled:
                # A momentum scheduler drives betas[0]; betas[1] is set.
                old, new = _plain(old)[1:], _plain(new)[1:]
                compared = 'betas[1]'
            if key not in mine:
                found.append(f'{where}.{key}: {_short(theirs[key])} in the '
                             'checkpoint, absent in this config (another '
                             'optimizer type?)')
            elif _plain(old) != _plain(new):
                found.append(f'{where}.{compared}: {_short(old)} in the '
                             f'checkpoint, {_short(new)} in this config')
    return found


def steps_per_epoch_in_checkpoint(checkpoint: Any,
                                  config: Optional[ast.Module] = None
                                  ) -> Optional[int]:
    """The steps of an epoch of the epoch-based run that wrote a checkpoint.

    mmengine's ``RuntimeInfoHook`` records the loop's ``max_iters`` and
    ``max_epochs`` in the message hub, which the checkpoint holds; an
    ``EpochBasedTrainLoop``'s ``max_iters`` is ``max_epochs`` times the
    steps of an epoch. (``meta['iter'] / meta['epoch']`` would not tell
    them apart from a checkpoint saved in the middle of an epoch.)

    Args:
        checkpoint: A loaded training checkpoint.
        config (ast.Module, optional): Its ``meta['cfg']`` as
            :func:`config_ast` gives it; parsed here if not given.

    Returns:
        int | None: The steps per epoch, or None where the checkpoint does
        not record them or its config (``meta['cfg']``) is iteration-based.
    """
    if not isinstance(checkpoint, dict):
        return None
    hub = checkpoint.get('message_hub')
    info = hub.get('runtime_info') if isinstance(hub, dict) else None
    if not isinstance(info, dict):
        return None
    max_iters, max_epochs = info.get('max_iters'), info.get('max_epochs')
    if not (isinstance(max_iters, int) and isinstance(max_epochs, int)
            and max_epochs > 0 and max_iters % max_epochs == 0):
        return None
    if config is None:
        meta = checkpoint.get('meta')
        config = meta.get('cfg') if isinstance(meta, dict) else None
    loop = config_text_value(config, 'train_cfg')
    kind = _keyword(loop, 'type')
    by_epoch = _keyword(loop, 'by_epoch')
    named_iter = isinstance(kind, ast.Constant) and 'IterBased' in str(
        kind.value)
    not_by_epoch = isinstance(by_epoch, ast.Constant) \
        and by_epoch.value is False
    if _keyword(loop, 'max_iters') is not None or named_iter or not_by_epoch:
        return None
    return max_iters // max_epochs


def train_length_in_checkpoint(checkpoint: Any) -> dict:
    """The length of the run that wrote a checkpoint.

    mmengine's ``RuntimeInfoHook`` records the training loop's
    ``max_epochs`` and ``max_iters`` in the message hub, which the
    checkpoint holds.

    Args:
        checkpoint: A loaded training checkpoint.

    Returns:
        dict: ``max_epochs`` and ``max_iters``, those recorded as ints
        (empty where the checkpoint records neither).
    """
    hub = checkpoint.get('message_hub') if isinstance(checkpoint,
                                                      dict) else None
    info = hub.get('runtime_info') if isinstance(hub, dict) else None
    if not isinstance(info, dict):
        return {}
    return {
        key: info[key]
        for key in ('max_epochs', 'max_iters')
        if isinstance(info.get(key), int) and not isinstance(info[key], bool)
    }


def steps_per_epoch_advice(steps: int,
                           remedy: str,
                           filename: Optional[str] = None,
                           saved_at: Optional[Tuple[Any, Any]] = None) -> str:
    """Why a run cannot resume in epochs of another length, and what to do.

    mmengine resumes the iteration counter and the schedulers converted to
    iterations (``convert_to_iter_based``) as the checkpoint counted them,
    in the steps of its epochs.

    Args:
        steps (int): The steps of an epoch of this run.
        remedy (str): What to resume with instead, without a full stop,
            e.g. ``'Resume with the config of that run'``; a reason may
            come before it.
        filename (str, optional): The checkpoint, for ``load_from``.
        saved_at (tuple, optional): ``(iteration, epoch)`` of the
            checkpoint, saved at the end of that epoch.

    Returns:
        str: The sentences that end the message.
    """
    counter = "The checkpoint's iteration counter"
    if saved_at is not None:
        counter += (f' (iteration {saved_at[0]} at the end of epoch '
                    f'{saved_at[1]})')
    load_from = 'load_from' if filename is None else f'load_from={filename}'
    return (f'{counter} and its schedulers converted to iterations '
            '(convert_to_iter_based) count the old steps, so the run cannot '
            f'continue in epochs of {steps} steps. {remedy}, or start a new '
            f'run from its weights with {load_from} (without --resume).')


def hook_selection(save_best: Any,
                   rule: Any = None,
                   greater_keys: Any = None,
                   less_keys: Any = None) -> List[Tuple[str, Optional[str]]]:
    """The ``(key, rule)`` pairs a ``CheckpointHook`` selects by.

    Args:
        save_best (str | list[str] | None): The hook's ``save_best``.
        rule (str | list[str] | None): Its ``rule``; None lets mmengine
            infer it from the key (``mAP`` gives ``'greater'``).
        greater_keys, less_keys: The hook's own lists for that inference
            (mmengine's defaults when None).

    Returns:
        list[tuple[str, str | None]]: One pair per key, the rule as mmengine
        infers it; as given where mmengine refuses the settings. Empty
        without ``save_best``.
    """
    from mmengine.hooks import CheckpointHook
    if not save_best:
        return []
    try:
        hook = CheckpointHook(
            save_best=save_best,
            rule=rule,
            greater_keys=greater_keys,
            less_keys=less_keys)
    except (AssertionError, KeyError, TypeError, ValueError):
        keys = list(save_best) if isinstance(save_best,
                                             (list, tuple)) else [save_best]
        rules = list(rule) if isinstance(rule, (list, tuple)) else [rule]
        return list(zip(keys, rules * len(keys) if len(rules) == 1 else rules))
    return list(zip(hook.key_indicators, hook.rules))


def selection_in_config_text(
        text: Any) -> Optional[List[Tuple[str, Optional[str]]]]:
    """The best-checkpoint selection of a dumped config, without running it.

    Args:
        text: A checkpoint's ``meta['cfg']``, or its tree
            (:func:`config_ast`).

    Returns:
        list[tuple[str, str | None]] | None: The :func:`hook_selection` of
        ``default_hooks.checkpoint`` and of every ``CheckpointHook`` of
        ``custom_hooks`` (empty where none has ``save_best``); None where
        the text has no ``default_hooks`` or does not give these hooks as
        literals.
    """
    defaults = config_text_value(text, 'default_hooks')
    if defaults is None:
        return None
    try:
        if isinstance(defaults, ast.Call):
            entry = _keyword(defaults, 'checkpoint')
            hooks = [] if entry is None else [config_literal(entry)]
        else:
            hooks = [config_literal(defaults).get('checkpoint')]
        custom = config_text_value(text, 'custom_hooks')
        if custom is not None:
            hooks += [
                hook for hook in config_literal(custom) or []
                if isinstance(hook, dict)
                and str(hook.get('type', '')).endswith('CheckpointHook')
            ]
    except (AttributeError, TypeError, ValueError):
        return None
    return [
        pair for hook in hooks if isinstance(hook, dict)
        for pair in hook_selection(
            hook.get('save_best'), hook.get('rule'), hook.get('greater_keys'),
            hook.get('less_keys'))
    ]


def validated_in_checkpoint(checkpoint: Any) -> bool:
    """Whether the run that wrote a training checkpoint had validated.

    Args:
        checkpoint: A loaded training checkpoint.

    Returns:
        bool: Its message hub holds a best score of a ``CheckpointHook``
        (``best_score``, ``best_score_<key>``) or validation results
        (``val/<key>``, which mmengine's ``RuntimeInfoHook`` records).
    """
    hub = checkpoint.get('message_hub') if isinstance(checkpoint,
                                                      dict) else None
    if not isinstance(hub, dict):
        return False
    info = hub.get('runtime_info') or {}
    scalars = hub.get('log_scalars') or {}
    return any(str(key).startswith('best_score') for key in info) or any(
        str(key).startswith('val/') for key in scalars)
