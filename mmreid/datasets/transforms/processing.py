"""Geometric and photometric augmentations of ReID crops.

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
``cache_random_params`` can replay them.
"""
import math
from numbers import Number
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmreid.registry import TRANSFORMS
from mmreid.utils.deprecation import deprecated_registry_alias
from .randomness import sample_rng

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

#: ImageNet mean as RGB pixel values (0-255); it becomes 0 after the data
#: preprocessor's normalisation.
IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
#: ImageNet std as RGB pixel values (0-255), as the data preprocessor uses.
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)
#: The BoT reference's erasing fill as RGB pixels (0-255): it fills with
#: ``c = (0.485, 0.456, 0.406)`` *after* ToTensor + Normalize, which is the
#: pixel ``mean + c * std`` (ImageNet mean and std above), to 3 decimals.
BOT_ERASING_FILL_RGB = (151.997, 142.327, 126.824)


def _check_size(size: Sequence[int]) -> Tuple[int, int]:
    if (not isinstance(size, Sequence) or len(size) != 2
            or not all(isinstance(s, int) and s > 0 for s in size)):
        raise ValueError(f'size must be (height, width) with two positive '
                         f'ints, got {size!r}')
    return int(size[0]), int(size[1])


def _check_range(name: str, value: Sequence[float]) -> Tuple[float, float]:
    if len(value) != 2 or not 0 < value[0] <= value[1]:
        raise ValueError(f'{name} must be (min, max) with 0 < min <= max, '
                         f'got {value!r}')
    return float(value[0]), float(value[1])


def _check_fill(name: str, fill: Union[Number,
                                       Sequence[Number]]) -> np.ndarray:
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


