"""Wrong-number hunt: the training augmentations against their definitions.

Each test draws many samples from a transform as a config uses it and
compares the frequencies, ranges and pixel values with the definition
(Zhong et al., "Random Erasing Data Augmentation", AAAI 2020; torchvision's
``Pad`` + ``RandomCrop``; CAJ's channel augmentation as the mbn README
describes mmreid's version; the per-sample seeds of
``mmreid.datasets.samplers.sample_seed``), computed by the small reference
code here. Tolerances are a few standard errors of the estimates; every
draw is seeded, so the tests are deterministic.
"""
import math

import numpy as np
import pytest

from mmreid.datasets.samplers import SeededIndex, sample_seeds
from mmreid.datasets.transforms import (PadRandomCrop, RandomChannel,
                                        ReIDRandomErasing, ReIDRandomFlip)


def noise_image(height, width, seed=0):
    """A uint8 RGB image of i.i.d. noise in [100, 255]."""
    rng = np.random.default_rng(seed)
    return rng.integers(100, 256, (height, width, 3), dtype=np.uint8)


def reference_log_uniform_boxes(height, width, num, seed):
    """Zhong et al.'s box draw with a log-uniform aspect ratio.

    Up to 100 attempts: area fraction ``s ~ U(0.02, 0.4)``, ``log r ~
    U(log 0.3, log(1 / 0.3))``, ``h = round(sqrt(s H W r))``, ``w =
    round(sqrt(s H W / r))``, accepted when ``0 < h < H`` and ``0 < w <
    W``. Written from the definition, on Python floats.
    """
    rng = np.random.default_rng(seed)
    low, high = math.log(0.3), math.log(1 / 0.3)
    sizes = []
    while len(sizes) < num:
        for _ in range(100):
            area = rng.uniform(0.02, 0.4) * height * width
            ratio = math.exp(rng.uniform(low, high))
            box_h = int(round(math.sqrt(area * ratio)))
            box_w = int(round(math.sqrt(area / ratio)))
            if 0 < box_h < height and 0 < box_w < width:
                sizes.append((box_h, box_w))
                break
    return np.array(sizes, dtype=np.float64)


def erased_box(before, after):
    """(top, left, height, width) of the changed rectangle, or None."""
    changed = (before != after).any(axis=2)
    if not changed.any():
        return None
    ys, xs = np.nonzero(changed)
    top, left = ys.min(), xs.min()
    box_h, box_w = ys.max() - top + 1, xs.max() - left + 1
    assert changed.sum() == box_h * box_w, 'not one filled rectangle'
    return top, left, box_h, box_w


@pytest.mark.parametrize('prob', [0.5, 0.3])
def test_erasing_rate_is_p_and_default_boxes_match_the_definition(prob):
    """A user trains with the default ``ReIDRandomErasing(prob=p)`` (the
    CUHK03-NP, LLCM and SynthReID bases) on 256 x 128 crops.

    Right: an image is erased with probability p (Zhong et al., Alg. 1),
    the box's area fraction lies in [0.02, 0.4] up to the rounding of its
    sides, and its aspect ratio is log-uniform in [0.3, 1/0.3] as the
    class docstring and docs/customize.md say: about 59 % of the boxes are
    taller than wide, mean box about 87 x 71. The expected statistics come
    from the reference draw above; the bounds are about 4 standard errors.
    """
    height, width, num = 256, 128, 3000
    img = np.zeros((height, width, 3), np.uint8)
    transform = ReIDRandomErasing(prob=prob, fill_value=200)
    boxes = []
    for seed in range(num):
        out = transform(dict(img=img, rng=np.random.default_rng(seed)))
        box = erased_box(img, out['img'])
        if box is not None:
            boxes.append(box)
            top, left, box_h, box_w = box
            assert (out['img'][top:top + box_h, left:left + box_w] == 200
                    ).all()
    rate = len(boxes) / num
    assert abs(rate - prob) < 4 * math.sqrt(prob * (1 - prob) / num)
    boxes = np.array(boxes, dtype=np.float64)
    box_h, box_w = boxes[:, 2], boxes[:, 3]
    area = box_h * box_w / (height * width)
    slack = (box_h + box_w + 1) / (height * width)
    assert (area >= 0.02 - slack).all() and (area <= 0.4 + slack).all()
    reference = reference_log_uniform_boxes(height, width, 20000, seed=1)
    ref_h, ref_w = reference[:, 0], reference[:, 1]
    assert (ref_h > ref_w).mean() == pytest.approx(0.59, abs=0.01)
    assert ref_h.mean() == pytest.approx(87, abs=1.5)
    assert ref_w.mean() == pytest.approx(71, abs=1.5)
    tall = (box_h > box_w).mean()
    assert tall == pytest.approx((ref_h > ref_w).mean(), abs=0.05)
    assert box_h.mean() == pytest.approx(ref_h.mean(), abs=5)
    assert box_w.mean() == pytest.approx(ref_w.mean(), abs=3)
    # The top-left corner is uniform among the positions where the box
    # fits: its relative position has mean 1/2 (std of the mean ~0.01).
    free_h = np.maximum(height - box_h, 1)
    free_w = np.maximum(width - box_w, 1)
    assert (boxes[:, 0] / free_h).mean() == pytest.approx(0.5, abs=0.04)
    assert (boxes[:, 1] / free_w).mean() == pytest.approx(0.5, abs=0.04)


