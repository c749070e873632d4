"""Retrieval metrics (CMC, mAP, mINP) of a query set against a gallery.

:class:`ReIDMetric` is also the base of the protocol metrics: it owns the
records (:meth:`ReIDMetric.process`), the ranking of one query/gallery set
(:meth:`ReIDMetric.compute_metrics`) and the report of protocols evaluated
on several partitions (:meth:`ReIDMetric.partition_metrics`). Two mixins
give it the rest: the prelude every evaluation starts with (drop padding
duplicates, split query and gallery, stack features and labels:
:meth:`~.records.RecordsMixin.split_roles`, :mod:`.records`) and the
distance (the model's scorers or ``distance``) with the pairwise step
(:meth:`~.scorers.ScorerMixin.pairwise_distances`, :mod:`.scorers`).
"""
import logging
import os
import os.path as osp
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmengine.structures import BaseDataElement

from mmreid.registry import METRICS
from ..functional import (DEFAULT_MEMORY_BUDGET_MB, ReIDEvalResult,
                          chunk_rows_for_budget, evaluate_features,
                          evaluate_features_multi, evaluate_rank,
                          evaluate_verification,
                          evaluate_verification_features, k_reciprocal_rerank,
                          query_expansion, summarize_partitions)
from ..functional.query_expansion import check_query_expansion_options
from ..functional.rerank import check_rerank_options
from ..functional.verification import check_fprs, fpr_key
from .dataset_protocol import protocol_metric_of
from .metric_analysis import MetricAnalysis, metric_analysis, query_analyser
from .records import (ROLES, RecordsMixin, check_single_positives,
                      label_to_int, optional_label_to_int)
from .scorers import Scorer, ScorerMixin, resolve_distance

RERANK_KEYS = ('k1', 'k2', 'lambda_value')
QUERY_EXPANSION_KEYS = ('k', 'alpha')
#: The options that change or bypass the features or the ranking (query
#: expansion, re-ranking, verification); the partitioned protocols list
#: them in ``unsupported_options``.
FEATURE_OPTIONS = ('query_expansion', 'rerank', 'verification_fprs')
#: The keys every data sample must carry besides ``role``, and what sets
#: them, for the error naming a missing one.
SAMPLE_KEYS = dict(
    pred_feature="the model's predict mode (ReIDModel.predict)",
    gt_label="PackReIDInputs, from the dataset record's 'pid'",
    camid="PackReIDInputs (meta_keys), from the dataset record's 'camid'")


def _sample_value(sample: dict, key: str, metric: str) -> Any:
    """``sample[key]``, refused when absent or None.

    Args:
        sample: A data sample as a dict.
        key: One of :data:`SAMPLE_KEYS`.
        metric: The metric's class name, for the error.

    Raises:
        ValueError: The sample has no ``key``; names the sample's
            ``img_path`` and what sets the key.
    """
    value = sample.get(key)
    if value is None:
        raise ValueError(
            f"{metric} needs '{key}' in every data sample (set by "
            f"{SAMPLE_KEYS[key]}); sample {sample.get('img_path')!r} has "
            f'none (keys {sorted(sample)})')
    return value


def _check_keys(name: str, cfg: Optional[dict], allowed: tuple) -> None:
    if cfg is None:
        return
    if not isinstance(cfg, dict) or set(cfg) - set(allowed):
        raise ValueError(f'{name} must be None or a dict with keys from '
                         f'{allowed}, got {cfg!r}')


