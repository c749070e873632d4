"""Transforms and the data preprocessor against their definitions.

Each test pins a behaviour that the docstrings (or torchvision / torchreid,
which they follow) define and no other test held: a change to it would
silently give other pixels, labels or metainfo.
"""
import re

import cv2
import numpy as np
import pytest
import torch

from mmreid.datasets.samplers import SeededIndex
from mmreid.datasets.transforms import (PackReIDInputs, PadRandomCrop,
                                        Random2DTranslation, RandomChannel,
                                        ReIDColorJitter, ReIDLoadImageFromFile,
                                        ReIDRandomErasing, ReIDResize)
from mmreid.models.data_preprocessors import ReIDDataPreprocessor


def image(height, width, low=0, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(low, 256, (height, width, 3), dtype=np.uint8)


def coordinates(height, width):
    """Pixel (y, x) holds (10 * y, 10 * x, 0): a window shows its origin."""
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 0] = 10 * np.arange(height)[:, None]
    img[..., 1] = 10 * np.arange(width)[None, :]
    return img


def red_and_green():
    img = np.zeros((4, 4, 3), np.uint8)
    img[:2] = (255, 0, 0)
    img[2:] = (0, 255, 0)
    return img


# ---------------------------------------------------------------------------
# ReIDResize (cv2 backend)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('name,flag', [('nearest', cv2.INTER_NEAREST),
                                       ('bilinear', cv2.INTER_LINEAR),
                                       ('bicubic', cv2.INTER_CUBIC),
                                       ('area', cv2.INTER_AREA),
                                       ('lanczos', cv2.INTER_LANCZOS4)])
@pytest.mark.parametrize('size', [(20, 9), (70, 33)])
def test_cv2_resize_uses_the_filter_it_names(name, flag, size):
    """Each interpolation name is cv2's filter of that name, shrinking and
    enlarging: another filter gives a converted model other pixels than
    the ones it was tested with."""
    img = image(45, 21, seed=1)
    out = ReIDResize(size, name)(dict(img=img.copy()))['img']
    expected = cv2.resize(img, (size[1], size[0]), interpolation=flag)
    np.testing.assert_array_equal(out, expected)


def test_area_interpolation_averages_the_pixels_it_covers():
    """Shrinking by 3 with 'area' gives each pixel the mean of its 3 x 3
    block; here the block centre (what bilinear samples) is 1 below it."""
    base = np.random.default_rng(2).integers(0, 200, (4, 3, 3))
    pattern = np.zeros((3, 3))
    pattern[1, 2] = 9  # block mean: base + 1; block centre: base
    blocks = np.kron(base, np.ones((3, 3, 1)))
    img = (blocks + np.tile(pattern, (4, 3))[..., None]).astype(np.uint8)
    out = ReIDResize((4, 3), 'area')(dict(img=img))['img']
    np.testing.assert_array_equal(out, base + 1)


def test_cv2_resize_keeps_a_single_channel_axis():
    """cv2 drops a trailing channel axis of size 1; the transform keeps the
    (H, W, 1) layout that PackReIDInputs turns into (1, H, W)."""
    img = image(12, 6)[..., :1]
    results = ReIDResize((6, 3))(dict(img=img))
    assert results['img'].shape == (6, 3, 1)
    assert results['img_shape'] == (6, 3)
    np.testing.assert_array_equal(
        results['img'][..., 0],
        cv2.resize(img[..., 0], (3, 6), interpolation=cv2.INTER_LINEAR))


# ---------------------------------------------------------------------------
# Random2DTranslation
# ---------------------------------------------------------------------------
def test_random_2d_translation_enlarges_to_the_rounded_size():
    """torchreid enlarges to int(round(side * scale)): 13 x 7 at 1.125 is
    15 x 8 (14.625, 7.875), not 14 x 7; the output's img_shape is the
    output size, not the enlarged one."""
    enlarged = coordinates(15, 8)  # already 15 x 8: not resampled
    transform = Random2DTranslation(size=(13, 7), prob=1.0, scale=1.125)
    origins = set()
    for seed in range(40):
        out = transform(dict(img=enlarged, rng=np.random.default_rng(seed)))
        y0, x0 = out['img'][0, 0, :2] // 10
        np.testing.assert_array_equal(out['img'],
                                      enlarged[y0:y0 + 13, x0:x0 + 7])
        assert out['img_shape'] == (13, 7)
        origins.add((int(y0), int(x0)))
    assert {y for y, _ in origins} == {0, 1, 2}
    assert {x for _, x in origins} == {0, 1}


