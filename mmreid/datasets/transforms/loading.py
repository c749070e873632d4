import io
import os
import sys
import tempfile
import threading
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
    swapped with respect to the stored pixels. mmcv's ``imread`` does the
    same, and so does fast-reid's ``read_image``. The PIL loaders of
    torchreid, BoT and AGW (``Image.open(path).convert('RGB')``) ignore
    the tag and give the stored pixels, so on such a file a model
    converted from them sees another image than it was trained on. Files
    without the tag (as far as known, those of every supported dataset)
    load the same in all of them. The pictures of the report and
    ranked-list hooks and of ``demo/rank_gallery.py`` are read by
    :func:`read_image_rgb`, as this transform reads them.

    A JPEG whose scan data is damaged, which libjpeg decodes with grey or
    garbage blocks and only a warning on stderr, is refused (see
    :func:`_imdecode`).

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
        OSError: the file is empty or cannot be decoded as an image (a
            JPEG whose scan data is damaged included).
        ValueError: the file does not hold 8-bit samples.
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        self.backend_args = backend_args.copy() if backend_args else None

    def transform(self, results: dict) -> dict:
        img = read_image_rgb(results['img_path'], self.backend_args)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(backend_args={self.backend_args})'


def read_image_rgb(path: str,
                   backend_args: Optional[dict] = None) -> np.ndarray:
    """Read an image file as :class:`ReIDLoadImageFromFile` does.

    The one decode of mmreid: the pipelines and every picture of an image
    (ranked lists, the HTML report, ``demo/rank_gallery.py``) read a file
    through it, so a picture shows the pixels the model was fed.

    Args:
        path (str): The file.
        backend_args (dict, optional): Arguments of the mmengine file
            backend. Defaults to None, i.e. the local disk.

    Returns:
        np.ndarray: (H, W, 3) ``uint8``, RGB: grey replicated, alpha
        dropped, the EXIF orientation applied.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        OSError: the file is empty or cannot be decoded as an image (a
            JPEG whose scan data is damaged included).
        ValueError: the file does not hold 8-bit samples.
    """
    try:
        img_bytes = fileio.get(path, backend_args=backend_args)
    except FileNotFoundError as e:
        # The backend's own message does not always name the file.
        raise FileNotFoundError(f'image file not found: {path!r}') from e
    if not img_bytes:  # OpenCV's assertion would not name the file
        raise OSError(f'image file {path!r} is empty (0 bytes): an '
                      f'incomplete copy of the dataset?')
    # IMREAD_COLOR always gives 3 channels (gray is replicated, alpha
    # dropped) and applies the EXIF orientation (see the class docstring
    # of ReIDLoadImageFromFile). Alone it would also force 8 bits by
    # keeping the high byte of each sample, which turns a 12-bit image
    # stored in 16 bits nearly black; IMREAD_ANYDEPTH keeps the stored
    # depth so that such a file is refused, in the same single decode.
    img = _imdecode(img_bytes, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH, path)
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
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


#: The first bytes of a JPEG file (start-of-image marker).
JPEG_MAGIC = b'\xff\xd8'

#: libjpeg's warnings (``jerror.h``, lower case) that the entropy-coded
#: data of a scan is broken: the decoder fills the rest of the frame with
#: grey or garbage and returns the image, warning on stderr only.
#: "N extraneous bytes before marker" is not one: it is common in real
#: datasets and the pixels are exact.
JPEG_DAMAGE_WARNINGS = ('premature end', 'bad huffman code', 'instead of rst')

_stderr_lock = threading.Lock()
_stderr_capture = (None, None)  # (pid, fd) of this process's capture file
# A fork while a thread has fd 2 redirected would leave the child's
# stderr in the capture file (and its lock taken): fork between decodes.
if hasattr(os, 'register_at_fork'):  # POSIX; Windows does not fork
    os.register_at_fork(
        before=_stderr_lock.acquire,
        after_in_parent=_stderr_lock.release,
        after_in_child=_stderr_lock.release)


