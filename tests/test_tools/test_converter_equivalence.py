"""Converted fast-reid / torchreid models compute their source's features.

Each source network is written here from its documented architecture (not
imported from the toolbox): fast-reid v1.x ``build_resnet_backbone`` +
``EmbeddingHead`` (BoT: stem max pooling ``MaxPool2d(3, 2, padding=0,
ceil_mode=True)``, last stride 1, BNNeck, test feature after the BNNeck,
optional IBN-a in stages 1-3) and torchreid's ``resnet50`` (torchvision
stem, last stride 2, no BNNeck, pooled feature at test time). Each is saved
the way its toolbox saves checkpoints, converted with the command-line
tool, loaded with ``init_model`` and compared on images that go through
each source's own preprocessing (PIL resize, its normalisation).
"""
import os
import runpy
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision
from mmengine.config import Config
from PIL import Image

from mmreid.apis import extract_features, init_model
from mmreid.utils.key_mapping import convert_checkpoint_file

REPO = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIZE = (128, 64)  # (height, width): the test size given to the converter
NUM_CLASSES = 5


class IBNa(nn.Module):
    """IBN-Net-a: instance norm on the first half of the channels."""

    def __init__(self, planes):
        super().__init__()
        self.half = planes // 2
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(planes - self.half)

    def forward(self, x):
        first, rest = torch.split(x, [self.half, x.shape[1] - self.half], 1)
        return torch.cat([self.IN(first.contiguous()), self.BN(rest)], 1)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (carries the stride) -> 1x1, expansion 4."""

    def __init__(self, inplanes, planes, stride, ibn):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = IBNa(planes) if ibn else nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """ResNet-50 with the stem pooling, last stride and IBN given."""

    def __init__(self, stem_pool, last_stride, ibn=False):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = stem_pool
        inplanes = 64
        for i, (planes, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2),
                                                      (256, 6, 2),
                                                      (512, 3, last_stride)]):
            layer = []
            for b in range(blocks):
                layer.append(
                    Bottleneck(inplanes, planes, stride if b == 0 else 1, ibn
                               and planes != 512))
                inplanes = planes * 4
            setattr(self, f'layer{i + 1}', nn.Sequential(*layer))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, 5):
            x = getattr(self, f'layer{i}')(x)
        return x


class FastReIDHead(nn.Module):
    """fast-reid v1.x ``EmbeddingHead`` of the BoT configs: average pool,
    BNNeck (``bottleneck.0``, bias frozen), classifier as ``weight``."""

    def __init__(self, channels, num_classes):
        super().__init__()
        self.pool_layer = nn.AdaptiveAvgPool2d(1)
        self.bottleneck = nn.Sequential(nn.BatchNorm2d(channels))
        self.bottleneck[0].bias.requires_grad_(False)
        self.weight = nn.Parameter(torch.randn(num_classes, channels) * 0.01)

    def forward(self, feats):
        return self.bottleneck(self.pool_layer(feats))[..., 0, 0]


class FastReIDBaseline(nn.Module):
    """fast-reid ``Baseline``: normalise with ``pixel_mean``/``pixel_std``
    (0-255, non-persistent buffers), backbone, head."""

    def __init__(self, ibn=False):
        super().__init__()
        self.backbone = ResNet50(
            nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True),
            last_stride=1,
            ibn=ibn)
        self.heads = FastReIDHead(2048, NUM_CLASSES)
        self.register_buffer(
            'pixel_mean',
            torch.tensor(IMAGENET_MEAN).view(1, -1, 1, 1) * 255, False)
        self.register_buffer(
            'pixel_std',
            torch.tensor(IMAGENET_STD).view(1, -1, 1, 1) * 255, False)

    def forward(self, images):
        x = (images - self.pixel_mean) / self.pixel_std
        return self.heads(self.backbone(x))

    @staticmethod
    def preprocess(image):
        """fast-reid's test transform: ``Resize(size, interpolation=3)``
        (PIL bicubic) on the PIL RGB image, ``ToTensor`` without scaling
        (0-255 floats)."""
        pil = Image.fromarray(image).resize(SIZE[::-1], Image.BICUBIC)
        return torch.from_numpy(np.asarray(pil).copy()).permute(2, 0,
                                                                1).float()


class TorchreidResNet50(nn.Module):
    """torchreid ``resnet50``: torchvision stem, last stride 2, global
    average pooling, a biased classifier; eval returns the pooled
    feature."""

    def __init__(self):
        super().__init__()
        self.base = ResNet50(
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1), last_stride=2)
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(2048, NUM_CLASSES)

    def forward(self, x):
        return self.global_avgpool(self.base(x)).flatten(1)

    def state_dict_as_torchreid(self):
        # torchreid's ResNet has the stages as top-level attributes.
        return {
            k[len('base.'):] if k.startswith('base.') else k: v
            for k, v in self.state_dict().items()
        }

    @staticmethod
    def preprocess(image):
        """``Resize((h, w))`` (PIL bilinear), ``ToTensor`` (/255),
        ``Normalize`` with ImageNet statistics."""
        pil = Image.fromarray(image).resize(SIZE[::-1], Image.BILINEAR)
        x = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0,
                                                             1).float() / 255
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        return (x - mean) / std


def randomize_norms(model, seed=0):
    """Trained-like norm layers: a wrong mapping or shift shows."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)):
            n = module.num_features
            module.weight.data = 0.5 + torch.rand(n, generator=gen) * 0.5
            module.bias.data = torch.randn(n, generator=gen) * 0.1
            if module.running_mean is not None:
                module.running_mean = torch.randn(n, generator=gen) * 0.1
                module.running_var = 0.5 + torch.rand(n, generator=gen)
    return model.eval()


