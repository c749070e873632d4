"""The numba kernels of :mod:`.count_kernel` (imported only when used).

Compiled on first use and cached on disk next to this file (numba's
``cache=True``), so only the first evaluation on a machine pays the
compilation (a few seconds).
"""
import numba
import numpy as np

from .count_kernel import MAX_SCANNED_POSITIVES


@numba.njit(nogil=True, cache=True)
def count_below(values, pos, num_pos, lt, le, has_nan):
    """See :func:`.count_kernel.count_below`."""
    for r in range(values.shape[0]):
        row = values[r]
        num = num_pos[r]
        # The first read of the row (from memory) also checks for NaN;
        # the scans below then find it in cache.
        nan = False
        for i in range(row.shape[0]):
            nan |= row[i] != row[i]
        has_nan[r] = nan
        if num > MAX_SCANNED_POSITIVES:
            kept = np.sort(row[~np.isnan(row)])
            for j in range(num):
                lt[r, j] = np.searchsorted(kept, pos[r, j], side='left')
                le[r, j] = np.searchsorted(kept, pos[r, j], side='right')
            continue
        for j in range(num):
            p = pos[r, j]
            # int32 selects vectorise best (16 lanes with AVX-512); a NaN
            # item fails both tests.
            below = np.int32(0)
            at_most = np.int32(0)
            for i in range(row.shape[0]):
                v = row[i]
                below += np.int32(1) if v < p else np.int32(0)
                at_most += np.int32(1) if v <= p else np.int32(0)
            lt[r, j] = below
            le[r, j] = at_most


@numba.njit(nogil=True, cache=True)
def count_tied_before(values, pos, pos_idx, num_pos, tied):
    """See :func:`.count_kernel.count_tied_before`."""
    for r in range(values.shape[0]):
        row = values[r]
        for j in range(num_pos[r]):
            p = pos[r, j]
            count = np.int32(0)
            for i in range(pos_idx[r, j]):
                count += np.int32(1) if row[i] == p else np.int32(0)
            tied[r, j] = count


@numba.njit(nogil=True, cache=True)
def count_pids_before_first(values, first, first_idx, out, pid_index, num_pids,
                            policy):
    """See :func:`.count_kernel.count_pids_before_first`."""
    seen = np.zeros(num_pids, dtype=np.bool_)
    for r in range(values.shape[0]):
        index = first_idx[r]
        if index < 0:
            continue
        seen[:] = False
        p = first[r]
        row = values[r]
        count = 0
        for i in range(row.shape[0]):
            v = row[i]
            # policy 0: stable, 1: pessimistic, 2: optimistic.
            if v < p or (v == p and (policy == 1 or
                                     (policy == 0 and i < index))):
                pid = pid_index[i]
                if not seen[pid]:
                    seen[pid] = True
                    count += 1
        out[r] = count
