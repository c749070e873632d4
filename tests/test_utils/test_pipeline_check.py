"""A pipeline whose output the data preprocessor would misread is refused
before a run reads any image.

Written against the behaviour before the check: mmcv's BGR loader
(``'mmpretrain.LoadImageFromFile'``) and a second ``Normalize`` ran without
a word and gave other features (R1/mAP 33.3/27.88 became 50.0/38.20 and
27.88 became 31.22 on a user's data); mmpretrain's ``PackInputs`` failed
deep in the model with "'DataSample' object has no attribute 'gt_label'".
"""
import os.path as osp

import cv2
import numpy as np
import pytest
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.model import ImgDataPreprocessor

from mmreid.models.data_preprocessors import ReIDDataPreprocessor
from mmreid.utils.pipeline_check import (check_pipeline, check_pipelines,
                                         pipeline_problems)
from mmreid.utils.pipeline_source import PipelineSource

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

RGB_LOADER = dict(type='ReIDLoadImageFromFile')
BGR_LOADER = dict(type='mmpretrain.LoadImageFromFile')
RESIZE = dict(type='ReIDResize', size=(16, 8))
PACK = dict(type='PackReIDInputs')
IMAGENET = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])


def problems(pipeline, preprocessor=None):
    return pipeline_problems(
        PipelineSource('test_dataloader.dataset.pipeline', pipeline),
        preprocessor or ReIDDataPreprocessor())


def test_the_bgr_loader_gives_swapped_channels(tmp_path):
    """What the check is about: on the same file mmcv's loader gives the
    channels of mmreid's in reverse order."""
    image = np.zeros((4, 2, 3), np.uint8)
    image[..., 0] = 200  # red, in RGB order
    path = str(tmp_path / 'red.png')
    cv2.imwrite(path, image[..., ::-1])  # cv2 writes BGR
    rgb = Compose([RGB_LOADER])(dict(img_path=path))['img']
    bgr = Compose([BGR_LOADER])(dict(img_path=path))['img']
    assert rgb[0, 0].tolist() == [200, 0, 0]
    assert bgr[0, 0].tolist() == [0, 0, 200]


def test_a_bgr_loader_is_refused_naming_the_key_and_the_fix():
    found = problems([BGR_LOADER, RESIZE, PACK])
    assert len(found) == 1
    message = found[0]
    assert message.startswith('test_dataloader.dataset.pipeline[0] loads')
    assert "type='mmpretrain.LoadImageFromFile'" in message
    assert 'BGR' in message
    assert "dict(type='ReIDLoadImageFromFile')" in message


def test_a_second_normalisation_is_refused():
    """Unscoped 'Normalize' is mmcv's (mmengine's root registry)."""
    found = problems([
        RGB_LOADER, RESIZE,
        dict(type='Normalize', to_rgb=True, **IMAGENET), PACK
    ])
    assert len(found) == 1
    message = found[0]
    assert message.startswith('test_dataloader.dataset.pipeline[2] '
                              'normalises')
    assert 'mmcv.transforms.processing.Normalize' in message
    assert 'normalised twice' in message and 'drop this transform' in message


def test_a_foreign_packer_is_refused():
    found = problems([RGB_LOADER, RESIZE, dict(type='mmpretrain.PackInputs')])
    assert len(found) == 1
    assert found[0].startswith('test_dataloader.dataset.pipeline[2] packs')
    assert "dict(type='PackReIDInputs')" in found[0]


