"""End-to-end runs of tools/train.py, tools/test.py and the launchers."""
import glob
import json
import os
import os.path as osp
import signal
import subprocess

import pytest
import torch

from mmreid.utils import load_trusted_checkpoint
from ..fixtures.processes import PYTHON, REPO, run_process, run_tool, tool_env


def train(config, work_dir, *extra, env=None, fresh=False):
    return run_tool([
        PYTHON, 'tools/train.py', config, '--work-dir',
        str(work_dir), *extra
    ],
                    env=env,
                    fresh=fresh)


KILL_HOOK = """
import os
import signal

from mmengine.hooks import Hook

from mmreid.registry import HOOKS


@HOOKS.register_module()
class KillMidEpoch(Hook):
    \"\"\"SIGKILL the run halfway through an epoch, like a lost node.\"\"\"

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        half = len(runner.train_dataloader) // 2
        if runner.epoch + 1 == self.epoch and batch_idx + 1 == half:
            os.kill(os.getpid(), signal.SIGKILL)
"""

# Every random transform mmreid ships, tiny images, two persistent
# dataloader workers: the setting in which the augmentation state used to
# restart from the seed on resume.
AUGMENTING = """
train_dataloader.update(num_workers=2, persistent_workers=True)
train_dataloader['dataset']['pipeline'] = [
    dict(type='ReIDLoadImageFromFile'),
    dict(type='Random2DTranslation', size=(32, 16)),
    dict(type='ReIDRandomFlip', prob=0.5),
    dict(type='PadRandomCrop', padding=4),
    dict(type='ReIDColorJitter', brightness=0.2, contrast=0.15, saturation=0.1,
         hue=0.05, prob=0.8),
    dict(type='RandomChannel', prob=0.5),
    dict(type='ReIDRandomErasing', prob=0.5),
    dict(type='PackReIDInputs'),
]
"""


def test_resume_after_kill_ends_with_identical_weights(make_config, tmp_path):
    config = make_config(extra=AUGMENTING)
    straight = tmp_path / 'straight'
    # A new process (the resumed run below is a fork of the warm
    # interpreter): the runs compared do not share a hash seed.
    train(config, straight, '--no-validate', fresh=True)

    user_code = tmp_path / 'user_code'
    user_code.mkdir()
    (user_code / 'kill_hook.py').write_text(KILL_HOOK)
    killed_config = make_config(
        extra=AUGMENTING + "custom_imports = dict(imports=['kill_hook'])\n"
        "custom_hooks = [dict(type='KillMidEpoch', epoch=2)]",
        name='killed.py')
    killed = tmp_path / 'killed'
    # One thread, as run_tool: the float sums must run in the same order.
    env = tool_env(dict(PYTHONPATH=str(user_code)))
    proc = subprocess.run([
        PYTHON, 'tools/train.py', killed_config, '--work-dir',
        str(killed), '--no-validate'
    ],
                          cwd=REPO,
                          env=env,
                          capture_output=True,
                          text=True)
    assert proc.returncode == -signal.SIGKILL, (
        proc.stdout[-3000:] + proc.stderr[-3000:])
    assert osp.isfile(killed / 'epoch_1.pth')
    assert not osp.exists(killed / 'epoch_2.pth')
    log = train(config, killed, '--no-validate', '--resume')
    assert 'resumed epoch: 1' in log
    assert 'Epoch(train) [2]' in log and 'Epoch(train) [1]' not in log

    a = load_trusted_checkpoint(str(straight / 'epoch_2.pth'))
    b = load_trusted_checkpoint(str(killed / 'epoch_2.pth'))
    assert a['meta']['epoch'] == b['meta']['epoch'] == 2
    assert a['meta']['iter'] == b['meta']['iter']
    # Bitwise the same weights and Adam moments: the augmentations of the
    # replayed epoch, the optimizer state and the learning-rate schedule are
    # those of the uninterrupted run.
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        assert torch.equal(b['state_dict'][key], value), key
    state_a = a['optimizer']['state']
    state_b = b['optimizer']['state']
    assert state_a.keys() == state_b.keys()
    for k in state_a:
        for name in ('exp_avg', 'exp_avg_sq'):
            assert torch.equal(state_b[k][name], state_a[k][name]), (k, name)
    lr_a = [g['lr'] for g in a['optimizer']['param_groups']]
    lr_b = [g['lr'] for g in b['optimizer']['param_groups']]
    assert lr_a == lr_b
    assert a['param_schedulers'] == b['param_schedulers']


SHIPPED = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)


@pytest.mark.parametrize(
    'path', SHIPPED, ids=[osp.relpath(p, REPO) for p in SHIPPED])
