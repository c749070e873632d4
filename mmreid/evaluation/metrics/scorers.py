"""The distance a metric ranks with: the model's scorers or its own.

A model with its own distance (GMN's M-Net) hands its scorers to the metric
through mmreid's val/test loops (:meth:`ScorerMixin.set_scorers`); any other
model is compared with the metric's ``distance``. :class:`ScorerMixin` holds
that choice for :class:`~.reid_metric.ReIDMetric`: the distance a protocol
ranks with (:meth:`~ScorerMixin.primary_distance`), the checks of the
metric's options against the distances to be scored with
(:meth:`~ScorerMixin.check_scorers`) and the full distance matrix the
protocols index (:meth:`~ScorerMixin.pairwise_distances`).
"""
from typing import Callable, Dict, List, Optional, Union

import torch
import torch.nn.functional as F

from mmreid.utils.deprecation import warn_deprecated
from ..functional import chunk_rows_for_budget, compute_distance
from ..functional.distance import check_normalizable

Scorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def given_distance(
        owner: str, distance: Union[str, Scorer, None],
        metric: Union[str, Scorer, None]) -> Union[str, Scorer, None]:
    """The distance a metric's arguments give: ``distance`` or its
    deprecated alias ``metric``, never both.

    The one rule for the metric (:func:`resolve_distance`) and for the
    tools that read a metric's config without building it
    (``mmreid.apis.rankings.configured_rankings``).

    Args:
        owner (str): Who was given them, for the message (the metric's
            class, or its config key).
        distance: The ``distance`` argument (None: not given).
        metric: The ``metric`` argument (None: not given).

    Returns:
        str | Callable | None: The one given, None for neither.

    Raises:
        ValueError: Both are given.
    """
    if metric is not None and distance is not None:
        raise ValueError(f'{owner} got both distance={distance!r} and its '
                         f'deprecated alias metric={metric!r}; give '
                         'distance only')
    return metric if metric is not None else distance


def resolve_distance(owner: str, distance: Union[str, Scorer, None],
                     metric: Union[str, Scorer,
                                   None], default: str) -> Union[str, Scorer]:
    """The ``distance`` of a metric, from its deprecated ``metric`` alias.

    ``metric=`` (a distance, in a class called Metric) is accepted for one
    release with a ``FutureWarning``; so is a callable distance (the
    model's own distance reaches the metric through the loops, see
    :meth:`ScorerMixin.set_scorers`).

    Raises:
        ValueError: Both ``distance`` and ``metric`` are given
            (:func:`given_distance`).
    """
    if metric is not None:
        given_distance(owner, distance, metric)
        shown = repr(metric) if isinstance(metric, str) else '...'
        warn_deprecated(
            f'{owner}(metric=...) is deprecated and will be removed: use '
            f'distance={shown}')
        distance = metric
    if distance is None:
        distance = default
    if callable(distance):
        warn_deprecated(
            f'{owner}(distance=<callable>) is deprecated and will be '
            'removed: a model with its own distance gives it through '
            'scorers(), which the val/test loops hand to the metric; '
            'standalone, call set_scorers({name: scorer})')
    return distance


def is_gallery_dependent(distance: Union[str, Scorer]) -> bool:
    """Whether a distance of a pair depends on the rest of the gallery.

    A scorer says so with a true ``gallery_dependent`` attribute, e.g.
    GMN's top-k rerank (gmn.md 8.4), whose distances are positions in each
    query's ranking of the gallery it is given (the candidates are that
    gallery's k nearest). Its distances to part of a gallery are then not
    columns of its distances to the whole gallery, and they are no pair
    scores to threshold. Named distances and scorers without the
    attribute are pair scores.

    Args:
        distance: A distance name or a scorer.

    Returns:
        bool: True for a gallery-dependent scorer.
    """
    return callable(distance) and bool(
        getattr(distance, 'gallery_dependent', False))


