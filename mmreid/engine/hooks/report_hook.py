"""Write a self-contained HTML evaluation report after a test run."""
import dataclasses
import json
import os.path as osp
import re
import uuid
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.dist import is_main_process
from mmengine.logging import print_log

from mmreid.datasets.transforms.loading import read_image_rgb
from mmreid.evaluation.metrics.records import label_to_int
from mmreid.evaluation.metrics.scorers import is_gallery_dependent
from mmreid.evaluation.query_analysis import analyse_queries, own_gallery_pairs
from mmreid.evaluation.results_table import (RESULT_COLUMNS, inside_bounds,
                                             results_rows)
from mmreid.evaluation.sampling_error import trial_query_means
from mmreid.registry import HOOKS
from mmreid.utils.atomic import atomic_folder
from mmreid.visualization.html_report import (POSITION, RankedExample,
                                              ReportSection, render_report)
from .ranked_list_hook import RankedListHook, ranked_images, select_worst_best
from .report_settings import (OTHER_CMC_LABEL,  # noqa: F401 (re-exported)
                              OTHER_DIRECTION_LABEL, _mode_options,
                              _scorer_name, gallery_digest,
                              model_test_settings, other_direction,
                              ranking_inputs, ranking_settings,
                              sampling_error_line, section_sampling_errors)

#: File name of the report inside ``out_dir``.
REPORT_NAME = 'report.html'
#: File name of the per-query values beside it (see
#: :meth:`EvalReportHook.per_query_arrays`).
PER_QUERY_NAME = 'per_query.npz'
#: The array of each section of ``per_query.npz`` that holds the id of
#: the run that wrote it, which ``report.html`` beside it names too
#: (:func:`report_run_id`).
RUN_ID_KEY = 'run_id'
#: How ``report.html`` names its run id (a meta line under the title).
RUN_ID_LINE = 'run id: {}'


def report_run_id(page: str) -> Optional[str]:
    """The run id a ``report.html`` names (its ``run id: <hex>`` line),
    or None for a page written before reports had one."""
    found = re.search(r'<p class="meta">run id: ([0-9a-f]{32})</p>', page)
    return found.group(1) if found else None


