import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.models.backbones import ResNet

from mmreid.models import SNR, DualCausalityLoss, load_pretrained
from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ALL_STAGES = (True, True, True, True)


def snr_plugins(stages=ALL_STAGES, **cfg):
    return [
        dict(
            cfg=dict(type='SNR', **cfg), stages=stages, position='after_stage')
    ]


def backbone(depth=18, plugins=None, **kwargs):
    return MODELS.build(
        dict(type='ReIDResNet', depth=depth, plugins=plugins, **kwargs))


def random_snr(channels=32, reduction=4, seed=0):
    """An SNR module with random IN affine parameters."""
    torch.manual_seed(seed)
    snr = SNR(channels, reduction=reduction, log_gate=True)
    with torch.no_grad():
        snr.in_norm.weight.uniform_(0.5, 2.0)
        snr.in_norm.bias.normal_()
    return snr


def test_shapes_and_training_outputs():
    snr = MODELS.build(dict(type='SNR', in_channels=32, reduction=4))
    x = torch.rand(3, 32, 8, 4)
    snr.train()
    out, aux = snr(x)
    assert out.shape == x.shape
    # The gate is a diagnostic, logged only when asked.
    assert set(aux) == {'feat', 'feat_pos', 'feat_neg'}
    snr.log_gate = True
    out, aux = snr(x)
    assert set(aux) == {'feat', 'feat_pos', 'feat_neg', 'log_gate'}
    for key in ('feat', 'feat_pos', 'feat_neg'):
        assert aux[key].shape == (3, 32) and aux[key].dtype == torch.float32
    assert aux['log_gate'].dim() == 0 and not aux['log_gate'].requires_grad
    snr.eval()
    out_eval = snr(x)
    assert isinstance(out_eval, torch.Tensor)
    assert torch.allclose(out_eval, out)
    with pytest.raises(ValueError, match='reduction'):
        SNR(8, reduction=16)


@pytest.mark.parametrize('channels,expected', [(256, 8976), (512, 34336),
                                               (1024, 134208), (2048, 530560)])
def test_parameter_count_per_stage(channels, expected):
    snr = SNR(channels)
    assert sum(p.numel() for p in snr.parameters()) == expected
    gate = sum(p.numel() for p in snr.gate.parameters())
    assert gate == expected - 2 * channels
    assert snr.gate.fc1.out_channels == channels // 16


def test_initialisation():
    snr = SNR(256)
    assert torch.equal(snr.in_norm.weight, torch.ones(256))
    assert torch.equal(snr.in_norm.bias, torch.zeros(256))
    assert not snr.in_norm.track_running_stats and snr.in_norm.eps == 1e-5
    for conv in (snr.gate.fc1, snr.gate.fc2):
        assert torch.equal(conv.bias, torch.zeros_like(conv.bias))
        # kaiming_normal_ fan_out/relu: std = sqrt(2 / out_channels).
        std = (2 / conv.out_channels)**0.5
        assert abs(conv.weight.std().item() / std - 1) < 0.1
    with torch.no_grad():
        snr.in_norm.bias.fill_(3.)
    snr.init_weights()
    assert torch.equal(snr.in_norm.bias, torch.zeros(256))


