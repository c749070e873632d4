"""Query-gallery distances computed in exact fp32.

The tie structure of a distance matrix decides ranks under every tie
policy, so distances are always computed in true fp32: TF32 and autocast
would round the matmul differently from run to run and device to device.
"""
import ctypes
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from mmreid.utils.deprecation import renamed_keyword

ArrayLike = Union[np.ndarray, torch.Tensor]

DISTANCE_METRICS = ('euclidean', 'sqeuclidean', 'cosine')


def _load_malloc_trim():
    try:
        return ctypes.CDLL('libc.so.6').malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


_MALLOC_TRIM = _load_malloc_trim()


def release_freed_memory() -> None:
    """Give memory freed by earlier chunks back to the system (glibc).

    Per-chunk buffers of a few MB each land on glibc's heap once its dynamic
    mmap threshold has grown; the heap then fragments and, on an
    MSMT17-sized evaluation, resident memory grew by 7 GB that was never
    returned. A trim costs the next chunks fresh page faults (a trim after
    every chunk slows a Market-sized evaluation down), so callers trim every
    few hundred MB of processed distances rather than after each chunk.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def to_tensor(value: ArrayLike) -> torch.Tensor:
    """Convert an array-like to a tensor without copying where possible.

    Args:
        value: A numpy array, a tensor or a (nested) sequence.

    Returns:
        torch.Tensor: The same data; tensors are returned unchanged, but
        detached from autograd (features straight from a model in
        training mode): evaluation takes no gradient, and NumPy cannot
        read a tensor that requires one.
    """
    if isinstance(value, torch.Tensor):
        return value.detach() if value.requires_grad else value
    if isinstance(value, np.ndarray):
        # torch warns on read-only arrays (np.load with mmap_mode='r'),
        # and writing through the view would be undefined anyway; it
        # cannot view an array with a negative stride (feats[::-1]).
        if not value.flags.writeable or any(s < 0 for s in value.strides):
            value = value.copy()
        return torch.from_numpy(value)
    return torch.as_tensor(np.asarray(value))


@contextmanager
def exact_fp32_matmul(device: torch.device) -> Iterator[None]:
    """Run matmuls on ``device`` in true fp32 (no TF32, no bf16, no
    autocast).

    On CUDA the TF32 flag is saved and restored. Recent torch raises when
    the legacy ``allow_tf32`` flag is read after the new ``fp32_precision``
    API was used, so that case falls back to the new API. On the CPU,
    ``torch.set_float32_matmul_precision('medium')`` (or ``'high'``) makes
    oneDNN compute fp32 matmuls in bf16 (or TF32); oneDNN's matmul
    precision is set to ``'ieee'`` here and restored after.

    Args:
        device: The device the matmul runs on.
    """
    if device.type != 'cuda':
        mkldnn = getattr(torch.backends, 'mkldnn', None)
        mkldnn_matmul = getattr(mkldnn, 'matmul', None)
        previous = getattr(mkldnn_matmul, 'fp32_precision', None)
        if previous is not None:
            mkldnn_matmul.fp32_precision = 'ieee'
        try:
            with torch.autocast(device.type, enabled=False):
                yield
        finally:
            if previous is not None:
                mkldnn_matmul.fp32_precision = previous
        return
    matmul = torch.backends.cuda.matmul
    try:
        previous = matmul.allow_tf32
        use_legacy = True
    except RuntimeError:
        previous = matmul.fp32_precision
        use_legacy = False
    try:
        if use_legacy:
            matmul.allow_tf32 = False
        else:
            matmul.fp32_precision = 'ieee'
        with torch.autocast('cuda', enabled=False):
            yield
    finally:
        if use_legacy:
            matmul.allow_tf32 = previous
        else:
            matmul.fp32_precision = previous


#: Fewest rows a distance GEMM is given (smaller chunks are padded with
#: zeros): BLAS libraries compute a few rows with other kernels (MKL on
#: this project's CPUs below about 16 rows), whose sums round
#: differently, so a query's distances would depend on the chunk it falls
#: in (the last, short chunk; a small ``memory_budget_mb``). A gallery of
#: fewer items is padded likewise: with 5-11 columns two identical gallery
#: rows got distances 1 ulp apart, and their tie was lost.
MIN_GEMM_ROWS = 64


def pad_gemm_rows(rows: torch.Tensor) -> torch.Tensor:
    """``rows`` (N, D) with zero rows appended up to :data:`MIN_GEMM_ROWS`
    (unchanged when it has that many, or none): the left operand of a GEMM
    whose first N output rows then do not depend on N. Slice the product
    with ``[:N]``."""
    num = len(rows)
    if num >= MIN_GEMM_ROWS or num == 0:
        return rows
    padding = rows.new_zeros(MIN_GEMM_ROWS - num, *rows.shape[1:])
    return torch.cat([rows, padding])


def _rows_matmul(query: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``query @ other`` with at least :data:`MIN_GEMM_ROWS` rows in the
    GEMM (:func:`pad_gemm_rows`)."""
    return (pad_gemm_rows(query) @ other)[:len(query)]


