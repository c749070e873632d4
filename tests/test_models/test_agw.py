"""AGW two-stream backbone, non-local block and WRT loss."""
import math

import pytest
import torch
import torch.nn as nn

from mmreid.models import ReIDModel
from mmreid.models.backbones import AGWResNet
from mmreid.models.layers import MBN, AGWNonLocal, set_modality
from mmreid.models.losses import WRTLoss
from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample
from ..fixtures.tiny_models import TINY_AGW_MBN_MODEL


def tiny_agw(**kwargs):
    kwargs.setdefault('non_local_stages', (0, 2, 2, 0))
    torch.manual_seed(0)
    net = AGWResNet(
        depth=18, base_channels=8, stem_channels=8, init_cfg=None, **kwargs)
    with torch.no_grad():
        # Distinct stems, so routing is observable.
        net.stems[1].conv1.weight.mul_(-2.0)
        # Non-identity non-local blocks, so they are exercised.
        for block in net.non_locals.values():
            for param in block.W[1].parameters():
                param.uniform_(0.5, 1.0)
    return net


def test_non_local_positions_follow_the_reference():
    net = AGWResNet(depth=50, init_cfg=None)
    # non_layers=[0, 2, 3, 0]: after blocks 2, 3 of layer2, 3-5 of layer3.
    assert sorted(net.non_locals) == ['1_2', '1_3', '2_3', '2_4', '2_5']
    assert net.non_locals['1_2'].inter_channels == 1
    assert net.layer4[0].conv2.stride == (1, 1)  # last stride 1
    assert not hasattr(net, 'conv1')


def test_non_local_stages_beyond_the_blocks_name_the_key_and_the_limit():
    # The default (0, 2, 3, 0) is for ResNet-50; a ResNet-18 stage has 2
    # blocks, so (2, 2, 2, 2) is the largest value and (0, 2, 2, 0) the
    # default cut down to it.
    with pytest.raises(ValueError) as info:
        AGWResNet(depth=18, init_cfg=None)
    message = str(info.value)
    assert 'model.backbone.non_local_stages=(0, 2, 3, 0)' in message
    assert 'depth=18' in message and 'at most (2, 2, 2, 2)' in message
    assert 'e.g. (0, 2, 2, 0)' in message
    with pytest.raises(ValueError) as info:
        AGWResNet(depth=18, non_local_stages=(0, 1, 1), init_cfg=None)
    assert 'model.backbone.non_local_stages=(0, 1, 1)' in str(info.value)
    assert 'at most (2, 2, 2, 2)' in str(info.value)


def test_mixed_order_routes_each_sample_to_its_stem():
    net = tiny_agw().eval()
    x = torch.randn(6, 3, 32, 16)
    labels = [1, 0, 0, 1, 1, 0]
    set_modality(net, labels)
    out = net(x)[0]
    for i, m in enumerate(labels):
        set_modality(net, m)
        alone = net(x[i:i + 1])[0]
        torch.testing.assert_close(out[i:i + 1], alone, atol=1e-5, rtol=1e-5)
        set_modality(net, 1 - m)
        assert not torch.allclose(out[i:i + 1], net(x[i:i + 1])[0])
    # The stem output is exactly the stem of the sample's modality.
    set_modality(net, labels)
    stem = net.forward_stem(x)
    for i, m in enumerate(labels):
        torch.testing.assert_close(stem[i:i + 1], net.stems[m](x[i:i + 1]))


def test_training_order_invariance_with_mbn_trunk():
    net = tiny_agw(norm_cfg=dict(type='MBN')).train()
    x = torch.randn(8, 3, 32, 16)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    perm = torch.randperm(8)
    set_modality(net, labels)
    out = net(x)[0]
    set_modality(net, labels[perm])
    torch.testing.assert_close(net(x[perm])[0], out[perm])
    assert isinstance(net.layer2[0].bn1, MBN)
    assert isinstance(net.non_locals['1_0'].W[1], MBN)
    assert type(net.stems[0].bn1) is nn.BatchNorm2d


