"""Model converters (fast-reid, torchreid, torchvision, mmpretrain) and
publish_model, on state dicts built here with each project's key names."""
import hashlib
import os
import os.path as osp
import re
import runpy
import sys

import numpy as np
import pytest
import torch
import torchvision
from mmengine.logging.history_buffer import HistoryBuffer

from mmreid.registry import MODELS
from mmreid.utils.key_mapping import (RULES, convert_checkpoint_file,
                                      convert_state_dict)
from ..fixtures.processes import REPO, load_tool

CONVERTERS = osp.join(REPO, 'tools', 'model_converters')


def reid_model(depth=18, neck='GlobalAvgPool', last_stride=1, classes=5):
    channels = 512 if depth < 50 else 2048
    return MODELS.build(
        dict(
            type='ReIDModel',
            backbone=dict(
                type='ReIDResNet', depth=depth, last_stride=last_stride),
            neck=dict(type=neck),
            head=dict(
                type='BNNeckHead', in_channels=channels, num_classes=classes)))


def randomized(state_dict, seed=0):
    """Distinct values per tensor, so a wrong mapping cannot pass."""
    gen = torch.Generator().manual_seed(seed)
    return {
        k: torch.rand(v.shape, generator=gen) if v.is_floating_point() else v
        for k, v in state_dict.items()
    }


def load_strict_except(model, converted, allowed_missing=()):
    """Load and return the missing keys; nothing unexpected allowed."""
    incompatible = model.load_state_dict(converted, strict=False)
    assert incompatible.unexpected_keys == []
    missing = [
        k for k in incompatible.missing_keys
        if not k.endswith('num_batches_tracked')
    ]
    for key in missing:
        assert key.startswith(allowed_missing), key
    return missing


def test_torchvision_resnet50_gives_the_same_features():
    tv = torchvision.models.resnet50(weights=None)
    tv.load_state_dict(randomized(tv.state_dict()))
    converted, unmapped = convert_state_dict(tv.state_dict(),
                                             RULES['torchvision'])
    assert unmapped == ['fc.bias', 'fc.weight']
    assert all(k.startswith('backbone.') for k in converted)
    model = reid_model(depth=50, last_stride=2)
    missing = load_strict_except(model, converted, ('head.', ))
    assert sorted(missing) == sorted(
        k for k in model.state_dict()
        if k.startswith('head.') and not k.endswith('num_batches_tracked'))
    # Same network: torchvision's pooled feature equals mmreid's.
    tv.fc = torch.nn.Identity()
    tv.eval()
    model.eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        expected = tv(x)
        feat = model.neck(model.backbone(x))[-1]
    torch.testing.assert_close(feat, expected, rtol=1e-4, atol=1e-4)


def test_mmpretrain_classifier():
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS
    classifier = PRETRAIN_MODELS.build(
        dict(
            type='ImageClassifier',
            _scope_='mmpretrain',
            backbone=dict(type='ResNet', depth=18),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=10, in_channels=512)))
    state_dict = randomized(classifier.state_dict())
    converted, unmapped = convert_state_dict(state_dict, RULES['mmpretrain'])
    assert unmapped == ['head.fc.bias', 'head.fc.weight']
    model = reid_model()
    load_strict_except(model, converted, ('head.', ))
    for key, value in converted.items():
        assert torch.equal(model.state_dict()[key], value), key


def resnet_keys(depth=18):
    """torchvision-layout ResNet tensors (shared by fast-reid and
    torchreid)."""
    tv = getattr(torchvision.models, f'resnet{depth}')(weights=None)
    return {
        k: v
        for k, v in randomized(tv.state_dict(), seed=1).items()
        if not k.startswith('fc.')
    }


def bn_tensors(prefix, channels):
    return {
        f'{prefix}.weight': torch.rand(channels),
        f'{prefix}.bias': torch.zeros(channels),
        f'{prefix}.running_mean': torch.rand(channels),
        f'{prefix}.running_var': torch.rand(channels) + 0.5,
        f'{prefix}.num_batches_tracked': torch.tensor(7),
    }


@pytest.mark.parametrize('classifier',
                         ['heads.weight', 'heads.classifier.weight'])
def test_fastreid_bot(classifier):
    # fast-reid Baseline: backbone.*, heads.bottleneck.0 (BNNeck), GeM
    # pool_layer.p of shape (1,), the classifier (v1.x: heads.weight, v0.x:
    # heads.classifier.weight), pixel statistics as buffers.
    state_dict = {f'backbone.{k}': v for k, v in resnet_keys().items()}
    state_dict.update(bn_tensors('heads.bottleneck.0', 512))
    state_dict[classifier] = torch.rand(5, 512)
    state_dict['heads.pool_layer.p'] = torch.tensor([3.5])
    state_dict['pixel_mean'] = torch.rand(1, 3, 1, 1)
    state_dict['pixel_std'] = torch.rand(1, 3, 1, 1)
    state_dict['backbone.NL_2.0.g.weight'] = torch.rand(256, 512, 1, 1)
    converted, unmapped = convert_state_dict(state_dict, RULES['fastreid'])
    assert unmapped == ['backbone.NL_2.0.g.weight', 'pixel_mean', 'pixel_std']
    model = reid_model(neck='GeMPool')
    assert load_strict_except(model, converted) == []
    assert model.neck.p.item() == pytest.approx(3.5)
    assert torch.equal(model.head.classifier.weight, state_dict[classifier])
    assert torch.equal(model.head.bnneck.running_var,
                       state_dict['heads.bottleneck.0.running_var'])
    assert torch.equal(model.backbone.layer4[1].conv2.weight,
                       state_dict['backbone.layer4.1.conv2.weight'])


def test_fastreid_embedding_conv_is_not_a_bnneck():
    # With EMBEDDING_DIM > 0, heads.bottleneck.0 is a 1x1 conv.
    state_dict = {'heads.bottleneck.0.weight': torch.rand(256, 512, 1, 1)}
    converted, unmapped = convert_state_dict(state_dict, RULES['fastreid'])
    assert converted == {} and unmapped == ['heads.bottleneck.0.weight']


@pytest.mark.parametrize('neck_name', ['bnneck', 'bottleneck'])
def test_torchreid_resnet(neck_name):
    # torchreid resnet: top-level torchvision names, a biased classifier,
    # a BoT-style BatchNorm1d neck in forks.
    state_dict = dict(resnet_keys())
    state_dict.update(bn_tensors(neck_name, 512))
    state_dict['classifier.weight'] = torch.rand(5, 512)
    state_dict['classifier.bias'] = torch.rand(5)
    converted, unmapped = convert_state_dict(state_dict, RULES['torchreid'])
    assert unmapped == ['classifier.bias']
    model = reid_model()
    assert load_strict_except(model, converted) == []
    assert torch.equal(model.backbone.conv1.weight, state_dict['conv1.weight'])
    assert torch.equal(model.head.bnneck.weight,
                       state_dict[f'{neck_name}.weight'])


def test_two_keys_to_one_is_an_error():
    state_dict = dict(bn_tensors('bnneck', 4), **bn_tensors('bottleneck', 4))
    with pytest.raises(
            ValueError,
            match="'bnneck.weight' and "
            "'bottleneck.weight' both map"):
        convert_state_dict(state_dict, RULES['torchreid'])


def run_script(name, args, monkeypatch):
    """Run a tool in this process; return its exit code."""
    monkeypatch.setattr(sys, 'argv', [name] + [str(a) for a in args])
    try:
        runpy.run_path(osp.join(CONVERTERS, name), run_name='__main__')
    except SystemExit as e:
        return e.code
    return 0


def test_converter_cli(tmp_path, monkeypatch, capsys):
    # A torchreid checkpoint as torchreid saves it: DataParallel prefix,
    # epoch, rank1 (a numpy float), optimizer state.
    state_dict = dict(resnet_keys())
    state_dict['classifier.weight'] = torch.rand(5, 512)
    state_dict['classifier.bias'] = torch.rand(5)
    src = tmp_path / 'model.pth.tar-60'
    torch.save(
        dict(
            state_dict={
                f'module.{k}': v
                for k, v in state_dict.items()
            },
            epoch=60,
            rank1=np.float64(0.9),
            optimizer=dict(state={}, param_groups=[dict(lr=0.1)])), src)
    dst = tmp_path / 'out' / 'converted.pth'
    assert run_script('torchreid2mmreid.py', [src, dst, '--strict'],
                      monkeypatch) == 1
    assert not dst.exists()
    assert 'classifier.bias' in capsys.readouterr().err
    assert run_script('torchreid2mmreid.py', [src, dst], monkeypatch) == 0
    out = capsys.readouterr().out
    assert 'not mapped (1):\n  classifier.bias (5,)' in out
    converted = torch.load(dst, weights_only=True)
    assert converted['meta']['source'] == 'torchreid'
    assert torch.equal(converted['state_dict']['backbone.conv1.weight'],
                       state_dict['conv1.weight'])
    assert list(tmp_path.joinpath('out').iterdir()) == [dst]  # no tmp left
    # The wrong converter for the file: nothing maps, an error.
    assert run_script('fastreid2mmreid.py', [src, tmp_path / 'f.pth'],
                      monkeypatch) == 1
    assert 'no key' in capsys.readouterr().err
    # resnet2mmreid guesses the layout from the keys.
    tv = tmp_path / 'resnet18.pth'
    torch.save(resnet_keys(), tv)
    assert run_script('resnet2mmreid.py', [tv, tmp_path / 'r.pth'],
                      monkeypatch) == 0
    assert "'torchvision'" in str(
        torch.load(tmp_path / 'r.pth', weights_only=True)['meta'])
    with pytest.raises(KeyError, match='unknown source'):
        convert_checkpoint_file(str(tv), str(tmp_path / 'x.pth'), 'timm')


MMREID_CFG = "default_scope = 'mmreid'\nmodel = dict(type='ReIDModel')\n"


@pytest.mark.parametrize('script,args', [
    ('fastreid2mmreid.py', []),
    ('torchreid2mmreid.py', []),
    ('resnet2mmreid.py', []),
    ('resnet2mmreid.py', ['--source', 'torchvision']),
])
@pytest.mark.parametrize('snr', [False, True])
def test_an_mmreid_checkpoint_is_not_converted(tmp_path, monkeypatch, capsys,
                                               script, args, snr):
    """A checkpoint mmreid's runner wrote (``head.bnneck.*``, SNR modules,
    ``meta['cfg']`` with mmreid's scope) is no source's: every converter
    refuses it, says how to load it, and writes nothing (fast-reid's used
    to map its ResNet tensors, drop the rest and add an identity BNNeck)."""
    state_dict = reid_model().state_dict()
    if snr:
        state_dict['backbone.snr_modules.0.gate.fc1.bias'] = torch.rand(4)
    src = tmp_path / 'epoch_1.pth'
    torch.save(
        dict(
            meta=dict(
                epoch=1,
                cfg=MMREID_CFG,
                mmengine_version='0.10.7',
                dataset_meta=dict(classes=None)),
            state_dict=state_dict), src)
    dst = tmp_path / 'out.pth'
    assert run_script(script, [src, dst] + args, monkeypatch) == 1
    err = capsys.readouterr().err
    assert ('already an mmreid checkpoint (keys head.bnneck.* (5 tensors)'
            in err)
    assert "meta['cfg'] of an mmreid run" in err
    assert ('backbone.snr_modules.* (1 tensors)' in err) == snr
    assert 'load it directly with init_model / tools/test.py' in err
    assert not dst.exists()


