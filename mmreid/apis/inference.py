"""Extract features of images and rank a gallery with a built model.

Building the model and loading its weights is :mod:`.model`'s job
(:func:`init_model`, :func:`get_model`, re-exported here for one release);
taking or refusing the image and modality arguments is
:mod:`.inference_inputs`' (with :class:`ArgumentError`, exported here).
"""
import inspect
import os.path as osp
import re
from contextlib import nullcontext
from dataclasses import dataclass
from typing import (Any, ContextManager, List, NamedTuple, Optional, Sequence,
                    Union)

import torch
import torch.nn as nn
from mmengine.config import Config

# One definition of "the images of a folder" for datasets and APIs: sorted
# file names (not paths) with an image extension, macOS ``._`` files
# skipped. Re-exported as ``mmreid.apis.list_images``.
from mmreid.datasets.base_reid_dataset import (  # noqa: F401
    IMG_EXTENSIONS, list_images)
from mmreid.evaluation.functional.junk_rules import JUNK_PID
from mmreid.evaluation.metrics.scorers import given_distance
from .inference_inputs import (ArgumentError, ImagesInput, _as_image_list,
                               _modality_labels, _Preprocessor)
from .model import get_model, init_model  # noqa: F401 (old import path)
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


class MetricRanking(NamedTuple):
    """How one configured test metric ranks features (``tools/test.py``).

    Attributes:
        key (str): The metric's config key, e.g. ``'test_evaluator'`` or
            ``'test_cfg.targets.1.evaluator'``.
        distance (str): Its feature distance (its class default when the
            config gives none).
        normalize (bool): Whether it L2-normalises the features first.
        rerank (dict | None): Its k-reciprocal re-ranking options.
        query_expansion (dict | None): Its query expansion options.
        junk_rule (str): The gallery items each query ignores
            (``'market'``, ``'none'``, ``'sysu'``).
        tie_policy (str): How equal distances are ordered.
        ap_mode (str): How AP is computed (changes mAP, not the ranking).
        cmc_mode (str): How CMC counts ranks (changes R2 and beyond, not
            the ranking).

    The last four are the metric's rank rules, its class default where
    the config gives none (:data:`RANK_RULES`).
    """
    key: str
    distance: str
    normalize: bool
    rerank: Optional[dict]
    query_expansion: Optional[dict]
    junk_rule: str = 'market'
    tie_policy: str = 'stable'
    ap_mode: str = 'cumsum'
    cmc_mode: str = 'standard'


#: The rank rules of a metric (``ReIDMetric``'s arguments) that change
#: what ``tools/test.py`` reports of a ranking: which gallery items count
#: and how ties order (``junk_rule``, ``tie_policy``: the ranked lists),
#: how AP and CMC are counted (``ap_mode``, ``cmc_mode``: the numbers).
RANK_RULES = ('junk_rule', 'tie_policy', 'ap_mode', 'cmc_mode')


def _metric_default(cls: type, argument: str) -> Any:
    """The default of ``argument`` in the constructor of ``cls`` or of the
    first base class that declares it (a protocol metric passes its own
    ``junk_rule`` default on, others take ``ReIDMetric``'s through
    ``**kwargs``); None where none does."""
    for klass in cls.__mro__:
        init = vars(klass).get('__init__')
        if init is None:
            continue
        parameter = inspect.signature(init).parameters.get(argument)
        if parameter is not None \
                and parameter.default is not inspect.Parameter.empty:
            return parameter.default
    return None


def configured_rankings(cfg: Config,
                        phase: str = 'test',
                        target: Optional[str] = None) -> List[MetricRanking]:
    """The ranking of the primary metric of every evaluator of a phase.

    Args:
        cfg (Config): The model's config.
        phase (str): ``'test'`` (``test_evaluator``/``test_cfg.targets``)
            or ``'val'``.
        target (str, optional): Only this target's, for a multi-target
            loop; None: every target's.

    Returns:
        list[MetricRanking]: One per evaluator whose metric mmreid knows
        (others are checked by the loops), in config order.
    """
    from mmreid.registry import METRICS
    loop = cfg.get(f'{phase}_cfg') or {}
    targets = loop.get('targets') if isinstance(loop, dict) else None
    if targets:
        evaluators = [(f'{phase}_cfg.targets.{i}.evaluator',
                       t.get('evaluator')) for i, t in enumerate(targets)
                      if target is None or t.get('name') == target]
    else:
        evaluators = [(f'{phase}_evaluator', cfg.get(f'{phase}_evaluator'))]
    found = []
    for key, evaluator in evaluators:
        # mmengine's dict(type='Evaluator', metrics=[...]) form.
        if isinstance(evaluator, dict) and 'metrics' in evaluator:
            key, evaluator = f'{key}.metrics', evaluator['metrics']
        if isinstance(evaluator, (list, tuple)):
            key, evaluator = f'{key}.0', evaluator[0] if evaluator else None
        if not isinstance(evaluator, dict) or 'type' not in evaluator:
            continue
        try:
            cls = METRICS.get(evaluator['type'])
        except KeyError:
            cls = None
        if cls is None:
            continue  # not a metric mmreid knows: the loops check it
        # ReIDMetric's rule for distance= and its deprecated alias
        # metric=: both given is refused, as tools/test.py refuses it.
        distance = given_distance(key, evaluator.get('distance'),
                                  evaluator.get('metric'))
        if distance is None:
            distance = getattr(cls, 'default_distance', 'euclidean')
        rules = {
            rule: evaluator.get(rule, _metric_default(cls, rule))
            for rule in RANK_RULES
        }
        if isinstance(distance, str):
            found.append(
                MetricRanking(
                    key, distance, bool(evaluator.get('normalize', False)),
                    evaluator.get('rerank'), evaluator.get('query_expansion'),
                    **{
                        rule: value
                        for rule, value in rules.items() if value is not None
                    }))
    return found


