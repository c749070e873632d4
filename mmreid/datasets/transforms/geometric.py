"""Geometric augmentations of ReID crops: resize, translation, flip, crop.

All transforms work on ``results['img']``, an (H, W, C) ``uint8`` RGB array
as produced by :class:`ReIDLoadImageFromFile`, and use cv2 for resampling and
padding. Normalisation is not a transform: the data preprocessor does it on
the batch.

Randomness comes from the sample's own ``numpy.random.Generator``
(:func:`~mmreid.datasets.transforms.randomness.sample_rng`): seeded from
(seed, epoch, rank, position) by mmreid's samplers, so a resumed run and
any number of dataloader workers draw the same augmentations; from numpy's
global RNG otherwise, as in mmcv. The methods that draw random parameters
are marked with :func:`mmcv.transforms.utils.cache_randomness`, so
``cache_random_params`` can replay them. The photometric ones are in
:mod:`.photometric`.
"""
from typing import Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmreid.registry import TRANSFORMS
from mmreid.utils.deprecation import deprecated_registry_alias
from .pixel_fill import check_fill, fill_for_image
from .randomness import check_finite, check_prob, sample_rng

INTERPOLATIONS = {
    'nearest': cv2.INTER_NEAREST,
    'bilinear': cv2.INTER_LINEAR,
    'bicubic': cv2.INTER_CUBIC,
    'area': cv2.INTER_AREA,
    'lanczos': cv2.INTER_LANCZOS4,
}

PADDING_MODES = {
    'constant': cv2.BORDER_CONSTANT,
    'edge': cv2.BORDER_REPLICATE,
    # 'reflect' mirrors without repeating the edge pixel, as in numpy and
    # torchvision.
    'reflect': cv2.BORDER_REFLECT_101,
    'symmetric': cv2.BORDER_REFLECT,
}


def _check_size(size: Sequence[int]) -> Tuple[int, int]:
    if (not isinstance(size, Sequence) or len(size) != 2 or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0
            for s in size)):
        raise ValueError(f'size must be (height, width) with two positive '
                         f'ints, got {size!r}')
    return int(size[0]), int(size[1])


def _kept_span(offset: int, size: int) -> Tuple[int, int, int]:
    """The part of a window inside the image, on one axis.

    Args:
        offset (int): The window's first pixel, in image coordinates; the
            window has ``size`` pixels, as the image.
        size (int): The image's size on this axis.

    Returns:
        tuple[int, int, int]: ``(before, start, stop)``: the window's
        pixels before the image, and the image's kept pixels
        ``[start, stop)`` (empty when ``|offset| >= size``).
    """
    before = min(max(-offset, 0), size)
    start = min(max(offset, 0), size)
    stop = max(min(offset + size, size), start)
    return before, start, stop


def _border_index(start: int, length: int, size: int,
                  padding_mode: str) -> np.ndarray:
    """Source index of each padded position, for a non-constant padding.

    Position ``i`` (``start <= i < start + length``, in the coordinates of
    an axis of ``size`` pixels, negative or ``>= size`` in the padding)
    maps to the pixel that ``numpy.pad`` with the same mode puts there,
    for a padding of any width (reflections repeat).

    Returns:
        np.ndarray: (length, ) indices in [0, size).
    """
    index = np.arange(start, start + length)
    if padding_mode == 'edge':
        return np.clip(index, 0, size - 1)
    if padding_mode == 'symmetric':  # ... 1 0 | 0 1 ... n-1 | n-1 n-2 ...
        period = 2 * size
        index = index % period
        return np.where(index < size, index, period - 1 - index)
    # 'reflect': ... 2 1 | 0 1 ... n-1 | n-2 n-3 ...
    if size == 1:
        return np.zeros_like(index)
    period = 2 * (size - 1)
    index = index % period
    return np.where(index < size, index, period - index)


