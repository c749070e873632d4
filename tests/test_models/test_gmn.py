"""GMN: M-Net, pair losses, GMNHead and GMNReID (specs/gmn.md section 14)."""
import itertools
import os

import pytest
import torch
import torch.nn.functional as F

from mmreid.evaluation.functional import mnet_distances, mnet_pair_logits
from mmreid.models import GMNHead, GMNReID, MNet  # noqa: F401
from mmreid.models.heads.gmn_head import (all_pairs, batch_hard_pairs,
                                          pair_features, pair_identity_keys)
from mmreid.models.losses import PairVerificationLoss, PICLoss
from mmreid.models.losses.pair_losses import group_ids
from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample


def pk_labels(num_ids=16, num_instances=4):
    return torch.arange(num_ids).repeat_interleave(num_instances)


def build_head(**kwargs):
    cfg = dict(
        type='GMNHead',
        in_channels=16,
        num_classes=16,
        mnet=dict(hidden_channels=8))
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    head.init_weights()
    # What GMNDPWarmupHook sets during the warm-up; tests of DP set True.
    head.dp_enabled = False
    return head


def samples_of(labels):
    return [ReIDDataSample().set_gt_label(int(y)) for y in labels]


# ---------------------------------------------------------------- pairs


def test_pair_features_symmetric_and_row_sum():
    feats = torch.randn(6, 5, dtype=torch.float64)
    idx_i, idx_j = all_pairs(6)
    f_ij = pair_features(feats, idx_i, idx_j)
    f_ji = pair_features(feats, idx_j, idx_i)
    assert torch.equal(f_ij, f_ji)
    assert torch.equal(f_ij, (feats[idx_i] - feats[idx_j])**2)
    expected = torch.cdist(feats, feats)[idx_i, idx_j]**2
    assert torch.allclose(f_ij.sum(1), expected, atol=1e-10)


def test_pair_counts_for_pk_16x4():
    labels = pk_labels()
    idx_i, idx_j = all_pairs(len(labels))
    assert len(idx_i) == 2016
    assert bool((idx_i < idx_j).all())
    targets = labels[idx_i] == labels[idx_j]
    assert int(targets.sum()) == 96
    keys = pair_identity_keys(labels, idx_i, idx_j)
    groups = group_ids(keys)
    counts = torch.bincount(groups)
    pos_groups = torch.unique(groups[targets])
    neg_groups = torch.unique(groups[~targets])
    assert len(pos_groups) == 16
    assert bool((counts[pos_groups] == 6).all())
    assert len(neg_groups) == 120
    assert bool((counts[neg_groups] == 16).all())
    # keys are unordered: (a, b) and (b, a) are one pair-identity
    swapped = pair_identity_keys(labels, idx_j, idx_i)
    assert torch.equal(keys, swapped)


def test_batch_hard_pairs_match_naive():
    torch.manual_seed(0)
    labels = pk_labels(4, 3)
    feats = torch.randn(12, 6)
    idx_i, idx_j = batch_hard_pairs(feats, labels)
    dist = torch.cdist(feats, feats)
    expected = set()
    for a in range(12):
        pos = [p for p in range(12) if p != a and labels[p] == labels[a]]
        neg = [n for n in range(12) if labels[n] != labels[a]]
        p = max(pos, key=lambda k: dist[a, k])
        n = min(neg, key=lambda k: dist[a, k])
        expected |= {tuple(sorted((a, p))), tuple(sorted((a, n)))}
    assert set(zip(idx_i.tolist(), idx_j.tolist())) == expected


def test_multi_source_offsets_prevent_cross_source_positives(tmp_path):
    """Two sources whose raw pids are both 0..3: with ConcatReIDDataset's
    offsets the pair labels never pair people of different sources."""
    from mmreid.datasets import ConcatReIDDataset
    from mmreid.datasets.synthetic import SynthReID  # noqa: F401
    synth = dict(
        type='SynthReID',
        data_root=str(tmp_path / 'synth'),
        num_domains=2,
        size='tiny',
        seed=0,
        img_size=(32, 16))
    concat = ConcatReIDDataset(
        datasets=[dict(synth, domain=0),
                  dict(synth, domain=1)])
    records = [concat.get_data_info(i) for i in range(len(concat))]
    records = records[:40] + records[-40:]
    offsets = torch.tensor(
        [s['pid_offset'] for s in concat.metainfo['sources']])
    labels = torch.tensor([r['pid'] for r in records])
    dsetids = torch.tensor([r['dsetid'] for r in records])
    raw = labels - offsets[dsetids]
    # the raw pids of the two sources overlap ...
    assert set(raw[dsetids == 0].tolist()) & set(raw[dsetids == 1].tolist())
    idx_i, idx_j = all_pairs(len(labels))
    cross = dsetids[idx_i] != dsetids[idx_j]
    # ... so raw labels would make cross-source positives; offsets do not
    assert bool((raw[idx_i] == raw[idx_j])[cross].any())
    targets = labels[idx_i] == labels[idx_j]
    assert not bool(targets[cross].any())
    assert bool(targets.any())
    # the head builds the same targets from the data samples' labels
    head = build_head(num_classes=int(offsets[-1]) + 1)
    _, head_targets, _, _ = head.build_pairs(
        torch.randn(len(labels), 16), labels)
    assert torch.equal(head_targets, targets)


# ---------------------------------------------------------------- losses


def naive_pic(feats, labels_i, labels_j, min_size=2):
    groups = {}
    for p in range(len(feats)):
        key = (min(labels_i[p], labels_j[p]), max(labels_i[p], labels_j[p]))
        groups.setdefault(key, []).append(feats[p])
    terms = []
    for rows in groups.values():
        if len(rows) < min_size:
            continue
        center = sum(rows) / len(rows)
        terms.append(sum(((r - center)**2).sum() for r in rows) / len(rows))
    return sum(terms) / len(terms)


def test_pic_matches_naive_reference():
    torch.manual_seed(0)
    labels = pk_labels(3, 3)
    labels = labels[torch.randperm(len(labels))]
    idx_i, idx_j = all_pairs(len(labels))
    feats = torch.randn(len(idx_i), 5, dtype=torch.float64)
    keys = pair_identity_keys(labels, idx_i, idx_j)
    loss = PICLoss()(feats, keys)
    expected = naive_pic(feats, labels[idx_i].tolist(), labels[idx_j].tolist())
    assert torch.allclose(loss.double(), expected, atol=1e-6)
    # with a singleton group (skipped) and min_group_size=3
    keys2 = keys.clone()
    keys2[0] = torch.tensor([100, 101])
    expected3 = naive_pic(feats[1:], labels[idx_i][1:].tolist(),
                          labels[idx_j][1:].tolist(), 3)
    loss3 = PICLoss(min_group_size=3)(feats[1:], keys2[1:])
    assert torch.allclose(loss3.double(), expected3, atol=1e-6)


