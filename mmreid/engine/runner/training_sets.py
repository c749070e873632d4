"""The training sets a model's weights trained on, and the check that it is
not evaluated on identities it trained on.

A checkpoint records its training set (``meta['dataset_meta']``, written
by mmengine) and the ones its weights trained on before (a ``load_from``
fine-tune's, a trained model an ``init_cfg`` loaded:
``meta['pretrained_dataset_meta']``); every val/test loop checks each
evaluated set against all of them (:func:`check_identity_split`).
"""
import pickle
from typing import List, Mapping

import torch
from mmengine.runner.base_loop import BaseLoop

from mmreid.datasets.base_reid_dataset import identity_split_conflict
from mmreid.models.weight_init import SOURCE_META_ATTR

#: The ``meta`` key of a checkpoint that lists the training sets its
#: weights trained on before ``meta['dataset_meta']`` (a run started with
#: ``load_from``, and the runs before it), written by
#: :meth:`ReIDRunner.save_checkpoint
#: <mmreid.engine.runner.ReIDRunner.save_checkpoint>`.
PRETRAINED_META_KEY = 'pretrained_dataset_meta'


def pretrained_dataset_metas(meta, filename: str) -> List[Mapping]:
    """A checkpoint's ``meta['pretrained_dataset_meta']``, checked.

    Args:
        meta: The checkpoint's ``meta`` (anything else: none).
        filename (str): The checkpoint, for the message.

    Returns:
        list[Mapping]: The metainfo of the training sets its weights
        trained on before its own (``meta['dataset_meta']``); empty
        without the key.

    Raises:
        TypeError: The value is not a list of dicts.
    """
    value = meta.get(PRETRAINED_META_KEY) if isinstance(meta, dict) else None
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(entry, Mapping) for entry in value):
        raise TypeError(
            f"checkpoint {filename!r}: meta['{PRETRAINED_META_KEY}'] is "
            f'{value!r:.80}, expected a list of dataset metainfo dicts (the '
            'training sets its weights trained on before, as mmreid writes '
            'it)')
    return list(value)


def _same_metainfo(a: Mapping, b: Mapping) -> bool:
    """Two metainfos are equal (numpy arrays in them compared as
    pickles)."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return pickle.dumps(a) == pickle.dumps(b)


def trained_dataset_metas(runner, earlier_only: bool = False) -> List[Mapping]:
    """The metainfo of every training set the runner's weights trained on.

    While the runner trains: its training set, then the ones the weights
    it started from trained on (the loaded checkpoint's
    ``meta['dataset_meta']`` and ``meta['pretrained_dataset_meta']``; a
    fine-tune with ``load_from`` has trained on them too; so have those of
    a trained model an ``init_cfg`` loaded). Else the loaded
    checkpoint's ``meta['dataset_meta']`` (which mmengine writes from the
    training set; :meth:`ReIDRunner.load_checkpoint` keeps it), then its
    ``meta['pretrained_dataset_meta']``. Equal metainfos count once.

    Args:
        runner: The runner.
        earlier_only (bool): Only the sets trained on before the latest
            one (the training set of a training run): what its checkpoints
            record as ``meta['pretrained_dataset_meta']``. Defaults to
            False.

    Returns:
        list[Mapping]: The latest training set first (unless
        ``earlier_only``), then the earlier ones.
    """
    loaded = [getattr(runner, 'loaded_dataset_meta', None)] + list(
        getattr(runner, 'loaded_pretrained_meta', None) or ())
    # Trained models an init_cfg loaded (weight_init.record_source_meta).
    model = getattr(runner, 'model', None)
    for module in model.modules() if isinstance(model, torch.nn.Module) \
            else ():
        for filename, meta in getattr(module, SOURCE_META_ATTR, None) or ():
            loaded += [meta.get('dataset_meta')] + pretrained_dataset_metas(
                meta, filename)
    loop = getattr(runner, '_train_loop', None)
    if isinstance(loop, BaseLoop):
        dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
        latest = getattr(dataset, 'metainfo', None)
    else:
        latest, loaded = loaded[0], loaded[1:]
    found: List[Mapping] = []
    for meta in [latest] + loaded:
        if isinstance(meta, Mapping) and not any(
                _same_metainfo(meta, seen) for seen in found):
            found.append(meta)
    if earlier_only and found and found[0] is latest:
        return found[1:]
    return found


def evaluated_datasets(loop) -> List[tuple]:
    """``(name, dataset)`` of every set a val/test loop evaluates: each
    target of a multi-target loop, else the loop's one dataloader."""
    targets = getattr(loop, 'targets', None)
    if targets:
        return [(t.name, t.dataloader.dataset) for t in targets]
    dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
    return [] if dataset is None else [(None, dataset)]


def check_identity_split(runner, loop, consumer: str) -> None:
    """Refuse to evaluate a split whose test identities the model trained
    on (another RegDB ``trial``, another DG ``split_index``; see
    :func:`~mmreid.datasets.base_reid_dataset.identity_split_conflict`),
    and a test set that concatenates datasets (mmengine's
    ``ConcatDataset``): pids and camids are numbered per dataset, so one
    gallery of two would match different people and treat different
    cameras as one. Each dataset is a target of a multi-target loop.
    Every training set the weights trained on is checked
    (:func:`trained_dataset_metas`): a fine-tune (``load_from``) validated
    on another split of its checkpoint's training set is refused too.

    Raises:
        ValueError: Naming the consumer, the target, the key and both
            values.
    """
    from mmengine.dataset import ConcatDataset
    trained = trained_dataset_metas(runner)
    for name, dataset in evaluated_datasets(loop):
        where = consumer if name is None else f'{consumer} ({name})'
        if isinstance(dataset, ConcatDataset):
            raise ValueError(
                f'{where}: the test set is a {type(dataset).__name__} of '
                f'{len(dataset.datasets)} datasets, ranked as one gallery, '
                'but pids and camids are numbered per dataset, so their '
                'identities and cameras would collide. Evaluate each '
                "dataset as its own target: dict(type='MultiTargetTestLoop'"
                ', targets=[dict(name=..., dataloader=..., evaluator=...), '
                '...]) (MultiTargetValLoop for validation)')
        for index, meta in enumerate(trained):
            conflict = identity_split_conflict(
                meta, getattr(dataset, 'metainfo', None), earlier=index > 0)
            if conflict:
                raise ValueError(f'{where}: {conflict}')