@TRANSFORMS.register_module()
class ReIDResize(BaseTransform):
    """Resize to a fixed size, ignoring the aspect ratio.

    ReID crops are resized to one size for the whole dataset (e.g.
    256 x 128). The size is given as **(height, width)**, unlike mmcv's
    ``Resize`` whose ``scale`` is (width, height); hence the distinct name.

    The resampling follows the chosen library exactly, because a model
    converted from another toolbox gives its own features only on the
    images it was tested with: fast-reid resizes with PIL bicubic,
    torchreid with PIL bilinear (both through torchvision's ``Resize`` on
    PIL images), mmreid by default with cv2 bilinear. PIL's filters widen
    with the downscaling factor (antialiasing), cv2's do not, so the same
    interpolation name gives different pixels in the two libraries.

    Required Keys:

    - img

    Modified Keys:

    - img
    - img_shape

    Args:
        size (Sequence[int]): Output (height, width). Defaults to (256, 128).
        interpolation (str): ``'nearest'``, ``'bilinear'``, ``'bicubic'``,
            ``'area'`` (cv2 only) or ``'lanczos'``. Defaults to
            ``'bilinear'``.
        backend (str): ``'cv2'`` (``cv2.resize``) or ``'pillow'``
            (``PIL.Image.resize`` on the uint8 image, as torchvision's
            ``Resize`` does for PIL images). Defaults to ``'cv2'``.
    """

    BACKENDS = ('cv2', 'pillow')
    #: PIL's filter (``PIL.Image.Resampling``) for each interpolation name.
    PIL_FILTERS = dict(
        nearest='NEAREST',
        bilinear='BILINEAR',
        bicubic='BICUBIC',
        lanczos='LANCZOS')

    def __init__(self,
                 size: Sequence[int] = (256, 128),
                 interpolation: str = 'bilinear',
                 backend: str = 'cv2') -> None:
        self.size = _check_size(size)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f'interpolation must be one of '
                             f'{sorted(INTERPOLATIONS)}, got '
                             f'{interpolation!r}')
        if backend not in self.BACKENDS:
            raise ValueError(f'backend must be one of {self.BACKENDS}, got '
                             f'{backend!r}')
        if backend == 'pillow' and interpolation not in self.PIL_FILTERS:
            raise ValueError(f'interpolation {interpolation!r} has no PIL '
                             f'filter; with backend="pillow" use one of '
                             f'{sorted(self.PIL_FILTERS)}')
        self.interpolation = interpolation
        self.backend = backend

    def _resize_pillow(self, img: np.ndarray) -> np.ndarray:
        from PIL import Image
        if img.dtype != np.uint8:
            raise ValueError(f'backend="pillow" resizes uint8 images, got '
                             f'{img.dtype}')
        if img.ndim not in (2, 3) or 0 in img.shape:
            raise ValueError(f'backend="pillow" resizes (H, W) or (H, W, C) '
                             f'images, got shape {img.shape}')
        height, width = self.size
        resample = Image.Resampling[self.PIL_FILTERS[self.interpolation]]
        if img.ndim == 3 and img.shape[2] not in (1, 3):
            # PIL takes 4 channels as RGBA and weights the colours by the
            # 4th when it resizes (a colour of 200 came out 0 where the
            # 4th was 0): each channel alone, as cv2 resizes them.
            channels = [
                Image.fromarray(np.ascontiguousarray(img[..., c])).resize(
                    (width, height), resample) for c in range(img.shape[2])
            ]
            return np.stack([np.asarray(c) for c in channels], axis=2)
        squeeze = img.ndim == 3 and img.shape[2] == 1
        pil = Image.fromarray(img[..., 0] if squeeze else img)
        out = np.asarray(pil.resize((width, height), resample))
        return out[..., None] if squeeze else out

    def transform(self, results: dict) -> dict:
        img = results['img']
        height, width = self.size
        if img.shape[:2] != (height, width):
            if self.backend == 'pillow':
                img = self._resize_pillow(img)
            else:
                img = cv2.resize(
                    img, (width, height),
                    interpolation=INTERPOLATIONS[self.interpolation])
                if img.ndim == 2 and results['img'].ndim == 3:
                    # cv2 drops a trailing channel axis of size 1.
                    img = img[..., None]
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.size}, '
                f'interpolation={self.interpolation!r}, '
                f'backend={self.backend!r})')


