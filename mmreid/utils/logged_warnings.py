"""Python warnings in a run's log file, not on stderr only.

A ``warnings.warn`` line (mmengine's "mypkg.componets failed to import and
is ignored" for ``custom_imports`` with ``allow_failed_imports=True``,
mmreid's "no CUDA device: using the gloo backend") reached the terminal
only: whoever reads the run's log file later never sees it. Most of them
come while the config is read, before the runner has a logger, so they
are kept from the start of the tool (:func:`record_warnings`) and written
into the log file once the runner has one (:func:`log_warnings_to`),
followed by every warning shown while that logger is the latest.

Each warning is still shown as before (stderr, or whatever
``warnings.showwarning`` did); the log file gets a copy through the
logger's file handlers only, so the console does not show it twice. Only
the process that attached the logger writes (a dataloader worker forked
from it does not).
"""
import logging
import os
import threading
import warnings
from typing import List, Optional, Tuple

#: The warnings shown before a logger was attached, at most this many.
MAX_KEPT = 100

_kept: List[Tuple[str, str, int]] = []
#: The warnings shown before a logger was attached beyond :data:`MAX_KEPT`:
#: their number is written into the log, so none vanish without a trace.
_over = 0
_logger: Optional[logging.Logger] = None
_pid: Optional[int] = None
_previous = None
#: Whether mmreid's import warnings were added to :data:`_kept`.
_imports_kept = False

_state = threading.local()
#: Python's own ``warnings.showwarning`` (or what stood there at import).
_DEFAULT_SHOW = warnings.showwarning


def _show(message, category, filename, lineno, file=None, line=None):
    """``warnings.showwarning`` that also keeps or logs the warning."""
    if getattr(_state, 'showing', False):
        # Called back by a wrapper of this function that it wraps in turn
        # (a library's, installed between two record_warnings() calls):
        # shown the default way, not round again.
        _DEFAULT_SHOW(message, category, filename, lineno, file, line)
        return
    _state.showing = True
    try:
        _previous(message, category, filename, lineno, file, line)
        text = warnings.formatwarning(message, category, filename, lineno,
                                      line).rstrip()
        if _logger is None:
            _keep(text, filename, lineno)
        elif os.getpid() == _pid:
            _write(_logger, text, filename, lineno)
    finally:
        _state.showing = False


def _keep(text: str, filename: str, lineno: int) -> None:
    """Keep a warning for the next log, or count it past :data:`MAX_KEPT`."""
    global _over
    if len(_kept) < MAX_KEPT:
        _kept.append((text, filename, lineno))
    else:
        _over += 1


def _write(logger: logging.Logger, text: str, filename: str,
           lineno: int) -> None:
    """Write a warning into ``logger``'s file handlers only."""
    record = logger.makeRecord(logger.name, logging.WARNING, filename, lineno,
                               f'Python warning: {text}', None, None)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def record_warnings() -> None:
    """Keep every warning shown from now on, for :func:`log_warnings_to`.

    Wraps ``warnings.showwarning`` (which still shows each warning); a
    second call while the wrapper is in place does nothing. The warnings
    ``import mmreid`` showed (``mmreid.IMPORT_WARNINGS``) are kept too.
    """
    global _previous, _imports_kept
    if warnings.showwarning is not _show:
        _previous = warnings.showwarning
        warnings.showwarning = _show
    if not _imports_kept:
        # Shown by ``import mmreid``, before any tool could call this.
        import mmreid
        for message in mmreid.IMPORT_WARNINGS:
            _keep(
                f'{mmreid.__file__}: UserWarning: {message} (when mmreid '
                'was imported)', mmreid.__file__, 0)
        _imports_kept = True


def keep_warnings_for_next_log() -> None:
    """Keep the warnings shown from now on for the next
    :func:`log_warnings_to`, not the log attached so far: a runner being
    built (its model, its hooks) warns into its own log, not into the log
    of the run built before it in the process."""
    global _logger
    record_warnings()
    _logger = None


def log_warnings_to(logger: logging.Logger) -> None:
    """Write the warnings kept so far into ``logger``'s log file, and from
    now on each warning shown, until another logger is attached.

    Args:
        logger (logging.Logger): The run's logger (``runner.logger``);
            only its file handlers are written to.
    """
    global _logger, _pid, _over
    record_warnings()
    _logger, _pid = logger, os.getpid()
    for text, filename, lineno in _kept:
        _write(logger, text, filename, lineno)
    if _over:
        _write(
            logger, f'{_over} more warning(s) were shown before this log '
            f'was attached, beyond the {MAX_KEPT} kept: see the terminal',
            __file__, 0)
    _kept.clear()
    _over = 0


__all__ = ['record_warnings', 'keep_warnings_for_next_log', 'log_warnings_to']
