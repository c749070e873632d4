import argparse
import json
import pathlib
import subprocess
import sys

import pytest

from ..fixtures.finished_runs import (fake_test, fake_training, finished_run,
                                      write_config)
from ..fixtures.processes import load_tool

TOOL = 'tools/analysis_tools/compare_configs.py'
#: The modules the tool reads and trains runs with, beside it.
RUN_PLANS = 'tools/analysis_tools/run_plans.py'
RUN_RECORDS = 'tools/analysis_tools/run_records.py'
RUN_TARGETS = 'tools/analysis_tools/run_targets.py'
PAIRED_STATS = 'tools/analysis_tools/paired_stats.py'


def test_reads_the_last_validation_of_the_latest_run(tmp_path):
    run_records = load_tool(RUN_RECORDS)
    run_targets = load_tool(RUN_TARGETS)
    for stamp, r1 in (('20260101_000000', 10.0), ('20260102_000000', 30.0)):
        folder = tmp_path / stamp / 'vis_data'
        folder.mkdir(parents=True)
        records = [
            dict(loss=1.0, epoch=1),
            {
                'reid/R1': r1 - 5,
                'reid/mAP': 1.0
            },
            dict(loss=0.5, epoch=2),
            {
                'reid/R1': r1,
                'reid/mAP': 2.0,
                'reid/num_query': 7
            },
        ]
        (folder / 'scalars.json').write_text('\n'.join(
            json.dumps(r) for r in records))
    metrics = run_records.last_validation(str(tmp_path))
    assert run_targets.pick(metrics, 'R1') == 30.0
    assert run_targets.pick(metrics, 'mAP') == 2.0
    assert run_targets.pick(metrics, 'mINP') is None
    assert run_records.last_validation(str(tmp_path / 'missing')) == {}


def test_reads_a_retested_checkpoint(tmp_path):
    # tools/test.py CONFIG CKPT --work-dir DIR writes <stamp>/<stamp>.json
    # (one record): a checkpoint re-tested on another test set is read
    # like a finished run, and the latest evaluation wins.
    run_records = load_tool(RUN_RECORDS)
    run_targets = load_tool(RUN_TARGETS)
    train = tmp_path / '20260101_000000' / 'vis_data'
    train.mkdir(parents=True)
    (train / 'scalars.json').write_text(json.dumps({'d3/R1': 10.0}))
    (train / '20260101_000000.json').write_text(json.dumps({'loss': 1.0}))
    assert run_targets.pick(
        run_records.last_validation(str(tmp_path)), 'R1', 'd3') == 10.0
    test = tmp_path / '20260105_000000'
    test.mkdir()
    (test / '20260105_000000.json').write_text(
        json.dumps({
            'd3/R1': 7.5,
            'd3/num_query': 5210
        }))
    metrics = run_records.last_validation(str(tmp_path))
    assert run_targets.pick(metrics, 'R1', 'd3') == 7.5
    assert metrics['d3/num_query'] == 5210
    # A test-only work dir (no training logs) is read too.
    only = tmp_path / 'only' / '20260105_000000'
    only.mkdir(parents=True)
    (only / '20260105_000000.json').write_text(json.dumps({'sysu/R1': 3.0}))
    assert run_targets.pick(
        run_records.last_validation(str(tmp_path / 'only')), 'R1') == 3.0


def test_t_quantiles_match_the_tables():
    paired_stats = load_tool(PAIRED_STATS)
    # Textbook two-sided 95 % values of Student's t (3 decimals).
    for df, value in ((1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228),
                      (30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980)):
        assert abs(paired_stats.t975(df) - value) < 5e-4, df


def test_t_quantiles_are_exact():
    """The 3-decimal table moved the last printed digit of about 1 % of
    the intervals (df 26: 2.056 for 2.055529). Closed forms: df = 1 is
    the Cauchy's tan(pi (p - 1/2)); df = 2, (2p - 1) / sqrt(2 p (1 - p));
    df = 4, 2 sqrt(q - 1) with q = cos(acos(sqrt(a)) / 3) / sqrt(a),
    a = 4 p (1 - p); and the normal quantile as df grows."""
    import math
    paired_stats = load_tool(PAIRED_STATS)
    p = 0.975
    assert paired_stats.t975(1) == pytest.approx(
        math.tan(math.pi * (p - 0.5)), rel=1e-12)
    assert paired_stats.t975(2) == pytest.approx(
        (2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-12)
    a = 4 * p * (1 - p)
    q = math.cos(math.acos(math.sqrt(a)) / 3) / math.sqrt(a)
    assert paired_stats.t975(4) == pytest.approx(
        2 * math.sqrt(q - 1), rel=1e-12)
    assert paired_stats.t975(10**7) == pytest.approx(1.959963985, rel=1e-6)
    assert [round(paired_stats.t975(df), 6)
            for df in (26, 30)] == [2.055529, 2.042272]


def test_paired_interval_from_the_definition():
    paired_stats = load_tool(PAIRED_STATS)
    base, other = [10.0, 12.0, 11.0], [13.0, 14.0, 15.0]
    # Differences 3, 2, 4: mean 3, sample variance ((0 + 1 + 1) / 2) = 1,
    # half width t(0.975; 2) * 1 / sqrt(3).
    mean, low, high = paired_stats.paired_interval(base, other)
    half = 0.95 / (2 * 0.975 * 0.025)**0.5 / 3**0.5  # t(0.975; 2) exact
    assert mean == 3.0
    assert abs(low - (3 - half)) < 1e-9 and abs(high - (3 + half)) < 1e-9
    # Pairing matters: the same values with the seeds shuffled differ.
    assert paired_stats.paired_interval(base, [15.0, 14.0, 13.0])[2] - \
        paired_stats.paired_interval(base, [15.0, 14.0, 13.0])[1] > high - low
    with pytest.raises(ValueError, match='two seeds'):
        paired_stats.paired_interval([1.0], [2.0])


def test_baseline_table_with_targets(tmp_path, monkeypatch, capsys):
    tool = load_tool(TOOL)
    base = write_config(tmp_path / 'base.py')
    new = write_config(tmp_path / 'new.py')
    runs = tmp_path / 'runs'
    for seed, (a, b) in enumerate(((10.0, 13.0), (12.0, 14.0), (11.0, 15.0))):
        finished_run(runs / f'base_seed{seed}', base, seed, {
            'd3/R1': a,
            'd0/R1': 50.0,
            'd3/mAP': 1.0
        })
        finished_run(runs / f'new_seed{seed}', new, seed, {
            'd3/R1': b,
            'd0/R1': 50.0 + seed,
            'd3/mAP': 1.0
        })
    monkeypatch.setattr(sys, 'argv', [
        'compare_configs.py', new, '--baseline', base, '--seeds', '0', '1',
        '2', '--work-dir',
        str(runs), '--metrics', 'R1', 'mAP', '--target', 'd3', '--out',
        str(tmp_path / 'tables' / 'table.md')
    ])
    tool.main()
    out = capsys.readouterr().out
    assert (tmp_path / 'tables' / 'table.md').read_text() == out
    assert '| config (key d3/<metric>) | R1 mean ± std |' in out
    assert '| base.py | 11.0 ± 0.8 | 1.0 ± 0.0 |' in out
    assert '| config - base.py (key d3/<metric>) | ΔR1 [95 % CI] | ' \
        'ΔmAP [95 % CI] | seeds paired |' in out
    assert '| new.py | +3.0 [+0.5, +5.5] | +0.0 [+0.0, +0.0] | 3 |' in out


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_a_value_logged_as_nan_is_refused_naming_the_run(
        tmp_path, monkeypatch, capsys, bad):
    """A run that logged NaN (a metric of one's own) ended in a traceback
    of the statistics module (AttributeError: 'float' object has no
    attribute 'numerator')."""
    tool = load_tool(TOOL)
    base = write_config(tmp_path / 'base.py')
    new = write_config(tmp_path / 'new.py')
    runs = tmp_path / 'runs'
    for seed in (0, 1, 2):
        finished_run(runs / f'base_seed{seed}', base, seed, {
            'd3/R1': 10.0 + seed,
            'd3/mINP': 5.0
        })
        finished_run(runs / f'new_seed{seed}', new, seed, {
            'd3/R1': 12.0 + seed,
            'd3/mINP': bad if seed == 1 else 6.0
        })
    monkeypatch.setattr(sys, 'argv', [
        'compare_configs.py', new, '--baseline', base, '--seeds', '0', '1',
        '2', '--work-dir',
        str(runs), '--metrics', 'R1', 'mINP', '--no-train'
    ])
    with pytest.raises(
            SystemExit,
            match=f'error: new.py, seed 1: d3/mINP was logged as {bad}'):
        tool.main()
    assert capsys.readouterr().out == ''
    paired_stats = load_tool(PAIRED_STATS)
    with pytest.raises(ValueError, match=f'a value over seeds is {bad}'):
        paired_stats.paired_interval([1.0, 2.0], [bad, 3.0])
    with pytest.raises(ValueError, match=f'a value over seeds is {bad}'):
        paired_stats.mean_cell([1.0, bad], 2)


def multi_target(*names, **loop):
    """Config lines of a multi-target validation over ``names`` (what
    tells compare_configs which prefix is the mean over targets)."""
    targets = ', '.join(
        f"dict(name={name!r}, evaluator=dict(type='ReIDMetric'))"
        for name in names)
    options = ''.join(f', {k}={v!r}' for k, v in loop.items())
    return (f"val_cfg = dict(type='MultiTargetValLoop', targets=[{targets}]"
            f'{options})\n')


def v2_runs(tmp_path, seeds=(0, 1, 2)):
    """Finished runs of base.py and new.py with two targets, d3 and d0
    (d0 first in the logs, as SynthReID v2 logs d0-d3style first)."""
    base = write_config(tmp_path / 'base.py', extra=multi_target('d0', 'd3'))
    new = write_config(tmp_path / 'new.py', extra=multi_target('d0', 'd3'))
    runs = tmp_path / 'runs'
    for seed in seeds:
        for config, d3 in ((base, 10.0 + seed), (new, 13.0 + 2 * seed)):
            name = config[:-3].rsplit('/', 1)[-1]
            finished_run(
                runs / f'{name}_seed{seed}', config, seed, {
                    'd0/R1': 50.0 - seed,
                    'd0/num_query': 5210,
                    'd3/R1': d3,
                    'd3/num_query': 5265
                })
    return base, new, runs


def compare(tool, monkeypatch, *argv):
    monkeypatch.setattr(sys, 'argv', ['compare_configs.py', *map(str, argv)])
    tool.main()


def test_several_targets_need_a_target(tmp_path, monkeypatch, capsys):
    """Runs with several targets (SynthReID v2: d3, d3-d0style, d0,
    d0-d3style, mean) used to be read at the first key of the log, with
    no target named anywhere; now --target is required, and the error
    lists the targets."""
    tool = load_tool(TOOL)
    base, new, runs = v2_runs(tmp_path)
    monkeypatch.setattr(subprocess, 'run', no_training)
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, new, '--baseline', base, '--work-dir', runs,
                '--no-train', '--metrics', 'R1')
    message = str(info.value)
    assert 'base.py (seed 0)' in message
    assert '2 targets (d0, d3); give --target' in message
    compare(tool, monkeypatch, new, '--baseline', base, '--work-dir', runs,
            '--no-train', '--metrics', 'R1', '--target', 'd0')
    out = capsys.readouterr().out
    assert '| config (key d0/<metric>) | R1 mean ± std |' in out
    assert '| base.py | 49.0 ± 0.8 |' in out