def test_what_the_preprocessor_takes_is_accepted():
    # mmreid's loader, also under its deprecated name (RGB as well).
    assert problems([RGB_LOADER, RESIZE, PACK]) == []
    assert problems([dict(type='LoadImageFromFile'), RESIZE, PACK]) == []
    # A BGR loader followed by the conversion mmreid knows, for a
    # preprocessor that does not normalise.
    plain = ReIDDataPreprocessor(mean=(0, 0, 0), std=(1, 1, 1))
    bgr_normalised = [
        BGR_LOADER, RESIZE,
        dict(type='Normalize', to_rgb=True, **IMAGENET), PACK
    ]
    assert problems(bgr_normalised, plain) == []
    # ... but that conversion on RGB images swaps them to BGR.
    found = problems([
        RGB_LOADER, RESIZE,
        dict(type='Normalize', to_rgb=True, **IMAGENET), PACK
    ], plain)
    assert len(found) == 1 and 'to_rgb=False' in found[0]
    # A preprocessor that swaps the channels itself takes BGR.
    swapping = ImgDataPreprocessor(bgr_to_rgb=True, **IMAGENET)
    assert problems([BGR_LOADER, RESIZE, PACK], swapping) == []
    (found, ) = problems([RGB_LOADER, RESIZE, PACK], swapping)
    # The advice is about the preprocessor: the RGB loader has no to_rgb.
    assert 'which decodes them to RGB, but ImgDataPreprocessor takes BGR' \
        in found and 'Give it to_rgb=False' not in found


def test_a_normalize_without_to_rgb_swaps_as_its_default_does():
    """mmcv's ``Normalize`` swaps BGR to RGB unless told otherwise
    (``to_rgb=True`` by default): written without ``to_rgb`` it makes a
    BGR loader's images RGB (accepted), and an RGB loader's BGR
    (refused)."""
    import inspect

    from mmcv.transforms import Normalize
    assert inspect.signature(Normalize).parameters['to_rgb'].default is True
    plain = ReIDDataPreprocessor(mean=(0, 0, 0), std=(1, 1, 1))
    normalize = dict(type='Normalize', **IMAGENET)
    assert problems([BGR_LOADER, RESIZE, normalize, PACK], plain) == []
    (found, ) = problems([RGB_LOADER, RESIZE, normalize, PACK], plain)
    assert 'test_dataloader.dataset.pipeline[2]' in found and \
        'swaps the channels to BGR' in found


def test_a_preprocessor_that_only_scales_or_only_shifts_normalises():
    """Only mean 0 with std 1 leaves the pixels as they are; a data
    preprocessor that subtracts a mean (std 1) or divides by a std (mean
    0) still normalises, so a ``Normalize`` in the pipeline would
    normalise the images twice: refused."""
    pipeline = [
        RGB_LOADER, RESIZE,
        dict(type='Normalize', to_rgb=False, **IMAGENET), PACK
    ]
    for mean, std in (((0, 0, 0), IMAGENET['std']),
                      (IMAGENET['mean'], (1, 1, 1))):
        (found, ) = problems(pipeline,
                             ReIDDataPreprocessor(mean=mean, std=std))
        assert 'would be normalised twice' in found
    plain = ReIDDataPreprocessor(mean=(0, 0, 0), std=(1, 1, 1))
    assert problems(pipeline, plain) == []


def test_every_split_and_target_is_checked():
    """The pipelines of every dataloader and of multi-target loops."""
    good = [RGB_LOADER, RESIZE, PACK]
    bad = [BGR_LOADER, RESIZE, PACK]
    cfg = dict(
        train_dataloader=dict(
            dataset=dict(
                type='ConcatReIDDataset',
                datasets=[dict(
                    pipeline=good), dict(pipeline=bad)])),
        val_dataloader=dict(dataset=dict(pipeline=good)),
        test_cfg=dict(targets=[
            dict(name='a', dataloader=dict(dataset=dict(pipeline=good))),
            dict(name='b', dataloader=dict(dataset=dict(pipeline=bad)))
        ]))
    with pytest.raises(ValueError) as info:
        check_pipelines(cfg, ReIDDataPreprocessor())
    lines = str(info.value).split('\n')
    assert [line.split(' ')[0] for line in lines] == [
        'train_dataloader.dataset.datasets.1.pipeline[0]',
        'test_cfg.targets.1.dataloader.dataset.pipeline[0]'
    ]
    check_pipelines(cfg, ReIDDataPreprocessor(), splits=('val', ))


