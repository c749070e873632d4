from .functional import (ReIDEvalResult, compute_distance, evaluate_features,
                         evaluate_rank)
from .metrics import ReIDMetric

__all__ = [
    'ReIDMetric', 'ReIDEvalResult', 'compute_distance', 'evaluate_rank',
    'evaluate_features'
]
