import hashlib
import math
import os.path as osp
import random
import re

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms.utils import cache_random_params
from mmengine.config import Config
from mmengine.dataset import Compose

from mmreid.datasets.transforms.formatting import PackReIDInputs
from mmreid.datasets.transforms.geometric import (PadRandomCrop,
                                                  Random2DTranslation,
                                                  ReIDRandomFlip, ReIDResize)
from mmreid.datasets.transforms.loading import ReIDLoadImageFromFile
from mmreid.datasets.transforms.photometric import (BOT_ERASING_FILL_RGB,
                                                    ReIDColorJitter,
                                                    ReIDRandomErasing)
from mmreid.models.data_preprocessors import ReIDDataPreprocessor
from mmreid.registry import TRANSFORMS
from mmreid.structures import ReIDDataSample


def random_image(height=24, width=12, low=0, high=256, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(low, high, (height, width, 3), dtype=np.uint8)


# ---------------------------------------------------------------------------
# ReIDLoadImageFromFile
# ---------------------------------------------------------------------------
def test_load_image_is_rgb(tmp_path):
    bgr = np.zeros((6, 5, 3), dtype=np.uint8)
    bgr[1, 2] = (0, 0, 255)  # red in cv2's BGR order
    bgr[4, 0] = (255, 0, 0)  # blue
    path = str(tmp_path / 'red.png')
    assert cv2.imwrite(path, bgr)

    results = ReIDLoadImageFromFile()(dict(img_path=path))
    img = results['img']
    assert img.dtype == np.uint8 and img.shape == (6, 5, 3)
    np.testing.assert_array_equal(img[1, 2], (255, 0, 0))
    np.testing.assert_array_equal(img[4, 0], (0, 0, 255))
    assert results['img_shape'] == (6, 5)
    assert results['ori_shape'] == (6, 5)


def test_load_grayscale_gives_three_channels(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    path = str(tmp_path / 'ir.png')
    assert cv2.imwrite(path, gray)

    img = ReIDLoadImageFromFile()(dict(img_path=path))['img']
    assert img.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(img[..., c], gray)


def test_load_applies_the_exif_orientation_unlike_pil(tmp_path):
    # The documented behaviour: cv2 applies the EXIF orientation tag, PIL's
    # Image.open().convert('RGB') (torchreid, BoT, AGW) does not.
    from PIL import Image
    stored = np.zeros((20, 10, 3), np.uint8)
    stored[:5] = 255  # a white band along the top of the stored pixels
    pil = Image.fromarray(stored)
    exif = pil.getexif()
    # EXIF orientation 6: row 0 is the visual right-hand side, column 0
    # the visual top, i.e. shown rotated 90 degrees clockwise.
    exif[0x0112] = 6
    path = str(tmp_path / 'rotated.jpg')
    pil.save(path, exif=exif.tobytes(), quality=95)

    img = ReIDLoadImageFromFile()(dict(img_path=path))['img']
    assert img.shape == (10, 20, 3)
    assert img[:, -5:].mean() > 200 and img[:, :-5].mean() < 50
    with Image.open(path) as f:
        assert np.asarray(f.convert('RGB')).shape == (20, 10, 3)


@pytest.mark.parametrize('name', ['thermal.png', 'thermal.tiff'])
@pytest.mark.parametrize('channels', [1, 3])
def test_load_refuses_a_16_bit_image(tmp_path, name, channels):
    # A 12-bit thermal image stored in uint16: read as 8 bits, its values
    # 0..4095 would become 0..15, a nearly black image.
    thermal = np.linspace(0, 4095, 6 * 4).astype(np.uint16).reshape(6, 4)
    if channels == 3:
        thermal = np.repeat(thermal[..., None], 3, axis=2)
    path = str(tmp_path / name)
    assert cv2.imwrite(path, thermal)
    with pytest.raises(ValueError, match=re.escape(path)) as error:
        ReIDLoadImageFromFile()(dict(img_path=path))
    assert '16-bit' in str(error.value)
    assert 'Convert the file to 8-bit' in str(error.value)


def test_load_refuses_a_float_image(tmp_path):
    path = str(tmp_path / 'depth.tiff')
    assert cv2.imwrite(path, np.full((4, 3, 3), 0.5, np.float32))
    with pytest.raises(ValueError, match=r'32-bit samples \(float32\)'):
        ReIDLoadImageFromFile()(dict(img_path=path))


def test_load_8_bit_jpeg_is_the_decoded_file_in_rgb(tmp_path):
    bgr = random_image(seed=3)
    path = str(tmp_path / 'person.jpg')
    assert cv2.imwrite(path, bgr)
    img = ReIDLoadImageFromFile()(dict(img_path=path))['img']
    assert img.dtype == np.uint8
    np.testing.assert_array_equal(img, cv2.imread(path)[..., ::-1])


def test_load_missing_file_names_path(tmp_path):
    path = str(tmp_path / 'no_such_dir' / '0001_c1s1_000151_00.jpg')
    with pytest.raises(FileNotFoundError, match=re.escape(path)):
        ReIDLoadImageFromFile()(dict(img_path=path))


def test_load_corrupt_file_names_path(tmp_path):
    path = tmp_path / 'broken.jpg'
    path.write_bytes(b'this is not a jpeg')
    with pytest.raises(OSError, match=re.escape(str(path))):
        ReIDLoadImageFromFile()(dict(img_path=str(path)))


# ---------------------------------------------------------------------------
# ReIDResize
# ---------------------------------------------------------------------------
def test_resize_is_height_width():
    results = ReIDResize(size=(30, 15))(dict(img=random_image(10, 20)))
    assert results['img'].shape == (30, 15, 3)
    assert results['img'].dtype == np.uint8
    assert results['img_shape'] == (30, 15)


def test_resize_interpolation():
    img = np.array([[0, 100], [200, 250]], dtype=np.uint8)
    img = np.repeat(img[..., None], 3, axis=2)
    out = ReIDResize(
        size=(4, 4), interpolation='nearest')(dict(img=img))['img']
    np.testing.assert_array_equal(out[..., 0],
                                  np.kron(img[..., 0], np.ones((2, 2))))
    bilinear = ReIDResize(size=(4, 4))(dict(img=img))['img']
    assert not np.array_equal(bilinear, out)


@pytest.mark.parametrize('kwargs', [
    dict(size=256),
    dict(size=(256, 0)),
    dict(size=(256, 128, 3)),
    dict(interpolation='cubic-ish'),
])
def test_resize_bad_args(kwargs):
    with pytest.raises(ValueError):
        ReIDResize(**kwargs)


# ---------------------------------------------------------------------------
# ReIDRandomFlip
# ---------------------------------------------------------------------------
def test_flip_mirrors():
    img = random_image()
    results = ReIDRandomFlip(prob=1.)(dict(img=img.copy()))
    np.testing.assert_array_equal(results['img'], img[:, ::-1])
    assert results['flip'] is True

    results = ReIDRandomFlip(prob=0.)(dict(img=img.copy()))
    np.testing.assert_array_equal(results['img'], img)
    assert results['flip'] is False


def test_flip_probability():
    np.random.seed(0)
    flip = ReIDRandomFlip(prob=0.5)
    flips = [flip(dict(img=random_image(4, 4)))['flip'] for _ in range(400)]
    assert 150 < sum(flips) < 250


def test_flip_keeps_a_single_channel_axis():
    img = random_image(6, 4)[..., :1]
    out = ReIDRandomFlip(prob=1.)(dict(img=img))['img']
    assert out.shape == (6, 4, 1)
    np.testing.assert_array_equal(out, img[:, ::-1])


# ---------------------------------------------------------------------------
# PadRandomCrop
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('padding_mode,fill', [('constant', (1, 2, 3)),
                                               ('constant', 7), ('edge', 0),
                                               ('reflect', 0),
                                               ('symmetric', 0)])
def test_pad_random_crop_equals_pad_then_crop(padding_mode, fill):
    img = random_image(20, 11)
    pad = 4
    transform = PadRandomCrop(
        padding=pad, fill=fill, padding_mode=padding_mode)
    if padding_mode == 'constant':
        fill_rgb = np.broadcast_to(np.asarray(fill, np.uint8), (3, ))
        padded = np.empty((20 + 2 * pad, 11 + 2 * pad, 3), np.uint8)
        padded[...] = fill_rgb
        padded[pad:-pad, pad:-pad] = img
    else:
        padded = np.pad(
            img, ((pad, pad), (pad, pad), (0, 0)), mode=padding_mode)
    seen = set()
    for seed in range(40):
        with cache_random_params(transform):
            top, left = transform._draw_offset(np.random.default_rng(seed))
            out = transform(dict(img=img))['img']
        seen.add((top, left))
        assert out.shape == img.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out, padded[top:top + 20,
                                                  left:left + 11])
    # Offsets vary, including both extremes' neighbourhood.
    assert len(seen) > 20


def test_pad_random_crop_zero_padding_is_identity():
    img = random_image()
    assert PadRandomCrop(padding=0)(dict(img=img))['img'] is img


def pad_by_definition(img, pad, padding_mode, fill):
    """torchvision's ``Pad``: the whole image padded on every side."""
    if padding_mode != 'constant':
        widths = ((pad, pad), (pad, pad)) + ((0, 0), ) * (img.ndim - 2)
        return np.pad(img, widths, mode=padding_mode)
    height, width = img.shape[:2]
    padded = np.empty((height + 2 * pad, width + 2 * pad) + img.shape[2:],
                      img.dtype)
    padded[...] = fill
    padded[pad:pad + height, pad:pad + width] = img
    return padded


@pytest.mark.parametrize('padding_mode,fill', [('constant', (1, 2, 3)),
                                               ('constant', 7), ('edge', 0),
                                               ('reflect', 0),
                                               ('symmetric', 0)])
@pytest.mark.parametrize('pad', [2, 4, 5, 6, 11])
def test_pad_random_crop_any_padding_is_pad_then_crop(padding_mode, fill, pad):
    # A 5x4 image: the padding is smaller than, equal to and larger than
    # its sides. Every offset in [0, 2 * pad]^2 is checked against
    # torchvision's Pad + RandomCrop((5, 4)) written from the definition.
    img = random_image(5, 4)
    transform = PadRandomCrop(
        padding=pad, fill=fill, padding_mode=padding_mode)
    padded = pad_by_definition(img, pad, padding_mode, fill)
    for top in range(2 * pad + 1):
        for left in range(2 * pad + 1):
            transform._draw_offset = lambda rng, offset=(top, left): offset
            out = transform(dict(img=img))['img']
            assert out.shape == img.shape and out.dtype == img.dtype
            np.testing.assert_array_equal(
                out,
                padded[top:top + 5, left:left + 4],
                err_msg=f'offset {(top, left)}')


@pytest.mark.parametrize('shape', [(5, 4), (5, 4, 1)])
@pytest.mark.parametrize('padding_mode', ['constant', 'reflect'])
def test_pad_random_crop_large_padding_keeps_single_channel_shape(
        shape, padding_mode):
    img = random_image(5, 4)[..., 0].reshape(shape)
    transform = PadRandomCrop(
        padding=9, fill=(200, ), padding_mode=padding_mode)
    padded = pad_by_definition(img, 9, padding_mode, 200)
    for seed in range(20):
        with cache_random_params(transform):
            top, left = transform._draw_offset(np.random.default_rng(seed))
            out = transform(dict(img=img))['img']
        assert out.shape == shape
        np.testing.assert_array_equal(out, padded[top:top + 5, left:left + 4])


@pytest.mark.parametrize('fill', [(200, 200), (1, 2, 3, 4), 256, -1,
                                  (0, 0, 300), 'black', (),
                                  float('nan'), ((1, 2, 3), )])
def test_pad_random_crop_refuses_a_bad_fill(fill):
    with pytest.raises(ValueError, match=r'^fill must be .*\[0, 255\]'):
        PadRandomCrop(padding=2, fill=fill)


def test_pad_random_crop_fill_must_match_the_channels():
    gray = random_image(5, 4)[..., :1]
    with pytest.raises(ValueError, match=r'fill has 3 values.* 1 channel'):
        PadRandomCrop(padding=2, fill=(1, 2, 3))(dict(img=gray))
    # One value fills every channel, as torchvision's ``fill``.
    img = random_image(5, 4, low=10)
    crop = PadRandomCrop(padding=3, fill=(5, ))
    crop._draw_offset = lambda rng: (0, 0)
    out = crop(dict(img=img))['img']
    np.testing.assert_array_equal(out[:3], 5)
    np.testing.assert_array_equal(out[3:, 3:], img[:2, :1])


# ---------------------------------------------------------------------------
# ReIDRandomErasing
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('aspect_sampling', ['log_uniform', 'uniform'])
def test_random_erasing_fills_one_rectangle_within_bounds(aspect_sampling):
    height, width = 64, 32
    img = random_image(height, width, low=100)  # fill value is < 100
    fill = (1, 2, 3)
    transform = ReIDRandomErasing(
        prob=1., fill_value=fill, aspect_sampling=aspect_sampling)
    areas = []
    for seed in range(60):
        np.random.seed(seed)
        out = transform(dict(img=img))['img']
        assert out.shape == img.shape and out.dtype == np.uint8
        changed = (out != img).any(axis=2)
        ys, xs = np.nonzero(changed)
        assert len(ys) > 0
        top, bottom, left, right = ys.min(), ys.max(), xs.min(), xs.max()
        box_h, box_w = bottom - top + 1, right - left + 1
        # Exactly a filled rectangle, with the fill value.
        assert changed.sum() == box_h * box_w
        np.testing.assert_array_equal(
            out[top:bottom + 1, left:right + 1],
            np.broadcast_to(np.array(fill, np.uint8), (box_h, box_w, 3)))
        # Area within (0.02, 0.4) of the image, allowing for rounding of
        # each side to whole pixels.
        area = box_h * box_w / (height * width)
        slack = (box_h + box_w + 1) / (height * width)
        assert 0.02 - slack <= area <= 0.4 + slack
        ratio = box_h / box_w
        assert 0.3 * 0.8 <= ratio <= 1 / 0.3 * 1.25
        areas.append(area)
    # The input array is not modified in place.
    assert (img >= 100).all()
    assert max(areas) - min(areas) > 0.1


def test_random_erasing_default_fill_is_imagenet_mean_pixel():
    img = np.zeros((40, 20, 3), np.uint8)
    np.random.seed(0)
    out = ReIDRandomErasing(prob=1.)(dict(img=img))['img']
    values = out[(out != 0).any(axis=2)]
    assert len(values) > 0
    np.testing.assert_array_equal(np.unique(values, axis=0), [[124, 116, 104]])


def test_random_erasing_random_fill_and_prob_zero():
    img = np.zeros((40, 20, 3), np.uint8)
    np.random.seed(1)
    out = ReIDRandomErasing(prob=1., fill_mode='random')(dict(img=img))['img']
    ys, xs = np.nonzero((out != 0).any(axis=2))
    box = out[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    assert len(np.unique(box)) > 50  # noise, not one value
    assert ReIDRandomErasing(prob=0.)(dict(img=img))['img'] is img


@pytest.mark.parametrize('kwargs', [
    dict(prob=1.5),
    dict(area_ratio_range=(0.4, 0.02)),
    dict(area_ratio_range=(0.02, 1.5)),
    dict(aspect_ratio_range=(0., 3.)),
    dict(fill_mode='mean'),
    dict(max_attempts=0),
])
def test_random_erasing_bad_args(kwargs):
    with pytest.raises(ValueError):
        ReIDRandomErasing(**kwargs)


@pytest.mark.parametrize('kwargs, message', [
    (dict(aspect_sampling='loguniform'), "aspect_sampling.*'loguniform'"),
    (dict(aspect_sampling='Uniform'), "aspect_sampling.*'Uniform'"),
    (dict(aspect_sampling=None), 'aspect_sampling.*None'),
    (dict(fill_value=(152, 142, 300)), r'fill_value.*\(152, 142, 300\)'),
    (dict(fill_value=-1), 'fill_value.*-1'),
    (dict(fill_value='mean'), "fill_value.*'mean'"),
    (dict(fill_value=()), r'fill_value.*\(\)'),
    (dict(fill_value=float('nan')), 'fill_value.*nan'),
])
def test_random_erasing_bad_option_names_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReIDRandomErasing(**kwargs)


@pytest.mark.parametrize('fill_value', [(10, 20), (1, 2, 3, 4)])
def test_random_erasing_refuses_a_fill_of_the_wrong_length(fill_value):
    with pytest.raises(ValueError, match=r'^fill_value must be .*1 or 3'):
        ReIDRandomErasing(fill_value=fill_value)


def test_random_erasing_fill_must_match_the_channels():
    gray = random_image(24, 12)[..., :1]
    erasing = ReIDRandomErasing(prob=1., fill_value=(1, 2, 3))
    with pytest.raises(ValueError, match=r'fill_value has 3 values.* 1 '):
        erasing(dict(img=gray))
    # A single value fills every channel.
    out = ReIDRandomErasing(prob=1., fill_value=(7, ))(dict(img=gray))['img']
    assert out.shape == gray.shape and (out == 7).sum() > 0


def erasing_digest(**kwargs):
    """SHA-256 of the outputs, and of each generator's state afterwards."""
    transform = ReIDRandomErasing(**kwargs)
    sha = hashlib.sha256()
    for height, width in [(256, 128), (64, 32), (24, 12), (3, 3), (1, 40)]:
        for dtype in (np.uint8, np.float32):
            img = random_image(height, width).astype(dtype)
            for seed in range(150):
                out = transform(dict(img=img, rng=np.random.default_rng(seed)))
                sha.update(out['img'].tobytes())
                # What the next transform of the pipeline would draw.
                sha.update(out['rng'].bytes(8))
    return sha.hexdigest()


# Captured from ReIDRandomErasing before aspect_sampling existed (commit
# 7444488): the default draw must not change for any seed.
@pytest.mark.parametrize('kwargs, digest', [
    (dict(prob=1.),
     '738fbcaa3e1d8bf1fc4f5d0a18374d7936af2f943e6a0948f4dd1757a0e28ca5'),
    (dict(prob=0.5),
     'c9b29c1012472d3e2d7aa1778ee9ea8289c4beb2aae27db5c8104fae256e07b7'),
    (dict(prob=1., fill_mode='random'),
     'ce04037195d6a286ee8c5f73a56c09a78bfc671077fe20f81cd08b454bd1a232'),
    (dict(
        prob=0.7,
        area_ratio_range=(0.1, 0.9),
        aspect_ratio_range=(0.5, 4.),
        max_attempts=3),
     '02ad220f1fb9b2e63f523d8ad1f5998c6c1e569aa552934e36942aca25fd8b07'),
])
def test_random_erasing_default_draw_is_unchanged(kwargs, digest):
    assert erasing_digest(**kwargs) == digest
    assert erasing_digest(**kwargs, aspect_sampling='log_uniform') == digest
    transform = ReIDRandomErasing(prob=1.)
    boxes = [
        transform._draw_box(256, 128, np.random.default_rng(seed))
        for seed in range(5)
    ]
    assert boxes == [(16, 0, 36, 110), (36, 31, 114, 52), (72, 7, 97, 45),
                     (148, 50, 86, 42), (104, 6, 149, 47)]


def reference_erasing_boxes(height, width, num, seed):
    """The BoT / torchreid box draw, from its definition, on Python's RNG.

    Up to 100 attempts: area fraction ~ U(0.02, 0.4), aspect ratio
    ~ U(0.3, 1 / 0.3), h = round(sqrt(area * r)), w = round(sqrt(area / r)),
    accepted if h < H and w < W; the top-left corner is uniform.
    """
    rand = random.Random(seed)
    boxes = []
    while len(boxes) < num:
        for _ in range(100):
            area = rand.uniform(0.02, 0.4) * height * width
            ratio = rand.uniform(0.3, 1 / 0.3)
            box_h = int(round(math.sqrt(area * ratio)))
            box_w = int(round(math.sqrt(area / ratio)))
            if box_h < height and box_w < width:
                boxes.append((rand.randint(0, height - box_h),
                              rand.randint(0, width - box_w), box_h, box_w))
                break
    return np.array(boxes, dtype=np.float64)


def box_statistics(boxes, height, width):
    top, left, box_h, box_w = boxes.T
    return dict(
        tall=(box_h > box_w).mean(),
        area=(box_h * box_w).mean() / (height * width),
        height=box_h.mean(),
        width=box_w.mean(),
        top=(top / np.maximum(height - box_h, 1)).mean(),
        left=(left / np.maximum(width - box_w, 1)).mean())


def test_random_erasing_uniform_aspect_matches_reference():
    height, width, num = 256, 128, 20000
    expected = box_statistics(
        reference_erasing_boxes(height, width, num, seed=0), height, width)
    # The reference itself: mostly tall boxes of about 106 x 62.
    assert expected['tall'] == pytest.approx(0.81, abs=0.01)
    assert expected['height'] == pytest.approx(106, abs=1)
    assert expected['width'] == pytest.approx(62, abs=1)
    # Tolerances are about 4 standard errors of the difference of the two
    # estimates; the log-uniform draw is far outside them.
    tolerance = dict(
        tall=0.015, area=0.005, height=1.5, width=1., top=0.02, left=0.02)
    stats = {}
    for mode in ('uniform', 'log_uniform'):
        transform = ReIDRandomErasing(prob=1., aspect_sampling=mode)
        rng = np.random.default_rng(0)
        boxes = [transform._draw_box(height, width, rng) for _ in range(num)]
        assert None not in boxes  # some attempt always fits on 256 x 128
        stats[mode] = box_statistics(
            np.array(boxes, np.float64), height, width)
    for key, tol in tolerance.items():
        assert stats['uniform'][key] == pytest.approx(
            expected[key], abs=tol), key
    assert stats['log_uniform']['tall'] < expected['tall'] - 0.15
    assert stats['log_uniform']['area'] < expected['area'] - 0.008
    assert stats['log_uniform']['width'] > expected['width'] + 5


def test_random_erasing_uniform_is_seeded_and_fills_the_drawn_box():
    from mmreid.datasets.samplers import SeededIndex
    img = random_image(64, 32)
    transform = ReIDRandomErasing(
        prob=1., aspect_sampling='uniform', fill_value=BOT_ERASING_FILL_RGB)
    for seed in range(20):
        np.random.seed(seed + 100)  # the global RNG must not matter
        out = transform(dict(img=img, sample_idx=SeededIndex(0, seed)))
        again = transform(dict(img=img, sample_idx=SeededIndex(0, seed)))
        np.testing.assert_array_equal(out['img'], again['img'])
        top, left, box_h, box_w = transform._draw_box(
            64, 32, np.random.default_rng(seed))
        expected = img.copy()
        expected[top:top + box_h, left:left + box_w] = (152, 142, 127)
        np.testing.assert_array_equal(out['img'], expected)


def test_bot_erasing_fill_is_the_normalised_constant_in_pixels():
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    config = Config.fromfile(
        osp.join(repo, 'configs/_base_/models/bot_r50.py'))
    preprocessor = config.model.data_preprocessor
    mean = np.array(preprocessor.mean)
    std = np.array(preprocessor.std)
    bot_constant = np.array((0.485, 0.456, 0.406))  # BoT's PIXEL_MEAN
    # ImageNet's mean and std in pixels are 255 times torchvision's.
    np.testing.assert_allclose(mean, np.array((0.485, 0.456, 0.406)) * 255)
    np.testing.assert_allclose(std, np.array((0.229, 0.224, 0.225)) * 255)
    np.testing.assert_allclose(
        BOT_ERASING_FILL_RGB, mean + bot_constant * std, atol=5e-4)
    # Through the data preprocessor the erased pixels become BoT's constant,
    # up to the rounding of the fill to uint8 (half a level / std).
    img = np.zeros((64, 32, 3), np.uint8)
    np.random.seed(0)
    out = ReIDRandomErasing(
        prob=1., fill_value=BOT_ERASING_FILL_RGB)(dict(img=img))['img']
    erased = (out != 0).any(axis=2)
    inputs = torch.from_numpy(out).permute(2, 0, 1)[None]
    normalise = ReIDDataPreprocessor(
        mean=preprocessor.mean, std=preprocessor.std)
    values = normalise(dict(inputs=inputs))['inputs'][0].permute(
        1, 2, 0).numpy()[erased]
    assert len(values) > 0
    np.testing.assert_allclose(
        values, np.broadcast_to(bot_constant, values.shape), atol=0.5 / 57)


# ---------------------------------------------------------------------------
# ReIDColorJitter
# ---------------------------------------------------------------------------
def test_color_jitter_brightness_matches_reference():
    img = random_image()
    out = ReIDColorJitter(brightness=(1.5, 1.5))(dict(img=img))['img']
    expected = np.clip(np.rint(img.astype(np.float64) * 1.5), 0, 255)
    np.testing.assert_array_equal(out, expected.astype(np.uint8))


def test_color_jitter_contrast_and_saturation_zero():
    img = random_image()
    flat = ReIDColorJitter(contrast=(0., 0.))(dict(img=img))['img']
    mean = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).mean()
    assert (np.abs(flat.astype(float) - mean) <= 0.5).all()

    gray = ReIDColorJitter(saturation=(0., 0.))(dict(img=img))['img']
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])


