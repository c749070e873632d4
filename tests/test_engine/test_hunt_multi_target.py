"""Wrong-number hunt (MT): the multi-target evaluation loops.

A user evaluates one model on several targets at once
(``MultiTargetValLoop``/``MultiTargetTestLoop``, docs/customize.md
"Testing on targets of your own"): every target is scored on its own
samples with its own dataloader, pipeline and metric, its keys are
``<target>/<metric>`` and ``mean/<metric>`` is the unweighted mean over the
targets (specs/evaluation.md section 7). The tests below check the printed
and logged numbers against those definitions, computed here from the
features; the xfail ones pin a number that is wrong today.
"""
import copy
import glob
import itertools
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook

from mmreid.engine.runner import ReIDRunner
from mmreid.registry import HOOKS, METRICS
from ..fixtures.tiny_config import write_tiny_config
from ..fixtures.tiny_models import TINY_BOT_MODEL

_RUNS = itertools.count()


@METRICS.register_module(force=True)
class HuntScriptedScore(BaseMetric):
    """A score that says it may be averaged over targets: ``mAP`` is the
    next of ``values`` at each evaluation (the last once they run out),
    whatever the features, so that a test decides every validation's
    number."""

    mean_over_targets = True

    def __init__(self, values=(0.0, ), **kwargs):
        super().__init__(**kwargs)
        self.values = list(values)
        self.calls = 0

    def process(self, data_batch, data_samples):
        self.results.extend([0] * len(data_samples))

    def compute_metrics(self, results):
        value = self.values[min(self.calls, len(self.values) - 1)]
        self.calls += 1
        return dict(mAP=float(value))


#: An iteration-based run of the tiny config validating after every
#: iteration on scripted targets, keeping the best ``mean/mAP``
#: (``{iters}``, ``{targets}``: ``scripted(name, values)`` calls).
SCRIPTED_TARGETS = '''
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters={iters},
    val_interval=1)
param_scheduler = []
def scripted(name, values):
    return dict(
        name=name,
        dataloader=dict(
            batch_size=2, num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            dataset=dict(synth, domain=2, split='test', indices=2,
                         pipeline=test_pipeline)),
        evaluator=dict(type='HuntScriptedScore', values=values))
val_dataloader = dict()
val_evaluator = dict()
val_cfg = dict(type='MultiTargetValLoop', targets=[{targets}])
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1,
                    save_best='mean/mAP', rule='greater'))
'''


def _scripted_config(path, synth_root, iters, targets):
    return write_tiny_config(
        path, synth_root, SCRIPTED_TARGETS.format(iters=iters,
                                                  targets=targets))


def _runner(config, work_dir, **options):
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    # One name per runner: mmengine keys its logger and message hub by it.
    cfg.experiment_name = f'hunt_mt_{next(_RUNS)}'
    return ReIDRunner.from_cfg(cfg)


def _resume(config, run_dir, work_dir, **options):
    """A runner that resumes ``run_dir``'s ``iter_2.pth`` in ``work_dir``
    with ``config`` (``tools/train.py CONFIG --resume FILE``) and
    ``--cfg-options`` ``options``."""
    return _runner(
        config,
        work_dir,
        resume=True,
        load_from=str(run_dir / 'iter_2.pth'),
        **options)


