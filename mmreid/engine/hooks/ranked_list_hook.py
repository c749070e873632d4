"""Pictures of the ranked lists of the worst and best queries."""
import dataclasses
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.structures import BaseDataElement

from mmreid.datasets.transforms.loading import read_image_rgb
from mmreid.evaluation.metrics.records import label_to_int
from mmreid.evaluation.metrics.scorers import is_gallery_dependent
from mmreid.evaluation.query_analysis import analyse_queries
from mmreid.models.reiders.reid_model import get_model_scorers
from mmreid.registry import HOOKS
from mmreid.utils.atomic import atomic_folder, check_replaceable, write_image
from mmreid.visualization import draw_ranked_list
from mmreid.visualization.ranked_list import first_match_note

PHASES = ('val', 'test')


def validation_step(runner) -> Tuple[str, int]:
    """The subfolder and the visualizer step of a validation's outputs.

    An iteration-based train loop (``IterBasedTrainLoop``) never advances
    its epoch: named by epoch, every validation went to ``val_epoch_0``
    and replaced the one before.

    Args:
        runner: The runner validating.

    Returns:
        tuple[str, int]: ``('val_iter_<i>', i)`` with ``i`` the iteration
        of an iteration-based train loop (built or configured), else
        ``('val_epoch_<n>', n)`` with ``n`` the epoch.
    """
    from mmengine.runner import IterBasedTrainLoop

    from mmreid.engine.runner.reid_runner import iteration_based
    loop = getattr(runner, '_train_loop', None)
    if isinstance(loop, IterBasedTrainLoop) or iteration_based(loop):
        return f'val_iter_{runner.iter}', runner.iter
    return f'val_epoch_{runner.epoch}', runner.epoch


def select_worst_best(ap: np.ndarray,
                      num_queries: int) -> Tuple[np.ndarray, np.ndarray]:
    """Indices of the lowest- and highest-AP queries.

    Queries with a NaN AP (no positive in their gallery) are never chosen.
    Ties keep query order.

    Args:
        ap (np.ndarray): AP of every query, shape (Q,), NaN if invalid.
        num_queries (int): How many of each to return.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``worst`` in ascending AP and
        ``best`` in descending AP, each of at most ``num_queries``.
    """
    ap = np.asarray(ap, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(ap))
    ascending = valid[np.argsort(ap[valid], kind='stable')]
    descending = valid[np.argsort(-ap[valid], kind='stable')]
    return ascending[:num_queries], descending[:num_queries]


def ranked_images(query: List[dict],
                  gallery: List[dict]) -> Dict[str, List[Any]]:
    """The ``q_images`` and ``g_images`` of
    :func:`~mmreid.evaluation.query_analysis.analyse_queries` from records:
    their ``img_path``, so that no query is ranked against its own image
    (QMUL-iLIDS lists an image that is a query in one split and a gallery
    image in another once per role; no split ranks it against itself)."""
    return dict(
        q_images=[r.get('img_path') for r in query],
        g_images=[r.get('img_path') for r in gallery])


