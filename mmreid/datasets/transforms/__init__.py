from .formatting import PackReIDInputs
from .loading import LoadImageFromFile
from .processing import (ColorJitter, PadRandomCrop, RandomErasing, RandomFlip,
                         ReIDResize)

__all__ = [
    'LoadImageFromFile', 'ReIDResize', 'RandomFlip', 'PadRandomCrop',
    'RandomErasing', 'ColorJitter', 'PackReIDInputs'
]