@pytest.mark.parametrize('evidence', ['meta', 'keys'])
def test_an_mmreid_checkpoint_is_known_by_keys_or_meta(tmp_path, evidence):
    """Either sign alone is enough: a published checkpoint with mmreid's
    keys and no meta, or a converted ImageNet backbone (``backbone.*``
    only, its ``meta`` written by the converter), which is loaded with a
    ``Pretrained`` init_cfg, not with ``init_model``."""
    tv = tmp_path / 'resnet18.pth'
    torch.save(resnet_keys(), tv)
    converted = tmp_path / 'r18_mmreid.pth'
    convert_checkpoint_file(str(tv), str(converted), 'torchvision')
    src = converted if evidence == 'meta' else tmp_path / 'published.pth'
    if evidence == 'keys':
        torch.save(dict(state_dict=reid_model().state_dict()), src)
    dst = tmp_path / 'again.pth'
    with pytest.raises(ValueError) as info:
        convert_checkpoint_file(str(src), str(dst), 'mmpretrain')
    assert 'is already an mmreid checkpoint' in str(info.value)
    if evidence == 'meta':
        assert ('meta of an mmreid conversion from torchvision '
                '(resnet18.pth)') in str(info.value)
        assert "prefix='backbone.'" in str(info.value)
    else:
        assert 'keys head.bnneck.* (5 tensors)' in str(info.value)
        assert 'init_model' in str(info.value)
    assert not dst.exists()


def test_mmengine_meta_alone_is_not_mmreid(tmp_path):
    """An mmpretrain checkpoint trained with mmengine has the same
    ``mmengine_version`` and ``dataset_meta`` as mmreid's, and ``head.fc``:
    it is converted, not refused."""
    state_dict = {f'backbone.{k}': v for k, v in resnet_keys().items()}
    state_dict['head.fc.weight'] = torch.rand(10, 512)
    src = tmp_path / 'resnet18_8xb32_in1k.pth'
    torch.save(
        dict(
            meta=dict(
                mmengine_version='0.10.7',
                dataset_meta=dict(classes=['a'] * 10),
                cfg="default_scope = 'mmpretrain'\n"),
            state_dict=state_dict), src)
    dst = tmp_path / 'r18.pth'
    converted, unmapped = convert_checkpoint_file(
        str(src), str(dst), 'mmpretrain')
    assert unmapped == []
    assert torch.load(dst, weights_only=True)['meta']['dropped'] == [
        'head.fc.weight'
    ]


def load_publish():
    return load_tool('tools/model_converters/publish_model.py')


def test_publish_model(tmp_path):
    buffer = HistoryBuffer()
    buffer.update(1.5)
    weights = dict(w=torch.arange(4.), b=torch.ones(2))
    src = tmp_path / 'epoch_8.pth'
    torch.save(
        dict(
            meta=dict(
                epoch=8,
                seed=np.int64(7),
                cfg='model = dict()',
                hook_msgs=dict(last_ckpt='x')),
            state_dict=weights,
            message_hub=dict(log_scalars=dict(loss=buffer)),
            optimizer=dict(
                state={0: dict(exp_avg=torch.ones(4))},
                param_groups=[dict(lr=0.1)]),
            param_schedulers=[dict(last_epoch=8)]), src)
    final = load_publish().publish(str(src), str(tmp_path / 'bot.pth'))
    match = re.fullmatch(r'bot-([0-9a-f]{8})\.pth', osp.basename(final))
    assert match
    with open(final, 'rb') as f:
        assert hashlib.sha256(f.read()).hexdigest().startswith(match[1])
    # Tensors-only loading (what a download gets) accepts it.
    published = torch.load(final, weights_only=True)
    assert set(published) == {'state_dict', 'meta'}
    assert published['meta'] == dict(epoch=8, seed=7, cfg='model = dict()')
    assert type(published['meta']['seed']) is int
    for key, value in weights.items():
        assert torch.equal(published['state_dict'][key], value)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ['epoch_8.pth', osp.basename(final)])
    empty = tmp_path / 'empty.pth'
    torch.save(dict(meta=dict()), empty)
    with pytest.raises(ValueError, match='contains no tensors'):
        load_publish().publish(str(empty), str(tmp_path / 'e.pth'))


def test_published_meta_keeps_arrays_and_refuses_other_objects(tmp_path):
    """A kept ``meta`` entry holding numpy or torch values is published as
    lists, not dropped: ``plain`` returned None for an array, and a dict
    entry that was None vanished, so ``dataset_meta`` lost its arrays (and
    a converted model the source facts init_model checks) without a word.
    An object without a plain form is refused naming its place, nothing
    written; entries that are not kept (hook states) are not looked at."""
    src = tmp_path / 'epoch_8.pth'
    torch.save(
        dict(
            meta=dict(
                dataset_meta=dict(
                    dataset_name='synthreid',
                    pids=np.arange(3),
                    mean=torch.tensor([1.5, 2.5]),
                    scale=np.float32(0.5),
                    missing=None),
                hook_msgs=dict(state=np.arange(2))),
            state_dict=dict(w=torch.ones(2))), src)
    final = load_publish().publish(str(src), str(tmp_path / 'bot.pth'))
    published = torch.load(final, weights_only=True)
    assert published['meta'] == dict(
        dataset_meta=dict(
            dataset_name='synthreid',
            pids=[0, 1, 2],
            mean=[1.5, 2.5],
            scale=0.5,
            missing=None))
    assert type(published['meta']['dataset_meta']['pids'][0]) is int
    odd = tmp_path / 'odd.pth'
    torch.save(
        dict(
            meta=dict(dataset_meta=dict(classes=[b'a', 'b'])),
            state_dict=dict(w=torch.ones(2))), odd)
    with pytest.raises(TypeError) as info:
        load_publish().publish(str(odd), str(tmp_path / 'odd_out.pth'))
    assert "meta['dataset_meta']['classes'][0] is a builtins.bytes" in \
        str(info.value)
    assert not [p for p in os.listdir(tmp_path) if p.startswith('odd_out')]


def test_publish_keeps_integer_buffers(tmp_path):
    """Every tensor of the state dict is published, integer buffers too:
    torch refills a missing ``num_batches_tracked`` without a word, and a
    fine-tuning with cumulative BN averaging (``momentum=None``) would
    restart its count."""
    bn = torch.nn.BatchNorm1d(4).train()
    for _ in range(2):
        bn(torch.randn(8, 4))
    state = {f'head.bnneck.{k}': v for k, v in bn.state_dict().items()}
    src = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=state, meta=dict(epoch=1)), src)
    final = load_publish().publish(str(src), str(tmp_path / 'bn.pth'))
    published = torch.load(final, weights_only=True)['state_dict']
    assert set(published) == set(state)
    tracked = published['head.bnneck.num_batches_tracked']
    assert tracked.dtype == torch.int64 and tracked.item() == 2


@pytest.mark.parametrize(
    'mask, expected', [(0o022, 0o644), (0o077, 0o600)],
    ids=['umask022', 'umask077'])
def test_published_file_has_the_usual_mode(tmp_path, umask, mask, expected):
    """Not the private 0600 of a temporary file: a model published to be
    shared is readable by others under umask 022."""
    umask(mask)
    src = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(2))), src)
    final = load_publish().publish(str(src), str(tmp_path / 'bot.pth'))
    assert os.stat(final).st_mode & 0o777 == expected


