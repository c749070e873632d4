"""Validation and test loops that hand the model's distance to the metrics.

mmengine's ``ValLoop``/``TestLoop`` never ask the model how its features
are compared, so a metric would rank a learned matcher's features (GMN's
M-Net) with its own Euclidean distance. mmreid's loops apply one contract
(:func:`hand_model_scorers`): right before the metrics compute, every
metric gets the model's :meth:`~mmreid.models.ReIDModel.scorers`, and a
metric that cannot take them is an error, raised before any feature is
extracted (:func:`check_model_distance`). ``tools/train.py`` and
``tools/test.py`` use these loops whenever ``val_cfg``/``test_cfg`` name
no loop type, so no config line is needed; the multi-target loops apply
the same contract per target.

They also evaluate every sample: a dataloader that drops its last batch
(``drop_last``) or evaluates only its first batches
(``num_batch_per_epoch``) is refused when the loop is built
(:func:`check_keeps_every_sample`), and the metrics compute only once the
samples handed to them, over all processes, cover the dataset
(:func:`check_every_sample_reached`; a sampler that leaves samples out,
or repeats some in place of others).
"""
import logging
from contextlib import nullcontext
from numbers import Integral
from typing import (ContextManager, Dict, List, Mapping, Optional, Sequence,
                    Union)

import torch
from mmengine.dataset import BaseDataset, InfiniteSampler
from mmengine.dist import all_reduce, get_world_size
from mmengine.evaluator import Evaluator
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.amp import autocast
from mmengine.runner.loops import (TestLoop, ValLoop, _parse_losses,
                                   _update_losses)
from torch.utils.data import DataLoader

from mmreid.models.layers.mbn import (batch_statistics_layers,
                                      check_untracked_in_one_process,
                                      running_statistics_fix,
                                      untracked_batch_norms, untracked_named)
from mmreid.models.reiders.reid_model import Scorer, get_model_scorers
from mmreid.registry import DATA_SAMPLERS, LOOPS
from mmreid.utils.config.runtime import check_loop_amp_device
from .eval_dataloader_checks import slicing_option
from .training_sets import check_identity_split


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def scorers_handed_by(model, consumer: str) -> ContextManager:
    """The context in which ``consumer`` hands the model's scorers over.

    Models with their own distance refuse ``val_step``/``test_step``
    outside it (see :meth:`~mmreid.models.ReIDModel.scorers_handed_to`);
    other models (without the method) get a no-op context.
    """
    enter = getattr(_unwrap(model), 'scorers_handed_to', None)
    return enter(consumer) if callable(enter) else nullcontext()


def _ranks_as(distance: str, normalize: bool) -> Optional[str]:
    """The ranking a feature distance gives: ``'cosine'`` for cosine or
    for (squared) Euclidean on L2-normalised features (a monotone function
    of it), ``'euclidean'`` for (squared) Euclidean on raw features."""
    if distance == 'cosine':
        return 'cosine'
    if distance in ('euclidean', 'sqeuclidean'):
        return 'cosine' if normalize else 'euclidean'
    return None


def check_takes_scorers(model, metrics: List, scorers: Optional[dict],
                        consumer: str) -> None:
    """Refuse a metric without ``set_scorers`` for a model whose own
    distance (``scorers``) it would have to take.

    Args:
        model (nn.Module): The runner's model, possibly wrapped.
        metrics (list): The evaluator's metrics.
        scorers (dict | None): The model's scorers (None or empty: the
            model has no distance of its own, nothing to check).
        consumer (str): Who evaluates, for messages.

    Raises:
        TypeError: Naming the metric, the model and its modes.
    """
    if not scorers:
        return
    for metric in metrics:
        if not callable(getattr(metric, 'set_scorers', None)):
            raise TypeError(
                f'{consumer}: {type(metric).__name__} cannot take the '
                f'distance of {type(_unwrap(model)).__name__} (modes '
                f'{list(scorers)}): a metric that evaluates a model '
                'with its own distance needs set_scorers(scorers, '
                'primary), as ReIDMetric has; without it, it would '
                'rank with another distance')