def test_pad_random_crop_offsets_are_uniform_over_the_2p_plus_1_squares():
    """A user trains with ``PadRandomCrop(padding=p)`` (BoT's pad 10).

    Right (torchvision's ``Pad(p)`` then ``RandomCrop((H, W))``): the
    window's top-left corner is uniform over the (2p + 1)^2 positions of
    the padded image, i.e. the person moves by (dy, dx) with each of dy,
    dx uniform in {-p, ..., p}, independently. A test of each cell's count
    against n / (2p + 1)^2 within 5 standard errors, and of the
    independence of the two axes.
    """
    pad, num = 2, 5000
    img = np.arange(1, 16 * 8 + 1, dtype=np.uint8).reshape(16, 8, 1)
    img = np.repeat(img, 3, axis=2)
    transform = PadRandomCrop(padding=pad)
    counts = np.zeros((2 * pad + 1, 2 * pad + 1), int)
    shifts = []
    for seed in range(num):
        out = transform(dict(img=img, rng=np.random.default_rng(seed)))
        # Where the image's pixel (5, 5) landed in the window.
        ys, xs = np.nonzero((out['img'] == img[5, 5]).all(axis=2))
        dy, dx = int(ys[0]) - 5, int(xs[0]) - 5
        counts[dy + pad, dx + pad] += 1
        shifts.append((dy, dx))
        expected = np.zeros_like(img)
        y0, x0 = max(dy, 0), max(dx, 0)
        src = img[max(-dy, 0):16 - max(dy, 0), max(-dx, 0):8 - max(dx, 0)]
        expected[y0:y0 + src.shape[0], x0:x0 + src.shape[1]] = src
        if seed < 200:  # zero padding, the rest the shifted image
            np.testing.assert_array_equal(out['img'], expected)
    cell = 1 / (2 * pad + 1)**2
    error = 5 * math.sqrt(num * cell * (1 - cell))
    assert np.abs(counts - num * cell).max() < error
    shifts = np.array(shifts, dtype=np.float64)
    assert abs(np.corrcoef(shifts.T)[0, 1]) < 5 / math.sqrt(num)


