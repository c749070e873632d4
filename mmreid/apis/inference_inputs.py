"""The arguments of :func:`~mmreid.apis.inference.extract_features` and
:func:`~mmreid.apis.inference.rank_gallery`, taken or refused.

The image arguments (a path, a folder, an RGB array or a list of them:
:func:`_as_image_list`) and how each image goes through the config's
test pipeline (:class:`_Preprocessor`), the modality labels
(:func:`_modality_labels`), and :class:`ArgumentError`, the refusal that
names the argument (re-exported by :mod:`mmreid.apis.inference`).
"""
import os
import os.path as osp
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose

from mmreid.datasets.base_reid_dataset import IMG_EXTENSIONS, list_images

ImageInput = Union[str, Path, np.ndarray]
ImagesInput = Union[ImageInput, Sequence[ImageInput]]


class ArgumentError(ValueError):
    """A refused argument of :func:`extract_features` or
    :func:`rank_gallery`, its message naming the argument(s).

    ``str(error)`` names them as the API's arguments (``batch_size``);
    :meth:`spelled` as a tool names the options that set them (the demo's
    ``--batch-size``), so a tool's user is not told to set an argument
    the tool does not have.

    Args:
        message (str): The message, naming the API's arguments.
        arguments (Sequence[str]): The argument names the message refers
            to; :meth:`spelled` replaces only these (whole words).
    """

    def __init__(self, message: str, arguments: Sequence[str]) -> None:
        super().__init__(message)
        self.arguments = tuple(arguments)

    def spelled(self, options: Dict[str, str]) -> str:
        """The message with each argument named as ``options`` names it
        (``{'batch_size': '--batch-size'}``); others are kept."""
        message = str(self)
        for name in self.arguments:
            if name in options:
                message = re.sub(rf'(?<![\w-]){re.escape(name)}(?!\w)',
                                 options[name], message)
        return message


#: What the image arguments take, for the messages.
IMAGES_EXPECTED = ('a path, a folder, an RGB uint8 array (H, W, 3) or a '
                   'list of paths and such arrays')


def _conversion_hint(value) -> Optional[str]:
    """How to pass an image given as something the API does not take (a
    PIL image, a tensor, a path as bytes); None for other values."""
    if isinstance(value, (bytes, bytearray)):
        return 'a path as bytes: pass os.fsdecode(path)'
    if isinstance(value, torch.Tensor):
        return ('a tensor: pass an RGB uint8 array (H, W, 3), e.g. '
                'tensor.numpy()')
    if type(value).__module__.split('.')[0] == 'PIL':
        # exif_transpose: the loader applies a file's EXIF orientation, and
        # convert('RGB') alone keeps the stored (e.g. sideways) pixels.
        return ('a PIL image: pass np.asarray(ImageOps.exif_transpose('
                "image).convert('RGB'))")
    return None


def _as_image_list(images: ImagesInput,
                   name: str = 'images') -> List[ImageInput]:
    """The images of an image argument: a path, a folder (its images, as
    :func:`list_images` lists them), an array, or a list of paths and
    arrays.

    Args:
        images: The argument.
        name (str): Its name, for the messages (``'query'``).

    Returns:
        list[str | np.ndarray]: Paths (as ``str``) and arrays.

    Raises:
        TypeError: ``images`` is none of those (a PIL image, a tensor,
            bytes), or an item of its list is neither a path nor an array.
        FileNotFoundError: ``images`` is a path that does not exist and
            has no image extension (a mistyped folder).
        ValueError: An item of its list is a folder (a folder is taken
            only as the whole argument).
    """
    if isinstance(images, (str, Path)):
        images = str(images)
        if osp.isdir(images):
            return [osp.join(images, name) for name in list_images(images)]
        if not osp.exists(images) and osp.splitext(
                images)[1].lower() not in IMG_EXTENSIONS:
            # A mistyped folder was read as a missing image file.
            raise FileNotFoundError(
                f'{name}: {images!r} is neither a folder nor a file (it '
                f'does not exist; the current directory is {os.getcwd()!r})'
                f'; expected {IMAGES_EXPECTED}')
        return [images]
    if isinstance(images, np.ndarray):
        return [images]
    hint = _conversion_hint(images)
    if hint is None:
        try:
            items = list(images)
        except TypeError:
            hint = 'not a sequence'
    if hint is not None:
        raise TypeError(f'{name}: expected {IMAGES_EXPECTED}, got '
                        f'{type(images).__name__} ({hint})')
    listed = []
    for index, item in enumerate(items):
        item = str(item) if isinstance(item, Path) else item
        if isinstance(item, str) and osp.isdir(item):
            raise ValueError(
                f'{name}[{index}] is a folder ({item!r}): a folder is taken '
                f'as the whole {name} argument (its images), not as an item '
                'of a list; pass it alone or list its image paths')
        if not isinstance(item, (str, np.ndarray)):
            hint = _conversion_hint(item)
            raise TypeError(
                f'{name}[{index}]: expected a path or an RGB uint8 array '
                f'(H, W, 3), got {type(item).__name__}' +
                (f' ({hint})' if hint else ''))
        listed.append(item)
    return listed