def _plain_options(options: Optional[dict]) -> Optional[dict]:
    return None if options is None else dict(options)


def evaluated_ranking(model: nn.Module,
                      cfg: Optional[Config] = None,
                      phase: str = 'test',
                      target: Optional[str] = None) -> dict:
    """How ``tools/test.py`` ranks a model's features, for the files that
    carry them without it (``extract_features.py``'s ``meta.json``, an
    ONNX graph's metadata).

    A model with its own distance (GMN's M-Net) ranks by it
    (:func:`mmreid.models.reiders.reid_model.feature_ranking`); otherwise
    the config's metric does (its ``distance``, ``normalize``, ``rerank``
    and ``query_expansion``, :func:`configured_rankings`): the
    validation evaluator's for ``phase='val'``, else the test
    evaluator's, only ``target``'s where one is given. The model's
    ``distance`` counts only for a config without such a metric. The
    metric's rank rules (:data:`RANK_RULES`: ``junk_rule``,
    ``tie_policy``, ``ap_mode``, ``cmc_mode``) are recorded for every
    model, None without a metric mmreid knows.

    Args:
        model (nn.Module): The model.
        cfg (Config, optional): Its config; defaults to ``model.cfg``
            (:func:`init_model`'s), none: the model's own distance.
        phase (str): ``'test'`` or ``'val'``.
        target (str, optional): A target of a multi-target loop.

    Returns:
        dict: ``ranking_distance``, ``feature_normalization`` (``'l2'``,
        ``'none'`` or ``'model'``), ``features_only``, ``ranking_source``
        (the config key it was read from), ``rerank``,
        ``query_expansion``, ``ranking_note`` and the rank rules.

    Raises:
        ValueError: The targets' metrics rank differently (or count
            their rankings under different rank rules) and no ``target``
            chooses one; a metric gives both ``distance`` and its alias
            ``metric``; or a metric ranks otherwise than the
            model's own (non-default) ``distance``, which ``tools/test.py``
            refuses, so no ranking can be recorded.
    """
    from mmreid.engine.runner.reid_loops import _ranks_as
    from mmreid.models.reiders.reid_model import feature_ranking
    ranking = feature_ranking(model)
    meta = dict(
        ranking_distance=ranking['distance'],
        feature_normalization=ranking['normalization'],
        features_only=ranking['own_distance'],
        ranking_source='model.scorers()'
        if ranking['own_distance'] else 'model.distance',
        rerank=None,
        query_expansion=None,
        ranking_note=ranking['note'],
        **dict.fromkeys(RANK_RULES))
    cfg = getattr(model, 'cfg', None) if cfg is None else cfg
    rankings = [] if cfg is None else configured_rankings(cfg, phase, target)
    # A model's own distance replaces the metrics' feature options.
    fields = RANK_RULES if ranking['own_distance'] \
        else MetricRanking._fields[1:]
    if len({repr([getattr(r, f) for f in fields]) for r in rankings}) > 1:
        shown = '; '.join(f'{r.key}: ' + ', '.join(f'{f}={getattr(r, f)!r}'
                                                   for f in fields)
                          for r in rankings)
        raise ValueError(
            f'the targets of {phase}_cfg rank their features differently '
            f'({shown}), so no single ranking of these features can be '
            f'recorded: give one target at a time (--target NAME, '
            f'{phase}_cfg.targets[i].name)')
    if not rankings:
        return meta
    metric = rankings[0]
    meta.update({rule: getattr(metric, rule) for rule in RANK_RULES})
    if ranking['own_distance']:
        return meta
    own = ranking['distance']
    if own != 'euclidean' and _ranks_as(own, False) is not None and \
            _ranks_as(metric.distance, metric.normalize) not in (
                None, _ranks_as(own, False)):
        raise ValueError(
            f'model.distance={own!r} but {metric.key} ranks with '
            f'distance={metric.distance!r}, normalize={metric.normalize}: '
            f'tools/test.py refuses this config, so no ranking of its '
            f'features can be recorded. Set the same distance in both')
    l2 = metric.distance == 'cosine' or metric.normalize \
        or metric.query_expansion is not None
    steps = []
    if metric.query_expansion is not None:
        steps.append(
            'replace each query by its alpha-QE with its nearest gallery '
            f'features ({_plain_options(metric.query_expansion)})')
    if l2:
        steps.append('L2-normalise')
    steps.append(f'{metric.distance} distance, smaller = closer')
    if metric.rerank is not None:
        steps.append('k-reciprocal re-ranking over all the queries and the '
                     f'gallery ({_plain_options(metric.rerank)})')
    steps.append(f'rank rules junk_rule={metric.junk_rule!r}, tie_policy='
                 f'{metric.tie_policy!r}, ap_mode={metric.ap_mode!r}, '
                 f'cmc_mode={metric.cmc_mode!r}')
    meta.update(
        ranking_distance=metric.distance,
        feature_normalization='l2' if l2 else 'none',
        ranking_source=metric.key,
        rerank=_plain_options(metric.rerank),
        query_expansion=_plain_options(metric.query_expansion),
        ranking_note=(f'rank these features as tools/test.py does ('
                      f'{metric.key}): {", then ".join(steps)}'))
    return meta


