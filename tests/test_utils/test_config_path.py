import datetime
import os
import os.path as osp

import pytest
from mmengine.config import Config

from mmreid.utils.config import load_config
from mmreid.utils.config.runtime import (adapt_to_device, add_runtime_args,
                                         dump_atomic, enable_amp,
                                         enable_amp_inference,
                                         parse_runtime_args)


@pytest.mark.parametrize('path,suggested', [
    ('configs/baseline/bot_r18_synthreid_typo.py',
     "'configs/baseline/bot_r18_synthreid.py'"),
    ('configs/basline/bot_r18_synthreid.py',
     "'configs/baseline/bot_r18_synthreid.py'"),
])
def test_a_missing_config_suggests_the_closest_names(path, suggested):
    with pytest.raises(FileNotFoundError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f'config file {path!r} does not exist; '
                              f'did you mean {suggested}')
    assert '_base_' not in message


def test_nothing_close_is_suggested_as_nothing(tmp_path):
    path = str(tmp_path / 'nothing_like_it.py')
    with pytest.raises(FileNotFoundError) as info:
        load_config(path)
    assert str(info.value) == f'config file {path!r} does not exist'


class Built(Exception):
    """No runner: only the config tools/train.py would build is read."""


def train_tool_building(tmp_path, monkeypatch, lines, *options):
    """tools/train.py, as a module, on a config of ``lines`` with
    ``options``: its ``main()`` raises :class:`Built` with the config in
    the returned list instead of building the runner.

    Returns:
        tuple: The tool module, the config path and the list of configs.
    """
    from ..fixtures.processes import load_tool
    config = tmp_path / 'tiny.py'
    config.write_text('\n'.join(["default_scope = 'mmreid'", *lines]))
    tool = load_tool('tools/train.py')
    built = []

    def from_cfg(cfg):
        built.append(cfg)
        raise Built

    monkeypatch.setattr(tool, 'build_runner', from_cfg)
    monkeypatch.setattr('sys.argv', [
        'train.py',
        str(config), *options, '--work-dir',
        str(tmp_path / 'work')
    ])
    return tool, config, built


@pytest.mark.parametrize('lines,refused', [
    ('', True),
    ('auto_scale_lr = dict(enable=False)', True),
    ('auto_scale_lr = dict(base_batch_size=None)', True),
    ('auto_scale_lr = dict(base_batch_size=32, enable=False)', False),
])
def test_auto_scale_lr_needs_the_configs_base_batch(tmp_path, monkeypatch,
                                                    lines, refused):
    """tools/train.py --auto-scale-lr assumed a base batch of 64 for a
    config that names none, and scaled the lr by an invented ratio."""
    tool, config, built = train_tool_building(
        tmp_path, monkeypatch,
        ['train_dataloader = dict(batch_size=32)', lines], '--auto-scale-lr')
    if refused:
        with pytest.raises(ValueError) as info:
            tool.main()
        assert str(info.value) == (
            '--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
            'config, the total batch its learning rate was tuned for (e.g. '
            'auto_scale_lr = dict(base_batch_size=64) for a 1xb64 config); '
            f'{config} names none')
        assert not built
        return
    with pytest.raises(Built):
        tool.main()
    assert built[0].auto_scale_lr == dict(base_batch_size=32, enable=True)


@pytest.mark.parametrize('save_best,rule', [
    ('reid/mAP', 'greater'),
    (['reid/mAP', 'reid/R1'], ['greater', 'greater']),
])
def test_no_validate_drops_save_best_with_a_line(tmp_path, monkeypatch,
                                                 save_best, rule):
    """With --no-validate a config's ``save_best`` has nothing to select
    by; mmengine then kept no best checkpoint without a word. Its ``rule``
    goes too: a list rule without save_best fails in CheckpointHook."""
    from mmengine.hooks import CheckpointHook
    tool, _, built = train_tool_building(tmp_path, monkeypatch, [
        'val_dataloader = dict(batch_size=8)', 'val_cfg = dict()',
        "val_evaluator = dict(type='ReIDMetric')",
        "default_hooks = dict(checkpoint=dict(type='CheckpointHook', "
        f'interval=2, save_best={save_best!r}, rule={rule!r}))'
    ], '--no-validate')
    logged = []
    # The logger's handler may hold another stream than capsys's (it is
    # made once per process), so the line is caught where it is sent.
    monkeypatch.setattr('mmengine.logging.print_log',
                        lambda msg, **kwargs: logged.append(msg))
    with pytest.raises(Built):
        tool.main()
    cfg = built[0]
    assert cfg.val_cfg is None and cfg.val_dataloader is None
    assert cfg.val_evaluator is None  # mmengine wants all three or none
    checkpoint = cfg.default_hooks.checkpoint.to_dict()
    assert checkpoint == dict(
        type='CheckpointHook', interval=2, save_best=None)
    checkpoint.pop('type')
    CheckpointHook(**checkpoint)  # mmengine builds it
    assert any(
        line.startswith("--no-validate: no best checkpoint is kept "
                        f'(default_hooks.checkpoint.save_best={save_best!r} '
                        'needs validation)') for line in logged)