def _fill_for_image(name: str, fill: np.ndarray,
                    img: np.ndarray) -> np.ndarray:
    """A checked fill (see :func:`_check_fill`) matched to ``img``.

    A number or a single value fills every channel; otherwise there must
    be one value per channel, as torchvision requires of ``fill``.

    Args:
        name (str): The argument's name, for the error message.
        fill (np.ndarray): Shape () or (N, ), from :func:`_check_fill`.
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
        squeeze = img.ndim == 3 and img.shape[2] == 1
        pil = Image.fromarray(img[..., 0] if squeeze else img)
        height, width = self.size
        out = np.asarray(
            pil.resize((width, height),
                       Image.Resampling[self.PIL_FILTERS[self.interpolation]]))
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
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob!r}')
        if scale < 1:
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

    def __init__(self, prob: float = 0.5) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
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
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f'padding must be an int >= 0, got {padding!r}')
        if padding_mode not in PADDING_MODES:
            raise ValueError(f'padding_mode must be one of '
                             f'{sorted(PADDING_MODES)}, got '
                             f'{padding_mode!r}')
        self._fill = _check_fill('fill', fill)
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
        fill = _fill_for_image('fill', self._fill, img)
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
            fill = _fill_for_image('fill', self._fill, img)
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


@TRANSFORMS.register_module()
class ReIDRandomErasing(BaseTransform):
    """Random erasing (Zhong et al., AAAI 2020) of one rectangle.

    With probability ``prob`` a rectangle of area ``s * H * W`` with
    ``s ~ U(area_ratio_range)`` and aspect ratio ``r`` (height / width)
    drawn from ``aspect_ratio_range`` (see ``aspect_sampling``) gets the
    sides ``h = round(sqrt(s * H * W * r))``, ``w = round(sqrt(s * H * W /
    r))``; it is kept if ``0 < h < H`` and ``0 < w < W``, placed with its
    top-left corner uniform among the positions where it fits, and filled.
    Up to ``max_attempts`` boxes are drawn until one fits; if none fits the
    image is left as is.

    ``aspect_sampling`` chooses how ``r`` is drawn:

    - ``'log_uniform'`` (default): ``log r ~ U(log r1, log r2)``, as
      torchvision's ``RandomErasing``; tall and wide boxes are equally
      likely.
    - ``'uniform'``: ``r ~ U(r1, r2)``, as the BoT reference
      (reid-strong-baseline) and torchreid with ``(r1, r2) = (0.3, 1 /
      0.3)``. Most boxes are then tall: on 256 x 128 about 81% have ``h >
      w`` (59% with ``'log_uniform'``), and the mean box is about 106 x 62
      (87 x 71). With the other defaults (area (0.02, 0.4), 100 attempts)
      this is the reference's draw.

    Erasing runs on the pixels (``uint8``, RGB, 0-255) before the data
    preprocessor normalises, so ``fill_value`` is a pixel value. The
    default, the ImageNet mean pixel ``(123.675, 116.28, 103.53)``, becomes
    0 after normalisation. The BoT reference erases *after* normalisation
    with the constant ``c = (0.485, 0.456, 0.406)``: that is the pixel
    ``mean + c * std`` = ``(151.997, 142.327, 126.824)`` with ImageNet's
    mean and std (``BOT_ERASING_FILL_RGB``; ``(152, 142, 127)`` once
    rounded to ``uint8``), so BoT's erasing is
    ``dict(type='ReIDRandomErasing', prob=0.5, aspect_sampling='uniform',
    fill_value=(151.997, 142.327, 126.824))``. Passing ``c`` itself would
    fill with near-black pixels.

    Required Keys:

    - img

    Modified Keys:

    - img

    Args:
        prob (float): Probability of erasing. Defaults to 0.5.
        area_ratio_range (Sequence[float]): Range of the erased area as a
            fraction of the image. Defaults to (0.02, 0.4).
        aspect_ratio_range (Sequence[float]): Range of height / width.
            Defaults to (0.3, 1 / 0.3).
        aspect_sampling (str): How the aspect ratio is drawn from
            ``aspect_ratio_range``: ``'log_uniform'`` or ``'uniform'``
            (the BoT / torchreid draw), see above. Defaults to
            ``'log_uniform'``.
        fill_mode (str): ``'const'``: every pixel gets ``fill_value``;
            ``'random'``: i.i.d. uniform values in [0, 255] per pixel and
            channel (the original paper). Defaults to ``'const'``.
        fill_value (float | Sequence[float]): Fill for ``'const'``, one
            pixel value in [0, 255] for every channel or one per channel in
            the image's channel order (RGB; 3 values for the loader's
            images); rounded for ``uint8`` images. A fill whose length is
            not the image's channel count is refused when the image comes.
            Defaults to the ImageNet mean pixel.
        max_attempts (int): Boxes drawn before giving up. Defaults to 100.
    """

    #: Draws from the per-sample generator (see :func:`sample_rng`).
    draws_from_sample_rng = True
    ASPECT_SAMPLINGS = ('log_uniform', 'uniform')

    def __init__(self,
                 prob: float = 0.5,
                 area_ratio_range: Sequence[float] = (0.02, 0.4),
                 aspect_ratio_range: Sequence[float] = (0.3, 1 / 0.3),
                 fill_mode: str = 'const',
                 fill_value: Union[float, Sequence[float]] = IMAGENET_MEAN_RGB,
                 max_attempts: int = 100,
                 aspect_sampling: str = 'log_uniform') -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.area_ratio_range = _check_range('area_ratio_range',
                                             area_ratio_range)
        if self.area_ratio_range[1] > 1:
            raise ValueError(f'area_ratio_range must lie in (0, 1], got '
                             f'{area_ratio_range!r}')
        self.aspect_ratio_range = _check_range('aspect_ratio_range',
                                               aspect_ratio_range)
        if aspect_sampling not in self.ASPECT_SAMPLINGS:
            raise ValueError(f'aspect_sampling must be one of '
                             f'{self.ASPECT_SAMPLINGS}, got '
                             f'{aspect_sampling!r}')
        if fill_mode not in ('const', 'random'):
            raise ValueError(f'fill_mode must be "const" or "random", got '
                             f'{fill_mode!r}')
        self._fill = _check_fill('fill_value', fill_value)
        if max_attempts < 1:
            raise ValueError(f'max_attempts must be >= 1, got {max_attempts}')
        self.prob = prob
        self.aspect_sampling = aspect_sampling
        self.fill_mode = fill_mode
        self.fill_value = fill_value
        self.max_attempts = max_attempts

    @cache_randomness
    def _draw_box(
            self, height: int, width: int,
            rng: np.random.Generator) -> Optional[Tuple[int, int, int, int]]:
        """(top, left, box_height, box_width), or None for no erasing."""
        if rng.random() >= self.prob:
            return None
        log_ratio = (math.log(self.aspect_ratio_range[0]),
                     math.log(self.aspect_ratio_range[1]))
        uniform = self.aspect_sampling == 'uniform'
        for _ in range(self.max_attempts):
            # Two draws per attempt in either mode: area, then ratio.
            area = rng.uniform(*self.area_ratio_range) * height * width
            if uniform:
                ratio = rng.uniform(*self.aspect_ratio_range)
            else:
                ratio = math.exp(rng.uniform(*log_ratio))
            box_h = int(round(math.sqrt(area * ratio)))
            box_w = int(round(math.sqrt(area / ratio)))
            if 0 < box_h < height and 0 < box_w < width:
                top = rng.integers(0, height - box_h + 1)
                left = rng.integers(0, width - box_w + 1)
                return int(top), int(left), box_h, box_w
        return None

    def transform(self, results: dict) -> dict:
        img = results['img']
        rng = sample_rng(results)
        box = self._draw_box(*img.shape[:2], rng)
        if box is None:
            return results
        top, left, box_h, box_w = box
        # Write into a copy: the array may be shared with a cache.
        img = img.copy()
        region = img[top:top + box_h, left:left + box_w]
        if self.fill_mode == 'random':
            if img.dtype == np.uint8:
                region[...] = rng.integers(
                    0, 256, size=region.shape, dtype=np.uint8)
            else:
                region[...] = rng.uniform(0, 255, size=region.shape)
        else:
            fill = _fill_for_image('fill_value', self._fill, img)
            region[...] = fill if img.ndim == 3 else fill[0]
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(prob={self.prob}, '
                f'area_ratio_range={self.area_ratio_range}, '
                f'aspect_ratio_range={self.aspect_ratio_range}, '
                f'aspect_sampling={self.aspect_sampling!r}, '
                f'fill_mode={self.fill_mode!r}, '
                f'fill_value={self.fill_value}, '
                f'max_attempts={self.max_attempts})')


def _factor_range(name: str, value: Union[float, Sequence[float]],
                  center: float, bound: Tuple[float, float],
                  clip_first_on_zero: bool) -> Optional[tuple]:
    """torchvision's ``ColorJitter._check_input``.

    A number ``v >= 0`` means ``[center - v, center + v]``, with the lower
    end raised to 0 if ``clip_first_on_zero``; a ``(min, max)`` pair is
    taken as is. Either must then lie within ``bound``: a pair outside it is
    refused, never clipped.

    Returns:
        tuple | None: (min, max), or None when the change is off (the range
        is the single point ``center``).

    Raises:
        ValueError: naming ``name``, for a negative number, a malformed
            pair or a range outside ``bound``.
    """
    if isinstance(value, Number):
        if not value >= 0:
            raise ValueError(f'{name} must be >= 0, got {value}')
        low, high = center - float(value), center + float(value)
        if clip_first_on_zero:
            low = max(low, 0.)
    elif isinstance(value, Sequence) and len(value) == 2:
        low, high = float(value[0]), float(value[1])
    else:
        raise ValueError(f'{name} must be a number or (min, max), got '
                         f'{value!r}')
    if not bound[0] <= low <= high <= bound[1]:
        raise ValueError(f'{name} range (min, max) must satisfy '
                         f'{bound[0]} <= min <= max <= {bound[1]}, got '
                         f'{value!r}')
    if low == high == center:
        return None
    return low, high


@TRANSFORMS.register_module()
class ReIDColorJitter(BaseTransform):
    """Randomly change brightness, contrast, saturation and hue.

    Same semantics as torchvision's ``ColorJitter`` (a number ``v`` gives
    factors in ``[max(0, 1 - v), 1 + v]``, hue shifts in ``[-v, v]`` of a
    full turn, a ``(min, max)`` pair is used as is and refused, as
    torchvision does, if it leaves the valid range; the enabled changes are
    applied in random order), implemented with cv2 lookup tables on
    ``uint8`` RGB images. Grayscale is computed with cv2's weights (0.299,
    0.587, 0.114).

    Required Keys:

    - img (``uint8``, RGB)

    Modified Keys:

    - img

    Args:
        brightness (float | Sequence[float]): A number >= 0, or a
            ``(min, max)`` range of factors with ``0 <= min <= max``.
            Defaults to 0 (off).
        contrast (float | Sequence[float]): As ``brightness``. Defaults to 0
            (off).
        saturation (float | Sequence[float]): As ``brightness``. Defaults
            to 0 (off).
        hue (float | Sequence[float]): In [0, 0.5], or a range within
            [-0.5, 0.5]. Defaults to 0 (off).
        prob (float): Probability of jittering an image at all. Defaults to
            1.0 (always, as torchvision).
    """

    #: Draws from the per-sample generator (see :func:`sample_rng`).
    draws_from_sample_rng = True

    def __init__(self,
                 brightness: Union[float, Sequence[float]] = 0.,
                 contrast: Union[float, Sequence[float]] = 0.,
                 saturation: Union[float, Sequence[float]] = 0.,
                 hue: Union[float, Sequence[float]] = 0.,
                 prob: float = 1.0) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        inf = float('inf')
        self.brightness = _factor_range('brightness', brightness, 1.,
                                        (0., inf), True)
        self.contrast = _factor_range('contrast', contrast, 1., (0., inf),
                                      True)
        self.saturation = _factor_range('saturation', saturation, 1.,
                                        (0., inf), True)
        self.hue = _factor_range('hue', hue, 0., (-0.5, 0.5), False)
        self.prob = prob

    @cache_randomness
    def _draw_ops(self, rng: np.random.Generator) -> list:
        """The (name, factor) pairs to apply, in order; empty for none."""
        if rng.random() >= self.prob:
            return []
        candidates = [('brightness', self.brightness),
                      ('contrast', self.contrast),
                      ('saturation', self.saturation), ('hue', self.hue)]
        ops = [(name, span) for name, span in candidates if span is not None]
        order = rng.permutation(len(ops))
        return [(ops[i][0], float(rng.uniform(*ops[i][1]))) for i in order]

    @staticmethod
    def _blend_lut(factor: float, other: float = 0.) -> np.ndarray:
        """Table of ``clip(factor * v + (1 - factor) * other)``."""
        values = np.arange(256, dtype=np.float32) * factor
        values += (1 - factor) * other
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)

    def transform(self, results: dict) -> dict:
        img = results['img']
        ops = self._draw_ops(sample_rng(results))
        if not ops:
            return results
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise TypeError(f'ReIDColorJitter expects an (H, W, 3) uint8 RGB '
                            f'image, got {img.dtype} of shape {img.shape}')
        for name, factor in ops:
            if name == 'brightness':
                img = cv2.LUT(img, self._blend_lut(factor))
            elif name == 'contrast':
                mean = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).mean()
                img = cv2.LUT(img, self._blend_lut(factor, mean))
            elif name == 'saturation':
                gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
                gray = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
                img = cv2.addWeighted(img, factor, gray, 1 - factor, 0)
            else:
                # uint8 HSV stores hue in [0, 180): 2 degrees per unit.
                hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
                shift = int(round(factor * 180))
                lut = ((np.arange(256) + shift) % 180).astype(np.uint8)
                hue, sat, val = cv2.split(hsv)
                hsv = cv2.merge((cv2.LUT(hue, lut), sat, val))
                img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(brightness={self.brightness}, '
                f'contrast={self.contrast}, saturation={self.saturation}, '
                f'hue={self.hue}, prob={self.prob})')


@TRANSFORMS.register_module()
class RandomChannel(BaseTransform):
    """Replace a visible image by one of its colour channels or its grey.

    The channel augmentation of CAJ (Ye et al., "Channel Augmented Joint
    Learning for Visible-Infrared Recognition", ICCV 2021): with
    probability ``prob`` a visible image becomes a three-channel image of a
    randomly chosen R, G or B channel (or, with ``grayscale=True`` as one
    more choice, its luminance). An infrared camera measures emissivity,
    not colour, so cues that survive an arbitrary channel are the ones the
    two modalities can share: it discourages colour shortcuts. Infrared
    samples (``modality`` 1) are left alone.

    Required Keys:

    - img (``uint8``, RGB)
    - modality (optional; missing means visible)

    Modified Keys:

    - img

    Args:
        prob (float): Probability of replacing a visible image. Defaults to
            0.5.
        grayscale (bool): Whether the luminance is one of the choices.
            Defaults to True.
    """

    #: Draws from the per-sample generator (see :func:`sample_rng`).
    draws_from_sample_rng = True

    def __init__(self, prob: float = 0.5, grayscale: bool = True) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob!r}')
        self.prob = prob
        self.grayscale = grayscale

    @cache_randomness
    def _draw(self, rng: np.random.Generator) -> Tuple[bool, int]:
        """Whether to replace, and the choice (0-2 channel, 3 grey)."""
        choices = 4 if self.grayscale else 3
        return bool(rng.random() < self.prob), int(rng.integers(choices))

    def transform(self, results: dict) -> dict:
        apply, choice = self._draw(sample_rng(results))
        img = results['img']
        if (not apply or int(results.get('modality', 0)) != 0 or img.ndim != 3
                or img.shape[2] != 3):
            return results
        if choice == 3:
            single = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        else:
            single = img[..., choice]
        results['img'] = np.repeat(single[..., None], 3, axis=2)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(prob={self.prob}, '
                f'grayscale={self.grayscale})')


# The old names shadowed mmpretrain's/mmcv's classes, which take other
# arguments; kept for one release.
deprecated_registry_alias(TRANSFORMS, 'RandomFlip', ReIDRandomFlip,
                          'mmpretrain.RandomFlip')
deprecated_registry_alias(TRANSFORMS, 'RandomErasing', ReIDRandomErasing,
                          'mmpretrain.RandomErasing')
deprecated_registry_alias(TRANSFORMS, 'ColorJitter', ReIDColorJitter,
                          'mmpretrain.ColorJitter')
