from .class_num_check_hook import ClassNumCheckHook
from .progress_hook import FeatureProgressHook

__all__ = ['ClassNumCheckHook', 'FeatureProgressHook']