def test_color_jitter_hue_turns_red_to_green():
    img = np.zeros((2, 2, 3), np.uint8)
    img[...] = (255, 0, 0)
    out = ReIDColorJitter(hue=(1 / 3, 1 / 3))(dict(img=img))['img']
    np.testing.assert_array_equal(out[0, 0], (0, 255, 0))


def test_color_jitter_prob_and_dtype():
    img = random_image()
    assert ReIDColorJitter(
        brightness=0.5, prob=0.)(dict(img=img))['img'] is img
    assert ReIDColorJitter()(dict(img=img))['img'] is img  # nothing enabled
    with pytest.raises(TypeError, match='uint8'):
        ReIDColorJitter(brightness=0.5)(dict(img=img.astype(np.float32)))
    with pytest.raises(ValueError):
        ReIDColorJitter(hue=0.6)
    with pytest.raises(ValueError):
        ReIDColorJitter(brightness=-0.1)


def test_color_jitter_refuses_a_wrong_image_on_every_sample():
    """The check came after the draw: a grayscale image passed on the
    samples it left alone and failed on the others (seeds 2, 3, 8 of 10),
    so a misconfigured pipeline showed at a random step."""
    from mmreid.datasets.samplers import SeededIndex
    gray = random_image()[..., 0]
    jitter = ReIDColorJitter(brightness=0.5, prob=0.5)
    for seed in range(10):
        with pytest.raises(TypeError, match=r'\(H, W, 3\) uint8'):
            jitter(dict(img=gray, sample_idx=SeededIndex(0, seed)))


