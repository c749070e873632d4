from .cross_modality_metric import LLCMMetric, RegDBMetric, SYSUMetric
from .cuhk03_classic_metric import CUHK03ClassicMetric
from .dg_split_metric import DGSplitMetric
from .records import QueryGallery
from .reid_metric import ReIDMetric
from .trial_gallery_metric import TrialGalleryMetric, load_rand_perm_cam

__all__ = [
    'ReIDMetric', 'QueryGallery', 'SYSUMetric', 'LLCMMetric', 'RegDBMetric',
    'TrialGalleryMetric', 'DGSplitMetric', 'CUHK03ClassicMetric',
    'load_rand_perm_cam'
]
