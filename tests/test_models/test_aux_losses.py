"""Auxiliary losses belong to their plugin (issue 17.1).

A backbone plugin that contributes a loss returns its auxiliary outputs
from the training forward; ``ReIDModel(aux_losses=...)`` keys one loss per
plugin abbreviation and weighs it per stage (``aux_stage_weights``).
"""
import warnings

import pytest
import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from mmreid.models import DualCausalityLoss
from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample

ALL_STAGES = (True, True, True, True)
SNR_WEIGHTS = (0.1, 0.1, 0.5, 0.5)


class EnergyProbe(nn.Module):
    """Test-only plugin: scales the stage map by a learnable scalar (1 at
    init, so the stage output is unchanged) and gives, in training, the
    per-sample mean energy ``mean(out ** 2)`` (N,) and a log value."""

    _abbr_ = 'probe'
    has_aux_outputs = True

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        out = x * self.scale
        if not self.training:
            return out
        return out, dict(
            energy=out.float().pow(2).mean(dim=(1, 2, 3)),
            log_scale=self.scale.detach()[0])


class EnergySpreadLoss(nn.Module):
    """Test-only loss: the mean squared deviation of each sample's energy
    from the mean energy of its identity. Takes no ``return_terms``."""

    def forward(self, energy, labels):
        centres = torch.stack(
            [energy[labels == label].mean() for label in labels])
        return (energy - centres).pow(2).mean()


class TermsLoss(EnergySpreadLoss):
    """Test-only loss returning the log terms given at build time."""

    def __init__(self, terms=('spread', )):
        super().__init__()
        self.term_names = terms

    def forward(self, energy, labels, return_terms=False):
        loss = super().forward(energy, labels)
        terms = {name: loss.detach() * 1000 for name in self.term_names}
        return (loss, terms) if return_terms else loss


class LogProbe(EnergyProbe):
    """Gives the log entries named at build time (value: its scale)."""

    _abbr_ = 'logprobe'

    def __init__(self, in_channels, log_names=('log_scale', )):
        super().__init__(in_channels)
        self.log_names = log_names

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        out, aux = out
        aux = dict(energy=aux['energy'])
        aux.update({name: self.scale[0] * 100 for name in self.log_names})
        return out, aux


class FeatureLossProbe(nn.Module):
    """No ``_abbr_``: mmcv infers ``feature_loss_probe``."""

    has_aux_outputs = True

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels

    def forward(self, x):
        if not self.training:
            return x
        return x, dict(energy=x.pow(2).mean(dim=(1, 2, 3)))


class UndeclaredProbe(EnergyProbe):
    """Returns auxiliary outputs without declaring them."""

    _abbr_ = 'undeclared'
    has_aux_outputs = False


@pytest.fixture(autouse=True, scope='module')
def registered():
    """Register the test-only plugin and loss in mmreid's MODELS, as a
    user's module would, and remove them afterwards."""
    names = ('EnergyProbe', 'EnergySpreadLoss', 'UndeclaredProbe', 'TermsLoss',
             'LogProbe', 'FeatureLossProbe')
    for name in names:
        MODELS.register_module(name=name, module=globals()[name])
    yield
    for name in names:
        MODELS._module_dict.pop(name)


def plugins(snr=ALL_STAGES, probe=None, probe_type='EnergyProbe'):
    out = []
    if snr:
        out.append(
            dict(cfg=dict(type='SNR'), stages=snr, position='after_stage'))
    if probe:
        out.append(
            dict(
                cfg=dict(type=probe_type),
                stages=probe,
                position='after_stage'))
    return out


def build(plugin_cfgs, **kwargs):
    return MODELS.build(
        dict(
            type='ReIDModel',
            backbone=dict(type='ReIDResNet', depth=18, plugins=plugin_cfgs),
            head=dict(type='BNNeckHead', in_channels=512, num_classes=4),
            **kwargs))


