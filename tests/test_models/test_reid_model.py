import pytest
import torch

from mmreid.models import ReIDModel  # noqa: F401 (registers the parts)
from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample


def build_model(depth=18,
                last_stride=1,
                neck=dict(type='GlobalAvgPool'),
                test_feature='after_bn',
                num_classes=4):
    channels = 512 if depth in (18, 34) else 2048
    return MODELS.build(
        dict(
            type='ReIDModel',
            backbone=dict(
                type='ReIDResNet', depth=depth, last_stride=last_stride),
            neck=neck,
            head=dict(
                type='BNNeckHead',
                in_channels=channels,
                num_classes=num_classes,
                test_feature=test_feature)))


def make_batch(n=8, h=64, w=32):
    inputs = torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8)
    samples = [ReIDDataSample().set_gt_label(i // 2) for i in range(n)]
    return dict(inputs=inputs, data_samples=samples)


def test_forward_modes_and_shapes():
    model = build_model()
    model.init_weights()
    data = model.data_preprocessor(make_batch(), True)
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss_cls', 'loss_tri', 'accuracy'}
    assert all(v.dim() == 0 for v in losses.values())
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    model.eval()
    with torch.no_grad():
        feats = model(data['inputs'], mode='tensor')
        samples = model(**data, mode='predict')
    assert feats.shape == (8, 512)
    assert torch.allclose(
        torch.stack([s.pred_feature for s in samples]), feats)
    with pytest.raises(ValueError, match='invalid mode'):
        model(data['inputs'], mode='features')


def test_last_stride_doubles_final_map():
    x = torch.randn(2, 3, 64, 32)
    one = build_model(last_stride=1).backbone(x)[-1]
    two = build_model(last_stride=2).backbone(x)[-1]
    assert one.shape[-2:] == (4, 2)
    assert two.shape[-2:] == (2, 1)
    with pytest.raises(ValueError, match='last_stride'):
        build_model(last_stride=3)


def test_explicit_strides_must_agree_with_last_stride():
    from mmreid.models.backbones import ReIDResNet

    # The last entry of strides used to be replaced by last_stride.
    with pytest.raises(
            ValueError,
            match=r'strides=\(1, 2, 2, 2\) ends with 2, but last_stride=1'):
        ReIDResNet(18, strides=(1, 2, 2, 2))
    with pytest.raises(ValueError, match='give last_stride=1'):
        ReIDResNet(18, strides=(1, 2, 2, 1), last_stride=2)
    # Agreeing or omitted strides build as before.
    net = ReIDResNet(18, strides=[1, 2, 2, 2], last_stride=2)
    assert net.layer4[0].conv1.stride == (2, 2)
    assert ReIDResNet(18).strides == (1, 2, 2, 1)
    assert ReIDResNet(18, last_stride=2).strides == (1, 2, 2, 2)
    net = ReIDResNet(18, strides=(2, 2, 2, 1))
    assert net.layer1[0].conv1.stride == (2, 2)
    assert net.layer4[0].conv1.stride == (1, 1)


def test_bnneck_bias_frozen_and_test_feature_choice():
    model = build_model(test_feature='before_bn')
    head = model.head
    assert not head.bnneck.bias.requires_grad
    assert head.classifier.bias is None
    model.eval()
    x = torch.randn(3, 512)
    assert torch.equal(head.predict(x), x)
    head.test_feature = 'after_bn'
    assert torch.allclose(head.predict(x), head.bnneck(x))
    with pytest.raises(ValueError, match='test_feature'):
        build_model(test_feature='middle')


def gem_reference(x, p, eps=1e-6):
    """GeM from its definition, (mean over H, W of max(x, eps) ** p) ** (1/p),
    one channel at a time in float64."""
    n, c = x.shape[:2]
    out = torch.empty(n, c, dtype=torch.float64)
    for i in range(n):
        for k in range(c):
            values = [max(float(v), eps) for v in x[i, k].flatten()]
            out[i, k] = (sum(v**p for v in values) / len(values))**(1 / p)
    return out


@pytest.mark.parametrize('p', [1.0, 3.0, 7.5])
def test_gem_pooling_matches_its_definition(p):
    from mmreid.models.layers import GeMPool
    torch.manual_seed(0)
    x = torch.rand(2, 3, 4, 5, dtype=torch.float64) * 2
    x[0, 0, 0, :2] = torch.tensor([0.0, -0.5])  # clamped to eps
    gem = GeMPool(p=p).double()
    out = gem(x)
    expected = gem_reference(x, p)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    # p is learnt: its gradient is that of the definition.
    out.sum().backward()
    p_ref = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    clamped = x.clamp(min=1e-6)
    clamped.pow(p_ref).mean(dim=(2, 3)).pow(1 / p_ref).sum().backward()
    torch.testing.assert_close(gem.p.grad, p_ref.grad)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_gem_pooling_is_fp32_for_half_inputs_and_under_autocast(dtype):
    """GeM pools in fp32: x ** 3 overflows fp16 above 40 and bf16 keeps
    under three digits, so a half map (as AMP gives) is pooled in fp32."""
    from mmreid.models.layers import GeMPool
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(2, 3, 4, 5, generator=gen) * 60).to(dtype)
    expected = gem_reference(x.double(), 3.0)
    gem = GeMPool(p=3.0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = gem(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=0)
    torch.testing.assert_close(gem(x).double(), expected, rtol=1e-5, atol=0)


def test_gem_pooling():
    from mmreid.models.layers import GeMPool, GlobalAvgPool
    x = torch.rand(2, 3, 4, 4) + 0.1
    assert torch.allclose(GeMPool(p=1.0)(x), GlobalAvgPool()(x), atol=1e-6)
    # Large p approaches max pooling, within the exact bounds
    # max * (1 / (H W)) ** (1 / p) <= GeM <= max (one maximum among H W).
    gem, peak = GeMPool(p=60.0)(x), x.amax(dim=(2, 3))
    torch.testing.assert_close(
        gem.double(), gem_reference(x, 60.0), rtol=1e-5, atol=0)
    assert bool((gem <= peak * (1 + 1e-6)).all())
    assert bool((gem >= peak * (1 / 16)**(1 / 60) * (1 - 1e-6)).all())
    out = GeMPool()((x, x))
    assert isinstance(out, tuple) and out[0].shape == (2, 3)
    with pytest.raises(ValueError, match='positive'):
        GeMPool(p=0)


def test_data_preprocessor_normalises_and_checks():
    model = build_model()
    pre = model.data_preprocessor
    batch = make_batch(n=2)
    out = pre(batch)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    expected = (batch['inputs'].float() - mean) / std
    assert torch.allclose(out['inputs'], expected)
    # A list of images is stacked the same way.
    listed = pre(dict(inputs=list(batch['inputs']), data_samples=None))
    assert torch.allclose(listed['inputs'], expected)
    with pytest.raises(ValueError, match='one size'):
        pre(dict(inputs=[torch.zeros(3, 4, 2), torch.zeros(3, 6, 2)]))
    # One image without its batch axis, a gray batch: not (N, 3, H, W).
    for shape in ((3, 4, 2), (2, 1, 4, 2)):
        with pytest.raises(ValueError, match=r'shape \(N, 3, H, W\)'):
            pre(dict(inputs=torch.zeros(shape, dtype=torch.uint8)))
    with pytest.raises(ValueError, match='same length, got 3 and 1'):
        MODELS.build(dict(type='ReIDDataPreprocessor', std=[58.0]))


def test_data_preprocessor_refuses_a_0_1_batch_for_0_255_mean_std():
    pre = MODELS.build(dict(type='ReIDDataPreprocessor'))
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    uint8 = torch.randint(0, 256, (2, 3, 8, 4), dtype=torch.uint8)
    # torchvision's ToTensor(): uint8 / 255, float in [0, 1].
    with pytest.raises(ValueError) as info:
        pre(dict(inputs=uint8.float() / 255))
    message = str(info.value)
    assert '0-1 scale' in message
    assert 'model.data_preprocessor.mean=[123.675, 116.28, 103.53]' in message
    assert 'std=[58.395, 57.12, 57.375]' in message
    # The fix it names: mean and std over 255.
    assert 'mean=[0.485, 0.456, 0.406]' in message
    assert 'std=[0.229, 0.224, 0.225]' in message
    # Genuine 0-255 float batches pass and are normalised as uint8 ones:
    # from uint8, very dark (0 and 1 only), black padding, and synthetic
    # non-integer values that reach above 1.
    dark = torch.randint(0, 2, (2, 3, 8, 4), dtype=torch.uint8)
    synthetic = torch.full((2, 3, 8, 4), 0.5)
    synthetic[0, 0, 0, 0] = 200.25
    padding = torch.zeros(2, 3, 8, 4)
    for batch in (uint8.float(), dark.float(), padding, synthetic,
                  uint8.double()):
        out = pre(dict(inputs=batch))['inputs']
        torch.testing.assert_close(out, (batch.float() - mean) / std)
    # With 0-1 mean and std the same 0-1 batch is what is expected.
    unit = MODELS.build(
        dict(
            type='ReIDDataPreprocessor',
            mean=[0.485, 0.456, 0.406],
            std=[0.229, 0.224, 0.225]))
    out = unit(dict(inputs=uint8.float() / 255))['inputs']
    torch.testing.assert_close(out, (uint8.float() - mean) / std)


def test_model_distance_modes():
    model = build_model()
    q, g = torch.randn(3, 8), torch.randn(5, 8)
    euclidean = torch.cdist(q, g)
    assert torch.allclose(model.distance(q, g), euclidean, atol=1e-5)
    model.distance_type = 'cosine'
    cos = torch.nn.functional.cosine_similarity(
        q.unsqueeze(1), g.unsqueeze(0), dim=2)
    assert torch.allclose(model.distance(q, g), 1 - cos, atol=1e-6)


def test_flip_test_time_augmentation():
    model = build_model()
    model.eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        plain = model(x, mode='tensor')
        mirrored = model(x.flip(3), mode='tensor')
        model.test_cfg = dict(flip=True)
        both = model(x, mode='tensor')
        samples = model.predict(x)
    assert torch.allclose(both, (plain + mirrored) / 2, atol=1e-6)
    assert not torch.allclose(both, plain)
    assert torch.allclose(torch.stack([s.pred_feature for s in samples]), both)
    with pytest.raises(ValueError, match='unknown test_cfg'):
        MODELS.build(
            dict(
                type='ReIDModel',
                backbone=dict(type='ReIDResNet', depth=18),
                head=dict(type='BNNeckHead', in_channels=512, num_classes=2),
                test_cfg=dict(rerank=True)))


@pytest.mark.parametrize('triplet_feat', ['pre_bn', 'bn'])
def test_bnneck_head_triplet_feature(triplet_feat):
    from mmreid.models.heads import BNNeckHead
    from mmreid.models.losses import TripletLoss
    from mmreid.structures import ReIDDataSample
    torch.manual_seed(0)
    head = BNNeckHead(
        in_channels=8,
        num_classes=4,
        loss_tri=dict(type='TripletLoss', margin=None),
        triplet_feat=triplet_feat)
    head.init_weights()
    with torch.no_grad():
        head.bnneck.weight.uniform_(0.2, 3.0)
    feats = torch.randn(8, 8) * 2 + 1
    labels = [0, 0, 1, 1, 2, 2, 3, 3]
    samples = [ReIDDataSample().set_gt_label(p) for p in labels]
    losses = head.loss(feats, samples)
    f_t, f_i = head(feats)
    expected = TripletLoss(margin=None)(
        f_t if triplet_feat == 'pre_bn' else f_i, torch.tensor(labels))
    torch.testing.assert_close(losses['loss_tri'], expected)
    with pytest.raises(ValueError, match='triplet_feat'):
        BNNeckHead(in_channels=8, num_classes=4, triplet_feat='after_bn')


def test_bnneck_head_id_loss_is_on_the_bn_feature():
    """BoT's BNNeck: the ID loss classifies f_i = BN(f_t), not f_t. The
    reference normalises with the batch mean and biased variance by hand
    and writes the label-smoothed cross-entropy out."""
    from mmreid.models.heads import BNNeckHead
    torch.manual_seed(0)
    head = BNNeckHead(in_channels=8, num_classes=4, loss_tri=None)
    head.init_weights()
    head.train()
    with torch.no_grad():
        head.bnneck.weight.uniform_(0.2, 3.0)
        head.classifier.weight.normal_(0, 1.0)
    feats = torch.randn(8, 8) * 2 + 1
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    samples = [ReIDDataSample().set_gt_label(int(p)) for p in labels]
    loss = head.loss(feats, samples)['loss_cls']

    f_t = feats.double()
    mean = f_t.mean(dim=0)
    var = ((f_t - mean)**2).mean(dim=0)  # biased, as BN in training
    f_i = (f_t - mean) / torch.sqrt(var + 1e-5) * head.bnneck.weight.double()
    logits = f_i @ head.classifier.weight.detach().double().t()
    log_p = torch.log_softmax(logits, dim=1)
    eps = 0.1  # BNNeckHead's default label_smooth_eps
    expected = -((1 - eps) * log_p[torch.arange(8), labels] +
                 eps * log_p.mean(dim=1)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_gem_fixed_p_is_not_trained_by_the_agw_recipe():
    """AGW fixes GeM's p at 3 (configs/_base_/models/agw_r50.py,
    learnable=False): p is no trainable parameter and one step of the AGW
    optimiser (SGD with weight decay) leaves it at exactly 3."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    neck = Config.fromfile('configs/_base_/models/agw_r50.py').model.neck
    assert neck.learnable is False
    model = build_model(neck=neck.to_dict())
    model.init_weights()
    assert not model.neck.p.requires_grad
    trainable = [q for q in model.parameters() if q.requires_grad]
    assert all(q is not model.neck.p for q in trainable)
    schedule = Config.fromfile('configs/_base_/schedules/agw_sgd_81e.py')
    optim_wrapper = build_optim_wrapper(model, schedule.optim_wrapper)
    data = model.data_preprocessor(make_batch(n=4), True)
    losses = model(**data, mode='loss')
    optim_wrapper.update_params(losses['loss_cls'] + losses['loss_tri'])
    assert model.neck.p.item() == 3.0


def test_the_0_1_scale_check_follows_its_definition():
    """Refused: a float batch whose values all lie in [0, 1], not all
    integers, when mean or std is on the 0-255 scale (any of them above
    1)."""
    pre = MODELS.build(dict(type='ReIDDataPreprocessor'))
    # ToTensor() of an image with white in it: the maximum is exactly 1.
    white = torch.tensor([0.0, 0.25, 0.5, 1.0]).repeat(2, 3, 2, 1)
    with pytest.raises(ValueError, match='0-1 scale'):
        pre(dict(inputs=white))
    # Values below 0 are no 0-1 image (e.g. a batch normalised already):
    # not refused, normalised as given.
    signed = white - 0.5
    out = pre(dict(inputs=signed))['inputs']
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (signed - mean) / std)
    # Mean 0 and std 255 (a 0-255 input scaled to 0-1 by the model): the
    # std alone puts the statistics on the 0-255 scale.
    scaled = MODELS.build(
        dict(type='ReIDDataPreprocessor', mean=[0, 0, 0], std=[255, 255, 255]))
    with pytest.raises(ValueError, match='0-1 scale'):
        scaled(dict(inputs=white))
    # An empty batch has no scale to check.
    empty = pre(dict(inputs=torch.zeros(0, 3, 2, 4)))['inputs']
    assert empty.shape == (0, 3, 2, 4)


@pytest.mark.parametrize('p', [7.6, 20.0, 60.0])
def test_gem_of_a_zero_channel_at_a_large_p_is_eps_with_finite_gradients(p):
    """eps ** p underflows in fp32 from p = 7.5 (eps = 1e-6): a channel
    that is zero everywhere (after a ReLU) pooled to 0, not eps, and the
    gradients of p and x were NaN; x ** p of a channel near 100 overflowed
    at p = 20 (inf features)."""
    from mmreid.models.layers import GeMPool
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(2, 3, 4, 5)
    x[:, 1] = torch.rand(2, 4, 5, generator=gen) * 100
    x[:, 2] = torch.rand(2, 4, 5, generator=gen)
    x.requires_grad_(True)
    gem = GeMPool(p=p)
    out = gem(x)
    (out * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.isfinite(gem.p.grad) and torch.isfinite(x.grad).all()
    torch.testing.assert_close(out[:, 0], torch.full((2, ), 1e-6))
    # The definition with each channel's values divided by their maximum m
    # (m * mean((v / m) ** p) ** (1 / p), equal): eps ** 60 underflows
    # float64 too.
    values = x.detach().double().clamp(min=1e-6).flatten(2)
    peak = values.amax(dim=2, keepdim=True)
    expected = peak[..., 0] * ((values / peak)**p).mean(dim=2)**(1 / p)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=0)


def test_gem_is_the_plain_form_bit_for_bit_where_it_is_finite():
    """The guard changes no bit of a model whose pooling neither underflows
    nor overflows (every shipped config, p = 3): values and gradients."""
    import torch.nn.functional as F

    from mmreid.models.layers import GeMPool
    gen = torch.Generator().manual_seed(1)
    weights = torch.arange(16.)
    for _ in range(10):
        x = (torch.randn(4, 16, 6, 5, generator=gen) * 3).relu()
        p = float(torch.empty(1).uniform_(1, 6, generator=gen))
        gem = GeMPool(p)
        xa = x.clone().requires_grad_(True)
        out = gem(xa)
        (out * weights).sum().backward()
        p_ref = torch.tensor(p, requires_grad=True)
        xb = x.clone().requires_grad_(True)
        ref = F.adaptive_avg_pool2d(xb.clamp(min=1e-6).pow(p_ref),
                                    1).pow(1.0 / p_ref).flatten(1)
        (ref * weights).sum().backward()
        assert torch.equal(out, ref) and torch.equal(xa.grad, xb.grad)
        assert torch.equal(gem.p.grad, p_ref.grad)


@pytest.mark.parametrize('dtype', [torch.uint16, torch.int32, torch.int64])
def test_data_preprocessor_refuses_integers_outside_0_255(dtype):
    """A 16-bit image (mmcv's loader with color_type='unchanged') was
    normalised as if it were 0-255: values near 690 where a 0-255 image
    gives [-2.1, 2.7]. Integers within 0-255 of any dtype are taken."""
    pre = build_model().data_preprocessor
    images = torch.full((2, 3, 8, 4), 40000, dtype=torch.int64).to(dtype)
    with pytest.raises(
            ValueError, match=f'{dtype} batch with values in '
            r'\[40000, 40000\]'):
        pre(dict(inputs=images))
    small = torch.randint(0, 256, (2, 3, 8, 4)).to(dtype)
    torch.testing.assert_close(
        pre(dict(inputs=small))['inputs'],
        pre(dict(inputs=small.to(torch.uint8)))['inputs'])
    with pytest.raises(ValueError, match='bool batch'):
        pre(dict(inputs=torch.ones(2, 3, 8, 4, dtype=torch.bool)))