class ScorerMixin:
    """The distance of :class:`~.reid_metric.ReIDMetric`: the model's named
    scorers (:meth:`set_scorers`), else the deprecated single scorer
    (:meth:`set_scorer`), else the metric's ``distance``.

    :class:`~.reid_metric.ReIDMetric` sets the attributes below in its
    ``__init__`` (``scorer``, ``scorers`` and ``primary_scorer`` empty); see
    its docstring for how the model's distance reaches the metric and how
    several modes are reported.
    """
    distance: Union[str, Scorer]
    #: Whether the user gave ``distance`` (or ``metric``), even as the
    #: default's name: a model with its own distance refuses it either way.
    distance_given: bool
    default_distance: str
    normalize: bool
    memory_budget_mb: float
    device: Optional[str]
    query_expansion: Optional[dict]
    rerank: Optional[dict]
    verification_fprs: Optional[tuple]
    scorer: Optional[Scorer]
    scorers: Dict[str, Scorer]
    primary_scorer: Optional[str]

    def set_scorer(self, scorer: Optional[Scorer]) -> None:
        """Deprecated: compare features with one scorer (None resets).

        The model's distance reaches the metric through
        :meth:`set_scorers`, which the val/test loops call; this second way
        is kept for one release, with a ``FutureWarning``.

        Args:
            scorer: ``(query_chunk (Qc, D), gallery (G, D)) -> distances
                (Qc, G)``, smaller = more similar.
        """
        warn_deprecated(
            'ReIDMetric.set_scorer() is deprecated and will be removed: use '
            'set_scorers({name: scorer}) (the val/test loops call it with '
            "the model's scorers)")
        if scorer is not None and not callable(scorer):
            raise TypeError(f'a scorer must be callable, got {scorer!r}')
        self.scorer = scorer

    def set_scorers(self,
                    scorers: Optional[Dict[str, Scorer]],
                    primary: Optional[str] = None) -> None:
        """Evaluate several named model-owned distances in one run.

        Args:
            scorers (dict[str, Callable], optional): Mode name -> scorer
                ``(query_chunk (Qc, D), gallery (G, D)) -> distances
                (Qc, G)``, smaller = more similar; None or ``{}`` resets.
            primary (str, optional): The mode also reported without its
                prefix; defaults to the first one.
        """
        scorers = dict(scorers or {})
        for name, scorer in scorers.items():
            if not isinstance(name, str) or not name or '/' in name:
                raise ValueError(f'scorer names must be non-empty strings '
                                 f"without '/', got {name!r}")
            if not callable(scorer):
                raise TypeError(f'scorer {name!r} must be callable, got '
                                f'{scorer!r}')
        if primary is None and scorers:
            primary = next(iter(scorers))
        if scorers and primary not in scorers:
            raise ValueError(f'primary scorer {primary!r} is not one of '
                             f'{sorted(scorers)}')
        self.scorers = scorers
        self.primary_scorer = primary if scorers else None

    def primary_distance(self) -> Union[str, Scorer]:
        """The distance of a protocol that reports one ranking.

        The model's primary scorer (:meth:`set_scorers`), else the scorer
        of :meth:`set_scorer`, else ``metric``. Split- and trial-based
        protocols rank with it (the other modes of a model are not
        reported there).

        Raises:
            ValueError: ``normalize``, ``query_expansion`` or ``rerank``
                with the model's scorers.
        """
        if self.scorers:
            self._check_model_scorer_options(list(self.scorers))
            return self.scorers[self.primary_scorer]
        return self.scorer if self.scorer is not None else self.distance

    def normalizes_features(self) -> bool:
        """Whether the ranking L2-normalises the features: ``normalize``,
        a cosine distance or query expansion (the model's scorers take
        them as they are; ``normalize`` is refused with them)."""
        if self.scorers:
            return False
        distance = self.scorer if self.scorer is not None else self.distance
        return bool(self.normalize) or self.query_expansion is not None or (
            isinstance(distance, str) and distance == 'cosine')

    def primary_gallery_dependent(self) -> bool:
        """Whether the primary distance is gallery-dependent (see
        :func:`is_gallery_dependent`): a protocol then scores each of its
        galleries on its own instead of indexing one pool matrix."""
        return is_gallery_dependent(self.primary_distance())

    def check_scorers(self,
                      scorers: Optional[Dict[str, Scorer]],
                      primary: Optional[str] = None) -> None:
        """Refuse options that contradict the distances to be scored with.

        The loops call it with the model's scorers before any feature is
        extracted (:func:`~mmreid.engine.runner.check_model_distance`);
        :meth:`~.reid_metric.ReIDMetric.compute_metrics` calls it again
        with those handed over.

        Args:
            scorers (dict[str, Callable], optional): The model's scorers,
                as :meth:`set_scorers` takes them; None or ``{}`` for the
                metric's own distance.
            primary (str, optional): The primary mode; defaults to the
                first one.

        Raises:
            ValueError: A ``distance`` given (even the default's name),
                ``normalize``, ``query_expansion`` or ``rerank`` with the
                model's scorers (or the last two with a callable
                distance); ``verification_fprs`` with a gallery-dependent
                distance.
        """
        if scorers:
            named = dict(scorers)
            self._check_model_scorer_options(list(named))
        else:
            named = {
                None: self.scorer if self.scorer is not None else self.distance
            }
            if callable(named[None]) and (self.query_expansion is not None
                                          or self.rerank is not None):
                raise ValueError(
                    f'{type(self).__name__}: query_expansion and rerank '
                    'work on features and cannot be combined with a '
                    'scorer (a callable distance)')
        self._check_verification_distances(named)

    def _check_verification_distances(
            self, named: Dict[Optional[str], Union[str, Scorer]]) -> None:
        """Refuse ``verification_fprs`` with a gallery-dependent scorer:
        TPR@FPR thresholds pair distances across queries, and its
        distances are positions in each query's ranking."""
        if self.verification_fprs is None:
            return
        for name, distance in named.items():
            if is_gallery_dependent(distance):
                shown = ('the callable distance'
                         if name is None else f'scorer {name!r}')
                raise ValueError(
                    f'{type(self).__name__}(verification_fprs=...) '
                    'thresholds the distances of query-gallery pairs, but '
                    f'{shown} is gallery-dependent (its distances are '
                    "positions in each query's ranking, e.g. the M-Net "
                    'top-k rerank), so no TPR@FPR is defined for it. Drop '
                    'verification_fprs or score without top-k')

    def _check_model_scorer_options(self, modes: List[str]) -> None:
        if self.distance_given:
            shown = (
                repr(self.distance)
                if isinstance(self.distance, str) else 'a callable')
            raise ValueError(
                f'{type(self).__name__}(distance={shown}) would be ignored: '
                'the model ranks with its own distance (modes '
                f'{modes}), which its test_cfg chooses (GMN: '
                'model.test_cfg.distance and report_modes): drop distance '
                'from the evaluator (with _delete_=True where a base '
                'config sets it)')
        if self.normalize:
            raise ValueError(
                f'{type(self).__name__}(normalize=True) would L2-normalise '
                'the features that the model\'s own distance (modes '
                f'{modes}) compares; the model defines its test feature '
                '(e.g. GMNHead pair_norm): set normalize=False')
        for name in ('query_expansion', 'rerank'):
            if getattr(self, name) is not None:
                raise ValueError(
                    f'{type(self).__name__}({name}=...) works on feature '
                    'distances, but the model compares its features with '
                    f'its own distance (modes {modes}), which {name} would '
                    f'bypass: drop {name}')

    def pairwise_distances(self, query_feats: torch.Tensor,
                           gallery_feats: torch.Tensor) -> torch.Tensor:
        """The full distance matrix of the primary distance.

        For protocols that index one matrix per partition (splits,
        trials); :meth:`~.reid_metric.ReIDMetric.compute_metrics` ranks
        chunk by chunk instead and never holds it. The model's primary
        scorer (or a callable distance) is applied in query chunks within
        ``memory_budget_mb``.
        A gallery-dependent scorer (:meth:`primary_gallery_dependent`)
        gives the distances to this gallery only: the protocols call it
        on each partition's gallery instead of indexing its columns.

        Args:
            query_feats: Query features, shape (Q, D).
            gallery_feats: Gallery (or pool) features, shape (G, D).

        Returns:
            torch.Tensor: Distances, shape (Q, G), on ``device``.
        """
        if self.device is not None:
            query_feats = query_feats.to(self.device)
            gallery_feats = gallery_feats.to(self.device)
        scorer = self.primary_distance()
        if not callable(scorer):
            return compute_distance(query_feats, gallery_feats, scorer,
                                    self.normalize)
        if self.normalize:
            check_normalizable(query_feats, 'query')
            check_normalizable(gallery_feats, 'gallery')
            query_feats = F.normalize(query_feats, dim=1)
            gallery_feats = F.normalize(gallery_feats, dim=1)
        rows = chunk_rows_for_budget(len(gallery_feats), self.memory_budget_mb)
        return torch.cat([
            torch.as_tensor(scorer(query_feats[i:i + rows], gallery_feats))
            for i in range(0, len(query_feats), rows)
        ])

    def pool_distances(self, query_feats: torch.Tensor,
                       pool_feats: torch.Tensor) -> torch.Tensor:
        """Old name of :meth:`pairwise_distances` (the trial metrics' pool
        is their gallery), kept for one release."""
        return self.pairwise_distances(query_feats, pool_feats)