def test_a_mistyped_target_is_an_error(tmp_path, monkeypatch):
    """--target D3 used to print a table of '-' with 0 seeds and exit 0."""
    tool = load_tool(TOOL)
    base, new, runs = v2_runs(tmp_path)
    monkeypatch.setattr(subprocess, 'run', no_training)
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, new, '--baseline', base, '--work-dir', runs,
                '--no-train', '--target', 'D3')
    assert ("no target 'D3' in its last evaluation; it has 2 targets "
            '(d0, d3)') in str(info.value)


def test_the_mean_over_targets_is_not_listed_as_a_target():
    """SynthReID v2 runs listed 'mean' among their targets ('5 targets
    (d0, d0-d3style, d3, d3-d0style, mean)'); it is the mean over the
    others (no num_query of its own), not a target."""
    run_targets = load_tool(RUN_TARGETS)
    metrics = {'mean/R1': 30.0}
    for target in ('d0', 'd0-d3style', 'd3', 'd3-d0style'):
        metrics.update({f'{target}/R1': 30.0, f'{target}/num_query': 100})
    with pytest.raises(ValueError) as info:
        run_targets.run_target(
            metrics, where='run', hint='give --target', means=('mean', ))
    assert str(info.value) == (
        'run: its metrics are of 4 targets (d0, d0-d3style, d3, '
        'd3-d0style) and their mean over targets (mean; a summary, not a '
        'number to report); give --target')
    listed = r'it has 4 targets \(d0, d0-d3style, d3, d3-d0style\) and'
    with pytest.raises(ValueError, match=listed):
        run_targets.run_target(metrics, 'D3', means=('mean', ))


def test_runs_on_other_test_sets_are_not_paired(tmp_path, monkeypatch, capsys):
    """A baseline evaluated on one test set and a config on another (a
    visible d3 run against a SynthReID-vi run: the audit's ΔR1 +7.7
    [+6.6, +8.8]) are not paired: other keys, or the same key with
    another number of queries (v2 and v2.1)."""
    tool = load_tool(TOOL)
    monkeypatch.setattr(subprocess, 'run', no_training)
    base = write_config(tmp_path / 'base.py')
    vi = write_config(tmp_path / 'vi.py')
    old = write_config(tmp_path / 'old.py')
    runs = tmp_path / 'runs'
    for seed in (0, 1):
        finished_run(runs / f'base_seed{seed}', base, seed, {
            'd3/R1': 1.0 + seed,
            'd3/num_query': 5265
        })
        finished_run(runs / f'vi_seed{seed}', vi, seed, {
            'sysu/R1': 9.0 + seed,
            'sysu/num_query': 5196
        })
        finished_run(runs / f'old_seed{seed}', old, seed, {
            'd3/R1': 3.0 + 2 * seed,
            'd3/num_query': 2102
        })
    common = [
        '--work-dir', runs, '--no-train', '--metrics', 'R1', '--seeds', 0, 1
    ]
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, vi, '--baseline', base, *common)
    assert "vi.py is read under 'sysu', the baseline" in str(info.value)
    assert 'different test sets are not paired' in str(info.value)
    # Without --baseline both are tabulated, each under its own key.
    compare(tool, monkeypatch, base, vi, *common)
    out = capsys.readouterr().out
    assert '| config (key <target>/<metric>, target per row) |' in out
    assert '| base.py (d3) | 1.5 ± 0.5 |' in out
    assert '| vi.py (sysu) | 9.5 ± 0.5 |' in out
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, old, '--baseline', base, *common)
    assert 'old.py (seed 0) was evaluated on 2102 queries (d3/num_query)' \
        ', the baseline' in str(info.value)


def test_one_seed_has_no_spread(tmp_path, monkeypatch, capsys):
    """One seed is 'n=1': it used to be '11.0 ± 0.0', a spread of zero."""
    tool = load_tool(TOOL)
    monkeypatch.setattr(subprocess, 'run', no_training)
    base, new, runs = v2_runs(tmp_path)
    compare(tool, monkeypatch, base, new, '--work-dir', runs, '--no-train',
            '--target', 'd3', '--metrics', 'R1', '--seeds', 1)
    assert '| base.py | 11.0 (n=1) | 11.0 |' in capsys.readouterr().out


def partial_runs(tmp_path):
    """base.py and new.py at seeds 0-2 on d3; new.py logged no mAP at seed
    2."""
    base = write_config(tmp_path / 'base.py')
    new = write_config(tmp_path / 'new.py')
    runs = tmp_path / 'runs'
    for seed in (0, 1, 2):
        metrics = {'d3/R1': 13.0 + 2 * seed, 'd3/mAP': 1.0 + seed}
        if seed == 2:
            del metrics['d3/mAP']
        finished_run(runs / f'new_seed{seed}', new, seed, metrics)
        finished_run(runs / f'base_seed{seed}', base, seed, {
            'd3/R1': 10.0 + seed,
            'd3/mAP': 1.0
        })
    return runs


