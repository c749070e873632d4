"""Wrong-number hunt: what a 2-process training run computes.

A user trains with ``bash tools/dist_train.sh CONFIG 2`` (here: 2 CPU
processes with the gloo backend, forked from one parent that imported
mmreid once, as ``tools/train.py`` builds the run: ``load_config`` with
``launcher='pytorch'``, ``--auto-scale-lr``, ``adapt_to_device``,
``build_runner``). A probe hook records what each rank trains on. The
references are the definitions in ``docs/get_started.md``, "What the
number of GPUs changes":

* a step takes ``processes x batch_size`` images, and ``--auto-scale-lr``
  scales the learning rate by ``processes x batch_size /
  auto_scale_lr.base_batch_size``;
* the identity samplers give the processes of one step different
  identities, and each sample its own augmentation seed (README, "Resume
  works ...": seeds of ``(seed, epoch, rank, position)``);
* DDP keeps one set of weights, the one rank 0 checkpoints, and the
  validation during training scores that checkpoint (every process gets
  rank 0's BN and MBN running statistics), so its logged numbers are those
  of ``tools/test.py`` on the checkpoint, whatever the model ranks with
  (GMN's M-Net, Euclidean and fused modes; a VI trial protocol).

No defect was found in this area: every test here passes (test gaps that
guard a printed number).
"""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

from ..fixtures.finished_runs import (last_logged_validation,
                                      single_process_test)
from ..fixtures.processes import REPO, retry_on_port_clash
from ..fixtures.tiny_config import write_tiny_config

#: Trains ``config`` in 2 forked processes as ``tools/dist_train.sh``
#: does (torchrun's variables, ``--launcher pytorch``, ``--auto-scale-lr``
#: when asked). ``StepProbe`` saves, per rank, each step's labels,
#: sample indices, augmentation seeds and learning rates, and the model's
#: parameters once training ends.
WORKER = r'''
import json
import os
import sys

import torch
import torch.multiprocessing as mp
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmreid.engine.runner import build_runner
from mmreid.registry import HOOKS
from mmreid.utils import register_all_modules
from mmreid.utils.config import load_config, runtime


@HOOKS.register_module()
class StepProbe(Hook):
    priority = 'LOWEST'

    def __init__(self, out):
        self.out = out
        self.steps = []

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        samples = data_batch['data_samples']
        indices = [s.metainfo['sample_idx'] for s in samples]
        self.steps.append(dict(
            labels=[int(s.gt_label) for s in samples],
            indices=[int(i) for i in indices],
            seeds=[getattr(i, 'seed', None) for i in indices],
            lrs=[g['lr'] for g in runner.optim_wrapper.param_groups]))

    def after_train(self, runner):
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        torch.save(
            dict(steps=self.steps,
                 params={k: v.detach().clone()
                         for k, v in model.named_parameters()}),
            os.path.join(self.out, f'probe_rank{runner.rank}.pt'))


def worker(rank, port, out, config, options, scale_lr):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port),
                      RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE='2', LOCAL_WORLD_SIZE='2')
    cfg = load_config(config, options, os.path.join(out, 'work_dir'),
                      'pytorch')
    if scale_lr:
        runtime.enable_auto_scale_lr(cfg, config)
    runtime.adapt_to_device(cfg)
    build_runner(cfg).train()
    runtime.shutdown_distributed()


if __name__ == '__main__':
    register_all_modules(init_default_scope=False)
    port, out, config = sys.argv[1:4]
    options = json.loads(sys.argv[4])
    scale_lr = sys.argv[5] == '1'
    mp.start_processes(worker,
                       args=(int(port), out, config, options, scale_lr),
                       nprocs=2, start_method='fork')
'''