def images(num=3, seed=0):
    """Crops of another size than the test size, so resizing matters."""
    rng = np.random.default_rng(seed)
    smooth = rng.integers(0, 256, (num, 20, 10, 3)).astype(np.uint8)
    return [
        np.asarray(Image.fromarray(s).resize((72, 150), Image.BILINEAR))
        for s in smooth
    ]


def source_features(model, imgs):
    with torch.no_grad():
        return model(torch.stack([model.preprocess(i) for i in imgs]))


def relative_error(feats, expected, label=None):
    error = ((feats - expected).norm(dim=1) / expected.norm(dim=1)).max()
    if label:
        # docs/get_started.md quotes these lines (pytest -s).
        print(f'\n{label}: largest relative feature error {error:.2g}')
    return error


def convert(tool, src, dst, *options):
    """Run a converter's command line; return its exit status."""
    argv = sys.argv
    sys.argv = [tool, str(src), str(dst), *options]
    try:
        runpy.run_path(
            os.path.join(REPO, 'tools', 'model_converters', tool),
            run_name='__main__')
    except SystemExit as e:
        return e.code or 0
    finally:
        sys.argv = argv
    return 0


def mmreid_config(**backbone):
    """A BoT R50 config as mmreid ships it (cv2 bilinear, torchvision stem
    pooling), at the test size."""
    return Config(
        dict(
            default_scope='mmreid',
            model=dict(
                type='ReIDModel',
                data_preprocessor=dict(
                    type='ReIDDataPreprocessor',
                    mean=[123.675, 116.28, 103.53],
                    std=[58.395, 57.12, 57.375]),
                backbone=dict(
                    type='ReIDResNet', depth=50, last_stride=1, **backbone),
                neck=dict(type='GlobalAvgPool'),
                head=dict(
                    type='BNNeckHead',
                    in_channels=2048,
                    num_classes=NUM_CLASSES)),
            test_pipeline=[
                dict(type='ReIDLoadImageFromFile'),
                dict(type='ReIDResize', size=SIZE),
                dict(type='PackReIDInputs')
            ]))


FASTREID_OVERRIDES = {
    'model.backbone.stem_pool.padding': 0,
    'model.backbone.stem_pool.ceil_mode': True,
    'test_pipeline.1.interpolation': 'bicubic',
    'test_pipeline.1.backend': 'pillow',
    # fast-reid ranks by cosine by default (TEST.METRIC); this config has
    # no metric, so the model's distance ranks.
    'model.distance': 'cosine',
}


