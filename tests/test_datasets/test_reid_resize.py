"""ReIDResize resamples exactly as the chosen library does."""
import cv2
import numpy as np
import pytest
from PIL import Image

from mmreid.datasets.transforms import ReIDResize


def crop(seed=0, shape=(150, 72, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize('interpolation,pil_filter',
                         [('bicubic', Image.BICUBIC),
                          ('bilinear', Image.BILINEAR),
                          ('nearest', Image.NEAREST),
                          ('lanczos', Image.LANCZOS)])
def test_pillow_backend_is_pil_resize(interpolation, pil_filter):
    # What torchvision's Resize does on the PIL images fast-reid (bicubic)
    # and torchreid (bilinear) load.
    img = crop()
    out = ReIDResize((64, 32), interpolation, backend='pillow')(
        dict(img=img.copy()))
    expected = np.asarray(Image.fromarray(img).resize((32, 64), pil_filter))
    assert out['img'].dtype == np.uint8 and out['img_shape'] == (64, 32)
    np.testing.assert_array_equal(out['img'], expected)


def test_backends_differ_when_shrinking():
    # PIL antialiases when shrinking, cv2 does not: the same name gives
    # other pixels, hence the option.
    img = crop(1)
    cv = ReIDResize((64, 32), 'bicubic')(dict(img=img.copy()))['img']
    np.testing.assert_array_equal(
        cv, cv2.resize(img, (32, 64), interpolation=cv2.INTER_CUBIC))
    pil = ReIDResize((64, 32), 'bicubic', 'pillow')(dict(img=img.copy()))
    assert np.abs(cv.astype(int) - pil['img'].astype(int)).max() > 10


def test_pillow_backend_keeps_a_channel_axis_and_rejects_bad_input():
    img = crop(2, (40, 20, 1))
    out = ReIDResize((20, 10), 'bilinear', 'pillow')(dict(img=img))['img']
    assert out.shape == (20, 10, 1)
    with pytest.raises(ValueError, match="backend must be one of"):
        ReIDResize((20, 10), backend='torch')
    with pytest.raises(ValueError, match="'area' has no PIL filter"):
        ReIDResize((20, 10), 'area', backend='pillow')
    with pytest.raises(ValueError, match='uint8'):
        ReIDResize((20, 10), backend='pillow')(
            dict(img=np.zeros((40, 20, 3), np.float32)))
    assert "backend='pillow'" in repr(ReIDResize(backend='pillow'))