@pytest.mark.parametrize('norm', ['BN', 'MBN'])
def test_a_lone_sample_of_a_modality_is_refused_by_its_training_stem(norm):
    """A stem BN in training normalises its modality's sub-batch alone: on
    one image, over H x W only. Refused (as MBN refuses it in the trunk),
    whatever the trunk's norm; running statistics take any batch."""
    x = torch.randn(8, 3, 32, 16)
    lone_ir = [0] * 7 + [1]
    net = tiny_agw(norm_cfg=dict(type=norm)).train()
    set_modality(net, lone_ir)
    with pytest.raises(ValueError) as info:
        net(x)
    message = str(info.value)
    assert 'modality 1 has 1 sample in this training batch' in message
    assert 'stems.1.bn1' in message and '>= 2 samples' in message
    # Two samples of each present modality train.
    set_modality(net, [0] * 6 + [1] * 2)
    net(x)
    set_modality(net, 0)
    net(x)
    # Running statistics: a test batch, or norm_eval in training.
    net.eval()
    set_modality(net, lone_ir)
    net(x)
    set_modality(net, 1)
    net(x[:1])
    if norm == 'BN':
        net = tiny_agw(norm_eval=True).train()
        set_modality(net, lone_ir)
        net(x)


def test_missing_labels_raise():
    net = tiny_agw()
    with pytest.raises(RuntimeError, match='no modality labels'):
        net(torch.randn(2, 3, 32, 16))


def naive_non_local(block, x):
    n, c, h, w = x.shape
    out = torch.empty_like(x)
    for b in range(n):
        g = block.g(x[b:b + 1]).reshape(-1, h * w)
        theta = block.theta(x[b:b + 1]).reshape(-1, h * w)
        phi = block.phi(x[b:b + 1]).reshape(-1, h * w)
        y = torch.zeros(block.inter_channels, h * w)
        for i in range(h * w):
            for j in range(h * w):
                f = (theta[:, i] * phi[:, j]).sum() / (h * w)
                y[:, i] += f * g[:, j]
        out[b] = x[b] + block.W(y.reshape(1, -1, h, w))[0]
    return out


@pytest.mark.parametrize('reduc_ratio', [None, 2])
def test_non_local_matches_naive_reference(reduc_ratio):
    torch.manual_seed(0)
    block = AGWNonLocal(4, reduc_ratio=reduc_ratio)
    x = torch.randn(2, 4, 3, 2)
    block.eval()
    # Identity at initialisation (zero-initialised W norm).
    torch.testing.assert_close(block(x), x)
    with torch.no_grad():
        block.W[1].weight.uniform_(0.5, 1.5)
        block.W[1].bias.uniform_(-1, 1)
    assert block.inter_channels == (1 if reduc_ratio is None else 2)
    torch.testing.assert_close(
        block(x), naive_non_local(block, x), atol=1e-5, rtol=1e-5)


def _resnet18_state_dict():
    torchvision = pytest.importorskip('torchvision')
    net = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
    return net.state_dict()


def test_a_bare_backbone_names_a_single_stream_stem_too():
    """The mappings of the root module (a backbone loaded on its own, no
    name) are checked as those of a model's backbone."""
    from mmreid.utils.model_state import load_model_state
    agw, one_stream = _agw_and_one_stream_models()
    checkpoint = dict(state_dict=one_stream.backbone.state_dict())
    with pytest.raises(RuntimeError, match='single-stream stem'):
        load_model_state(agw.backbone, checkpoint, 'r18.pth')


def test_imagenet_resnet_loads_into_both_stems(tmp_path):
    state = _resnet18_state_dict()
    path = str(tmp_path / 'r18.pth')
    torch.save(state, path)
    net = AGWResNet(
        depth=18,
        non_local_stages=(0, 1, 1, 0),
        norm_cfg=dict(type='MBN'),
        init_cfg=dict(type='Pretrained', checkpoint=path))
    net.init_weights()
    for k in (0, 1):
        torch.testing.assert_close(net.stems[k].conv1.weight,
                                   state['conv1.weight'])
        torch.testing.assert_close(net.stems[k].bn1.running_mean,
                                   state['bn1.running_mean'])
        torch.testing.assert_close(net.layer2[1].bn2.bns[k].running_mean,
                                   state['layer2.1.bn2.running_mean'])
    # Only the non-local blocks are missing, and they start as identity.
    fresh = AGWResNet(
        depth=18,
        non_local_stages=(0, 1, 1, 0),
        norm_cfg=dict(type='MBN'),
        init_cfg=None)
    result = fresh.load_state_dict(state, strict=False)
    assert result.missing_keys
    assert all(k.startswith('non_locals.') for k in result.missing_keys)
    assert set(result.unexpected_keys) == {'fc.weight', 'fc.bias'}
    for block in net.non_locals.values():
        assert torch.count_nonzero(block.W[1].weight) == 0


