"""``pytorch2onnx.py --verify``: onnxruntime, fed as the file's metadata
says, against ``tools/test.py``'s features of the same images
(:func:`verify`, :func:`reference_features`), and
:class:`VerificationFailed`, raised by the tool when they differ by more
than ``--tolerance``.
"""
from __future__ import annotations
import math
import os.path as osp
import tempfile
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

if TYPE_CHECKING:  # only for the annotations: no import cycle
    from pytorch2onnx import ImageFeatureModel

VERIFY_BATCHES = (1, 3)


class VerificationFailed(RuntimeError):
    """The exported graph does not compute the PyTorch model's features."""


def disagreement(reports: Sequence[Dict[str, float]],
                 tolerance: float) -> Optional[str]:
    """How :func:`verify`'s ``reports`` miss ``tolerance``, for a message
    (``'max abs diff 0.002 > tolerance 0.001'``), or None when they agree.

    NaN features (a diverged checkpoint, an op that makes NaN) agree with
    nothing: a NaN difference is never within the tolerance, wherever it
    stands (Python's ``max`` keeps or drops a NaN by its position).
    """
    diffs = [r['max_abs_diff'] for r in reports]
    if any(map(math.isnan, diffs)):
        return (f'max abs diff nan (features that are not finite; '
                f'tolerance {tolerance:g})')
    worst = max(diffs)
    if worst <= tolerance:
        return None
    return f'max abs diff {worst:.3g} > tolerance {tolerance:g}'


def verification_images(shape: Tuple[int, int],
                        count: int,
                        resized: bool,
                        seed: int = 0) -> List[np.ndarray]:
    """Random RGB ``uint8`` images (H, W, 3) for :func:`verify`: of other
    sizes than ``shape`` (half to twice it) where the file tells how to
    resize (``resized``), else of ``shape``."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        size = shape
        if resized:
            size = tuple(
                int(rng.integers(s // 2 + 1, 2 * s + 2)) for s in shape)
        images.append(rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    return images


def reference_features(model: ImageFeatureModel,
                       images: Sequence[np.ndarray]) -> torch.Tensor:
    """The features ``tools/test.py`` computes of ``images``, (N, D).

    The images are written as PNG files (lossless) and go through the
    config's test pipeline, the model's data preprocessor and its test
    forward (:func:`mmreid.apis.extract_features`). A config without a
    test pipeline (the size came from ``--shape``) has no loading or
    transform to run: the images (of the input size) go to the data
    preprocessor as they are.
    """
    from mmreid.apis import extract_features
    from mmreid.utils.pipeline_source import resolve_test_pipeline
    reid = model.model
    try:
        resolve_test_pipeline(reid.cfg, reid.test_target, option='--target {}')
    except KeyError:
        inputs = torch.stack(
            [torch.from_numpy(i).permute(2, 0, 1) for i in images])
        kwargs = {} if model.modality is None else dict(
            modality=model.modality)
        with torch.no_grad():
            data = reid.data_preprocessor(dict(inputs=inputs), False)
            return reid(data['inputs'], mode='tensor', **kwargs).float()
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, image in enumerate(images):
            paths.append(osp.join(folder, f'{index}.png'))
            if not cv2.imwrite(paths[-1], image[..., ::-1]):
                raise OSError(f'cannot write {paths[-1]!r}')
        return extract_features(reid, paths, modality=model.modality)


def verify(model: ImageFeatureModel,
           onnx_file: str,
           shape: Tuple[int, int],
           batch_sizes: Sequence[int] = VERIFY_BATCHES,
           seed: int = 0) -> List[Dict[str, float]]:
    """Compare onnxruntime, fed as the file says, with ``tools/test.py``'s
    features of the same images.

    The graph gets random RGB images prepared as the file's metadata tells
    a deployment: resized to ``shape`` with ``mmreid.resize_interpolation``
    of ``mmreid.resize_backend`` (images of the input size where the file
    records no resize), cast to float32. The expected features are those
    of the model's real data path (:func:`reference_features`): the test
    pipeline, the data preprocessor, the test forward. A difference is a
    graph that does not compute the model, or a data path it does not
    reproduce (a channel swap, another transform).

    Args:
        model (ImageFeatureModel): From :func:`build_model`.
        onnx_file (str): The exported file.
        shape (tuple[int, int]): Input (H, W).
        batch_sizes (Sequence[int]): Batch sizes to run.
        seed (int): Seed of the random images.

    Returns:
        list[dict]: Per batch size, ``batch``, ``max_abs_diff`` and
        ``max_abs_feature`` (the largest PyTorch feature magnitude).
    """
    from mmreid.datasets.transforms import ReIDResize
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError('--verify needs onnxruntime: pip install '
                          'onnxruntime (requirements/optional.txt)') from error
    session = onnxruntime.InferenceSession(
        onnx_file, providers=['CPUExecutionProvider'])
    input_name = session.get_inputs()[0].name
    props = session.get_modelmeta().custom_metadata_map
    resize = None
    if 'mmreid.resize_interpolation' in props:
        resize = ReIDResize(
            size=shape,
            interpolation=props['mmreid.resize_interpolation'],
            backend=props['mmreid.resize_backend'])
    images = verification_images(shape, sum(batch_sizes), resize is not None,
                                 seed)
    expected_all = reference_features(model, images)
    deployed = np.stack([
        (resize.transform(dict(img=i))['img'] if resize else i) for i in images
    ]).transpose(0, 3, 1, 2).astype(np.float32)
    reports, start = [], 0
    for batch in batch_sizes:
        expected = expected_all[start:start + batch]
        actual = torch.from_numpy(
            session.run(None, {input_name: deployed[start:start + batch]})[0])
        start += batch
        if tuple(actual.shape) != tuple(expected.shape):
            raise RuntimeError(f'onnxruntime gave features of shape '
                               f'{tuple(actual.shape)} for batch {batch}, '
                               f'PyTorch {tuple(expected.shape)}')
        reports.append(
            dict(
                batch=batch,
                max_abs_diff=float((actual - expected).abs().max()),
                max_abs_feature=float(expected.abs().max())))
    return reports