#: What each feature option of a metric does to tools/test.py's ranking.
FEATURE_OPTION_EFFECTS = dict(
    rerank='re-ranks the distances (k-reciprocal re-ranking, over all the '
    'test queries and the gallery)',
    query_expansion='replaces each query by its expansion with its '
    'nearest gallery features before ranking')


def check_config_ranking(model: nn.Module) -> None:
    """Refuse to rank otherwise than ``tools/test.py`` would.

    ``rank_gallery`` ranks by the model's distance; ``tools/test.py`` by
    the config's test metric. A metric that re-ranks or expands queries
    (``rerank``, ``query_expansion``) ranks otherwise than any distance
    of two features: refused for every model. The loops refuse a metric
    that contradicts a non-default ``model.distance``, but a default
    (Euclidean) model may be evaluated with a cosine metric, which gave
    two rankings of one model: ``test_evaluator.distance=cosine``
    reported the cosine R1 while ``rank_gallery`` ranked Euclidean.
    (A model with its own distance, GMN's M-Net, is ranked by it, which
    the loops hand to the metric whatever distance it names.) A
    ``tie_policy`` other than ``'stable'`` orders equal distances by
    their labels, which ``rank_gallery`` (a stable sort) does not: refused
    too. (Which gallery items are left out follows the metric's
    ``junk_rule``, see :func:`same_camera_rule`; ``ap_mode`` and
    ``cmc_mode`` change how the numbers are counted, not the lists.)

    Raises:
        ValueError: Naming the metric's key, the option or both distances,
            and the fix.
    """
    from mmreid.engine.runner.reid_loops import _ranks_as
    from mmreid.models.reiders.reid_model import get_model_scorers
    cfg = getattr(model, 'cfg', None)
    if cfg is None:
        return
    rankings = configured_rankings(cfg, 'test',
                                   getattr(model, 'test_target', None))
    for ranking in rankings:
        for option, effect in FEATURE_OPTION_EFFECTS.items():
            value = getattr(ranking, option)
            if value is None:
                continue
            raise ValueError(
                f"the config's {ranking.key}.{option}={value!r}: "
                f'tools/test.py {effect}, which rank_gallery does not do, '
                f'so its lists would not be those tools/test.py '
                f'evaluates. Rank without it (init_model(..., cfg_options='
                f"{{'{ranking.key}.{option}': None}}); on the command line "
                f'--cfg-options {ranking.key}.{option}=None), or draw the '
                'lists that tools/test.py ranks with its '
                '--show-ranked-lists')
        if ranking.tie_policy != 'stable':
            raise ValueError(
                f"the config's {ranking.key}.tie_policy="
                f"{ranking.tie_policy!r}: tools/test.py orders equal "
                'distances by whether they match the query, which '
                'rank_gallery (a stable sort, in gallery order) does not, '
                'so its lists would not be those tools/test.py evaluates. '
                "Rank with tie_policy='stable' (init_model(..., cfg_options="
                f"{{'{ranking.key}.tie_policy': 'stable'}}); on the command "
                f'line --cfg-options {ranking.key}.tie_policy=stable)')
    own = getattr(model, 'distance_type', None)
    if get_model_scorers(model) or not isinstance(own, str) \
            or _ranks_as(own, False) is None:
        return
    for ranking in rankings:
        key, distance, normalize = ranking[:3]
        theirs = _ranks_as(distance, normalize)
        if theirs is not None and theirs != _ranks_as(own, False):
            want = 'cosine' if theirs == 'cosine' else 'euclidean'
            raise ValueError(
                f'rank_gallery ranks by model.distance={own!r}, but the '
                f'config\'s {key} (distance={distance!r}, normalize='
                f'{normalize}) ranks by {theirs} distance, so its lists '
                f'would not be those tools/test.py evaluates: set '
                f'model.distance={want!r} (init_model(..., cfg_options='
                f"{{'model.distance': {want!r}}}); on the command line "
                f'--cfg-options model.distance={want}), or make the metric '
                'rank as the model does')


