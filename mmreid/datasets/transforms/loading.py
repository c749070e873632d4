import io
from typing import Optional

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmengine import fileio

from mmreid.registry import TRANSFORMS
from mmreid.utils.deprecation import deprecated_registry_alias


@TRANSFORMS.register_module()
class ReIDLoadImageFromFile(BaseTransform):
    """Load an image as a 3-channel **RGB** ``uint8`` array.

    Every image is decoded to three channels: grayscale and infrared images
    are replicated to 3 channels and an alpha channel is dropped, so visible
    and infrared samples can share one batch. The channels are in RGB order
    (cv2 decodes BGR; this transform converts), hence the data preprocessor
    must be configured **not** to swap channels (``to_rgb=False``) and with
    RGB mean/std.

    A JPEG's EXIF orientation tag is applied: cv2 decodes a file tagged
    "rotate 90 degrees" to its displayed orientation, so H and W are
    swapped with respect to the stored pixels. mmcv's ``imread`` (which the
    report and ranked-list hooks use) does the same, and so does
    fast-reid's ``read_image``. The PIL loaders of torchreid, BoT and AGW
    (``Image.open(path).convert('RGB')``) ignore the tag and give the
    stored pixels, so on such a file a model converted from them sees
    another image than it was trained on. Files without the tag (as far as
    known, those of every supported dataset) load the same in all of
    them.

    Not mmcv's ``LoadImageFromFile``, which keeps BGR (a config names that
    one ``'mmpretrain.LoadImageFromFile'``). mmreid's old name
    ``LoadImageFromFile`` still builds this class for one release, with a
    ``FutureWarning``.

    Required Keys:

    - img_path

    Modified Keys:

    - img (np.ndarray): (H, W, 3) ``uint8``, RGB.
    - img_shape (tuple): (H, W).
    - ori_shape (tuple): (H, W).

    Args:
        backend_args (dict, optional): Arguments of the mmengine file backend
            (e.g. to read from object storage). Defaults to None, i.e. the
            local disk.

    Only 8-bit files are read: a 16-bit (or float) PNG/TIFF, e.g. a
    thermal image, is refused rather than cut to its high byte.

    Raises:
        FileNotFoundError: ``img_path`` does not exist.
        OSError: the file is empty or cannot be decoded as an image.
        ValueError: the file does not hold 8-bit samples.
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        self.backend_args = backend_args.copy() if backend_args else None

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        try:
            img_bytes = fileio.get(path, backend_args=self.backend_args)
        except FileNotFoundError as e:
            # The backend's own message does not always name the file.
            raise FileNotFoundError(f'image file not found: {path!r}') from e
        if not img_bytes:  # OpenCV's assertion would not name the file
            raise OSError(f'image file {path!r} is empty (0 bytes): an '
                          f'incomplete copy of the dataset?')
        # IMREAD_COLOR always gives 3 channels (gray is replicated, alpha
        # dropped) and applies the EXIF orientation (see the class
        # docstring). Alone it would also force 8 bits by keeping the high
        # byte of each sample, which turns a 12-bit image stored in 16 bits
        # nearly black; IMREAD_ANYDEPTH keeps the stored depth so that such
        # a file is refused, in the same single decode.
        img = cv2.imdecode(
            np.frombuffer(img_bytes, np.uint8),
            cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
        if img is None:
            raise OSError(f'cannot decode image file {path!r} (corrupt or '
                          f'not an image)')
        if img.dtype != np.uint8:
            raise ValueError(
                f'image file {path!r} holds {img.dtype.itemsize * 8}-bit '
                f'samples ({img.dtype}); ReIDLoadImageFromFile reads 8-bit '
                f'images only. Convert the file to 8-bit with a scaling '
                f'that suits your data (e.g. a 12-bit sensor range 0..4095 '
                f'to 0..255)')
        if img_bytes[:4] in TIFF_MAGIC:
            img = _tiff_colours(img_bytes, img, path)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(backend_args={self.backend_args})'


#: The first bytes of a TIFF file (little- and big-endian).
TIFF_MAGIC = (b'II*\x00', b'MM\x00*')


def _tiff_colours(img_bytes: bytes, img: np.ndarray, path: str) -> np.ndarray:
    """The stored colours of a TIFF with an alpha channel.

    OpenCV's TIFF decoder multiplies the colours by the (unassociated)
    alpha, under ``IMREAD_COLOR`` and ``IMREAD_UNCHANGED`` alike, where it
    drops the alpha of a PNG or WebP: a transparent background came out
    black. Such a file is read with PIL instead (its orientation tag
    applied, the alpha dropped, as ``convert('RGB')`` does); its opaque
    pixels must equal OpenCV's.

    Args:
        img_bytes (bytes): The file.
        img (np.ndarray): Its ``IMREAD_COLOR | IMREAD_ANYDEPTH`` decode,
            (H, W, 3) uint8 BGR.
        path (str): The file's path, for the message.

    Returns:
        np.ndarray: (H, W, 3) uint8 BGR, alpha dropped.

    Raises:
        ValueError: PIL and OpenCV disagree on the file's opaque pixels
            or its shape.
    """
    from PIL import Image, ImageOps  # torchvision's and mmcv's dependency
    try:
        with Image.open(io.BytesIO(img_bytes)) as pil:
            if 'A' not in pil.getbands():
                return img
            pil = ImageOps.exif_transpose(pil)
            alpha = np.asarray(pil.getchannel('A'))
            rgb = np.asarray(pil.convert('RGB'))
    except (OSError, ValueError):
        return img  # PIL cannot read it: OpenCV's decode stands
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    if bgr.shape != img.shape or not np.array_equal(
            bgr[alpha == 255], img[alpha == 255]):
        raise ValueError(
            f'image file {path!r} is a TIFF with an alpha channel, whose '
            'colours OpenCV multiplies by the alpha, and PIL reads it '
            'otherwise than OpenCV where it is opaque: convert it to PNG')
    return bgr


deprecated_registry_alias(TRANSFORMS, 'LoadImageFromFile',
                          ReIDLoadImageFromFile,
                          'mmpretrain.LoadImageFromFile')
