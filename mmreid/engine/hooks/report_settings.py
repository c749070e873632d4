"""What the evaluation report says beside its pictures: the query sampling
errors of a section, the settings a ranking was computed with (so that
two reports are compared only when they ranked alike), and the labels of
the other CMC protocol and of the other ranking direction. Moved from
:mod:`.report_hook`, which imports these names.
"""
import hashlib
import json
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from mmengine.model import is_model_wrapper

from mmreid.evaluation.metrics.records import label_to_int
from mmreid.evaluation.sampling_error import trial_sampling_errors

#: What a section's R1 and CMC are called where the metric reports
#: another CMC protocol with the same mAP (see
#: :meth:`EvalReportHook._compare_cmc`).
OTHER_CMC_LABEL = 'standard protocol'


def sampling_error_line(errors: Dict[str, Any]) -> str:
    """Values with their query sampling errors (:class:`SamplingError`
    by name), in one line for the log."""
    return '; '.join(
        f'{name} {e.value:.2f} +- {e.se_independent:.2f} / +- '
        f'{e.se_clustered:.2f} ({e.num_queries} queries, '
        f'{e.num_identities} ids)' for name, e in errors.items()) + (
            ' (query sampling error, one SE: independent queries / '
            'clustered by identity)')


#: How the whole-gallery values and their sampling errors are named when
#: they rank the other direction than the reported ranking
#: (:func:`other_direction`).
OTHER_DIRECTION_LABEL = 'whole gallery, other direction'


def other_direction(metric) -> Optional[str]:
    """Why a section's whole-gallery values are not the metric's ranking
    when the metric swaps the roles (``transpose``, LLCM's VIS->IR
    ``vis2ir_mode='reference_transposed'``), else None.

    The hook ranks the queries as the dataset gives them against the
    whole pool; such a metric ranks each trial's drawn gallery images, as
    probes, against all the queries: the other direction, with other
    probes, not an average of the same ranking.
    """
    if not getattr(metric, 'transpose', False):
        return None
    return ('the other direction: every query against the whole gallery '
            f'pool, while {type(metric).__name__} reports the transposed '
            "ranking (each trial's drawn gallery images as probes against "
            'all queries)')


def section_sampling_errors(analysis, metric) -> Dict[str, Any]:
    """The query sampling errors a section shows: of this analysis's R1
    and mAP (whole gallery; named as the other direction where the metric
    transposes, :func:`other_direction`) and, for a trial protocol, of the
    reported trial averages."""
    errors = dict()
    if analysis.valid.sum() > 1:
        errors.update(analysis.sampling_errors())
    if errors and other_direction(metric):
        errors = {
            f'{k} ({OTHER_DIRECTION_LABEL})': v
            for k, v in errors.items()
        }
    results = getattr(metric, 'trial_results', None)
    q_pids = getattr(metric, 'trial_query_pids', None)
    if results and q_pids is not None:
        trials = trial_sampling_errors(results, q_pids)
        if len(errors):
            errors = {f'{k} (whole gallery)': v for k, v in errors.items()}
        errors.update({
            f'{k} ({len(results)}-trial average)': v
            for k, v in trials.items()
        })
    return errors


def gallery_digest(gallery: List[dict]) -> str:
    """SHA-256 of a gallery's ``img_path``, ``pid`` and ``camid`` (one
    line per item, sorted), so that two runs tell whether they ranked the
    same gallery."""
    lines = sorted(f"{r.get('img_path')}\t{label_to_int(r['pid'])}\t"
                   f"{label_to_int(r['camid'])}" for r in gallery)
    return hashlib.sha256('\n'.join(lines).encode('utf-8')).hexdigest()


def ranking_inputs(query: List[dict], gallery: List[dict],
                   with_modality: bool) -> tuple:
    """The positional inputs of :func:`analyse_queries` and
    :func:`own_gallery_pairs` from collected records: the query (Q, D) and
    gallery (G, D) features, their pids, camids and (with
    ``with_modality``, else None) modalities as int64 arrays."""

    def labels(items: List[dict], key: str) -> Optional[np.ndarray]:
        if key == 'modality' and not with_modality:
            return None
        return np.array([label_to_int(r[key]) for r in items], np.int64)

    return (torch.stack([r['feature'] for r in query]),
            torch.stack([r['feature'] for r in gallery]), labels(query, 'pid'),
            labels(gallery, 'pid'), labels(query, 'camid'),
            labels(gallery, 'camid'), labels(query, 'modality'),
            labels(gallery, 'modality'))