def test_random_2d_translation_draws_from_the_sample_generator():
    """The sample's generator decides, in turn, whether to enlarge and the
    window's relative (top, left); the global RNG plays no part, else a
    resumed run or another number of workers crops other windows."""
    img = coordinates(24, 12)  # the 1.5x size: a window is a plain slice
    plain = cv2.resize(img, (8, 16), interpolation=cv2.INTER_LINEAR)
    transform = Random2DTranslation(size=(16, 8), prob=0.5, scale=1.5)
    enlarged_seen = set()
    for seed in range(30):
        outs = []
        for global_seed in (0, 1):
            np.random.seed(global_seed)
            outs.append(
                transform(dict(img=img, sample_idx=SeededIndex(5, seed))))
        rng = np.random.default_rng(seed)
        enlarge = rng.random() < 0.5
        top, left = rng.random(2)
        y0, x0 = int(round(top * 8)), int(round(left * 4))
        expected = img[y0:y0 + 16, x0:x0 + 8] if enlarge else plain
        for out in outs:
            np.testing.assert_array_equal(out['img'], expected)
        enlarged_seen.add(enlarge)
    assert enlarged_seen == {True, False}


@pytest.mark.parametrize('padding', [-1, -10])
def test_pad_random_crop_refuses_a_negative_padding(padding):
    """A negative padding is refused when built, naming it, not at the
    first image inside numpy."""
    with pytest.raises(ValueError, match=f'padding must be .*{padding}'):
        PadRandomCrop(padding=padding)


# ---------------------------------------------------------------------------
# ReIDRandomErasing
# ---------------------------------------------------------------------------
def test_random_erasing_takes_single_point_ranges_and_area_one():
    """Ranges need 0 < min <= max, the area one within (0, 1]. Area 0.25
    and aspect 1 erase 8 x 8 squares of a 16 x 16 image (h = w =
    round(sqrt(0.25 * 256))); area 1 is accepted, and as its box is the
    whole image (not h < H) it never fits: the image is left as is."""
    img = image(16, 16, low=1)
    square = ReIDRandomErasing(
        prob=1.,
        area_ratio_range=(0.25, 0.25),
        aspect_ratio_range=(1., 1.),
        fill_value=0)
    corners = set()
    for seed in range(20):
        out = square(dict(img=img, rng=np.random.default_rng(seed)))['img']
        ys, xs = np.nonzero((out == 0).all(axis=2))
        top, left = ys.min(), xs.min()
        assert len(ys) == 64 and ys.max() - top == xs.max() - left == 7
        corners.add((top, left))
        kept = np.ones((16, 16), bool)
        kept[top:top + 8, left:left + 8] = False
        np.testing.assert_array_equal(out[kept], img[kept])
    assert len(corners) > 10
    whole = ReIDRandomErasing(
        prob=1., area_ratio_range=(1., 1.), aspect_ratio_range=(1., 1.))
    out = whole(dict(img=img, rng=np.random.default_rng(0)))['img']
    np.testing.assert_array_equal(out, img)
    ReIDRandomErasing(area_ratio_range=(0.5, 1.))


# ---------------------------------------------------------------------------
# ReIDColorJitter
# ---------------------------------------------------------------------------
def test_color_jitter_contrast_blends_towards_the_rgb_grey_mean():
    """torchvision's contrast blends with the mean grey of the image, grey
    = 0.299 R + 0.587 G + 0.114 B: half red, half green is 113 (BGR
    weights would read red as blue: 89)."""
    out = ReIDColorJitter(contrast=(0., 0.))(dict(img=red_and_green()))
    grey_mean = (0.299 * 255 + 0.587 * 255) / 2
    assert np.abs(out['img'].astype(float) - grey_mean).max() <= 1


def test_color_jitter_saturation_zero_is_the_rgb_grey():
    """Saturation 0 gives the grey image: red 76, green 150 (0.299 and
    0.587 of 255), in all three channels."""
    out = ReIDColorJitter(saturation=(0., 0.))(dict(img=red_and_green()))
    expected = np.empty((4, 4, 3))
    expected[:2] = 0.299 * 255
    expected[2:] = 0.587 * 255
    assert np.abs(out['img'].astype(float) - expected).max() <= 1


