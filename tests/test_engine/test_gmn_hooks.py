"""GMNDPWarmupHook, the model-distance contract and ReIDMetric's named
scorers (and the deprecated ModelDistanceHook)."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger

from mmreid.engine.hooks import GMNDPWarmupHook, ModelDistanceHook
from mmreid.engine.runner import hand_model_scorers
from mmreid.evaluation import ReIDMetric
from mmreid.evaluation.functional import evaluate_features
from mmreid.models import GMNReID  # noqa: F401
from mmreid.registry import HOOKS, MODELS
from mmreid.structures import ReIDDataSample


def build_model(model_type='GMNReID', dp_warmup=3, **test_cfg):
    head = dict(
        type='GMNHead',
        in_channels=16,
        num_classes=4,
        mnet=dict(hidden_channels=8),
        dp=None if dp_warmup is None else dict(warmup_epochs=dp_warmup))
    if model_type == 'ReIDModel':
        head = dict(type='BNNeckHead', in_channels=16, num_classes=4)
    cfg = dict(
        type=model_type,
        backbone=dict(
            type='ReIDResNet', depth=18, base_channels=2, stem_channels=2),
        head=head)
    if test_cfg:
        cfg['test_cfg'] = test_cfg
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def fake_runner(model, epoch=0, **loops):
    return SimpleNamespace(
        model=model,
        epoch=epoch,
        logger=MMLogger.get_instance('test_gmn_hooks'),
        **loops)


def test_dp_warmup_hook_switches_from_epoch():
    model = build_model()
    head = model.head
    hook = HOOKS.build(dict(type='GMNDPWarmupHook'))
    runner = fake_runner(model)
    seen = []
    for epoch in range(5):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        seen.append(head.dp_enabled)
    assert seen == [False, False, False, True, True]  # head's E_dp = 3
    model.train()
    assert head.dp_active
    model.eval()
    assert not head.dp_active  # never in eval

    # resume: a fresh model (dp_enabled undecided) at epoch 4 -> on at
    # once; a run rewound to epoch 1 -> off again; nothing in the state
    # dict.
    resumed = build_model()
    resumed.load_state_dict(model.state_dict())
    assert resumed.head.dp_enabled is None
    hook.before_train_epoch(fake_runner(resumed, epoch=4))
    assert resumed.head.dp_enabled is True
    hook.before_train_epoch(fake_runner(resumed, epoch=1))
    assert resumed.head.dp_enabled is False
    assert not any('dp' in k for k in model.state_dict())


def test_dp_switch_is_logged_with_mmengine_epoch_numbers():
    """E_dp = 3: epochs 0-2 (0-based) without DP, so DP starts in the
    fourth epoch, which mmengine logs as Epoch(train) [4]."""
    hook = HOOKS.build(dict(type='GMNDPWarmupHook'))
    messages = []
    runner = fake_runner(build_model())
    runner.logger = SimpleNamespace(info=messages.append)
    for epoch in range(5):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
    assert messages == [
        'GMN DP off from Epoch(train) [1] (E_dp=3)',
        'GMN DP on from Epoch(train) [4] (E_dp=3)'
    ]


def test_dp_warmup_hook_override_and_wrapper():
    model = build_model()
    wrapped = torch.nn.DataParallel(model)
    hook = GMNDPWarmupHook(warmup_epochs=0)
    hook.before_train_epoch(fake_runner(wrapped, epoch=0))
    assert model.head.dp_enabled is True
    with pytest.raises(ValueError, match='warmup_epochs'):
        GMNDPWarmupHook(warmup_epochs=-1)
    with pytest.raises(TypeError, match='dp_enabled'):
        hook.before_train_epoch(fake_runner(build_model('ReIDModel'), epoch=0))


def test_dp_warmup_in_an_iteration_based_loop_is_refused():
    """An iteration-based loop calls before_train_epoch once, at epoch 0:
    a warm-up of E_dp > 0 epochs would never end and DP never run."""
    from mmengine.runner import IterBasedTrainLoop
    loop = IterBasedTrainLoop.__new__(IterBasedTrainLoop)
    hook = HOOKS.build(dict(type='GMNDPWarmupHook'))
    with pytest.raises(
            ValueError, match='warm-up of 3 epochs.*IterBasedTrainLoop'):
        hook.before_train(fake_runner(build_model(), train_loop=loop))
    # Without a warm-up DP is on from the first iteration: accepted.
    hook = GMNDPWarmupHook(warmup_epochs=0)
    runner = fake_runner(build_model(), train_loop=loop)
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    assert runner.model.head.dp_enabled is True
    # A warm-up of one epoch would not end either.
    with pytest.raises(ValueError, match='warm-up of 1 epochs'):
        GMNDPWarmupHook(warmup_epochs=1).before_train(
            fake_runner(build_model(), train_loop=loop))
    # A head without DP has no warm-up to wait for.
    GMNDPWarmupHook().before_train(
        fake_runner(build_model(dp_warmup=None), train_loop=loop))
    # Epoch-based loops are unaffected.
    GMNDPWarmupHook().before_train(
        fake_runner(build_model(), train_loop=None))


def test_dp_warmup_in_an_epoch_based_loop_is_accepted():
    """The refusal is for iteration-based loops only: an epoch-based loop
    calls before_train_epoch every epoch, so a warm-up ends there."""
    from mmengine.runner import EpochBasedTrainLoop
    loop = EpochBasedTrainLoop.__new__(EpochBasedTrainLoop)
    runner = fake_runner(build_model(), train_loop=loop)
    hook = HOOKS.build(dict(type='GMNDPWarmupHook'))
    hook.before_train(runner)
    runner.epoch = 3
    hook.before_train_epoch(runner)
    assert runner.model.head.dp_enabled is True


def make_samples(feats, pids, camids, roles):
    samples = []
    for idx, (f, pid, cam, role) in enumerate(zip(feats, pids, camids, roles)):
        sample = ReIDDataSample(
            metainfo=dict(
                camid=cam,
                role=role,
                dataset='toy',
                img_path=f'{idx}.jpg',
                sample_idx=idx))
        sample.set_gt_label(pid)
        sample.set_pred_feature(f)
        samples.append(sample.to_dict())
    return samples


def toy_data(seed=0, num_query=6, num_gallery=24, dim=16):
    generator = torch.Generator().manual_seed(seed)
    num = num_query + num_gallery
    pids = [i % 4 for i in range(num)]
    centers = torch.randn(4, dim, generator=generator)
    feats = F.normalize(
        centers[pids] + 1.5 * torch.randn(num, dim, generator=generator),
        dim=1)
    camids = [0 if i < num_query else 1 + i % 2 for i in range(num)]
    roles = ['query'] * num_query + ['gallery'] * num_gallery
    return feats, pids, camids, roles


def run_metric(metric, samples):
    metric.process(None, samples)
    return metric.evaluate(len(samples))


def expected(feats, pids, camids, roles, scorer):
    q = torch.tensor([r == 'query' for r in roles])
    pids, camids = torch.tensor(pids), torch.tensor(camids)
    return evaluate_features(
        feats[q],
        feats[~q],
        pids[q],
        pids[~q],
        camids[q],
        camids[~q],
        distance=scorer)


def test_metric_reports_several_modes_in_one_run():
    data = toy_data()
    model = build_model(fuse_beta=0.25)
    model.eval()
    metric = ReIDMetric()
    val_loop = SimpleNamespace(evaluator=Evaluator([metric]))
    hand_model_scorers(model, val_loop.evaluator, 'test')
    assert list(metric.scorers) == ['mnet', 'euclid', 'fused']
    assert metric.primary_scorer == 'mnet'
    metrics = run_metric(metric, make_samples(*data))
    for mode in ('mnet', 'euclid', 'fused'):
        ref = expected(
            *data, scorer=lambda q, g, m=mode: model.distance(q, g, mode=m))
        assert metrics[f'reid/{mode}/mAP'] == pytest.approx(ref.mAP * 100)
        assert metrics[f'reid/{mode}/R1'] == pytest.approx(ref.cmc[0] * 100)
    # euclid mode is the plain Euclidean ranking
    plain = expected(*data, scorer='euclidean')
    assert metrics['reid/euclid/mAP'] == pytest.approx(plain.mAP * 100)
    # the primary mode also without prefix
    for key in ('mAP', 'R1', 'mINP', 'num_query'):
        assert metrics[f'reid/{key}'] == metrics[f'reid/mnet/{key}']
    # the modes really differ (the M-Net is not the Euclidean distance)
    q, g = data[0][:6], data[0][6:]
    assert not torch.allclose(
        model.distance(q, g, 'mnet').argsort(1),
        model.distance(q, g, 'euclid').argsort(1))

    # the reset goes back to the single-distance path and its keys
    metric.set_scorers(None)
    metrics = run_metric(metric, make_samples(*data))
    assert 'reid/mnet/mAP' not in metrics
    assert metrics['reid/mAP'] == pytest.approx(plain.mAP * 100)


def test_metric_set_scorers_validation():
    metric = ReIDMetric()
    with pytest.raises(ValueError, match='primary'):
        metric.set_scorers({'a': lambda q, g: q @ g.t()}, primary='b')
    with pytest.raises(TypeError, match='callable'):
        metric.set_scorers({'a': 'euclidean'})
    with pytest.raises(ValueError, match='without'):
        metric.set_scorers({'a/b': lambda q, g: q @ g.t()})


def test_distance_hook_sets_every_target_and_test_loop():
    model = build_model(distance='euclid', report_modes=('mnet', ))
    targets = [
        SimpleNamespace(name=n, evaluator=Evaluator([ReIDMetric()]))
        for n in ('a', 'b')
    ]
    multi = SimpleNamespace(targets=targets)
    test_loop = SimpleNamespace(evaluator=Evaluator([ReIDMetric()]))
    runner = fake_runner(model, val_loop=multi, test_loop=test_loop)
    with pytest.warns(FutureWarning, match='ModelDistanceHook'):
        hook = ModelDistanceHook()
    hook.before_val(runner)
    for target in targets:
        metric = target.evaluator.metrics[0]
        assert list(metric.scorers) == ['euclid', 'mnet']
        assert metric.primary_scorer == 'euclid'
    assert not test_loop.evaluator.metrics[0].scorers
    # mmengine's plain loops then accept the model for the evaluation
    assert model.scorers_consumer == 'ModelDistanceHook'
    hook.after_val(runner)
    assert model.scorers_consumer is None
    hook.before_test(runner)
    assert list(test_loop.evaluator.metrics[0].scorers) == ['euclid', 'mnet']
    hook.after_test(runner)
    assert model.scorers_consumer is None


def test_distance_hook_leaves_plain_models_alone():
    model = build_model('ReIDModel')
    metric = ReIDMetric(rerank=dict(k1=4, k2=2, lambda_value=0.3))
    runner = fake_runner(
        model, val_loop=SimpleNamespace(evaluator=Evaluator([metric])))
    hand_model_scorers(runner.model, runner.val_loop.evaluator, 'test')
    assert metric.scorers == {} and metric.scorer is None
    metrics = run_metric(metric, make_samples(*toy_data()))
    assert 'reid/mAP' in metrics


@pytest.mark.parametrize('warmup', [-2, 2.5])
def test_a_head_warmup_that_is_no_epoch_count_is_refused(warmup):
    """The hook refuses warmup_epochs < 0 of its own; the head's
    dp.warmup_epochs, which it reads by default, is the same E_dp."""
    with pytest.raises(ValueError, match='warmup_epochs'):
        model = build_model(dp_warmup=warmup)
        GMNDPWarmupHook().before_train_epoch(fake_runner(model, epoch=0))
