"""Wrong-number hunt: the statistics behind the published comparisons.

Black-box checks of ``compare_configs.py``, ``style_decomposition.py``,
``paired_query_error.py``, ``wrt_regime.py`` and the run records they
read, each number against its definition (the paired t interval, the
definition of a run's config, the CMC protocol a metric reports, the
distances ``WRTLoss`` computes), computed here from scratch.
"""
import argparse
import math
import subprocess

import numpy as np
import pytest
import torch
import torch.nn as nn

from mmreid.models.losses import WRTLoss
from ..fixtures.finished_runs import fake_test, finished_run, write_config
from ..fixtures.processes import load_tool

COMPARE = 'tools/analysis_tools/compare_configs.py'
RUN_PLANS = 'tools/analysis_tools/run_plans.py'
STYLE = 'tools/analysis_tools/style_decomposition.py'
PAIRED_QUERY = 'tools/analysis_tools/paired_query_error.py'
WRT_REGIME = 'tools/analysis_tools/wrt_regime.py'


def _no_training(*args, **kwargs):
    raise AssertionError(f'a training was started: {args}')


def _run_args(work_dir):
    """What ``run_plans.run`` reads of a tool's arguments, --no-train."""
    return argparse.Namespace(
        work_dir=str(work_dir),
        no_train=True,
        cfg_options=[],
        trust_retested=False)


def test_a_retest_does_not_launder_a_run_of_another_config(
        tmp_path, monkeypatch):
    """A re-test must not turn another config's training into a result.

    The user trains ``a.py`` (lr 0.1) into ``runs/a_seed0``, then edits
    ``a.py`` to lr 0.2. ``compare_configs.py --no-train`` rightly refuses
    the work dir (its run was trained with another config). The user
    then re-tests the final checkpoint there with ``tools/test.py a.py
    runs/a_seed0/epoch_2.pth --work-dir runs/a_seed0`` (as the tool's
    docstring suggests for a larger test set) and the same command now
    tabulates the lr-0.1 model's R1 as the lr-0.2 config's: the test's
    record has the new config, and the training that wrote the
    checkpoint is never looked at again. compare_configs.py's own
    contract: a work dir whose run is of another config is an error
    naming what differs. Same for the seed: a run trained with seed 5
    into ``a_seed0`` is refused, and accepted once re-tested.
    """
    run_plans = load_tool(RUN_PLANS)
    monkeypatch.setattr(subprocess, 'run', _no_training)
    config = write_config(tmp_path / 'a.py', lr=0.1)
    work_dir = tmp_path / 'runs' / 'a_seed0'
    finished_run(work_dir, config, 0, {'d3/R1': 30.0, 'd3/num_query': 5})
    write_config(tmp_path / 'a.py', lr=0.2)
    with pytest.raises(ValueError, match='optim_wrapper.optimizer.lr'):
        run_plans.run(config, 0, _run_args(tmp_path / 'runs'))
    # The checkpoint the lr-0.1 training wrote, tested with the new file.
    fake_test(work_dir, config, str(work_dir / 'epoch_2.pth'), {
        'd3/R1': 31.0,
        'd3/num_query': 5
    })
    with pytest.raises(ValueError) as info:
        run_plans.run(config, 0, _run_args(tmp_path / 'runs'))
    assert 'tested epoch_2.pth, trained by the run 20260101_000000 with ' \
        'another config' in str(info.value)
    assert 'optim_wrapper.optimizer.lr: 0.2 here, 0.1 in the run' in \
        str(info.value)
    # A training of another seed in this seed's folder, re-tested.
    other = tmp_path / 'runs' / 'a_seed1'
    finished_run(other, config, 5, {'d3/R1': 30.0, 'd3/num_query': 5})
    fake_test(other, config, str(other / 'epoch_2.pth'), {
        'd3/R1': 31.0,
        'd3/num_query': 5
    })
    with pytest.raises(ValueError, match='randomness.seed: 1 here, 5 in'):
        run_plans.run(config, 1, _run_args(tmp_path / 'runs'))
    # The same re-test of a training of this config and seed is read.
    finished_run(tmp_path / 'runs' / 'a_seed2', config, 2, {
        'd3/R1': 30.0,
        'd3/num_query': 5
    })
    fake_test(tmp_path / 'runs' / 'a_seed2', config,
              str(tmp_path / 'runs' / 'a_seed2' / 'epoch_2.pth'), {
                  'd3/R1': 31.0,
                  'd3/num_query': 5
              })
    metrics = run_plans.run(config, 2, _run_args(tmp_path / 'runs'))
    assert metrics['d3/R1'] == 31.0


