"""A tiny SynthReID training config for the tests that run the tools."""
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

TINY_CONFIG = '''
_base_ = [
    '{repo}/configs/_base_/default_runtime.py',
    '{repo}/configs/_base_/schedules/bot_adam_120e.py',
]
synth = dict(type='SynthReID', data_root='{data_root}', num_domains=3,
             size='tiny', seed=0, img_size=(32, 16))
# No random augmentation: two runs with one seed are then identical.
train_pipeline = [
    dict(type='ReIDLoadImageFromFile'),
    dict(type='ReIDResize', size=(32, 16)),
    dict(type='PackReIDInputs'),
]
test_pipeline = train_pipeline
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='IdentitySampler', batch_size=8, num_instances=2),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='ConcatReIDDataset',
        datasets=[dict(synth, domain=0), dict(synth, domain=1)],
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(synth, domain=2, split='test', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='ReIDMetric', metric='euclidean')
test_evaluator = val_evaluator
model = dict(
    type='ReIDModel',
    backbone=dict(type='ReIDResNet', depth=18, last_stride=1,
                  base_channels=8, stem_channels=8),
    neck=dict(type='GlobalAvgPool'),
    head=dict(type='BNNeckHead', in_channels=64, num_classes=8,
              {head_extra}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[2], gamma=0.1),
]
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=2)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1))
randomness = dict(seed=0, deterministic=True)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
{extra}
'''


@pytest.fixture(scope='session')
def synth_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp('synthreid'))


@pytest.fixture
def make_config(tmp_path, synth_root):
    """Write the tiny config with optional extra lines; return its path."""

    def make(extra: str = '',
             head_extra: str = '',
             name: str = 'tiny.py') -> str:
        path = tmp_path / name
        path.write_text(
            TINY_CONFIG.format(
                repo=REPO,
                data_root=synth_root,
                extra=extra,
                head_extra=head_extra))
        return str(path)

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_tool(args, env=None, timeout=600):
    """Run a command from the repository root; fail with its output."""
    env = dict(env or {})
    full_env = dict(os.environ)
    paths = [REPO, env.pop('PYTHONPATH', ''), full_env.get('PYTHONPATH', '')]
    full_env['PYTHONPATH'] = os.pathsep.join(p for p in paths if p)
    full_env.setdefault('OMP_NUM_THREADS', '1')
    # The launchers run $PYTHON: the interpreter that runs the tests.
    full_env['PYTHON'] = sys.executable
    full_env.update(env)
    proc = subprocess.run(
        args,
        cwd=REPO,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(f'{" ".join(args)} exited {proc.returncode}:\n'
                    f'{proc.stdout[-6000:]}')
    return proc.stdout


PYTHON = sys.executable
