"""A row of equally sized image tiles with text lines drawn under each."""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from .ranked_list import (BACKGROUND_COLOR, TEXT_LINE_HEIGHT, _check_image,
                          _put_text)

#: Modality names of mmreid's labels (0 visible, 1 infrared).
MODALITY_NAMES = {0: 'visible', 1: 'infrared'}


def modality_name(modality) -> str:
    """``'visible'``/``'infrared'`` for 0/1, else the label as text."""
    try:
        return MODALITY_NAMES.get(int(modality), str(modality))
    except (TypeError, ValueError):
        return str(modality)


def draw_tiles(images: Sequence[np.ndarray],
               labels: Optional[Sequence[str]] = None,
               tile_size: Tuple[int, int] = (128, 64),
               gap: int = 4) -> np.ndarray:
    """Resize images to one tile size and set them side by side.

    Small images are enlarged by pixel repetition (nearest neighbour) so
    that what the model sees is shown as is, only bigger; larger ones are
    shrunk with area averaging.

    Args:
        images (Sequence[np.ndarray]): (H_i, W_i, 3) RGB uint8 each; at
            least one.
        labels (Sequence[str], optional): Text under each tile; ``'\\n'``
            starts a new line (e.g. ``'pid 3\\ncam 1\\nvisible'``). Text
            too wide for a tile is drawn smaller, then shortened.
        tile_size (tuple[int, int]): ``(height, width)`` of a tile.
        gap (int): Background pixels between tiles.

    Returns:
        np.ndarray: (tile_h + L * TEXT_LINE_HEIGHT, n * tile_w + (n - 1) *
        gap, 3) RGB uint8, L the most label lines of any tile.
    """
    images = list(images)
    if not images:
        raise ValueError('draw_tiles needs at least one image')
    for i, img in enumerate(images):
        _check_image(img, f'images[{i}]')
    if labels is not None and len(labels) != len(images):
        raise ValueError(f'labels has {len(labels)} entries for '
                         f'{len(images)} images')
    height, width = (int(s) for s in tile_size)
    if height < 1 or width < 1 or gap < 0:
        raise ValueError(f'tile_size must be positive and gap >= 0, got '
                         f'{tile_size!r} and {gap}')
    lines = [str(label).split('\n')
             for label in labels] if labels is not None else []
    text_h = TEXT_LINE_HEIGHT * max((len(t) for t in lines), default=0)
    canvas_w = len(images) * width + (len(images) - 1) * gap
    canvas = np.empty((height + text_h, canvas_w, 3), np.uint8)
    canvas[...] = BACKGROUND_COLOR
    for i, img in enumerate(images):
        enlarge = img.shape[0] <= height and img.shape[1] <= width
        tile = cv2.resize(
            img, (width, height),
            interpolation=cv2.INTER_NEAREST if enlarge else cv2.INTER_AREA)
        x = i * (width + gap)
        canvas[:height, x:x + width] = tile
        for line, text in enumerate(lines[i] if lines else []):
            _put_text(canvas, text, x + 2,
                      height + (line + 1) * TEXT_LINE_HEIGHT - 3, width - 2)
    return canvas
