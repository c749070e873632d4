"""The per-query analysis a metric makes of its own ranking.

A consumer (``EvalReportHook``) sets ``ReIDMetric.analysis_request``; the
metric's next whole-gallery ranking then feeds its distance chunks to a
:class:`~mmreid.evaluation.query_analysis.QueryAnalyser` and keeps a
:class:`MetricAnalysis` in ``last_analysis``, so the pairs are not scored
twice.
"""
from dataclasses import dataclass
from typing import List, Optional

from ..query_analysis import QueryAnalyser, QueryAnalysis
from .records import QueryGallery


@dataclass
class MetricAnalysis:
    """The per-query analysis a metric made of its own ranking (see
    ``ReIDMetric.analysis_request``).

    Attributes:
        analysis (QueryAnalysis): Of the primary distance, whole gallery,
            as the metric ranks it (re-ranked or with query expansion when
            the metric is).
        query (list[dict]): The query records in the analysis's order
            (``pid``, ``camid``, ``modality``, ``img_path``, ``dataset``,
            ``sample_idx``; no feature).
        gallery (list[dict]): The gallery records likewise; the
            analysis's ``topk_index`` indexes them.
    """
    analysis: QueryAnalysis
    query: List[dict]
    gallery: List[dict]


def query_analyser(data: QueryGallery, request: Optional[dict],
                   rank_options: dict) -> Optional[QueryAnalyser]:
    """A :class:`QueryAnalyser` for a metric's ranking when one is requested
    (of the primary distance, as ``ReIDMetric._evaluate`` ranks it).

    Args:
        data: The records split by role.
        request: The metric's ``analysis_request``
            (``dict(topk=..., max_rank=...)``), None when no consumer asks.
        rank_options: The metric's ``rank_options``, whose ``junk_rule``,
            ``tie_policy``, ``ap_mode`` and ``cmc_mode`` the analyser
            applies.

    Returns:
        QueryAnalyser, optional: The analyser to feed the distance chunks;
        None without a request.
    """
    if request is None:
        return None

    def modalities(records: List[dict]) -> Optional[List[int]]:
        values = [r.get('modality') for r in records]
        return None if any(v is None for v in values) else values

    q_modalities, g_modalities = (modalities(data.query),
                                  modalities(data.gallery))
    with_modality = q_modalities is not None and g_modalities is not None
    return QueryAnalyser(
        data.q_pids.numpy(),
        data.g_pids.numpy(),
        data.q_camids.numpy(),
        data.g_camids.numpy(),
        q_modalities if with_modality else None,
        g_modalities if with_modality else None,
        junk_rule=rank_options['junk_rule'],
        tie_policy=rank_options['tie_policy'],
        ap_mode=rank_options['ap_mode'],
        cmc_mode=rank_options['cmc_mode'],
        # A query is never ranked against its own image (a file listed in
        # both roles), as in the report's own ranking.
        q_images=[r.get('img_path') for r in data.query],
        g_images=[r.get('img_path') for r in data.gallery],
        **request)


def metric_analysis(analyser: Optional[QueryAnalyser],
                    data: QueryGallery) -> Optional[MetricAnalysis]:
    """The analysis an analyser of :func:`query_analyser` made, with the
    records it indexes (without their features).

    Args:
        analyser: The analyser fed with the ranking's distances, or None.
        data: The records split by role, as given to :func:`query_analyser`.

    Returns:
        MetricAnalysis, optional: None without an analyser.
    """
    if analyser is None:
        return None

    def light(records: List[dict]) -> List[dict]:
        return [{
            k: v
            for k, v in r.items() if k != 'feature'
        } for r in records]

    return MetricAnalysis(analyser.result(), light(data.query),
                          light(data.gallery))
