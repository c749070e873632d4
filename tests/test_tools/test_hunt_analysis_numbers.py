"""Wrong-number hunt in the analysis tools' own numbers.

Each test checks one number an analysis tool prints (or refuses to print)
against its definition, computed here from scratch on tiny inputs. The
first four pinned defects, each failing on the code before its fix.
"""
import dataclasses
import json

import pytest

from ..fixtures.finished_runs import (finished_gap_runs, finished_run,
                                      gap_effect_refusal, write_config)
from ..fixtures.processes import REPO, load_tool

GAP_EFFECT = 'tools/analysis_tools/gap_effect.py'
PAIR_SCORING = 'tools/analysis_tools/benchmark_pair_scoring.py'


def _multi_target(*names):
    """Config lines of a multi-target validation over ``names`` (its loop
    logs the mean over the targets under ``mean/``)."""
    targets = ', '.join(
        f"dict(name={name!r}, evaluator=dict(type='ReIDMetric'))"
        for name in names)
    return f"val_cfg = dict(type='MultiTargetValLoop', targets=[{targets}])\n"


def _gap_run(tool, work_dir, config, seed, metrics, gap):
    """A finished run of ``config`` with its modality gap cached (rows of
    ``modality_gap.py``: one shared-layer norm input of gap ``gap``)."""
    finished_run(work_dir, config, seed, metrics)
    checkpoint = work_dir / 'epoch_12.pth'
    checkpoint.write_text('not read: the gap is cached')
    (work_dir / 'last_checkpoint').write_text(str(checkpoint))
    rows = [
        dict(layer='backbone.layer1.0.bn1', gap=gap, log_std=gap, floor=0.04)
    ]
    (work_dir / 'modality_gap_128.json').write_text(
        json.dumps(
            dict(
                tool.cache_key(config, str(checkpoint)),
                checkpoint=str(checkpoint),
                rows=rows)))


def test_gap_effect_refuses_a_mean_over_other_test_sets(
        tmp_path, monkeypatch, capsys):
    """``gap_effect.py BN:MBN --target mean`` on runs whose targets hold
    other test sets.

    The user compares BN with MBN on the mean over the targets of a
    multi-target validation (``mean/R1``). The BN runs averaged d0 (5,210
    queries) and d3 (5,265); the MBN runs were re-tested on v2's smaller
    d3 (2,102 queries). The tool's docstring (and compare_configs.py,
    whose rule it cites) says a BN and MBN run evaluated on different
    test sets is an error; a mean over targets has the test sets of the
    targets it averages (``run_targets.test_set``). The tool instead
    prints MBN - BN with an interval, pairing two different quantities:
    its ``check_test_sets`` calls ``one_test_set`` without the loop's
    means, so ``mean`` counts as a prefix of unknown test set.
    """
    tool = load_tool(GAP_EFFECT)
    monkeypatch.chdir(tmp_path)
    loop = _multi_target('d0', 'd3')
    configs = {
        side: write_config(tmp_path / f'{side}.py', max_epochs=12, extra=loop)
        for side in ('bn', 'mbn')
    }
    d3_queries = dict(bn=5265, mbn=2102)
    for side, config in configs.items():
        for seed in range(3):
            r1 = 10.0 + seed + (2.0 if side == 'mbn' else 0.0)
            metrics = {
                'd0/R1': r1,
                'd0/mAP': r1,
                'd0/num_query': 5210,
                'd3/R1': r1,
                'd3/mAP': r1,
                'd3/num_query': d3_queries[side],
                'mean/R1': r1,
                'mean/mAP': r1,
            }
            _gap_run(tool, tmp_path / f'{side}_seed{seed}', config, seed,
                     metrics, 0.1)
    with pytest.raises(SystemExit) as info:
        tool.main([
            'bn.py:mbn.py', '--work-dir',
            str(tmp_path), '--metrics', 'R1', '--no-train', '--target',
            'mean'
        ])
    assert 'different test sets are not paired' in str(info.value)
    assert 'MBN - BN' not in capsys.readouterr().out


