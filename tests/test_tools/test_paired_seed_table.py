"""What the comparing tools must refuse or print, pinned from their
definitions: the paired t interval over seeds, the paired table's cells
and counts, and the run records a comparison reads."""
import argparse
import json
import math
import subprocess

import pytest

from ..fixtures.finished_runs import fake_training, write_config
from ..fixtures.processes import load_tool

TOOL = 'tools/analysis_tools/compare_configs.py'
RUN_PLANS = 'tools/analysis_tools/run_plans.py'
RUN_RECORDS = 'tools/analysis_tools/run_records.py'
PAIRED_STATS = 'tools/analysis_tools/paired_stats.py'


def test_a_paired_interval_over_unequal_seed_counts_is_refused():
    """Three baseline seeds against two others: zipped, the third seed
    would be dropped and the rest paired as if they were all."""
    paired_stats = load_tool(PAIRED_STATS)
    with pytest.raises(ValueError, match='3 baseline values, 2 others'):
        paired_stats.paired_interval([1.0, 2.0, 3.0], [2.0, 4.0])
    with pytest.raises(ValueError, match='2 baseline values, 3 others'):
        paired_stats.paired_interval([1.0, 2.0], [2.0, 4.0, 5.0])


@pytest.mark.parametrize('bad', [float('nan'), float('-inf')])
def test_a_non_finite_baseline_value_is_refused(bad):
    """A NaN on the baseline's side, not only on the other's, is a clear
    error (the statistics module fails on it with an AttributeError, or
    gives a NaN interval)."""
    paired_stats = load_tool(PAIRED_STATS)
    with pytest.raises(ValueError, match=f'a value over seeds is {bad}'):
        paired_stats.paired_interval([bad, 1.0, 2.0], [2.0, 3.0, 4.0])


def test_the_t_quantile_needs_a_degree_of_freedom():
    """t(0.975; 0) does not exist (one value has no spread): refused, not
    answered with a number near the normal quantile."""
    paired_stats = load_tool(PAIRED_STATS)
    for df in (0, -1):
        with pytest.raises(ValueError, match='need df >= 1'):
            paired_stats.t975(df)


def paired(base, new, metrics, seeds=(0, 1, 2)):
    """The paired table of new.py against base.py, read under d3."""
    tool = load_tool(TOOL)
    args = argparse.Namespace(metrics=list(metrics), seeds=list(seeds))
    return tool.paired_table([('base.py', base), ('new.py', new)], 'base.py',
                             args, dict.fromkeys(['base.py', 'new.py'],
                                                 'd3')).splitlines()[-1]


def interval(diffs, t):
    """mean(d) +- t * sd(d) / sqrt(n), sd with n - 1, as printed."""
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean)**2 for d in diffs) / (n - 1))
    half = t * sd / math.sqrt(n)
    return f'{mean:+.1f} [{mean - half:+.1f}, {mean + half:+.1f}]'


def test_a_metric_with_one_seed_pair_is_a_gap_not_an_error():
    """mAP of new.py logged at one seed only: one pair has no interval, so
    its cell is '-' with 1 pair counted; R1's interval over three pairs is
    still printed (it used to be refused with the whole table)."""
    base = {s: {'d3/R1': 10.0 + s, 'd3/mAP': 1.0} for s in (0, 1, 2)}
    new = {s: {'d3/R1': v} for s, v in enumerate((13.0, 14.0, 15.0))}
    new[1]['d3/mAP'] = 2.0
    row = paired(base, new, ['R1', 'mAP'])
    # Differences 3, 3, 3: no spread.
    assert row == '| new.py | +3.0 [+3.0, +3.0] | - | R1 3, mAP 1 |'