#: The ``junk_rule`` values ``rank_gallery`` applies, and the
#: ``exclude_same_camera`` that applies each.
SAME_CAMERA_RULES = dict(market=True, none=False)


def same_camera_rule(model: nn.Module,
                     exclude_same_camera: Optional[bool] = None) -> bool:
    """Whether ``rank_gallery`` leaves out the gallery items of the
    query's pid seen by the query's camera.

    Given (True or False), as given. None: as the config's test metric
    does (``tools/test.py``): its ``junk_rule`` ``'market'`` leaves them
    out, ``'none'`` keeps them; a config without a metric mmreid knows
    gets ``ReIDMetric``'s default, ``'market'``. ``tools/test.py`` kept
    them under ``test_evaluator.junk_rule=none`` while ``rank_gallery``
    left them out, and its R1 was not that of the lists.

    Args:
        model (nn.Module): From :func:`init_model` (``cfg``,
            ``test_target``).
        exclude_same_camera (bool, optional): The caller's choice; None
            follows the config.

    Returns:
        bool: Whether to leave them out.

    Raises:
        ValueError: None given and the config's rule is another (SYSU's
            ``'sysu'``, which removes a camera of every pid), or the
            targets of a multi-target loop (no ``target`` chosen) have
            different rules; naming the key, the rule and the fix.
    """
    if exclude_same_camera is not None:
        return bool(exclude_same_camera)
    cfg = getattr(model, 'cfg', None)
    rankings = [] if cfg is None else configured_rankings(
        cfg, 'test', getattr(model, 'test_target', None))
    rules = {ranking.junk_rule for ranking in rankings}
    if len(rules) > 1:
        shown = ', '.join(f'{r.key}.junk_rule={r.junk_rule!r}'
                          for r in rankings)
        raise ValueError(
            f'the targets of test_cfg leave out different gallery items '
            f'({shown}): choose one with init_model(..., target=NAME), '
            'or pass exclude_same_camera=True or False')
    for ranking in rankings:
        if ranking.junk_rule not in SAME_CAMERA_RULES:
            raise ValueError(
                f"the config's {ranking.key}.junk_rule="
                f'{ranking.junk_rule!r}: tools/test.py leaves out gallery '
                'items by that rule, and rank_gallery applies only '
                "'market' (the query's pid seen by its camera) and 'none', "
                'so its lists would not be those tools/test.py evaluates. '
                'Rank under one of them: init_model(..., cfg_options='
                f"{{'{ranking.key}.junk_rule': 'market'}}) (on the command "
                f'line --cfg-options {ranking.key}.junk_rule=market), or '
                'pass exclude_same_camera=True or False '
                '(demo/rank_gallery.py: --keep-same-camera)')
        return SAME_CAMERA_RULES[ranking.junk_rule]
    from mmreid.evaluation.metrics import ReIDMetric
    return SAME_CAMERA_RULES[_metric_default(ReIDMetric, 'junk_rule')]


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


def _batch_size(model: nn.Module,
                num_images: int,
                batch_size: Optional[int],
                what: str = 'images') -> int:
    """Images per forward for ``num_images`` images.

    A model whose features depend on the batch (MBN with
    ``eval_stats='batch'``) normalises each forward's images together, so
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
    from mmreid.models.layers.mbn import batch_statistics_layers
    if batch_size is not None and batch_size < 1:
        raise ArgumentError(f'batch_size must be >= 1, got {batch_size}',
                            ['batch_size'])
    layers = batch_statistics_layers(model)
    if not layers:
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
    results = []
    for q, row in zip(queries, dist):
        q_path = q if isinstance(q, str) else None
        q_pid, q_cam = parse_market_name(q_path) if q_path \
            else (None, None)
        # The query's pid seen by its camera is left out after scoring,
        # as the metric's junk rule does, unless exclude_same_camera=False.
        same_camera = exclude_same_camera and q_pid is not None
        kept = [
            not (same_camera and g_labels[i] == (q_pid, q_cam))
            for i in scored.tolist()
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
