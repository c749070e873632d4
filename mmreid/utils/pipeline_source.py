"""Which test pipeline (and test dataset) an entry point runs.

``tools/test.py`` evaluates ``runner.test()``: the pipeline of
``test_dataloader.dataset``, or, for a multi-target test loop (whose
``test_dataloader`` is an empty placeholder), that of each target's
``test_cfg.targets[i].dataloader.dataset``. Every other entry point that
runs the test pipeline (``mmreid.apis.extract_features``/``rank_gallery``,
``tools/extract_features.py``, ``tools/deployment/pytorch2onnx.py``,
``tools/analysis_tools/browse_dataset.py``) and the checkpoint check
(:mod:`mmreid.utils.arch_check`) resolve it here, in that order, so
that they compute the features that ``tools/test.py`` evaluates.

A top-level ``test_pipeline`` is usually a variable that the config file
substituted into its dataloaders when it was read; it is read only by a
config that has no test dataloader pipeline (e.g. a model-only config for
the API). Then the validation pipelines are the last resort.

Targets with different pipelines are refused unless one is chosen by name
(``target``); so are different pipelines that no name can choose (the
datasets of a ``ConcatDataset``, a list of dataloaders).
"""
import copy
from typing import Any, List, NamedTuple, Optional, Tuple

from mmreid.utils.registry_suggestions import config_type_name


class PipelineSource(NamedTuple):
    """A pipeline of the config and where it is.

    Attributes:
        path (str): Its config key, e.g.
            ``'test_cfg.targets.1.dataloader.dataset.pipeline'``.
        pipeline (list[dict]): The transforms.
        target (str, optional): The name of the multi-target loop target
            it belongs to, else None.
    """
    path: str
    pipeline: list
    target: Optional[str] = None


def find_transform(pipeline: Optional[list],
                   name: str,
                   path: str = 'pipeline') -> Optional[Tuple[int, dict]]:
    """The first transform config of a class in a pipeline.

    Args:
        pipeline (list, optional): Transform configs (dicts), as in a
            config.
        name (str): The class name (``'ReIDResize'``); a scoped ``type``
            (``'mmreid.ReIDResize'``) or a class matches it too.
        path (str): The pipeline's config key, for the error.

    Returns:
        tuple[int, dict] | None: Its index and config, or None.

    Raises:
        TypeError: The transform is there as a built object, whose
            arguments cannot be read back.
    """
    for index, transform in enumerate(pipeline or []):
        if config_type_name(transform) != name:
            continue
        if not isinstance(transform, dict):
            raise TypeError(
                f'{path}[{index}] is a built {name} object; write it as '
                f"dict(type='{name}', ...) so that its arguments can be "
                'read')
        return index, transform
    return None


def _plain(value: Any) -> Any:
    """A plain, independent copy of a config value."""
    if hasattr(value, 'to_dict'):
        return value.to_dict()
    return copy.deepcopy(value)


def dataset_pipelines(path: str,
                      dataset: Any,
                      target: Optional[str] = None) -> List[PipelineSource]:
    """The pipelines of a dataset config at key ``path``: its own
    ``pipeline``, else those of the datasets it wraps (``dataset``,
    ``datasets``)."""
    if not isinstance(dataset, dict):
        return []
    if dataset.get('pipeline'):
        return [
            PipelineSource(f'{path}.pipeline', list(dataset['pipeline']),
                           target)
        ]
    found = dataset_pipelines(f'{path}.dataset', dataset.get('dataset'),
                              target)
    for i, inner in enumerate(dataset.get('datasets') or []):
        found += dataset_pipelines(f'{path}.datasets.{i}', inner, target)
    return found


def split_loaders(cfg, split: str) -> List[Tuple[str, Optional[str], Any]]:
    """``(config key, target name, dataloader config)`` of the loaders
    that feed split ``split`` (``'test'``, ``'val'``).

    Those of ``<split>_dataloader`` (a dict or a list of them) and of every
    target of a multi-target loop (``<split>_cfg.targets``).
    """
    loaders = cfg.get(f'{split}_dataloader')
    name = f'{split}_dataloader'
    if isinstance(loaders, dict):
        found = [(name, None, loaders)]
    elif isinstance(loaders, (list, tuple)):
        found = [(f'{name}.{i}', None, d) for i, d in enumerate(loaders)]
    else:
        found = []
    loop = cfg.get(f'{split}_cfg')
    targets = loop.get('targets') if isinstance(loop, dict) else None
    for i, target in enumerate(targets or []):
        if isinstance(target, dict):
            found.append((f'{split}_cfg.targets.{i}.dataloader',
                          str(target.get('name',
                                         i)), target.get('dataloader')))
    return found