def naive_wrt(feats, labels, reference_collapse=False):
    """WRT from its definition (spec mbn_vireid.md §3.2), in float64:
    softmax weights over positives (exp(d)) and negatives (exp(-d)) that sum
    to 1. ``reference_collapse`` applies the documented departure of the
    reference code: the negative weights sum to S / (S + 1e-6) with
    S = sum exp(-d), not to 1."""
    n = feats.size(0)
    losses = []
    for i in range(n):
        d = [float(torch.dist(feats[i], feats[j])) for j in range(n)]
        pos = [j for j in range(n) if labels[j] == labels[i]]
        neg = [j for j in range(n) if labels[j] != labels[i]]
        # Each softmax shifted by its own extreme (the same weights), so
        # that distances in the hundreds do not overflow math.exp.
        far, near = max(d[j] for j in pos), min(d[j] for j in neg)
        wp = [math.exp(d[j] - far) for j in pos]
        wn = [math.exp(near - d[j]) for j in neg]
        dp = sum(w * d[j] for w, j in zip(wp, pos)) / sum(wp)
        dn = sum(w * d[j] for w, j in zip(wn, neg)) / sum(wn)
        if reference_collapse:
            total = math.exp(-near) * sum(wn)  # S = sum exp(-d)
            dn *= total / (total + 1e-6)
        x = dp - dn
        losses.append(max(x, 0.0) + math.log1p(math.exp(-abs(x))))
    return sum(losses) / n


@pytest.mark.parametrize('exact', [False, True])
def test_wrt_loss_matches_naive_loop(exact):
    torch.manual_seed(0)
    feats = torch.randn(8, 5, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2, 3])
    loss = WRTLoss(exact_softmax=exact)(feats, labels)
    assert loss.item() == pytest.approx(
        naive_wrt(feats.detach(), labels), rel=1e-4)
    loss.backward()
    assert torch.isfinite(feats.grad).all()
    scaled = WRTLoss(loss_weight=0.5, exact_softmax=exact)(feats, labels)
    assert scaled.item() == pytest.approx(0.5 * loss.item(), rel=1e-6)
    with pytest.raises(
            ValueError, match=r'one label per sample, shape \(8,\)'):
        WRTLoss(exact_softmax=exact)(feats, labels[:3])


def test_wrt_normalize_feature_uses_unit_embeddings():
    """``normalize_feature=True``: each embedding (row) is L2-normalised
    before the distances, then WRT as defined."""
    torch.manual_seed(0)
    feats = torch.randn(8, 5) * torch.tensor([1., 3., .2, 5., 1.])
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    loss = WRTLoss(normalize_feature=True)(feats, labels)
    unit = feats / feats.norm(dim=1, keepdim=True)
    assert loss.item() == pytest.approx(naive_wrt(unit, labels), rel=1e-4)


def far_apart_batch():
    """Three identities whose nearest negatives lie at 19-20 (integer
    coordinates: the expanded-form distances are exact in fp32)."""
    feats = torch.tensor([[0., 0.], [1., 0.], [20., 0.], [22., 0.], [0., 20.],
                          [0., 23.]])
    return feats, torch.tensor([0, 0, 1, 1, 2, 2])


def test_wrt_exact_softmax_follows_the_definition_far_apart():
    feats, labels = far_apart_batch()
    feats.requires_grad_(True)
    loss = WRTLoss(exact_softmax=True)(feats, labels)
    expected = naive_wrt(feats.detach().double(), labels)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert expected < 1e-3  # well separated: the negative term dominates
    loss.backward()
    assert torch.isfinite(feats.grad).all()


@pytest.mark.parametrize(
    'scale,shift',
    [
        # The far_apart batch 5 and 50 times larger: nearest negatives at
        # 95-100 and 950-1000, the loss about 0.
        (5., 0.),
        (50., 0.),
        # Identity 0's second image moved 100 away, as far as the first
        # image's nearest negatives: the loss is not about 0.
        (5., 100.),
    ])