def _capture_fd() -> int:
    """The file this process redirects fd 2 to while decoding a JPEG, made
    once per process (a forked data-loader worker must not share the
    parent's file offset)."""
    global _stderr_capture
    pid, fd = _stderr_capture
    if pid != os.getpid():
        if fd is not None:
            os.close(fd)  # the parent's, inherited by fork
        if hasattr(os, 'memfd_create'):
            fd = os.memfd_create('mmreid-jpeg-stderr', os.MFD_CLOEXEC)
        else:
            fd, name = tempfile.mkstemp(prefix='mmreid-jpeg-stderr-')
            os.unlink(name)
        closed = []
        while fd <= 2:  # std fds closed: it must not be fd 2 itself
            closed.append(fd)
            fd = os.dup(fd)
        for low in closed:
            os.close(low)
        _stderr_capture = (os.getpid(), fd)
    return fd


def _imdecode(img_bytes: bytes, flags: int, path: str) -> Optional[np.ndarray]:
    """``cv2.imdecode``, refusing a JPEG whose scan data is damaged.

    libjpeg decodes a JPEG whose scan is cut short or corrupt (bit rot, a
    cut file followed by an end-of-image marker) to a full-size image
    whose damaged part is grey or garbage, and says so only by a warning
    that it prints to the process's stderr (fd 2); OpenCV returns the
    image. So fd 2 is redirected to a file during the decode of a JPEG
    (under a lock: two threads redirecting at once would leave fd 2 in the
    file), and a damage warning (:data:`JPEG_DAMAGE_WARNINGS`) refuses the
    file; anything else written meanwhile (another libjpeg warning,
    another thread's output) goes to stderr unchanged. A file, not a
    pipe, which would block on a long write. About 50 us a decode.

    Args:
        img_bytes (bytes): The file.
        flags (int): ``cv2.IMREAD_*`` flags.
        path (str): The file's path, for the message.

    Returns:
        np.ndarray | None: What ``cv2.imdecode`` returns.

    Raises:
        OSError: The file is a JPEG and libjpeg warns that its scan data
            is damaged.
    """
    buf = np.frombuffer(img_bytes, np.uint8)
    if img_bytes[:2] != JPEG_MAGIC:
        return cv2.imdecode(buf, flags)
    with _stderr_lock:
        capture = _capture_fd()
        if sys.stderr is not None and not sys.stderr.closed:
            sys.stderr.flush()  # Python's pending text is not libjpeg's
        try:
            saved = os.dup(2)
        except OSError:  # fd 2 is closed: capture anyway, close it after
            saved = None
        os.dup2(capture, 2)
        try:
            img = cv2.imdecode(buf, flags)
        finally:
            if saved is None:
                os.close(2)
            else:
                os.dup2(saved, 2)
                os.close(saved)
            size = os.fstat(capture).st_size
            os.lseek(capture, 0, os.SEEK_SET)
            text = os.read(capture, size) if size else b''
            os.ftruncate(capture, 0)
            os.lseek(capture, 0, os.SEEK_SET)
    damage, others = [], b''
    for line in text.splitlines(keepends=True):
        message = line.decode('utf-8', 'replace').strip()
        if any(w in message.lower() for w in JPEG_DAMAGE_WARNINGS):
            damage.append(message)
        else:
            others += line
    if others and saved is not None:
        os.write(2, others)
    if damage:
        raise OSError(
            f'image file {path!r} is a damaged JPEG: libjpeg reports '
            f'"{damage[0]}", so part of the decoded image is grey or '
            f'garbage, not the picture (copy the file again from the '
            f'source)')
    return img


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
    except (OSError, ValueError) as error:
        # PIL cannot read it (a compression it lacks): OpenCV's decode
        # stands only where there is no alpha for it to multiply by.
        channels = cv2.imdecode(
            np.frombuffer(img_bytes, np.uint8),
            cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
        if channels is not None and channels.ndim == 3 \
                and channels.shape[2] == 4:
            raise ValueError(
                f'image file {path!r} is a TIFF with an alpha channel, '
                'whose colours OpenCV multiplies by the alpha, and PIL, '
                f'which reads the stored colours, cannot open it ({error}): '
                'convert it to PNG') from error
        return img
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