def check_model_distance(model, evaluator: Evaluator, consumer: str) -> None:
    """Refuse metrics that rank otherwise than the model's ``distance``.

    A plain ``ReIDModel`` configures its feature distance twice: the
    model's ``distance`` (``init_model``/``rank_gallery``,
    ``RankedListHook``) and each metric's ``distance``/``normalize``
    (``tools/test.py``'s numbers). A model whose ``distance`` is not the
    default ``'euclidean'`` (AGW's ``'cosine'``, or a user's edit) must be
    ranked that way by every metric: otherwise its setting was silently
    ignored by the evaluation and the reported R1 is not
    ``rank_gallery``'s. With the default, each metric (each target of a
    multi-target loop) ranks by its own configured distance. Models with
    their own scorers (GMN) hand them over instead
    (:func:`hand_model_scorers`).

    Each metric is checked against the model's scorers here too: it must
    take them (``set_scorers``, see :func:`check_takes_scorers`) and its
    options must agree with them (``metric.check_scorers``, e.g.
    ``normalize`` or ``rerank`` with GMN's M-Net), so the loops refuse
    them before any extraction.

    Raises:
        TypeError: The model has its own distance and a metric has no
            ``set_scorers`` to take it.
        ValueError: The two settings rank differently, or a metric's
            option contradicts the model's scorers; names both.
    """
    inner = _unwrap(model)
    scorers = get_model_scorers(model)
    metrics = list(getattr(evaluator, 'metrics', None) or [])
    check_takes_scorers(model, metrics, scorers, consumer)
    for metric in metrics:
        check_scorers = getattr(metric, 'check_scorers', None)
        if callable(check_scorers):
            try:
                check_scorers(scorers)
            except ValueError as error:
                raise ValueError(f'{consumer}: {error}') from error
    if scorers:
        return
    own = getattr(inner, 'distance_type', None)
    if not isinstance(own, str) or own == 'euclidean' \
            or _ranks_as(own, False) is None:
        return
    for metric in getattr(evaluator, 'metrics', None) or []:
        distance = getattr(metric, 'distance', None)
        if not isinstance(distance, str) \
                or getattr(metric, 'scorer', None) is not None:
            continue
        normalize = bool(getattr(metric, 'normalize', False))
        theirs = _ranks_as(distance, normalize)
        if theirs is None or theirs == _ranks_as(own, False):
            continue
        raise ValueError(
            f'{consumer}: model.distance={own!r} but '
            f'{type(metric).__name__}(distance={distance!r}, '
            f'normalize={normalize}) ranks by {theirs} distance, so the '
            f'evaluation would ignore the model\'s setting (init_model/'
            f'rank_gallery rank with model.distance). Set the same distance '
            f'in both: model.distance={distance!r}, or the evaluator\'s '
            f'distance={own!r} (for a multi-target loop, on each '
            f'target\'s evaluator).')


def check_tracked_statistics(model, consumer: str) -> None:
    """Refuse to evaluate a model whose batch norm layers keep no running
    statistics in several processes
    (:func:`~mmreid.models.layers.mbn.check_untracked_in_one_process`).

    Args:
        model (nn.Module): The runner's model, possibly wrapped.
        consumer (str): The loop, for the message.
    """
    check_untracked_in_one_process(_unwrap(model), get_world_size(),
                                   consumer)