@TRANSFORMS.register_module()
class Random2DTranslation(BaseTransform):
    """Resize, and with probability ``prob`` enlarge then crop randomly.

    The torchreid augmentation used by SNR (Jin et al., 2020): with
    probability ``prob`` the image is resized to ``scale`` times the output
    size (1.125: 288 x 144 for 256 x 128) and a random window of the output
    size is cut from it; otherwise it is resized to the output size. Unlike
    :class:`PadRandomCrop` no border is added: the person is zoomed in by
    ``scale`` and shifted.

    Required Keys:

    - img

    Modified Keys:

    - img
    - img_shape

    Args:
        size (Sequence[int]): Output (height, width). Defaults to (256, 128).
        prob (float): Probability of the enlarge-and-crop branch. Defaults
            to 0.5.
        scale (float): Enlargement factor, >= 1. Defaults to 1.125.
        interpolation (str): As in :class:`ReIDResize`. Defaults to
            ``'bilinear'``.
        backend (str): As in :class:`ReIDResize`: ``'cv2'`` (the default)
            or ``'pillow'``, which the torchreid code resizes with (PIL
            filters antialias when they shrink, cv2's do not).
    """

    #: Draws from the per-sample generator (see :func:`sample_rng`).
    draws_from_sample_rng = True

    def __init__(self,
                 size: Sequence[int] = (256, 128),
                 prob: float = 0.5,
                 scale: float = 1.125,
                 interpolation: str = 'bilinear',
                 backend: str = 'cv2') -> None:
        check_prob(prob)
        if check_finite(scale, 'scale') < 1:
            raise ValueError(f'scale must be >= 1, got {scale!r}')
        self.resize = ReIDResize(size, interpolation, backend)
        height, width = self.resize.size
        self.enlarged = ReIDResize(
            (int(round(height * scale)), int(round(width * scale))),
            interpolation, backend)
        self.prob = prob
        self.scale = scale

    @cache_randomness
    def _draw(self, rng: np.random.Generator) -> Tuple[bool, float, float]:
        """Whether to enlarge, and the window's relative (top, left)."""
        enlarge = rng.random() < self.prob
        top, left = rng.random(2)
        return bool(enlarge), float(top), float(left)

    def transform(self, results: dict) -> dict:
        enlarge, top, left = self._draw(sample_rng(results))
        if not enlarge:
            return self.resize(results)
        results = self.enlarged(results)
        height, width = self.resize.size
        big_height, big_width = self.enlarged.size
        y0 = int(round(top * (big_height - height)))
        x0 = int(round(left * (big_width - width)))
        img = results['img'][y0:y0 + height, x0:x0 + width]
        results['img'] = np.ascontiguousarray(img)
        results['img_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(size={self.resize.size}, '
                f'prob={self.prob}, scale={self.scale}, '
                f'interpolation={self.resize.interpolation!r}, '
                f'backend={self.resize.backend!r})')


@TRANSFORMS.register_module()
class ReIDRandomFlip(BaseTransform):
    """Mirror the image horizontally with probability ``prob``.

    Required Keys:

    - img

    Modified Keys:

    - img

    Added Keys:

    - flip (bool): whether the image was mirrored.

    Args:
        prob (float): Probability of flipping. Defaults to 0.5.
    """

    #: Draws from the per-sample generator (see :func:`sample_rng`).
    draws_from_sample_rng = True
    #: Its one draw is whether it flips: ``prob`` 0 or 1 is deterministic.
    draws_only_whether_it_acts = True

    def __init__(self, prob: float = 0.5) -> None:
        check_prob(prob)
        self.prob = prob

    @cache_randomness
    def _draw_flip(self, rng: np.random.Generator) -> bool:
        return bool(rng.random() < self.prob)

    def transform(self, results: dict) -> dict:
        flip = self._draw_flip(sample_rng(results))
        if flip:
            img = results['img']
            flipped = cv2.flip(img, 1)
            if flipped.ndim == 2 and img.ndim == 3:
                # cv2 drops a trailing channel axis of size 1.
                flipped = flipped[..., None]
            results['img'] = flipped
        results['flip'] = flip
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(prob={self.prob})'


