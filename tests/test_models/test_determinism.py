"""A training step gives the same gradients every time, on the CPU and,
with deterministic algorithms, on a GPU.

torch's CPU ``index_put_(accumulate=True)``, the backward of advanced
indexing ``x[idx]``, adds rows in parallel when the output is large enough:
with repeated, unsorted indices (the second member of every pair, the
pair-identity of every pair) the sums come out in a different order on every
call and GMN training did not reproduce. The checks run with several torch
threads (the test workers run with one, where the race cannot show) and
sizes above torch's parallel grain.
"""
import hashlib

import pytest
import torch
from mmengine.config import Config

from mmreid.models.heads.gmn_head import (all_pairs, pair_features,
                                          pair_identity_keys)
from mmreid.models.losses.pair_losses import PICLoss, group_ids
from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample

#: Repetitions per check: before the fix 4 threads gave a new gradient on
#: nearly every call (7 distinct in 20 even when pinned to one CPU).
REPEATS = 12


@pytest.fixture
def threads():
    """Run the test body with 4 torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(before)


def _digest(tensors):
    h = hashlib.sha1()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _grad_digests(fn, inputs, repeats=REPEATS):
    """Digests of d fn(inputs) / d inputs over ``repeats`` calls."""
    out = set()
    for _ in range(repeats):
        x = inputs.clone().requires_grad_(True)
        fn(x).backward()
        out.add(_digest([x.grad]))
    return out


def _pairs_and_weights(num=32, dim=512):
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(num, dim, generator=gen)
    idx_i, idx_j = all_pairs(num)
    weights = torch.randn(len(idx_i), dim, generator=gen)
    labels = torch.arange(num // 4).repeat_interleave(4)
    return feats, idx_i, idx_j, weights, labels


def test_pair_features_backward_is_deterministic(threads):
    feats, idx_i, idx_j, weights, _ = _pairs_and_weights()

    def fn(x):
        return (pair_features(x, idx_i, idx_j) * weights).sum()

    assert len(_grad_digests(fn, feats)) == 1


def test_pic_loss_backward_is_deterministic(threads):
    feats, idx_i, idx_j, _, labels = _pairs_and_weights()
    pairs = pair_features(feats, idx_i, idx_j)
    keys = pair_identity_keys(labels, idx_i, idx_j)
    loss = PICLoss()

    def fn(x):
        return loss(x, keys, groups=group_ids(keys))

    assert len(_grad_digests(fn, pairs)) == 1


def _samples(labels, modalities=None):
    out = []
    for k, label in enumerate(labels.tolist()):
        sample = ReIDDataSample()
        sample.set_gt_label(label)
        if modalities is not None:
            sample.set_metainfo(dict(modality=int(modalities[k])))
        out.append(sample)
    return out


def _model_grad_digests(config,
                        modalities=None,
                        repeats=3,
                        device='cpu',
                        size=(64, 32)):
    cfg = Config.fromfile(config)
    cfg.model.backbone.pop('init_cfg', None)  # never download weights
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if hasattr(model.head, 'dp_enabled'):
        model.head.dp_enabled = True  # past the warm-up: DP masks drawn
    model.to(device).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    inputs = torch.randn(32, 3, *size, generator=gen).to(device)
    labels = torch.arange(8).repeat_interleave(4)
    digests = set()
    for _ in range(repeats):
        model.load_state_dict(state)
        model.zero_grad()
        torch.manual_seed(2)  # DP masks and any other draw
        losses = model.loss(inputs, _samples(labels, modalities))
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        digests.add(
            _digest([p.grad for p in model.parameters()
                     if p.grad is not None]))
    return digests


@pytest.mark.parametrize('config', [
    'configs/gmn/gmn_r18_synthreid-v2.py',
    'configs/snr/snr_r18_synthreid-v2.py',
    'configs/snr/baseline_r18_synthreid-v2.py',
])
def test_training_step_is_deterministic(threads, config):
    assert len(_model_grad_digests(config)) == 1


@pytest.mark.parametrize('config', [
    'configs/mbn/mbn-agw_r18_synthreid-vi-v2.py',
    'configs/mbn/mbn-agw_r18-onestream_synthreid-vi-v2.py',
])
def test_vi_training_step_is_deterministic(threads, config):
    # Mixed order: the per-modality split and the restoring permutation are
    # part of the step.
    modalities = torch.tensor([0, 1] * 16)
    assert len(_model_grad_digests(config, modalities)) == 1


def test_gmn_dp_instance_position_is_deterministic(threads):
    cfg = Config.fromfile('configs/gmn/gmn_r18_synthreid-v2.py')
    cfg.model.head.dp.position = 'instance'
    torch.manual_seed(0)
    head = MODELS.build(cfg.model).head
    head.train()
    head.dp_enabled = True  # past the warm-up
    feats, _, _, _, labels = _pairs_and_weights()

    def fn(x):
        torch.manual_seed(3)
        pair_feats, *_ = head.build_pairs(x, labels)
        return (pair_feats * torch.linspace(-1, 1, x.size(1))).sum()

    assert head.dp_active
    assert len(_grad_digests(fn, feats)) == 1


@pytest.fixture
def cuda_deterministic():
    """Deterministic algorithms and cuDNN, as mmengine's
    ``randomness.deterministic=True`` sets them, restored afterwards.
    (``tests/conftest.py`` sets ``CUBLAS_WORKSPACE_CONFIG``: torch reads it
    once per process, at the first CUDA matrix product.)"""
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    yield
    torch.use_deterministic_algorithms(before[0])
    torch.backends.cudnn.deterministic = before[1]
    torch.backends.cudnn.benchmark = before[2]


@pytest.mark.cuda
@pytest.mark.parametrize('config,modalities,size', [
    ('configs/gmn/gmn_r18_synthreid-v2.py', None, (64, 32)),
    ('configs/snr/snr_r18_synthreid-v2.py', None, (64, 32)),
    ('configs/snr/baseline_r18_synthreid-v2.py', None, (64, 32)),
    ('configs/mbn/mbn-agw_r18_synthreid-vi-v2.py', 'mixed', (64, 32)),
    ('configs/mbn/mbn-agw_r18-onestream_synthreid-vi-v2.py', 'mixed',
     (64, 32)),
    ('configs/baseline/bot_r50_1xb64-120e_market1501.py', None, (256, 128)),
    ('configs/gmn/gmn_r50_1xb64-60e_ms-cs-c3-to-m.py', None, (256, 128)),
    ('configs/snr/snr_r50_1xb64-120e_market1501-to-dukemtmc.py', None,
     (256, 128)),
    ('configs/mbn/mbn-agw_r50_1xb64-81e_sysu-mm01-all.py', 'mixed',
     (256, 128)),
])
def test_training_step_is_deterministic_on_cuda(cuda_deterministic, config,
                                                modalities, size):
    # Every op of every model family has a deterministic CUDA kernel (none
    # raises under use_deterministic_algorithms) and gives one gradient.
    if modalities == 'mixed':
        modalities = torch.tensor([0, 1] * 16)
    digests = _model_grad_digests(
        config, modalities, repeats=3, device='cuda', size=size)
    assert len(digests) == 1