def test_decomposition_identities():
    snr = random_snr()
    x = torch.rand(4, 32, 6, 5) * 3  # non-negative, like a ReLU output
    maps = snr.decompose(x)
    f_in, res, a = maps['in'], maps['residual'], maps['gate']
    assert a.shape == (4, 32, 1, 1) and ((a > 0) & (a < 1)).all()
    # The gate acts on the pooled residual R = F - IN(F).
    pooled = (x - snr.in_norm(x)).mean(dim=(2, 3), keepdim=True)
    hidden = torch.relu(snr.gate.fc1(pooled))
    assert torch.allclose(a, torch.sigmoid(snr.gate.fc2(hidden)), atol=1e-6)
    assert torch.allclose(res, x - f_in)
    assert torch.allclose(maps['pos'], f_in + a * res, atol=1e-5)
    assert torch.allclose(maps['neg'], f_in + (1 - a) * res, atol=1e-5)
    # F+ + F- = F + IN(F) = 2 IN(F) + R; F+ = F - (1 - a) R.
    assert torch.allclose(maps['pos'] + maps['neg'], x + f_in, atol=1e-5)
    assert torch.allclose(maps['pos'], x - (1 - a) * res, atol=1e-5)
    # SNR §10.1: GAP(IN(F)) is beta for every sample.
    beta = snr.in_norm.bias.expand(4, 32)
    assert torch.allclose(f_in.mean(dim=(2, 3)), beta, atol=1e-5)
    # The forward agrees with the maps and pools them.
    snr.train()
    out, aux = snr(x)
    assert torch.allclose(out, maps['pos'], atol=1e-6)
    assert torch.allclose(aux['feat'], f_in.mean(dim=(2, 3)), atol=1e-5)
    assert torch.allclose(
        aux['feat_pos'], maps['pos'].mean(dim=(2, 3)), atol=1e-5)
    assert torch.allclose(
        aux['feat_neg'], maps['neg'].mean(dim=(2, 3)), atol=1e-5)
    assert torch.allclose(aux['log_gate'], a.mean())


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_pooled_features_are_fp32_exact_under_autocast(dtype):
    # SNR spec §3.2: pooled features, distances and L_SNR in fp32 even
    # under AMP. There the stage map is half precision; an IN output
    # rounded to it would move GAP(IN(F)) off beta by ~1e-3 and give the
    # "constant" reference distance D0 (1e-6, §3.3) a value and a gradient.
    snr = random_snr(channels=64, reduction=4).train()
    x = (torch.rand(8, 64, 16, 8) * 4).to(dtype)  # a stage map under AMP
    with torch.autocast('cpu', dtype=dtype):
        out, aux = snr(x)
    beta = snr.in_norm.bias.detach().expand(8, 64)
    assert aux['feat'].dtype == torch.float32
    assert torch.allclose(aux['feat'], beta, atol=1e-5)
    # The pooled triple is that of the fp32 maps of the same input.
    reference = snr.decompose(x.float())
    for key, name in (('feat_pos', 'pos'), ('feat_neg', 'neg')):
        pooled = reference[name].mean(dim=(2, 3))
        assert torch.allclose(aux[key], pooled, atol=2e-2, rtol=2e-2)
    # At the spec's initialisation (beta = 0) D0 is the clamp floor.
    snr = SNR(64, reduction=4).train()
    with torch.autocast('cpu', dtype=dtype):
        _, aux = snr(x)
    _, terms = DualCausalityLoss(log_terms=True)(
        aux['feat'],
        aux['feat_pos'],
        aux['feat_neg'],
        labels=torch.arange(4).repeat_interleave(2),
        return_terms=True)
    assert float(terms['d0_ap']) == pytest.approx(1e-6, abs=1e-7)
    assert float(terms['d0_an']) == pytest.approx(1e-6, abs=1e-7)


def test_gate_extremes():
    """SNR §10.3: a = 1 gives F+ = F, a = 0 gives F+ = IN(F)."""
    snr = random_snr().eval()
    x = torch.rand(2, 32, 4, 4)
    with torch.no_grad():
        snr.gate.fc2.bias.fill_(100.)
        assert torch.allclose(snr(x), x, atol=1e-5)
        snr.gate.fc2.bias.fill_(-100.)
        assert torch.allclose(snr(x), snr.in_norm(x), atol=1e-5)


def test_loss_ignores_in_scale():
    """SNR §10.4: the pooled triple does not depend on gamma, which gets no
    gradient from the dual causality loss."""
    snr = random_snr().train()
    x = torch.rand(8, 32, 6, 4)
    labels = torch.arange(8) // 2
    _, aux = snr(x)
    with torch.no_grad():
        snr.in_norm.weight.mul_(3.)
    _, aux_scaled = snr(x)
    for key in ('feat', 'feat_pos', 'feat_neg'):
        assert torch.allclose(aux[key], aux_scaled[key], atol=1e-5)
    DualCausalityLoss()(aux_scaled['feat'], aux_scaled['feat_pos'],
                        aux_scaled['feat_neg'], labels).backward()
    assert snr.in_norm.weight.grad.abs().max() <= 1e-6
    # The gate and beta do receive gradients.
    assert snr.gate.fc1.weight.grad.abs().sum() > 0
    assert snr.in_norm.bias.grad is not None


