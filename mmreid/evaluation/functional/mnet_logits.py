"""Exact, memory-bounded M-Net logits of every query-gallery pair.

At evaluation the M-Net of GMN scores a query-gallery pair from the
element-wise squared difference of their features::

    f_sp = (q - g) ** 2                       # (D,)
    h = relu(weight @ f_sp + bias)            # (H,), BatchNorm folded in
    z = out_weight @ h + out_bias             # logit, larger = more similar

``weight = diag(bn_scale) @ W1`` and ``bias`` is the BatchNorm shift, so the
first Linear (no bias) and the eval-mode BatchNorm1d become one affine map
(:func:`fold_mnet_batchnorm`, the one fold of the code base).

Two exact ways to score all Q x G pairs are provided:

- ``'direct'``: builds the (Qc * Gc, D) squared differences of a block of
  pairs and runs the layers as GEMMs (the naive reference).
- ``'decomposed'``: uses ``W (q - g)^2 = W q^2 + W g^2 - 2 W (q * g)``.
  ``W q^2`` (per query) and ``W g^2`` (per gallery item) are computed once
  and the cross term of a query chunk is ONE GEMM ``(Qc * H, D) @ (D, G)``
  whose row block of query ``q`` is ``W diag(q)``. The (Qc * G, D) tensor
  is never built. The FLOPs are the same (``2 Q G D H`` for the first
  layer) but the GEMM has a large inner dimension and no elementwise
  pre-pass over D, so it runs near the machine's matmul ceiling.

The decomposition cancels large terms when ``q ~ g`` (the top of the
ranking): its absolute error grows with ``W q^2``, i.e. with ``|q|^2``, not
with ``W (q - g)^2``. It always runs in fp32 with TF32 and autocast off.
On L2-normalised features its error against the direct form is far below
any logit gap that orders a ranking; on un-normalised features with a
large common component (pre-BN, ``pair_norm='raw'``) it is not (issue 13
reports 1.4e-4 and a top-10 agreement of 99.4 % on such features).
:func:`max_abs_logit_error` measures it on any query subset; the scorer
of :mod:`.mnet_distance` checks it on every gallery it scores.

This module holds the kernels only; which distance is built from the
logits (modes, top-k rerank, the caching scorer) is :mod:`.mnet_distance`.
"""
import math
from typing import Callable, Optional, Tuple, Union

import torch

from .distance import (MIN_GEMM_ROWS, ArrayLike, exact_fp32_matmul,
                       pad_gemm_rows, to_tensor)
from .rank import DEFAULT_MEMORY_BUDGET_MB, DeviceLike

# tail(hidden (N, H)) -> logits (N,) or (N, 1)
MNetTail = Callable[[torch.Tensor], torch.Tensor]
ScalarLike = Union[float, torch.Tensor]

PAIR_SCORING_METHODS = ('direct', 'decomposed')
#: Rows of the output layer's GEMM in both forms: ``out_weight`` and
#: zero rows. As a one-row product (a GEMV) it rounds the columns of
#: its edge tile differently, so bit-identical gallery items got different
#: logits and their exact tie was lost; from 4 rows on the GEMM kernel
#: gives every column the same bits (checked on this project's CPUs), at
#: about 1 % of the cross term's time.
OUT_GEMM_ROWS = 4
#: Fewest pairs one GEMM of the pair scoring is given, along the pair
#: dimension (rows of the direct form's first layer, columns of the
#: decomposed form's cross term and of the output layer): BLAS kernels for
#: fewer than about 12 pairs round differently (checked on this project's
#: CPUs), so two bit-identical gallery items scored in blocks of different
#: widths lost their exact tie. Smaller galleries and blocks are padded
#: with zero items, whose logits are dropped; with a gallery split into
#: blocks, every block has the same width (the last one is shifted back
#: to end at the gallery's end), so the GEMMs of a query chunk have one
#: shape.
MIN_PAIR_GEMM = MIN_GEMM_ROWS
_FP32_BYTES = 4
_MB = 2**20


