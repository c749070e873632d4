from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.registry import DefaultScope

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
    with pytest.raises(RuntimeError, match='head.bnneck.weight'):
        load_pretrained(model, str(path))
    report = load_pretrained(model, str(path), allow_missing=['head.'])
    assert report['unexpected'] == ['head.fc.weight']
    assert 'head.classifier.weight' in report['missing']
    assert 'head.bnneck.weight' in report['missing']
    assert not any(k.startswith('backbone.') for k in report['missing'])


def test_checkpoint_wrappers_and_prefix_forms_give_the_same_tensors():
    """A bare state dict, one under 'state_dict' or 'model', DataParallel's
    'module.' keys, and a prefix with or without its final dot all give
    the tensors under the prefix, without it; other entries are dropped."""
    weight, bias = torch.randn(3), torch.randn(3)
    bare = {
        'backbone.fc.weight': weight,
        'backbone.fc.bias': bias,
        'head.fc.weight': torch.randn(2)
    }
    parallel = {f'module.{k}': v for k, v in bare.items()}
    checkpoints = [
        bare,
        dict(state_dict=bare, meta=dict(epoch=3)),
        dict(model=parallel, optimizer=dict(lr=0.1)),
        dict(bare, epoch=3),
    ]
    for checkpoint in checkpoints:
        keys = sorted(weight_init.extract_state_dict(checkpoint))
        assert keys == sorted(bare)
        for prefix in ('backbone', 'backbone.'):
            tensors = weight_init.extract_state_dict(checkpoint, prefix)
            assert sorted(tensors) == ['fc.bias', 'fc.weight']
            assert tensors['fc.weight'] is weight
            assert tensors['fc.bias'] is bias


def test_checkpoint_matching_nothing_is_an_error(imagenet_ckpt):
    path, _ = imagenet_ckpt
    # Without the prefix, 'backbone.conv1.weight' matches no backbone key.
    with pytest.raises(RuntimeError, match='matches no key'):
        load_pretrained(resnet18(), str(path))
    with pytest.raises(KeyError, match='prefix'):
        load_pretrained(resnet18(), str(path), prefix='model.')


def small_resnet(depth, **kwargs):
    return MODELS.build(
        dict(
            type='ReIDResNet',
            depth=depth,
            base_channels=8,
            stem_channels=8,
            **kwargs))


@pytest.fixture
def small_r18_ckpt(tmp_path):
    """An ImageNet-style ResNet-18 checkpoint (narrow: fast)."""
    state = {
        f'backbone.{k}': v
        for k, v in small_resnet(18).state_dict().items()
    }
    state['head.fc.weight'] = torch.randn(1000, 64)
    path = tmp_path / 'r18_small.pth'
    torch.save(dict(state_dict=state, meta=dict()), path)
    return str(path)


def pretrained(checkpoint, **kwargs):
    return dict(
        type='Pretrained', checkpoint=checkpoint, prefix='backbone.', **kwargs)


def test_checkpoint_covering_part_of_the_module_is_an_error(small_r18_ckpt):
    # ResNet-18 weights into a ResNet-34 backbone: layer1.2, layer2.2-3,
    # layer3.2-5 and layer4.2 would stay random with one warning line.
    backbone = small_resnet(34, init_cfg=pretrained(small_r18_ckpt))
    with pytest.raises(RuntimeError) as info:
        backbone.init_weights()
    message = str(info.value)
    assert small_r18_ckpt in message
    assert 'lacks' in message and 'layer1.2.conv1.weight' in message
    assert 'more)' in message
    assert 'allow_missing' in message


