"""Backbones and ImageNet weights checked against their definitions.

Black-box checks of the blocks between the image and the feature: an
ImageNet ResNet loaded into mmreid's backbones must compute torchvision's
own network (the last stride 1 of Luo et al. 2019 included), an IBN-Net-a
backbone must compute the IBN-Net paper's layer (Pan et al., ECCV 2018),
and ``frozen_stages`` must freeze everything a frozen stage computes. The
references are written here from the definitions, not from mmreid's code.
"""
import copy

import pytest
import torch
import torch.nn as nn

from mmreid.models.backbones import AGWResNet
from mmreid.models.layers import set_modality
from mmreid.registry import MODELS

torchvision = pytest.importorskip('torchvision')


def _randomise_norms(net: nn.Module) -> None:
    """Give every BN (and IN) non-trivial statistics and affines, so that
    a tensor loaded into the wrong place shows in the outputs."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
            if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


def _torchvision_resnet(depth: int) -> nn.Module:
    torch.manual_seed(0)
    net = getattr(torchvision.models, f'resnet{depth}')(weights=None)
    _randomise_norms(net)
    return net


def _with_last_stride_1(net: nn.Module) -> nn.Module:
    """torchvision's ResNet with the ReID last stride 1 (Luo et al. 2019):
    the stride of the first block of layer4 is 1 in its strided conv (the
    3x3 conv: conv2 of a bottleneck, conv1 of a basic block) and in its
    1x1 shortcut conv."""
    net = copy.deepcopy(net)
    block = net.layer4[0]
    strided = block.conv2 if hasattr(block, 'conv3') else block.conv1
    strided.stride = (1, 1)
    block.downsample[0].stride = (1, 1)
    return net


def _torchvision_stages(net: nn.Module, x: torch.Tensor) -> list:
    """The four stage outputs of torchvision's forward."""
    y = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    outs = []
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        y = layer(y)
        outs.append(y)
    return outs


@pytest.mark.parametrize('depth,last_stride', [(18, 1), (18, 2), (50, 1),
                                               (50, 2)])
