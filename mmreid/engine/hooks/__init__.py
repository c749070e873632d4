from .gmn_hooks import GMNDPWarmupHook, ModelDistanceHook
from .progress_hook import FeatureProgressHook
from .random_state_hook import TrainRandomStateHook
from .ranked_list_hook import RankedListHook
from .setup_check_hook import TrainSetupCheckHook

__all__ = [
    'FeatureProgressHook', 'RankedListHook', 'TrainSetupCheckHook',
    'GMNDPWarmupHook', 'ModelDistanceHook', 'TrainRandomStateHook'
]
