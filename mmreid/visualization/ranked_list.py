"""Draw a query and its top-k gallery matches on one canvas.

The layout is fixed so that callers (and tests) can locate every tile::

    | query | QUERY_GAP | g1 | GAP | g2 | GAP | ... | gk |
    | text  |           | text    | text    |     | text |

Every tile is ``tile_size`` pixels with a coloured frame of ``BORDER`` pixels
drawn over its outer edge; the text lines sit under the tiles: the rank (and
distance), then the lines of each label (``'pid 8512\ncam 3'`` is two
lines), then an optional note across the whole canvas (``'first correct
match at rank 37'``). Text that is too wide for its tile is drawn smaller,
down to ``MIN_FONT_SCALE``, before it is shortened.
"""
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

#: Frame colours, RGB.
QUERY_COLOR = (0, 90, 255)
MATCH_COLOR = (0, 200, 0)
MISMATCH_COLOR = (230, 0, 0)
UNKNOWN_COLOR = (150, 150, 150)
BACKGROUND_COLOR = (255, 255, 255)
TEXT_COLOR = (0, 0, 0)

#: Layout, in pixels.
BORDER = 4
GAP = 4
QUERY_GAP = 16
TEXT_LINE_HEIGHT = 12

_FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.35
#: Smallest scale text is shrunk to (about 5 px high) before it is clipped.
MIN_FONT_SCALE = 0.25


def first_match_note(rank: int, cmc_mode: str = 'standard') -> str:
    """The note of a ranked list whose first correct match is not in its
    top k: ``'first correct match at rank N'``.

    ``N`` is the match's position in the full ranked list, which the
    picture shows. Under ``cmc_mode='dedup'`` (SYSU-MM01, LLCM) the CMC
    counts each gallery identity once, so its rank of that match is
    smaller; the note then says ``of the full ranked list``, as the HTML
    report's lists do, lest it be read as the reported CMC's rank.

    Args:
        rank (int): The 1-based position of the first correct match in the
            full ranked list.
        cmc_mode (str): The metric's ``cmc_mode``. Defaults to
            ``'standard'``.

    Returns:
        str: The note.
    """
    where = ' of the full ranked list' if cmc_mode == 'dedup' else ''
    return f'first correct match at rank {rank}{where}'


def _check_image(img, name: str) -> None:
    if not isinstance(img, np.ndarray):
        raise TypeError(f'{name} must be a numpy array (H, W, 3) RGB uint8, '
                        f'got {type(img).__name__}')
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'{name} must have shape (H, W, 3), got '
                         f'{tuple(img.shape)}')
    if img.dtype != np.uint8:
        raise ValueError(f'{name} must be uint8, got {img.dtype}')
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise ValueError(f'{name} is empty: shape {tuple(img.shape)}')


def _check_length(values, name: str, num_gallery: int) -> None:
    if values is not None and len(values) != num_gallery:
        raise ValueError(f'{name} has {len(values)} entries but '
                         f'gallery_imgs has {num_gallery}; they must match')


def tile_offsets(num_gallery: int, tile_size=(128, 64)) -> List[int]:
    """Left x coordinate of every tile on the canvas.

    Args:
        num_gallery (int): Number of gallery tiles.
        tile_size (tuple[int, int]): ``(height, width)`` of one tile.

    Returns:
        list[int]: ``num_gallery + 1`` offsets, the query's first.
    """
    width = tile_size[1]
    offsets = [0]
    x = width + QUERY_GAP
    for _ in range(num_gallery):
        offsets.append(x)
        x += width + GAP
    return offsets


def _frame(img: np.ndarray, tile_size: Tuple[int, int],
           color: Tuple[int, int, int]) -> np.ndarray:
    height, width = tile_size
    tile = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    tile = np.ascontiguousarray(tile)
    tile[:BORDER] = color
    tile[-BORDER:] = color
    tile[:, :BORDER] = color
    tile[:, -BORDER:] = color
    return tile


def fit_text(text: str, max_width: int) -> Tuple[str, float]:
    """The text and font scale that fit ``max_width`` pixels.

    The scale shrinks from ``FONT_SCALE`` to ``MIN_FONT_SCALE`` first; only
    text still too wide then loses characters from its end.

    Returns:
        tuple[str, float]: The (possibly shortened) text and its scale.
    """
    scale = FONT_SCALE
    while scale > MIN_FONT_SCALE and _text_width(text, scale) > max_width:
        scale = round(scale - 0.01, 2)
    while text and _text_width(text, scale) > max_width:
        text = text[:-1]
    return text, scale


def _text_width(text: str, scale: float) -> int:
    (width, _), _ = cv2.getTextSize(text, _FONT, scale, 1)
    return width


def _put_text(canvas: np.ndarray, text: str, x: int, y: int,
              max_width: int) -> None:
    text, scale = fit_text(text, max_width)
    cv2.putText(canvas, text, (x, y), _FONT, scale, TEXT_COLOR, 1, cv2.LINE_AA)


def _lines(label: Optional[str]) -> List[str]:
    return [] if label is None else str(label).split('\n')


