"""Loading a checkpoint's state into a model, with mmreid's rules.

:func:`load_model_state` is the one path by which a whole model is loaded
(``init_model``, ``tools/test.py``, ``load_from`` and resuming in
``tools/train.py``): a partial load is an error, a classifier of another
number of identities is skipped with one warning, and a refusal names the
settings the checkpoint was trained with (:func:`saved_model_config`,
:func:`model_config_differences`). Reading checkpoint files safely is
:mod:`mmreid.utils.checkpoint`'s.
"""
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log

from .checkpoint import _names


def _init_only_note(model: torch.nn.Module, state_dict: Dict[str, Any],
                    filename: str) -> str:
    """Why a checkpoint that holds some modules only in the form an
    initialisation maps (:mod:`mmreid.models.init_mappings`) is refused
    (empty if it holds none)."""
    from mmreid.models.init_mappings import init_only_sources
    notes = [
        f'{source} for {len(names)} modules of the model: {_names(names)}; '
        f'it is {trained_as}'
        for source, names, trained_as in init_only_sources(model, state_dict)
    ]
    if not notes:
        return ''
    return (f'checkpoint {filename!r} holds ' +
            '. It also holds '.join(notes) +
            '. This config builds another network: testing the checkpoint '
            "with it would give the other model's numbers under this "
            "config's name. Test it with the config it was trained with; to "
            "start training this model from it, load it as an "
            "initialisation, model.backbone.init_cfg=dict("
            "type='Pretrained', checkpoint=..., prefix='backbone.').")


def _backbone_checkpoint_note(checkpoint: Any, filename: str) -> str:
    """Why a converted ImageNet backbone (``resnet2mmreid.py``: ``meta``
    with ``converted_from`` and a ``source`` of
    :data:`~mmreid.utils.key_mapping.NOT_BACKBONE`) is no whole model, and
    how to use it; empty for any other checkpoint."""
    from mmreid.utils.key_mapping import NOT_BACKBONE
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict) or 'converted_from' not in meta or \
            meta.get('source') not in NOT_BACKBONE:
        return ''
    return (f'checkpoint {filename!r} is a backbone checkpoint (an ImageNet '
            f'ResNet converted from {meta["source"]}, '
            f'{meta["converted_from"]}, by resnet2mmreid.py): it has no '
            'neck or head, so it is no trained ReID model to test or load '
            'whole. Give it as the initialisation of the backbone, '
            "model.backbone.init_cfg=dict(type='Pretrained', "
            f"checkpoint={filename!r}, prefix='backbone.'), and train")


def saved_model_config(meta: Any) -> Optional[dict]:
    """The ``model`` of the config a checkpoint's run saved, or None.

    mmreid's checkpoints keep the run's config as text (``meta['cfg']``);
    its ``model`` is read without running it
    (:func:`~mmreid.engine.runner.resume_checks.config_literal`).

    Args:
        meta: The checkpoint's ``meta``.

    Returns:
        dict | None: The saved ``model``; None without a config text or
        one whose ``model`` is not a literal dict.
    """
    from mmreid.engine.runner.resume_checks import (config_literal,
                                                    config_text_value)
    if not isinstance(meta, dict):
        return None
    try:
        saved = config_literal(config_text_value(meta.get('cfg'), 'model'))
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return None
    return saved if isinstance(saved, dict) else None


#: A ``model.*`` key path as :func:`model_config_differences` names it:
#: a dict key or a list index per item.
KeyPath = Tuple[Any, ...]


def model_config_differences(saved: dict,
                             current: Any) -> List[Tuple[KeyPath, str]]:
    """Where a saved ``model`` config differs from ``current``, leaf by leaf.

    Args:
        saved (dict): The checkpoint's ``model`` (:func:`saved_model_config`).
        current (dict): The current ``cfg.model``.

    Returns:
        list[tuple[tuple, str]]: Per differing leaf (a key or list entry
        that only one side has, or a list of another length, included) its
        path, e.g. ``('model', 'backbone', 'plugins', 0, 'cfg')``, and a
        line ``"model.backbone.depth: 50 in the checkpoint, 18 now"``.
    """
    from mmreid.engine.runner.resume_checks import metainfo_differences
    if hasattr(current, 'to_dict'):
        current = current.to_dict()
    found = []
    for line in metainfo_differences(saved, current, 'model'):
        key = line.split(': ', 1)[0]  # 'model.plugins[0].cfg'
        path = tuple(
            int(index) if index else name
            for index, name in re.findall(r'\[(\d+)\]|([^.\[\]]+)', key))
        found.append((path, line))
    return found


