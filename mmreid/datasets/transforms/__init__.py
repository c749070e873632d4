from mmreid.utils.deprecation import deprecated_attribute
from .formatting import PackReIDInputs
from .geometric import (PadRandomCrop, Random2DTranslation, ReIDRandomFlip,
                        ReIDResize)
from .loading import ReIDLoadImageFromFile
from .photometric import RandomChannel, ReIDColorJitter, ReIDRandomErasing
from .randomness import sample_rng

__all__ = [
    'ReIDLoadImageFromFile', 'ReIDResize', 'Random2DTranslation',
    'ReIDRandomFlip', 'PadRandomCrop', 'ReIDRandomErasing', 'ReIDColorJitter',
    'RandomChannel', 'PackReIDInputs', 'sample_rng'
]

# Old names, one release; they shadowed mmcv's/mmpretrain's classes.
_RENAMED = {
    'LoadImageFromFile': ReIDLoadImageFromFile,
    'RandomFlip': ReIDRandomFlip,
    'RandomErasing': ReIDRandomErasing,
    'ColorJitter': ReIDColorJitter,
}


def __getattr__(name: str) -> type:
    return deprecated_attribute(__name__, _RENAMED, name)
