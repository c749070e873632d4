from .cross_entropy_loss import CrossEntropyLoss
from .dual_causality_loss import DualCausalityLoss
from .pair_losses import PairVerificationLoss, PICLoss
from .triplet_loss import TripletLoss, hard_example_mining, pairwise_euclidean
from .wrt_loss import WRTLoss

__all__ = [
    'CrossEntropyLoss', 'DualCausalityLoss', 'PairVerificationLoss', 'PICLoss',
    'TripletLoss', 'hard_example_mining', 'pairwise_euclidean', 'WRTLoss'
]