def test_seeds_are_counted_per_metric(tmp_path, monkeypatch, capsys):
    """The seeds column was the largest count over the metrics (3 for a
    mAP interval of 2 pairs); a mean over fewer seeds than asked said
    nothing, and a missing per-seed value was left out of 'R1/mAP'."""
    tool = load_tool(TOOL)
    monkeypatch.setattr(subprocess, 'run', no_training)
    runs = partial_runs(tmp_path)
    compare(tool, monkeypatch, tmp_path / 'new.py', '--baseline',
            tmp_path / 'base.py', '--work-dir', runs, '--no-train', '--target',
            'd3', '--metrics', 'R1', 'mAP')
    out = capsys.readouterr().out
    assert '| new.py | 15.0 ± 1.6 | 1.5 ± 0.5 (n=2) | 13.0/1.0; ' \
        '15.0/2.0; 17.0/- |' in out
    assert out.rstrip().endswith('| R1 3, mAP 2 |')


def test_a_metric_no_run_reports_is_refused(tmp_path, monkeypatch, capsys):
    """A misspelt --metrics name (map, Rank5) filled its columns with '-',
    wrote them to --out and exited 0; now it is refused with the metric
    names the runs report. One that only some runs lack stays a '-'."""
    tool = load_tool(TOOL)
    monkeypatch.setattr(subprocess, 'run', no_training)
    runs = partial_runs(tmp_path)
    out = tmp_path / 'table.md'
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, tmp_path / 'new.py', '--baseline',
                tmp_path / 'base.py', '--work-dir', runs, '--no-train',
                '--target', 'd3', '--metrics', 'R1', 'map', 'Rank5', '--out',
                out)
    message = str(info.value)
    assert message.startswith('error: --metrics map Rank5: no run reports '
                              'them')
    assert message.endswith('the runs report R1, mAP')
    assert not out.exists()
    # mAP: new.py lacks it at seed 2 only.
    compare(tool, monkeypatch, tmp_path / 'new.py', '--work-dir', runs,
            '--no-train', '--target', 'd3', '--metrics', 'R1', 'mAP')
    assert '15.0/2.0; 17.0/- |' in capsys.readouterr().out


def test_a_default_metric_no_run_reports_is_a_gap(tmp_path, monkeypatch,
                                                  capsys):
    """Without --metrics the table has the default R1, R5, mAP and mINP,
    which not every protocol logs: runs that report R1 and mAP only give
    '-' columns for R5 and mINP, not a refusal (only names given with
    --metrics are refused when no run reports them)."""
    tool = load_tool(TOOL)
    monkeypatch.setattr(subprocess, 'run', no_training)
    runs = partial_runs(tmp_path)
    compare(tool, monkeypatch, tmp_path / 'new.py', tmp_path / 'base.py',
            '--work-dir', runs, '--no-train', '--target', 'd3')
    out = capsys.readouterr().out
    assert '| R1 mean ± std | R5 mean ± std | mAP mean ± std | ' \
        'mINP mean ± std | R1/R5 per seed (0, 1, 2) |' in out
    # base.py: R1 10, 11, 12 (mean 11.0, population std 0.8), mAP 1.0.
    assert '| base.py | 11.0 ± 0.8 | - | 1.0 ± 0.0 | - | 10.0/-; 11.0/-; ' \
        '12.0/- |' in out


def fake_trainer(metrics_of):
    """A ``subprocess.run`` that leaves the finished run a training of
    ``cmd`` would: ``metrics_of(config, seed)`` in its ``--work-dir``."""

    def train(cmd, **kwargs):
        config = cmd[2]
        work_dir = pathlib.Path(cmd[cmd.index('--work-dir') + 1])
        seed = int(cmd[cmd.index('--cfg-options') + 1].split('=')[1])
        finished_run(work_dir, config, seed, metrics_of(config, seed))

    return train


def test_configs_of_one_file_name_in_two_folders(tmp_path, monkeypatch,
                                                 capsys):
    """a/tiny.py and c/tiny.py shared WORK_DIR/tiny_seed<S>: the second
    was refused as "trained with another config ... Give another
    --work-dir" (which does not help), and both rows would read tiny.py.
    Each now has its runs and its row under the shortest parent path that
    tells them apart; a config of a file name of its own keeps
    WORK_DIR/<name>_seed<S>."""
    tool = load_tool(TOOL)
    (tmp_path / 'a').mkdir()
    (tmp_path / 'c').mkdir()
    a = write_config(tmp_path / 'a' / 'tiny.py', lr=0.1)
    c = write_config(tmp_path / 'c' / 'tiny.py', lr=0.2)
    other = write_config(tmp_path / 'c' / 'other.py', lr=0.3)
    r1 = {a: 10.0, c: 20.0, other: 30.0}
    monkeypatch.setattr(
        subprocess, 'run',
        fake_trainer(lambda config, seed: {'reid/R1': r1[config] + seed}))
    runs = tmp_path / 'runs'
    compare(tool, monkeypatch, a, c, other, '--baseline', a, '--seeds', 0, 1,
            '--work-dir', runs, '--metrics', 'R1')
    out = capsys.readouterr().out
    trained = sorted(
        p.relative_to(runs).as_posix() for p in runs.glob('**/*_seed*'))
    assert trained == [
        'a/tiny_seed0', 'a/tiny_seed1', 'c/tiny_seed0', 'c/tiny_seed1',
        'other_seed0', 'other_seed1'
    ]
    assert '| a/tiny.py | 10.5 ± 0.5 | 10.0; 11.0 |' in out
    assert '| c/tiny.py | 20.5 ± 0.5 | 20.0; 21.0 |' in out
    assert '| other.py | 30.5 ± 0.5 | 30.0; 31.0 |' in out
    assert '| config - a/tiny.py (key reid/<metric>) |' in out
    assert '| c/tiny.py | +10.0 [+10.0, +10.0] | 2 |' in out


def test_run_names_tell_configs_of_one_file_name_apart(tmp_path, monkeypatch):
    run_plans = load_tool(RUN_PLANS)
    monkeypatch.chdir(tmp_path)
    for folder in ('x/a', 'y/a', 'z'):
        (tmp_path / folder).mkdir(parents=True)
    names = run_plans.run_names([
        'x/a/tiny.py', 'y/a/tiny.py', 'z/tiny.py', 'z/other.py', './z/other.py'
    ])
    assert names == {
        'x/a/tiny.py': 'x/a/tiny',
        'y/a/tiny.py': 'y/a/tiny',
        'z/tiny.py': 'z/tiny',
        'z/other.py': 'other',
        './z/other.py': 'other'
    }


def test_a_config_is_one_row_however_spelt(tmp_path, monkeypatch, capsys):
    """--baseline ./base.py with base.py among the configs: the baseline
    used to be listed twice and paired with itself (+0.0 [+0.0, +0.0])."""
    tool = load_tool(TOOL)
    monkeypatch.setattr(subprocess, 'run', no_training)
    monkeypatch.chdir(tmp_path)
    runs = partial_runs(tmp_path)
    compare(tool, monkeypatch, 'new.py', 'base.py', '--baseline', './base.py',
            '--work-dir', runs, '--no-train', '--target', 'd3', '--metrics',
            'R1')
    out = capsys.readouterr().out
    assert [
        line.split('|')[1].strip() for line in out.splitlines()
        if line.startswith('| ')
    ] == [
        'config (key d3/<metric>)', 'new.py', 'base.py',
        'config - base.py (key d3/<metric>)', 'new.py'
    ]
    with pytest.raises(
            SystemExit, match=r'\./base.py is given twice \(also as '
            r'base.py\)'):
        compare(tool, monkeypatch, 'base.py', './base.py', '--work-dir', runs,
                '--no-train', '--target', 'd3')


