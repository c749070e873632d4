"""Export the feature extractor of a ReID model to ONNX.

    python tools/deployment/pytorch2onnx.py CONFIG CHECKPOINT
        [--output-file model.onnx] [--shape H W] [--opset 18]
        [--exporter dynamo|legacy] [--modality M] [--target NAME]
        [--features-only] [--verify] [--tolerance 1e-3]
        [--cfg-options k=v ...]

The graph takes **raw images**: ``input`` float32 (N, 3, H, W), RGB,
0-255 (a uint8 image cast to float32) and returns ``feature`` float32
(N, D), the model's ``mode='tensor'`` output (test feature, flip
augmentation included when ``model.test_cfg.flip``). The data
preprocessor's mean/std normalisation is part of the graph, so a
deployment only resizes to (H, W), with the interpolation and library of
the test pipeline's ``ReIDResize`` (another one gives other features; the
file records them), and casts. The batch axis is dynamic;
H and W are fixed (default: the ``ReIDResize`` size of the test
pipeline that ``tools/test.py`` runs; ``--target NAME`` chooses the target
of a multi-target config whose targets' pipelines differ). ``--shape H W``
sets that size in the test pipeline (:func:`apply_shape`), so it is
checked as ``--cfg-options`` on the size is: a checkpoint whose saved
config (``meta['cfg']``) or converted source (``meta['source_arch']``)
records another size is refused, naming ``--shape``, the recorded size
and the given one; one that records none exports at any size.

The graph computes features, not a ranking. The file's ``metadata_props``
say how ``tools/test.py`` ranks them: ``mmreid.ranking_distance`` (the
config's test metric's distance, ``--target``'s for a multi-target
config, else the model's ``distance``: ``euclidean``, ``sqeuclidean`` or
``cosine``), ``mmreid.feature_normalization`` (``l2`` where the ranking
L2-normalises the features, i.e. cosine or ``normalize=True``, else
``none``), ``mmreid.ranking_source`` (the config key it was read from),
``mmreid.rerank`` / ``mmreid.query_expansion`` (JSON, only where the
metric applies them: steps the graph does not compute),
``mmreid.junk_rule``, ``mmreid.tie_policy``, ``mmreid.ap_mode`` and
``mmreid.cmc_mode`` (the metric's rank rules, where the config has a
metric mmreid knows),
``mmreid.features_only`` and ``mmreid.note``, with ``mmreid.input``
(what the graph takes) and ``mmreid.resize_interpolation`` /
``mmreid.resize_backend`` (how the test pipeline resizes; absent where
it has no ``ReIDResize``). A model that ranks with its own distance
(``has_own_distance``, e.g. GMN's M-Net, which scores pairs of features)
is refused: no feature distance on the exported features gives its
ranking, so a deployment would report other numbers than
``tools/test.py``'s primary row. ``--features-only`` exports its features
anyway; the file then records ``mmreid.features_only = true``, the
model's distance (e.g. ``mnet``) and ``mmreid.feature_normalization =
model``. Writing the metadata needs ``onnx``.

Exporters (``--exporter``): ``dynamo`` (the default) is torch's
``torch.export``-based exporter, the default of torch >= 2.9; it needs
``onnxscript`` (and ``onnx``), see ``requirements/optional.txt``.
``legacy`` is the TorchScript exporter (``dynamo=False``), deprecated
by torch but faster and free of the extra dependency; it writes opset
<= 20. A cross-modality model (MBN layers, a two-stream backbone) is
exported with ``legacy`` by default: ``torch.export`` stops at the
data-dependent routing of its modality labels, so ``--exporter dynamo``
is refused for it (see :func:`choose_exporter`).

The checkpoint must be a local, trusted file (loaded with
:func:`mmreid.utils.load_trusted_checkpoint`: tensors and mmengine's own
classes only). Every model tensor must be in it, and the config must
build the network it records and feed it the same test images, as
``tools/test.py`` checks; no switch of this tool accepts another. The
ONNX file is written to a temporary name and renamed, so a failed export
leaves no file.

The graph reproduces ``tools/test.py``'s data path only where that path
is what the file says a deployment does: a test pipeline of mmreid's
``ReIDLoadImageFromFile`` (RGB), at most one ``ReIDResize`` and
``PackReIDInputs``, and mmreid's ``ReIDDataPreprocessor`` (mean/std);
flip test-time augmentation (``model.test_cfg.flip``) is the model's,
inside the graph. Another loader (mmcv's ``LoadImageFromFile`` decodes
BGR), another transform (a crop after the resize) or another data
preprocessor (mmengine's ``ImgDataPreprocessor`` with ``bgr_to_rgb``
swaps channels) is refused before anything is written, naming its config
key (:func:`check_data_path`): a deployment fed as ``mmreid.input`` says
would get other features than ``tools/test.py``.

``--verify`` runs onnxruntime (CPU) at two batch sizes, neither the
export's, on random RGB images of other sizes, prepared as the file's
metadata says (resized with ``mmreid.resize_*``, cast), and compares
with the model's features of the same images written as PNG files and
run through ``tools/test.py``'s path: the test pipeline, the model's data
preprocessor and its test forward (:func:`mmreid.apis.extract_features`),
before the rename; the exit status is 1, and no file is written (an
earlier one under that name is kept), when the largest absolute
difference exceeds ``--tolerance`` or is NaN (features that are not
finite: a diverged checkpoint).

``--modality`` is for modality-aware models (MBN norm layers, a two-stream
backbone): the graph computes the features of that modality; such a model
needs it, and any other model refuses it.

A model whose MBN layers normalise a test batch with its own statistics
(``eval_stats='batch'``) is refused: its features depend on the other
images of the batch, so the graph's would depend on the batches a
deployment feeds it, and match ``tools/test.py``'s only for its test
dataloader's batches (the legacy exporter also stops at such a layer,
with an ``AssertionError`` of its own). The message names the config key
that exports the running statistics instead, e.g. ``--cfg-options
model.backbone.norm_cfg.eval_stats=modality`` (``tools/test.py`` then
needs the same option to report the numbers of the exported features).
So is a batch norm layer without running statistics
(``track_running_stats=False``).

The graph is fp32: a config whose test loop extracts under fp16 autocast
(``test_cfg.fp16=True``, what ``tools/test.py --amp`` sets) is refused,
naming ``--cfg-options test_cfg.fp16=False``.
"""
import argparse
import json
import os.path as osp
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