@pytest.mark.parametrize('mining,num_instances', [('all', 2),
                                                  ('batch_hard', 4)])
def test_pic_skips_groups_below_min_group_size(mining, num_instances):
    """L_pic is the mean over the groups of at least ``min_group_size``
    pairs (gmn.md section 6): with K = 2 every (a, a) group holds one
    pair, and batch-hard mining leaves groups of one pair; they are in
    the input and must not dilute the mean."""
    torch.manual_seed(0)
    labels = pk_labels(3, num_instances)
    if mining == 'all':
        idx_i, idx_j = all_pairs(len(labels))
    else:
        idx_i, idx_j = batch_hard_pairs(torch.randn(len(labels), 4), labels)
    feats = torch.randn(len(idx_i), 5, dtype=torch.float64)
    keys = pair_identity_keys(labels, idx_i, idx_j)
    sizes = torch.unique(keys, dim=0, return_counts=True)[1]
    assert (sizes < 2).any() and (sizes >= 2).any()
    loss = PICLoss()(feats, keys)
    expected = naive_pic(feats, labels[idx_i].tolist(), labels[idx_j].tolist())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_pic_zero_for_identical_pairs_and_detach_invariance():
    labels = pk_labels(4, 2)
    idx_i, idx_j = all_pairs(len(labels))
    keys = pair_identity_keys(labels, idx_i, idx_j)
    groups = group_ids(keys)
    per_group = torch.randn(int(groups.max()) + 1, 7)
    assert PICLoss()(per_group[groups], keys).item() == 0

    feats = torch.randn(len(idx_i), 7, requires_grad=True)
    PICLoss()(feats, keys).backward()
    grad = feats.grad.clone()
    feats.grad = None
    PICLoss(detach_center=True)(feats, keys).backward()
    assert torch.allclose(grad, feats.grad, atol=1e-7)
    assert PICLoss(loss_weight=3.)(feats, keys).item() == pytest.approx(
        3 * PICLoss()(feats, keys).item(), rel=1e-6)
    with pytest.raises(ValueError, match='batch_mean'):
        PICLoss(center='learned')


def test_pair_verification_loss_modes():
    z = torch.tensor([2., -1., 0.5, 3., -2.])
    t = torch.tensor([1, 0, 0, 0, 1])
    pos, neg = z[t == 1], z[t == 0]
    balanced = 0.5 * F.softplus(-pos).mean() + 0.5 * F.softplus(neg).mean()
    assert torch.allclose(PairVerificationLoss()(z, t), balanced)
    plain = F.binary_cross_entropy_with_logits(z, t.float())
    assert torch.allclose(
        PairVerificationLoss(balance='plain_mean')(z, t), plain)
    weighted = (1.5 * F.softplus(-pos).sum() + F.softplus(neg).sum()) / 5
    assert torch.allclose(
        PairVerificationLoss(balance='pos_weight')(z, t), weighted)
    # no positive: the negatives alone
    t0 = torch.zeros(5, dtype=torch.long)
    assert torch.allclose(PairVerificationLoss()(z, t0), F.softplus(z).mean())
    with pytest.raises(ValueError, match='balance'):
        PairVerificationLoss(balance='focal')


# ---------------------------------------------------------------- M-Net


@pytest.mark.parametrize('output', ['logit', 'two_way_softmax'])
@pytest.mark.parametrize('num_layers', [1, 2])
def test_bn_folding_matches_eval_mnet(output, num_layers):
    torch.manual_seed(0)
    mnet = MNet(12, hidden_channels=6, num_layers=num_layers, output=output)
    mnet.train()
    for _ in range(3):  # non-trivial running statistics
        mnet(torch.rand(32, 12) * 3)
    for m in mnet.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    mnet.eval()
    query, gallery = torch.randn(5, 12), torch.randn(7, 12)
    with torch.no_grad():
        sp = (query[:, None] - gallery[None]).pow(2).reshape(-1, 12)
        expected = mnet(sp).reshape(5, 7)
    params = mnet.folded_params()
    assert (params['tail'] is None) == (num_layers == 1)
    for method in ('direct', 'decomposed'):
        logits = mnet_pair_logits(query, gallery, method=method, **params)
        assert (logits - expected).abs().max() <= 1e-5
    if output == 'two_way_softmax':
        with torch.no_grad():
            out = mnet.fc_out(mnet.hidden(sp))
        prob = out.softmax(1)[:, 1].reshape(5, 7)
        assert torch.allclose(torch.sigmoid(expected), prob, atol=1e-6)


def test_mnet_bad_options():
    with pytest.raises(ValueError, match='num_layers'):
        MNet(8, num_layers=3)
    with pytest.raises(ValueError, match='output'):
        MNet(8, output='sigmoid')
    # A zero-width layer builds silently and scores every pair the same.
    for in_channels, hidden in ((0, 8), (8, 0), (-4, 8)):
        with pytest.raises(ValueError, match='positive'):
            MNet(in_channels, hidden_channels=hidden)


# ---------------------------------------------------------------- head


def test_head_losses_keys_and_backward():
    torch.manual_seed(0)
    head = build_head(pic=dict(weight=10.0))
    head.train()
    labels = pk_labels(4, 4)
    feats = torch.randn(16, 16, requires_grad=True)
    losses = head.loss(feats, samples_of(labels))
    assert {
        'loss_cls', 'loss_tri', 'loss_gmn', 'loss_pic', 'accuracy', 'mnet_acc',
        'mnet_pos_acc', 'mnet_neg_acc', 'pic_raw', 'dp_on'
    } == set(losses)
    assert losses['loss_pic'].item() == pytest.approx(
        10 * losses['pic_raw'].item(), rel=1e-5)
    assert losses['dp_on'].item() == 0
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert feats.grad is not None and feats.grad.abs().sum() > 0
    assert all(p.grad is not None for p in head.mnet.parameters())


def test_head_leaves_out_pair_accuracies_it_cannot_measure():
    # A batch without positive pairs logged mnet_pos_acc = 0, which reads
    # as a measured accuracy and drags the logged average down.
    head = build_head()
    head.train()
    losses = head.loss(torch.randn(8, 16), samples_of(torch.arange(8)))
    assert 'mnet_pos_acc' not in losses
    assert 0 <= losses['mnet_neg_acc'].item() <= 1
    losses = head.loss(torch.randn(8, 16), samples_of(torch.zeros(8)))
    assert 'mnet_neg_acc' not in losses
    assert 0 <= losses['mnet_pos_acc'].item() <= 1


