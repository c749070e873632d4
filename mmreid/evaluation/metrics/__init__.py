from .cross_modality_metric import LLCMMetric, SYSUMetric, TrialGalleryMetric
from .reid_metric import ReIDMetric
from .split_metric import CUHK03ClassicMetric, DGSplitMetric

__all__ = [
    'ReIDMetric', 'SYSUMetric', 'LLCMMetric', 'TrialGalleryMetric',
    'DGSplitMetric', 'CUHK03ClassicMetric'
]
