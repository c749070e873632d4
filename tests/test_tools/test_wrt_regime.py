"""tools/analysis_tools/wrt_regime.py on the tiny SynthReID config."""
import math
import sys

import pytest
import torch
import torch.nn as nn

from mmreid.models.losses import WRTLoss
from mmreid.utils import register_all_modules
from mmreid.utils.config import read_config
from tests.fixtures.finished_runs import save_trained_checkpoint
from tests.fixtures.processes import load_tool, options_not_taken

TOOL = 'tools/analysis_tools/wrt_regime.py'


def test_weight_sum_is_the_losses_own(make_config):
    """The tool's negative weight sum is the one WRTLoss uses, and the
    anchors are every sample of the batches run."""
    register_all_modules()
    tool = load_tool(TOOL)
    cfg = read_config(make_config(head_extra="loss_tri=dict(type='WRTLoss')"))
    stats = tool.measure(cfg, 'init', batches=2)
    assert stats['near'].numel() == 16 and stats['reference'].numel() == 2
    assert ((stats['weight_sum'] > 0) & (stats['weight_sum'] <= 1)).all()
    # Far apart, the reference's negative term vanishes: the same features
    # scaled up show the collapse the tool measures.
    feats = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    for scale, collapsed in ((1.0, False), (40.0, True)):
        x = feats * scale
        dist = torch.cdist(x, x)
        dist_n = dist.masked_fill(labels[None] == labels[:, None], 1e9)
        total = torch.exp(-dist_n).sum(1)
        assert ((total / (total + 1e-6)) < 0.5).any() == collapsed
        gap = WRTLoss()(x, labels) - WRTLoss(exact_softmax=True)(x, labels)
        assert (gap.abs() > 1.0) == collapsed


def test_refuses_a_head_without_wrt(make_config):
    register_all_modules()
    tool = load_tool(TOOL)
    with pytest.raises(ValueError, match='not WRTLoss'):
        tool.measure(read_config(make_config()), 'init', batches=1)


def test_a_checkpoint_is_loaded_with_mmreids_rules(make_config, tmp_path):
    """The tool loads a checkpoint as tools/test.py does: a model trained
    with plain BN (e.g. AGW) is refused by an MBN config, not copied into
    both modalities by the initialisation hook (mmengine's loader did)."""
    from mmreid.registry import MODELS
    register_all_modules()
    tool = load_tool(TOOL)
    plain = read_config(
        make_config(head_extra="loss_tri=dict(type='WRTLoss')"))
    state = MODELS.build(plain.model).state_dict()
    ckpt = tmp_path / 'plain_bn.pth'
    torch.save(dict(state_dict=state), ckpt)
    assert tool.measure(plain, str(ckpt), batches=1)['near'].numel() == 8
    mbn = read_config(
        make_config(
            extra="model['backbone']['norm_cfg'] = dict(type='MBN')",
            head_extra="loss_tri=dict(type='WRTLoss')",
            name='mbn.py'))
    with pytest.raises(RuntimeError, match='MBN'):
        tool.measure(mbn, str(ckpt), batches=1)


def test_init_is_the_start_of_training_whatever_the_sampler_seed(make_config):
    """'init' drew the weights with the sampler's --seed (default 0), so
    it was training's start only when that equalled the config's
    randomness.seed (cross-check audit s19 W1). The weights are now drawn
    as training draws them: the config's seed, or --init-seed."""
    register_all_modules()
    tool = load_tool(TOOL)
    cfg = read_config(
        make_config(
            extra='randomness = dict(seed=5)',
            head_extra="loss_tri=dict(type='WRTLoss')"))

    def reference(**kwargs):
        return tool.measure(
            cfg, 'init', batches=1, seed=0, **kwargs)['reference']

    start = reference()
    assert torch.equal(start, reference(init_seed=5))
    assert not torch.equal(start, reference(init_seed=0))


WRT = "loss_tri=dict(type='WRTLoss')"


def tool_help(tool, monkeypatch, capsys) -> str:
    monkeypatch.setattr(sys, 'argv', [TOOL, '--help'])
    with pytest.raises(SystemExit):
        tool.parse_args()
    return capsys.readouterr().out


