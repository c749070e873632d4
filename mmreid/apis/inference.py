"""Extract features of images and rank a gallery with a built model.

Building the model and loading its weights is :mod:`.model`'s job
(:func:`init_model`, :func:`get_model`, re-exported here for one release);
taking or refusing the image and modality arguments is
:mod:`.inference_inputs`' (with :class:`ArgumentError`, exported here);
reading how the config's test metrics rank is :mod:`.rankings`' (its names
re-exported here).
"""
import os.path as osp
import re
from contextlib import nullcontext
from dataclasses import dataclass
from typing import ContextManager, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.config import Config

# One definition of "the images of a folder" for datasets and APIs: sorted
# file names (not paths) with an image extension, macOS ``._`` files
# skipped. Re-exported as ``mmreid.apis.list_images``.
from mmreid.datasets.base_reid_dataset import (  # noqa: F401
    IMG_EXTENSIONS, list_images)
from mmreid.evaluation.functional.junk_rules import JUNK_PID
from .inference_inputs import (ArgumentError, ImagesInput, _as_image_list,
                               _modality_labels, _Preprocessor)
from .model import get_model, init_model  # noqa: F401 (old import path)
from .rankings import (FEATURE_OPTION_EFFECTS,  # noqa: F401 (re-exported)
                       RANK_RULES, SAME_CAMERA_RULES, MetricRanking,
                       check_config_ranking, configured_rankings,
                       evaluated_ranking, same_camera_rule)

#: ``<pid>_c<camid>...``: Market-1501, DukeMTMC-reID and SynthReID names.
MARKET_NAME = re.compile(r'^(-?\d+)_c(\d+)')

#: Images per forward when ``batch_size`` is None and the features do not
#: depend on the batch.
DEFAULT_BATCH_SIZE = 32


def _test_pipeline(cfg: Config, target: Optional[str] = None) -> List[dict]:
    """The test pipeline that ``tools/test.py`` runs (see
    :func:`mmreid.utils.pipeline_source.resolve_test_pipeline`): the test
    dataloader's, or the one of every target of a multi-target test loop
    (``target`` chooses when they differ); a config with neither gives
    its ``test_pipeline``, then the validation pipeline."""
    from mmreid.utils.pipeline_source import resolve_test_pipeline
    return resolve_test_pipeline(
        cfg, target, option='init_model(..., target={})').pipeline


def loop_fp16(cfg: Config, phase: str = 'test') -> bool:
    """Whether the config's val/test loop extracts its features under fp16
    autocast: ``<phase>_cfg.fp16`` (mmengine's loop argument, which
    ``tools/test.py --amp`` sets), a multi-target loop's included.

    Args:
        cfg (Config): The config.
        phase (str): ``'test'`` or ``'val'``.

    Returns:
        bool: The loop's ``fp16``; False where it sets none.
    """
    loop = cfg.get(f'{phase}_cfg') or {}
    return bool(loop.get('fp16', False)) if isinstance(loop, dict) else False


def feature_fp16(model: nn.Module) -> bool:
    """Whether :func:`extract_features` runs the model under fp16
    autocast, as ``tools/test.py`` does for a config with
    ``test_cfg.fp16=True`` (its loop calls the test step under mmengine's
    ``autocast(enabled=fp16)``).

    The API ran such a model in fp32, so its features (and
    ``rank_gallery``'s lists, ``tools/extract_features.py``'s files) were
    not those ``tools/test.py`` evaluates. On the CPU the loops refuse
    ``fp16`` (mmengine's autocast would run bfloat16, see
    :func:`~mmreid.utils.config.runtime.check_loop_amp_device`), and so
    does this.

    Args:
        model (nn.Module): From :func:`init_model` (``model.cfg``).

    Returns:
        bool: True for ``test_cfg.fp16=True`` and a model on a CUDA
        device; False without the option (or without a config).

    Raises:
        RuntimeError: ``test_cfg.fp16=True`` and no CUDA device, or the
            model is not on one; naming the key and both fixes.
    """
    from mmreid.utils.config.runtime import check_loop_amp_device
    cfg = getattr(model, 'cfg', None)
    if cfg is None or not loop_fp16(cfg, 'test'):
        return False
    check_loop_amp_device(True, 'test_cfg.fp16')
    parameter = next(model.parameters(), None)
    device = torch.device('cpu') if parameter is None else parameter.device
    if device.type != 'cuda':
        raise RuntimeError(
            f'test_cfg.fp16=True: tools/test.py extracts the features under '
            f'fp16 autocast on a CUDA device, but the model is on {device}, '
            "where they would be another precision's. Put the model on the "
            "GPU (init_model(..., device='cuda'); the tools' --device "
            'cuda), or extract in fp32 with test_cfg.fp16=False '
            "(init_model(..., cfg_options={'test_cfg.fp16': False}); "
            '--cfg-options test_cfg.fp16=False), as tools/test.py then '
            'evaluates')
    return True


