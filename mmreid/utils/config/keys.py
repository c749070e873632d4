"""Config keys: the top-level keys a run reads (the rest are variables
the config file used while it was parsed), and an option's dotted key
walked through a config."""
from typing import Any, List

#: Config sections a test run does not read: a base variable that only
#: these still follow is no trap for it (see
#: :func:`~mmreid.utils.config.bases.check_base_variables`).
TRAINING_ONLY_KEYS = frozenset({
    'train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler',
    'val_dataloader', 'val_cfg', 'val_evaluator', 'auto_scale_lr'
})


def _first_keys(keys: List[str], shown: int = 6) -> str:
    """``'a, b, c and 4 more'``: config keys for a message."""
    more = len(keys) - shown
    return ', '.join(keys[:shown]) + (f' and {more} more' if more > 0 else '')


#: Top-level keys that the runner or mmreid read from the merged config,
#: besides the arguments of mmengine's ``Runner`` (:func:`_runner_keys`):
#: mmengine's ``Runner`` reads ``model_wrapper_cfg``,
#: ``find_unused_parameters``, ``sync_bn``, ``activation_checkpointing``
#: (which :class:`~mmreid.engine.runner.ReIDRunner` reads to refuse it,
#: pointing to ``model.backbone.with_cp``),
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


def _option_items(options: dict, prefix: str = ''):
    """``(dotted key, value)`` of options, a dict value field by field
    (``Config.merge_from_dict`` merges it into the config's dict)."""
    for key, value in options.items():
        key = f'{prefix}.{key}' if prefix else str(key)
        if isinstance(value, dict) and value:
            yield from _option_items(value, key)
        else:
            yield key, value


def _dict_fields(value: dict, prefix: str):
    """The dotted keys of a dict's fields that are not dicts."""
    for key, item in value.items():
        where = f'{prefix}.{key}'
        if isinstance(item, dict):
            yield from _dict_fields(item, where)
        else:
            yield where


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
