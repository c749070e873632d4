import sys
import time
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import Hook

from mmreid.registry import HOOKS


class _Progress:
    """A one-line progress bar with rate and ETA.

    On a terminal the line is redrawn in place; in a log file (no tty) a
    line is written every ``1 / log_fraction`` of the work so logs stay
    short.
    """

    def __init__(self,
                 total: int,
                 title: str,
                 stream=None,
                 log_fraction: float = 0.1) -> None:
        self.total = max(int(total), 1)
        self.title = title
        self.stream = stream or sys.stdout
        self.isatty = getattr(self.stream, 'isatty', lambda: False)()
        self.step = max(1, int(self.total * log_fraction))
        self.done = 0
        self.start = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.done += n
        if not (self.isatty or self.done % self.step == 0
                or self.done >= self.total):
            return
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        width = 30
        filled = int(width * min(self.done, self.total) / self.total)
        line = (f'{self.title} [{">" * filled}{" " * (width - filled)}] '
                f'{self.done}/{self.total}, {rate:.1f} batch/s, '
                f'elapsed {elapsed:.0f}s, ETA {eta:.0f}s')
        end = '\r' if self.isatty and self.done < self.total else '\n'
        self.stream.write(line + end)
        self.stream.flush()


@HOOKS.register_module()
class FeatureProgressHook(Hook):
    """Show a progress bar while features are extracted for evaluation.

    mmengine's validation and test loops are silent until the metric is
    printed; on a large gallery that can be many minutes. Only rank 0
    prints. A loop that evaluates several targets in turn (see
    :class:`~mmreid.engine.MultiTargetValLoop`) gets one bar per target:
    a new bar starts whenever the loop's ``dataloader`` changes, titled
    with the loop's ``current_target``.

    Args:
        log_fraction (float): Without a terminal, print every this fraction
            of the batches. Defaults to 0.1.
    """

    priority = 'VERY_LOW'

    def __init__(self, log_fraction: float = 0.1) -> None:
        self.log_fraction = log_fraction
        self._bar: Optional[_Progress] = None
        self._loop_name = 'val_loop'
        self._mode = 'val'
        self._dataloader = None

    def _start(self, runner, mode: str) -> None:
        self._bar = None
        self._mode = mode
        self._loop_name = f'{mode}_loop'
        self._dataloader = None
        if not is_main_process():
            return
        self._new_bar(getattr(runner, self._loop_name))

    def _new_bar(self, loop) -> None:
        self._dataloader = loop.dataloader
        target = getattr(loop, 'current_target', None)
        where = self._mode if target is None else f'{self._mode}, {target}'
        title = f'extracting features ({where})'
        self._bar = _Progress(
            len(loop.dataloader), title, log_fraction=self.log_fraction)

    def _follow(self, runner) -> None:
        """Start a new bar when a multi-target loop moves to a target."""
        if self._bar is None:
            return
        loop = getattr(runner, self._loop_name, None)
        if loop is not None and loop.dataloader is not self._dataloader:
            self._new_bar(loop)

    def _update(self) -> None:
        if self._bar is not None:
            self._bar.update()

    def before_val_epoch(self, runner) -> None:
        self._start(runner, 'val')

    def before_test_epoch(self, runner) -> None:
        self._start(runner, 'test')

    def before_val_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._follow(runner)

    def before_test_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._follow(runner)

    def after_val_iter(self,
                       runner,
                       batch_idx,
                       data_batch=None,
                       outputs=None) -> None:
        self._update()

    def after_test_iter(self,
                        runner,
                        batch_idx,
                        data_batch=None,
                        outputs=None) -> None:
        self._update()