def test_eval_computes_only_the_output(monkeypatch):
    """SNR §10.10: in eval mode no F-/pooled triple, one gate call; the
    output of a sample does not depend on the batch."""
    snr = random_snr()
    calls = []
    snr.gate.fc2.register_forward_hook(lambda *args: calls.append(1))
    x = torch.rand(5, 32, 6, 4)
    snr.train()
    snr(x)
    assert len(calls) == 1

    def fail(*args, **kwargs):
        raise AssertionError('pooled triple computed in eval mode')

    monkeypatch.setattr(snr, '_pooled_triple', fail)
    snr.eval()
    out = snr(x)
    assert len(calls) == 2
    alone = snr(x[2:3])
    assert torch.allclose(alone, out[2:3], atol=1e-6)
    snr.train()
    with pytest.raises(AssertionError, match='pooled triple'):
        snr(x)


def snr_from_definition(snr, x):
    """F_in, F_pos and F_neg of SNR (spec SNR section 1.1) written out
    with the module's parameters, without any of its methods."""
    f_in = torch.nn.functional.instance_norm(
        x, weight=snr.in_norm.weight, bias=snr.in_norm.bias, eps=1e-5)
    residual = x - f_in
    pooled = residual.mean(dim=(2, 3), keepdim=True)
    gate = torch.sigmoid(
        snr.gate.fc2(torch.relu(snr.gate.fc1(pooled))))
    return (f_in, f_in + gate * residual, f_in + (1 - gate) * residual)


def test_training_gradients_are_those_of_the_definition():
    """SNR spec section 3.2: no detach anywhere. The output and the pooled
    triple must pass gradients to the stage map (the backbone), IN and
    the gate exactly as the maps of the definition do; a detached
    residual, gate input or output would silently train a different
    model while every value stays the same."""
    snr = random_snr().train()
    x = torch.rand(6, 32, 5, 4) * 3
    generator = torch.Generator().manual_seed(1)
    out_weight = torch.randn(6, 32, 5, 4, generator=generator)
    pooled_weights = torch.randn(3, 6, 32, generator=generator)

    def gradients(x, out, pooled):
        objective = (out * out_weight).sum() + sum(
            (w * p).sum() for w, p in zip(pooled_weights, pooled))
        return torch.autograd.grad(objective, [x] + list(snr.parameters()))

    x_mod = x.clone().requires_grad_()
    out, aux = snr(x_mod)
    got = gradients(x_mod, out,
                    [aux['feat'], aux['feat_pos'], aux['feat_neg']])
    x_def = x.clone().requires_grad_()
    f_in, f_pos, f_neg = snr_from_definition(snr, x_def)
    want = gradients(x_def, f_pos,
                     [f.mean(dim=(2, 3)) for f in (f_in, f_pos, f_neg)])
    names = ['x'] + [name for name, _ in snr.named_parameters()]
    for name, g, w in zip(names, got, want):
        assert w.abs().max() > 0, name
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5, msg=name)


def test_without_restitution_is_instance_norm():
    snr = SNR(32, restitution=False)
    assert snr.gate is None
    assert sum(p.numel() for p in snr.parameters()) == 64
    x = torch.rand(2, 32, 4, 4)
    snr.train()
    out = snr(x)
    assert isinstance(out, torch.Tensor)
    assert torch.allclose(out, snr.in_norm(x))