@pytest.mark.parametrize('name, refused', [
    ('bot_r50-50.market.pth', True),
    ('bot-a.v1.pth', True),
    ('model-.x.pth', True),
    ('bot_r50-market.pth', False),
    ('bot_r50_50.market.pth', False),
])
def test_published_name_reads_back_its_hash(tmp_path, monkeypatch, capsys,
                                            name, refused):
    """torch hub's rule reads the sha256 prefix from the first
    ``-<hex digits>.`` of a name: ``bot_r50-50.market`` would give ``50``
    (the intact file refused on download), ``model-.x`` an empty prefix
    (never checked). Such a name is refused, nothing written; any other
    is published with the prefix that the URL loader reads back."""
    from mmreid.utils.checkpoint import check_cached_hash, name_hash_prefix
    src = tmp_path / 'src' / 'epoch_1.pth'
    src.parent.mkdir()
    torch.save(dict(state_dict=dict(w=torch.ones(2))), src)
    out = tmp_path / 'out'
    out.mkdir()
    code = run_script('publish_model.py', [src, out / name], monkeypatch)
    captured = capsys.readouterr()
    if refused:
        assert code == 1
        assert name[:-len('.pth')] in captured.err
        assert 'rename the output' in captured.err
        assert list(out.iterdir()) == []
        return
    assert code == 0
    (final, ) = out.iterdir()
    with open(final, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert name_hash_prefix(str(final)) == digest[:8]
    check_cached_hash(str(final))


def test_fastreid_r50_ibn_keys_all_map():
    # fast-reid's IBN-a blocks (WITH_IBN, stages 1-3) name the halves of
    # bn1 "IN" and "BN", as mmreid's IBN does: 91 keys of an R50-ibn.
    model = MODELS.build(
        dict(
            type='ReIDModel',
            backbone=dict(
                type='ReIDResNet',
                depth=50,
                ibn_stages=(True, True, True, False)),
            neck=dict(type='GlobalAvgPool'),
            head=dict(type='BNNeckHead', in_channels=2048, num_classes=5)))
    state_dict = {}
    for key, value in randomized(model.state_dict(), seed=3).items():
        key = key.replace('head.bnneck.', 'heads.bottleneck.0.')
        state_dict[key.replace('head.classifier.', 'heads.')] = value
    ibn_keys = [k for k in state_dict if '.bn1.IN.' in k or '.bn1.BN.' in k]
    assert len(ibn_keys) == 91
    converted, unmapped = convert_state_dict(state_dict, RULES['fastreid'])
    assert unmapped == []
    assert load_strict_except(model, converted) == []
    assert torch.equal(model.backbone.layer3[5].bn1.IN.weight,
                       state_dict['backbone.layer3.5.bn1.IN.weight'])


def test_publish_keeps_the_source_network_facts(tmp_path):
    # A converted model stays checked after publishing.
    state_dict = {f'backbone.{k}': v for k, v in resnet_keys().items()}
    state_dict.update(bn_tensors('heads.bottleneck.0', 512))
    src = tmp_path / 'model_final.pth'
    torch.save(dict(model=state_dict, iteration=10), src)
    convert_checkpoint_file(
        str(src), str(tmp_path / 'c.pth'), 'fastreid', last_stride=2)
    final = load_publish().publish(
        str(tmp_path / 'c.pth'), str(tmp_path / 'p.pth'))
    meta = torch.load(final, weights_only=True)['meta']
    assert meta['source_arch']['last_stride'] == 2
    assert meta['source_arch']['stem_pool']['ceil_mode'] is True


FASTREID_YAML = """\
INPUT:
  SIZE_TEST: [384, 128]
MODEL:
  BACKBONE:
    NAME: build_resnet_backbone
    DEPTH: 18x
    LAST_STRIDE: 2
    WITH_IBN: false
    WITH_NL: {with_nl}
    WITH_SE: false
  HEADS:
    NAME: EmbeddingHead
    EMBEDDING_DIM: 0
    NECK_FEAT: before
    POOL_LAYER: {pool}
    WITH_BNNECK: true
  PIXEL_MEAN: [120.0, 110.0, 100.0]
  PIXEL_STD: [60.0, 55.0, 50.0]
"""


def fastreid_checkpoint(tmp_path, extra=None, bnneck=True):
    state_dict = {f'backbone.{k}': v for k, v in resnet_keys().items()}
    if bnneck:
        # WITH_BNNECK: False makes heads.bottleneck an empty Sequential.
        state_dict.update(bn_tensors('heads.bottleneck.0', 512))
    state_dict['heads.weight'] = torch.rand(5, 512)
    state_dict.update(extra or {})
    src = tmp_path / 'model_final.pth'
    torch.save(dict(model=state_dict, iteration=10), src)
    return src


def test_fastreid_config_yaml_gives_the_facts(tmp_path, monkeypatch):
    src = fastreid_checkpoint(tmp_path)
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(FASTREID_YAML.format(with_nl='false', pool='gempool'))
    dst = tmp_path / 'c.pth'
    assert run_script('fastreid2mmreid.py',
                      [src, dst, '--strict', '--config', cfg],
                      monkeypatch) == 0
    converted = torch.load(dst, weights_only=True)
    facts = converted['meta']['source_arch']
    assert facts['last_stride'] == 2
    # fast-reid tests with the BNNeck's output; NECK_FEAT is for training.
    assert facts['test_feature'] == 'after_bn'
    assert facts['input_size'] == [384, 128]
    assert facts['mean'] == [120.0, 110.0, 100.0]
    assert facts['std'] == [60.0, 55.0, 50.0]
    # fast-reid's GeneralizedMeanPooling has a fixed p = 3, not stored.
    assert facts['pooling'] == 'gem'
    assert converted['state_dict']['neck.p'].item() == 3.0
    # A network mmreid does not build is refused, nothing written.
    cfg.write_text(FASTREID_YAML.format(with_nl='true', pool='gempool'))
    other = tmp_path / 'nl.pth'
    assert run_script('fastreid2mmreid.py', [src, other, '--config', cfg],
                      monkeypatch) == 1
    assert not other.exists()
    cfg.write_text(FASTREID_YAML.format(with_nl='false', pool='GlobalMaxPool'))
    assert run_script('fastreid2mmreid.py', [src, other, '--config', cfg],
                      monkeypatch) == 1


@pytest.mark.parametrize('option, key, recorded', [
    (['--last-stride', '1'], 'MODEL.BACKBONE.LAST_STRIDE', '2'),
    (['--pooling', 'avg'], 'MODEL.HEADS.POOL_LAYER', 'gem_fixed'),
    (['--test-feature', 'before_bn'], 'MODEL.HEADS.WITH_BNNECK', 'after_bn'),
    (['--input-size', '256', '128'], 'INPUT.SIZE_TEST', '[384, 128]'),
    (['--mean', '1', '2', '3'], 'MODEL.PIXEL_MEAN', '[120.0, 110.0, 100.0]'),
])
def test_an_option_that_contradicts_the_config_yaml_is_refused(
        tmp_path, monkeypatch, capsys, option, key, recorded):
    """The config.yaml is fast-reid's record of the network it built and
    tested (LAST_STRIDE 2, fixed-p GeM, BNNeck output, 384 x 128 here): an
    option that says otherwise describes another network, so it is
    refused like a contradicting ``--flip``, not preferred to the file."""
    src = fastreid_checkpoint(tmp_path)
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(FASTREID_YAML.format(with_nl='false', pool='gempool'))
    dst = tmp_path / 'c.pth'
    assert run_script('fastreid2mmreid.py',
                      [src, dst, '--config', cfg] + option, monkeypatch) == 1
    err = capsys.readouterr().err
    assert f'{option[0]} ' in err
    assert f'contradicts {key} = {recorded} of {cfg}' in err
    assert not dst.exists()


def test_options_that_agree_with_the_config_yaml_are_accepted(
        tmp_path, monkeypatch):
    src = fastreid_checkpoint(tmp_path)
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(FASTREID_YAML.format(with_nl='false', pool='gempool'))
    dst = tmp_path / 'c.pth'
    assert run_script('fastreid2mmreid.py', [
        src, dst, '--config', cfg, '--last-stride', '2', '--pooling',
        'gem_fixed', '--test-feature', 'after_bn', '--input-size', '384',
        '128', '--mean', '120', '110', '100'
    ], monkeypatch) == 0
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['last_stride'] == 2 and facts['input_size'] == [384, 128]
    assert facts['test_feature'] == 'after_bn' and facts['pooling'] == 'gem'
    assert facts['assumed'] == ['flip', 'distance']


@pytest.mark.parametrize('neck_feat, with_bnneck, expected',
                         [('before', 'true', 'after_bn'),
                          ('after', 'true', 'after_bn'),
                          ('before', 'false', 'before_bn'),
                          ('after', 'false', 'before_bn')])
def test_fastreid_test_feature_follows_the_bnneck(tmp_path, neck_feat,
                                                  with_bnneck, expected):
    """fast-reid's ``EmbeddingHead.forward`` returns, when not training,
    ``bottleneck(pool_feat)``: the BNNeck's output if ``WITH_BNNECK``,
    else the pooled feature. ``NECK_FEAT`` only picks the feature of the
    training (triplet) loss, so it does not change the test feature."""
    from mmreid.utils.fastreid_config import read_fastreid_config
    cfg = tmp_path / 'config.yaml'
    # The layout of fast-reid's cfg.dump(): keys sorted, HEADS complete.
    cfg.write_text('MODEL:\n'
                   '  HEADS:\n'
                   '    CLS_LAYER: Linear\n'
                   '    EMBEDDING_DIM: 0\n'
                   '    NAME: EmbeddingHead\n'
                   f'    NECK_FEAT: {neck_feat}\n'
                   '    NORM: BN\n'
                   '    POOL_LAYER: GlobalAvgPool\n'
                   f'    WITH_BNNECK: {with_bnneck}\n')
    assert read_fastreid_config(str(cfg))['test_feature'] == expected
    src = fastreid_checkpoint(tmp_path, bnneck=with_bnneck == 'true')
    dst = tmp_path / 'c.pth'
    convert_checkpoint_file(
        str(src), str(dst), 'fastreid', source_config=str(cfg))
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['test_feature'] == expected


def fastreid_r18_config():
    """A config that computes the fast-reid R18 of ``fastreid_checkpoint``
    converted with ``input_size=[64, 32]``, and ranks as fast-reid does by
    default (``TEST.METRIC: cosine``; no metric, so the model's distance
    ranks)."""
    from mmengine.config import Config
    return Config(
        dict(
            model=dict(
                type='ReIDModel',
                distance='cosine',
                backbone=dict(
                    type='ReIDResNet',
                    depth=18,
                    stem_pool=dict(padding=0, ceil_mode=True)),
                neck=dict(type='GlobalAvgPool'),
                head=dict(type='BNNeckHead', in_channels=512, num_classes=5)),
            test_pipeline=[
                dict(type='ReIDLoadImageFromFile'),
                dict(
                    type='ReIDResize',
                    size=(64, 32),
                    interpolation='bicubic',
                    backend='pillow'),
                dict(type='PackReIDInputs')
            ]))


def test_dropped_source_layers_are_refused_at_load(tmp_path):
    # Non-local blocks are not converted (reported): the converted model
    # without them computes another network, so loading it is refused.
    from mmreid.apis import init_model
    src = fastreid_checkpoint(
        tmp_path, {'backbone.NL_2.0.g.weight': torch.rand(64, 128, 1, 1)})
    dst = tmp_path / 'c.pth'
    convert_checkpoint_file(
        str(src), str(dst), 'fastreid', input_size=[64, 32])
    config = fastreid_r18_config()
    with pytest.raises(ValueError, match='backbone.NL_2.0.g.weight'):
        init_model(config, str(dst))
    # Publishing keeps the list of dropped tensors: still refused.
    published = load_publish().publish(str(dst), str(tmp_path / 'p.pth'))
    with pytest.raises(ValueError, match='backbone.NL_2.0.g.weight'):
        init_model(config, published)
    # Without the dropped layer the same config loads.
    src = fastreid_checkpoint(tmp_path)
    convert_checkpoint_file(
        str(src), str(dst), 'fastreid', input_size=[64, 32])
    init_model(config, str(dst))


@pytest.mark.parametrize('depth, in_channels', [(50, 2048), (34, 512)])
def test_another_depth_is_refused_before_the_source_settings(
        tmp_path, depth, in_channels):
    """A converted fast-reid ResNet-18 given to a ResNet-50 config (other
    tensor shapes) or a ResNet-34 one (the same shapes, more blocks) is
    refused for its depth first: the source network's stem pooling, which
    the config also lacks, was named first, and the depth only once that
    was changed."""
    from mmreid.apis import init_model
    src = fastreid_checkpoint(tmp_path)
    dst = tmp_path / 'c.pth'
    convert_checkpoint_file(
        str(src), str(dst), 'fastreid', input_size=[64, 32])
    config = fastreid_r18_config()
    del config.model.backbone.stem_pool
    config.model.backbone.depth = depth
    config.model.head.in_channels = in_channels
    with pytest.raises(RuntimeError) as info:
        init_model(config, str(dst))
    message = str(info.value)
    assert 'holds a ResNet-18 (blocks (2, 2, 2, 2) of 2 convolutions) ' \
        f'backbone, the model is a ResNet-{depth}' in message
    assert 'model.backbone.depth' in message
    assert 'stem' not in message


def test_pooling_options_against_the_exponent_are_refused(
        tmp_path, monkeypatch, capsys):
    # The checkpoint has a learnt GeM exponent; an option saying otherwise
    # is an error naming the option and the exponent, nothing is written.
    src = fastreid_checkpoint(tmp_path,
                              {'heads.pool_layer.p': torch.tensor([4.7])})
    dst = tmp_path / 'c.pth'
    assert run_script('fastreid2mmreid.py', [src, dst, '--pooling', 'avg'],
                      monkeypatch) == 1
    err = capsys.readouterr().err
    assert "pooling 'avg' (from --pooling)" in err
    assert 'heads.pool_layer.p = 4.7' in err
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(FASTREID_YAML.format(with_nl='false', pool='gempool'))
    assert run_script('fastreid2mmreid.py', [src, dst, '--config', cfg],
                      monkeypatch) == 1
    err = capsys.readouterr().err
    assert f'(from MODEL.HEADS.POOL_LAYER of {cfg})' in err
    assert 'heads.pool_layer.p = 4.7' in err
    assert not dst.exists()
    # Without a contradicting option, the exponent gives GeM.
    assert run_script('fastreid2mmreid.py', [src, dst], monkeypatch) == 0
    converted = torch.load(dst, weights_only=True)
    assert converted['meta']['source_arch']['pooling'] == 'gem'
    assert converted['state_dict']['neck.p'].item() == pytest.approx(4.7)


@pytest.mark.parametrize('gem', [False, True])
@pytest.mark.parametrize(
    'key',
    ['heads.bottleneck.0.weight', 'heads.weight', 'heads.pool_layer.weight'])
def test_a_head_its_pooling_cannot_feed_is_refused(tmp_path, monkeypatch,
                                                   capsys, key, gem):
    """Average and GeM pooling keep the 512 channels of ResNet-18's layer4
    and have no tensor but GeM's exponent: a head that takes other widths,
    or other pooling tensors, contradicts the pooling, assumed or read from
    ``heads.pool_layer.p``. Refused, naming the key and ``--config``."""
    extra = {
        # A 1024-d BNNeck and classifier: a pooling that concatenates
        # (avg, max), as some forks have.
        'heads.bottleneck.0.weight':
        dict(
            bn_tensors('heads.bottleneck.0', 1024),
            **{'heads.weight': torch.rand(5, 1024)}),
        # A classifier on 256-d features: an embedding layer not stored.
        'heads.weight': {
            'heads.weight': torch.rand(5, 256)
        },
        # A pooling layer with weights is neither average pooling nor GeM.
        'heads.pool_layer.weight': {
            'heads.pool_layer.weight': torch.rand(512)
        },
    }[key]
    if gem:
        extra['heads.pool_layer.p'] = torch.tensor([3.5])
    src = fastreid_checkpoint(tmp_path, extra)
    dst = tmp_path / 'c.pth'
    assert run_script('fastreid2mmreid.py', [src, dst], monkeypatch) == 1
    err = capsys.readouterr().err
    assert key in err and 'given with --config' in err
    pooling = ("GeM pooling (the checkpoint's heads.pool_layer.p)"
               if gem else 'average pooling (assumed)')
    assert pooling in err
    assert not dst.exists()
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(
        FASTREID_YAML.format(
            with_nl='false', pool='gempoolP' if gem else 'avgpool'))
    assert run_script('fastreid2mmreid.py', [src, dst, '--config', cfg],
                      monkeypatch) == 1
    err = capsys.readouterr().err
    assert key in err and f'is {cfg} the config.yaml of this model?' in err
    assert not dst.exists()


def test_a_gem_exponent_of_other_shape_is_named():
    """fast-reid's GeM has one exponent, shape (1,); a per-channel one is
    another pooling, refused by its key."""
    with pytest.raises(ValueError, match=r'^heads\.pool_layer\.p: '):
        convert_state_dict({'heads.pool_layer.p': torch.ones(512)},
                           RULES['fastreid'])


def test_fixed_p_gem_is_given_on_the_command_line(tmp_path, monkeypatch):
    """fast-reid's GeneralizedMeanPooling stores no exponent: without
    --config only --pooling gem_fixed says so (p = 3 is written)."""
    src = fastreid_checkpoint(tmp_path)
    dst = tmp_path / 'c.pth'
    assert run_script('fastreid2mmreid.py',
                      [src, dst, '--pooling', 'gem_fixed'], monkeypatch) == 0
    converted = torch.load(dst, weights_only=True)
    assert converted['meta']['source_arch']['pooling'] == 'gem'
    assert converted['state_dict']['neck.p'].item() == 3.0
    assert 'pooling' not in converted['meta']['source_arch']['assumed']


FLIP_YAML = """\
MODEL:
  HEADS:
    NAME: EmbeddingHead
    WITH_BNNECK: true
INPUT:
  SIZE_TEST: [64, 32]
TEST:
  FLIP:
    ENABLED: {flip}
"""


@pytest.mark.parametrize('source_flip', [True, False])
def test_fastreid_flip_test_is_checked(tmp_path, source_flip):
    """fast-reid's evaluator averages the features of each image and its
    mirror when ``TEST.FLIP.ENABLED``; mmreid's ``test_cfg.flip`` does the
    same, so a config with flip on one side only is refused."""
    from mmreid.apis import init_model
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(FLIP_YAML.format(flip=str(source_flip).lower()))
    dst = tmp_path / 'c.pth'
    convert_checkpoint_file(
        str(fastreid_checkpoint(tmp_path)),
        str(dst),
        'fastreid',
        source_config=str(cfg))
    assert torch.load(
        dst, weights_only=True)['meta']['source_arch']['flip'] is source_flip
    config = fastreid_r18_config()
    config.model.test_cfg = dict(flip=not source_flip)
    with pytest.raises(ValueError) as info:
        init_model(config, str(dst))
    assert 'test-time flip (mirrored-image averaging)' in str(info.value)
    assert f"'model.test_cfg.flip': {source_flip}" in str(info.value)
    config.model.test_cfg = dict(flip=source_flip)
    init_model(config, str(dst))


def test_flip_is_given_on_the_command_line(tmp_path, monkeypatch, capsys):
    """``--flip``/``--no-flip`` record the test-time flip without a
    config.yaml (not assumed then); one that contradicts the config.yaml's
    ``TEST.FLIP.ENABLED`` is refused, not preferred to it."""
    src = fastreid_checkpoint(tmp_path)
    dst = tmp_path / 'c.pth'
    for option, flip in (('--flip', True), ('--no-flip', False)):
        assert run_script('fastreid2mmreid.py', [src, dst, option],
                          monkeypatch) == 0
        facts = torch.load(dst, weights_only=True)['meta']['source_arch']
        assert facts['flip'] is flip and 'flip' not in facts['assumed']
    dst.unlink()
    cfg = tmp_path / 'config.yaml'
    for source_flip in (True, False):
        cfg.write_text(FLIP_YAML.format(flip=str(source_flip).lower()))
        option = '--no-flip' if source_flip else '--flip'
        assert run_script('fastreid2mmreid.py',
                          [src, dst, '--config', cfg, option],
                          monkeypatch) == 1
        assert (f'{option} contradicts TEST.FLIP.ENABLED = {source_flip} '
                f'of {cfg}') in capsys.readouterr().err
        assert not dst.exists()
        # The same value as the config.yaml is no contradiction.
        option = '--flip' if source_flip else '--no-flip'
        assert run_script('fastreid2mmreid.py',
                          [src, dst, '--config', cfg, option],
                          monkeypatch) == 0
        facts = torch.load(dst, weights_only=True)['meta']['source_arch']
        assert facts['flip'] is source_flip
        dst.unlink()


FLAT_FLIP_YAML = """\
INPUT:
  SIZE_TEST: [64, 32]
TEST:
  FLIP_ENABLED: {flat}
"""


def test_fastreid_flat_flip_key_is_read_and_named(tmp_path, monkeypatch,
                                                  capsys):
    """fast-reid versions before ``TEST.FLIP`` wrote the flat
    ``TEST.FLIP_ENABLED`` (``_C.TEST.FLIP_ENABLED``): read as the same
    fact, named as such in a contradiction; both keys present and
    disagreeing is refused naming both, nothing written."""
    from mmreid.utils.fastreid_config import read_fastreid_config
    src = fastreid_checkpoint(tmp_path)
    dst = tmp_path / 'c.pth'
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(FLAT_FLIP_YAML.format(flat='true'))
    keys = {}
    assert read_fastreid_config(str(cfg), keys)['flip'] is True
    assert keys['flip'] == 'TEST.FLIP_ENABLED'
    assert run_script('fastreid2mmreid.py', [src, dst, '--config', cfg],
                      monkeypatch) == 0
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['flip'] is True and 'flip' not in facts['assumed']
    dst.unlink()
    assert run_script('fastreid2mmreid.py',
                      [src, dst, '--config', cfg, '--no-flip'],
                      monkeypatch) == 1
    assert f'--no-flip contradicts TEST.FLIP_ENABLED = True of {cfg}' \
        in capsys.readouterr().err
    assert not dst.exists()
    for nested, flat in (('true', 'true'), ('false', 'false')):
        cfg.write_text(
            FLAT_FLIP_YAML.format(flat=flat) +
            f'  FLIP:\n    ENABLED: {nested}\n')
        assert read_fastreid_config(str(cfg))['flip'] is (nested == 'true')
    cfg.write_text(
        FLAT_FLIP_YAML.format(flat='true') + '  FLIP:\n    ENABLED: false\n')
    assert run_script('fastreid2mmreid.py', [src, dst, '--config', cfg],
                      monkeypatch) == 1
    err = capsys.readouterr().err
    assert 'TEST.FLIP.ENABLED is False but TEST.FLIP_ENABLED is True' in err
    assert not dst.exists()


@pytest.mark.parametrize('metric, distance', [('cosine', 'cosine'),
                                              ('euclidean', 'euclidean')])
def test_fastreid_test_metric_is_the_ranking_distance(tmp_path, monkeypatch,
                                                      capsys, metric,
                                                      distance):
    """fast-reid ranks with ``TEST.METRIC`` (``build_dist``: ``cosine``
    L2-normalises the features, ``euclidean`` does not): recorded as the
    ``distance`` fact, not assumed; a ``--distance`` that says otherwise is
    refused naming the key; and a config that ranks otherwise is refused
    at load naming the distance, with the option that fixes it."""
    from mmreid.apis import init_model
    src = fastreid_checkpoint(tmp_path)
    dst = tmp_path / 'c.pth'
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(FLIP_YAML.format(flip='false') + f'  METRIC: {metric}\n')
    assert run_script('fastreid2mmreid.py', [src, dst, '--config', cfg],
                      monkeypatch) == 0
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['distance'] == distance
    assert 'distance' not in facts['assumed']
    other = 'euclidean' if distance == 'cosine' else 'cosine'
    config = fastreid_r18_config()
    config.model.distance = other
    with pytest.raises(ValueError) as info:
        init_model(config, str(dst))
    message = str(info.value)
    assert 'ranking distance (model.distance): the source has ' in message
    assert f"'model.distance': {distance!r}" in message
    config.model.distance = distance
    init_model(config, str(dst))
    dst.unlink()
    assert run_script('fastreid2mmreid.py',
                      [src, dst, '--config', cfg, '--distance', other],
                      monkeypatch) == 1
    assert (f'--distance {other} contradicts TEST.METRIC = {distance} of '
            f'{cfg}') in capsys.readouterr().err
    assert not dst.exists()


@pytest.mark.parametrize('test_section, key', [
    ('  METRIC: jaccard\n', 'TEST.METRIC'),
    ('  RERANK:\n    ENABLED: true\n', 'TEST.RERANK.ENABLED'),
    ('  AQE:\n    ENABLED: true\n', 'TEST.AQE.ENABLED'),
])
def test_fastreid_ranking_mmreid_cannot_record_is_refused(
        tmp_path, monkeypatch, capsys, test_section, key):
    """A config.yaml whose evaluator ranked otherwise than a distance of
    two features (re-ranking, query expansion) or with another metric is
    refused by the converter, naming the key: the converted checkpoint
    would be evaluated without it, other mAP/CMC than fast-reid's."""
    src = fastreid_checkpoint(tmp_path)
    dst = tmp_path / 'c.pth'
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(FLIP_YAML.format(flip='false') + test_section)
    assert run_script('fastreid2mmreid.py', [src, dst, '--config', cfg],
                      monkeypatch) == 1
    assert key in capsys.readouterr().err
    assert not dst.exists()
    # Disabled, they say nothing about the ranking.
    cfg.write_text(
        FLIP_YAML.format(flip='false') +
        test_section.replace('true', 'false').replace('jaccard', 'cosine'))
    assert run_script('fastreid2mmreid.py', [src, dst, '--config', cfg],
                      monkeypatch) == 0


def test_torchreid_distance_is_given_on_the_command_line(
        tmp_path, monkeypatch):
    """torchreid does not store how it ranked (``test.dist_metric``,
    ``test.normalize_feature``): Euclidean of the unnormalised features
    is assumed; ``--distance cosine`` records a model tested with
    ``normalize_feature=True`` or ``dist_metric='cosine'``; another name
    is refused by argparse."""
    state_dict = dict(resnet_keys())
    src = tmp_path / 'model.pth.tar-60'
    torch.save(dict(state_dict=state_dict), src)
    dst = tmp_path / 'c.pth'
    assert run_script('torchreid2mmreid.py', [src, dst], monkeypatch) == 0
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['distance'] == 'euclidean' and 'distance' in facts['assumed']
    assert run_script('torchreid2mmreid.py',
                      [src, dst, '--distance', 'cosine'], monkeypatch) == 0
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['distance'] == 'cosine'
    assert 'distance' not in facts['assumed']
    assert run_script('torchreid2mmreid.py',
                      [src, dst, '--distance', 'mahalanobis'],
                      monkeypatch) == 2
    with pytest.raises(ValueError, match="ranking distance 'mahalanobis'"):
        convert_checkpoint_file(
            str(src), str(dst), 'torchreid', distance='mahalanobis')


CROP_YAML = """\
INPUT:
  CROP:
    ENABLED: {enabled}
    SIZE: {crop}
  SIZE_TEST: {size}
"""


@pytest.mark.parametrize('enabled, crop, size, refused', [
    ('true', [56, 28], [64, 32], 'INPUT.CROP'),
    ('true', [64, 32], [64, 32], None),
    ('false', [56, 28], [64, 32], None),
    ('false', [224, 224], [256], 'INPUT.SIZE_TEST'),
    ('false', [224, 224], [0, 0], 'INPUT.SIZE_TEST'),
])
def test_fastreid_test_crop_and_size_are_read(tmp_path, enabled, crop, size,
                                              refused):
    """fast-reid's test transform is ``Resize(SIZE_TEST)`` (a single value
    keeps the aspect ratio, 0 skips it), then ``CenterCrop(CROP.SIZE)`` if
    ``INPUT.CROP.ENABLED``. mmreid's test pipeline resizes to a fixed
    (height, width) and has no centre crop."""
    from mmreid.utils.fastreid_config import read_fastreid_config
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(CROP_YAML.format(enabled=enabled, crop=crop, size=size))
    if refused is None:
        assert read_fastreid_config(str(cfg))['input_size'] == size
    else:
        with pytest.raises(ValueError, match=refused):
            read_fastreid_config(str(cfg))


def test_fastreid_bnneck_head_layout_is_a_bnneck(tmp_path):
    """fast-reid's older ``BNneckHead`` stores its BatchNorm1d as
    ``heads.bnneck`` and tests with its output (``bn_feat``)."""
    state_dict = {f'backbone.{k}': v for k, v in resnet_keys().items()}
    state_dict.update(bn_tensors('heads.bnneck', 512))
    state_dict['heads.classifier.weight'] = torch.rand(5, 512)
    src = tmp_path / 'model_final.pth'
    torch.save(dict(model=state_dict), src)
    dst = tmp_path / 'c.pth'
    convert_checkpoint_file(str(src), str(dst), 'fastreid', strict=True)
    converted = torch.load(dst, weights_only=True)
    facts = converted['meta']['source_arch']
    assert facts['neck'] == 'bnneck'
    assert facts['test_feature'] == 'after_bn'
    assert 'identity_bnneck' not in converted['meta']
    assert torch.equal(converted['state_dict']['head.bnneck.running_var'],
                       state_dict['heads.bnneck.running_var'])


#: A fast-reid v0.x ``config.yaml`` (``BNneckHead``, no ``WITH_BNNECK``).
FASTREID_V0_YAML = """\
MODEL:
  META_ARCHITECTURE: Baseline
  BACKBONE:
    NAME: build_resnet_backbone
    DEPTH: 18
    LAST_STRIDE: 2
  HEADS:
    NAME: {head}
    NUM_CLASSES: 5
    POOL_LAYER: avgpool
    NECK_FEAT: before
    CLS_LAYER: linear{with_bnneck}
  PIXEL_MEAN: [120.0, 110.0, 100.0]
  PIXEL_STD: [60.0, 55.0, 50.0]
INPUT:
  SIZE_TEST: [384, 128]
"""


@pytest.mark.parametrize('with_bnneck', ['', '\n    WITH_BNNECK: false'])
def test_fastreid_v0_bnneck_head_config_is_read(tmp_path, monkeypatch,
                                                capsys, with_bnneck):
    """fast-reid v0.x's ``BNneckHead`` pools, applies its BatchNorm
    (``heads.bnneck``) and, when not training, returns that output
    (``bn_feat``), whatever ``NECK_FEAT`` (or a ``WITH_BNNECK`` it does not
    read): the BNNeck head mmreid builds. Its config.yaml gives the facts;
    another head is still refused."""
    state_dict = {f'backbone.{k}': v for k, v in resnet_keys().items()}
    state_dict.update(bn_tensors('heads.bnneck', 512))
    state_dict['heads.classifier.weight'] = torch.rand(5, 512)
    src = tmp_path / 'model_final.pth'
    torch.save(dict(model=state_dict), src)
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(
        FASTREID_V0_YAML.format(head='BNneckHead', with_bnneck=with_bnneck))
    dst = tmp_path / 'c.pth'
    assert run_script('fastreid2mmreid.py',
                      [src, dst, '--strict', '--config', cfg],
                      monkeypatch) == 0
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['neck'] == 'bnneck' and facts['test_feature'] == 'after_bn'
    assert facts['last_stride'] == 2 and facts['pooling'] == 'avg'
    assert facts['input_size'] == [384, 128]
    assert facts['mean'] == [120.0, 110.0, 100.0]
    assert facts['std'] == [60.0, 55.0, 50.0]
    cfg.write_text(
        FASTREID_V0_YAML.format(head='ReductionHead', with_bnneck=''))
    other = tmp_path / 'other.pth'
    assert run_script('fastreid2mmreid.py', [src, other, '--config', cfg],
                      monkeypatch) == 1
    assert "MODEL.HEADS.NAME is 'ReductionHead'" in capsys.readouterr().err
    assert not other.exists()


def test_unmapped_neck_tensors_are_not_read_as_no_bnneck(tmp_path):
    """A neck the rules do not map (here an embedding head: a 1x1 conv,
    then a BN) is not "no BNNeck": its test feature is unknown. Its
    tensors are named, before the classifier on its 256-d output."""
    state_dict = {f'backbone.{k}': v for k, v in resnet_keys().items()}
    state_dict['heads.bottleneck.0.weight'] = torch.rand(256, 512, 1, 1)
    state_dict.update(bn_tensors('heads.bottleneck.1', 256))
    state_dict['heads.weight'] = torch.rand(5, 256)
    src = tmp_path / 'model_final.pth'
    torch.save(dict(model=state_dict), src)
    dst = tmp_path / 'c.pth'
    with pytest.raises(ValueError, match=r'heads\.bottleneck\.1\.weight'):
        convert_checkpoint_file(str(src), str(dst), 'fastreid')
    assert not dst.exists()


@pytest.mark.parametrize(
    'shapes',
    [
        dict(weight=(512, 2048), bias=(512, )),  # nn.Linear(2048, 512)
        dict(weight=(512, 1), bias=(512, )),  # as many weights as a BN
        dict(weight=(512, ), bias=(512, ), running_var=(256, )),
        dict(weight=(512, ), bias=(512, ), num_batches_tracked=(512, )),
    ])
def test_a_neck_maps_to_the_bnneck_only_if_all_of_it_is_bn(shapes):
    """A BatchNorm's ``weight``, ``bias``, ``running_mean`` and
    ``running_var`` are 1-D of one length; a ``bottleneck`` with any other
    tensor is not a BNNeck, and none of its tensors (not even a 1-D bias)
    becomes ``head.bnneck.*``."""
    neck = {f'bottleneck.{k}': torch.rand(v) for k, v in shapes.items()}
    converted, unmapped = convert_state_dict(neck, RULES['torchreid'])
    assert converted == {}
    assert unmapped == sorted(neck)


def osnet_keys():
    """Tensors of an OSNet-like backbone (torchreid's ``osnet_x1_0``
    names): a ``conv1.conv`` stem, ``conv2``-``conv5`` stages."""
    keys = {'conv1.conv.weight': torch.rand(64, 3, 7, 7)}
    keys.update(bn_tensors('conv1.bn', 64))
    keys['conv2.0.conv1.conv.weight'] = torch.rand(64, 64, 1, 1)
    keys['conv5.conv.weight'] = torch.rand(512, 384, 1, 1)
    return keys


@pytest.mark.parametrize('source', ['fastreid', 'torchreid'])
def test_a_backbone_other_than_resnet_is_refused(tmp_path, source):
    """The rules map ResNet names only: an OSNet's head alone (fast-reid
    BNNeck and classifier) used to convert into a checkpoint without any
    backbone tensor, and torchreid's was refused for a BNNeck it could not
    size. Either is refused as not a ResNet, naming its keys, nothing
    written."""
    if source == 'fastreid':
        state_dict = {f'backbone.{k}': v for k, v in osnet_keys().items()}
        state_dict.update(bn_tensors('heads.bottleneck.0', 512))
        state_dict['heads.weight'] = torch.rand(5, 512)
    else:
        state_dict = osnet_keys()
        state_dict['classifier.weight'] = torch.rand(5, 512)
    src = tmp_path / 'osnet.pth'
    torch.save(dict(state_dict=state_dict), src)
    dst = tmp_path / 'c.pth'
    with pytest.raises(ValueError) as info:
        convert_checkpoint_file(str(src), str(dst), source)
    message = str(info.value)
    assert 'not a ResNet layout' in message
    assert 'ResNet-18/34/50/101/152' in message
    prefix = 'backbone.' if source == 'fastreid' else ''
    for key in ('conv1.conv.weight', 'conv5.conv.weight'):
        assert prefix + key in message
    assert not dst.exists()


def test_linear_bottleneck_is_refused(tmp_path):
    """A torchreid fork's ``bottleneck`` that is an ``nn.Linear`` (2-D
    weight, 1-D bias) is not half-mapped to a BNNeck: the converter
    refuses the unmapped neck, naming its tensors, and writes nothing."""
    state_dict = dict(resnet_keys())
    state_dict['bottleneck.weight'] = torch.rand(512, 512)
    state_dict['bottleneck.bias'] = torch.rand(512)
    state_dict['classifier.weight'] = torch.rand(5, 512)
    src = tmp_path / 'model.pth.tar-60'
    torch.save(dict(state_dict=state_dict), src)
    dst = tmp_path / 'c.pth'
    with pytest.raises(
            ValueError,
            match=r'neck tensors .*bottleneck\.weight, '
            r'bottleneck\.bias.*nothing written'):
        convert_checkpoint_file(str(src), str(dst), 'torchreid')
    assert not dst.exists()


def torchreid_r18_config(mean=None, std=None):
    """A config that computes torchreid's ResNet-18 (``resnet_keys``)
    converted with ``--input-size 64 32``: torchvision stem, last stride 2,
    the pooled feature, PIL bilinear resize; ImageNet statistics unless
    ``mean``/``std`` (0-255) are given."""
    from mmengine.config import Config
    preprocessor = dict(
        type='ReIDDataPreprocessor',
        mean=mean or [123.675, 116.28, 103.53],
        std=std or [58.395, 57.12, 57.375])
    return Config(
        dict(
            model=dict(
                type='ReIDModel',
                data_preprocessor=preprocessor,
                backbone=dict(type='ReIDResNet', depth=18, last_stride=2),
                neck=dict(type='GlobalAvgPool'),
                head=dict(
                    type='BNNeckHead',
                    in_channels=512,
                    num_classes=5,
                    test_feature='before_bn')),
            test_pipeline=[
                dict(type='ReIDLoadImageFromFile'),
                dict(
                    type='ReIDResize',
                    size=(64, 32),
                    interpolation='bilinear',
                    backend='pillow'),
                dict(type='PackReIDInputs')
            ]))


def test_torchreid_non_imagenet_statistics(tmp_path, monkeypatch, capsys):
    """torchreid normalises with ``Normalize(norm_mean, norm_std)`` after
    ``ToTensor`` (0-1), from its ``data.norm_mean``/``norm_std`` options,
    which the checkpoint does not store. A model trained with
    ``norm_mean = norm_std = [0.5] * 3`` subtracts 127.5 and divides by
    127.5 on the 0-255 scale: ``--mean``/``--std`` record that, and the
    ImageNet statistics are then refused at load."""
    from mmreid.apis import init_model
    state_dict = dict(resnet_keys())
    state_dict['classifier.weight'] = torch.rand(5, 512)
    src = tmp_path / 'model.pth.tar-60'
    torch.save(dict(state_dict=state_dict, epoch=60), src)
    dst = tmp_path / 'c.pth'
    half = ['127.5'] * 3
    assert run_script('torchreid2mmreid.py', [
        src, dst, '--strict', '--input-size', '64', '32', '--mean', *half,
        '--std', *half
    ], monkeypatch) == 0
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['mean'] == [127.5] * 3 and facts['std'] == [127.5] * 3
    with pytest.raises(ValueError) as info:
        init_model(torchreid_r18_config(), str(dst))
    assert "'model.data_preprocessor.mean': [127.5, 127.5, 127.5]" \
        in str(info.value)
    assert "'model.data_preprocessor.std': [127.5, 127.5, 127.5]" \
        in str(info.value)
    init_model(torchreid_r18_config([127.5] * 3, [127.5] * 3), str(dst))
    # A std of 0, a mean above 255: refused, nothing written.
    other = tmp_path / 'o.pth'
    bad_std = ['--std', '0', '0.5', '0.5']
    bad_mean = ['--mean', '300', '120', '100']
    for option in (bad_std, bad_mean):
        assert run_script('torchreid2mmreid.py', [src, other, *option],
                          monkeypatch) == 1
        assert '0-255 scale' in capsys.readouterr().err
    assert not other.exists()
    # torchreid's own 0-1 values, as its --norm-mean/--norm-std take them,
    # would normalise a 0-255 input to values around 500: refused, with
    # the values times 255.
    for option, times_255 in [
        (['--mean', '0.485', '0.456', '0.406'], '[123.675, 116.28, 103.53]'),
        (['--std', '0.229', '0.224', '0.225'], '[58.395, 57.12, 57.375]'),
        (['--std', '0.5', '0.99', '0.5'], None),
    ]:
        assert run_script('torchreid2mmreid.py', [src, other, *option],
                          monkeypatch) == 1
        err = capsys.readouterr().err
        assert 'is on the 0-1 scale' in err
        assert times_255 is None or times_255 in err
    assert not other.exists()
    # A mean and a std both at most 1 in every channel are 0-1 values even
    # where a channel is exactly 0 or 1: torchreid's norm_mean 0, norm_std 1
    # (no normalisation of its 0-1 input) is std 255 on the 0-255 scale.
    for mean, std, times_255 in [
        ('0 0 0', '1 1 1', 'mean [0.0, 0.0, 0.0] and std [255.0, 255.0, '
         '255.0]'),
        ('0.5 0.5 1', '0.5 0.5 1', 'mean [127.5, 127.5, 255.0] and std '
         '[127.5, 127.5, 255.0]'),
    ]:
        assert run_script(
            'torchreid2mmreid.py',
            [src, other, '--mean', *mean.split(), '--std', *std.split()],
            monkeypatch) == 1
        err = capsys.readouterr().err
        assert '(from --mean)' in err and '(from --std)' in err
        assert 'are on the 0-1 scale: every channel is at most 1' in err
        assert f'give them times 255, {times_255}' in err
    assert not other.exists()


def test_fastreid_without_normalisation_is_converted(tmp_path, monkeypatch):
    """fast-reid normalises its 0-255 input: PIXEL_MEAN 0 with PIXEL_STD 1
    is its "no normalisation", a fact, not 0-1 values."""
    src = fastreid_checkpoint(
        tmp_path, {
            'pixel_mean': torch.zeros(1, 3, 1, 1),
            'pixel_std': torch.ones(1, 3, 1, 1)
        })
    dst = tmp_path / 'c.pth'
    assert run_script('fastreid2mmreid.py', [src, dst], monkeypatch) == 0
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['mean'] == [0.0] * 3 and facts['std'] == [1.0] * 3


@pytest.mark.parametrize('mean, std', [
    ([1., 1., 1.], [0.5, 1., 0.5]),
    ([0., 0., 0.], [0.5, 1., 1.]),
])
def test_fastreid_0_1_statistics_are_refused(tmp_path, monkeypatch, capsys,
                                             mean, std):
    """Read from the config.yaml or the checkpoint's buffers, a mean and
    std at most 1 in every channel are refused too, naming where they come
    from, with the values times 255."""
    src = fastreid_checkpoint(
        tmp_path, {
            'pixel_mean': torch.tensor(mean).view(1, 3, 1, 1),
            'pixel_std': torch.tensor(std).view(1, 3, 1, 1)
        })
    dst = tmp_path / 'c.pth'
    assert run_script('fastreid2mmreid.py', [src, dst], monkeypatch) == 1
    err = capsys.readouterr().err
    assert f"mean {mean} (from the checkpoint's pixel_mean)" in err
    assert f"std {std} (from the checkpoint's pixel_std)" in err
    assert f'mean {[v * 255 for v in mean]} and std ' \
        f'{[v * 255 for v in std]}' in err
    assert not dst.exists()


def test_0_255_statistics_pass_the_scale_check():
    """ImageNet's statistics on the 0-255 scale and every
    ``data_preprocessor`` mean/std of the configs (each written in a file
    that names the data_preprocessor) pass."""
    from glob import glob

    from mmengine.config import Config

    from mmreid.utils.source_arch import check_pixel_scale, check_pixel_stats
    stats = {((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))}
    configs = 0
    for path in glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True):
        with open(path) as f:
            if 'data_preprocessor' not in f.read():
                continue
        preprocessor = Config.fromfile(path).get('model', {}).get(
            'data_preprocessor', {})
        if 'mean' in preprocessor:
            stats.add((tuple(preprocessor.mean), tuple(preprocessor.std)))
            configs += 1
    assert configs > 0
    for mean, std in stats:
        check_pixel_scale(
            check_pixel_stats('mean', mean, 'a config'),
            check_pixel_stats('std', std, 'a config'),
            dict(mean='a config', std='a config'))


