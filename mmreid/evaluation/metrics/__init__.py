from .cross_modality_metric import LLCMMetric, SYSUMetric, TrialGalleryMetric
from .reid_metric import ReIDMetric

__all__ = ['ReIDMetric', 'SYSUMetric', 'LLCMMetric', 'TrialGalleryMetric']
