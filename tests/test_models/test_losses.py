import math

import pytest
import torch

from mmreid.models.losses import (DualCausalityLoss, ReIDCrossEntropyLoss,
                                  TripletLoss, WRTLoss, pairwise_euclidean)
from mmreid.registry import MODELS


def naive_batch_hard(feats, labels, margin):
    """Per-anchor reference: loop over every pair."""
    losses = []
    n = feats.size(0)
    for a in range(n):
        pos = [
            torch.dist(feats[a], feats[p]).item() for p in range(n)
            if labels[p] == labels[a] and p != a
        ]
        neg = [
            torch.dist(feats[a], feats[q]).item() for q in range(n)
            if labels[q] != labels[a]
        ]
        d_ap = max(pos) if pos else 0.0
        d_an = min(neg)
        if margin is None:
            losses.append(math.log1p(math.exp(d_ap - d_an)))
        else:
            losses.append(max(0.0, d_ap - d_an + margin))
    return sum(losses) / len(losses)


@pytest.mark.parametrize('margin', [0.3, 1.0, None])
def test_triplet_matches_naive_reference(margin):
    torch.manual_seed(0)
    feats = torch.randn(12, 5)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    loss = TripletLoss(margin=margin)(feats, labels)
    assert loss.item() == pytest.approx(
        naive_batch_hard(feats, labels, margin), rel=1e-5)


