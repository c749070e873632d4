"""The resume check of a best checkpoint kept by a mean over targets.

A multi-target validation (:class:`~.multi_target_loops.MultiTargetValLoop`)
logs ``<aggregate_prefix>/<metric>``, the mean over the targets it
evaluated (specs/evaluation.md section 7). mmengine's ``CheckpointHook``
resumes the best score so far whatever it was a mean of: a run resumed
with targets added or dropped compared means over other targets with it.
:func:`check_mean_targets` refuses that resume;
:meth:`~.resuming.ResumeMixin.check_resumable` calls it.
"""
import ast
import inspect
from typing import Any, List, Optional, Tuple

from .resume_checks import (config_literal, config_text_value,
                            validated_in_checkpoint)

#: The aggregate prefix and the sorted target names of a validation.
Mean = Tuple[Optional[str], List[str]]


def _default_prefix(loop_type: Any, unknown: Optional[str]) -> Optional[str]:
    """The ``aggregate_prefix`` a loop type defaults to; ``unknown`` where
    the type is not registered here or does not take one."""
    from mmreid.registry import LOOPS
    try:
        loop_class = loop_type if inspect.isclass(loop_type) else LOOPS.get(
            loop_type)
        parameter = inspect.signature(loop_class).parameters.get(
            'aggregate_prefix')
    except (KeyError, TypeError, ValueError):
        return unknown
    return unknown if parameter is None else parameter.default


def mean_targets(val_loop: Any,
                 unknown: Optional[str] = None) -> Optional[Mean]:
    """What the mean over targets of a validation is over.

    Args:
        val_loop: A ``val_cfg`` dict (a config's, or the literal of a
            checkpoint's ``meta['cfg']``) or a built loop.

    Returns:
        tuple[str | None, list[str]] | None: The aggregate prefix (None:
        no mean; for a config without it, the loop class's default) and
        the target names, sorted (the mean is unweighted: their order does
        not change it). None when ``val_loop`` has no targets (not a
        multi-target loop).
    """
    if isinstance(val_loop, dict):
        targets = val_loop.get('targets')
        if not isinstance(targets, (list, tuple)):
            return None
        names = [
            target.get('name') if isinstance(target, dict) else target
            for target in targets
        ]
        if 'aggregate_prefix' in val_loop:
            prefix = val_loop['aggregate_prefix']
        else:
            prefix = _default_prefix(val_loop.get('type'), unknown)
    else:
        targets = getattr(val_loop, 'targets', None)
        if not isinstance(targets, (list, tuple)):
            return None
        names = [getattr(target, 'name', target) for target in targets]
        prefix = getattr(val_loop, 'aggregate_prefix', None)
    return prefix, sorted(map(str, names))


def _described(mean: Optional[Mean]) -> str:
    """``the mean over the targets ['a', 'b'] (keys 'mean/...')``, or what
    stands for it where there is none."""
    if mean is None:
        return 'no mean over targets (no val_cfg.targets)'
    prefix, names = mean
    if prefix is None:
        return f'no mean over its targets {names} (aggregate_prefix=None)'
    return f"the mean over the targets {names} (keys '{prefix}/...')"


def check_mean_targets(runner, checkpoint: dict, filename: str,
                       saved_cfg: ast.Module) -> None:
    """Refuse a resume whose best mean over targets is over other targets.

    Where a ``CheckpointHook`` keeps the best checkpoint by a key of the
    mean over targets (``save_best='mean/mAP'``) and the checkpoint's run
    has validated (:func:`~.resume_checks.validated_in_checkpoint`), the
    targets of ``val_cfg`` (their names) and its ``aggregate_prefix`` must
    be those of the checkpoint's ``meta['cfg']``: mmengine would compare
    the new means with the best mean over the old targets, another
    number. A checkpoint whose config does not give ``val_cfg`` as a
    literal is not checked; nor is an ``EarlyStoppingHook`` ``monitor``
    (mmengine does not resume its best score).

    Args:
        runner (ReIDRunner): The runner that resumes.
        checkpoint (dict): The loaded checkpoint.
        filename (str): Where it came from, for the message.
        saved_cfg (ast.Module): Its ``meta['cfg']``, parsed.

    Raises:
        RuntimeError: Naming the file, the key and both target lists.
    """
    from mmengine.hooks import CheckpointHook
    mine = mean_targets(getattr(runner, '_val_loop', None))
    if mine is None or mine[0] is None:
        return
    keys = [
        key for hook in runner.hooks
        if isinstance(hook, CheckpointHook) and hook.save_best
        for key in hook.key_indicators if key.startswith(f'{mine[0]}/')
    ]
    if not keys or not validated_in_checkpoint(checkpoint):
        return
    try:
        saved_loop = config_literal(config_text_value(saved_cfg, 'val_cfg'))
    except (TypeError, ValueError):
        return
    if not isinstance(saved_loop, dict):
        return
    # A loop type not registered here is taken to default to this one's.
    saved = mean_targets(saved_loop, unknown=mine[0])
    if saved == mine:
        return
    shown = ', '.join(repr(key) for key in keys)
    raise RuntimeError(
        f'cannot resume from {filename!r}: this config keeps the best '
        f'checkpoint by save_best {shown}, {_described(mine)}, but the run '
        f'of the checkpoint validated {_described(saved)} (val_cfg of its '
        "meta['cfg']). mmengine resumes the best score so far and compares "
        'the new means with it, though a mean over other targets is '
        'another number: a better validation could be left unsaved, or a '
        'worse one saved as best. Resume with the val_cfg.targets of that '
        'run, or with default_hooks.checkpoint.save_best=None (no best '
        'checkpoint from now on), or start a new run from its weights with '
        f'load_from={filename} (without --resume).')
