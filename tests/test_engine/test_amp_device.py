"""AMP set by the config (not --amp) on a machine without CUDA."""
import os.path as osp

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr('torch.cuda.is_available', lambda: False)


def test_amp_in_the_config_gets_the_amp_message(no_cuda, tmp_path):
    """optim_wrapper.type='AmpOptimWrapper' on the CPU was mmengine's bare
    'AssertionError: AmpOptimizerWrapper is only available training on
    gpu, npu, mlu or musa'; --amp already had a clear message."""
    from mmreid.engine.runner import ReIDRunner
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'baseline', 'bot_r18_synthreid.py'))
    cfg.work_dir = str(tmp_path)
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'none')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    runner = ReIDRunner.from_cfg(cfg)
    with pytest.raises(RuntimeError) as info:
        runner.build_optim_wrapper(runner.optim_wrapper)
    message = str(info.value)
    assert message.startswith("optim_wrapper.type='AmpOptimWrapper' needs a "
                              'CUDA device, and none is available')
    assert "optim_wrapper.type='OptimWrapper'" in message


@pytest.mark.parametrize('optim_wrapper', [
    dict(type='OptimWrapper'),
    dict(optimizer=dict(type='SGD')),
    dict(constructor='MyConstructor', backbone=dict(type='OptimWrapper')),
])
def test_fp32_wrappers_pass_without_cuda(no_cuda, optim_wrapper):
    from mmreid.utils.config.runtime import check_amp_device
    check_amp_device(optim_wrapper)


def test_a_scoped_amp_type_is_checked_too(no_cuda):
    from mmreid.utils.config.runtime import check_amp_device
    with pytest.raises(RuntimeError, match="'mmengine.AmpOptimWrapper'"):
        check_amp_device(dict(type='mmengine.AmpOptimWrapper'))


def test_amp_passes_with_cuda(monkeypatch):
    from mmreid.utils.config.runtime import check_amp_device
    monkeypatch.setattr('torch.cuda.is_available', lambda: True)
    check_amp_device(dict(type='AmpOptimWrapper'))


@pytest.mark.parametrize('phase', ['val', 'test'])
def test_fp16_in_an_evaluation_loop_gets_the_amp_message(
        no_cuda, tmp_path, phase):
    """test_cfg.fp16=True (val_cfg.fp16) on the CPU: mmengine's autocast
    ran the loop in bfloat16, without a word (mAP 13.3110 instead of the
    fp32 13.2904), where --amp is refused. Refused when the loop is built,
    before any image is read, naming the key and the fp32 setting."""
    from mmreid.engine.runner import ReIDRunner
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'baseline', 'bot_r18_synthreid.py'))
    cfg.work_dir = str(tmp_path)
    cfg[f'{phase}_dataloader'].dataset.data_root = str(tmp_path / 'none')
    cfg[f'{phase}_cfg'] = dict(cfg.get(f'{phase}_cfg') or {}, fp16=True)
    runner = ReIDRunner.from_cfg(cfg)
    build = getattr(runner, f'build_{phase}_loop')
    with pytest.raises(RuntimeError) as info:
        build(getattr(runner, f'_{phase}_loop'))
    assert str(info.value) == (
        f'{phase}_cfg.fp16=True needs a CUDA device, and none is available; '
        f'to evaluate in fp32 on the CPU, set {phase}_cfg.fp16=False '
        f'(--cfg-options {phase}_cfg.fp16=False).')


@pytest.mark.parametrize('loop', ['MultiTargetValLoop', 'MultiTargetTestLoop'])
def test_fp16_in_a_multi_target_loop_is_refused_too(no_cuda, loop):
    from mmreid.registry import LOOPS
    phase = 'val' if 'Val' in loop else 'test'
    with pytest.raises(
            RuntimeError,
            match=rf'^{phase}_cfg\.fp16=True needs a CUDA device'):
        LOOPS.build(
            dict(
                type=loop,
                runner=None,
                targets=[dict(name='d0', dataloader={}, evaluator={})],
                fp16=True))


def test_fp32_evaluation_loops_pass_without_cuda(no_cuda):
    from mmreid.utils.config.runtime import check_loop_amp_device
    check_loop_amp_device(False, 'test_cfg.fp16')
