"""ReIDResNet's stem pooling option (fast-reid v1.x pools differently)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmreid.models.backbones.reid_resnet import ReIDResNet


def test_stem_pool_is_the_given_max_pooling():
    torch.manual_seed(0)
    plain = ReIDResNet(18, base_channels=8, stem_channels=8).eval()
    fastreid = ReIDResNet(
        18,
        base_channels=8,
        stem_channels=8,
        stem_pool=dict(padding=0, ceil_mode=True)).eval()
    fastreid.load_state_dict(plain.state_dict())  # no new tensors
    assert isinstance(plain.maxpool, nn.MaxPool2d)
    assert (plain.maxpool.padding, plain.maxpool.ceil_mode) == (1, False)
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        stem = plain.relu(plain.norm1(plain.conv1(x)))
        # The definition: max over 3x3 windows, stride 2, no padding, the
        # last partial window kept (ceil mode).
        expected = F.max_pool2d(stem, 3, 2, padding=0, ceil_mode=True)
        assert torch.equal(fastreid.forward_stem(x), expected)
        # Same map size at 256 x 128 inputs, shifted content.
        assert expected.shape == plain.forward_stem(x).shape
        assert not torch.equal(expected, plain.forward_stem(x))


def test_stem_pool_rejects_unknown_keys():
    with pytest.raises(KeyError, match="unknown keys \\['pading'\\]"):
        ReIDResNet(18, stem_pool=dict(pading=0))
