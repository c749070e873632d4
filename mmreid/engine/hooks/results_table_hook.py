"""Print the results of a test or validation run as one table."""
from typing import Dict, Optional, Sequence

from mmengine.hooks import Hook

from mmreid.evaluation.results_table import (RESULT_COLUMNS,
                                             format_results_table)
from mmreid.registry import HOOKS


@HOOKS.register_module()
class ResultsTableHook(Hook):
    """Log the final metrics as a table after every test and validation.

    mmengine's ``LoggerHook`` writes the metrics as one line of
    ``key: value`` pairs (30+ for a GMN model with three distance modes, a
    SYSU run with ten trials or a multi-target run). This hook adds, after
    that line, one table: a row per target, distance mode or metric
    (``reid``, ``d3``, ``reid/mnet``), columns R1 R5 R10 R20 mAP mINP, the
    mean ± std over the protocol's trials or splits where it reports one.
    The metric keys themselves are left as they are.

    A loop that prints such a table itself (``MultiTargetTestLoop``, which
    sets ``prints_results_table``) is not printed twice.

    Args:
        columns (Sequence[str]): Metric names to show, in order. Defaults
            to ``('R1', 'R5', 'R10', 'R20', 'mAP', 'mINP')``.
        precision (int): Decimals. Defaults to 2.

    Examples:
        >>> default_hooks = dict(results_table=dict(type='ResultsTableHook'))
    """
    priority = 'LOW'  # after LoggerHook's line of metrics

    def __init__(self,
                 columns: Sequence[str] = RESULT_COLUMNS,
                 precision: int = 2) -> None:
        self.columns = tuple(columns)
        self.precision = int(precision)

    def _log(self, runner, mode: str, metrics: Optional[Dict]) -> None:
        loop = getattr(runner, f'{mode}_loop', None)
        if not metrics or getattr(loop, 'prints_results_table', False):
            return
        table = format_results_table(
            metrics, self.columns, self.precision, default_name=mode)
        if table:
            runner.logger.info(f'{mode} results:\n{table}')

    def after_val_epoch(self, runner, metrics: Optional[Dict] = None) -> None:
        self._log(runner, 'val', metrics)

    def after_test_epoch(self, runner, metrics: Optional[Dict] = None) -> None:
        self._log(runner, 'test', metrics)
