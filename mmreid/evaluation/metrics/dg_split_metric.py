"""The small DG targets (PRID2011, GRID, VIPeR, QMUL-iLIDS): all ten fixed
splits from one feature extraction, with the mean and population standard
deviation over the splits."""
from typing import Dict, List, Optional, Sequence

import torch

from mmreid.registry import METRICS
from ..functional import ReIDEvalResult, evaluate_rank
from .records import check_single_positives
from .reid_metric import FEATURE_OPTIONS, ReIDMetric


@METRICS.register_module()
class DGSplitMetric(ReIDMetric):
    """All fixed splits of a small DG target, evaluated in one run.

    The dataset (:class:`~mmreid.datasets.PRID2011`, ``GRID``, ``VIPeR``,
    ``QMULiLIDS`` with ``split='test'``) lists every query and gallery
    image of its splits once per role and puts the membership of each split
    in ``dataset_meta['dg_splits']``: ``[dict(query=[img_path, ...],
    gallery=[img_path, ...]), ...]``. The distances are computed once for
    all queries and the whole gallery pool and indexed per split (eval-mode
    features do not depend on the split). A gallery-dependent scorer
    (:func:`~.scorers.is_gallery_dependent`, e.g. GMN's top-k rerank,
    whose candidates come from the gallery being evaluated) scores each
    split's queries against that split's gallery instead.

    Every query must have exactly one valid positive in its split's gallery
    after the removal rule (the protocols are single-shot); anything else
    is a broken split or camid and raises.

    Keys (percent): ``split<i>/R<k>``, ``split<i>/mAP``, ``split<i>/mINP``
    for every split; the means ``R<k>``, ``mAP``, ``mINP`` over the splits
    and their population standard deviations (``ddof=0``) ``R<k>_std``,
    ``mAP_std``, ``mINP_std``. Counts: ``split<i>/num_query``,
    ``split<i>/num_valid_query``, ``split<i>/num_gallery``, ``num_splits``
    and, over the splits, the smallest ``num_query`` and
    ``num_valid_query`` (as
    :class:`~.trial_gallery_metric.TrialGalleryMetric`). With one
    positive per query, mAP = mINP.

    Args:
        check_single_positive: Raise unless every query has exactly one
            valid positive (after ``junk_rule``, as the ranking sees it).
            Without the check a query without a positive is skipped (and
            logged), as in :class:`ReIDMetric`; ``num_valid_query`` says
            how many queries a split's numbers average over.
        **kwargs: :class:`ReIDMetric` arguments (``distance``, ``ranks``,
            ``junk_rule``, ...); ``query_expansion``, ``rerank`` and
            ``verification_fprs`` are not supported.

    Examples:
        >>> test_evaluator = dict(type='DGSplitMetric', distance='euclidean')
    """
    default_prefix: Optional[str] = 'dg'
    unsupported_options = FEATURE_OPTIONS

    def __init__(self, check_single_positive: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.check_single_positive = check_single_positive
        #: Per-split results of the last evaluation.
        self.split_results: List[ReIDEvalResult] = []

    def check_dataset_meta(self, dataset_meta: dict) -> None:
        """See :meth:`ReIDMetric.check_dataset_meta`; a dataset without
        ``dg_splits`` is refused here, before extraction.

        Raises:
            ValueError: Naming the dataset and its metainfo keys.
        """
        super().check_dataset_meta(dataset_meta)
        split_index = dataset_meta.get('split_index')
        if split_index is not None:
            # Its one split would be reported as split0, with a spread of
            # 0 over one split.
            raise ValueError(
                f'{type(self).__name__} cannot evaluate dataset '
                f'{self.dataset_name(dataset_meta)}: it is split '
                f'{split_index} alone (split_index={split_index}), and '
                'the metric reports the mean and spread over the splits. '
                'Evaluate one split with ReIDMetric, or all of them with '
                'split_index=None')
        if not dataset_meta.get('dg_splits'):
            raise ValueError(
                f'{type(self).__name__} cannot evaluate dataset '
                f'{self.dataset_name(dataset_meta)}: it needs '
                "dataset_meta['dg_splits'], set by the PRID2011, GRID, "
                "VIPeR and QMULiLIDS datasets (split='test'); got keys "
                f'{sorted(dataset_meta)}')

    def _splits(self) -> List[dict]:
        meta = self.dataset_meta or {}
        splits = meta.get('dg_splits')
        if not splits:
            raise ValueError(
                f'{type(self).__name__} needs dataset_meta["dg_splits"], '
                'set by the PRID2011, GRID, VIPeR and QMULiLIDS datasets '
                f'(split="test"); got dataset_meta keys {sorted(meta)}')
        return splits

    @staticmethod
    def _indices(paths: Sequence[str], lookup: Dict[str, int], role: str,
                 split: int) -> List[int]:
        missing = [p for p in paths if p not in lookup]
        if missing:
            raise ValueError(f'split {split}: {len(missing)} {role} images '
                             f'were not evaluated, e.g. {missing[0]!r}')
        return [lookup[p] for p in paths]

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Evaluate every split and summarise them.

        Args:
            results: The records of all samples, collected from all ranks.

        Returns:
            dict: See the class docstring.
        """
        splits = self._splits()
        data = self.split_roles(results)
        q_lookup = {r['img_path']: i for i, r in enumerate(data.query)}
        g_lookup = {r['img_path']: i for i, r in enumerate(data.gallery)}
        per_split = self.primary_gallery_dependent()
        dist = None if per_split else self.pairwise_distances(
            data.query_feats, data.gallery_feats)

        counts = []
        self.split_results = []
        for index, split in enumerate(splits):
            q_index = self._indices(split['query'], q_lookup, 'query', index)
            g_index = self._indices(split['gallery'], g_lookup, 'gallery',
                                    index)
            if per_split:
                split_dist = self.pairwise_distances(
                    data.query_feats[q_index], data.gallery_feats[g_index])
            else:
                qi = torch.as_tensor(q_index, device=dist.device)
                gi = torch.as_tensor(g_index, device=dist.device)
                split_dist = dist.index_select(0, qi).index_select(1, gi)
            labels = (data.q_pids[q_index], data.g_pids[g_index],
                      data.q_camids[q_index], data.g_camids[g_index])
            if self.check_single_positive:
                check_single_positives(
                    labels, [data.query[i]['img_path'] for i in q_index],
                    self.rank_options['junk_rule'], f'split {index}')
            result = evaluate_rank(
                split_dist, *labels, device=self.device, **self.rank_options)
            self.split_results.append(result)
            counts.append(
                dict(
                    num_query=result.num_query,
                    num_valid_query=result.num_valid_query,
                    num_gallery=len(g_index)))
        self._log_skipped(self.split_results, 'split')
        metrics = self.partition_metrics('split', self.split_results, counts)
        metrics['num_splits'] = len(splits)
        metrics['num_query'] = min(r.num_query for r in self.split_results)
        metrics['num_valid_query'] = min(r.num_valid_query
                                         for r in self.split_results)
        self.last_result = None
        return self.name_primary_mode(metrics)