def test_wrt_exact_softmax_stays_finite_at_any_distance(scale, shift):
    """``exact_softmax`` took exp(v - m) of the masked-out entries too:
    past a nearest negative of about 88.7 that is inf in fp32 and
    inf * 0 made the loss and its gradient NaN."""
    feats, labels = far_apart_batch()
    feats = feats * scale
    feats[1, 1] += shift
    feats.requires_grad_(True)
    loss = WRTLoss(exact_softmax=True)(feats, labels)
    expected = naive_wrt(feats.detach().double(), labels)
    assert loss.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    loss.backward()
    assert torch.isfinite(feats.grad).all()


def test_wrt_reference_softmax_collapses_far_apart():
    """The default keeps the reference's computation: at ~20 the negative
    weights sum to ~0.002, so the loss is about mean softplus(d_p)."""
    feats, labels = far_apart_batch()
    loss = WRTLoss()(feats, labels).item()
    assert loss == pytest.approx(
        naive_wrt(feats.double(), labels, reference_collapse=True), rel=1e-5)
    # Far from the definition, close to the loss without negatives.
    assert loss - naive_wrt(feats.double(), labels) > 0.5
    # Each anchor has one positive at r (1, 2 or 3): d_p = r e^r / (1 + e^r).
    only_positives = sum(
        2 * math.log1p(math.exp(r * math.exp(r) / (1 + math.exp(r))))
        for r in (1, 2, 3)) / 6
    # (what is left of d_n: 19-20 times a weight sum of 0.002-0.006)
    assert loss == pytest.approx(only_positives, abs=0.15)


def test_agw_reid_model_end_to_end():
    model = MODELS.build(
        dict(
            TINY_AGW_MBN_MODEL,
            head=dict(
                TINY_AGW_MBN_MODEL['head'], loss_tri=dict(type='WRTLoss'))))
    x = torch.randn(8, 3, 32, 16)
    mods = [1, 0, 1, 0, 1, 0, 1, 0]
    data_samples = []
    for pid, m in zip([0, 0, 1, 1, 2, 2, 3, 3], mods):
        s = ReIDDataSample().set_gt_label(pid)
        s.set_metainfo(dict(modality=m))
        data_samples.append(s)
    model.train()
    losses = model(x, data_samples, mode='loss')
    assert set(losses) >= {'loss_cls', 'loss_tri'}
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert model.backbone.stems[0].conv1.weight.grad is not None
    assert model.backbone.stems[1].conv1.weight.grad is not None
    assert model.backbone._modality.tolist() == mods


def test_builds_outside_the_mmreid_scope():
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmengine'):
        net = AGWResNet(
            depth=18,
            base_channels=8,
            stem_channels=8,
            non_local_stages=(0, 1, 1, 0),
            norm_cfg=dict(type='MBN'),
            init_cfg=None)
    assert isinstance(net.layer1[0].bn1, MBN)
    assert isinstance(net.non_locals['1_1'].W[1], MBN)


def test_random_init_gives_identical_stems():
    net = AGWResNet(
        depth=18,
        base_channels=8,
        stem_channels=8,
        non_local_stages=(0, 1, 1, 0),
        init_cfg=None)
    assert not torch.equal(net.stems[0].conv1.weight,
                           net.stems[1].conv1.weight)
    net.init_weights()
    torch.testing.assert_close(net.stems[0].conv1.weight,
                               net.stems[1].conv1.weight)
    # Still two independent modules (not shared parameters).
    assert net.stems[0].conv1.weight is not net.stems[1].conv1.weight


def test_stem_pool_applies_to_every_stem():
    net = tiny_agw(stem_pool=dict(padding=0, ceil_mode=True)).eval()
    default = tiny_agw().eval()
    # No tensors added or renamed: checkpoints load either way.
    net.load_state_dict(default.state_dict())
    x = torch.randn(2, 3, 64, 32)
    for k, stem in enumerate(net.stems):
        assert isinstance(stem.maxpool, nn.MaxPool2d)
        assert (stem.maxpool.kernel_size, stem.maxpool.stride,
                stem.maxpool.padding, stem.maxpool.ceil_mode) == (3, 2, 0,
                                                                  True)
        with torch.no_grad():
            pre_pool = stem.relu(stem.bn1(stem.conv1(x)))
            expected = nn.functional.max_pool2d(
                pre_pool, 3, 2, padding=0, ceil_mode=True)
            set_modality(net, k)
            assert torch.equal(net.forward_stem(x), expected)
            set_modality(default, k)
            assert not torch.equal(default.forward_stem(x), expected)
    # The default is mmpretrain's (and the AGW reference's) stem pooling.
    for stem in default.stems:
        assert (stem.maxpool.kernel_size, stem.maxpool.stride,
                stem.maxpool.padding, stem.maxpool.ceil_mode) == (3, 2, 1,
                                                                  False)


