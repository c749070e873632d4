from .gmn_hooks import GMNDPWarmupHook, ModelDistanceHook
from .progress_hook import FeatureProgressHook
from .ranked_list_hook import RankedListHook
from .results_table_hook import ResultsTableHook
from .setup_check_hook import TrainSetupCheckHook

__all__ = [
    'FeatureProgressHook', 'RankedListHook', 'TrainSetupCheckHook',
    'GMNDPWarmupHook', 'ModelDistanceHook', 'ResultsTableHook'
]