@torch.no_grad()
def extract_features(
        model: nn.Module,
        images: ImagesInput,
        batch_size: Optional[int] = None,
        modality: Optional[Union[int, Sequence[int]]] = None) -> torch.Tensor:
    """Test features of images with the config's test pipeline.

    The pipeline is the one ``tools/test.py`` runs: the test dataloader's,
    or that of the targets of a multi-target test loop (when they differ,
    the one of ``init_model(..., target=NAME)``; without it they are
    refused); a config with neither gives its ``test_pipeline``, then the
    validation pipeline (:func:`mmreid.utils.pipeline_source.
    resolve_test_pipeline`).

    The model is put in eval mode (BatchNorm running statistics), so the
    result does not depend on ``batch_size``; except for a model whose MBN
    layers normalise a test batch with its own statistics
    (``eval_stats='batch'``): its features are those of the images
    normalised together, so they go in one forward (``batch_size=None``)
    and more images than a given ``batch_size`` (several forwards, an
    arbitrary split) are refused. ``tools/extract_features.py
    --split test`` gives the features of the test dataloader's batches.

    A config with ``test_cfg.fp16=True`` (``tools/test.py``'s loop runs
    the model under fp16 autocast) gets its features under the same
    autocast, on a CUDA device only: a model elsewhere is refused
    (:func:`feature_fp16`). The result is fp32 either way.

    Args:
        model (nn.Module): From :func:`init_model` (needs ``model.cfg``).
        images: A path, a folder (its images, as
            :func:`~mmreid.datasets.list_images` lists them), an RGB
            ``uint8`` array (H, W, 3), or a list of paths and arrays.
            Arrays skip the pipeline's loading step, so they are refused
            when it loads otherwise than mmreid's ``ReIDLoadImageFromFile``
            (RGB): mmcv's ``LoadImageFromFile`` gives BGR. Anything else
            (a PIL image, a tensor, bytes, a folder inside the list, an
            empty array) is refused, named.
        batch_size (int, optional): Images per forward. None: 32
            (:data:`DEFAULT_BATCH_SIZE`), or all images in one forward for
            a model whose features depend on the batch. Defaults to None.
        modality (int | Sequence[int], optional): 0 visible, 1 infrared:
            an int for all images (a NumPy integer or a 0-d tensor too),
            or a sequence of ints, one per image; a bool, a fraction or a
            string is refused, not converted (as ``ReIDMetric`` refuses
            such labels). Needed by cross-modality (modality-aware)
            models, which refuse None, ignored by others (a dataset's
            records carry it for every model). Defaults to None.

    Returns:
        Tensor: Float features on the CPU, shape (N, D), in input order.

    Raises:
        TypeError: ``images`` (or an item of its list) is not an image
            this function takes, named with how to pass it.
        ValueError: A folder inside the list, an empty or non-RGB array,
            or a refused ``modality`` (:class:`ArgumentError`).
        RuntimeError: ``test_cfg.fp16=True`` with the model off CUDA
            (:func:`feature_fp16`).
    """
    if not hasattr(model, 'cfg'):
        raise AttributeError('the model has no .cfg (its config); build it '
                             'with mmreid.apis.init_model')
    fp16 = feature_fp16(model)
    images = _as_image_list(images)
    if not images:
        raise ValueError('no images given (an empty list or a folder '
                         'without image files)')
    batch_size = _batch_size(model, len(images), batch_size)
    modality = _modality_labels(modality, len(images))
    if modality is None:
        _check_modalities(model, 'modality=1: infrared images', modality=None)
    preprocess = _Preprocessor(model.cfg, getattr(model, 'test_target', None),
                               model.data_preprocessor)
    model.eval()
    feats = []
    for start in range(0, len(images), batch_size):
        batch = [
            preprocess(img, start + i)
            for i, img in enumerate(images[start:start + batch_size])
        ]
        if modality is not None:
            for i, item in enumerate(batch):
                item['data_samples'].set_metainfo(
                    dict(modality=modality[start + i]))
        # The loops' autocast covers the data preprocessor and the model.
        with _autocast(fp16):
            data = model.data_preprocessor(
                dict(
                    inputs=[b['inputs'] for b in batch],
                    data_samples=[b['data_samples'] for b in batch]), False)
            feats.append(
                model(data['inputs'], data['data_samples'],
                      mode='tensor').float().cpu())
    return torch.cat(feats)


