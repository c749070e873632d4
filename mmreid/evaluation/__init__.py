from .functional import (ReIDEvalResult, compute_distance, evaluate_features,
                         evaluate_rank)
from .metrics import LLCMMetric, RegDBMetric, ReIDMetric, SYSUMetric

__all__ = [
    'ReIDMetric', 'SYSUMetric', 'LLCMMetric', 'RegDBMetric', 'ReIDEvalResult',
    'compute_distance', 'evaluate_rank', 'evaluate_features'
]
