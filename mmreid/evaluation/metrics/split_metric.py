"""Protocols evaluated on several fixed splits or sampled galleries.

* :class:`DGSplitMetric`: the small DG targets (PRID2011, GRID, VIPeR,
  QMUL-iLIDS), all ten splits from one feature extraction, with the mean
  and population standard deviation over the splits.
* :class:`CUHK03ClassicMetric`: CUHK03's classic single-gallery-shot CMC,
  averaged over seeded repeated draws of one gallery image per identity.
"""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mmreid.registry import METRICS
from ..functional import ReIDEvalResult, evaluate_rank
from .cross_modality_metric import TrialGalleryMetric
from .reid_metric import ReIDMetric

_UNSUPPORTED = ('query_expansion', 'rerank', 'verification_fprs')


def _reject_unsupported(name: str, kwargs: dict) -> None:
    for key in _UNSUPPORTED:
        if kwargs.get(key) is not None:
            raise ValueError(f'{name} does not support {key}')


@METRICS.register_module()
class DGSplitMetric(ReIDMetric):
    """All fixed splits of a small DG target, evaluated in one run.

    The dataset (:class:`~mmreid.datasets.PRID2011`, ``GRID``, ``VIPeR``,
    ``QMULiLIDS`` with ``split='test'``) lists every query and gallery
    image of its splits once per role and puts the membership of each split
    in ``dataset_meta['dg_splits']``: ``[dict(query=[img_path, ...],
    gallery=[img_path, ...]), ...]``. The distances are computed once for
    all queries and the whole gallery pool and indexed per split (eval-mode
    features do not depend on the split).

    Every query must have exactly one valid positive in its split's gallery
    after the removal rule (the protocols are single-shot); anything else
    is a broken split or camid and raises.

    Keys (percent): ``split<i>/R<k>``, ``split<i>/mAP``, ``split<i>/mINP``
    for every split; the means ``R<k>``, ``mAP``, ``mINP`` over the splits
    and their population standard deviations (``ddof=0``) ``R<k>_std``,
    ``mAP_std``, ``mINP_std``; ``split<i>/num_query``,
    ``split<i>/num_gallery`` and ``num_splits``. With one positive per
    query, mAP = mINP.

    Args:
        check_single_positive: Raise unless every query has exactly one
            valid positive.
        **kwargs: :class:`ReIDMetric` arguments (``metric``, ``ranks``,
            ``junk_rule``, ...); ``query_expansion``, ``rerank`` and
            ``verification_fprs`` are not supported.

    Examples:
        >>> test_evaluator = dict(type='DGSplitMetric', metric='euclidean')
    """
    default_prefix: Optional[str] = 'dg'

    pool_distances = TrialGalleryMetric.pool_distances

    def __init__(self, check_single_positive: bool = True, **kwargs) -> None:
        _reject_unsupported(type(self).__name__, kwargs)
        super().__init__(**kwargs)
        self.check_single_positive = check_single_positive
        #: Per-split results of the last evaluation.
        self.split_results: List[ReIDEvalResult] = []

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
        results = self._drop_duplicates(results)
        query = [r for r in results if r['is_query']]
        gallery = [r for r in results if not r['is_query']]
        if not query or not gallery:
            raise ValueError(f'{type(self).__name__} got {len(query)} query '
                             f'and {len(gallery)} gallery samples')
        q_lookup = {r['img_path']: i for i, r in enumerate(query)}
        g_lookup = {r['img_path']: i for i, r in enumerate(gallery)}

        def labels(records: List[dict], key: str) -> torch.Tensor:
            return torch.tensor([r[key] for r in records], dtype=torch.long)

        dist = self.pool_distances(
            torch.stack([r['feature'] for r in query]).float(),
            torch.stack([r['feature'] for r in gallery]).float())
        q_pids, q_camids = labels(query, 'pid'), labels(query, 'camid')
        g_pids, g_camids = labels(gallery, 'pid'), labels(gallery, 'camid')

        metrics: Dict[str, float] = {}
        per_split: Dict[str, List[float]] = {}
        self.split_results = []
        for index, split in enumerate(splits):
            q_index = self._indices(split['query'], q_lookup, 'query', index)
            g_index = self._indices(split['gallery'], g_lookup, 'gallery',
                                    index)
            qi = torch.as_tensor(q_index, device=dist.device)
            gi = torch.as_tensor(g_index, device=dist.device)
            split_dist = dist.index_select(0, qi).index_select(1, gi)
            sq_pids, sq_cams = q_pids[q_index], q_camids[q_index]
            sg_pids, sg_cams = g_pids[g_index], g_camids[g_index]
            if self.check_single_positive:
                self._check_positives(sq_pids, sq_cams, sg_pids, sg_cams,
                                      [query[i]['img_path'] for i in q_index],
                                      index)
            result = evaluate_rank(
                split_dist,
                sq_pids,
                sg_pids,
                sq_cams,
                sg_cams,
                device=self.device,
                **self.rank_options)
            self.split_results.append(result)
            values = result.percentages(self.ranks)
            for key, value in values.items():
                metrics[f'split{index}/{key}'] = value
                per_split.setdefault(key, []).append(value)
            metrics[f'split{index}/num_query'] = result.num_query
            metrics[f'split{index}/num_gallery'] = len(g_index)
        for key, values in per_split.items():
            metrics[key] = float(np.mean(values))
        for key, values in per_split.items():
            metrics[f'{key}_std'] = float(np.std(values, ddof=0))
        metrics['num_splits'] = len(splits)
        self.last_result = None
        return metrics

    def _check_positives(self, q_pids: torch.Tensor, q_cams: torch.Tensor,
                         g_pids: torch.Tensor, g_cams: torch.Tensor,
                         q_paths: List[str], split: int) -> None:
        same_pid = q_pids[:, None] == g_pids[None, :]
        if self.rank_options['junk_rule'] == 'market':
            same_pid &= q_cams[:, None] != g_cams[None, :]
        elif self.rank_options['junk_rule'] != 'none':
            raise ValueError("DGSplitMetric supports junk_rule 'market' or "
                             f"'none', got {self.rank_options['junk_rule']!r}")
        counts = same_pid.sum(dim=1)
        bad = torch.nonzero(counts != 1).flatten().tolist()
        if bad:
            raise ValueError(
                f'split {split}: query {q_paths[bad[0]]!r} has '
                f'{int(counts[bad[0]])} valid positives in the gallery, '
                f'expected exactly 1 ({len(bad)} such queries); check the '
                'split and the camids (GRID: assign_camids=True)')


