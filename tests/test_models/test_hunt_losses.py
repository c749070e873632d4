"""Wrong-number hunt in the training losses and their logged values.

Every reference below is written from the definition (Hermans et al.
2017 for batch-hard mining; AGW's weighted regularised triplet, spec
``mbn_vireid.md`` section 3.2; SNR's dual causality loss, spec ``snr.md``
section 3.2; GMN's pair losses and logged values, spec ``gmn.md`` sections
4-6 and ``configs/gmn/README.md``), not from mmreid's code.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from mmreid.models.losses import (DualCausalityLoss, PairVerificationLoss,
                                  TripletLoss, WRTLoss)
from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample
from mmreid.utils import register_all_modules

register_all_modules()

LABELS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


def distance(x, y):
    """Euclidean distance of two vectors, from its definition."""
    return (x - y).pow(2).sum().sqrt()


def hardest(feats, labels, i):
    """Batch-hard mining of anchor ``i``: the farthest positive other than
    the anchor and the nearest negative."""
    pos = [
        distance(feats[i], feats[j]) for j in range(len(labels))
        if labels[j] == labels[i] and j != i
    ]
    neg = [
        distance(feats[i], feats[j]) for j in range(len(labels))
        if labels[j] != labels[i]
    ]
    return torch.stack(pos).max(), torch.stack(neg).min()


def triplet_definition(feats, labels):
    """Batch-hard triplet with margin 0.3 (Hermans et al. 2017)."""
    terms = []
    for i in range(len(labels)):
        d_ap, d_an = hardest(feats, labels, i)
        terms.append(F.relu(d_ap - d_an + 0.3))
    return torch.stack(terms).mean()


def wrt_definition(feats, labels):
    """WRT of AGW (spec mbn_vireid.md section 3.2): softmax weights
    ``exp(d)`` over the positives (the anchor included) and ``exp(-d)``
    over the negatives, soft margin, no margin, nothing detached."""
    terms = []
    for i in range(len(labels)):
        # d(i, i) = 0 is a constant (sqrt's gradient at 0 is not finite).
        dist = torch.stack([
            distance(feats[i], feats[j]) if j != i else feats.new_zeros(())
            for j in range(len(labels))
        ])
        pos, neg = labels == labels[i], labels != labels[i]
        d_p = (torch.softmax(dist[pos], 0) * dist[pos]).sum()
        d_n = (torch.softmax(-dist[neg], 0) * dist[neg]).sum()
        terms.append(F.softplus(d_p - d_n))
    return torch.stack(terms).mean()


def dual_causality_definition(feat, feat_pos, feat_neg, labels):
    """SNR's L_SNR of one stage (spec snr.md section 3.2), each space
    mined on its own."""
    sp = F.softplus
    total = 0.
    for i in range(len(labels)):
        d0_ap, d0_an = hardest(feat, labels, i)
        dp_ap, dp_an = hardest(feat_pos, labels, i)
        dn_ap, dn_an = hardest(feat_neg, labels, i)
        total = total + (
            sp(dp_ap - d0_ap) + sp(d0_an - dp_an) + sp(d0_ap - dn_ap) +
            sp(dn_an - d0_an))
    return total / len(labels)


def random_feats(seed, num=8, dim=6, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(num, dim, generator=gen, dtype=dtype)


def build_gmn_head(**kwargs):
    head = MODELS.build(
        dict(
            type='GMNHead',
            in_channels=16,
            num_classes=16,
            mnet=dict(hidden_channels=8),
            **kwargs))
    head.init_weights()
    return head


def samples_of(labels):
    return [ReIDDataSample().set_gt_label(int(y)) for y in labels]


# ------------------------------------------------------------- defects


def metric_loss_value(name, feats, labels):
    if name == 'TripletLoss':
        return TripletLoss(margin=0.3)(feats[0], labels)
    if name == 'WRTLoss':
        return WRTLoss(exact_softmax=True)(feats[0], labels)
    return DualCausalityLoss()(*feats, labels)


def metric_loss_reference(name, feats, labels):
    if name == 'TripletLoss':
        return triplet_definition(feats[0], labels)
    if name == 'WRTLoss':
        return wrt_definition(feats[0], labels)
    return dual_causality_definition(*feats, labels)


@pytest.mark.parametrize('shape', [(8, 1), (1, 8)])
@pytest.mark.parametrize('name',
                         ['TripletLoss', 'WRTLoss', 'DualCausalityLoss'])
def test_metric_losses_refuse_labels_that_are_not_one_per_row(name, shape):
    """A head of one's own (docs/customize.md: "implement
    ``loss(feats, data_samples)``") that gathers the pids with
    ``torch.stack([s.gt_label for s in data_samples])`` passes labels of
    shape (N, 1), each ``gt_label`` being a (1,) tensor; a transposed one
    gives (1, N). The losses take them without a word: the identity mask
    ``labels[None] == labels[:, None]`` broadcasts to (N, N, 1) or
    (1, 1, N), so the triplet and dual causality losses of a (1, N) batch
    are exactly 0 (every pair "positive", no anchor with a negative) and
    those of an (N, 1) batch are another number (0.93 -> 3.41 for the
    triplet here). ``WRTLoss`` checks ``labels.numel()`` only, which both
    shapes pass. Right: the batch-hard value of the definition
    (Hermans et al. 2017; spec snr.md section 3.2; mbn_vireid.md section
    3.2) for these pids, or a ``ValueError`` naming the shape, as the
    identity cross-entropy (torch) and ``WRTLoss`` (for a wrong count)
    already give."""
    feats = [random_feats(seed, dtype=torch.float32) for seed in range(3)]
    expected = metric_loss_reference(name, feats, LABELS)
    try:
        value = metric_loss_value(name, feats, LABELS.view(shape))
    except ValueError:
        return
    assert value.item() == pytest.approx(expected.item(), rel=1e-4), (
        f'{name} with labels of shape {shape} gave {value.item():.4f}, '
        f'the definition {expected.item():.4f}')


def test_pair_verification_refuses_targets_outside_0_1():
    """``PairVerificationLoss`` documents targets "1 for same-identity
    pairs, else 0 (bool, int or float)". A user who calls it with the
    +-1 convention of ``nn.SoftMarginLoss`` (the convention of the WRT and
    SNR losses' references) gets ``targets.bool()``: -1 is True, every
    pair positive, so the class-balanced L_gmn (gmn.md section 4) becomes
    ``mean softplus(-z)`` over all pairs, a plausible number (1.92 here
    instead of 1.35) with no negative term. Right: the loss of
    the pairs the targets mean, or a ``ValueError`` naming the values
    (bad input is refused, not reinterpreted)."""
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(30, generator=gen, dtype=torch.float64) * 3
    same = torch.rand(30, generator=gen) < 0.2
    expected = 0.5 * F.softplus(-z[same]).mean() + \
        0.5 * F.softplus(z[~same]).mean()
    targets = torch.where(same, 1, -1)
    try:
        value = PairVerificationLoss()(z, targets)
    except ValueError:
        return
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


def test_mnet_accuracy_in_replace_mode_is_of_the_clean_pairs():
    """``configs/gmn/README.md`` and the ``GMNHead`` docstring: the logged
    ``mnet_acc``, ``mnet_pos_acc`` and ``mnet_neg_acc`` are accuracies
    on the **clean** pairs (threshold z = 0). With ``dp.mode='replace'``
    (a documented option of gmn.md section 5) no clean pair reaches the
    M-Net, and the head then counts the DP copies instead: once DP turns
    on after its warm-up the logged accuracies measure dropout-perturbed
    pairs, and change with the dropout draw alone (0.55 / 0.56 / 0.59 here
    for the same features and weights). Right: the accuracy of the clean
    pairs (the same under any dropout draw), or no key at all for what
    was not measured."""
    torch.manual_seed(0)
    head = build_gmn_head(dp=dict(rate=0.5, mode='replace', n_copies=1))
    head.train()
    head.dp_enabled = True
    labels = torch.arange(4).repeat_interleave(3)
    feats = random_feats(0, num=12, dim=16, dtype=torch.float32)
    logged = []
    for seed in (1, 2, 3, 4):
        torch.manual_seed(seed)
        losses = head.loss(feats, samples_of(labels))
        logged.append({
            key: losses[key].item()
            for key in ('mnet_acc', 'mnet_pos_acc', 'mnet_neg_acc')
            if key in losses
        })
    for other in logged[1:]:
        assert other == logged[0], (
            'the clean-pair accuracies changed with the dropout draw: '
            f'{logged}')


# --------------------------------------------------------- test gaps


def test_wrt_gradient_is_the_definitions_weights_not_detached():
    """AGW's WRT (spec mbn_vireid.md section 3.2) backpropagates through
    its softmax weights too; detaching them keeps every loss value and
    changes the gradient, which no value test would notice. Checked
    against autograd of the per-anchor definition."""
    base = random_feats(0) * 2
    got, want = (base.clone().requires_grad_(True) for _ in range(2))
    value = WRTLoss(exact_softmax=True, loss_weight=0.5)(got, LABELS)
    expected = 0.5 * wrt_definition(want, LABELS)
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    value.backward()
    expected.backward()
    torch.testing.assert_close(
        got.grad, want.grad, rtol=1e-4, atol=1e-6, check_dtype=False)
    # Detached weights would give this other gradient.
    detached = base.clone().requires_grad_(True)
    dist = torch.cdist(detached, detached)
    pos = (LABELS[None] == LABELS[:, None]).double()
    w_p = torch.softmax(dist.detach().masked_fill(pos == 0, -math.inf), 1)
    w_n = torch.softmax(-dist.detach().masked_fill(pos == 1, math.inf), 1)
    d_p = (w_p * dist).sum(1)
    d_n = (w_n * dist).sum(1)
    (0.5 * F.softplus(d_p - d_n).mean()).backward()
    assert (detached.grad - want.grad).abs().max() > 1e-3


def test_dual_causality_gradient_reaches_all_three_spaces():
    """"Nothing is detached" (spec snr.md section 3.2): with a reference
    space that is not constant (a non-zero IN bias spread, or the
    '--only-Sr' comparison), the gradient of L_SNR reaches ``feat`` as
    well as ``feat_pos`` and ``feat_neg``, each as autograd of the
    per-anchor definition gives it; a detached reference distance keeps
    the value and loses the first."""
    base = [random_feats(seed) for seed in range(3)]
    got = [b.clone().requires_grad_(True) for b in base]
    want = [b.clone().requires_grad_(True) for b in base]
    value = DualCausalityLoss(loss_weight=0.7)(*got, LABELS)
    expected = 0.7 * dual_causality_definition(*want, LABELS)
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    value.backward()
    expected.backward()
    for name, g, w in zip(('feat', 'feat_pos', 'feat_neg'), got, want):
        assert w.grad.abs().max() > 1e-3, name
        torch.testing.assert_close(
            g.grad, w.grad, rtol=1e-4, atol=1e-6, check_dtype=False,
            msg=lambda m, name=name: f'{name}: {m}')
