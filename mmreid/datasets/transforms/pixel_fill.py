"""Pixel fills of padding and erasing: checked once, matched per image."""
from numbers import Number
from typing import Sequence, Union

import numpy as np


def check_fill(name: str, fill: Union[Number, Sequence[Number]]) -> np.ndarray:
    """Check a pixel fill: a number, or one value per channel, in [0, 255].

    Args:
        name (str): The argument's name, for the error message.
        fill (Number | Sequence[Number]): The fill as given.

    Returns:
        np.ndarray: The fill as a float64 array of shape () or (N, ).

    Raises:
        ValueError: ``fill`` is not a number or a sequence of 1 or 3
            numbers (the loader gives RGB images), or a value is outside
            [0, 255].
    """
    try:
        values = np.asarray(fill, dtype=np.float64)
    except (TypeError, ValueError):
        values = np.empty(0)
    if (isinstance(fill, (str, bytes)) or values.ndim > 1
            or values.size not in (1, 3)
            or not ((values >= 0) & (values <= 255)).all()):
        raise ValueError(f'{name} must be a pixel value in [0, 255] or one '
                         f'per channel (1 or 3 of them), got {fill!r}')
    return values


def fill_for_image(name: str, fill: np.ndarray, img: np.ndarray) -> np.ndarray:
    """A checked fill (see :func:`check_fill`) matched to ``img``.

    A number or a single value fills every channel; otherwise there must
    be one value per channel, as torchvision requires of ``fill``.

    Args:
        name (str): The argument's name, for the error message.
        fill (np.ndarray): Shape () or (N, ), from :func:`check_fill`.
        img (np.ndarray): (H, W) or (H, W, C) image.

    Returns:
        np.ndarray: (C, ) values of ``img``'s dtype, rounded for integer
        images (C = 1 for an (H, W) image).
    """
    num_channels = 1 if img.ndim == 2 else img.shape[2]
    if fill.size not in (1, num_channels):
        raise ValueError(f'{name} has {fill.size} values but the image has '
                         f'{num_channels} channels (shape {img.shape}): '
                         f'give a number or one value per channel')
    if np.issubdtype(img.dtype, np.integer):
        fill = np.round(fill)
    return np.broadcast_to(fill, (num_channels, )).astype(img.dtype)