@pytest.mark.parametrize('key', ['loss_weight', 'type'])
def test_head_pic_names_lambda_when_given_loss_weight(key):
    with pytest.raises(ValueError, match=f'pic.{key}=.*lambda.*pic.weight'):
        build_head(pic=dict(**{key: 5.0}))


def test_head_pair_losses_stay_fp32_under_autocast():
    head = build_head()
    head.train()
    feats = torch.randn(8, 16)
    seen = {}
    head.mnet.register_forward_hook(
        lambda module, args, out: seen.update(dtype=out[0].dtype))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = head.loss(feats, samples_of(pk_labels(4, 2)))
    assert seen['dtype'] == torch.float32
    assert losses['loss_gmn'].dtype == torch.float32
    assert losses['loss_pic'].dtype == torch.float32


def test_head_gmn_gradient_reaches_features_unless_detached():
    labels = pk_labels(4, 2)
    for detach in (False, True):
        head = build_head(
            loss_cls=None, loss_tri=None, gmn_detach_backbone=detach)
        feats = torch.randn(8, 16, requires_grad=True)
        losses = head.loss(feats, samples_of(labels))
        (losses['loss_gmn'] + losses['loss_pic']).backward()
        reached = feats.grad is not None and feats.grad.abs().sum() > 0
        assert reached != detach


def test_head_pic_matches_naive_on_mnet_input():
    torch.manual_seed(1)
    head = build_head(dp=None, pic=dict(weight=1.0, space='input'))
    labels = pk_labels(3, 3)
    feats = torch.randn(9, 16)
    losses = head.loss(feats, samples_of(labels))
    f_t, f_b = head(feats)
    f = F.normalize(f_b, dim=1)
    idx_i, idx_j = all_pairs(9)
    expected = naive_pic((f[idx_i] - f[idx_j])**2, labels[idx_i].tolist(),
                         labels[idx_j].tolist())
    assert losses['pic_raw'].item() == pytest.approx(expected.item(), rel=1e-4)


def test_dp_off_by_default_and_in_eval():
    head = build_head()
    labels = pk_labels(4, 2)
    feats = F.normalize(torch.randn(8, 16), dim=1)
    assert not head.dp_active
    pf, t, k, clean = head.build_pairs(feats, labels)
    assert len(pf) == 28 and bool(clean.all())
    head.dp_enabled = True
    assert head.dp_active
    head.eval()
    assert not head.dp_active
    pf_eval, _, _, _ = head.build_pairs(feats, labels)
    assert torch.equal(pf_eval, pf)


def test_dp_append_doubles_batch_and_duplicates_labels():
    torch.manual_seed(0)
    head = build_head(dp=dict(rate=0.5, mode='append', n_copies=1))
    head.train()
    head.dp_enabled = True
    labels = pk_labels(4, 2)
    feats = F.normalize(torch.randn(8, 16), dim=1)
    pf, targets, keys, clean = head.build_pairs(feats, labels)
    num = 28
    assert pf.shape == (2 * num, 16)
    assert torch.equal(targets[:num], targets[num:])
    assert torch.equal(keys[:num], keys[num:])
    assert int(clean.sum()) == num and bool(clean[:num].all())
    idx_i, idx_j = all_pairs(8)
    assert torch.equal(pf[:num], pair_features(feats, idx_i, idx_j))
    # the copy is an inverted-dropout version of the clean pairs
    copy = pf[num:]
    kept = copy != 0
    assert torch.allclose(copy[kept], 2 * pf[:num][kept])
    # replace mode: the copies only; two copies in append mode: 3P
    head.dp['mode'] = 'replace'
    assert len(head.build_pairs(feats, labels)[0]) == num
    head.dp.update(mode='append', n_copies=2)
    assert len(head.build_pairs(feats, labels)[0]) == 3 * num
    head.dp.update(position='instance', n_copies=1)
    pf, targets, _, _ = head.build_pairs(feats, labels)
    assert pf.shape == (2 * num, 16) and torch.equal(targets[:num],
                                                     targets[num:])


def test_dp_is_unbiased():
    torch.manual_seed(0)
    head = build_head(dp=dict(rate=0.5, mode='replace', n_copies=1))
    head.train()
    head.dp_enabled = True
    labels = torch.tensor([0, 0, 1])
    feats = F.normalize(torch.randn(3, 16), dim=1)
    idx_i, idx_j = all_pairs(3)
    clean = pair_features(feats, idx_i, idx_j)
    total = torch.zeros_like(clean)
    draws = 4000
    for _ in range(draws):
        total += head.build_pairs(feats, labels)[0]
    mean = total / draws
    # std of one draw is clean (rate 0.5): standard error clean / sqrt(n)
    assert torch.allclose(mean, clean, atol=5 * clean.max() / draws**0.5)


@pytest.mark.parametrize('rate', [0.1, 0.3, 0.7])
def test_dp_drops_a_fraction_rate_of_the_pair_features(rate):
    """DP (gmn.md section 5): f~ = m * f / (1 - rho), m ~ Bernoulli(1 -
    rho); so a fraction rho of a copy's entries is zero and the others
    are the clean entries over 1 - rho (the dp-r0p1/r0p3/r0p7 sweep)."""
    torch.manual_seed(0)
    head = build_head(dp=dict(rate=rate, mode='replace', n_copies=1))
    head.train()
    head.dp_enabled = True
    labels = pk_labels(16, 4)
    feats = torch.rand(64, 16) + 0.5  # distinct: no clean entry is 0
    idx_i, idx_j = all_pairs(64)
    clean = ((feats[idx_i] - feats[idx_j])**2).double()
    assert bool((clean > 0).all()) and clean.numel() > 10000
    copy = head.build_pairs(feats, labels)[0].double()
    dropped = copy == 0
    assert float(dropped.double().mean()) == pytest.approx(rate, abs=0.03)
    torch.testing.assert_close(
        copy[~dropped], clean[~dropped] / (1 - rate), rtol=1e-5, atol=0)


