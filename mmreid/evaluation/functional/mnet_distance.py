"""GMN test distances from the M-Net logits: modes, top-k rerank, scorer.

The logits themselves come from :mod:`.mnet_logits` (exact kernels). This
module decides what distance is built from them (spec section 8):

- ``'euclid'``, ``'mnet'`` and ``'fused'`` (:func:`mnet_distances`);
- the top-k rerank, where only the k nearest Euclidean candidates of a
  query are scored by the M-Net;
- :class:`MNetPairScorer`, the streaming scorer the metrics call per query
  chunk, which caches the gallery term of the decomposed form and proves
  the decomposition on every gallery it scores: the first
  ``check_queries`` queries are scored both ways, max |dz| is logged, and
  when it exceeds ``max_logit_error`` (default
  :data:`DEFAULT_MAX_LOGIT_ERROR`, 1e-5) the gallery is scored with the
  direct form instead.

The options every entry point shares (distance, fuse_beta, topk, method,
memory_budget_mb, device) are one :class:`PairDistanceOptions`, checked in
one place.
"""
import dataclasses
import weakref
from typing import Callable, Optional

import torch

from mmreid.utils.deprecation import warn_deprecated
from .distance import (ArrayLike, GalleryDistance, compute_distance,
                       exact_fp32_matmul, to_tensor)
from .mnet_logits import (MIN_PAIR_GEMM, PAIR_SCORING_METHODS, MNetTail,
                          ScalarLike, budget_bytes, budget_too_small,
                          mnet_gallery_term, mnet_pair_logits, prepare_mnet,
                          squared_difference_logits)
from .rank import DEFAULT_MEMORY_BUDGET_MB, DeviceLike

PAIR_DISTANCE_MODES = ('mnet', 'euclid', 'fused')
#: Largest max |z_direct - z_decomposed| on the checked queries for which
#: :class:`MNetPairScorer` keeps the decomposed form. 1e-5 is 13x the
#: largest error reported on L2-normalised features of a trained GMN
#: (7.5e-7) and 14x below the 1.4e-4 reported on pre-BN un-normalised
#: features, where the top-10 agreed for only 99.4 % of the queries.
DEFAULT_MAX_LOGIT_ERROR = 1e-5
#: Queries per gallery on which the scorer checks the decomposition.
DEFAULT_CHECK_QUERIES = 32
_FP32_BYTES = 4


def check_fuse_beta(beta: float, name: str) -> None:
    """Refuse a ``'fused'`` beta outside [0, 1).

    Args:
        beta: The value.
        name: Its name in the message (``'GMNReID test_cfg.fuse_beta'``).

    Raises:
        ValueError: ``beta`` is not a number in [0, 1); at 1 the message
            names ``distance='mnet'``.
    """
    if not isinstance(beta, (int, float)) or isinstance(
            beta, bool) or not (0 <= beta <= 1):
        raise ValueError(f'{name} must be a number in [0, 1), got {beta!r}')
    if beta == 1:
        raise ValueError(
            f'{name}=1 leaves the fused distance 1 - sigmoid(z) alone, which '
            'fp32 cannot order: it is exactly 1 for every logit z below '
            'about -17, so all those pairs would tie in gallery order. '
            "distance='mnet' ranks by -z, the order beta = 1 defines; "
            'the fused mode takes beta in [0, 1)')


