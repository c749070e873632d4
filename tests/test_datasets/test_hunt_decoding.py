"""Wrong-number hunt in image decoding: every path must see the pixels.

An image reaches mmreid by several paths: the train and test pipelines
(``ReIDLoadImageFromFile``), the inference API (paths and arrays), the
ranked-list hook, the HTML report and ``demo/rank_gallery.py``. The tests
of defects (``xfail(strict=True)``) assert the right behaviour of a path
where mmreid gives a plausible but wrong picture or feature without a
word; the others pin down behaviour a printed number depends on that no
other test would notice breaking.

Every file is built here with PIL/NumPy, and the expected pixels come
from the definition (the array written to a lossless file, the EXIF
orientation of the EXIF 2.3 standard, section 4.6.4 A, "Orientation"),
never from mmreid's code.
"""
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from mmreid.apis import extract_features, init_model, list_images
from mmreid.datasets.transforms import ReIDLoadImageFromFile
from mmreid.engine.hooks import RankedListHook, ranked_list_hook
from mmreid.engine.hooks.report_hook import EvalReportHook
from ..fixtures.processes import load_tool
from ..fixtures.tiny_models import randomize_statistics, tiny_model_config


def _load(path: str) -> np.ndarray:
    """What the train and test pipelines feed the model (RGB)."""
    return ReIDLoadImageFromFile()(dict(img_path=path))['img']


def _smooth_rgb(height: int = 128, width: int = 64) -> np.ndarray:
    """A smooth RGB image of Market-1501's size (128 x 64)."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.dstack([rows * 3 % 256, cols * 7 % 256,
                      (rows + cols) * 2 % 256]).astype(np.uint8)


def _jpeg_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, 'JPEG', quality=90)
    return buf.getvalue()


# ---------------------------------------------------------------------------
# Damaged JPEG files
# ---------------------------------------------------------------------------
def _garbage_tail(data: bytes) -> bytes:
    """The first half of the file, the rest overwritten with random bytes
    (bit rot, a copy spliced from two sources)."""
    half = len(data) // 2
    noise = np.random.default_rng(1).integers(0, 256, len(data) - half,
                                              dtype=np.uint8)
    return data[:half] + noise.tobytes()


def _cut_then_eoi(data: bytes) -> bytes:
    """The first half of the scan, then the end-of-image marker."""
    return data[:len(data) // 2] + b'\xff\xd9'


def _restart_interval_lost(data: bytes) -> bytes:
    """A scan with a restart marker (RSTm) after each MCU row, one
    interval of which is missing (a lost block of a copy)."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(
        buf, 'JPEG', quality=90, restart_marker_rows=1)
    data = buf.getvalue()
    rst = [m.start() for m in re.finditer(b'\xff[\xd0-\xd7]', data)]
    return data[:rst[3]] + data[rst[4]:]


@pytest.mark.parametrize(
    'damage', [_garbage_tail, _cut_then_eoi, _restart_interval_lost])
def test_a_jpeg_with_a_broken_scan_is_refused_naming_it(tmp_path, damage):
    """A JPEG whose entropy-coded data is broken is refused, named.

    What the user does: trains or tests on a dataset copy in which a JPEG
    is damaged: its second half is overwritten with other bytes, or its
    scan stops half-way and the end-of-image marker follows (what a
    "repair" tool or an interrupted transfer that closes the file
    leaves).

    What they get: ``ReIDLoadImageFromFile`` returns a full-size image
    whose lower half is flat grey or garbage (most pixels off by more
    than 30 grey levels); libjpeg prints "Corrupt JPEG data: premature end
    of data segment" on stderr, a line lost in the log, and the features,
    hence R1/mAP, are of another picture. PIL's ``Image.open().load()``
    (torchreid's, BoT's and AGW's loader) raises "broken data stream" on
    the first file.

    What is right: a baseline JPEG scan holds every MCU of the frame
    (ITU-T T.81, section E.1.4 / B.2.3): a scan that ends early holds no
    pixels for the rest, so the file cannot be decoded. The loader's
    docstring promises ``OSError`` for a file that "cannot be decoded as
    an image", naming it; a plain truncation already is refused so
    (:func:`test_a_truncated_jpeg_is_refused_naming_it`).
    """
    rgb = _smooth_rgb()
    path = str(tmp_path / '0001_c1s1_000151_00.jpg')
    with open(path, 'wb') as f:
        f.write(damage(_jpeg_bytes(rgb)))
    with pytest.raises(OSError, match=re.escape(path)):
        _load(path)


def test_a_jpeg_with_extraneous_bytes_is_read_exactly(tmp_path, capfd):
    """Bytes between the scan and the end-of-image marker are no damage.

    Many files of real datasets (re-saved by tools that pad) hold bytes
    after the last MCU, which libjpeg skips warning "Corrupt JPEG data: N
    extraneous bytes before marker 0xd9". The scan holds every MCU (ITU-T
    T.81, B.2.3): the pixels are those of the file without the bytes, so
    the file is read, and libjpeg's warning still reaches stderr.
    """
    data = _jpeg_bytes(_smooth_rgb())
    clean, padded = str(tmp_path / 'clean.jpg'), str(tmp_path / 'pad.jpg')
    with open(clean, 'wb') as f:
        f.write(data)
    with open(padded, 'wb') as f:
        f.write(data[:-2] + b'\x12' * 20 + b'\xff\xd9')
    np.testing.assert_array_equal(_load(padded), _load(clean))
    assert 'extraneous bytes' in capfd.readouterr().err


