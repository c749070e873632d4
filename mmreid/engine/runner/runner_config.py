"""The config entries ``ReIDRunner`` sorts out before mmengine builds them.

:class:`~mmreid.engine.runner.ReIDRunner` refuses a single-target
evaluation loop over a multi-target dataset config's empty dataloader
(:func:`check_loop_reads_a_dataloader`, in its ``__init__``),
mmengine's own ``ValLoop``/``TestLoop`` (:func:`check_loop_is_mmreids`)
and mmengine's ``activation_checkpointing``
(:func:`check_no_activation_checkpointing`), and its
``register_hooks`` registers a hook once when ``custom_hooks`` restates a
``default_hooks`` entry (:func:`drop_restated_hooks`) and leaves out a
``default_hooks`` entry set to ``None`` (:func:`drop_switched_off_hooks`).
Its ``build_train_loop`` refuses an epoch-based training loop whose
sampler no hook gives its epoch (:func:`check_sampler_gets_its_epoch`).
"""
from typing import Any, Optional, Sequence

from mmreid.utils.registry_suggestions import config_type_name


def check_loop_reads_a_dataloader(mode: str, loop_cfg, dataloader) -> None:
    """Refuse a single-target loop over a multi-target base's placeholder.

    Multi-target dataset configs (``configs/_base_/datasets/synthreid.py``,
    SynthReID v2) set ``<mode>_dataloader = dict()`` and leave the loop to
    the leaf config. A leaf that keeps a schedule's plain ``ValLoop`` would
    otherwise fail deep in mmengine with ``KeyError: ... got {}``, after the
    training set was built.

    Args:
        mode (str): ``'val'`` or ``'test'``.
        loop_cfg: ``<mode>_cfg`` as given to the runner.
        dataloader: ``<mode>_dataloader`` as given to the runner.

    Raises:
        ValueError: ``loop_cfg`` is a loop config without ``targets``
            (``{}`` included: mmengine's default loop) and ``dataloader``
            is an empty dict.
    """
    # An empty loop config is mmengine's default (single-target) loop.
    if not isinstance(loop_cfg, dict) or 'targets' in loop_cfg:
        return
    if not (isinstance(dataloader, dict) and not dataloader):
        return
    loop = 'MultiTargetValLoop' if mode == 'val' else 'MultiTargetTestLoop'
    raise ValueError(
        f'{mode}_dataloader is an empty placeholder, but {mode}_cfg '
        f'({dict(loop_cfg) or "empty: mmengine builds its default loop"}) '
        f'is a single-target loop that reads it. The '
        f'dataset config evaluates several targets (as '
        f'configs/_base_/datasets/synthreid.py, SynthReID v2, does): name '
        f'them in the loop, {mode}_cfg = dict(type={loop!r}, '
        f'targets={{{{_base_.{mode}_targets}}}}); for the first release of '
        f'SynthReID (d3 only) inherit '
        f'configs/_base_/datasets/synthreid_v1.py instead.')


def check_no_activation_checkpointing(cfg) -> None:
    """Refuse mmengine's ``activation_checkpointing`` key.

    mmengine's ``Runner.train`` wraps the forward of each named module in
    torch's reentrant ``checkpoint``. A module whose inputs need no
    gradient gets none: ``activation_checkpointing=['backbone']`` (whose
    input is the images) left the whole backbone at its initial weights,
    with one torch warning. And the recomputation runs every BatchNorm of
    the module in training mode a second time, updating its running
    statistics twice per step. ``model.backbone.with_cp=True`` checkpoints
    the backbone's residual blocks without either.

    Args:
        cfg: The runner's ``cfg`` (a Config or dict), or None.

    Raises:
        ValueError: ``activation_checkpointing`` is set to anything but
            None or an empty value, naming the key and
            ``model.backbone.with_cp``.
    """
    modules = cfg.get('activation_checkpointing') if cfg else None
    if not modules:
        return
    raise ValueError(
        f'activation_checkpointing={modules!r} is not supported: mmengine '
        'wraps those modules in a reentrant torch checkpoint, which gives '
        'a module whose inputs need no gradient (the backbone: its input '
        'is the images) no gradient at all, so it never trains, and which '
        'updates the running statistics of every BatchNorm in them twice '
        'per step. Remove activation_checkpointing and set '
        'model.backbone.with_cp=True to checkpoint the backbone\'s residual '
        'blocks, with the gradients and statistics of a run without it.')