@pytest.mark.parametrize('margin', [0.3, None])
def test_triplet_gradient_is_the_definitions(margin):
    """The loss pushes each anchor's hardest negative away as well as
    pulling its hardest positive in: its gradient is that of the
    per-anchor definition through autograd (a detached negative distance
    gives the same loss value and another gradient)."""

    def definition(feats):
        terms = []
        for a in range(len(labels)):
            dist = (feats[a] - feats).norm(dim=1)
            same = labels == labels[a]
            same[a] = False
            diff = dist[same].max() - dist[labels != labels[a]].min()
            terms.append(
                torch.nn.functional.softplus(diff) if margin is None else
                torch.relu(diff + margin))
        return torch.stack(terms).mean()

    torch.manual_seed(0)
    base = torch.randn(12, 5, dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    feats, expected = (base.clone().requires_grad_(True) for _ in range(2))
    TripletLoss(margin=margin)(feats, labels).backward()
    definition(expected).backward()
    torch.testing.assert_close(feats.grad, expected.grad, rtol=1e-4,
                               atol=1e-6)


@pytest.mark.parametrize('margin', [0.3, None])
def test_triplet_normalize_feature_uses_unit_embeddings(margin):
    """``normalize_feature=True``: each embedding (row) is L2-normalised
    before the distances; columns of different scales make a column-wise
    normalisation give another loss."""
    torch.manual_seed(0)
    feats = torch.randn(8, 5) * torch.tensor([1., 3., .2, 5., 1.])
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    loss = TripletLoss(margin=margin, normalize_feature=True)(feats, labels)
    unit = feats / feats.norm(dim=1, keepdim=True)
    assert loss.item() == pytest.approx(
        naive_batch_hard(unit, labels, margin), rel=1e-5)


def test_triplet_zero_when_well_separated_and_has_gradient():
    labels = torch.tensor([0, 0, 1, 1])
    feats = torch.tensor([[0., 0.], [0., 0.1], [10., 0.], [10., 0.1]])
    assert TripletLoss(margin=0.3)(feats, labels).item() == 0.0
    feats = torch.randn(4, 3, requires_grad=True)
    TripletLoss(margin=0.3)(feats, labels).backward()
    assert torch.isfinite(feats.grad).all()


def test_triplet_loss_weight_and_single_identity():
    feats = torch.randn(6, 4)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    base = TripletLoss(margin=0.3)(feats, labels)
    assert TripletLoss(
        margin=0.3,
        loss_weight=2.0)(feats,
                         labels).item() == pytest.approx(2 * base.item())
    # No negative in the batch: no anchor contributes.
    same = TripletLoss()(feats, torch.zeros(6, dtype=torch.long))
    assert same.item() == 0.0


def test_cross_entropy_label_smoothing_formula():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    labels = torch.tensor([0, 2])
    eps = 0.1
    log_p = torch.log_softmax(logits, dim=1)
    target = torch.full_like(log_p, eps / 3)
    target[0, 0] += 1 - eps
    target[1, 2] += 1 - eps
    expected = -(target * log_p).sum(1).mean()
    loss = ReIDCrossEntropyLoss(label_smooth_eps=eps)(logits, labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_cross_entropy_errors():
    with pytest.raises(ValueError, match='label_smooth_eps'):
        ReIDCrossEntropyLoss(label_smooth_eps=1.0)
    with pytest.raises(ValueError, match='classifier size'):
        ReIDCrossEntropyLoss()(torch.randn(2, 3), torch.tensor([0, 3]))


def _gap_like_feats():
    """64 GAP-like features (8 ids x 8) whose expanded-form distances
    cancel badly in bf16 (|x|^2 ~ 440, median d ~ 15)."""
    gen = torch.Generator().manual_seed(0)
    return (torch.rand(64, 2048, generator=gen) * 0.8,
            torch.arange(8).repeat_interleave(8))


def test_pairwise_euclidean_is_fp32_under_autocast():
    """Spec SNR §3.2: distances in fp32 even under AMP. CPU bf16 autocast
    takes the path CUDA fp16 --amp takes (``x @ y.t()`` is a
    lower-precision op under autocast even for fp32 inputs)."""
    feats, _ = _gap_like_feats()
    ref = torch.cdist(feats.double(), feats.double())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        dist = pairwise_euclidean(feats, feats)
        dist_half_in = pairwise_euclidean(feats.bfloat16(), feats.bfloat16())
    assert dist.dtype == torch.float32 and dist_half_in.dtype == torch.float32
    off_diag = ~torch.eye(64, dtype=torch.bool)
    torch.testing.assert_close(
        dist[off_diag].double(), ref[off_diag], rtol=0, atol=1e-3)
    assert pairwise_euclidean(feats.double(), feats.double()).dtype \
        == torch.float64


@pytest.mark.parametrize(
    'make_loss', [
        lambda: TripletLoss(margin=0.3),
        lambda: TripletLoss(margin=None),
        lambda: WRTLoss(),
        lambda: WRTLoss(exact_softmax=True),
    ],
    ids=['triplet', 'soft_triplet', 'wrt', 'wrt_exact'])
def test_metric_losses_equal_with_and_without_autocast(make_loss):
    feats, labels = _gap_like_feats()
    loss = make_loss()
    expected = loss(feats, labels)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = loss(feats, labels)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


def test_dual_causality_loss_equal_with_and_without_autocast():
    feats, labels = _gap_like_feats()
    gen = torch.Generator().manual_seed(1)
    feat_pos = feats + 0.1 * torch.rand(64, 2048, generator=gen)
    feat_neg = feats + 0.1 * torch.rand(64, 2048, generator=gen)
    loss = DualCausalityLoss()
    expected = loss(feats, feat_pos, feat_neg, labels)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = loss(feats, feat_pos, feat_neg, labels)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_cross_entropy_of_half_logits_is_computed_in_fp32(dtype):
    """fp16 logits of 751 classes (a model in .half() outside autocast)
    gave inf, bf16 11.25 for 11.35: the log-sum-exp in half precision."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 751, generator=generator) * 4
    labels = torch.randint(0, 751, (64, ), generator=generator)
    loss = ReIDCrossEntropyLoss(label_smooth_eps=0.1)
    expected = loss(logits.to(dtype).double(), labels)
    got = loss(logits.to(dtype), labels)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize('make_loss', [
    lambda w: ReIDCrossEntropyLoss(loss_weight=w),
    lambda w: TripletLoss(loss_weight=w),
    lambda w: WRTLoss(loss_weight=w),
    lambda w: DualCausalityLoss(loss_weight=w),
    lambda w: MODELS.build(dict(type='PairVerificationLoss', loss_weight=w)),
    lambda w: MODELS.build(dict(type='PICLoss', loss_weight=w)),
])
@pytest.mark.parametrize('weight', [-1.0, float('nan'), float('inf'), True])
def test_a_loss_weight_that_is_not_finite_and_nonnegative_is_refused(
        make_loss, weight):
    """A negative ``loss_weight`` trained the model to maximise the term (a
    config typo, ``-1`` for ``1e-1``), NaN or inf made every step's loss
    NaN; both were accepted. 0 (the term off) is kept."""
    with pytest.raises(ValueError, match='loss_weight must be a finite '
                       r'number >= 0, got'):
        make_loss(weight)
    assert make_loss(0).loss_weight == 0.0


@pytest.mark.parametrize('margin', [float('nan'), float('inf'), -0.1])
def test_triplet_margin_must_be_finite_and_nonnegative(margin):
    """A NaN margin passed ``margin < 0`` and made the loss NaN on every
    batch."""
    with pytest.raises(ValueError, match='margin must be a finite number'):
        TripletLoss(margin=margin)