@pytest.mark.parametrize('kwargs,name', [
    (dict(brightness=(-1.0, 0.5)), 'brightness'),
    (dict(contrast=(-0.1, 1.0)), 'contrast'),
    (dict(saturation=(-2, 3)), 'saturation'),
    (dict(hue=(-0.9, 0.9)), 'hue'),
    (dict(hue=(0.1, 0.6)), 'hue'),
    (dict(hue=0.6), 'hue'),
    (dict(brightness=(1.5, 0.5)), 'brightness'),
    (dict(brightness=(0.5, 1.0, 1.5)), 'brightness'),
    (dict(contrast=float('nan')), 'contrast'),
])
def test_color_jitter_refuses_ranges_outside_bounds(kwargs, name):
    # torchvision's ColorJitter raises for these, it does not clip them.
    with pytest.raises(ValueError, match=f'^{name} '):
        ReIDColorJitter(**kwargs)


def test_color_jitter_number_is_clipped_at_zero_as_torchvision():
    # torchvision: v -> [max(0, 1 - v), 1 + v]; hue v -> [-v, v].
    jitter = ReIDColorJitter(
        brightness=1.5, contrast=1., saturation=(0, 2), hue=0.5)
    assert jitter.brightness == (0., 2.5)
    assert jitter.contrast == (0., 2.)
    assert jitter.saturation == (0., 2.)
    assert jitter.hue == (-0.5, 0.5)
    assert ReIDColorJitter(brightness=(1, 1)).brightness is None