def test_backbone_without_plugins_is_mmpretrain_resnet():
    ours = backbone(
        out_indices=(0, 1, 2, 3), strides=(1, 2, 2, 2), last_stride=2)
    ref = ResNet(depth=18, out_indices=(0, 1, 2, 3))
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 3, 64, 32)
    for mode in (True, False):
        ours.train(mode)
        ref.train(mode)
        outs, refs = ours(x), ref(x)
        assert isinstance(outs, tuple) and len(outs) == 4
        for a, b in zip(outs, refs):
            assert torch.allclose(a, b)
        # (Both forward again: BN statistics stay in step in training.)
        (outs, aux), refs = ours(x, return_aux=True), ref(x)
        assert aux == {} and len(outs) == 4
        for a, b in zip(outs, refs):
            assert torch.allclose(a, b)
    assert ours.aux_plugin_stages() == {} and ours.plugin_abbrs == ()


@pytest.mark.parametrize('depth,channels', [(18, (64, 128, 256, 512)),
                                            (50, (256, 512, 1024, 2048))])
@pytest.mark.parametrize(
    'stages',
    [ALL_STAGES, (False, True, False, True), (False, False, False, True)])
def test_backbone_plugins_at_any_stages(depth, channels, stages):
    model = backbone(
        depth, plugins=snr_plugins(stages), out_indices=(0, 1, 2, 3))
    built = sorted(int(k) for k in model.snr_modules.keys())
    assert built == [i for i, s in enumerate(stages) if s]
    for i in built:
        assert model.snr_modules[str(i)].in_channels == channels[i]
    assert model.aux_plugin_stages() == {'snr': tuple(built)}
    x = torch.randn(2, 3, 64, 32)
    model.train()
    attributes = set(vars(model))
    outs, aux = model(x, return_aux=True)
    # The aux outputs are returned, not kept: forward leaves no state.
    assert set(vars(model)) == attributes
    assert [o.size(1) for o in outs] == list(channels)
    assert list(aux) == ['snr'] and sorted(aux['snr']) == built
    for i in built:
        assert aux['snr'][i]['feat_pos'].shape == (2, channels[i])
    # Stage 4's f+ is the pooled (pre-BNNeck) backbone output.
    if stages[3]:
        assert torch.allclose(
            aux['snr'][3]['feat_pos'], outs[3].mean(dim=(2, 3)), atol=1e-5)
    # Without return_aux the training forward returns the stage outputs
    # only, the same tensors.
    plain = model(x)
    assert isinstance(plain, tuple) and len(plain) == 4
    for a, b in zip(plain, outs):
        assert torch.allclose(a, b)
    # The plugin output is what the stage returns and the next stage gets.
    model.eval()
    with torch.no_grad():
        outs = model(x)
        k = built[0]
        stem = model.maxpool(model.relu(model.norm1(model.conv1(x))))
        feat = stem
        for i in range(k + 1):
            feat = getattr(model, f'layer{i + 1}')(feat)
            if stages[i]:
                feat = model.snr_modules[str(i)](feat)
        assert torch.allclose(outs[k], feat, atol=1e-5)
        assert model(x, return_aux=True)[1] == {}


def test_backbone_parameter_count_r50():
    plain = backbone(50)
    snr = backbone(50, plugins=snr_plugins())
    extra = sum(p.numel()
                for p in snr.parameters()) - sum(p.numel()
                                                 for p in plain.parameters())
    assert extra == 708080


def test_plugin_config_errors():
    with pytest.raises(ValueError, match='position'):
        backbone(plugins=[
            dict(cfg=dict(type='SNR'), stages=ALL_STAGES, position='before')
        ])
    with pytest.raises(ValueError, match='4 entries'):
        backbone(plugins=snr_plugins((True, True)))
    with pytest.raises(KeyError, match='registry'):
        backbone(plugins=[dict(cfg=dict(type='NoSuchPlugin'))])
    with pytest.raises(ValueError, match='two plugins'):
        backbone(plugins=snr_plugins() + snr_plugins())


def test_r50_output_map_size():
    """SNR §10.9: 2048 x 16 x 8 for 256 x 128 with last stride 1."""
    model = backbone(50, plugins=snr_plugins()).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 128))
    assert len(out) == 1 and out[0].shape == (1, 2048, 16, 8)