@dataclasses.dataclass(frozen=True)
class PairDistanceOptions:
    """How a GMN test distance is computed from the folded M-Net.

    The one place these options are defined and checked; the entry points
    (:func:`mnet_distances`, :class:`MNetPairScorer`,
    :func:`make_mnet_scorer`) take them as ``options=`` or as keyword
    arguments of the same names.

    Args:
        distance: ``'mnet'``, ``'euclid'`` or ``'fused'``.
        fuse_beta: beta of ``'fused'``, in [0, 1). 1 is refused: the
            M-Net term ``1 - sigmoid(z)`` alone is exactly 1 in fp32 for
            every z below about -17, so those pairs would tie, where
            ``'mnet'`` (``-z``) gives the order beta = 1 defines.
        topk: Rerank only the top-k Euclidean candidates (``'mnet'``
            only), a positive int; None scores the whole gallery.
        method: ``'decomposed'`` or ``'direct'`` (see
            :func:`~.mnet_logits.mnet_pair_logits`).
        memory_budget_mb: Budget in MiB of one chunk's buffers.
        device: Where to compute; defaults to the query's device.

    Raises:
        ValueError: On an unknown distance or method, a ``fuse_beta``
            outside [0, 1), or a ``topk`` that is not a positive int or
            comes with another distance than ``'mnet'``.
    """
    distance: str = 'mnet'
    fuse_beta: float = 0.5
    topk: Optional[int] = None
    method: str = 'decomposed'
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB
    device: DeviceLike = None

    def __post_init__(self) -> None:
        if self.distance not in PAIR_DISTANCE_MODES:
            raise ValueError(f'distance must be one of '
                             f'{PAIR_DISTANCE_MODES}, got {self.distance!r}')
        check_fuse_beta(self.fuse_beta, 'fuse_beta')
        if self.topk is not None:
            if self.distance != 'mnet':
                raise ValueError(
                    f'topk is only supported with distance=\'mnet\', '
                    f'got distance={self.distance!r}')
            if isinstance(
                    self.topk,
                    bool) or not isinstance(self.topk, int) or self.topk < 1:
                raise ValueError(
                    f'topk must be a positive int, got {self.topk!r}')
        if self.method not in PAIR_SCORING_METHODS:
            raise ValueError(f'method must be one of '
                             f'{PAIR_SCORING_METHODS}, got {self.method!r}')

    @classmethod
    def build(cls,
              owner: str,
              options: Optional['PairDistanceOptions'] = None,
              mode: Optional[str] = None,
              **fields) -> 'PairDistanceOptions':
        """Options from ``options`` and/or keyword fields of an entry point.

        Args:
            owner: The entry point, named in warnings and errors.
            options: Base options; ``fields`` override them.
            mode: Deprecated alias of ``distance`` (one release).
            **fields: Fields of this class.

        Returns:
            PairDistanceOptions: Checked options.
        """
        if mode is not None:
            warn_deprecated(
                f'{owner}(mode=...) is deprecated and will be removed: use '
                f'distance={mode!r}')
            fields['distance'] = mode
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - names)
        if unknown:
            raise TypeError(f'{owner}() got unexpected keyword arguments '
                            f'{unknown}; the distance options are '
                            f'{sorted(names)}')
        if options is None:
            return cls(**fields)
        if not isinstance(options, cls):
            raise TypeError(f'{owner}(options=...) must be a {cls.__name__}, '
                            f'got {type(options).__name__}')
        return dataclasses.replace(options, **fields)

    @property
    def gallery_dependent(self) -> bool:
        """Whether a pair's distance depends on the rest of the gallery.

        With ``topk`` the distances are positions in each query's ranking
        of the gallery it is scored against (the candidates are that
        gallery's k nearest; ties share a position), so the distances to
        part of a gallery are not columns of the distances to the whole
        of it, and they are no pair scores to threshold.
        """
        return self.topk is not None

    @property
    def needs_gallery_term(self) -> bool:
        """Whether the decomposed form's ``W g^2`` is used."""
        return (self.distance != 'euclid' and self.topk is None
                and self.method == 'decomposed')


def _tied_positions(sorted_keys: torch.Tensor,
                    positions: torch.Tensor) -> torch.Tensor:
    """The position of each item in a row sorted by ``sorted_keys`` (Qc, N),
    equal keys sharing the position of the first of them.

    Args:
        sorted_keys: Keys sorted ascending along dim 1, shape (Qc, N).
        positions: ``0 .. N - 1`` (or offset by a constant), fp32, (N,).

    Returns:
        torch.Tensor: fp32, shape (Qc, N), non-decreasing along dim 1.
    """
    tied = torch.zeros_like(sorted_keys, dtype=torch.bool)
    torch.eq(sorted_keys[:, 1:], sorted_keys[:, :-1], out=tied[:, 1:])
    values = positions.expand_as(sorted_keys).masked_fill(tied, 0)
    return values.cummax(dim=1).values