def test_the_seeds_paired_column_counts_pairs_not_seeds():
    """new.py's seed 2 logged neither metric: every interval is over two
    pairs, and the column says 2 (not the 3 seeds asked for)."""
    base = {s: {'d3/R1': 10.0 + s, 'd3/mAP': 1.0} for s in (0, 1, 2)}
    new = {
        0: {
            'd3/R1': 13.0,
            'd3/mAP': 1.0
        },
        1: {
            'd3/R1': 15.0,
            'd3/mAP': 2.0
        },
        2: {
            'd3/mINP': 1.0
        }
    }
    t1 = math.tan(math.pi * (0.975 - 0.5))  # t(0.975; 1), the Cauchy's
    row = paired(base, new, ['R1', 'mAP'])
    assert row == (f'| new.py | {interval([3.0, 4.0], t1)} | '
                   f'{interval([0.0, 1.0], t1)} | 2 |')
    assert row == '| new.py | +3.5 [-2.9, +9.9] | +0.5 [-5.9, +6.9] | 2 |'


def test_training_lines_after_a_validation_are_not_an_evaluation(tmp_path):
    """A run killed in its last epoch logged training lines (loss, step =
    iteration) after its epoch-1 validation: the last evaluation is that
    validation, so the run is unfinished, not finished with a loss line
    whose step happens to be max_epochs."""
    run_records = load_tool(RUN_RECORDS)
    run_plans = load_tool(RUN_PLANS)
    config = write_config(tmp_path / 'a.py', max_epochs=2)
    work_dir = tmp_path / 'runs' / 'a_seed0'
    fake_training(work_dir, config, 0, {1: {'reid/mAP': 20.0}})
    scalars = work_dir / '20260101_000000' / 'vis_data' / 'scalars.json'
    with open(scalars, 'a') as f:
        f.write(json.dumps(dict(loss=0.5, lr=0.1, epoch=2, step=2)) + '\n')
    assert run_records.last_validation(str(work_dir)) == {
        'reid/mAP': 20.0,
        'step': 1
    }
    args = argparse.Namespace(
        work_dir=str(tmp_path / 'runs'),
        no_train=True,
        cfg_options=[],
        trust_retested=False)
    with pytest.raises(FileNotFoundError, match='epoch 1 of 2'):
        run_plans.run(config, 0, args)


@pytest.mark.parametrize('train_cfg', [
    dict(by_epoch=True),
    dict(type='EpochBasedTrainLoop', max_epochs='8'),
    dict(type='IterBasedTrainLoop', max_iters=None)
])
def test_a_final_step_that_is_no_number_is_refused(train_cfg):
    """Without an integer max_epochs (max_iters) a run's end cannot be
    told: a clear error naming the key, not a KeyError or a run that can
    never be finished."""
    from mmengine.config import Config
    run_records = load_tool(RUN_RECORDS)
    logger = dict(log_metric_by_epoch='max_epochs' in train_cfg
                  or train_cfg.get('by_epoch', False))
    cfg = Config(
        dict(train_cfg=train_cfg, default_hooks=dict(logger=logger)))
    key = 'max_iters' if 'max_iters' in train_cfg else 'max_epochs'
    with pytest.raises(ValueError, match=f'a.py: train_cfg.{key} is '):
        run_records.final_step(cfg, 'a.py')


def test_a_list_setting_with_an_item_more_is_another_config():
    """A run whose pipeline has a transform more (or fewer) than the
    config compared was trained with another config: lists of other
    lengths differ, not only their common items."""
    from mmengine.config import Config
    run_records = load_tool(RUN_RECORDS)
    load = dict(type='LoadImageFromFile')
    here = Config(dict(train_pipeline=[load]))
    run = Config(dict(train_pipeline=[load, dict(type='RandomFlip')]))
    for a, b in ((here, run), (run, here)):
        differences = run_records.config_differences(a, b, tested=False)
        assert len(differences) == 1
        assert differences[0].startswith('train_pipeline: ')


def test_a_seed_given_twice_is_refused():
    """--seeds 0 0 1 is two runs, not three: seed 0 counted twice would
    narrow every interval by a degree of freedom that is not there."""
    tool = load_tool(TOOL)
    with pytest.raises(SystemExit):
        tool.parse_args(['a.py', '--seeds', '0', '0', '1'])