@TRANSFORMS.register_module()
class PadRandomCrop(BaseTransform):
    """Pad every side, then crop a random window of the original size.

    This is the "pad 10, random crop" augmentation of the BoT recipe: the
    person is shifted by up to ``padding`` pixels in each direction. The
    output has the input's size (H, W), for any ``padding``, also one
    larger than the image: it is torchvision's ``Pad(padding, fill,
    padding_mode)`` followed by ``RandomCrop((H, W))``, i.e. the window's
    top-left corner is uniform in [0, 2 * padding] on each axis of the
    padded image. Only the window is computed (one allocation of the
    output), never the padded image.

    Required Keys:

    - img

    Modified Keys:

    - img

    Args:
        padding (int): Pixels added to each side. Defaults to 10.
        fill (int | Sequence[int]): Pad value for ``padding_mode='constant'``:
            a pixel value in [0, 255] for every channel, or one per channel
            (RGB order; 3 values for the loader's images). A fill whose
            length is not the image's channel count is refused when the
            image comes. Defaults to 0 (black, as torchvision's ``Pad``).
        padding_mode (str): ``'constant'``, ``'edge'``, ``'reflect'``
            (mirror without repeating the edge) or ``'symmetric'``, as in
            ``numpy.pad`` (reflections repeat when the padding exceeds the
            image). Defaults to ``'constant'``.
    """

    #: Draws from the per-sample generator (see :func:`sample_rng`).
    draws_from_sample_rng = True

    def __init__(self,
                 padding: int = 10,
                 fill: Union[int, Sequence[int]] = 0,
                 padding_mode: str = 'constant') -> None:
        if not isinstance(padding, int) or isinstance(padding,
                                                      bool) or padding < 0:
            raise ValueError(f'padding must be an int >= 0, got {padding!r}')
        if padding_mode not in PADDING_MODES:
            raise ValueError(f'padding_mode must be one of '
                             f'{sorted(PADDING_MODES)}, got '
                             f'{padding_mode!r}')
        self._fill = check_fill('fill', fill)
        self.padding = padding
        self.fill = fill
        self.padding_mode = padding_mode

    @cache_randomness
    def _draw_offset(self, rng: np.random.Generator) -> Tuple[int, int]:
        """Top-left corner of the window in padded coordinates."""
        top, left = rng.integers(0, 2 * self.padding + 1, size=2)
        return int(top), int(left)

    def _cv2_pads_exactly(self, kept: Tuple[int, int], borders: Sequence[int],
                          num_channels: int) -> bool:
        """Whether padding only the kept part gives the window.

        ``cv2.copyMakeBorder`` on the part of the image inside the window
        (one allocation) equals padding the whole image unless that part is
        empty, a mirrored border is wider than it, or the fill has more
        than the 4 values a cv2 scalar holds.

        Args:
            kept (tuple[int, int]): (height, width) of the kept part.
            borders (Sequence[int]): (top, bottom, left, right) borders.
            num_channels (int): The image's channel count.
        """
        kept_h, kept_w = kept
        if kept_h == 0 or kept_w == 0 or num_channels > 4:
            return False
        # The mirror modes reach at most this far into the kept part.
        reach = dict(reflect=1, symmetric=0).get(self.padding_mode)
        if reach is None:  # 'constant', 'edge'
            return True
        top, bottom, left, right = borders
        return (max(top, bottom) <= kept_h - reach
                and max(left, right) <= kept_w - reach)

    def _crop_by_definition(self, img: np.ndarray, y0: int,
                            x0: int) -> np.ndarray:
        """The window at (y0, x0) of the image padded without bounds.

        Args:
            img (np.ndarray): (H, W) or (H, W, C) image.
            y0 (int): Window's top row in ``img``'s coordinates.
            x0 (int): Window's left column in ``img``'s coordinates.

        Returns:
            np.ndarray: Same shape and dtype as ``img``.
        """
        height, width = img.shape[:2]
        if self.padding_mode != 'constant':
            rows = _border_index(y0, height, height, self.padding_mode)
            cols = _border_index(x0, width, width, self.padding_mode)
            return img[rows[:, None], cols[None, :]]
        fill = fill_for_image('fill', self._fill, img)
        out = np.empty_like(img)
        out[...] = fill if img.ndim == 3 else fill[0]
        top, y_start, y_stop = _kept_span(y0, height)
        left, x_start, x_stop = _kept_span(x0, width)
        out[top:top + y_stop - y_start,
            left:left + x_stop - x_start] = img[y_start:y_stop, x_start:x_stop]
        return out

    def transform(self, results: dict) -> dict:
        img = results['img']
        pad = self.padding
        if pad == 0:
            return results
        height, width = img.shape[:2]
        num_channels = 1 if img.ndim == 2 else img.shape[2]
        top, left = self._draw_offset(sample_rng(results))
        # Window [top, top + H) x [left, left + W) of the padded image, in
        # the coordinates of the original image.
        y0, x0 = top - pad, left - pad
        border_top, y_start, y_stop = _kept_span(y0, height)
        border_left, x_start, x_stop = _kept_span(x0, width)
        kept = (y_stop - y_start, x_stop - x_start)
        borders = (border_top, height - border_top - kept[0], border_left,
                   width - border_left - kept[1])
        if not self._cv2_pads_exactly(kept, borders, num_channels):
            results['img'] = self._crop_by_definition(img, y0, x0)
            return results
        value = 0
        if self.padding_mode == 'constant':
            fill = fill_for_image('fill', self._fill, img)
            value = tuple(float(v) for v in fill)
        out = cv2.copyMakeBorder(
            img[y_start:y_stop, x_start:x_stop],
            *borders,
            PADDING_MODES[self.padding_mode],
            value=value)
        if out.ndim == 2 and img.ndim == 3:
            out = out[..., None]
        results['img'] = out
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(padding={self.padding}, '
                f'fill={self.fill}, padding_mode={self.padding_mode!r})')


# The old name shadowed mmpretrain's class, which takes other arguments;
# kept for one release.
deprecated_registry_alias(TRANSFORMS, 'RandomFlip', ReIDRandomFlip,
                          'mmpretrain.RandomFlip')