#: The ``eps`` of :func:`torch.nn.functional.normalize`.
NORMALIZE_EPS = 1e-12


def check_normalizable(feats: torch.Tensor,
                       role: str,
                       names: Optional[Sequence[str]] = None) -> None:
    """Refuse features that L2 normalisation cannot give a direction.

    The cosine of a zero vector is 0/0. ``F.normalize`` turns a feature of
    norm <= :data:`NORMALIZE_EPS` (a blank image through ReLU and pooling,
    a dead model output) into zeros, which lie at the same distance from
    every other feature (1 in cosine distance; 1 up to the rounding of
    each norm in Euclidean distance of unit features): its ranking, and
    the R1 and mAP it adds, would be decided by the gallery's order or by
    rounding, not by the model.

    Args:
        feats: Features, shape (N, D).
        role: What they are, for the message (``'query'``, ``'gallery'``).
        names: The samples' names (image paths), N of them, to name the
            first refused one.

    Raises:
        ValueError: A feature's norm is <= :data:`NORMALIZE_EPS`; names the
            first (its index and name) and how many there are.
    """
    if feats.dim() != 2 or not len(feats):
        return
    norm = torch.linalg.vector_norm(feats.float(), dim=1)
    bad = torch.nonzero(norm <= NORMALIZE_EPS).flatten()
    if not len(bad):
        return
    first = int(bad[0])
    named = f' ({names[first]!r})' if names is not None else ''
    more = (f', and {len(bad) - 1} more {role} features'
            if len(bad) > 1 else '')
    raise ValueError(
        f'{role} feature {first}{named} has norm {float(norm[first]):.1e} '
        f'(<= {NORMALIZE_EPS}){more}: a normalised distance (cosine, '
        'normalize=True, query expansion) gives it no direction (0/0), so '
        'it would lie at the same distance from every feature and its '
        'ranking would follow the gallery order. Check what the model '
        'gives that image (a blank image, a dead feature), or rank with a '
        'distance that does not normalise')


#: Rows whose squares are summed at a time: a bounded temporary.
SQUARED_NORM_ROWS = 4096


def squared_norms(feats: torch.Tensor) -> torch.Tensor:
    """Row-wise sums of squares, |x|^2.

    Summed as squares, not as ``vector_norm(x) ** 2``: the square root
    rounds, and squaring it again leaves truly equal distances unequal
    (integer features then lose their exact ties, which the tie policy
    exists to order). The square of each block of rows is a temporary of
    at most ``SQUARED_NORM_ROWS`` rows.

    Args:
        feats: Features, shape (N, D).

    Returns:
        torch.Tensor: Shape (N,), the dtype of ``feats``.
    """
    parts = [(block * block).sum(dim=1)
             for block in feats.split(SQUARED_NORM_ROWS)]
    return torch.cat(parts) if parts else feats.new_zeros(0)