def make_data(model, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(
        0, 256, (n, 3, 64, 32), dtype=torch.uint8, generator=g)
    samples = [ReIDDataSample().set_gt_label(i // 2) for i in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def capture_inputs(modules):
    """Record the input of each module (0-based stage -> tensor)."""
    seen = dict()
    for key, module in modules.items():
        module.register_forward_hook(
            lambda m, args, out, key=key: seen.__setitem__(int(key), args[0]))
    return seen


def test_two_plugins_each_with_its_own_loss_train_one_step():
    """SNR and a second loss-giving plugin whose outputs DualCausalityLoss
    does not take (``energy``): each plugin's outputs reach its own loss,
    weighted per stage; one optimiser step updates both plugins."""
    probe_weights = (1.0, 0.0, 0.3, 1.0)
    torch.manual_seed(0)
    model = build(
        plugins(probe=(False, True, True, False)),
        aux_losses=dict(
            snr=dict(type='DualCausalityLoss'),
            probe=dict(type='EnergySpreadLoss')),
        aux_stage_weights=dict(snr=SNR_WEIGHTS, probe=probe_weights))
    assert model.backbone.aux_plugin_stages() == {
        'snr': (0, 1, 2, 3),
        'probe': (1, 2)
    }
    data = model.data_preprocessor(make_data(model), True)
    snr_in = capture_inputs(model.backbone.snr_modules)
    probe_in = capture_inputs(model.backbone.probe_modules)
    model.train()
    losses = model(**data, mode='loss')
    # Stage 2 of the probe has weight 0: no loss, no log value.
    assert list(losses) == [
        'loss_cls', 'loss_tri', 'accuracy', 'loss_snr_stage1',
        'loss_snr_stage2', 'loss_snr_stage3', 'loss_snr_stage4',
        'loss_probe_stage3', 'probe_stage3_scale'
    ]
    labels = torch.arange(8) // 2
    # References from the definitions, on the maps each plugin received.
    for stage, weight in enumerate(SNR_WEIGHTS):
        snr = model.backbone.snr_modules[str(stage)]
        maps = snr.decompose(snr_in[stage])
        expected = DualCausalityLoss()(maps['in'].mean(dim=(2, 3)),
                                       maps['pos'].mean(dim=(2, 3)),
                                       maps['neg'].mean(dim=(2, 3)), labels)
        assert torch.allclose(
            losses[f'loss_snr_stage{stage + 1}'],
            weight * expected,
            rtol=1e-4,
            atol=1e-6), stage
    energy = probe_in[2].pow(2).mean(dim=(1, 2, 3))
    pair_mean = energy.view(4, 2).mean(dim=1).repeat_interleave(2)
    expected = 0.3 * (energy - pair_mean).pow(2).mean()
    assert expected > 0
    assert torch.allclose(losses['loss_probe_stage3'], expected, rtol=1e-5)
    assert losses['probe_stage3_scale'] == 1.0

    # One training step: both plugins' parameters move.
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log_vars = model.train_step(make_data(model), optim)
    parts = [v for k, v in log_vars.items() if k.startswith('loss_')]
    assert len(parts) == 7
    assert torch.isfinite(log_vars['loss'])
    assert torch.allclose(log_vars['loss'], sum(parts), rtol=1e-5)
    after = model.state_dict()
    for key in ('backbone.probe_modules.2.scale',
                'backbone.snr_modules.0.gate.fc1.weight',
                'backbone.snr_modules.3.in_norm.bias'):
        assert not torch.equal(before[key], after[key]), key


def test_loss_weight_zero_and_default_weight():
    torch.manual_seed(0)
    model = build(
        plugins(snr=None, probe=ALL_STAGES),
        aux_losses=dict(probe=dict(type='EnergySpreadLoss')))
    assert model.aux_stage_weights == {}
    data = model.data_preprocessor(make_data(model), True)
    unweighted = model(**data, mode='loss')
    assert [k for k in unweighted if k.startswith('loss_probe')
            ] == [f'loss_probe_stage{b}' for b in (1, 2, 3, 4)]
    model.aux_stage_weights = dict(probe=2.0)
    weighted = model(**data, mode='loss')
    for b in (1, 2, 3, 4):
        key = f'loss_probe_stage{b}'
        assert torch.allclose(weighted[key], 2 * unweighted[key])


def test_plugin_outputs_discarded_on_purpose():
    torch.manual_seed(0)
    model = build(
        plugins(probe=(False, False, True, False)),
        aux_losses=dict(snr=None, probe=dict(type='EnergySpreadLoss')))
    assert model.discarded_aux == ('snr', ) and list(
        model.aux_losses) == ['probe']
    losses = model(
        **model.data_preprocessor(make_data(model), True), mode='loss')
    assert [k for k in losses
            if 'stage' in k] == ['loss_probe_stage3', 'probe_stage3_scale']


def test_errors_name_the_abbreviation():
    # A plugin with outputs but no loss.
    with pytest.raises(
            ValueError,
            match="plugin 'probe' gives auxiliary outputs.*"
            r'aux_losses=dict\(probe=None\)'):
        build(
            plugins(probe=ALL_STAGES),
            aux_losses=dict(snr=dict(type='DualCausalityLoss')))
    # A loss keyed by an abbreviation no plugin has.
    with pytest.raises(
            ValueError,
            match=r"aux_losses\['prob'\]: the backbone "
            r"\(ReIDResNet\) has no plugin 'prob'; its plugins "
            r"are \['snr'\]"):
        build(
            plugins(),
            aux_losses=dict(
                snr=dict(type='DualCausalityLoss'),
                prob=dict(type='EnergySpreadLoss')))
    # A loss for a plugin that gives no outputs.
    with pytest.raises(
            ValueError,
            match=r"aux_losses\['snr'\] is set but plugin 'snr' "
            'gives no auxiliary outputs'):
        build(
            [dict(cfg=dict(type='SNR', restitution=False), stages=ALL_STAGES)],
            aux_losses=dict(snr=dict(type='DualCausalityLoss')))
    # Stage weights without a loss, or of the wrong length.
    with pytest.raises(
            ValueError,
            match=r"aux_stage_weights\['snr'\] is set but "
            "aux_losses has no loss for 'snr'"):
        build(
            plugins(),
            aux_losses=dict(snr=None),
            aux_stage_weights=dict(snr=SNR_WEIGHTS))
    with pytest.raises(
            ValueError,
            match=r"aux_stage_weights\['probe'\] has 3 entries, "
            'the backbone has 4 stages'):
        build(
            plugins(snr=None, probe=ALL_STAGES),
            aux_losses=dict(probe=dict(type='EnergySpreadLoss')),
            aux_stage_weights=dict(probe=(1, 1, 1)))
    # A negative or NaN stage weight would maximise, or NaN, the loss.
    for bad in ((0.1, -0.1, 0.5, 0.5), float('nan')):
        with pytest.raises(
                ValueError,
                match=r"aux_stage_weights\['probe'\] must be a finite "
                'number >= 0'):
            build(
                plugins(snr=None, probe=ALL_STAGES),
                aux_losses=dict(probe=dict(type='EnergySpreadLoss')),
                aux_stage_weights=dict(probe=bad))
    # A backbone without plugins.
    with pytest.raises(ValueError, match="has no plugin 'snr'"):
        MODELS.build(
            dict(
                type='ReIDModel',
                backbone=dict(type='mmpretrain.ResNet', depth=18),
                head=dict(type='BNNeckHead', in_channels=512, num_classes=4),
                aux_losses=dict(snr=dict(type='DualCausalityLoss'))))


def test_undeclared_aux_outputs_are_refused():
    model = build(
        plugins(snr=None, probe=ALL_STAGES, probe_type='UndeclaredProbe'))
    assert model.backbone.aux_plugin_stages() == {}
    data = model.data_preprocessor(make_data(model), True)
    with pytest.raises(
            TypeError,
            match=r'plugin undeclared_modules\.0 '
            r'\(UndeclaredProbe\) returned auxiliary outputs but '
            'does not declare has_aux_outputs'):
        model(**data, mode='loss')


def test_aux_outputs_no_loss_expects_are_refused():
    """loss_aux keeps no auxiliary output silently: one that no entry of
    aux_losses expects (nor discards with ``abbr=None``) is refused."""
    outputs = {'snr': {0: dict(feat=torch.randn(2, 8))}}
    samples = [ReIDDataSample().set_gt_label(i) for i in range(2)]
    model = build(plugins(snr=None))
    with pytest.raises(
            RuntimeError,
            match="^plugin 'snr' gave auxiliary outputs that aux_losses does "
            'not expect'):
        model.loss_aux(outputs, samples)
    discarding = build(plugins(), aux_losses=dict(snr=None))
    assert discarding.loss_aux(outputs, samples) == {}


def test_deprecated_aux_loss_maps_to_the_new_shape():
    """``aux_loss=`` (one config, ``stage_weights`` inside) still builds,
    warns, and gives exactly the losses of the new shape."""
    torch.manual_seed(0)
    new = build(
        plugins(),
        aux_losses=dict(snr=dict(type='DualCausalityLoss', log_terms=True)),
        aux_stage_weights=dict(snr=SNR_WEIGHTS))
    with pytest.warns(
            FutureWarning,
            match=r'aux_loss=\.\.\.\) is deprecated.*'
            r"aux_losses=dict\(snr=\{'type': 'DualCausalityLoss'"):
        old = build(
            plugins(),
            aux_loss=dict(
                type='DualCausalityLoss',
                log_terms=True,
                stage_weights=list(SNR_WEIGHTS)))
    assert list(old.aux_losses) == ['snr'] and old.discarded_aux == ()
    assert old.aux_losses['snr'].log_terms is True
    assert old.aux_stage_weights == dict(snr=SNR_WEIGHTS)
    old.load_state_dict(new.state_dict())
    data = new.data_preprocessor(make_data(new), True)
    expected, got = new(**data, mode='loss'), old(**data, mode='loss')
    assert list(got) == list(expected) and len(got) == 3 + 4 * 7
    for key in expected:
        assert torch.equal(got[key], expected[key]), key

    # aux_loss=None: the plugins' outputs are discarded, as before.
    with pytest.warns(FutureWarning):
        old = build(plugins(), aux_loss=None)
    assert old.discarded_aux == ('snr', ) and not len(old.aux_losses)
    assert set(old(**data,
                   mode='loss')) == {'loss_cls', 'loss_tri', 'accuracy'}
    # No deprecation warning without the old keyword.
    with warnings.catch_warnings():
        warnings.simplefilter('error', FutureWarning)
        build(plugins(), aux_losses=dict(snr=None))
    with pytest.raises(TypeError, match='not both'):
        build(
            plugins(),
            aux_loss=dict(type='DualCausalityLoss'),
            aux_losses=dict(snr=None))
    with pytest.raises(
            ValueError, match='no plugin of the backbone .* gives auxiliary'):
        with pytest.warns(FutureWarning):
            build(None, aux_loss=dict(type='DualCausalityLoss'))


def log_probe_model(log_names=('log_scale', ), terms=('spread', )):
    plugin = dict(
        cfg=dict(type='LogProbe', log_names=log_names),
        stages=(False, False, False, True),
        position='after_stage')
    loss = dict(type='TermsLoss', terms=terms)
    return build([plugin], aux_losses=dict(logprobe=loss))


def test_log_values_are_not_optimised():
    """Terms and ``log_*`` entries are logged, and mmengine's total is
    exactly the sum of the ``loss_*`` outputs."""
    torch.manual_seed(0)
    model = log_probe_model()
    losses = model(
        **model.data_preprocessor(make_data(model), True), mode='loss')
    assert [k for k in losses if 'stage' in k] == [
        'loss_logprobe_stage4', 'logprobe_stage4_spread',
        'logprobe_stage4_scale'
    ]
    total, _ = model.parse_losses(losses)
    expected = sum(v for k, v in losses.items() if k.startswith('loss_'))
    assert torch.allclose(total, expected)


@pytest.mark.parametrize(
    'log_names, terms, match',
    [
        # A loss term named like a loss.
        ((), ('loss_x', ), r"term 'loss_x' of aux_losses\['logprobe'\] "
         r"\(TermsLoss\) is logged as 'logprobe_stage4_loss_x', which "
         "contains 'loss'"),
        # A log entry named like a loss.
        (('log_loss_scale', ), (), r"entry 'log_loss_scale' of plugin "
         r"'logprobe' is logged as 'logprobe_stage4_loss_scale'"),
        # A term and a log entry giving the same key.
        (('log_gate', ), ('gate', ), r"entry 'log_gate' of plugin "
         r"'logprobe' is logged as 'logprobe_stage4_gate', a key that "
         'another term or log entry of the same stage already uses'),
    ])
def test_log_names_that_would_be_optimised_or_collide_are_refused(
        log_names, terms, match):
    model = log_probe_model(log_names, terms)
    data = model.data_preprocessor(make_data(model), True)
    with pytest.raises(ValueError, match=match):
        model(**data, mode='loss')


def test_abbreviation_containing_loss_is_refused_at_build():
    cfg = [
        dict(
            cfg=dict(type='FeatureLossProbe'),
            stages=(False, False, True, False),
            position='after_stage')
    ]
    with pytest.raises(
            ValueError,
            match=r"aux_losses\['feature_loss_probe'\]: the abbreviation "
            "of plugin 'feature_loss_probe' contains 'loss'"):
        build(
            cfg,
            aux_losses=dict(feature_loss_probe=dict(type='EnergySpreadLoss')))
    # Its outputs discarded on purpose: no log key, nothing to refuse.
    build(cfg, aux_losses=dict(feature_loss_probe=None))


def test_aux_key_equal_to_a_head_output_is_refused(monkeypatch):
    model = log_probe_model()
    head_loss = model.head.loss
    monkeypatch.setattr(
        model.head, 'loss', lambda *args: dict(
            head_loss(*args), logprobe_stage4_scale=torch.zeros(())))
    data = model.data_preprocessor(make_data(model), True)
    with pytest.raises(
            ValueError,
            match=r"log values \['logprobe_stage4_scale'\] have the names "
            r'of outputs of the head \(BNNeckHead\)'):
        model(**data, mode='loss')