def test_shipped_config_resumes_with_the_same_draws(path):
    """What the SIGKILL test checks holds for every shipped config."""
    from mmengine.config import Config

    from mmreid.registry import DATA_SAMPLERS, HOOKS, TRANSFORMS
    from mmreid.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(path)
    hooks = [h['type'] for h in cfg.default_hooks.values() if h]
    assert 'TrainRandomStateHook' in hooks
    assert HOOKS.get('TrainRandomStateHook') is not None
    loader = cfg.train_dataloader
    sampler = DATA_SAMPLERS.get(loader.sampler['type'])
    assert getattr(sampler, 'yields_sample_seeds', False), sampler
    pipeline = loader.dataset.get('pipeline')
    assert pipeline, 'the training pipeline is not on the dataset'
    for transform in pipeline:
        cls = TRANSFORMS.get(transform['type'])
        if getattr(cls, '_methods_with_randomness', None):
            assert getattr(cls, 'draws_from_sample_rng', False), cls


def read_metrics(path):
    with open(path) as f:
        return json.load(f)


def test_distributed_train_and_eval_match_single_process(
        make_config, tmp_path, synth_root):
    config = make_config()
    # An odd number of test images makes the distributed sampler pad the
    # last batch; a padded sample must not be counted twice.
    from mmengine.config import Config

    from mmreid.registry import DATASETS
    cfg = Config.fromfile(config)
    num_test = len(DATASETS.build(cfg.test_dataloader.dataset))
    options = []
    if num_test % 2 == 0:
        options = [
            f'{key}.dataset.indices={num_test - 1}'
            for key in ('val_dataloader', 'test_dataloader')
        ]
    work_dir = tmp_path / 'dist'
    # Two epochs: the ranks' BN running statistics drift apart from the
    # first step (each rank normalises its own batches).
    log = run_tool(
        [
            'bash', 'tools/dist_train.sh', config, '2', '--work-dir',
            str(work_dir), '--cfg-options', 'train_cfg.max_epochs=2',
            'train_cfg.val_interval=2'
        ] + options,
        port_env='PORT')
    assert 'Distributed training: True' in log
    assert 'batch per step: 8 images per process x 2 processes = 16' in log
    ckpt = str(work_dir / 'epoch_2.pth')
    assert osp.isfile(ckpt)
    # The work dir's config copy is written once the run starts (by rank 0).
    assert osp.isfile(work_dir / 'tiny.py')
    (scalars, ) = glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json'))
    with open(scalars) as f:
        logged = [json.loads(line) for line in f]
    validation = [r for r in logged if 'reid/mAP' in r][-1]

    single = tmp_path / 'single.json'
    run_tool([
        PYTHON, 'tools/test.py', config, ckpt, '--work-dir',
        str(tmp_path / 'test1'), '--out',
        str(single)
    ] + (['--cfg-options'] + options if options else []))
    dist = tmp_path / 'dist.json'
    run_tool(
        [
            'bash', 'tools/dist_test.sh', config, ckpt, '2', '--work-dir',
            str(tmp_path / 'test2'), '--out',
            str(dist)
        ] + (['--cfg-options'] + options if options else []),
        port_env='PORT')
    for name in ('test1', 'test2'):
        assert osp.isfile(tmp_path / name / 'tiny.py'), name
    m1, m2 = read_metrics(single), read_metrics(dist)
    assert m1.keys() == m2.keys()
    assert 'reid/mAP' in m1 and 'reid/R1' in m1
    for key in m1:
        assert abs(m1[key] - m2[key]) < 1e-4, (key, m1[key], m2[key])
    # Validation during the 2-process training scored the model the
    # checkpoint holds: rank 0's BN statistics on every rank, not each
    # rank's own (which made the logged mAP describe no saved model).
    for key in m1:
        assert abs(validation[key] - m1[key]) < 1e-4, (key, validation[key],
                                                       m1[key])


FAKE_PYTHON = '#!/bin/sh\necho "{name} $*"\n'