def test_no_train_refuses_a_run_without_results(tmp_path, monkeypatch):
    """--no-train reads only: a missing or unfinished run (a timestamp
    folder with training scalars but no validation) is an error naming
    its work dir; nothing is trained."""
    tool = load_tool(TOOL)
    run_plans = load_tool(RUN_PLANS)
    config = write_config(tmp_path / 'a.py')
    finished_run(tmp_path / 'a_seed0', config, 0, {'d3/R1': 10.0})
    fake_training(tmp_path / 'a_seed1', config, 1, {})  # still training
    monkeypatch.setattr(subprocess, 'run', no_training)
    monkeypatch.setattr(sys, 'argv', [
        'compare_configs.py', config, '--seeds', '0', '1', '--work-dir',
        str(tmp_path), '--no-train'
    ])
    args = tool.parse_args()
    assert run_plans.run(config, 0, args)['d3/R1'] == 10.0
    for seed in (1, 2):
        with pytest.raises(
                FileNotFoundError, match=f'a_seed{seed}.*'
                'no-train'):
            run_plans.run(config, seed, args)


def test_no_run_is_to_be_trained_under_no_train(tmp_path, monkeypatch):
    """needs_training: a missing or unfinished run is trained unless
    --no-train is given; a finished one never is, nor one that run()
    refuses (of another config: run() names it). Under --no-train the
    check before training is not made (nothing is trained)."""
    tool = load_tool(TOOL)
    run_plans = load_tool(RUN_PLANS)
    config = write_config(tmp_path / 'a.py')
    other = write_config(tmp_path / 'other.py', lr=0.5)
    finished_run(tmp_path / 'a_seed0', config, 0, {'d3/R1': 10.0})
    fake_training(tmp_path / 'a_seed1', config, 1, {})  # still training
    finished_run(tmp_path / 'a_seed2', other, 2, {'d3/R1': 10.0})
    common = [config, '--seeds', '0', '--work-dir', str(tmp_path)]
    cases = [([], [False, True, False, True]), (['--no-train'], [False] * 4)]
    for no_train, expected in cases:
        monkeypatch.setattr(sys, 'argv',
                            ['compare_configs.py', *common, *no_train])
        args = tool.parse_args()
        assert [
            run_plans.needs_training(config, seed, args) for seed in range(4)
        ] == expected, no_train


def test_the_comparing_tools_share_the_run_options():
    """style_decomposition.py and gap_effect.py take the same run options
    as compare_configs.py (--no-train included)."""
    for path, positional in (
        ('tools/analysis_tools/style_decomposition.py', ['a.py', 'b.py']),
        ('tools/analysis_tools/gap_effect.py', ['a.py:b.py']),
    ):
        args = load_tool(path).parse_args(positional + [
            '--no-train', '--work-dir', 'w', '--seeds', '3', '4',
            '--cfg-options', 'k=v'
        ])
        assert (args.no_train, args.work_dir, args.seeds,
                args.cfg_options) == (True, 'w', [3, 4], ['k=v']), path


def test_a_repeated_seed_is_refused(capsys):
    """--seeds 0 0 0 1 is two runs, not four: counted as four, seed 0's
    values entered every mean three times and the interval had three
    degrees of freedom instead of one (the audit's -1.8 [-2.7, -0.9] from
    the runs of -2.1 [-9.1, +4.9]). Every tool sharing the option refuses
    it, naming the repeated seed."""
    for path, positional in (
        ('tools/analysis_tools/style_decomposition.py', ['a.py', 'b.py']),
        ('tools/analysis_tools/gap_effect.py', ['a.py:b.py']),
        (TOOL, ['a.py']),
    ):
        with pytest.raises(SystemExit):
            load_tool(path).parse_args(positional +
                                       ['--seeds', '0', '0', '0', '1'])
        err = capsys.readouterr().err
        assert 'seed(s) 0 given more than once' in err, (path, err)
        assert load_tool(path).parse_args(positional +
                                          ['--seeds', '1', '0']).seeds == \
            [1, 0]


def run_args(work_dir, no_train=True, cfg_options=(), trust_retested=False):
    return argparse.Namespace(
        work_dir=str(work_dir),
        no_train=no_train,
        cfg_options=list(cfg_options),
        trust_retested=trust_retested)


def no_training(*args, **kwargs):
    raise AssertionError(f'a training was started: {args}')


def test_an_unfinished_run_is_not_a_result(tmp_path, monkeypatch):
    """A run killed after an intermediate validation (epoch 1 of 2) is not
    tabulated with those metrics: --no-train refuses it, naming the work
    dir and how far it got; otherwise it is trained (again)."""
    run_plans = load_tool(RUN_PLANS)
    config = write_config(tmp_path / 'a.py', max_epochs=2)
    work_dir = tmp_path / 'runs' / 'a_seed0'
    fake_training(work_dir, config, 0, {1: {'reid/mAP': 20.0}})
    monkeypatch.setattr(subprocess, 'run', no_training)
    with pytest.raises(FileNotFoundError) as info:
        run_plans.run(config, 0, run_args(tmp_path / 'runs'))
    message = str(info.value)
    assert str(work_dir) in message and 'no-train' in message
    assert 'epoch 1 of 2' in message
    trained = []

    def training(cmd, **kwargs):
        trained.append(cmd)
        fake_training(
            work_dir,
            config,
            0, {
                1: {
                    'reid/mAP': 20.0
                },
                2: {
                    'reid/mAP': 30.0
                }
            },
            stamp='20260102_000000')

    monkeypatch.setattr(subprocess, 'run', training)
    metrics = run_plans.run(config, 0, run_args(tmp_path / 'runs', False))
    assert len(trained) == 1 and metrics['reid/mAP'] == 30.0


def test_a_run_of_another_config_is_refused(tmp_path, monkeypatch):
    """A finished run is reused only for the config (and --cfg-options,
    and seed) it was trained with: otherwise the error names the work dir
    and the settings that differ, and nothing is trained over it."""
    run_plans = load_tool(RUN_PLANS)
    config = write_config(tmp_path / 'a.py', lr=0.1)
    work_dir = tmp_path / 'runs' / 'a_seed0'
    finished_run(work_dir, config, 0, {'reid/mAP': 30.0})
    monkeypatch.setattr(subprocess, 'run', no_training)
    args = run_args(tmp_path / 'runs', no_train=False)
    assert run_plans.run(config, 0, args) == {'reid/mAP': 30.0, 'step': 2}
    # The config file changed since.
    write_config(tmp_path / 'a.py', lr=0.2)
    with pytest.raises(ValueError) as info:
        run_plans.run(config, 0, args)
    message = str(info.value)
    assert str(work_dir) in message
    assert 'optim_wrapper.optimizer.lr' in message
    assert '0.1' in message and '0.2' in message
    # Other --cfg-options than the run's.
    write_config(tmp_path / 'a.py', lr=0.1)
    with pytest.raises(
            ValueError, match=r'a_seed0.*optim_wrapper\.'
            r'optimizer\.momentum'):
        run_plans.run(
            config, 0,
            run_args(tmp_path / 'runs', False,
                     ['optim_wrapper.optimizer.momentum=0.9']))
    # The options a run was trained with are part of its config.
    other = tmp_path / 'runs' / 'a_seed1'
    finished_run(
        other,
        config,
        1, {'reid/mAP': 31.0},
        options={'optim_wrapper.optimizer.momentum': 0.9})
    assert run_plans.run(
        config, 1,
        run_args(tmp_path / 'runs', True,
                 ['optim_wrapper.optimizer.momentum=0.9']))['reid/mAP'] == 31.0
    with pytest.raises(ValueError, match='a_seed1.*momentum'):
        run_plans.run(config, 1, run_args(tmp_path / 'runs'))


