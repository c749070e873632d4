"""How many threads a CPU computation may use without oversubscribing.

``os.cpu_count()`` and torch's default thread count see every core of the
machine, but a process may be pinned to fewer (``taskset``, Slurm's
cpusets) or throttled to fewer by a cgroup CPU quota (Docker's
``--cpus``, Kubernetes limits). Threads beyond what the process may use
run in turns, and a parallel loop then waits for its slowest thread at
every step: on a 2-core machine with one competing busy process, the
evaluator ran several times slower with 2 threads than with 1.
"""
import math
import os
from contextlib import contextmanager
from typing import Iterator, Optional

import torch

#: Where the cgroup file systems are mounted, and the file naming the
#: cgroups of this process.
_CGROUP_ROOT = '/sys/fs/cgroup'
_PROC_CGROUP = '/proc/self/cgroup'


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _cgroup_paths() -> list:
    """Candidate cgroup folders of this process, innermost first."""
    folders = []
    text = _read(_PROC_CGROUP) or ''
    for line in text.splitlines():
        # 'hierarchy-id:controllers:path'; v2 has id 0 and no controllers.
        parts = line.split(':', 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == '':
            base = _CGROUP_ROOT
        elif 'cpu' in controllers.split(','):
            base = os.path.join(_CGROUP_ROOT, controllers)
            if not os.path.isdir(base):
                base = os.path.join(_CGROUP_ROOT, 'cpu')
        else:
            continue
        path = path.strip('/')
        # A quota set on a parent folder limits the children too.
        while True:
            folders.append(os.path.join(base, path))
            if not path:
                break
            path = os.path.dirname(path)
    return folders


def cgroup_cpu_quota() -> Optional[float]:
    """The CPU quota of the process's cgroup in CPUs, if one is set.

    Reads cgroup v2 ``cpu.max`` (``'<quota> <period>'`` or ``'max ...'``)
    and cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``; the
    tightest quota of the cgroup and its parents wins.

    Returns:
        float | None: The quota (e.g. 1.5), or None when unlimited or
        unknown.
    """
    quotas = []
    for folder in _cgroup_paths():
        text = _read(os.path.join(folder, 'cpu.max'))
        if text:
            fields = text.split()
            if len(fields) == 2 and fields[0] != 'max':
                try:
                    quotas.append(int(fields[0]) / int(fields[1]))
                except (ValueError, ZeroDivisionError):
                    pass
            continue
        quota = _read(os.path.join(folder, 'cpu.cfs_quota_us'))
        period = _read(os.path.join(folder, 'cpu.cfs_period_us'))
        try:
            if quota is not None and period is not None and int(quota) > 0:
                quotas.append(int(quota) / int(period))
        except (ValueError, ZeroDivisionError):
            pass
    positive = [q for q in quotas if q > 0]
    return min(positive) if positive else None


def usable_cpu_count() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup quota.

    Returns:
        int: At least 1.
    """
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        # A quota of 1.5 CPUs keeps 2 threads busy at 75 % each: round up.
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def compute_thread_count() -> int:
    """Threads for a parallel CPU computation of mmreid.

    torch's thread count (what the user set with ``torch.set_num_threads``
    or ``OMP_NUM_THREADS``, else torch's default of all cores), capped by
    :func:`usable_cpu_count`.

    Returns:
        int: At least 1.
    """
    return max(1, min(torch.get_num_threads(), usable_cpu_count()))


@contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Run torch's CPU ops with ``num_threads`` intra-op threads.

    The previous count is restored on exit. Memory-bound passes over a
    chunk gain little from more threads, and each parallel region waits
    for its slowest thread: with a competing busy process on a 2-core
    machine, 2 threads made the rank computation several times slower
    than 1 (docs/benchmarks.md, "Evaluation speed and memory").

    Args:
        num_threads: Threads to use inside the block, at least 1.
    """
    previous = torch.get_num_threads()
    num_threads = max(1, int(num_threads))
    if num_threads == previous:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