def test_a_resumed_best_mean_is_chosen_over_the_current_targets(
        tmp_path, synth_root):
    """A run validates targets ``a`` and ``b`` and keeps the best
    ``mean/mAP`` (``save_best='mean/mAP'``): 50 at iteration 1. The user
    adds target ``c`` to ``val_cfg.targets`` (as docs/customize.md shows,
    ``_base_.val_cfg.targets + [site_a]``: "the mean row is then over all
    the targets") and resumes from ``iter_2.pth``. The resumed run scores
    the mean over a, b and c: 30 at iteration 2 (validated again), 40 at
    iteration 3. mmengine resumed the best score 50, a mean over a and b
    only, and compares the new key's values with it: no checkpoint of
    this run is kept as the best, and the log keeps naming 50 as the best
    ``mean/mAP``, a number of another average. The mean over targets is
    defined over the targets evaluated (specs/evaluation.md section 7), so
    two means over different targets are not values of one key. Right:
    the resume is refused, naming the checkpoint (as another ``save_best``
    key is, docs/get_started.md section 6), or the best is chosen among
    means over the current targets: iteration 3 (40 > 30)."""
    run = tmp_path / 'run'
    two = _scripted_config(tmp_path / 'two.py', synth_root, 2,
                           "scripted('a', [50, 40]), scripted('b', [50, 40])")
    _runner(two, run).train()
    assert osp.isfile(run / 'best_mean_mAP_iter_1.pth')
    three = _scripted_config(
        tmp_path / 'three.py', synth_root, 3,
        "scripted('a', [40, 45]), scripted('b', [40, 45]), "
        "scripted('c', [10, 30])")
    resumed = _resume(three, run, tmp_path / 'resumed')
    try:
        resumed.train()
    except RuntimeError as error:  # refused: right as well
        assert 'iter_2.pth' in str(error)
        return
    best = sorted(
        osp.basename(path)
        for path in glob.glob(str(tmp_path / 'resumed' / 'best_*.pth')))
    assert best == ['best_mean_mAP_iter_3.pth'], (
        'the best mean over a, b and c (40, iteration 3) was compared with '
        f'the best mean over a and b (50); best checkpoints here: {best}')


def _logged_validations(work_dir):
    """The validation records of ``work_dir``'s ``scalars.json`` files."""
    records = []
    for path in glob.glob(str(work_dir / '*' / 'vis_data' / 'scalars.json')):
        with open(path, encoding='utf-8') as f:
            records += [json.loads(line) for line in f]
    return [r for r in records if 'mean/mAP' in r]


def test_a_resumed_validation_logs_only_the_targets_it_evaluated(
        tmp_path, synth_root):
    """A run validates targets ``a``, ``b`` and ``c`` (``c/mAP`` 7). The
    user drops ``c`` from ``val_cfg.targets`` and resumes from
    ``iter_2.pth`` (without ``save_best``: the best ``mean/mAP`` of a, b
    and c is refused as the best of a mean over a and b). Each validation
    of the resumed run evaluates ``a`` and ``b`` only, and its
    ``mean/mAP`` (45 at iteration 3) is their mean; but its
    ``Epoch(val)`` line and ``scalars.json`` record (what TensorBoard and
    the analysis tools read) still show ``c/mAP: 7.0`` beside it, the
    value of a validation before the resume: mmengine's log
    processor prints every ``val/`` scalar of the message hub, which the
    resume filled with the checkpoint's. A reader sees three targets and a
    mean that is not theirs. Right: a validation logs the keys it
    reported (``runner.val_loop.run()``'s metrics), no other."""
    run = tmp_path / 'run'
    three = _scripted_config(
        tmp_path / 'three.py', synth_root, 2,
        "scripted('a', [50, 40]), scripted('b', [50, 40]), "
        "scripted('c', [7, 7])")
    _runner(three, run).train()
    two = _scripted_config(tmp_path / 'two.py', synth_root, 3,
                           "scripted('a', [40, 45]), scripted('b', [40, 45])")
    _resume(two, run, tmp_path / 'resumed', **{
        'default_hooks.checkpoint.save_best': None
    }).train()
    logged = _logged_validations(tmp_path / 'resumed')
    assert [r['step'] for r in logged] == [2, 3]
    assert logged[-1]['mean/mAP'] == pytest.approx(45.0)
    for record in logged:
        scores = sorted(k for k in record if k.endswith('/mAP'))
        assert scores == ['a/mAP', 'b/mAP', 'mean/mAP'], (
            f'step {record["step"]} logged {scores}, but only a and b were '
            f'evaluated (c/mAP {record.get("c/mAP")} is from before the '
            'resume)')


@HOOKS.register_module(force=True)
class HuntTargetFeatures(Hook):
    """Keeps, per target of the test loop, every sample's feature, pid,
    camid and role and the input size of its batches."""

    def __init__(self):
        self.samples = {}
        self.sizes = {}

    def after_test_iter(self,
                        runner,
                        batch_idx,
                        data_batch=None,
                        outputs=None):
        target = runner.test_loop.current_target
        self.sizes.setdefault(target, set()).update(
            tuple(image.shape[-2:]) for image in data_batch['inputs'])
        self.samples.setdefault(target, []).extend(
            (sample.pred_feature.detach().double().flatten(),
             int(sample.gt_label), int(sample.camid), sample.role)
            for sample in outputs)