def test_a_retested_checkpoint_must_be_the_final_one(tmp_path, monkeypatch):
    """A tools/test.py result in a work dir is read when it tested the
    run's final checkpoint in that work dir (with the same config; its
    seed does not matter), and refused when it tested another."""
    run_plans = load_tool(RUN_PLANS)
    config = write_config(tmp_path / 'a.py', max_epochs=2)
    monkeypatch.setattr(subprocess, 'run', no_training)
    work_dir = tmp_path / 'runs' / 'a_seed1'
    # The training that wrote the checkpoint (compared with the config
    # too), then the test.
    finished_run(work_dir, config, 1, {'d3/R1': 7.9})
    fake_test(work_dir, config, str(work_dir / 'epoch_2.pth'), {'d3/R1': 7.5})
    assert run_plans.run(config, 1, run_args(tmp_path / 'runs')) == \
        {'d3/R1': 7.5}
    # The same folder under another path (a link) is the same work dir.
    (tmp_path / 'link').symlink_to(tmp_path / 'runs')
    fake_test(
        work_dir,
        config,
        str(tmp_path / 'link' / 'a_seed1' / 'epoch_2.pth'), {'d3/R1': 7.0},
        stamp='20260105_000001')
    assert run_plans.run(config, 1, run_args(tmp_path / 'runs')) == \
        {'d3/R1': 7.0}
    fake_test(
        work_dir,
        config,
        str(work_dir / 'epoch_1.pth'), {'d3/R1': 5.0},
        stamp='20260106_000000')
    with pytest.raises(ValueError, match='a_seed1.*epoch_1.pth.*epoch_2'):
        run_plans.run(config, 1, run_args(tmp_path / 'runs'))
    # tools/test.py CONFIG a_seed0/epoch_2.pth --work-dir a_seed1 wrote
    # seed 0's result where seed 1's is read; it used to be tabulated as
    # seed 1 (only the file name epoch_2.pth was checked).
    fake_test(
        work_dir,
        config,
        'work_dirs/runs/a_seed0/epoch_2.pth', {'d3/R1': 6.0},
        stamp='20260107_000000')
    for trust in (False, True):
        with pytest.raises(
                ValueError,
                match="a_seed0/epoch_2.pth.*another run.*'a_seed0'"):
            run_plans.run(config, 1,
                          run_args(tmp_path / 'runs', True, (), trust))


def test_a_checkpoint_of_another_experiment_is_refused(tmp_path, monkeypatch,
                                                       capsys):
    """A test of <elsewhere>/a_seed1/epoch_2.pth was read as seed 1's
    result whatever trained it: audit S (xckpt) had SNR seed 1 read from
    /tmp/other_experiment_lr_x10/snr_r18_synthreid-v2_seed1/epoch_8.pth
    (R1 0.5 instead of 4.7). A checkpoint outside the run's work dir is
    now read only with --trust-retested, which says so."""
    tool = load_tool(TOOL)
    run_plans = load_tool(RUN_PLANS)
    config = write_config(tmp_path / 'a.py', max_epochs=2)
    monkeypatch.setattr(subprocess, 'run', no_training)
    work_dir = tmp_path / 'runs' / 'a_seed1'
    elsewhere = '/tmp/other_experiment_lr_x10/a_seed1/epoch_2.pth'
    fake_test(work_dir, config, elsewhere, {'d3/R1': 0.5})
    with pytest.raises(ValueError) as info:
        run_plans.run(config, 1, run_args(tmp_path / 'runs'))
    message = str(info.value)
    assert str(work_dir) in message and elsewhere in message
    assert 'outside this work dir' in message
    assert '--trust-retested' in message
    args = run_args(tmp_path / 'runs', trust_retested=True)
    assert run_plans.run(config, 1, args) == {'d3/R1': 0.5}
    assert f'reading the test (20260105_000000) of {elsewhere}' in \
        capsys.readouterr().err
    # The option is shared by the tools that read runs.
    assert tool.parse_args(['a.py', '--trust-retested']).trust_retested
    assert not tool.parse_args(['a.py']).trust_retested


def test_the_record_of_the_config(tmp_path, monkeypatch):
    """Without vis_data/config.py the config mmengine dumps into the work
    dir is the record of the latest run; with neither the run is refused.
    """
    run_plans = load_tool(RUN_PLANS)
    config = write_config(tmp_path / 'a.py')
    monkeypatch.setattr(subprocess, 'run', no_training)
    work_dir = tmp_path / 'runs' / 'a_seed0'
    finished_run(work_dir, config, 0, {'reid/mAP': 30.0}, record=False)
    assert run_plans.run(config, 0, run_args(tmp_path / 'runs'))['reid/mAP'] \
        == 30.0
    (work_dir / 'a.py').unlink()
    with pytest.raises(ValueError, match='a_seed0.*no record of'):
        run_plans.run(config, 0, run_args(tmp_path / 'runs'))


def test_iteration_based_runs(tmp_path, monkeypatch):
    """An iteration-based run is finished at train_cfg.max_iters, when its
    validations are logged by iteration; otherwise it cannot be told."""
    run_plans = load_tool(RUN_PLANS)
    monkeypatch.setattr(subprocess, 'run', no_training)
    by_iter = ("train_cfg = dict(_delete_=True, by_epoch=False, "
               "max_iters=100, val_interval=50)\n")
    logged = "default_hooks = dict(logger=dict(log_metric_by_epoch=False))\n"
    config = write_config(tmp_path / 'it.py', extra=by_iter + logged)
    fake_training(tmp_path / 'runs' / 'it_seed0', config, 0,
                  {50: {
                      'reid/mAP': 1.0
                  }})
    with pytest.raises(FileNotFoundError, match='iteration 50 of 100'):
        run_plans.run(config, 0, run_args(tmp_path / 'runs'))
    fake_training(tmp_path / 'runs' / 'it_seed1', config, 1, {
        50: {
            'reid/mAP': 1.0
        },
        100: {
            'reid/mAP': 2.0
        }
    })
    assert run_plans.run(config, 1, run_args(tmp_path / 'runs'))['reid/mAP'] \
        == 2.0
    config = write_config(tmp_path / 'it2.py', extra=by_iter)
    fake_training(tmp_path / 'runs' / 'it2_seed0', config, 0,
                  {0: {
                      'reid/mAP': 2.0
                  }})
    with pytest.raises(ValueError, match='log_metric_by_epoch=False'):
        run_plans.run(config, 0, run_args(tmp_path / 'runs'))
    config = write_config(
        tmp_path / 'own.py',
        extra="train_cfg = dict(_delete_=True, type='OwnLoop', "
        'max_epochs=2)\n')
    with pytest.raises(ValueError, match="own.py.*'OwnLoop'"):
        run_plans.run(config, 0, run_args(tmp_path / 'runs'))


def test_a_run_recorded_with_the_checks_in_custom_hooks_is_the_same_config():
    """The start-up check hooks moved from the base's custom_hooks to its
    default_hooks (same hooks, same order): a run recorded before is not
    of another config, and the other hooks still count."""
    from mmengine.config import Config
    run_records = load_tool(RUN_RECORDS)
    checks = [
        dict(type='TrainSetupCheckHook'),
        dict(type='FeatureProgressHook')
    ]
    now = Config(
        dict(
            default_hooks=dict(
                checkpoint=dict(type='CheckpointHook'),
                setup_check=dict(type='TrainSetupCheckHook'),
                feature_progress=dict(type='FeatureProgressHook')),
            custom_hooks=[dict(type='GMNDPWarmupHook')]))
    recorded = Config(
        dict(
            default_hooks=dict(checkpoint=dict(type='CheckpointHook')),
            custom_hooks=checks + [dict(type='GMNDPWarmupHook')]))
    assert run_records.config_differences(now, recorded, tested=False) == []
    now.pop('custom_hooks')
    recorded.custom_hooks = checks
    assert run_records.config_differences(now, recorded, tested=False) == []
    recorded.custom_hooks = checks + [dict(type='EmptyCacheHook')]
    assert run_records.config_differences(
        now, recorded, tested=False) == [
            "custom_hooks: unset here, [{'type': 'EmptyCacheHook'}] in the run"
        ]


