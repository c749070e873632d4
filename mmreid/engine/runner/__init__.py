from .multi_target_loops import (MultiTargetTestLoop, MultiTargetValLoop,
                                 format_metric_table, merge_target_metrics)

__all__ = [
    'MultiTargetValLoop', 'MultiTargetTestLoop', 'merge_target_metrics',
    'format_metric_table'
]