def classic_cmc(distmat: np.ndarray,
                q_pids: np.ndarray,
                g_pids: np.ndarray,
                q_camids: np.ndarray,
                g_camids: np.ndarray,
                max_rank: int = 50,
                num_repeats: int = 10,
                seed: Optional[int] = 0) -> Tuple[np.ndarray, np.ndarray]:
    """CUHK03 classic single-gallery-shot CMC (fast-reid ``eval_cuhk03``).

    Per query (in order): rank the gallery by ascending distance (stable
    sort), remove items of the query's pid and camid, bucket the rest by
    pid in order of first appearance; then ``num_repeats`` times pick one
    item per bucket (``rng.choice`` per bucket, in bucket order) and take
    the rank of the picked positive among the picked items. CMC_q is the
    mean over the repeats. Queries without a kept positive are skipped.
    With ``seed=s`` the draws equal those of the reference after
    ``np.random.seed(s)`` (the reference itself is unseeded).

    Args:
        distmat: Distances, shape (Q, G).
        q_pids, g_pids: pids, shapes (Q,) and (G,).
        q_camids, g_camids: camids, shapes (Q,) and (G,).
        max_rank: Length of the CMC curve.
        num_repeats: Draws per query.
        seed: Seed of a private ``np.random.RandomState``; ``None`` for an
            unseeded one.

    Returns:
        tuple: ``cmc`` (max_rank,) averaged over valid queries and
        ``valid`` (Q,) bool.
    """
    rng = np.random.RandomState(seed)
    distmat = np.asarray(distmat, dtype=np.float64)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    valid = np.zeros(len(q_pids), dtype=bool)
    total = np.zeros(max_rank)
    for q in range(len(q_pids)):
        order = np.argsort(distmat[q], kind='stable')
        keep = ~((g_pids[order] == q_pids[q]) &
                 (g_camids[order] == q_camids[q]))
        kept_pids = g_pids[order][keep]
        if not np.any(kept_pids == q_pids[q]):
            continue
        valid[q] = True
        buckets: 'OrderedDict[int, List[int]]' = OrderedDict()
        for position, pid in enumerate(kept_pids.tolist()):
            buckets.setdefault(pid, []).append(position)
        positive = list(buckets).index(int(q_pids[q]))
        sizes = np.array([len(m) for m in buckets.values()])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        flat = np.concatenate([m for m in buckets.values()])
        cmc = np.zeros(max_rank)
        for _ in range(num_repeats):
            # One randint over the buckets draws the same stream as the
            # reference's ``np.random.choice`` per bucket.
            picked = flat[starts + rng.randint(0, sizes)]
            rank = int((picked < picked[positive]).sum())  # 0-based
            if rank < max_rank:
                cmc[rank:] += 1
        total += cmc / num_repeats
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError('no query has a positive in the gallery')
    return total / num_valid, valid


