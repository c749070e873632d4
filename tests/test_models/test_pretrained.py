import pytest
import torch

from mmreid.models import load_pretrained, weight_init
from mmreid.registry import MODELS


def resnet18():
    return MODELS.build(dict(type='ReIDResNet', depth=18))


@pytest.fixture
def imagenet_ckpt(tmp_path):
    """An ImageNet-style checkpoint: backbone keys plus an fc layer."""
    state = {
        f'backbone.{k}': torch.randn_like(v.float()).to(v.dtype)
        for k, v in resnet18().state_dict().items()
    }
    state['head.fc.weight'] = torch.randn(1000, 512)
    path = tmp_path / 'r18.pth'
    torch.save(dict(state_dict=state, meta=dict()), path)
    return path, state


def test_init_cfg_pretrained_loads_and_reports(imagenet_ckpt, monkeypatch):
    path, state = imagenet_ckpt
    model = MODELS.build(
        dict(
            type='ReIDModel',
            backbone=dict(
                type='ReIDResNet',
                depth=18,
                init_cfg=dict(
                    type='Pretrained',
                    checkpoint=str(path),
                    prefix='backbone.')),
            head=dict(type='BNNeckHead', in_channels=512, num_classes=3)))
    messages = []
    monkeypatch.setattr(weight_init, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    model.init_weights()
    assert torch.equal(model.backbone.conv1.weight,
                       state['backbone.conv1.weight'])
    # mmreid's initializer (not mmengine's) ran and reported the match.
    assert any('ReIDResNet: loaded 120 of 120' in m for m in messages)


def test_missing_and_unexpected_keys_are_reported(imagenet_ckpt):
    path, _ = imagenet_ckpt
    # Whole checkpoint without prefix into the model: keys match (prefix is
    # part of the model's names), fc is unexpected.
    model = MODELS.build(
        dict(
            type='ReIDModel',
            backbone=dict(type='ReIDResNet', depth=18),
            head=dict(type='BNNeckHead', in_channels=512, num_classes=3)))
    report = load_pretrained(model, str(path))
    assert report['unexpected'] == ['head.fc.weight']
    assert 'head.classifier.weight' in report['missing']
    assert 'head.bnneck.weight' in report['missing']
    assert not any(k.startswith('backbone.') for k in report['missing'])


def test_checkpoint_matching_nothing_is_an_error(imagenet_ckpt):
    path, _ = imagenet_ckpt
    # Without the prefix, 'backbone.conv1.weight' matches no backbone key.
    with pytest.raises(RuntimeError, match='matches no key'):
        load_pretrained(resnet18(), str(path))
    with pytest.raises(KeyError, match='prefix'):
        load_pretrained(resnet18(), str(path), prefix='model.')
