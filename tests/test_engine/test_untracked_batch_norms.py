"""A batch norm layer without running statistics normalises each test
batch with its own statistics: several processes batch the test set
otherwise than one, so the loops refuse such a model there, before any
feature is extracted."""
import pytest
import torch
from mmengine.runner import Runner

from mmreid.engine.runner import reid_loops
from mmreid.models.layers.mbn import MBN, untracked_batch_norms
from mmreid.utils.config import load_config

UNTRACKED = ("model['backbone']['norm_cfg'] = dict(type='BN', "
             'track_running_stats=False)')


def test_the_layers_without_running_statistics_are_listed():
    model = torch.nn.Sequential(
        torch.nn.BatchNorm2d(4),
        torch.nn.BatchNorm1d(4, track_running_stats=False),
        torch.nn.LayerNorm(4), torch.nn.InstanceNorm2d(4),
        torch.nn.SyncBatchNorm(4, track_running_stats=False), MBN(4))
    assert untracked_batch_norms(model) == ['1', '4']


def test_their_features_depend_on_the_batch(make_config):
    """What the refusal is for."""
    from mmreid.registry import MODELS
    cfg = load_config(make_config(extra=UNTRACKED), phase='test')
    model = MODELS.build(cfg.model).eval()
    images = torch.randn(4, 3, 32, 16)
    with torch.no_grad():
        whole = model(images, mode='tensor')
        half = model(images[:2], mode='tensor')
    assert not torch.allclose(whole[:2], half, atol=1e-4)


def as_one_target(cfg) -> None:
    """Move a config's test loader and evaluator into a multi-target test
    loop's one target, ``d2``."""
    cfg.test_cfg = dict(
        type='MultiTargetTestLoop',
        targets=[
            dict(
                name='d2',
                dataloader=cfg.test_dataloader,
                evaluator=cfg.test_evaluator)
        ])
    cfg.test_dataloader = dict()
    cfg.test_evaluator = dict()


@pytest.mark.parametrize('loop', ['ReIDTestLoop', 'MultiTargetTestLoop'])
@pytest.mark.parametrize('extra', [UNTRACKED, ''])
def test_several_processes_are_refused_before_extraction(
        make_config, tmp_path, monkeypatch, loop, extra):
    single = load_config(
        make_config(extra=extra), phase='test', work_dir=str(tmp_path / 'a'))
    if loop == 'MultiTargetTestLoop':
        as_one_target(single)
    runner = Runner.from_cfg(single)
    monkeypatch.setattr(reid_loops, 'get_world_size', lambda: 2)
    steps = []
    runner.model.test_step = lambda data: steps.append(1)
    if not extra:
        # The tracked model passes the check, and extraction begins.
        with pytest.raises(Exception):
            runner.test()
        assert steps
        return
    with pytest.raises(ValueError) as info:
        runner.test()
    assert steps == []
    assert str(info.value).startswith(
        f"{loop}: the batch norm layer 'backbone.bn1' and ")
    assert 'keeps no running statistics' in str(info.value)
    assert '2 processes batch the set otherwise than one' in str(info.value)


@pytest.mark.parametrize('extra', [UNTRACKED, ''])
def test_a_training_that_validates_in_processes_is_refused_first(
        make_config, tmp_path, monkeypatch, extra):
    """Not at the first validation, after the training epochs before it:
    before the first step (TrainSetupCheckHook)."""
    import mmengine.dist

    from mmreid.engine.hooks import TrainSetupCheckHook
    cfg = load_config(make_config(extra=extra), work_dir=str(tmp_path))
    runner = Runner.from_cfg(cfg)
    monkeypatch.setattr(mmengine.dist, 'get_world_size', lambda: 2)
    if not extra:
        TrainSetupCheckHook().before_train(runner)
        return
    with pytest.raises(ValueError) as info:
        TrainSetupCheckHook().before_train(runner)
    assert str(info.value).startswith(
        "the validation of this training: the batch norm layer "
        "'backbone.bn1' and ")
    assert 'It would be refused at the first validation, after training' \
        in str(info.value)


@pytest.mark.parametrize('loop', ['ReIDTestLoop', 'MultiTargetTestLoop'])
def test_a_trial_protocol_is_refused_in_one_process(make_config, tmp_path,
                                                    loop):
    """SYSU-MM01's and LLCM's metrics index each trial's gallery out of pool
    features extracted once in the pool's batches: with a batch norm that
    keeps no running statistics, each gallery feature depends on the pool
    images of its batch, so the trial protocols refuse it before any
    extraction even in one process (each target of a multi-target loop)."""
    from mmreid.evaluation.metrics import SYSUMetric
    single = load_config(
        make_config(extra=UNTRACKED), phase='test', work_dir=str(tmp_path))
    if loop == 'MultiTargetTestLoop':
        as_one_target(single)
    runner = Runner.from_cfg(single)
    steps = []
    runner.model.test_step = lambda data: steps.append(1)
    evaluator = runner.test_loop.evaluator if loop == 'ReIDTestLoop' else \
        runner.test_loop.targets[0].evaluator
    evaluator.metrics.append(SYSUMetric())
    with pytest.raises(ValueError) as info:
        runner.test()
    assert steps == []
    consumer = loop if loop == 'ReIDTestLoop' else f'{loop} (d2)'
    assert str(info.value).startswith(
        f"{consumer}: SYSUMetric draws each trial's gallery out of one pool")
    assert "batch norm layer 'backbone.bn1' and" in str(info.value)