def test_fastreid_mean_std_against_the_config_and_buffers(
        tmp_path, monkeypatch, capsys):
    """fast-reid normalises with ``MODEL.PIXEL_MEAN``/``PIXEL_STD``
    (its ``pixel_mean``/``pixel_std`` buffers): ``--mean``/``--std``
    saying otherwise is refused, the same values accepted."""
    src = fastreid_checkpoint(tmp_path)
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(FASTREID_YAML.format(with_nl='false', pool='avgpool'))
    dst = tmp_path / 'c.pth'
    imagenet = ['123.675', '116.28', '103.53']
    assert run_script('fastreid2mmreid.py',
                      [src, dst, '--config', cfg, '--mean', *imagenet],
                      monkeypatch) == 1
    err = capsys.readouterr().err
    assert 'MODEL.PIXEL_MEAN = [120.0, 110.0, 100.0]' in err
    assert not dst.exists()
    assert run_script('fastreid2mmreid.py', [
        src, dst, '--config', cfg, '--mean', '120', '110', '100', '--std',
        '60', '55', '50'
    ], monkeypatch) == 0
    # A checkpoint with the buffers (fast-reid v0.x saved them).
    src = fastreid_checkpoint(
        tmp_path, {
            'pixel_mean': torch.tensor([120., 110., 100.]).view(1, 3, 1, 1),
            'pixel_std': torch.tensor([60., 55., 50.]).view(1, 3, 1, 1)
        })
    assert run_script('fastreid2mmreid.py', [src, dst, '--std', '1', '1', '1'],
                      monkeypatch) == 1
    err = capsys.readouterr().err
    assert "(from --std) contradicts the checkpoint's pixel_std" in err
    assert run_script('fastreid2mmreid.py',
                      [src, dst, '--mean', '120', '110', '100'],
                      monkeypatch) == 0
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['mean'] == [120., 110., 100.]
    assert facts['std'] == [60., 55., 50.]


