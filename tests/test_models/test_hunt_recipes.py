"""Wrong-number hunt: what a shipped method config trains, step by step.

Each test builds the model of a shipped config (ResNet-50 swapped for a
randomly initialised ResNet-18, heads and losses as shipped), runs one
training step on a tiny batch with hooks on the losses, and compares what
each loss receives, and with which weight, with a small reference written
here from the recipe's definition: the BoT paper and
``configs/baseline/README.md`` (triplet on the pooled feature before the
BNNeck, label-smoothed identity loss on the BNNeck output's logits, frozen
BNNeck bias), ``specs/snr.md`` sections 2-4 (the dual causality loss per
stage on the pooled triple, stage weights), ``specs/gmn.md`` sections 2-7
(pair features of the L2-normalised post-BN features, DP, PIC on the M-Net
input, unit weights and lambda) and ``specs/mbn_vireid.md`` /
``configs/mbn/README.md`` (AGW: WRT on the GeM feature, plain CE, the
10x lr of the BNNeck and classifier).

No defect was found: these are the checks that a change to the wiring
(a loss fed another tensor, a stage weight off by a stage, a detach, a
lost DP copy or lambda) would fail.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample

IMG = (64, 32)


def build_recipe(path, **head):
    """The model of a shipped config, as a randomly initialised R18.

    Args:
        path (str): The config.
        **head: Replacements in ``model.head``.

    Returns:
        tuple: The config and the built model (``init_weights`` done).
    """
    cfg = Config.fromfile(path)
    model_cfg = copy.deepcopy(cfg.model.to_dict())
    backbone = model_cfg['backbone']
    if backbone.get('depth') == 50:
        backbone['depth'] = 18
        model_cfg['head']['in_channels'] = 512
        if backbone['type'] == 'AGWResNet':
            backbone['non_local_stages'] = (0, 1, 1, 0)
    backbone['init_cfg'] = None
    model_cfg['head'].update(head)
    model_cfg['head']['num_classes'] = 8
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    return cfg, model


def tiny_batch(model, num_ids=4, per_id=2, modality=None):
    """A preprocessed training batch of ``num_ids`` x ``per_id`` images."""
    torch.manual_seed(1)
    n = num_ids * per_id
    inputs = torch.randint(0, 256, (n, 3) + IMG, dtype=torch.uint8)
    samples = []
    for i in range(n):
        meta = {} if modality is None else dict(modality=modality[i])
        samples.append(
            ReIDDataSample(metainfo=meta).set_gt_label(i // per_id))
    return model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), True)


def capture_inputs(module, store, key):
    """Record the positional and keyword inputs of ``module``'s calls."""

    def hook(mod, args, kwargs):
        store.setdefault(key, []).append((args, kwargs))

    return module.register_forward_pre_hook(hook, with_kwargs=True)


def bn_train(x, bn):
    """BatchNorm1d in training mode, from its definition."""
    mean = x.mean(0)
    var = x.var(0, unbiased=False)
    return (x - mean) / torch.sqrt(var + bn.eps) * bn.weight + bn.bias


def euclid(x):
    """Pairwise Euclidean distances, (N, N)."""
    return torch.cdist(x.double(), x.double())


def batch_hard(x, labels):
    """Hardest positive and negative distance per anchor (self included
    among the positives)."""
    d = euclid(x)
    same = labels[:, None] == labels[None]
    d_ap = d.masked_fill(~same, -1).max(1).values
    d_an = d.masked_fill(same, float('inf')).min(1).values
    return d_ap, d_an


def ref_triplet(x, labels, margin):
    """Batch-hard triplet (margin, or soft margin for None)."""
    d_ap, d_an = batch_hard(x, labels)
    if margin is None:
        return F.softplus(d_ap - d_an).mean()
    return F.relu(d_ap - d_an + margin).mean()


def ref_ce(logits, labels, eps):
    """Cross-entropy with label smoothing: target (1 - eps) one-hot +
    eps / K."""
    logp = F.log_softmax(logits.double(), 1)
    k = logits.size(1)
    target = torch.full_like(logp, eps / k)
    target[torch.arange(len(labels)), labels] += 1 - eps
    return -(target * logp).sum(1).mean()


def labels_of(data):
    return torch.cat([s.gt_label for s in data['data_samples']])


# ------------------------------------------------------------------ BoT