def test_random_channel_replaces_with_p_each_choice_equally_likely():
    """A user trains the SynthReID-vi configs with ``RandomChannel(0.5)``.

    Right (configs/mbn/README.md, the class docstring): a visible image is
    kept with probability 1 - p and otherwise becomes its R, G, B or grey
    channel (cv2 luminance), each with probability p / 4; an infrared image
    (modality 1) is never touched.
    """
    prob, num = 0.5, 4000
    img = noise_image(6, 4)
    grey = np.rint(img @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    references = [img[..., 0], img[..., 1], img[..., 2], grey]
    transform = RandomChannel(prob=prob)
    counts = dict(keep=0, choice=[0, 0, 0, 0])
    for seed in range(num):
        out = transform(
            dict(img=img, modality=0, rng=np.random.default_rng(seed)))['img']
        if np.array_equal(out, img):
            counts['keep'] += 1
            continue
        assert (out == out[..., :1]).all(), 'three equal channels'
        # cv2's fixed-point luminance may differ from the rounded float
        # by one level.
        match = [
            c for c, ref in enumerate(references) if np.abs(
                out[..., 0].astype(int) - ref).max() <= (c == 3)
        ]
        assert len(match) == 1, match
        counts['choice'][match[0]] += 1
        infrared = transform(
            dict(img=img, modality=1, rng=np.random.default_rng(seed)))
        np.testing.assert_array_equal(infrared['img'], img)
    keep = counts['keep'] / num
    assert abs(keep - (1 - prob)) < 4 * math.sqrt(prob * (1 - prob) / num)
    quarter = prob / 4
    for count in counts['choice']:
        assert abs(count / num - quarter) < 4 * math.sqrt(
            quarter * (1 - quarter) / num)


def test_sample_seeds_give_independent_flips_over_positions_epochs_ranks():
    """A user trains on 2 ranks for several epochs with mmreid's samplers.

    Right (``sample_seed`` module docstring, docs/customize.md): every
    sample's draws come from a seed that is a function of (seed, epoch,
    rank, position) only, so the same four give the same flip, while
    different positions, epochs and ranks draw independently: the flips
    of two ranks (or two epochs) at the same position agree half the time
    and each flips half the time, within 4 standard errors.
    """
    num = 2000
    flip = ReIDRandomFlip(prob=0.5)
    img = noise_image(2, 2)

    def flips(epoch, rank):
        seeds = sample_seeds(7, epoch, rank, num).tolist()
        return np.array([
            flip(dict(img=img, sample_idx=SeededIndex(0, s)))['flip']
            for s in seeds
        ])

    base = flips(0, 0)
    np.random.seed(123)  # the global RNG must not matter
    np.testing.assert_array_equal(flips(0, 0), base)
    bound = 4 * math.sqrt(0.25 / num)
    assert abs(base.mean() - 0.5) < bound
    for other in (flips(1, 0), flips(0, 1)):
        assert abs(other.mean() - 0.5) < bound
        assert abs((other == base).mean() - 0.5) < bound
    # Neighbouring positions are independent too.
    assert abs((base[1:] == base[:-1]).mean() - 0.5) < bound


@pytest.mark.parametrize('key, value', [('aspect_ratio_range', 0.3),
                                        ('area_ratio_range', 0.4)])
def test_erasing_scalar_range_is_refused_naming_the_argument(key, value):
    """A user ports torchreid's / mmpretrain's erasing, which take the
    aspect ratio as one number r1 (meaning [r1, 1 / r1]), and writes
    ``dict(type='ReIDRandomErasing', aspect_ratio_range=0.3)``.

    Got: ``TypeError: object of type 'float' has no len()`` from
    ``_check_range`` (mmreid/datasets/transforms/photometric.py:34), which
    calls ``len(value)`` before checking that ``value`` is a sequence;
    neither the argument nor the value is named, even through
    ``TRANSFORMS.build``. Every other range and size argument of the
    transforms is refused with a message naming both.

    Right (the project's rule that bad input gets a clear error naming the
    key and the value): either a ``ValueError`` naming ``key`` and
    ``value``, or, as mmpretrain does, the number taken as ``(r1, 1 /
    r1)`` for the aspect ratio.
    """
    try:
        transform = ReIDRandomErasing(**{key: value})
    except (TypeError, ValueError) as err:
        assert key in str(err) and repr(value) in str(err), str(err)
        return
    assert key == 'aspect_ratio_range'
    assert transform.aspect_ratio_range == pytest.approx((value, 1 / value))


def test_random_channel_refuses_a_grayscale_that_is_not_a_bool():
    """A user switches the grey choice off with ``grayscale='false'`` (a
    string, e.g. from a YAML/JSON config written by a script).

    Got: ``RandomChannel.__init__`` (mmreid/datasets/transforms/
    photometric.py:392) stores the value as is and ``_draw`` tests its
    truth, so the non-empty string means True: a quarter of the replaced
    visible images are grey, silently, against what was asked.

    Right: a ``ValueError``/``TypeError`` naming ``grayscale`` and the
    value, as ``prob`` of the same class and the other transforms'
    arguments are checked.
    """
    with pytest.raises((TypeError, ValueError), match='grayscale'):
        RandomChannel(prob=0.5, grayscale='false')