def test_strict_accepts_the_pixel_buffers_it_reads(tmp_path, monkeypatch,
                                                   capsys):
    """fast-reid's ``pixel_mean``/``pixel_std`` buffers (saved by its
    ``Baseline``) are read as the source's normalisation: used, so
    ``--strict`` converts such a checkpoint; a tensor that is really left
    out still makes it fail, nothing written."""
    stats = {
        'pixel_mean': torch.tensor([120., 110., 100.]).view(1, 3, 1, 1),
        'pixel_std': torch.tensor([60., 55., 50.]).view(1, 3, 1, 1)
    }
    src = fastreid_checkpoint(tmp_path, stats)
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(FASTREID_YAML.format(with_nl='false', pool='avgpool'))
    dst = tmp_path / 'c.pth'
    for args in ([], ['--config', cfg]):
        assert run_script('fastreid2mmreid.py', [src, dst, '--strict'] + args,
                          monkeypatch) == 0
        assert 'not mapped' not in capsys.readouterr().out
        facts = torch.load(dst, weights_only=True)['meta']['source_arch']
        assert facts['mean'] == [120., 110., 100.]
        assert facts['std'] == [60., 55., 50.]
    dst.unlink()
    stats['backbone.NL_2.0.g.weight'] = torch.rand(64, 128, 1, 1)
    src = fastreid_checkpoint(tmp_path, stats)
    assert run_script('fastreid2mmreid.py', [src, dst, '--strict'],
                      monkeypatch) == 1
    err = capsys.readouterr().err
    assert '1 keys' in err and 'backbone.NL_2.0.g.weight' in err
    assert 'pixel_mean' not in err
    assert not dst.exists()


