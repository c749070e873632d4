from .gmn_hooks import GMNDPWarmupHook, ModelDistanceHook
from .logger_hook import LoggerHook
from .progress_hook import FeatureProgressHook
from .random_state_hook import TrainRandomStateHook
from .ranked_list_hook import RankedListHook
from .report_hook import EvalReportHook
from .results_table_hook import ResultsTableHook
from .setup_check_hook import TrainSetupCheckHook

__all__ = [
    'FeatureProgressHook', 'RankedListHook', 'TrainSetupCheckHook',
    'GMNDPWarmupHook', 'ModelDistanceHook', 'TrainRandomStateHook',
    'ResultsTableHook', 'EvalReportHook', 'LoggerHook'
]
