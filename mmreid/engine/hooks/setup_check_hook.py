import re
from typing import Any, Dict, List, Optional, Tuple

import torch.nn as nn
from mmengine.hooks import CheckpointHook, EarlyStoppingHook, Hook, LoggerHook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mmreid.evaluation.results_table import PARTITION_NAME
from mmreid.registry import HOOKS
from .accumulation_checks import (accumulation_text, accumulative_counts,
                                  check_ema_with_accumulation)


@HOOKS.register_module()
class TrainSetupCheckHook(Hook):
    """Catch config mistakes before the first iteration, with their fix.

    * The classifier must have one row per training identity: a smaller one
      fails deep inside the loss, a larger one trains with dead rows. Both
      come from a changed source list or dataset.
    * A sampler that plans batches (``IdentitySampler``) must agree with the
      dataloader's ``batch_size``; otherwise batches would straddle the
      sampler's identity groups and steps.
    * A loss that mines positives within the batch (``needs_positives``:
      triplet, WRT, SNR's dual causality, GMN's pair losses) needs a
      sampler that puts at least two images of each identity in a batch
      (its ``images_per_identity``); with a shuffling sampler most anchors
      would have none and the loss would silently be another one.
    * A loss that mines negatives within the batch (``needs_negatives``:
      triplet, WRT, SNR's dual causality, GMN's pair verification) needs at
      least two identities in a batch: with ``P = batch_size /
      num_instances = 1`` no anchor has a negative and the loss is exactly
      0 (triplet, dual causality) or pulls only (WRT, pair verification),
      i.e. another run than the config's (:func:`check_identities_per_batch`).
    * Validation must not test identities the model trains on: another
      RegDB ``trial`` or DG ``split_index`` than the training set's
      (:func:`~mmreid.engine.runner.training_sets.check_identity_split`).
    * A config's top-level ``combine_all`` (the leave-one-out dataset
      bases' Protocol-3 switch) must agree with the built training set:
      ``True`` needs a source that trains on its test split
      (``split_used == 'all'`` in ``metainfo['sources']``), ``False``
      allows none. A leaf that only sets ``combine_all = True`` still
      trains Protocol-2, because mmengine does not re-evaluate the base
      file with the leaf's variables.
    * The training set is not mmengine's ``ConcatDataset`` of several ReID
      datasets, whose persons would share labels
      (:func:`check_one_label_space`; ``ConcatReIDDataset`` keeps them
      apart).
    * ``default_hooks.checkpoint.save_best`` must name a key validation
      reports: ``'auto'`` is refused (it takes the first key, ``reid/R1``,
      whose rule mmengine cannot infer), and so is a key whose prefix is
      none of the evaluator's (``reid/...``) or, in a multi-target loop,
      none of the target names and the mean (``d3/...``, ``mean/...``)
      (:func:`check_save_best`). Any other key that validation does not
      report is refused after the first validation, with the keys it did
      report (mmengine's own error would be a bare ``KeyError``), once
      that validation is logged. A key that is no score (a count
      ``num_*``, a spread ``*_std``, one split's or trial's ``split<i>/``,
      ``trial<i>/``) is refused, and so is ``rule='less'`` for mmreid's
      scores, all higher is better (:func:`check_save_best`); so is
      ``save_best`` in a run that never validates (no validation loop, or
      ``val_begin`` after the end; :func:`check_save_best_validates`):
      mmengine would keep no best checkpoint without a word.
      An ``EarlyStoppingHook``'s ``monitor`` is checked as a ``save_best``
      key is (prefix, then reported): mmengine's hook only warned and
      the run trained its whole schedule.
    * A run of several processes that validates must not have MBN layers
      with ``eval_stats='batch'``: MBN refuses to normalise a test batch
      with its statistics in several processes, which stopped the run at
      its first validation, after training
      (:func:`~mmreid.models.layers.mbn.check_validated_in_one_process`);
      so is one with batch norm layers that keep no running statistics
      (:func:`~mmreid.models.layers.mbn.check_untracked_in_one_process`).
    * A ``CheckpointHook`` argument must be one the hook or the runner's
      ``save_checkpoint`` takes (:func:`check_checkpoint_args`): mmengine's
      hook passes the others to ``save_checkpoint``, which failed on a
      misspelt one (``intervall``) at the first save only.
    * An ``EMAHook`` with gradient accumulation
      (``optim_wrapper.accumulative_counts`` > 1) is refused: it averages
      after every step, so each update would enter the average k times
      (:func:`~.accumulation_checks.check_ema_with_accumulation`).

    It logs the batch of a step and, with accumulation, of an update, and
    how the learning rate relates to it (:func:`lr_text`); with a loss that
    mines within a batch and accumulation, that it mines within each step.

    It is one of the ``default_hooks`` of ``_base_/default_runtime.py``
    (``setup_check``), so a config's own ``custom_hooks`` list keeps it.
    """

    def before_train(self, runner) -> None:
        check_checkpoint_args(
            getattr(runner, 'hooks', []),
            getattr(runner, 'save_checkpoint', None),
            getattr(runner, 'cfg', None))
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        loader = runner.train_dataloader
        dataset = loader.dataset
        # Before the classifier size: a P3 leaf that also set the P3
        # num_classes would otherwise be told to shrink it back to P2.
        check_combine_all(getattr(runner, 'cfg', None), dataset)
        check_one_label_space(dataset)
        num_classes = getattr(
            getattr(model, 'head', None), 'num_classes', None)
        num_pids = dataset.metainfo.get('num_pids')
        if num_pids is None and num_classes is not None:
            # A dataset of the user's (an mmengine BaseDataset giving pids)
            # need not count its identities: counted here.
            num_pids = counted_pids(dataset)
        if num_classes is not None and num_pids is not None \
                and num_classes != num_pids:
            raise ValueError(
                f'model.head.num_classes is {num_classes} but the training '
                f'set ({dataset.metainfo.get("dataset_name", "?")}) has '
                f'{num_pids} identities; set model.head.num_classes='
                f'{num_pids}')
        needing = sorted({
            type(m).__name__
            for m in modules_of(model) if getattr(m, 'needs_positives', False)
        })
        per_identity = getattr(loader.sampler, 'images_per_identity', None)
        if needing and (per_identity is None or per_identity < 2):
            sampler = type(loader.sampler).__name__
            got = ('no identity structure' if per_identity is None else
                   f'{per_identity} image of each identity per batch')
            raise ValueError(
                f'{", ".join(needing)} mines positives within a batch, but '
                f'the training sampler ({sampler}) gives {got}: most '
                'anchors would have no positive and the loss would not be '
                'the configured one. Use a P x K sampler, e.g. '
                "train_dataloader.sampler=dict(type='IdentitySampler', "
                'batch_size=..., num_instances=4) (a sampler of your own '
                'declares images_per_identity), or remove the loss.')
        check = getattr(loader.sampler, 'check_batch_size', None)
        if check is not None and loader.batch_size is not None:
            check(loader.batch_size)
        check_identities_per_batch(modules_of(model), loader)
        counts = accumulative_counts(getattr(runner, 'optim_wrapper', None))
        check_ema_with_accumulation(getattr(runner, 'hooks', []), counts)
        if loader.batch_size is not None:
            from mmengine.dist import get_world_size
            world = get_world_size()
            cfg = getattr(runner, 'cfg', None) or {}
            step = loader.batch_size * world
            mining = sorted({
                type(m).__name__
                for m in modules_of(model) if any(
                    getattr(m, need, False) for need in BATCH_NEEDS)
            })
            ks = set(counts.values())
            k = ks.pop() if len(ks) == 1 else None
            update = step * (k or 1)
            print_log(
                f'batch per step: {loader.batch_size} images per process x '
                f'{world} process{"es" if world > 1 else ""} = {step}' +
                accumulation_text(step, counts, mining, loader.batch_size) +
                '; ' + lr_text(
                    _config_lr(cfg), cfg.get('auto_scale_lr'), update,
                    _has_paramwise(cfg), k),
                logger='current')
        from mmreid.engine.runner.training_sets import check_identity_split
        val_loop = getattr(runner, 'val_loop', None)
        check_save_best_validates(
            getattr(runner, 'hooks', []), val_loop,
            getattr(runner, 'train_loop', None))
        if val_loop is not None:
            check_identity_split(runner, val_loop, 'validation')
            check_save_best(getattr(runner, 'hooks', []), val_loop)
            if isinstance(model, nn.Module):
                from mmengine.dist import get_world_size

                from mmreid.models.layers.mbn import (
                    check_untracked_in_one_process,
                    check_validated_in_one_process)
                check_validated_in_one_process(model, get_world_size(),
                                               getattr(runner, 'cfg', None))
                check_untracked_in_one_process(
                    model, get_world_size(), 'the validation of this training',
                    'It would be refused at the first validation, after '
                    'training: train with one process, or without '
                    'validation and test the checkpoint with one process')

    def after_val_epoch(self, runner, metrics=None) -> None:
        # Runs before CheckpointHook (priority VERY_LOW) reads the keys,
        # and so before LoggerHook (BELOW_NORMAL) logs them: a refused
        # key's validation is logged first, or its metrics would be lost.
        if not metrics:
            return
        hooks = getattr(runner, 'hooks', [])
        try:
            check_save_best_reported(hooks, metrics)
        except ValueError:
            for hook in hooks:
                if isinstance(hook, LoggerHook):
                    hook.after_val_epoch(runner, metrics)
            raise


