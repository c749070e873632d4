import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer

from mmreid.models.layers import IBN
from mmreid.registry import MODELS
from mmreid.utils import register_all_modules

register_all_modules()


def test_ibn_halves_match_instance_and_batch_norm():
    torch.manual_seed(0)
    ibn = IBN(8, ratio=0.25)
    with torch.no_grad():
        ibn.IN.weight.uniform_(0.5, 1.5)
        ibn.IN.bias.uniform_(-1, 1)
        ibn.BN.weight.uniform_(0.5, 1.5)
    x = torch.randn(4, 8, 5, 3) * 3 + 1
    out = ibn.train()(x)
    expected_in = F.instance_norm(
        x[:, :2], weight=ibn.IN.weight, bias=ibn.IN.bias)
    expected_bn = F.batch_norm(
        x[:, 2:],
        None,
        None,
        weight=ibn.BN.weight,
        bias=ibn.BN.bias,
        training=True)
    torch.testing.assert_close(out[:, :2], expected_in)
    torch.testing.assert_close(out[:, 2:], expected_bn)
    # Instance normalisation is per image: one image's output does not
    # depend on the rest of the batch (the BN half does).
    alone = ibn(torch.cat([x[:1], x[1:2] * 5]))[:1, :2]
    torch.testing.assert_close(alone, out[:1, :2])


def test_ibn_errors_and_norm_builder_name():
    with pytest.raises(ValueError, match='ratio'):
        IBN(8, ratio=1.0)
    with pytest.raises(ValueError, match='channels'):
        IBN(8)(torch.randn(2, 6, 3, 3))
    name, layer = build_norm_layer(dict(type='IBN', ratio=0.5), 16, postfix=1)
    assert name == 'bn1' and isinstance(layer, IBN)


@pytest.mark.parametrize('depth', [18, 50])
def test_reid_resnet_ibn_a_replaces_first_norm_of_stages_1_to_3(depth):
    plain = MODELS.build(dict(type='ReIDResNet', depth=depth))
    ibn = MODELS.build(
        dict(
            type='ReIDResNet',
            depth=depth,
            ibn_stages=(True, True, True, False)))
    for i, layer_name in enumerate(ibn.res_layers):
        for block in getattr(ibn, layer_name):
            assert isinstance(block.bn1, IBN) == (i < 3)
            assert not isinstance(block.bn2, IBN)
    plain_keys = set(plain.state_dict())
    ibn_keys = set(ibn.state_dict())
    # Only the first norms of stages 1-3 change keys (bn1.* -> bn1.IN/BN.*).
    changed = {k.rsplit('.bn1.', 1)[0] for k in plain_keys - ibn_keys}
    assert all(
        k.startswith(('layer1.', 'layer2.', 'layer3.')) for k in changed)
    assert all('.IN.' in k or '.BN.' in k for k in ibn_keys - plain_keys)
    out = ibn(torch.randn(2, 3, 64, 32))
    assert out[0].shape == plain(torch.randn(2, 3, 64, 32))[0].shape


def test_reid_resnet_ibn_stages_length_checked():
    with pytest.raises(ValueError, match='ibn_stages needs 4'):
        MODELS.build(dict(type='ReIDResNet', depth=18, ibn_stages=(True, )))


def test_reid_resnet_resolves_mmreid_norms_outside_the_scope():
    # In another scope mmcv's build_norm_layer alone would not find 'MBN'.
    from mmengine.registry import DefaultScope

    from mmreid.models.backbones import ReIDResNet
    from mmreid.models.layers import MBN
    with DefaultScope.overwrite_default_scope('mmengine'):
        model = ReIDResNet(depth=18, norm_cfg=dict(type='MBN'))
    assert isinstance(model.layer1[0].bn1, MBN)


def ibn_a_r18(**options):
    """An IBN-Net-a ResNet-18 (IBN in stages 1-3)."""
    return MODELS.build(
        dict(
            type='ReIDResNet',
            depth=18,
            ibn_stages=(True, True, True, False),
            **options))


def test_reid_resnet_ibn_batch_half_follows_norm_cfg():
    # The BN half of an IBN is a norm_cfg layer like the other norms: with
    # MBN it normalises each modality with its own statistics.
    from mmreid.models.layers import MBN
    from mmreid.models.modality_routing import set_modality
    model = ibn_a_r18(norm_cfg=dict(type='MBN', eps=1e-3))
    for layer in (model.layer1, model.layer2, model.layer3):
        for block in layer:
            assert isinstance(block.bn1, IBN)
            assert isinstance(block.bn1.BN, MBN)
            assert block.bn1.BN.eps == block.bn1.IN.eps == 1e-3
    set_modality(model, [0, 0, 1, 1])
    model.train()(torch.randn(4, 3, 64, 32))
    bns = model.layer1[0].bn1.BN.bns
    assert not torch.equal(bns[0].running_mean, bns[1].running_mean)


def test_reid_resnet_ibn_honours_norm_requires_grad():
    model = ibn_a_r18(norm_cfg=dict(type='BN', requires_grad=False))
    ibn = model.layer1[0].bn1
    assert isinstance(ibn, IBN)
    # Both halves, as the plain norm layers (bn2) of the same blocks.
    assert not model.layer1[0].bn2.weight.requires_grad
    assert [name for name, p in ibn.named_parameters()
            if p.requires_grad] == []
    default = ibn_a_r18()
    assert all(p.requires_grad for p in default.layer1[0].bn1.parameters())
    assert type(default.layer1[0].bn1.BN) is torch.nn.BatchNorm2d


def test_reid_resnet_ibn_in_frozen_stages_is_frozen():
    """mmpretrain's ResNet freezes its stages in __init__, before the IBN
    layers replace bn1: they stayed trainable in a frozen stage."""
    model = ibn_a_r18(frozen_stages=1)
    frozen = [p.requires_grad for p in model.layer1[0].bn1.parameters()]
    assert frozen == [False] * 4
    assert not model.layer1[0].bn1.training
    assert all(p.requires_grad for p in model.layer2[0].bn1.parameters())
    model.train()
    assert not model.layer1[0].bn1.training
    assert model.layer2[0].bn1.training


def test_ibn_batch_half_running_stats_follow_momentum():
    """BN's running mean moves by ``momentum`` toward each batch mean
    (running = (1 - m) * running + m * mean); IN keeps no statistics."""
    ibn = IBN(4, ratio=0.5, momentum=0.3).train()
    x = torch.arange(2 * 4 * 3 * 3, dtype=torch.float32).reshape(2, 4, 3, 3)
    ibn(x)
    batch_mean = x[:, 2:].mean(dim=(0, 2, 3))
    torch.testing.assert_close(ibn.BN.running_mean, 0.3 * batch_mean)
    assert ibn.IN.running_mean is None


def test_reid_resnet_ibn_ratio_sets_the_instance_normalised_channels():
    """``ibn_ratio`` is the IN fraction of every IBN layer's channels."""
    net = MODELS.build(
        dict(
            type='ReIDResNet',
            depth=18,
            base_channels=16,
            ibn_stages=(True, True, True, False),
            ibn_ratio=0.25))
    for layer, channels in [(net.layer1, 16), (net.layer3, 64)]:
        for block in layer:
            assert block.bn1.half == channels // 4
            assert block.bn1.IN.num_features == channels // 4
            assert block.bn1.BN.num_features == channels - channels // 4