def test_a_truncated_jpeg_is_refused_naming_it(tmp_path):
    """A JPEG cut short (an interrupted download) is refused, named.

    The refusal comes from the OpenCV build (5.x stops at libjpeg's
    "premature end of JPEG file"; 4.x returned the image with the missing
    part grey), not from mmreid's code: no other test has a cut file, so
    a change of OpenCV would silently feed grey halves to the model.
    """
    path = str(tmp_path / 'cut.jpg')
    data = _jpeg_bytes(_smooth_rgb())
    for size in (len(data) // 2, len(data) - 2):
        with open(path, 'wb') as f:
            f.write(data[:size])
        with pytest.raises(OSError, match=re.escape(path)):
            _load(path)


# ---------------------------------------------------------------------------
# Pictures: the ranked-list hook, the report, the demo
# ---------------------------------------------------------------------------
def _rgba_tiff(tmp_path) -> tuple:
    """A matted crop: RGBA TIFF, alpha 0 on the left half; expected: the
    stored colours, alpha dropped (the loader's docstring)."""
    rgba = np.zeros((8, 4, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:, 2:, 3] = 255
    path = str(tmp_path / 'matted.tif')
    Image.fromarray(rgba, 'RGBA').save(path)
    return path, rgba[..., :3]


def _exif_jpeg(tmp_path) -> tuple:
    """A phone crop stored landscape with EXIF orientation 6; expected:
    the stored pixels rotated 90 degrees clockwise (EXIF 2.3, 4.6.4 A).
    """
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[:, :8] = 255  # white on the stored left: the displayed top
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    path = str(tmp_path / 'phone.jpg')
    image.save(path, exif=exif.tobytes(), quality=95)
    return path, np.rot90(stored, -1)


def _gray_bmp(tmp_path) -> tuple:
    """A RegDB-style 8-bit grey BMP; expected: grey on 3 channels."""
    gray = np.arange(32, dtype=np.uint8).reshape(8, 4) * 7
    path = str(tmp_path / 'thermal.bmp')
    Image.fromarray(gray, 'L').save(path)
    return path, np.repeat(gray[..., None], 3, axis=2)


def _drawn_by_ranked_list_hook(path: str, monkeypatch) -> np.ndarray:
    seen = []

    def draw(query, gallery, **kwargs):
        seen.append(query)
        return np.zeros((1, 1, 3), np.uint8)

    monkeypatch.setattr(ranked_list_hook, 'draw_ranked_list', draw)
    hook = RankedListHook(num_queries=1, topk=1, tile_size=(8, 4))
    hook._draw_one(
        dict(img_path=path, pid=1, camid=0),
        [dict(img_path=path, pid=1, camid=1)], [0.0])
    return seen[0]


def _drawn_by_report(path: str, monkeypatch) -> np.ndarray:
    analysis = dict(
        topk_index=[[0]],
        topk_distance=[[0.0]],
        topk_match=[[True]],
        ap=[1.0],
        first_rank=[1])
    analysis = type('Analysis', (), analysis)
    hook = EvalReportHook(num_queries=1, topk=1)
    example = hook._example('worst', 0, [dict(img_path=path, pid=1,
                                              camid=0)],
                            [dict(img_path=path, pid=1, camid=1)], analysis)
    return example.query['image']


def _drawn_by_demo(path: str, monkeypatch) -> np.ndarray:
    return load_tool('demo/rank_gallery.py').read_rgb(path)


PICTURES = [_drawn_by_ranked_list_hook, _drawn_by_report, _drawn_by_demo]


@pytest.mark.parametrize('drawn', PICTURES, ids=lambda f: f.__name__[10:])
@pytest.mark.parametrize('make', [
    pytest.param(_rgba_tiff, id='rgba_tiff'),
    pytest.param(_exif_jpeg, id='exif_jpeg'),
    pytest.param(_gray_bmp, id='gray_bmp')
])
def test_pictures_show_the_pixels_the_model_was_fed(
        tmp_path, monkeypatch, make, drawn):
    """The pictures show the image the model saw, decoded as it was.

    What the user does: runs ``tools/test.py --show-ranked-lists DIR``
    or ``--report DIR`` (``RankedListHook``, ``EvalReportHook``) or
    runs ``demo/rank_gallery.py`` on a set whose crops are RGBA TIFF
    files (matted pedestrians, transparent background), a phone JPEG
    with an EXIF orientation tag, or RegDB-style grey BMPs, and judges
    the worst queries by eye.

    What they get (RGBA TIFF): the model was fed the stored colours
    (``ReIDLoadImageFromFile`` drops the alpha, its docstring), but the
    hook, the report and the demo decode with ``mmcv.imread`` /
    ``cv2.imread``, whose TIFF decoder multiplies the colours by alpha:
    the pictures show a black background the model never saw, so a
    "failure" is blamed on the wrong pixels.

    What is right: the picture of an image is what the model was fed
    (the RGB array a lossless file stores, alpha dropped; the EXIF
    orientation applied; grey replicated to 3 channels), whichever tool
    draws it. The EXIF and grey cases hold today and pin it down.
    """
    path, expected = make(tmp_path)
    fed = _load(path)
    if make is not _exif_jpeg:  # lossless: the stored array exactly
        np.testing.assert_array_equal(fed, expected)
    else:  # JPEG: the rotation is what is checked, to JPEG's error
        assert fed.shape == expected.shape
        assert np.abs(fed.astype(int) - expected).mean() < 4
    shown = drawn(str(path), monkeypatch)
    np.testing.assert_array_equal(shown, fed)


# ---------------------------------------------------------------------------
# The inference API
# ---------------------------------------------------------------------------
@pytest.fixture
def tiny_model(tmp_path):
    config = tmp_path / 'tiny.py'
    config.write_text(tiny_model_config(num_classes=4))
    return randomize_statistics(init_model(str(config)))


def test_a_pil_photo_passed_as_advised_gets_its_files_features(
        tmp_path, tiny_model):
    """A PIL image, passed as mmreid advises, gets the file's features.

    What the user does: has a query photo from a phone (stored
    landscape, EXIF orientation 6, as phones write them) opened with
    PIL, passes the ``Image`` to ``extract_features`` (or
    ``rank_gallery``), is refused with "a PIL image: pass
    np.asarray(image.convert('RGB'))", and does so.

    What they get: ``convert('RGB')`` keeps the stored pixels and ignores
    the tag, so the model sees the person lying on their side: features
    (and the ranking) of another image than the same file passed as a
    path, which ``ReIDLoadImageFromFile`` decodes upright (the docs say
    it applies the tag). Nothing says the two differ.

    What is right: one photo gives one feature whichever way the API
    takes it. The image as displayed is the stored pixels with the
    orientation applied (EXIF 2.3, 4.6.4 A; ``PIL.ImageOps.
    exif_transpose``), which is what the path gives; the advice must
    lead there (e.g. ``np.asarray(ImageOps.exif_transpose(image)
    .convert('RGB'))``), or the API must take the image so.
    """
    stored = np.zeros((32, 64, 3), np.uint8)
    stored[:, :16] = (230, 40, 40)  # a red top, displayed
    stored[:, 16:] = (40, 40, 230)
    photo = Image.fromarray(stored)
    exif = photo.getexif()
    exif[0x0112] = 6
    path = str(tmp_path / 'phone.jpg')
    photo.save(path, exif=exif.tobytes(), quality=95)

    from_path = extract_features(tiny_model, path)
    with Image.open(path) as image:
        try:
            from_pil = extract_features(tiny_model, image)
        except TypeError as error:
            advice = re.search(r'a PIL image: pass (.+)\)$', str(error))
            assert advice, str(error)
            array = eval(advice.group(1), dict(
                np=np, image=image, ImageOps=ImageOps))
            from_pil = extract_features(tiny_model, array)
    torch.testing.assert_close(from_pil, from_path, rtol=1e-4, atol=1e-4)


def test_a_folder_image_the_loader_decodes_is_not_silently_left_out(
        tmp_path):
    """A folder's ``.webp`` image is listed or refused, never skipped.

    What the user does: passes a gallery folder to ``rank_gallery``
    (``demo/rank_gallery.py``) or ``tools/extract_features.py --images``
    whose images are partly WebP (scraped or re-encoded crops).

    What they get: :func:`list_images` keeps only ``.jpg .jpeg .png .bmp
    .tif .tiff`` names, so the WebP images are left out without a word:
    ``features.npy`` has fewer rows than the folder has images, and the
    ranking (so the top-1 rate the demo reports) is over a smaller
    gallery. ``ReIDLoadImageFromFile`` decodes these files (WebP with
    alpha is in its tests), and the same file given by path is taken.

    What is right: "bad input gets a clear error naming the file", and an
    image the loader decodes is input: it is listed, or the folder is
    refused naming it. Stray non-image files (``Thumbs.db``) stay
    ignored.
    """
    rgb = _smooth_rgb(8, 4)
    Image.fromarray(rgb).save(tmp_path / '0001_c1s1_000151_00.jpg')
    Image.fromarray(rgb).save(
        tmp_path / '0002_c1s1_000151_00.webp', lossless=True)
    (tmp_path / 'Thumbs.db').write_bytes(b'\x00')
    np.testing.assert_array_equal(
        _load(str(tmp_path / '0002_c1s1_000151_00.webp')), rgb)
    try:
        names = list_images(str(tmp_path))
    except ValueError as error:
        assert '0002_c1s1_000151_00.webp' in str(error)
    else:
        assert names == [
            '0001_c1s1_000151_00.jpg', '0002_c1s1_000151_00.webp'
        ]