def _config_lr(cfg) -> Optional[float]:
    """``optim_wrapper.optimizer.lr`` of a config, if it has one number."""
    optimizer = (cfg.get('optim_wrapper') or {}).get('optimizer') or {}
    lr = optimizer.get('lr') if isinstance(optimizer, dict) else None
    return float(lr) if isinstance(lr, (int, float)) else None


def _has_paramwise(cfg) -> bool:
    """Whether a config's optimizer has per-parameter settings
    (``optim_wrapper.paramwise_cfg``), which mmengine logs with their rates
    when it builds the optimizer."""
    wrapper = cfg.get('optim_wrapper') or {}
    return bool(isinstance(wrapper, dict) and wrapper.get('paramwise_cfg'))


def lr_text(lr: Optional[float],
            auto_scale_lr: Optional[dict],
            batch: int,
            paramwise: bool = False,
            accumulated: Optional[int] = 1) -> str:
    """How the run's learning rate relates to the config's.

    mmengine's ``Runner.scale_lr`` multiplies the optimizer's learning
    rates by ``batch / auto_scale_lr.base_batch_size`` when
    ``auto_scale_lr.enable`` is set (``--auto-scale-lr``), else leaves them.
    With gradient accumulation the batch is that of an update, and the
    flag is refused (``ReIDRunner.scale_lr``), so no scaling is offered.

    Args:
        lr (float, optional): ``optim_wrapper.optimizer.lr`` of the config;
            None where there is no single one (several optimizers).
        auto_scale_lr (dict, optional): The config's ``auto_scale_lr``.
        batch (int): Images per update over all processes: per step times
            ``accumulated``.
        paramwise (bool): The optimizer has per-parameter settings: when
            scaled, mmengine's ``paramwise_options`` lines, logged when it
            built the optimizer, show the rates before the scaling.
        accumulated (int, optional): ``optim_wrapper.accumulative_counts``;
            None where the optimizers accumulate different numbers of
            steps (no one update batch to compare with the base).

    Returns:
        str: E.g. ``lr 0.00035 as in the config (auto_scale_lr off;
        base_batch_size 32 = this batch)``.
    """
    auto_scale_lr = auto_scale_lr if isinstance(auto_scale_lr, dict) else {}
    base = auto_scale_lr.get('base_batch_size')
    shown = "the config's lr" if lr is None else f'lr {lr:.6g}'
    if accumulated is None:
        return (f'{shown} as in the config (the optimizers accumulate '
                'different numbers of steps: no one update batch to scale '
                'it with)')
    if auto_scale_lr.get('enable', False) and base:
        scaled = ("the config's lr" if lr is None else
                  f'lr {lr * batch / base:.6g} = the config\'s {lr:.6g}')
        groups = ('; every parameter group is scaled alike: the rates of '
                  "mmengine's paramwise_options lines above are before "
                  'this scaling' if paramwise else '')
        return (f'{scaled} x {batch} / {base} (auto_scale_lr on: this '
                f'batch / base_batch_size {base}{groups})')
    this = 'this batch' if accumulated == 1 else 'this update batch'
    if not base:
        return (f'{shown} as in the config (no auto_scale_lr.'
                'base_batch_size: not scaled with the batch)')
    if base == batch:
        return (f'{shown} as in the config (auto_scale_lr off; '
                f'base_batch_size {base} = {this})')
    if accumulated > 1:
        return (f'{shown} as in the config (auto_scale_lr off; '
                f'base_batch_size {base} != {this} {batch}: set the rate '
                'for it yourself, --auto-scale-lr refuses accumulation)')
    would = '' if lr is None else f' to {lr * batch / base:.6g}'
    return (f'{shown} as in the config (auto_scale_lr off; base_batch_size '
            f'{base} != this batch {batch}: --auto-scale-lr (auto_scale_lr.'
            f'enable=True) would scale it{would})')