def test_dp_instance_position_masks_each_member_independently():
    """DP position 'instance' (gmn.md section 5): inverted dropout on f_i
    and on f_j, independently, before squaring. Every entry of a copy is
    then (m_i f_i - m_j f_j)^2 / (1 - rho)^2 with m_i, m_j in {0, 1}: one
    of 0, f_i^2, f_j^2 and (f_i - f_j)^2 over (1 - rho)^2, and all four
    occur. A copy built from one member twice or with only one member
    perturbed is another perturbation."""
    torch.manual_seed(0)
    rate = 0.5
    head = build_head(
        dp=dict(rate=rate, position='instance', mode='replace', n_copies=1))
    head.train()
    head.dp_enabled = True
    # Distinct values in [1, 1.9): the four cases never coincide.
    feats = 1 + 0.9 * torch.randperm(128).double().reshape(8, 16) / 128
    idx_i, idx_j = all_pairs(8)
    copy = head.build_pairs(feats, pk_labels(4, 2))[0]
    f_i, f_j = feats[idx_i], feats[idx_j]
    scale = (1 - rate)**2
    cases = torch.stack([
        torch.zeros_like(f_i), f_i**2 / scale, f_j**2 / scale,
        (f_i - f_j)**2 / scale
    ])
    close = (copy.unsqueeze(0) - cases).abs() <= 1e-9 * (1 + cases)
    assert bool((close.sum(0) == 1).all())
    fractions = close.double().mean(dim=(1, 2))
    for fraction in fractions.tolist():
        assert fraction == pytest.approx(0.25, abs=0.05)


def test_dp_copies_pass_gradients_to_the_instance_features():
    """L_gmn flows into the backbone (gmn.md section 2) through every
    M-Net input, DP copies included: with DP in replace mode the M-Net
    sees copies only, and they must not be detached."""
    torch.manual_seed(0)
    for position in ('pair', 'instance'):
        head = build_head(
            loss_cls=None,
            loss_tri=None,
            pic=None,
            dp=dict(rate=0.5, position=position, mode='replace'))
        head.train()
        head.dp_enabled = True
        feats = torch.randn(8, 16, requires_grad=True)
        losses = head.loss(feats, samples_of(pk_labels(4, 2)))
        assert losses['dp_on'].item() == 1
        losses['loss_gmn'].backward()
        assert feats.grad is not None and feats.grad.abs().sum() > 0


def test_dp_without_copies_or_rate_is_off():
    """n_copies=0 or rate=0 perturbs nothing: the M-Net sees the clean
    pairs once and dp_on logs 0, whatever dp_enabled says."""
    labels = pk_labels(4, 2)
    feats = F.normalize(torch.randn(8, 16), dim=1)
    for dp in (dict(n_copies=0), dict(n_copies=0, mode='replace'),
               dict(rate=0.0)):
        head = build_head(dp=dp)
        head.train()
        head.dp_enabled = True
        assert not head.dp_active
        pair_feats, _, _, clean = head.build_pairs(feats, labels)
        assert len(pair_feats) == 28 and bool(clean.all())
        losses = head.loss(torch.randn(8, 16), samples_of(labels))
        assert losses['dp_on'].item() == 0


@pytest.mark.parametrize('dp,match', [
    (dict(rate=1.0), 'dp.rate'),
    (dict(rate=-0.1), 'dp.rate'),
    (dict(n_copies=-1), 'dp.n_copies'),
    (dict(mode='add'), 'dp.mode'),
])
def test_head_refuses_dp_options_it_cannot_apply(dp, match):
    """rate = 1 drops every entry (each copy is all zeros), a negative
    number of copies or an unknown mode is no DP at all: errors at build
    time, not a silently different training."""
    with pytest.raises(ValueError, match=match):
        build_head(dp=dp)


def test_head_losses_use_the_bnneck_features_as_specified():
    """gmn.md section 7: L_cls on the classifier of the post-BNNeck f^b,
    L_tri on the pre-BN f^t (BNNeck as in BoT), and the logged accuracy is
    that of the same logits."""
    torch.manual_seed(0)
    head = build_head(dp=None, pic=None)
    head.train()
    with torch.no_grad():  # a BNNeck that visibly changes the feature
        head.bnneck.weight.uniform_(0.2, 3.0)
    labels = pk_labels(4, 2)
    feats = torch.randn(8, 16) * 3 + 1
    losses = head.loss(feats, samples_of(labels))
    mean = feats.mean(0)
    var = feats.var(0, unbiased=False)
    f_b = (feats - mean) / (var + head.bnneck.eps).sqrt() * \
        head.bnneck.weight.detach()
    logits = f_b @ head.classifier.weight.detach().t()
    torch.testing.assert_close(losses['loss_cls'].detach(),
                               head.loss_cls(logits, labels))
    torch.testing.assert_close(losses['loss_tri'].detach(),
                               head.loss_tri(feats, labels))
    assert losses['loss_tri'].item() != pytest.approx(
        head.loss_tri(f_b, labels).item(), rel=1e-3)
    accuracy = (logits.argmax(1) == labels).double().mean().item()
    assert losses['accuracy'].item() == pytest.approx(accuracy)


def test_mnet_accuracies_count_the_clean_pairs_only():
    """mnet_acc, mnet_pos_acc and mnet_neg_acc are the accuracies
    (threshold z = 0) on the clean pairs (GMNHead docstring): the DP
    copies appended after them are left out."""
    torch.manual_seed(0)
    head = build_head(dp=dict(rate=0.7, mode='append', n_copies=2))
    head.train()
    head.dp_enabled = True
    logits = []
    head.mnet.register_forward_hook(
        lambda module, args, out: logits.append(out[0].detach()))
    labels = pk_labels(4, 3)
    losses = head.loss(torch.randn(12, 16), samples_of(labels))
    (z, ) = logits
    idx_i, idx_j = all_pairs(12)
    assert len(z) == 3 * len(idx_i)
    clean_z = z[:len(idx_i)]
    same = labels[idx_i] == labels[idx_j]
    correct = (clean_z > 0) == same
    # Clean and perturbed pairs score differently, so a count that
    # includes the copies gives other numbers.
    assert not torch.equal(clean_z > 0, z[len(idx_i):2 * len(idx_i)] > 0)
    for key, rows in (('mnet_acc', slice(None)), ('mnet_pos_acc', same),
                      ('mnet_neg_acc', ~same)):
        assert losses[key].item() == pytest.approx(
            correct[rows].double().mean().item()), key


def test_batch_hard_pairs_without_self_pairs():
    """Batch-hard mining (gmn.md section 4) pairs an anchor with its
    hardest *other* positive and hardest negative: an identity seen once
    gives no positive pair and a duplicated image is not paired with
    itself, so no pair (a, a) (f_sp = 0, labelled positive) is made."""
    labels = torch.tensor([0, 0, 1, 2, 2, 3])
    feats = torch.randn(6, 4)
    feats[1] = feats[0]  # the same image twice in the batch
    feats[4] = feats[3]
    idx_i, idx_j = batch_hard_pairs(feats, labels)
    assert bool((idx_i < idx_j).all())
    pairs = set(zip(idx_i.tolist(), idx_j.tolist()))
    positives = {(i, j) for i, j in pairs if labels[i] == labels[j]}
    assert positives == {(0, 1), (3, 4)}
    assert pairs == set(naive_batch_hard(feats, labels.tolist()))