def test_a_truncated_log_is_an_error_naming_its_file(tmp_path, monkeypatch):
    """A run killed while it wrote its log is named, not a JSON riddle.

    Seed 1's work dir holds a finished run and a later one killed while
    mmengine appended to its ``vis_data/scalars.json`` (its last line cut
    half-way). ``compare_configs.py --no-train`` ends with ``error:
    Expecting ',' delimiter: line 1 column 13 (char 12)``: which of the
    dozens of files it read is not said. mmreid's promise: bad input gets
    a clear error naming the file.
    """
    tool = load_tool(COMPARE)
    monkeypatch.setattr(subprocess, 'run', _no_training)
    config = write_config(tmp_path / 'a.py')
    runs = tmp_path / 'runs'
    for seed in (0, 1):
        finished_run(runs / f'a_seed{seed}', config, seed, {
            'd3/R1': 30.0 + seed,
            'd3/num_query': 5
        })
    killed = runs / 'a_seed1' / '20260102_000000' / 'vis_data'
    killed.mkdir(parents=True)
    (killed / 'scalars.json').write_text(
        '{"loss": 2.0, "epoch": 1, "step": 1}\n{"d3/R1": 12.')
    with pytest.raises(SystemExit) as info:
        tool.main([
            config, '--seeds', '0', '1', '--work-dir',
            str(runs), '--no-train', '--metrics', 'R1'
        ])
    assert f"{killed / 'scalars.json'} line 2 is not JSON" in str(info.value)
    assert str(runs / 'a_seed1' / '20260102_000000') in str(info.value)


def test_style_decomposition_refuses_a_metric_logged_as_nan(
        tmp_path, monkeypatch, capsys):
    """A NaN target value is refused, as compare_configs.py refuses it.

    Seed 1 of ``new.py`` logged ``d3/R1`` as NaN (a metric of one's own,
    a hand-edited log). ``style_decomposition.py`` prints the table with
    ``n/a`` in the d3 row and in the three rows derived from it, which
    its docstring reserves for a ratio over a zero (a model at chance),
    and exits 0; ``compare_configs.py`` on the same runs refuses with
    ``error: new.py, seed 1: d3/R1 was logged as nan``. No mean or
    interval over seeds exists with a NaN seed: the run is broken and
    the tool should say which.
    """
    tool = load_tool(STYLE)
    monkeypatch.chdir(tmp_path)
    base = write_config(tmp_path / 'base.py')
    new = write_config(tmp_path / 'new.py')
    targets = ('d3', 'd3-d0style', 'd0', 'd0-d3style')
    for seed in range(3):
        finished_run(tmp_path / f'base_seed{seed}', base, seed,
                     {f'{t}/R1': 10.0 + seed + i
                      for i, t in enumerate(targets)})
        metrics = {
            f'{t}/R1': 12.0 + seed + i
            for i, t in enumerate(targets)
        }
        if seed == 1:
            metrics['d3/R1'] = float('nan')
        finished_run(tmp_path / f'new_seed{seed}', new, seed, metrics)
    with pytest.raises(SystemExit) as info:
        tool.main([
            'base.py', 'new.py', '--work-dir',
            str(tmp_path), '--metrics', 'R1', '--no-train'
        ])
    assert "seed 1: 'd3/R1' was logged as nan, not a finite number" in \
        str(info.value)