@pytest.mark.parametrize('init_type', ['Pretrained', 'mmreid.Pretrained'])
@pytest.mark.parametrize('as_list', [False, True])
def test_pretrained_agw_checkpoint_keeps_its_own_stems(tmp_path, init_type,
                                                       as_list):
    """A two-stream checkpoint (distinct stems) loaded with init_cfg
    Pretrained in any form: stem 0 is not copied over the loaded stem 1."""
    source = tiny_agw()
    path = str(tmp_path / 'agw.pth')
    torch.save(source.state_dict(), path)
    init_cfg = dict(type=init_type, checkpoint=path)
    net = AGWResNet(
        depth=18,
        base_channels=8,
        stem_channels=8,
        non_local_stages=(0, 2, 2, 0),
        init_cfg=[init_cfg] if as_list else init_cfg)
    net.init_weights()
    for key, value in net.state_dict().items():
        assert torch.equal(value, source.state_dict()[key]), key
    assert not torch.equal(net.stems[0].conv1.weight,
                           net.stems[1].conv1.weight)


def test_non_local_blocks_run_after_their_residual_blocks():
    """AGW reference (``embed_net.forward``): in stage i the non-local block
    runs right after each of the last ``non_layers[i]`` residual blocks."""
    net = tiny_agw(non_local_stages=(0, 1, 2, 0)).eval()
    x = torch.randn(2, 3, 32, 16)
    set_modality(net, [0, 1])
    nl = net.non_locals
    with torch.no_grad():
        # Written out by hand for ResNet-18 (2 blocks per stage).
        y = net.forward_stem(x)
        y = net.layer1[1](net.layer1[0](y))
        y = nl['1_1'](net.layer2[1](net.layer2[0](y)))
        y = nl['2_1'](net.layer3[1](nl['2_0'](net.layer3[0](y))))
        expected = net.layer4[1](net.layer4[0](y))
        out = net(x)[0]
        torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
        # The non-local blocks are not the identity here, so they count.
        y = net.forward_stem(x)
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            y = layer(y)
        assert (out - y).abs().max() > 1e-2


def test_non_local_blocks_start_as_identity_after_init_weights():
    """The W norm is zero-initialised (reference ``Non_local``:
    ``nn.init.constant_(self.W[1].weight, 0.0)`` and bias), also when the
    backbone's default init (constant 1 for norm layers) runs first."""
    torch.manual_seed(0)
    net = AGWResNet(
        depth=18,
        base_channels=8,
        stem_channels=8,
        non_local_stages=(0, 1, 1, 0))
    net.init_weights()
    assert net.layer1[0].bn1.weight.eq(1).all()  # the backbone's init ran
    x = torch.randn(2, 16, 4, 2)
    for key, block in net.non_locals.items():
        assert block.W[1].weight.eq(0).all(), key
        assert block.W[1].bias.eq(0).all(), key
        c = block.in_channels
        torch.testing.assert_close(
            block.eval()(x[:, :1].expand(-1, c, -1, -1)),
            x[:, :1].expand(-1, c, -1, -1))


@pytest.mark.parametrize('frozen_stages', [0, 1])
def test_frozen_stages_freeze_every_stem(frozen_stages):
    """``frozen_stages >= 0`` freezes the stem (mmpretrain's ResNet), here
    every modality's stem: no gradient, BN in eval mode after train()."""
    net = AGWResNet(
        depth=18,
        base_channels=8,
        stem_channels=8,
        non_local_stages=(0, 1, 1, 0),
        frozen_stages=frozen_stages,
        init_cfg=None).train()
    for stem in net.stems:
        assert not any(p.requires_grad for p in stem.parameters())
        assert not stem.bn1.training
    assert all(p.requires_grad for p in net.layer1.parameters()) == (
        frozen_stages == 0)
    assert all(p.requires_grad for p in net.layer2.parameters())
    assert net.layer2[0].bn1.training


