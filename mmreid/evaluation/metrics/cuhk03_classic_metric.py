"""CUHK03's classic single-gallery-shot CMC, averaged over seeded repeated
draws of one gallery image per identity."""
from typing import Dict, List, Optional

from mmreid.registry import METRICS
from ..functional import classic_cmc, evaluate_rank
from .reid_metric import (FEATURE_OPTIONS, ReIDMetric, Scorer,
                          is_gallery_dependent)


@METRICS.register_module()
class CUHK03ClassicMetric(ReIDMetric):
    """CUHK03 classic single-gallery-shot protocol (seeded).

    CMC: :func:`~mmreid.evaluation.functional.classic_cmc` (one gallery
    image per identity, ``num_repeats`` seeded draws, averaged). mAP and
    mINP: on the full kept gallery, as :class:`ReIDMetric` computes them.
    Not for galleries with many shared-pid distractors (e.g. GRID's pid 0):
    one distractor per draw would inflate the CMC.

    Keys (percent): ``R<k>``, ``mAP``, ``mINP``, ``num_query``,
    ``num_valid_query``.

    Args:
        num_repeats: Draws per query (10 in the protocol).
        seed: Seed of the draws; ``None`` for unseeded draws.
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
    default_prefix: Optional[str] = 'cuhk03'
    unsupported_options = FEATURE_OPTIONS

    #: The rank options the classic CMC implements, with the one value it
    #: applies (see ``classic_cmc``).
    fixed_rank_options = dict(
        junk_rule='market', tie_policy='stable', cmc_mode='standard')

    def __init__(self,
                 num_repeats: int = 10,
                 seed: Optional[int] = 0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        for name, value in self.fixed_rank_options.items():
            if self.rank_options[name] != value:
                raise ValueError(
                    f'CUHK03ClassicMetric uses {name}={value!r} (the '
                    'classic CMC orders each gallery stably and draws one '
                    'image per identity), got '
                    f'{name}={self.rank_options[name]!r}')
        if int(num_repeats) < 1:
            raise ValueError(f'num_repeats must be >= 1, got {num_repeats}')
        self.num_repeats = int(num_repeats)
        self.seed = seed

    def check_scorers(self,
                      scorers: Optional[Dict[str, Scorer]],
                      primary: Optional[str] = None) -> None:
        """See :meth:`ReIDMetric.check_scorers`; a gallery-dependent
        primary distance is refused too.

        Raises:
            ValueError: As :meth:`ReIDMetric.check_scorers`, or the
                primary distance is gallery-dependent.
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
        return metrics