def test_plain_checkpoint_misses_exactly_the_snr_parameters(tmp_path):
    plain = backbone(18)
    state = {f'backbone.{k}': v for k, v in plain.state_dict().items()}
    state['head.fc.weight'] = torch.randn(1000, 512)
    path = tmp_path / 'r18.pth'
    torch.save(dict(state_dict=state), path)

    stages = (True, False, True, True)
    model = backbone(18, plugins=snr_plugins(stages))
    snr_keys = {
        f'snr_modules.{i}.{name}'
        for i in (0, 2, 3)
        for name in ('in_norm.weight', 'in_norm.bias', 'gate.fc1.weight',
                     'gate.fc1.bias', 'gate.fc2.weight', 'gate.fc2.bias')
    }
    assert {k for k in model.state_dict() if 'snr' in k} == snr_keys
    report = load_pretrained(model, str(path), prefix='backbone.')
    assert set(report['missing']) == snr_keys
    assert report['unexpected'] == []
    assert torch.equal(model.conv1.weight, state['backbone.conv1.weight'])


def build_model(plugins=None, aux_loss=None, stage_weights=None):
    """A ResNet-18 ReID model; ``aux_loss`` is the loss of the SNR plugin
    (None: its outputs discarded, if there is one)."""
    aux_losses = None
    if plugins:
        aux_losses = dict(snr=aux_loss)
    elif aux_loss is not None:
        aux_losses = dict(snr=aux_loss)
    return MODELS.build(
        dict(
            type='ReIDModel',
            backbone=dict(type='ReIDResNet', depth=18, plugins=plugins),
            head=dict(type='BNNeckHead', in_channels=512, num_classes=4),
            aux_losses=aux_losses,
            aux_stage_weights=None if stage_weights is None else dict(
                snr=stage_weights)))


def make_data(model, n=8):
    inputs = torch.randint(0, 256, (n, 3, 64, 32), dtype=torch.uint8)
    samples = [ReIDDataSample().set_gt_label(i // 2) for i in range(n)]
    return model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), True)


def test_model_logs_only_losses_and_accuracy_by_default():
    """Issue 17.6: a training step of the SNR recipe logs the losses and
    the accuracy; the per-stage terms and the gate only when asked."""
    aux_loss = dict(type='DualCausalityLoss')
    model = build_model(snr_plugins(), aux_loss, 0.5)
    model.init_weights()
    data = make_data(model)
    quiet = model(**data, mode='loss')
    stage_keys = {f'loss_snr_stage{b}' for b in (1, 2, 3, 4)}
    assert set(quiet) == {'loss_cls', 'loss_tri', 'accuracy'} | stage_keys
    loud = build_model(
        snr_plugins(log_gate=True), dict(aux_loss, log_terms=True), 0.5)
    loud.load_state_dict(model.state_dict())
    logged = loud(**data, mode='loss')
    # Each of the 4 stages adds 6 loss terms and the gate: 35 keys.
    assert len(logged) == 35 and set(quiet) < set(logged)
    # Quiet or not, the losses are the same numbers.
    for key in quiet:
        assert torch.allclose(quiet[key], logged[key]), key


def test_model_leaves_terms_of_a_batch_without_negatives_out_of_the_log():
    """A user logs the SNR terms (``log_terms=True``) and one training
    batch holds a single identity. The step logged every stage's
    ``pos_ap`` ... ``neg_an`` as 0, which reads as a satisfied loss and
    pulls the averages toward 0. Right: those keys are left out of that
    step (nothing was measured); the stage losses stay, 0, for backprop,
    and the gate value is still logged."""
    model = build_model(
        snr_plugins(log_gate=True),
        dict(type='DualCausalityLoss', log_terms=True), 0.5)
    model.init_weights()
    data = make_data(model)
    for sample in data['data_samples']:
        sample.set_gt_label(0)
    losses = model(**data, mode='loss')
    for b in (1, 2, 3, 4):
        assert losses[f'loss_snr_stage{b}'].item() == 0
        assert f'snr_stage{b}_gate' in losses
        for name in DualCausalityLoss.TERMS + ('d0_ap', 'd0_an'):
            assert f'snr_stage{b}_{name}' not in losses, (b, name)


