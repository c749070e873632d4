"""Checks of the optimizer settings mmengine would silently not apply.

mmengine's ``DefaultOptimWrapperConstructor`` reads the keys of
``optim_wrapper.paramwise_cfg`` it knows and ignores the rest, applies a
``custom_keys`` entry to the parameters whose names contain it (none, for a
name that matches nothing), and tells norm layers by their class; and its
runner steps the schedulers only from a ``ParamSchedulerHook``. Each of
these left a run training with another recipe than its config states,
without a word: refused here, naming the key.
"""
import difflib
from typing import Any, Optional, Sequence

from torch import nn

#: The keys ``DefaultOptimWrapperConstructor`` reads from ``paramwise_cfg``
#: (mmengine 0.10).
PARAMWISE_KEYS = ('custom_keys', 'bias_lr_mult', 'bias_decay_mult',
                  'norm_decay_mult', 'dwconv_decay_mult', 'flat_decay_mult',
                  'dcn_offset_lr_mult', 'bypass_duplicate')
#: The ``paramwise_cfg`` keys that treat a layer by whether mmengine sees
#: it as a norm layer (its class), which an MBN is not.
NORM_CLASS_KEYS = ('norm_decay_mult', 'bias_lr_mult', 'bias_decay_mult')
_DEFAULT_CONSTRUCTORS = (None, 'DefaultOptimWrapperConstructor')


def check_paramwise_cfg(optim_wrapper: Any, model: nn.Module) -> None:
    """Refuse ``paramwise_cfg`` settings the default constructor would not
    apply as written.

    * a key it does not read (``norm_decay_mul``): ignored, so every
      parameter kept the optimizer's own setting;
    * a ``custom_keys`` entry no parameter name contains (the AGW
      reference's ``'bottleneck'`` for mmreid's ``head.bnneck``): the
      parameters it meant trained at the base lr;
    * ``norm_decay_mult``, ``bias_lr_mult`` or ``bias_decay_mult`` with an
      MBN that holds a shared affine: mmengine tells norm layers by their
      class, so the MBN's gamma and beta were treated as a plain layer's
      (full weight decay where every BN got none) and the BN-vs-MBN
      comparison trained its arms differently;
    * a ``custom_keys`` entry over a parameter that ``norm_decay_mult``,
      ``bias_lr_mult``, ``bias_decay_mult``, ``dwconv_decay_mult`` or
      ``flat_decay_mult`` sets, without the entry's own ``decay_mult``
      (``lr_mult``): see :func:`check_custom_keys_keep_global_mults`.

    A ``custom_keys`` entry's fields are checked by
    :func:`check_custom_key_fields`.

    Only the default constructor is checked (a custom one reads its own
    keys).

    Args:
        optim_wrapper: The ``optim_wrapper`` config (a dict).
        model (nn.Module): The model it is built for (a wrapper's
            ``module`` is used, as the constructor does).

    Raises:
        ValueError: Names the key, and for an unknown key the keys that
            are read; for a ``custom_keys`` entry, the closest names.
    """
    if not isinstance(optim_wrapper, dict):
        return
    if optim_wrapper.get('constructor') not in _DEFAULT_CONSTRUCTORS:
        return
    paramwise = optim_wrapper.get('paramwise_cfg')
    if not isinstance(paramwise, dict):
        return
    unknown = sorted(set(paramwise) - set(PARAMWISE_KEYS), key=str)
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), PARAMWISE_KEYS, 1)
        hint = f' (did you mean {close[0]!r}?)' if close else ''
        raise ValueError(
            f'optim_wrapper.paramwise_cfg has keys mmengine\'s constructor '
            f'does not read: {unknown}{hint}; they would be ignored and '
            f'every parameter keep the optimizer\'s setting. It reads '
            f'{list(PARAMWISE_KEYS)}.')
    model = getattr(model, 'module', model)
    names = [name for name, _ in model.named_parameters()]
    custom_keys = paramwise.get('custom_keys') or {}
    check_custom_key_fields(custom_keys, optim_wrapper.get('optimizer'))
    for key in custom_keys:
        if not any(str(key) in name for name in names):
            modules = sorted({n.rsplit('.', 1)[0] for n in names if '.' in n})
            close = difflib.get_close_matches(str(key), modules, 3, 0.4)
            raise ValueError(
                f'optim_wrapper.paramwise_cfg.custom_keys[{key!r}] is in '
                'no parameter name of the model: its setting would apply '
                'to nothing and the parameters it meant would train with '
                'the base settings. A key selects the parameters whose '
                'name contains it' +
                (f'; close names: {close}' if close else '') + '.')
    check_custom_keys_keep_global_mults(paramwise, model,
                                        optim_wrapper.get('optimizer'))
    used = [key for key in NORM_CLASS_KEYS if key in paramwise]
    if not used:
        return
    from mmreid.models.layers import MBN
    for prefix, module in model.named_modules():
        own = [name for name, _ in module.named_parameters(recurse=False)]
        if isinstance(module, MBN) and own:
            raise ValueError(
                f'optim_wrapper.paramwise_cfg.{used[0]}: the MBN '
                f'{prefix!r} holds a shared affine ({", ".join(own)}), '
                'which mmengine\'s constructor does not see as a norm '
                'layer (it tells them by class): it would get the plain '
                'layers\' setting where every BatchNorm gets the norm '
                f'one. Leave {used[0]} out and set these parameters with '
                'custom_keys (a key selects the names containing it).')