def check_trial_galleries(model,
                          evaluator: Evaluator,
                          consumer: str,
                          cfg=None) -> None:
    """Refuse a trial protocol for a model whose test features depend on
    the batch.

    SYSU-MM01's and LLCM's metrics (:class:`~mmreid.evaluation.metrics.
    TrialGalleryMetric`) draw each trial's gallery out of one pool whose
    features are extracted once, in the test dataloader's batches of pool
    images, and index them per trial. With MBN's ``eval_stats='batch'``
    (:func:`~mmreid.models.layers.mbn.batch_statistics_layers`) or a batch
    norm without running statistics (:func:`~mmreid.models.layers.mbn.
    untracked_batch_norms`), a gallery image's feature then depends on the
    pool images that shared its batch, most of them in no trial's gallery:
    the numbers would be of no defined protocol (the MBN spec, 5.3:
    indexing pool features is valid only with running statistics).

    Args:
        model (nn.Module): The runner's model, possibly wrapped.
        evaluator (Evaluator): The loop's (or a target's) evaluator.
        consumer (str): The loop, for the message.
        cfg (Config | dict, optional): The run's config, to name the keys
            to change.

    Raises:
        ValueError: Names the metric, the layers and the fix.
    """
    from mmreid.evaluation.metrics.trial_gallery_metric import \
        TrialGalleryMetric
    trials = [
        type(m).__name__ for m in getattr(evaluator, 'metrics', None) or []
        if isinstance(m, TrialGalleryMetric)
    ]
    if not trials:
        return
    inner = _unwrap(model)
    batch_mbn = batch_statistics_layers(inner)
    untracked = untracked_batch_norms(inner)
    if batch_mbn:
        more = f' and {len(batch_mbn) - 1} more' if len(batch_mbn) > 1 \
            else ''
        what = (f"MBN layer {batch_mbn[0]!r}{more} normalises each test "
                "batch with its own statistics (eval_stats='batch')")
        fix = (f"eval_stats='modality' ({running_statistics_fix(cfg or {})})"
               if cfg is not None else "eval_stats='modality'")
    elif untracked:
        what = (f'{untracked_named(untracked)} (it normalises each test '
                'batch with its own statistics)')
        fix = 'a model whose batch norm layers keep running statistics'
    else:
        return
    raise ValueError(
        f"{consumer}: {trials[0]} draws each trial's gallery out of one "
        'pool whose features are extracted once, in the test dataloader\'s '
        f'batches, and indexes them per trial; the model\'s {what}: a '
        'gallery image\'s feature depends on the pool images that shared '
        'its batch, not on the trial\'s gallery, and the numbers would be '
        'of no defined protocol (pool features may be indexed only with '
        f'running statistics). Use {fix}')


def share_rank0_buffers(model) -> bool:
    """Give every process rank 0's buffers before a validation.

    DDP keeps the parameters equal across processes but not the buffers
    mmreid trains with ``broadcast_buffers=False``: each rank updates its
    BN (and MBN) running statistics from its own batches. Features that
    each rank extracts with its own statistics come from as many models,
    none of them the one rank 0 checkpoints, so the validation numbers
    (and ``save_best``) would describe no saved model. Broadcasting rank
    0's buffers makes validation score the checkpointed model; training
    is unaffected (BN normalises training batches with their own
    statistics). The loops call it after the ``before_val_epoch`` hooks,
    which may swap other weights in: mmengine's ``EMAHook`` swaps in each
    rank's own averages, buffers included with ``update_buffers=True``,
    and rank 0 saves its own.

    Args:
        model (nn.Module): The runner's model, possibly wrapped.

    Returns:
        bool: Whether buffers were broadcast (more than one process).
    """
    from mmengine.dist import broadcast, get_world_size
    if get_world_size() < 2:
        return False
    for buffer in _unwrap(model).buffers():
        broadcast(buffer, src=0)
    return True


def _shown(dataset) -> str:
    """A dataset's class and ``data_root``, for messages."""
    shown = type(dataset).__name__
    root = getattr(dataset, 'data_root', None)
    if root is not None:
        shown += f'(data_root={root!r})'
    return shown


def check_not_empty(dataset, where: str) -> None:
    """Refuse to evaluate a dataset without samples.

    mmengine's ``DefaultSampler`` divides by the dataset length, so an
    empty set (e.g. ``indices=0``) failed with ``ZeroDivisionError`` when
    its turn came, after the other targets were extracted.

    Raises:
        ValueError: Naming ``where`` and the dataset.
    """
    if len(dataset) == 0:
        raise ValueError(f'{where}: the dataset {_shown(dataset)} has 0 '
                         'samples, nothing to evaluate; check its data_root, '
                         'split, indices and filters')


def _endless_sampler(dataloader, key: str) -> Optional[str]:
    """``<key>.sampler`` and its type where it is an endless sampler
    (mmengine's ``InfiniteSampler`` or a subclass), else None.

    Args:
        dataloader (DataLoader | dict): A dataloader or its config.
        key (str): The dataloader's config key.
    """
    if isinstance(dataloader, dict):
        sampler = dataloader.get('sampler')
        kind = sampler.get('type') if isinstance(sampler, dict) else sampler
        if isinstance(kind, str):
            kind = DATA_SAMPLERS.get(kind)
    else:
        kind = type(getattr(dataloader, 'sampler', None))
    if isinstance(kind, type) and issubclass(kind, InfiniteSampler):
        return f'{key}.sampler (type {kind.__name__})'
    return None


