"""Wrong-number hunt in the inference API, the converters and the
feature tools: each test states the right result from its definition,
computed here, not read back from mmreid's code."""
import csv
import json
import os.path as osp
import runpy
import sys

import cv2
import numpy as np
import pytest
import torch
import torchvision

from mmreid.apis import extract_features, init_model
from mmreid.datasets import generate_synthreid
from mmreid.registry import MODELS
from ..fixtures.processes import REPO, load_tool
from ..fixtures.tiny_models import randomize_statistics, tiny_model_config

#: The tiny model's data preprocessor statistics (tiny_model_config).
TINY_MEAN = (120., 110., 100.)
TINY_STD = (60., 55., 50.)


def reference_inputs(paths, size):
    """Image files preprocessed here by the definition of a test pipeline
    of ``ReIDLoadImageFromFile`` (RGB uint8), ``ReIDResize(size)`` (cv2
    bilinear, the default backend) and the tiny model's data
    preprocessor, ``(x - mean) / std``.

    Args:
        paths (list[str]): Image files.
        size (tuple[int, int]): The resize's (height, width).

    Returns:
        Tensor: (N, 3, H, W) normalised inputs.
    """
    height, width = size
    batch = []
    for path in paths:
        rgb = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR),
                           cv2.COLOR_BGR2RGB)
        if rgb.shape[:2] != (height, width):
            rgb = cv2.resize(
                rgb, (width, height), interpolation=cv2.INTER_LINEAR)
        batch.append(torch.from_numpy(rgb).permute(2, 0, 1).float())
    mean = torch.tensor(TINY_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(TINY_STD).view(1, 3, 1, 1)
    return (torch.stack(batch) - mean) / std


def reference_features(model, paths, size):
    """The model's test features (``mode='tensor'``, eval mode) of image
    files preprocessed by :func:`reference_inputs`."""
    model.eval()
    with torch.no_grad():
        return model(reference_inputs(paths, size), mode='tensor')


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    """A tiny two-domain SynthReID (32 x 16 images) for the tool runs."""
    root = tmp_path_factory.mktemp('hunt_zoo')
    generate_synthreid(
        str(root / 'synthreid'),
        domains=2,
        size='tiny',
        img_size=(32, 16),
        progress=False)
    return root


#: A tiny model whose validation loader resizes to 64 x 32 and whose test
#: loader to 32 x 16 (a validation set checked at another size than the
#: test set, e.g. its own domain's crops).
VAL_AT_OTHER_SIZE = tiny_model_config() + '''\
synth = dict(type='SynthReID', data_root={data_root!r}, num_domains=2,
             size='tiny', seed=0, img_size=(32, 16))
val_pipeline = [
    dict(type='ReIDLoadImageFromFile'),
    dict(type='ReIDResize', size=(64, 32)),
    dict(type='PackReIDInputs'),
]
val_dataloader = dict(
    batch_size=4, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(synth, domain=0, split='test', pipeline=val_pipeline))
val_evaluator = dict(type='ReIDMetric')
val_cfg = dict()
test_dataloader = dict(
    batch_size=4, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(synth, domain=1, split='test', pipeline=test_pipeline))
test_evaluator = dict(type='ReIDMetric')
'''


def test_split_val_features_are_the_validated_ones(synth):
    """``tools/extract_features.py CONFIG CKPT --split val`` on a config
    whose validation loader resizes to 64 x 32 and whose test loader to
    32 x 16.

    The tool writes the validation images' features and records the
    validation metric's ranking in ``meta.json`` (``ranking_source:
    val_evaluator``); it refuses ``--split val`` where validation would
    extract at another precision (``val_cfg.fp16``) "so they would not
    be the validated ones". But it runs every image through the *test*
    pipeline: the features are the 32 x 16 ones, which the validation
    loop (``runner.val()``, the validation loader's pipeline) never
    computes, and ranking them with the recorded metric gives another
    mAP than validation reports. Right: the features of
    ``val_dataloader.dataset.pipeline`` (computed here from the
    pipeline's definition: RGB, cv2 bilinear resize to 64 x 32, the data
    preprocessor's mean/std), or a refusal that writes nothing.
    """
    root = synth
    config = root / 'val_other_size.py'
    config.write_text(
        VAL_AT_OTHER_SIZE.format(data_root=str(root / 'synthreid')))
    model = randomize_statistics(init_model(str(config)))
    checkpoint = root / 'val_other_size.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    out = root / 'val_features'
    tool = load_tool('tools/extract_features.py')
    with pytest.raises(ValueError) as info:
        tool.main([
            str(config),
            str(checkpoint), '--split', 'val', '--out-dir',
            str(out), '--device', 'cpu'
        ])
    assert 'validation reads them through val_dataloader.dataset.pipeline' \
        in str(info.value)
    assert not out.exists()  # a refusal writes nothing
    # With the validation pipeline as the test one, the features written
    # are the validated ones, computed here by the pipeline's definition.
    config.write_text(
        VAL_AT_OTHER_SIZE.format(data_root=str(root / 'synthreid')).replace(
            'domain=1, split=\'test\', pipeline=test_pipeline',
            'domain=1, split=\'test\', pipeline=val_pipeline'))
    tool.main([
        str(config),
        str(checkpoint), '--split', 'val', '--out-dir',
        str(out), '--device', 'cpu'
    ])
    with open(out / 'meta.json') as f:
        assert json.load(f)['ranking_source'] == 'val_evaluator'
    with open(out / 'index.csv', newline='') as f:
        paths = [row['path'] for row in csv.DictReader(f)]
    # The validation set is domain 0's test split.
    assert all(osp.sep + 'd0' + osp.sep in p for p in paths)
    written = torch.from_numpy(np.load(out / 'features.npy'))
    validated = reference_features(model, paths, (64, 32))
    torch.testing.assert_close(written, validated, rtol=1e-4, atol=1e-4)


def test_the_configs_test_feature_and_flip_reach_the_api(synth):
    """``init_model(config)`` + ``extract_features`` on a config with
    ``model.test_cfg.flip=True`` and ``model.head.test_feature=
    'before_bn'`` (the torchreid-converted setting).

    ``tools/test.py`` evaluates, per image, the mean of the pooled
    (pre-BNNeck) features of the image and of its horizontal mirror;
    the API must give that feature and no other (not the BNNeck's output,
    not the unflipped one). The reference is computed here: the images
    preprocessed by the pipeline's definition, the mirror taken on the
    width axis, the feature read before the BNNeck (backbone, then global
    average pooling, by its definition), the two averaged.
    """
    root = synth
    config = root / 'flip_before_bn.py'
    config.write_text(
        tiny_model_config(model_extra=',\n    test_cfg=dict(flip=True)'
                          ).replace("num_classes=8",
                                    "num_classes=8, test_feature='before_bn'"))
    model = randomize_statistics(init_model(str(config)))
    # The BNNeck's statistics differ from the identity, so the feature
    # before it is not the one after it.
    with torch.no_grad():
        model.head.bnneck.running_mean.uniform_(-1, 1)
        model.head.bnneck.running_var.uniform_(0.5, 2)
    folder = root / 'synthreid' / 'd1' / 'query'
    paths = sorted(str(p) for p in folder.iterdir())[:5]
    inputs = reference_inputs(paths, (32, 16))
    with torch.no_grad():
        (stage4, ) = model.backbone(inputs)
        (mirrored, ) = model.backbone(inputs.flip(3))
    expected = (stage4.mean(dim=(2, 3)) + mirrored.mean(dim=(2, 3))) / 2
    feats = extract_features(model, paths, batch_size=2)
    torch.testing.assert_close(feats, expected, rtol=1e-5, atol=1e-5)
    # Neither the unflipped feature nor the BNNeck's output.
    assert (feats - stage4.mean(dim=(2, 3))).abs().max() > 1e-3
    after_bn = model.head.bnneck(expected)
    assert (feats - after_bn).abs().max() > 1e-3


def test_a_converted_imagenet_backbone_gives_torchvisions_features(
        tmp_path):
    """The documented ImageNet path: ``resnet2mmreid.py`` on a
    torchvision ResNet-18 state dict (as ``torch.hub`` saves it), then
    the result as the backbone's ``init_cfg=dict(type='Pretrained',
    checkpoint=..., prefix='backbone.')`` and ``init_weights()``.

    With torchvision's stride (``last_stride=2``) the backbone then
    computes torchvision's network: its globally pooled ``layer4``
    feature equals torchvision's ``avgpool`` output (``fc`` removed) on
    the same input, in eval mode with trained-like BatchNorm statistics,
    which ``zero_init_residual`` or a re-initialisation after the load
    would change.
    """
    torch.manual_seed(0)
    source = torchvision.models.resnet18(weights=None)
    generator = torch.Generator().manual_seed(0)
    for module in source.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.weight.data = 0.5 + torch.rand(n, generator=generator) / 2
            module.bias.data = torch.randn(n, generator=generator) / 10
            module.running_mean = torch.randn(n, generator=generator) / 10
            module.running_var = 0.5 + torch.rand(n, generator=generator)
    src, dst = tmp_path / 'resnet18-tv.pth', tmp_path / 'r18_mmreid.pth'
    torch.save(source.state_dict(), src)
    argv = sys.argv
    sys.argv = ['resnet2mmreid.py', str(src), str(dst), '--strict']
    try:
        runpy.run_path(
            osp.join(REPO, 'tools', 'model_converters', 'resnet2mmreid.py'),
            run_name='__main__')
    finally:
        sys.argv = argv
    model = MODELS.build(
        dict(
            type='ReIDModel',
            backbone=dict(
                type='ReIDResNet',
                depth=18,
                last_stride=2,
                init_cfg=dict(
                    type='Pretrained',
                    checkpoint=str(dst),
                    prefix='backbone.')),
            neck=dict(type='GlobalAvgPool'),
            head=dict(
                type='BNNeckHead',
                in_channels=512,
                num_classes=4,
                test_feature='before_bn')))
    model.init_weights()
    model.eval()
    source.fc = torch.nn.Identity()
    source.eval()
    x = torch.randn(2, 3, 64, 32) * 2
    with torch.no_grad():
        expected = source(x)
        feats = model(x, mode='tensor')
    torch.testing.assert_close(feats, expected, rtol=1e-5, atol=1e-5)
