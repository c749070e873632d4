from .cross_entropy_loss import CrossEntropyLoss
from .dual_causality_loss import DualCausalityLoss
from .triplet_loss import TripletLoss, hard_example_mining, pairwise_euclidean

__all__ = [
    'CrossEntropyLoss', 'DualCausalityLoss', 'TripletLoss',
    'hard_example_mining', 'pairwise_euclidean'
]
