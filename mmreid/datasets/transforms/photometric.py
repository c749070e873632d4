"""Photometric augmentations of ReID crops: erasing, colour, channels.

As the geometric ones (:mod:`.geometric`), they work on the (H, W, C)
``uint8`` RGB ``results['img']`` before normalisation, draw from the
sample's own generator (:func:`~.randomness.sample_rng`) and mark their
random draws with :func:`mmcv.transforms.utils.cache_randomness`.
"""
import math
import numbers
from numbers import Number
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmreid.registry import TRANSFORMS
from mmreid.utils.deprecation import deprecated_registry_alias
from .pixel_fill import check_fill, fill_for_image
from .randomness import check_finite, check_prob, sample_rng

#: ImageNet mean as RGB pixel values (0-255); it becomes 0 after the data
#: preprocessor's normalisation.
IMAGENET_MEAN_RGB = (123.675, 116.28, 103.53)
#: ImageNet std as RGB pixel values (0-255), as the data preprocessor uses.
IMAGENET_STD_RGB = (58.395, 57.12, 57.375)
#: The BoT reference's erasing fill as RGB pixels (0-255): it fills with
#: ``c = (0.485, 0.456, 0.406)`` *after* ToTensor + Normalize, which is the
#: pixel ``mean + c * std`` (ImageNet mean and std above), to 3 decimals.
BOT_ERASING_FILL_RGB = (151.997, 142.327, 126.824)


def _check_range(name: str, value: Sequence[float]) -> Tuple[float, float]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        # torchreid and mmpretrain take one number r1 for (r1, 1 / r1)
        raise ValueError(f'{name} must be a (min, max) pair with 0 < min '
                         f'<= max, got {value!r}')
    if len(value) != 2 or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool)
            and math.isfinite(v)
            for v in value) or not 0 < value[0] <= value[1]:
        raise ValueError(f'{name} must be (min, max) with 0 < min <= max, '
                         f'both finite, got {value!r}')
    return float(value[0]), float(value[1])


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
        check_prob(prob)
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
        self._fill = check_fill('fill_value', fill_value)
        if not isinstance(max_attempts, int) or isinstance(
                max_attempts, bool) or max_attempts < 1:
            raise ValueError(f'max_attempts must be an int >= 1, got '
                             f'{max_attempts!r}')
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
            fill = fill_for_image('fill_value', self._fill, img)
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
        if not check_finite(value, name) >= 0:
            raise ValueError(f'{name} must be >= 0, got {value}')
        low, high = center - float(value), center + float(value)
        if clip_first_on_zero:
            low = max(low, 0.)
    elif isinstance(value, Sequence) and len(value) == 2:
        low, high = (check_finite(v, f'{name} (min, max)') for v in value)
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
        check_prob(prob)
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
        # Checked on every sample, not only those it jitters: a wrong
        # image shows on the first one, whatever the draw.
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise TypeError(f'ReIDColorJitter expects an (H, W, 3) uint8 RGB '
                            f'image, got {img.dtype} of shape {img.shape}')
        ops = self._draw_ops(sample_rng(results))
        if not ops:
            return results
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

    The draw is mmreid's, not a copy of CAJ's transforms: here the four
    choices are equally likely and the image is kept with probability
    ``1 - prob``. CAJ's ``ChannelExchange`` always takes one of R, G, B;
    its ``ChannelAdapGray`` takes each of R, G, B with probability 1/4 and
    the grey with probability ``probability / 4`` (else keeps the image).

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
        check_prob(prob)
        if not isinstance(grayscale, bool):
            raise ValueError('RandomChannel: grayscale must be True or '
                             f'False, got {grayscale!r}')
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
deprecated_registry_alias(TRANSFORMS, 'RandomErasing', ReIDRandomErasing,
                          'mmpretrain.RandomErasing')
deprecated_registry_alias(TRANSFORMS, 'ColorJitter', ReIDColorJitter,
                          'mmpretrain.ColorJitter')
