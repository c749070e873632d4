"""CUHK03's classic single-gallery-shot CMC, averaged over seeded repeated
draws of one gallery image per identity."""
import numbers
from typing import Dict, List, Optional, Sequence

import torch

from mmreid.registry import METRICS
from ..functional import classic_cmc, evaluate_rank
from .records import QueryGallery
from .reid_metric import FEATURE_OPTIONS, ReIDMetric
from .scorers import Scorer, is_gallery_dependent


@METRICS.register_module()
class CUHK03ClassicMetric(ReIDMetric):
    """CUHK03 classic single-gallery-shot protocol (seeded).

    CMC: :func:`~mmreid.evaluation.functional.classic_cmc` (one gallery
    image per identity, ``num_repeats`` seeded draws, averaged). mAP and
    mINP: on the full kept gallery, as :class:`ReIDMetric` computes them.
    Not for galleries with shared-pid distractors (Market's and GRID's
    pid 0, evaluation spec section 5): the distractors, different people
    under one pid, would form one identity of which each draw keeps one
    image, which inflates the CMC. A gallery holding items of a
    ``distractor_pids`` pid that no query has is therefore refused,
    naming the count and the dataset; evaluate it with
    :class:`ReIDMetric`.

    Keys (percent): ``R<k>``, ``mAP``, ``mINP``, ``num_query``,
    ``num_valid_query``.

    Args:
        num_repeats: Draws per query (10 in the protocol).
        seed: Seed of the draws; ``None`` for unseeded draws.
        distractor_pids: The pids that label distractors or junk rather
            than one identity; defaults to mmreid's dataset convention,
            ``(0, -1)`` (pid 0 distractors are kept in the gallery, pid -1
            junk is dropped at parsing). A gallery item of such a pid is
            refused unless a query has that pid too (then it is an
            identity, e.g. MSMT17's 0-based test labels). Give ``()``
            when these pids are real gallery-only identities.
        **kwargs: :class:`ReIDMetric` arguments; ``query_expansion``,
            ``rerank`` and ``verification_fprs`` are not supported. The
            classic CMC orders each gallery stably and draws one image per
            identity, so ``junk_rule`` must be ``'market'``,
            ``tie_policy`` ``'stable'`` and ``cmc_mode`` ``'standard'``
            (other values would be reported without being applied to the
            CMC, and are refused). ``ap_mode`` applies to the mAP. A
            gallery-dependent scorer (e.g. GMN's top-k rerank) is refused:
            its ranking of a sampled sub-gallery is not the full
            gallery's order.

    Examples:
        >>> test_evaluator = dict(type='CUHK03ClassicMetric', seed=0)
    """

    #: Its R<k> are another CMC protocol than the whole ranked gallery's
    #: (an evaluation report labels its own R1/CMC so, see
    #: :class:`~mmreid.engine.hooks.EvalReportHook`).
    cmc_protocol = 'CUHK03 classic single-gallery-shot'
    default_prefix: Optional[str] = 'cuhk03'
    unsupported_options = FEATURE_OPTIONS

    #: The rank options the classic CMC implements, with the one value it
    #: applies (see ``classic_cmc``).
    fixed_rank_options = dict(
        junk_rule='market', tie_policy='stable', cmc_mode='standard')

    def __init__(self,
                 num_repeats: int = 10,
                 seed: Optional[int] = 0,
                 distractor_pids: Sequence[int] = (0, -1),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        for name, value in self.fixed_rank_options.items():
            if self.rank_options[name] != value:
                raise ValueError(
                    f'CUHK03ClassicMetric uses {name}={value!r} (the '
                    'classic CMC orders each gallery stably and draws one '
                    'image per identity), got '
                    f'{name}={self.rank_options[name]!r}')
        if isinstance(num_repeats, bool) or not isinstance(
                num_repeats, numbers.Integral) or num_repeats < 1:
            raise ValueError('CUHK03ClassicMetric: num_repeats must be an '
                             f'integer >= 1, got {num_repeats!r}')
        if seed is not None and (isinstance(seed, bool) or not isinstance(
                seed, numbers.Integral) or not 0 <= seed < 2**32):
            # numpy refused it only after the whole extraction, naming
            # neither the seed nor the metric.
            raise ValueError('CUHK03ClassicMetric: seed must be None or an '
                             f'integer in [0, 2**32), got {seed!r}')
        self.num_repeats = int(num_repeats)
        self.seed = seed
        self.distractor_pids = tuple(int(pid) for pid in distractor_pids)

    def protocol_settings(self) -> Dict[str, str]:
        """See :meth:`ReIDMetric.protocol_settings`: the ``num_repeats``
        gallery draws and their ``seed``."""
        return dict(num_repeats=str(self.num_repeats), seed=str(self.seed))

    def check_scorers(self,
                      scorers: Optional[Dict[str, Scorer]],
                      primary: Optional[str] = None) -> None:
        """See :meth:`~.scorers.ScorerMixin.check_scorers`; a
        gallery-dependent primary distance is refused too.

        Raises:
            ValueError: As :meth:`~.scorers.ScorerMixin.check_scorers`, or
                the primary distance is gallery-dependent.
        """
        super().check_scorers(scorers, primary)
        if scorers:
            primary = primary or next(iter(scorers))
            distance, shown = scorers[primary], f'scorer {primary!r}'
        else:
            distance = self.scorer if self.scorer is not None else \
                self.distance
            shown = 'the callable distance'
        if is_gallery_dependent(distance):
            raise ValueError(
                'CUHK03ClassicMetric ranks each sampled sub-gallery (one '
                'image per identity) in the order of the full gallery, but '
                f'{shown} is gallery-dependent (e.g. the M-Net top-k '
                'rerank, whose candidates come from the gallery it is '
                'given), so that order is not its ranking of the '
                'sub-gallery; score without top-k')

    def check_no_distractors(self, data: QueryGallery) -> None:
        """Refuse a gallery with shared-pid distractors (see the class
        docstring).

        Args:
            data: The records split by role.

        Raises:
            ValueError: Gallery items have a ``distractor_pids`` pid that
                no query has; names their count, pids and dataset.
        """
        distractor = data.unmatched_label_items(self.distractor_pids)
        count = int(distractor.sum())
        if not count:
            return
        pids = sorted(set(data.g_pids[distractor].tolist()))
        datasets = sorted({
            str(data.gallery[i].get('dataset'))
            for i in torch.nonzero(distractor).flatten().tolist()
        } - {'None'})
        if not datasets and self.dataset_meta:
            datasets = [self.dataset_meta.get('dataset_name')]
        shown = ', '.join(repr(d) for d in datasets if d) or \
            "'<unnamed dataset>'"
        raise ValueError(
            f'CUHK03ClassicMetric: the gallery of dataset {shown} holds '
            f'{count} items of distractor pid(s) {pids} that no query has '
            "(mmreid's datasets: pid 0 = distractor, -1 = junk). The "
            'classic CMC draws one gallery image per pid, so these '
            'different people would count as one identity of which each '
            'draw keeps one, inflating the CMC (evaluation spec section '
            "5): evaluate it with dict(type='ReIDMetric', ...). If these "
            'pids are real identities, set distractor_pids=()')

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Rank every query, with the classic CMC.

        Args:
            results: The records of all samples, collected from all ranks.

        Returns:
            dict: See the class docstring.
        """
        # Also checked before extraction; kept as a guard.
        self.check_scorers(self.scorers, self.primary_scorer)
        data = self.split_roles(results)
        data.check_own_images(self.rank_options['junk_rule'],
                              type(self).__name__)
        self.check_no_distractors(data)
        dist = self.pairwise_distances(data.query_feats, data.gallery_feats)
        full = evaluate_rank(
            dist, *data.labels, device=self.device, **self.rank_options)
        cmc, valid = classic_cmc(
            dist.cpu().numpy(),
            *(label.numpy() for label in data.labels),
            max_rank=self.rank_options['max_rank'],
            num_repeats=self.num_repeats,
            seed=self.seed)
        self.last_result = full
        metrics = {f'R{k}': float(cmc[k - 1]) * 100 for k in self.ranks}
        metrics['mAP'] = float(full.mAP) * 100
        metrics['mINP'] = float(full.mINP) * 100
        metrics['num_query'] = len(data.query)
        metrics['num_valid_query'] = int(valid.sum())
        return self.name_primary_mode(metrics)