def test_modules_added_to_the_pretrained_network_may_be_missing(
        small_r18_ckpt, monkeypatch):
    # SNR plugins and AGW non-local blocks are not in an ImageNet ResNet:
    # they keep their own initialisation, without an error.
    messages = []
    monkeypatch.setattr(weight_init, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    snr = small_resnet(
        18,
        plugins=[
            dict(
                cfg=dict(type='SNR', reduction=4),
                stages=(True, True, True, True),
                position='after_stage')
        ],
        init_cfg=pretrained(small_r18_ckpt))
    snr.init_weights()
    assert 'snr_modules.3' in messages[-1]
    agw = MODELS.build(
        dict(
            type='AGWResNet',
            depth=18,
            base_channels=8,
            stem_channels=8,
            non_local_stages=(0, 1, 1, 0),
            init_cfg=pretrained(small_r18_ckpt)))
    agw.init_weights()
    assert 'non_locals.1_1' in messages[-1]
    # IBN layers replace BN layers of the pretrained network: not declared.
    ibn = small_resnet(
        18,
        ibn_stages=(True, False, False, False),
        init_cfg=pretrained(small_r18_ckpt))
    with pytest.raises(RuntimeError, match=r'layer1\.0\.bn1\.IN\.weight'):
        ibn.init_weights()


def test_allow_missing_names_what_the_source_lacks(small_r18_ckpt):
    backbone = small_resnet(
        34,
        init_cfg=pretrained(
            small_r18_ckpt, allow_missing=['layer1.2.', 'layer2.']))
    with pytest.raises(RuntimeError) as info:
        backbone.init_weights()
    # What the list covers is no longer reported.
    assert 'layer1.2.' not in str(info.value)
    assert 'layer2.' not in str(info.value)
    assert 'layer3.2.conv1.weight' in str(info.value)
    report = load_pretrained(
        small_resnet(34),
        small_r18_ckpt,
        prefix='backbone.',
        allow_missing=['layer1.2.', 'layer2.', 'layer3.', 'layer4.2.'])
    assert 'layer3.5.conv1.weight' in report['missing']
    # A pattern that names no tensor of the module is a typo, not a rule.
    with pytest.raises(ValueError, match="'layer5.'"):
        load_pretrained(
            small_resnet(18),
            small_r18_ckpt,
            prefix='backbone.',
            allow_missing=['layer5.'])


def shipped_pretrained_backbones():
    """The distinct backbones that shipped configs load ImageNet weights
    into, as ``(config, backbone cfg)``."""
    import glob
    import os.path as osp

    from mmengine.config import Config
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    seen = {}
    for path in sorted(glob.glob(
            osp.join(repo, 'configs/**/*.py'), recursive=True)):
        if '_base_' in path:
            continue
        backbone = Config.fromfile(path).model.get('backbone', {}).to_dict()
        init_cfg = backbone.pop('init_cfg', None) or {}
        if init_cfg.get('type') != 'Pretrained':
            continue
        init_cfg.pop('checkpoint')
        key = repr(sorted(backbone.items())) + repr(sorted(init_cfg.items()))
        seen.setdefault(key, (osp.relpath(path, repo), backbone, init_cfg))
    return list(seen.values())


SHIPPED = shipped_pretrained_backbones()


def test_shipped_configs_load_imagenet_weights():
    assert {b['type'] for _, b, _ in SHIPPED} >= {'ReIDResNet', 'AGWResNet'}


def test_shipped_r50_configs_name_the_references_weights():
    # The specs (snr.md 2 and 9) and the reference code (BoT, AGW) start
    # from torchvision's ImageNet ResNet-50, resnet50-19c8e357.pth. The
    # configs loaded mmclassification's resnet50_8xb32_in1k, another
    # network's weights.
    import glob
    import os.path as osp

    from mmengine.config import Config
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    checked = 0
    for path in sorted(
            glob.glob(osp.join(repo, 'configs/**/*.py'), recursive=True)):
        if '_base_' in path:
            continue
        backbone = Config.fromfile(path).model.get('backbone', {})
        init_cfg = backbone.get('init_cfg') or {}
        if backbone.get('depth') != 50 or init_cfg.get('type') != 'Pretrained':
            continue
        assert init_cfg['checkpoint'] == ('https://download.pytorch.org/'
                                          'models/resnet50-19c8e357.pth'), path
        assert init_cfg.get('prefix') is None, path
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize(
    'backbone,init_cfg', [(b, i) for _, b, i in SHIPPED],
    ids=[path for path, _, _ in SHIPPED])
def test_shipped_config_accepts_an_imagenet_resnet(backbone, init_cfg,
                                                   tmp_path):
    # The ImageNet ResNet of the config's depth, in the key layout of the
    # file the config names (torchvision's: conv1, bn1, layer*, fc), loads
    # into every backbone a shipped config pretrains, SNR plugins and AGW
    # non-local blocks included: every ResNet tensor is taken.
    import torchvision
    assert init_cfg.get('prefix') is None
    source = getattr(torchvision.models,
                     f'resnet{backbone["depth"]}')().state_dict()
    source = {
        k: torch.randn_like(v.float()).to(v.dtype)
        for k, v in source.items()
    }
    path = tmp_path / 'imagenet.pth'
    torch.save(source, path)
    model = MODELS.build(
        dict(backbone, init_cfg=dict(init_cfg, checkpoint=str(path))))
    model.init_weights()
    own = model.state_dict()
    # AGW's stems take conv1/bn1 as stems.<k>.conv1, stems.<k>.bn1; MBN
    # takes a BN's statistics into every modality's bns.<k>.
    taken = [
        k for k in source
        if not k.startswith('fc.') and not k.endswith('num_batches_tracked')
    ]
    for key in taken:
        module, _, tensor = key.rpartition('.')
        names = [
            n for n in [key, f'stems.0.{key}', f'stems.1.{key}'] +
            [f'{module}.bns.{k}.{tensor}' for k in (0, 1)] if n in own
        ]
        assert names, key
        for name in names:
            assert torch.equal(own[name], source[key]), name


def test_a_deeper_network_of_the_same_names_is_an_error(tmp_path):
    """ResNet-34 weights into a ResNet-18: every tensor of the ResNet-18
    is there, but layer1.2, layer2.2-3 ... would be ignored: the backbone
    is another network than the pretrained one."""
    state = {
        f'backbone.{k}': v
        for k, v in small_resnet(34).state_dict().items()
    }
    state['head.fc.weight'] = torch.randn(1000, 64)  # outside: logged
    path = str(tmp_path / 'r34_small.pth')
    torch.save(dict(state_dict=state, meta=dict()), path)
    backbone = small_resnet(18, init_cfg=pretrained(path))
    with pytest.raises(RuntimeError) as info:
        backbone.init_weights()
    message = str(info.value)
    assert path in message and 'layer1.2.conv1.weight' in message
    assert 'does not have' in message and 'fc' not in message
    # The same checkpoint's ResNet-18 part alone loads.
    part = {
        k: v
        for k, v in state.items()
        if k[len('backbone.'):] in small_resnet(18).state_dict()
        or not k.startswith('backbone.')
    }
    torch.save(dict(state_dict=part, meta=dict()), path)
    small_resnet(18, init_cfg=pretrained(path)).init_weights()


@pytest.fixture
def partial_ckpt(tmp_path):
    """A ResNet-18 checkpoint without ``layer4``."""
    state = {
        k: v
        for k, v in resnet18().state_dict().items()
        if not k.startswith('layer4.')
    }
    path = tmp_path / 'partial.pth'
    torch.save(state, path)
    return str(path)


@pytest.mark.parametrize('scope', [None, 'mmpretrain'])
@pytest.mark.parametrize('whole_model', [False, True])
def test_strict_pretrained_whatever_the_default_scope(partial_ckpt, scope,
                                                      whole_model,
                                                      monkeypatch):
    """init_weights() without the mmreid scope (a plain script; conftest
    sets it for the session, so it is cleared here) still refuses a
    partial checkpoint instead of mmengine's warn-and-go load."""
    backbone = dict(
        type='ReIDResNet',
        depth=18,
        init_cfg=dict(type='Pretrained', checkpoint=partial_ckpt))
    cfg = dict(
        type='ReIDModel',
        backbone=backbone,
        head=dict(type='BNNeckHead', in_channels=512,
                  num_classes=3)) if whole_model else backbone
    model = MODELS.build(cfg)
    monkeypatch.setattr(DefaultScope, '_instance_dict', OrderedDict())
    if scope is not None:
        DefaultScope.get_instance('test-other-scope', scope_name=scope)
    with pytest.raises(
            RuntimeError,
            match=r'lacks 25 tensors of ReIDResNet: '
            r'layer4\.0\.conv1\.weight'):
        model.init_weights()
    # The scope is the caller's again.
    current = DefaultScope.get_current_instance()
    assert (current and current.scope_name) == scope


def test_a_submodule_of_another_project_keeps_its_initializers(
        partial_ckpt, monkeypatch, tmp_path):
    """Under another project's scope, its own initializer in an mmreid
    model still works when nothing is loaded (the scope is switched only
    for a 'Pretrained' load; then the message says how to name it)."""
    from mmengine.model.weight_init import BaseInit
    from mmengine.registry import MODELS as ROOT_MODELS
    from mmengine.registry import WEIGHT_INITIALIZERS as ROOT_INITS
    from mmengine.registry import Registry
    inits = Registry('weight initializer', parent=ROOT_INITS,
                     scope='otherproj_test')
    models = Registry('model', parent=ROOT_MODELS, scope='otherproj_test')

    @inits.register_module(name='QuarterInit')
    class QuarterInit(BaseInit):

        def __call__(self, module):
            for param in module.parameters():
                nn.init.constant_(param, 0.25)

    @models.register_module(name='QuarterNeck')
    class QuarterNeck(BaseModule):

        def __init__(self):
            super().__init__(init_cfg=dict(type='QuarterInit'))
            self.fc = nn.Linear(512, 512)

        def forward(self, x):
            return x

    def build(backbone_init=None):
        return MODELS.build(
            dict(
                type='ReIDModel',
                backbone=dict(
                    type='ReIDResNet', depth=18, init_cfg=backbone_init),
                neck=dict(type='otherproj_test.QuarterNeck'),
                head=dict(type='BNNeckHead', in_channels=512, num_classes=3)))

    model = build()
    full = tmp_path / 'full.pth'
    torch.save(resnet18().state_dict(), full)
    loading = build(dict(type='Pretrained', checkpoint=str(full)))
    monkeypatch.setattr(DefaultScope, '_instance_dict', OrderedDict())
    DefaultScope.get_instance('test-otherproj', scope_name='otherproj_test')
    model.init_weights()
    assert (model.neck.fc.weight == 0.25).all()
    with pytest.raises(KeyError, match="type='<scope>.<name>'"):
        loading.init_weights()


def test_every_mmreid_module_initialises_in_the_mmreid_scope():
    """Each BaseModule of mmreid's MODELS wraps its init_weights, so that
    it may be the top-level module of a script without a scope."""
    classes = [
        cls for cls in MODELS.module_dict.values()
        if isinstance(cls, type) and issubclass(cls, BaseModule)
    ]
    names = {cls.__name__ for cls in classes}
    assert {'ReIDModel', 'ReIDResNet', 'BNNeckHead'} <= names
    unwrapped = [
        cls.__name__ for cls in classes
        if not getattr(cls.init_weights, 'in_mmreid_scope', False)
    ]
    assert unwrapped == []


@pytest.mark.parametrize('init_cfg', [
    [dict(type='Pretrained')],
    dict(type='mmreid.Pretrained'),
    [dict(type='Kaiming', layer='Conv2d'),
     dict(type='mmreid.Pretrained')],
    [dict(type='mmreid.Pretrained'),
     dict(type='Kaiming', layer='Conv2d')],
    dict(type='mmengine.Pretrained'),
])
def test_pretrained_in_a_list_or_scoped_keeps_the_loaded_weights(
        imagenet_ckpt, init_cfg):
    """mmpretrain's zero_init_residual (on by default) must not zero the
    blocks' last norms after the load, whatever the form of init_cfg
    (mmengine's lenient 'mmengine.Pretrained' included), and no other
    entry overwrites the loaded weights, whatever its place in a list."""
    path, state = imagenet_ckpt
    cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    for cfg in cfgs:
        if cfg['type'].endswith('Pretrained'):
            cfg.update(checkpoint=str(path), prefix='backbone.')
    model = MODELS.build(dict(type='ReIDResNet', depth=18, init_cfg=init_cfg))
    assert model.zero_init_residual
    model.init_weights()
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[f'backbone.{key}']), key
    assert model.zero_init_residual