def test_two_close_names_are_both_suggested(tmp_path):
    for name in ('bot_r18_a.py', 'bot_r18_b.py'):
        (tmp_path / name).write_text('')
    with pytest.raises(FileNotFoundError) as info:
        load_config(str(tmp_path / 'bot_r18_c.py'))
    message = str(info.value)
    assert str(tmp_path / 'bot_r18_a.py') in message
    assert str(tmp_path / 'bot_r18_b.py') in message


def test_work_dir_and_loops(tmp_path):
    """The work dir is the argument's, else the config's, else
    ./work_dirs/<config name>; a loop without a type is mmreid's."""
    config = tmp_path / 'tiny.py'
    config.write_text("work_dir = 'from_config'\nval_cfg = dict()\n"
                      "test_cfg = dict(type='MultiTargetTestLoop')\n")
    cfg = load_config(str(config))
    assert cfg.work_dir == 'from_config'
    assert cfg.val_cfg == dict(type='ReIDValLoop')
    assert cfg.test_cfg == dict(type='MultiTargetTestLoop')
    assert load_config(str(config), work_dir='given').work_dir == 'given'
    config.write_text('test_cfg = dict()\n')
    cfg = load_config(str(config))
    assert cfg.work_dir == osp.join('./work_dirs', 'tiny')
    assert cfg.test_cfg == dict(type='ReIDTestLoop')


@pytest.fixture
def cuda_seen(monkeypatch):
    """Whether torch sees a CUDA device, as the test sets it (no device is
    used)."""

    def set_cuda(available):
        monkeypatch.setattr('torch.cuda.is_available', lambda: available)

    return set_cuda


def test_amp_keeps_the_configs_settings(cuda_seen):
    cuda_seen(True)
    cfg = Config(
        dict(
            optim_wrapper=dict(optimizer=dict(type='SGD'), loss_scale=512),
            test_cfg=dict(type='MultiTargetTestLoop')))
    enable_amp(cfg)
    assert cfg.optim_wrapper.to_dict() == dict(
        type='AmpOptimWrapper', optimizer=dict(type='SGD'), loss_scale=512)
    enable_amp_inference(cfg)
    assert cfg.test_cfg.to_dict() == dict(
        type='MultiTargetTestLoop', fp16=True)
    cfg = Config(dict(optim_wrapper=dict(type='OptimWrapper')))
    enable_amp(cfg)
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    cfg = Config(dict(optim_wrapper=dict(type='ApexOptimWrapper')))
    with pytest.raises(ValueError, match="has 'ApexOptimWrapper'"):
        enable_amp(cfg)


def test_adapt_to_device_without_cuda(cuda_seen, monkeypatch):
    cuda_seen(False)
    cfg = Config(dict(launcher='none', env_cfg=dict()))
    adapt_to_device(cfg)
    assert cfg.to_dict() == dict(launcher='none', env_cfg=dict())
    # The config's own backend and wrapper are kept.
    wrapper = dict(type='MMDistributedDataParallel')
    cfg = Config(
        dict(
            launcher='slurm',
            env_cfg=dict(dist_cfg=dict(backend='mpi')),
            model_wrapper_cfg=wrapper))
    adapt_to_device(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'mpi'
    assert cfg.model_wrapper_cfg == wrapper
    # nccl becomes gloo; the process group gets the config's settings.
    created = []
    monkeypatch.setattr('torch.distributed.is_initialized', lambda: False)
    monkeypatch.setattr('torch.distributed.init_process_group',
                        lambda **kwargs: created.append(kwargs))
    cfg = Config(
        dict(
            launcher='pytorch',
            find_unused_parameters=True,
            env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=60))))
    with pytest.warns(UserWarning, match='gloo'):
        adapt_to_device(cfg)
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.find_unused_parameters is True
    # The timeout is in seconds, as mmengine reads it on the GPU; torch
    # takes a timedelta (an int failed with a TypeError naming no key).
    assert created == [
        dict(backend='gloo', timeout=datetime.timedelta(seconds=60))
    ]
    for bad in ('60', -1):
        cfg = Config(
            dict(
                launcher='pytorch',
                env_cfg=dict(dist_cfg=dict(backend='gloo', timeout=bad))))
        with pytest.raises(ValueError,
                           match='env_cfg.dist_cfg.timeout is in seconds'):
            adapt_to_device(cfg)