def test_assumed_facts_are_recorded_and_named(tmp_path, monkeypatch, capsys):
    """A fast-reid checkpoint does not hold its last stride, fixed-p GeM or
    average pooling, test size, flip or (1.x) pixel statistics: without
    ``--config`` they are fast-reid's BoT defaults, recorded as assumed,
    printed with the options that give them, and marked in refusals."""
    from mmreid.apis import init_model
    src = fastreid_checkpoint(tmp_path)
    dst = tmp_path / 'c.pth'
    assert run_script('fastreid2mmreid.py', [src, dst], monkeypatch) == 0
    out = capsys.readouterr().out
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['assumed'] == [
        'last_stride', 'pooling', 'input_size', 'flip', 'mean', 'std',
        'distance'
    ]
    line = next(x for x in out.splitlines() if x.startswith('assumed'))
    assert line.startswith('assumed fastreid defaults (not in the '
                           'checkpoint): last_stride=1, pooling=avg, '
                           'input_size=[256, 128], flip=False')
    for option in ('--last-stride', '--pooling', '--input-size',
                   '--flip/--no-flip', '--mean', '--std', '--distance',
                   '--config'):
        assert option in line
    config = fastreid_r18_config()  # 64 x 32, last stride 1
    config.model.backbone.last_stride = 2
    with pytest.raises(ValueError) as info:
        init_model(config, str(dst))
    message = str(info.value)
    assert 'last stride: the source has 1 (assumed by the converter)' \
        in message
    assert 'ReIDResize size: the source has [256, 128] (assumed' in message
    assert 'convert it again giving them (--last-stride, --input-size)' \
        in message
    # What is given or read is not assumed: the config.yaml's facts, an
    # option, the GeM exponent.
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(FASTREID_YAML.format(with_nl='false', pool='avgpool'))
    convert_checkpoint_file(
        str(src), str(dst), 'fastreid', source_config=str(cfg))
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['assumed'] == ['flip', 'distance']
    assert f'(not in the checkpoint nor {cfg}): flip=False, ' \
        'distance=cosine' in capsys.readouterr().out
    src = fastreid_checkpoint(tmp_path,
                              {'heads.pool_layer.p': torch.tensor([3.5])})
    convert_checkpoint_file(
        str(src), str(dst), 'fastreid', input_size=[64, 32])
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['assumed'] == [
        'last_stride', 'flip', 'mean', 'std', 'distance'
    ]