def save_fastreid(model, path):
    """fast-reid's ``Checkpointer``: model, optimizer, scheduler and
    iteration."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [40, 90])
    torch.save(
        dict(
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(),
            iteration=12345), path)


@pytest.mark.parametrize('ibn', [False, True])
def test_fastreid_bot_r50_gives_the_source_features(tmp_path, ibn):
    torch.manual_seed(0)
    source = randomize_norms(FastReIDBaseline(ibn=ibn))
    source.heads.bottleneck[0].bias.data.zero_()  # frozen at 0 in fast-reid
    src = tmp_path / 'model_final.pth'
    save_fastreid(source, src)
    dst = tmp_path / 'converted.pth'
    # --strict: every tensor maps (the IBN keys included).
    assert convert('fastreid2mmreid.py', src, dst, '--strict', '--input-size',
                   *map(str, SIZE)) == 0
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['stem_pool'] == dict(
        kernel_size=3, stride=2, padding=0, ceil_mode=True)
    assert facts['interpolation'] == 'bicubic'
    ibn_stages = dict(ibn_stages=(True, True, True, False)) if ibn else {}

    # mmreid's defaults compute another network: refused, with the fix.
    config = mmreid_config(**ibn_stages)
    with pytest.raises(ValueError) as info:
        init_model(config, str(dst))
    message = str(info.value)
    assert 'stem max pooling padding: the source has 0' in message
    for key, value in FASTREID_OVERRIDES.items():
        assert f'{key!r}: {value!r}' in message, key

    model = init_model(config, str(dst), cfg_options=FASTREID_OVERRIDES)
    imgs = images()
    expected = source_features(source, imgs)
    feats = extract_features(model, imgs)
    name = 'fast-reid BoT R50' + ('-ibn' if ibn else '')
    assert relative_error(feats, expected, name) < 1e-5

    # What the stem pooling alone changes (the converted model before
    # stem_pool existed): ten times the tolerance and more.
    wrong = init_model(
        config,
        str(dst),
        cfg_options={
            k: v
            for k, v in FASTREID_OVERRIDES.items() if 'stem_pool' not in k
        },
        strict=False)
    assert relative_error(
        extract_features(wrong, imgs), expected,
        f'{name}, mmpretrain stem pooling') > 1e-4


def test_torchreid_resnet50_gives_the_source_features(tmp_path):
    torch.manual_seed(1)
    source = randomize_norms(TorchreidResNet50(), seed=1)
    src = tmp_path / 'model.pth.tar-60'
    # torchreid's save_checkpoint: the DataParallel state dict, epoch,
    # rank1, optimizer.
    optimizer = torch.optim.Adam(source.parameters(), lr=3e-4)
    torch.save(
        dict(
            state_dict={
                f'module.{k}': v
                for k, v in source.state_dict_as_torchreid().items()
            },
            epoch=60,
            rank1=0.873,
            optimizer=optimizer.state_dict()), src)
    dst = tmp_path / 'converted.pth'
    options = ['--input-size', *map(str, SIZE)]
    # classifier.bias has no mmreid counterpart: --strict refuses, the
    # default reports it.
    assert convert('torchreid2mmreid.py', src, dst, '--strict', *options) == 1
    assert convert('torchreid2mmreid.py', src, dst, *options) == 0
    meta = torch.load(dst, weights_only=True)['meta']
    assert meta['source_arch']['last_stride'] == 2
    assert meta['source_arch']['neck'] is None
    assert meta['source_arch']['test_feature'] == 'before_bn'

    config = mmreid_config()
    with pytest.raises(ValueError) as info:
        init_model(config, str(dst))
    overrides = {
        'model.backbone.last_stride': 2,
        'model.head.test_feature': 'before_bn',
        'test_pipeline.1.backend': 'pillow',
    }
    for key, value in overrides.items():
        assert f'{key!r}: {value!r}' in str(info.value), key
    model = init_model(config, str(dst), cfg_options=overrides)
    imgs = images(seed=1)
    expected = source_features(source, imgs)
    assert relative_error(
        extract_features(model, imgs), expected, 'torchreid resnet50') < 1e-5


class ConvBNReLU(nn.Module):
    """mmcv ``ConvModule`` with BN: ``conv`` (3x3, no bias), ``bn``,
    ReLU."""

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(planes)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    """mmpretrain ``BasicBlock`` (3x3 -> 3x3, expansion 1). With
    ``avg_down`` (ResNetV1d) a strided shortcut is ``AvgPool2d`` (no
    tensors, ``downsample.0``), a 1x1 conv of stride 1 and BN
    (``downsample.1``, ``downsample.2``)."""

    def __init__(self, inplanes, planes, stride, avg_down):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            shortcut = []
            if avg_down and stride != 1:
                shortcut.append(
                    nn.AvgPool2d(
                        stride,
                        stride,
                        ceil_mode=True,
                        count_include_pad=False))
                stride = 1
            shortcut += [
                nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                nn.BatchNorm2d(planes)
            ]
            self.downsample = nn.Sequential(*shortcut)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + identity)


class MMPretrainResNet18V1(nn.Module):
    """mmpretrain ``ResNetV1c`` (``avg_down=False``) or ``ResNetV1d``
    (``avg_down=True``), depth 18: the deep stem (three 3x3 ConvModules,
    ``stem.{0,1,2}``, 32-32-64 channels, the first of stride 2), max
    pooling ``(3, 2, padding=1)``, stage strides (1, 2, 2, 2)."""

    def __init__(self, avg_down):
        super().__init__()
        self.stem = nn.Sequential(
            ConvBNReLU(3, 32, 2), ConvBNReLU(32, 32, 1), ConvBNReLU(32, 64, 1))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        for i, (planes, stride) in enumerate([(64, 1), (128, 2), (256, 2),
                                              (512, 2)]):
            setattr(
                self, f'layer{i + 1}',
                nn.Sequential(
                    BasicBlock(inplanes, planes, stride, avg_down),
                    BasicBlock(planes, planes, 1, avg_down)))
            inplanes = planes

    def forward(self, x):
        x = self.maxpool(self.stem(x))
        for i in range(1, 5):
            x = getattr(self, f'layer{i}')(x)
        return x


@pytest.mark.parametrize('variant', ['ResNetV1c', 'ResNetV1d'])
def test_mmpretrain_deep_stem_resnet_gives_the_source_features(
        tmp_path, variant):
    from mmpretrain.models import backbones as mmpretrain_backbones

    from mmreid.registry import MODELS
    avg_down = variant == 'ResNetV1d'
    torch.manual_seed(2)
    source = randomize_norms(MMPretrainResNet18V1(avg_down), seed=2)
    # The network written here has mmpretrain's tensor names exactly.
    assert sorted(source.state_dict()) == sorted(
        getattr(mmpretrain_backbones, variant)(depth=18).state_dict())
    # mmpretrain's ImageClassifier checkpoint: backbone, linear head.
    state_dict = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state_dict['head.fc.weight'] = torch.rand(10, 512)
    state_dict['head.fc.bias'] = torch.rand(10)
    src = tmp_path / f'{variant}.pth'
    torch.save(dict(meta=dict(epoch=100), state_dict=state_dict), src)
    dst = tmp_path / 'converted.pth'
    assert convert('resnet2mmreid.py', src, dst) == 0
    converted = torch.load(dst, weights_only=True)['state_dict']
    backbone = MODELS.build(
        dict(
            type='ReIDResNet',
            depth=18,
            last_stride=2,
            deep_stem=True,
            avg_down=avg_down)).eval()
    backbone.load_state_dict(
        {
            k[len('backbone.'):]: v
            for k, v in converted.items()
        }, strict=True)
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        expected = source(x)
        feats = backbone(x)[-1]
    torch.testing.assert_close(feats, expected, rtol=1e-5, atol=1e-5)


def test_unmapped_backbone_tensors_are_refused(tmp_path):
    # A backbone layer mmreid does not build (an SE block here) changes the
    # network: the ImageNet converter refuses it by name and writes
    # nothing; the ImageNet classifier is reported, not refused.
    source = MMPretrainResNet18V1(avg_down=True)
    state_dict = {f'backbone.{k}': v for k, v in source.state_dict().items()}
    state_dict['head.fc.weight'] = torch.rand(10, 512)
    state_dict['backbone.layer1.0.se.fc1.weight'] = torch.rand(4, 64, 1, 1)
    src = tmp_path / 'se.pth'
    torch.save(dict(state_dict=state_dict), src)
    dst = tmp_path / 'converted.pth'
    with pytest.raises(ValueError, match=r'backbone\.layer1\.0\.se\.fc1'):
        convert_checkpoint_file(str(src), str(dst), 'mmpretrain')
    assert not dst.exists()
    assert convert('resnet2mmreid.py', src, dst) == 1
    assert not dst.exists()
    # The same for torchvision's layout (no prefix; ``fc`` is the
    # classifier).
    tv = torchvision.models.resnet18(weights=None).state_dict()
    tv['layer1.0.se.fc1.weight'] = torch.rand(4, 64, 1, 1)
    src = tmp_path / 'tv_se.pth'
    torch.save(tv, src)
    with pytest.raises(ValueError, match=r'layer1\.0\.se\.fc1\.weight'):
        convert_checkpoint_file(str(src), str(dst), 'torchvision')
    assert not dst.exists()
