"""Wrong-number hunt: multi-process evaluation and training on the CPU.

The runs are 2 CPU processes with the gloo backend, forked from one
parent that imported mmreid once (as ``tests/test_models/test_mbn_ddp.py``
does); what a rank sends to rank 0 is checked in this process. The
references are computed in the parent from the definitions:
the checkpoint rank 0 saves is the model a validation must score
(``docs/get_started.md``, "What the number of GPUs changes"), and an
evaluation's outputs are the metrics and nothing else.
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

#: Runs ``mode`` ('train' or 'test') of a config in 2 forked processes,
#: as ``tools/dist_train.sh``/``dist_test.sh`` do (torchrun's variables,
#: ``load_config(launcher='pytorch')``, ``adapt_to_device``,
#: ``build_runner``). ``BufferProbe`` saves each rank's model buffers as
#: the first validation batch sees them.
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
class BufferProbe(Hook):
    def __init__(self, out):
        self.out = out

    def before_val_iter(self, runner, batch_idx, data_batch=None):
        if batch_idx:
            return
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        rank = torch.distributed.get_rank()
        torch.save({k: v.clone() for k, v in model.named_buffers()},
                   os.path.join(self.out, f'val_buffers_rank{rank}.pt'))


def worker(rank, port, out, mode, config, options):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port),
                      RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE='2', LOCAL_WORLD_SIZE='2')
    cfg = load_config(config, options, os.path.join(out, 'work_dir'),
                      'pytorch', phase=mode)
    runtime.adapt_to_device(cfg)
    runner = build_runner(cfg)
    metrics = getattr(runner, mode)()
    if mode == 'test' and rank == 0:
        with open(os.path.join(out, 'metrics.json'), 'w') as f:
            json.dump(metrics, f)
    runtime.shutdown_distributed()


if __name__ == '__main__':
    register_all_modules(init_default_scope=False)
    port, out, mode, config = sys.argv[1:5]
    options = json.loads(sys.argv[5])
    mp.start_processes(worker, args=(int(port), out, mode, config, options),
                       nprocs=2, start_method='fork')
'''


def run_two_processes(tmp_path, mode: str, config: str,
                      options: dict) -> str:
    """Run ``mode`` of ``config`` in 2 gloo processes; fail with the output.

    Returns:
        str: The folder the run wrote in (``work_dir`` below it).
    """
    out = tmp_path / f'{mode}_2p'
    out.mkdir()
    script = tmp_path / 'two_processes.py'
    script.write_text(WORKER)
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = retry_on_port_clash(lambda port: subprocess.run(
        [sys.executable,
         str(script),
         str(port),
         str(out), mode, config,
         json.dumps(options)],
        cwd=str(tmp_path),  # mmengine's .dist_test/ goes there
        env=env,
        capture_output=True,
        text=True,
        timeout=180))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return str(out)


def test_validation_with_ema_buffers_scores_the_saved_checkpoint(
        tmp_path, synth_root):
    """A user adds mmengine's ``EMAHook(update_buffers=True)`` (BN running
    statistics averaged too) and trains on 2 processes with validation.

    mmreid trains with ``broadcast_buffers=False``, so each rank keeps
    its own BN statistics, and each rank's EMA averages its own. The docs
    promise (``docs/get_started.md``, "What the number of GPUs changes";
    ``share_rank0_buffers``) that validation gives every process rank 0's
    statistics, "so the numbers it logs (and ``save_best``) are those of
    the checkpoint rank 0 saves". The buffers are broadcast before the
    ``before_val_epoch`` hooks, and ``EMAHook`` then swaps each rank's own
    EMA buffers into the model: rank 1 extracts its features with other
    statistics than the checkpoint holds, and the logged mAP is of no
    saved model (here it differs from ``tools/test.py`` on the epoch's
    checkpoint). Right: every rank validates with the checkpoint's
    buffers, and the logged validation equals the checkpoint's test.
    """
    ema = dict(
        type='EMAHook',
        momentum=0.5,
        update_buffers=True,
        priority='ABOVE_NORMAL')
    config = write_tiny_config(
        tmp_path / 'ema.py', synth_root, extra=f'custom_hooks = [{ema!r}]')
    out = run_two_processes(
        tmp_path, 'train', config, {
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 1,
            'custom_hooks': [ema,
                             dict(type='BufferProbe', out=str(tmp_path))],
        })
    work_dir = osp.join(out, 'work_dir')
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    saved = torch.load(checkpoint, map_location='cpu', weights_only=False)
    saved = saved['state_dict']
    ranks = [
        torch.load(tmp_path / f'val_buffers_rank{r}.pt') for r in (0, 1)
    ]
    stats = [k for k in saved if k.endswith(('running_mean', 'running_var'))]
    assert stats and set(stats) <= set(ranks[0])
    for rank, buffers in enumerate(ranks):
        differ = [
            k for k in stats if not torch.equal(buffers[k], saved[k])
        ]
        assert not differ, (f'rank {rank} validated with other BN statistics '
                            f'than the checkpoint holds: {differ[:3]}')
    tested = single_process_test(config, checkpoint,
                                 str(tmp_path / 'test1'))
    validation = last_logged_validation(work_dir, 'reid/mAP')
    for key in ('reid/mAP', 'reid/R1', 'reid/mINP'):
        assert validation[key] == pytest.approx(tested[key], abs=1e-4), key


#: Evaluates ``ReIDMetric(**kwargs)`` in 2 forked processes on the
#: records of ``records.pt``, dealt as mmengine's ``DefaultSampler`` deals
#: a dataset (index ``i`` to rank ``i % 2``, the last one padded with the
#: first record); rank 0 saves the metrics.
METRIC_WORKER = r'''
import json
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmreid.evaluation import ReIDMetric


def worker(rank, port, out, kwargs):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=2)
    records = torch.load(os.path.join(out, 'records.pt'))
    size = len(records)
    padded = records + records[:len(records) % 2]
    metric = ReIDMetric(**kwargs)
    for sample in padded[rank::2]:
        metric.process(None, [sample])
    metrics = metric.evaluate(size)
    if rank == 0:
        with open(os.path.join(out, 'metrics.json'), 'w') as f:
            json.dump(metrics, f)
    dist.destroy_process_group()


if __name__ == '__main__':
    port, out = sys.argv[1:3]
    mp.start_processes(worker, args=(int(port), out, json.loads(sys.argv[3])),
                       nprocs=2, start_method='fork')
'''


def evaluate_two_processes(tmp_path, records: list, **kwargs) -> dict:
    """``ReIDMetric(**kwargs).evaluate`` over ``records`` in 2 processes.

    Returns:
        dict: The metrics (rank 0's).
    """
    torch.save(records, tmp_path / 'records.pt')
    script = tmp_path / 'metric_worker.py'
    script.write_text(METRIC_WORKER)
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = retry_on_port_clash(lambda port: subprocess.run(
        [sys.executable,
         str(script),
         str(port),
         str(tmp_path),
         json.dumps(kwargs)],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=120))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(tmp_path / 'metrics.json') as f:
        return json.load(f)


def toy_records(num: int = 11) -> list:
    """``num`` data samples as the model's predict mode gives them: 3
    queries of pids 0-2 (camera 0), the rest gallery (camera 1)."""
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(num, 4, generator=g)
    return [
        dict(
            pred_feature=feats[i],
            gt_label=i % 3,
            camid=0 if i < 3 else 1,
            role='query' if i < 3 else 'gallery',
            sample_idx=i,
            img_path=f'img{i}.jpg') for i in range(num)
    ]


def reference_map(records: list) -> float:
    """mAP (percent) from the definition: per query, the mean over its
    positives of precision at each positive's rank (Euclidean distance,
    the same-camera same-pid gallery items removed; none here)."""
    query = [r for r in records if r['role'] == 'query']
    gallery = [r for r in records if r['role'] == 'gallery']
    aps = []
    for q in query:
        order = sorted(
            range(len(gallery)),
            key=lambda j: (float(
                torch.dist(q['pred_feature'], gallery[j]['pred_feature'])),
                           j))
        hits, precisions = 0, []
        for rank, j in enumerate(order, start=1):
            if gallery[j]['gt_label'] == q['gt_label']:
                hits += 1
                precisions.append(hits / rank)
        aps.append(sum(precisions) / len(precisions))
    return 100 * sum(aps) / len(aps)


def test_collect_dir_keeps_the_users_files(tmp_path):
    """A user sets ``val_evaluator = dict(type='ReIDMetric',
    collect_dir='work_dirs/run1')`` (``collect_dir``: "See BaseMetric",
    the folder the ranks exchange their results through) and evaluates
    on 2 processes.

    The metric is right, but mmengine's ``collect_results_cpu`` removes
    the folder as a whole afterwards, whatever else it held: the user's
    checkpoint in it is gone, with no message (in one process the folder
    is never touched). Right: an evaluation writes its metrics and
    nothing else; the folder's other files survive (collect in a private
    folder inside it, or refuse a folder that holds files).
    """
    records = toy_records()
    folder = tmp_path / 'run1'
    folder.mkdir()
    (folder / 'epoch_1.pth').write_bytes(b'the checkpoint')
    metrics = evaluate_two_processes(
        tmp_path, records, collect_dir=str(folder))
    assert metrics['reid/mAP'] == pytest.approx(reference_map(records))
    assert metrics['reid/num_query'] == 3
    assert (folder / 'epoch_1.pth').is_file(), (
        f'{folder} and the checkpoint in it were removed by the evaluation')


def test_what_a_rank_sends_holds_each_feature_once():
    """A user evaluates on CPU processes (``tools/dist_test.sh`` without
    GPUs). Each rank's records go to rank 0 through mmengine's
    ``collect_results_cpu``, which pickles the list of records to a part
    file in ``.dist_test/`` (``all_gather_object`` pickles them too with
    ``collect_device='gpu'``), and rank 0 loads every part.

    ``ReIDModel.predict`` gives each sample a row of the batch's feature
    tensor, and ``ReIDMetric.process`` keeps it as it is on the CPU
    (``reshape(-1).cpu()`` is then the same view): pickling a view writes
    its whole storage, so every record carries the features of its whole
    batch. With Market-1501's about 23,000 test images (query and
    gallery), 2048-d features and the shipped test batches of 128, that
    is about 23 GB of part files and of rank 0's memory instead of under
    200 MB (an out-of-memory end leaves the part files behind). Right: a
    record holds its own feature, so the pickled records are about the
    size of their features.
    """
    import pickle

    from mmreid.evaluation import ReIDMetric
    from mmreid.registry import MODELS
    from mmreid.structures import ReIDDataSample
    from ..fixtures.tiny_models import TINY_BOT_MODEL
    model = MODELS.build(TINY_BOT_MODEL).eval()
    batch = 16
    samples = []
    for i in range(batch):
        sample = ReIDDataSample().set_gt_label(i % 4)
        sample.set_metainfo(
            dict(camid=i % 2, role='gallery', sample_idx=i,
                 img_path=f'img{i}.jpg'))
        samples.append(sample)
    with torch.no_grad():
        outputs = model.predict(torch.randn(batch, 3, 32, 16), samples)
    metric = ReIDMetric()
    metric.process(None, [s.to_dict() for s in outputs])
    dim = metric.results[0]['feature'].numel()
    feature_bytes = batch * dim * 4
    sent = len(pickle.dumps(metric.results, protocol=2))
    # Each record's labels, path and pickling overhead: far below a
    # second copy of the features for D = 64.
    assert sent < 2 * feature_bytes + 400 * batch, (
        f'{sent} bytes pickled for {feature_bytes} bytes of features: '
        f'{sent / feature_bytes:.1f} x')


def test_two_processes_count_a_padded_sample_once(tmp_path):
    """11 samples on 2 processes: the sampler pads rank 1 with sample 0
    (a query). The metric must rank 3 queries against 8 gallery images,
    each once, and give the mAP of the definition."""
    records = toy_records(11)
    metrics = evaluate_two_processes(tmp_path, records)
    assert metrics['reid/num_query'] == 3
    assert metrics['reid/mAP'] == pytest.approx(reference_map(records))