def _topk_rerank_distances(query, gallery, weight, bias, out_weight, out_bias,
                           topk, memory_budget_mb, tail):
    """Tied positions of the top-k Euclidean rerank (see mnet_distances).

    Per query: the gallery is sorted stably by squared Euclidean distance,
    its first k items are scored by the M-Net (direct form, k pairs only)
    and sorted by -z, the rest keeps its Euclidean order. The item at
    position j gets distance j, except that items with an equal key (-z
    among the k candidates, the Euclidean distance among the rest) all
    get the position of the first of them: the metric's tie policy orders
    them, as it orders the ties of the full ``'mnet'`` distances.
    """
    hidden, dim = weight.shape
    num_query, num_gallery = len(query), len(gallery)
    k = min(topk, num_gallery)
    budget = budget_bytes(memory_budget_mb)
    # distances, sort values, int64 indices, the tie mask, the masked
    # positions, cummax's values and int64 indices, their concatenation
    # and the output (G) plus the k gathered pairs: features, squared
    # differences, hidden.
    per_query = (
        num_gallery * (4 + 4 + 8 + 1 + 4 + 4 + 8 + 4 + 4) + k *
        (2 * dim + hidden + 1) * _FP32_BYTES)
    # a chunk of fewer than MIN_PAIR_GEMM pairs is padded to that many
    padding = max(0, MIN_PAIR_GEMM - k) * (dim + hidden + 1) * _FP32_BYTES
    if budget < per_query + padding:
        raise budget_too_small(memory_budget_mb, per_query + padding,
                               f'one query of the top-{k} M-Net rerank')
    query_block = (budget - padding) // per_query
    out = torch.empty(
        num_query, num_gallery, dtype=torch.float32, device=query.device)
    positions = torch.arange(
        num_gallery, dtype=torch.float32, device=query.device)
    sqeuclidean = GalleryDistance(gallery, 'sqeuclidean')
    for start in range(0, num_query, query_block):
        q_chunk = query[start:start + query_block]
        num_q = len(q_chunk)
        euclid, order = torch.sort(sqeuclidean(q_chunk), dim=1, stable=True)
        head = order[:, :k]
        candidates = gallery[head]  # (Qc, k, D)
        logits = squared_difference_logits(
            (q_chunk.unsqueeze(1) - candidates).pow_(2).view(-1, dim), weight,
            bias, out_weight, out_bias, tail).view(num_q, k)
        del candidates
        neg_logits, rerank = torch.sort(-logits, dim=1, stable=True)
        del logits
        order[:, :k] = torch.gather(head, 1, rerank)
        head_values = _tied_positions(neg_logits, positions[:k])
        tail_values = _tied_positions(euclid[:, k:], positions[k:])
        values = torch.cat([head_values, tail_values], dim=1)
        del head_values, tail_values
        del euclid, neg_logits
        out[start:start + num_q].scatter_(1, order, values)
    return out


