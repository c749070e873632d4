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
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.model import ImgDataPreprocessor

from mmreid.models.data_preprocessors import ReIDDataPreprocessor
from mmreid.utils.pipeline_check import check_pipelines, pipeline_problems
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
    assert len(problems([RGB_LOADER, RESIZE, PACK], swapping)) == 1


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