def _saved_config_note(checkpoint: Any, cfg: Any,
                       modules: Sequence[str]) -> str:
    """Where the config a checkpoint was trained with differs from ``cfg``
    in the model parts whose tensors do not fit (empty if nothing is known).

    The checkpoint's ``model`` (:func:`saved_model_config`) is compared leaf
    by leaf with the current ``cfg.model``
    (:func:`model_config_differences`). ``init_cfg`` keys are left out: the
    checkpoint's tensors replace any initialisation.

    Args:
        checkpoint: The loaded checkpoint.
        cfg: The current config (with ``model``), or None.
        modules (Sequence[str]): Top-level model parts of the tensors of
            another shape, e.g. ``['backbone', 'head']``.

    Returns:
        str: A sentence naming the first differing ``model.*`` keys with
        both values, or ``''``.
    """
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    current = cfg.get('model') if hasattr(cfg, 'get') else None
    saved = saved_model_config(meta)
    if saved is None or not isinstance(current, dict):
        return ''
    lines = [
        line for path, line in model_config_differences(saved, current)
        if len(path) > 1 and path[1] in modules and 'init_cfg' not in path
    ]
    if not lines:
        return ''
    return (' The config it was trained with (its meta[\'cfg\']) differs '
            f'from this one: {_names(lines, limit=5, sep="; ")}. Test it '
            'with that config, or set these keys to the checkpoint\'s '
            'values with --cfg-options.')


#: A ResNet block's convolutions: ``backbone.layer<stage>.<block>.conv<i>``.
_BLOCK_CONV = re.compile(r'backbone\.layer([1-4])\.(\d+)\.conv(\d)\.weight')

#: The ResNet depths by their blocks per stage and convolutions per block.
_RESNET_DEPTHS = {
    ((2, 2, 2, 2), 2): 18,
    ((3, 4, 6, 3), 2): 34,
    ((3, 4, 6, 3), 3): 50,
    ((3, 4, 23, 3), 3): 101,
    ((3, 8, 36, 3), 3): 152
}


def _resnet_blocks(keys) -> str:
    """The ResNet block layout of these tensor names, e.g. ``'ResNet-18
    (blocks (2, 2, 2, 2) of 2 convolutions)'``; empty without blocks."""
    blocks: Dict[int, set] = {}
    convs = set()
    for key in keys:
        match = _BLOCK_CONV.fullmatch(key)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            blocks.setdefault(stage, set()).add(block)
            convs.add(int(match.group(3)))
    if not blocks:
        return ''
    counts = tuple(len(blocks.get(stage, ())) for stage in range(1, 5))
    layout = f'blocks {counts} of {max(convs)} convolutions'
    depth = _RESNET_DEPTHS.get((counts, max(convs)))
    return f'ResNet-{depth} ({layout})' if depth else f'a ResNet with {layout}'


def _mismatched(model: torch.nn.Module,
                state_dict: Dict[str, Any],
                other_training_set: str = '') -> Dict[str, Tuple]:
    """The tensors that do not fit: key -> (checkpoint's, model's shape).

    Those of another shape, and (given ``other_training_set``) the
    classifier tensors of the same shape: their rows are the identities of
    another training set.
    """
    own = model.state_dict()
    return {
        k: (tuple(v.shape), tuple(own[k].shape))
        for k, v in state_dict.items() if k in own and
        (own[k].shape != v.shape or (other_training_set and 'classifier' in k))
    }


def _misfit(key: str, shapes: Tuple, other_training_set: str) -> str:
    """Why the tensor ``key`` of :func:`_mismatched` does not fit."""
    ckpt, mine = shapes
    if ckpt == mine:
        return (f'{key}: trained on the identities of another training set '
                f'({other_training_set})')
    return f'{key}: {ckpt} in the checkpoint, {mine} in the model'