def _autocast(fp16: bool) -> ContextManager:
    """mmengine's ``autocast(enabled=True)``, as the val/test loops enter
    it, for ``fp16``; else no context."""
    if not fp16:
        return nullcontext()
    from mmengine.runner.amp import autocast
    return autocast(enabled=True)


def parse_market_name(path: str):
    """``(pid, camera)`` from a Market-style file name, else ``(None,
    None)``.

    The camera is the file name's number, 1-based (``c1`` -> 1), not the
    0-based camid of the datasets, metrics and pictures: convert it with
    :func:`market_camid` (``c1`` -> camid 0).

    Example:
        >>> parse_market_name('0001_c1s1_001051_00.jpg')
        (1, 1)
        >>> market_camid(1)
        0
    """
    match = MARKET_NAME.match(osp.basename(path))
    if match is None:
        return None, None
    return int(match.group(1)), int(match.group(2))


def market_camid(camera: Optional[int]) -> Optional[int]:
    """The 0-based camid of a file name's camera number (``c1`` -> 0), as
    the datasets, metrics and pictures count cameras; None for no camera
    or ``c0`` (no camera of the 1-based convention)."""
    return camera - 1 if camera is not None and camera >= 1 else None


@dataclass
class RankedList:
    """The ranked gallery of one query.

    Attributes:
        query (str | None): Query path (None for an array).
        gallery (list[str]): The top-k gallery paths, closest first.
        indices (Tensor): Their indices in the gallery list as given
            (junk included), shape (k,).
        distances (Tensor): Their distances, shape (k,), scored on the
            gallery without its junk.
        matches (list[bool] | None): Whether each has the query's pid, when
            the file names carry pids (Market style), else None.
        has_positive (bool | None): Whether the whole ranked gallery (not
            only the top k; junk and, with ``exclude_same_camera``, the
            query's pid seen by its camera left out) holds an image of
            the query's pid, when the query's name and all of theirs carry
            pids, else None. ``tools/test.py`` skips a query without one
            (``num_valid_query``) rather than count it as a miss.
    """
    query: Optional[str]
    gallery: List[str]
    indices: torch.Tensor
    distances: torch.Tensor
    matches: Optional[List[bool]] = None
    has_positive: Optional[bool] = None


def _model_distances(model: nn.Module, query: torch.Tensor,
                     gallery: torch.Tensor) -> torch.Tensor:
    """Query-gallery distances (Q, G) by the model's distance."""
    from mmreid.models.reiders.reid_model import get_model_scorers
    scorers = get_model_scorers(model)
    if scorers:
        distance = next(iter(scorers.values()))
    else:
        distance = getattr(model, 'distance', None)
    if distance is None:
        from mmreid.evaluation.functional import compute_distance
        return compute_distance(query, gallery)
    return torch.as_tensor(distance(query, gallery)).float().cpu()


#: The pid that file names give distractors (Market-1501, SynthReID,
#: GRID: ``0000_...``): different people under one label, negatives of
#: every query; a query of it has no known match.
DISTRACTOR_PID = 0