@HOOKS.register_module()
class EvalReportHook(RankedListHook):
    """Write ``report.html``: what an evaluation got right and wrong.

    The report (see :mod:`mmreid.visualization.html_report`) is one file
    that opens from disk: the reported metrics as a table, then per target
    (one section per target of a multi-target loop, else per dataset) R1
    and mAP with their query sampling errors
    (:func:`section_sampling_errors`, also logged), the CMC curve, the AP
    and rank-of-first-match histograms, R1/mAP per query camera x gallery
    camera (and per modality pair when samples carry a
    modality) and the ranked lists of the ``num_queries`` worst and best
    queries by AP with their images as embedded thumbnails.

    The analysis ranks every query against the target's whole test gallery
    with the evaluator's distance and rules (as :class:`RankedListHook`),
    so its R1/mAP/mINP equal a plain ``ReIDMetric``'s. The whole gallery
    is the one the metric ranks or draws from (its ``gallery_pool``:
    ``SYSUMetric(mode='indoor')`` keeps cams 1 and 2 of an all-search
    pool), and no query is ranked against its own image (a gallery item of
    the same ``img_path``: QMUL-iLIDS's union of splits lists an image
    that is a query in one split and a gallery image in another once per
    role, and no split ranks it against itself). A ``ReIDMetric``
    that ranks the whole gallery makes it from its own distances as it
    computes them (the hook sets its ``analysis_request``), so a model's
    pair scorer (GMN's M-Net) scores each pair once; for other metrics
    (trials, splits) the hook ranks the collected features itself. With
    re-ranking or query expansion the metric analyses the distances it
    ranks, so the report shows the reported ranking. Where the reported
    number differs (trial or split protocols draw sub-galleries; the
    hook's own ranking does not re-rank or expand queries), the section
    says so with both numbers.

    Beside it, ``per_query.npz`` holds the per-query values with the
    gallery and the evaluation settings they come from
    (:meth:`per_query_arrays`), which ``tools/analysis_tools/
    paired_query_error.py`` pairs across two runs. Both files name the
    run that wrote them (a random ``run id``: the page's meta line, each
    section's ``run_id`` in the file) and replace the folder's earlier
    report together: they are written into a temporary folder that then
    takes its place (see :func:`~mmreid.utils.atomic.atomic_folder`), so
    the folder is always one run's whole report; an earlier one replaced
    is named in the log, and a folder that holds other files is refused
    before the evaluation.

    ``tools/test.py --report DIR`` adds this hook.

    Args:
        out_dir (str, optional): Folder of ``report.html``; relative paths
            are under the work dir. Defaults to ``<log_dir>/report``.
        num_queries (int): Worst and best queries shown (each).
            Defaults to 5.
        topk (int): Gallery images per ranked list. Defaults to 10.
        max_rank (int): Length of the CMC curve. Defaults to 50.
        metric_index (int): Which metric of an evaluator sets the distance
            and rules. Defaults to 0.
        phases (Sequence[str]): ``'test'`` and/or ``'val'``. Defaults to
            ``('test', )``.
        thumb_size (tuple[int, int]): ``(height, width)`` of a thumbnail.
        title (str): Title of the page.
        meta (Sequence[str]): Lines under the title (config, checkpoint).

    Examples:
        >>> custom_hooks = [dict(type='EvalReportHook', out_dir='report')]
    """
    default_dir = 'report'
    outputs = rf'{re.escape(REPORT_NAME)}|{re.escape(PER_QUERY_NAME)}'

    def __init__(
            self,
            out_dir: Optional[str] = None,
            num_queries: int = 5,
            topk: int = 10,
            max_rank: int = 50,
            metric_index: int = 0,
            phases: Sequence[str] = ('test', ),
            thumb_size: Tuple[int, int] = (128, 64),
            title: str = 'mmreid evaluation report',
            meta: Sequence[str] = ()) -> None:
        super().__init__(
            num_queries=num_queries,
            topk=topk,
            out_dir=out_dir,
            metric_index=metric_index,
            phases=phases,
            tile_size=thumb_size,
            add_to_backends=False)
        if int(max_rank) < 1:
            raise ValueError(f'max_rank must be >= 1, got {max_rank}')
        self.max_rank = int(max_rank)
        self.title = title
        self.meta = list(meta)
        self._metrics: Optional[Dict] = None
        self._per_query: Dict[str, np.ndarray] = dict()
        self.last_path: Optional[str] = None

    def analysis_needs(self) -> Dict[str, int]:
        """The ``topk`` and ``max_rank`` of the report's analysis."""
        return dict(topk=self.topk, max_rank=self.max_rank)

    # -- the report ------------------------------------------------------
    def _draw_all(self, runner, mode: str, subdir: str, step: int) -> None:
        # Called by RankedListHook's after_{mode}_epoch, which has no
        # metrics argument: they come from _metrics, set just before.
        records = self._gather()
        if not is_main_process() or not records:
            return
        out_dir = self.output_dir(runner, subdir)
        metrics = dict(self._metrics or {})
        groups: Dict[Any, List[dict]] = {}
        by_target = any(r.get('target') is not None for r in records)
        for record in records:
            key = record['target'] if by_target else record['dataset']
            groups.setdefault(key, []).append(record)
        sections = []
        self._per_query = dict()
        for name, group in groups.items():
            evaluator = self._evaluators.get(name if by_target else None)
            section = self.build_section(runner, mode,
                                         name if name is not None else mode,
                                         group, evaluator, metrics, by_target)
            if section is not None:
                sections.append(section)
        run_id = uuid.uuid4().hex
        meta = [f'work dir: {runner.work_dir}', RUN_ID_LINE.format(run_id)]
        page = render_report(
            sections,
            title=self.title,
            results=results_rows(metrics, RESULT_COLUMNS, default_name=mode),
            meta=self.meta + meta,
            thumb_size=self.tile_size)
        with atomic_folder(out_dir, self.outputs, type(self).__name__) as tmp:
            with open(osp.join(tmp, REPORT_NAME), 'w', encoding='utf-8') as f:
                f.write(page)
            arrays = dict(self._per_query)
            for section in {k.rpartition('/')[0] for k in self._per_query}:
                arrays[f'{section}/{RUN_ID_KEY}'] = np.array(run_id)
            np.savez_compressed(osp.join(tmp, PER_QUERY_NAME), **arrays)
        path = osp.join(out_dir, REPORT_NAME)
        self.last_path = path
        print_log(
            f'EvalReportHook wrote {path} ({len(sections)} section(s), run '
            f'id {run_id})',
            logger='current')

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._metrics = metrics
        super().after_val_epoch(runner, metrics)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._metrics = metrics
        super().after_test_epoch(runner, metrics)

    def build_section(self, runner, mode: str, name: str, records: List[dict],
                      evaluator, metrics: Dict,
                      by_target: bool) -> Optional[ReportSection]:
        """Analyse one target's records and gather its examples."""
        metric = self._metric_of(evaluator)
        query = [r for r in records if r['is_query']]
        gallery = self.metric_gallery(
            metric, [r for r in records if not r['is_query']])
        if not query or not gallery:
            return None
        scorer, normalize, options = self._ranking_setup(
            runner, mode, evaluator)
        with_modality = all(r.get('modality') is not None for r in records)
        collected = query, gallery
        kept = self._metric_analysis(name, metric, query, gallery)
        if kept is not None:
            analysis, query, gallery = kept
        else:
            analysis = analyse_queries(
                *ranking_inputs(query, gallery, with_modality),
                distance=scorer,
                normalize=normalize,
                junk_rule=options.get('junk_rule', 'market'),
                tie_policy=options.get('tie_policy', 'stable'),
                ap_mode=options.get('ap_mode', 'cumsum'),
                cmc_mode=options.get('cmc_mode', 'standard'),
                topk=self.topk,
                max_rank=self.max_rank,
                **ranked_images(query, gallery))
        gallery_dependent = is_gallery_dependent(scorer)
        if gallery_dependent:
            analysis = self._own_gallery_pairs(analysis, *collected, scorer,
                                               normalize, options,
                                               with_modality)
        cmc_notes = self._compare_cmc(analysis, metric, metrics, name,
                                      by_target)
        notes = self._compare(analysis, metric, metrics, name,
                              by_target) + cmc_notes
        cmc_label = OTHER_CMC_LABEL if cmc_notes and getattr(
            metric, 'cmc_protocol', None) else ''
        errors = section_sampling_errors(analysis, metric)
        if cmc_label and 'R1' in errors:
            errors = {
                (f'R1 ({cmc_label})' if k == 'R1' else k): v
                for k, v in errors.items()
            }
        if errors:
            print_log(
                f'{name}: ' + sampling_error_line(errors), logger='current')
        setup = dict(
            metric=type(metric).__name__ if metric is not None else 'none',
            distance=_scorer_name(scorer),
            normalize=str(bool(normalize)),
            junk_rule=str(options.get('junk_rule', 'market')),
            tie_policy=str(options.get('tie_policy', 'stable')),
            ap_mode=str(options.get('ap_mode', 'cumsum')),
            cmc_mode=str(options.get('cmc_mode', 'standard')))
        primary = getattr(metric, 'primary_scorer', None)
        if primary:
            mode_options = _mode_options(scorer)
            setup['distance'] = f'{primary} (primary mode{mode_options})'
        loop = runner.test_loop if mode == 'test' else runner.val_loop
        settings = ranking_settings(setup, metric, kept is not None,
                                    runner.model,
                                    bool(getattr(loop, 'fp16', False)))
        self._per_query.update(
            self.per_query_arrays(
                name,
                query,
                analysis,
                metric,
                gallery=gallery,
                settings=settings))
        # The page names the protocol and test-time options that change
        # the ranking: every setting but the values' note, said below.
        setup.update({
            key: value
            for key, value in settings.items()
            if key not in ('values', 'primary_mode')
        })
        if settings['values'] != 'reported ranking':
            # The whole-gallery values are not the reported ranking (plain
            # distances, or the other direction): said so.
            setup['values'] = settings['values']
        if gallery_dependent:
            notes.append(
                f'The distance {setup["distance"]} is gallery-dependent: '
                'its values are 0-based positions in each query\'s '
                'ranking of the gallery it is given (ties share one), not '
                'pair distances. The ranked lists show them as position=; '
                'the camera (and modality) tables score each camera\'s '
                '(modality\'s) gallery on its own.')
        worst, best = select_worst_best(analysis.ap, self.num_queries)
        examples = []
        for kind, chosen in (('worst', worst), ('best', best)):
            for q in chosen.tolist():
                example = self._example(kind, q, query, gallery, analysis)
                if gallery_dependent:
                    example.value_name = POSITION
                examples.append(example)
        return ReportSection(name, analysis, setup, len(gallery), examples,
                             notes, errors, cmc_label)

    @staticmethod
    def _own_gallery_pairs(analysis, query: List[dict], gallery: List[dict],
                           scorer, normalize: bool, options: Dict[str, Any],
                           with_modality: bool):
        """``analysis`` with its camera and modality tables scored on
        each group's gallery alone (:func:`own_gallery_pairs`): the
        whole-gallery ranking of a gallery-dependent scorer is not its
        ranking of one camera's gallery. The tables are sums over the
        queries, so the collected records may be in another order than
        the metric's."""
        camera_pairs, modality_pairs = own_gallery_pairs(
            *ranking_inputs(query, gallery, with_modality),
            distance=scorer,
            normalize=normalize,
            junk_rule=options.get('junk_rule', 'market'),
            tie_policy=options.get('tie_policy', 'stable'),
            ap_mode=options.get('ap_mode', 'cumsum'),
            **ranked_images(query, gallery))
        return dataclasses.replace(
            analysis, camera_pairs=camera_pairs, modality_pairs=modality_pairs)

    @staticmethod
    def per_query_arrays(
            name: str,
            query: List[dict],
            analysis,
            metric,
            gallery: Optional[List[dict]] = None,
            settings: Optional[dict] = None) -> Dict[str, np.ndarray]:
        """The per-query values of one section, as ``per_query.npz``
        holds them (keys ``<section>/<array>``).

        Whole gallery (the analysis): ``img_path`` (str), ``pid``,
        ``first_rank`` (the position of the first correct match in the
        full ranked list, 0 without a kept positive; not de-duplicated
        under ``cmc_mode='dedup'``, so not the rank that CMC counts) and
        ``ap`` (NaN likewise), in the report's query order. A trial
        protocol adds ``trial_img_path``, ``trial_pid``, ``trial_r1`` and
        ``trial_ap``: each query's R1 hit and AP averaged over the trials
        (NaN when it is never valid), in the metric's query order.
        Queries are matched across runs by image path
        (``tools/analysis_tools/paired_query_error.py``), which also
        refuses runs whose ``gallery_size``, ``gallery_digest``
        (:func:`gallery_digest`) or ``settings`` (a JSON object,
        :func:`ranking_settings`) differ.
        """
        arrays = {
            f'{name}/img_path':
            np.array([str(r.get('img_path')) for r in query]),
            f'{name}/pid': np.array([label_to_int(r['pid']) for r in query]),
            f'{name}/first_rank': analysis.first_rank,
            f'{name}/ap': analysis.ap,
        }
        if gallery is not None:
            arrays[f'{name}/gallery_size'] = np.array(len(gallery), np.int64)
            arrays[f'{name}/gallery_digest'] = np.array(
                gallery_digest(gallery))
        if settings is not None:
            arrays[f'{name}/settings'] = np.array(
                json.dumps(settings, sort_keys=True))
        results = getattr(metric, 'trial_results', None)
        q_pids = getattr(metric, 'trial_query_pids', None)
        paths = getattr(metric, 'trial_query_paths', None)
        if results and q_pids is not None and paths is not None:
            _, hits, aps = trial_query_means(results, len(q_pids))
            trial = dict(
                trial_img_path=np.array([str(p) for p in paths]),
                trial_pid=np.asarray(q_pids),
                trial_r1=hits,
                trial_ap=aps)
            arrays.update({f'{name}/{k}': v for k, v in trial.items()})
        return arrays

    @staticmethod
    def _reported(metric, metrics: Dict, name: str, by_target: bool,
                  column: str) -> Tuple[str, Optional[float]]:
        """The key of a reported metric of this section and its value
        (None when not reported)."""
        prefix = name if by_target else getattr(metric, 'prefix', None)
        key = f'{prefix}/{column}' if prefix else column
        value = metrics.get(key)
        return key, None if value is None else float(value)

    @staticmethod
    def _same(reported: float, value: float) -> bool:
        return abs(reported - value) <= 1e-6 * max(1.0, abs(reported))

    @classmethod
    def _compare_cmc(cls, analysis, metric, metrics: Dict, name: str,
                     by_target: bool) -> List[str]:
        """A note where the reported mAP is this analysis's but not its
        R<k>. A metric that declares another CMC protocol
        (``cmc_protocol``, CUHK03ClassicMetric's single-gallery-shot CMC)
        gets the section's R1 and CMC labelled :data:`OTHER_CMC_LABEL`;
        any other metric's difference is reported as one (no protocol
        to explain it)."""
        _, reported = cls._reported(metric, metrics, name, by_target, 'mAP')
        if reported is None or not cls._same(reported, analysis.mAP):
            return []
        differ = []
        for rank in (1, 5, 10, 20):
            key, reported = cls._reported(metric, metrics, name, by_target,
                                          f'R{rank}')
            if reported is None or rank > len(analysis.cmc):
                continue
            ours = 100.0 * float(analysis.cmc[rank - 1])
            if not cls._same(reported, ours):
                differ.append((key, reported, ours))
        if not differ:
            return []
        shown = ', '.join(f'{key} {inside_bounds(reported)}'
                          for key, reported, _ in differ)
        ours = ', '.join(f'{key.rsplit("/", 1)[-1]} {inside_bounds(value)}'
                         for key, _, value in differ)
        protocol = getattr(metric, 'cmc_protocol', None)
        if not protocol:
            return [
                f'Reported {shown}; this analysis of the same ranking '
                f'gives {ours}, although the mAP agrees '
                f'({type(metric).__name__} declares no other CMC '
                'protocol).'
            ]
        return [
            f'Reported {shown}: {type(metric).__name__} computes its own '
            f'CMC protocol ({protocol}). The R1, R5, R10, CMC curve and R1 '
            f'sampling error of this section are the {OTHER_CMC_LABEL} '
            f'(the whole ranked gallery): {ours}.'
        ]

    @classmethod
    def _compare(cls, analysis, metric, metrics: Dict, name: str,
                 by_target: bool) -> List[str]:
        """A note where the reported mAP is not this analysis's."""
        prefix = name if by_target else getattr(metric, 'prefix', None)
        key, reported = cls._reported(metric, metrics, name, by_target, 'mAP')
        if reported is None:
            return []
        if cls._same(reported, analysis.mAP):
            return [f'{key} {inside_bounds(reported)} as reported.']
        why = []
        if getattr(metric, 'rerank', None) is not None or getattr(
                metric, 'query_expansion', None) is not None:
            why.append('the metric re-ranks or expands queries, this '
                       'analysis ranks plain distances')
        partitions = [
            k for k in metrics if re.match(
                rf'^{re.escape(prefix)}/(split|trial)\d+/'
                if prefix else r'^(split|trial)\d+/', str(k))
        ]
        if other_direction(metric):
            why.append(f'this analysis ranks {other_direction(metric)}')
        elif partitions:
            why.append(f'{type(metric).__name__} averages over its own '
                       'splits or trials, this analysis ranks every query '
                       'against the whole gallery')
        reason = '; '.join(why) or (f'{type(metric).__name__} computes '
                                    'its own protocol')
        return [
            f'Reported {key} is {inside_bounds(reported)}; this analysis '
            f'gives {inside_bounds(analysis.mAP)} ({reason}).'
        ]

    def _example(self, kind: str, q: int, query: List[dict],
                 gallery: List[dict], analysis) -> RankedExample:
        size = self.tile_size

        def item(record: dict) -> dict:
            path = record.get('img_path')
            image = None
            if isinstance(path, str) and osp.isfile(path):
                image = read_image_rgb(path)  # as the model was fed it
            modality = record.get('modality')
            return dict(
                image=image,
                pid=record['pid'],
                camid=record['camid'],
                modality=None if modality is None else label_to_int(modality),
                size=size)

        shown = []
        for index, distance, match in zip(analysis.topk_index[q],
                                          analysis.topk_distance[q],
                                          analysis.topk_match[q]):
            if index < 0:
                break
            entry = item(gallery[index])
            entry.update(distance=float(distance), match=bool(match))
            shown.append(entry)
        return RankedExample(kind, item(query[q]),
                             shown, float(analysis.ap[q]),
                             int(analysis.first_rank[q]))
