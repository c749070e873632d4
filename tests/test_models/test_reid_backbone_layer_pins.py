"""Behaviour of the ReID backbones, layers and BNNeck head that a user's
numbers depend on and no other test pins."""
import pytest
import torch

from mmreid.models import ReIDModel  # noqa: F401 (registers the parts)
from mmreid.structures import ReIDDataSample


def test_bnneck_training_accuracy_is_the_top1_rate_of_the_classifier():
    """The logged ``accuracy`` is the fraction of samples whose largest
    logit is their identity; a wrong reduction would log a misleading
    training accuracy."""
    from mmreid.models.heads import BNNeckHead
    head = BNNeckHead(
        in_channels=4, num_classes=4, loss_cls=None, loss_tri=None)
    head.init_weights()
    head.eval()  # BN with running stats (0, 1): f_i = f_t up to 1e-5
    with torch.no_grad():
        head.classifier.weight.copy_(torch.eye(4))
    # Each row's largest entry is at column 0, 1, 2, 3.
    feats = torch.tensor([[5., 1., 0., 2.], [0., 4., 1., 3.],
                          [1., 0., 6., 2.], [0., 2., 1., 7.]])
    labels = [0, 1, 3, 3]  # three of four right
    samples = [ReIDDataSample().set_gt_label(p) for p in labels]
    losses = head.loss(feats, samples)
    assert set(losses) == {'accuracy'}
    assert losses['accuracy'].item() == pytest.approx(0.75)


def test_bnneck_head_uses_the_last_of_a_tuple_of_features():
    """A backbone with several ``out_indices`` gives a tuple of pooled
    features; the head works on the last (deepest) one, so a shallower
    stage's feature would be a wrong test feature and training signal."""
    from mmreid.models.heads import BNNeckHead
    torch.manual_seed(0)
    head = BNNeckHead(in_channels=6, num_classes=3)
    head.init_weights()
    shallow, deep = torch.randn(6, 6), torch.randn(6, 6) * 3 + 1
    head.eval()
    torch.testing.assert_close(
        head.predict((shallow, deep)), head.predict(deep))
    head.test_feature = 'before_bn'
    assert torch.equal(head.predict((shallow, deep)), deep)
    head.train()
    samples = [ReIDDataSample().set_gt_label(i // 2) for i in range(6)]
    from_tuple = head.loss((shallow, deep), samples)
    from_deep = head.loss(deep, samples)
    for key in ('loss_cls', 'loss_tri'):
        torch.testing.assert_close(from_tuple[key], from_deep[key])


def test_gem_of_a_sparse_channel_that_overflows_fp32_is_its_definition():
    """A channel with one large activation at a large p: ``x ** p``
    overflows fp32 (100 ** 40), so GeM rescales that channel; the pooled
    value must still be (mean of max(x, eps) ** p) ** (1 / p), here about
    93.3, not inf or NaN (computed from the definition in float64)."""
    from mmreid.models.layers import GeMPool
    p, eps = 40.0, 1e-6
    x = torch.zeros(1, 2, 4, 4)
    x[0, 0, 1, 2] = 100.0  # sparse, overflowing channel
    x[0, 1] = torch.linspace(0.5, 2.0, 16).view(4, 4)  # an ordinary one
    out = GeMPool(p=p, learnable=False)(x)
    expected = x.double().clamp(min=eps).pow(p).mean(dim=(2, 3)).pow(1 / p)
    assert expected[0, 0].item() == pytest.approx(100 * 16**(-1 / 40))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=0)


@pytest.mark.parametrize('reduc_ratio', [0, 3, 5])
def test_non_local_refuses_a_reduc_ratio_that_does_not_divide_channels(
        reduc_ratio):
    """``inter_channels = C // reduc_ratio`` is only what the user asked
    for when reduc_ratio divides C; otherwise the block would silently
    get another width (8 // 3 = 2), so it is refused."""
    from mmreid.models.layers.non_local import AGWNonLocal
    with pytest.raises(ValueError, match='reduc_ratio must divide'):
        AGWNonLocal(8, reduc_ratio=reduc_ratio)
    assert AGWNonLocal(8, reduc_ratio=4).inter_channels == 2
