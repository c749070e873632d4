from mmreid.utils.deprecation import deprecated_attribute
from .cross_entropy_loss import ReIDCrossEntropyLoss
from .dual_causality_loss import DualCausalityLoss
from .pair_losses import PairVerificationLoss, PICLoss
from .triplet_loss import TripletLoss, hard_example_mining, pairwise_euclidean
from .wrt_loss import WRTLoss

__all__ = [
    'ReIDCrossEntropyLoss', 'DualCausalityLoss', 'PairVerificationLoss',
    'PICLoss', 'TripletLoss', 'hard_example_mining', 'pairwise_euclidean',
    'WRTLoss'
]

# Old name, one release; it shadowed mmpretrain's CrossEntropyLoss.
_RENAMED = {'CrossEntropyLoss': ReIDCrossEntropyLoss}


def __getattr__(name: str) -> type:
    return deprecated_attribute(__name__, _RENAMED, name)