def runner_cfg(tmp_path, pipeline) -> Config:
    """A BoT config whose datasets would fail at once if they were built:
    a refusal proves the check ran before any data was read."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'baseline', 'bot_r18_synthreid.py'))
    cfg.work_dir = str(tmp_path)
    missing = dict(
        type='Market1501', data_root=str(tmp_path / 'none'), pipeline=pipeline)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset = dict(missing)
        cfg[f'{split}_dataloader'].num_workers = 0
        cfg[f'{split}_dataloader'].persistent_workers = False
    return cfg


@pytest.mark.parametrize('pipeline, index, words', [
    ([BGR_LOADER, RESIZE, PACK], 0, 'BGR'),
    ([RGB_LOADER, RESIZE,
      dict(type='Normalize', **IMAGENET), PACK], 2, 'normalised twice'),
    ([RGB_LOADER, RESIZE,
      dict(type='mmpretrain.PackInputs')], 2, 'PackReIDInputs'),
])
@pytest.mark.parametrize('entry', ['train', 'val', 'test'])
def test_the_runner_refuses_before_reading_data(tmp_path, pipeline, index,
                                                words, entry):
    from mmreid.engine.runner import ReIDRunner
    runner = ReIDRunner.from_cfg(runner_cfg(tmp_path, pipeline))
    with pytest.raises(ValueError) as info:
        getattr(runner, entry)()
    message = str(info.value)
    assert message.startswith(f'{entry}_dataloader.dataset.pipeline[{index}] ')
    assert words in message


def test_the_runner_checks_only_the_splits_it_feeds(tmp_path):
    """tools/test.py does not refuse a training pipeline it never runs."""
    from mmreid.datasets.base_reid_dataset import DatasetLayoutError
    from mmreid.engine.runner import ReIDRunner
    cfg = runner_cfg(tmp_path, [RGB_LOADER, RESIZE, PACK])
    cfg.train_dataloader.dataset.pipeline = [BGR_LOADER, RESIZE, PACK]
    runner = ReIDRunner.from_cfg(cfg)
    with pytest.raises(DatasetLayoutError):  # past the check
        runner.test()
    with pytest.raises(ValueError, match='BGR'):
        runner.train()


class GlobalNoise(BaseTransform):
    """A transform of one's own that draws from numpy's global RNG without
    any mark."""

    def transform(self, results: dict) -> dict:
        results['img'] = results['img'] + np.random.randint(0, 2)
        return results


class MarkedNoise(BaseTransform):
    """A transform of one's own whose draw mmcv's cache_randomness marks
    (the draw itself hidden in a helper)."""

    @cache_randomness
    def _draw(self) -> int:
        return 1

    def transform(self, results: dict) -> dict:
        results['img'] = results['img'] + self._draw()
        return results


class Brighten(BaseTransform):
    """A deterministic transform of one's own."""

    def transform(self, results: dict) -> dict:
        results['img'] = results['img'] + 1
        return results


def test_a_random_test_transform_draws_from_the_worker_state():
    """What the check is about: evaluation samplers give plain indices, so
    a random transform draws from numpy's global RNG, which each
    dataloader worker seeds differently: the same image gives other
    pixels, so other features, with other workers."""
    image = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    flip = Compose([dict(type='ReIDRandomFlip', prob=0.5)])
    flips = set()
    for worker_seed in range(16):
        np.random.seed(worker_seed)
        out = flip(dict(img=image.copy(), sample_idx=0))['img']
        flips.add(bool((out != image).any()))
    assert flips == {True, False}


