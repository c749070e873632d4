"""What the ONNX graph of ``pytorch2onnx.py`` cannot reproduce of
``tools/test.py``, refused before anything is written: features that
depend on the other images of the batch (:func:`check_batch_independent`)
and a data path other than :data:`GRAPH_DATA_PATH` (:func:`check_data_path`:
the test pipeline's transforms, the data preprocessor and the scale of
its mean/std, :func:`check_input_scale`).
"""
from typing import Optional, Tuple

from mmengine.config import Config
from torch import nn


def check_batch_independent(model: nn.Module, cfg: Config) -> None:
    """Refuse a model whose features depend on the batch.

    MBN layers with ``eval_stats='batch'`` normalise each test batch with
    its own statistics: an exported graph would give each image a
    feature that depends on the other images a deployment batches with
    it, not the feature ``tools/test.py`` reports. So does a batch norm
    layer without running statistics (:func:`check_running_statistics`).

    Raises:
        ValueError: Naming a layer and the config key(s) to set to
            ``'modality'`` (the running statistics), or the batch norm
            layer.
    """
    from mmreid.models.layers.mbn import (batch_statistics_layers,
                                          running_statistics_fix)
    layers = batch_statistics_layers(model)
    if not layers:
        check_running_statistics(model)
        return
    fix = running_statistics_fix(cfg)
    raise ValueError(
        f"the model's MBN layers (e.g. {layers[0]!r}) use eval_stats="
        "'batch': each test batch is normalised with its own statistics, "
        'so the exported features would depend on the batches a '
        "deployment feeds the graph, not be tools/test.py's. Export the "
        f'running statistics of each modality instead: {fix} (test with '
        'the same option for the numbers of the exported features)')


def check_running_statistics(model: nn.Module) -> None:
    """Refuse a batch norm layer that keeps no running statistics.

    ``BatchNorm(track_running_stats=False)`` normalises every batch with
    its own statistics in eval mode as well
    (:func:`~mmreid.models.layers.mbn.untracked_batch_norms`).

    Raises:
        ValueError: Naming the first such layer.
    """
    from mmreid.models.layers.mbn import untracked_batch_norms, untracked_named
    layers = untracked_batch_norms(model)
    if layers:
        raise ValueError(
            f"the model's {untracked_named(layers)}: in eval mode it "
            'normalises each batch with its own statistics, so the '
            'exported features would depend on the batches a deployment '
            'feeds the graph. Export a model trained with '
            'track_running_stats=True (the default of its norm_cfg)')


#: What the graph reproduces of ``tools/test.py``'s data path.
GRAPH_DATA_PATH = (
    "the graph takes RGB 0-255 images at its input size (mmreid.input) and "
    "normalises them with the data preprocessor's mean/std, so it "
    "reproduces a test pipeline of ReIDLoadImageFromFile (RGB), at most one "
    'ReIDResize and PackReIDInputs, in that order, and mmreid\'s '
    'ReIDDataPreprocessor (flip augmentation is the model\'s test_cfg.flip, '
    'inside the graph)')


def _pipeline_refusal(transforms: list) -> Optional[Tuple[int, str]]:
    """The index of the first built transform the graph does not
    reproduce (:data:`GRAPH_DATA_PATH`) and why, or None."""
    from mmreid.datasets.transforms import (PackReIDInputs,
                                            ReIDLoadImageFromFile, ReIDResize)
    kinds = [type(t) for t in transforms]
    if kinds[0] is not ReIDLoadImageFromFile:
        return 0, ("not mmreid's ReIDLoadImageFromFile, the loader that "
                   "gives RGB (mmcv's LoadImageFromFile decodes BGR)")
    if len(kinds) < 2 or kinds[-1] is not PackReIDInputs:
        return len(kinds) - 1, 'the last transform, not PackReIDInputs'
    for index, kind in enumerate(kinds[1:-1], 1):
        if kind is not ReIDResize:
            return index, 'a transform the graph does not compute'
        if index > 1:
            return index, 'a second resize'
    return None


