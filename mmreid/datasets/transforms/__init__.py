from .formatting import PackReIDInputs
from .loading import LoadImageFromFile
from .processing import (ColorJitter, PadRandomCrop, Random2DTranslation,
                         RandomChannel, RandomErasing, RandomFlip, ReIDResize)
from .randomness import sample_rng

__all__ = [
    'LoadImageFromFile', 'ReIDResize', 'Random2DTranslation', 'RandomFlip',
    'PadRandomCrop', 'RandomErasing', 'ColorJitter', 'RandomChannel',
    'PackReIDInputs', 'sample_rng'
]