@pytest.mark.parametrize('rgb,hue,expected', [
    ((255, 0, 0), -1 / 3, (0, 0, 255)),
    ((0, 0, 255), 1 / 3, (255, 0, 0)),
    ((0, 255, 0), -1 / 3, (255, 0, 0)),
])
def test_color_jitter_hue_turns_around_the_circle(rgb, hue, expected):
    """A hue shift is modulo a full turn, both ways: red - 120 degrees is
    blue (240), blue + 120 is red (360 = 0)."""
    img = np.empty((2, 3, 3), np.uint8)
    img[...] = rgb
    out = ReIDColorJitter(hue=(hue, hue))(dict(img=img))['img']
    np.testing.assert_array_equal(out, np.broadcast_to(expected, img.shape))


@pytest.mark.parametrize('hue,expected', [(0.01, (255, 17, 0)),
                                          (-0.01, (255, 0, 17))])
def test_color_jitter_hue_shift_is_the_nearest_2_degree_step(hue, expected):
    """uint8 HSV holds hue in 2-degree steps: 0.01 of a turn (3.6 degrees)
    is shifted by the nearest step, 4 degrees (one step, 2 degrees, if
    truncated): red becomes (255, 255 * 4 / 60, 0) or its mirror."""
    img = np.empty((2, 3, 3), np.uint8)
    img[...] = (255, 0, 0)
    out = ReIDColorJitter(hue=(hue, hue))(dict(img=img))['img']
    np.testing.assert_array_equal(out, np.broadcast_to(expected, img.shape))


def test_color_jitter_whether_it_acts_comes_from_the_sample_generator():
    """With prob < 1 the sample's generator, not the global RNG, decides
    whether an image is jittered (global seeds 0 and 1 would disagree)."""
    img = image(8, 4)
    jitter = ReIDColorJitter(brightness=(0.5, 0.5), prob=0.5)
    acted = set()
    for seed in range(20):
        outs = []
        for global_seed in (0, 1):
            np.random.seed(global_seed)
            outs.append(
                jitter(dict(img=img, sample_idx=SeededIndex(0, seed)))['img'])
        np.testing.assert_array_equal(outs[0], outs[1])
        acted.add(not np.array_equal(outs[0], img))
    assert acted == {True, False}


# ---------------------------------------------------------------------------
# RandomChannel
# ---------------------------------------------------------------------------
def channel_choice(img, out):
    """Which of R, G, B (0-2) or the grey (3) ``out`` replicates."""
    assert (out == out[..., :1]).all()
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    refs = [img[..., 0], img[..., 1], img[..., 2], grey]
    return [
        c for c, ref in enumerate(refs) if np.array_equal(out[..., 0], ref)
    ]


def test_random_channel_without_grayscale_picks_only_r_g_b():
    """grayscale=False leaves the luminance out of the choices."""
    img = image(8, 4)
    transform = RandomChannel(prob=1.0, grayscale=False)
    choices = set()
    for seed in range(60):
        out = transform(
            dict(img=img, modality=0, rng=np.random.default_rng(seed)))
        choice = channel_choice(img, out['img'])
        assert choice and choice[0] != 3
        choices.add(choice[0])
    assert choices == {0, 1, 2}


def test_random_channel_takes_a_sample_without_modality_as_visible():
    """A missing ``modality`` means visible: the image is replaced."""
    img = image(8, 4)
    out = RandomChannel(prob=1.0)(dict(img=img, rng=np.random.default_rng(0)))
    assert channel_choice(img, out['img'])


def test_random_channel_draws_from_the_sample_generator():
    """Whether and which channel come from the sample's generator: global
    seeds 0 and 1 would disagree on whether to replace at prob 0.5."""
    img = image(8, 4)
    transform = RandomChannel(prob=0.5)
    replaced = set()
    for seed in range(20):
        outs = []
        for global_seed in (0, 1):
            np.random.seed(global_seed)
            outs.append(
                transform(dict(img=img, sample_idx=SeededIndex(0, seed)))
                ['img'])
        np.testing.assert_array_equal(outs[0], outs[1])
        replaced.add(not np.array_equal(outs[0], img))
    assert replaced == {True, False}


# ---------------------------------------------------------------------------
# PackReIDInputs
# ---------------------------------------------------------------------------
def test_pack_keeps_pid_zero_as_a_label():
    """pid 0 is an identity (the first of every relabelled training set),
    not a missing label: it becomes gt_label [0]."""
    packed = PackReIDInputs()(dict(img=image(4, 2), pid=0, camid=0))
    assert packed['data_samples'].gt_label.tolist() == [0]


def test_pack_default_keys_carry_dsetid():
    """The source index of a multi-source set reaches the data sample."""
    packed = PackReIDInputs()(
        dict(img=image(4, 2), pid=3, dataset='dukemtmc', dsetid=1))
    assert packed['data_samples'].metainfo == dict(
        dataset='dukemtmc', dsetid=1)