RANDOM = [
    dict(type='ReIDRandomFlip', prob=0.5),
    dict(type='PadRandomCrop', padding=2),
    dict(type='ReIDRandomErasing', prob=0.5),
    dict(type='Random2DTranslation', size=(16, 8)),
    dict(type='ReIDColorJitter', brightness=0.2),
    dict(type='RandomChannel'),
    dict(type='RandomFlip', prob=0.5),  # mmreid's deprecated alias
    dict(type='mmcv.RandomFlip', prob=0.5),
    dict(type='mmcv.RandomResize', scale=(16, 8), ratio_range=(0.8, 1.2)),
    dict(type='mmcv.RandomGrayscale', prob=0.5),
    dict(type='mmcv.RandomApply', transforms=[RESIZE]),
    dict(type=GlobalNoise),
    dict(type=MarkedNoise),
]


@pytest.mark.parametrize(
    'transform',
    RANDOM,
    ids=[getattr(t['type'], '__name__', t['type']) for t in RANDOM])
@pytest.mark.parametrize('split', ['val', 'test'])
def test_a_random_transform_is_refused_in_evaluation(transform, split):
    path = f'{split}_dataloader.dataset.pipeline'
    found = pipeline_problems(
        PipelineSource(path, [RGB_LOADER, RESIZE, transform, PACK]),
        ReIDDataPreprocessor(), split)
    assert len(found) == 1
    message = found[0]
    assert message.startswith(f'{path}[2] ')
    assert f'type={transform["type"]!r}' in message \
        or transform['type'].__name__ in message
    assert f'random transform in a {split} pipeline' in message
    assert 'num_workers' in message
    assert 'Drop it' in message and 'model.test_cfg.flip=True' in message
    # The training pipeline is where they belong.
    assert pipeline_problems(
        PipelineSource('train_dataloader.dataset.pipeline',
                       [RGB_LOADER, RESIZE, transform, PACK]),
        ReIDDataPreprocessor(), 'train') == []


def test_every_random_transform_is_named():
    found = problems([
        RGB_LOADER,
        dict(type='ReIDRandomFlip'), RESIZE,
        dict(type='ReIDRandomErasing'), PACK
    ])
    assert len(found) == 1
    assert found[0].startswith(
        "test_dataloader.dataset.pipeline[1] (type='ReIDRandomFlip' ")
    assert "test_dataloader.dataset.pipeline[3] (type='ReIDRandomErasing' " \
        in found[0]
    assert 'Drop them' in found[0]


def test_a_random_transform_inside_a_wrapper_is_refused():
    found = problems([
        RGB_LOADER,
        dict(
            type='mmcv.KeyMapper',
            transforms=[RESIZE, dict(type='ReIDRandomFlip')]), PACK
    ])
    assert len(found) == 1
    assert found[0].startswith(
        'test_dataloader.dataset.pipeline[1].transforms[1] '
        "(type='ReIDRandomFlip' ")


def test_torchvision_random_transforms_are_random():
    """mmpretrain registers torchvision's transforms ('torchvision/X') as
    partials of its wrapper; their code draws from torch's RNG."""
    import functools

    import torchvision.transforms as tv

    from mmreid.utils.pipeline_check import is_random_transform

    class Wrapper:

        def __init__(self, transform, **kwargs):
            self.t = transform(**kwargs)

    def registered(cls):
        return functools.partial(Wrapper, transform=cls)

    assert is_random_transform(registered(tv.RandomHorizontalFlip))
    assert is_random_transform(registered(tv.RandomResizedCrop))
    assert not is_random_transform(registered(tv.Resize))
    assert not is_random_transform(registered(tv.CenterCrop))


@pytest.mark.parametrize('transform', [
    RESIZE,
    dict(type=Brighten),
    dict(type='ReIDRandomFlip', prob=0),
    dict(type='ReIDRandomErasing', prob=0.0),
    dict(type='ReIDColorJitter', brightness=0.2, prob=0),
    dict(type='mmcv.RandomFlip', prob=0.0),
    dict(
        type='mmcv.RandomFlip',
        prob=[0.0, 0.0],
        direction=['horizontal', 'vertical']),
    dict(
        type='mmcv.RandomApply',
        transforms=[dict(type='ReIDRandomFlip')],
        prob=0),
    dict(type='mmcv.Compose', transforms=[RESIZE]),
])
def test_a_deterministic_test_transform_is_accepted(transform):
    """A probability of 0 never acts."""
    assert problems([RGB_LOADER, RESIZE, transform, PACK]) == []


