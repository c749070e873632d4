"""Protocols whose gallery is re-drawn from a pool in every trial.

SYSU-MM01 and LLCM (:mod:`.cross_modality_metric`) rank every query
against a small gallery sampled from the full pool of the other modality
(one or ten images per identity and camera), ten times, and report the
mean over the trials. The datasets give the full pool; the metric draws
the galleries (:mod:`mmreid.evaluation.functional.protocols`), computes
the distances once for the whole pool and indexes them per trial (a
gallery-dependent scorer, such as GMN's top-k rerank, scores each trial's
gallery on its own instead).

Camera numbers: the parsers store ``camid = camera number - 1`` (SYSU-MM01
``cam3`` -> camid 2). Gallery cameras are configured by camera *number*, as
the protocols name them; removal rules receive the 0-based camids (the
``'sysu'`` rule drops camid 1 = cam2 for queries of camid 2 = cam3).
"""
import numbers
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from mmreid.utils.mat_file import load_mat
from ..functional import (RAND_PERM_LAYOUT, PoolGroups, RandPermCam,
                          ReIDEvalResult, evaluate_rank, group_pool,
                          normalize_rand_perm_cam, official_gallery_draw,
                          seeded_gallery_draw)
from .reid_metric import FEATURE_OPTIONS, ReIDMetric
from .scorers import Scorer

GALLERY_DRAWS = ('agw_seeded', 'official_rand_perm')


def load_rand_perm_cam(path: str) -> RandPermCam:
    """Read and check the official ``rand_perm_cam.mat`` with ``mat4py``.

    Args:
        path: Path of ``evaluation/data_split/rand_perm_cam.mat``.

    Returns:
        list: See
        :func:`~mmreid.evaluation.functional.normalize_rand_perm_cam`.
    """
    data = load_mat(
        path, ['rand_perm_cam'],
        'rand_perm_cam.mat (evaluation/data_split/rand_perm_cam.mat of '
        'wuancong/SYSU-MM01)', RAND_PERM_LAYOUT)
    return normalize_rand_perm_cam(data['rand_perm_cam'], path)