def check_model_fits(model: torch.nn.Module,
                     checkpoint: Any,
                     filename: str,
                     strict: bool = True,
                     skip_other_classifier: bool = True,
                     cfg: Any = None,
                     before_config_checks: bool = False,
                     other_training_set: str = '') -> None:
    """Refuse a checkpoint of another network size than the model.

    The entry points call it (``before_config_checks``) before they compare
    the config with the network a checkpoint was converted from
    (:func:`~mmreid.utils.arch_check.check_source_arch`): a converted
    checkpoint of another depth is refused as such first, not sent to
    change the stem pooling or the test pipeline and refused only then.
    :func:`load_model_state` calls it too.

    Args:
        model (nn.Module): The built model.
        checkpoint: The loaded checkpoint.
        filename (str): Where it came from, for the messages.
        strict (bool): Also refuse a ResNet backbone of other blocks (a
            depth whose tensors all have the same shapes, e.g. ResNet-50
            and ResNet-101). Defaults to True.
        skip_other_classifier (bool): A classifier of another shape is no
            error. Defaults to True.
        cfg (Config, optional): The model's config, to name what differs
            from the checkpoint's own config. Defaults to None.
        before_config_checks (bool): Called before ``check_source_arch``:
            a checkpoint with its own config (``meta['cfg']``) is left to
            it, which names every differing config key. Defaults to False.
        other_training_set (str): Where the checkpoint's training set
            (``meta['dataset_meta']``) differs from the one the model is
            about to train on: its classifier, whatever its shape, holds
            the identities of another training set and is handled as one
            of another number of identities. Defaults to ``''`` (the
            classifier fits when its shape does).

    Raises:
        RuntimeError: A tensor of another shape (but a skipped classifier),
            a classifier of another training set (unless skipped), or
            (``strict``) another ResNet block layout, naming both.
    """
    from mmreid.models.weight_init import extract_state_dict
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if before_config_checks and saved_model_config(meta) is not None:
        return
    state_dict = extract_state_dict(checkpoint, source=filename)
    ckpt_blocks = _resnet_blocks(state_dict)
    model_blocks = _resnet_blocks(model.state_dict())
    depth = ''
    if ckpt_blocks and model_blocks and ckpt_blocks != model_blocks:
        depth = (f'the checkpoint holds a {ckpt_blocks} backbone, the model '
                 f'is a {model_blocks}: set model.backbone.depth to the '
                 "checkpoint's, or give the checkpoint of this config.")
    mismatched = _mismatched(model, state_dict, other_training_set)
    refused = {
        k: v
        for k, v in mismatched.items()
        if not (skip_other_classifier and 'classifier' in k)
    }
    if refused:
        details = [
            _misfit(k, shapes, other_training_set)
            for k, shapes in refused.items()
        ]
        modules = sorted({k.split('.')[0] for k in refused})
        hint = _saved_config_note(checkpoint, cfg, modules)
        if any('classifier' in k for k in refused):
            hint += (' A classifier trained on another number of '
                     'identities, or on another training set, is skipped '
                     'at test time only; to fine-tune on new identities '
                     "load the backbone with init_cfg=dict(type='"
                     "Pretrained', checkpoint=..., prefix='backbone.').")
        shapes = _names(details, sep='; ')
        if depth:
            shapes = f'{depth} Tensors of other shapes: {shapes}'
        raise RuntimeError(f'checkpoint {filename!r} does not fit the model: '
                           f'{shapes}.{hint}')
    if strict and depth:
        # The same shapes, other blocks: a strict load would refuse them
        # anyway, but only after the config checks.
        raise RuntimeError(
            f'checkpoint {filename!r} does not fit the model: {depth}' +
            _saved_config_note(checkpoint, cfg, ['backbone']))