def test_color_jitter_applies_its_changes_in_random_order():
    """As torchvision's ColorJitter: the enabled changes in a random order.
    Brightness (``f * v``) and contrast (``f * v + (1 - f) * grey mean``)
    commute but for clipping, which this bright grey image (R = G = B, so
    its grey is exact) meets."""
    img = np.repeat(np.linspace(0, 255, 64).reshape(8, 8, 1), 3, 2)
    img = img.astype(np.uint8)

    def apply(name, factor, v):
        other = v[..., 0].mean() if name == 'contrast' else 0.
        return np.clip(np.rint(factor * v + (1 - factor) * other), 0, 255)

    jitter = ReIDColorJitter(brightness=0.5, contrast=0.5)
    orders, order_matters = set(), False
    for seed in range(200):
        ops = jitter._draw_ops(np.random.default_rng(seed))
        orders.add(tuple(name for name, _ in ops))
        out = jitter(dict(img=img, rng=np.random.default_rng(seed)))['img']
        expected = img.astype(np.float64)
        for name, factor in ops:
            expected = apply(name, factor, expected)
        # Up to the rounding of the lookup tables (float32).
        assert np.abs(out - expected).max() <= 1, ops
        reverse = img.astype(np.float64)
        for name, factor in ops[::-1]:
            reverse = apply(name, factor, reverse)
        order_matters |= np.abs(out - reverse).max() > 1
    assert orders == {('brightness', 'contrast'), ('contrast', 'brightness')}
    assert order_matters