#: fast-reid's stem pooling since August 2020: ``nn.MaxPool2d(
#: kernel_size=3, stride=2, ceil_mode=True)`` (padding 0).
FASTREID_CEIL_STEM = dict(kernel_size=3, stride=2, padding=0, ceil_mode=True)


def torchvision_stem():
    """torchvision's ResNet stem pooling, fast-reid's before August 2020."""
    pool = torchvision.models.resnet18(weights=None).maxpool
    return dict(
        kernel_size=pool.kernel_size,
        stride=pool.stride,
        padding=pool.padding,
        ceil_mode=pool.ceil_mode)


@pytest.mark.parametrize('neck', ['heads.bnneck', 'heads.bottleneck.0'])
def test_fastreid_stem_pool_is_assumed_unless_given(tmp_path, monkeypatch,
                                                    capsys, neck):
    """A checkpoint with ``heads.classifier.weight`` (``BNneckHead``, or
    the ``EmbeddingHead`` of 2020) comes from fast-reid code with either
    stem pooling, and no config.yaml names it: without ``--stem-pool`` it
    is recorded and printed as assumed, and a refusal at load marks it."""
    from mmreid.apis import init_model
    state_dict = {f'backbone.{k}': v for k, v in resnet_keys().items()}
    state_dict.update(bn_tensors(neck, 512))
    state_dict['heads.classifier.weight'] = torch.rand(5, 512)
    src = tmp_path / 'model_final.pth'
    torch.save(dict(model=state_dict), src)
    dst = tmp_path / 'c.pth'
    args = [src, dst, '--input-size', '64', '32']
    assert run_script('fastreid2mmreid.py', args, monkeypatch) == 0
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['stem_pool'] == FASTREID_CEIL_STEM
    assert facts['assumed'][0] == 'stem_pool'
    line = next(x for x in capsys.readouterr().out.splitlines()
                if x.startswith('assumed'))
    assert 'stem_pool=ceil (MaxPool2d(3, 2, padding=0, ceil_mode=True))' \
        in line
    assert '--stem-pool' in line and '"pad" for fast-reid' in line
    # mmreid's default stem is the other one: refused, marked assumed.
    config = fastreid_r18_config()
    del config.model.backbone.stem_pool
    with pytest.raises(ValueError) as info:
        init_model(config, str(dst))
    message = str(info.value)
    assert 'stem max pooling padding: the source has 0 (assumed by the ' \
        'converter), the config 1' in message
    assert 'convert it again giving them (--stem-pool)' in message
    # Given, it is recorded as given, and that config computes it.
    assert run_script('fastreid2mmreid.py', args + ['--stem-pool', 'pad'],
                      monkeypatch) == 0
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['stem_pool'] == torchvision_stem()
    assert 'stem_pool' not in facts['assumed']
    init_model(config, str(dst))


def test_fastreid_heads_weight_shows_the_ceil_stem(tmp_path, monkeypatch):
    """fast-reid keeps its classifier as ``heads.weight`` only in versions
    that pool the stem with ``ceil``: not assumed. ``--stem-pool pad`` (a
    fork's stem) is taken as stated."""
    src = fastreid_checkpoint(tmp_path)
    dst = tmp_path / 'c.pth'
    for option in ([], ['--stem-pool', 'ceil']):
        assert run_script('fastreid2mmreid.py', [src, dst] + option,
                          monkeypatch) == 0
        facts = torch.load(dst, weights_only=True)['meta']['source_arch']
        assert facts['stem_pool'] == FASTREID_CEIL_STEM
        assert 'stem_pool' not in facts['assumed']
    other = tmp_path / 'pad.pth'
    assert run_script('fastreid2mmreid.py', [src, other, '--stem-pool', 'pad'],
                      monkeypatch) == 0
    facts = torch.load(other, weights_only=True)['meta']['source_arch']
    assert facts['stem_pool'] == dict(
        kernel_size=3, stride=2, padding=1, ceil_mode=False)
    assert 'stem_pool' not in facts['assumed']


def test_torchreid_assumed_facts(tmp_path):
    """torchreid's checkpoint holds neither its input size nor its
    normalisation; a BoT-style fork's test feature is not its code's."""
    state_dict = dict(resnet_keys())
    src = tmp_path / 'model.pth.tar-60'
    torch.save(dict(state_dict=state_dict), src)
    dst = tmp_path / 'c.pth'
    convert_checkpoint_file(str(src), str(dst), 'torchreid', mean=[127.5] * 3)
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['assumed'] == ['last_stride', 'input_size', 'std', 'distance']
    state_dict.update(bn_tensors('bnneck', 512))
    torch.save(dict(state_dict=state_dict), src)
    convert_checkpoint_file(str(src), str(dst), 'torchreid')
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['assumed'] == [
        'last_stride', 'test_feature', 'input_size', 'mean', 'std', 'distance'
    ]


def test_deep_stages_and_the_gem_exponent_map():
    """ResNet-101/152 stages have more than ten blocks (layer3.22 in
    ResNet-101); fast-reid's GeM exponent of shape (1,) becomes mmreid's
    scalar."""
    key = 'layer3.22.conv2.weight'
    for source, prefix in (('torchvision', ''), ('torchreid', ''),
                           ('fastreid', 'backbone.'), ('mmpretrain',
                                                       'backbone.')):
        converted, unmapped = convert_state_dict({prefix + key: torch.ones(1)},
                                                 RULES[source])
        assert (list(converted), unmapped) == (['backbone.' + key], []), source
    converted, _ = convert_state_dict(
        {'heads.pool_layer.p': torch.tensor([3.5])}, RULES['fastreid'])
    assert converted['neck.p'].shape == () and converted['neck.p'] == 3.5


@pytest.mark.parametrize('key', ['layer4.1.se.fc1.weight', 'fc2.weight'])
def test_torchvision_refuses_every_unmapped_tensor_but_fc(tmp_path, key):
    """Only ``fc.*`` (the ImageNet classifier) may stay unmapped."""
    src = tmp_path / 'tv.pth'
    torch.save(
        {
            'conv1.weight': torch.ones(2, 3, 7, 7),
            'fc.weight': torch.ones(3, 2),
            key: torch.ones(2)
        }, src)
    with pytest.raises(ValueError, match=rf'backbone tensors .*{key}'):
        convert_checkpoint_file(
            str(src), str(tmp_path / 'c.pth'), 'torchvision')
    assert not (tmp_path / 'c.pth').exists()


@pytest.mark.parametrize('source, prefix, classifier',
                         [('torchvision', '', 'fc'),
                          ('mmpretrain', 'backbone.', 'head.fc')])
def test_imagenet_classifier_is_dropped_not_unmapped(tmp_path, monkeypatch,
                                                     capsys, source, prefix,
                                                     classifier):
    """The ImageNet classifier is never part of mmreid's backbone: it is
    reported and recorded as dropped, so the documented ``--strict`` (fail
    if a key is not mapped) converts an ImageNet ResNet; a backbone tensor
    no rule maps still fails."""
    state_dict = {prefix + k: v for k, v in resnet_keys().items()}
    state_dict[f'{classifier}.weight'] = torch.rand(10, 512)
    state_dict[f'{classifier}.bias'] = torch.rand(10)
    src = tmp_path / 'resnet18.pth'
    torch.save(state_dict, src)
    dst = tmp_path / 'r18.pth'
    assert run_script('resnet2mmreid.py',
                      [src, dst, '--strict', '--source', source],
                      monkeypatch) == 0
    out = capsys.readouterr().out
    assert 'not mapped' not in out
    assert f'(the ImageNet classifier) (2):\n  {classifier}.bias (10,)' in out
    converted = torch.load(dst, weights_only=True)
    assert converted['meta']['dropped'] == [
        f'{classifier}.bias', f'{classifier}.weight'
    ]
    assert len(converted['state_dict']) == len(state_dict) - 2
    state_dict[prefix + 'layer4.1.se.fc1.weight'] = torch.rand(32, 512)
    torch.save(state_dict, src)
    other = tmp_path / 'se.pth'
    assert run_script('resnet2mmreid.py',
                      [src, other, '--strict', '--source', source],
                      monkeypatch) == 1
    err = capsys.readouterr().err
    assert '1 backbone tensors' in err and 'layer4.1.se.fc1.weight' in err
    assert not other.exists()


@pytest.mark.parametrize(
    'meta, found',
    [
        # The meta this module writes: converted_from with a source of
        # RULES; one of them alone is another tool's.
        (dict(converted_from='r18.pth', source='torchvision'),
         'meta of an mmreid conversion from torchvision (r18.pth)'),
        (dict(converted_from='r18.pth', source='timm'), ''),
        (dict(source='torchvision'), ''),
        # Another tool's meta with an unhashable source: no evidence, not
        # a TypeError.
        (dict(converted_from='r18.pth', source=['torchvision']), ''),
        # An mmreid run's config text: default_scope on any line.
        (dict(cfg="model = dict(type='ReIDModel')\n"
              "default_scope = 'mmreid'\n"),
         "meta['cfg'] of an mmreid run (default_scope = 'mmreid')"),
        (dict(cfg="# default_scope = 'mmreid'\ndefault_scope = 'mmpretrain'"
              '\n'), ''),
    ])
def test_mmreid_evidence_of_the_meta(meta, found):
    from mmreid.utils.key_mapping import mmreid_evidence
    assert mmreid_evidence(dict(meta=meta), {'conv1.weight': None}) == found


def test_a_converted_whole_model_is_told_to_load_directly(tmp_path):
    """A converted fast-reid model given to a converter again is refused
    with the advice for a whole model (``init_model``), not the
    ``Pretrained`` init_cfg of a converted ImageNet backbone: that advice
    would load its backbone only and drop the trained BNNeck and
    classifier."""
    src = fastreid_checkpoint(tmp_path)
    once = tmp_path / 'once.pth'
    convert_checkpoint_file(str(src), str(once), 'fastreid')
    again = tmp_path / 'again.pth'
    with pytest.raises(ValueError) as info:
        convert_checkpoint_file(str(once), str(again), 'fastreid')
    message = str(info.value)
    assert 'meta of an mmreid conversion from fastreid' in message
    assert 'load it directly with init_model' in message
    assert "prefix='backbone.'" not in message
    assert not again.exists()


def test_an_imagenet_source_has_no_facts_to_read(tmp_path):
    """``pixel_mean``/``pixel_std`` are read as facts of the whole ReID
    networks only: in a torchvision checkpoint they are tensors of no
    backbone layer mmreid builds, refused by name, nothing written."""
    state_dict = dict(resnet_keys())
    state_dict['pixel_mean'] = torch.rand(1, 3, 1, 1)
    src = tmp_path / 'tv.pth'
    torch.save(state_dict, src)
    dst = tmp_path / 'c.pth'
    with pytest.raises(ValueError, match=r'backbone tensors .*pixel_mean'):
        convert_checkpoint_file(str(src), str(dst), 'torchvision')
    assert not dst.exists()