def test_the_test_set_of_a_target_and_of_the_mean():
    """A target's test set is its number of queries; the mean over
    targets (MultiTargetValLoop's ``mean/``, no count of its own) is the
    mean over every other target, so its test set is theirs."""
    run_targets = load_tool(RUN_TARGETS)
    gmn = {
        'd3/R1': 5.0,
        'd3/num_query': 5265,
        'd3/mnet/R1': 6.0,
        'd3/mnet/num_query': 5265,
        'd0/R1': 40.0,
        'd0/num_query': 5210,
        'mean/R1': 22.5,
        'mean/mnet/R1': 23.0
    }
    means = ('mean', )
    assert run_targets.test_set(gmn, 'd3', means) == 5265
    assert run_targets.test_set(gmn, 'd3/mnet', means) == 5265
    assert run_targets.test_set(gmn, 'mean',
                                means) == (('d0', 5210), ('d3', 5265))
    assert run_targets.test_set(gmn, 'mean/mnet',
                                means) == (('d0', 5210), ('d3', 5265))
    # No count logged anywhere (nothing to tell), or none for a target
    # counted only per split: unknown, not a mean.
    assert run_targets.test_set({'d3/R1': 1.0, 'd0/R1': 2.0}, 'd3') is None
    assert run_targets.test_set(
        {
            'prid/split0/num_query': 9,
            'prid/R1': 1.0,
            'd3/num_query': 5
        }, 'prid') is None
    assert run_targets.test_set(gmn, None) is None


def mean_runs(tmp_path, targets_of_new):
    """base.py on four targets, new.py on ``targets_of_new`` (per seed),
    each with its ``mean/R1``."""
    tmp_path.mkdir(exist_ok=True)
    loop = multi_target('d3', 'd3-d0style', 'd0', 'd0-d3style')
    configs = {
        name: write_config(tmp_path / f'{name}.py', lr=lr, extra=loop)
        for name, lr in (('base', 0.1), ('new', 0.2))
    }
    counts = {'d3': 5265, 'd3-d0style': 5265, 'd0': 5210, 'd0-d3style': 5210}
    runs = tmp_path / 'runs'
    for seed in (0, 1):
        for name, targets in (('base', list(counts)), ('new',
                                                       targets_of_new[seed])):
            metrics = {}
            for i, t in enumerate(targets):
                metrics[f'{t}/R1'] = 10.0 * i + seed
                metrics[f'{t}/num_query'] = counts[t]
            metrics['mean/R1'] = sum(metrics[f'{t}/R1']
                                     for t in targets) / len(targets)
            finished_run(runs / f'{name}_seed{seed}', configs[name], seed,
                         metrics)
    return configs['base'], configs['new'], runs


def test_the_mean_over_targets_is_paired_on_its_targets_only(
        tmp_path, monkeypatch, capsys):
    """--target mean used to pair a mean over 4 targets with a mean over
    2 (audit outputs D2: '+4.0 [+4.0, +4.0]', exit 0): 'mean' has no
    num_query, so no test set was checked. Its test set is now the
    targets it averages, with their counts."""
    tool = load_tool(TOOL)
    monkeypatch.setattr(subprocess, 'run', no_training)
    common = [
        '--no-train', '--metrics', 'R1', '--seeds', 0, 1, '--target', 'mean'
    ]
    base, new, runs = mean_runs(tmp_path, [['d3', 'd0']] * 2)
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, new, '--baseline', base, '--work-dir', runs,
                *common)
    assert str(info.value) == (
        f'error: {new} (seed 0) was evaluated on the targets d0 (5210 '
        'queries), d3 (5265 queries) (mean averages them), the baseline '
        f'{base} on the targets d0 (5210 queries), d0-d3style (5210 '
        'queries), d3 (5265 queries), d3-d0style (5265 queries) (mean '
        'averages them): different test sets are not paired')
    # The seeds of one config, one mean over 4 targets and one over 2.
    four = ['d3', 'd3-d0style', 'd0', 'd0-d3style']
    base, new, runs = mean_runs(tmp_path / 'seeds', [four, ['d3', 'd0']])
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, new, '--work-dir', runs, *common)
    assert f'error: {new}: its runs were evaluated on different test ' \
        'sets (seed 0: the targets d0 (5210 queries), d0-d3style' \
        in str(info.value)
    assert 'seed 1: the targets d0 (5210 queries), d3 (5265 queries) ' \
        '(mean averages them))' in str(info.value)
    # The same targets and test sets are paired as before.
    base, new, runs = mean_runs(tmp_path / 'same', [four] * 2)
    compare(tool, monkeypatch, new, '--baseline', base, '--work-dir', runs,
            *common)
    assert '| new.py | +0.0 [+0.0, +0.0] | 2 |' in capsys.readouterr().out


def test_the_baseline_is_the_first_row(tmp_path, monkeypatch, capsys):
    """A --baseline not among the configs is tabulated, first; with one
    seed it is refused (a paired interval needs two)."""
    tool = load_tool(TOOL)
    monkeypatch.setattr(subprocess, 'run', no_training)
    runs = partial_runs(tmp_path)
    common = [
        '--work-dir', runs, '--no-train', '--target', 'd3', '--metrics', 'R1'
    ]
    compare(tool, monkeypatch, tmp_path / 'new.py', '--baseline',
            tmp_path / 'base.py', *common)
    rows = [
        line.split('|')[1].strip()
        for line in capsys.readouterr().out.splitlines()
        if line.startswith('| ')
    ]
    assert rows[:3] == ['config (key d3/<metric>)', 'base.py', 'new.py']
    with pytest.raises(SystemExit, match='--baseline needs two seeds'):
        compare(tool, monkeypatch, tmp_path / 'new.py', '--baseline',
                tmp_path / 'base.py', '--seeds', 0, *common)


def test_a_target_is_a_whole_prefix():
    """--target d3 is not d3-d0style: a run that logged only the latter
    has no d3."""
    tool = load_tool(TOOL)
    run_targets = load_tool(RUN_TARGETS)
    metrics = {'d3-d0style/R1': 1.0}
    with pytest.raises(ValueError, match="no target 'd3'"):
        run_targets.run_target(metrics, 'd3')
    assert run_targets.run_target(metrics, 'd3-d0style') == 'd3-d0style'
    # The seeds of one config read under one prefix.
    with pytest.raises(ValueError, match='different targets'):
        tool.check_targets([('a.py', {
            0: {
                'd3/R1': 1.0
            },
            1: {
                'd0/R1': 2.0
            }
        })], None)


def test_the_latest_stamp_is_the_last_evaluation(tmp_path, monkeypatch):
    """Runs are ordered by their timestamp folders, not by the order the
    file system lists them in."""
    run_records = load_tool(RUN_RECORDS)
    for stamp, r1 in (('20260101_000000', 1.0), ('20260102_000000', 2.0),
                      ('20260103_000000', 3.0)):
        (tmp_path / stamp).mkdir()
        (tmp_path / stamp / f'{stamp}.json').write_text(
            json.dumps({'d3/R1': r1}))
    listdir = run_records.os.listdir
    monkeypatch.setattr(run_records.os, 'listdir',
                        lambda path: sorted(listdir(path), reverse=True))
    assert [s for s, _, _ in run_records.evaluations(str(tmp_path))
            ] == ['20260101_000000', '20260102_000000', '20260103_000000']
    assert run_records.last_validation(str(tmp_path)) == {'d3/R1': 3.0}


def test_what_a_recorded_config_may_differ_in(tmp_path):
    """A resumed run's load_from (its own checkpoint), a test's seed and
    an empty custom_hooks beside the drawing hooks are no difference; a
    training's seed and load_strict=False are."""
    from mmengine.config import Config
    run_records = load_tool(RUN_RECORDS)
    here = dict(randomness=dict(seed=0), custom_hooks=[])
    assert run_records.config_differences(
        Config(here),
        Config(dict(here, resume=True, load_from='e.pth')),
        tested=False) == []
    drawn = dict(
        randomness=dict(seed=5),
        custom_hooks=[dict(type='RankedListHook')],
        load_from='e.pth')
    assert run_records.config_differences(
        Config(here), Config(drawn), tested=True) == []
    assert run_records.config_differences(
        Config(here),
        Config(dict(here, randomness=dict(seed=1))),
        tested=False) == ['randomness.seed: 0 here, 1 in the run']
    assert run_records.config_differences(
        Config(here), Config(dict(here, load_strict=False)),
        tested=False) == ['load_strict: unset here, False in the run']
    # The log lines' writer: a run recorded before default_runtime named
    # ReIDLogProcessor logged the same metrics.
    assert run_records.config_differences(
        Config(dict(here, log_processor=dict(type='ReIDLogProcessor'))),
        Config(dict(here, log_processor=dict(by_epoch=True))),
        tested=False) == []


