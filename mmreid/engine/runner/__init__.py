from .log_processor import ReIDLogProcessor
from .multi_target_loops import MultiTargetTestLoop, MultiTargetValLoop
from .reid_loops import (ReIDTestLoop, ReIDValLoop, hand_model_scorers,
                         scorers_handed_by)
from .reid_runner import ReIDRunner, build_runner
from .target_metrics import format_metric_table, merge_target_metrics

__all__ = [
    'MultiTargetValLoop', 'MultiTargetTestLoop', 'merge_target_metrics',
    'format_metric_table', 'ReIDValLoop', 'ReIDTestLoop', 'hand_model_scorers',
    'scorers_handed_by', 'ReIDRunner', 'ReIDLogProcessor', 'build_runner'
]