def test_model_logs_one_weighted_loss_per_stage():
    weights = (0.1, 0.1, 0.5, 0.5)
    model = build_model(
        snr_plugins(log_gate=True),
        dict(type='DualCausalityLoss', log_terms=True), weights)
    model.init_weights()
    data = make_data(model)
    torch.manual_seed(0)
    losses = model(**data, mode='loss')
    stage_keys = {f'loss_snr_stage{b}' for b in (1, 2, 3, 4)}
    assert {k
            for k in losses
            if 'loss' in k} == {'loss_cls', 'loss_tri'} | stage_keys
    for b in (1, 2, 3, 4):
        for name in ('pos_ap', 'pos_an', 'neg_ap', 'neg_an', 'd0_ap', 'd0_an',
                     'gate'):
            assert f'snr_stage{b}_{name}' in losses
        # beta = 0 at init: the reference distances are the clamp floor.
        assert losses[f'snr_stage{b}_d0_ap'] < 1e-4
    model_state = model.state_dict()
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    for name, param in model.backbone.snr_modules.named_parameters():
        assert param.grad is not None, name
    # The model applies the stage weights.
    model = build_model(
        snr_plugins(log_gate=True), dict(type='DualCausalityLoss'), 1)
    model.load_state_dict(model_state)
    torch.manual_seed(0)
    plain = model(**data, mode='loss')
    for b, w in enumerate(weights, 1):
        key = f'loss_snr_stage{b}'
        assert torch.allclose(losses[key], w * plain[key], rtol=1e-4)


def test_model_single_stage_and_no_aux_loss():
    model = build_model(
        snr_plugins((False, False, False, True)),
        dict(type='DualCausalityLoss'), (0.1, 0.1, 0.5, 0.5))
    losses = model(**make_data(model), mode='loss')
    assert {k
            for k in losses
            if k.startswith('loss_snr')} == {'loss_snr_stage4'}
    # Plugin outputs discarded on purpose (aux_losses=dict(snr=None)): the
    # head's losses only.
    model = build_model(snr_plugins())
    losses = model(**make_data(model), mode='loss')
    assert set(losses) == {'loss_cls', 'loss_tri', 'accuracy'}
    # A loss without a plugin that feeds it is a configuration error,
    # found when the model is built.
    with pytest.raises(ValueError, match="no plugin 'snr'"):
        build_model(None, dict(type='DualCausalityLoss'))
    with pytest.raises(
            ValueError, match=r"aux_stage_weights\['snr'\] has 2 entries"):
        build_model(snr_plugins(), dict(type='DualCausalityLoss'), (1, 1))
    # A loss-giving plugin in eval mode gives nothing to the loss.
    model = build_model(snr_plugins(), dict(type='DualCausalityLoss'))
    model.backbone.eval()
    with pytest.raises(RuntimeError, match='no auxiliary outputs'):
        model(**make_data(model), mode='loss')
    # One of its modules in eval mode: that stage's loss would be left out.
    model.train()
    model.backbone.snr_modules['2'].eval()
    with pytest.raises(
            RuntimeError,
            match=r"plugin 'snr' gave no auxiliary outputs at stage\(s\) "
            r'\[3\] of \[1, 2, 3, 4\]'):
        model(**make_data(model), mode='loss')


def test_model_eval_output_format_unchanged():
    model = build_model(snr_plugins(), dict(type='DualCausalityLoss'),
                        (0.1, 0.1, 0.5, 0.5))
    model.eval()
    data = make_data(model)
    with torch.no_grad():
        feats = model(data['inputs'], mode='tensor')
        outs = model.backbone(data['inputs'])
    assert feats.shape == (8, 512)
    # The backbone's eval output is the tuple of stage outputs.
    assert isinstance(outs, tuple) and len(outs) == 1
    assert outs[0].shape == (8, 512, 4, 2)  # last stride 1