def check_loop_is_mmreids(mode: str, loop_cfg) -> None:
    """Refuse mmengine's own ``ValLoop``/``TestLoop`` as ``<mode>_cfg``.

    They run the same iterations, hooks and metric keys as mmreid's
    ``ReIDValLoop``/``ReIDTestLoop`` without mmreid's evaluation checks, so
    a config that names them (as OpenMMLab schedules do) printed numbers
    those checks refuse: a ``drop_last`` dataloader or a sampler that
    leaves samples out ranked a partial query and gallery; a model whose
    distance the metric does not use was refused only at its first step.
    A loop config without a type gets mmreid's loop (``ReIDRunner``).

    Args:
        mode (str): ``'val'`` or ``'test'``.
        loop_cfg: ``<mode>_cfg`` as given to the runner.

    Raises:
        ValueError: Naming the key, the loop and what to write.
    """
    if not isinstance(loop_cfg, dict) or 'type' not in loop_cfg:
        return
    from mmengine.runner import TestLoop, ValLoop

    from mmreid.registry import LOOPS
    kind = loop_cfg['type']
    mmengines = ValLoop if mode == 'val' else TestLoop
    if isinstance(kind, str):
        with LOOPS.switch_scope_and_registry(None) as registry:
            kind = registry.get(kind)
    if kind is not mmengines:
        return
    ours = f'ReID{mmengines.__name__}'
    raise ValueError(
        f"{mode}_cfg: type={loop_cfg['type']!r} is mmengine's "
        f'{mmengines.__name__}, which skips mmreid\'s evaluation checks '
        '(every sample evaluated once, the model\'s distance handed to the '
        'metrics, the identity split), so it could print a number computed '
        f'without some samples. Write type={ours!r}, or leave the type out '
        f'(mmreid then uses {ours}): the same iterations, hooks and metric '
        'keys.')


def _hook_config(hook: Any) -> Any:
    """A hook config with its ``type`` as a bare class name, to compare."""
    if not isinstance(hook, dict):
        return hook
    return dict(hook, type=config_type_name(hook))


def drop_restated_hooks(default_hooks: Optional[dict],
                        custom_hooks: Optional[list]) -> Optional[list]:
    """``custom_hooks`` without the entries ``default_hooks`` already has.

    Only an entry equal to a ``default_hooks`` entry (the same type and
    arguments) is left out: that is a config written when the base listed
    the hook in ``custom_hooks``. A hook of a default's type with other
    arguments (a second ``CheckpointHook``, say) is the config's own and is
    kept, as mmengine keeps it; a second ``ParamSchedulerHook`` (another
    priority) would step every scheduler twice and is refused once the
    schedulers are built
    (:func:`~.optim_checks.check_schedulers_stepped`).

    Args:
        default_hooks (dict, optional): The config's ``default_hooks``.
        custom_hooks (list, optional): The config's ``custom_hooks``.

    Returns:
        list | None: ``custom_hooks`` less the restated entries (each one
        left out is logged).
    """
    if not default_hooks or not custom_hooks:
        return custom_hooks
    defaults = [
        _hook_config(hook) for hook in default_hooks.values()
        if isinstance(hook, dict)
    ]
    kept = []
    for hook in custom_hooks:
        if isinstance(hook, dict) and _hook_config(hook) in defaults:
            from mmengine.logging import print_log
            print_log(
                f'custom_hooks lists {config_type_name(hook)} as '
                'default_hooks has it (_base_/default_runtime.py); it is '
                'registered once',
                logger='current')
            continue
        kept.append(hook)
    return kept


