"""GMN as a ReID model whose distance is its metric network."""
from typing import Callable, Dict, Optional, Tuple

import torch
from mmengine.logging import print_log

from mmreid.evaluation.functional.mnet_distance import (
    DEFAULT_CHECK_QUERIES, DEFAULT_MAX_LOGIT_ERROR, PAIR_DISTANCE_MODES,
    MNetPairScorer, check_fuse_beta)
from mmreid.evaluation.functional.mnet_logits import PAIR_SCORING_METHODS
from mmreid.evaluation.functional.mnet_shared_logits import share_mnet_logits
from mmreid.registry import MODELS
from mmreid.utils.deprecation import warn_deprecated
from .reid_model import ReIDModel

GMN_TEST_DEFAULTS = dict(
    distance='mnet',
    fuse_beta=0.5,
    mnet_topk=None,
    report_modes=('mnet', 'euclid', 'fused'),
    memory_budget_mb=256,
    method='decomposed',
    check_queries=DEFAULT_CHECK_QUERIES,
    max_logit_error=DEFAULT_MAX_LOGIT_ERROR)


def _log(message: str) -> None:
    print_log(message, logger='current')


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

    Its features are only meaningful with its own distance
    (``has_own_distance``): mmreid's val/test loops hand :meth:`scorers`
    to every metric (no hook or config line needed), so one run reports
    every mode of ``report_modes`` (``reid/mnet/mAP``,
    ``reid/euclid/mAP``, ...; a top-k M-Net as ``reid/mnet_top<k>/mAP``,
    see :meth:`mode_key`) and the primary mode ``distance`` also
    without the mode prefix (``reid/mAP``). In a loop that cannot hand
    them over, :meth:`val_step`/:meth:`test_step` raise instead of letting
    the metric rank with its Euclidean distance.

    Args:
        head (dict): A ``GMNHead`` config (it must have an ``mnet``).
        test_cfg (dict, optional): Test-time options:

            - ``distance``: ``'mnet'`` (default, ``-z``),
              ``'euclid'`` (``||q - g||^2``) or ``'fused'``
              (``(1 - beta) ||q - g||^2 / 4 + beta (1 - sigmoid(z))``);
            - ``fuse_beta``: beta of ``'fused'``, in [0, 1) (default
              0.5; 1 is ``'mnet'``'s order, which fp32 cannot keep in
              the fused form);
            - ``mnet_topk``: score only the top-k Euclidean candidates
              with the M-Net (``'mnet'`` mode only; default None = all
              pairs), a positive int; the mode is then reported as
              ``mnet_top<k>``, not ``mnet``. Set to other than their default
              while their mode is not reported, ``fuse_beta`` and
              ``mnet_topk`` are refused (they would be unused);
            - ``report_modes``: the modes reported in one evaluation
              (default ``('mnet', 'euclid', 'fused')``); the primary mode
              is added if missing;
            - ``memory_budget_mb``: budget in MiB (> 0) of the scorer's
              chunk buffers (default 256);
            - ``method``: ``'decomposed'`` (default) or ``'direct'``;
            - ``check_queries``: queries per gallery on which the
              decomposed form is checked against the direct one at every
              evaluation, however the metric chunks them; they are
              scored with the direct form, max |dz| is logged once all
              are checked (default 32; 0 = no check);
            - ``max_logit_error``: above this max |dz| the gallery is
              scored with the direct form, with a log line (default
              1e-5, ``pair_scoring.DEFAULT_MAX_LOGIT_ERROR``);
            - ``flip``: must stay False (GMN scores the training feature);
            - ``test_distance``: deprecated alias of ``distance`` (one
              release).
        **kwargs: See :class:`ReIDModel`.
    """

    has_own_distance = True

    def __init__(self,
                 *args,
                 test_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        distance = kwargs.get('distance', 'euclidean')
        if distance not in ('euclidean', 'sqeuclidean'):
            raise ValueError(
                f'GMNReID ranks with its own modes (test_cfg.distance: '
                f"'mnet', 'euclid' = squared Euclidean distance of the pair "
                f"features, 'fused'), so model.distance={distance!r} would "
                'be ignored: remove it (a config derived from a baseline '
                "with distance='cosine'), and set pair_norm and "
                'test_cfg.distance instead')
        test_cfg = dict(test_cfg or {})
        if 'test_distance' in test_cfg:
            if 'distance' in test_cfg:
                raise ValueError('GMNReID test_cfg has both distance and its '
                                 'deprecated alias test_distance')
            warn_deprecated(
                'GMNReID test_cfg.test_distance is deprecated and will be '
                'removed: use test_cfg.distance')
            test_cfg['distance'] = test_cfg.pop('test_distance')
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
        for mode in (gmn_cfg['distance'], ) + modes:
            if mode not in PAIR_DISTANCE_MODES:
                raise ValueError(f'GMNReID test_cfg modes must be in '
                                 f'{PAIR_DISTANCE_MODES}, got {mode!r}')
        if gmn_cfg['method'] not in PAIR_SCORING_METHODS:
            raise ValueError(f'GMNReID test_cfg.method must be one of '
                             f"{PAIR_SCORING_METHODS}, got "
                             f"{gmn_cfg['method']!r}")
        budget = gmn_cfg['memory_budget_mb']
        check_fuse_beta(gmn_cfg['fuse_beta'], 'GMNReID test_cfg.fuse_beta')
        if not isinstance(budget, (int, float)) or isinstance(
                budget, bool) or not budget > 0:
            raise ValueError('GMNReID test_cfg.memory_budget_mb must be a '
                             f'number > 0 (MiB), got {budget!r}')
        topk = gmn_cfg['mnet_topk']
        if topk is not None and (isinstance(topk, bool)
                                 or not isinstance(topk, int) or topk < 1):
            raise ValueError('GMNReID test_cfg.mnet_topk must be a positive '
                             f'int or None, got {topk!r}')
        check = gmn_cfg['check_queries']
        if isinstance(check, bool) or not isinstance(check, int) or check < 0:
            raise ValueError('GMNReID test_cfg.check_queries must be an int '
                             f'>= 0, got {check!r}')
        if not gmn_cfg['max_logit_error'] > 0:
            raise ValueError('GMNReID test_cfg.max_logit_error must be > 0, '
                             f"got {gmn_cfg['max_logit_error']!r}")
        primary = gmn_cfg['distance']
        gmn_cfg['report_modes'] = (primary, ) + tuple(
            m for m in dict.fromkeys(modes) if m != primary)
        # An option of a mode that is not reported would be silently unused.
        for key, mode in (('mnet_topk', 'mnet'), ('fuse_beta', 'fused')):
            if (gmn_cfg[key] != GMN_TEST_DEFAULTS[key]
                    and mode not in gmn_cfg['report_modes']):
                raise ValueError(
                    f'GMNReID test_cfg.{key}={gmn_cfg[key]!r} applies to the '
                    f"'{mode}' mode only, which is not reported (distance="
                    f"{primary!r}, report_modes="
                    f"{gmn_cfg['report_modes']}): add '{mode}' to "
                    f'report_modes or drop {key}')
        self.gmn_test_cfg = gmn_cfg

    @property
    def distance_modes(self) -> Tuple[str, ...]:
        """The reported distance modes, the primary one first."""
        return self.gmn_test_cfg['report_modes']

    def mode_key(self, mode: str) -> str:
        """The name a mode's results are reported under.

        ``'mnet'`` with ``mnet_topk=k`` is ``'mnet_top<k>'``
        (``reid/mnet_top100/mAP``): only the top-k Euclidean candidates
        were scored by the M-Net, so the numbers are not the full M-Net's,
        which alone are reported as ``mnet``. Every other mode is its own
        name.

        Args:
            mode (str): A mode of :data:`PAIR_DISTANCE_MODES`.

        Returns:
            str: The key of its scorer in :meth:`scorers`.
        """
        topk = self.gmn_test_cfg['mnet_topk']
        return f'mnet_top{topk}' if mode == 'mnet' and topk else mode

    def _mode_options(self, mode: str) -> dict:
        cfg = self.gmn_test_cfg
        topk = cfg['mnet_topk'] if mode == 'mnet' else None
        return dict(
            distance=mode,
            fuse_beta=cfg['fuse_beta'],
            topk=topk,
            method=cfg['method'],
            memory_budget_mb=cfg['memory_budget_mb'],
            check_queries=cfg['check_queries'],
            max_logit_error=cfg['max_logit_error'],
            log=_log)

    def distance(self,
                 query: torch.Tensor,
                 gallery: torch.Tensor,
                 mode: Optional[str] = None) -> torch.Tensor:
        """Distances between query and gallery features (smaller = closer).

        Args:
            query (Tensor): Shape (Q, D), features of :meth:`predict`.
            gallery (Tensor): Shape (G, D).
            mode (str, optional): ``'mnet'``, ``'euclid'`` or ``'fused'``;
                defaults to ``test_cfg.distance``.

        Returns:
            Tensor: Shape (Q, G), fp32, on the query's device.
        """
        mode = mode or self.gmn_test_cfg['distance']
        if mode not in PAIR_DISTANCE_MODES:
            raise ValueError(f'mode must be one of {PAIR_DISTANCE_MODES}, '
                             f'got {mode!r}')
        scorer = MNetPairScorer(**self.head.mnet.folded_params(),
                                **self._mode_options(mode))
        return scorer(query, gallery)

    def scorers(self) -> Dict[str, Callable]:
        """One metric scorer per reported mode, primary first, named by
        :meth:`mode_key` (``'mnet_top100'`` for a top-k M-Net).

        Each is ``(query_chunk (Qc, D), gallery (G, D)) -> (Qc, G)``
        distances with the M-Net as it is now (BatchNorm folded from its
        running statistics); the loops call this right before the metrics
        compute. Each checks the decomposed form on its first gallery
        (see :class:`MNetPairScorer`) and logs max |dz|; ``'mnet'`` and
        ``'fused'`` share one M-Net scoring of each query chunk (and its
        check) when the metric scores the modes chunk by chunk
        (:func:`~mmreid.evaluation.functional.mnet_shared_logits.share_mnet_logits`).
        """
        params = self.head.mnet.folded_params()
        scorers = share_mnet_logits({
            mode:
            MNetPairScorer(**params, **self._mode_options(mode))
            for mode in self.distance_modes
        })
        return {
            self.mode_key(mode): scorer
            for mode, scorer in scorers.items()
        }