def _own_files(model: nn.Module, queries: list,
               gallery: List[str]) -> List[set]:
    """Per query, the gallery columns that are its own file.

    Raises:
        ValueError: A query is in the gallery and the model's distance
            depends on the whole gallery (GMN's ``mnet_topk``), so its
            ranking would be made with its own copy among the candidates.
    """
    from mmreid.evaluation.metrics.scorers import is_gallery_dependent
    from mmreid.models.reiders.reid_model import get_model_scorers
    real = {}
    for column, path in enumerate(gallery):
        real.setdefault(osp.realpath(path), set()).add(column)
    own = [
        real.get(osp.realpath(q), set()) if isinstance(q, str) else set()
        for q in queries
    ]
    scorers = get_model_scorers(model)
    if any(own) and scorers and is_gallery_dependent(
            next(iter(scorers.values()))):
        first = next(q for q, columns in zip(queries, own) if columns)
        raise ValueError(
            f'the query {first!r} is in the gallery, and the model ranks '
            'by a distance that depends on the whole gallery (a top-k '
            'rerank): its own copy would take a candidate place. Rank it '
            'against a gallery without it')
    return own


def _batch_size(model: nn.Module,
                num_images: int,
                batch_size: Optional[int],
                what: str = 'images') -> int:
    """Images per forward for ``num_images`` images.

    A model whose features depend on the batch (MBN with
    ``eval_stats='batch'``, batch norm layers that keep no running
    statistics) normalises each forward's images together, so
    splitting the images into forwards would let the split decide the
    features: for it None means all images in one forward, and a smaller
    ``batch_size`` is refused. Other models' features do not depend on
    it; None means :data:`DEFAULT_BATCH_SIZE`.

    Args:
        model (nn.Module): The model.
        num_images (int): The images of one set.
        batch_size (int, optional): The size asked for.
        what (str): The set, for messages (``'query images'``).

    Raises:
        ArgumentError: ``batch_size`` < 1, or smaller than ``num_images``
            for a batch-dependent model.
        ValueError: Fewer images than a batch-dependent model's MBN layers
            normalise together (``min_per_modality``).
    """
    from mmreid.models.layers.mbn import (batch_statistics_layers,
                                          untracked_batch_norms,
                                          untracked_named)
    if batch_size is not None and batch_size < 1:
        raise ArgumentError(f'batch_size must be >= 1, got {batch_size}',
                            ['batch_size'])
    layers = batch_statistics_layers(model)
    if not layers:
        untracked = untracked_batch_norms(model)
        if untracked and batch_size is not None and num_images > batch_size:
            raise ArgumentError(
                f"the model's {untracked_named(untracked[:1])}: each "
                "forward's images are normalised with their own "
                f'statistics, so {num_images} images in batches of '
                f'{batch_size} would get features that depend on that '
                f'split. Leave batch_size out or pass batch_size >= '
                f'{num_images} (the images normalised as one batch)',
                ['batch_size'])
        if untracked:
            return max(num_images, 1) if batch_size is None else batch_size
        return DEFAULT_BATCH_SIZE if batch_size is None else batch_size
    least = max(model.get_submodule(name).min_per_modality for name in layers)
    if 0 < num_images < least:
        raise ValueError(
            f"the model's MBN layers (e.g. {layers[0]!r}) use eval_stats="
            "'batch': they normalise the images of a modality with their "
            f'own statistics, which needs >= {least} images of it '
            f'(min_per_modality); {what} given: {num_images}. Give >= '
            f"{least}, or set eval_stats='modality' (running statistics)")
    if batch_size is not None and num_images > batch_size:
        raise ArgumentError(
            f"the model's MBN layers (e.g. {layers[0]!r}) use "
            "eval_stats='batch': each forward's images are normalised with "
            f'their own statistics, so {num_images} images in batches of '
            f'{batch_size} would get features that depend on that split. '
            f'Leave batch_size out or pass batch_size >= {num_images} (the '
            'images normalised as one batch), use tools/extract_features.py '
            "--split test for the test dataloader's batches, or set "
            "eval_stats='modality'", ['batch_size'])
    return max(num_images, 1) if batch_size is None else batch_size