class _NormalisingWRTModel(nn.Module):
    """A model whose training forward hands each batch to a WRTLoss that
    L2-normalises its features (``normalize_feature=True``)."""

    def __init__(self):
        super().__init__()
        self.head = nn.Module()
        self.head.loss_tri = WRTLoss(normalize_feature=True)

    def data_preprocessor(self, batch, training):
        return dict(batch=batch)

    def forward(self, batch, mode):
        return self.head.loss_tri(*batch)


def test_wrt_regime_measures_the_distances_the_loss_sees(monkeypatch):
    """The tool reports the distances the model's own WRTLoss computes.

    With ``loss_tri=dict(type='WRTLoss', normalize_feature=True)`` the
    loss L2-normalises the features first, so every distance it sees is
    at most 2 and the reference softmax's negative weights sum to about
    1: the collapse the tool looks for cannot happen. The tool measures
    the raw features instead: nearest negatives at 30 and "below 0.5 for
    100 % of anchors", i.e. it reports a collapse the model does not
    have, and its "WRT loss" is that of a default ``WRTLoss()`` on raw
    features, not the model's loss (configs/mbn/README.md reads these
    numbers to place a model).
    """
    tool = load_tool(WRT_REGIME)
    from mmengine.config import Config
    labels = torch.tensor([0, 0, 1, 1])
    far = torch.tensor([[0., 1.], [0., 2.], [30., 1.], [30., 2.]])
    monkeypatch.setattr(tool, 'build_start_model',
                        lambda cfg, init_seed=None:
                        (_NormalisingWRTModel(), 0))
    monkeypatch.setattr(tool.Runner, 'build_dataloader',
                        staticmethod(lambda cfg, seed=None: [(far, labels)]))
    stats = tool.measure(
        Config(dict(train_dataloader=dict())), 'init', batches=1)
    # The features as the loss sees them, normalised by hand.
    unit = far / far.norm(dim=1, keepdim=True)
    dist = torch.cdist(unit, unit)
    negative = labels[None] != labels[:, None]
    near = dist.masked_fill(~negative, float('inf')).min(1).values
    assert stats['near'].tolist() == pytest.approx(near.tolist(), abs=1e-5)
    assert float(stats['near'].max()) <= 2.0
    own = float(WRTLoss(normalize_feature=True)(far, labels))
    assert float(stats['reference'][0]) == pytest.approx(own, rel=1e-5)


