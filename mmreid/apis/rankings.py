"""How a config's test metrics rank features, for the entry points that
rank or record a ranking outside ``tools/test.py``.

:func:`configured_rankings` reads the test metrics' distance and ranking
rules from a config (:class:`MetricRanking`, :data:`RANK_RULES`);
:func:`evaluated_ranking` is the one ``tools/test.py`` reports, which
``tools/extract_features.py`` and ``tools/deployment/pytorch2onnx.py``
record; :func:`check_config_ranking` refuses a config whose ranking
:func:`~mmreid.apis.inference.rank_gallery` cannot reproduce, and
:func:`same_camera_rule` gives the junk rule it follows. Moved from
:mod:`.inference`, which re-exports these names.
"""
import inspect
from typing import Any, List, NamedTuple, Optional

import torch.nn as nn
from mmengine.config import Config

from mmreid.evaluation.metrics.scorers import given_distance


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


def _configured_metrics(cfg: Config, phase: str, target: Optional[str]):
    """``(key, evaluator, cls)`` of the primary metric of every evaluator
    of a phase whose metric mmreid knows, in config order (see
    :func:`configured_rankings`)."""
    from mmreid.registry import METRICS
    loop = cfg.get(f'{phase}_cfg') or {}
    targets = loop.get('targets') if isinstance(loop, dict) else None
    if targets:
        evaluators = [(f'{phase}_cfg.targets.{i}.evaluator',
                       t.get('evaluator')) for i, t in enumerate(targets)
                      if target is None or t.get('name') == target]
    else:
        evaluators = [(f'{phase}_evaluator', cfg.get(f'{phase}_evaluator'))]
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
        yield key, evaluator, cls


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
    found = []
    for key, evaluator, cls in _configured_metrics(cfg, phase, target):
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
    # Re-ranking starts from squared Euclidean distances whatever the
    # metric's distance (cosine only normalises the features first).
    distance = metric.distance if metric.rerank is None else 'sqeuclidean'
    if metric.rerank is None:
        steps.append(f'{distance} distance, smaller = closer')
    else:
        steps.append(
            'k-reciprocal re-ranking over all the queries and the gallery '
            'from squared Euclidean distances, each row divided by its '
            f'maximum over all of them ({_plain_options(metric.rerank)}), '
            'smaller = closer')
    steps.append(f'rank rules junk_rule={metric.junk_rule!r}, tie_policy='
                 f'{metric.tie_policy!r}, ap_mode={metric.ap_mode!r}, '
                 f'cmc_mode={metric.cmc_mode!r}')
    meta.update(
        ranking_distance=distance,
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


def check_whole_gallery_metrics(cfg: Config,
                                target: Optional[str] = None) -> None:
    """Refuse a test metric whose R<k> come from galleries it samples.

    ``CUHK03ClassicMetric`` averages its CMC over draws of one gallery
    image per identity, the trial metrics (``SYSUMetric``, ``LLCMMetric``)
    over their trials' galleries, and ``DGSplitMetric`` over its splits'.
    ``rank_gallery`` ranks the whole gallery it is given: its lists are of
    none of those galleries, and their top-1 matches gave another R1 than
    ``tools/test.py`` printed (50.0 vs 40.0 on a tiny CUHK03 copy).

    Args:
        cfg (Config): The model's config.
        target (str, optional): A target of a multi-target loop.

    Raises:
        ValueError: Names the metric's key and type.
    """
    from mmreid.evaluation.metrics import (CUHK03ClassicMetric,
                                           DGSplitMetric, TrialGalleryMetric)
    sampled = (CUHK03ClassicMetric, DGSplitMetric, TrialGalleryMetric)
    for key, evaluator, cls in _configured_metrics(cfg, 'test', target):
        if isinstance(cls, type) and issubclass(cls, sampled):
            raise ValueError(
                f"the config's {key} is {evaluator['type']}, whose R<k> "
                'are averaged over galleries it samples (draws, trials '
                'or splits), not read off one ranking of the whole '
                'gallery: rank_gallery\'s lists would not give the '
                'numbers tools/test.py prints. Rank with a whole-gallery '
                'metric (init_model(..., cfg_options='
                f"{{'{key}': dict(type='ReIDMetric')}})), or draw the "
                "lists tools/test.py ranks with its --show-ranked-lists")


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
    target = getattr(model, 'test_target', None)
    check_whole_gallery_metrics(cfg, target)
    rankings = configured_rankings(cfg, 'test', target)
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