def test_head_predict_is_pair_feature():
    head = build_head(pair_feat='pre_bn', pair_norm='raw')
    head.eval()
    feats = torch.randn(4, 16)
    assert torch.allclose(head.predict(feats), feats)
    head = build_head()
    head.eval()
    out = head.predict(feats)
    assert torch.allclose(out.norm(dim=1), torch.ones(4))


def test_head_bad_options():
    with pytest.raises(ValueError, match='pair_feat'):
        build_head(pair_feat='neck')
    with pytest.raises(ValueError, match='dp has unknown keys'):
        build_head(dp=dict(prob=0.5))
    with pytest.raises(ValueError, match='dp.position'):
        build_head(dp=dict(position='hidden'))
    with pytest.raises(ValueError, match='pic.space'):
        build_head(pic=dict(space='output'))


def naive_batch_hard(feats, labels):
    """Per anchor its farthest positive and its nearest negative (Euclidean),
    as unordered pairs, from the definition."""
    pairs = set()
    for a in range(len(labels)):
        dist = [
            float((feats[a] - feats[j]).norm()) for j in range(len(labels))
        ]
        pos = [
            j for j in range(len(labels)) if j != a and labels[j] == labels[a]
        ]
        neg = [j for j in range(len(labels)) if labels[j] != labels[a]]
        for j in (max(pos, key=dist.__getitem__) if pos else None,
                  min(neg, key=dist.__getitem__) if neg else None):
            if j is not None:
                pairs.add((min(a, j), max(a, j)))
    return sorted(pairs)


def test_head_batch_hard_mining_trains_on_the_hardest_pairs():
    torch.manual_seed(0)
    head = build_head(
        pair_mining='batch_hard',
        dp=None,
        pic=None,
        loss_cls=None,
        loss_tri=None)
    head.train()
    labels = pk_labels(4, 2)
    feats = torch.randn(8, 16)
    mnet_inputs = []
    head.mnet.register_forward_hook(
        lambda module, args, output: mnet_inputs.append(args[0].detach()))
    losses = head.loss(feats, samples_of(labels))

    # The paired feature: post-BNNeck (batch statistics), L2-normalised.
    with torch.no_grad():
        f = F.normalize(head.bnneck(feats), dim=1)
    pairs = naive_batch_hard(f, labels.tolist())
    # K = 2: the one positive of each anchor is its hardest.
    assert [p for p in pairs if labels[p[0]] == labels[p[1]]] == \
        [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert len(pairs) < 28  # fewer than all pairs
    i, j = torch.tensor(pairs).T
    expected_inputs = (f[i] - f[j])**2
    (inputs, ) = mnet_inputs
    assert inputs.shape == expected_inputs.shape
    # The same rows, in any order.
    match = torch.cdist(inputs, expected_inputs).argmin(1)
    assert sorted(match.tolist()) == list(range(len(pairs)))
    torch.testing.assert_close(inputs, expected_inputs[match])

    # L_gmn on these pairs: 0.5 mean_{P+} softplus(-z) + 0.5 mean_{P-}
    # softplus(z).
    with torch.no_grad():
        z = head.mnet(expected_inputs)
    same = labels[i] == labels[j]
    expected = 0.5 * F.softplus(-z[same]).mean() + \
        0.5 * F.softplus(z[~same]).mean()
    torch.testing.assert_close(losses['loss_gmn'].detach(), expected)


# ---------------------------------------------------------------- model


def build_model(**test_cfg):
    model = MODELS.build(
        dict(
            type='GMNReID',
            backbone=dict(
                type='ReIDResNet', depth=18, base_channels=8, stem_channels=8),
            head=dict(
                type='GMNHead',
                in_channels=64,
                num_classes=4,
                mnet=dict(hidden_channels=16)),
            test_cfg=test_cfg or None))
    model.init_weights()
    model.head.dp_enabled = False  # as GMNDPWarmupHook in the warm-up
    return model


def test_gmn_reid_train_and_distance_modes():
    torch.manual_seed(0)
    model = build_model(fuse_beta=0.3)
    inputs = torch.randint(0, 256, (8, 3, 32, 16), dtype=torch.uint8)
    data = model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples_of(pk_labels(4, 2))), True)
    losses = model(**data, mode='loss')
    assert {'loss_cls', 'loss_tri', 'loss_gmn', 'loss_pic'} <= set(losses)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    model.eval()
    with torch.no_grad():
        feats = model(data['inputs'], mode='tensor')
        query, gallery = feats[:3], feats[3:]
        mnet = model.head.mnet
        sp = (query[:, None] - gallery[None]).pow(2).reshape(-1, 64)
        z = mnet(sp).reshape(3, 5)
        euclid = torch.cdist(query, gallery)**2
        assert torch.allclose(model.distance(query, gallery), -z, atol=1e-5)
        assert torch.allclose(
            model.distance(query, gallery, mode='euclid'), euclid, atol=1e-5)
        fused = 0.7 * euclid / 4 + 0.3 * (1 - torch.sigmoid(z))
        assert torch.allclose(
            model.distance(query, gallery, mode='fused'), fused, atol=1e-5)
        scorers = model.scorers()
        assert list(scorers) == ['mnet', 'euclid', 'fused']
        for mode, scorer in scorers.items():
            assert torch.allclose(
                scorer(query, gallery),
                model.distance(query, gallery, mode=mode),
                atol=1e-5)