def test_an_imagenet_resnet_computes_torchvisions_network(
        tmp_path, depth, last_stride):
    """A user starts a ReIDResNet from torchvision's ImageNet weights
    (``init_cfg=dict(type='Pretrained', checkpoint=...)``, torchvision's
    key names). Every stage output must be torchvision's own forward of
    those weights; with ``last_stride=1`` that of the same network whose
    first layer4 block has stride 1 in both its strided conv and its
    shortcut (BoT, Luo et al. 2019), giving a twice larger final map."""
    net = _torchvision_resnet(depth).eval()
    path = tmp_path / f'resnet{depth}.pth'
    torch.save(net.state_dict(), path)
    backbone = MODELS.build(
        dict(
            type='ReIDResNet',
            depth=depth,
            last_stride=last_stride,
            out_indices=(0, 1, 2, 3),
            init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    backbone.init_weights()
    backbone.eval()
    reference = net if last_stride == 2 else _with_last_stride_1(net)
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        ours = backbone(x)
        theirs = _torchvision_stages(reference, x)
    assert ours[3].shape[-2:] == (4 // last_stride, 2 // last_stride)
    for stage, (a, b) in enumerate(zip(ours, theirs)):
        torch.testing.assert_close(a, b, msg=f'stage {stage + 1}')


def test_a_converted_imagenet_resnet_computes_torchvisions_network(tmp_path):
    """``tools/model_converters/resnet2mmreid.py`` (torchvision source),
    then ``init_cfg=dict(type='Pretrained', prefix='backbone.')`` as the
    converter says: the backbone computes torchvision's network."""
    from mmreid.utils.key_mapping import convert_checkpoint_file
    net = _torchvision_resnet(18).eval()
    src, dst = tmp_path / 'r18.pth', tmp_path / 'r18_mmreid.pth'
    torch.save(net.state_dict(), src)
    convert_checkpoint_file(str(src), str(dst), 'torchvision', strict=True)
    backbone = MODELS.build(
        dict(
            type='ReIDResNet',
            depth=18,
            last_stride=2,
            out_indices=(0, 1, 2, 3),
            init_cfg=dict(
                type='Pretrained', checkpoint=str(dst), prefix='backbone.')))
    backbone.init_weights()
    backbone.eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        for stage, (a, b) in enumerate(
                zip(backbone(x), _torchvision_stages(net, x))):
            torch.testing.assert_close(a, b, msg=f'stage {stage + 1}')


class _PaperIBN(nn.Module):
    """IBN of IBN-Net-a as the paper defines it: instance normalisation
    (affine) of the first half of the channels, batch normalisation of
    the other half, concatenated in channel order."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.half = channels // 2
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(channels - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.IN(x[:, :self.half]),
             self.BN(x[:, self.half:])], dim=1)


def _paper_ibn_a_resnet50() -> nn.Module:
    """ResNet-50 IBN-a (Pan et al. 2018, Fig. 3a): the first norm (after
    the first 1x1 conv) of every bottleneck of conv2_x-conv4_x (layer1-3)
    is an IBN; layer4 and the stem keep BN."""
    net = _torchvision_resnet(50)
    for layer in (net.layer1, net.layer2, net.layer3):
        for block in layer:
            block.bn1 = _PaperIBN(block.bn1.num_features)
    _randomise_norms(net)
    return net


@pytest.mark.parametrize('training', [False, True])
def test_ibn_a_resnet50_computes_the_ibn_net_layer(tmp_path, training):
    """A user trains ``ReIDResNet(depth=50, ibn_stages=(True, True, True,
    False))`` from IBN-Net-a ImageNet weights (keys ``bn1.IN.*``,
    ``bn1.BN.*``). The backbone must compute the IBN-Net-a ResNet-50 of the
    paper: IN on the first half of the channels of the first norm of every
    block of stages 1-3, in training (batch statistics) and in eval."""
    paper = _paper_ibn_a_resnet50()
    path = tmp_path / 'r50_ibn_a.pth'
    torch.save(paper.state_dict(), path)
    backbone = MODELS.build(
        dict(
            type='ReIDResNet',
            depth=50,
            last_stride=2,
            ibn_stages=(True, True, True, False),
            out_indices=(0, 1, 2, 3),
            init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    backbone.init_weights()
    backbone.train(training)
    paper.train(training)
    x = torch.randn(4, 3, 64, 32)
    with torch.no_grad():
        ours = backbone(x)
        theirs = _torchvision_stages(paper, x)
    for stage, (a, b) in enumerate(zip(ours, theirs)):
        torch.testing.assert_close(
            a, b, rtol=1e-4, atol=1e-4, msg=f'stage {stage + 1}')


def test_agw_stems_from_imagenet_compute_torchvisions_network(tmp_path):
    """AGW (Ye et al. 2021) starts both modality stems and the shared
    trunk from one ImageNet ResNet, the non-local blocks as identities
    (zero-initialised W norm). Before any training, each sample of a
    mixed-modality batch must get torchvision's features of its image
    (last stride 1), whichever stem it goes through."""
    net = _torchvision_resnet(18)
    path = tmp_path / 'r18.pth'
    torch.save(net.state_dict(), path)
    backbone = AGWResNet(
        depth=18,
        non_local_stages=(0, 1, 1, 0),
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    backbone.init_weights()
    backbone.eval()
    x = torch.randn(4, 3, 64, 32)
    set_modality(backbone, torch.tensor([1, 0, 0, 1]))
    reference = _with_last_stride_1(net).eval()
    with torch.no_grad():
        ours = backbone(x)
        theirs = _torchvision_stages(reference, x)
    for stage, (a, b) in enumerate(zip(ours, theirs)):
        torch.testing.assert_close(a, b, msg=f'stage {stage + 1}')


def test_agw_frozen_stages_freeze_the_non_local_blocks_of_those_stages():
    """A user fine-tunes AGW with ``frozen_stages=2`` to keep the stem,
    layer1 and layer2 fixed. The non-local blocks that AGW inserts between
    the blocks of layer2 (``non_locals.1_*``) are part of that stage's
    computation (``forward_stage`` runs them inside the stage), so
    freezing the stage (mmpretrain: "stop grad and set eval mode") must
    freeze them too, as mmcv/mmdet freeze the plugins inside a frozen
    stage. Instead they keep ``requires_grad`` and training mode: their
    W norm updates its running statistics from every training batch and
    one optimiser step changes the stage-2 output (the "frozen" features)
    of every test image. Non-local blocks of stages that are not frozen
    (``non_locals.2_*``) stay trainable."""
    torch.manual_seed(0)
    backbone = AGWResNet(
        depth=18,
        base_channels=8,
        stem_channels=8,
        non_local_stages=(0, 1, 1, 0),
        frozen_stages=2,
        out_indices=(1, 3),
        init_cfg=None)
    backbone.init_weights()
    x = torch.randn(4, 3, 32, 16)
    set_modality(backbone, torch.tensor([0, 0, 1, 1]))
    backbone.eval()
    with torch.no_grad():
        stage2_before = backbone(x)[0].clone()
    frozen_block, free_block = backbone.non_locals['1_1'], \
        backbone.non_locals['2_1']
    stats_before = frozen_block.W[1].running_mean.clone()

    backbone.train()
    trainable = [p for p in backbone.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.5)
    optimizer.zero_grad()
    backbone(x)[1].pow(2).mean().backward()
    optimizer.step()
    backbone.eval()
    with torch.no_grad():
        stage2_after = backbone(x)[0]

    assert any(p.requires_grad for p in free_block.parameters())
    trained = [
        name for name, p in frozen_block.named_parameters()
        if p.requires_grad
    ]
    assert not trained, (
        f'non_locals.1_1 inside frozen layer2 still trains: {trained}')
    assert torch.equal(frozen_block.W[1].running_mean, stats_before), (
        'the W norm of a non-local block of a frozen stage updated its '
        'running statistics in training')
    torch.testing.assert_close(
        stage2_after,
        stage2_before,
        msg='the output of frozen stage 2 changed after one training step')


def test_plugin_stages_given_empty_is_refused_not_every_stage():
    """``stages=()`` (a user switching a plugin off) built the plugin after
    every stage, as ``stages`` left out does: an empty tuple is falsy.
    Refused by the one-bool-per-stage check instead; left out still means
    every stage."""
    from mmreid.models.backbones import ReIDResNet
    snr = dict(type='SNR', reduction=16)
    with pytest.raises(ValueError, match=r'plugin stages needs 4 entries'):
        ReIDResNet(depth=18, plugins=[dict(cfg=snr, stages=())])
    every = ReIDResNet(depth=18, plugins=[dict(cfg=snr)])
    assert sorted(every.snr_modules) == ['0', '1', '2', '3']


def test_ibn_ratio_without_ibn_stages_is_refused():
    """``ibn_ratio=0.25`` without ``ibn_stages`` builds no IBN layer, so
    the ratio was ignored without a word."""
    from mmreid.models.backbones import ReIDResNet
    with pytest.raises(ValueError, match=r'ibn_ratio=0.25 is set but '
                       'ibn_stages is None'):
        ReIDResNet(depth=18, ibn_ratio=0.25)