def _drops_last(dataloader, key: str) -> Optional[str]:
    """The key below which ``dataloader`` drops its last batch, or None.

    Args:
        dataloader (DataLoader | dict): A dataloader or its config.
        key (str): The dataloader's config key.

    Returns:
        str | None: ``<key>.drop_last`` or ``<key>.batch_sampler.drop_last``
        where that option is true.
    """
    if isinstance(dataloader, dict):
        batch_sampler = dataloader.get('batch_sampler')
        drop = dataloader.get('drop_last', False)
        drop_batch = isinstance(batch_sampler, dict) and batch_sampler.get(
            'drop_last', False)
    else:
        batch_sampler = getattr(dataloader, 'batch_sampler', None)
        drop = getattr(dataloader, 'drop_last', False)
        drop_batch = getattr(batch_sampler, 'drop_last', False)
    if drop:
        return f'{key}.drop_last'
    if drop_batch:
        return f'{key}.batch_sampler.drop_last'
    return None


def check_keeps_every_sample(dataloader,
                             key: str,
                             target: Optional[str] = None) -> None:
    """Refuse an evaluation dataloader that drops its last batch, that
    evaluates only its first batches (``num_batch_per_epoch``), or whose
    sampler never ends.

    With ``drop_last=True`` each process leaves out its last incomplete
    batch: the metrics rank a query and gallery without those samples, and
    the numbers depend on ``batch_size`` and on the number of processes
    (71 images in batches of 3: one process drops 2, two processes none).

    Args:
        dataloader (DataLoader | dict): The dataloader or its config.
        key (str): Its config key, e.g. ``'test_dataloader'`` or
            ``'test_cfg.targets.4.dataloader'``.
        target (str, optional): The target's name, for the message.

    Raises:
        ValueError: Naming the ``drop_last``, ``num_batch_per_epoch`` or
            ``sampler`` key and its fix.
    """
    of = '' if target is None else f' (target {target!r})'
    endless = _endless_sampler(dataloader, key)
    if endless is not None:
        raise ValueError(
            f'{endless}{of}: an evaluation dataloader must hand every '
            'sample to the metrics once, but this sampler never ends, so '
            'the loop would extract features forever. Use '
            "dict(type='DefaultSampler', shuffle=False)")
    sliced = slicing_option(dataloader, key)
    if sliced is not None:
        raise ValueError(
            f'{sliced}{of}: an evaluation dataloader must hand every sample '
            'to the metrics, but num_batch_per_epoch evaluates only that '
            'many batches of the dataset, so the metrics would rank a part '
            f'of the query and gallery. Leave {sliced} out (a quick test '
            'takes a smaller dataset instead).')
    option = _drops_last(dataloader, key)
    if option is None:
        return
    raise ValueError(
        f'{option}=True{of}: an evaluation dataloader must hand every '
        'sample to the metrics, but drop_last leaves out the last '
        'incomplete batch of each process, so the query and gallery would '
        'miss samples and the numbers would depend on the batch size and '
        f'the number of processes. Set {option}=False (or leave it out).')


def handed_indices(outputs: Sequence) -> List[Optional[int]]:
    """The ``sample_idx`` of each data sample handed to the evaluator.

    Args:
        outputs (Sequence): The model's outputs of one batch (data samples,
            or dicts).

    Returns:
        list[int | None]: One per output; None where it carries no
        integer ``sample_idx``.
    """
    indices = []
    for output in outputs:
        meta = output if isinstance(output, Mapping) else getattr(
            output, 'metainfo', {})
        index = meta.get('sample_idx') if isinstance(meta, Mapping) else None
        usable = isinstance(index, Integral) and not isinstance(index, bool)
        indices.append(int(index) if usable else None)
    return indices


def _missing_samples(handed: Sequence[Optional[int]], size: int,
                     world: int) -> Optional[List[int]]:
    """The samples of a dataset no process handed to the evaluator.

    Each process marks the indices it handed in a (size + 1,) tensor whose
    last entry says it could not (an output without ``sample_idx``, or
    one out of range); one ``max`` reduction gives every process the same
    answer, so all take the same branch.

    Returns:
        list[int] | None: The missing indices, ascending; None where a
        process could not tell.
    """
    marks = torch.zeros(size + 1, dtype=torch.int32)
    if all(i is not None and 0 <= i < size for i in handed):
        marks[torch.tensor(handed, dtype=torch.int64)] = 1
    else:
        marks[size] = 1
    if world > 1:
        all_reduce(marks, op='max')
    if marks[size]:
        return None
    return torch.nonzero(marks[:size] == 0).flatten().tolist()