@pytest.mark.parametrize('script,args', [
    ('dist_train.sh', ['cfg.py', '2']),
    ('dist_test.sh', ['cfg.py', 'ckpt.pth', '2']),
])
def test_launchers_use_the_quick_start_python(tmp_path, script, args):
    """tools/quickstart.sh installs into .venv without activating it in
    the user's shell, where ``python`` has no torch: without PYTHON (and
    outside an activated virtualenv) the launchers run .venv/bin/python.
    PYTHON still wins; without .venv, python on PATH runs."""
    repo = tmp_path / 'repo'
    (repo / 'tools').mkdir(parents=True)
    launcher = repo / 'tools' / script
    for name in (script, 'launcher_python.sh'):
        (repo / 'tools' / name).write_text(
            open(osp.join(REPO, 'tools', name)).read())
    fakes = dict(
        venv=repo / '.venv' / 'bin' / 'python',
        path=tmp_path / 'bin' / 'python',
        given=tmp_path / 'given' / 'python')
    for name, path in fakes.items():
        path.parent.mkdir(parents=True)
        path.write_text(FAKE_PYTHON.format(name=name))
        path.chmod(0o755)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ('PYTHON', 'VIRTUAL_ENV', 'MMREID_VENV')
    }
    env['PATH'] = f'{fakes["path"].parent}{os.pathsep}{env["PATH"]}'

    def launch(**extra):
        proc = subprocess.run(
            ['bash', str(launcher)] + args + ['--x'],
            env=dict(env, **extra),
            capture_output=True,
            text=True,
            timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc

    proc = launch()
    tool = 'train.py' if script == 'dist_train.sh' else 'test.py'
    assert proc.stdout.startswith('venv -m torch.distributed.run ')
    assert proc.stdout.rstrip().endswith(
        f'{repo}/tools/{tool} {" ".join(args[:-1])} --launcher pytorch --x')
    assert f'python is {fakes["venv"]}' in proc.stderr
    assert launch(PYTHON=str(fakes['given'])).stdout.startswith('given ')
    assert launch(VIRTUAL_ENV='/elsewhere').stdout.startswith('path ')
    fakes['venv'].unlink()
    assert launch().stdout.startswith('path ')


def test_custom_component_from_user_code(make_config, tmp_path):
    package = tmp_path / 'user_code'
    package.mkdir()
    (package / 'my_reid_losses.py').write_text('''
import torch.nn as nn

from mmreid.registry import MODELS


@MODELS.register_module()
class ConstantTripletLoss(nn.Module):
    """Returns 0.125 and records that it ran."""

    calls = 0

    def forward(self, feats, labels):
        ConstantTripletLoss.calls += 1
        return feats.sum() * 0.0 + 0.125
''')
    config = make_config(
        extra="custom_imports = dict(imports=['my_reid_losses'], "
        'allow_failed_imports=False)',
        head_extra="loss_tri=dict(type='ConstantTripletLoss')")
    log = run_tool([
        PYTHON, 'tools/train.py', config, '--work-dir',
        str(tmp_path / 'work'), '--no-validate', '--cfg-options',
        'train_cfg.max_epochs=1'
    ],
                   env=dict(PYTHONPATH=f'{package}'))
    assert 'loss_tri: 0.1250' in log


def test_print_config_shows_merged_config(make_config):
    out = run_tool([PYTHON, 'tools/misc/print_config.py', make_config()])
    assert "type='ReIDModel'" in out
    assert "type='IdentitySampler'" in out


def test_print_config_applies_cfg_options(make_config, monkeypatch, capsys):
    """print_config.py shows the config that a run with the same
    ``--cfg-options`` uses: ignoring them printed the value the user set
    out to override, as if the override had no effect."""
    import sys

    from ..fixtures.processes import load_tool
    tool = load_tool('tools/misc/print_config.py')
    monkeypatch.setattr(sys, 'argv', [
        'print_config.py',
        make_config(), '--cfg-options', 'train_cfg.max_epochs=7'
    ])
    tool.main()
    out = capsys.readouterr().out
    assert 'max_epochs=7' in out and 'max_epochs=2' not in out


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only check')
def test_deterministic_run_sets_cublas_config(make_config, tmp_path):
    # The tiny config asks for deterministic=True; torch then needs
    # CUBLAS_WORKSPACE_CONFIG on a GPU, and the run sets it when unset.
    log = train(
        make_config(),
        tmp_path,
        '--no-validate',
        '--cfg-options',
        'train_cfg.max_epochs=1',
        env={'CUBLAS_WORKSPACE_CONFIG': ''})
    assert 'set CUBLAS_WORKSPACE_CONFIG=:4096:8' in log


@pytest.mark.cuda
def test_deterministic_training_on_cuda_repeats_bitwise(make_config, tmp_path):
    # randomness.deterministic=True on a GPU, the variable unset: both runs
    # train on CUDA (no GEMM raises) and end with the same weights.
    config = make_config(extra=AUGMENTING)
    states = []
    for name in ('a', 'b'):
        log = train(
            config,
            tmp_path / name,
            '--no-validate',
            env={'CUBLAS_WORKSPACE_CONFIG': ''})
        assert 'set CUBLAS_WORKSPACE_CONFIG=:4096:8' in log
        states.append(
            load_trusted_checkpoint(str(tmp_path / name /
                                        'epoch_2.pth'))['state_dict'])
    assert states[0].keys() == states[1].keys()
    for key, value in states[0].items():
        assert torch.equal(states[1][key], value), key


def test_amp_on_cpu_is_a_clear_error(make_config, tmp_path):
    proc = run_process([
        PYTHON, 'tools/train.py',
        make_config(), '--amp', '--work-dir',
        str(tmp_path)
    ],
                       tool_env(),
                       stderr_apart=True)
    assert proc.returncode != 0
    assert '--amp needs a CUDA device' in proc.stderr
