"""MBN layer: spec mbn_vireid.md section 10, items 1-10."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import convert_sync_batchnorm, revert_sync_batchnorm
from mmengine.registry import DefaultScope

from mmreid.models import ReIDModel
from mmreid.models.backbones import ReIDResNet
from mmreid.models.layers import (MBN, convert_mbn_to_bn,
                                  modality_aware_modules, modality_context,
                                  set_modality)
from mmreid.structures import ReIDDataSample

torch.manual_seed(0)


def make_input(n=8, c=4, h=3, w=2, shift=True):
    x = torch.randn(n, c, h, w)
    if shift:
        # Modalities with different moments, as VIS and IR features.
        x[n // 2:] = x[n // 2:] * 3 + 2
    return x


def trained_mbn(**kwargs):
    """An MBN whose two modalities have different running statistics."""
    mbn = MBN(4, **kwargs)
    with torch.no_grad():
        if mbn.weight is not None:
            mbn.weight.uniform_(0.5, 1.5)
            mbn.bias.uniform_(-1, 1)
    mbn.train()
    for _ in range(3):
        mbn.set_modality([0] * 4 + [1] * 4)
        mbn(make_input())
    return mbn


def test_equals_per_half_batch_norm_with_shared_affine():
    mbn = MBN(4)
    with torch.no_grad():
        mbn.weight.uniform_(0.5, 1.5)
        mbn.bias.uniform_(-1, 1)
    x = make_input()
    mbn.set_modality([0] * 4 + [1] * 4)
    y = mbn(x)
    shape = (1, -1, 1, 1)
    for half, out in ((x[:4], y[:4]), (x[4:], y[4:])):
        mean = half.mean(dim=(0, 2, 3)).view(shape)
        var = half.var(dim=(0, 2, 3), unbiased=False).view(shape)
        ref = (half - mean) / torch.sqrt(var + 1e-5)
        ref = ref * mbn.weight.view(shape) + mbn.bias.view(shape)
        torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)
    # Not a joint BN: the modality moments are equalised.
    joint = F.batch_norm(x, None, None, training=True)
    assert not torch.allclose(
        y, joint * mbn.weight.view(shape) + mbn.bias.view(shape), atol=1e-3)


def test_eps_is_added_to_each_modality_variance():
    """MBN(eps=...) normalises with (x - mean) / sqrt(var + eps), in
    training (each modality's batch moments) and in eval (each modality's
    running moments, here after one update with momentum 0.1)."""
    x = make_input() * 0.05  # variances near eps: eps changes the output
    labels = torch.tensor([0] * 4 + [1] * 4)
    mbn = MBN(4, eps=1e-2)
    mbn.train()
    mbn.set_modality(labels)
    y_train = mbn(x)
    mbn.eval()
    y_eval = mbn(x)
    for k in (0, 1):
        part = x[labels == k].double()
        mean = part.mean(dim=(0, 2, 3), keepdim=True)
        var = ((part - mean)**2).mean(dim=(0, 2, 3), keepdim=True)
        ref = (part - mean) / torch.sqrt(var + 1e-2)
        torch.testing.assert_close(
            y_train[labels == k].double(), ref, rtol=1e-5, atol=1e-6)
        n = part[:, 0].numel()
        running_mean = 0.1 * mean
        running_var = 0.9 + 0.1 * var * n / (n - 1)
        ref = (part - running_mean) / torch.sqrt(running_var + 1e-2)
        torch.testing.assert_close(
            y_eval[labels == k].double(), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('train', [True, False])
def test_order_invariance(train):
    x = make_input()
    labels = torch.tensor([0] * 4 + [1] * 4)
    perm = torch.randperm(8)
    a, b = trained_mbn(), None
    b = copy.deepcopy(a)
    a.train(train)
    b.train(train)
    a.set_modality(labels)
    b.set_modality(labels[perm])
    torch.testing.assert_close(b(x[perm]), a(x)[perm])
    for bn_a, bn_b in zip(a.bns, b.bns):
        torch.testing.assert_close(bn_a.running_mean, bn_b.running_mean)
        torch.testing.assert_close(bn_a.running_var, bn_b.running_var)


def test_running_stats_per_modality_and_unbiased():
    mbn = MBN(4, momentum=0.1)
    x = make_input()
    mbn.set_modality([1] * 8)  # modality 0 absent
    mbn(x)
    assert int(mbn.bns[0].num_batches_tracked) == 0
    assert torch.equal(mbn.bns[0].running_mean, torch.zeros(4))
    assert torch.equal(mbn.bns[0].running_var, torch.ones(4))
    assert int(mbn.bns[1].num_batches_tracked) == 1
    n = 8 * 3 * 2  # N_k * H * W
    var = x.var(dim=(0, 2, 3), unbiased=False) * n / (n - 1)
    torch.testing.assert_close(mbn.bns[1].running_var, 0.9 + 0.1 * var)
    torch.testing.assert_close(mbn.bns[1].running_mean,
                               0.1 * x.mean(dim=(0, 2, 3)))


@pytest.mark.parametrize('eval_stats', ['modality', 'batch', 'shared'])
def test_training_normalises_each_modality_whatever_eval_stats(eval_stats):
    """``eval_stats`` names the test-time rule only: in training every
    modality is normalised with its batch statistics, which update its
    running statistics."""
    mbn = MBN(4, eval_stats=eval_stats).train()
    x = make_input()
    labels = [0, 1, 0, 1, 1, 0, 0, 1]
    mbn.set_modality(labels)
    y = mbn(x)
    for k in (0, 1):
        rows = torch.tensor([i for i, m in enumerate(labels) if m == k])
        torch.testing.assert_close(
            y[rows], F.batch_norm(x[rows], None, None, training=True))
        torch.testing.assert_close(mbn.bns[k].running_mean,
                                   0.1 * x[rows].mean(dim=(0, 2, 3)))
        assert int(mbn.bns[k].num_batches_tracked) == 1


def test_synced_children_of_an_absent_modality_still_run(monkeypatch):
    """Under SyncBN every rank's BN of a modality joins one collective
    call: a rank whose batch lacks the modality must call it too (with
    no sample), else the ranks' calls pair up wrongly or hang. Without
    sync an absent modality is skipped."""
    import mmreid.models.layers.mbn as mbn_module

    class Spy(nn.SyncBatchNorm):
        """A SyncBN that records the batch sizes it is called with."""

        def forward(self, x):
            self.calls.append(x.size(0))
            return x

    mbn = MBN(4).train()
    mbn.bns = nn.ModuleList([Spy(4), Spy(4)])
    for spy in mbn.bns:
        spy.calls = []
    mbn.set_modality([0] * 4)  # modality 1 is absent on this rank
    mbn(make_input(n=4))
    assert [spy.calls for spy in mbn.bns] == [[4], []]  # one process
    monkeypatch.setattr(mbn_module.torch_dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(mbn_module.torch_dist, 'get_world_size', lambda: 2)
    mbn(make_input(n=4))
    assert [spy.calls for spy in mbn.bns] == [[4, 4], [0]]


def test_cumulative_momentum_uses_per_modality_count():
    mbn = MBN(4, momentum=None)
    xs = [make_input() for _ in range(3)]
    mbn.set_modality([0] * 4 + [1] * 4)
    mbn(xs[0])
    mbn.set_modality([0] * 8)
    mbn(xs[1])
    mbn.set_modality([0] * 4 + [1] * 4)
    mbn(xs[2])
    assert int(mbn.bns[0].num_batches_tracked) == 3
    assert int(mbn.bns[1].num_batches_tracked) == 2
    expected = (xs[0][4:].mean((0, 2, 3)) + xs[2][4:].mean((0, 2, 3))) / 2
    torch.testing.assert_close(mbn.bns[1].running_mean, expected)


def test_eval_routes_each_sample_to_its_modality_stats():
    mbn = trained_mbn().eval()
    x = make_input()
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    mbn.set_modality(labels)
    mixed = mbn(x)
    for i in range(8):
        mbn.set_modality([int(labels[i])])
        torch.testing.assert_close(mbn(x[i:i + 1]), mixed[i:i + 1])
        bn = mbn.bns[int(labels[i])]
        ref = F.batch_norm(x[i:i + 1], bn.running_mean, bn.running_var,
                           mbn.weight, mbn.bias, False, 0.0, 1e-5)
        torch.testing.assert_close(mixed[i:i + 1], ref)


def test_eval_stats_batch_and_shared():
    base = trained_mbn()
    x = make_input()
    labels = [0] * 4 + [1] * 4
    batch = copy.deepcopy(base)
    batch.eval_stats = 'batch'
    batch.eval()
    train_copy = copy.deepcopy(base).train()
    for m in (batch, train_copy):
        m.set_modality(labels)
    torch.testing.assert_close(batch(x), train_copy(x))
    # Batch statistics in eval never move the running stats.
    torch.testing.assert_close(batch.bns[0].running_mean,
                               base.bns[0].running_mean)
    shared = copy.deepcopy(base)
    shared.eval_stats = 'shared'
    shared.eval()
    shared.set_modality(labels)
    mean = (base.bns[0].running_mean + base.bns[1].running_mean) / 2
    var = (base.bns[0].running_var + base.bns[1].running_var) / 2
    ref = F.batch_norm(x, mean, var, base.weight, base.bias, False, 0.0, 1e-5)
    torch.testing.assert_close(shared(x), ref)
    with pytest.raises(ValueError, match='eval_stats'):
        MBN(4, eval_stats='joint')


def test_eval_stats_batch_refuses_a_lone_sample():
    # One sample of a modality in a test batch (a short last batch, the
    # query/gallery boundary) was normalised over H x W only: its channel
    # means and scales were wiped out without a word.
    mbn = trained_mbn()
    mbn.eval_stats = 'batch'
    mbn.eval()
    x = make_input()
    mbn.set_modality([0] * 7 + [1])
    with pytest.raises(
            ValueError,
            match=r"modality 1 has 1 sample\(s\) "
            'in this test batch.*min_per_modality=2'):
        mbn(x)
    mbn.set_modality([0] * 8)  # an absent modality is fine
    mbn(x)


def norm_eval_copy(mbn):
    """A copy in training mode with its inner BNs in eval, as ResNet's
    ``norm_eval`` leaves it (it switches only ``_BatchNorm`` modules)."""
    mbn = copy.deepcopy(mbn).train()
    for bn in mbn.bns:
        bn.eval()
    return mbn


@pytest.mark.parametrize('eval_stats', ['modality', 'shared'])
def test_norm_eval_uses_running_stats_and_accepts_a_lone_sample(eval_stats):
    # norm_eval: the inner BNs use running statistics, so one sample of a
    # modality is fine, and the output is the test-time one (eval_stats).
    base = trained_mbn(eval_stats=eval_stats)
    x = make_input()
    labels = [0] * 7 + [1]
    frozen = norm_eval_copy(base)
    reference = copy.deepcopy(base).eval()
    for m in (frozen, reference):
        m.set_modality(labels)
    torch.testing.assert_close(frozen(x), reference(x))
    torch.testing.assert_close(frozen.bns[1].running_mean,
                               base.bns[1].running_mean)


def test_norm_eval_with_eval_stats_batch_uses_and_checks_batch_stats():
    base = trained_mbn(eval_stats='batch')
    x = make_input()
    frozen, reference = norm_eval_copy(base), copy.deepcopy(base).eval()
    for m in (frozen, reference):
        m.set_modality([0] * 4 + [1] * 4)
    torch.testing.assert_close(frozen(x), reference(x))
    frozen.set_modality([0] * 7 + [1])
    with pytest.raises(
            ValueError,
            match=r"eval_stats='batch'\): modality 1 has 1 sample\(s\) in "
            'this training batch'):
        frozen(x)


def test_resnet_norm_eval_accepts_a_lone_sample_per_modality():
    # ResNet(norm_eval=True) leaves the MBN containers in training mode
    # with their inner BNs in eval: the training-batch check refused a
    # 1-sample modality although no batch statistics are used.
    torch.manual_seed(0)
    net = ReIDResNet(
        depth=18, norm_cfg=dict(type=MBN), norm_eval=True, out_indices=(3, ))
    x = torch.randn(4, 3, 32, 16)
    set_modality(net, [0, 0, 0, 1])
    out = net.train()(x)
    assert net.bn1.training and not net.bn1.bns[0].training
    torch.testing.assert_close(out, net.eval()(x))


def test_min_per_modality_and_label_errors():
    mbn = MBN(4)
    x = make_input()
    mbn.set_modality([0] * 7 + [1])
    with pytest.raises(ValueError, match='modality 1 has 1 sample'):
        mbn(x)
    mbn.eval()
    mbn(x)  # eval routes single samples fine
    mbn.train()
    fresh = MBN(4)
    with pytest.raises(RuntimeError, match='no modality labels'):
        fresh(x)
    fresh.set_modality([0, 1, 0])
    with pytest.raises(ValueError, match='3 modality labels for a batch of 8'):
        fresh(x)
    fresh.set_modality([0] * 4 + [2] * 4)
    with pytest.raises(ValueError, match=r'in \[0, 2\)'):
        fresh(x)
    with pytest.raises(ValueError, match='4-D input'):
        fresh(torch.randn(8, 4))


def test_one_modality_equals_plain_bn():
    mbn = MBN(4)
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        mbn.weight.uniform_(0.5, 1.5)
        bn.weight.copy_(mbn.weight)
    x = make_input()
    mbn.set_modality(1)
    torch.testing.assert_close(mbn(x), bn(x))
    torch.testing.assert_close(mbn.bns[1].running_var, bn.running_var)
    mbn.eval()
    bn.eval()
    torch.testing.assert_close(mbn(x), bn(x))


def test_dims_1():
    mbn = MBN(6, dims=1)
    x = torch.randn(8, 6)
    mbn.set_modality([0, 1] * 4)
    y = mbn(x)
    for k in (0, 1):
        part = x[k::2]
        ref = (part -
               part.mean(0)) / torch.sqrt(part.var(0, unbiased=False) + 1e-5)
        torch.testing.assert_close(y[k::2], ref, atol=1e-6, rtol=1e-6)


def test_share_affine_false_has_independent_affines():
    mbn = MBN(4, share_affine=False)
    assert mbn.weight is None and mbn.bias is None
    keys = set(mbn.state_dict())
    assert {'bns.0.weight', 'bns.1.weight', 'bns.0.bias'} <= keys
    with torch.no_grad():
        mbn.bns[0].weight.fill_(2.0)
        mbn.bns[1].weight.fill_(0.5)
    x = make_input()
    mbn.set_modality([0] * 4 + [1] * 4)
    y = mbn(x)
    y.sum().backward()
    ref = MBN(4)
    ref.set_modality([0] * 4 + [1] * 4)
    z = ref(x).detach()
    torch.testing.assert_close(y[:4], 2.0 * z[:4])
    torch.testing.assert_close(y[4:], 0.5 * z[4:])
    assert mbn.bns[0].weight.grad is not None
    assert mbn.bns[1].weight.grad is not None


def test_state_dict_keys_and_plain_bn_mapping():
    mbn = MBN(4)
    assert set(mbn.state_dict()) == {
        'weight', 'bias', 'bns.0.running_mean', 'bns.0.running_var',
        'bns.0.num_batches_tracked', 'bns.1.running_mean', 'bns.1.running_var',
        'bns.1.num_batches_tracked'
    }
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    for share in (True, False):
        mbn = MBN(4, share_affine=share)
        result = mbn.load_state_dict(bn.state_dict(), strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        for child in mbn.bns:
            torch.testing.assert_close(child.running_mean, bn.running_mean)
            torch.testing.assert_close(child.running_var, bn.running_var)
            if not share:
                torch.testing.assert_close(child.weight, bn.weight)
        bn.eval()
        mbn.eval()
        x = make_input()
        mbn.set_modality([0, 1] * 4)
        torch.testing.assert_close(mbn(x), bn(x))


def test_to_plain_bn_round_trip():
    mbn = trained_mbn().eval()
    x = make_input()
    for k in (0, 1):
        bn = mbn.to_plain_bn(k).eval()
        assert type(bn) is nn.BatchNorm2d
        mbn.set_modality(k)
        torch.testing.assert_close(bn(x), mbn(x))
        back = MBN(4)
        back.load_state_dict(bn.state_dict())
        back.eval()
        back.set_modality([0, 1] * 4)
        torch.testing.assert_close(back(x), bn(x))
    mean = mbn.to_plain_bn('mean')
    torch.testing.assert_close(
        mean.running_mean,
        (mbn.bns[0].running_mean + mbn.bns[1].running_mean) / 2)
    with pytest.raises(ValueError, match='modality must be'):
        mbn.to_plain_bn(2)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), copy.deepcopy(mbn))
    converted = convert_mbn_to_bn(model, 1)
    assert type(converted[1]) is nn.BatchNorm2d


@pytest.mark.parametrize('eval_stats', ['modality', 'batch', 'shared'])
@pytest.mark.parametrize('share_affine', [True, False])
def test_an_exported_modality_normalises_as_the_layer_in_eval(
        eval_stats, share_affine):
    # to_plain_bn(k)'s contract, by its definition: in eval mode, the plain
    # BN maps a batch of modality k as the MBN does in eval mode. With
    # eval_stats='batch' the MBN uses that batch's statistics; with
    # 'shared' the mean of the modalities' running statistics and modality
    # k's affine. The export used modality k's running statistics whatever
    # eval_stats said: another network than the one validated.
    mbn = trained_mbn(eval_stats=eval_stats, share_affine=share_affine)
    with torch.no_grad():
        for child in mbn.bns:
            if child.weight is not None:
                child.weight.uniform_(0.5, 1.5)
                child.bias.uniform_(-1, 1)
    mbn.eval()
    for k in (0, 1):
        x = make_input(shift=False) * (1 + 2 * k) + 3 * k
        mbn.set_modality(k)
        expected = mbn(x)
        bn = mbn.to_plain_bn(k).eval()
        torch.testing.assert_close(bn(x), expected)
        # Its state loads back into a plain network's BN.
        plain = type(bn)(4, track_running_stats=bn.track_running_stats)
        plain.load_state_dict(bn.state_dict())
        torch.testing.assert_close(plain.eval()(x), expected)


def test_sync_bn_conversion_keeps_the_split():
    model = nn.Sequential(nn.Conv2d(4, 4, 1), trained_mbn())
    stats = [b.running_mean.clone() for b in model[1].bns]
    x = make_input()
    set_modality(model, [0] * 4 + [1] * 4)
    model.eval()
    before = model(x)
    for convert in (nn.SyncBatchNorm.convert_sync_batchnorm,
                    convert_sync_batchnorm):
        synced = convert(copy.deepcopy(model)).eval()
        assert isinstance(synced[1], MBN)
        assert all(isinstance(b, nn.SyncBatchNorm) for b in synced[1].bns)
        for b, s in zip(synced[1].bns, stats):
            torch.testing.assert_close(b.running_mean, s)
        torch.testing.assert_close(synced(x), before)
        reverted = revert_sync_batchnorm(synced).eval()
        assert isinstance(reverted[1], MBN)
        assert not any(
            isinstance(b, nn.SyncBatchNorm) for b in reverted.modules())
        for b, s in zip(reverted[1].bns, stats):
            torch.testing.assert_close(b.running_mean, s)
        torch.testing.assert_close(reverted(x), before)
        # Training still splits by modality (non-distributed SyncBN = BN).
        reverted.train()
        set_modality(reverted, [0] * 4 + [1] * 4)
        y = reverted[1](x)
        torch.testing.assert_close(
            y[:4].mean((0, 2, 3)), reverted[1].bias, atol=1e-5, rtol=0)
        torch.testing.assert_close(
            y[4:].mean((0, 2, 3)), reverted[1].bias, atol=1e-5, rtol=0)


def test_build_norm_layer_names():
    with DefaultScope.overwrite_default_scope('mmreid'):
        name, layer = build_norm_layer(dict(type='MBN'), 8, postfix=1)
    assert name == 'bn1' and isinstance(layer, MBN)
    name, layer = build_norm_layer(
        dict(type='mmreid.MBN', share_affine=False, requires_grad=False),
        8,
        postfix=2)
    assert name == 'bn2' and not layer.share_affine
    assert not any(p.requires_grad for p in layer.parameters())


def _torchvision_style_resnet18_state_dict():
    """A torchvision ResNet-18 state dict (random values), built here."""
    torchvision = pytest.importorskip('torchvision')
    net = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
    return net.state_dict()


def test_imagenet_resnet_loads_into_an_mbn_resnet():
    state = _torchvision_style_resnet18_state_dict()
    mbn_net = ReIDResNet(depth=18, norm_cfg=dict(type='mmreid.MBN'))
    result = mbn_net.load_state_dict(state, strict=False)
    assert not [k for k in result.missing_keys if 'bns' in k]
    assert not result.missing_keys
    assert set(result.unexpected_keys) == {'fc.weight', 'fc.bias'}
    for name in ('bn1', 'layer1.0.bn1', 'layer3.0.downsample.1'):
        for k in (0, 1):
            torch.testing.assert_close(
                mbn_net.get_submodule(f'{name}.bns.{k}').running_var,
                state[f'{name}.running_var'])
    plain = ReIDResNet(depth=18)
    plain.load_state_dict(state, strict=False)
    plain.eval()
    mbn_net.eval()
    x = torch.randn(2, 3, 32, 16)
    set_modality(mbn_net, [0, 1])
    torch.testing.assert_close(mbn_net(x)[0], plain(x)[0])
    # And back: each modality exported gives the plain network again.
    exported = convert_mbn_to_bn(copy.deepcopy(mbn_net), 1)
    torch.testing.assert_close(exported(x)[0], plain(x)[0])


def test_helpers_and_context_manager():
    model = nn.Sequential(MBN(4), nn.ReLU(), MBN(4))
    assert len(modality_aware_modules(model)) == 2
    with modality_context(model, [0, 1] * 4):
        assert model[2].modality.tolist() == [0, 1] * 4
        model(make_input())
    assert model[0].modality is None


def tiny_mbn_model(**head):
    return ReIDModel(
        backbone=dict(
            type='ReIDResNet',
            depth=18,
            base_channels=8,
            stem_channels=8,
            norm_cfg=dict(type='MBN')),
        head=dict(type='BNNeckHead', in_channels=64, num_classes=4, **head))


def samples(labels, modalities):
    out = []
    for pid, m in zip(labels, modalities):
        s = ReIDDataSample().set_gt_label(pid)
        if m is not None:
            s.set_metainfo(dict(modality=m))
        out.append(s)
    return out


def test_model_passes_modality_from_data_samples():
    model = tiny_mbn_model(norm_cfg=dict(type='MBN', dims=1))
    x = torch.randn(8, 3, 32, 16)
    mods = [0, 1, 1, 0, 0, 1, 1, 0]
    model.train()
    model(x, samples([0, 0, 1, 1, 2, 2, 3, 3], mods), mode='loss')
    for m in modality_aware_modules(model):
        assert m.modality.tolist() == mods
    # The BNNeck is an MBN too and kept per-modality statistics.
    assert int(model.head.bnneck.bns[1].num_batches_tracked) == 1
    model.eval()
    preds = model(x, samples([0] * 8, mods), mode='predict')
    feats = torch.stack([p.pred_feature for p in preds])
    torch.testing.assert_close(model(x, mode='tensor', modality=mods), feats)
    # Each sample alone gives the same feature (eval routing).
    alone = model(x[2:3], mode='tensor', modality=1)
    torch.testing.assert_close(alone[0], feats[2], atol=1e-5, rtol=1e-5)
    # An explicit modality overrides the data samples'.
    preds = model(x, samples([0] * 8, mods), mode='predict', modality=1)
    torch.testing.assert_close(
        torch.stack([p.pred_feature for p in preds]),
        model(x, mode='tensor', modality=[1] * 8))
    with pytest.raises(ValueError, match='pass modality='):
        model(x, mode='tensor')
    with pytest.raises(KeyError, match='has no "modality"'):
        model(x, samples([0] * 8, [0] * 7 + [None]), mode='predict')


@pytest.mark.parametrize('backbone', [
    dict(type='ReIDResNet', norm_cfg=dict(type='MBN')),
    dict(type='AGWResNet', non_local_stages=(0, 0, 0, 0))
])
def test_predict_without_data_samples_never_reuses_earlier_labels(backbone):
    """predict() called directly without data samples has no labels for
    its batch: it refuses, also after a routed batch of the same size left
    its labels on the modality-aware modules (MBN layers, AGW's stems)."""
    model = ReIDModel(
        backbone=dict(depth=18, base_channels=8, stem_channels=8, **backbone),
        head=dict(type='BNNeckHead', in_channels=64, num_classes=4))
    model.eval()
    x = torch.randn(2, 3, 32, 16)
    routed = model(x, samples([0, 1], [1, 1]), mode='predict')
    with pytest.raises(ValueError, match='pass modality='):
        model.predict(x)
    with pytest.raises(ValueError, match='pass modality='):
        model.predict(x[:1])
    # With its data samples, predict routes them itself.
    direct = model.predict(x, samples([0, 1], [1, 1]))
    torch.testing.assert_close(
        torch.stack([p.pred_feature for p in direct]),
        torch.stack([p.pred_feature for p in routed]))
    direct = model.predict(x, samples([0, 1], [0, 0]))
    torch.testing.assert_close(
        torch.stack([p.pred_feature for p in direct]),
        model(x, mode='tensor', modality=0))


def test_model_without_modality_modules_ignores_modality():
    model = ReIDModel(
        backbone=dict(
            type='ReIDResNet', depth=18, base_channels=8, stem_channels=8),
        head=dict(type='BNNeckHead', in_channels=64, num_classes=4))
    assert not modality_aware_modules(model)
    model.eval()
    x = torch.randn(2, 3, 32, 16)
    assert model(x).shape == (2, 64)
    assert set(model.head.state_dict()) == {
        'bnneck.weight', 'bnneck.bias', 'bnneck.running_mean',
        'bnneck.running_var', 'bnneck.num_batches_tracked', 'classifier.weight'
    }
    assert not model.head.bnneck.bias.requires_grad


def test_imagenet_resnet50_leaves_no_mbn_key_missing():
    torchvision = pytest.importorskip('torchvision')
    state = torchvision.models.resnet50(weights=None).state_dict()
    net = ReIDResNet(depth=50, norm_cfg=dict(type='mmreid.MBN'))
    result = net.load_state_dict(state, strict=False)
    assert not result.missing_keys
    assert set(result.unexpected_keys) == {'fc.weight', 'fc.bias'}
    mbns = [m for m in net.modules() if isinstance(m, MBN)]
    assert len(mbns) == 53  # stem + 16 blocks x 3 + 4 downsample
    torch.testing.assert_close(net.layer4[2].bn3.bns[1].running_var,
                               state['layer4.2.bn3.running_var'])


def _plain_bn_twin():
    """``tiny_mbn_model``'s architecture with plain BN (an AGW-style model),
    its BN statistics set away from the initial ones."""
    model = ReIDModel(
        backbone=dict(
            type='ReIDResNet', depth=18, base_channels=8, stem_channels=8),
        head=dict(type='BNNeckHead', in_channels=64, num_classes=4))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    return model


def test_trained_plain_bn_checkpoint_is_refused_by_an_mbn_model(tmp_path):
    """A checkpoint of a model trained without MBN, loaded as the model
    under test, must not become an MBN model whose modalities all hold its
    statistics (the plain model's numbers under the MBN name)."""
    from mmreid.models import load_pretrained
    from mmreid.utils.model_state import load_model_state
    plain = _plain_bn_twin()
    # An MBN model's own checkpoint loads.
    load_model_state(tiny_mbn_model(),
                     dict(state_dict=tiny_mbn_model().state_dict()), 'mbn.pth')
    checkpoint = dict(state_dict=plain.state_dict(), meta=dict())
    model = tiny_mbn_model()
    with pytest.raises(RuntimeError) as info:
        load_model_state(model, checkpoint, 'agw.pth')
    message = str(info.value)
    assert 'plain BatchNorm' in message and 'without MBN' in message
    assert 'backbone.bn1' in message and 'backbone.layer1.0.bn1' in message
    # Non-strict: a partial load, the MBN statistics are not the plain one's.
    model = tiny_mbn_model()
    report = load_model_state(model, checkpoint, 'agw.pth', strict=False)
    assert 'backbone.bn1.bns.0.running_mean' in report['missing']
    assert 'backbone.bn1.running_mean' in report['unexpected']
    assert torch.equal(model.backbone.bn1.bns[0].running_mean, torch.zeros(8))
    # As an initialisation (the route the error gives) it fills every slot.
    path = tmp_path / 'agw.pth'
    torch.save(checkpoint, path)
    model = tiny_mbn_model()
    load_pretrained(model.backbone, str(path), prefix='backbone.')
    for k in (0, 1):
        torch.testing.assert_close(
            model.backbone.layer2[1].bn2.bns[k].running_var,
            plain.backbone.layer2[1].bn2.running_var)


def test_a_partial_plain_bn_load_says_why_in_its_warning(monkeypatch):
    """With strict loading off, the warning of the partial load starts with
    why the plain BN tensors were not loaded into the MBN layers."""
    import mmreid.utils.model_state as model_state_module
    from mmreid.utils.model_state import load_model_state
    logged = []
    monkeypatch.setattr(model_state_module, 'print_log',
                        lambda message, **kwargs: logged.append(message))
    load_model_state(
        tiny_mbn_model(),
        dict(state_dict=_plain_bn_twin().state_dict()),
        'agw.pth',
        strict=False)
    assert len(logged) == 1
    assert logged[0].startswith("checkpoint 'agw.pth' holds plain BatchNorm "
                                'tensors')
    assert 'keep their initial values (partial load accepted)' in logged[0]


def test_an_mbn_layer_missing_from_a_checkpoint_is_no_plain_bn():
    """A checkpoint that lacks an MBN layer's tensors altogether is a
    partial checkpoint (missing tensors), not a plain-BN model's."""
    from mmreid.utils.model_state import load_model_state
    state = {
        k: v
        for k, v in tiny_mbn_model().state_dict().items()
        if not k.startswith('backbone.bn1.')
    }
    with pytest.raises(RuntimeError) as info:
        load_model_state(tiny_mbn_model(), dict(state_dict=state), 'part.pth')
    assert 'plain BatchNorm' not in str(info.value)
    assert "checkpoint 'part.pth' lacks" in str(info.value)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('train', [True, False])
def test_mbn_gives_the_input_dtype_as_batchnorm(dtype, train):
    """Its fp32 affine promoted a half input to fp32 (twice the activation
    memory of an AMP trunk); BatchNorm2d keeps the input's dtype."""
    x = torch.randn(4, 8, 3, 3).to(dtype)
    layer, bn = MBN(8), nn.BatchNorm2d(8)
    layer.train(train)
    bn.train(train)
    layer.set_modality([0, 1, 0, 1])
    out = layer(x)
    assert out.dtype == bn(x).dtype == dtype
    # The values are the fp32 computation's, rounded once.
    reference = MBN(8).train(train)
    reference.set_modality([0, 1, 0, 1])
    assert torch.equal(out, reference(x.float()).to(dtype))