def test_color_jitter_random_factors_change_image():
    np.random.seed(0)
    img = random_image(low=50, high=200)
    transform = ReIDColorJitter(
        brightness=0.3, contrast=0.3, saturation=0.3, hue=0.1)
    outs = [transform(dict(img=img))['img'] for _ in range(5)]
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
    assert not np.array_equal(outs[0], outs[1])


# ---------------------------------------------------------------------------
# PackReIDInputs
# ---------------------------------------------------------------------------
def test_pack_reid_inputs():
    img = random_image(8, 4)
    results = dict(
        img=img,
        img_path='a/0002_c1s1_000451_03.jpg',
        sample_idx=7,
        img_shape=(8, 4),
        ori_shape=(128, 64),
        pid=2,
        camid=0,
        modality=1,
        role='train',
        dataset='market1501',
        flip=True)
    packed = PackReIDInputs()(results)
    assert set(packed) == {'inputs', 'data_samples'}
    inputs = packed['inputs']
    assert inputs.shape == (3, 8, 4) and inputs.dtype == torch.uint8
    assert inputs.is_contiguous()
    np.testing.assert_array_equal(inputs.numpy(), img.transpose(2, 0, 1))

    sample = packed['data_samples']
    assert isinstance(sample, ReIDDataSample)
    assert sample.gt_label.tolist() == [2]
    assert sample.metainfo == dict(
        img_path='a/0002_c1s1_000451_03.jpg',
        sample_idx=7,
        img_shape=(8, 4),
        ori_shape=(128, 64),
        camid=0,
        modality=1,
        role='train',
        dataset='market1501')  # dsetid missing: skipped; flip not a key


