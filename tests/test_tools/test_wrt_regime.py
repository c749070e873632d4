"""tools/analysis_tools/wrt_regime.py on the tiny SynthReID config."""
import pytest
import torch

from mmreid.models.losses import WRTLoss
from mmreid.utils import register_all_modules
from mmreid.utils.config import read_config
from tests.fixtures.processes import load_tool

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
