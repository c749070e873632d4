"""End-to-end runs of tools/train.py, tools/test.py and the launchers."""
import json
import os
import os.path as osp
import subprocess

import pytest
import torch

from mmreid.utils import load_trusted_checkpoint
from .conftest import PYTHON, REPO, free_port, run_tool


def train(config, work_dir, *extra):
    return run_tool([
        PYTHON, 'tools/train.py', config, '--work-dir',
        str(work_dir), *extra
    ])


STOP_HOOK = """
from mmengine.hooks import Hook

from mmreid.registry import HOOKS


@HOOKS.register_module()
class StopAfterEpoch(Hook):
    \"\"\"Kill the run after an epoch's checkpoint, like a lost node.\"\"\"

    priority = 'LOWEST'  # after CheckpointHook has saved

    def __init__(self, epoch):
        self.epoch = epoch

    def after_train_epoch(self, runner):
        if runner.epoch + 1 == self.epoch:  # epoch is 0-based here
            raise SystemExit(3)
"""


def test_resume_continues_exactly_where_it_stopped(make_config, tmp_path):
    config = make_config()
    straight = tmp_path / 'straight'
    train(config, straight, '--no-validate')

    user_code = tmp_path / 'user_code'
    user_code.mkdir()
    (user_code / 'stop_hook.py').write_text(STOP_HOOK)
    interrupted = make_config(
        extra="custom_imports = dict(imports=['stop_hook'])\n"
        "custom_hooks = [dict(type='StopAfterEpoch', epoch=1)]",
        name='interrupted.py')
    stopped = tmp_path / 'stopped'
    proc = subprocess.run([
        PYTHON, 'tools/train.py', interrupted, '--work-dir',
        str(stopped), '--no-validate'
    ],
                          cwd=REPO,
                          env=dict(
                              os.environ, PYTHONPATH=f'{REPO}:{user_code}'),
                          capture_output=True,
                          text=True)
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert osp.isfile(stopped / 'epoch_1.pth')
    assert not osp.exists(stopped / 'epoch_2.pth')
    log = train(config, stopped, '--no-validate', '--resume')
    assert 'resumed epoch: 1' in log
    assert 'Epoch(train) [2]' in log and 'Epoch(train) [1]' not in log

    a = load_trusted_checkpoint(str(straight / 'epoch_2.pth'))
    b = load_trusted_checkpoint(str(stopped / 'epoch_2.pth'))
    assert a['meta']['epoch'] == b['meta']['epoch'] == 2
    assert a['meta']['iter'] == b['meta']['iter']
    # Same weights and the same Adam moments: the optimizer state and the
    # learning-rate schedule were restored, not restarted.
    for key, value in a['state_dict'].items():
        torch.testing.assert_close(b['state_dict'][key], value)
    state_a = a['optimizer']['state']
    state_b = b['optimizer']['state']
    assert state_a.keys() == state_b.keys()
    for k in state_a:
        torch.testing.assert_close(state_b[k]['exp_avg'],
                                   state_a[k]['exp_avg'])
    lr_a = [g['lr'] for g in a['optimizer']['param_groups']]
    lr_b = [g['lr'] for g in b['optimizer']['param_groups']]
    assert lr_a == lr_b
    assert a['param_schedulers'] == b['param_schedulers']


def read_metrics(path):
    with open(path) as f:
        return json.load(f)


def test_distributed_train_and_eval_match_single_process(
        make_config, tmp_path, synth_root):
    config = make_config()
    work_dir = tmp_path / 'dist'
    log = run_tool([
        'bash', 'tools/dist_train.sh', config, '2', '--work-dir',
        str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1'
    ],
                   env=dict(PORT=str(free_port())))
    assert 'Distributed training: True' in log
    ckpt = str(work_dir / 'epoch_1.pth')
    assert osp.isfile(ckpt)

    # An odd number of test images makes the distributed sampler pad the
    # last batch; a padded sample must not be counted twice.
    from mmengine.config import Config

    from mmreid.registry import DATASETS
    cfg = Config.fromfile(config)
    num_test = len(DATASETS.build(cfg.test_dataloader.dataset))
    options = []
    if num_test % 2 == 0:
        options = [f'test_dataloader.dataset.indices={num_test - 1}']

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
        env=dict(PORT=str(free_port())))
    m1, m2 = read_metrics(single), read_metrics(dist)
    assert m1.keys() == m2.keys()
    assert 'reid/mAP' in m1 and 'reid/R1' in m1
    for key in m1:
        assert abs(m1[key] - m2[key]) < 1e-4, (key, m1[key], m2[key])


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
        head_extra="loss_triplet=dict(type='ConstantTripletLoss')")
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


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU-only check')
def test_amp_on_cpu_is_a_clear_error(make_config, tmp_path):
    proc = subprocess.run([
        PYTHON, 'tools/train.py',
        make_config(), '--amp', '--work-dir',
        str(tmp_path)
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True)
    assert proc.returncode != 0
    assert '--amp needs a CUDA device' in proc.stderr