def check_every_sample_reached(handed: Sequence[Optional[int]], dataset,
                               where: str) -> None:
    """Refuse to compute metrics without every sample of ``dataset``.

    Each process lists the samples it handed to the evaluator
    (``handed``, their ``sample_idx``). mmengine's
    ``Evaluator.evaluate(len(dataset))`` collects the results of all
    processes in sampling order and keeps the first ``len(dataset)``
    (``collect_results``): that drops the padding a distributed sampler
    appends so that every process has as many samples (at most one per
    process beyond the first), and nothing else. So every sample reaches
    the metrics once when the count over processes is at least
    ``len(dataset)`` and at most that padding more (in one process,
    exactly ``len(dataset)``), and, for a dataset whose ``sample_idx`` is
    the index (mmengine's ``BaseDataset``, which every mmreid dataset
    is), when every index was handed by some process: a sampler that
    repeats one sample in place of another has the right count, and the
    metric would drop the repeat and rank without the other.

    Args:
        handed (Sequence[int | None]): The ``sample_idx`` of each sample
            this process handed to the evaluator (:func:`handed_indices`).
        dataset (Sized): The dataset evaluated.
        where (str): The loop (and target), for the message.

    Raises:
        ValueError: Naming ``where``, the dataset, both counts (or the
            first missing samples) and the likely cause.
    """
    world = get_world_size()
    total = torch.tensor(len(handed), dtype=torch.int64)
    if world > 1:
        all_reduce(total, op='sum')
    total = int(total)
    size = len(dataset)
    by = f' by {world} processes' if world > 1 else ''
    if total < size:
        raise ValueError(
            f'{where}: {total} of the {size} samples of {_shown(dataset)} '
            f'reached the metrics (handed to the evaluator{by}); numbers '
            "computed without the others would not be this dataset's. "
            'Likely cause: a sampler or batch sampler that leaves samples '
            'out (drop_last=True, a custom sampler); evaluate with one that '
            "yields every index, e.g. dict(type='DefaultSampler', "
            'shuffle=False)')
    if total > size + world - 1:
        padding = (f' (at most {size + world - 1} with the padding of '
                   f'{world} processes)' if world > 1 else '')
        raise ValueError(
            f'{where}: {total} samples were handed to the evaluator{by} for '
            f'the {size} samples of {_shown(dataset)}{padding}; mmengine '
            f'keeps the first {size}, so some samples would count twice and '
            'others not at all. Likely cause: a sampler that repeats '
            "indices; evaluate with dict(type='DefaultSampler', "
            'shuffle=False)')
    if not isinstance(dataset, BaseDataset):
        return
    missing = _missing_samples(handed, size, world)
    if missing:
        shown = ', '.join(map(str, missing[:5]))
        more = f' and {len(missing) - 5} more' if len(missing) > 5 else ''
        raise ValueError(
            f'{where}: {total} samples were handed to the evaluator{by} for '
            f'the {size} samples of {_shown(dataset)}, but not sample_idx '
            f'{shown}{more}: others were handed twice in their place, and '
            'the metrics would count each sample once and rank without the '
            'missing ones. Likely cause: a sampler that repeats some '
            "indices and skips others; evaluate with dict(type='"
            "DefaultSampler', shuffle=False)")


