from .cross_entropy_loss import CrossEntropyLoss
from .triplet_loss import TripletLoss, hard_example_mining, pairwise_euclidean

__all__ = [
    'CrossEntropyLoss', 'TripletLoss', 'hard_example_mining',
    'pairwise_euclidean'
]