def mnet_distances(query: ArrayLike,
                   gallery: ArrayLike,
                   weight: ArrayLike,
                   bias: ArrayLike,
                   out_weight: Optional[ArrayLike],
                   out_bias: Optional[ScalarLike],
                   options: Optional[PairDistanceOptions] = None,
                   *,
                   tail: Optional[MNetTail] = None,
                   gallery_term: Optional[torch.Tensor] = None,
                   mode: Optional[str] = None,
                   **option_fields) -> torch.Tensor:
    """GMN test distances (smaller = closer), spec section 8.1.

    - ``'euclid'``: ``||q - g||^2`` in fp32
      (:func:`compute_distance` ``'sqeuclidean'``); the M-Net is unused.
    - ``'mnet'``: ``-z``. Ranking by ``1 - sigmoid(z)`` would be wrong:
      sigmoid is exactly 1.0 in fp32 for z >~ 17 and creates ties.
    - ``'fused'``: ``(1 - beta) * ||q - g||^2 / 4 + beta * (1 -
      sigmoid(z))``, the second term computed as ``sigmoid(-z)`` (equal,
      without fp32 cancellation at the top of the ranking: pairs with z
      up to about 88 keep their order). Its other end cannot be kept in
      fp32: ``sigmoid(-z)`` is exactly 1 for z below about -17, so the M-Net
      term orders no pairs there and the Euclidean term alone does; hence
      ``beta = 1`` is refused (:func:`check_fuse_beta`). The
      ``/ 4`` maps ``||q - g||^2`` of L2-normalised features (in [0, 4])
      to [0, 1]; for unnormalised features choose ``fuse_beta``
      accordingly.
    - ``topk=k`` (``'mnet'`` only): top-k rerank, spec 8.4. Per query, only
      the k nearest Euclidean candidates are scored by the M-Net (direct
      form on those ``Q * k`` pairs, not ``Q * G``), ordered by ``-z``,
      and followed by the rest of the gallery in Euclidean order. The
      returned distances are the positions ``0 .. G - 1`` in that order
      as floats, except that items with equal keys (equal ``-z`` among
      the candidates, equal Euclidean distances among the rest) share
      the position of the first of them: they stay ties, which the
      metric's tie policy orders as it orders the ties of ``'mnet'``.
      Every candidate ranks before every other item. Which k items are
      the candidates is decided by a stable sort (Euclidean ties at the
      k-th item: gallery index). Metrics change when positives fall
      beyond k; ``topk >= G`` gives the full ``'mnet'`` ranking, ties
      included.

    Args:
        query: Query features, shape (Q, D).
        gallery: Gallery features, shape (G, D).
        weight, bias, out_weight, out_bias: The folded M-Net, as in
            :func:`~.mnet_logits.mnet_pair_logits`.
        options: The distance options (:class:`PairDistanceOptions`);
            keyword fields of the same names override them.
        tail: Deeper M-Nets, as in
            :func:`~.mnet_logits.mnet_pair_logits`.
        gallery_term: Optional precomputed ``W g^2`` (H, G)
            (``'decomposed'`` only).
        mode: Deprecated alias of ``distance`` (one release).
        **option_fields: ``distance``, ``fuse_beta``, ``topk``,
            ``method``, ``memory_budget_mb``, ``device``
            (:class:`PairDistanceOptions`).

    Returns:
        torch.Tensor: fp32 distances, shape (Q, G).
    """
    opts = PairDistanceOptions.build('mnet_distances', options, mode,
                                     **option_fields)
    device = opts.device
    if opts.distance == 'euclid':
        query = to_tensor(query)
        device = torch.device(device) if device is not None else query.device
        return compute_distance(
            query.to(device),
            to_tensor(gallery).to(device), 'sqeuclidean')
    if opts.topk is not None:
        (query_t, gallery_t, weight_t, bias_t, out_weight_t, out_bias_t,
         device) = prepare_mnet(query, gallery, weight, bias, out_weight,
                                out_bias, device, tail)
        with exact_fp32_matmul(device), torch.no_grad():
            return _topk_rerank_distances(query_t, gallery_t, weight_t, bias_t,
                                          out_weight_t, out_bias_t, opts.topk,
                                          opts.memory_budget_mb, tail)
    logits = mnet_pair_logits(
        query,
        gallery,
        weight,
        bias,
        out_weight,
        out_bias,
        method=opts.method,
        memory_budget_mb=opts.memory_budget_mb,
        device=device,
        tail=tail,
        gallery_term=gallery_term)
    if opts.distance == 'mnet':
        return logits.neg_()
    return fuse_distances(query, gallery, logits, opts.fuse_beta)


def fuse_distances(query: ArrayLike, gallery: ArrayLike, logits: torch.Tensor,
                   beta: float) -> torch.Tensor:
    """``'fused'``: ``(1 - beta) * ||q - g||^2 / 4 + beta * sigmoid(-z)``,
    ``sigmoid(-z) = 1 - sigmoid(z)`` (see :func:`mnet_distances`).

    Args:
        query: Query features, shape (Qc, D).
        gallery: Gallery features, shape (G, D).
        logits: The M-Net logits z, shape (Qc, G); overwritten.
        beta: The weight of the M-Net term, in [0, 1].

    Returns:
        torch.Tensor: fp32 distances, shape (Qc, G), on ``logits``' device.
    """
    device = logits.device
    euclid = compute_distance(
        to_tensor(query).to(device),
        to_tensor(gallery).to(device), 'sqeuclidean')
    # sigma(-z) is 1 - sigma(z) without the cancellation: in fp32,
    # 1 - sigma(z) is exactly 0 for z >~ 16.6 (ties) and coarse before.
    return euclid.mul_((1 - beta) / 4).add_(
        logits.neg_().sigmoid_(), alpha=beta)