@METRICS.register_module()
class CUHK03ClassicMetric(ReIDMetric):
    """CUHK03 classic single-gallery-shot protocol (seeded).

    CMC: :func:`classic_cmc` (one gallery image per identity, ``num_repeats``
    seeded draws, averaged). mAP and mINP: on the full kept gallery, as
    :class:`ReIDMetric` computes them. Not for galleries with many
    shared-pid distractors (e.g. GRID's pid 0): one distractor per draw
    would inflate the CMC.

    Keys (percent): ``R<k>``, ``mAP``, ``mINP``, ``num_query``,
    ``num_valid_query``.

    Args:
        num_repeats: Draws per query (10 in the protocol).
        seed: Seed of the draws; ``None`` for unseeded draws.
        **kwargs: :class:`ReIDMetric` arguments; ``query_expansion``,
            ``rerank`` and ``verification_fprs`` are not supported, and the
            CMC uses ``junk_rule='market'`` with the stable tie policy.

    Examples:
        >>> test_evaluator = dict(type='CUHK03ClassicMetric', seed=0)
    """
    default_prefix: Optional[str] = 'cuhk03'

    pool_distances = TrialGalleryMetric.pool_distances

    def __init__(self,
                 num_repeats: int = 10,
                 seed: Optional[int] = 0,
                 **kwargs) -> None:
        _reject_unsupported(type(self).__name__, kwargs)
        super().__init__(**kwargs)
        if self.rank_options['junk_rule'] != 'market':
            raise ValueError('CUHK03ClassicMetric uses junk_rule="market", '
                             f'got {self.rank_options["junk_rule"]!r}')
        if int(num_repeats) < 1:
            raise ValueError(f'num_repeats must be >= 1, got {num_repeats}')
        self.num_repeats = int(num_repeats)
        self.seed = seed

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        results = self._drop_duplicates(results)
        query = [r for r in results if r['is_query']]
        gallery = [r for r in results if not r['is_query']]
        if not query or not gallery:
            raise ValueError(f'{type(self).__name__} got {len(query)} query '
                             f'and {len(gallery)} gallery samples')

        def labels(records: List[dict], key: str) -> np.ndarray:
            return np.array([r[key] for r in records], dtype=np.int64)

        dist = self.pool_distances(
            torch.stack([r['feature'] for r in query]).float(),
            torch.stack([r['feature'] for r in gallery]).float())
        q_pids, q_camids = labels(query, 'pid'), labels(query, 'camid')
        g_pids, g_camids = labels(gallery, 'pid'), labels(gallery, 'camid')
        full = evaluate_rank(
            dist,
            q_pids,
            g_pids,
            q_camids,
            g_camids,
            device=self.device,
            **self.rank_options)
        cmc, valid = classic_cmc(
            dist.cpu().numpy(),
            q_pids,
            g_pids,
            q_camids,
            g_camids,
            max_rank=self.rank_options['max_rank'],
            num_repeats=self.num_repeats,
            seed=self.seed)
        self.last_result = full
        metrics = {f'R{k}': float(cmc[k - 1]) * 100 for k in self.ranks}
        metrics['mAP'] = float(full.mAP) * 100
        metrics['mINP'] = float(full.mINP) * 100
        metrics['num_query'] = len(query)
        metrics['num_valid_query'] = int(valid.sum())
        return metrics