def counted_pids(dataset) -> Optional[int]:
    """The number of distinct ``pid`` of a dataset's records; None where
    a record has none or the dataset cannot list its records."""
    get = getattr(dataset, 'get_data_info', None)
    if get is None:
        return None
    pids = set()
    for index in range(len(dataset)):
        info = get(index)
        if not isinstance(info, dict) or 'pid' not in info:
            return None
        pids.add(info['pid'])
    return len(pids)


#: What a loss declares about the batch it mines (see
#: :class:`TrainSetupCheckHook`).
BATCH_NEEDS = ('needs_positives', 'needs_negatives')


def modules_of(model) -> list:
    """The model's modules (none for a model without ``modules()``), and
    the objects they hold as plain attributes that declare
    :data:`BATCH_NEEDS`: a loss written as a callable class, not an
    ``nn.Module``, which ``modules()`` does not list."""
    modules = getattr(model, 'modules', None)
    if not callable(modules):
        return []
    found = list(modules())
    held = []
    for module in found:
        for value in vars(module).values():
            if not isinstance(value, nn.Module) and any(
                    getattr(type(value), need, False)
                    for need in BATCH_NEEDS) and not any(
                        value is other for other in held):
                held.append(value)
    return found + held


def check_identities_per_batch(modules, loader) -> None:
    """Refuse a batch of one identity for a loss that mines negatives.

    Args:
        modules (list[nn.Module]): The model's modules; those whose class
            sets ``needs_negatives`` mine negatives within the batch.
        loader: The training dataloader; its sampler's
            ``images_per_identity`` (K) and ``batch_size`` give
            ``P = batch_size / K`` identities per batch.

    Raises:
        ValueError: ``P < 2`` with such a loss; names P, K, the losses and
            the keys to change.
    """
    needing = sorted({
        type(m).__name__
        for m in modules if getattr(m, 'needs_negatives', False)
    })
    per_identity = getattr(loader.sampler, 'images_per_identity', None)
    batch_size = loader.batch_size
    if not needing or not per_identity or not batch_size:
        return
    num_ids = batch_size // per_identity
    if num_ids >= 2:
        return
    sampler = loader.sampler
    num_instances = getattr(sampler, 'num_instances', per_identity)
    scale = per_identity // num_instances if num_instances else 1
    k_text = (f'K = train_dataloader.sampler.num_instances {num_instances}'
              if scale == 1 else f'{per_identity} images = {scale} x '
              f'train_dataloader.sampler.num_instances {num_instances}')
    if (batch_size // scale) % 2 == 0:
        fix = ('train_dataloader.sampler.num_instances='
               f'{batch_size // 2 // scale}')
    else:
        fix = (f'train_dataloader.batch_size={2 * per_identity} '
               f'train_dataloader.sampler.batch_size={2 * per_identity}')
    raise ValueError(
        f'{", ".join(needing)} mines negatives within a batch, but a batch '
        f'holds P = {num_ids} identity: train_dataloader.batch_size '
        f'{batch_size} / {k_text} per identity '
        f'({type(sampler).__name__}). No anchor would have a negative, so '
        'the loss would be 0 or pull only, not the configured one. Make '
        f'batch_size / num_instances at least 2, e.g. --cfg-options {fix}, '
        'or remove the loss.')


SAVE_BEST = 'default_hooks.checkpoint.save_best'


def _save_best_keys(hooks) -> List[str]:
    """The ``save_best`` keys of the checkpoint hooks among ``hooks``."""
    return [
        key for hook in hooks
        if isinstance(hook, CheckpointHook) and hook.save_best
        for key in hook.key_indicators
    ]


def _selection_keys(hooks) -> List[Tuple[str, str]]:
    """``(setting, key)`` of every key a hook among ``hooks`` reads from
    the validation metrics: the ``save_best`` keys (setting
    :data:`SAVE_BEST`) and an ``EarlyStoppingHook``'s ``monitor``, which
    mmengine skipped with a Python warning when validation did not report
    it (``strict=False``), training the whole schedule."""
    keys = [(SAVE_BEST, key) for key in _save_best_keys(hooks)]
    return keys + [('EarlyStoppingHook.monitor', hook.monitor)
                   for hook in hooks if isinstance(hook, EarlyStoppingHook)]


def _save_best_rules(hooks) -> List[Tuple[str, Optional[str]]]:
    """``(key, rule)`` of every ``save_best`` key of the checkpoint hooks
    among ``hooks``, the rule as mmengine infers it where none is given
    (None for ``'auto'``)."""
    return [
        pair for hook in hooks
        if isinstance(hook, CheckpointHook) and hook.save_best
        for pair in zip(hook.key_indicators, hook.rules)
    ]


def metric_key_heads(val_loop) -> Optional[List[str]]:
    """The first parts (up to ``/``) that every validation key has.

    Args:
        val_loop: The built validation loop.

    Returns:
        list[str] | None: A multi-target loop's target names and its
        ``aggregate_prefix`` (``d3/mAP``, ``mean/mAP``); else the prefixes
        of the evaluator's metrics (``reid/mAP``, ``reid/mnet/mAP``).
        None where some key may have no prefix (a metric with
        ``prefix=None``) or the loop is of another kind.
    """
    targets = getattr(val_loop, 'targets', None)
    if targets is not None:
        heads = [target.name for target in targets]
        aggregate = getattr(val_loop, 'aggregate_prefix', None)
        return heads + ([aggregate] if aggregate else [])
    metrics = getattr(getattr(val_loop, 'evaluator', None), 'metrics', None)
    if not metrics:
        return None
    heads = [getattr(metric, 'prefix', None) for metric in metrics]
    return heads if all(heads) else None


def check_save_best_validates(hooks, val_loop, train_loop=None) -> None:
    """Refuse a ``save_best`` in a run that never validates.

    mmengine's ``CheckpointHook`` selects at each validation: without one
    it keeps no best checkpoint, without a word. (``tools/train.py
    --no-validate`` drops ``save_best`` itself, with a log line.)

    Args:
        hooks (list[Hook]): The runner's hooks.
        val_loop: The built validation loop; None without validation.
        train_loop: The built training loop; its ``val_begin`` (an epoch,
            or an iteration of an ``IterBasedTrainLoop``) is compared with
            its ``max_epochs`` (``max_iters``). mmengine's loops validate
            at the last epoch (iteration) whatever ``val_interval``.

    Raises:
        ValueError: A ``save_best`` key with no validation, or with a
            ``val_begin`` after the end of training; names both keys.
    """
    keys = _save_best_keys(hooks)
    if not keys:
        return
    drop = (f'or keep no best checkpoint with --cfg-options {SAVE_BEST}='
            'None (tools/train.py --no-validate drops it itself)')
    if val_loop is None:
        raise ValueError(
            f'{SAVE_BEST}={_shown_keys(keys)} selects the best checkpoint '
            'at each validation, but this run does not validate (val_cfg, '
            'val_dataloader or val_evaluator is None): it would keep no '
            'best checkpoint. Give the run a validation (val_cfg, '
            f'val_dataloader, val_evaluator), {drop}.')
    from mmengine.runner import IterBasedTrainLoop
    unit = 'iters' if isinstance(train_loop, IterBasedTrainLoop) else 'epochs'
    begin = getattr(train_loop, 'val_begin', None)
    end = getattr(train_loop, f'max_{unit}', None)
    if isinstance(begin, int) and isinstance(end, int) and begin > end:
        raise ValueError(
            f'{SAVE_BEST}={_shown_keys(keys)} selects the best checkpoint '
            f'at each validation, but train_cfg.val_begin={begin} comes '
            f'after the last {unit[:-1]} (train_cfg.max_{unit}={end}): the '
            'run never validates and would keep no best checkpoint. Set '
            f'train_cfg.val_begin to at most {end}, {drop}.')


def _shown_keys(keys: List[str]) -> str:
    """``'reid/mAP'`` for one key, ``['a', 'b']`` for several."""
    return repr(keys[0]) if len(keys) == 1 else repr(keys)


#: The last part of a key of mmreid's ReID metrics that is a score, higher
#: is better: ``R<k>``, ``mAP``, ``mINP``, ``TPR@FPR=<f>``.
_SCORE = re.compile(r'R\d+|mAP|mINP|TPR@FPR=.+')


def unselectable_key(key: str) -> Optional[str]:
    """Why ``key`` is no score to select the best checkpoint by.

    Args:
        key (str): A ``save_best`` key, e.g. ``'d3/split0/mAP'``.

    Returns:
        str | None: The reason for a count (``num_*``), a spread
        (``*_std``) or one partition's key (``split<i>/``,
        ``trial<i>/``), with the key to select by instead; None for
        another key.
    """
    parts = key.split('/')
    name = parts[-1]
    partitions = [
        part for part in parts[:-1] if PARTITION_NAME.fullmatch(part)
    ]
    if partitions:
        whole = '/'.join(p for p in parts if p not in partitions)
        return (f'it is the score of one {partitions[0].rstrip("0123456789")}'
                f' ({partitions[0]}) of the protocol, whose number is the '
                f'mean over them: select by {whole!r}')
    if name.startswith('num_'):
        score = '/'.join(parts[:-1] + ['mAP'])
        return f'it is a count, not a score: select by a score, e.g. {score!r}'
    if name.endswith('_std'):
        return ('it is the standard deviation over the splits or trials, '
                f'not a score: select by {key[:-len("_std")]!r}')
    return None


def check_save_best(hooks, val_loop) -> None:
    """Refuse a ``save_best`` that surely names no validation key, or
    no score to select by.

    Args:
        hooks (list[Hook]): The runner's hooks.
        val_loop: The built validation loop.

    Raises:
        ValueError: ``save_best='auto'``; a key whose first part is none
            of :func:`metric_key_heads` (names the valid prefixes; an
            ``EarlyStoppingHook`` monitor too); a key
            :func:`unselectable_key` refuses; ``rule='less'`` (also as
            mmengine infers it) for a score of mmreid's metrics
            (``R<k>``, ``mAP``, ``mINP``, ``TPR@FPR=<f>``), all higher is
            better.
    """
    heads = metric_key_heads(val_loop)
    shown = 'reid/mAP' if heads is None else f'{heads[0]}/mAP'
    for setting, key in _selection_keys(hooks):
        if key == 'auto' and setting == SAVE_BEST:
            raise ValueError(
                f"{SAVE_BEST}='auto' selects by the first key validation "
                'reports (reid/R1 for ReIDMetric), which depends on the '
                'metrics and their order and whose rule mmengine cannot '
                f"infer; name the key and its rule, e.g. save_best='{shown}'"
                ", rule='greater'")
        head, slash, _ = key.partition('/')
        if heads is not None and not (slash and head in heads):
            raise ValueError(
                f'{setting}={key!r} is not a key validation reports: '
                f'every key of this validation ({type(val_loop).__name__}) '
                'begins with '
                f'{" or ".join(repr(head + "/") for head in heads)}, e.g. '
                f'{shown!r}')
    for key, rule in _save_best_rules(hooks):
        reason = unselectable_key(key)
        if reason is not None:
            raise ValueError(
                f'{SAVE_BEST}={key!r} cannot select the best checkpoint: '
                f'{reason}.')
        if rule == 'less' and _SCORE.fullmatch(key.split('/')[-1]):
            raise ValueError(
                f"{SAVE_BEST}={key!r} with rule='less' would keep the epoch "
                f'of the lowest {key.split("/")[-1]}, the worst: every score '
                'of mmreid\'s metrics (R<k>, mAP, mINP, TPR@FPR) is higher '
                "is better. Set default_hooks.checkpoint.rule='greater'.")


def check_save_best_reported(hooks, metrics: Dict[str, Any]) -> None:
    """Refuse a ``save_best`` key, or an ``EarlyStoppingHook`` monitor,
    that validation did not report.

    Args:
        hooks (list[Hook]): The runner's hooks.
        metrics (dict): The metrics of a validation.

    Raises:
        ValueError: Naming the setting and the key and listing the
            reported ones.
    """
    for setting, key in _selection_keys(hooks):
        if key not in metrics and (key, setting) != ('auto', SAVE_BEST):
            raise ValueError(
                f'{setting}={key!r} is not a key validation reported; '
                f'it reported: {", ".join(sorted(metrics))}')


#: The arguments mmengine's ``CheckpointHook`` gives ``save_checkpoint``
#: itself (mmengine 0.10.7); its other ``**kwargs`` come after them.
_SAVE_CHECKPOINT_GIVEN = frozenset({
    'self', 'out_dir', 'filename', 'file_client_args', 'save_optimizer',
    'save_param_scheduler', 'meta', 'by_epoch', 'backend_args'
})


def _hook_key(cfg, argument: str) -> str:
    """The config key of the checkpoint hook that gives ``argument``:
    ``default_hooks.checkpoint`` or ``custom_hooks.<i>``."""
    cfg = cfg or {}
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if isinstance(checkpoint, dict) and argument in checkpoint:
        return 'default_hooks.checkpoint'
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if isinstance(hook, dict) and argument in hook:
            return f'custom_hooks.{i}'
    return 'the checkpoint hook'


def check_checkpoint_args(hooks, save_checkpoint, cfg=None) -> None:
    """Refuse a ``CheckpointHook`` argument that neither the hook nor
    ``save_checkpoint`` takes, and ``published_keys`` (see below).

    mmengine's ``CheckpointHook`` takes ``**kwargs`` and passes them to
    ``runner.save_checkpoint`` at every save: ``interval=8, intervall=1``
    built, and the run failed with "save_checkpoint() got an unexpected
    keyword argument 'intervall'" at its first save, after a whole epoch,
    without a checkpoint.

    Args:
        hooks (list[Hook]): The runner's hooks.
        save_checkpoint (Callable): The runner's ``save_checkpoint``.
        cfg (Config | dict, optional): The run's config, to name the key.

    Raises:
        ValueError: Naming the key, the argument, the closest arguments of
            the hook and those ``save_checkpoint`` takes. (Not a
            ``TypeError``: mmengine appends the hook's repr to a
            ``TypeError`` a hook raises.)
    """
    import inspect
    for hook in hooks:
        if isinstance(hook, CheckpointHook) and getattr(
                hook, 'published_keys', None):
            # mmengine writes it in place after training and names it by
            # the sha256 of its pickle, not of the file mmreid's loader
            # checks the hash prefix against.
            raise ValueError(
                f'{_hook_key(cfg, "published_keys")}.published_keys='
                f'{list(hook.published_keys)}: mmengine publishes the last '
                'checkpoint by writing the file in place (a failed write '
                'leaves a cut file under a release name) and names it by '
                'the hash of its pickle, not of the file, which mmreid\'s '
                'download check refuses. Leave published_keys out and '
                'publish with python tools/model_converters/publish_model.py'
                ' CHECKPOINT OUT.pth')
    given = [(hook, argument) for hook in hooks
             if isinstance(hook, CheckpointHook) for argument in hook.args]
    if not given:
        return
    params = inspect.signature(save_checkpoint).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    taken = [name for name in params if name not in _SAVE_CHECKPOINT_GIVEN]
    owner = getattr(save_checkpoint, '__qualname__', 'save_checkpoint')
    for hook, argument in given:
        if argument not in taken:
            raise ValueError(
                _checkpoint_arg_message(hook, argument, owner, taken, cfg))


def _checkpoint_arg_message(hook, argument: str, owner: str, taken: List[str],
                            cfg) -> str:
    """The error of :func:`check_checkpoint_args` for ``argument`` of
    ``hook``; ``owner`` is the ``save_checkpoint`` the hook passes it to,
    which takes ``taken`` besides the arguments the hook gives it."""
    import inspect

    from mmreid.utils.registry_suggestions import argument_message
    message = argument_message(
        _hook_key(cfg, argument), hook.args, argument, type(hook))
    own = [
        name for name in inspect.signature(type(hook)).parameters
        if name not in ('self', 'args', 'kwargs')
    ]
    more = f'only {", ".join(taken)}' if taken else 'none'
    return (f'{message}\n{type(hook).__name__} takes {", ".join(own)}; it '
            f'passes other arguments to {owner}, which takes {more} besides '
            'those the hook gives it: the run would fail at its first save, '
            'without a checkpoint.')


def check_one_label_space(dataset) -> None:
    """Refuse a training set that concatenates ReID datasets with
    mmengine's ``ConcatDataset``.

    Each dataset labels its persons 0..n-1, so the concatenation trains
    person 0 of one and person 0 of another as one class, and its
    ``num_pids`` is the first dataset's (the class-count check above then
    passes). :class:`~mmreid.datasets.ConcatReIDDataset` gives every
    source its own label range.

    Args:
        dataset: The built training set (wrappers such as
            ``RepeatDataset`` are looked through).

    Raises:
        ValueError: Names the datasets and ``ConcatReIDDataset``.
    """
    from mmengine.dataset import ConcatDataset

    from mmreid.datasets.base_reid_dataset import BaseReIDDataset
    pending = [dataset]
    while pending:
        current = pending.pop()
        parts = list(getattr(current, 'datasets', None) or [])
        inner = getattr(current, 'dataset', None)
        if inner is not None:
            pending.append(inner)
        pending.extend(parts)
        if not isinstance(current, ConcatDataset):
            continue
        named = set()
        for part in parts:
            if isinstance(part, BaseReIDDataset):
                named.add((type(part).__name__, part.data_root,
                           getattr(part, 'split', None)))
        if len(named) > 1:
            shown = ', '.join(f'{n} ({root!r}, {split})'
                              for n, root, split in sorted(named, key=str))
            raise ValueError(
                f'the training set is an mmengine ConcatDataset of {shown}: '
                'each labels its persons from 0, so persons of different '
                'datasets would train as one class (and num_pids is the '
                "first dataset's). Use dict(type='ConcatReIDDataset', "
                'datasets=[...]), which gives each source its own labels')


def check_combine_all(cfg, dataset) -> None:
    """Refuse a top-level ``combine_all`` that the training set does not
    follow (see :class:`TrainSetupCheckHook`).

    Args:
        cfg (Config | dict | None): The run's config; nothing is checked
            without a boolean top-level ``combine_all``.
        dataset: The built training set; its ``metainfo['sources']``
            (``ConcatReIDDataset``) tells which sources are combined.

    Raises:
        ValueError: ``combine_all`` is True and no source trains on its
            test split, or False and some source does; names the sources
            and the fix.
    """
    wanted = cfg.get('combine_all') if cfg is not None else None
    if not isinstance(wanted, bool):
        return
    metainfo = getattr(dataset, 'metainfo', None) or {}
    sources = metainfo.get('sources') or []
    combined = [s.get('name') for s in sources if s.get('split_used') == 'all']
    used = ', '.join(f"{s.get('name')} ({s.get('split_used')})"
                     for s in sources) or metainfo.get('dataset_name', '?')
    if wanted and not combined:
        raise ValueError(
            f'combine_all = True (top level of the config) but no source of '
            f'the training set trains on its test split: {used}. mmengine '
            'does not re-evaluate a base config with the leaf\'s '
            'variables, so the base\'s source list stayed Protocol-2. Set '
            'the sources and the classifier as well, as configs/gmn/*_p3.py '
            'do: train_dataloader = dict(dataset=dict(datasets='
            '{{_base_.sources_p3}})) and model = dict(head=dict('
            'num_classes={{_base_.num_classes_p3}})).')
    if not wanted and combined:
        raise ValueError(
            f'combine_all = False (top level of the config) but '
            f'{", ".join(combined)} also train on their test split '
            f'(split_used=\'all\'): {used}. Set combine_all = True for a '
            'Protocol-3 ("combine all") run, or train on the train splits '
            'only (datasets={{_base_.sources_p2}}, num_classes='
            '{{_base_.num_classes_p2}}).')