def _classic_report(path, first_rank):
    """A per_query.npz as EvalReportHook writes it for a section scored
    by CUHK03ClassicMetric: four queries of two identities."""
    from types import SimpleNamespace

    from mmreid.engine.hooks.report_hook import (EvalReportHook,
                                                 ranking_settings)
    from mmreid.evaluation.metrics.cuhk03_classic_metric import \
        CUHK03ClassicMetric
    metric = CUHK03ClassicMetric()
    query = [
        dict(img_path=f'q/{i}.jpg', pid=i // 2, camid=0) for i in range(4)
    ]
    gallery = [dict(img_path=f'g/{i}.jpg', pid=i % 2, camid=1)
               for i in range(6)]
    first_rank = np.asarray(first_rank)
    analysis = SimpleNamespace(
        first_rank=first_rank, ap=1.0 / np.maximum(first_rank, 1))
    settings = ranking_settings(
        dict(metric=type(metric).__name__, distance='euclidean'), metric,
        True)
    arrays = EvalReportHook.per_query_arrays(
        'cuhk03', query, analysis, metric, gallery=gallery,
        settings=settings)
    with open(path, 'wb') as f:
        np.savez(f, **arrays)
    return str(path)


def test_a_classic_cuhk03_r1_is_not_shown_as_the_reported_r1(tmp_path):
    """The paired R1 of two CUHK03-classic runs is not called their R1.

    ``CUHK03ClassicMetric`` reports R1 by the single-gallery-shot
    protocol (one gallery image per identity, 10 seeded draws); its mAP
    is the whole gallery's. The report's own page and log label the
    whole-gallery R1 of such a section ``R1 (standard protocol)``
    (``EvalReportHook._compare_cmc``). ``paired_query_error.py`` on two
    such reports prints a row ``| cuhk03 | R1 | A | B | B - A | ...``
    whose A and B are the whole-gallery R1, not the R1 tools/test.py
    printed for these runs, and says nothing: the settings the hook
    records say ``values: reported ranking`` and nothing of the CMC
    protocol. The row must say which R1 it is (or be left out with a
    note); the mAP row is the reported one.
    """
    tool = load_tool(PAIRED_QUERY)
    a = tool.load_per_query(
        _classic_report(tmp_path / 'a.npz', [1, 2, 1, 3]))
    b = tool.load_per_query(
        _classic_report(tmp_path / 'b.npz', [1, 1, 2, 1]))
    left_out = []
    rows = tool.paired_rows(a, b, left_out)
    names = [row['metric'] for row in rows]
    assert 'mAP' in names
    assert 'R1' not in names, (names, left_out)
    assert left_out == [
        "section 'cuhk03', R1: the whole gallery's R1, not the reported "
        'one (A reports R1 by the CUHK03 classic single-gallery-shot '
        'protocol; B reports R1 by the CUHK03 classic single-gallery-shot '
        'protocol)'
    ]


def test_paired_differences_pair_by_seed_when_a_baseline_seed_lacks_a_metric(
        tmp_path, monkeypatch, capsys):
    """Gap test: the interval pairs the runs by seed, never by position.

    The baseline logged no mAP at seed 1 and ``--seeds`` is given out of
    order (2 0 1). The pairs are then seed 2 (5, 4) and seed 0 (1, 2):
    differences -1 and +1, mean 0, sample std sqrt(2), and with n = 2
    the half width is t(0.975; 1) * sqrt(2) / sqrt(2) = tan(0.475 pi) =
    12.706 (Student t with one degree of freedom is Cauchy). Pairing the
    baseline's two values with the first two of the other config would
    give another mean.
    """
    tool = load_tool(COMPARE)
    monkeypatch.setattr(subprocess, 'run', _no_training)
    base = write_config(tmp_path / 'base.py')
    new = write_config(tmp_path / 'new.py')
    runs = tmp_path / 'runs'
    base_map = {0: 1.0, 1: None, 2: 5.0}
    new_map = {0: 2.0, 1: 9.0, 2: 4.0}
    for seed in (0, 1, 2):
        metrics = {'d3/R1': 10.0, 'd3/num_query': 5}
        if base_map[seed] is not None:
            metrics['d3/mAP'] = base_map[seed]
        finished_run(runs / f'base_seed{seed}', base, seed, metrics)
        finished_run(runs / f'new_seed{seed}', new, seed, {
            'd3/R1': 10.0 + seed,
            'd3/mAP': new_map[seed],
            'd3/num_query': 5
        })
    tool.main([
        new, '--baseline', base, '--seeds', '2', '0', '1', '--work-dir',
        str(runs), '--no-train', '--metrics', 'R1', 'mAP'
    ])
    out = capsys.readouterr().out
    diffs = [new_map[s] - base_map[s] for s in (2, 0)]
    mean = sum(diffs) / 2
    std = math.sqrt(sum((d - mean)**2 for d in diffs) / (2 - 1))
    half = math.tan(0.475 * math.pi) * std / math.sqrt(2)
    # R1: differences 2, 0, 1 (seeds 2, 0, 1): mean 1, std 1, t(0.975; 2)
    # = 0.95 / sqrt(2 x 0.975 x 0.025) exactly.
    r1_half = 0.95 / math.sqrt(2 * 0.975 * 0.025) / math.sqrt(3)
    expected = (f'| new.py | {1.0:+.1f} [{1.0 - r1_half:+.1f}, '
                f'{1.0 + r1_half:+.1f}] | {mean:+.1f} [{mean - half:+.1f}, '
                f'{mean + half:+.1f}] | R1 3, mAP 2 |')
    assert expected in out, out