def test_cfg_options_come_after_the_seed(tmp_path, monkeypatch):
    """The training command gives the seed, then --cfg-options (which may
    set the seed); the config expected of the run is merged in that order.
    """
    run_plans = load_tool(RUN_PLANS)
    config = write_config(tmp_path / 'a.py')
    options = ['randomness.seed=7', 'optim_wrapper.optimizer.lr=0.5']
    expected = run_plans.expected_config(config, 0, options)
    assert expected.randomness.seed == 7
    assert expected.optim_wrapper.optimizer.lr == 0.5
    started = []

    def training(cmd, **kwargs):
        started.append(cmd)
        finished_run(
            tmp_path / 'runs' / 'a_seed0',
            config,
            7, {'d3/R1': 1.0},
            options={'optim_wrapper.optimizer.lr': 0.5})

    monkeypatch.setattr(subprocess, 'run', training)
    assert run_plans.run(config, 0, run_args(tmp_path / 'runs', False,
                                             options))['d3/R1'] == 1.0
    [cmd] = started
    assert cmd[-3:] == ['randomness.seed=0', *options]


def test_an_earlier_run_needs_its_own_record(tmp_path):
    """The config dumped into the work dir is the record of the latest
    run only."""
    run_records = load_tool(RUN_RECORDS)
    config = write_config(tmp_path / 'a.py')
    work_dir = tmp_path / 'a_seed0'
    fake_training(
        work_dir, config, 0, {2: {
            'd3/R1': 1.0
        }}, stamp='20260101_000000')
    fake_training(
        work_dir,
        config,
        0, {2: {
            'd3/R1': 2.0
        }},
        stamp='20260102_000000',
        record=False)
    assert run_records.config_record(str(work_dir), '20260102_000000',
                                     config).randomness.seed == 0
    (work_dir / '20260101_000000' / 'vis_data' / 'config.py').unlink()
    with pytest.raises(ValueError, match='20260101_000000.*later run'):
        run_records.config_record(str(work_dir), '20260101_000000', config)


def test_an_iteration_based_run_retested(tmp_path, monkeypatch):
    """The final checkpoint of an iteration-based run is iter_<max_iters>.pth.
    """
    run_plans = load_tool(RUN_PLANS)
    monkeypatch.setattr(subprocess, 'run', no_training)
    config = write_config(
        tmp_path / 'it.py',
        extra='train_cfg = dict(_delete_=True, by_epoch=False, '
        'max_iters=100, val_interval=50)\n'
        'default_hooks = dict(logger=dict(log_metric_by_epoch=False))\n')
    work_dir = tmp_path / 'runs' / 'it_seed0'
    fake_training(work_dir, config, 0, {100: {'d3/R1': 3.0}})
    fake_test(work_dir, config, str(work_dir / 'iter_100.pth'), {'d3/R1': 4.0})
    assert run_plans.run(config, 0, run_args(tmp_path / 'runs')) == {
        'd3/R1': 4.0
    }


def test_every_seed_pair_is_checked_for_its_test_set():
    """Seed 1 of both configs logs its test set, seed 0 does not: the
    pair of seed 1 is still checked."""
    tool = load_tool(TOOL)
    base = {0: {'d3/R1': 1.0}, 1: {'d3/R1': 2.0, 'd3/num_query': 5265}}
    new = {0: {'d3/R1': 3.0}, 1: {'d3/R1': 4.0, 'd3/num_query': 2102}}
    args = argparse.Namespace(metrics=['R1'], seeds=[0, 1])
    with pytest.raises(
            ValueError, match=r'new.py \(seed 1\) was evaluated on 2102'):
        tool.paired_table([('base.py', base), ('new.py', new)], 'base.py',
                          args, dict.fromkeys(['base.py', 'new.py'], 'd3'))


@pytest.fixture
def own_metric():
    """A user's metric, registered as a config names it: prefix 'my',
    logs a count 'n' (no num_* key)."""
    from mmengine.evaluator import BaseMetric

    from mmreid.registry import METRICS

    class CmpCountMetric(BaseMetric):
        default_prefix = 'my'

        def process(self, data_batch, data_samples):
            pass

        def compute_metrics(self, results):
            return dict(n=len(results))

    METRICS.register_module(module=CmpCountMetric, force=True)
    yield 'CmpCountMetric'
    METRICS._module_dict.pop('CmpCountMetric')


TWO_METRICS = ("val_evaluator = [dict(type='ReIDMetric'), "
               "dict(type='{}')]\n")


def test_a_second_metric_is_not_a_mean_over_targets(tmp_path, monkeypatch,
                                                    capsys, own_metric):
    """val_evaluator = [ReIDMetric, a user's metric 'my'] trained every run,
    then stopped: 'its metrics are of 1 targets (reid) and their mean over
    targets (my; ...)' (audit 3, finding 5). 'my' is a second metric of
    the one target, and the mean over targets is only the multi-target
    loop's own prefix. The prefixes are known from the config, so the
    question comes before any run is trained."""
    tool = load_tool(TOOL)
    monkeypatch.setattr(subprocess, 'run', no_training)
    configs = [
        write_config(
            tmp_path / f'{name}.py',
            lr=lr,
            extra=TWO_METRICS.format(own_metric))
        for name, lr in (('gap', 0.1), ('maxavg', 0.2))
    ]
    runs = tmp_path / 'runs'
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, *configs, '--work-dir', runs, '--seeds', 0,
                1)
    assert str(info.value) == (
        f'error: {configs[0]} (its val_cfg and val_evaluator, before '
        'training): its metrics are of 2 prefixes (my, reid); give '
        '--target with one of them')
    with pytest.raises(SystemExit, match="no target 'd3'"):
        compare(tool, monkeypatch, *configs, '--work-dir', runs, '--target',
                'd3')
    # Finished runs are read without training, and asked the same.
    for seed in (0, 1):
        for config, r1 in zip(configs, (6.5, 10.9)):
            name = config[:-3].rsplit('/', 1)[-1]
            finished_run(runs / f'{name}_seed{seed}', config, seed, {
                'reid/R1': r1 + seed,
                'reid/num_query': 23,
                'my/n': 71
            })
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, *configs, '--work-dir', runs, '--seeds', 0,
                1)
    assert str(info.value) == (
        f'error: {configs[0]} (seed 0): its metrics are of 2 prefixes (my, '
        'reid); give --target with one of them')
    compare(tool, monkeypatch, *configs, '--work-dir', runs, '--seeds', 0, 1,
            '--metrics', 'R1', '--target', 'reid')
    out = capsys.readouterr().out
    assert '| config (key reid/<metric>) | R1 mean ± std |' in out
    assert '| gap.py | 7.0 ± 0.5 |' in out


def test_a_target_with_several_metrics_is_read_by_its_metric(
        tmp_path, monkeypatch, capsys, own_metric):
    """In a multi-target run a target with several metrics logs
    'src_d1/reid/R1' and 'src_d1/my/n': '--target src_d1' read
    'src_d1/R1', which is not there, and printed a table of '-' (exit 0).
    It is refused, before training too, naming the keys to read."""
    tool = load_tool(TOOL)
    monkeypatch.setattr(subprocess, 'run', no_training)
    loop = ("val_cfg = dict(type='MultiTargetValLoop', targets=["
            "dict(name='src_d0', evaluator=dict(type='ReIDMetric')), "
            "dict(name='src_d1', evaluator=[dict(type='ReIDMetric'), "
            f"dict(type='{own_metric}')])])\n")
    config = write_config(tmp_path / 'multi.py', extra=loop)
    runs = tmp_path / 'runs'
    common = ['--work-dir', runs, '--seeds', 0, '--metrics', 'R1']
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, config, *common, '--target', 'src_d1')
    assert str(info.value) == (
        f"error: {config} (its val_cfg and val_evaluator, before "
        "training): 'src_d1' logs its keys beneath the prefixes of its "
        'metrics (src_d1/my, src_d1/reid), none of its own; give --target '
        'with one of them')
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, config, *common)
    assert ': its metrics are of 2 targets (src_d0, src_d1) and their ' \
        'mean over targets (mean; a summary' in str(info.value)
    finished_run(
        runs / 'multi_seed0', config, 0, {
            'src_d0/R1': 1.0,
            'src_d0/num_query': 5,
            'src_d1/reid/R1': 2.0,
            'src_d1/reid/num_query': 7,
            'src_d1/my/n': 71,
            'mean/reid/R1': 1.5
        })
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, config, *common, '--no-train', '--target',
                'src_d1')
    assert "'src_d1' logs its keys beneath the prefixes of its metrics " \
        '(src_d1/my, src_d1/reid)' in str(info.value)
    compare(tool, monkeypatch, config, *common, '--target', 'src_d1/reid')
    assert '| multi.py | 2.0 (n=1) |' in capsys.readouterr().out