def model_test_settings(model: Any) -> Dict[str, str]:
    """The model's test-time options that change its features, where they
    are not their defaults: ``mbn_eval_stats`` (:class:`~mmreid.models.
    layers.MBN`, default ``'modality'``; ``'batch'`` is transductive),
    ``flip`` (``test_cfg``, default off) and ``test_feature``
    (:class:`~mmreid.models.heads.BNNeckHead`, default ``'after_bn'``).

    Args:
        model: The runner's model (a wrapper is unwrapped); anything but
            an ``nn.Module`` (None, a test's stand-in) has no options.

    Returns:
        dict[str, str]: Option name to value; ``{}`` for a model tested
        with the defaults, so models of different architectures still
        compare.
    """
    from mmreid.models.heads import BNNeckHead
    from mmreid.models.layers import MBN
    model = model.module if is_model_wrapper(model) else model
    if not isinstance(model, torch.nn.Module):
        return {}
    settings = {}
    default_stats = _default(MBN, 'eval_stats')
    stats = sorted({
        m.eval_stats
        for m in model.modules()
        if isinstance(m, MBN) and m.eval_stats != default_stats
    })
    if stats:
        settings['mbn_eval_stats'] = ','.join(stats)
    test_cfg = getattr(model, 'test_cfg', None)
    if isinstance(test_cfg, dict) and test_cfg.get('flip', False):
        settings['flip'] = 'True'
    # BNNeckHead's default; GMNHead sets it from pair_feat (its own
    # argument defaults to None), so the value, not a class default.
    test_feature = getattr(
        getattr(model, 'head', None), 'test_feature', 'after_bn')
    if test_feature != _default(BNNeckHead, 'test_feature'):
        settings['test_feature'] = str(test_feature)
    return settings


def _default(cls: type, argument: str) -> Any:
    """The default of ``cls``'s constructor argument (None without one):
    what a model tested with the defaults has."""
    import inspect
    try:
        parameter = inspect.signature(cls).parameters.get(argument)
    except (TypeError, ValueError):
        return None
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default


def ranking_settings(setup: Dict[str, str],
                     metric,
                     own_analysis: bool,
                     model: Any = None,
                     fp16: bool = False) -> Dict[str, str]:
    """The evaluation settings of a section's per-query values.

    Args:
        setup (dict): The section's setup as the report shows it
            (``metric``, ``distance``, ``normalize`` and the rank rules).
        metric: The evaluator's metric (or None).
        own_analysis (bool): Whether the values are the metric's own
            analysis of its ranking (:meth:`RankedListHook.
            _metric_analysis`), else the hook ranked plain distances.
        model: The tested model (see :func:`model_test_settings`), or
            None.
        fp16 (bool): Whether the loop extracted the features under fp16
            autocast (its ``fp16``, ``test_cfg.fp16``/``val_cfg.fp16``).
            Defaults to False.

    Returns:
        dict[str, str]: ``setup`` with the ``primary_mode`` (GMN's
        primary distance mode, ``''`` without one), the metric's
        protocol options (``protocol_settings``, e.g. a trial protocol's
        gallery draw), the model's test-time options
        (:func:`model_test_settings`), ``fp16: 'True'`` for features
        extracted under fp16 autocast (absent in fp32, so fp32 runs
        compare as before), ``rerank`` and ``query_expansion``
        (JSON, ``'none'`` when unset) and ``values``: ``'reported
        ranking'``, or why the whole-gallery values are not the ranking
        the metric reports (re-ranking or query expansion that the hook
        did not apply, or the other direction than a transposing metric's,
        :func:`other_direction`).
    """
    settings = dict(setup)
    settings['primary_mode'] = str(
        getattr(metric, 'primary_scorer', None) or '')
    protocol = getattr(metric, 'protocol_settings', None)
    settings.update(protocol() if callable(protocol) else {})
    settings.update(model_test_settings(model))
    if fp16:
        settings['fp16'] = 'True'
    changed = []
    for key in ('rerank', 'query_expansion'):
        value = getattr(metric, key, None)
        settings[key] = 'none' if value is None else json.dumps(
            value, sort_keys=True)
        if value is not None:
            changed.append(key)
    settings['values'] = 'reported ranking'
    if changed and not own_analysis:
        settings['values'] = (
            f'plain distances, without the metric\'s {" and ".join(changed)}')
    settings['values'] = other_direction(metric) or settings['values']
    # A metric that reports R1 by its own CMC protocol (CUHK03 classic's
    # single-gallery-shot): the whole-gallery R1 is not the reported one.
    cmc_protocol = getattr(metric, 'cmc_protocol', None)
    if cmc_protocol:
        settings['cmc_protocol'] = str(cmc_protocol)
    return settings


def _mode_options(scorer: Any) -> str:
    """The options of a GMN mode that change its ranking, as ``', k=v'``:
    ``mnet_topk`` (only the top-k Euclidean candidates are scored by the
    M-Net, not the paper's full M-Net) and the fused mode's ``fuse_beta``;
    so a report, and the settings ``paired_query_error.py`` compares, tell
    such a run from the full M-Net."""
    # MNetPairScorer and SharedLogitScorer keep them in ``options``.
    given = getattr(scorer, 'options', None)
    mode = getattr(given, 'distance', None)
    options = []
    if mode == 'mnet' and given.topk is not None:
        options.append(f'mnet_topk={given.topk}')
    if mode == 'fused':
        options.append(f'fuse_beta={given.fuse_beta}')
    return ''.join(f', {option}' for option in options)


def _scorer_name(scorer: Any) -> str:
    if isinstance(scorer, str):
        return scorer
    name = getattr(scorer, '__name__', None) or type(scorer).__name__
    owner = getattr(scorer, '__self__', None)
    return f'{type(owner).__name__}.{name}' if owner is not None else name