def _modality_labels(modality,
                     num_images: int,
                     name: str = 'modality') -> Optional[List[int]]:
    """One modality label per image, from a modality argument.

    Args:
        modality: None, an int for all images (Python or NumPy, a 0-d
            array or tensor), or a sequence of ints, one per image (a
            list, tuple, 1-d array or tensor).
        num_images (int): The number of images.
        name (str): The argument's name, for the messages.

    Returns:
        list[int] | None: ``num_images`` labels, or None.

    Raises:
        ArgumentError: A label that is not an integer (a bool, a fraction,
            a string: refused as :class:`~mmreid.evaluation.metrics.
            ReIDMetric` refuses such labels, never converted), or a
            sequence of another length than the images.
    """
    from mmreid.evaluation.metrics.records import label_to_int
    if modality is None:
        return None
    per_image = isinstance(modality, (list, tuple)) or (isinstance(
        modality, (np.ndarray, torch.Tensor)) and modality.ndim > 0)
    values = list(modality) if per_image else [modality]
    for index, value in enumerate(values):
        try:
            values[index] = label_to_int(value, name)
        except ValueError:
            which = f'{name}[{index}]={value!r} is not' if per_image \
                else 'not'
            raise ArgumentError(
                f'{name}={modality!r}: {which} an integer label; expected '
                'an int, 0 (visible) or 1 (infrared), for all images, or a '
                'sequence of them, one per image (a bool, a fraction or a '
                'string is refused, not converted)', [name]) from None
    if not per_image:
        return values * num_images
    if len(values) != num_images:
        raise ArgumentError(
            f'{name} has {len(values)} labels for {num_images} images: '
            'give one per image, or one int for all', [name])
    return values


class _Preprocessor:
    """Run the test pipeline on a path or an RGB array.

    A path goes through the whole pipeline. An array skips its loading
    step, which is only right when the loader gives what the array is: an
    RGB ``uint8`` image, as mmreid's ``ReIDLoadImageFromFile`` does. With
    another loader (mmcv's ``LoadImageFromFile``, which a config names
    ``'mmpretrain.LoadImageFromFile'``, decodes BGR) arrays are refused.
    A pipeline without a loading step takes arrays only.

    A pipeline that the model's data preprocessor would misread (a BGR
    loader for a model that takes RGB, a second normalisation, a foreign
    packer) is refused when it is made, as ``tools/test.py`` refuses it
    (:func:`~mmreid.utils.pipeline_check.check_pipeline`).
    """

    def __init__(self, cfg: Config, target: Optional[str],
                 preprocessor: Any) -> None:
        from mmreid.datasets.transforms.loading import ReIDLoadImageFromFile
        from mmreid.utils.pipeline_check import check_pipeline
        from mmreid.utils.pipeline_source import resolve_test_pipeline
        source = resolve_test_pipeline(
            cfg, target, option='init_model(..., target={})')
        check_pipeline(source, preprocessor)
        transforms = Compose(source.pipeline).transforms
        first = transforms[0] if transforms else None
        name = str(source.pipeline[0].get('type')) if source.pipeline \
            else ''
        is_loader = isinstance(first, ReIDLoadImageFromFile) or \
            name.endswith('LoadImageFromFile') or \
            type(first).__name__.endswith('LoadImageFromFile')
        # Arrays skip the loading step, paths go through the config's.
        self.load = Compose(transforms[:1]) if is_loader else None
        self.rest = Compose(transforms[1:] if is_loader else transforms)
        self.array_refusal = None
        if is_loader and not isinstance(first, ReIDLoadImageFromFile):
            cls = type(first)
            self.array_refusal = (
                f'the test pipeline ({source.path}) loads images with '
                f"type={name!r} ({cls.__module__}.{cls.__name__}), not "
                "mmreid's ReIDLoadImageFromFile, so the channel order it "
                "gives is not an RGB array's (mmcv's decodes BGR): pass "
                'image paths, or load with ReIDLoadImageFromFile')

    def __call__(self, image: ImageInput, index: int) -> dict:
        if isinstance(image, np.ndarray):
            if self.array_refusal is not None:
                raise ValueError(f'image #{index} is an array, but '
                                 f'{self.array_refusal}')
            if image.ndim != 3 or image.shape[2] != 3 \
                    or image.dtype != np.uint8 or not image.size:
                raise ValueError(
                    f'image #{index}: expected an RGB uint8 array of shape '
                    f'(H, W, 3), H and W >= 1, got {image.dtype} '
                    f'{image.shape}')
            results = dict(
                img=image,
                img_shape=image.shape[:2],
                ori_shape=image.shape[:2])
        elif isinstance(image, str):
            if self.load is None:
                raise ValueError('the test pipeline does not start with '
                                 'ReIDLoadImageFromFile; pass arrays')
            results = self.load(dict(img_path=image))
        else:
            raise TypeError(f'image #{index}: expected a path or an array, '
                            f'got {type(image).__name__}')
        return self.rest(results)