def hand_model_scorers(model, evaluator: Evaluator,
                       consumer: str) -> Optional[Dict[str, Scorer]]:
    """Give every metric of ``evaluator`` the model's own distances.

    Call it after the features are extracted and before
    ``evaluator.evaluate``: the scorers are built from the weights as they
    are then (an EMA swap in ``before_val_epoch`` included). A model
    without its own distance resets the metrics to their configured
    feature distance (``set_scorers(None)``), so a metric reused across
    models never keeps stale scorers.

    Args:
        model (nn.Module): The runner's model, possibly wrapped.
        evaluator (Evaluator): The evaluator about to compute.
        consumer (str): Who hands them over, for messages.

    Returns:
        dict[str, Callable] | None: The scorers handed over, primary first.

    Raises:
        TypeError: The model has its own distance and a metric has no
            ``set_scorers(scorers, primary)`` to take it.
        ValueError: A plain model's ``distance`` ranks otherwise than a
            metric's (:func:`check_model_distance`).
    """
    scorers = get_model_scorers(model)
    check_model_distance(model, evaluator, consumer)
    primary = next(iter(scorers)) if scorers else None
    metrics = list(getattr(evaluator, 'metrics', None) or [])
    for metric in metrics:
        set_scorers = getattr(metric, 'set_scorers', None)
        if callable(set_scorers):
            set_scorers(scorers, primary=primary)
    if scorers and metrics:
        print_log(
            f'{consumer}: {len(metrics)} metric(s) score with the model\'s '
            f'distance modes {list(scorers)} (primary {primary!r})',
            logger='current',
            level=logging.INFO)
    return scorers


def check_metric_results(evaluator: Evaluator) -> None:
    """Make every metric of ``evaluator`` refuse a ``compute_metrics``
    that returns no dict.

    mmengine's ``BaseMetric.evaluate`` reads the result with
    ``.items()``: a metric of one's own whose ``compute_metrics`` returns
    nothing (a skeleton with ``...`` bodies) stopped with "'NoneType'
    object has no attribute 'items'", naming no metric. Each metric's
    ``compute_metrics`` is wrapped (once) so that such a result raises a
    ``TypeError`` naming the metric's class and what it returned.

    Args:
        evaluator (Evaluator): The evaluator about to compute.
    """
    for metric in getattr(evaluator, 'metrics', None) or []:
        compute = getattr(metric, 'compute_metrics', None)
        if not callable(compute) or getattr(compute, '_mmreid_checked', False):
            continue
        metric.compute_metrics = _dict_checked(compute, type(metric))


def _dict_checked(compute, cls: type):
    """``compute`` (a bound ``compute_metrics`` of a ``cls``) refusing a
    result that is not a dict (see :func:`check_metric_results`)."""

    def checked(results):
        metrics = compute(results)
        if not isinstance(metrics, Mapping):
            raise TypeError(
                f'{cls.__module__}.{cls.__qualname__}.compute_metrics '
                f'returned {type(metrics).__name__} ({metrics!r:.80}); a '
                'metric returns a dict of its values by name, e.g. '
                "dict(acc=0.9), which the evaluator logs under the metric's "
                'prefix (see docs/customize.md)')
        return metrics

    checked._mmreid_checked = True
    return checked


def evaluate_batch(loop, phase: str, losses: dict, idx: int,
                   data_batch: Sequence[dict]) -> List[Optional[int]]:
    """mmengine's ``ValLoop.run_iter``/``TestLoop.run_iter`` for ``loop``:
    the hooks, the model's ``<phase>_step`` (under ``loop.fp16``
    autocast), the losses it returns recorded in ``losses`` (in place) and
    the rest handed to ``loop.evaluator``.

    Args:
        loop: A val/test loop (``runner``, ``fp16``, ``evaluator``).
        phase (str): ``'val'`` or ``'test'``.
        losses (dict): The loop's loss buffers.
        idx (int): Index of the batch in the dataloader.
        data_batch (Sequence[dict]): A batch from the dataloader.

    Returns:
        list[int | None]: The ``sample_idx`` of the samples handed to the
        evaluator (the loops collect them, see
        :func:`check_every_sample_reached`).
    """
    loop.runner.call_hook(
        f'before_{phase}_iter', batch_idx=idx, data_batch=data_batch)
    step = getattr(loop.runner.model, f'{phase}_step')
    with autocast(enabled=loop.fp16):
        outputs = step(data_batch)
    outputs, _ = _update_losses(outputs, losses)
    loop.evaluator.process(data_samples=outputs, data_batch=data_batch)
    loop.runner.call_hook(
        f'after_{phase}_iter',
        batch_idx=idx,
        data_batch=data_batch,
        outputs=outputs)
    return handed_indices(outputs)


