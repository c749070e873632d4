"""Process memory readings for the benchmark tools (Linux /proc)."""
import os
import resource


def rss_bytes() -> int:
    """Current resident set size of this process, in bytes."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def reset_peak_rss() -> bool:
    """Reset the kernel's peak RSS (VmHWM) to the current RSS if possible.

    Loading an input can peak above the RSS that follows it (a read buffer),
    which ``ru_maxrss`` would keep forever.

    Returns:
        bool: Whether the reset worked (``/proc/self/clear_refs`` exists
        and is writable); if not, :func:`peak_rss_bytes` is the peak since
        the process started.
    """
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak RSS since :func:`reset_peak_rss` (or since the start), bytes."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
