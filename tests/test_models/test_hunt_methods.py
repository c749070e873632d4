"""Wrong-number hunt on the methods' and baselines' layers (SNR, GMN, MBN,
BNNeck, non-local), checked against their specs (``specs/snr.md``,
``specs/gmn.md``, ``specs/mbn_vireid.md``) and the documented loading
rules (``docs/get_started.md``, "Pretrained"), with small references
written from the definitions here.

The tests of defects (fixed since) assert the right behaviour and fail on
the code before each fix.
"""
import pytest
import torch
import torch.nn.functional as F

from mmreid.models.layers import AGWNonLocal
from mmreid.registry import MODELS


def tiny_resnet(**kwargs):
    """A ResNet-18 of 8 base channels (64-d output), randomly initialised."""
    return MODELS.build(
        dict(
            type='ReIDResNet',
            depth=18,
            base_channels=8,
            stem_channels=8,
            **kwargs))


def randomise_(module, skip=()):
    """Give every parameter and BN statistic a distinct, non-default value
    (a stand-in for trained weights), except the names in ``skip``."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name not in skip:
                param.add_(torch.randn_like(param))
        for name, buf in module.named_buffers():
            if buf.is_floating_point() and name not in skip:
                buf.uniform_(0.5, 1.5)
    return module


# --------------------------------------------------------------- MBN


def test_mbn_without_affine_refuses_the_affine_of_a_plain_bn_checkpoint(
        tmp_path):
    """Load an ImageNet-style (affine BN) ResNet into an MBN trunk built
    with ``affine=False``.

    The user gets a load reported as "loaded 140 of 140 tensors" while the
    checkpoint's 40 trained BN scales and shifts are thrown away: the
    network computes another function than the pretrained one (each
    normalised channel keeps gamma = 1, beta = 0). Right: mmreid refuses
    such a load, as it refuses the very same checkpoint for the plain-BN
    twin ``norm_cfg=dict(type='BN', affine=False)`` ("tensors under
    submodules ... that it does not have ... would be ignored", the
    Pretrained rule of docs/get_started.md). Spec MBN section 2.7 maps a
    plain BN's ``weight``/``bias`` to the shared affine (or to every
    modality's); with no affine there is nowhere to put them, so the load
    must not pass.
    """
    source = randomise_(tiny_resnet())
    checkpoint = str(tmp_path / 'r18.pth')
    torch.save(source.state_dict(), checkpoint)
    init_cfg = dict(type='Pretrained', checkpoint=checkpoint)
    # The plain-BN twin is refused (the documented rule) ...
    plain = tiny_resnet(
        norm_cfg=dict(type='BN', affine=False), init_cfg=init_cfg)
    with pytest.raises(RuntimeError, match='bn1.weight'):
        plain.init_weights()
    # ... and so must the MBN model be, whose norms have no affine either.
    mbn = tiny_resnet(
        norm_cfg=dict(type='MBN', affine=False), init_cfg=init_cfg)
    with pytest.raises(RuntimeError, match=r'bn1\.weight, bn1\.bias'):
        mbn.init_weights()


def test_zero_init_residual_reaches_per_modality_affines():
    """Train from scratch (no pretrained weights) with the spec's affine
    ablation, ``norm_cfg=dict(type='MBN', share_affine=False)`` (spec MBN
    section 2.2 and invariant 10).

    ResNet's ``zero_init_residual`` (on by default) zeroes the last norm's
    gamma of every residual block, so each block starts as the identity;
    it does so for BN and for the shared-affine MBN, but with per-modality
    affines the last norms keep gamma = 1: the ablation silently differs
    from its BN/shared-MBN twin by its initialisation too, not only by
    the affine sharing it is meant to measure. Right: every modality's
    gamma of those norms starts at 0, as the BN's does.
    """
    torch.manual_seed(0)
    for norm_cfg in (dict(type='BN'), dict(type='MBN', share_affine=False)):
        net = tiny_resnet(norm_cfg=norm_cfg)
        net.init_weights()
        assert net.zero_init_residual
        for block in net.layer1:
            norm = block.norm2
            gammas = [norm.weight] if norm.weight is not None else [
                bn.weight for bn in norm.bns
            ]
            for gamma in gammas:
                assert torch.equal(gamma, torch.zeros_like(gamma)), norm_cfg


# --------------------------------------------------- init and Pretrained


def _pretrained_head_case(kind, tmp_path):
    """(module, names) after ``init_weights`` with a ``Pretrained``
    init_cfg, and the tensors that must equal the checkpoint's."""
    checkpoint = str(tmp_path / f'{kind}.pth')
    if kind == 'non_local':
        source = randomise_(AGWNonLocal(8))
        torch.save(source.state_dict(), checkpoint)
        module = AGWNonLocal(
            8, init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
        return source, module
    cfg = dict(type=kind, in_channels=16, num_classes=5)
    if kind == 'GMNHead':
        cfg['mnet'] = dict(hidden_channels=8)
    # A trained head: the BNNeck bias stays at its frozen 0.
    source = randomise_(MODELS.build(cfg), skip=('bnneck.bias', ))
    torch.save(
        dict(state_dict={
            f'head.{k}': v
            for k, v in source.state_dict().items()
        }), checkpoint)
    module = MODELS.build(
        dict(
            cfg,
            init_cfg=dict(
                type='Pretrained', checkpoint=checkpoint, prefix='head.')))
    return source, module


@pytest.mark.parametrize('kind', ['BNNeckHead', 'GMNHead', 'non_local'])
def test_a_pretrained_init_cfg_is_not_overwritten_by_the_own_init(
        kind, tmp_path):
    """Give a head (or a non-local block) ``init_cfg=dict(type=
    'Pretrained', checkpoint=..., prefix='head.')``, e.g. to start from a
    trained model's head.

    The log says every tensor was loaded ("loaded 14 of 14 tensors"), then
    the module's own ``init_weights`` runs its random-init step after the
    load: the BNNeck gamma goes back to 1, GMN's M-Net to PyTorch's default
    initialisation (so its ``mnet``/``fused`` rankings score with a random
    M-Net), the non-local ``W`` norm back to 0 (the block becomes the
    identity). Right (docs/get_started.md): a Pretrained entry switches
    off the random-init steps that would overwrite the loaded weights, as
    it does for ResNet's ``zero_init_residual`` and AGW's stem copy; every
    loaded tensor equals the checkpoint's.
    """
    source, module = _pretrained_head_case(kind, tmp_path)
    module.init_weights()
    loaded = module.state_dict()
    changed = [
        key for key, value in source.state_dict().items()
        if not torch.equal(value, loaded[key])
    ]
    assert changed == []


def test_bnneck_init_cfg_entry_reaches_the_bnneck():
    """Configure the BNNeck initialisation of the AGW reference (spec MBN
    section 3.1: BNNeck weight ~ N(1, 0.01)) through the head's
    ``init_cfg``, next to the classifier's N(0, 0.001).

    The user gets gamma = 1 everywhere: ``BNNeckHead.init_weights`` sets
    the BNNeck's weight to 1 after the init_cfg ran, so the entry is
    silently ignored (configs/mbn/README.md lists gamma = 1 as a
    difference from the reference, with no way to close it). Right: an
    ``init_cfg`` entry for the BNNeck applies, so gamma follows N(1, 0.01)
    (the bias stays 0 and frozen).
    """
    from mmreid.models.heads import BNNeckHead
    torch.manual_seed(0)
    head = BNNeckHead(
        256,
        10,
        init_cfg=[
            dict(type='Normal', layer='Linear', std=0.001),
            dict(type='Normal', layer='BatchNorm1d', mean=1.0, std=0.01)
        ])
    head.init_weights()
    gamma = head.bnneck.weight.detach()
    assert not head.bnneck.bias.requires_grad
    assert torch.equal(head.bnneck.bias, torch.zeros(256))
    assert 0.005 < float(gamma.std()) < 0.02
    assert abs(float(gamma.mean()) - 1) < 0.005


# --------------------------------------------------------------- GMN


def test_gmn_model_does_not_ignore_a_feature_distance():
    """Turn a GMN baseline config (``ReIDModel``, ``distance='cosine'``,
    configs/gmn/README.md) into GMN by changing the type to ``GMNReID``,
    with ``pair_norm='raw'`` features.

    The model builds and keeps ``distance_type='cosine'``, but every
    distance it gives (``euclid`` and ``fused`` modes, spec GMN section
    8.1) is computed from ``||q - g||^2``: on un-normalised features that
    ranks otherwise than the cosine distance the config asked for, without
    a word. Right: the model refuses a ``distance`` it does not use, or
    ranks by it. Here gallery item 0 is the cosine-nearer one (same
    direction as the query, far away) and item 1 the Euclidean-nearer.
    """
    cfg = dict(
        type='GMNReID',
        backbone=dict(
            type='ReIDResNet', depth=18, base_channels=8, stem_channels=8),
        neck=dict(type='GlobalAvgPool'),
        head=dict(
            type='GMNHead',
            in_channels=64,
            num_classes=4,
            mnet=dict(hidden_channels=8),
            pair_norm='raw'),
        distance='cosine')
    with pytest.raises(ValueError, match="model.distance='cosine' would "
                       'be ignored'):
        MODELS.build(cfg)
    # Euclidean (the default) ranks as 'euclid' does: accepted; so is
    # leaving it out.
    model = MODELS.build(dict(cfg, distance='euclidean'))
    query = torch.zeros(1, 64)
    query[0, 0] = 1.0
    gallery = torch.zeros(2, 64)
    gallery[0, 0] = 3.0  # cosine 1, squared Euclidean 4
    gallery[1, :2] = 0.5  # cosine 0.71, squared Euclidean 0.5
    euclidean = torch.cdist(query, gallery)
    dist = model.distance(query, gallery, mode='euclid')
    assert torch.equal(dist.argsort(dim=1), euclidean.argsort(dim=1))


def test_gmn_head_losses_equal_the_spec_with_pic_on_the_hidden_layer():
    """GMN's training losses on a 4 x 2 batch, DP off, recomputed from the
    spec (sections 2-7): BNNeck in training mode, L2-normalised post-BN
    features, all i < j pairs, M-Net Linear-BN(batch)-ReLU-Linear,
    class-balanced BCE, PIC on the M-Net's hidden activation (groups of
    >= 2 pairs of one unordered label pair, batch-mean centres), lambda
    applied, CE with label smoothing 0.1 on the BN feature."""
    import itertools

    from mmreid.structures import ReIDDataSample
    torch.manual_seed(2)
    head = MODELS.build(
        dict(
            type='GMNHead',
            in_channels=16,
            num_classes=6,
            mnet=dict(hidden_channels=8),
            pic=dict(weight=3.0, space='hidden')))
    head.init_weights()
    randomise_(head, skip=('bnneck.bias', ))
    head.dp_enabled = False
    head.train()
    feats = torch.randn(8, 16) * 2 + 1
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    losses = head.loss(feats, [ReIDDataSample().set_gt_label(int(y))
                               for y in labels])

    def batch_norm(x, bn):
        var = x.var(0, unbiased=False)
        return (x - x.mean(0)) / torch.sqrt(var + bn.eps) * bn.weight \
            + bn.bias

    f_b = batch_norm(feats, head.bnneck)
    f = f_b / f_b.norm(dim=1, keepdim=True)
    pairs = list(itertools.combinations(range(8), 2))
    f_sp = torch.stack([(f[i] - f[j])**2 for i, j in pairs])
    same = torch.tensor([bool(labels[i] == labels[j]) for i, j in pairs])
    mnet = head.mnet
    hidden = torch.relu(
        batch_norm(f_sp @ mnet.hidden[0].weight.t(), mnet.hidden[1]))
    z = hidden @ mnet.fc_out.weight[0] + mnet.fc_out.bias[0]
    l_gmn = 0.5 * F.softplus(-z[same]).mean() + \
        0.5 * F.softplus(z[~same]).mean()
    groups = {}
    for p, (i, j) in enumerate(pairs):
        key = tuple(sorted((int(labels[i]), int(labels[j]))))
        groups.setdefault(key, []).append(p)
    spreads = [((hidden[m] - hidden[m].mean(0))**2).sum(1).mean()
               for m in groups.values() if len(m) >= 2]
    l_pic = torch.stack(spreads).mean()
    logits = f_b @ head.classifier.weight.t()
    target = 0.9 * F.one_hot(labels, 6) + 0.1 / 6
    l_cls = -(F.log_softmax(logits, 1) * target).sum(1).mean()
    torch.testing.assert_close(losses['loss_gmn'], l_gmn)
    torch.testing.assert_close(losses['loss_pic'], 3.0 * l_pic)
    torch.testing.assert_close(losses['pic_raw'], l_pic.detach())
    torch.testing.assert_close(losses['loss_cls'], l_cls)


# ------------------------------------------------------------ baselines


def test_bnneck_bias_stays_zero_through_an_agw_optimiser_step():
    """The BNNeck bias is frozen at 0 (BoT; spec MBN section 3.1, SNR
    section 2): after a step of the AGW schedule (SGD, Nesterov, weight
    decay on every parameter, lr x10 on the BNNeck) it is still exactly
    0, while the BNNeck gamma moved, and the classifier has no bias."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    from mmreid.structures import ReIDDataSample
    torch.manual_seed(4)
    model = MODELS.build(
        dict(
            type='ReIDModel',
            backbone=dict(
                type='ReIDResNet', depth=18, base_channels=8,
                stem_channels=8),
            neck=dict(type='GeMPool', p=3.0, learnable=False),
            head=dict(
                type='BNNeckHead',
                in_channels=64,
                num_classes=3,
                loss_cls=dict(type='ReIDCrossEntropyLoss'),
                loss_tri=dict(type='WRTLoss'))))
    model.init_weights()
    schedule = Config.fromfile('configs/_base_/schedules/agw_sgd_81e.py')
    wrapper = build_optim_wrapper(model, schedule.optim_wrapper)
    gamma = model.head.bnneck.weight.detach().clone()
    inputs = torch.randint(0, 256, (6, 3, 32, 16), dtype=torch.uint8)
    samples = [ReIDDataSample().set_gt_label(i // 2) for i in range(6)]
    data = model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), True)
    losses = model(**data, mode='loss')
    wrapper.update_params(losses['loss_cls'] + losses['loss_tri'])
    assert model.head.classifier.bias is None
    assert torch.equal(model.head.bnneck.bias, torch.zeros(64))
    assert not torch.equal(model.head.bnneck.weight, gamma)