def test_a_launchers_local_rank_is_kept(monkeypatch):
    """torchrun sets LOCAL_RANK and passes no --local-rank."""
    import argparse
    parser = argparse.ArgumentParser()
    add_runtime_args(parser, 'x=1')
    monkeypatch.setattr('sys.argv', ['train.py'])
    monkeypatch.setenv('LOCAL_RANK', '1')
    parse_runtime_args(parser)
    assert os.environ['LOCAL_RANK'] == '1'
    monkeypatch.delenv('LOCAL_RANK')
    monkeypatch.setattr('sys.argv', ['train.py', '--local-rank', '2'])
    parse_runtime_args(parser)
    assert os.environ['LOCAL_RANK'] == '2'


@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
def test_a_launcher_without_its_environment_is_a_usage_error(
        monkeypatch, capsys, tool):
    """``tools/test.py ... --launcher pytorch`` without torchrun ended in
    torch's "environment variable RANK expected, but not set"."""
    import argparse
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    parser = argparse.ArgumentParser(prog=tool)
    add_runtime_args(parser, 'x=1')
    monkeypatch.setattr('sys.argv', [tool, '--launcher', 'pytorch'])
    with pytest.raises(SystemExit) as info:
        parse_runtime_args(parser)
    assert info.value.code == 2
    error = capsys.readouterr().err
    assert (f'{tool}: error: --launcher pytorch: RANK, WORLD_SIZE, '
            'MASTER_ADDR, MASTER_PORT are not set, so this process was not '
            'started by torchrun') in error
    assert 'bash tools/dist_train.sh CONFIG GPUS' in error
    assert 'bash tools/dist_test.sh CONFIG CHECKPOINT GPUS' in error
    # As torchrun starts it.
    for name, value in (('RANK', '0'), ('WORLD_SIZE', '1'),
                        ('MASTER_ADDR', '127.0.0.1'), ('MASTER_PORT', '1')):
        monkeypatch.setenv(name, value)
    assert parse_runtime_args(parser).launcher == 'pytorch'


def test_each_launcher_names_what_is_missing():
    from mmreid.utils.config.runtime import check_launcher_env
    check_launcher_env('none', {})
    with pytest.raises(
            ValueError,
            match='--launcher slurm: SLURM_NTASKS is '
            'not set, so this process was not started by srun'):
        check_launcher_env('slurm',
                           dict(SLURM_PROCID='0', SLURM_NODELIST='node1'))
    with pytest.raises(ValueError, match='not started by mpirun'):
        check_launcher_env('mpi', {})


def test_dump_atomic(tmp_path):
    import pickle
    path = str(tmp_path / 'metrics.pickle')
    dump_atomic(dict(mAP=0.5), path)
    with open(path, 'rb') as f:
        assert pickle.load(f) == dict(mAP=0.5)
    path = str(tmp_path / 'metrics.txt')
    with pytest.raises(ValueError, match='--out must end in .json'):
        dump_atomic(dict(mAP=0.5), path)
    assert sorted(os.listdir(tmp_path)) == ['metrics.pickle']


@pytest.mark.parametrize('options,lines,resume,load_from,strict', [
    # --resume PATH resumes that checkpoint: mmengine reads resume=True
    # with load_from as the checkpoint whose training state to restore.
    (['--resume', 'run/epoch_3.pth'], ["load_from = 'init.pth'"], True,
     'run/epoch_3.pth', None),
    # --resume alone: the work dir's latest, else load_from's weights.
    (['--resume'], ["load_from = 'init.pth'"], 'auto', 'init.pth', None),
    ([], ["load_from = 'init.pth'"], None, 'init.pth', None),
    # --strict overrides the config's load_strict, either way.
    (['--strict', 'false'], ['load_strict = True'], None, None, False),
    (['--strict', 'true'], ['load_strict = False'], None, None, True),
    # Without --strict, the config's own load_strict stays.
    ([], ['load_strict = False'], None, None, False),
    ([], [], None, None, None),
])
def test_resume_and_strict_reach_the_config(tmp_path, monkeypatch, options,
                                            lines, resume, load_from,
                                            strict):
    """tools/train.py's --resume and --strict as the runner reads them: a
    slip here resumed another checkpoint than the one named (or started
    from load_from's weights at epoch 1), or loaded a partial checkpoint
    without the error the user relied on."""
    tool, _, built = train_tool_building(tmp_path, monkeypatch, lines,
                                         *options)
    with pytest.raises(Built):
        tool.main()
    cfg = built[0]
    assert cfg.get('resume', None) == resume
    assert cfg.get('load_from', None) == load_from
    assert cfg.get('load_strict', None) == strict


def test_adapt_to_device_leaves_a_gpu_run_alone(cuda_seen):
    """With CUDA, a distributed run keeps the config's nccl backend and
    mmengine's wrapper: gloo on GPUs would train several times slower."""
    cuda_seen(True)
    cfg = Config(
        dict(launcher='slurm', env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    adapt_to_device(cfg)
    assert cfg.to_dict() == dict(
        launcher='slurm', env_cfg=dict(dist_cfg=dict(backend='nccl')))