@METRICS.register_module()
class ReIDMetric(ScorerMixin, RecordsMixin, BaseMetric):
    """CMC, mAP and mINP of the query samples against the gallery samples.

    Each data sample carries its own ``role`` (``'query'`` or
    ``'gallery'``), pid (``gt_label``) and ``camid``; the model's
    ``pred_feature`` is the embedding. Distances are computed chunk by
    chunk in fp32 and ranked exactly without a full sort (see
    :func:`mmreid.evaluation.functional.evaluate_features`), so the Q x G
    matrix is never held.

    Tie policy: with the default ``tie_policy='stable'`` each query's
    gallery is ordered by ascending (distance, gallery index), i.e. a
    stable sort, where the gallery index is the order in which gallery
    samples reach the metric (dataset order once mmengine has collected
    the ranks). ``'pessimistic'`` / ``'optimistic'`` put positives after /
    before the negatives at the same distance. Numbers equal those of
    fast-reid and torchreid only on tie-free distances; their unstable
    sort makes tied inputs irreproducible.

    Queries whose gallery holds no positive after ``junk_rule`` are
    skipped (and logged); ``num_query`` and ``num_valid_query`` report
    them. One split of a small DG target (``split_index`` in the dataset
    meta) is single-shot: a query without exactly one valid positive is
    refused there, as :class:`~.dg_split_metric.DGSplitMetric` refuses it.

    Duplicated samples: mmengine's ``collect_results`` drops the padding
    that a distributed sampler adds, given one record per sample in
    order, which :meth:`process` keeps. As a second guard, records that
    repeat a sample (same ``sample_idx``, ``dataset``, ``role`` and
    ``img_path``) are dropped with a warning, so no sample is counted
    twice; a repeated key with a different pid or camid is an error.

    Args:
        distance: ``'euclidean'`` (default), ``'sqeuclidean'`` or
            ``'cosine'``: the feature distance of models that have no
            distance of their own. The model's scorers, which mmreid's
            val/test loops hand over with :meth:`set_scorers`, take
            precedence. (A callable scorer ``(query_chunk (Qc, D),
            gallery (G, D)) -> distances (Qc, G)`` is still accepted, with
            a ``FutureWarning``, as is a scorer set with the
            deprecated :meth:`set_scorer`.)
        normalize: L2-normalise features before comparing them. Under it
            (and under ``distance='cosine'`` or query expansion) a feature
            of zero norm, whose direction is 0/0, is refused naming its
            image: it would lie at one distance from every other feature,
            ranked by the gallery order.
        ranks: CMC ranks reported as ``R{k}``.
        max_rank: Length of the computed CMC curve.
        junk_rule: ``'market'``, ``'none'`` or ``'sysu'``.
        tie_policy: ``'stable'``, ``'pessimistic'`` or ``'optimistic'``.
        ap_mode: ``'cumsum'`` or ``'threshold'`` (sklearn-style).
        cmc_mode: ``'standard'`` or ``'dedup'`` (distinct pids; a gallery
            with pid 0 distractors that no query has is then refused).
        memory_budget_mb: Budget of one chunk of distances and ranking.
        device: Where distances and ranks are computed, e.g. ``'cuda'``;
            defaults to the CPU.
        collect_device: ``'cpu'`` or ``'gpu'``, see ``BaseMetric``.
        prefix: Key prefix; defaults to ``'reid'``.
        collect_dir: A folder the processes exchange their results
            through (``collect_device='cpu'``, several processes). They
            use a subfolder ``.reid_metric_collect_<MASTER_PORT>`` of it,
            which mmengine removes afterwards; the folder's other files
            are left alone (mmengine would remove the folder itself).
        query_expansion: ``dict(k=..., alpha=...)`` to replace each query
            by its alpha-QE with ``k`` gallery neighbours before ranking
            (see :func:`~mmreid.evaluation.functional.query_expansion`);
            query and gallery features are then L2-normalised. Off by
            default.
        rerank: ``dict(k1=20, k2=6, lambda_value=0.3)`` to rank by
            k-reciprocal re-ranked distances (squared Euclidean of the
            features, normalised when ``normalize``, ``distance='cosine'``
            or query expansion is on); integer ``k1`` and ``k2`` and
            ``lambda_value`` in [0, 1] are checked at construction. It
            holds a dense (Q, G) matrix,
            see :mod:`~mmreid.evaluation.functional.rerank` for its
            memory. Off by default.
        verification_fprs: FPRs in [0, 1], each once, at which to report
            ``TPR@FPR=...`` keys (percent) over the kept query-gallery
            pairs, positive = same pid, computed from the same distances
            as the ranking, in their precision (a float64 scorer's in
            float64). A key names its FPR exactly, in the shortest
            scientific form that reads back as it: ``TPR@FPR=1e-04`` for
            1e-4 (one digit whenever that is exact, as for the usual
            ``(1e-4, 1e-3, 1e-2)``), ``TPR@FPR=2.5e-01`` for 0.25.
            Off by default. Refused with a gallery-dependent scorer
            (:func:`~.scorers.is_gallery_dependent`, e.g. GMN's top-k
            rerank), whose distances are ranking positions, not pair
            scores.
        metric: Deprecated alias of ``distance`` (accepted for one
            release, with a ``FutureWarning``).

    The model's distance: a model with its own distance (GMN's M-Net)
    is evaluated with it, never with ``metric``. mmreid's val/test loops
    (``ReIDValLoop``, ``ReIDTestLoop``, the multi-target loops) call
    :meth:`set_scorers` with the model's scorers right before computing;
    no hook or config line is needed, and such a model refuses to run in
    a loop that does not (see ``ReIDModel.scorers_handed_to``). The
    model's scorers compare the model's own features, so ``normalize``,
    ``query_expansion`` and ``rerank`` (which change or bypass them) are
    errors with them, and so is a ``distance`` other than the metric's
    default, which they would ignore.

    Several distance modes in one run: after
    ``set_scorers({'mnet': f, 'euclid': g, 'fused': h}, primary='mnet')``
    (done by the loops for models such as GMN) every mode is
    evaluated on the same features and reported under its name
    (``reid/mnet/R1``, ``reid/euclid/mAP``, ...); the primary mode's
    metrics are also reported without the mode prefix (``reid/R1``,
    ``reid/mAP``), so ``save_best='reid/mAP'`` and comparisons with other
    models keep working. ``last_result`` is the primary mode's. The
    protocol metrics rank with the primary mode only and report it the
    same way, under its name and without it (:meth:`name_primary_mode`).

    Per-query analysis: a consumer that wants every query's AP, first
    match and top-k list under the primary distance (``EvalReportHook``)
    sets ``analysis_request = dict(topk=..., max_rank=...)``; the next
    whole-gallery ranking then feeds its own distance chunks to a
    :class:`~mmreid.evaluation.query_analysis.QueryAnalyser` and keeps the
    result in ``last_analysis`` (a :class:`~.metric_analysis.MetricAnalysis`),
    so the pairs are not scored twice. With re-ranking or query expansion
    it analyses the distances the metric ranks (re-ranked, or of the
    expanded queries), so its values are the reported ones; the protocol
    subclasses leave it None.

    Datasets of a protocol: a dataset whose test records are not one
    query/gallery set (the union of the small DG targets' splits, the
    gallery pools of SYSU-MM01 and LLCM) names the metric of its protocol
    in its metainfo (see :func:`~.dataset_protocol.protocol_metric_of`);
    any other metric refuses it when ``dataset_meta`` is set (before
    extraction), naming the dataset and the metric to use. The trial
    metrics refuse in turn a dataset that does not declare theirs
    (``SYSUMetric`` on RegDB), and ``DGSplitMetric`` one without
    ``dg_splits``.

    Protocol metrics (:class:`TrialGalleryMetric`, :class:`DGSplitMetric`,
    :class:`CUHK03ClassicMetric`) subclass it: they start from
    :meth:`split_roles`, rank with :meth:`pairwise_distances`, report
    their partitions with :meth:`partition_metrics` and list the options
    they refuse in ``unsupported_options``.

    Where its parts live: this class keeps the records (:meth:`process`),
    ranks them (:meth:`compute_metrics`, :meth:`_evaluate`) and reports
    the results (:meth:`partition_metrics`, :meth:`name_primary_mode`).
    Two mixins hold the rest. :class:`~.scorers.ScorerMixin`
    (:mod:`.scorers`) holds the distance: :meth:`set_scorers`,
    :meth:`set_scorer`, :meth:`primary_distance`,
    :meth:`primary_gallery_dependent`, :meth:`check_scorers` and
    :meth:`pairwise_distances`. :class:`~.records.RecordsMixin`
    (:mod:`.records`) splits the records by role: :meth:`split_roles`,
    :meth:`split_records`, :meth:`query_gallery` and
    :meth:`check_one_dataset`. The per-query analysis is made in
    :mod:`.metric_analysis`, the protocol a dataset declares is read by
    :func:`~.dataset_protocol.protocol_metric_of`.

    Examples:
        >>> val_evaluator = dict(type='ReIDMetric', distance='cosine')
        >>> val_evaluator = dict(
        ...     type='ReIDMetric',
        ...     rerank=dict(k1=20, k2=6, lambda_value=0.3),
        ...     verification_fprs=(1e-4, 1e-3, 1e-2))
    """
    default_prefix: Optional[str] = 'reid'
    #: The ``distance`` when none is given.
    default_distance: str = 'euclidean'
    #: Options of :data:`FEATURE_OPTIONS` a protocol does not support;
    #: giving one is an error.
    unsupported_options: Tuple[str, ...] = ()

    def __init__(self,
                 distance: Union[str, Scorer, None] = None,
                 normalize: bool = False,
                 ranks: Sequence[int] = (1, 5, 10, 20),
                 max_rank: int = 50,
                 junk_rule: str = 'market',
                 tie_policy: str = 'stable',
                 ap_mode: str = 'cumsum',
                 cmc_mode: str = 'standard',
                 memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
                 device: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None,
                 query_expansion: Optional[dict] = None,
                 rerank: Optional[dict] = None,
                 verification_fprs: Optional[Sequence[float]] = None,
                 metric: Union[str, Scorer, None] = None) -> None:
        given = dict(
            query_expansion=query_expansion,
            rerank=rerank,
            verification_fprs=verification_fprs)
        for name in self.unsupported_options:
            if given.get(name) is not None:
                raise ValueError(f'{type(self).__name__} does not support '
                                 f'{name}')
        if collect_dir is not None:
            # mmengine's collect_results_cpu removes the folder it collects
            # in, whatever else it holds: a subfolder of the run's own (the
            # same for every process of a job, another for a job beside).
            collect_dir = osp.join(
                collect_dir,
                f'.reid_metric_collect_{os.environ.get("MASTER_PORT", "0")}')
        super().__init__(
            collect_device=collect_device,
            prefix=self.key_prefix(prefix),
            collect_dir=collect_dir)
        self.ranks = tuple(int(k) for k in ranks)
        if any(k < 1 or k > max_rank for k in self.ranks):
            raise ValueError(f'ranks must lie in [1, max_rank={max_rank}], '
                             f'got {self.ranks}')
        self.distance = resolve_distance(
            type(self).__name__, distance, metric, self.default_distance)
        self.distance_given = distance is not None or metric is not None
        self.normalize = normalize
        self.rank_options = dict(
            max_rank=max_rank,
            junk_rule=junk_rule,
            tie_policy=tie_policy,
            ap_mode=ap_mode,
            cmc_mode=cmc_mode)
        self.memory_budget_mb = memory_budget_mb
        self.device = device
        _check_keys('query_expansion', query_expansion, QUERY_EXPANSION_KEYS)
        _check_keys('rerank', rerank, RERANK_KEYS)
        if query_expansion is not None:
            check_query_expansion_options(
                **query_expansion,
                owner=f'{type(self).__name__}(query_expansion=...)')
        if rerank is not None:
            check_rerank_options(
                **rerank, owner=f'{type(self).__name__}(rerank=...)')
        self.query_expansion = query_expansion
        self.rerank = rerank
        if verification_fprs is not None:
            verification_fprs = check_fprs(verification_fprs,
                                           'verification_fprs')
        self.verification_fprs = verification_fprs
        self.scorer: Optional[Scorer] = None
        self.scorers: Dict[str, Scorer] = dict()
        self.primary_scorer: Optional[str] = None
        # The full result of the last evaluation, for hooks and analysis.
        self.last_result: Optional[ReIDEvalResult] = None
        # See 'Per-query analysis' above.
        self.analysis_request: Optional[dict] = None
        self.last_analysis: Optional[MetricAnalysis] = None

    @classmethod
    def key_prefix(cls, prefix: Optional[str] = None, **options) -> str:
        """The prefix of the keys a metric of these arguments reports.

        One rule for the metric and for tools that read a config without
        building its metric (``compare_configs.py`` checks a run's keys
        before training it).

        Args:
            prefix: The ``prefix`` argument.
            **options: The metric's other arguments; a protocol whose keys
                name a variant (``RegDBMetric``'s direction) reads them.

        Returns:
            str: ``prefix``, else the class's ``default_prefix``.
        """
        return prefix or cls.default_prefix

    @property
    def metric(self) -> Union[str, Scorer]:
        """Deprecated alias of :attr:`distance`."""
        return self.distance

    @property
    def dataset_meta(self) -> Optional[dict]:
        """The metainfo of the evaluated dataset (see ``BaseMetric``).

        mmengine's ``Evaluator`` sets it from the dataset before
        evaluation; setting it runs :meth:`check_dataset_meta`, so a
        metric that cannot evaluate the dataset refuses before any
        feature is extracted.
        """
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: Optional[dict]) -> None:
        if dataset_meta is not None:
            self.check_dataset_meta(dataset_meta)
        BaseMetric.dataset_meta.fset(self, dataset_meta)

    def check_dataset_meta(self, dataset_meta: dict) -> None:
        """Raise if this metric cannot evaluate the dataset.

        A dataset whose test split is not one query/gallery set declares
        the metric of its protocol (see
        :func:`~.dataset_protocol.protocol_metric_of`); any other metric
        refuses it, naming the dataset and the metric to use. Subclasses
        extend the check with what their protocol needs from the dataset.

        Args:
            dataset_meta: The dataset's metainfo.

        Raises:
            ValueError: The dataset declares a protocol this metric does
                not implement.
        """
        required, reason = protocol_metric_of(dataset_meta)
        if required is None:
            return
        implemented = [cls.__name__ for cls in type(self).__mro__]
        if required not in implemented:
            raise ValueError(
                f'{type(self).__name__} cannot evaluate dataset '
                f'{self.dataset_name(dataset_meta)}: {reason}; evaluate '
                f"it with dict(type='{required}', ...)")

    def protocol_settings(self) -> Dict[str, str]:
        """The options of this metric's protocol that change what it
        reports, beyond the ranking options every metric shares (distance,
        rank rules, re-ranking): e.g. a trial protocol's gallery draw.

        The evaluation report shows them on a section's settings line and
        records them in ``per_query.npz``, so ``paired_query_error.py``
        refuses two runs evaluated under different protocols.

        Returns:
            dict[str, str]: Option name to value; ``{}`` here (one query
            and gallery set).
        """
        return {}

    @staticmethod
    def dataset_name(dataset_meta: dict) -> str:
        """The dataset's name for an error message."""
        return repr(dataset_meta.get('dataset_name', '<unnamed dataset>'))

    def process(self, data_batch: Any,
                data_samples: Sequence[Union[dict, BaseDataElement]]) -> None:
        """Keep one compact record per sample, in order.

        Args:
            data_batch: The batch from the dataloader (unused).
            data_samples: Model outputs; mmengine passes dicts made by
                ``ReIDDataSample.to_dict()``, with ``pred_feature`` (D,),
                ``gt_label``, ``camid``, ``role`` and ``sample_idx``.

        Raises:
            ValueError: A sample lacks ``pred_feature``, ``gt_label`` or
                ``camid`` (naming its ``img_path`` and what sets the key),
                or a ``gt_label``, ``camid`` or ``modality`` is not
                an integer: a bool or a fraction such as 1.7 is refused,
                naming the sample's ``img_path`` (an integral float such
                as 3.0 is read as 3).
        """
        metric = type(self).__name__
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            role = sample.get('role')
            if role not in ROLES:
                raise ValueError(f'{metric} needs role in {ROLES} for '
                                 f'every sample, got {role!r} for '
                                 f"{sample.get('img_path')}")
            feature = _sample_value(sample, 'pred_feature', metric)
            pid = _sample_value(sample, 'gt_label', metric)
            camid = _sample_value(sample, 'camid', metric)
            feature = torch.as_tensor(feature).detach()
            img_path = sample.get('img_path')
            self.results.append(
                dict(
                    # A copy: on the CPU a view of the batch, which
                    # collecting across processes would pickle whole.
                    feature=feature.reshape(-1).cpu().clone(),
                    pid=label_to_int(pid, 'gt_label', img_path),
                    camid=label_to_int(camid, 'camid', img_path),
                    is_query=role == 'query',
                    sample_idx=sample.get('sample_idx'),
                    dataset=sample.get('dataset'),
                    img_path=img_path,
                    modality=optional_label_to_int(
                        sample.get('modality'), 'modality', img_path)))

    def counts_pids_once(self) -> bool:
        """Whether the CMC keeps one item per pid (``cmc_mode='dedup'``):
        pid 0 distractors are then refused (see
        :meth:`~.records.QueryGallery.check_no_merged_distractors`)."""
        return self.rank_options['cmc_mode'] == 'dedup'

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Rank the gallery for every query.

        Args:
            results: The records of all samples, collected from all ranks.

        Returns:
            dict: ``R{k}``, ``mAP`` and ``mINP`` in percent, the counts
            ``num_query`` and ``num_valid_query``, and ``TPR@FPR=...``
            in percent when ``verification_fprs`` is set. With named
            scorers (:meth:`set_scorers`) each key also comes as
            ``<mode>/<key>`` per mode; the unprefixed keys are the primary
            mode's.
        """
        # Also checked before extraction; kept as a guard.
        self.check_scorers(self.scorers, self.primary_scorer)
        data = self.split_roles(results)
        data.check_own_images(self.rank_options['junk_rule'],
                              type(self).__name__)
        split_index = (self.dataset_meta or {}).get('split_index')
        if split_index is not None:
            # One split of a small DG target: single-shot, as in
            # DGSplitMetric, which evaluates all of them.
            check_single_positives(data.labels,
                                   [r.get('img_path') for r in data.query],
                                   self.rank_options['junk_rule'],
                                   f'split {split_index}')
        query_feats, gallery_feats = data.query_feats, data.gallery_feats
        labels = data.labels
        self.last_analysis = None
        analyser = query_analyser(data, self.analysis_request,
                                  self.rank_options)
        observer = None if analyser is None else analyser.update
        if not self.scorers:
            metric = self.primary_distance()
            metrics, self.last_result = self._evaluate(
                metric, query_feats, gallery_feats, labels, observer)
            self.last_analysis = metric_analysis(analyser, data)
            return metrics
        if (self.query_expansion is None and self.rerank is None
                and self.verification_fprs is None):
            # One pass over the query chunks for all modes: scorers that
            # share work on a chunk (GMN's M-Net logits) do it once.
            results = evaluate_features_multi(
                query_feats,
                gallery_feats,
                *labels,
                distances=self.scorers,
                normalize=self.normalize,
                memory_budget_mb=self.memory_budget_mb,
                device=self.device,
                observers=(None if observer is None else {
                    self.primary_scorer: observer
                }),
                **self.rank_options)
            evaluated = {
                name: (self._result_metrics(result, labels=labels), result)
                for name, result in results.items()
            }
        else:
            evaluated = {
                name: self._evaluate(
                    scorer, query_feats, gallery_feats, labels,
                    observer if name == self.primary_scorer else None)
                for name, scorer in self.scorers.items()
            }
        metrics = dict()
        for name, (mode_metrics, result) in evaluated.items():
            metrics.update({f'{name}/{k}': v for k, v in mode_metrics.items()})
            if name == self.primary_scorer:
                primary_metrics, primary_result = mode_metrics, result
        metrics.update(primary_metrics)
        self.last_result = primary_result
        self.last_analysis = metric_analysis(analyser, data)
        return metrics

    def _evaluate(self,
                  metric: Union[str, Scorer],
                  query_feats: torch.Tensor,
                  gallery_feats: torch.Tensor,
                  labels: tuple,
                  observer: Optional[Callable] = None) -> tuple:
        """The metrics of one distance.

        ``observer`` gets each chunk of the distances ranked (see
        :func:`~mmreid.evaluation.functional.evaluate_features`): of the
        expanded queries with ``query_expansion``, of the re-ranked matrix
        with ``rerank`` (chunked, ranked and verified by
        ``memory_budget_mb`` like the plain distances).

        Returns:
            tuple[dict, ReIDEvalResult]: The metrics (see
            :meth:`compute_metrics`) and the full result.
        """
        # check_scorers (compute_metrics' first step) has refused
        # query_expansion and rerank with a scorer.
        normalize = self.normalize
        if self.query_expansion is not None:
            query_feats = query_expansion(
                query_feats,
                gallery_feats,
                memory_budget_mb=self.memory_budget_mb,
                device=self.device,
                **self.query_expansion)
            gallery_feats = F.normalize(gallery_feats, dim=1)
            normalize = True

        verification = None
        if self.rerank is not None:
            distmat = k_reciprocal_rerank(
                query_feats,
                gallery_feats,
                normalize=normalize or metric == 'cosine',
                memory_budget_mb=self.memory_budget_mb,
                device=self.device,
                **self.rerank)
            chunk_size = chunk_rows_for_budget(distmat.shape[1],
                                               self.memory_budget_mb)
            if observer is not None:
                for start in range(0, len(distmat), chunk_size):
                    observer(distmat[start:start + chunk_size])
            result = evaluate_rank(
                distmat,
                *labels,
                chunk_size=chunk_size,
                device=self.device,
                **self.rank_options)
            if self.verification_fprs is not None:
                verification = evaluate_verification(
                    distmat,
                    *labels,
                    fprs=self.verification_fprs,
                    junk_rule=self.rank_options['junk_rule'],
                    chunk_size=chunk_size,
                    device=self.device)
        else:
            result = evaluate_features(
                query_feats,
                gallery_feats,
                *labels,
                distance=metric,
                normalize=normalize,
                memory_budget_mb=self.memory_budget_mb,
                device=self.device,
                observer=observer,
                **self.rank_options)
            if self.verification_fprs is not None:
                verification = evaluate_verification_features(
                    query_feats,
                    gallery_feats,
                    *labels,
                    distance=metric,
                    normalize=normalize,
                    fprs=self.verification_fprs,
                    junk_rule=self.rank_options['junk_rule'],
                    memory_budget_mb=self.memory_budget_mb,
                    device=self.device)

        return self._result_metrics(result, verification, labels), result

    def _result_metrics(self,
                        result: ReIDEvalResult,
                        verification=None,
                        labels: Optional[tuple] = None) -> Dict[str, float]:
        """The metrics (see :meth:`compute_metrics`) of one result;
        ``labels`` (``(q_pids, g_pids, q_camids, g_camids)``) name the
        skipped queries in the log."""
        self._log_skipped([result], labels=labels)
        metrics = result.percentages(self.ranks)
        metrics['num_query'] = result.num_query
        metrics['num_valid_query'] = result.num_valid_query
        if verification is not None:
            for fpr, tpr in zip(verification.fprs, verification.tpr):
                metrics[fpr_key(fpr)] = float(tpr) * 100
        return metrics

    def name_primary_mode(self, metrics: Dict[str, Any]) -> Dict[str, Any]:
        """A protocol's metrics, also under the primary mode's name.

        The protocol metrics rank with the primary scorer only. Their keys
        said nothing of it: a GMN model's SYSU target was the results
        table's row ``sysu``, beside ``d3/mnet``, ``d3/euclid`` of its
        ``ReIDMetric`` target. With a model's scorers (:meth:`set_scorers`)
        each key of the protocol as a whole (no ``trial<t>/`` or
        ``split<i>/`` part) also comes as ``<primary>/<key>``
        (``mnet/R1``, ``mnet/R1_std``), as :meth:`compute_metrics` reports
        the primary mode.

        Args:
            metrics (dict): The protocol's metrics, unprefixed.

        Returns:
            dict: ``metrics``, then the primary mode's copies; ``metrics``
            as it is without a model's scorers.
        """
        if not self.scorers:
            return metrics
        named = dict(metrics)
        named.update({
            f'{self.primary_scorer}/{key}': value
            for key, value in metrics.items() if '/' not in key
        })
        return named

    def partition_metrics(
            self, partition: str, results: Sequence[ReIDEvalResult],
            counts: Sequence[Dict[str, int]]) -> Dict[str, float]:
        """The keys of a protocol evaluated on several partitions.

        Args:
            partition: ``'split'`` or ``'trial'``, the key prefix.
            results: The result of every partition, in order.
            counts: Counts reported per partition (e.g. ``num_query``),
                one dict per partition.

        Returns:
            dict: ``<partition><i>/R<k>``, ``/mAP``, ``/mINP`` (percent)
            and the counts of every partition, then the mean and the
            population standard deviation over the partitions
            (``R<k>``, ``R<k>_std``, ...; see
            :func:`~mmreid.evaluation.functional.summarize_partitions`).
        """
        metrics: Dict[str, float] = {}
        per_partition = []
        for index, (result, count) in enumerate(zip(results, counts)):
            values = result.percentages(self.ranks)
            per_partition.append(values)
            for key, value in {**values, **count}.items():
                metrics[f'{partition}{index}/{key}'] = value
        metrics.update(summarize_partitions(per_partition))
        return metrics

    def _log_skipped(self,
                     results: Sequence[ReIDEvalResult],
                     partition: Optional[str] = None,
                     labels: Optional[tuple] = None) -> None:
        """Log the queries skipped for want of a positive.

        Args:
            results: One result, or one per partition.
            partition: ``None`` for one ranking, else what the results
                are (``'trial'``, ``'split'``).
            labels: With one ranking, its ``(q_pids, g_pids, q_camids,
                g_camids)`` (shapes (Q,), (G,), (Q,), (G,)): the first
                skipped queries are named by position, pid and camid.
        """
        skipped = [r.num_query - r.num_valid_query for r in results]
        if not any(skipped):
            return
        rule = self.rank_options['junk_rule']
        if partition is None:
            message = (f'{skipped[0]} of {results[0].num_query} queries '
                       'have no positive in the gallery after the '
                       f"'{rule}' junk rule and were skipped"
                       f'{_skipped_queries(results[0], labels)}.')
        else:
            message = (f'{type(self).__name__}: queries without a positive '
                       f"after the '{rule}' rule were skipped (per "
                       f'{partition}: {skipped}).')
        print_log(message, logger='current', level=logging.WARNING)


def _skipped_queries(result: ReIDEvalResult,
                     labels: Optional[tuple],
                     limit: int = 3) -> str:
    """``': query 5 (pid 5, camid 0), ...'`` for the first ``limit``
    queries that ``result`` skipped (``valid_mask`` False), or ``''``
    without ``labels``."""
    if labels is None:
        return ''
    q_pids, _, q_camids, _ = labels
    skipped = [i for i, valid in enumerate(result.valid_mask) if not valid]
    named = ', '.join(f'query {i} (pid {int(q_pids[i])}, camid '
                      f'{int(q_camids[i])})' for i in skipped[:limit])
    more = f', ... ({len(skipped) - limit} more)' \
        if len(skipped) > limit else ''
    return f': {named}{more}'