class TrialGalleryMetric(ReIDMetric):
    """Rank all queries against a gallery re-drawn from the pool per trial.

    Its ``distance`` defaults to ``'cosine'`` (as AGW and LLCM evaluate).

    The samples with ``role='gallery'`` form the *pool*; trial ``t``
    keeps ``shots`` images per (pid, camera) of ``gallery_cams``, drawn as
    in :func:`~mmreid.evaluation.functional.seeded_gallery_draw` with seed
    ``seed + t`` (``seed=0`` is AGW's ``random.seed(trial)``) or from the
    official permutations. The distances are computed once for the pool
    and indexed per trial. A gallery-dependent scorer
    (:func:`~.scorers.is_gallery_dependent`, e.g. GMN's top-k rerank,
    whose candidates come from the gallery being ranked) scores each
    trial on its own: the queries against the drawn gallery, or with
    ``transpose`` the drawn images against all query samples.

    Keys (percent): ``trial<t>/R<k>``, ``trial<t>/mAP``, ``trial<t>/mINP``
    for every trial; the means ``R<k>``, ``mAP``, ``mINP`` over the trials
    and their population standard deviations (``ddof=0``) ``R<k>_std``,
    ``mAP_std``, ``mINP_std``. Counts: ``trial<t>/num_query``,
    ``trial<t>/num_valid_query``, ``trial<t>/num_gallery`` and, over the
    trials, the smallest ``num_query`` and ``num_valid_query``.

    Args:
        gallery_cams: Camera numbers (``camid + 1``) the gallery is drawn
            from, in visiting order; pool items of other cameras are
            ignored. ``None`` takes every pool camera in ascending order.
        shots: Images per (pid, camera) and trial.
        num_trials: Number of trials.
        seed: Trial ``t`` uses seed ``seed + t`` (``'agw_seeded'``
            only; another seed than 0 with ``'official_rand_perm'`` is
            refused).
        gallery_draw: ``'agw_seeded'`` or ``'official_rand_perm'``.
        rand_perm_cam: The official permutations, a path to
            ``rand_perm_cam.mat`` (read with ``mat4py``) or the loaded
            nested lists; needed by ``'official_rand_perm'``.
        transpose: Swap roles after drawing: the drawn gallery images
            become the queries and all query samples the gallery (LLCM's
            reference VIS->IR evaluation).
        distance: ``'cosine'`` (default), ``'euclidean'`` or
            ``'sqeuclidean'``; see :class:`ReIDMetric` (``metric`` is its
            deprecated alias).
        **kwargs: Other :class:`ReIDMetric` arguments (``junk_rule``,
            ``cmc_mode``, ``ranks``, ...). ``query_expansion``, ``rerank``
            and ``verification_fprs`` are not supported.
    """

    default_distance = 'cosine'
    unsupported_options = FEATURE_OPTIONS
    #: The ``protocol_metric`` a dataset must declare to be evaluated (its
    #: test gallery is this protocol's pool), and the datasets that do;
    #: None accepts any dataset.
    dataset_protocol: Optional[str] = None
    protocol_datasets: str = ''

    def __init__(self,
                 gallery_cams: Optional[Sequence[int]] = None,
                 shots: int = 1,
                 num_trials: int = 10,
                 seed: int = 0,
                 gallery_draw: str = 'agw_seeded',
                 rand_perm_cam: Optional[Union[str, list]] = None,
                 transpose: bool = False,
                 distance: Union[str, Scorer, None] = None,
                 **kwargs) -> None:
        super().__init__(distance=distance, **kwargs)
        for name, value in (('num_trials', num_trials), ('shots', shots)):
            # int() truncated 2.5 trials to 2 without a word
            if isinstance(value, bool) or not isinstance(
                    value, numbers.Integral) or value < 1:
                raise ValueError(f'{type(self).__name__}: {name} must be '
                                 f'an integer >= 1, got {value!r}')
        if gallery_draw not in GALLERY_DRAWS:
            raise ValueError(f'gallery_draw must be one of {GALLERY_DRAWS}, '
                             f'got {gallery_draw!r}')
        if gallery_draw == 'agw_seeded' and rand_perm_cam is not None:
            raise ValueError(
                "gallery_draw='agw_seeded' draws with seed + trial and "
                'never reads rand_perm_cam, so the official draws given '
                "would be ignored: use gallery_draw='official_rand_perm' "
                'with the file, or drop rand_perm_cam')
        if gallery_draw == 'official_rand_perm':
            if rand_perm_cam is None:
                raise ValueError("gallery_draw='official_rand_perm' needs "
                                 'rand_perm_cam (path of rand_perm_cam.mat)')
            if int(num_trials) > 10:
                raise ValueError('the official draws hold 10 trials, got '
                                 f'num_trials={num_trials}')
            if int(seed) != 0:
                raise ValueError(
                    f"seed={seed!r} has no effect with gallery_draw="
                    "'official_rand_perm' (rand_perm_cam fixes every "
                    "trial's draw); drop seed, or draw with gallery_draw="
                    "'agw_seeded'")
        self.gallery_cams = (None if gallery_cams is None else tuple(
            int(c) for c in gallery_cams))
        self.shots = int(shots)
        self.num_trials = int(num_trials)
        self.seed = int(seed)
        self.gallery_draw = gallery_draw
        # Read and check the permutations now, before any feature is
        # extracted: a wrong file fails the run at its start.
        if rand_perm_cam is None:
            self.rand_perm_cam = None
        elif isinstance(rand_perm_cam, str):
            self.rand_perm_cam = load_rand_perm_cam(rand_perm_cam)
        else:
            self.rand_perm_cam = normalize_rand_perm_cam(
                rand_perm_cam, 'rand_perm_cam')
        self.transpose = bool(transpose)
        #: Per-trial results of the last evaluation, the drawn galleries
        #: as indices into the pool of the configured cameras, and as the
        #: drawn samples' ``sample_idx``.
        self.trial_results: List[ReIDEvalResult] = []
        self.trial_galleries: List[List[int]] = []
        self.trial_gallery_sample_idx: List[list] = []
        #: The queries' pids and image paths in the order of
        #: ``trial_results``' rows (None when ``transpose``: then each
        #: trial ranks its own gallery).
        self.trial_query_pids: Optional[np.ndarray] = None
        self.trial_query_paths: Optional[List[Optional[str]]] = None

    def check_dataset_meta(self, dataset_meta: dict) -> None:
        """See :meth:`ReIDMetric.check_dataset_meta`; a metric with a
        ``dataset_protocol`` also refuses a dataset that does not declare
        it, whose gallery is no pool of its protocol (e.g. RegDB).

        Raises:
            ValueError: Naming the dataset, what it declares and the
                datasets this metric evaluates.
        """
        super().check_dataset_meta(dataset_meta)
        expected = self.dataset_protocol
        declared = dataset_meta.get('protocol_metric')
        if expected is not None and declared != expected:
            raise ValueError(
                f'{type(self).__name__} cannot evaluate dataset '
                f'{self.dataset_name(dataset_meta)} (protocol_metric='
                f'{declared!r}): it draws each trial\'s gallery from the '
                'pool of a dataset that declares protocol_metric='
                f'{expected!r} ({self.protocol_datasets}). Evaluate this '
                f"dataset with dict(type='{declared or 'ReIDMetric'}')")

    def protocol_settings(self) -> Dict[str, str]:
        """See :meth:`ReIDMetric.protocol_settings`: how each trial's
        gallery is drawn (``gallery_draw``, ``seed`` of a seeded draw,
        ``shots``, ``gallery_cams``), ``num_trials`` and whether the roles
        are swapped (``transpose``).

        Returns:
            dict[str, str]: Option name to value.
        """
        cams = self.gallery_cams
        return dict(
            gallery_draw=self.gallery_draw,
            seed=(str(self.seed)
                  if self.gallery_draw == 'agw_seeded' else 'none'),
            shots=str(self.shots),
            gallery_cams=('all' if cams is None else ','.join(
                str(c) for c in cams)),
            num_trials=str(self.num_trials),
            transpose=str(self.transpose))

    def gallery_pool(self, gallery: List[dict]) -> List[dict]:
        """The pool the trials draw from: the gallery records of
        ``gallery_cams`` (all of them when it is None), e.g. cams 1 and 2
        of an all-search SYSU-MM01 pool under indoor search.

        Args:
            gallery: Gallery records, each with its 0-based ``camid``.

        Returns:
            list[dict]: The records kept, in their order.
        """
        cameras = self.gallery_cams
        if cameras is None:
            return list(gallery)
        return [r for r in gallery if r['camid'] + 1 in cameras]

    def draw_gallery(self, groups: PoolGroups,
                     img_paths: Sequence[Optional[str]],
                     cameras: Sequence[int], trial: int) -> List[int]:
        """Pool indices of the gallery of one trial.

        Args:
            groups: See :func:`~mmreid.evaluation.functional.group_pool`.
            img_paths: Image path of every pool item.
            cameras: Gallery camera numbers, in visiting order.
            trial: The trial, ``0 <= trial < num_trials``.

        Returns:
            list[int]: Pool indices, in draw order.
        """
        if self.gallery_draw == 'agw_seeded':
            return seeded_gallery_draw(groups, cameras, self.shots,
                                       self.seed + trial)
        return official_gallery_draw(self.rand_perm_cam, groups, img_paths,
                                     cameras, self.shots, trial)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Evaluate every trial and summarise them.

        Args:
            results: The records of all samples, collected from all ranks.

        Returns:
            dict: See the class docstring.
        """
        query, pool = self.split_records(results)
        cameras = self.gallery_cams
        if cameras is None:
            cameras = tuple(sorted({r['camid'] + 1 for r in pool}))
        pool = self.gallery_pool(pool)
        data = self.query_gallery(
            query, pool, f'gallery-pool samples from cameras {cameras}')
        per_trial = self.primary_gallery_dependent()
        dist = None if per_trial else self.pairwise_distances(
            data.query_feats, data.gallery_feats)
        q_pids, q_camids = data.q_pids, data.q_camids
        p_pids, p_camids = data.g_pids, data.g_camids
        img_paths = [r['img_path'] for r in pool]
        groups = group_pool(p_pids.tolist(), (p_camids + 1).tolist(),
                            img_paths)

        counts = []
        self.trial_results, self.trial_galleries = [], []
        self.trial_gallery_sample_idx = []
        for trial in range(self.num_trials):
            index = self.draw_gallery(groups, img_paths, cameras, trial)
            if not index:
                raise ValueError(f'trial {trial} drew an empty gallery')
            g_pids, g_camids = p_pids[index], p_camids[index]
            if self.transpose:
                # The drawn images are the probes, all queries the gallery.
                if per_trial:
                    probe_dist = self.pairwise_distances(
                        data.gallery_feats[index], data.query_feats)
                else:
                    probe_dist = dist.index_select(
                        1, torch.as_tensor(index, device=dist.device)).t()
                result = evaluate_rank(
                    probe_dist,
                    g_pids,
                    q_pids,
                    g_camids,
                    q_camids,
                    device=self.device,
                    **self.rank_options)
            else:
                if per_trial:
                    trial_dist = self.pairwise_distances(
                        data.query_feats, data.gallery_feats[index])
                else:
                    trial_dist = dist.index_select(
                        1, torch.as_tensor(index, device=dist.device))
                result = evaluate_rank(
                    trial_dist,
                    q_pids,
                    g_pids,
                    q_camids,
                    g_camids,
                    device=self.device,
                    **self.rank_options)
            self.trial_results.append(result)
            self.trial_galleries.append(index)
            self.trial_gallery_sample_idx.append(
                [pool[i]['sample_idx'] for i in index])
            counts.append(
                dict(
                    num_query=result.num_query,
                    num_valid_query=result.num_valid_query,
                    num_gallery=len(query) if self.transpose else len(index)))
        self.trial_query_pids = None if self.transpose else (
            q_pids.cpu().numpy().copy())
        self.trial_query_paths = None if self.transpose else [
            r.get('img_path') for r in query
        ]
        self.last_result = None
        self._log_skipped(self.trial_results, 'trial')

        metrics = self.partition_metrics('trial', self.trial_results, counts)
        metrics['num_query'] = min(r.num_query for r in self.trial_results)
        metrics['num_valid_query'] = min(r.num_valid_query
                                         for r in self.trial_results)
        return self.name_primary_mode(metrics)