def _global_mults(module: nn.Module, name: str, param: nn.Parameter,
                  paramwise: dict, decays: bool) -> dict:
    """The ``paramwise_cfg`` multipliers mmengine's constructor gives
    ``param`` (``name`` in ``module``) where no ``custom_keys`` entry
    covers it, as ``{entry field: (setting, value)}``.

    ``bias_lr_mult`` sets the rate of a bias outside norm layers; of the
    decay settings the first that applies, in the constructor's order
    (norm layer, bias, depth-wise conv, one-dimensional), sets the weight
    decay, where the optimizer has one (``decays``). The DCN settings
    apply to mmcv-full's deformable convolutions, not checked here.
    """
    from torch.nn import GroupNorm, LayerNorm
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.instancenorm import _InstanceNorm
    is_norm = isinstance(module,
                         (_BatchNorm, _InstanceNorm, GroupNorm, LayerNorm))
    is_dwconv = (
        isinstance(module, nn.Conv2d) and module.in_channels == module.groups)
    mults = {}
    if name == 'bias' and not is_norm and \
            paramwise.get('bias_lr_mult') is not None:
        mults['lr_mult'] = ('bias_lr_mult', paramwise['bias_lr_mult'])
    if not decays:
        return mults
    order = [('norm_decay_mult', is_norm), ('bias_decay_mult', name == 'bias'),
             ('dwconv_decay_mult', is_dwconv),
             ('flat_decay_mult', param.ndim == 1)]
    for setting, applies in order:
        if applies and paramwise.get(setting) is not None:
            mults['decay_mult'] = (setting, paramwise[setting])
            break
    return mults


