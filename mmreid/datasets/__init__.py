from .base_reid_dataset import BaseReIDDataset, DatasetLayoutError, list_images
from .market1501 import Market1501
from .multi_source import ConcatReIDDataset
from .samplers import *  # noqa: F401,F403
from .synthetic import SynthReID, generate_synthreid
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BaseReIDDataset', 'DatasetLayoutError', 'list_images', 'Market1501',
    'ConcatReIDDataset', 'SynthReID', 'generate_synthreid'
]