class SeededFromImage(BaseTransform):
    """A deterministic transform of one's own whose code calls
    ``np.random``: its generator is seeded from the image, so the same
    image gets the same noise in any worker. It says so."""

    draws_at_random = False

    def transform(self, results: dict) -> dict:
        rng = np.random.default_rng(int(results['img'].sum()))
        results['img'] = results['img'] + rng.integers(0, 2)
        return results


class SeededUndeclared(SeededFromImage):
    """The same code without the declaration: the search finds
    ``np.random`` and cannot tell."""

    draws_at_random = None


class HiddenDraw(BaseTransform):
    """A transform whose draw no search finds (a generator held elsewhere),
    declared random."""

    draws_at_random = True

    def transform(self, results: dict) -> dict:
        return results


def test_a_transform_declares_its_draws():
    """``draws_at_random`` decides over the search of its code."""
    assert problems([RGB_LOADER, RESIZE,
                     dict(type=SeededFromImage), PACK]) == []
    undeclared = problems(
        [RGB_LOADER, RESIZE,
         dict(type=SeededUndeclared), PACK])
    assert len(undeclared) == 1
    assert 'SeededUndeclared' in undeclared[0]
    assert 'draws_at_random = False' in undeclared[0]
    hidden = problems([RGB_LOADER, RESIZE, dict(type=HiddenDraw), PACK])
    assert len(hidden) == 1 and 'HiddenDraw' in hidden[0]


def test_a_declaration_that_is_not_a_bool_is_refused():

    class Vague(Brighten):
        draws_at_random = 'no'

    with pytest.raises(TypeError, match=r"Vague.draws_at_random is 'no'"):
        problems([RGB_LOADER, RESIZE, dict(type=Vague), PACK])


@pytest.mark.parametrize('prob', [1, 1.0])
def test_a_flip_of_probability_one_is_accepted(prob):
    """Its one draw is whether it flips: at 1 it always does, in any
    worker."""
    assert problems(
        [RGB_LOADER, RESIZE,
         dict(type='ReIDRandomFlip', prob=prob), PACK]) == []
    image = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    flip = Compose([dict(type='ReIDRandomFlip', prob=prob)])
    for worker_seed in range(8):
        np.random.seed(worker_seed)
        out = flip(dict(img=image.copy(), sample_idx=0))['img']
        assert (out == image[:, ::-1]).all()


@pytest.mark.parametrize('transform', [
    dict(type='ReIDRandomErasing', prob=1),
    dict(type='ReIDColorJitter', brightness=0.2, prob=1),
    dict(type='mmcv.RandomApply', transforms=[RESIZE], prob=1.0),
    dict(
        type='mmcv.RandomFlip',
        prob=[0.5, 0.5],
        direction=['horizontal', 'vertical']),
])
def test_a_probability_of_one_is_still_random_elsewhere(transform):
    """Erasing at prob 1 still draws its box; the jitter its factors; mmcv's
    flip with two directions which one."""
    assert len(problems([RGB_LOADER, RESIZE, transform, PACK])) == 1


