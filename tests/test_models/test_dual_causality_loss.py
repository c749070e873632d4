import logging

import pytest
import torch
import torch.nn.functional as F

from mmreid.models import DualCausalityLoss
from mmreid.registry import MODELS


def naive_distance(x, y):
    return (x - y).pow(2).sum().clamp(min=1e-12).sqrt()


def naive_hardest(feats, labels, i):
    """Farthest positive (self included) and nearest negative of i."""
    pos = [
        naive_distance(feats[i], feats[j]) for j in range(len(labels))
        if labels[j] == labels[i]
    ]
    neg = [
        naive_distance(feats[i], feats[j]) for j in range(len(labels))
        if labels[j] != labels[i]
    ]
    return max(pos), min(neg)


def naive_loss(feat, feat_pos, feat_neg, labels, use_pos=True, use_neg=True):
    """Per-anchor loop of SNR §3.2, mining each space on its own."""
    total = 0.
    n = len(labels)
    for i in range(n):
        d0_ap, d0_an = naive_hardest(feat, labels, i)
        dp_ap, dp_an = naive_hardest(feat_pos, labels, i)
        dn_ap, dn_an = naive_hardest(feat_neg, labels, i)
        if use_pos:
            total = total + F.softplus(dp_ap - d0_ap) + F.softplus(d0_an -
                                                                   dp_an)
        if use_neg:
            total = total + F.softplus(d0_ap - dn_ap) + F.softplus(dn_an -
                                                                   d0_an)
    return total / n