@HOOKS.register_module()
class RankedListHook(Hook):
    """Draw the ranked lists of the worst and best queries of an evaluation.

    During the chosen phases the hook keeps one compact record per sample
    (feature, pid, camid, role, image path, dataset, and the target of a
    multi-target loop) from the model outputs. After the epoch it takes,
    per target (else per ``dataset``, so a multi-target test never mixes
    galleries), the per-query analysis a ``ReIDMetric`` made of its own
    whole-gallery ranking (the hook sets its ``analysis_request``), so a
    model's pair scorer (GMN's M-Net) scores each pair once. Otherwise
    (trials, splits, re-ranking, other metrics) it ranks every query
    against the metric's gallery (its ``gallery_pool``, see
    :meth:`metric_gallery`) itself (:meth:`draw_group`: a query's own
    image left out, ties in the metric's ``tie_policy`` order) with the
    model's
    own distance (its primary scorer, the contract the val/test loops
    apply, see ``ReIDModel.scorers``), else the distance of the
    evaluator's metric (its ``primary_distance()`` and ``normalize``;
    the model's ``distance`` when the evaluator has no such metric; else
    Euclidean) and the
    metric's junk and tie rules, computes each query's AP, and draws the
    ``num_queries`` lowest-AP and ``num_queries`` highest-AP queries with
    their top ``topk`` kept gallery items (green: same pid, red: other
    pid). Re-ranking and query expansion are not applied.

    Pictures go to ``out_dir`` (default ``<work_dir>/<timestamp>/
    ranked_lists``; relative paths are under the work dir) as
    ``{worst|best}_{i}_ap{AP}_pid{pid}.jpg``, in a ``val_epoch_{n}``
    subfolder for validation (``val_iter_{i}`` in an iteration-based
    training, see :func:`validation_step`), and to the visualizer's
    backends (at that epoch or iteration). The
    folder holds one evaluation's pictures: they are drawn into a
    temporary folder that then replaces it as a whole (see
    :func:`~mmreid.utils.atomic.atomic_folder`), an earlier run's
    pictures named in the log; a folder that holds other files is refused
    before the evaluation.

    The hook holds a copy of the features of the evaluated set (Q + G
    rows) until the end of the epoch; the distances are streamed.

    Args:
        num_queries (int): Worst and best queries to draw (each).
            Defaults to 5.
        topk (int): Gallery items per list. Defaults to 10.
        out_dir (str, optional): Where pictures are written.
        metric_index (int): Which metric of the evaluator sets the distance
            and rules. Defaults to 0.
        phases (Sequence[str]): ``'test'`` and/or ``'val'``. Defaults to
            ``('test', )``.
        tile_size (tuple[int, int]): ``(height, width)`` of one image.
        add_to_backends (bool): Also send the pictures to the visualizer's
            ``vis_backends``. Defaults to True.

    Examples:
        >>> custom_hooks = [dict(type='RankedListHook', num_queries=3)]
    """
    priority = 'LOW'
    #: Folder under the log dir without ``out_dir``.
    default_dir = 'ranked_lists'
    #: The names of what the hook writes into its folder (regex).
    outputs = r'(?:.+_)?(?:worst|best)_\d+_ap.*_pid.*\.jpg'

    def __init__(self,
                 num_queries: int = 5,
                 topk: int = 10,
                 out_dir: Optional[str] = None,
                 metric_index: int = 0,
                 phases: Sequence[str] = ('test', ),
                 tile_size: Tuple[int, int] = (128, 64),
                 add_to_backends: bool = True) -> None:
        if int(num_queries) < 1 or int(topk) < 1:
            raise ValueError('num_queries and topk must be >= 1, got '
                             f'num_queries={num_queries}, topk={topk}')
        if isinstance(phases, str):
            phases = (phases, )
        if not phases or set(phases) - set(PHASES):
            raise ValueError(f'phases must be a non-empty subset of {PHASES}, '
                             f'got {phases!r}')
        self.num_queries = int(num_queries)
        self.topk = int(topk)
        self.out_dir = out_dir
        self.metric_index = int(metric_index)
        self.phases = tuple(phases)
        self.tile_size = tuple(tile_size)
        self.add_to_backends = add_to_backends
        self._records: List[dict] = []
        self._target: Optional[str] = None
        self._evaluators: Dict[Optional[str], Any] = dict()

    # -- collection -------------------------------------------------------
    def before_val_epoch(self, runner) -> None:
        self._records = []
        self._evaluators = dict()
        if 'val' in self.phases:
            self.check_output_dir(runner, validation_step(runner)[0])

    def before_test_epoch(self, runner) -> None:
        self._records = []
        self._evaluators = dict()
        if 'test' in self.phases:
            self.check_output_dir(runner, '')

    def output_dir(self, runner, subdir: str) -> str:
        """The folder one evaluation's outputs replace: ``out_dir``
        (relative to the work dir; by default :attr:`default_dir` under
        the log dir), and ``subdir`` in it when given."""
        out_dir = self.out_dir or osp.join(runner.log_dir, self.default_dir)
        if not osp.isabs(out_dir):
            out_dir = osp.join(runner.work_dir, out_dir)
        return osp.join(out_dir, subdir) if subdir else out_dir

    def check_output_dir(self, runner, subdir: str) -> None:
        """Refuse, before the evaluation, a folder that holds files this
        hook does not write (see
        :func:`~mmreid.utils.atomic.check_replaceable`)."""
        if is_main_process():
            check_replaceable(
                self.output_dir(runner, subdir), self.outputs,
                type(self).__name__)

    def before_val_iter(self, runner, batch_idx: int, data_batch=None):
        self._note_target(runner, 'val')

    def before_test_iter(self, runner, batch_idx: int, data_batch=None):
        self._note_target(runner, 'test')

    def analysis_needs(self) -> Dict[str, int]:
        """The ``topk`` and ``max_rank`` this hook needs of an analysis."""
        return dict(topk=self.topk, max_rank=1)

    def _note_target(self, runner, mode: str) -> None:
        """Remember the target being evaluated and its evaluator, and ask
        its metric to analyse its own ranking."""
        loop = runner.test_loop if mode == 'test' else runner.val_loop
        self._target = getattr(loop, 'current_target', None)
        if self._target in self._evaluators:
            return
        evaluator = getattr(loop, 'evaluator', None)
        self._evaluators[self._target] = evaluator
        metric = self._metric_of(evaluator)
        if mode in self.phases and hasattr(metric, 'analysis_request'):
            # Merged with another hook's request (the report and the
            # pictures of one test): each takes the lengths it needs.
            request = dict(getattr(metric, 'analysis_request', None) or {})
            for key, value in self.analysis_needs().items():
                request[key] = max(int(request.get(key, 0)), value)
            metric.analysis_request = request
            metric.last_analysis = None

    @staticmethod
    def metric_gallery(metric, gallery: List[dict]) -> List[dict]:
        """The collected gallery records the metric ranks against.

        A metric that keeps part of the gallery it is given (its
        ``gallery_pool``: ``SYSUMetric(mode='indoor')`` keeps cams 1 and 2
        of an all-search pool) says which; any other metric ranks them
        all.

        Args:
            metric: The evaluator's metric, or None.
            gallery (list[dict]): Gallery records, each with ``camid``.

        Returns:
            list[dict]: The records kept, in their order.
        """
        pool = getattr(metric, 'gallery_pool', None)
        return list(gallery) if not callable(pool) else pool(gallery)

    def _metric_of(self, evaluator) -> Any:
        metrics = getattr(evaluator, 'metrics', None) or []
        if -len(metrics) <= self.metric_index < len(metrics):
            return metrics[self.metric_index]
        return None

    def _metric_analysis(self, name: Any, metric, query: List[dict],
                         gallery: List[dict]) -> Optional[tuple]:
        """The analysis the metric made of its own ranking, when it is of
        these samples and at least this hook's lengths (cut to them).

        Returns:
            tuple | None: ``(analysis, query, gallery)`` with the metric's
            records in the analysis's order, else None (the hook then
            ranks the samples itself).
        """
        kept = getattr(metric, 'last_analysis', None)
        if kept is None:
            return None

        def keys(records: List[dict]) -> List[tuple]:
            return sorted((str(r.get('img_path')), label_to_int(r['pid']),
                           label_to_int(r['camid'])) for r in records)

        analysis = kept.analysis
        needs = self.analysis_needs()
        why = None
        if analysis.topk_index.shape[1] < needs['topk'] or len(
                analysis.cmc) < needs['max_rank']:
            why = 'it was made with a smaller topk or max_rank'
        elif keys(kept.query) != keys(query) or keys(kept.gallery) != keys(
                gallery):
            why = 'its query or gallery samples are not the ones collected'
        if why is not None:
            print_log(
                f'{name}: the metric\'s own analysis is not used ({why}); '
                'ranking the samples again', logger='current')
            return None
        k, r = needs['topk'], needs['max_rank']
        analysis = dataclasses.replace(
            analysis,
            topk_index=analysis.topk_index[:, :k],
            topk_distance=analysis.topk_distance[:, :k],
            topk_match=analysis.topk_match[:, :k],
            cmc=analysis.cmc[:r])
        return analysis, kept.query, kept.gallery

    def after_val_iter(self,
                       runner,
                       batch_idx: int,
                       data_batch=None,
                       outputs=None) -> None:
        if 'val' in self.phases:
            self._collect(outputs)

    def after_test_iter(self,
                        runner,
                        batch_idx: int,
                        data_batch=None,
                        outputs=None) -> None:
        if 'test' in self.phases:
            self._collect(outputs)

    def _collect(self, outputs: Optional[Sequence]) -> None:
        for sample in outputs or []:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            role = sample.get('role')
            if role not in ('query', 'gallery') \
                    or 'pred_feature' not in sample:
                continue
            feature = torch.as_tensor(sample['pred_feature']).detach()
            self._records.append(
                dict(
                    # A copy, not a view of the batch (gathered whole).
                    feature=feature.reshape(-1).float().cpu().clone(),
                    pid=label_to_int(sample['gt_label'], 'gt_label',
                                     sample.get('img_path')),
                    camid=label_to_int(sample['camid'], 'camid',
                                       sample.get('img_path')),
                    modality=sample.get('modality'),
                    is_query=role == 'query',
                    img_path=sample.get('img_path'),
                    dataset=sample.get('dataset'),
                    sample_idx=sample.get('sample_idx'),
                    target=self._target))

    # -- drawing ----------------------------------------------------------
    def after_val_epoch(self, runner, metrics=None) -> None:
        if 'val' in self.phases:
            self._draw_all(runner, 'val', *validation_step(runner))

    def after_test_epoch(self, runner, metrics=None) -> None:
        if 'test' in self.phases:
            self._draw_all(runner, 'test', '', 0)

    def _gather(self) -> List[dict]:
        """Every rank's records, each sample once, in dataset order.

        The ranks hold interleaved parts of the dataset (mmengine's
        samplers deal index ``i`` to rank ``i % world_size``), and the
        metric sees them interleaved back, in dataset order. The gallery
        index breaks distance ties (``tie_policy='stable'``), so the
        records are put back in that order (by ``sample_idx``, a stable
        sort that keeps each dataset's samples apart) for the pictures
        and the report to rank as the metric does whatever the number of
        processes and the sampler's order.
        """
        records = self._records
        self._records = []
        # One process too: a shuffled test loader hands them out of order.
        gathered = (
            all_gather_object(records) if get_world_size() > 1 else [records])
        unique, seen = [], set()
        for part in gathered:
            for record in part:
                # 'target': a multi-target test may evaluate one dataset
                # twice (EvalReportHook notes the target of each record).
                key = (record.get('target'), record['dataset'],
                       record['sample_idx'], record['is_query'],
                       record['img_path'])
                if record['sample_idx'] is not None and key in seen:
                    continue  # distributed padding
                seen.add(key)
                unique.append(record)
        if all(r['sample_idx'] is not None for r in unique):
            unique.sort(key=lambda r: r['sample_idx'])
        return unique

    def _draw_all(self, runner, mode: str, subdir: str, step: int) -> None:
        records = self._gather()
        if not is_main_process() or not records:
            return
        out_dir = self.output_dir(runner, subdir)
        with atomic_folder(out_dir, self.outputs, type(self).__name__) as tmp:
            written = self._draw_groups(runner, mode, records, tmp, step)
        print_log(
            f'RankedListHook wrote {written} ranked lists to {out_dir}',
            logger='current')

    def _draw_groups(self, runner, mode: str, records: List[dict],
                     out_dir: str, step: int) -> int:
        """Draw the pictures of every target (dataset) of ``records``
        into ``out_dir``; returns how many."""
        groups: Dict[Any, List[dict]] = {}
        by_target = any(r.get('target') is not None for r in records)
        for record in records:
            key = record['target'] if by_target else record['dataset']
            groups.setdefault(key, []).append(record)
        written = 0
        for name, group in groups.items():
            prefix = f'{name}_' if len(groups) > 1 and name else ''
            evaluator = self._evaluators.get(name if by_target else None)
            metric = self._metric_of(evaluator)
            query = [r for r in group if r['is_query']]
            gallery = self.metric_gallery(
                metric, [r for r in group if not r['is_query']])
            kept = self._metric_analysis(name, metric, query, gallery)
            if kept is not None:
                scorer = self._ranking_setup(runner, mode, evaluator)[0]
                pictures = self.draw_analysis(
                    *kept, values=not is_gallery_dependent(scorer))
            else:
                scorer, normalize, rank_options = self._ranking_setup(
                    runner, mode, evaluator)
                pictures = self.draw_group(query + gallery, scorer, normalize,
                                           rank_options)
            for title, canvas in pictures:
                filename = f'{prefix}{title}.jpg'
                write_image(osp.join(out_dir, filename), canvas)
                if self.add_to_backends:
                    runner.visualizer.add_image(
                        f'ranked_list_{prefix}{title}', canvas, step=step)
                written += 1
        return written

    def _ranking_setup(self,
                       runner,
                       mode: str,
                       evaluator=None) -> Tuple[Any, bool, Dict[str, Any]]:
        """The distance, normalisation and rank rules of the evaluation
        (of ``evaluator``, by default the loop's)."""
        loop = runner.test_loop if mode == 'test' else runner.val_loop
        evaluator = evaluator or getattr(loop, 'evaluator', None)
        metrics = getattr(evaluator, 'metrics', None) or []
        metric = (
            metrics[self.metric_index]
            if -len(metrics) <= self.metric_index < len(metrics) else None)
        rank_options = dict(junk_rule='market', tie_policy='stable')
        if metric is not None and hasattr(metric, 'rank_options'):
            for key in ('junk_rule', 'tie_policy', 'ap_mode', 'cmc_mode'):
                if key in metric.rank_options:
                    rank_options[key] = metric.rank_options[key]
        # The model's own distance first, through the loops' contract:
        # the pictures rank as the reported (primary) mode does.
        model_scorers = get_model_scorers(runner.model)
        if model_scorers:
            return next(iter(model_scorers.values())), False, rank_options
        if metric is not None and hasattr(metric, 'primary_distance'):
            return metric.primary_distance(), bool(
                getattr(metric, 'normalize', False)), rank_options
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        distance = getattr(model, 'distance', None)
        if callable(distance):
            return distance, False, rank_options
        return 'euclidean', False, rank_options

    def draw_group(
        self,
        records: List[dict],
        scorer: Any = 'euclidean',
        normalize: bool = False,
        rank_options: Optional[Dict[str, Any]] = None
    ) -> List[Tuple[str, np.ndarray]]:
        """Rank one query/gallery set and draw its worst and best queries.

        The ranking is :func:`~mmreid.evaluation.query_analysis.
        analyse_queries`' (as the report's): each query's kept gallery in
        full, ties ordered by the ``tie_policy`` its AP is computed under,
        and a gallery item of the query's own image (same ``img_path``)
        removed; then :meth:`draw_analysis` draws it.

        Args:
            records (list[dict]): One dict per sample with ``feature``
                (D,), ``pid``, ``camid``, ``is_query`` and ``img_path``.
            scorer (str | callable): A distance name of
                :func:`compute_distance` or ``(query (Qc, D), gallery
                (G, D)) -> (Qc, G)``. A gallery-dependent one's values
                (positions in the ranking) are not printed as distances.
            normalize (bool): L2-normalise the features first.
            rank_options (dict, optional): ``junk_rule``, ``tie_policy``,
                ``ap_mode`` and ``cmc_mode`` of :func:`analyse_queries`
                (``cmc_mode`` also labels the note's rank, see
                :func:`~mmreid.visualization.ranked_list.first_match_note`).

        Returns:
            list[tuple[str, np.ndarray]]: ``(title, RGB canvas)`` pairs,
            worst first.
        """
        query = [r for r in records if r['is_query']]
        gallery = [r for r in records if not r['is_query']]
        if not query or not gallery:
            return []
        analysis = analyse_queries(
            torch.stack([r['feature'] for r in query]),
            torch.stack([r['feature'] for r in gallery]),
            [r['pid'] for r in query], [r['pid'] for r in gallery],
            [r['camid'] for r in query], [r['camid'] for r in gallery],
            distance=scorer,
            normalize=normalize,
            topk=self.topk,
            max_rank=1,
            **ranked_images(query, gallery),
            **dict(rank_options or {}))
        return self.draw_analysis(
            analysis, query, gallery, values=not is_gallery_dependent(scorer))

    def draw_analysis(self,
                      analysis,
                      query: List[dict],
                      gallery: List[dict],
                      values: bool = True) -> List[Tuple[str, np.ndarray]]:
        """Draw the worst and best queries of a :class:`QueryAnalysis`.

        The pictures :meth:`draw_group` draws from the same ranking, with
        no distance computed.

        Args:
            analysis (QueryAnalysis): Of ``query`` against ``gallery``,
                with at least ``topk`` ranked items per query.
            query (list[dict]): Query records in the analysis's order.
            gallery (list[dict]): Gallery records; ``topk_index`` indexes
                them.
            values (bool): Print each item's distance under it; False for
                a gallery-dependent scorer, whose values are positions in
                the ranking (the ``#k`` already shown), not distances.

        Returns:
            list[tuple[str, np.ndarray]]: ``(title, RGB canvas)`` pairs,
            worst first.
        """
        worst, best = select_worst_best(analysis.ap, self.num_queries)
        pictures = []
        for tag, chosen in (('worst', worst), ('best', best)):
            for i, q in enumerate(chosen.tolist()):
                index = analysis.topk_index[q][:self.topk]
                shown = index >= 0
                kept = index[shown].tolist()
                first = int(analysis.first_rank[q])
                canvas = self._draw_one(
                    query[q], [gallery[g] for g in kept],
                    analysis.topk_distance[q][:self.topk][shown].tolist()
                    if values else None,
                    None if first <= len(kept) else first_match_note(
                        first, analysis.cmc_mode))
                if canvas is None:
                    continue
                title = (f'{tag}_{i:02d}_ap{analysis.ap[q]:.3f}'
                         f'_pid{query[q]["pid"]}')
                pictures.append((title, canvas))
        return pictures

    def _draw_one(self,
                  query: dict,
                  gallery: List[dict],
                  distances: Optional[List[float]],
                  note: Optional[str] = None) -> Optional[np.ndarray]:
        paths = [query['img_path']] + [g['img_path'] for g in gallery]
        if any(not isinstance(p, str) or not osp.isfile(p) for p in paths):
            missing = [
                p for p in paths if not (isinstance(p, str) and osp.isfile(p))
            ]
            print_log(
                f'RankedListHook cannot read image {missing[0]!r}; '
                'skipped a ranked list',
                logger='current')
            return None
        # Decoded as the model was fed them (not mmcv.imread, which
        # premultiplies a TIFF's alpha).
        images = [read_image_rgb(p) for p in paths]
        return draw_ranked_list(
            images[0],
            images[1:],
            matches=[g['pid'] == query['pid'] for g in gallery],
            distances=distances,
            tile_size=self.tile_size,
            # camid: the datasets' 0-based camera (Market's c1 is camid 0).
            query_label=f'pid {query["pid"]}\ncamid {query["camid"]}',
            gallery_labels=[
                f'pid {g["pid"]}\ncamid {g["camid"]}' for g in gallery
            ],
            note=note)