def check_custom_keys_keep_global_mults(paramwise: dict, model: nn.Module,
                                        optimizer: Any) -> None:
    """Refuse a ``custom_keys`` entry that silently undoes a global
    ``paramwise_cfg`` multiplier.

    mmengine's constructor applies a ``custom_keys`` entry instead of every
    other ``paramwise_cfg`` setting, with ``lr_mult`` and ``decay_mult``
    1 where the entry leaves them out: with the AGW schedule's
    ``'head.bnneck': dict(lr_mult=10)`` and ``norm_decay_mult=0``, every
    BatchNorm of the backbone had no weight decay and the BNNeck, a norm
    layer too, the full one. Refused here, naming the entry and the
    setting, where the entry gives the parameter another multiplier than
    the setting would (an entry that sets the multiplier itself, or
    ``lr``/``weight_decay``, is followed as written).

    Args:
        paramwise (dict): ``optim_wrapper.paramwise_cfg``.
        model (nn.Module): The model (not a wrapper).
        optimizer: ``optim_wrapper.optimizer``: its ``weight_decay`` is
            what the decay multipliers scale (none: they set nothing).

    Raises:
        ValueError: Naming the entry, the setting, the parameters and the
            field to give the entry.
    """
    custom_keys = paramwise.get('custom_keys') or {}
    if not isinstance(custom_keys, dict) or not custom_keys:
        return
    base_wd = optimizer.get('weight_decay') if isinstance(optimizer,
                                                          dict) else None
    # The constructor's order: the longest key first, then alphabetical.
    keys = sorted(sorted(map(str, custom_keys)), key=len, reverse=True)
    where = 'optim_wrapper.paramwise_cfg'
    found = {}
    for prefix, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            full = f'{prefix}.{name}'
            key = next((k for k in keys if k in full), None)
            if key is None:
                continue
            entry = custom_keys[key]
            mults = _global_mults(module, name, param, paramwise,
                                  bool(base_wd))
            for field, (setting, value) in mults.items():
                own = 'lr' if field == 'lr_mult' else 'weight_decay'
                if field in entry or own in entry or value == 1:
                    continue
                found.setdefault((key, setting, field, value),
                                 []).append(full.lstrip('.'))
    if not found:
        return
    (key, setting, field, value), names = next(iter(found.items()))
    more = f' and {len(names) - 3} more' if len(names) > 3 else ''
    shown = ', '.join(names[:3]) + more
    entry = dict(custom_keys[key], **{field: value})
    raise ValueError(
        f'{where}.custom_keys[{key!r}] covers {shown}, which '
        f"{where}.{setting}={value!r} sets, but mmengine's constructor "
        'applies a custom_keys entry instead of every other paramwise '
        f'setting: without a {field} of its own the entry gives these '
        f'parameters {field}=1, not {value!r}, and they would train with '
        f'another setting than {setting} states. Give the entry its own '
        f'{field} '
        f'(custom_keys={{{key!r}: {entry!r}}} to follow {setting}, or '
        f'{field}=1 to keep the entry\'s setting).')


def _optimizer_arguments(optimizer: Any) -> Optional[frozenset]:
    """The arguments of the optimizer an ``optim_wrapper.optimizer``
    config builds (its parameter group defaults: ``lr``, ``momentum``,
    ``betas``, ...), or None where its class is not known."""
    import inspect

    from mmreid.registry import OPTIMIZERS
    kind = optimizer.get('type') if isinstance(optimizer, dict) else None
    if isinstance(kind, str):
        kind = OPTIMIZERS.get(kind)
    if not isinstance(kind, type):
        return None
    arguments = inspect.signature(kind.__init__).parameters
    return frozenset(arguments) - {'self', 'params'}