def _reference_scores(samples, distance):
    """R1, R5, mAP and mINP (percent) and the valid query count by the
    definition (specs/evaluation.md sections 2-4): the market junk rule,
    queries without a positive skipped, the gallery ordered by
    (distance, gallery index), AP = mean_j j / r_j, INP = m / r_m."""
    query = [s for s in samples if s[3] == 'query']
    gallery = [s for s in samples if s[3] == 'gallery']
    q = torch.stack([s[0] for s in query])
    g = torch.stack([s[0] for s in gallery])
    if distance == 'cosine':
        q = q / q.norm(dim=1, keepdim=True)
        g = g / g.norm(dim=1, keepdim=True)
        dist = 1 - q @ g.T
    else:
        dist = torch.cdist(q, g)
    first, ap, inp = [], [], []
    for i, (_, pid, camid, _) in enumerate(query):
        kept = [
            j for j, other in enumerate(gallery)
            if not (other[1] == pid and other[2] == camid)
        ]
        ranked = sorted(kept, key=lambda j: (float(dist[i, j]), j))
        ranks = [r + 1 for r, j in enumerate(ranked) if gallery[j][1] == pid]
        if not ranks:
            continue
        first.append(ranks[0])
        ap.append(np.mean([(n + 1) / r for n, r in enumerate(ranks)]))
        inp.append(len(ranks) / ranks[-1])
    first = np.array(first)
    return {
        'R1': 100 * np.mean(first <= 1),
        'R5': 100 * np.mean(first <= 5),
        'mAP': 100 * np.mean(ap),
        'mINP': 100 * np.mean(inp),
        'num_valid_query': len(first),
    }


def test_each_target_and_the_mean_are_the_definitions_numbers(
        tmp_path, synth_root):
    """Two targets with their own pipeline (32 x 16 and 64 x 32), batch
    size (4 and 3), distance (Euclidean and cosine) and samples (the
    second an ``indices`` subset whose gallery leaves some queries without
    a positive): each target's printed numbers are those of its own
    features by the definition, computed here, and ``mean/<key>`` is the
    unweighted mean of the two (specs/evaluation.md section 7)."""
    synth = dict(
        type='SynthReID',
        data_root=synth_root,
        num_domains=3,
        size='tiny',
        seed=0,
        img_size=(32, 16))

    def target(name, dataset, size, batch_size, distance):
        pipeline = [
            dict(type='ReIDLoadImageFromFile'),
            dict(type='ReIDResize', size=size),
            dict(type='PackReIDInputs')
        ]
        return dict(
            name=name,
            dataloader=dict(
                batch_size=batch_size,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'),
                dataset=dict(dataset, pipeline=pipeline)),
            evaluator=dict(type='ReIDMetric', distance=distance))

    runner = ReIDRunner(
        model=copy.deepcopy(TINY_BOT_MODEL),
        work_dir=str(tmp_path),
        experiment_name=f'hunt_mt_{next(_RUNS)}',
        test_dataloader=dict(),
        test_evaluator=dict(),
        test_cfg=dict(
            type='MultiTargetTestLoop',
            targets=[
                target('d2', dict(synth, domain=2, split='test'), (32, 16),
                       4, 'euclidean'),
                target('d0', dict(synth, domain=0, split='test', indices=10),
                       (64, 32), 3, 'cosine'),
            ]),
        custom_hooks=[dict(type='HuntTargetFeatures')],
        default_scope='mmreid',
        randomness=dict(seed=0))
    metrics = runner.test()
    hook = next(h for h in runner.hooks if isinstance(h, HuntTargetFeatures))
    assert hook.sizes == {'d2': {(32, 16)}, 'd0': {(64, 32)}}
    expected = {
        'd2': _reference_scores(hook.samples['d2'], 'euclidean'),
        'd0': _reference_scores(hook.samples['d0'], 'cosine'),
    }
    assert len(hook.samples['d0']) == 10
    assert expected['d0']['num_valid_query'] < metrics['d0/num_query']
    for name, scores in expected.items():
        for key, value in scores.items():
            assert metrics[f'{name}/{key}'] == pytest.approx(
                value, abs=1e-6), (name, key)
    for key in ('R1', 'R5', 'mAP', 'mINP'):
        assert metrics[f'mean/{key}'] == pytest.approx(
            (expected['d2'][key] + expected['d0'][key]) / 2, abs=1e-6), key