def test_a_checkpoint_of_another_network_is_refused_as_tools_test_does(
        make_config, tmp_path, monkeypatch, capsys):
    """A checkpoint trained with last stride 2 (its saved config,
    meta['cfg'], says so; every tensor fits a last stride 1 model) and a
    converted fast-reid one (its stem pooling) were measured with the
    config's network; tools/test.py refuses both, and so does the tool,
    with advice it takes."""

    from mmreid.registry import MODELS
    from mmreid.utils.key_mapping import convert_checkpoint_file
    register_all_modules()
    tool = load_tool(TOOL)
    help_text = tool_help(tool, monkeypatch, capsys)
    stride2 = make_config(
        extra="model['backbone']['last_stride'] = 2",
        head_extra=WRT,
        name='stride2.py')
    state = MODELS.build(read_config(stride2).model).state_dict()
    ckpt = save_trained_checkpoint(tmp_path / 'stride2.pth', state, stride2)
    cfg = read_config(make_config(head_extra=WRT))
    with pytest.raises(ValueError, match='builds another network') as e:
        tool.measure(cfg, str(ckpt), batches=1)
    message = str(e.value)
    assert ("model.backbone.last_stride: the checkpoint's config has 2, the "
            'config 1' in message), message
    assert '--cfg-options model.backbone.last_stride=2' in message
    assert options_not_taken(message, help_text) == [], message
    cfg.merge_from_dict({'model.backbone.last_stride': 2})
    assert tool.measure(cfg, str(ckpt), batches=1)['near'].numel() == 8
    # fast-reid pools its stem without padding: another network.
    fastreid = {}
    for key, value in state.items():
        key = key.replace('head.bnneck.', 'heads.bottleneck.0.')
        fastreid[key.replace('head.classifier.', 'heads.')] = value
    torch.save(dict(model=fastreid), tmp_path / 'model_final.pth')
    convert_checkpoint_file(
        str(tmp_path / 'model_final.pth'),
        str(tmp_path / 'converted.pth'),
        'fastreid',
        strict=True,
        input_size=[32, 16],
        distance='cosine')
    cfg = read_config(make_config(head_extra=WRT))
    with pytest.raises(ValueError, match='was converted from fastreid') as e:
        tool.measure(cfg, str(tmp_path / 'converted.pth'), batches=1)
    assert 'model.backbone.stem_pool.padding=0' in str(e.value)
    assert options_not_taken(str(e.value), help_text) == [], str(e.value)


def test_a_classifier_of_other_identities_is_skipped_with_a_warning(
        make_config, tmp_path):
    """As tools/test.py: skipped, with a warning the tool hid (its
    logger was 'silent')."""
    from unittest import mock

    from mmengine.logging import MMLogger

    from mmreid.registry import MODELS
    register_all_modules()
    tool = load_tool(TOOL)
    other = read_config(
        make_config(
            extra="model['head']['num_classes'] = 11",
            head_extra=WRT,
            name='other_ids.py'))
    ckpt = tmp_path / 'other_ids.pth'
    torch.save(dict(state_dict=MODELS.build(other.model).state_dict()), ckpt)
    cfg = read_config(make_config(head_extra=WRT))
    logger = MMLogger.get_current_instance()
    with mock.patch.object(logger, 'warning') as warned, \
            mock.patch.object(logger, 'log') as logged:
        assert tool.measure(cfg, str(ckpt), batches=1)['near'].numel() == 8
    lines = [str(c) for c in warned.call_args_list + logged.call_args_list]
    assert any('trained on another number of identities' in line
               and 'head.classifier.weight (11, 64) vs (8, 64)' in line
               for line in lines), lines


class FakeWRTModel(nn.Module):
    """A model whose training forward hands each batch's (features,
    labels) to its head's WRTLoss."""

    def __init__(self):
        super().__init__()
        self.head = nn.Module()
        self.head.loss_tri = WRTLoss()

    def data_preprocessor(self, batch, training):
        return dict(batch=batch)

    def forward(self, batch, mode):
        return self.head.loss_tri(*batch)


def test_statistics_from_the_definitions(monkeypatch):
    """Per anchor: the distance to its nearest sample of another
    identity and the reference softmax's negative weight sum S / (S +
    1e-6), S = sum exp(-d_n); per batch: WRTLoss in both modes; over the
    first ``batches`` batches of the loader only, each batch its own."""
    from mmengine.config import Config
    tool = load_tool(TOOL)
    labels = torch.tensor([0, 0, 1, 1])
    near = torch.tensor([[0., 0.], [0., 1.], [3., 0.], [3., 4.]])
    # Nearest negatives 30 away: the reference's negative term collapses.
    far = torch.tensor([[0., 0.], [0., 1.], [30., 0.], [30., 1.]])
    unused = torch.zeros(4, 2)
    loader = [(near, labels), (far, labels), (unused, labels)]
    monkeypatch.setattr(tool, 'build_start_model',
                        lambda cfg, init_seed=None: (FakeWRTModel(), 0))
    monkeypatch.setattr(tool.Runner, 'build_dataloader',
                        staticmethod(lambda cfg, seed=None: loader))
    stats = tool.measure(
        Config(dict(train_dataloader=dict())), 'init', batches=2)
    r10, r18, r901 = math.sqrt(10), math.sqrt(18), math.sqrt(901)
    assert stats['near'].tolist() == pytest.approx(
        [3, r10, 3, r18, 30, 30, 30, 30])

    def weight_sum(*d):
        s = sum(math.exp(-x) for x in d)
        return s / (s + 1e-6)

    expected = [
        weight_sum(3, 5),
        weight_sum(r10, r18),
        weight_sum(3, r10),
        weight_sum(5, r18),
        weight_sum(30, r901),
        weight_sum(30, r901),
        weight_sum(30, r901),
        weight_sum(30, r901)
    ]
    assert stats['weight_sum'].tolist() == pytest.approx(expected, rel=1e-6)
    assert stats['weight_sum'][4:].max() < 0.5  # collapsed
    for key, exact in (('reference', False), ('exact', True)):
        loss = WRTLoss(exact_softmax=exact)
        assert stats[key].tolist() == pytest.approx(
            [float(loss(near, labels)), float(loss(far, labels))])
    # On the far batch the two modes differ (the collapse the tool shows).
    assert abs(float(stats['reference'][1] - stats['exact'][1])) > 1.0