def random_batch(n=8, c=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    feats = [
        torch.randn(n, c, generator=gen, dtype=torch.float64) for _ in range(3)
    ]
    labels = torch.arange(n) // 2
    return feats, labels


@pytest.mark.parametrize('use_pos,use_neg', [(True, True), (True, False),
                                             (False, True)])
def test_matches_naive_loop_and_switches(use_pos, use_neg):
    (feat, feat_pos, feat_neg), labels = random_batch()
    loss = DualCausalityLoss(use_pos=use_pos, use_neg=use_neg)
    expected = naive_loss(feat, feat_pos, feat_neg, labels, use_pos, use_neg)
    out = loss(feat, feat_pos, feat_neg, labels)
    # The loss computes in fp32.
    assert out.dtype == torch.float32
    assert torch.allclose(out.double(), expected, atol=1e-5)


def test_switches_add_up_and_weight():
    (feat, feat_pos, feat_neg), labels = random_batch(seed=1)
    both = DualCausalityLoss()(feat, feat_pos, feat_neg, labels)
    plus = DualCausalityLoss(use_neg=False)(feat, feat_pos, feat_neg, labels)
    minus = DualCausalityLoss(use_pos=False)(feat, feat_pos, feat_neg, labels)
    assert torch.allclose(both, plus + minus, atol=1e-6)
    assert not torch.allclose(plus, minus)
    weighted = DualCausalityLoss(loss_weight=0.5)(feat, feat_pos, feat_neg,
                                                  labels)
    assert torch.allclose(weighted, 0.5 * both)
    with pytest.raises(ValueError, match='at least one'):
        DualCausalityLoss(use_pos=False, use_neg=False)


def test_terms_are_returned_and_sum_to_loss():
    (feat, feat_pos, feat_neg), labels = random_batch(seed=2)
    loss, terms = DualCausalityLoss(log_terms=True)(
        feat, feat_pos, feat_neg, labels, return_terms=True)
    assert set(terms) == {
        'pos_ap', 'pos_an', 'neg_ap', 'neg_an', 'd0_ap', 'd0_an'
    }
    parts = sum(terms[k] for k in ('pos_ap', 'pos_an', 'neg_ap', 'neg_an'))
    assert torch.allclose(loss, parts)
    assert not any(v.requires_grad for v in terms.values())


def test_closed_form_with_constant_reference():
    """SNR §10.5: with f = beta = 0, D0 is the clamp floor 1e-6."""
    (_, feat_pos, feat_neg), labels = random_batch(seed=3)
    feat_pos, feat_neg = feat_pos.float(), feat_neg.float()
    feat = torch.zeros_like(feat_pos)
    loss = DualCausalityLoss()(feat, feat_pos, feat_neg, labels)
    dist_p = torch.cdist(feat_pos, feat_pos)
    dist_n = torch.cdist(feat_neg, feat_neg)
    same = labels[:, None] == labels[None]
    dp_ap = dist_p.masked_fill(~same, -1).amax(1)
    dp_an = dist_p.masked_fill(same, 1e9).amin(1)
    dn_ap = dist_n.masked_fill(~same, -1).amax(1)
    dn_an = dist_n.masked_fill(same, 1e9).amin(1)
    eps = 1e-6
    expected = (F.softplus(dp_ap - eps) + F.softplus(eps - dp_an) +
                F.softplus(eps - dn_ap) + F.softplus(dn_an - eps)).mean()
    assert torch.allclose(loss, expected, atol=1e-5)
    # A random (non-zero) beta shared by all samples: the expanded-norm
    # distance cancels only up to float noise that grows with |beta| (SNR
    # §3.3 item 5), hence the tolerance of 1e-3 for a moderate beta.
    gen = torch.Generator().manual_seed(0)
    beta = 0.25 * torch.randn(1, feat.size(1), generator=gen)
    loss_beta = DualCausalityLoss()(beta.expand_as(feat_pos), feat_pos,
                                    feat_neg, labels)
    assert torch.allclose(loss_beta, expected, atol=1e-3)


def test_each_space_mines_its_own_hardest():
    """SNR §10.6: hardest positives differ between the f+ and f- spaces."""
    labels = torch.tensor([0, 0, 0, 1])
    feat = torch.zeros(4, 2)
    # Anchor 0: in f+ space sample 1 is its farthest positive, in f- space
    # sample 2 is.
    feat_pos = torch.tensor([[0., 0.], [3., 0.], [1., 0.], [0., 10.]])
    feat_neg = torch.tensor([[0., 0.], [1., 0.], [5., 0.], [0., 10.]])
    loss, terms = DualCausalityLoss(log_terms=True)(
        feat, feat_pos, feat_neg, labels, return_terms=True)
    expected = naive_loss(feat, feat_pos, feat_neg, labels)
    assert torch.allclose(loss, expected, atol=1e-6)
    # neg_ap = mean softplus(1e-6 - D-_ap) with f-'s own hardest positives
    # (distances 5, 4, 5, 0); taking f+'s hardest (samples 1, 0, 1, 3 give
    # 1, 1, 4, 0) would give a different value.
    own = torch.tensor([5., 4., 5., 1e-6])
    shared = torch.tensor([1., 1., 4., 1e-6])
    assert torch.allclose(
        terms['neg_ap'], F.softplus(1e-6 - own).mean(), atol=1e-6)
    assert not torch.allclose(
        terms['neg_ap'], F.softplus(1e-6 - shared).mean(), atol=1e-3)


def test_gradients_finite_with_identical_features():
    """SNR §10.7: identical rows (zero distances) give finite gradients."""
    labels = torch.tensor([0, 0, 1, 1])
    feat = torch.zeros(4, 3, requires_grad=True)
    feat_pos = torch.ones(4, 3).requires_grad_()
    feat_neg = torch.tensor(
        [[1., 2., 3.]] * 2 + [[0., 1., 0.]] * 2, requires_grad=True)
    loss = DualCausalityLoss()(feat, feat_pos, feat_neg, labels)
    loss.backward()
    for t in (feat, feat_pos, feat_neg):
        assert torch.isfinite(t.grad).all()


def test_no_negative_in_batch():
    feats = [torch.randn(4, 3, requires_grad=True) for _ in range(3)]
    labels = torch.zeros(4, dtype=torch.long)
    loss = DualCausalityLoss()(*feats, labels)
    loss.backward()
    assert loss.item() == 0
    assert all(torch.isfinite(f.grad).all() for f in feats)


def test_batch_without_negatives_leaves_its_terms_out_of_the_log():
    """A user trains SNR with ``log_terms=True`` and a batch holds a single
    identity (e.g. a short last batch). Every anchor lacks a negative, so
    no term of spec SNR §3.1 is defined; the loss contributes 0 to
    backprop, as ``TripletLoss`` does. The log got ``pos_ap`` ...
    ``neg_an`` = 0 ("perfectly satisfied"), pulling their logged averages
    toward 0. Right: the batch logs none of them (mmengine averages each
    key over the iterations that logged it)."""
    feats = [torch.randn(4, 3, requires_grad=True) for _ in range(3)]
    labels = torch.zeros(4, dtype=torch.long)
    loss, logs = DualCausalityLoss(log_terms=True)(
        *feats, labels, return_terms=True)
    assert logs == {}
    loss.backward()
    assert loss.item() == 0
    assert all(torch.isfinite(f.grad).all() for f in feats)
    # With two identities every term is logged again.
    _, logs = DualCausalityLoss(log_terms=True)(
        *feats, torch.tensor([0, 0, 1, 1]), return_terms=True)
    assert set(logs) == set(DualCausalityLoss.TERMS) | {'d0_ap', 'd0_an'}


def test_registered():
    loss = MODELS.build(dict(type='DualCausalityLoss', use_neg=False))
    assert isinstance(loss, DualCausalityLoss) and not loss.use_neg


def naive_pair_type_loss(feat, feat_pos, feat_neg, labels, pair_type):
    """The authors' --only-P (pair_type 'ap') / --only-N ('an') ablations:
    the anchor-positive (or anchor-negative) terms of both L+ and L-."""
    total = 0.
    n = len(labels)
    for i in range(n):
        d0_ap, d0_an = naive_hardest(feat, labels, i)
        dp_ap, dp_an = naive_hardest(feat_pos, labels, i)
        dn_ap, dn_an = naive_hardest(feat_neg, labels, i)
        if pair_type == 'ap':
            total = total + F.softplus(dp_ap - d0_ap) + F.softplus(d0_ap -
                                                                   dn_ap)
        else:
            total = total + F.softplus(d0_an - dp_an) + F.softplus(dn_an -
                                                                   d0_an)
    return total / n


@pytest.mark.parametrize('terms,pair_type', [(('pos_ap', 'neg_ap'), 'ap'),
                                             (('neg_an', 'pos_an'), 'an')])
def test_terms_reproduce_the_authors_pair_type_flags(terms, pair_type):
    (feat, feat_pos, feat_neg), labels = random_batch(seed=3)
    loss_fn = DualCausalityLoss(terms=terms, log_terms=True)
    loss, logs = loss_fn(feat, feat_pos, feat_neg, labels, return_terms=True)
    expected = naive_pair_type_loss(feat, feat_pos, feat_neg, labels,
                                    pair_type)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(logs) - {'d0_ap', 'd0_an'} == set(terms)
    # the paper's L+ alone is a different split
    only_lplus = DualCausalityLoss(use_neg=False)(feat, feat_pos, feat_neg,
                                                  labels)
    assert only_lplus.item() != pytest.approx(loss.item(), rel=1e-3)


def test_terms_option_errors():
    with pytest.raises(ValueError, match='terms'):
        DualCausalityLoss(terms=('pos_ap', 'pos_xx'))
    with pytest.raises(ValueError, match='terms'):
        DualCausalityLoss(terms=())
    with pytest.raises(ValueError, match='not both'):
        DualCausalityLoss(terms=('pos_ap', ), use_neg=False)
    assert DualCausalityLoss(use_pos=False).terms == ('neg_ap', 'neg_an')


def pooled_triple_with_in_bias(scale):
    """SNR's pooled triple on random maps, the IN bias ~ N(0, scale^2)."""
    from mmreid.models import SNR
    torch.manual_seed(0)
    snr = SNR(2048).train()
    with torch.no_grad():
        snr.in_norm.bias.normal_(0, 1).mul_(scale)
    _, aux = snr(torch.rand(16, 2048, 16, 8) * 2)
    return aux


def test_a_large_reference_distance_is_warned_once(monkeypatch):
    """Spec SNR §3.6: D0 is 1e-6 by construction; warn above 1e-4 (with a
    large IN bias float cancellation gives it a value and a gradient).

    How large the cancellation gets depends on the CPU and the thread
    count (an IN bias of scale 5 gave D0 > 1e-4 on AMD EPYC CPUs and on an
    Intel Xeon with two threads, 1e-6 on the Intel one with one thread),
    so D0 is raised here by moving one sample's GAP(IN(F)) by 1e-3."""
    import mmreid.models.losses.dual_causality_loss as module
    warned = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kwargs: warned.append((msg, kwargs)))
    labels = torch.arange(4).repeat_interleave(4)
    loss = DualCausalityLoss(log_terms=True)
    aux = pooled_triple_with_in_bias(0.)
    _, logs = loss(**aux, labels=labels, return_terms=True)
    assert logs['d0_ap'] < 1e-4 and warned == []
    aux['feat'] = aux['feat'].detach().clone()
    aux['feat'][0, 0] += 1e-3
    _, logs = loss(**aux, labels=labels, return_terms=True)
    largest = max(logs['d0_ap'], logs['d0_an'])
    assert largest > 1e-4
    (message, kwargs), = warned
    assert message.startswith('DualCausalityLoss: a reference distance D0')
    assert 'above 0.0001' in message
    assert kwargs['level'] == logging.WARNING
    loss(**aux, labels=labels)
    assert len(warned) == 1