def load_model_state(model: torch.nn.Module,
                     checkpoint: Any,
                     filename: str,
                     strict: bool = True,
                     skip_other_classifier: bool = True,
                     opt_out: str = 'strict=False',
                     logger: str = 'current',
                     cfg: Any = None,
                     other_training_set: str = '') -> Dict[str, List[str]]:
    """Load a checkpoint into a model with mmreid's rules.

    Every entry point that loads a whole model (``init_model``,
    ``tools/test.py``, ``tools/dist_test.sh``, ``load_from`` and resuming in
    ``tools/train.py``) goes through this function, so they all follow one
    rule set:

    * a model tensor the checkpoint lacks, and a checkpoint tensor the
      model does not have (e.g. ``neck.p`` of a GeM checkpoint tested with
      an average-pooling config, or the SNR modules of an SNR checkpoint
      tested with a plain backbone: the network computed would not be the
      one trained), are one error naming a few of them, their count and
      the switch that accepts a partial load (``opt_out``); with
      ``strict=False`` they are one warning instead. BN
      ``num_batches_tracked`` counters are not weights: a difference in
      them alone is neither;
    * plain BN tensors where the model has :class:`~mmreid.models.layers.MBN`
      (a model trained without MBN, e.g. AGW, in an MBN config) are not
      copied into the modalities, as they are for an ImageNet
      initialisation: with ``strict`` they are an error naming the
      layers, otherwise missing and unexpected tensors;
    * a tensor of another shape is an error, except a classifier trained
      on another number of identities when ``skip_other_classifier``
      (test time: features do not use it), which is skipped with one
      warning; so is a classifier of the same shape trained on another
      training set (``other_training_set``: its rows are other people).
      Given the current ``cfg``, the error names the model keys
      whose values differ in the config the checkpoint was trained with
      (``meta['cfg']``), e.g. ``model.backbone.depth``.

    Only the model's tensors are compared: the checkpoint's ``meta``,
    ``optimizer``, ``param_schedulers``, ``message_hub`` (and EMA hooks'
    ``ema_state_dict``) are outside ``state_dict``.

    Args:
        model (nn.Module): The bare model (not a DDP wrapper).
        checkpoint: The loaded checkpoint (a dict, possibly wrapping the
            tensors in ``state_dict``/``model``; ``module.`` is stripped).
        filename (str): Where it came from, for the messages.
        strict (bool): Missing and unexpected tensors are an error.
            Defaults to True.
        skip_other_classifier (bool): Skip a classifier of another shape
            instead of failing. Defaults to True.
        opt_out (str): How the caller's user turns ``strict`` off, quoted
            in the error. Defaults to ``'strict=False'``.
        logger (str): mmengine logger name. Defaults to ``'current'``.
        cfg (Config, optional): The config the model was built from, to
            name what differs from the checkpoint's own config when
            shapes do not fit. Defaults to None (not named).
        other_training_set (str): Where the checkpoint's training set
            differs from the one the model trains on (see
            :func:`check_model_fits`). Defaults to ``''``.

    Returns:
        dict: ``missing``, ``unexpected`` and ``skipped`` key lists.

    Raises:
        RuntimeError: Missing or unexpected tensors (strict) or a shape
            mismatch; for a converted ImageNet backbone (no head), the
            message gives the backbone ``init_cfg`` that loads it.
    """
    from mmreid.models.weight_init import check_dtypes, extract_state_dict
    check_model_fits(
        model,
        checkpoint,
        filename,
        strict,
        skip_other_classifier,
        cfg,
        other_training_set=other_training_set)
    state_dict = extract_state_dict(checkpoint, source=filename)
    check_dtypes(model.state_dict(), state_dict, f'checkpoint {filename}')
    mismatched = _mismatched(model, state_dict, other_training_set)
    skipped = sorted(k for k in mismatched
                     if skip_other_classifier and 'classifier' in k)
    for key in skipped:
        state_dict.pop(key)
    if skipped:
        if any(mismatched[k][0] != mismatched[k][1] for k in skipped):
            why = 'trained on another number of identities'
        else:
            why = f'trained on another training set: {other_training_set}'
        print_log(
            f'checkpoint {filename}: not loaded ({why}; it keeps its '
            'initial weights, which test features do not use): ' +
            ', '.join(f'{k} {mismatched[k][0]} vs {mismatched[k][1]}'
                      for k in skipped),
            logger=logger,
            level=30)
    from mmreid.models.init_mappings import trained_model_load
    init_only = _init_only_note(model, state_dict, filename)
    if init_only and strict:
        raise RuntimeError(f'{init_only} {opt_out} accepts a partial load '
                           '(those modules then keep their initial '
                           'values).')
    # A trained model's checkpoint: no initialisation mappings.
    with trained_model_load():
        incompatible = model.load_state_dict(state_dict, strict=False)
    missing = [
        k for k in incompatible.missing_keys
        if not k.endswith('num_batches_tracked') and k not in skipped
    ]
    unexpected = [
        k for k in incompatible.unexpected_keys
        if not k.endswith('num_batches_tracked')
    ]
    if (missing or unexpected) and strict:
        problems = []
        if missing:
            problems.append(
                f'lacks {len(missing)} tensors of the model: '
                f'{_names(missing)} (they would keep their random initial '
                'values)')
        if unexpected:
            problems.append(
                f'holds {len(unexpected)} tensors that are not in the '
                f'model: {_names(unexpected)} (the model would compute '
                'another network than the one trained)')
        backbone_only = _backbone_checkpoint_note(checkpoint, filename)
        if backbone_only:
            # Not a partial load to accept: a backbone to initialise from.
            raise RuntimeError(f'{backbone_only}. It ' +
                               ' and '.join(problems) + '.')
        raise RuntimeError(
            f'checkpoint {filename!r} ' + ' and '.join(problems) +
            f'. Is it the checkpoint of this config? {opt_out} accepts '
            'such a partial load.')
    if missing or unexpected:
        print_log(
            (f'{init_only} ' if init_only else '') +
            f'checkpoint {filename}: ' +
            (f'{len(missing)} model tensors keep their initial values '
             f'(partial load accepted): {_names(missing)}; '
             if missing else '') +
            (f'{len(unexpected)} checkpoint tensors are not in the model: '
             f'{_names(unexpected)}' if unexpected else ''),
            logger=logger,
            level=30)
    return dict(missing=missing, unexpected=unexpected, skipped=skipped)