@pytest.mark.parametrize('source', ['torchreid', 'torchvision'])
def test_a_fastreid_config_yaml_is_refused_for_other_sources(
        tmp_path, source):
    """``source_config`` is fast-reid's ``config.yaml``: given for another
    source it is refused, not read as that source's facts."""
    src = tmp_path / 'r18.pth'
    torch.save(dict(resnet_keys()), src)
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(FASTREID_YAML.format(with_nl='false', pool='avgpool'))
    dst = tmp_path / 'c.pth'
    with pytest.raises(ValueError, match='reads fast-reid configs only'):
        convert_checkpoint_file(
            str(src), str(dst), source, source_config=str(cfg))
    assert not dst.exists()


@pytest.mark.parametrize('option', [
    dict(last_stride=1),
    dict(input_size=[256, 128]),
    dict(flip=False),
])
def test_architecture_options_are_refused_for_a_backbone(tmp_path, option):
    """An ImageNet backbone records no source network facts: an option
    stating one would be silently lost, so it is refused."""
    src = tmp_path / 'r18.pth'
    torch.save(dict(resnet_keys()), src)
    dst = tmp_path / 'c.pth'
    with pytest.raises(ValueError, match='apply to whole ReID networks'):
        convert_checkpoint_file(str(src), str(dst), 'torchvision', **option)
    assert not dst.exists()


def test_the_report_counts_what_was_converted(tmp_path, capsys):
    """The first line of the report counts the tensors converted out of the
    source's; the ImageNet classifier is counted as not converted."""
    state_dict = dict(resnet_keys())
    state_dict['fc.weight'] = torch.rand(10, 512)
    state_dict['fc.bias'] = torch.rand(10)
    src = tmp_path / 'tv.pth'
    torch.save(state_dict, src)
    converted, _ = convert_checkpoint_file(
        str(src), str(tmp_path / 'c.pth'), 'torchvision')
    total = len(state_dict)
    assert len(converted) == total - 2
    assert f'converted {total - 2} of {total} tensors' in \
        capsys.readouterr().out.splitlines()


@pytest.mark.parametrize('script', [
    'fastreid2mmreid.py', 'torchreid2mmreid.py', 'resnet2mmreid.py',
    'publish_model.py'
])
def test_a_missing_source_file_is_an_error_message(tmp_path, monkeypatch,
                                                   capsys, script):
    """A mistyped source path exits with status 1 and an ``error:`` line
    naming the file, not a traceback."""
    missing = tmp_path / 'no_such_model.pth'
    assert run_script(script, [missing, tmp_path / 'out.pth'],
                      monkeypatch) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'no_such_model.pth' in err
    assert list(tmp_path.iterdir()) == []


def test_a_deep_stem_conv_bias_is_refused(tmp_path):
    """mmpretrain's deep stem convs have no bias (a ConvModule before a
    BN), nor does mmreid's: a ``stem.*.conv.bias`` is a layer mmreid would
    not compute, refused by name, not mapped to a key the ``Pretrained``
    init_cfg would skip."""
    from mmpretrain.models import ResNetV1c
    state_dict = {
        f'backbone.{k}': v
        for k, v in ResNetV1c(depth=18).state_dict().items()
    }
    state_dict['backbone.stem.0.conv.bias'] = torch.rand(32)
    src = tmp_path / 'v1c.pth'
    torch.save(dict(state_dict=state_dict), src)
    dst = tmp_path / 'c.pth'
    with pytest.raises(ValueError,
                       match=r'backbone tensors .*stem\.0\.conv\.bias'):
        convert_checkpoint_file(str(src), str(dst), 'mmpretrain')
    assert not dst.exists()


def test_the_report_names_the_tensors_read_as_facts(tmp_path, capsys):
    """fast-reid's ``pixel_mean``/``pixel_std`` are neither converted nor
    left out: the report lists them, with their shapes, as read as the
    source network's facts."""
    src = fastreid_checkpoint(
        tmp_path, {
            'pixel_mean': torch.tensor([120., 110., 100.]).view(1, 3, 1, 1),
            'pixel_std': torch.tensor([60., 55., 50.]).view(1, 3, 1, 1)
        })
    convert_checkpoint_file(str(src), str(tmp_path / 'c.pth'), 'fastreid')
    out = capsys.readouterr().out
    assert ("read as the source network's facts, not converted (2):\n"
            '  pixel_mean (1, 3, 1, 1)\n  pixel_std (1, 3, 1, 1)') in out
    assert 'not mapped' not in out


def test_an_option_is_named_as_such_next_to_a_config_yaml(
        tmp_path, monkeypatch, capsys):
    """With ``--config``, a fact the config.yaml does not record but an
    option gives is still named by its option when it is refused."""
    src = fastreid_checkpoint(
        tmp_path, {
            'pixel_mean': torch.tensor([120., 110., 100.]).view(1, 3, 1, 1),
            'pixel_std': torch.tensor([60., 55., 50.]).view(1, 3, 1, 1)
        })
    cfg = tmp_path / 'config.yaml'
    cfg.write_text('MODEL:\n  BACKBONE:\n    LAST_STRIDE: 1\n')
    dst = tmp_path / 'c.pth'
    assert run_script('fastreid2mmreid.py',
                      [src, dst, '--config', cfg, '--std', '1', '1', '1'],
                      monkeypatch) == 1
    err = capsys.readouterr().err
    assert "std [1.0, 1.0, 1.0] (from --std) contradicts the checkpoint's " \
        'pixel_std' in err
    assert not dst.exists()


def test_the_assumed_line_offers_config_only_without_one(tmp_path, capsys):
    """A fact neither the checkpoint nor the given config.yaml records is
    given by its option: the line does not offer ``--config`` again."""
    src = fastreid_checkpoint(tmp_path)
    cfg = tmp_path / 'config.yaml'
    cfg.write_text(FASTREID_YAML.format(with_nl='false', pool='avgpool'))
    convert_checkpoint_file(
        str(src), str(tmp_path / 'c.pth'), 'fastreid', source_config=str(cfg))
    line = next(x for x in capsys.readouterr().out.splitlines()
                if x.startswith('assumed'))
    assert line.endswith('give --flip/--no-flip, --distance')


def test_publish_keeps_the_run_meta(tmp_path):
    """What identifies the run is kept (iteration-based runs record
    ``iter``; a class list in ``dataset_meta``; the training sets of the
    weights before it, which the test's identity-split check reads),
    numpy scalars as Python numbers, tuples as lists."""
    meta = dict(
        iter=np.int64(40000),
        mmreid_version='1.0.0',
        experiment_name='bot_r18_20260101_000000',
        dataset_meta=dict(classes=('a', 'b'), num_ids=np.int32(2)),
        pretrained_dataset_meta=[dict(dataset_name='regdb', trial=2)],
        hook_msgs=dict(last_ckpt='x'))
    src = tmp_path / 'iter_40000.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(2)), meta=meta), src)
    final = load_publish().publish(str(src), str(tmp_path / 'bot.pth'))
    published = torch.load(final, weights_only=True)['meta']
    assert published == dict(
        iter=40000,
        mmreid_version='1.0.0',
        experiment_name='bot_r18_20260101_000000',
        dataset_meta=dict(classes=['a', 'b'], num_ids=2),
        pretrained_dataset_meta=[dict(dataset_name='regdb', trial=2)])


def test_a_published_converted_backbone_is_still_known(tmp_path):
    """Publishing a converted ImageNet backbone keeps the meta of the
    conversion (``converted_from``, ``source``): converting the published
    file again is refused as mmreid's already, with the init_cfg advice."""
    tv = tmp_path / 'resnet18.pth'
    # With torchvision's ImageNet classifier, which the conversion drops.
    torch.save(
        dict(
            resnet_keys(), **{
                'fc.weight': torch.rand(1000, 512),
                'fc.bias': torch.rand(1000)
            }), tv)
    converted = tmp_path / 'r18_mmreid.pth'
    convert_checkpoint_file(str(tv), str(converted), 'torchvision')
    final = load_publish().publish(str(converted), str(tmp_path / 'r18.pth'))
    # The record of the classifier left out on purpose is kept too.
    dropped = torch.load(converted, weights_only=True)['meta']['dropped']
    assert dropped and torch.load(
        final, weights_only=True)['meta']['dropped'] == dropped
    with pytest.raises(ValueError) as info:
        convert_checkpoint_file(final, str(tmp_path / 'again.pth'),
                                'mmpretrain')
    assert ('meta of an mmreid conversion from torchvision '
            '(resnet18.pth)') in str(info.value)


def test_publish_a_bare_state_dict_and_a_name_without_pth(tmp_path):
    """A bare state dict is published as its tensors; ``-<hash>.pth`` is
    added to an output name that does not end in ``.pth``."""
    weights = dict(w=torch.arange(3.), n=torch.tensor(5))
    src = tmp_path / 'weights.pth'
    torch.save(weights, src)
    final = load_publish().publish(str(src), str(tmp_path / 'bot'))
    assert re.fullmatch(r'bot-[0-9a-f]{8}\.pth', osp.basename(final))
    published = torch.load(final, weights_only=True)
    assert set(published) == {'state_dict'}
    assert set(published['state_dict']) == set(weights)
    for key, value in weights.items():
        assert torch.equal(published['state_dict'][key], value)


def test_publish_refuses_a_file_that_is_not_a_checkpoint(
        tmp_path, monkeypatch, capsys):
    """A file holding a bare list of tensors is no checkpoint: exit status
    1 with an error naming it, nothing written."""
    src = tmp_path / 'list.pth'
    torch.save([torch.ones(2)], src)
    out = tmp_path / 'out'
    out.mkdir()
    assert run_script('publish_model.py', [src, out / 'p.pth'],
                      monkeypatch) == 1
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'list.pth' in err
    assert list(out.iterdir()) == []


def test_a_neck_without_running_statistics_is_not_a_bnneck(tmp_path):
    """``_bn_shaped``: a BatchNorm has ``running_mean`` and
    ``running_var``; a torchreid fork's ``bottleneck = nn.LayerNorm(512)``
    (weight and bias only) normalises otherwise, and mmreid's BNNeck would
    use its initial statistics (mean 0, variance 1) instead: the neck is
    refused by the converter, naming its tensors, nothing written."""
    state_dict = dict(resnet_keys())
    state_dict['bottleneck.weight'] = torch.rand(512)
    state_dict['bottleneck.bias'] = torch.rand(512)
    state_dict['classifier.weight'] = torch.rand(5, 512)
    src = tmp_path / 'model.pth.tar-60'
    torch.save(dict(state_dict=state_dict), src)
    dst = tmp_path / 'c.pth'
    with pytest.raises(ValueError, match=r'bottleneck\.weight'):
        convert_checkpoint_file(str(src), str(dst), 'torchreid', strict=True)
    assert not dst.exists()


def test_a_failed_publish_leaves_no_unhashed_file(tmp_path, monkeypatch):
    """A step after the unhashed file is written that fails (the final
    file's mode or rename: a read-only target, a full disk) left
    ``<stem>.pth.unhashed`` behind; only a refused name removed it."""
    tool = load_publish()
    src = tmp_path / 'epoch_8.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(2))), src)

    def fail(*args):
        raise OSError('no space left on device')

    monkeypatch.setattr(tool, 'set_output_mode', fail)
    with pytest.raises(OSError, match='no space left'):
        tool.publish(str(src), str(tmp_path / 'bot.pth'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['epoch_8.pth']
