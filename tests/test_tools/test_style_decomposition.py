"""style_decomposition.py: the SynthReID v2 four-target table, paired."""
import shutil

import pytest

from ..fixtures.failing_writes import check_out_survives_a_failing_write
from ..fixtures.finished_runs import finished_run, write_config
from ..fixtures.processes import load_tool

TOOL = 'tools/analysis_tools/style_decomposition.py'

# R1 per seed: (d3, d3-d0style, d0, d0-d3style).
BASE = [(2.0, 10.0, 30.0, 10.0), (3.0, 12.0, 28.0, 12.0),
        (4.0, 11.0, 26.0, 11.0)]
NEW = [(6.0, 12.0, 32.0, 24.0), (8.0, 16.0, 36.0, 24.0),
       (7.0, 14.0, 34.0, 17.0)]
TARGETS = ('d3', 'd3-d0style', 'd0', 'd0-d3style')


def make_runs(tmp_path, monkeypatch):
    """Finished runs of base.py and new.py (written in ``tmp_path``, the
    working directory from here on) in the work dir ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    base = write_config(tmp_path / 'base.py')
    new = write_config(tmp_path / 'new.py')
    for seed in range(3):
        finished_run(tmp_path / f'base_seed{seed}', base, seed, {
            f'{t}/R1': v
            for t, v in zip(TARGETS, BASE[seed])
        })
        metrics = {}
        for t, v in zip(TARGETS, NEW[seed]):
            metrics[f'{t}/R1'] = v  # primary distance, also as a mode
            metrics[f'{t}/mnet/R1'] = v
            metrics[f'{t}/euclid/R1'] = v - 1.0 - seed
        finished_run(tmp_path / f'new_seed{seed}', new, seed, metrics)


def row(out, name):
    lines = [
        line for line in out.splitlines() if line.startswith(f'| {name} |')
    ]
    assert len(lines) == 1, (name, out)
    return [cell.strip() for cell in lines[0].strip('|').split('|')]


def test_targets_and_decomposition_from_the_definitions(
        tmp_path, monkeypatch, capsys):
    tool = load_tool(TOOL)
    make_runs(tmp_path, monkeypatch)
    tool.main([
        'base.py', 'new.py', '--work-dir',
        str(tmp_path), '--metrics', 'R1', '--out',
        str(tmp_path / 't.md')
    ])
    out = capsys.readouterr().out
    assert out.strip() == (tmp_path / 't.md').read_text().strip()
    # The spreads are named (cross-check audit s19 S1).
    assert 'mean ± population std (ddof=0) over the seeds' in out
    # d3: base 2, 3, 4 (mean 3.0, population std 0.816); new - base = 4, 5,
    # 3: mean 4, sample std 1, half width t(0.975; 2) / sqrt(3) = 2.484.
    assert row(out, 'd3') == [
        'd3', '3.0 ± 0.8', '7.0 ± 0.8', '+4.0 [+1.5, +6.5]',
        '2.0 / 6.0; 3.0 / 8.0; '
        '4.0 / 7.0'
    ]
    # Style cost on d3 = d3-d0style - d3: base 8, 9, 7; new 6, 8, 7.
    cells = row(out, 'style cost on d3 = d3-d0style - d3')
    assert cells[1:3] == ['8.0 ± 0.8', '7.0 ± 0.8']
    assert cells[4] == '8.0 / 6.0; 9.0 / 8.0; 7.0 / 7.0'
    # Style cost on d0 = d0 - d0-d3style: base 20, 16, 15; new 8, 12, 17.
    assert row(out, 'style cost on d0 = d0 - d0-d3style')[4] == \
        '20.0 / 8.0; 16.0 / 12.0; 15.0 / 17.0'
    # Kept: d0-d3style / d0 in %: base 33.3, 42.9, 42.3; new 75, 66.7, 50.
    # Not symmetric over the seeds, so a mean is no median: base mean
    # 39.50, population std 4.37; new 63.89 and 10.39; new - base 41.67,
    # 23.81, 7.69: mean 24.39, sample std 16.99, half width 4.303 x 16.99
    # / sqrt(3) = 42.21.
    assert row(out, 'kept under the style shift, d0-d3style / d0 (%)') == [
        'kept under the style shift, d0-d3style / d0 (%)', '39.5 ± 4.4',
        '63.9 ± 10.4', '+24.4 [-17.8, +66.6]',
        '33.3 / 75.0; 42.9 / 66.7; 42.3 / 50.0'
    ]
    assert row(out, 'kept under the style shift, d3 / d3-d0style (%)')[4] \
        == '20.0 / 50.0; 25.0 / 50.0; 36.4 / 50.0'
    # Camera + identity cost = d0 - d3-d0style: base 20, 16, 15.
    assert row(out, 'camera + identity cost = d0 - d3-d0style')[4] == \
        '20.0 / 20.0; 16.0 / 20.0; 15.0 / 20.0'


def test_a_model_at_zero_on_a_target_leaves_its_ratio_undefined(
        tmp_path, monkeypatch, capsys):
    """A model at chance can score R1 0.0 on the style-shifted target:
    the share kept under the shift is then undefined (n/a), the other
    rows stand."""
    tool = load_tool(TOOL)
    make_runs(tmp_path, monkeypatch)
    new = str(tmp_path / 'new.py')
    shutil.rmtree(tmp_path / 'new_seed1')
    finished_run(tmp_path / 'new_seed1', new, 1, {
        'd3/R1': 0.1,
        'd3-d0style/R1': 0.0,
        'd0/R1': 0.2,
        'd0-d3style/R1': 0.1
    })
    tool.main(
        ['base.py', 'new.py', '--work-dir',
         str(tmp_path), '--metrics', 'R1'])
    out = capsys.readouterr().out
    assert row(out, 'kept under the style shift, d3 / d3-d0style (%)') == [
        'kept under the style shift, d3 / d3-d0style (%)', 'n/a', 'n/a',
        'n/a', '20.0 / 50.0; 25.0 / n/a; 36.4 / 50.0'
    ]
    assert row(out, 'd3')[4] == '2.0 / 6.0; 3.0 / 0.1; 4.0 / 7.0'
    assert row(out, 'kept under the style shift, d0-d3style / d0 (%)')[4] \
        == '33.3 / 75.0; 42.9 / 50.0; 42.3 / 50.0'


def test_two_modes_of_one_config(tmp_path, monkeypatch, capsys):
    tool = load_tool(TOOL)
    make_runs(tmp_path, monkeypatch)
    tool.main([
        'new.py', 'new.py', '--mode-a', 'euclid', '--mode-b', 'mnet',
        '--work-dir',
        str(tmp_path), '--metrics', 'R1'
    ])
    out = capsys.readouterr().out
    # mnet - euclid = 1 + seed: 1, 2, 3.
    assert row(out, 'd0')[3] == '+2.0 [-0.5, +4.5]'
    assert 'new (euclid)' in out and 'new (mnet)' in out
    with pytest.raises(SystemExit, match='the same'):
        tool.main(['new.py', 'new.py', '--work-dir', str(tmp_path)])


def test_configs_of_one_file_name_in_two_folders(tmp_path, monkeypatch,
                                                 capsys):
    """a/base.py against c/base.py shared WORK_DIR/base_seed<S> and were
    refused as "A and B are the same (base)"; each now has its runs
    (WORK_DIR/a/base_seed<S>, WORK_DIR/c/base_seed<S>) and its name."""
    tool = load_tool(TOOL)
    monkeypatch.chdir(tmp_path)
    for folder, values in (('a', BASE), ('c', NEW)):
        (tmp_path / folder).mkdir()
        config = write_config(tmp_path / folder / 'base.py')
        for seed in range(3):
            metrics = {f'{t}/R1': v for t, v in zip(TARGETS, values[seed])}
            finished_run(tmp_path / 'runs' / folder / f'base_seed{seed}',
                         config, seed, metrics)
    tool.main([
        'a/base.py', 'c/base.py', '--work-dir',
        str(tmp_path / 'runs'), '--no-train', '--metrics', 'R1'
    ])
    out = capsys.readouterr().out
    assert '| quantity | a/base | c/base | c/base - a/base [95 % CI] |' in out
    # d3: c - a = 4, 5, 3 (as new - base).
    assert row(out, 'd3')[3] == '+4.0 [+1.5, +6.5]'


def test_a_missing_target_is_refused_with_the_keys(tmp_path, monkeypatch):
    tool = load_tool(TOOL)
    make_runs(tmp_path, monkeypatch)
    # An error line (exit status 1), not a KeyError's traceback.
    with pytest.raises(SystemExit) as info:
        tool.main([
            'new.py', 'base.py', '--mode-b', 'mnet', '--work-dir',
            str(tmp_path), '--metrics', 'R1'
        ])
    assert str(info.value).startswith(
        "error: base, seed 0: no 'd3/mnet/R1' in its last validation; "
        "it has ['d0-d3style/R1'")
    with pytest.raises(SystemExit):
        tool.main(['base.py', 'new.py', '--seeds', '0'])


def test_a_failing_write_keeps_the_previous_out(tmp_path, monkeypatch, capsys):
    """--out is replaced only by a complete table: a write that fails
    halfway (a full disk) leaves the previous file and no temporary one.
    """
    tool = load_tool(TOOL)
    make_runs(tmp_path, monkeypatch)
    out = tmp_path / 'tables' / 't.md'
    check_out_survives_a_failing_write(monkeypatch, tool, [
        'base.py', 'new.py', '--work-dir',
        str(tmp_path), '--metrics', 'R1', '--out',
        str(out)
    ], out)


def counted_runs(tmp_path, monkeypatch, queries):
    """Finished runs of base.py and new.py as by :func:`make_runs`, each
    target with ``<target>/num_query`` (and ``<target>/mnet/num_query``)
    = ``queries[(name, seed)]`` (a target name to a count)."""
    monkeypatch.chdir(tmp_path)
    for name in ('base', 'new'):
        write_config(tmp_path / f'{name}.py')
        for seed in range(3):
            shutil.rmtree(tmp_path / f'{name}_seed{seed}', ignore_errors=True)
            values = (BASE if name == 'base' else NEW)[seed]
            metrics = {}
            for t, v in zip(TARGETS, values):
                count = queries.get((name, seed), {}).get(t, 5265)
                metrics.update({f'{t}/R1': v, f'{t}/num_query': count})
                if name == 'new':
                    metrics.update({
                        f'{t}/mnet/R1': v,
                        f'{t}/mnet/num_query': count
                    })
            finished_run(tmp_path / f'{name}_seed{seed}',
                         str(tmp_path / f'{name}.py'), seed, metrics)


def test_runs_on_other_test_sets_are_refused(tmp_path, monkeypatch, capsys):
    """A on v2's test sets (2,100 queries) and B on v2.1's (5,265) used to
    be paired without a word (audit outputs D2: 'd3 ... +2.0', exit 0),
    as were the seeds of one config on different test sets:
    compare_configs.py refuses both."""
    tool = load_tool(TOOL)
    argv = [
        'base.py', 'new.py', '--work-dir',
        str(tmp_path), '--metrics', 'R1', '--no-train'
    ]
    v2 = {t: 2100 for t in TARGETS}
    counted_runs(tmp_path, monkeypatch, {('base', s): v2 for s in range(3)})
    with pytest.raises(SystemExit) as info:
        tool.main(argv)
    assert str(info.value) == (
        'error: new (seed 0) was evaluated on 5265 queries (d3/num_query), '
        'base on 2100 queries (d3/num_query): different test sets are not '
        'paired')
    # One seed of B re-tested on other d0-d3style files: B's own mean over
    # seeds would mix two test sets.
    counted_runs(tmp_path, monkeypatch, {('new', 1): {'d0-d3style': 2013}})
    with pytest.raises(SystemExit) as info:
        tool.main(argv + ['--mode-b', 'mnet'])
    assert str(info.value) == (
        'error: new (mnet) on d0-d3style: its runs were evaluated on '
        'different test sets (seed 0: 5265 queries '
        '(d0-d3style/mnet/num_query); seed 1: 2013 queries '
        '(d0-d3style/mnet/num_query); seed 2: 5265 queries '
        '(d0-d3style/mnet/num_query))')
    # One test set throughout: the table as before.
    counted_runs(tmp_path, monkeypatch, {})
    tool.main(argv)
    assert row(capsys.readouterr().out, 'd3')[3] == '+4.0 [+1.5, +6.5]'


def test_a_run_it_cannot_read_is_an_error_not_a_traceback(
        tmp_path, monkeypatch):
    """A run trained with another config, or missing under --no-train,
    ended the tool with run_plans.run's traceback; it now ends as
    the tool's other errors do (``error: ...``, exit status 1)."""
    make_runs(tmp_path, monkeypatch)
    tool = load_tool(TOOL)
    write_config(tmp_path / 'base.py', lr=0.2)  # the runs are of lr 0.1
    with pytest.raises(SystemExit) as info:
        tool.main(
            ['base.py', 'new.py', '--work-dir',
             str(tmp_path), '--no-train'])
    message = str(info.value)
    assert message.startswith(f'error: {tmp_path / "base_seed0"}: its run ')
    assert 'optim_wrapper.optimizer.lr: 0.2 here, 0.1 in the run' in message
    write_config(tmp_path / 'base.py')
    with pytest.raises(SystemExit) as info:
        tool.main([
            'base.py', 'new.py', '--seeds', '0', '3', '--work-dir',
            str(tmp_path), '--no-train'
        ])
    assert str(info.value).startswith(f'error: {tmp_path / "base_seed3"}: ')
    assert 'and --no-train is set' in str(info.value)


def test_a_failed_training_is_an_error_line(tmp_path, monkeypatch):
    """A run whose training fails (run_plans.run's RuntimeError)
    ends the tool as its other errors do."""
    import subprocess
    make_runs(tmp_path, monkeypatch)
    tool = load_tool(TOOL)

    def failing(cmd, **kwargs):
        raise subprocess.CalledProcessError(3, cmd)

    monkeypatch.setattr(subprocess, 'run', failing)
    with pytest.raises(SystemExit) as info:
        tool.main([
            'base.py', 'new.py', '--seeds', '0', '3', '--work-dir',
            str(tmp_path)
        ])
    assert str(info.value).startswith(
        f'error: {tmp_path / "base_seed3"}: the training of base.py (seed 3) '
        'failed (exit status 3')