class MNetPairScorer:
    """A pair scorer for ``evaluate_features(distance=scorer)``.

    Calling it with ``(query_chunk (Qc, D), gallery (G, D))`` returns the
    (Qc, G) distances of :func:`mnet_distances`, so metrics are streamed
    per query chunk and the Q x G matrix is never held. The gallery term
    ``W g^2`` (H, G) of the decomposed form is computed once per gallery
    and cached for that gallery object (a weak reference: the cache keeps
    no gallery alive) while its storage pointer, shape, device and
    version counter stay the same (an in-place change invalidates it), or
    precomputed with :meth:`set_gallery`.

    The decomposed form proves itself on every gallery (spec 8.3): the
    first ``check_queries`` queries scored against a new gallery, in as
    many query chunks as they come in (a metric on a small budget ranks
    one query at a time), are scored with both forms, and max |dz| over
    all of them is reported through ``log`` once they are all checked
    (kept in :attr:`last_check`, updated chunk by chunk). The checked
    queries get the direct form's distances (the reference; whatever the
    chunking, the same queries are checked and scored alike). Above
    ``max_logit_error`` the rest of the gallery's queries are scored with
    the direct form too (the M-Net as defined, up to fp32 rounding;
    slower on the CPU), and ``log`` says so; the next gallery is checked
    again. With fewer queries than ``check_queries`` in all, every query
    is checked, hence scored with the direct form, and :attr:`last_check`
    says so (``complete`` False). The loops build new scorers for every
    evaluation, so every evaluation is checked. Modes that use no
    decomposition (``'euclid'``, ``topk``, ``method='direct'``) skip it.

    With ``topk`` the distances depend on the whole gallery given (see
    :attr:`gallery_dependent`): a metric evaluating several galleries
    (splits, trials) scores each one on its own.

    Args:
        weight, bias, out_weight, out_bias: The folded M-Net, as in
            :func:`~.mnet_logits.mnet_pair_logits`.
        options: The distance options (:class:`PairDistanceOptions`);
            keyword fields of the same names override them.
        tail: Deeper M-Nets, as in
            :func:`~.mnet_logits.mnet_pair_logits`.
        check_queries: Queries per gallery on which the decomposition is
            checked against the direct form; 0 turns the check off.
        max_logit_error: The largest max |dz| that keeps the decomposed
            form.
        log: Called with each check's message (e.g. mmengine's
            ``print_log``); None keeps the messages in
            :attr:`last_check` only.
        mode: Deprecated alias of ``distance`` (one release).
        **option_fields: ``distance``, ``fuse_beta``, ``topk``,
            ``method``, ``memory_budget_mb``, ``device``
            (:class:`PairDistanceOptions`).
    """

    def __init__(self,
                 weight: ArrayLike,
                 bias: ArrayLike,
                 out_weight: Optional[ArrayLike],
                 out_bias: Optional[ScalarLike],
                 options: Optional[PairDistanceOptions] = None,
                 *,
                 tail: Optional[MNetTail] = None,
                 check_queries: int = DEFAULT_CHECK_QUERIES,
                 max_logit_error: float = DEFAULT_MAX_LOGIT_ERROR,
                 log: Optional[Callable[[str], None]] = None,
                 mode: Optional[str] = None,
                 **option_fields) -> None:
        self.options = PairDistanceOptions.build('MNetPairScorer', options,
                                                 mode, **option_fields)
        if isinstance(check_queries, bool) or not isinstance(
                check_queries, int) or check_queries < 0:
            raise ValueError('check_queries must be an int >= 0, got '
                             f'{check_queries!r}')
        if not max_logit_error > 0:
            raise ValueError('max_logit_error must be > 0, got '
                             f'{max_logit_error!r}')
        self.weight = to_tensor(weight).detach().float()
        self.bias = to_tensor(bias).detach().float()
        self.out_weight = (None if out_weight is None else
                           to_tensor(out_weight).detach().float())
        self.out_bias = (
            out_bias.detach().float()
            if isinstance(out_bias, torch.Tensor) else out_bias)
        self.tail = tail
        self.check_queries = check_queries
        self.max_logit_error = float(max_logit_error)
        self.log = log
        #: The last check of the decomposition: ``max_abs_error``,
        #: ``num_queries`` (checked so far), ``num_gallery``, ``complete``
        #: (all ``check_queries`` checked), ``method`` (the form of the
        #: gallery's unchecked queries; ``'direct'`` until complete) and
        #: ``message``; None before the first.
        self.last_check: Optional[dict] = None
        self._check_count = 0
        self._check_error = 0.0
        self._cache_key = None
        self._cache_ref = None
        self._cache_copy = None
        self._gallery_term = None
        self._checked = False
        self._gallery_method = self.options.method

    @property
    def gallery_dependent(self) -> bool:
        """Whether a pair's distance depends on the rest of the gallery
        (``topk``; see :attr:`PairDistanceOptions.gallery_dependent`).
        Metrics read it: a scorer without the attribute is a pair score.
        """
        return self.options.gallery_dependent

    # The options, read as before they were gathered (one release).
    distance = property(lambda self: self.options.distance)
    fuse_beta = property(lambda self: self.options.fuse_beta)
    topk = property(lambda self: self.options.topk)
    method = property(lambda self: self.options.method)
    memory_budget_mb = property(lambda self: self.options.memory_budget_mb)
    device = property(lambda self: self.options.device)

    @property
    def _mnet(self) -> tuple:
        """The folded M-Net, positionally: weight, bias, out layer."""
        return self.weight, self.bias, self.out_weight, self.out_bias

    @staticmethod
    def _key(gallery: torch.Tensor, device: torch.device) -> tuple:
        return (gallery.data_ptr(), tuple(gallery.shape),
                tuple(gallery.stride()), gallery.dtype, gallery.device,
                gallery._version, device)

    def _needs_gallery_term(self) -> bool:
        return self.options.needs_gallery_term

    def _is_cached(self, gallery: ArrayLike, tensor: torch.Tensor,
                   key: tuple) -> bool:
        """Whether ``W g^2`` of this very object, unchanged, is cached."""
        cached = None if self._cache_ref is None else self._cache_ref()
        if cached is not gallery or key != self._cache_key:
            return False
        # No version counter tells an in-place change of a numpy array:
        # it is compared with the copy taken when it was cached.
        return self._cache_copy is None or torch.equal(tensor,
                                                       self._cache_copy)

    def set_gallery(self, gallery: ArrayLike) -> None:
        """Precompute and cache ``W g^2`` (H, G) for ``gallery``.

        The cache is kept for the object given (held by a weak reference:
        a freed gallery is never mistaken for a new one at its address)
        while its storage, shape, device and version counter stay the
        same; a gallery that is not a tensor (a numpy array, whose
        in-place changes no version counter tells) also while it equals a
        copy taken when it was cached. A gallery that cannot be weakly
        referenced (a list) is not cached.
        """
        source = gallery
        gallery = to_tensor(gallery)
        device = (
            torch.device(self.device)
            if self.device is not None else gallery.device)
        key = self._key(gallery, device)
        if self._is_cached(source, gallery, key):
            return
        # free the old term first; the new gallery is checked again
        self._gallery_term = self._cache_ref = self._cache_key = None
        self._cache_copy = None
        self._checked = False
        self._check_count, self._check_error = 0, 0.0
        weight = self.weight.to(device)
        if gallery.ndim != 2 or gallery.shape[1] != weight.shape[1]:
            raise ValueError(f'gallery must have shape (G, '
                             f'{weight.shape[1]}), got '
                             f'{tuple(gallery.shape)}')
        self._gallery_term = mnet_gallery_term(
            gallery.to(device=device, dtype=torch.float32), weight)
        self._cache_key = key
        try:
            self._cache_ref = weakref.ref(source)
        except TypeError:
            self._cache_ref = None
        if self._cache_ref is not None and not isinstance(
                source, torch.Tensor):
            self._cache_copy = gallery.clone()

    def __call__(self, query_chunk: torch.Tensor,
                 gallery: torch.Tensor) -> torch.Tensor:
        """Distances (Qc, G) of a query chunk against the gallery."""
        if self._needs_gallery_term():
            self.set_gallery(gallery)  # a new gallery is checked again
            if self.check_queries and not self._checked:
                return self._score_checking(query_chunk, gallery)
        return self._score(query_chunk, gallery)

    def _score(self, query_chunk: torch.Tensor,
               gallery: torch.Tensor) -> torch.Tensor:
        """Distances by the form chosen for this gallery."""
        gallery_term = None
        options = self.options
        if self._needs_gallery_term():
            self.set_gallery(gallery)
            if self._gallery_method != options.method:
                options = dataclasses.replace(
                    options, method=self._gallery_method)
            if options.method == 'decomposed':
                gallery_term = self._gallery_term
        return mnet_distances(
            query_chunk,
            gallery,
            *self._mnet,
            options,
            tail=self.tail,
            gallery_term=gallery_term)

    def _score_checking(self, query_chunk: torch.Tensor,
                        gallery: torch.Tensor) -> torch.Tensor:
        """Distances of a chunk while the gallery's check is incomplete:
        its first unchecked queries are checked and get the direct form's
        distances; once the check is complete, the rest of the chunk gets
        the chosen form's (see the class docstring)."""
        subset = query_chunk[:self.check_queries - self._check_count]
        kwargs = dict(
            memory_budget_mb=self.memory_budget_mb,
            device=self.device,
            tail=self.tail)
        direct = mnet_pair_logits(
            subset, gallery, *self._mnet, method='direct', **kwargs)
        decomposed = mnet_pair_logits(
            subset,
            gallery,
            *self._mnet,
            method='decomposed',
            gallery_term=self._gallery_term,
            **kwargs)
        if direct.numel():
            error = (direct - decomposed).abs().max().item()
            # NaN is kept: it falls back
            if not error <= self._check_error or error != error:
                self._check_error = error
        del decomposed
        self._check_count += len(subset)
        self._record_check(len(gallery))
        if self.distance == 'mnet':
            checked = direct.neg_()
        else:
            checked = fuse_distances(subset, gallery, direct, self.fuse_beta)
        rest = query_chunk[len(subset):]
        if not len(rest):
            return checked
        return torch.cat([checked, self._score(rest, gallery)])

    def _record_check(self, num_gallery: int) -> None:
        """Update :attr:`last_check`; choose the form and log once all
        ``check_queries`` queries are checked."""
        error = self._check_error
        complete = self._check_count >= self.check_queries
        method = 'direct'
        if not complete:
            verdict = (f'{self._check_count} of {self.check_queries} '
                       'queries checked so far, scored with the direct form')
        elif not error <= self.max_logit_error:  # NaN falls back too
            verdict = (f'exceeds the bound {self.max_logit_error:.1e}: '
                       'this gallery is scored with the direct form')
        else:
            method = 'decomposed'
            verdict = f'within the bound {self.max_logit_error:.1e}'
        message = (f'M-Net pair scoring ({self.distance}): decomposed vs '
                   f'direct logits on {self._check_count} queries x '
                   f'{num_gallery} gallery items: max |dz| = {error:.2e}, '
                   f'{verdict}')
        self.last_check = dict(
            max_abs_error=error,
            num_queries=self._check_count,
            num_gallery=num_gallery,
            complete=complete,
            method=method,
            message=message)
        if complete:
            self._gallery_method = method
            self._checked = True
            if self.log is not None:
                self.log(message)