def reid_model_with(checkpoint):
    """A small ResNet-18 ReID model whose backbone loads ``checkpoint``."""
    backbone = dict(
        type='ReIDResNet',
        depth=18,
        base_channels=8,
        stem_channels=8,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    return MODELS.build(
        dict(
            type='ReIDModel',
            backbone=backbone,
            head=dict(type='BNNeckHead', in_channels=64, num_classes=3)))


def test_an_unreachable_url_names_the_config_key(tmp_path, monkeypatch):
    """Offline, the download's URLError becomes an error naming the key to
    change and where the file would be read from."""
    from urllib.error import URLError

    from mmreid.utils import checkpoint as mmreid_checkpoint

    def offline(url, dst):
        raise URLError('[Errno -2] Name or service not known')

    monkeypatch.setattr(mmreid_checkpoint, 'download_checkpoint', offline)
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    url = 'https://download.pytorch.org/models/resnet18-f37072fd.pth'
    model = reid_model_with(url)
    with pytest.raises(OSError) as info:
        model.init_weights()
    message = str(info.value)
    assert 'model.backbone.init_cfg.checkpoint' in message
    assert url in message and 'Name or service not known' in message
    assert str(tmp_path / 'checkpoints' / 'resnet18-f37072fd.pth') in message
    assert 'model.backbone.init_cfg=None' in message


def test_weights_of_another_depth_name_the_key_and_the_depths(tmp_path):
    """ResNet-50 weights in a ResNet-18: the first block's conv1 is 1x1 in
    a bottleneck block and 3x3 in a basic block."""
    path = str(tmp_path / 'r50_small.pth')
    torch.save(small_resnet(50).state_dict(), path)
    model = reid_model_with(path)
    with pytest.raises(RuntimeError) as info:
        model.init_weights()
    message = str(info.value)
    assert f'model.backbone.init_cfg.checkpoint={path!r}' in message
    assert ('layer1.0.conv1.weight: (8, 8, 1, 1) in the checkpoint, '
            '(8, 8, 3, 3) in the model') in message
    assert 'ResNet-50 weights' in message and 'depth=18' in message
    assert 'model.backbone.init_cfg=None' in message
    # Outside a model the key is the module's own init_cfg.
    with pytest.raises(RuntimeError, match=r"^init_cfg.checkpoint="):
        load_pretrained(small_resnet(18), path)


def _tiny_reid(num_classes):
    return MODELS.build(
        dict(
            type='ReIDModel',
            backbone=dict(
                type='ReIDResNet', depth=18, base_channels=8,
                stem_channels=8),
            head=dict(
                type='BNNeckHead', in_channels=64, num_classes=num_classes)))


def test_fine_tuning_a_whole_model_on_other_identities(tmp_path):
    """A whole trained model as the initialisation of a model with another
    number of identities: allow_missing=['head.classifier.'] lets the
    classifier (another shape in the checkpoint) keep its initialisation,
    everything else is the trained model's. Without it the shape is
    refused, and the message names the way."""
    trained = _tiny_reid(4)
    with torch.no_grad():
        for value in trained.state_dict().values():
            if value.is_floating_point():
                value.uniform_(0.5, 1.5)
    path = tmp_path / 'trained.pth'
    torch.save(dict(state_dict=trained.state_dict()), path)
    model = _tiny_reid(6)
    with pytest.raises(RuntimeError) as info:
        load_pretrained(model, str(path))
    assert "allow_missing=['head.classifier.']" in str(info.value)
    init = model.head.classifier.weight.clone()
    report = load_pretrained(
        model, str(path), allow_missing=['head.classifier.'])
    assert report['missing'] == ['head.classifier.weight']
    assert torch.equal(model.head.classifier.weight, init)
    mine = model.state_dict()
    for name, value in trained.state_dict().items():
        if name != 'head.classifier.weight':
            assert torch.equal(mine[name], value), name


def test_the_log_counts_the_tensors_of_another_shape(tmp_path, monkeypatch):
    """Of the tensors allow_missing lets keep their initialisation, the
    line counts those of another shape in the checkpoint apart from those
    it lacks."""
    state = _tiny_reid(4).state_dict()
    del state['head.bnneck.weight']  # lacking; the classifier: reshaped
    path = tmp_path / 'trained.pth'
    torch.save(dict(state_dict=state), path)
    messages = []
    monkeypatch.setattr(weight_init, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    report = load_pretrained(_tiny_reid(6), str(path), allow_missing=['head.'])
    assert sorted(
        report['missing']) == ['head.bnneck.weight', 'head.classifier.weight']
    assert "; 2 tensors keep their initialisation (allow_missing=['head.'])" \
        in messages[-1]
    assert ' (1 of them of another shape in the checkpoint: ' \
        'head.classifier.weight)' in messages[-1]


def test_the_count_is_of_the_tensors_the_checkpoint_filled(
        small_r18_ckpt, monkeypatch):
    """The loaded count (log line and report) is that of the tensors the
    checkpoint filled, the load hooks' copies included: those of a plain
    BN into every MBN modality, of a single stem into every AGW stem.

    ResNet-18: 20 convolutions (weight only) and 20 BNs, plain 5 tensors
    each (weight, bias, running mean/var, num_batches_tracked), MBN 8
    (the shared affine and 3 buffers per modality, 2 modalities).
    """
    messages = []
    monkeypatch.setattr(weight_init, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))

    def load(norm, **backbone):
        model = MODELS.build(
            dict(
                base_channels=8,
                stem_channels=8,
                norm_cfg=dict(type=norm),
                **backbone))
        report = load_pretrained(model, small_r18_ckpt, 'backbone.')
        return len(report['loaded']), messages[-1]

    # A plain network: every tensor, as before.
    count, message = load('BN', type='ReIDResNet', depth=18)
    assert count == 20 + 20 * 5
    assert message == \
        f'ReIDResNet: loaded 120 of 120 tensors from {small_r18_ckpt}'
    # MBN: every tensor too, 180 = 20 + 20 * 8.
    count, message = load('MBN', type='ReIDResNet', depth=18)
    assert count == 20 + 20 * 8
    assert message.startswith('ReIDResNet: loaded 180 of 180 tensors')
    # AGW-MBN: two stems (a conv and a plain BN each) and the trunk's 19
    # convolutions and 19 MBNs: 183. Each of the 2 non-local blocks adds 4
    # convolutions (weight, bias) and an MBN: 16 tensors, 2 of them BN
    # counters, none in the checkpoint.
    count, message = load(
        'MBN', type='AGWResNet', depth=18, non_local_stages=(0, 1, 1, 0))
    assert count == 2 * (1 + 5) + 19 + 19 * 8 == 183
    assert message.startswith('AGWResNet: loaded 183 of 215 tensors')
    assert '; 28 tensors of modules added to the pretrained network keep ' \
        'their initialisation: non_locals.1_1, non_locals.2_1' in message
    assert '; 4 BN counters (num_batches_tracked) keep their ' \
        'initialisation' in message


def test_pretrained_weights_that_are_not_floating_point_are_refused(
        small_r18_ckpt):
    """An integer tensor was copied into the float weights as numbers."""
    checkpoint = torch.load(small_r18_ckpt)
    key = 'backbone.layer1.0.conv1.weight'
    checkpoint['state_dict'][key] = (checkpoint['state_dict'][key] *
                                     100).long()
    torch.save(checkpoint, small_r18_ckpt)
    backbone = small_resnet(18, init_cfg=pretrained(small_r18_ckpt))
    with pytest.raises(
            RuntimeError,
            match='the first layer1.0.conv1.weight: torch.int64 in the '
            'checkpoint, torch.float32 in the model'):
        backbone.init_weights()