def check_input_scale(model: nn.Module) -> None:
    """Refuse a data preprocessor that ``tools/test.py`` refuses for the
    graph's input.

    The graph takes 0-255 pixels (``mmreid.input``), what
    ``ReIDLoadImageFromFile`` gives ``tools/test.py``; a
    ``ReIDDataPreprocessor`` with mean/std on the 0-1 scale (torchreid's
    ``[0.485, 0.456, 0.406]``) refuses such a batch there, but the graph,
    which copies its mean/std, would normalise it to inputs about 255
    times too large. The preprocessor's own check of a uint8 batch
    decides, so the export refuses what ``tools/test.py`` refuses.

    Args:
        model (nn.Module): The built model, with mmreid's
            ``ReIDDataPreprocessor``.

    Raises:
        ValueError: Naming ``model.data_preprocessor``'s mean and std and
            the 0-255 values to set.
    """
    import torch
    pixels = torch.zeros((1, 3, 1, 1), dtype=torch.uint8)
    try:
        # The check tools/test.py's batches of uint8 images go through.
        model.data_preprocessor._check_scale(pixels)
    except ValueError as error:
        raise ValueError(
            'the graph takes 0-255 images (mmreid.input), as '
            "tools/test.py's ReIDLoadImageFromFile gives them, and "
            f'tools/test.py refuses them with this config: {error}. '
            'Nothing is written') from error


def check_data_path(model: nn.Module,
                    cfg: Config,
                    target: Optional[str] = None) -> None:
    """Refuse a data path of ``tools/test.py`` that the graph does not
    reproduce.

    The file tells a deployment to feed RGB 0-255 images resized to the
    input size (``mmreid.input``, ``mmreid.resize_*``); the graph
    normalises them with the data preprocessor's mean/std. That is what
    ``tools/test.py`` does only with the transforms and the preprocessor
    of :data:`GRAPH_DATA_PATH`: another loader (mmcv's
    ``LoadImageFromFile``: BGR), another transform (a crop after the
    resize) or another data preprocessor (mmengine's
    ``ImgDataPreprocessor(bgr_to_rgb=True)`` swaps channels) would give
    the deployment other features than ``tools/test.py``'s.

    Args:
        model (nn.Module): The built model.
        cfg (Config): Its config (the default scope set).
        target (str, optional): As for :func:`input_shape`.

    Raises:
        ValueError: Naming ``model.data_preprocessor`` or the pipeline
            key and index of the transform, and what the graph reproduces;
            a preprocessor whose mean/std do not take 0-255 images
            (:func:`check_input_scale`).
    """
    from mmengine.dataset import Compose

    from mmreid.models.data_preprocessors import ReIDDataPreprocessor
    from mmreid.utils.pipeline_source import resolve_test_pipeline
    preprocessor = type(model.data_preprocessor)
    if preprocessor is not ReIDDataPreprocessor:
        raise ValueError(
            f'model.data_preprocessor is {preprocessor.__module__}.'
            f'{preprocessor.__name__}, not mmreid\'s ReIDDataPreprocessor: '
            f'{GRAPH_DATA_PATH}; another preprocessor may do more (e.g. '
            "mmengine's ImgDataPreprocessor swaps channels with bgr_to_rgb="
            'True), so a deployment fed as the file says would get other '
            "features than tools/test.py's. Nothing is written; export a "
            'config with ReIDDataPreprocessor (and a test pipeline that '
            'gives it RGB images)')
    check_input_scale(model)
    try:
        source = resolve_test_pipeline(cfg, target, option='--target {}')
    except KeyError:  # no pipeline: the size came from --shape
        return
    transforms = Compose(source.pipeline).transforms
    refusal = _pipeline_refusal(transforms)
    if refusal is None:
        return
    index, why = refusal
    built = type(transforms[index])
    given = source.pipeline[index]
    name = given.get('type') if isinstance(given, dict) else built.__name__
    raise ValueError(
        f'the test pipeline {source.path}.{index} is type={name!r} '
        f'({built.__module__}.{built.__name__}), {why}: {GRAPH_DATA_PATH}. '
        'A deployment fed as the file says would get other features than '
        "tools/test.py's, so nothing is written; export a config whose "
        'test pipeline holds those transforms only (and test it with '
        'tools/test.py for the numbers of the graph)')