def test_a_training_that_ends_unfinished_is_an_error(tmp_path, monkeypatch):
    """A training that exits 0 but leaves no final validation is an error
    naming the work dir, not a run of no metrics."""
    run_plans = load_tool(RUN_PLANS)
    config = write_config(tmp_path / 'a.py', max_epochs=2)
    work_dir = tmp_path / 'runs' / 'a_seed0'

    def training(cmd, **kwargs):
        fake_training(work_dir, config, 0, {1: {'reid/mAP': 20.0}})

    monkeypatch.setattr(subprocess, 'run', training)
    args = argparse.Namespace(
        work_dir=str(tmp_path / 'runs'),
        no_train=False,
        cfg_options=[],
        trust_retested=False)
    with pytest.raises(RuntimeError, match='a_seed0: unfinished.*after '
                       'training'):
        run_plans.run(config, 0, args)


def test_a_check_hook_in_both_places_is_not_moved_over_the_default():
    """Only a check hook the default_hooks lack is taken as moved there:
    a config with the hook in default_hooks and a second in custom_hooks
    is not the run that had only the latter's settings."""
    from mmengine.config import Config
    run_records = load_tool(RUN_RECORDS)
    here = Config(
        dict(
            default_hooks=dict(
                setup_check=dict(type='TrainSetupCheckHook', strict=True)),
            custom_hooks=[dict(type='TrainSetupCheckHook', strict=False)]))
    run = Config(
        dict(
            default_hooks=dict(
                setup_check=dict(type='TrainSetupCheckHook', strict=False))))
    assert run_records.config_differences(here, run, tested=False) != []


def test_a_seed_pair_with_one_test_set_unknown_is_refused():
    """The baseline's seed 0 logs 5265 queries under d3, the other's seed
    0 logs no count (a metric of one's own, a log of another tool): their
    test sets cannot be compared, so the seed is not paired silently."""
    tool = load_tool(TOOL)
    base = {s: {'d3/R1': 1.0 + s, 'd3/num_query': 5265} for s in (0, 1)}
    new = {s: {'d3/R1': 3.0 + s} for s in (0, 1)}
    args = argparse.Namespace(metrics=['R1'], seeds=[0, 1])
    with pytest.raises(ValueError, match=r'new.py \(seed 0\) was evaluated '
                       r'on a test set of unknown size \(no d3/num_query'):
        tool.paired_table([('base.py', base), ('new.py', new)], 'base.py',
                          args, dict.fromkeys(['base.py', 'new.py'], 'd3'))


def test_seeds_of_one_config_with_and_without_a_test_set_are_refused():
    """Seed 1 logs no count where seeds 0 and 2 log 5265: a mean over the
    three could mix test sets, and nothing can tell."""
    run_targets = load_tool('tools/analysis_tools/run_targets.py')
    runs = {
        0: {'d3/R1': 1.0, 'd3/num_query': 5265},
        1: {'d3/R1': 2.0},
        2: {'d3/R1': 3.0, 'd3/num_query': 5265},
        3: {'d0/R1': 4.0},  # no d3 at all: not read under d3
    }
    with pytest.raises(ValueError, match=r'seeds \[1\] log no test set '
                       r'count \(d3/num_query\)'):
        run_targets.one_test_set(runs, 'd3', 'new.py')
    del runs[1]
    assert run_targets.one_test_set(runs, 'd3', 'new.py') == {0: 5265, 2: 5265}
    assert run_targets.one_test_set({1: {'d3/R1': 2.0}}, 'd3', 'new.py') == {}


def test_two_sides_pair_only_when_both_or_neither_log_their_test_sets():
    """gap_effect and style_decomposition pair two sides' seeds: one side
    with counts and one without cannot be checked, so it is refused."""
    run_targets = load_tool('tools/analysis_tools/run_targets.py')
    with pytest.raises(ValueError, match='a_mbn logs the size of its test '
                       'set, a_bn does not'):
        run_targets.check_paired_test_sets(('a_bn', 'sysu', {}),
                                           ('a_mbn', 'sysu', {0: 3803}))
    run_targets.check_paired_test_sets(('a_bn', 'sysu', {}),
                                       ('a_mbn', 'sysu', {}))
    run_targets.check_paired_test_sets(('a_bn', 'sysu', {0: 3803}),
                                       ('a_mbn', 'sysu', {0: 3803, 1: 3803}))