def check_custom_key_fields(custom_keys: Any, optimizer: Any) -> None:
    """Refuse a ``custom_keys`` entry field that the parameter group would
    keep unread.

    mmengine's constructor reads ``lr_mult`` and ``decay_mult`` of an
    entry and copies every field into the parameter group, where the
    optimizer reads its own settings (``lr``, ``momentum``, ``betas``,
    ...) and nothing reads the rest: ``dict(lr_mul=10)`` left the
    classifier at the base lr. A field whose value is a dict is never a
    setting: it is what ``--cfg-options custom_keys.head.classifier.
    lr_mult=20`` makes, since an option's key is split at every dot (an
    entry ``'head'`` holding ``classifier``, not ``'head.classifier'``).

    Args:
        custom_keys: ``optim_wrapper.paramwise_cfg.custom_keys``.
        optimizer: ``optim_wrapper.optimizer``, the config of the
            optimizer whose settings an entry may give.

    Raises:
        ValueError: Naming the entry, the field and the fields read.
    """
    if not isinstance(custom_keys, dict):
        return
    arguments = _optimizer_arguments(optimizer)
    read = sorted({'lr_mult', 'decay_mult'} | (arguments or set()))
    where = 'optim_wrapper.paramwise_cfg.custom_keys'
    for key, entry in custom_keys.items():
        if not isinstance(entry, dict):
            raise ValueError(
                f'{where}[{key!r}] is {entry!r}, not a dict of settings '
                f"(e.g. dict(lr_mult=10)); mmengine's constructor reads "
                f'its lr_mult and decay_mult.')
        for field, value in entry.items():
            if isinstance(value, dict):
                raise ValueError(
                    f'{where}[{key!r}].{field} is a dict, {value!r}, not a '
                    f'setting: the parameters of {key!r} would train '
                    f'without it. An --cfg-options key is split at every '
                    f'dot, so custom_keys.{key}.{field}... makes an entry '
                    f'{key!r}, not {key}.{field}: give an entry whose name '
                    f'holds a dot in a config file that inherits this one '
                    f"(custom_keys={{'{key}.{field}': dict(lr_mult=...)}}).")
            if arguments is None or field in read:
                continue
            close = difflib.get_close_matches(str(field), read, 1)
            hint = f' (did you mean {close[0]!r}?)' if close else ''
            raise ValueError(
                f'{where}[{key!r}].{field} is not read{hint}: mmengine '
                f'copies it into the parameter group, where the optimizer '
                f'({optimizer.get("type")}) does not read it, and the '
                f'parameters of {key!r} would train with the base '
                f'settings. An entry reads {read}.')


def check_schedulers_stepped(schedulers: Any, hooks: Sequence[Any]) -> None:
    """Refuse schedulers that no hook steps, or that two hooks step.

    mmengine's ``ParamSchedulerHook`` (``default_hooks.param_scheduler``)
    steps them; a config that sets that hook to None trained the whole run
    at the schedule's first value (a warm-up's start) and logged it. A
    second one (``custom_hooks`` restating it with another priority) stepped
    every scheduler twice per step: a warm-up done in half its steps, a
    milestone reached at half its epoch.

    Args:
        schedulers: The built schedulers: a list, or a dict of lists (one
            per optimizer), or None.
        hooks (Sequence[Hook]): The runner's registered hooks.

    Raises:
        ValueError: There are schedulers and no hook, or more than one, is
            a ``ParamSchedulerHook`` (or a subclass); the second case names
            them.
    """
    from mmengine.hooks import ParamSchedulerHook
    from mmengine.runner import Priority, get_priority
    if isinstance(schedulers, dict):
        schedulers = [s for group in schedulers.values() for s in group]
    if not schedulers:
        return
    steppers = [hook for hook in hooks if isinstance(hook, ParamSchedulerHook)]
    if len(steppers) > 1:
        names = []
        for hook in steppers:
            priority = getattr(hook, 'priority', None)
            try:
                priority = Priority(get_priority(priority)).name
            except (TypeError, ValueError):
                pass
            names.append(f'{type(hook).__name__} (priority {priority})')
        raise ValueError(
            f'param_scheduler would be stepped {len(steppers)} times per '
            f'step: {len(steppers)} hooks step every scheduler, '
            f'{", ".join(names)}, so the schedule would run '
            f'{len(steppers)} times as fast as the config states (a warm-up '
            'done in a fraction of its steps, a milestone reached early). '
            'Keep one: default_hooks.param_scheduler (set it there to change '
            'its type or priority) and no ParamSchedulerHook in '
            'custom_hooks.')
    if steppers:
        return
    raise ValueError(
        'param_scheduler is set but no hook steps it: '
        'default_hooks.param_scheduler is None (or no ParamSchedulerHook '
        'is registered), so the whole run would train at the schedule\'s '
        f'first value ({type(schedulers[0]).__name__} at step 0). Restore '
        "default_hooks.param_scheduler=dict(type='ParamSchedulerHook'), "
        'or set param_scheduler=None for a constant learning rate.')