def fold_mnet_batchnorm(
        linear_weight: torch.Tensor,
        bn: torch.nn.BatchNorm1d) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm1d after a bias-free Linear.

    ``bn(W x) = (s * W) x + t`` with ``s = gamma / sqrt(var + eps)`` and
    ``t = beta - mean * s`` (``gamma = 1``, ``beta = 0`` without affine),
    the same per-channel factors eval-mode ``F.batch_norm`` applies.

    Args:
        linear_weight: First layer weight W1, shape (H, D).
        bn: The BatchNorm1d(H) that follows it (its running statistics
            are used, as in eval mode).

    Returns:
        tuple[Tensor, Tensor]: ``weight = diag(s) @ W1`` (H, D) and
        ``bias = t`` (H,), fp32, detached.

    Raises:
        ValueError: If ``bn`` keeps no running statistics.
    """
    if bn.running_var is None or bn.running_mean is None:
        raise ValueError('bn must track running statistics to be folded')
    var = bn.running_var.detach().float()
    mean = bn.running_mean.detach().float()
    if bn.affine:
        gamma = bn.weight.detach().float()
        beta = bn.bias.detach().float()
    else:
        gamma, beta = torch.ones_like(var), torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + bn.eps)
    shift = beta - mean * scale
    weight = linear_weight.detach().float() * scale.unsqueeze(1)
    return weight, shift


def budget_bytes(memory_budget_mb: float) -> int:
    """``memory_budget_mb`` in bytes; it must be > 0."""
    if not memory_budget_mb > 0:
        raise ValueError(f'memory_budget_mb must be > 0, got '
                         f'{memory_budget_mb}')
    return int(memory_budget_mb * _MB)


def budget_too_small(memory_budget_mb: float, needed_bytes: int,
                     what: str) -> ValueError:
    """The error for a budget below what one unit of ``what`` needs."""
    # Rounded up: the figure named is one the check accepts.
    needed = math.ceil(needed_bytes / _MB * 1000) / 1000
    return ValueError(
        f'memory_budget_mb={memory_budget_mb} is too small for {what}: it '
        f'needs at least {needed:.3f} MB (MiB)')


def prepare_mnet(query: ArrayLike, gallery: ArrayLike, weight: ArrayLike,
                 bias: ArrayLike, out_weight: Optional[ArrayLike],
                 out_bias: Optional[ScalarLike], device: DeviceLike,
                 tail: Optional[MNetTail]) -> tuple:
    """Check shapes and move everything to ``device`` in fp32.

    Returns:
        tuple: ``query``, ``gallery``, ``weight``, ``bias``, ``out_weight``
        (H,) and ``out_bias`` (0-d) (both None with a ``tail``), and the
        ``device``.
    """
    query = to_tensor(query)
    gallery = to_tensor(gallery)
    device = torch.device(device) if device is not None else query.device
    query = query.to(device=device, dtype=torch.float32)
    gallery = gallery.to(device=device, dtype=torch.float32)
    weight = to_tensor(weight).to(device=device, dtype=torch.float32)
    bias = to_tensor(bias).to(device=device, dtype=torch.float32)
    if query.ndim != 2 or gallery.ndim != 2:
        raise ValueError('features must be 2-D (num_samples, dim), got '
                         f'{tuple(query.shape)} and {tuple(gallery.shape)}')
    if weight.ndim != 2:
        raise ValueError(f'weight must be 2-D (hidden, dim), got shape '
                         f'{tuple(weight.shape)}')
    hidden, dim = weight.shape
    if query.shape[1] != dim or gallery.shape[1] != dim:
        raise ValueError(f'weight has shape {tuple(weight.shape)} (H, D) '
                         f'but the features have dims {query.shape[1]} '
                         f'(query) and {gallery.shape[1]} (gallery)')
    bias = bias.reshape(-1)
    if bias.numel() != hidden:
        raise ValueError(f'bias must have H={hidden} elements, got shape '
                         f'{tuple(bias.shape)}')
    if tail is None:
        if out_weight is None or out_bias is None:
            raise ValueError('out_weight and out_bias are required when no '
                             'tail is given')
        out_weight = to_tensor(out_weight).to(
            device=device, dtype=torch.float32).reshape(-1)
        if out_weight.numel() != hidden:
            raise ValueError(f'out_weight must have H={hidden} elements, '
                             f'got shape {tuple(out_weight.shape)}')
        out_bias = torch.as_tensor(
            out_bias, dtype=torch.float32, device=device).reshape(-1)
        if out_bias.numel() != 1:
            raise ValueError('out_bias must be a scalar, got shape '
                             f'{tuple(out_bias.shape)}')
        out_bias = out_bias[0]
    elif not callable(tail):
        raise TypeError(f'tail must be callable, got {type(tail)}')
    return query, gallery, weight, bias, out_weight, out_bias, device


def _out_rows(out_weight: torch.Tensor) -> torch.Tensor:
    """``out_weight`` (H,) and zero rows, (:data:`OUT_GEMM_ROWS`, H): the
    output layer as a GEMM, not a GEMV."""
    rows = out_weight.new_zeros(OUT_GEMM_ROWS, out_weight.numel())
    rows[0] = out_weight
    return rows


def _apply_tail(hidden: torch.Tensor, out_weight: Optional[torch.Tensor],
                out_bias: Optional[torch.Tensor],
                tail: Optional[MNetTail]) -> torch.Tensor:
    """Logits (N,) of hidden activations (N, H)."""
    if tail is None:
        # With several threads torch.mv also rounds the rows at a thread's
        # split differently: bit-identical pairs lost their exact tie.
        return torch.mm(_out_rows(out_weight), hidden.t())[0].add_(out_bias)
    logits = tail(hidden)
    if logits.ndim == 2 and logits.shape[1] == 1:
        logits = logits[:, 0]
    if tuple(logits.shape) != (len(hidden), ):
        raise ValueError(f'tail must map (N, H) to (N,) or (N, 1), got '
                         f'{tuple(logits.shape)} for N={len(hidden)}')
    return logits.float()


def squared_difference_logits(diff: torch.Tensor, weight: torch.Tensor,
                              bias: torch.Tensor,
                              out_weight: Optional[torch.Tensor],
                              out_bias: Optional[torch.Tensor],
                              tail: Optional[MNetTail]) -> torch.Tensor:
    """Logits (N,) of explicit pairs from their squared differences.

    Args:
        diff: ``(q - g) ** 2`` of N pairs, shape (N, D), fp32. Pass it
            without keeping a reference: it is freed once the hidden
            layer is computed.
        weight, bias, out_weight, out_bias, tail: The folded M-Net, on
            ``diff``'s device, as :func:`prepare_mnet` returns them.

    Returns:
        torch.Tensor: fp32 logits, shape (N,).
    """
    num = len(diff)
    # Fewer pairs are padded (MIN_PAIR_GEMM): their bits then do not
    # depend on how many pairs share the GEMM.
    hidden = torch.addmm(bias, pad_gemm_rows(diff), weight.t()).relu_()
    del diff
    return _apply_tail(hidden, out_weight, out_bias, tail)[:num]


def fixed_blocks(total: int, width: int):
    """``(start, stop, new)`` of blocks of ``width`` items covering
    ``range(total)``: every block has ``min(width, total)`` items, the last
    one shifted back to end at ``total``, and its items from ``new`` on
    are the ones no earlier block covered. A GEMM per block then has one
    shape for the whole scoring (its kernel, hence its rounding, is the
    same for every item), at the cost of scoring at most ``width - 1``
    items twice.

    Args:
        total: Number of items.
        width: Items per block, >= 1.

    Yields:
        tuple[int, int, int]: ``start <= new < stop``; the block is
        ``[start, stop)`` and its results from ``new`` on are kept.
    """
    width = min(width, total)
    for new in range(0, total, width):
        start = min(new, total - width)
        yield start, start + width, new


def _pad_items(items: torch.Tensor, num: int) -> torch.Tensor:
    """``items`` (N, ...) with zero items appended up to ``num``."""
    if len(items) >= num:
        return items
    return torch.cat(
        [items, items.new_zeros(num - len(items), *items.shape[1:])])


def _direct_block(query: torch.Tensor, gallery: torch.Tensor,
                  weight: torch.Tensor, bias: torch.Tensor,
                  out_weight: Optional[torch.Tensor],
                  out_bias: Optional[torch.Tensor],
                  tail: Optional[MNetTail]) -> torch.Tensor:
    """Direct logits (Qc, Gc) of a block of pairs."""
    # No reference to the (Qc * Gc, D) differences is kept here, so they
    # are freed as soon as the hidden layer is computed.
    logits = squared_difference_logits(
        (query.unsqueeze(1) - gallery.unsqueeze(0)).pow_(2).view(
            -1, query.shape[1]), weight, bias, out_weight, out_bias, tail)
    return logits.view(len(query), len(gallery))


def _direct_logits(query, gallery, weight, bias, out_weight, out_bias,
                   memory_budget_mb, tail, out):
    """The naive reference, in blocks of (Qc * Gc) pairs of one shape."""
    hidden, dim = weight.shape
    num_query, num_gallery = len(query), len(gallery)
    budget = budget_bytes(memory_budget_mb)
    # squared differences (D) + hidden activations (H) + logit per pair
    pair_bytes = (dim + hidden + 1) * _FP32_BYTES
    if budget < MIN_PAIR_GEMM * pair_bytes:
        raise budget_too_small(
            memory_budget_mb, MIN_PAIR_GEMM * pair_bytes,
            f'{MIN_PAIR_GEMM} pairs of the direct M-Net scoring (fewer '
            'are padded)')
    gallery_block = min(num_gallery, budget // pair_bytes)
    query_block = min(num_query, budget // (gallery_block * pair_bytes))
    # Gallery blocks of one width (fixed_blocks): a query's pairs all go
    # through GEMMs of one shape.
    for q_start in range(0, num_query, query_block):
        q_chunk = query[q_start:q_start + query_block]
        q_stop = q_start + len(q_chunk)
        for g_start, g_stop, g_new in fixed_blocks(num_gallery, gallery_block):
            logits = _direct_block(q_chunk, gallery[g_start:g_stop], weight,
                                   bias, out_weight, out_bias, tail)
            out[q_start:q_stop, g_new:g_stop] = logits[:, g_new - g_start:]
    return out


def decomposed_chunk_shape(num_gallery: int,
                           dim: int,
                           hidden: int,
                           memory_budget_mb: float,
                           tail: bool = False) -> Tuple[int, int]:
    """Queries and gallery columns per GEMM of the decomposed scoring.

    A chunk of ``Qc`` queries and ``Gc`` gallery columns holds the left
    operand (Qc * H, D), the hidden buffer (Qc * H, Gc), its (Qc * Gc, H)
    transposed copy and the (Qc, Gc) logits when a ``tail`` is used, else
    the output layer's (Qc, :data:`OUT_GEMM_ROWS`, Gc) product, all fp32.
    A gallery of fewer than :data:`MIN_PAIR_GEMM` items is padded to that
    many columns (its padded copy and gallery term are counted too). The
    whole gallery is used per chunk when one query fits (``Gc = G``),
    otherwise the gallery is split for a single query into blocks of ``Gc
    >= MIN_PAIR_GEMM`` columns.

    Args:
        num_gallery: Gallery size G.
        dim: Feature dimension D.
        hidden: Hidden width H.
        memory_budget_mb: Budget in MiB for one chunk's buffers.
        tail: Whether a tail callable needs the transposed copy.

    Returns:
        tuple[int, int]: ``(Qc, Gc)``; ``Gc`` is ``max(G, MIN_PAIR_GEMM)``
        when the gallery is not split.

    Raises:
        ValueError: If one query with :data:`MIN_PAIR_GEMM` gallery columns
            does not fit.
    """
    budget = budget_bytes(memory_budget_mb)
    per_column = 2 * hidden + 1 if tail else hidden + OUT_GEMM_ROWS
    column_bytes = per_column * _FP32_BYTES
    left_bytes = hidden * dim * _FP32_BYTES
    columns = max(num_gallery, MIN_PAIR_GEMM)
    if num_gallery < MIN_PAIR_GEMM:  # the padded gallery and its W g^2
        left_bytes += MIN_PAIR_GEMM * (dim + hidden) * _FP32_BYTES
    needed = left_bytes + column_bytes * MIN_PAIR_GEMM
    if budget < needed:
        raise budget_too_small(
            memory_budget_mb, needed,
            f'one query and {MIN_PAIR_GEMM} gallery columns of the '
            f'decomposed M-Net scoring (H={hidden}, D={dim})')
    per_query = left_bytes + column_bytes * columns
    if budget >= per_query:
        return budget // per_query, columns
    return 1, (budget - left_bytes) // column_bytes


def _decomposed_gallery_term(gallery: torch.Tensor,
                             weight: torch.Tensor) -> torch.Tensor:
    """``W g^2`` of every gallery item, shape (H, G)."""
    # at least MIN_PAIR_GEMM columns: bit-identical items, equal bits
    with exact_fp32_matmul(gallery.device):
        return (weight @ pad_gemm_rows(gallery.pow(2)).t())[:, :len(gallery)]


def mnet_gallery_term(gallery: torch.Tensor,
                      weight: torch.Tensor) -> torch.Tensor:
    """``W g^2`` of every gallery item, shape (H, G), for reuse.

    The gallery-only part of the decomposed form; pass it back as
    ``mnet_pair_logits(gallery_term=...)`` to score several query chunks
    against one gallery.

    Args:
        gallery: Gallery features (G, D), fp32, on the compute device.
        weight: The folded first layer (H, D), on the same device.

    Returns:
        torch.Tensor: Shape (H, G), fp32.
    """
    return _decomposed_gallery_term(gallery, weight)


def _decomposed_logits(query,
                       gallery,
                       weight,
                       bias,
                       out_weight,
                       out_bias,
                       memory_budget_mb,
                       tail,
                       out,
                       gallery_term=None):
    hidden, dim = weight.shape
    num_query, num_gallery = len(query), len(gallery)
    query_block, gallery_block = decomposed_chunk_shape(
        num_gallery, dim, hidden, memory_budget_mb, tail is not None)
    if gallery_term is None:
        gallery_term = _decomposed_gallery_term(gallery, weight)
    if num_gallery < gallery_block:  # a small gallery: MIN_PAIR_GEMM columns
        gallery = _pad_items(gallery, gallery_block)
        gallery_term = _pad_items(gallery_term.t(), gallery_block).t()
    gallery_t = gallery.t()
    # -2 is folded into the left operand: exact (a power of two).
    weight_m2 = weight * -2
    if tail is None:
        out_rows = _out_rows(out_weight)
    # The buffers are reused across chunks: a fresh multi-MB tensor per
    # chunk costs page faults on every first touch.
    left_buf = torch.empty(
        min(query_block, num_query) * hidden * dim,
        dtype=torch.float32,
        device=query.device)
    cross_buf = torch.empty(
        min(query_block, num_query) * hidden * gallery_block,
        dtype=torch.float32,
        device=query.device)
    for q_start in range(0, num_query, query_block):
        q_chunk = query[q_start:q_start + query_block]
        num_q = len(q_chunk)
        q_stop = q_start + num_q
        # W q^2 + b per query: (Qc, H, 1). A short chunk is padded
        # (pad_gemm_rows), so a query's bits do not depend on its chunk.
        query_term = torch.addmm(bias, pad_gemm_rows(q_chunk.pow(2)),
                                 weight.t())[:num_q].unsqueeze(2)
        # row block q of the left operand is -2 W diag(q): (Qc * H, D)
        left = left_buf[:num_q * hidden * dim].view(num_q, hidden, dim)
        torch.mul(weight_m2.unsqueeze(0), q_chunk.unsqueeze(1), out=left)
        left = left.view(-1, dim)
        # gallery blocks of one width (fixed_blocks): every column of a
        # query chunk goes through GEMMs of one shape
        for g_start, g_stop, g_new in fixed_blocks(
                len(gallery), gallery_block):
            cross = cross_buf[:num_q * hidden * gallery_block].view(
                -1, gallery_block)
            torch.mm(left, gallery_t[:, g_start:g_stop], out=cross)
            act = cross.view(num_q, hidden, gallery_block)
            act.add_(query_term).add_(gallery_term[:, g_start:g_stop])
            act.relu_()
            if tail is None:
                # contract over H: (R, H) @ (Qc, H, Gc) -> (Qc, R, Gc),
                # row 0 is out_weight's
                logits = torch.matmul(out_rows, act)[:, 0].add_(out_bias)
            else:
                flat = act.transpose(1, 2).reshape(-1, hidden)
                logits = _apply_tail(flat, None, None, tail).view(num_q, -1)
                del flat
            g_keep = min(g_stop, num_gallery)
            out[q_start:q_stop,
                g_new:g_keep] = logits[:, g_new - g_start:g_keep - g_start]
            del cross, act, logits
    return out


def mnet_pair_logits(
        query: ArrayLike,
        gallery: ArrayLike,
        weight: ArrayLike,
        bias: ArrayLike,
        out_weight: Optional[ArrayLike],
        out_bias: Optional[ScalarLike],
        method: str = 'decomposed',
        memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
        device: DeviceLike = None,
        tail: Optional[MNetTail] = None,
        gallery_term: Optional[torch.Tensor] = None) -> torch.Tensor:
    """M-Net logits of every query-gallery pair, exact and chunked.

    ``method='direct'`` scores blocks of (Qc * Gc) pairs from their
    squared differences: peak extra memory ``Qc * Gc * (D + H + 1) * 4``
    bytes. ``method='decomposed'`` (default) runs one
    ``(Qc * H, D) @ (D, Gc)`` GEMM per query chunk (see the module
    docstring): peak extra memory ``Qc * H * (D + Gc) * 4`` bytes plus the
    (Qc, Gc) logits, and a one-off (H, G) buffer of ``W g^2`` outside the
    budget. Both run in fp32 with TF32 and autocast off; the TF32 flag is
    restored afterwards. The GEMMs of one query chunk have one shape along
    the gallery, at least :data:`MIN_PAIR_GEMM` pairs (gallery blocks of
    one size, :func:`fixed_blocks`; fewer pairs padded), so bit-identical
    gallery items get bit-identical logits and keep their exact tie
    whatever the budget; the budget pays for the padding.

    Args:
        query: Query features, shape (Q, D), any float dtype.
        gallery: Gallery features, shape (G, D).
        weight: First layer with the BatchNorm folded in,
            ``diag(bn_scale) @ W1``, shape (H, D).
        bias: BatchNorm shift, shape (H,).
        out_weight: Output layer weight, shape (H,) or (1, H); unused
            with ``tail``.
        out_bias: Output layer bias, a float or a 1-element tensor;
            unused with ``tail``.
        method: ``'decomposed'`` or ``'direct'``.
        memory_budget_mb: Budget in MiB for one chunk's buffers.
        device: Where to compute; defaults to the query's device.
        tail: Optional callable ``hidden (N, H) -> logits (N,)`` used
            instead of ``out_weight``/``out_bias`` for deeper M-Nets; it
            receives the first layer's ReLU output. With
            ``'decomposed'`` the (Qc, H, Gc) hidden buffer is then copied
            into a (Qc * Gc, H) layout first: one more buffer of that size
            (counted in the budget) and a memory pass, plus the tail's
            own cost.
        gallery_term: Optional precomputed ``weight @ (gallery ** 2).T``,
            shape (H, G), on ``device`` (``'decomposed'`` only), to reuse
            it across query chunks.

    Returns:
        torch.Tensor: fp32 logits, shape (Q, G), larger = more similar.

    Raises:
        ValueError: On bad shapes, an unknown method, or a
            ``memory_budget_mb`` too small for one query (the message gives
            the minimum).
    """
    if method not in PAIR_SCORING_METHODS:
        raise ValueError(f'method must be one of {PAIR_SCORING_METHODS}, '
                         f'got {method!r}')
    (query, gallery, weight, bias, out_weight, out_bias,
     device) = prepare_mnet(query, gallery, weight, bias, out_weight, out_bias,
                            device, tail)
    out = torch.empty(
        len(query), len(gallery), dtype=torch.float32, device=device)
    if len(query) == 0 or len(gallery) == 0:
        return out
    with exact_fp32_matmul(device), torch.no_grad():
        if method == 'direct':
            return _direct_logits(query, gallery, weight, bias, out_weight,
                                  out_bias, memory_budget_mb, tail, out)
        if gallery_term is not None:
            expected = (weight.shape[0], len(gallery))
            if tuple(gallery_term.shape) != expected:
                raise ValueError(f'gallery_term must have shape {expected}, '
                                 f'got {tuple(gallery_term.shape)}')
            gallery_term = gallery_term.to(device=device, dtype=torch.float32)
        return _decomposed_logits(query, gallery, weight, bias, out_weight,
                                  out_bias, memory_budget_mb, tail, out,
                                  gallery_term)


def max_abs_logit_error(query: ArrayLike,
                        gallery: ArrayLike,
                        weight: ArrayLike,
                        bias: ArrayLike,
                        out_weight: Optional[ArrayLike],
                        out_bias: Optional[ScalarLike],
                        memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB,
                        device: DeviceLike = None,
                        tail: Optional[MNetTail] = None) -> float:
    """Max |z_direct - z_decomposed| over the given queries (spec 8.3).

    Pass a query subset (e.g. 32 queries) against the full gallery to
    validate the decomposition on real features at low cost.

    Args:
        query: Query features (a subset), shape (Qs, D).
        gallery: Gallery features, shape (G, D).
        weight, bias, out_weight, out_bias, memory_budget_mb, device,
        tail: As in :func:`mnet_pair_logits`.

    Returns:
        float: The largest absolute logit difference (0 if empty).
    """
    args = (query, gallery, weight, bias, out_weight, out_bias)
    kwargs = dict(memory_budget_mb=memory_budget_mb, device=device, tail=tail)
    direct = mnet_pair_logits(*args, method='direct', **kwargs)
    decomposed = mnet_pair_logits(*args, method='decomposed', **kwargs)
    if direct.numel() == 0:
        return 0.0
    return (direct - decomposed).abs().max().item()


__all__ = [
    'mnet_pair_logits', 'max_abs_logit_error', 'fold_mnet_batchnorm',
    'decomposed_chunk_shape', 'mnet_gallery_term', 'PAIR_SCORING_METHODS',
    'MIN_PAIR_GEMM', 'fixed_blocks'
]
