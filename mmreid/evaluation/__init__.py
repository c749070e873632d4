from .functional import (ReIDEvalResult, compute_distance, evaluate_features,
                         evaluate_rank)
from .metrics import LLCMMetric, ReIDMetric, SYSUMetric

__all__ = [
    'ReIDMetric', 'SYSUMetric', 'LLCMMetric', 'ReIDEvalResult',
    'compute_distance', 'evaluate_rank', 'evaluate_features'
]
