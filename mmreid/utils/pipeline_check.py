"""Refuse a data pipeline whose output the model's data preprocessor
would misread.

mmreid's data preprocessor (``ReIDDataPreprocessor``) takes 0-255 **RGB**
pixels and normalises them itself, and mmreid's models read the
``ReIDDataSample`` that ``PackReIDInputs`` packs. Nothing in a transform's
output says which channel order or scale it has, so a foreign transform
that breaks these rules ran without a word:

* mmcv's ``LoadImageFromFile`` (``type='mmpretrain.LoadImageFromFile'``)
  decodes to BGR: every feature was computed on swapped channels;
* mmcv's ``Normalize`` (``type='Normalize'`` resolves to it through
  mmengine's root registry) normalised the images a second time;
* mmpretrain's ``PackInputs`` packs a ``DataSample`` without the pid,
  camid and feature fields, and the run failed deep in the model with an
  ``AttributeError``.

:func:`check_pipelines` refuses such a pipeline of the train, val and test
splits before a run reads any image (:class:`~mmreid.engine.runner.ReIDRunner`
checks those of the splits that ``train()``, ``val()`` or ``test()``
feed), naming its config key, the transform and the fix;
:func:`check_pipeline` refuses the one test pipeline that the inference API
(``mmreid.apis.extract_features``, so ``tools/extract_features.py``) runs.
Only the transforms named here are judged; a transform of your own is
trusted.
"""
from typing import Any, List, Optional, Sequence

import torch

from .pipeline_source import PipelineSource, split_pipelines

#: The splits whose pipelines are checked.
SPLITS = ('train', 'val', 'test')


def transform_class(transform: Any) -> Any:
    """What a pipeline entry builds, looked up as ``Compose`` builds it.

    Args:
        transform: A transform config (``type`` a registered name, possibly
            scoped, or a class) or a built transform.

    Returns:
        The registered class (or callable, for mmpretrain's torchvision
        wrappers); None for an unknown type, whose build fails with its
        own error.
    """
    if not isinstance(transform, dict):
        return type(transform)
    kind = transform.get('type')
    if not isinstance(kind, str):
        return kind
    from mmengine.registry import TRANSFORMS
    with TRANSFORMS.switch_scope_and_registry(
            transform.get('_scope_')) as registry:
        return registry.get(kind)


def _shown(transform: Any, cls: Any) -> str:
    """``type='X' (module.Class)`` for a message."""
    kind = transform.get('type') if isinstance(transform, dict) else None
    kind = getattr(kind, '__name__', kind) or getattr(cls, '__name__', cls)
    name = f'{getattr(cls, "__module__", "?")}.' \
        f'{getattr(cls, "__qualname__", cls)}'
    return f'type={kind!r} ({name})'


def _is_subclass(cls: Any, base: type) -> bool:
    return isinstance(cls, type) and issubclass(cls, base)


def _is_bgr_loader(cls: Any) -> bool:
    """mmcv's ``LoadImageFromFile`` (mmpretrain's is the same class): it
    decodes with ``channel_order='bgr'``."""
    from mmcv.transforms import LoadImageFromFile
    return _is_subclass(cls, LoadImageFromFile)


def _is_rgb_loader(cls: Any) -> bool:
    from mmreid.datasets.transforms.loading import ReIDLoadImageFromFile

    # mmreid's deprecated alias 'LoadImageFromFile' is a function.
    return _is_subclass(cls, ReIDLoadImageFromFile) or (
        getattr(cls, '__name__', None) == 'LoadImageFromFile'
        and getattr(cls, '__module__', '').startswith('mmreid.'))


def _normalises(transform: Any, cls: Any) -> bool:
    """mmcv's ``Normalize`` or mmpretrain's ``torchvision/Normalize``."""
    from mmcv.transforms import Normalize
    kind = transform.get('type') if isinstance(transform, dict) else None
    return _is_subclass(
        cls, Normalize) or (isinstance(kind, str)
                            and kind.split('.')[-1] == 'torchvision/Normalize')


def _swaps_channels(transform: Any, cls: Any) -> bool:
    """mmcv's ``Normalize`` with ``to_rgb=True`` (its default)."""
    from mmcv.transforms import Normalize
    if not _is_subclass(cls, Normalize):
        return False
    if isinstance(transform, dict):
        return bool(transform.get('to_rgb', True))
    return bool(getattr(transform, 'to_rgb', False))


def _is_foreign_packer(cls: Any) -> bool:
    """A packing transform of another OpenMMLab package
    (mmpretrain's ``PackInputs``, mmdet's ``PackDetInputs``)."""
    name = getattr(cls, '__name__', '')
    package = getattr(cls, '__module__', '').split('.')[0]
    return isinstance(cls, type) and name.startswith('Pack') and \
        name.endswith('Inputs') and package.startswith('mm') and \
        package != 'mmreid'