def make_mnet_scorer(weight: ArrayLike,
                     bias: ArrayLike,
                     out_weight: Optional[ArrayLike],
                     out_bias: Optional[ScalarLike],
                     options: Optional[PairDistanceOptions] = None,
                     *,
                     gallery: Optional[ArrayLike] = None,
                     mode: Optional[str] = None,
                     **scorer_kwargs) -> MNetPairScorer:
    """Build an :class:`MNetPairScorer` for ``evaluate_features``.

    Args:
        weight, bias, out_weight, out_bias, options: See
            :class:`MNetPairScorer`.
        gallery: Optional gallery (G, D) whose ``W g^2`` term is
            precomputed now. It is only reused when the scorer is later
            called with this same tensor (for ``evaluate_features``, pass
            the gallery it will use: on ``device``, normalised if
            ``normalize=True``); otherwise it is recomputed once.
        mode: Deprecated alias of ``distance`` (one release).
        **scorer_kwargs: The other keyword arguments of
            :class:`MNetPairScorer` (``tail``, ``check_queries``,
            ``max_logit_error``, ``log``) and the fields of
            :class:`PairDistanceOptions`.

    Returns:
        MNetPairScorer: ``(query_chunk (Qc, D), gallery (G, D)) ->
        distances (Qc, G)``.
    """
    if mode is not None:
        options = PairDistanceOptions.build('make_mnet_scorer', options, mode)
    scorer = MNetPairScorer(weight, bias, out_weight, out_bias, options,
                            **scorer_kwargs)
    if gallery is not None and scorer._needs_gallery_term():
        scorer.set_gallery(gallery)
    return scorer


__all__ = [
    'mnet_distances', 'MNetPairScorer', 'make_mnet_scorer',
    'PairDistanceOptions', 'PAIR_DISTANCE_MODES', 'DEFAULT_MAX_LOGIT_ERROR',
    'DEFAULT_CHECK_QUERIES', 'check_fuse_beta'
]