def test_pack_reid_inputs_without_pid_and_custom_keys():
    packed = PackReIDInputs(meta_keys=('camid', ))(
        dict(img=random_image(4, 2)[..., 0], camid=3, role='query'))
    assert packed['inputs'].shape == (1, 4, 2)
    assert 'gt_label' not in packed['data_samples']
    assert packed['data_samples'].metainfo == dict(camid=3)
    with pytest.raises(KeyError, match='ReIDLoadImageFromFile'):
        PackReIDInputs()(dict(pid=1))


# ---------------------------------------------------------------------------
# Registry and a full BoT pipeline
# ---------------------------------------------------------------------------
def test_registry_resolves_mmreid_transforms():
    assert TRANSFORMS.get('ReIDLoadImageFromFile') is ReIDLoadImageFromFile
    for name in ('ReIDResize', 'ReIDRandomFlip', 'PadRandomCrop',
                 'ReIDRandomErasing', 'ReIDColorJitter', 'PackReIDInputs'):
        assert TRANSFORMS.get(name).__module__.startswith('mmreid.')


def test_bot_train_pipeline_is_reproducible(tmp_path):
    path = str(tmp_path / '0001_c1s1_000151_00.jpg')
    cv2.imwrite(path, random_image(128, 64)[..., ::-1])
    pipeline = Compose([
        TRANSFORMS.build(cfg) for cfg in [
            dict(type='ReIDLoadImageFromFile'),
            dict(type='ReIDResize', size=(256, 128)),
            dict(type='ReIDRandomFlip', prob=0.5),
            dict(type='PadRandomCrop', padding=10),
            dict(type='ReIDRandomErasing', prob=0.5),
            dict(type='ReIDColorJitter', brightness=0.2, prob=0.5),
            dict(type='PackReIDInputs'),
        ]
    ])
    record = dict(
        img_path=path,
        pid=0,
        camid=0,
        modality=0,
        role='train',
        dataset='market1501',
        sample_idx=0)
    np.random.seed(3)
    first = [pipeline(dict(record))['inputs'] for _ in range(4)]
    np.random.seed(3)
    second = [pipeline(dict(record))['inputs'] for _ in range(4)]
    for a, b in zip(first, second):
        assert a.shape == (3, 256, 128) and a.dtype == torch.uint8
        assert torch.equal(a, b)
    assert not all(torch.equal(first[0], x) for x in first[1:])