def with_state_dict(checkpoint: Any, filename: str) -> dict:
    """``checkpoint`` with the tensors the model loads under ``state_dict``.

    A checkpoint's tensors may be a bare state dict, wrapped in
    ``state_dict`` or ``model``, with DataParallel's ``module.`` prefix;
    :func:`load_model_state` takes them all. mmengine's hooks read
    ``checkpoint['state_dict']`` as it is (its ``EMAHook`` copies it into
    its averaged model): here they find the tensors the model loads.

    Args:
        checkpoint: The loaded checkpoint.
        filename (str): Where it came from, for the messages.

    Returns:
        dict: A new dict: the checkpoint's other entries (``meta``,
        ``optimizer``, ...) and ``state_dict``, the tensors by their model
        key (:func:`~mmreid.models.weight_init.extract_state_dict`).

    Raises:
        TypeError: Not a dict.
        ValueError: As :func:`~mmreid.models.weight_init.extract_state_dict`.
    """
    from mmreid.models.weight_init import extract_state_dict
    state_dict = extract_state_dict(checkpoint, source=filename)
    wrapper = next((key for key in ('state_dict', 'model')
                    if isinstance(checkpoint.get(key), dict)), None)
    if wrapper is None:  # a bare state dict
        return dict(state_dict=state_dict)
    normal = {k: v for k, v in checkpoint.items() if k != wrapper}
    normal['state_dict'] = state_dict
    return normal


def training_set_differences(meta: Any, metainfo: Any) -> str:
    """Where a checkpoint's training set differs from ``metainfo``.

    Args:
        meta: The checkpoint's ``meta`` (its ``dataset_meta``, written by
            mmengine from the training set, is compared).
        metainfo: The metainfo of the set the model is about to train on.

    Returns:
        str: The first differences (``"dataset_name: 'synthreid-d0' in the
        checkpoint, 'synthreid-d1' now; ..."``), or ``''`` where they agree
        or either side is unknown.
    """
    from mmreid.engine.runner.resume_checks import metainfo_differences
    saved = meta.get('dataset_meta') if isinstance(meta, dict) else None
    if not isinstance(saved, dict) or not isinstance(metainfo, dict):
        return ''
    differences = metainfo_differences(saved, metainfo)
    return _names(differences, limit=3, sep='; ') if differences else ''


__all__ = [
    'load_model_state', 'check_model_fits', 'saved_model_config',
    'model_config_differences', 'with_state_dict', 'training_set_differences'
]