from mmreid.registry import MODELS
from mmreid.utils import load_trusted_checkpoint, register_all_modules
from mmreid.utils.atomic import atomic_path
from mmreid.utils.config.options import ReIDDictAction
from mmreid.utils.pipeline_source import find_transform

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from onnx_graph_checks import check_batch_independent, check_data_path  # noqa
from onnx_verify import VerificationFailed, disagreement, verify  # noqa

EXPORTERS = ('dynamo', 'legacy')
EXPORT_BATCH = 2


class ImageFeatureModel(nn.Module):
    """Raw RGB images in, test features out.

    Args:
        model (nn.Module): A ReID model with a ``data_preprocessor`` holding
            ``mean`` and ``std`` (C, 1, 1) and a ``forward(inputs,
            mode='tensor')`` returning (N, D).
        modality (int, optional): Modality label passed to modality-aware
            models (0 visible, 1 infrared).
    """

    def __init__(self, model: nn.Module, modality: Optional[int] = None):
        super().__init__()
        self.model = model
        preprocessor = model.data_preprocessor
        self.register_buffer('mean', preprocessor.mean.detach().clone(), False)
        self.register_buffer('std', preprocessor.std.detach().clone(), False)
        self.modality = modality

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalise and extract features.

        Args:
            images (Tensor): (N, 3, H, W) RGB, 0-255.

        Returns:
            Tensor: (N, D) features.
        """
        inputs = (images.float() - self.mean) / self.std
        if self.modality is None:
            return self.model(inputs, mode='tensor')
        return self.model(inputs, mode='tensor', modality=self.modality)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Export a ReID model\'s features to ONNX')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='local checkpoint file')
    parser.add_argument(
        '--output-file', default='model.onnx', help='ONNX file to write')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input height and width (default: the test pipeline\'s '
        'ReIDResize size, which --shape sets: refused where it differs '
        'from the size the checkpoint was trained or converted with)')
    parser.add_argument(
        '--opset', type=int, default=18, help='ONNX opset (default 18)')
    parser.add_argument(
        '--exporter',
        choices=EXPORTERS,
        default=None,
        help='torch.export-based (dynamo, the default) or TorchScript-based '
        '(legacy, the default for a cross-modality model) exporter')
    parser.add_argument(
        '--modality',
        type=int,
        default=None,
        help='modality label for modality-aware models (0 visible, 1 '
        'infrared); required by them, an error for other models')
    parser.add_argument(
        '--target',
        default=None,
        help='multi-target configs whose targets\' test pipelines differ: '
        'the target (test_cfg.targets[i].name) whose pipeline sets the '
        'input size')
    parser.add_argument(
        '--features-only',
        action='store_true',
        help='export the features of a model that ranks with its own '
        'distance (e.g. GMN\'s M-Net), which the graph does not contain; '
        'the file records that its features are not the model\'s ranking')
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare onnxruntime, fed as the file says, with the model '
        'on the same image files through the test pipeline, at two batch '
        'sizes')
    parser.add_argument(
        '--tolerance',
        type=float,
        default=1e-3,
        help='largest accepted absolute feature difference (default 1e-3)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ReIDDictAction,
        help='override config keys, e.g. model.test_cfg.flip=True')
    args = parser.parse_args(argv)
    if not 0 <= args.tolerance < float('inf'):
        # NaN would pass every difference, a negative one fail every file.
        parser.error(f'--tolerance must be a finite number >= 0, got '
                     f'{args.tolerance}')
    return args


def _find_resize(pipeline) -> Optional[Tuple[int, int]]:
    found = find_transform(pipeline, 'ReIDResize')
    size = found[1].get('size') if found else None
    if isinstance(size, int):
        return size, size
    if size is not None and len(size) == 2:
        return int(size[0]), int(size[1])
    return None


def input_shape(cfg: Config,
                shape: Optional[Sequence[int]] = None,
                target: Optional[str] = None) -> Tuple[int, int]:
    """The (H, W) of the exported graph.

    Args:
        cfg (Config): The config.
        shape (Sequence[int], optional): Explicit (H, W).
        target (str, optional): The target of a multi-target test loop
            whose pipeline to read, where the targets' pipelines differ.

    Returns:
        tuple[int, int]: (H, W): ``shape``, else the ``ReIDResize`` size of
        the test pipeline that ``tools/test.py`` runs
        (:func:`mmreid.utils.pipeline_source.resolve_test_pipeline`).
    """
    from mmreid.utils.pipeline_source import resolve_test_pipeline
    if shape is not None:
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f'--shape must be two positive ints H W, got '
                             f'{shape}')
        if target is not None:
            resolve_test_pipeline(cfg, target, option='--target {}')
        return int(shape[0]), int(shape[1])
    try:
        source = resolve_test_pipeline(cfg, target, option='--target {}')
    except KeyError as error:
        raise ValueError(f'{error.args[0]} to set the input size; pass '
                         '--shape H W') from error
    size = _find_resize(source.pipeline)
    if size is None:
        raise ValueError(f'cannot find a ReIDResize in the test pipeline '
                         f'{source.path} to set the input size; pass '
                         '--shape H W')
    return size


def shape_option(size: Sequence[int]) -> str:
    """``--shape`` as given for ``size`` (H, W)."""
    return f'--shape {size[0]} {size[1]}'


def apply_shape(cfg: Config,
                shape: Optional[Sequence[int]] = None,
                target: Optional[str] = None) -> List[str]:
    """Set ``--shape`` as the ``ReIDResize`` size of the test pipeline.

    The graph takes images of ``shape``, so a deployment resizes them as
    a test pipeline of that size does: set in the config, the size is
    checked against the checkpoint's config or the converted source's
    facts (:func:`load_checkpoint`) as ``--cfg-options`` on it is, and the
    file records the pipeline the graph computes.

    Args:
        cfg (Config): The config, changed in place.
        shape (Sequence[int], optional): ``--shape`` (H, W); nothing is set
            without it.
        target (str, optional): As for :func:`input_shape`: only its
            pipelines are set.

    Returns:
        list[str]: The config keys set (``<pipeline>.<index>.size``), one
        per test pipeline with a ``ReIDResize``.
    """
    from mmreid.utils.pipeline_source import inference_pipelines
    if shape is None:
        return []
    keys = []
    for source in inference_pipelines(cfg):
        if target is not None and source.target != str(target):
            continue
        found = find_transform(source.pipeline, 'ReIDResize', source.path)
        if found is not None:
            keys.append(f'{source.path}.{found[0]}.size')
    cfg.merge_from_dict({key: [int(shape[0]), int(shape[1])] for key in keys})
    return keys


def choose_exporter(model: nn.Module, given: Optional[str] = None) -> str:
    """The exporter for ``model``: ``given``, else ``'dynamo'``, except
    for a cross-modality model.

    A model with modality-aware modules (MBN layers, a two-stream
    backbone; :func:`~mmreid.models.modality_routing.modality_aware_modules`)
    routes each sample by its modality label with data-dependent branches,
    where ``torch.export`` (the dynamo exporter) stops with
    ``GuardOnDataDependentSymNode``; the TorchScript exporter traces the
    one modality the graph computes. Such a model is exported with
    ``'legacy'`` by default, and ``'dynamo'`` is refused for it.

    Args:
        model (nn.Module): The model to export.
        given (str, optional): ``--exporter`` as given.

    Returns:
        str: ``'dynamo'`` or ``'legacy'``.
    """
    from mmreid.models.modality_routing import modality_aware_modules
    aware = bool(modality_aware_modules(model))
    if given is None:
        return 'legacy' if aware else 'dynamo'
    if given == 'dynamo' and aware:
        raise ValueError(
            '--exporter dynamo cannot export a cross-modality model (MBN '
            'layers, a two-stream backbone): torch.export stops at the '
            'data-dependent routing of its modality labels. Leave '
            '--exporter out or give --exporter legacy (the default for '
            'such a model; --verify checks the file against PyTorch)')
    return given


def input_resize(cfg: Config, target: Optional[str] = None) -> Dict[str, str]:
    """How the test pipeline that ``tools/test.py`` runs resizes images.

    The graph takes images already at its input size; another
    interpolation or resize library gives other features, so a deployment
    must resize as the test pipeline does.

    Args:
        cfg (Config): The config.
        target (str, optional): As for :func:`input_shape`.

    Returns:
        dict[str, str]: ``interpolation`` and ``backend`` of its
        ``ReIDResize`` (``ReIDResize``'s defaults where it sets none);
        empty where the pipeline has no ``ReIDResize``.
    """
    from mmreid.utils.pipeline_source import resolve_test_pipeline
    from mmreid.utils.trained_arch import RESIZE_DEFAULTS
    try:
        source = resolve_test_pipeline(cfg, target, option='--target {}')
    except KeyError:  # no pipeline to read (the size came from --shape)
        return {}
    found = find_transform(source.pipeline, 'ReIDResize', source.path)
    if found is None:
        return {}
    return {
        key: str(found[1].get(key, RESIZE_DEFAULTS[key]))
        for key in ('interpolation', 'backend')
    }


def load_checkpoint(model: nn.Module,
                    cfg: Config,
                    checkpoint: str,
                    shape_keys: Sequence[str] = ()) -> None:
    """Load a local trusted checkpoint with the rules of ``init_model``.

    Every model tensor must be in the checkpoint (a classifier trained on
    other identities is skipped: the exported features do not use it), and
    a converted checkpoint must come from the network the config builds
    (``meta['source_arch']``), an mmreid one from a run whose config
    builds that network and feeds it the same test images (``meta['cfg']``),
    as ``tools/test.py`` checks (:func:`~mmreid.utils.arch_check.
    check_source_arch`).

    Args:
        model (nn.Module): The built (bare) model.
        cfg (Config): Its config.
        checkpoint (str): A local trusted checkpoint.
        shape_keys (Sequence[str]): The config keys ``--shape`` set
            (:func:`apply_shape`): a size there that differs from the
            recorded one is refused naming ``--shape``.

    Raises:
        FileNotFoundError: The file does not exist.
        RuntimeError: The file cannot be read as a checkpoint, lacks model
            tensors or holds tensors of other shapes.
        ValueError: A converted checkpoint of another network.
    """
    from mmreid.utils.arch_check import check_source_arch
    from mmreid.utils.model_state import check_model_fits, load_model_state
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint file {checkpoint!r} does not '
                                'exist (only local files are exported)')
    try:
        state = load_trusted_checkpoint(checkpoint, map_location='cpu')
    except Exception as error:
        raise RuntimeError(f'cannot read checkpoint {checkpoint!r}: '
                           f'{type(error).__name__}: {error}') from error
    meta = state.get('meta') if isinstance(state, dict) else None
    check_model_fits(
        model, state, checkpoint, cfg=cfg, before_config_checks=True)
    # Its refusal names this tool's --cfg-options (and --shape); nothing
    # here accepts another config (tools/test.py's --strict false).
    check_source_arch(
        meta,
        model,
        cfg,
        checkpoint,
        test=True,
        opt_out='',
        own_options={key: shape_option
                     for key in shape_keys})
    load_model_state(
        model,
        state,
        checkpoint,
        strict=True,
        opt_out='nothing in this exporter (it exports whole models only)',
        cfg=cfg)


def build_model(
    cfg: Config,
    checkpoint: str,
    modality: Optional[int] = None,
    features_only: bool = False,
    target: Optional[str] = None,
    shape_keys: Sequence[str] = ()
) -> ImageFeatureModel:
    """Build the config's model, load the checkpoint and wrap it.

    Args:
        cfg (Config): The config.
        checkpoint (str): A local trusted checkpoint.
        modality (int, optional): See :class:`ImageFeatureModel`.
        features_only (bool): Accept a model that ranks with its own
            distance (``has_own_distance``), whose features alone are not
            its ranking. Defaults to False.
        target (str, optional): The target of a multi-target config whose
            test metric's ranking is recorded.
        shape_keys (Sequence[str]): See :func:`load_checkpoint`.

    Returns:
        ImageFeatureModel: In eval mode, on the CPU, with how
        ``tools/test.py`` ranks its features as ``ranking``
        (:func:`mmreid.apis.inference.evaluated_ranking`: the config's
        test metric, else the model's distance); the wrapped model has
        ``cfg`` and ``test_target``, as :func:`mmreid.apis.init_model`
        gives them.

    Raises:
        ValueError: ``modality`` for a model without modality-aware
            modules (it would be ignored), or none for a model with them;
            a model whose features depend on the batch
            (:func:`check_batch_independent`); a test pipeline or data
            preprocessor the graph does not reproduce
            (:func:`check_data_path`); a model with its own distance
            without ``features_only``; a config whose test loop extracts
            under fp16 autocast (``test_cfg.fp16``), which the fp32 graph
            does not.
    """
    from mmreid.apis.inference import evaluated_ranking, loop_fp16
    from mmreid.models.modality_routing import check_modality_option
    if loop_fp16(cfg, 'test'):
        raise ValueError(
            'test_cfg.fp16=True: tools/test.py extracts the features under '
            'fp16 autocast, but the exported graph computes them in fp32, '
            "so a deployment would not get the features tools/test.py "
            'evaluates. Export with --cfg-options test_cfg.fp16=False '
            '(tools/test.py reports the numbers of these features with '
            'the same option)')
    init_default_scope(cfg.get('default_scope', 'mmreid'))
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') \
        else dict(cfg.model)
    # Weights come from the checkpoint: never download pretrained ones.
    model_cfg.pop('init_cfg', None)
    model = MODELS.build(model_cfg)
    check_modality_option(model, modality)
    check_batch_independent(model, cfg)
    check_data_path(model, cfg, target)
    ranking = evaluated_ranking(model, cfg, 'test', target)
    if ranking['features_only'] and not features_only:
        raise ValueError(
            f'{type(model).__name__} ranks with its own distance '
            f'{ranking["ranking_distance"]!r} (its scorers(), e.g. GMN\'s '
            'M-Net), '
            'which the exported graph does not contain: it computes the '
            'features only, and a feature distance on them gives another '
            'ranking, so a deployment would not reproduce tools/test.py\'s '
            'primary numbers. Pass --features-only to export the features '
            'anyway (the file then records mmreid.features_only = true)')
    load_checkpoint(model, cfg, checkpoint, shape_keys)
    # What mmreid.apis.extract_features reads (see verify), as init_model
    # sets them.
    model.cfg, model.test_target = cfg, target
    wrapped = ImageFeatureModel(model, modality).eval()
    wrapped.ranking = ranking
    return wrapped


def onnx_metadata(ranking: dict,
                  shape: Tuple[int, int],
                  modality: Optional[int] = None,
                  resize: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The ``metadata_props`` of the exported file.

    Args:
        ranking (dict): How ``tools/test.py`` ranks the features
            (:func:`~mmreid.apis.inference.evaluated_ranking`).
        shape (tuple[int, int]): Input (H, W).
        modality (int, optional): The modality the graph computes.
        resize (dict, optional): :func:`input_resize` of the config.

    Returns:
        dict[str, str]: ``mmreid.*`` keys and their values.
    """
    from mmreid.apis.inference import RANK_RULES
    how = ''
    if resize:
        how = (f' with interpolation {resize["interpolation"]!r} of '
               f'{resize["backend"]!r} as the test pipeline does (another '
               'interpolation or library gives other features)')
    metadata = dict(
        input=f'input float32 (N, 3, {shape[0]}, {shape[1]}), RGB, 0-255, '
        f'resized to that size{how}; mean/std normalisation inside the '
        'graph',
        output='feature float32 (N, D), the model\'s test feature',
        ranking_distance=ranking['ranking_distance'],
        feature_normalization=ranking['feature_normalization'],
        features_only=str(bool(ranking['features_only'])).lower(),
        ranking_source=ranking['ranking_source'],
        note=ranking['ranking_note'])
    # Steps of the ranking the graph does not compute (JSON).
    for key in ('rerank', 'query_expansion'):
        if ranking.get(key) is not None:
            metadata[key] = json.dumps(ranking[key], sort_keys=True)
    # The metric's rank rules: the gallery items each query ignores and
    # how the numbers are counted.
    for key in RANK_RULES:
        if ranking.get(key) is not None:
            metadata[key] = ranking[key]
    for key, value in (resize or {}).items():
        metadata[f'resize_{key}'] = value
    if modality is not None:
        metadata['modality'] = modality
    return {f'mmreid.{k}': str(v) for k, v in metadata.items()}


def write_metadata(onnx_file: str, metadata: Dict[str, str]) -> None:
    """Set ``metadata`` in the ``metadata_props`` of ``onnx_file`` (keys
    already there are replaced, others kept)."""
    try:
        import onnx
    except ImportError as error:
        raise ImportError(
            'writing the ranking distance into the ONNX file needs onnx: '
            'pip install onnx (requirements/optional.txt)') from error
    proto = onnx.load(onnx_file)
    kept = [p for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    for prop in kept:
        proto.metadata_props.add(key=prop.key, value=prop.value)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, onnx_file)


def export(model: ImageFeatureModel,
           output_file: str,
           shape: Tuple[int, int],
           opset: int = 18,
           exporter: str = 'dynamo',
           check: Optional[Callable[[str], None]] = None,
           metadata: Optional[Dict[str, str]] = None) -> None:
    """Write ``model`` as ONNX with a dynamic batch axis, atomically.

    Args:
        model (ImageFeatureModel): The wrapped model.
        output_file (str): Destination; replaced only after success.
        shape (tuple[int, int]): Input (H, W).
        opset (int): ONNX opset version.
        exporter (str): ``'dynamo'`` or ``'legacy'``.
        check (Callable[[str], None], optional): Called with the path of
            the exported temporary file before it is renamed; an exception
            it raises (e.g. :class:`VerificationFailed`) leaves no file and
            ``output_file`` as it was. Defaults to None.
        metadata (dict[str, str], optional): ``metadata_props`` to write
            into the file (:func:`onnx_metadata`). Defaults to None.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f'exporter must be one of {EXPORTERS}, got '
                         f'{exporter!r}')
    if exporter == 'dynamo':
        try:
            import onnxscript  # noqa: F401
        except ImportError as error:
            raise ImportError(
                'the dynamo exporter needs onnxscript: pip install onnx '
                'onnxscript (requirements/optional.txt), or pass --exporter '
                'legacy') from error
    dummy = torch.randint(0, 256, (EXPORT_BATCH, 3, *shape)).float()
    # Written whole or not at all; a file a killed export leaves is
    # removed by the next write in its folder (see atomic_path).
    with atomic_path(output_file) as tmp_file:
        with torch.no_grad():
            if exporter == 'dynamo':
                torch.onnx.export(
                    model, (dummy, ),
                    tmp_file,
                    input_names=['input'],
                    output_names=['feature'],
                    opset_version=opset,
                    dynamo=True,
                    external_data=False,
                    dynamic_shapes=({
                        0: torch.export.Dim('batch')
                    }, ))
            else:
                torch.onnx.export(
                    model, (dummy, ),
                    tmp_file,
                    input_names=['input'],
                    output_names=['feature'],
                    opset_version=opset,
                    dynamo=False,
                    dynamic_axes={
                        'input': {
                            0: 'batch'
                        },
                        'feature': {
                            0: 'batch'
                        }
                    })
        if metadata:
            write_metadata(tmp_file, metadata)
        if check is not None:
            check(tmp_file)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    # read_config refuses a missing config with the closest names.
    from mmreid.utils.config import read_config
    from mmreid.utils.config.options import merge_cfg_options
    cfg = read_config(args.config, phase='test')
    merge_cfg_options(cfg, args.cfg_options, args.config, phase='test')
    shape = input_shape(cfg, args.shape, args.target)
    # --shape is the test pipeline's size: checked as --cfg-options on it.
    shape_keys = apply_shape(cfg, args.shape, args.target)
    model = build_model(cfg, args.checkpoint, args.modality,
                        args.features_only, args.target, shape_keys)
    exporter = choose_exporter(model, args.exporter)

    def check(onnx_file: str) -> None:
        reports = verify(model, onnx_file, shape)
        for r in reports:
            print(f'batch {r["batch"]}: max abs diff '
                  f'{r["max_abs_diff"]:.3g} (features up to '
                  f'{r["max_abs_feature"]:.3g})')
        over = disagreement(reports, args.tolerance)
        if over:
            raise VerificationFailed(
                f'verification FAILED: {over} between the '
                "file's features of images fed as its metadata says and the "
                "model's through tools/test.py's path (test pipeline, "
                f'data preprocessor); {args.output_file} not written')
        print(f'verification passed (tolerance {args.tolerance:g})')

    try:
        export(model, args.output_file, shape, args.opset, exporter,
               check if args.verify else None,
               onnx_metadata(model.ranking, shape, args.modality,
                             input_resize(cfg, args.target)))
    except VerificationFailed as error:
        print(error, file=sys.stderr)
        return 1
    print(f'exported {args.output_file} (input (N, 3, {shape[0]}, '
          f'{shape[1]}) RGB 0-255, exporter {exporter}, opset '
          f'{args.opset}{", verified" if args.verify else ""}); ranking: '
          f'{model.ranking["ranking_note"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