def test_random_2d_translation_crops_from_enlarged_image():
    from mmreid.datasets.transforms.geometric import Random2DTranslation
    img = np.arange(32 * 16 * 3, dtype=np.uint8).reshape(32, 16, 3)
    always = Random2DTranslation(size=(16, 8), prob=1.0, scale=1.5)
    enlarged = cv2.resize(img, (12, 24), interpolation=cv2.INTER_LINEAR)
    np.random.seed(0)
    seen = set()
    for _ in range(30):
        out = always(dict(img=img.copy()))['img']
        assert out.shape == (16, 8, 3) and out.flags['C_CONTIGUOUS']
        # The output is a window of the 1.5x-enlarged image.
        matches = [(y, x) for y in range(24 - 16 + 1)
                   for x in range(12 - 8 + 1)
                   if np.array_equal(enlarged[y:y + 16, x:x + 8], out)]
        assert matches
        seen.add(matches[0])
    assert len(seen) > 3  # the window moves
    never = Random2DTranslation(size=(16, 8), prob=0.0)
    plain = cv2.resize(img, (8, 16), interpolation=cv2.INTER_LINEAR)
    result = never(dict(img=img.copy()))
    np.testing.assert_array_equal(result['img'], plain)
    assert result['img_shape'] == (16, 8)


def test_random_2d_translation_offsets_are_rounded_uniform_draws():
    # torchreid's Random2DTranslation: y1 = int(round(uniform(0, range))),
    # so offsets 0..range, the two ends at half the weight of the others.
    from mmreid.datasets.transforms.geometric import Random2DTranslation
    always = Random2DTranslation(size=(16, 8), prob=1.0, scale=1.5)
    img = np.zeros((24, 12, 3), np.uint8)  # already enlarged: ranges 8, 4
    img[..., 0] = np.arange(24)[:, None]
    img[..., 1] = np.arange(12)[None, :]
    counts = [np.zeros(9), np.zeros(5)]
    for seed in range(2000):
        out = always(dict(img=img, rng=np.random.default_rng(seed)))['img']
        y0, x0 = int(out[0, 0, 0]), int(out[0, 0, 1])
        np.testing.assert_array_equal(out, img[y0:y0 + 16, x0:x0 + 8])
        counts[0][y0] += 1
        counts[1][x0] += 1
    for count in counts:
        interior = count[1:-1].mean()
        assert 0.35 < count[0] / interior < 0.65
        assert 0.35 < count[-1] / interior < 0.65


def test_random_2d_translation_resizes_with_pillow_as_torchreid():
    # torchreid resizes PIL images (bilinear, antialiased when shrinking);
    # backend='pillow' gives those pixels, cv2 others.
    from PIL import Image

    from mmreid.datasets.transforms.geometric import Random2DTranslation
    img = np.random.RandomState(0).randint(0, 255, (300, 120, 3), np.uint8)

    def pil(size):
        return np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR))

    never = Random2DTranslation(size=(64, 32), prob=0.0, backend='pillow')
    np.testing.assert_array_equal(
        never(dict(img=img.copy()))['img'], pil((32, 64)))
    always = Random2DTranslation(
        size=(64, 32), prob=1.0, scale=1.5, backend='pillow')
    out = always(dict(img=img.copy()))['img']
    enlarged = pil((48, 96))
    assert any(
        np.array_equal(enlarged[y:y + 64, x:x + 32], out)
        for y in range(96 - 64 + 1) for x in range(48 - 32 + 1))
    cv2_out = Random2DTranslation(size=(64, 32), prob=0.0)(dict(img=img))
    assert not np.array_equal(cv2_out['img'], pil((32, 64)))


def test_random_2d_translation_bad_args_and_replay():
    from mmreid.datasets.transforms.geometric import Random2DTranslation
    with pytest.raises(ValueError, match='prob'):
        Random2DTranslation(prob=1.5)
    with pytest.raises(ValueError, match='scale'):
        Random2DTranslation(scale=0.9)
    transform = TRANSFORMS.build(
        dict(type='Random2DTranslation', size=(16, 8), prob=0.5))
    img = np.random.RandomState(1).randint(0, 255, (40, 20, 3), np.uint8)
    with cache_random_params(transform):
        first = transform(dict(img=img.copy()))['img']
        second = transform(dict(img=img.copy()))['img']
    np.testing.assert_array_equal(first, second)


def test_random_channel_only_touches_visible_images():
    from mmreid.datasets.transforms.photometric import RandomChannel
    rng = np.random.RandomState(0)
    img = rng.randint(0, 255, (8, 4, 3), np.uint8)
    transform = RandomChannel(prob=1.0)
    np.random.seed(0)
    outputs = set()
    for _ in range(40):
        out = transform(dict(img=img.copy(), modality=0))['img']
        assert out.shape == img.shape
        # Three equal channels, each a channel of the input or its grey.
        assert (out[..., 0] == out[..., 1]).all()
        assert (out[..., 1] == out[..., 2]).all()
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        choice = [
            c for c, ref in enumerate(
                [img[..., 0], img[..., 1], img[..., 2], grey])
            if np.array_equal(out[..., 0], ref)
        ]
        assert choice
        outputs.add(choice[0])
    assert outputs == {0, 1, 2, 3}
    infrared = transform(dict(img=img.copy(), modality=1))['img']
    np.testing.assert_array_equal(infrared, img)
    never = RandomChannel(prob=0.0)(dict(img=img.copy(), modality=0))
    np.testing.assert_array_equal(never['img'], img)
    with pytest.raises(ValueError, match='prob'):
        RandomChannel(prob=2)


# ---------------------------------------------------------------------------
# Per-sample randomness
# ---------------------------------------------------------------------------
def pad_then_crop(img, pad, top, left):
    """The definition: zero-pad every side, cut the original size."""
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)))
    return padded[top:top + img.shape[0], left:left + img.shape[1]]