class GalleryDistance:
    """Distances from query chunks to one gallery, prepared once.

    The gallery's share of the work (its norms) is done at construction,
    not per chunk, and the gallery is never copied: normalisation is
    applied as a per-column scale of the product ``q @ g.T``. Redoing it
    per chunk would copy the whole gallery for every 40 queries of an
    MSMT17-sized evaluation. Only the (Qc, G) output is allocated per
    call (a non-fp32 gallery is converted to fp32 once).

    Args:
        gallery_feats: Gallery features, shape (G, D).
        distance: ``'euclidean'``, ``'sqeuclidean'`` or ``'cosine'``
            (``metric=`` is its deprecated alias).
        normalize: L2-normalise the features first.
    """

    @renamed_keyword('metric', 'distance')
    def __init__(self,
                 gallery_feats: ArrayLike,
                 distance: str = 'euclidean',
                 normalize: bool = False) -> None:
        if distance not in DISTANCE_METRICS:
            raise ValueError(f'distance must be one of {DISTANCE_METRICS}, '
                             f'got {distance!r}')
        gallery = to_tensor(gallery_feats).float()
        if gallery.ndim != 2:
            raise ValueError('features must be 2-D (num_samples, dim), got '
                             f'{tuple(gallery.shape)}')
        self.distance = distance
        self.normalize = normalize or distance == 'cosine'
        self.num_gallery = len(gallery)
        # The columns of a GEMM of a few columns round differently
        # (pad_gemm_rows): a small gallery is padded, its product sliced.
        self.gallery_t = pad_gemm_rows(gallery).t()
        self.g_scale = None
        if self.normalize:
            check_normalizable(gallery, 'gallery')
            norm = torch.linalg.vector_norm(gallery, dim=1)
            # F.normalize's rule: x / max(|x|, eps).
            self.g_scale = 1 / norm.clamp(min=NORMALIZE_EPS)
            self.g_sq = (norm * self.g_scale).pow(2)
        else:
            self.g_sq = squared_norms(gallery)

    def __call__(self, query_feats: ArrayLike) -> torch.Tensor:
        """Distances of some queries to the gallery.

        Args:
            query_feats: Query features, shape (Qc, D), on the gallery's
                device.

        Returns:
            torch.Tensor: fp32 distances, shape (Qc, G).
        """
        query = to_tensor(query_feats).float()
        if query.ndim != 2:
            raise ValueError('features must be 2-D (num_samples, dim), got '
                             f'{tuple(query.shape)}')
        if query.shape[1] != self.gallery_t.shape[0]:
            raise ValueError(f'query dim {query.shape[1]} != gallery dim '
                             f'{self.gallery_t.shape[0]}')
        if query.device != self.gallery_t.device:
            raise ValueError(f'query features are on {query.device}, '
                             f'gallery features on {self.gallery_t.device}')
        with exact_fp32_matmul(query.device):
            if self.normalize:
                check_normalizable(query, 'query')
                query = F.normalize(query, dim=1, eps=NORMALIZE_EPS)
            dist = _rows_matmul(query, self.gallery_t)
            if dist.shape[1] != self.num_gallery:
                dist = dist[:, :self.num_gallery].contiguous()
        if self.g_scale is not None:
            dist.mul_(self.g_scale)
        if self.distance == 'cosine':
            # 1 - cos lies in [0, 2]; rounding may leave it at -1e-7 for
            # identical features, which is harmless for ranking.
            return dist.neg_().add_(1)
        # |q|^2 + |g|^2 - 2 q.g, in place: no (Qc, G) temporaries.
        q_sq = squared_norms(query)[:, None]
        dist.mul_(-2).add_(q_sq).add_(self.g_sq).clamp_(min=0)
        if self.distance == 'euclidean':
            dist.sqrt_()
        return dist


@renamed_keyword('metric', 'distance')
def compute_distance(query_feats: ArrayLike,
                     gallery_feats: ArrayLike,
                     distance: str = 'euclidean',
                     normalize: bool = False) -> torch.Tensor:
    """Distances between query and gallery features (smaller = closer).

    The squared Euclidean distance uses the expanded form
    ``|q|^2 + |g|^2 - 2 q.g`` (one matmul) clamped at 0, since rounding can
    make it slightly negative for near-identical features; ``euclidean``
    is its square root and ``cosine`` is ``1 - cos(q, g)``. To score many
    query chunks against one gallery, build a :class:`GalleryDistance`
    once instead.

    Args:
        query_feats: Query features, shape (Q, D).
        gallery_feats: Gallery features, shape (G, D), on the same device.
        distance: ``'euclidean'``, ``'sqeuclidean'`` or ``'cosine'``
            (``metric=`` is its deprecated alias).
        normalize: L2-normalise the features first.

    Returns:
        torch.Tensor: fp32 distances, shape (Q, G), on the features' device.
    """
    return GalleryDistance(gallery_feats, distance, normalize)(query_feats)