def test_pack_takes_one_meta_key_as_a_string():
    """meta_keys='camid' is the key 'camid', not its letters."""
    packed = PackReIDInputs(meta_keys='camid')(
        dict(img=image(4, 2), camid=2, c=9))
    assert packed['data_samples'].metainfo == dict(camid=2)


# ---------------------------------------------------------------------------
# ReIDLoadImageFromFile
# ---------------------------------------------------------------------------
def test_load_empty_file_is_an_oserror_naming_it(tmp_path):
    """An empty file (an incomplete copy) is refused naming the file."""
    path = tmp_path / '0001_c1s1_000151_00.jpg'
    path.write_bytes(b'')
    with pytest.raises(OSError, match=re.escape(str(path)) + '.*0 bytes'):
        ReIDLoadImageFromFile()(dict(img_path=str(path)))


# ---------------------------------------------------------------------------
# ReIDDataPreprocessor
# ---------------------------------------------------------------------------
def test_preprocessor_mean_0_std_1_takes_a_0_1_batch_as_is():
    """Mean 0 and std 1 are no normalisation, on either scale: a 0-1 float
    batch passes unchanged (it is refused only for 0-255 statistics)."""
    pre = ReIDDataPreprocessor(mean=[0, 0, 0], std=[1, 1, 1])
    batch = torch.tensor([0.0, 0.25, 0.5, 1.0]).repeat(2, 3, 2, 1)
    torch.testing.assert_close(pre(dict(inputs=batch))['inputs'], batch)


def test_preprocessor_negative_0_255_mean_is_on_the_0_255_scale():
    """A mean of -128 (shift by 128 pixel levels) is on the 0-255 scale
    by its magnitude: a 0-1 float batch is refused as for ImageNet's."""
    pre = ReIDDataPreprocessor(mean=[-128] * 3, std=[1] * 3)
    batch = torch.tensor([0.0, 0.25, 0.5, 1.0]).repeat(2, 3, 2, 1)
    with pytest.raises(ValueError, match='0-1 scale'):
        pre(dict(inputs=batch))


@pytest.mark.parametrize('low,high,refused', [(0, 255, False),
                                              (0, 256, True),
                                              (-1, 255, True)])
def test_preprocessor_integer_batch_bounds_are_0_and_255(low, high, refused):
    """Integer batches must lie in [0, 255]: 256 or -1 is not a uint8
    pixel (a 16-bit or signed image) and is refused; an empty one has
    nothing to check."""
    pre = ReIDDataPreprocessor()
    batch = torch.full((2, 3, 4, 2), 100, dtype=torch.int32)
    batch[0, 0, 0, 0], batch[1, 2, 3, 1] = low, high
    if refused:
        with pytest.raises(ValueError, match=rf'\[{low}, {high}\]'):
            pre(dict(inputs=batch))
    else:
        torch.testing.assert_close(
            pre(dict(inputs=batch))['inputs'],
            pre(dict(inputs=batch.to(torch.uint8)))['inputs'])
    empty = pre(dict(inputs=torch.zeros(0, 3, 4, 2, dtype=torch.int64)))
    assert empty['inputs'].shape == (0, 3, 4, 2)


def test_preprocessor_moves_the_data_samples_with_the_inputs():
    """The labels go to the model's device with the images, else the loss
    meets a GPU feature and a CPU label. The meta device stands in for a
    GPU on a CPU-only machine."""
    from mmreid.structures import ReIDDataSample
    pre = ReIDDataPreprocessor(non_blocking=False).to('meta')
    sample = ReIDDataSample()
    sample.set_gt_label(3)
    out = pre(
        dict(
            inputs=torch.zeros(1, 3, 4, 2, dtype=torch.uint8),
            data_samples=[sample]))
    assert out['inputs'].device.type == 'meta'
    assert out['data_samples'][0].gt_label.device.type == 'meta'


@pytest.mark.parametrize('std', [(58.4, 0, 57.4), (58.4, -57.1, 57.4),
                                 (float('nan'), 1, 1)])
def test_preprocessor_refuses_a_std_that_is_not_positive(std):
    """(x - mean) / 0 is infinite (seen later, if at all, as NaN
    distances) and a negative std flips a channel's sign: refused when
    the preprocessor is built, naming the values."""
    with pytest.raises(ValueError, match='std must be positive'):
        ReIDDataPreprocessor(mean=(123.7, 116.3, 103.5), std=std)