def test_a_later_seed_to_train_is_checked_before_training(
        tmp_path, monkeypatch, own_metric):
    """Seed 0 finished, seed 1 to train: the config's target check runs
    before seed 1 is trained, as it does when seed 0 is to train."""
    tool = load_tool(TOOL)
    monkeypatch.setattr(subprocess, 'run', no_training)
    loop = ("val_cfg = dict(type='MultiTargetValLoop', targets=["
            "dict(name='src_d0', evaluator=dict(type='ReIDMetric')), "
            "dict(name='src_d1', evaluator=[dict(type='ReIDMetric'), "
            f"dict(type='{own_metric}')])])\n")
    config = write_config(tmp_path / 'multi.py', extra=loop)
    runs = tmp_path / 'runs'
    finished_run(
        runs / 'multi_seed0', config, 0, {
            'src_d0/R1': 1.0,
            'src_d1/reid/R1': 2.0,
            'src_d1/my/n': 71,
            'mean/reid/R1': 1.5
        })
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, config, '--work-dir', runs, '--seeds', 0, 1,
                '--metrics', 'R1', '--target', 'src_d1')
    assert str(info.value).startswith(
        f'error: {config} (its val_cfg and val_evaluator, before training)')


def test_the_mean_over_targets_is_the_loops_own_prefix():
    from mmengine.config import Config
    run_plans = load_tool(RUN_PLANS)

    def means(**cfg):
        return run_plans.loop_means(Config(cfg))

    targets = [dict(name='d3', evaluator=dict(type='ReIDMetric'))]
    assert means(
        val_cfg=dict(type='MultiTargetValLoop', targets=targets)) == ('mean', )
    assert means(
        val_cfg=dict(
            type='MultiTargetValLoop', targets=targets,
            aggregate_prefix='avg'),
        test_cfg=dict(type='MultiTargetTestLoop',
                      targets=targets)) == ('avg', 'mean')
    assert means(
        val_cfg=dict(
            type='MultiTargetValLoop', targets=targets,
            aggregate_prefix=None)) == ()
    # A single-target loop has no mean, whatever its metrics' prefixes.
    assert means(
        val_cfg=dict(type='ReIDValLoop'),
        val_evaluator=[
            dict(type='ReIDMetric'),
            dict(type='ReIDMetric', prefix='mean')
        ]) is None


def test_a_run_it_cannot_read_is_an_error_not_a_traceback(
        tmp_path, monkeypatch, capsys):
    """run() raises for a work dir of another config, a --no-train run
    that is missing and a training that failed (the tests above); main()
    used to let them out as tracebacks. It now ends as for its other
    errors: ``error: ...`` (exit status 1)."""
    import subprocess
    tool = load_tool(TOOL)
    config = write_config(tmp_path / 'a.py', lr=0.1)
    runs = tmp_path / 'runs'
    finished_run(runs / 'a_seed0', config, 0, {'reid/mAP': 30.0})
    finished_run(runs / 'a_seed1', config, 1, {'reid/mAP': 31.0})
    monkeypatch.setattr(subprocess, 'run', no_training)
    write_config(tmp_path / 'a.py', lr=0.2)  # the runs are of lr 0.1
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, config, '--seeds', '0', '1', '--work-dir',
                runs, '--no-train')
    message = str(info.value)
    assert message.startswith(f'error: {runs / "a_seed0"}: its run ')
    assert 'trained with another config' in message
    assert 'optim_wrapper.optimizer.lr: 0.2 here, 0.1 in the run' in message
    write_config(tmp_path / 'a.py', lr=0.1)
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, config, '--seeds', '0', '2', '--work-dir',
                runs, '--no-train')
    assert str(info.value).startswith(f'error: {runs / "a_seed2"}: no ')
    assert 'and --no-train is set' in str(info.value)

    def failing(cmd, **kwargs):
        raise subprocess.CalledProcessError(3, cmd)

    monkeypatch.setattr(subprocess, 'run', failing)
    with pytest.raises(SystemExit) as info:
        compare(tool, monkeypatch, config, '--seeds', '0', '2', '--work-dir',
                runs)
    assert str(info.value).startswith(
        f'error: {runs / "a_seed2"}: the training of {config} (seed 2) '
        'failed (exit status 3;')
    assert capsys.readouterr().out.count('tools/train.py') == 1


def test_the_planned_keys_follow_each_metrics_prefix():
    """validation_keys: a metric's ``prefix`` where the config gives one,
    else its class's ``default_prefix`` (ReIDMetric's ``reid``)."""
    from mmengine.config import Config
    run_plans = load_tool(RUN_PLANS)
    cfg = Config(
        dict(val_evaluator=[
            dict(type='ReIDMetric', prefix='cos'),
            dict(type='ReIDMetric')
        ]))
    assert run_plans.validation_keys(cfg) == ['cos/', 'reid/']


def test_the_planned_prefix_of_a_users_metric(own_metric):
    """A user's metric without mmreid's key_prefix logs under its
    ``prefix`` argument, else its class's default_prefix, as mmengine's
    BaseMetric sets it: the keys planned are those of the built
    metrics."""
    from mmengine.config import Config

    from mmreid.registry import METRICS
    run_plans = load_tool(RUN_PLANS)
    metrics = [dict(type=own_metric, prefix='cnt'), dict(type=own_metric)]
    assert not hasattr(METRICS.get(own_metric), 'key_prefix')
    assert [METRICS.build(m).prefix for m in metrics] == ['cnt', 'my']
    assert run_plans._metric_prefixes_of(metrics) == ['cnt', 'my']
    assert run_plans.validation_keys(Config(
        dict(val_evaluator=metrics))) == ['cnt/', 'my/']


def test_a_distance_mode_of_a_planned_target_is_accepted():
    """--target d3/mnet names a distance mode that d3's metric logs
    (GMN's d3/mnet/R1); before training the config tells d3 only, so d3
    is checked, and a target the config lacks is still refused."""
    from mmengine.config import Config
    run_plans = load_tool(RUN_PLANS)
    cfg = Config(
        dict(
            val_cfg=dict(
                type='MultiTargetValLoop',
                targets=[
                    dict(name='d3', evaluator=dict(type='ReIDMetric')),
                    dict(name='d0', evaluator=dict(type='ReIDMetric'))
                ])))
    run_plans.check_planned_target(cfg, 'a.py', 'd3/mnet')
    with pytest.raises(ValueError, match="no target 'd1'"):
        run_plans.check_planned_target(cfg, 'a.py', 'd1/mnet')


def test_a_target_with_keys_of_its_own_and_of_modes_is_read():
    """A target that logs keys of its own (d3/R1) besides those of its
    distance modes (d3/cos/R1) is read as it is; only a target whose keys
    all lie beneath its metrics' prefixes is refused."""
    run_targets = load_tool(RUN_TARGETS)
    assert run_targets.run_target({
        'd3/R1': 1.0,
        'd3/cos/R1': 2.0
    }, 'd3') == 'd3'
    with pytest.raises(ValueError, match='beneath the prefixes'):
        run_targets.run_target({'d3/reid/R1': 1.0, 'd3/my/n': 2.0}, 'd3')