TINY_PAIR = [
    '--num-query', '6', '--num-gallery', '40', '--dim', '16', '--hidden', '8',
    '--repeat', '1', '--topk', '40'
]


def test_pair_scoring_one_pass_must_equal_one_by_one_in_minp(
        monkeypatch, tmp_path):
    """``benchmark_pair_scoring.py`` when the one-pass mINP differs.

    The docs (docs/benchmarks.md, "GMN pair scoring") say the tool exits
    with status 1 when "the one-pass metrics [differ] from the one-by-one
    ones at all", and that one pass gives the metrics of the one-by-one
    modes exactly; ``ReIDMetric`` reports mINP beside mAP and CMC from the
    same result. A one-pass scoring whose mINP differs from the one-by-one
    mINP (here by 0.05 in 'fused') is not exact, so the run must fail; the
    tool's ``metric_diff`` compares mAP and CMC only and the run passes.
    """
    tool = load_tool(PAIR_SCORING)
    real_multi = tool.evaluate_features_multi

    def off_minp(*args, **kwargs):
        results = real_multi(*args, **kwargs)
        fused = results['fused']
        results['fused'] = dataclasses.replace(fused, mINP=fused.mINP + 0.05)
        return results

    monkeypatch.setattr(tool, 'evaluate_features_multi', off_minp)
    out = tmp_path / 'pair.json'
    with pytest.raises(SystemExit) as info:
        tool.main(TINY_PAIR + ['--out', str(out)])
    assert info.value.code == 1
    summary = json.loads(out.read_text())
    assert summary['exactness']['agrees'] is False


def test_gap_effect_measures_the_model_whose_metrics_it_shows(
        tmp_path, monkeypatch, capsys):
    """``gap_effect.py`` on a work dir where a later training was cut off.

    Each BN run finished (validation at its final epoch 12, which the
    table's R1 is) and was then started again into the same work dir
    (the same command run twice, say) and killed at epoch 3, before any
    validation: mmengine's ``CheckpointHook`` then wrote ``epoch_3.pth``
    and pointed ``last_checkpoint`` at it. The tool still reads the
    finished run's final validation (the cut-off run logged none), so
    its "trained BN gap" must be that of the same model, the final
    checkpoint ``epoch_12.pth`` (or the run must be refused). It measures
    ``epoch_3.pth``, a model three quarters short of training, next to
    the metrics of another: the gap column and the plot's x axis are
    then of another model than the R1 beside them.
    """
    tool = load_tool(GAP_EFFECT)
    monkeypatch.chdir(tmp_path)
    measured = finished_gap_runs(tool, tmp_path, monkeypatch)
    for seed in range(3):
        work_dir = tmp_path / f'bn_seed{seed}'
        # The cut-off second training: losses only, a checkpoint.
        stamp = work_dir / '20260102_000000' / 'vis_data'
        stamp.mkdir(parents=True)
        (stamp / 'scalars.json').write_text(
            json.dumps(dict(loss=2.0, epoch=1, step=1)) + '\n')
        (stamp / 'config.py').write_text(
            (work_dir / '20260101_000000' / 'vis_data' /
             'config.py').read_text())
        last = work_dir / 'epoch_3.pth'
        last.write_text('a model after 3 of 12 epochs')
        (work_dir / 'last_checkpoint').write_text(str(last))
    refused = gap_effect_refusal(tool, tmp_path)
    capsys.readouterr()
    assert refused is not None or all(
        path.endswith('epoch_12.pth') for path in measured), measured


COMPARE = 'tools/analysis_tools/compare_configs.py'


