"""Wrong-number hunt in the data pipeline and the data preprocessor.

The tests of defects (fixed since) assert the right behaviour of a path
where mmreid gave a plausible but wrong input to the model without a
word; they fail on the code before each fix. The other tests pin down
behaviour that a printed number depends on and that no other test would
notice breaking.

References are computed here from the definitions (the stored pixels of
a file, ``(x - mean) / std`` on the scale of ``x``), never from mmreid's
code.
"""
import numpy as np
import pytest
import torch
from PIL import Image

from mmreid.datasets.transforms import ReIDLoadImageFromFile
from mmreid.models.data_preprocessors import ReIDDataPreprocessor
from mmreid.utils.pipeline_check import check_pipeline
from mmreid.utils.pipeline_source import PipelineSource

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def _rgba(height: int = 4, width: int = 6) -> np.ndarray:
    """An RGBA image: one colour everywhere, alpha 0 on the left half
    (a matted-out background) and 255 on the right half."""
    rgba = np.empty((height, width, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:, :width // 2, 3] = 0
    rgba[:, width // 2:, 3] = 255
    return rgba


def test_rgba_tiff_loads_the_stored_colours_with_alpha_dropped(tmp_path):
    """An RGBA TIFF gives its stored RGB samples, as an RGBA PNG does.

    What the user does: trains or tests on a dataset whose crops are
    RGBA TIFF files (e.g. matted pedestrians with a transparent
    background), loaded by ``ReIDLoadImageFromFile``.

    What they get: every colour multiplied by alpha / 255 (cv2's TIFF
    decoder premultiplies unassociated alpha under ``IMREAD_COLOR``), so
    the transparent background turns black and half-transparent pixels
    darker. The same pixels saved as PNG or WebP load as stored, and so
    does ``PIL.Image.open(path).convert('RGB')`` of the TIFF.

    What is right: the loader's docstring promises that "an alpha
    channel is dropped": the result is the file's stored RGB samples
    (TIFF ExtraSamples = 2, unassociated alpha, is what PIL writes: the
    colour samples are not premultiplied), whatever the container.
    """
    rgba = _rgba()
    path = str(tmp_path / 'matted.tif')
    Image.fromarray(rgba, 'RGBA').save(path)
    # The file holds the colours as given (read back without cv2).
    np.testing.assert_array_equal(np.asarray(Image.open(path)), rgba)
    loaded = ReIDLoadImageFromFile()(dict(img_path=path))['img']
    np.testing.assert_array_equal(loaded, rgba[..., :3])


@pytest.mark.parametrize('channels', [4, 3])
def test_a_tiff_pil_cannot_open_loads_only_without_alpha(
        tmp_path, monkeypatch, channels):
    """A TIFF whose compression PIL lacks: OpenCV's decode was returned
    silently, its colours multiplied by the alpha (the transparent half
    black). It is refused where the file has an alpha channel, naming the
    file; without one OpenCV's decode is the stored colours."""
    rgba = _rgba()
    path = str(tmp_path / f'crop{channels}.tif')
    Image.fromarray(rgba[..., :channels],
                    'RGBA' if channels == 4 else 'RGB').save(path)

    def cannot_open(*args, **kwargs):
        raise OSError('cannot identify image file (a compression PIL '
                      'lacks)')

    monkeypatch.setattr(Image, 'open', cannot_open)
    load = ReIDLoadImageFromFile()
    if channels == 4:
        with pytest.raises(
                ValueError, match='crop4.tif.*alpha.*cannot '
                'open it'):
            load(dict(img_path=path))
    else:
        loaded = load(dict(img_path=path))['img']
        np.testing.assert_array_equal(loaded, rgba[..., :3])


@pytest.mark.parametrize('suffix', ['png', 'webp'])
def test_rgba_and_gray_alpha_images_load_with_alpha_dropped(tmp_path, suffix):
    """An RGBA or grey + alpha PNG/WebP gives its stored colours (grey
    replicated to 3 channels), alpha dropped, never composited: the
    loader's docstring, and what PIL's ``convert('RGB')`` gives (the
    loaders of torchreid, BoT and AGW)."""
    rgba = _rgba()
    path = str(tmp_path / f'rgba.{suffix}')
    # exact: libwebp would otherwise zero the colours under alpha 0.
    Image.fromarray(rgba, 'RGBA').save(path, lossless=True, exact=True)
    loaded = ReIDLoadImageFromFile()(dict(img_path=path))['img']
    assert loaded.dtype == np.uint8 and loaded.shape == (4, 6, 3)
    np.testing.assert_array_equal(loaded, rgba[..., :3])

    grey = np.dstack([np.full((4, 6), 90, np.uint8), rgba[..., 3]])
    path = str(tmp_path / f'la.{suffix}')
    Image.fromarray(grey, 'LA').save(path, lossless=True, exact=True)
    loaded = ReIDLoadImageFromFile()(dict(img_path=path))['img']
    np.testing.assert_array_equal(loaded, np.full((4, 6, 3), 90, np.uint8))


def test_uint8_batch_with_0_1_mean_and_std_is_refused():
    """A 0-255 batch with 0-1 statistics is refused, as the reverse is.

    What the user does: ports a torchreid/torchvision recipe and writes
    ``model.data_preprocessor = dict(type='ReIDDataPreprocessor',
    mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])`` (torchreid's
    ``norm_mean``/``norm_std``), with mmreid's ``ReIDLoadImageFromFile``
    pipeline, which gives uint8 0-255 images.

    What they get: ``(x - 0.485) / 0.229`` of 0-255 pixels, values up to
    about 1100 instead of roughly N(0, 1): a pretrained backbone sees
    inputs 255 / 0.229 times too large, and every feature, so R1/mAP, is
    wrong, without a word.

    What is right: normalisation is ``(x - mean) / std`` with mean and
    std on the scale of ``x``. A uint8 batch is on the 0-255 scale (the
    class docstring: images arrive as uint8, mean/std "0-255 scale"), and
    ImageNet's 0-1 statistics are no statistics of a 0-255 image set
    (mmreid's own converter check, ``check_pixel_scale``, says so). The
    preprocessor already refuses the mirror case, a 0-1 float batch with
    0-255 mean/std; this one must be refused too (at build or forward).
    """
    batch = torch.zeros(2, 3, 4, 2, dtype=torch.uint8)
    batch[:, 0], batch[:, 1], batch[:, 2] = 200, 100, 50
    pre = ReIDDataPreprocessor(
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    with pytest.raises(ValueError) as info:
        pre(dict(inputs=batch))
    assert 'got a torch.uint8 batch (0-255 pixels)' in str(info.value)
    assert 'set mean=[123.675, 116.28, 103.53]' in str(info.value)
    # Floats above 1 are 0-255 pixels too; a 0-1 float batch is taken.
    with pytest.raises(ValueError, match='float batch with values up to'):
        pre(dict(inputs=batch.float()))
    out = pre(dict(inputs=batch.float() / 255))['inputs']
    torch.testing.assert_close(
        out[0, :, 0, 0],
        torch.tensor([(200 / 255 - 0.485) / 0.229, (100 / 255 - 0.456) / 0.224,
                      (50 / 255 - 0.406) / 0.225]))
    # No normalisation (mean 0, std 1) takes either scale.
    ReIDDataPreprocessor(mean=(0, 0, 0), std=(1, 1, 1))(dict(inputs=batch))


@pytest.mark.parametrize('wrapper', ['mmcv.Compose', 'mmcv.KeyMapper'])
def test_normalize_inside_a_wrapper_is_not_applied_twice(tmp_path, wrapper):
    """A ``Normalize`` nested in a wrapper is refused as a top-level one is.

    What the user does: writes a pipeline (ported from an mmpretrain or
    mmdet config) that groups its processing in a wrapper, e.g.
    ``dict(type='mmcv.Compose', transforms=[..., dict(type='Normalize',
    ...)])``, with mmreid's ``ReIDDataPreprocessor``, which normalises.

    What they get: the pipeline check (run by the runner and
    ``extract_features`` before any image is read) looks into wrappers
    for random transforms but not for ``Normalize``, so it passes; the
    images are normalised in the pipeline and again by the preprocessor,
    ``((x - m) / s - m) / s``, and the preprocessor, which refuses a 0-1
    batch, takes this batch of negative floats (no 0-255 pixel is
    negative). A top-level ``Normalize`` is refused ("normalised
    twice"), so the same transform one level down gives silently wrong
    features.

    What is right: the model's input is ``(x - mean) / std`` once
    (docs/customize.md, "Rules that keep it working"): either the check
    refuses the pipeline or the preprocessor refuses its output; here the
    run must stop with a ValueError instead of giving other numbers.
    """
    normalize = dict(
        type='Normalize',
        mean=list(IMAGENET_MEAN),
        std=list(IMAGENET_STD),
        to_rgb=False)
    pipeline = [
        dict(type='ReIDLoadImageFromFile'),
        dict(type=wrapper, transforms=[normalize]),
        dict(type='PackReIDInputs')
    ]
    pre = ReIDDataPreprocessor()
    with pytest.raises(ValueError) as info:
        check_pipeline(
            PipelineSource('test_dataloader.dataset.pipeline', pipeline), pre,
            'test')
    assert str(info.value).startswith(
        'test_dataloader.dataset.pipeline[1].transforms[0] normalises the '
        'images')
    assert 'normalised twice' in str(info.value)