def test_random_transforms_are_refused_in_every_evaluation_split():
    """val and test dataloaders and multi-target loop targets; not the
    training split."""
    random = [RGB_LOADER, RESIZE, dict(type='ReIDRandomFlip'), PACK]
    good = [RGB_LOADER, RESIZE, PACK]
    cfg = dict(
        train_dataloader=dict(dataset=dict(pipeline=random)),
        val_dataloader=dict(dataset=dict(pipeline=random)),
        test_cfg=dict(targets=[
            dict(name='a', dataloader=dict(dataset=dict(pipeline=good))),
            dict(name='b', dataloader=dict(dataset=dict(pipeline=random)))
        ]))
    with pytest.raises(ValueError) as info:
        check_pipelines(cfg, ReIDDataPreprocessor())
    lines = str(info.value).split('\n')
    assert [line.split(' ')[0] for line in lines] == [
        'val_dataloader.dataset.pipeline[2]',
        'test_cfg.targets.1.dataloader.dataset.pipeline[2]'
    ]
    check_pipelines(cfg, ReIDDataPreprocessor(), splits=('train', ))


def test_check_pipeline_refuses_a_random_test_transform():
    """The one test pipeline of the inference API."""
    with pytest.raises(ValueError, match='random transform in a test'):
        check_pipeline(
            PipelineSource('test_pipeline', [
                RGB_LOADER,
                dict(type='PadRandomCrop', padding=2), RESIZE, PACK
            ]), ReIDDataPreprocessor())


@pytest.mark.parametrize('entry', ['val', 'test'])
def test_the_runner_refuses_a_random_evaluation_transform(tmp_path, entry):
    """Before any image is read (the datasets would fail at once)."""
    from mmreid.engine.runner import ReIDRunner
    flip = dict(type='ReIDRandomFlip')
    cfg = runner_cfg(tmp_path, [RGB_LOADER, flip, RESIZE, PACK])
    runner = ReIDRunner.from_cfg(cfg)
    with pytest.raises(ValueError) as info:
        getattr(runner, entry)()
    assert str(info.value).startswith(
        f'{entry}_dataloader.dataset.pipeline[1] '
        "(type='ReIDRandomFlip' ")


def test_check_pipeline_names_every_problem():
    """A BGR loader and a second Normalize in one pipeline: the one
    refusal of check_pipeline names both, so a user fixes them at once."""
    pipeline = [BGR_LOADER, RESIZE, dict(type='Normalize', **IMAGENET), PACK]
    with pytest.raises(ValueError) as info:
        check_pipeline(
            PipelineSource('test_dataloader.dataset.pipeline', pipeline),
            ReIDDataPreprocessor(mean=IMAGENET['mean'], std=IMAGENET['std']))
    message = str(info.value)
    assert 'test_dataloader.dataset.pipeline[0] ' in message
    assert 'test_dataloader.dataset.pipeline[2] ' in message
    assert 'BGR' in message and 'normalised twice' in message


def test_a_flip_with_one_probability_per_direction_acts_if_any_does():
    """mmcv's ``RandomFlip`` takes one probability per direction: it
    flips at random when any of them is above 0, the first alone being 0
    (no horizontal flip, vertical half the time) included."""
    flip = dict(
        type='mmcv.RandomFlip',
        prob=[0.0, 0.5],
        direction=['horizontal', 'vertical'])
    (found, ) = problems([RGB_LOADER, RESIZE, flip, PACK])
    assert 'test_dataloader.dataset.pipeline[2]' in found
    assert 'random transform in a test pipeline' in found


class MaybeInvert(BaseTransform):
    """A transform written like torchvision's: ``p``, the probability it
    acts, and a draw from the global random state."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def transform(self, results: dict) -> dict:
        if np.random.rand() < self.p:
            results['img'] = 255 - results['img']
        return results


def test_a_torchvision_style_p_of_zero_never_acts():
    """``p`` (torchvision's name) is a probability of acting like
    ``prob``: at 0 the transform never draws a different output and is
    accepted in a test pipeline; above 0 it is refused."""
    assert problems([RGB_LOADER, RESIZE,
                     dict(type=MaybeInvert, p=0), PACK]) == []
    (found, ) = problems([RGB_LOADER, RESIZE, dict(type=MaybeInvert), PACK])
    assert 'MaybeInvert' in found and 'random transform' in found