def split_pipelines(cfg, split: str) -> List[PipelineSource]:
    """The pipelines that feed split ``split``, as the runner builds them
    (see :func:`split_loaders`)."""
    found = []
    for path, target, loader in split_loaders(cfg, split):
        if isinstance(loader, dict):
            found += dataset_pipelines(f'{path}.dataset',
                                       loader.get('dataset'), target)
    return found


def inference_pipelines(cfg) -> List[PipelineSource]:
    """The candidate test pipelines of the API and the tools, in
    ``tools/test.py``'s order: the test split's (dataloader or targets),
    else a top-level ``test_pipeline``, else the validation split's."""
    found = split_pipelines(cfg, 'test')
    if found:
        return found
    if cfg.get('test_pipeline'):
        return [PipelineSource('test_pipeline', list(cfg['test_pipeline']))]
    return split_pipelines(cfg, 'val')


def split_targets(cfg, split: str = 'test') -> List[str]:
    """The target names of the multi-target loop of ``split``."""
    return [t for _, t, _ in split_loaders(cfg, split) if t is not None]


def resolve_test_pipeline(cfg,
                          target: Optional[str] = None,
                          option: str = 'target={}') -> PipelineSource:
    """The one test pipeline to run images through.

    Args:
        cfg (Config): The config.
        target (str, optional): The name of a target of a multi-target
            test loop (``test_cfg.targets[i].name``), needed when the
            targets' pipelines differ.
        option (str): How the caller takes ``target``, for the messages:
            a template with ``{}`` for the value (``'--target {}'`` for a
            tool, ``'init_model(..., target={})'`` for the API).

    Returns:
        PipelineSource: The config key and a plain copy of the transforms.

    Raises:
        KeyError: The config has no test pipeline.
        ValueError: ``target`` names no target (or the config has none),
            or the candidates differ and ``target`` does not choose one.
    """
    sources = inference_pipelines(cfg)
    if not sources:
        raise KeyError('the config has no test pipeline: none of '
                       'test_dataloader.dataset.pipeline, test_cfg.targets[i].'
                       'dataloader.dataset.pipeline, test_pipeline or '
                       'val_dataloader.dataset.pipeline')
    names = list(dict.fromkeys(s.target for s in sources if s.target))
    given = option.format(repr(target))
    if target is not None:
        if not names:
            raise ValueError(
                f'{given} given, but the config has no multi-target test '
                f'loop (test_cfg.targets) to choose from: it tests with '
                f'{sources[0].path}; leave it out')
        chosen = [s for s in sources if s.target == str(target)]
        if not chosen:
            raise ValueError(f'{given}: no such target in test_cfg.targets; '
                             f'the targets are {names}')
        sources = chosen
    first = sources[0]
    others = [s for s in sources[1:] if list(s.pipeline) != first.pipeline]
    if others:
        shown = '; '.join(f'{s.path}: {_plain(list(s.pipeline))}'
                          for s in [first] + others)
        if target is None and names:
            how = (f'tools/test.py runs each on its own target\'s images; '
                   f'choose the target whose pipeline to run with '
                   f'{option.format("NAME")} (one of {names})')
        else:
            how = 'give them the same pipeline'
        raise ValueError(
            f'the config tests with {len(others) + 1} different pipelines '
            f'({shown}), and no one of them is the test pipeline of '
            f'other images: {how}')
    return PipelineSource(first.path, _plain(list(first.pipeline)),
                          first.target)


def split_datasets(cfg, split: str) -> List[Tuple[str, str, dict]]:
    """``(name, config key, dataset config)`` of the datasets of a split.

    The dataloader's dataset, or, for ``'val'``/``'test'`` with a
    multi-target loop (``<split>_cfg.targets``), each target's (named as
    the target); a dataloader's dataset is named by its ``type``.

    Raises:
        KeyError: The split has neither.
    """
    loop = cfg.get(f'{split}_cfg') or {}
    targets = loop.get('targets') if isinstance(loop, dict) else None
    if split != 'train' and targets:
        return [(str(t['name']), f'{split}_cfg.targets.{i}.dataloader.dataset',
                 t['dataloader']['dataset']) for i, t in enumerate(targets)]
    dataset = (cfg.get(f'{split}_dataloader') or {}).get('dataset')
    if not dataset:
        targets_hint = '' if split == 'train' else \
            f' (nor {split}_cfg.targets)'
        raise KeyError(f'the config has no {split}_dataloader.dataset'
                       f'{targets_hint}')
    return [(str(dataset.get('type',
                             split)), f'{split}_dataloader.dataset', dataset)]


__all__ = [
    'PipelineSource', 'dataset_pipelines', 'split_loaders', 'split_pipelines',
    'inference_pipelines', 'split_targets', 'resolve_test_pipeline',
    'split_datasets'
]