#: A tiny GMN (M-Net scorer, DP from the first epoch, PIC) on the tiny
#: config's data, with the random augmentations of the shipped SynthReID
#: pipeline and a dataloader worker.
GMN_EXTRA = '''
model = dict(
    type='GMNReID',
    backbone=dict(type='ReIDResNet', depth=18, last_stride=1,
                  base_channels=8, stem_channels=8),
    neck=dict(type='GlobalAvgPool'),
    head=dict(
        type='GMNHead', in_channels=64, num_classes=8,
        loss_cls=dict(type='ReIDCrossEntropyLoss', loss_weight=1.0),
        loss_tri=dict(type='TripletLoss', margin=0.3),
        mnet=dict(hidden_channels=16, num_layers=1, output='logit'),
        dp=dict(rate=0.5, position='pair', mode='append', n_copies=1,
                warmup_epochs=0),
        pic=dict(weight=10.0, space='input')),
    test_cfg=dict(distance='mnet', fuse_beta=0.5, mnet_topk=None,
                  report_modes=('mnet', 'euclid', 'fused')))
val_evaluator = dict(type='ReIDMetric')
test_evaluator = val_evaluator
aug_pipeline = [
    dict(type='ReIDLoadImageFromFile'),
    dict(type='ReIDResize', size=(32, 16)),
    dict(type='ReIDRandomFlip', prob=0.5),
    dict(type='PadRandomCrop', padding=4),
    dict(type='ReIDRandomErasing', prob=0.5),
    dict(type='PackReIDInputs'),
]
train_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True,
    sampler=dict(type='IdentitySampler', batch_size=8, num_instances=2),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ConcatReIDDataset',
                 datasets=[dict(synth, domain=0), dict(synth, domain=1)],
                 pipeline=aug_pipeline))
'''

#: The tiny config's learning rate and ``auto_scale_lr.base_batch_size``
#: (``_base_/schedules/bot_adam_120e.py``), its per-process batch (P = 4
#: identities x K = 2 images) and warm-up start factor.
CONFIG_LR = 0.00035
BASE_BATCH = 64
BATCH = 8
NUM_INSTANCES = 2
WARMUP_START = 0.1


def train_two_processes(tmp_path, config: str, options: dict,
                        scale_lr: bool = False) -> str:
    """Train ``config`` in 2 gloo processes; fail with their output.

    Returns:
        str: The run's folder (probe files; ``work_dir`` below it).
    """
    out = tmp_path / 'train_2p'
    out.mkdir()
    script = tmp_path / 'train_two_processes.py'
    script.write_text(WORKER)
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = retry_on_port_clash(lambda port: subprocess.run(
        [sys.executable,
         str(script),
         str(port),
         str(out), config,
         json.dumps(options), '1' if scale_lr else '0'],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=300))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return str(out)


def assert_same_scores(logged: dict, tested: dict) -> None:
    """Every score ``tools/test.py`` gives (R1..mINP of every mode or
    trial) is the logged one, to the log's 4 decimals."""
    scores = [
        k for k in tested
        if k.rpartition('/')[2] in ('R1', 'R5', 'R10', 'mAP', 'mINP')
    ]
    assert scores
    for key in scores:
        assert logged[key] == pytest.approx(tested[key], abs=1e-4), key


@pytest.fixture(scope='module')
def gmn_run(tmp_path_factory, synth_root):
    """One 2-process GMN training of 1 epoch with ``--auto-scale-lr`` and
    a validation; its config, folder and each rank's probe."""
    tmp_path = tmp_path_factory.mktemp('gmn_2p')
    config = write_tiny_config(
        tmp_path / 'gmn.py',
        synth_root,
        extra=GMN_EXTRA)
    out = train_two_processes(
        tmp_path,
        config, {
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 1,
            'custom_hooks': [
                dict(type='GMNDPWarmupHook'),
                dict(type='StepProbe', out=str(tmp_path))
            ],
        },
        scale_lr=True)
    ranks = [
        torch.load(tmp_path / f'probe_rank{r}.pt', weights_only=False)
        for r in (0, 1)
    ]
    return dict(
        config=config, work_dir=osp.join(out, 'work_dir'), ranks=ranks,
        tmp_path=tmp_path)


