"""Cross-modality protocols whose gallery is re-drawn in every trial.

SYSU-MM01 and LLCM rank every query against a small gallery sampled from
the full pool of the other modality (one or ten images per identity and
camera), ten times, and report the mean over the trials. The datasets give
the full pool; the metrics below draw the galleries, compute the distances
once for the whole pool and index them per trial.

Camera numbers: the parsers store ``camid = camera number - 1`` (SYSU-MM01
``cam3`` -> camid 2). Gallery cameras are configured by camera *number*, as
the protocols name them; removal rules receive the 0-based camids (the
``'sysu'`` rule drops camid 1 = cam2 for queries of camid 2 = cam3).
"""
import logging
import os.path as osp
import random
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log

from mmreid.registry import METRICS
from ..functional import (ReIDEvalResult, chunk_rows_for_budget,
                          compute_distance, evaluate_rank)
from .reid_metric import ReIDMetric, Scorer

#: SYSU-MM01 gallery cameras (numbers, 1-based) per search mode, in the
#: order the reference code visits them.
SYSU_GALLERY_CAMS = dict(all=(1, 2, 4, 5), indoor=(1, 2))
SHOTS = dict(single=1, multi=10)
GALLERY_DRAWS = ('agw_seeded', 'official_rand_perm')
LLCM_VIS2IR_MODES = ('reference_transposed', 'symmetric')
_UNSUPPORTED = ('query_expansion', 'rerank', 'verification_fprs')
_IMAGE_NUMBER = re.compile(r'^(\d+)\.[A-Za-z]+$')

#: (pid, camera number) -> pool indices ordered by image path.
PoolGroups = Dict[Tuple[int, int], List[int]]


def group_pool(pids: Sequence[int], cameras: Sequence[int],
               img_paths: Sequence[Optional[str]]) -> PoolGroups:
    """Group the gallery pool by identity and camera.

    Args:
        pids: Pid of every pool item, length P.
        cameras: Camera number (1-based) of every pool item, length P.
        img_paths: Image path of every pool item (``None`` allowed), used
            to order a group as the reference's ``sorted(files)``; items
            without a path keep their pool order.

    Returns:
        dict: ``(pid, camera) -> list of pool indices``.
    """
    groups: PoolGroups = {}
    for index, key in enumerate(zip(pids, cameras)):
        groups.setdefault((int(key[0]), int(key[1])), []).append(index)
    for indices in groups.values():
        indices.sort(key=lambda i: (img_paths[i] or '', i))
    return groups


def seeded_gallery_draw(groups: PoolGroups, cameras: Sequence[int], shots: int,
                        seed: int) -> List[int]:
    """The AGW seeded gallery draw (``process_gallery_sysu``).

    ``random.seed(seed)``; for every pid in sorted order and every camera
    in ``cameras`` order that holds images of it, ``random.choice`` of the
    sorted files (``shots == 1``) or ``random.sample(files, shots)``
    (multi-shot, mmreid's extension; a group with fewer images gives all
    of them in a random order). With ``seed = trial`` this reproduces
    AGW's galleries given the same file lists.

    Args:
        groups: See :func:`group_pool`.
        cameras: Gallery camera numbers, in visiting order.
        shots: Images per (pid, camera).
        seed: Seed of a private :class:`random.Random`.

    Returns:
        list[int]: Pool indices of the gallery, in draw order.
    """
    rng = random.Random(seed)
    gallery = []
    for pid in sorted({pid for pid, _ in groups}):
        for cam in cameras:
            files = groups.get((pid, cam))
            if not files:
                continue
            if shots == 1:
                gallery.append(rng.choice(files))
            else:
                gallery.extend(rng.sample(files, min(shots, len(files))))
    return gallery