def test_non_local_cfg_reaches_every_non_local_block():
    """``non_local_cfg=dict(reduc_ratio=2)`` gives C // 2 intermediate
    channels (the default is the reference's single channel)."""
    net = AGWResNet(
        depth=18,
        base_channels=8,
        stem_channels=8,
        non_local_stages=(0, 1, 1, 0),
        non_local_cfg=dict(reduc_ratio=2),
        init_cfg=None)
    assert net.non_locals['1_1'].inter_channels == 16 // 2
    assert net.non_locals['2_1'].inter_channels == 32 // 2
    assert net.non_locals['2_1'].g.out_channels == 16


def test_each_stem_is_the_resnet_stem():
    """Each stem is ResNet's: 7x7 conv (stride 2, padding 3, no bias), BN,
    ReLU, 3x3 max pooling (stride 2, padding 1), written out here with
    torch.nn.functional."""
    net = tiny_agw().eval()
    x = torch.randn(2, 3, 32, 16)
    for k, stem in enumerate(net.stems):
        bn = stem.bn1
        with torch.no_grad():
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.bias.uniform_(-1, 1)
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias - bn.running_mean * scale
        y = nn.functional.conv2d(x, stem.conv1.weight, stride=2, padding=3)
        y = y * scale[:, None, None] + shift[:, None, None]
        y = nn.functional.max_pool2d(y.clamp(min=0), 3, 2, padding=1)
        set_modality(net, k)
        with torch.no_grad():
            out = net.forward_stem(x)
        assert out.shape == (2, 8, 8, 4)
        torch.testing.assert_close(out, y, atol=1e-5, rtol=1e-5)


def _agw_and_one_stream_models():
    """A two-stream AGW model without non-local blocks, and the one-stream
    model of the same trunk and head (a plain ResNet baseline), its stem
    set away from the AGW model's initial one."""
    head = dict(type='BNNeckHead', in_channels=64, num_classes=4)
    agw = ReIDModel(
        backbone=dict(
            type='AGWResNet',
            depth=18,
            base_channels=8,
            stem_channels=8,
            non_local_stages=(0, 0, 0, 0),
            init_cfg=None),
        head=head)
    one_stream = ReIDModel(
        backbone=dict(
            type='ReIDResNet', depth=18, base_channels=8, stem_channels=8),
        head=head)
    with torch.no_grad():
        one_stream.backbone.conv1.weight.normal_()
        one_stream.backbone.bn1.running_mean.uniform_(-1, 1)
    return agw, one_stream


def test_trained_one_stream_checkpoint_is_refused_by_a_two_stream_model(
        tmp_path):
    """A one-stream model's checkpoint loaded as the two-stream model under
    test must not have its stem copied into both stems: the result would be
    the one-stream model's numbers under the AGW name. The copy is an
    ImageNet initialisation only."""
    from mmreid.models import load_pretrained
    from mmreid.utils.model_state import load_model_state
    agw, one_stream = _agw_and_one_stream_models()
    checkpoint = dict(state_dict=one_stream.state_dict(), meta=dict())
    # The two-stream model's own checkpoint loads.
    load_model_state(agw, dict(state_dict=agw.state_dict()), 'agw.pth')
    with pytest.raises(RuntimeError) as info:
        load_model_state(agw, checkpoint, 'r18.pth')
    message = str(info.value)
    assert 'single-stream stem' in message and 'one-stream' in message
    assert 'backbone' in message and 'prefix=' in message
    # Non-strict: a partial load; the stems keep their own weights.
    agw, _ = _agw_and_one_stream_models()
    before = agw.backbone.stems[1].conv1.weight.clone()
    report = load_model_state(agw, checkpoint, 'r18.pth', strict=False)
    assert 'backbone.stems.0.conv1.weight' in report['missing']
    assert 'backbone.conv1.weight' in report['unexpected']
    assert torch.equal(agw.backbone.stems[1].conv1.weight, before)
    # As an initialisation (the route the error gives) it fills every stem.
    path = tmp_path / 'r18.pth'
    torch.save(checkpoint, path)
    agw, _ = _agw_and_one_stream_models()
    load_pretrained(agw.backbone, str(path), prefix='backbone.')
    for stem in agw.backbone.stems:
        torch.testing.assert_close(stem.conv1.weight,
                                   one_stream.backbone.conv1.weight)
        torch.testing.assert_close(stem.bn1.running_mean,
                                   one_stream.backbone.bn1.running_mean)