class _KeepsEverySample:
    """Refuses, when the loop is made, a dataloader config that drops
    samples (:func:`check_keeps_every_sample`) and ``fp16`` without a
    CUDA device (:func:`~mmreid.utils.config.runtime.
    check_loop_amp_device`: mmengine's autocast would run the CPU in
    bfloat16); a mixin before mmengine's ``ValLoop``/``TestLoop``."""

    _phase = 'val'

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Evaluator, Dict, List],
                 fp16: bool = False) -> None:
        check_loop_amp_device(fp16, f'{self._phase}_cfg.fp16')
        # Before the dataset is built.
        check_keeps_every_sample(dataloader, f'{self._phase}_dataloader')
        super().__init__(runner, dataloader, evaluator, fp16)


@LOOPS.register_module()
class ReIDValLoop(_KeepsEverySample, ValLoop):
    """mmengine's ``ValLoop`` whose metrics get the model's distance.

    The same iterations, hooks and keys as ``ValLoop``; right before the
    evaluator computes, :func:`hand_model_scorers` gives every metric the
    model's scorers (GMN: ``reid/mnet/mAP``, ``reid/euclid/mAP``, ... and
    the primary mode as ``reid/mAP``). ``tools/train.py`` uses it when
    ``val_cfg`` names no loop type. A ``val_dataloader`` with
    ``drop_last=True`` is refused when the loop is built, and a run whose
    sampler left samples out before the metrics compute.

    Example:
        >>> val_cfg = dict(type='ReIDValLoop')
    """

    _phase = 'val'
    #: The ``sample_idx`` of the samples this process handed to the
    #: evaluator in this run (set by :meth:`run`).
    _handed: List[Optional[int]]

    def run(self) -> dict:
        """Extract the features, hand the scorers over, evaluate.

        Returns:
            dict: The metrics, as mmengine's loop returns them.

        Raises:
            ValueError: Not every sample of the dataset reached the
                evaluator (:func:`check_every_sample_reached`).
        """
        phase = self._phase
        runner = self.runner
        # Before extraction: a contradiction is refused at once.
        check_not_empty(self.dataloader.dataset, type(self).__name__)
        check_model_distance(runner.model, self.evaluator, type(self).__name__)
        check_identity_split(runner, self, type(self).__name__)
        check_tracked_statistics(runner.model, type(self).__name__)
        check_trial_galleries(runner.model, self.evaluator,
                              type(self).__name__,
                              getattr(runner, 'cfg', None))
        with scorers_handed_by(runner.model, type(self).__name__):
            runner.call_hook(f'before_{phase}')
            runner.call_hook(f'before_{phase}_epoch')
            if phase == 'val':
                # After the hooks: EMAHook swaps in each rank's averages.
                share_rank0_buffers(runner.model)
            runner.model.eval()
            losses = self._losses
            losses.clear()
            self._handed = []
            for idx, data_batch in enumerate(self.dataloader):
                self.run_iter(idx, data_batch)
            check_every_sample_reached(self._handed, self.dataloader.dataset,
                                       type(self).__name__)
            hand_model_scorers(runner.model, self.evaluator,
                               type(self).__name__)
            check_metric_results(self.evaluator)
            metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
            if losses:
                metrics.update(_parse_losses(losses, phase))
            runner.call_hook(f'after_{phase}_epoch', metrics=metrics)
            runner.call_hook(f'after_{phase}')
        return metrics

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Sequence[dict]) -> None:
        """mmengine's ``ValLoop.run_iter``/``TestLoop.run_iter``, counting
        the samples handed to the evaluator.

        Args:
            idx (int): Index of the batch in the dataloader.
            data_batch (Sequence[dict]): A batch from the dataloader.
        """
        self._handed.extend(
            evaluate_batch(self, self._phase, self._losses, idx, data_batch))

    @property
    def _losses(self) -> dict:
        return self.val_loss


@LOOPS.register_module()
class ReIDTestLoop(_KeepsEverySample, TestLoop):
    """mmengine's ``TestLoop`` whose metrics get the model's distance.

    See :class:`ReIDValLoop`; ``tools/test.py`` uses it when ``test_cfg``
    names no loop type, and ``tools/dist_test.sh`` runs it on every rank
    (each rank hands its scorers to its metric; rank 0 computes).

    Example:
        >>> test_cfg = dict(type='ReIDTestLoop')
    """

    _phase = 'test'
    _handed: List[Optional[int]]
    run = ReIDValLoop.run
    run_iter = ReIDValLoop.run_iter

    @property
    def _losses(self) -> dict:
        return self.test_loss