def test_ranks_of_a_step_take_other_identities_and_augmentation_seeds(
        gmn_run):
    """At every step of ``bash tools/dist_train.sh CONFIG 2`` with an
    ``IdentitySampler(batch_size=8, num_instances=2)``, each rank's batch
    is P = 4 identities x K = 2 images, and the two ranks' batches hold
    2 x 4 = 8 distinct identities (``docs/get_started.md``: "The identity
    samplers give the processes of one step different identities"; the
    sampler's docstring: ``P * world_size`` distinct identities per step).
    Every image of the step has its own augmentation seed (README: seeds
    of ``(seed, epoch, rank, position)``): the ranks do not repeat each
    other's flips, crops and erasing draws.
    """
    steps0, steps1 = (r['steps'] for r in gmn_run['ranks'])
    assert len(steps0) == len(steps1) > 1
    for step, (one, two) in enumerate(zip(steps0, steps1)):
        for rank in (one, two):
            labels = rank['labels']
            assert len(labels) == BATCH
            groups = [
                labels[i:i + NUM_INSTANCES]
                for i in range(0, BATCH, NUM_INSTANCES)
            ]
            assert all(len(set(g)) == 1 for g in groups), (step, labels)
            assert len({g[0] for g in groups}) == BATCH // NUM_INSTANCES
        shared = set(one['labels']) & set(two['labels'])
        assert not shared, f'step {step}: both ranks train on {shared}'
        seeds = one['seeds'] + two['seeds']
        assert None not in seeds
        assert len(set(seeds)) == 2 * BATCH, f'step {step}: repeated seeds'


def test_auto_scale_lr_trains_at_the_rate_of_the_total_batch(gmn_run):
    """``--auto-scale-lr`` on 2 processes of 8 images with the config's
    ``auto_scale_lr.base_batch_size=64``: every rank trains at the
    config's lr x (2 x 8) / 64 (``docs/get_started.md``: "scales it by
    processes x batch_size / auto_scale_lr.base_batch_size"), from the
    warm-up's start factor at the first step to the scaled rate at the
    end of the one-epoch warm-up.
    """
    scaled = CONFIG_LR * 2 * BATCH / BASE_BATCH
    for rank in gmn_run['ranks']:
        rates = [step['lrs'][0] for step in rank['steps']]
        assert rates[0] == pytest.approx(WARMUP_START * scaled, rel=1e-9)
        assert rates[-1] == pytest.approx(scaled, rel=1e-9)
        assert rates == sorted(rates)


def test_both_ranks_end_with_the_checkpoints_weights(gmn_run):
    """DDP averages the gradients, so both processes end the run with one
    set of parameters, and the checkpoint rank 0 writes holds it
    (``docs/get_started.md``: validation and ``save_best`` are "those of
    the checkpoint rank 0 saves")."""
    params0, params1 = (r['params'] for r in gmn_run['ranks'])
    assert params0.keys() == params1.keys()
    differ = [k for k in params0 if not torch.equal(params0[k], params1[k])]
    assert not differ, f'the ranks trained apart: {differ[:3]}'
    saved = torch.load(
        osp.join(gmn_run['work_dir'], 'epoch_1.pth'),
        map_location='cpu',
        weights_only=False)['state_dict']
    differ = [k for k in params0 if not torch.equal(params0[k], saved[k])]
    assert not differ, f'the checkpoint is not rank 0\'s: {differ[:3]}'


def test_gmn_validation_logs_the_checkpoints_test(gmn_run):
    """The validation of a 2-process GMN training logs, for every ranking
    mode (the M-Net's, Euclidean, fused), the numbers ``tools/test.py``
    gives for the epoch's checkpoint in one process: the M-Net that
    scores the pairs and the BN statistics of the features are the
    checkpoint's (``docs/get_started.md``, "What the number of GPUs
    changes")."""
    checkpoint = osp.join(gmn_run['work_dir'], 'epoch_1.pth')
    tested = single_process_test(gmn_run['config'], checkpoint,
                                 str(gmn_run['tmp_path'] / 'test1'))
    assert {'reid/mnet/mAP', 'reid/euclid/mAP', 'reid/fused/mAP'} <= set(
        tested)
    assert_same_scores(last_logged_validation(gmn_run['work_dir']), tested)
