"""Deprecated module, kept for one release.

Its transforms are in :mod:`.geometric` and :mod:`.photometric`; import
them from :mod:`mmreid.datasets.transforms`.
"""
from mmreid.utils.deprecation import warn_deprecated
from .geometric import (INTERPOLATIONS, PADDING_MODES, PadRandomCrop,
                        Random2DTranslation, ReIDRandomFlip, ReIDResize)
from .photometric import (BOT_ERASING_FILL_RGB, IMAGENET_MEAN_RGB,
                          IMAGENET_STD_RGB, RandomChannel, ReIDColorJitter,
                          ReIDRandomErasing)

__all__ = [
    'INTERPOLATIONS', 'PADDING_MODES', 'PadRandomCrop', 'Random2DTranslation',
    'ReIDRandomFlip', 'ReIDResize', 'BOT_ERASING_FILL_RGB',
    'IMAGENET_MEAN_RGB', 'IMAGENET_STD_RGB', 'RandomChannel',
    'ReIDColorJitter', 'ReIDRandomErasing'
]

warn_deprecated(
    'mmreid.datasets.transforms.processing is deprecated and will be '
    'removed in the next release: import the transforms from '
    'mmreid.datasets.transforms (BOT_ERASING_FILL_RGB and the other '
    'constants from its geometric and photometric modules)')