#: The ``default_hooks`` names mmengine registers itself; ``None`` for one
#: of them is mmengine's own way to leave it out.
MMENGINE_DEFAULT_HOOKS = ('runtime_info', 'timer', 'sampler_seed', 'logger',
                          'param_scheduler', 'checkpoint')


def drop_switched_off_hooks(default_hooks: Optional[dict]) -> Optional[dict]:
    """``default_hooks`` without the entries a config set to ``None``.

    mmengine documents ``None`` as "leave this default hook out" but
    accepts it only for its own six names; for one a base config adds
    (mmreid's ``setup_check``, ``feature_progress``) it fails on a bare
    ``assert``. Such an entry is left out here, with a log line that
    names it, so ``default_hooks = dict(setup_check=None)`` switches the
    start-up checks off as a user reading mmengine's docs expects.

    Args:
        default_hooks (dict, optional): The config's ``default_hooks``.

    Returns:
        dict | None: ``default_hooks`` less the ``None`` entries mmengine
        does not handle itself.
    """
    if not default_hooks:
        return default_hooks
    kept = dict()
    for name, hook in default_hooks.items():
        if hook is None and name not in MMENGINE_DEFAULT_HOOKS:
            from mmengine.logging import print_log
            print_log(
                f'default_hooks.{name} is None: that hook is not '
                'registered',
                logger='current')
            continue
        kept[name] = hook
    return kept


def _epoch_sampler(dataloader: Any) -> Any:
    """The sampler whose ``set_epoch`` mmengine's ``DistSamplerSeedHook``
    calls: the dataloader's, else its batch sampler's; None if neither
    has one."""
    sampler = getattr(dataloader, 'sampler', None)
    if hasattr(sampler, 'set_epoch'):
        return sampler
    sampler = getattr(
        getattr(dataloader, 'batch_sampler', None), 'sampler', None)
    return sampler if hasattr(sampler, 'set_epoch') else None


def check_sampler_gets_its_epoch(loop: Any, hooks: Sequence[Any]) -> None:
    """Refuse an epoch-based training loop whose sampler no hook gives its
    epoch.

    A sampler with ``set_epoch`` (mmengine's ``DefaultSampler``, mmreid's
    identity samplers) draws each epoch's order, and mmreid's its
    per-sample augmentation seeds, from the epoch it was given. mmengine's
    ``EpochBasedTrainLoop`` never calls ``set_epoch``; its
    ``DistSamplerSeedHook`` (``default_hooks.sampler_seed``) does, before
    each epoch. Without it every epoch repeated epoch 0 exactly: the same
    samples in the same order, with the same augmentations.
    ``IterBasedTrainLoop`` is not affected: its iterator calls
    ``set_epoch`` itself at each new pass over the data.

    Args:
        loop: The built training loop.
        hooks (Sequence[Hook]): The runner's registered hooks.

    Raises:
        ValueError: ``loop`` is an ``EpochBasedTrainLoop`` whose
            dataloader's sampler (or batch sampler's sampler) has
            ``set_epoch``, and no hook is a ``DistSamplerSeedHook``
            (or a subclass).
    """
    from mmengine.hooks import DistSamplerSeedHook
    from mmengine.runner import EpochBasedTrainLoop
    if not isinstance(loop, EpochBasedTrainLoop):
        return
    sampler = _epoch_sampler(getattr(loop, 'dataloader', None))
    if sampler is None:
        return
    if any(isinstance(hook, DistSamplerSeedHook) for hook in hooks):
        return
    name = type(sampler).__name__
    raise ValueError(
        f'the training loop ({type(loop).__name__}) is epoch-based and its '
        f'sampler {name} draws each epoch from the epoch that set_epoch '
        f'gives it, but no registered hook calls set_epoch (no '
        f'DistSamplerSeedHook: default_hooks.sampler_seed is None or '
        f'another hook), and the loop does not call it itself: every epoch '
        f'would repeat epoch 0 exactly (the same samples in the same order, '
        f'with the same augmentation seeds). Keep '
        f"default_hooks.sampler_seed = dict(type='DistSamplerSeedHook'), "
        f'as configs/_base_/default_runtime.py has it.')