#: The layout ``rand_perm_cam`` must have, quoted by every error about it.
RAND_PERM_LAYOUT = (
    'a cell of 6 cameras; per camera one entry per person id (id k at '
    'position k); each entry a 10 x n matrix whose row t is a permutation '
    'of the 1-based numbers of the id\'s n images in that camera (n = 0: '
    'an empty entry), as in wuancong/SYSU-MM01 '
    'evaluation/data_split/rand_perm_cam.mat')
NUM_OFFICIAL_TRIALS = 10
NUM_SYSU_CAMS = 6


class RandPermCam(list):
    """Checked permutations: ``perms[camera - 1][pid - 1][trial]`` is the
    list of 1-based image numbers in the order the protocol takes them."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_perm_matrix(value: Any) -> bool:
    """A 10 x n matrix: 10 rows, each a list of numbers (or one number).

    mat4py gives a 10 x n matrix as 10 lists of n numbers (10 x 1: 10
    one-element lists) and an empty entry as 10 empty lists.
    """
    if not isinstance(value, list) or len(value) != NUM_OFFICIAL_TRIALS:
        return False
    return all(
        _is_number(row) or (isinstance(row, list) and all(
            _is_number(v) for v in row)) for row in value)


def _unwrap(value: Any) -> Any:
    """Strip the one-element lists a MATLAB cell wraps around its content
    (mat4py reads a 1 x N cell as ``[[...]]``), stopping at a matrix."""
    while (isinstance(value, list) and len(value) == 1
           and isinstance(value[0], list) and not _is_perm_matrix(value)):
        value = value[0]
    return value


def normalize_rand_perm_cam(value: Any, source: str) -> RandPermCam:
    """Check the official permutations and bring them to one layout.

    Accepts the nested lists ``mat4py`` reads from ``rand_perm_cam.mat``
    (a 1 x N cell per camera, each per-id matrix wrapped in one more list)
    as well as the same content without the wrapping lists.

    Args:
        value: The ``rand_perm_cam`` variable.
        source: Where ``value`` comes from (the file), for the errors.

    Returns:
        list: ``perms[cam - 1][pid - 1][trial]``, a list of 1-based image
        numbers (empty where the id has no image in the camera).

    Raises:
        ValueError: ``value`` does not have the layout; the message names
            ``source``, the place and the expected layout.
    """

    def fail(where: str, found: Any) -> ValueError:
        text = repr(found)
        if len(text) > 80:
            text = text[:77] + '...'
        return ValueError(f'{source}: rand_perm_cam{where} is {text}, '
                          f'expected {RAND_PERM_LAYOUT}')

    if isinstance(value, RandPermCam):
        return value
    cams = _unwrap(value)
    if not isinstance(cams, list) or len(cams) != NUM_SYSU_CAMS:
        raise fail('', cams)
    perms = RandPermCam()
    for cam, cell in enumerate(cams, start=1):
        entries = cell
        # A camera's 1 x N cell: unwrap unless the content is one matrix,
        # which would be a camera with a single id.
        while (isinstance(entries, list) and len(entries) == 1
               and isinstance(entries[0], list)
               and not _is_perm_matrix(entries[0])
               and not _is_perm_matrix(_unwrap(entries[0]))):
            entries = entries[0]
        if not isinstance(entries, list) or not entries:
            raise fail(f'{{{cam}}}', cell)
        per_pid = []
        for pid, entry in enumerate(entries, start=1):
            matrix = _unwrap(entry)
            if not _is_perm_matrix(matrix):
                raise fail(f'{{{cam}}}{{{pid}}}', entry)
            rows = [row if isinstance(row, list) else [row] for row in matrix]
            rows = [[int(v) for v in row] for row in rows]
            length = len(rows[0])
            for trial, row in enumerate(rows):
                if sorted(row) != list(range(1, length + 1)):
                    raise fail(f'{{{cam}}}{{{pid}}}({trial + 1},:)', row)
            per_pid.append(rows)
        perms.append(per_pid)
    return perms


def load_rand_perm_cam(path: str) -> RandPermCam:
    """Read and check the official ``rand_perm_cam.mat`` with ``mat4py``.

    Args:
        path: Path of ``evaluation/data_split/rand_perm_cam.mat``.

    Returns:
        list: See :func:`normalize_rand_perm_cam`.
    """
    try:
        import mat4py
    except ImportError as error:
        raise ImportError('reading rand_perm_cam.mat needs mat4py '
                          '(pip install mat4py)') from error
    if not osp.isfile(path):
        raise FileNotFoundError(f'rand_perm_cam file {path!r} not found '
                                '(evaluation/data_split/rand_perm_cam.mat '
                                'of wuancong/SYSU-MM01)')
    try:
        data = mat4py.loadmat(path)
    except Exception as error:  # mat4py raises bare ParseErrors
        raise ValueError(f'{path}: cannot be read as a MATLAB (v5) file '
                         f'with mat4py ({type(error).__name__}: {error}); '
                         f'expected {RAND_PERM_LAYOUT}') from error
    if 'rand_perm_cam' not in data:
        raise ValueError(f'{path}: no variable "rand_perm_cam", found '
                         f'{sorted(data)}; expected {RAND_PERM_LAYOUT}')
    return normalize_rand_perm_cam(data['rand_perm_cam'], path)


def official_gallery_draw(rand_perm_cam: Union[list, RandPermCam],
                          groups: PoolGroups,
                          img_paths: Sequence[Optional[str]],
                          cameras: Sequence[int], shots: int,
                          trial: int) -> List[int]:
    """The official SYSU-MM01 draw (``get_testing_set.m``).

    ``rand_perm_cam{cam}{pid}`` is a 10 x n matrix of 1-based image
    permutations; trial ``t`` takes the first ``shots`` entries of row
    ``t``; entry ``i`` is ``cam<cam>/<pid:04d>/<i:04d>.jpg``. Cameras are
    visited in the outer loop and ids in ascending order inside, as in the
    MATLAB code; an id with an empty entry contributes nothing. Every
    image the permutations pick must be in the pool.

    Args:
        rand_perm_cam: The permutations, as loaded by
            :func:`load_rand_perm_cam` or raw nested lists (checked with
            :func:`normalize_rand_perm_cam`).
        groups: See :func:`group_pool`.
        img_paths: Image path of every pool item; the image number is the
            file name (``0007.jpg`` -> 7).
        cameras: Gallery camera numbers.
        shots: Images per (pid, camera).
        trial: Row of the permutations, 0..9.

    Returns:
        list[int]: Pool indices of the gallery, in draw order.
    """
    perms = normalize_rand_perm_cam(rand_perm_cam, 'rand_perm_cam')
    if not 0 <= trial < NUM_OFFICIAL_TRIALS:
        raise ValueError(f'the official draws hold trials 0..'
                         f'{NUM_OFFICIAL_TRIALS - 1}, got {trial}')
    pids = sorted({pid for pid, _ in groups})
    gallery = []
    for cam in cameras:
        per_pid = perms[cam - 1]
        for pid in pids:
            files = groups.get((pid, cam), [])
            if not 1 <= pid <= len(per_pid):
                if files:
                    raise ValueError(
                        f'rand_perm_cam has no entry for cam{cam}/{pid:04d} '
                        f'(camera {cam} holds ids 1..{len(per_pid)}), but '
                        'the gallery pool has images of it')
                continue
            row = per_pid[pid - 1][trial]
            if not row:
                continue
            by_number = {}
            for index in files:
                name = osp.basename(img_paths[index] or '')
                match = _IMAGE_NUMBER.match(name)
                if match is None:
                    raise ValueError(
                        'the official draw maps image numbers to files; '
                        f'cannot read one from {img_paths[index]!r}')
                by_number[int(match.group(1))] = index
            for number in row[:shots]:
                if number not in by_number:
                    raise ValueError(
                        f'rand_perm_cam picks cam{cam}/{pid:04d}/'
                        f'{number:04d} in trial {trial}, which is not '
                        'in the gallery pool (a partial copy of '
                        'SYSU-MM01?)')
                gallery.append(by_number[number])
    return gallery


class TrialGalleryMetric(ReIDMetric):
    """Rank all queries against a gallery re-drawn from the pool per trial.

    Its ``distance`` defaults to ``'cosine'`` (as AGW and LLCM evaluate).

    The samples with ``role='gallery'`` form the *pool*; trial ``t``
    keeps ``shots`` images per (pid, camera) of ``gallery_cams``, drawn as
    in :func:`seeded_gallery_draw` with seed ``seed + t`` (``seed=0`` is
    AGW's ``random.seed(trial)``) or from the official permutations. The
    distances are computed once for the pool and indexed per trial.

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
        seed: Trial ``t`` uses seed ``seed + t``.
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
        for name in _UNSUPPORTED:
            if kwargs.get(name) is not None:
                raise ValueError(f'{type(self).__name__} does not support '
                                 f'{name}')
        super().__init__(distance=distance, **kwargs)
        if isinstance(num_trials, bool) or int(num_trials) < 1:
            raise ValueError(f'num_trials must be >= 1, got {num_trials!r}')
        if int(shots) < 1:
            raise ValueError(f'shots must be >= 1, got {shots!r}')
        if gallery_draw not in GALLERY_DRAWS:
            raise ValueError(f'gallery_draw must be one of {GALLERY_DRAWS}, '
                             f'got {gallery_draw!r}')
        if gallery_draw == 'official_rand_perm':
            if rand_perm_cam is None:
                raise ValueError("gallery_draw='official_rand_perm' needs "
                                 'rand_perm_cam (path of rand_perm_cam.mat)')
            if int(num_trials) > 10:
                raise ValueError('the official draws hold 10 trials, got '
                                 f'num_trials={num_trials}')
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

    def draw_gallery(self, groups: PoolGroups,
                     img_paths: Sequence[Optional[str]],
                     cameras: Sequence[int], trial: int) -> List[int]:
        """Pool indices of the gallery of one trial.

        Args:
            groups: See :func:`group_pool`.
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

    def pool_distances(self, query_feats: torch.Tensor,
                       pool_feats: torch.Tensor) -> torch.Tensor:
        """Distances of every query to every pool item, shape (Q, P)."""
        if self.device is not None:
            query_feats = query_feats.to(self.device)
            pool_feats = pool_feats.to(self.device)
        scorer = self.primary_distance()
        if not callable(scorer):
            return compute_distance(query_feats, pool_feats, scorer,
                                    self.normalize)
        if self.normalize:
            query_feats = F.normalize(query_feats, dim=1)
            pool_feats = F.normalize(pool_feats, dim=1)
        rows = chunk_rows_for_budget(len(pool_feats), self.memory_budget_mb)
        return torch.cat([
            torch.as_tensor(scorer(query_feats[i:i + rows], pool_feats))
            for i in range(0, len(query_feats), rows)
        ])

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Evaluate every trial and summarise them.

        Args:
            results: The records of all samples, collected from all ranks.

        Returns:
            dict: See the class docstring.
        """
        results = self._drop_duplicates(results)
        query = [r for r in results if r['is_query']]
        pool = [r for r in results if not r['is_query']]
        cameras = self.gallery_cams
        if cameras is None:
            cameras = tuple(sorted({r['camid'] + 1 for r in pool}))
        pool = [r for r in pool if r['camid'] + 1 in cameras]
        if not query or not pool:
            raise ValueError(f'{type(self).__name__} got {len(query)} query '
                             f'and {len(pool)} gallery-pool samples from '
                             f'cameras {cameras}; both are needed')

        def labels(records: List[dict], key: str) -> torch.Tensor:
            return torch.tensor([r[key] for r in records], dtype=torch.long)

        dist = self.pool_distances(
            torch.stack([r['feature'] for r in query]).float(),
            torch.stack([r['feature'] for r in pool]).float())
        q_pids, q_camids = labels(query, 'pid'), labels(query, 'camid')
        p_pids, p_camids = labels(pool, 'pid'), labels(pool, 'camid')
        img_paths = [r['img_path'] for r in pool]
        groups = group_pool(p_pids.tolist(), (p_camids + 1).tolist(),
                            img_paths)

        metrics: Dict[str, float] = {}
        per_trial: Dict[str, List[float]] = {}
        self.trial_results, self.trial_galleries = [], []
        self.trial_gallery_sample_idx = []
        for trial in range(self.num_trials):
            index = self.draw_gallery(groups, img_paths, cameras, trial)
            if not index:
                raise ValueError(f'trial {trial} drew an empty gallery')
            index_t = torch.as_tensor(index, device=dist.device)
            trial_dist = dist.index_select(1, index_t)
            g_pids, g_camids = p_pids[index], p_camids[index]
            if self.transpose:
                result = evaluate_rank(
                    trial_dist.t(),
                    g_pids,
                    q_pids,
                    g_camids,
                    q_camids,
                    device=self.device,
                    **self.rank_options)
            else:
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
            values = result.percentages(self.ranks)
            for key, value in values.items():
                metrics[f'trial{trial}/{key}'] = value
                per_trial.setdefault(key, []).append(value)
            metrics[f'trial{trial}/num_query'] = result.num_query
            metrics[f'trial{trial}/num_valid_query'] = result.num_valid_query
            metrics[f'trial{trial}/num_gallery'] = (
                len(query) if self.transpose else len(index))
        self.last_result = None
        self._warn_skipped()

        for key, values in per_trial.items():
            metrics[key] = float(np.mean(values))
        for key, values in per_trial.items():
            metrics[f'{key}_std'] = float(np.std(values, ddof=0))
        metrics['num_query'] = min(r.num_query for r in self.trial_results)
        metrics['num_valid_query'] = min(r.num_valid_query
                                         for r in self.trial_results)
        return metrics

    def _warn_skipped(self) -> None:
        skipped = [r.num_query - r.num_valid_query for r in self.trial_results]
        if any(skipped):
            print_log(
                f'{type(self).__name__}: queries without a positive after '
                f"the '{self.rank_options['junk_rule']}' rule were skipped "
                f'(per trial: {skipped}).',
                logger='current',
                level=logging.WARNING)


@METRICS.register_module()
class SYSUMetric(TrialGalleryMetric):
    """SYSU-MM01 visible-infrared evaluation, ten gallery trials.

    Queries are the infrared images (cams 3, 6); the gallery pool is the
    visible test images (``SYSUMM01(split='test')``). Each trial draws
    ``shot`` images per (identity, camera) from cams 1, 2, 4, 5
    (``mode='all'``) or 1, 2 (``'indoor'``): AGW's seeded draw
    (``random.seed(seed + trial)``; ``seed=0`` reproduces AGW) or the
    official ``rand_perm_cam.mat`` draw. Queries of cam3 (camid 2) ignore
    every cam2 (camid 1) gallery image, of any pid (the ``'sysu'`` rule,
    which works on the parser's 0-based camids). CMC is computed on the
    de-duplicated ranked list, mAP and mINP on the full list; distances are
    cosine (the ranking of AGW's negated dot product of L2-normalised
    features). Keys: see :class:`TrialGalleryMetric`.

    Args:
        mode: ``'all'`` or ``'indoor'`` search. The pool may hold all
            visible cameras: indoor mode keeps cams 1 and 2 only.
        shot: ``'single'`` (1 image) or ``'multi'`` (10 images; seeded
            multi-shot uses ``random.sample``, mmreid's extension).
        num_trials: Number of trials (10 in the protocol).
        seed: Trial ``t`` uses seed ``seed + t``.
        rand_perm_cam: Path of the official ``rand_perm_cam.mat``; when
            given (and ``gallery_draw`` is not set) the official draws are
            used.
        gallery_draw: ``'agw_seeded'`` or ``'official_rand_perm'``;
            defaults to the official draw when ``rand_perm_cam`` is given.
        **kwargs: See :class:`TrialGalleryMetric` and :class:`ReIDMetric`.

    Examples:
        >>> test_evaluator = dict(type='SYSUMetric', mode='all',
        ...                       shot='single')
    """
    default_prefix: Optional[str] = 'sysu'

    def __init__(self,
                 mode: str = 'all',
                 shot: str = 'single',
                 num_trials: int = 10,
                 seed: int = 0,
                 rand_perm_cam: Optional[Union[str, list]] = None,
                 gallery_draw: Optional[str] = None,
                 junk_rule: str = 'sysu',
                 cmc_mode: str = 'dedup',
                 **kwargs) -> None:
        if mode not in SYSU_GALLERY_CAMS:
            raise ValueError(f'mode must be "all" or "indoor", got {mode!r}')
        if shot not in SHOTS:
            raise ValueError(f'shot must be "single" or "multi", got '
                             f'{shot!r}')
        if gallery_draw is None:
            gallery_draw = ('agw_seeded'
                            if rand_perm_cam is None else 'official_rand_perm')
        self.mode = mode
        super().__init__(
            gallery_cams=SYSU_GALLERY_CAMS[mode],
            shots=SHOTS[shot],
            num_trials=num_trials,
            seed=seed,
            gallery_draw=gallery_draw,
            rand_perm_cam=rand_perm_cam,
            junk_rule=junk_rule,
            cmc_mode=cmc_mode,
            **kwargs)


@METRICS.register_module()
class LLCMMetric(TrialGalleryMetric):
    """LLCM evaluation, ten single-shot gallery trials.

    The gallery pool is every test image of the other modality
    (``LLCM(split='test', direction=...)``); each trial draws one image per
    (identity, camera) with ``random.seed(seed + trial)``. Removal: same
    pid and same camid (``'market'``; VIS and NIR camera K share camid
    K - 1). CMC de-duplicated, mAP and mINP on the full list.

    VIS->IR: the reference builds the all-VIS query and the sampled NIR
    gallery, then transposes the distances, so the sampled NIR images are
    the probes and all VIS images the gallery (``vis2ir_mode=
    'reference_transposed'``, the default, comparable to published
    numbers); ``'symmetric'`` keeps all VIS images as queries.

    Args:
        direction: ``'ir2vis'`` or ``'vis2ir'``; must match the dataset's.
        vis2ir_mode: ``'reference_transposed'`` or ``'symmetric'``.
        num_trials: Number of trials (10 in the protocol).
        seed: Trial ``t`` uses seed ``seed + t``.
        **kwargs: See :class:`TrialGalleryMetric` and :class:`ReIDMetric`.

    Examples:
        >>> test_evaluator = dict(type='LLCMMetric', direction='vis2ir')
    """
    default_prefix: Optional[str] = 'llcm'

    def __init__(self,
                 direction: str = 'ir2vis',
                 vis2ir_mode: str = 'reference_transposed',
                 num_trials: int = 10,
                 seed: int = 0,
                 junk_rule: str = 'market',
                 cmc_mode: str = 'dedup',
                 **kwargs) -> None:
        if direction not in ('ir2vis', 'vis2ir'):
            raise ValueError(f'direction must be "ir2vis" or "vis2ir", got '
                             f'{direction!r}')
        if vis2ir_mode not in LLCM_VIS2IR_MODES:
            raise ValueError(f'vis2ir_mode must be one of '
                             f'{LLCM_VIS2IR_MODES}, got {vis2ir_mode!r}')
        self.direction = direction
        self.vis2ir_mode = vis2ir_mode
        super().__init__(
            gallery_cams=None,
            shots=1,
            num_trials=num_trials,
            seed=seed,
            transpose=(direction == 'vis2ir'
                       and vis2ir_mode == 'reference_transposed'),
            junk_rule=junk_rule,
            cmc_mode=cmc_mode,
            **kwargs)