def draw_ranked_list(query_img: np.ndarray,
                     gallery_imgs: Sequence[np.ndarray],
                     matches: Optional[Sequence[Optional[bool]]] = None,
                     distances: Optional[Sequence[float]] = None,
                     tile_size: Tuple[int, int] = (128, 64),
                     query_label: Optional[str] = None,
                     gallery_labels: Optional[Sequence[str]] = None,
                     note: Optional[str] = None) -> np.ndarray:
    """Draw a query image followed by its ranked gallery images.

    The query gets a blue frame; a gallery image gets a green frame when it
    shows the query's identity, a red one when it does not, and a grey one
    when that is unknown (``matches`` is None or its entry is None).

    Args:
        query_img (np.ndarray): Query image, (H, W, 3) RGB uint8.
        gallery_imgs (Sequence[np.ndarray]): The top-k gallery images in
            rank order, each (H_i, W_i, 3) RGB uint8. May be empty.
        matches (Sequence[bool | None], optional): Per gallery image, whether
            its identity is the query's. Defaults to None (all unknown).
        distances (Sequence[float], optional): Per gallery image, its
            distance to the query, printed under the tile.
        tile_size (tuple[int, int]): ``(height, width)`` every image is
            resized to. Defaults to (128, 64).
        query_label (str, optional): Text under the query, e.g. its pid;
            ``'\\n'`` starts a new line.
        gallery_labels (Sequence[str], optional): Text under each gallery
            image, e.g. ``'pid 3\\ncam 2'`` (two lines, so that a 4-digit
            pid and the camera both fit a 64-pixel tile).
        note (str, optional): A last line across the canvas, e.g. ``'first
            correct match at rank 37'``.

    Returns:
        np.ndarray: The canvas, (tile_h + text_h, W_canvas, 3) RGB uint8
        where ``text_h`` is ``TEXT_LINE_HEIGHT`` times 1 (rank line) + the
        most label lines of any tile + 1 if there is a note, and
        ``W_canvas = tile_w * (k + 1) + QUERY_GAP + GAP * (k - 1)``
        (``tile_w`` when k is 0).
    """
    if (not isinstance(tile_size, (tuple, list)) or len(tile_size) != 2
            or not all(isinstance(s, (int, np.integer)) for s in tile_size)
            or min(tile_size) <= 2 * BORDER):
        raise ValueError('tile_size must be (height, width) of ints larger '
                         f'than {2 * BORDER}, got {tile_size!r}')
    tile_size = (int(tile_size[0]), int(tile_size[1]))
    _check_image(query_img, 'query_img')
    if isinstance(gallery_imgs, np.ndarray) and gallery_imgs.ndim == 3:
        raise ValueError('gallery_imgs must be a sequence of (H, W, 3) '
                         'images, got a single image')
    gallery_imgs = list(gallery_imgs)
    for i, img in enumerate(gallery_imgs):
        _check_image(img, f'gallery_imgs[{i}]')
    num_gallery = len(gallery_imgs)
    _check_length(matches, 'matches', num_gallery)
    _check_length(distances, 'distances', num_gallery)
    _check_length(gallery_labels, 'gallery_labels', num_gallery)

    label_lines = [_lines(query_label)] + [
        _lines(None if gallery_labels is None else gallery_labels[rank])
        for rank in range(num_gallery)
    ]
    num_label_lines = max(len(lines) for lines in label_lines)
    text_h = TEXT_LINE_HEIGHT * (1 + num_label_lines + (note is not None))
    height, width = tile_size
    offsets = tile_offsets(num_gallery, tile_size)
    canvas_w = offsets[-1] + width
    canvas = np.empty((height + text_h, canvas_w, 3), dtype=np.uint8)
    canvas[...] = BACKGROUND_COLOR

    canvas[:height, :width] = _frame(query_img, tile_size, QUERY_COLOR)
    first_line = height + TEXT_LINE_HEIGHT - 3
    _put_text(canvas, 'query', 2, first_line, width - 2)
    for line, text in enumerate(label_lines[0], 1):
        _put_text(canvas, text, 2, first_line + line * TEXT_LINE_HEIGHT,
                  width - 2)

    for rank, img in enumerate(gallery_imgs):
        match = None if matches is None else matches[rank]
        if match is None:
            color = UNKNOWN_COLOR
        else:
            color = MATCH_COLOR if bool(match) else MISMATCH_COLOR
        x = offsets[rank + 1]
        canvas[:height, x:x + width] = _frame(img, tile_size, color)
        text = f'#{rank + 1}'
        if distances is not None:
            text += f': {float(distances[rank]):.3g}'
        _put_text(canvas, text, x + 2, first_line, width - 2)
        for line, text in enumerate(label_lines[rank + 1], 1):
            _put_text(canvas, text, x + 2,
                      first_line + line * TEXT_LINE_HEIGHT, width - 2)
    if note is not None:
        _put_text(canvas, str(note), 2,
                  first_line + (1 + num_label_lines) * TEXT_LINE_HEIGHT,
                  canvas_w - 4)
    return canvas