def normalisation(preprocessor: Any) -> Optional[str]:
    """How a data preprocessor normalises, or None if it does not.

    Args:
        preprocessor: The model's data preprocessor (``ReIDDataPreprocessor``
            or mmengine's ``ImgDataPreprocessor``).

    Returns:
        str | None: ``'mean [...], std [...]'``; None without ``mean`` and
        ``std`` buffers, with normalisation switched off, or with mean 0
        and std 1.
    """
    if getattr(preprocessor, '_enable_normalize', True) is False:
        return None
    mean = getattr(preprocessor, 'mean', None)
    std = getattr(preprocessor, 'std', None)
    if not (torch.is_tensor(mean) and torch.is_tensor(std)):
        return None
    if bool((mean == 0).all()) and bool((std == 1).all()):
        return None
    return (f'mean {[round(v, 4) for v in mean.flatten().tolist()]}, '
            f'std {[round(v, 4) for v in std.flatten().tolist()]}')


def pipeline_problems(source: PipelineSource, preprocessor: Any) -> List[str]:
    """What is wrong with one pipeline for ``preprocessor``.

    Args:
        source (PipelineSource): The pipeline and its config key.
        preprocessor: The model's data preprocessor.

    Returns:
        list[str]: One message per problem (empty if none): a foreign
        packing transform, a ``Normalize`` while the preprocessor
        normalises, and images that end the pipeline in another channel
        order than the preprocessor takes (a BGR loader not followed by
        a conversion, a conversion of RGB images).
    """
    name = type(preprocessor).__name__
    normalised_by = normalisation(preprocessor)
    # The model takes RGB; a preprocessor that swaps channels (mmengine's
    # bgr_to_rgb) takes BGR.
    wanted = 'bgr' if getattr(preprocessor, '_channel_conversion',
                              False) else 'rgb'
    problems = []
    order, decided_by = None, None
    for index, transform in enumerate(source.pipeline):
        cls = transform_class(transform)
        if cls is None:
            continue
        where = f'{source.path}[{index}]'
        shown = _shown(transform, cls)
        if _is_foreign_packer(cls):
            problems.append(
                f'{where} packs the inputs with {shown}, whose data samples '
                "lack what mmreid's models read (the pid as gt_label, "
                'camid, modality; set_pred_feature): pack them with '
                "mmreid's dict(type='PackReIDInputs').")
        if _normalises(transform, cls) and normalised_by:
            problems.append(
                f'{where} normalises the images ({shown}), but the model\'s '
                f'data preprocessor ({name}: {normalised_by}) normalises '
                'them too, so they would be normalised twice: drop this '
                f'transform ({name} normalises on the device, with the '
                'statistics in model.data_preprocessor).')
            continue  # its channel swap is moot once it is dropped
        if _is_bgr_loader(cls):
            order, decided_by = 'bgr', (index, transform, cls)
        elif _is_rgb_loader(cls):
            order, decided_by = 'rgb', (index, transform, cls)
        elif order is not None and _swaps_channels(transform, cls):
            order = 'rgb' if order == 'bgr' else 'bgr'
            decided_by = (index, transform, cls)
    if order is not None and order != wanted:
        index, transform, cls = decided_by
        where = f'{source.path}[{index}]'
        takes = (f'{name} takes {wanted.upper()} images'
                 if wanted == 'bgr' else f'{name} and the model take RGB '
                 'images')
        if _is_bgr_loader(cls):
            problems.append(
                f'{where} loads the images with {_shown(transform, cls)}, '
                f'which decodes them to BGR, but {takes}: every feature '
                "would be computed on swapped channels. Load with mmreid's "
                "dict(type='ReIDLoadImageFromFile'), which decodes to RGB.")
        else:
            problems.append(
                f'{where} ({_shown(transform, cls)}) swaps the channels to '
                f'{order.upper()}, but {takes}: every feature would be '
                'computed on swapped channels. Give it to_rgb=False.')
    return problems


def check_pipeline(source: PipelineSource, preprocessor: Any) -> None:
    """Refuse one pipeline that ``preprocessor`` would misread: the check
    of :func:`check_pipelines` for an entry point that runs a single
    pipeline (``mmreid.apis.extract_features``, which
    ``tools/extract_features.py`` and ``rank_gallery`` use; the
    modality-gap tool).

    Args:
        source (PipelineSource): The pipeline and its config key.
        preprocessor: The model's data preprocessor.

    Raises:
        ValueError: Naming every problem (:func:`pipeline_problems`).
    """
    problems = pipeline_problems(source, preprocessor)
    if problems:
        raise ValueError('\n'.join(problems))


def check_pipelines(cfg: Any,
                    preprocessor: Any,
                    splits: Sequence[str] = SPLITS) -> None:
    """Refuse a pipeline of ``splits`` that ``preprocessor`` would misread
    (see the module docstring and :func:`pipeline_problems`).

    Args:
        cfg (Config | dict): Holds the dataloaders (``train_dataloader``,
            ``val_dataloader``, ``test_dataloader``, the targets of a
            multi-target loop in ``val_cfg``/``test_cfg``), as configs.
        preprocessor: The model's data preprocessor.
        splits (Sequence[str]): Whose pipelines to check. Defaults to
            ``('train', 'val', 'test')``.

    Raises:
        ValueError: Naming every problem: the pipeline's config key and
            index, the transform and what to write instead.
    """
    problems = []
    for split in splits:
        for source in split_pipelines(cfg, split):
            problems += pipeline_problems(source, preprocessor)
    if problems:
        raise ValueError('\n'.join(problems))


__all__ = [
    'transform_class', 'normalisation', 'pipeline_problems', 'check_pipeline',
    'check_pipelines'
]