def _check_modalities(model: nn.Module, example: str,
                      **options: Optional[int]) -> None:
    """Ask a modality-aware model's modalities, and refuse them for a
    model that would ignore them, by the names of the API's arguments
    (``query_modality``/``gallery_modality`` of :func:`rank_gallery`,
    ``modality`` of :func:`extract_features`; see
    :func:`~mmreid.models.modality_routing.check_modality_options`;
    ``example`` shows them set, for the message asking for them).

    Raises:
        ArgumentError: A modality missing for a model with modality-aware
            modules, or given for a model without them.
    """
    from mmreid.models.modality_routing import check_modality_options
    try:
        check_modality_options(model, options, example)
    except ValueError as error:
        raise ArgumentError(str(error), list(options)) from None


@torch.no_grad()
def rank_gallery(model: nn.Module,
                 query: ImagesInput,
                 gallery: Union[str, Sequence[str]],
                 topk: int = 10,
                 batch_size: Optional[int] = None,
                 exclude_same_camera: Optional[bool] = None,
                 query_modality: Optional[int] = None,
                 gallery_modality: Optional[int] = None) -> List[RankedList]:
    """Rank a gallery for each query image by the model's distance.

    The distance is the model's own (its primary scorer, e.g. GMN's
    M-Net: the contract the val/test loops apply, see
    ``ReIDModel.scorers``), else ``model.distance`` (Euclidean or
    cosine), else Euclidean; a config whose test metric ranks otherwise
    (``test_evaluator.distance='cosine'`` on a Euclidean model, any
    ``rerank`` or ``query_expansion``, or a ``tie_policy`` other than
    ``'stable'``) is refused, as ``tools/test.py`` would report another
    ranking (see :func:`check_config_ranking`). Ties are broken by
    gallery order (stable sort). Gallery images named
    as junk (``-1_c...``, pid -1) are left out before the gallery is
    scored, as the datasets drop them before ``tools/test.py`` scores it
    (a gallery-dependent scorer such as GMN's ``mnet_topk`` never sees
    them). When query and gallery names are Market style
    (``0001_c1...``), each gallery item's match is known
    and, with ``exclude_same_camera``, the Market protocol is applied:
    items of the query's pid seen by the query's camera (the same
    tracklet, not a retrieval) are left out too. By default
    (``exclude_same_camera=None``) that follows the config's test metric
    as ``tools/test.py`` does: ``junk_rule='market'`` (``ReIDMetric``'s
    default) leaves them out, ``'none'`` keeps them, and another rule
    (``'sysu'``) is refused (see :func:`same_camera_rule`). Ranking a
    Market-layout test set (its queries, its gallery folder) so, the
    top-1 matches of the lists whose ``has_positive`` is True give
    ``tools/test.py``'s R1 (``ap_mode`` and ``cmc_mode`` change its mAP
    and R2 onwards, not R1): a query whose gallery holds no image of its
    pid is skipped there, not counted as a miss. An ``exclude_same_camera``
    given ranks under that rule whatever the config says, so its lists
    are then those of ``tools/test.py`` only where the config's rule is
    the same.

    Args:
        model (nn.Module): From :func:`init_model`.
        query: Query image(s), as in :func:`extract_features`.
        gallery (str | Sequence[str]): A folder or a list of image paths.
        topk (int): Length of each ranked list. Defaults to 10.
        batch_size (int, optional): Images per forward. None: 32, or for
            a model whose features depend on the batch (MBN with
            ``eval_stats='batch'``) the queries in one forward and the
            gallery images in another (each set normalised as one batch,
            see :func:`extract_features`); a given one must then hold
            each set. Defaults to None.
        exclude_same_camera (bool, optional): Leave out the gallery
            items of the query's pid and camera when the names carry
            labels (the Market protocol). False keeps them (junk stays
            out). None: as the config's test metric's ``junk_rule``
            (:func:`same_camera_rule`). Defaults to None.
        query_modality (int, optional): 0 visible or 1 infrared, for
            cross-modality models (see :func:`extract_features`), which
            need it; refused for other models, which would ignore it.
        gallery_modality (int, optional): Likewise for the gallery.

    Returns:
        list[RankedList]: One per query.

    Raises:
        ArgumentError: A refused argument, named (:meth:`ArgumentError.
            spelled` names it as a tool's option).
        ValueError: A config whose test metric ranks otherwise
            (:func:`check_config_ranking`, :func:`same_camera_rule`).
    """
    if topk < 1:
        raise ArgumentError(f'topk must be >= 1, got {topk}', ['topk'])
    # Before any extraction.
    feature_fp16(model)
    check_config_ranking(model)
    exclude_same_camera = same_camera_rule(model, exclude_same_camera)
    _check_modalities(
        model,
        'query_modality=1, gallery_modality=0: infrared queries, a visible '
        'gallery',
        query_modality=query_modality,
        gallery_modality=gallery_modality)
    queries = _as_image_list(query, 'query')
    gallery_paths = _as_image_list(gallery, 'gallery')
    for index, path in enumerate(gallery_paths):
        if not isinstance(path, str):
            raise TypeError(f'gallery[{index}]: expected an image path (a '
                            'ranked list names its gallery images by path), '
                            f'got {type(path).__name__}')
    if not gallery_paths:
        raise ValueError(f'the gallery {gallery!r} has no images')
    # Junk (pid -1) is no gallery item: left out before scoring, as the
    # datasets drop it before tools/test.py's metric scores the gallery.
    # A gallery-dependent scorer (GMN's mnet_topk, whose candidates are
    # the gallery's k nearest) would otherwise rank with it.
    g_labels = [parse_market_name(p) for p in gallery_paths]
    scored = torch.tensor(
        [i for i, (pid, _) in enumerate(g_labels) if pid != JUNK_PID],
        dtype=torch.long)
    if not len(scored):
        raise ValueError(f'the gallery {gallery!r} holds only junk images '
                         f'(pid {JUNK_PID}, named "{JUNK_PID}_c..."), which '
                         'are never ranked: give a gallery with other images')
    # Both sets' labels and forwards are checked before either is
    # extracted.
    query_modality = _modality_labels(query_modality, len(queries),
                                      'query_modality')
    gallery_modality = _modality_labels(gallery_modality, len(scored),
                                        'gallery_modality')
    q_batch = _batch_size(model, len(queries), batch_size, 'query images')
    g_batch = _batch_size(model, len(scored), batch_size, 'gallery images')
    q_feats = extract_features(model, queries, q_batch, query_modality)
    g_feats = extract_features(model,
                               [gallery_paths[i] for i in scored.tolist()],
                               g_batch, gallery_modality)
    dist = _model_distances(model, q_feats, g_feats)
    own = _own_files(model, queries, [gallery_paths[i] for i in scored])
    results = []
    for q, row, own_items in zip(queries, dist, own):
        q_path = q if isinstance(q, str) else None
        q_pid, q_cam = parse_market_name(q_path) if q_path \
            else (None, None)
        if q_pid == DISTRACTOR_PID:
            # different people under one label: its matches are unknown
            q_pid = q_cam = None
        # The query's pid seen by its camera is left out after scoring,
        # as the metric's junk rule does, unless exclude_same_camera=False;
        # the query's own file always (no protocol ranks an image against
        # itself).
        same_camera = exclude_same_camera and q_pid is not None
        kept = [
            not (same_camera and g_labels[i] == (q_pid, q_cam))
            and column not in own_items
            for column, i in enumerate(scored.tolist())
        ]
        candidates = torch.tensor(kept, dtype=torch.bool).nonzero().flatten()
        order = torch.sort(row[candidates], stable=True).indices[:topk]
        columns = candidates[order]
        indices = scored[columns]
        matches = has_positive = None
        if q_pid is not None and all(g_labels[i][0] is not None
                                     for i in indices):
            matches = [g_labels[i][0] == q_pid for i in indices.tolist()]
        ranked = [g_labels[i][0] for i in scored[candidates].tolist()]
        if q_pid is not None and None not in ranked:
            has_positive = q_pid in ranked
        results.append(
            RankedList(
                query=q_path,
                gallery=[gallery_paths[i] for i in indices.tolist()],
                indices=indices,
                distances=row[columns],
                matches=matches,
                has_positive=has_positive))
    return results


__all__ = [
    'init_model', 'get_model', 'extract_features', 'rank_gallery',
    'RankedList', 'ArgumentError', 'parse_market_name', 'market_camid',
    'list_images', 'configured_rankings', 'evaluated_ranking'
]
