from .progress_hook import FeatureProgressHook
from .setup_check_hook import TrainSetupCheckHook

__all__ = ['FeatureProgressHook', 'TrainSetupCheckHook']