def test_metric_scores_every_mode_in_one_pass_with_the_same_numbers():
    """ReIDMetric with GMN's scorers evaluates all modes chunk by chunk,
    'mnet' and 'fused' sharing the M-Net logits: each mode's metrics are
    those of that mode's own scorer alone, to the bit."""
    from mmreid.evaluation.functional import evaluate_features
    from mmreid.evaluation.functional.mnet_distance import MNetPairScorer
    from mmreid.evaluation.metrics import ReIDMetric
    torch.manual_seed(3)
    model = build_model(fuse_beta=0.3, check_queries=4).eval()
    feats = F.normalize(torch.randn(90, 64), dim=1)
    pids = torch.arange(90) % 15
    cams = (torch.arange(90) // 15) % 3
    results = [
        dict(
            feature=feats[i],
            pid=int(pids[i]),
            camid=int(cams[i]),
            is_query=i < 30,
            sample_idx=i,
            dataset=None,
            img_path=None) for i in range(90)
    ]
    metric = ReIDMetric(memory_budget_mb=0.005)  # several query chunks
    metric.set_scorers(model.scorers(), primary='mnet')
    metrics = metric.compute_metrics(results)
    params = model.head.mnet.folded_params()
    labels = (pids[:30], pids[30:], cams[:30], cams[30:])
    for mode in ('mnet', 'euclid', 'fused'):
        alone = evaluate_features(
            feats[:30],
            feats[30:],
            *labels,
            distance=MNetPairScorer(**params, **model._mode_options(mode)),
            memory_budget_mb=0.005)
        expected = alone.percentages(metric.ranks)
        for key, value in expected.items():
            assert metrics[f'{mode}/{key}'] == value, (mode, key)
    assert metrics['mAP'] == metrics['mnet/mAP']


def test_a_top_k_mnet_is_reported_under_its_own_name():
    """With mnet_topk=k the M-Net scores only the k Euclidean nearest
    gallery items of each query: not the paper's full M-Net, yet its
    numbers were reported as 'mnet' (reid/mnet/mAP, a 'reid/mnet' row).
    They are 'mnet_top<k>'; 'mnet' stays the key of the full scoring."""
    from mmreid.evaluation.metrics import ReIDMetric
    from mmreid.evaluation.results_table import results_rows
    torch.manual_seed(5)
    full = build_model().eval()
    feats = F.normalize(torch.randn(40, 64), dim=1)
    pids = torch.arange(40) % 8
    results = [
        dict(
            feature=feats[i],
            pid=int(pids[i]),
            camid=int(i < 10),
            is_query=i < 10,
            sample_idx=i,
            dataset=None,
            img_path=None) for i in range(40)
    ]

    def evaluate(model):
        metric = ReIDMetric()
        metric.set_scorers(model.scorers())
        return metric.compute_metrics(results)

    def modes(metrics):
        return {key.rsplit('/', 1)[0] for key in metrics if '/' in key}

    assert modes(evaluate(full)) == {'mnet', 'euclid', 'fused'}
    # k >= G (30 gallery items) re-orders every candidate: by definition
    # the full M-Net's ranking, now under the name of what was computed.
    for k, name in ((3, 'mnet_top3'), (30, 'mnet_top30')):
        topk = build_model(mnet_topk=k).eval()
        topk.load_state_dict(full.state_dict())
        metrics = evaluate(topk)
        assert modes(metrics) == {name, 'euclid', 'fused'}
        assert metrics['mAP'] == metrics[f'{name}/mAP']
        rows = [
            row.name for row in results_rows({
                f'reid/{key}': value
                for key, value in metrics.items()
            })
        ]
        assert rows == [f'reid/{name}', 'reid/euclid', 'reid/fused']
        assert topk.mode_key('mnet') == name
        assert topk.mode_key('euclid') == 'euclid'
    assert full.mode_key('mnet') == 'mnet'
    full_metrics = evaluate(full)
    for key in ('R1', 'mAP', 'mINP'):
        assert metrics[f'mnet_top30/{key}'] == pytest.approx(
            full_metrics[f'mnet/{key}']), key


def test_gmn_reid_test_cfg():
    model = build_model(distance='fused', report_modes=('mnet', ))
    assert model.distance_modes == ('fused', 'mnet')
    model = build_model(mnet_topk=2)
    feats = F.normalize(torch.randn(6, 64), dim=1)
    full = mnet_distances(
        feats[:2],
        feats[2:],
        distance='mnet',
        **model.head.mnet.folded_params())
    # top-k rerank: the first two of each row are the M-Net order of the
    # two Euclidean nearest
    ranked = model.distance(feats[:2], feats[2:]).argsort(1)
    euclid_top = torch.cdist(feats[:2], feats[2:]).argsort(1)[:, :2]
    for row in range(2):
        top = euclid_top[row][full[row, euclid_top[row]].argsort()]
        assert ranked[row, :2].tolist() == top.tolist()
    with pytest.raises(ValueError, match='unknown GMNReID test_cfg'):
        build_model(rerank=True)
    with pytest.raises(ValueError, match='flip'):
        build_model(flip=True)
    with pytest.raises(ValueError, match='modes'):
        build_model(distance='cosine')
    # test_distance: the deprecated alias of distance (one release)
    with pytest.warns(FutureWarning, match='test_cfg.distance'):
        model = build_model(test_distance='euclid')
    assert model.distance_modes[0] == 'euclid'
    with pytest.raises(ValueError, match='both'):
        build_model(test_distance='euclid', distance='mnet')
    # Each mode is reported once, the primary one first.
    model = build_model(report_modes=('euclid', 'mnet', 'euclid'))
    assert model.distance_modes == ('mnet', 'euclid')


def test_gmn_reid_needs_a_head_with_an_mnet():
    """GMNReID scores pairs with its head's M-Net: a head without one is
    refused when the model is built, not at the first evaluation."""
    with pytest.raises(TypeError, match='GMNHead'):
        MODELS.build(
            dict(
                type='GMNReID',
                backbone=dict(
                    type='ReIDResNet',
                    depth=18,
                    base_channels=8,
                    stem_channels=8),
                head=dict(type='BNNeckHead', in_channels=64,
                          num_classes=4)))


@pytest.mark.parametrize('key,value', [
    ('memory_budget_mb', 0),
    ('memory_budget_mb', -5),
    ('memory_budget_mb', '256'),
    ('mnet_topk', 0),
    ('mnet_topk', 2.5),
    ('mnet_topk', True),
    ('fuse_beta', 1.5),
    ('fuse_beta', '0.5'),
    ('method', 'fast'),
    ('check_queries', True),
])
def test_gmn_reid_test_cfg_refuses_bad_scoring_options(key, value):
    """Bad scoring options fail when the model is built, not at the first
    scoring after feature extraction, and name the key."""
    with pytest.raises(ValueError, match=f'GMNReID test_cfg.{key}'):
        build_model(**{key: value})


@pytest.mark.parametrize('beta', [0.0, 0.999])
def test_gmn_reid_fuse_beta_accepts_both_ends(beta):
    """fuse_beta lies in [0, 1) (gmn.md section 8.1 takes [0, 1]; 1 is
    refused, see test_hunt_pair_scoring): beta = 0 is the Euclidean term
    alone, beta near 1 almost the M-Net term alone."""
    model = build_model(fuse_beta=beta).eval()
    feats = F.normalize(torch.randn(6, 64), dim=1)
    query, gallery = feats[:2], feats[2:]
    with torch.no_grad():
        sp = (query[:, None] - gallery[None]).pow(2).reshape(-1, 64)
        z = model.head.mnet(sp).reshape(2, 4)
    expected = (1 - beta) * torch.cdist(query, gallery)**2 / 4 + \
        beta * (1 - torch.sigmoid(z))
    torch.testing.assert_close(
        model.distance(query, gallery, mode='fused'),
        expected,
        atol=1e-5,
        rtol=0)


def test_gmn_reid_test_cfg_refuses_options_of_unreported_modes():
    """mnet_topk applies to 'mnet' and fuse_beta to 'fused' only: set
    while that mode is not reported, they would be silently unused."""
    with pytest.raises(ValueError, match='test_cfg.mnet_topk'):
        build_model(
            distance='euclid', report_modes=('euclid', ), mnet_topk=100)
    with pytest.raises(ValueError, match='test_cfg.fuse_beta'):
        build_model(report_modes=('mnet', 'euclid'), fuse_beta=0.3)
    # the defaults (None, 0.5) are not options set by the user
    model = build_model(report_modes=('mnet', ), mnet_topk=None)
    assert model.distance_modes == ('mnet', )
    model = build_model(distance='fused', report_modes=(), fuse_beta=0.3)
    assert model.distance_modes == ('fused', )
    model = build_model(
        distance='euclid', report_modes=('mnet', ), mnet_topk=3)
    assert model.scorers()['mnet_top3'].topk == 3


def test_pair_label_keys_cover_all_combinations():
    labels = torch.tensor([3, 1, 3, 2])
    idx_i, idx_j = all_pairs(4)
    keys = pair_identity_keys(labels, idx_i, idx_j).tolist()
    expected = [
        sorted((int(labels[i]), int(labels[j])))
        for i, j in itertools.combinations(range(4), 2)
    ]
    assert keys == expected


# ---------------------------------------------------------------- configs


def fake_dg_tree(root):
    """data/ with tiny fake Market-1501, MSMT17, CUHK03-NP, CUHK-SYSU."""
    from ..fixtures.dataset_trees import fake_market, make_msmt17
    from ..fixtures.files import touch
    fake_market(os.path.join(root, 'market1501'))
    msmt = os.path.join(root, 'msmt17', 'MSMT17_V1')
    os.makedirs(msmt)
    make_msmt17(msmt, 'V1')
    labeled = os.path.join(root, 'cuhk03-np', 'labeled')
    touch(
        os.path.join(labeled, 'bounding_box_train'), '0003_c1_1.png',
        '0001_c2_1.png')
    touch(os.path.join(labeled, 'query'), '0050_c2_1.png')
    touch(os.path.join(labeled, 'bounding_box_test'), '0050_c1_2.png')
    touch(
        os.path.join(root, 'cuhk_sysu', 'cropped_images'), 'p10_s13.jpg',
        'p2_s5.jpg', 'p2_s6.jpg')


def replace_roots(cfg, old, new):
    if isinstance(cfg, dict):
        return {k: replace_roots(v, old, new) for k, v in cfg.items()}
    if isinstance(cfg, list):
        return [replace_roots(v, old, new) for v in cfg]
    if isinstance(cfg, str) and cfg.startswith(old):
        return new + cfg[len(old):]
    return cfg


LOO_DIRECTIONS = {
    'm-ms-cs-to-c3': ('CUHK03NP', ['Market1501', 'MSMT17', 'CUHKSYSU']),
    'm-cs-c3-to-ms': ('MSMT17', ['Market1501', 'CUHKSYSU', 'CUHK03NP']),
    'ms-cs-c3-to-m': ('Market1501', ['MSMT17', 'CUHKSYSU', 'CUHK03NP']),
}


def test_leave_one_out_configs():
    """Sources, target and combine-all of the six GMN protocol configs."""
    from mmengine.config import Config
    for direction, (target, sources) in LOO_DIRECTIONS.items():
        for suffix in ('', '_p3'):
            cfg = Config.fromfile(
                f'configs/gmn/gmn_r50_1xb64-60e_{direction}{suffix}.py')
            assert cfg.model.type == 'GMNReID'
            assert cfg.combine_all == (suffix == '_p3')
            got, combined = [], []
            for source in cfg.train_dataloader.dataset.datasets:
                combined.append(source.get('combine_all', False))
                got.append(source['dataset']['type'] if 'dataset' in
                           source else source['type'])
            assert got == sources
            # CUHK-SYSU is always whole (train-only); the others are
            # combined in Protocol-3 only.
            assert combined == [
                bool(suffix) and s != 'CUHKSYSU' for s in sources
            ]
            test = cfg.test_dataloader.dataset
            assert test.type == target and test.split == 'test'
            assert test.get('variant', 'labeled') == 'labeled'
            num_classes = cfg.model.head.num_classes
            assert num_classes == cfg[f"num_classes_{suffix[1:] or 'p2'}"]
        baseline = Config.fromfile(
            f'configs/gmn/baseline_r50_1xb64-60e_{direction}.py')
        assert baseline.model.type == 'ReIDModel'
        assert baseline.model.head.num_classes == cfg.num_classes_p2


def test_leave_one_out_p3_config_builds(tmp_path):
    """The combine-all sources build on a fake data tree, with per-source
    offsets."""
    from mmengine.config import Config

    from mmreid.registry import DATASETS
    fake_dg_tree(str(tmp_path))
    cfg = Config.fromfile('configs/gmn/gmn_r50_1xb64-60e_m-ms-cs-to-c3_p3.py')
    train = replace_roots(cfg.train_dataloader.dataset.to_dict(), 'data/',
                          str(tmp_path) + '/')
    dataset = DATASETS.build(train)
    sources = dataset.metainfo['sources']
    assert [s['split_used'] for s in sources] == ['all', 'all', 'train']
    offsets = [s['pid_offset'] for s in sources]
    assert offsets == [
        0, sources[0]['num_pids'],
        sources[0]['num_pids'] + sources[1]['num_pids']
    ]
    test = replace_roots(cfg.test_dataloader.dataset.to_dict(), 'data/',
                         str(tmp_path) + '/')
    assert len(DATASETS.build(test)) > 0


def test_head_rejects_what_it_would_ignore():
    """Issue 13.6: unknown M-Net types and a test feature that
    contradicts the paired one are errors, not silently replaced."""
    with pytest.raises(KeyError, match='NoSuchMNet'):
        build_head(mnet=dict(type='NoSuchMNet'))
    with pytest.raises(ValueError, match='test_feature'):
        build_head(test_feature='before_bn')
    with pytest.raises(ValueError, match='test_feature'):
        build_head(pair_feat='pre_bn', test_feature='after_bn')
    with pytest.raises(ValueError, match='in_channels'):
        build_head(mnet=dict(hidden_channels=8, in_channels=32))
    with pytest.raises(TypeError, match='MNet does not take'):
        build_head(mnet=dict(hidden_channels=8, hidden=8))
    # A BNNeckHead config turned into a GMNHead one keeps working when its
    # test_feature is the paired feature.
    head = build_head(test_feature='after_bn', mnet=dict(type='MNet'))
    assert isinstance(head.mnet, MNet) and head.test_feature == 'after_bn'
    head = build_head(pair_feat='pre_bn', test_feature='before_bn')
    assert head.test_feature == 'before_bn'


def test_gmn_reid_scorers_check_the_decomposition(capsys):
    from mmengine.logging import MMLogger
    MMLogger.get_instance('test_gmn_check')
    model = build_model(check_queries=3, max_logit_error=1e-3).eval()
    feats = F.normalize(torch.randn(10, 64), dim=1)
    scorer = model.scorers()['mnet']
    assert scorer.check_queries == 3 and scorer.max_logit_error == 1e-3
    scorer(feats[:4], feats[4:])
    assert scorer.last_check['num_queries'] == 3
    assert 'max |dz|' in capsys.readouterr().out
    with pytest.raises(ValueError, match='check_queries'):
        build_model(check_queries=-2)
    with pytest.raises(ValueError, match='max_logit_error'):
        build_model(max_logit_error=-1.0)


def test_dp_without_its_hook_is_refused_in_training():
    """DP is switched by GMNDPWarmupHook; without it DP silently never ran
    (28 clean pairs, dp_on 0) while the config asked for it."""
    head = MODELS.build(
        dict(
            type='GMNHead',
            in_channels=16,
            num_classes=4,
            mnet=dict(hidden_channels=8),
            dp=dict(rate=0.5, warmup_epochs=0)))
    head.init_weights()
    assert head.dp_enabled is None
    labels = pk_labels(4, 2)
    feats = F.normalize(torch.randn(8, 16), dim=1)
    with pytest.raises(RuntimeError, match='GMNDPWarmupHook.*dp=None'):
        head.build_pairs(feats, labels)
    with pytest.raises(RuntimeError, match='GMNDPWarmupHook'):
        head.loss(torch.randn(8, 16), samples_of(labels))
    # Evaluation never perturbs, and a head without DP needs no hook.
    head.eval()
    assert len(head.build_pairs(feats, labels)[0]) == 28
    plain = build_head(dp=None)
    plain.dp_enabled = None
    assert len(plain.build_pairs(feats, labels)[0]) == 28


def test_mnet_init_default_and_its_own_init_cfg():
    """The head's Normal(std=0.001) init is for the classifier: the M-Net's
    Linears get PyTorch's default back, or the M-Net's own init_cfg (which
    used to be overwritten by that reset)."""
    torch.manual_seed(0)
    head = build_head(mnet=dict(hidden_channels=8))
    first = head.mnet.hidden[0].weight
    bound = 1 / first.shape[1]**0.5  # PyTorch's U(-1/sqrt(fan_in), ...)
    assert first.abs().max() <= bound and first.std() > 0.1 * bound
    assert head.classifier.weight.std() < 0.01
    head = build_head(
        mnet=dict(
            hidden_channels=8,
            init_cfg=dict(type='Constant', layer='Linear', val=0.5, bias=0)))
    for module in head.mnet.modules():
        if isinstance(module, torch.nn.Linear):
            assert bool((module.weight == 0.5).all())
    assert head.classifier.weight.std() < 0.01


@pytest.mark.parametrize('suffix', ['', '_p3'])
@pytest.mark.parametrize('direction', list(LOO_DIRECTIONS))
def test_baseline_ranks_as_gmn_euclid(direction, suffix):
    """specs/gmn.md: the Baseline row has a "Euclidean test" on the
    retrieval feature f^b / ||f^b|| (section 2), GMN's 'euclid' mode. The
    baseline configs ranked the raw post-BN feature instead, so Baseline
    vs GMN-euclid compared two distances as well as two models."""
    from types import SimpleNamespace

    from mmengine.config import Config
    from mmengine.evaluator import Evaluator

    from mmreid.engine.runner.reid_loops import check_model_distance
    from mmreid.evaluation.functional import compute_distance
    from mmreid.registry import METRICS
    gmn = Config.fromfile(
        f'configs/gmn/gmn_r50_1xb64-60e_{direction}{suffix}.py')
    head = gmn.model.head
    assert (head.pair_feat, head.pair_norm) == ('post_bn', 'l2')
    base = Config.fromfile(
        f'configs/gmn/baseline_r50_1xb64-60e_{direction}{suffix}.py')
    assert base.model.head.test_feature == 'after_bn'
    torch.manual_seed(0)
    # Post-BN features of unequal norms rank otherwise when raw.
    query = torch.randn(6, 16) * torch.rand(6, 1) * 10
    gallery = torch.randn(40, 16) * torch.rand(40, 1) * 10
    euclid = mnet_distances(
        F.normalize(query, dim=1),
        F.normalize(gallery, dim=1),
        None,
        None,
        None,
        None,
        distance='euclid')
    order = euclid.argsort(dim=1)
    assert not torch.equal(
        compute_distance(query, gallery, 'euclidean').argsort(dim=1), order)
    for key in ('val_evaluator', 'test_evaluator'):
        metric = METRICS.build(base[key])
        torch.testing.assert_close(
            metric.pairwise_distances(query, gallery), euclid)
        check_model_distance(
            SimpleNamespace(distance_type=base.model.distance),
            Evaluator([metric]), key)
    # rank_gallery ranks with the model's distance: the same order.
    assert torch.equal(
        compute_distance(query, gallery, base.model.distance).argsort(dim=1),
        order)


def test_gmn_reid_test_cfg_reaches_the_scorers():
    """distance is model.distance's default mode, method and
    check_queries reach every scorer, mnet_topk the 'mnet' one only."""
    model = build_model(
        distance='euclid', mnet_topk=2, method='direct',
        check_queries=0).eval()
    scorers = model.scorers()
    assert list(scorers) == ['euclid', 'mnet_top2', 'fused']
    assert scorers['mnet_top2'].topk == 2 and scorers['fused'].topk is None
    assert scorers['fused'].method == 'direct'
    assert scorers['fused'].check_queries == 0
    feats = F.normalize(torch.randn(6, 64), dim=1)
    torch.testing.assert_close(
        model.distance(feats[:2], feats[2:]),
        torch.cdist(feats[:2], feats[2:])**2,
        atol=1e-6,
        rtol=0)
    with pytest.raises(ValueError, match='max_logit_error'):
        build_model(max_logit_error=0)
