"""MBN under DDP: 2 CPU processes (gloo), a few training steps.

A tiny MBN-AGW ReIDModel in ``DistributedDataParallel`` (no
``find_unused_parameters``) is trained with the cross-modality sampler in
distributed mode. Checks: every rank's batch has both modalities in equal
counts, the gradients are synchronised (identical parameters after the
steps), every modality's statistics were updated on every rank, and the
running statistics are the local ones (``broadcast_buffers=False``, spec
pitfall 5: evaluate from the saved checkpoint).
"""
import os.path as osp
import subprocess
import sys

import torch

from ..fixtures.processes import REPO, retry_on_port_clash

WORKER = r'''
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from mmreid.datasets.samplers import CrossModalityIdentitySampler
from mmreid.models import ReIDModel
from mmreid.structures import ReIDDataSample


class FakeVIDataset:
    def __init__(self):
        self.records = [
            dict(pid=pid, modality=m) for pid in range(6) for m in (0, 1)
            for _ in range(3)
        ]

    def __len__(self):
        return len(self.records)

    def get_data_info(self, idx):
        return dict(self.records[idx])


def image(idx, modality):
    g = torch.Generator().manual_seed(idx)
    x = torch.randn(3, 32, 16, generator=g)
    return x * 2 + 1 if modality else x


def worker(rank, port, out):
    os.environ['MASTER_ADDR'] = '127.0.0.1'
    os.environ['MASTER_PORT'] = str(port)
    dist.init_process_group('gloo', rank=rank, world_size=2)
    torch.manual_seed(0)
    model = ReIDModel(
        backbone=dict(type='AGWResNet', depth=18, base_channels=8,
                      stem_channels=8, non_local_stages=(0, 1, 1, 0),
                      norm_cfg=dict(type='MBN'), init_cfg=None),
        neck=dict(type='GeMPool', p=3.0, learnable=False),
        head=dict(type='BNNeckHead', in_channels=64, num_classes=6,
                  loss_tri=dict(type='WRTLoss')))
    model.init_weights()
    ddp = DistributedDataParallel(model, broadcast_buffers=False)
    optim = torch.optim.SGD(ddp.parameters(), lr=0.05)
    dataset = FakeVIDataset()
    sampler = CrossModalityIdentitySampler(
        dataset, batch_size=8, num_instances=2, seed=0)
    indices = list(sampler)
    seen = []
    ddp.train()
    for step in range(3):
        batch = indices[step * 8:(step + 1) * 8]
        infos = [dataset.get_data_info(i) for i in batch]
        inputs = torch.stack([image(i, r['modality'])
                              for i, r in zip(batch, infos)])
        samples = []
        for r in infos:
            s = ReIDDataSample().set_gt_label(r['pid'])
            s.set_metainfo(dict(modality=r['modality']))
            samples.append(s)
        seen.append([r['modality'] for r in infos])
        losses = ddp(inputs, samples, mode='loss')
        loss = sum(v for k, v in losses.items() if k.startswith('loss'))
        optim.zero_grad()
        loss.backward()
        optim.step()
    bn = model.backbone.layer1[0].bn1
    # eval_stats='batch' in several processes: each rank would normalise
    # other test batches than one process does.
    bn.eval()
    bn.eval_stats = 'batch'
    bn.set_modality([0, 0, 1, 1])
    try:
        bn(torch.randn(4, bn.num_features, 4, 4))
        refused = ''
    except ValueError as error:
        refused = str(error)
    torch.save(dict(
        refused=refused,
        params={k: v.detach() for k, v in model.named_parameters()},
        running_mean=[b.running_mean.clone() for b in bn.bns],
        tracked=[int(b.num_batches_tracked) for b in bn.bns],
        seen=seen), os.path.join(out, f'rank{rank}.pt'))
    dist.destroy_process_group()


if __name__ == '__main__':
    # fork: mmreid is imported once, in the parent.
    mp.start_processes(
        worker, args=(int(sys.argv[1]), sys.argv[2]), nprocs=2,
        start_method='fork')
'''


def test_mbn_trains_under_ddp_with_two_cpu_processes(tmp_path):
    script = tmp_path / 'ddp_worker.py'
    script.write_text(WORKER)
    env = dict(PYTHONPATH=REPO, OMP_NUM_THREADS='1', PATH='/usr/bin:/bin')
    proc = retry_on_port_clash(lambda port: subprocess.run(
        [sys.executable, str(script),
         str(port), str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [torch.load(osp.join(tmp_path, f'rank{r}.pt')) for r in (0, 1)]
    for r in ranks:
        for modalities in r['seen']:
            assert modalities == [0] * 4 + [1] * 4
        assert r['tracked'] == [3, 3]
    # DDP averaged the gradients: identical parameters on both ranks.
    for key, value in ranks[0]['params'].items():
        torch.testing.assert_close(ranks[1]['params'][key], value)
    assert 'number of processes' in ranks[0]['refused']
    # Running statistics are per rank (local sub-batches).
    assert not torch.allclose(ranks[0]['running_mean'][0],
                              ranks[1]['running_mean'][0])
