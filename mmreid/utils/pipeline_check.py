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
Only the transforms named here are judged for these; a transform of your
own is trusted to give 0-255 RGB pixels.

A val or test pipeline must also be deterministic. An evaluation sampler
gives no per-sample seeds, so a random transform there (a config that
reuses ``train_pipeline`` for testing: ``ReIDRandomFlip``,
``PadRandomCrop``, ``ReIDRandomErasing``, mmcv's ``RandomFlip``,
mmpretrain's ``RandomResizedCrop``...) draws from the global random state
of each dataloader worker, and R1/mAP changed with ``num_workers`` and the
batch size. It is refused (:func:`is_random_transform` says which are
random; one whose probability is 0 never acts and is accepted). Test-time
flip averaging is the model's ``test_cfg.flip``, not a transform.
"""
import functools
import inspect
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import torch

from .pipeline_source import PipelineSource, split_pipelines

#: The splits whose pipelines are checked.
SPLITS = ('train', 'val', 'test')

#: The arguments that give a transform's probability of acting at all:
#: mmreid's and mmcv's ``prob``, mmpretrain's ``erase_prob``
#: (``RandomErasing``), torchvision's ``p``.
PROBABILITY_KEYS = ('prob', 'erase_prob', 'p')


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


def _drawing_class(cls: Any) -> Any:
    """The class whose code a registered name runs: the new class of a
    deprecated mmreid alias (a function with ``__wrapped__``), the
    torchvision class of mmpretrain's ``'torchvision/X'`` wrapper (a
    ``functools.partial`` with ``transform=``)."""
    if isinstance(cls, functools.partial):
        return cls.keywords.get('transform', cls.func)
    return getattr(cls, '__wrapped__', cls)


def is_random_transform(cls: Any) -> bool:
    """Whether a transform class draws random numbers.

    mmreid's random transforms say so (``draws_from_sample_rng = True``);
    a class may declare what it does (``draws_at_random = True`` or
    ``False``: :func:`~mmreid.engine.hooks.random_state_hook.
    declared_draws`); else mmcv's and mmpretrain's mark their drawing
    methods with mmcv's ``cache_randomness`` (``_methods_with_randomness``,
    inherited by subclasses); any other class is random if its code draws
    from a global random state (:func:`~mmreid.engine.hooks.
    random_state_hook.global_draws`: ``np.random.*``, ``random.*``,
    ``torch.rand*``, as torchvision's transforms do).

    Args:
        cls: What :func:`transform_class` found.

    Returns:
        bool: True for a random transform.
    """
    from mmreid.engine.hooks.random_state_hook import draws_at_random
    cls = _drawing_class(cls)
    if not isinstance(cls, type):
        return False
    return bool(getattr(cls, 'draws_from_sample_rng',
                        False)) or draws_at_random(cls)


def _argument(transform: Any, cls: Any, key: str) -> Any:
    """A transform's argument ``key``: the config's, else the default of
    the class's signature; a built transform's attribute. None if none."""
    if not isinstance(transform, dict):
        return getattr(transform, key, None)
    if key in transform:
        return transform[key]
    try:
        parameter = inspect.signature(_drawing_class(cls)).parameters.get(key)
    except (TypeError, ValueError):
        return None
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default


def _decided(transform: Any, cls: Any) -> bool:
    """Its probability of acting (:data:`PROBABILITY_KEYS`; mmcv's
    ``RandomFlip`` takes one per direction) is 0, or 1 for a class whose
    only draw is whether it acts (``draws_only_whether_it_acts = True``,
    as ``ReIDRandomFlip``)."""
    for key in PROBABILITY_KEYS:
        value = _argument(transform, cls, key)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = sum(value) if all(
                isinstance(v, (int, float)) for v in value) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return value == 0 or (value == 1 and draws_only_whether_it_acts(cls))
    return False


def draws_only_whether_it_acts(cls: Any) -> bool:
    """Whether a transform class declares that its only draw is whether it
    acts (``draws_only_whether_it_acts = True``, as ``ReIDRandomFlip``),
    and a subclass keeps the code that declaration is about: one that
    overrides ``transform`` (a flip that then draws a brightness offset)
    may draw more, so it does not inherit the declaration."""
    cls = _drawing_class(cls)
    for klass in getattr(cls, '__mro__', ()):
        if 'draws_only_whether_it_acts' in vars(klass):
            return vars(klass)['draws_only_whether_it_acts'] is True and all(
                getattr(cls, name, None) is getattr(klass, name, None)
                for name in ('transform', '__call__'))
    return False


def _nested(where: str, transforms: Any) -> Iterator[Tuple[str, Any]]:
    """``(config key, transform)`` of the transforms a wrapper holds (a
    list, or a list of lists as ``RandomChoice``'s)."""
    for index, transform in enumerate(transforms):
        if isinstance(transform, (list, tuple)):
            yield from _nested(f'{where}[{index}]', transform)
        else:
            yield f'{where}[{index}]', transform


def _flattened(where: str, transform: Any) -> Iterator[Tuple[str, Any]]:
    """``(config key, transform)`` of one pipeline entry and, in order,
    of the transforms it holds as a wrapper (mmcv's ``Compose``,
    ``KeyMapper``, ``RandomApply``... in its config's ``transforms``)."""
    yield where, transform
    inner = transform.get('transforms') if isinstance(transform,
                                                      dict) else None
    if isinstance(inner, (list, tuple)):
        for key, item in _nested(f'{where}.transforms', inner):
            yield from _flattened(key, item)


def _random_transforms(where: str,
                       transform: Any) -> Iterator[Tuple[str, Any, Any]]:
    """``(config key, transform, class)`` of the random transforms that
    one pipeline entry runs: itself, or those a wrapper (mmcv's
    ``Compose``, ``KeyMapper``, ``RandomApply``...) holds in its config's
    ``transforms``."""
    cls = transform_class(transform)
    if cls is None or _decided(transform, cls):
        return
    if is_random_transform(cls):
        yield where, transform, cls
        return
    inner = transform.get('transforms') if isinstance(transform,
                                                      dict) else None
    if isinstance(inner, (list, tuple)):
        for key, item in _nested(f'{where}.transforms', inner):
            yield from _random_transforms(key, item)


def random_problems(source: PipelineSource, split: str) -> List[str]:
    """The random transforms of a val or test pipeline.

    Args:
        source (PipelineSource): The pipeline and its config key.
        split (str): ``'val'`` or ``'test'``, for the message.

    Returns:
        list[str]: One message (empty if the pipeline is deterministic)
        naming the config key of every random transform, the transform and
        the fix.
    """
    found = [
        f'{where} ({_shown(transform, cls)})'
        for index, entry in enumerate(source.pipeline)
        for where, transform, cls in _random_transforms(
            f'{source.path}[{index}]', entry)
    ]
    if not found:
        return []
    one = len(found) == 1
    they, it, draws = ('it', 'it', 'draws') if one else ('they', 'them',
                                                         'draw')
    return [
        f'{", ".join(found)}: random transform{"" if one else "s"} in '
        f'a {split} pipeline. Evaluation gives its samples no augmentation '
        f'seeds, so {they} {draws} from the global random state of each '
        'dataloader worker, and R1/mAP would change with num_workers and '
        f'the batch size. Drop {it} from this pipeline (a config that '
        'reuses train_pipeline for testing needs a test pipeline of its '
        'own); for test-time flip averaging set model.test_cfg.flip=True, '
        'which averages the features of each image and its mirror. A '
        'transform class of your own that gives the same output for the '
        'same input in any worker and order declares so: '
        'draws_at_random = False.'
    ]


def pipeline_problems(source: PipelineSource,
                      preprocessor: Any,
                      split: str = 'test') -> List[str]:
    """What is wrong with one pipeline for ``preprocessor``.

    Args:
        source (PipelineSource): The pipeline and its config key.
        preprocessor: The model's data preprocessor.
        split (str): The split it feeds: ``'train'``, ``'val'`` or
            ``'test'``. Defaults to ``'test'``.

    Returns:
        list[str]: One message per problem (empty if none): a foreign
        packing transform, a ``Normalize`` while the preprocessor
        normalises, images that end the pipeline in another channel
        order than the preprocessor takes (a BGR loader not followed by
        a conversion, a conversion of RGB images), and, in a val or test
        pipeline, a random transform (:func:`random_problems`).
    """
    name = type(preprocessor).__name__
    normalised_by = normalisation(preprocessor)
    # The model takes RGB; a preprocessor that swaps channels (mmengine's
    # bgr_to_rgb) takes BGR.
    wanted = 'bgr' if getattr(preprocessor, '_channel_conversion',
                              False) else 'rgb'
    problems = []
    order, decided_by = None, None
    # Wrappers' transforms too: a Normalize inside mmcv's Compose
    # normalises as one at the top does.
    flat = [
        pair for index, entry in enumerate(source.pipeline)
        for pair in _flattened(f'{source.path}[{index}]', entry)
    ]
    for where, transform in flat:
        cls = transform_class(transform)
        if cls is None:
            continue
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
            order, decided_by = 'bgr', (where, transform, cls)
        elif _is_rgb_loader(cls):
            order, decided_by = 'rgb', (where, transform, cls)
        elif order is not None and _swaps_channels(transform, cls):
            order = 'rgb' if order == 'bgr' else 'bgr'
            decided_by = (where, transform, cls)
    if order is not None and order != wanted:
        where, transform, cls = decided_by
        takes = (f'{name} takes {wanted.upper()} images'
                 if wanted == 'bgr' else f'{name} and the model take RGB '
                 'images')
        if _is_bgr_loader(cls):
            problems.append(
                f'{where} loads the images with {_shown(transform, cls)}, '
                f'which decodes them to BGR, but {takes}: every feature '
                "would be computed on swapped channels. Load with mmreid's "
                "dict(type='ReIDLoadImageFromFile'), which decodes to RGB.")
        elif _is_rgb_loader(cls):
            problems.append(
                f'{where} loads the images with {_shown(transform, cls)}, '
                f'which decodes them to RGB, but {takes} (it swaps them to '
                'RGB itself): every feature would be computed on swapped '
                "channels. Use mmreid's dict(type='ReIDDataPreprocessor', "
                '...), which takes RGB, or a preprocessor that does not '
                'swap the channels (bgr_to_rgb=False).')
        else:
            problems.append(
                f'{where} ({_shown(transform, cls)}) swaps the channels to '
                f'{order.upper()}, but {takes}: every feature would be '
                'computed on swapped channels. Give it to_rgb=False.')
    if split != 'train':
        problems += random_problems(source, split)
    return problems


def check_pipeline(source: PipelineSource,
                   preprocessor: Any,
                   split: str = 'test') -> None:
    """Refuse one pipeline that ``preprocessor`` would misread: the check
    of :func:`check_pipelines` for an entry point that runs a single
    pipeline (``mmreid.apis.extract_features``, which
    ``tools/extract_features.py`` and ``rank_gallery`` use; the
    modality-gap tool).

    Args:
        source (PipelineSource): The pipeline and its config key.
        preprocessor: The model's data preprocessor.
        split (str): The split it feeds. Defaults to ``'test'``.

    Raises:
        ValueError: Naming every problem (:func:`pipeline_problems`).
    """
    problems = pipeline_problems(source, preprocessor, split)
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
            problems += pipeline_problems(source, preprocessor, split)
    if problems:
        raise ValueError('\n'.join(problems))


__all__ = [
    'transform_class', 'normalisation', 'is_random_transform',
    'random_problems', 'pipeline_problems', 'check_pipeline', 'check_pipelines'
]
