"""Count, per query, the gallery items below each of its positives.

The compiled fast path of :class:`~.rank.RankAccumulator` on the CPU. For
a query with sorted positive distances ``p_1 <= ... <= p_m``, the ranks
need, for each ``j``, how many negatives lie strictly below ``p_j``
(``lt``), at or below it (``le``), and, for the ``'stable'`` tie policy,
how many equal ``p_j`` with a lower gallery index. One vectorised pass
over the row per positive counts them for every item, whatever the
model's strength: the cost is ``O(G * m)`` per query with SIMD compares,
about 1-2 ns per distance for Market's ~15 positives on one core, and no
item is placed, searched or sorted. Queries with very many positives
switch to a sort of the row (``O(G log G)``). De-duplicated CMC
(SYSU-MM01, LLCM) counts the distinct pids before the first positive in
one more pass. Items to ignore are passed as NaN, which no comparison
counts.

The kernels are compiled by numba, an optional dependency (a wheel on
every platform). Without it :class:`~.rank.RankAccumulator` uses its
pure-torch search, which gives identical results (both are exact integer
counts). Rows are split into blocks that a thread pool takes one at a
time, so a thread slowed down by a competing process does not hold the
others back.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Tuple

import numpy as np

#: Above this many positives a query's row is sorted instead of scanned
#: once per positive (a scan is ~0.1 ns per distance and positive, a sort
#: ~15 ns per distance).
MAX_SCANNED_POSITIVES = 96

#: Distances per block of rows handed to one thread at a time.
BLOCK_ELEMENTS = 2**18

#: Set to False (or the environment variable ``MMREID_RANK_KERNEL=0``) to
#: use the pure-torch path of the rank computation.
ENABLED = os.environ.get('MMREID_RANK_KERNEL', '1') != '0'

_kernels = None
_import_error: Optional[str] = None
_executors = {}
_executor_lock = threading.Lock()


def available() -> bool:
    """Whether the compiled kernels can be used (numba is importable).

    Returns:
        bool: False when disabled by :data:`ENABLED` or numba is missing.
    """
    global _kernels, _import_error
    if not ENABLED:
        return False
    if _kernels is None and _import_error is None:
        try:
            from . import _numba_kernels
            _kernels = (_numba_kernels.count_below,
                        _numba_kernels.count_tied_before,
                        _numba_kernels.count_pids_before_first)
        except ImportError as error:
            _import_error = str(error)
    return _kernels is not None


def _executor(num_threads: int) -> ThreadPoolExecutor:
    """A pool of ``num_threads`` threads, kept for later calls.

    Keyed by process id too: a forked child inherits the pool object but
    not its threads, and would wait on them forever.
    """
    key = (os.getpid(), num_threads)
    with _executor_lock:
        if key not in _executors:
            _executors[key] = ThreadPoolExecutor(
                num_threads, thread_name_prefix='mmreid-rank')
        return _executors[key]


def _run_blocks(kernel,
                arrays: tuple,
                num_rows: int,
                row_len: int,
                num_threads: int,
                shared: tuple = ()) -> None:
    """Run ``kernel(*row_slices, *shared)`` over blocks of rows, in
    parallel.

    Every array of ``arrays`` has the rows first; each block gets the
    same row slice of all of them, and ``shared`` whole.
    """
    rows_per_block = max(1, BLOCK_ELEMENTS // max(row_len, 1))
    starts = range(0, num_rows, rows_per_block)
    if num_threads <= 1 or len(starts) <= 1:
        kernel(*arrays, *shared)
        return

    def run(start):
        stop = start + rows_per_block
        kernel(*(array[start:stop] for array in arrays), *shared)

    # Blocks are taken one at a time by whichever thread is free; list()
    # re-raises a kernel's error here.
    list(_executor(num_threads).map(run, starts))


def count_below(
        values: np.ndarray,
        pos: np.ndarray,
        num_pos: np.ndarray,
        num_threads: int = 1) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Items strictly below and at or below each positive of each row.

    Args:
        values: Distances, shape (R, G), float32 or float64, C-contiguous;
            NaN marks items that are not counted.
        pos: Each row's positive distances, sorted, shape (R, >= M), the
            dtype of ``values``; columns past ``num_pos`` are not read.
        num_pos: Positives per row, shape (R,), int64.
        num_threads: Threads to use.

    Returns:
        tuple: ``lt`` and ``le``, int64 arrays of shape (R, M) with M =
        ``pos.shape[1]``, 0 past each row's ``num_pos``, and ``has_nan``
        (R,) bool: which rows hold a NaN.
    """
    count_kernel = _kernels[0]
    shape = (values.shape[0], pos.shape[1])
    lt = np.zeros(shape, dtype=np.int64)
    le = np.zeros(shape, dtype=np.int64)
    has_nan = np.zeros(len(values), dtype=np.bool_)
    _run_blocks(count_kernel, (values, pos, num_pos, lt, le, has_nan),
                len(values), values.shape[1], num_threads)
    return lt, le, has_nan


def count_tied_before(values: np.ndarray,
                      pos: np.ndarray,
                      pos_idx: np.ndarray,
                      num_pos: np.ndarray,
                      num_threads: int = 1) -> np.ndarray:
    """Items equal to each positive with a lower gallery index.

    Args:
        values: Distances, shape (R, G); NaN items are not counted.
        pos: Sorted positive distances, shape (R, >= M).
        pos_idx: Their gallery indices, shape (R, >= M), int64.
        num_pos: Positives per row, shape (R,), int64.
        num_threads: Threads to use.

    Returns:
        np.ndarray: int64 counts, shape (R, M) with M = ``pos.shape[1]``.
    """
    tied = np.zeros((values.shape[0], pos.shape[1]), dtype=np.int64)
    _run_blocks(_kernels[1], (values, pos, pos_idx, num_pos, tied),
                len(values), values.shape[1], num_threads)
    return tied


#: Tie policies as the kernel numbers them.
_POLICY_CODES = dict(stable=0, pessimistic=1, optimistic=2)


def count_pids_before_first(values: np.ndarray,
                            first: np.ndarray,
                            first_idx: np.ndarray,
                            pid_index: np.ndarray,
                            num_pids: int,
                            tie_policy: str,
                            num_threads: int = 1) -> np.ndarray:
    """Distinct pids of the items ranked before each row's first positive.

    The de-duplicated CMC rank of a query is one more than this. An item
    before the first positive is below it, or equal to it and placed
    before it by the tie policy (``'stable'``: a lower gallery index).

    Args:
        values: Distances, shape (R, G); NaN items are not counted.
        first: Each row's first positive distance, shape (R,).
        first_idx: Its gallery index, shape (R,), int64; -1 for rows
            without a positive (their count is 0).
        pid_index: Dense pid index of each gallery item, shape (G,),
            int64 in [0, num_pids).
        num_pids: Number of distinct gallery pids.
        tie_policy: ``'stable'``, ``'pessimistic'`` or ``'optimistic'``.
        num_threads: Threads to use.

    Returns:
        np.ndarray: int64 counts, shape (R,).
    """
    out = np.zeros(len(values), dtype=np.int64)
    _run_blocks(
        _kernels[2], (values, first, first_idx, out),
        len(values),
        values.shape[1],
        num_threads,
        shared=(pid_index, num_pids, _POLICY_CODES[tie_policy]))
    return out