def test_a_retest_is_of_the_training_that_wrote_the_final_checkpoint(
        tmp_path, monkeypatch, capsys):
    """``compare_configs.py`` on a re-test after a cut-off second training.

    The user trained ``a.py`` with lr 0.2 to its final epoch 12, then set
    lr 0.1 in ``a.py`` and started it again into the same work dir, and
    stopped that run at epoch 1 (it logged losses, no validation, and
    never reached epoch 12); later ``tools/test.py a.py
    a_seed0/epoch_12.pth`` re-tested the final checkpoint there. That file
    is the lr 0.2 model: the only training that reached epoch 12. The
    docstring of ``run_records.finished_result`` says a test counts only
    when "the training before it in work_dir, which wrote the
    checkpoint" is of the compared config. The tool credits the test to
    the latest training before it (the cut-off lr 0.1 run, which wrote no
    epoch_12.pth) and prints the lr 0.2 model's R1 as lr 0.1's, exit 0.
    It must refuse the run (or find the lr 0.2 training and refuse it).
    """
    from ..fixtures.finished_runs import fake_test, fake_training
    tool = load_tool(COMPARE)
    config = write_config(tmp_path / 'a.py', max_epochs=12, lr=0.2)
    work_dir = tmp_path / 'runs' / 'a_seed0'
    fake_training(
        work_dir,
        config,
        0, {12: {
            'reid/R1': 50.0
        }},
        stamp='20260101_000000')
    write_config(tmp_path / 'a.py', max_epochs=12, lr=0.1)
    # Cut off at epoch 1: losses only (no validation, no epoch_12.pth).
    fake_training(work_dir, config, 0, {}, stamp='20260102_000000')
    fake_test(
        work_dir,
        config,
        str(work_dir / 'epoch_12.pth'), {'reid/R1': 50.0},
        stamp='20260103_000000')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        tool.main([
            config, '--work-dir',
            str(tmp_path / 'runs'), '--no-train', '--seeds', '0',
            '--metrics', 'R1'
        ])
    assert info.value.code not in (0, None)
    assert '50.0' not in capsys.readouterr().out


@pytest.mark.parametrize('config, others', [
    ('agw_r18_synthreid-vi-v2.py', 5),
    ('mbn-agw_r18_synthreid-vi-v2.py', 5),
    ('agw_r18-onestream_synthreid-vi-v2.py', 2),
    ('mbn-agw_r18-onestream_synthreid-vi-v2.py', 2),
])
def test_the_layer1_4_gap_averages_the_19_norm_inputs_the_docs_name(
        config, others):
    """The published "layer1-4 gap" is a mean over 19 norm inputs.

    docs/benchmarks.md reports the modality gap as the "mean over the 19
    norm inputs of layer1-4" of ResNet-18 (16 block BNs and 3 downsample
    BNs), which ``gap_effect.py`` takes as the norm layers of
    ``modality_gap.norm_layers`` whose name starts with
    ``backbone.layer``. Each MBN counts once (its inner BNs never), and
    the stems, non-local BNs and the BNNeck are not among them. Counted
    here from ResNet-18's definition; a change of the layer list (MBN's
    inner BNs listed, a stem renamed into ``layer``) would move every
    published gap without a test noticing.
    """
    from mmreid.registry import MODELS
    from mmreid.utils import register_all_modules
    from mmreid.utils.config import load_config
    register_all_modules()
    tool = load_tool('tools/analysis_tools/modality_gap.py')
    model = MODELS.build(load_config(f'{REPO}/configs/mbn/{config}').model)
    names = tool.norm_layers(model)
    shared = [n for n in names if n.startswith('backbone.layer')]
    # ResNet-18: 4 stages x 2 basic blocks x 2 BNs, plus the downsample
    # BN of the first block of stages 2-4.
    assert len(shared) == 4 * 2 * 2 + 3 == 19
    assert len(set(shared)) == 19
    assert not any('.bns.' in n for n in names)
    assert len(names) - len(shared) == others
    assert 'head.bnneck' in names