def load_model_cfg(name):
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'snr', name))
    return cfg.model.to_dict()


def test_configs_differ_from_baseline_only_by_snr():
    """SNR §10.14: without SNR and L_SNR the model is the Baseline."""
    base = load_model_cfg('baseline_r18_synthreid.py')
    snr = load_model_cfg('snr_r18_synthreid.py')
    assert snr['aux_losses'] == dict(
        snr=dict(type='DualCausalityLoss', use_pos=True, use_neg=True))
    assert snr['aux_stage_weights'] == dict(snr=(0.1, 0.1, 0.5, 0.5))
    plugins = snr['backbone'].pop('plugins')
    assert plugins[0]['cfg']['type'] == 'SNR'
    assert plugins[0]['stages'] == ALL_STAGES
    snr.pop('aux_losses')
    snr.pop('aux_stage_weights')
    assert snr == base
    no_loss = load_model_cfg('snr_r18_synthreid_no-loss.py')
    assert no_loss['aux_losses'] == dict(snr=None)
    assert no_loss['aux_stage_weights'] is None
    assert no_loss['backbone']['plugins'] == plugins
    assert load_model_cfg('snr_r18_synthreid_no-lplus.py'
                          )['aux_losses']['snr']['use_pos'] is False
    assert load_model_cfg('snr_r18_synthreid_no-lminus.py'
                          )['aux_losses']['snr']['use_neg'] is False
    a_in = load_model_cfg('baseline-a-in_r18_synthreid.py')
    assert a_in['backbone']['plugins'][0]['cfg']['restitution'] is False
    assert a_in['aux_losses'] is None
    assert load_model_cfg('snr_r18_synthreid_stage4-only.py'
                          )['backbone']['plugins'][0]['stages'] == (False,
                                                                    False,
                                                                    False,
                                                                    True)
    # Same parameters and outputs with identical weights.
    torch.manual_seed(0)
    model_base = MODELS.build(base)
    model_snr = MODELS.build(snr)
    model_snr.load_state_dict(model_base.state_dict())
    model_base.eval()
    model_snr.eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(
            model_base(x, mode='tensor'), model_snr(x, mode='tensor'))


SNR_SPECIFIC = ('snr_stages', 'snr_reduction', 'snr_loss_weights')


@pytest.mark.parametrize(
    'setting',
    ['market1501-to-dukemtmc', 'dukemtmc-to-market1501', 'dimn-protocol'])
def test_r50_baselines_are_the_snr_recipe_without_snr(setting):
    """SNR §7: the Baseline has the same losses otherwise and the same
    recipe. The BoT configs the READMEs named had BoT's augmentation
    (pad-crop, random erasing) and triplet (margin 0.3 on pre-BN), not
    SNR's (Random2DTranslation + jitter, soft margin on BN(v))."""
    snr = Config.fromfile(
        osp.join(REPO, 'configs', 'snr',
                 f'snr_r50_1xb64-120e_{setting}.py')).to_dict()
    base = Config.fromfile(
        osp.join(REPO, 'configs', 'snr',
                 f'baseline_r50_1xb64-120e_{setting}.py')).to_dict()
    plugins = snr['model']['backbone'].pop('plugins')
    assert [p['cfg']['type'] for p in plugins] == ['SNR']
    assert snr['model'].pop('aux_losses')['snr']['type'] == \
        'DualCausalityLoss'
    assert snr['model'].pop('aux_stage_weights')
    assert base['model']['backbone'].pop('plugins') is None
    assert base['model'].pop('aux_losses') is None
    assert base['model'].pop('aux_stage_weights') is None
    for key in SNR_SPECIFIC:
        assert snr.pop(key) is not None
        assert base.pop(key) is None
    assert base == snr
    head = base['model']['head']
    assert head['loss_tri']['margin'] is None
    assert head['triplet_feat'] == 'bn'
    pipeline = base['train_dataloader']['dataset']['pipeline']
    train = [t['type'] for t in pipeline]
    assert 'Random2DTranslation' in train
    assert 'ReIDRandomErasing' not in train