BOT_LIKE = [
    # (config, triplet feature, margin, label smoothing)
    ('configs/baseline/bot_r18_synthreid.py', 'pre_bn', 0.3, 0.1),
    ('configs/baseline/bot_r50_1xb64-120e_market1501.py', 'pre_bn', 0.3,
     0.1),
    ('configs/snr/baseline_r18_synthreid-v2.py', 'pre_bn', 0.3, 0.1),
    ('configs/snr/baseline_r50_1xb64-120e_market1501-to-dukemtmc.py', 'bn',
     None, 0.1),
    ('configs/gmn/baseline_r50_1xb64-60e_m-ms-cs-to-c3.py', 'pre_bn', 0.3,
     0.1),
]


@pytest.mark.parametrize('path,tri_feat,margin,eps', BOT_LIKE)
def test_bot_recipe_step_feeds_each_loss_its_feature(path, tri_feat, margin,
                                                     eps):
    """Train one step of a BoT-style config.

    BoT (configs/baseline/README.md): the triplet loss (margin 0.3) gets
    the pooled feature before the BNNeck, the label-smoothed (0.1) ID
    loss the logits of a bias-free classifier on the BNNeck output
    (training-mode BN); the SNR recipe puts the soft-margin triplet on
    BN(v) (spec SNR section 3.4). Both weights are 1, and after an
    optimiser step of the config's schedule the BNNeck bias is still 0.
    """
    from mmengine.optim import build_optim_wrapper
    cfg, model = build_recipe(path)
    model.train()
    data = tiny_batch(model)
    labels = labels_of(data)
    seen = {}
    capture_inputs(model.head.loss_tri, seen, 'tri')
    capture_inputs(model.head.loss_cls, seen, 'cls')
    losses = model(**data, mode='loss')
    with torch.no_grad():
        model_copy = copy.deepcopy(model)
        f_t = model_copy.backbone(data['inputs'])[-1].mean((2, 3))
        f_b = bn_train(f_t, model.head.bnneck)
        logits = f_b @ model.head.classifier.weight.t()
    tri_in = seen['tri'][0][0][0]
    cls_in = seen['cls'][0][0][0]
    expected_tri = f_t if tri_feat == 'pre_bn' else f_b
    torch.testing.assert_close(tri_in, expected_tri, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(cls_in, logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        losses['loss_tri'].double(),
        ref_triplet(expected_tri, labels, margin),
        rtol=1e-4,
        atol=1e-5)
    torch.testing.assert_close(
        losses['loss_cls'].double(), ref_ce(logits, labels, eps),
        rtol=1e-4, atol=1e-5)
    total, _ = model.parse_losses(losses)
    torch.testing.assert_close(total,
                               losses['loss_tri'] + losses['loss_cls'])
    assert model.head.classifier.bias is None
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    wrapper.update_params(total)
    assert torch.equal(model.head.bnneck.bias,
                       torch.zeros_like(model.head.bnneck.bias))


# ------------------------------------------------------------------ SNR


def ref_snr_maps(snr, fmap):
    """SNR of a stage map from spec SNR section 1.1: IN(F), F+ and F-."""
    f_in = F.instance_norm(
        fmap, weight=snr.in_norm.weight, bias=snr.in_norm.bias, eps=1e-5)
    res = fmap - f_in
    gate = snr.gate
    h = F.relu(F.conv2d(res.mean((2, 3), keepdim=True), gate.fc1.weight,
                        gate.fc1.bias))
    a = torch.sigmoid(F.conv2d(h, gate.fc2.weight, gate.fc2.bias))
    return f_in, f_in + a * res, f_in + (1 - a) * res


def ref_dual_causality(f0, fp, fn, labels, terms):
    """L_SNR of one stage (spec SNR section 3.2), the named terms."""
    d0_ap, d0_an = batch_hard(f0, labels)
    dp_ap, dp_an = batch_hard(fp, labels)
    dn_ap, dn_an = batch_hard(fn, labels)
    clamp = 1e-6  # sqrt(clamp(., 1e-12)): the floor of every distance
    d0_ap, d0_an = d0_ap.clamp(min=clamp), d0_an.clamp(min=clamp)
    values = dict(
        pos_ap=F.softplus(dp_ap - d0_ap).mean(),
        pos_an=F.softplus(d0_an - dp_an).mean(),
        neg_ap=F.softplus(d0_ap - dn_ap).mean(),
        neg_an=F.softplus(dn_an - d0_an).mean())
    return sum(values[t] for t in terms)


ALL_TERMS = ('pos_ap', 'pos_an', 'neg_ap', 'neg_an')
SNR_RECIPES = [
    # (config, stages with SNR (1-based), terms, triplet feature)
    ('configs/snr/snr_r18_synthreid-v2.py', (1, 2, 3, 4), ALL_TERMS,
     'pre_bn'),
    ('configs/snr/snr_r18_synthreid.py', (1, 2, 3, 4), ALL_TERMS, 'pre_bn'),
    ('configs/snr/snr_r50_1xb64-120e_market1501-to-dukemtmc.py',
     (1, 2, 3, 4), ALL_TERMS, 'bn'),
    ('configs/snr/snr_r18_synthreid-v2_stage4-only.py', (4, ), ALL_TERMS,
     'pre_bn'),
    ('configs/snr/snr_r18_synthreid-v2_no-lminus.py', (1, 2, 3, 4),
     ('pos_ap', 'pos_an'), 'pre_bn'),
    ('configs/snr/snr_r18_synthreid-v2_no-lplus.py', (1, 2, 3, 4),
     ('neg_ap', 'neg_an'), 'pre_bn'),
    ('configs/snr/snr_r18_synthreid-v2_only-p.py', (1, 2, 3, 4),
     ('pos_ap', 'neg_ap'), 'pre_bn'),
    ('configs/snr/snr_r18_synthreid-v2_only-n.py', (1, 2, 3, 4),
     ('pos_an', 'neg_an'), 'pre_bn'),
]
SNR_WEIGHTS = (0.1, 0.1, 0.5, 0.5)


@pytest.mark.parametrize('path,stages,terms,tri_feat', SNR_RECIPES)
def test_snr_recipe_step_feeds_each_stage_loss_its_triple(
        path, stages, terms, tri_feat):
    """Train one step of an SNR config.

    Spec SNR sections 1-3 and the README's ablation table: after each
    stage b with a module, the loss of stage b gets (GAP(IN(F_b)),
    GAP(F+_b), GAP(F-_b)) of that stage's map F_b, F+_b feeds the next
    stage, the stage-4 f+ is the pre-BNNeck feature v, and the optimised
    loss is L_cls + L_tri + sum_b lambda_b L_SNR,b with lambda = (0.1,
    0.1, 0.5, 0.5) and L_SNR,b the terms the ablation keeps.
    """
    _, model = build_recipe(path)
    model.train()
    data = tiny_batch(model)
    labels = labels_of(data)
    seen = {}
    capture_inputs(model.aux_losses['snr'], seen, 'snr')
    capture_inputs(model.head.loss_tri, seen, 'tri')
    backbone = model.backbone
    maps = {}
    for k, name in enumerate(backbone.res_layers):
        layer = getattr(backbone, name)
        layer.register_forward_hook(
            lambda m, i, o, k=k: maps.__setitem__(('out', k), o))
        layer.register_forward_pre_hook(
            lambda m, i, k=k: maps.__setitem__(('in', k), i[0]))
    losses = model(**data, mode='loss')
    calls = seen['snr']
    assert len(calls) == len(stages)
    for call, stage in zip(calls, stages):
        kwargs = call[1]
        snr = backbone.snr_modules[str(stage - 1)]
        with torch.no_grad():
            f_in, f_pos, f_neg = ref_snr_maps(snr, maps[('out', stage - 1)])
        for key, ref in (('feat', f_in), ('feat_pos', f_pos),
                         ('feat_neg', f_neg)):
            torch.testing.assert_close(
                kwargs[key], ref.mean((2, 3)), rtol=1e-4, atol=1e-5)
        if stage < 4:
            torch.testing.assert_close(
                maps[('in', stage)], f_pos, rtol=1e-4, atol=1e-5)
        expected = SNR_WEIGHTS[stage - 1] * ref_dual_causality(
            kwargs['feat'], kwargs['feat_pos'], kwargs['feat_neg'], labels,
            terms)
        torch.testing.assert_close(
            losses[f'loss_snr_stage{stage}'].double(),
            expected,
            rtol=1e-4,
            atol=1e-6)
    v = calls[-1][1]['feat_pos']
    tri_in = seen['tri'][0][0][0]
    expected_tri = v if tri_feat == 'pre_bn' else bn_train(
        v, model.head.bnneck)
    torch.testing.assert_close(tri_in, expected_tri, rtol=1e-4, atol=1e-5)
    total, _ = model.parse_losses(losses)
    expected_total = losses['loss_cls'] + losses['loss_tri'] + sum(
        losses[f'loss_snr_stage{b}'] for b in stages)
    torch.testing.assert_close(total, expected_total)
    assert {k for k in losses if 'loss' in k} == {
        'loss_cls', 'loss_tri'
    } | {f'loss_snr_stage{b}' for b in stages}


# ------------------------------------------------------------------ GMN


def ref_pic(x, keys):
    """L_pic (spec GMN section 6): batch-mean centre per pair-identity,
    groups of >= 2 pairs, mean over groups of the mean squared L2."""
    x = x.double()
    per_group = []
    for key in torch.unique(keys, dim=0):
        rows = x[(keys == key).all(1)]
        if len(rows) < 2:
            continue
        per_group.append(((rows - rows.mean(0))**2).sum(1).mean())
    return torch.stack(per_group).mean()


GMN_RECIPES = [
    # (config, DP rate or None, lambda or None)
    ('configs/gmn/gmn_r18_synthreid-v2.py', 0.5, 10.0),
    ('configs/gmn/gmn_r18_synthreid.py', 0.5, 10.0),
    ('configs/gmn/gmn_r50_1xb64-60e_m-ms-cs-to-c3.py', 0.5, 10.0),
    ('configs/gmn/gmn_r18_synthreid-v2_no-dp.py', None, 10.0),
    ('configs/gmn/gmn_r18_synthreid-v2_no-pic.py', 0.5, None),
    ('configs/gmn/gmn_r18_synthreid-v2_mnet-only.py', None, None),
    ('configs/gmn/gmn_r18_synthreid-v2_pic-w0p01.py', 0.5, 0.01),
    ('configs/gmn/gmn_r18_synthreid-v2_pic-w1.py', 0.5, 1.0),
    ('configs/gmn/gmn_r18_synthreid-v2_dp-r0p7.py', 0.7, 10.0),
]


@pytest.mark.parametrize('path,rate,lam', GMN_RECIPES)
def test_gmn_recipe_step_feeds_the_mnet_and_pic_their_pairs(path, rate, lam):
    """Train one step of a GMN config with DP switched on.

    Spec GMN sections 2-7: the M-Net gets the pair features
    ``(f_i - f_j)^2`` of the L2-normalised post-BN features over all
    ``i < j`` and, with DP (append mode, one copy), a dropped copy whose
    entries are 0 or ``f_sp / (1 - rho)``; L_gmn is the class-balanced BCE
    of all its logits, PIC acts on the same tensor with lambda, the
    triplet on the pre-BN feature, and the optimised loss is
    ``L_cls + L_tri + L_gmn + lambda L_pic``.
    """
    _, model = build_recipe(path)
    model.train()
    head = model.head
    head.dp_enabled = True
    data = tiny_batch(model)
    labels = labels_of(data)
    seen = {}
    capture_inputs(head.mnet, seen, 'mnet')
    capture_inputs(head.loss_tri, seen, 'tri')
    outs = []
    head.mnet.register_forward_hook(lambda m, i, o: outs.append(o))
    losses = model(**data, mode='loss')
    with torch.no_grad():
        f_t = copy.deepcopy(model).backbone(data['inputs'])[-1].mean((2, 3))
        f = F.normalize(bn_train(f_t, head.bnneck), dim=1)
    torch.testing.assert_close(
        seen['tri'][0][0][0], f_t, rtol=1e-4, atol=1e-5)
    i, j = torch.triu_indices(len(labels), len(labels), 1)
    clean = (f[i] - f[j])**2
    x = seen['mnet'][0][0][0]
    p = len(i)
    torch.testing.assert_close(x[:p], clean, rtol=1e-4, atol=1e-7)
    targets = labels[i] == labels[j]
    keys = torch.stack(
        [torch.minimum(labels[i], labels[j]),
         torch.maximum(labels[i], labels[j])], 1)
    if rate is None:
        assert len(x) == p
    else:
        assert len(x) == 2 * p
        copy_ = x[p:]
        kept = copy_ != 0
        torch.testing.assert_close(
            copy_[kept], clean[kept] / (1 - rate), rtol=1e-4, atol=1e-7)
        assert abs(kept.float().mean().item() - (1 - rate)) < 0.05
        targets, keys = targets.repeat(2), keys.repeat(2, 1)
    z = outs[0][0].double()
    ref_gmn = 0.5 * F.softplus(-z[targets]).mean() + 0.5 * F.softplus(
        z[~targets]).mean()
    torch.testing.assert_close(
        losses['loss_gmn'].double(), ref_gmn, rtol=1e-4, atol=1e-6)
    if lam is None:
        assert 'loss_pic' not in losses
    else:
        torch.testing.assert_close(
            losses['loss_pic'].double(),
            lam * ref_pic(x.detach(), keys),
            rtol=1e-4,
            atol=1e-9)
    total, _ = model.parse_losses(losses)
    expected = losses['loss_cls'] + losses['loss_tri'] + losses['loss_gmn']
    if lam is not None:
        expected = expected + losses['loss_pic']
    torch.testing.assert_close(total, expected)


@pytest.mark.parametrize('path,warmup', [
    ('configs/gmn/gmn_r18_synthreid-v2.py', 2),
    ('configs/gmn/gmn_r18_synthreid-v2_dp-e0.py', 0),
    ('configs/gmn/gmn_r18_synthreid-v2_dp-e5.py', 5),
    ('configs/gmn/gmn_r50_1xb64-60e_ms-cs-c3-to-m.py', 10),
    ('configs/gmn/gmn_r50_1xb64-60e_ms-cs-c3-to-m_p3.py', 10),
])
def test_gmn_dp_switches_on_at_the_documented_epoch(path, warmup):
    """DP is off for epochs < E_dp and on afterwards (spec GMN section 5;
    README: E_dp 2 on the 8-epoch SynthReID recipe, 0/5 in the sweeps,
    10 on R50), through the config's own ``custom_hooks``."""
    from types import SimpleNamespace

    from mmreid.registry import HOOKS
    cfg, model = build_recipe(path)
    hooks = [HOOKS.build(h) for h in cfg.custom_hooks]
    runner = SimpleNamespace(
        model=model, logger=SimpleNamespace(info=lambda *a: None))
    for epoch in range(0, 12):
        runner.epoch = epoch
        for hook in hooks:
            hook.before_train_epoch(runner)
        assert model.head.dp_enabled is (epoch >= warmup), epoch


# ------------------------------------------------------------------ AGW


@pytest.mark.parametrize('path', [
    'configs/mbn/agw_r50_1xb64-81e_sysu-mm01-all.py',
    'configs/mbn/mbn-agw_r50_1xb64-81e_regdb-v2t.py',
    'configs/mbn/agw_r18_synthreid-vi-v2.py',
    'configs/mbn/mbn-agw_r18-onestream_synthreid-vi-v2.py',
])
def test_agw_recipe_step_feeds_wrt_the_gem_feature(path):
    """Train one step of an AGW / MBN-AGW config.

    Spec MBN section 3 (AGW reference): WRT on ``x_pool``, the GeM (p = 3)
    of the last map before the BNNeck; CE without label smoothing on the
    logits of the bias-free classifier on the BNNeck output; both weight
    1. The R50 schedule trains the BNNeck and classifier at 10x the lr of
    the rest, every parameter with weight decay 5e-4, SGD Nesterov.
    """
    from mmengine.optim import build_optim_wrapper
    cfg, model = build_recipe(path)
    model.train()
    modality = [0, 0, 1, 1] * 4
    data = tiny_batch(model, num_ids=4, per_id=4, modality=modality)
    labels = labels_of(data)
    seen = {}
    capture_inputs(model.head.loss_tri, seen, 'tri')
    capture_inputs(model.head.loss_cls, seen, 'cls')
    losses = model(**data, mode='loss')
    with torch.no_grad():
        twin = copy.deepcopy(model)
        twin.route_modality(data['inputs'], data['data_samples'])
        fmap = twin.backbone(data['inputs'])[-1]
        x_pool = fmap.clamp(min=1e-6).pow(3).mean((2, 3)).pow(1 / 3)
        logits = bn_train(x_pool, model.head.bnneck) @ \
            model.head.classifier.weight.t()
    torch.testing.assert_close(
        seen['tri'][0][0][0], x_pool, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        seen['cls'][0][0][0], logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        losses['loss_cls'].double(), ref_ce(logits, labels, 0.0),
        rtol=1e-4, atol=1e-6)
    total, _ = model.parse_losses(losses)
    torch.testing.assert_close(total,
                               losses['loss_cls'] + losses['loss_tri'])
    if 'r50' not in path:
        return
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    for group in wrapper.optimizer.param_groups:
        assert group['weight_decay'] == 5e-4
        assert group['momentum'] == 0.9 and group['nesterov']
        for param in group['params']:
            name = names[id(param)]
            head = name.startswith(('head.bnneck.', 'head.classifier.'))
            assert group['lr'] == pytest.approx(0.1 if head else 0.01), name


# ---------------------------------------------- gradients of a full step


def grads_of(model, loss):
    """Gradients of ``loss`` for every trainable parameter, by name."""
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {
        name: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
        for name, p in model.named_parameters() if p.requires_grad
    }


def assert_same_grads(got, want):
    """Equal gradients, to 1e-3 of each tensor's largest entry (1e-6 for
    a gradient that is 0 by construction, e.g. the last IN scale of SNR,
    spec SNR section 3.3)."""
    assert got.keys() == want.keys()
    for name in got:
        scale = want[name].abs().max().clamp(min=1e-3)
        err = (got[name] - want[name]).abs().max() / scale
        assert err < 1e-3, (f'{name}: error {err:.3g} of the largest '
                            f'entry {scale:.3g}')


def test_snr_recipe_gradients_are_those_of_its_objective():
    """One step of ``snr_r18_synthreid-v2.py`` trains, parameter by
    parameter, the gradient of the objective assembled here from spec SNR
    sections 1-4: the backbone's stages with an SNR module after each
    (F+ fed on), GAP, BNNeck, CE-LS 0.1 on the logits, margin-0.3 triplet
    on v, and sum_b lambda_b L_SNR,b on each stage's pooled triple, with
    nothing detached (gradients reach the gates, IN and backbone)."""
    _, model = build_recipe('configs/snr/snr_r18_synthreid-v2.py')
    model.train()
    data = tiny_batch(model)
    labels = labels_of(data)
    total, _ = model.parse_losses(model(**data, mode='loss'))
    got = grads_of(model, total)

    backbone, head = model.backbone, model.head
    x = backbone.forward_stem(data['inputs'])
    snr_loss = 0
    for k, name in enumerate(backbone.res_layers):
        fmap = getattr(backbone, name)(x)
        f_in, f_pos, f_neg = ref_snr_maps(backbone.snr_modules[str(k)], fmap)
        snr_loss = snr_loss + SNR_WEIGHTS[k] * ref_dual_causality(
            f_in.mean((2, 3)), f_pos.mean((2, 3)), f_neg.mean((2, 3)),
            labels, ALL_TERMS)
        x = f_pos
    v = x.mean((2, 3))
    logits = bn_train(v, head.bnneck) @ head.classifier.weight.t()
    objective = ref_ce(logits, labels, 0.1) + ref_triplet(
        v, labels, 0.3) + snr_loss
    assert_same_grads(got, grads_of(model, objective))


def test_gmn_recipe_gradients_are_those_of_its_objective():
    """One step of ``gmn_r18_synthreid-v2.py`` with DP on trains,
    parameter by parameter, the gradient of the objective assembled here
    from spec GMN sections 2-7: L_cls (CE-LS 0.1) + L_tri (margin 0.3 on
    the pre-BN feature) + L_gmn (class-balanced BCE of the M-Net logits
    of the clean and dropped pair features of the L2-normalised post-BN
    features) + 10 L_pic on the same M-Net input, end to end (the mask of
    the dropped copy is taken from the step)."""
    _, model = build_recipe('configs/gmn/gmn_r18_synthreid-v2.py')
    model.train()
    head = model.head
    head.dp_enabled = True
    data = tiny_batch(model)
    labels = labels_of(data)
    seen = {}
    capture_inputs(head.mnet, seen, 'mnet')
    total, _ = model.parse_losses(model(**data, mode='loss'))
    got = grads_of(model, total)

    x_seen = seen['mnet'][0][0][0].detach()
    f_t = model.backbone(data['inputs'])[-1].mean((2, 3))
    f_b = bn_train(f_t, head.bnneck)
    f = F.normalize(f_b, dim=1)
    i, j = torch.triu_indices(len(labels), len(labels), 1)
    clean = (f[i] - f[j])**2
    p = len(i)
    mask = (x_seen[p:] != 0).float()
    x = torch.cat([clean, clean * mask / 0.5])
    targets = (labels[i] == labels[j]).repeat(2)
    keys = torch.stack(
        [torch.minimum(labels[i], labels[j]),
         torch.maximum(labels[i], labels[j])], 1).repeat(2, 1)
    z = head.mnet(x)
    l_gmn = 0.5 * F.softplus(-z[targets]).mean() + 0.5 * F.softplus(
        z[~targets]).mean()
    logits = f_b @ head.classifier.weight.t()
    objective = ref_ce(logits, labels, 0.1) + ref_triplet(
        f_t, labels, 0.3) + l_gmn + 10.0 * ref_pic(x, keys)
    assert_same_grads(got, grads_of(model, objective))