def test_transforms_draw_in_turn_from_the_sample_seed():
    from mmreid.datasets.samplers import SeededIndex
    img = random_image(20, 10)
    pipeline = Compose([ReIDRandomFlip(prob=0.5), PadRandomCrop(padding=3)])
    flips = set()
    for seed in range(30):
        # The global RNG's state must not matter.
        np.random.seed(seed + 100)
        out = pipeline(dict(img=img, sample_idx=SeededIndex(4, seed)))
        # Reference: one generator per sample, the flip draws first.
        rng = np.random.default_rng(seed)
        flip = rng.random() < 0.5
        top, left = rng.integers(0, 7, size=2)
        expected = pad_then_crop(img[:, ::-1] if flip else img, 3, top, left)
        np.testing.assert_array_equal(out['img'], expected)
        assert out['flip'] == flip
        assert out['sample_idx'] == 4
        flips.add(flip)
    assert flips == {True, False}


def test_transforms_without_a_sample_seed_follow_the_global_rng():
    img = random_image(40, 20)
    pipeline = Compose([
        ReIDRandomFlip(prob=0.5),
        PadRandomCrop(padding=5),
        ReIDRandomErasing(prob=0.5),
        ReIDColorJitter(brightness=0.3, hue=0.1)
    ])
    outputs = []
    for _ in range(2):
        np.random.seed(5)
        outputs.append([pipeline(dict(img=img))['img'] for _ in range(6)])
    for a, b in zip(*outputs):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(outputs[0][0], x) for x in outputs[0][1:])
    # A plain int index carries no seed: the global RNG again.
    np.random.seed(5)
    again = pipeline(dict(img=img, sample_idx=3))
    np.testing.assert_array_equal(again['img'], outputs[0][0])
    assert isinstance(again['rng'], np.random.Generator)


def test_given_generator_is_used_and_checked():
    img = random_image(20, 10)
    crop = PadRandomCrop(padding=3)
    a = crop(dict(img=img, rng=np.random.default_rng(9)))['img']
    b = crop(dict(img=img, rng=np.random.default_rng(9)))['img']
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match=r'results\["rng"\].*RandomState'):
        crop(dict(img=img, rng=np.random.RandomState(9)))


def test_the_old_processing_module_warns_and_gives_the_same_objects():
    # processing.py was split into geometric.py and photometric.py; its
    # old import path works for one release, with a FutureWarning.
    import importlib
    import sys

    from mmreid.datasets.transforms import geometric, photometric
    sys.modules.pop('mmreid.datasets.transforms.processing', None)
    with pytest.warns(FutureWarning, match='transforms.processing is dep'):
        old = importlib.import_module('mmreid.datasets.transforms.processing')
    assert len(old.__all__) == 12
    for name in old.__all__:
        new = getattr(geometric, name, None) or getattr(photometric, name)
        assert getattr(old, name) is new


@pytest.mark.parametrize('build,match', [
    (lambda: Random2DTranslation(scale=float('nan')),
     'scale must be a finite number, got nan'),
    (lambda: Random2DTranslation(scale=float('inf')),
     'scale must be a finite number, got inf'),
    (lambda: ReIDRandomErasing(max_attempts=2.5),
     'max_attempts must be an int >= 1, got 2.5'),
    (lambda: ReIDRandomErasing(max_attempts=True),
     'max_attempts must be an int >= 1, got True'),
    (lambda: ReIDRandomErasing(aspect_ratio_range=(0.3, float('inf'))),
     'aspect_ratio_range must be .* both finite'),
    (lambda: ReIDColorJitter(brightness=float('inf')),
     'brightness must be a finite number, got inf'),
    (lambda: ReIDColorJitter(contrast=(0.5, float('inf'))),
     r'contrast \(min, max\) must be a finite number, got inf'),
    (lambda: ReIDRandomFlip(prob='0.5'),
     "prob must be a number in \\[0, 1\\], got '0.5'"),
    (lambda: ReIDRandomErasing(prob=True),
     r'prob must be a number in \[0, 1\], got True'),
    (lambda: ReIDResize(size=(True, 5)), 'size must be'),
    (lambda: PadRandomCrop(padding=True), 'padding must be an int'),
])
def test_arguments_are_refused_when_built_naming_them(build, match):
    """These were accepted (or refused without naming the argument) and
    failed at the first image in numpy or cv2: NaN passed 'scale < 1',
    inf passed the ranges, 2.5 attempts reached range(), True was 1."""
    with pytest.raises(ValueError, match=match):
        build()


@pytest.mark.parametrize('channels', [2, 4, 5])
def test_pillow_resizes_each_channel_of_a_non_rgb_image_alone(channels):
    """PIL took 4 channels as RGBA and weighted the colours by the 4th (a
    constant 200 came out 0 where the 4th was 0); 5 channels failed inside
    PIL. Each channel is resized alone, as the 1- and 3-channel paths and
    cv2 do."""
    from PIL import Image
    img = random_image(height=9, width=7)
    img = np.concatenate([img] * 2, axis=2)[..., :channels].copy()
    img[..., -1] = np.where(np.arange(7) % 2, 255, 0)[None]
    out = ReIDResize((4, 3), backend='pillow')(dict(img=img))['img']
    assert out.shape == (4, 3, channels)
    for c in range(channels):
        alone = np.asarray(
            Image.fromarray(np.ascontiguousarray(img[..., c])).resize(
                (3, 4), Image.Resampling.BILINEAR))
        assert np.array_equal(out[..., c], alone), c
    with pytest.raises(ValueError, match=r'got shape \(0, 5, 3\)'):
        ReIDResize((4, 3), backend='pillow')(
            dict(img=np.zeros((0, 5, 3), np.uint8)))
