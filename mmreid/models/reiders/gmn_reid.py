"""GMN as a ReID model whose distance is its metric network."""
from typing import Dict, Optional, Tuple

import torch

from mmreid.evaluation.functional.pair_scoring import (PAIR_DISTANCE_MODES,
                                                       PAIR_SCORING_METHODS,
                                                       MNetPairScorer,
                                                       mnet_distances)
from mmreid.registry import MODELS
from .reid_model import ReIDModel

GMN_TEST_DEFAULTS = dict(
    test_distance='mnet',
    fuse_beta=0.5,
    mnet_topk=None,
    report_modes=('mnet', 'euclid', 'fused'),
    memory_budget_mb=256,
    method='decomposed')


@MODELS.register_module()
class GMNReID(ReIDModel):
    """GMN (Qi et al., arXiv:2306.11991): a ReID model scored by an M-Net.

    Training is :class:`ReIDModel`'s with a
    :class:`~mmreid.models.heads.GMNHead` (``loss_cls``, ``loss_tri``,
    ``loss_gmn``, ``loss_pic``). At test time the features are the
    head's paired feature (as in training, no flip) and
    :meth:`distance` scores query-gallery pairs with the head's M-Net
    (BatchNorm folded, exact and chunked, see
    :mod:`mmreid.evaluation.functional.pair_scoring`).

    ``ModelDistanceHook`` hands :meth:`scorers` to every ``ReIDMetric``
    before validation and test, so one run reports every mode of
    ``report_modes`` (``reid/mnet/mAP``, ``reid/euclid/mAP``, ...) and the
    primary mode ``test_distance`` also without the mode prefix
    (``reid/mAP``).

    Args:
        head (dict): A ``GMNHead`` config (it must have an ``mnet``).
        test_cfg (dict, optional): Test-time options:

            - ``test_distance``: ``'mnet'`` (default, ``-z``),
              ``'euclid'`` (``||q - g||^2``) or ``'fused'``
              (``(1 - beta) ||q - g||^2 / 4 + beta (1 - sigmoid(z))``);
            - ``fuse_beta``: beta of ``'fused'`` (default 0.5);
            - ``mnet_topk``: score only the top-k Euclidean candidates
              with the M-Net (``'mnet'`` mode only; default None = all
              pairs);
            - ``report_modes``: the modes reported in one evaluation
              (default ``('mnet', 'euclid', 'fused')``); the primary mode
              is added if missing;
            - ``memory_budget_mb``: budget of the scorer's chunk buffers
              (default 256);
            - ``method``: ``'decomposed'`` (default) or ``'direct'``;
            - ``flip``: must stay False (GMN scores the training feature).
        **kwargs: See :class:`ReIDModel`.
    """

    def __init__(self,
                 *args,
                 test_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        test_cfg = dict(test_cfg or {})
        unknown = set(test_cfg) - set(GMN_TEST_DEFAULTS) - {'flip'}
        if unknown:
            raise ValueError(
                f'unknown GMNReID test_cfg keys {sorted(unknown)}; '
                f'supported: {sorted(GMN_TEST_DEFAULTS)} and flip')
        if test_cfg.get('flip', False):
            raise ValueError('GMNReID test_cfg.flip must be False: the '
                             'M-Net scores the features of training, '
                             'which have no flip averaging')
        gmn_cfg = dict(GMN_TEST_DEFAULTS)
        gmn_cfg.update({k: v for k, v in test_cfg.items() if k != 'flip'})
        super().__init__(*args, test_cfg=dict(flip=False), **kwargs)
        if not hasattr(self.head, 'mnet'):
            raise TypeError(f'GMNReID needs a head with an M-Net (GMNHead), '
                            f'got {type(self.head).__name__}')
        modes = tuple(gmn_cfg['report_modes'])
        for mode in (gmn_cfg['test_distance'], ) + modes:
            if mode not in PAIR_DISTANCE_MODES:
                raise ValueError(f'GMNReID test_cfg modes must be in '
                                 f'{PAIR_DISTANCE_MODES}, got {mode!r}')
        if gmn_cfg['method'] not in PAIR_SCORING_METHODS:
            raise ValueError(f'GMNReID test_cfg.method must be one of '
                             f"{PAIR_SCORING_METHODS}, got "
                             f"{gmn_cfg['method']!r}")
        if not 0 <= gmn_cfg['fuse_beta'] <= 1:
            raise ValueError('GMNReID test_cfg.fuse_beta must lie in [0, '
                             f"1], got {gmn_cfg['fuse_beta']!r}")
        primary = gmn_cfg['test_distance']
        gmn_cfg['report_modes'] = (primary, ) + tuple(
            m for m in dict.fromkeys(modes) if m != primary)
        self.gmn_test_cfg = gmn_cfg

    @property
    def distance_modes(self) -> Tuple[str, ...]:
        """The reported distance modes, the primary one first."""
        return self.gmn_test_cfg['report_modes']

    def _mode_options(self, mode: str) -> dict:
        cfg = self.gmn_test_cfg
        topk = cfg['mnet_topk'] if mode == 'mnet' else None
        return dict(
            mode=mode,
            fuse_beta=cfg['fuse_beta'],
            topk=topk,
            method=cfg['method'],
            memory_budget_mb=cfg['memory_budget_mb'])

    def distance(self,
                 query: torch.Tensor,
                 gallery: torch.Tensor,
                 mode: Optional[str] = None) -> torch.Tensor:
        """Distances between query and gallery features (smaller = closer).

        Args:
            query (Tensor): Shape (Q, D), features of :meth:`predict`.
            gallery (Tensor): Shape (G, D).
            mode (str, optional): ``'mnet'``, ``'euclid'`` or ``'fused'``;
                defaults to ``test_cfg.test_distance``.

        Returns:
            Tensor: Shape (Q, G), fp32, on the query's device.
        """
        mode = mode or self.gmn_test_cfg['test_distance']
        return mnet_distances(query, gallery, **self.head.mnet.folded_params(),
                              **self._mode_options(mode))

    def scorers(self) -> Dict[str, MNetPairScorer]:
        """One metric scorer per reported mode, primary first.

        Each is ``(query_chunk (Qc, D), gallery (G, D)) -> (Qc, G)``
        distances with the M-Net as it is now (BatchNorm folded from its
        running statistics), so call it after training steps, e.g. in
        ``before_val``.
        """
        params = self.head.mnet.folded_params()
        return {
            mode: MNetPairScorer(**params, **self._mode_options(mode))
            for mode in self.distance_modes
        }
