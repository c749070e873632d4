"""gap_effect.py: MBN - BN against the trained BN model's modality gap."""
import hashlib
import json
import shutil

import pytest

from ..fixtures.failing_writes import check_out_survives_a_failing_write
from ..fixtures.finished_runs import finished_run, write_config
from ..fixtures.processes import load_tool
from ..fixtures.tiny_config import write_tiny_vi_config

TOOL = 'tools/analysis_tools/gap_effect.py'


def gap_rows(gaps, floor=0.04):
    """modality_gap.py rows: a stem (one modality), the given shared-layer
    gaps, and a BNNeck that must not count."""
    rows = [
        dict(layer='backbone.stems.0.bn1', gap=None, log_std=None, floor=None)
    ]
    rows += [
        dict(
            layer=f'backbone.layer{i + 1}.0.bn1',
            gap=g,
            log_std=2 * g,
            floor=floor) for i, g in enumerate(gaps)
    ]
    rows.append(dict(layer='head.bnneck', gap=0.9, log_std=0.9, floor=0.5))
    return rows


def write_run(work_dir, r1, gaps, counts=None, floor=0.04, target='sysu'):
    """A finished run of ``<name>.py`` (written beside its work dir
    ``<name>_seed<S>``) with its modality gap cached; ``counts``: its
    extra keys (e.g. ``sysu/num_query``); ``floor``: of every layer;
    ``target``: of its metrics."""
    name, seed = work_dir.name.rsplit('_seed', 1)
    config = work_dir.parent / f'{name}.py'
    if not config.exists():
        write_config(config, max_epochs=12)
    finished_run(
        work_dir, str(config), int(seed),
        dict({
            f'{target}/R1': r1,
            f'{target}/mAP': r1 + 1
        }, **(counts or {})))
    checkpoint = work_dir / 'epoch_12.pth'
    checkpoint.write_text(f'not read: the gap of {work_dir.name} is cached')
    (work_dir / 'last_checkpoint').write_text(str(checkpoint))
    key = load_tool(TOOL).cache_key(str(config), str(checkpoint))
    (work_dir / 'modality_gap_128.json').write_text(
        json.dumps(
            dict(key, checkpoint=str(checkpoint), rows=gap_rows(gaps, floor))))


# R1 per seed and layer gaps per seed, BN and MBN, two settings.
RUNS = {
    'a_bn': ([10, 12, 14], [(0.1, 0.2), (0.2, 0.2), (0.1, 0.1)]),
    'a_mbn': ([11, 15, 14], [(0.05, 0.05)] * 3),
    'b_bn': ([8, 9, 10], [(0.3, 0.3)] * 3),
    'b_mbn': ([12, 12, 15], [(0.06, 0.06)] * 3),
}


def cells(out, name):
    lines = [
        line for line in out.splitlines() if line.startswith(f'| {name} |')
    ]
    return [[c.strip() for c in line.strip('|').split('|')] for line in lines]


def test_table_from_the_definitions(tmp_path, monkeypatch, capsys):
    tool = load_tool(TOOL)
    monkeypatch.chdir(tmp_path)
    for name, (r1, gaps) in RUNS.items():
        for seed in range(3):
            write_run(tmp_path / f'{name}_seed{seed}', r1[seed], gaps[seed])
    plot = tmp_path / 'gap.png'
    tool.main([
        'a_bn.py:a_mbn.py', 'b_bn.py:b_mbn.py', '--work-dir',
        str(tmp_path), '--metrics', 'R1', '--plot',
        str(plot)
    ])
    out = capsys.readouterr().out
    # The spreads are named (cross-check audit s19 S1: a population std
    # beside intervals from the sample std, unlabelled).
    assert 'mean ± population std (ddof=0) over the seeds' in out
    assert 'about sqrt(2) times' in out  # what the floor is compared with
    a, a_diff = cells(out, 'a_bn')[0], None
    (b, ), (b_diff, ) = cells(out, 'b_bn')[:1], cells(out, 'b_bn')[1:]
    # Gaps: the mean over the shared layers (not the stem, not the neck),
    # then mean and range over the seeds.
    assert a[1:4] == ['0.150 (0.100-0.200)', '0.050 (0.050-0.050)', '0.040']
    assert b[1] == '0.300 (0.300-0.300)'
    # R1: BN 12 ± sqrt(8/3); MBN - BN = 1, 3, 0: mean 4/3, sd sqrt(7/3),
    # half width t(0.975; 2) = 4.303 times sd / sqrt(3) = 3.795.
    assert a[4:8] == [
        '12.0 ± 1.6', '13.3 ± 1.7', '+1.3 [-2.5, +5.1]', '+1.0, +3.0, +0.0'
    ]
    # b: 4, 3, 5: mean 4, sd 1, half width 4.303 / sqrt(3) = 2.484.
    assert b[6] == '+4.0 [+1.5, +6.5]'
    # Difference of the paired effects, b - a: 3, 0, 5: mean 8/3, sd
    # sqrt(19/3), half width 6.252; BN gaps 0.300 - 0.150.
    assert b_diff == ['b_bn', '+0.150', '+2.7 [-3.6, +8.9]']
    assert a_diff is None and len(cells(out, 'a_bn')) == 1
    assert plot.stat().st_size > 0


def test_configs_of_one_file_name_in_two_folders(tmp_path, monkeypatch,
                                                 capsys):
    """Pairs a/bn.py:a/mbn.py and c/bn.py:c/mbn.py shared the runs
    WORK_DIR/bn_seed<S> and WORK_DIR/mbn_seed<S>, gaps included; each
    config now has its own (WORK_DIR/a/bn_seed<S>, ...) and its row."""
    tool = load_tool(TOOL)
    monkeypatch.chdir(tmp_path)
    for folder, setting in (('a', 'a'), ('c', 'b')):
        (tmp_path / folder).mkdir()
        for side in ('bn', 'mbn'):
            r1, gaps = RUNS[f'{setting}_{side}']
            for seed in range(3):
                write_run(tmp_path / folder / f'{side}_seed{seed}', r1[seed],
                          gaps[seed])
    tool.main([
        'a/bn.py:a/mbn.py', 'c/bn.py:c/mbn.py', '--work-dir',
        str(tmp_path), '--no-train', '--metrics', 'R1'
    ])
    out = capsys.readouterr().out
    # As a_bn and b_bn of test_table_from_the_definitions.
    assert cells(out, 'a/bn')[0][1] == '0.150 (0.100-0.200)'
    assert cells(out, 'c/bn')[0][1] == '0.300 (0.300-0.300)'


def test_refusals(tmp_path):
    tool = load_tool(TOOL)
    with pytest.raises(SystemExit):
        tool.parse_args(['a.py-b.py'])
    with pytest.raises(SystemExit):
        tool.parse_args(['a.py:b.py', '--seeds', '0'])
    with pytest.raises(ValueError, match="starts with 'neck.'"):
        tool.summarise(gap_rows([0.1]), 'neck.', 'a, seed 0')
    with pytest.raises(FileNotFoundError, match='no last_checkpoint'):
        tool.measure_gap('a.py', str(tmp_path), 128)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'gone.pth'))
    config = tmp_path / 'a.py'
    config.write_text('default_hooks = dict(checkpoint=None)\n')
    with pytest.raises(FileNotFoundError, match='gone.pth'):
        tool.measure_gap(str(config), str(tmp_path), 128)


@pytest.mark.parametrize('num', [0, 1, 3])
def test_a_batch_too_small_for_the_floor_is_refused(num, capsys):
    """The floor column splits the visible images into two halves of two
    at least: with fewer than 4 per modality the table printed ``nan``
    there (0 or 1 failed inside a BN layer)."""
    tool = load_tool(TOOL)
    with pytest.raises(SystemExit):
        tool.parse_args(['a.py:b.py', '--num-per-modality', str(num)])
    assert 'must be >= 4' in capsys.readouterr().err
    assert tool.parse_args(['a.py:b.py', '--num-per-modality',
                            '4']).num_per_modality == 4


def test_a_failing_write_keeps_the_previous_out(tmp_path, monkeypatch, capsys):
    """--out is replaced only by complete tables: a write that fails
    halfway (a full disk) leaves the previous file and no temporary one.
    """
    tool = load_tool(TOOL)
    monkeypatch.chdir(tmp_path)
    for name, (r1, gaps) in RUNS.items():
        for seed in range(3):
            write_run(tmp_path / f'{name}_seed{seed}', r1[seed], gaps[seed])
    out = tmp_path / 'tables' / 'gap.md'
    check_out_survives_a_failing_write(monkeypatch, tool, [
        'a_bn.py:a_mbn.py', '--work-dir',
        str(tmp_path), '--metrics', 'R1', '--out',
        str(out)
    ], out)


def test_a_stale_gap_cache_is_measured_again(tmp_path, monkeypatch, capsys):
    """The cache was trusted whenever it named the same checkpoint path: a
    run trained again into the same work dir (or measured with a changed
    config) kept the old model's gap (audit S, gapcache). It is now keyed
    on the sha256 of the checkpoint and of the merged config, and measured
    again, saying so, when either differs or is not recorded."""
    tool = load_tool(TOOL)
    work_dir = tmp_path / 'a_bn_seed0'
    config = write_config(tmp_path / 'a_bn.py', max_epochs=12)
    finished_run(work_dir, config, 0, {'sysu/R1': 10})
    checkpoint = work_dir / 'epoch_12.pth'
    checkpoint.write_text('the model trained again')
    (work_dir / 'last_checkpoint').write_text(str(checkpoint))
    # The gap of the model trained first, cached under the same path.
    (work_dir / 'modality_gap_128.json').write_text(
        json.dumps(
            dict(
                config=config,
                checkpoint=str(checkpoint),
                rows=gap_rows([0.1, 0.2]))))
    measured = []

    def measure(config, checkpoint, num_per_modality, cfg_options=()):
        measured.append((config, checkpoint, num_per_modality))
        return gap_rows([0.5, 0.5 + len(measured)])

    monkeypatch.setattr(tool, '_measure', measure, raising=False)
    assert tool.measure_gap(config, str(work_dir), 128) == gap_rows([0.5, 1.5])
    assert measured == [(config, str(checkpoint), 128)]
    err = capsys.readouterr().err
    assert 'modality_gap_128.json: cached for another checkpoint and ' \
        'config' in err and 'measuring the gap again' in err
    # The new cache is used from here on ...
    assert tool.measure_gap(config, str(work_dir), 128) == gap_rows([0.5, 1.5])
    assert len(measured) == 1
    # ... until the checkpoint changes (trained again, same path and size)
    checkpoint.write_text('the model trained AGAIN')
    assert tool.measure_gap(config, str(work_dir), 128) == gap_rows([0.5, 2.5])
    assert 'cached for another checkpoint than' in capsys.readouterr().err
    # ... or the config.
    write_config(tmp_path / 'a_bn.py', max_epochs=12, lr=0.2)
    assert tool.measure_gap(config, str(work_dir), 128) == gap_rows([0.5, 3.5])
    assert 'cached for another config than' in capsys.readouterr().err


def test_bn_and_mbn_on_other_test_sets_are_refused(tmp_path, monkeypatch,
                                                   capsys):
    """BN and MBN (or the seeds of one config) evaluated on different test
    sets used to be paired without a word (audit outputs D2), where
    compare_configs.py refuses them: now an error naming the config, the
    seed and both test sets."""
    tool = load_tool(TOOL)
    monkeypatch.chdir(tmp_path)

    def write_runs(counts):
        for name in ('a_bn', 'a_mbn'):
            r1, gaps = RUNS[name]
            for seed in range(3):
                work_dir = tmp_path / f'{name}_seed{seed}'
                shutil.rmtree(work_dir, ignore_errors=True)
                write_run(work_dir, r1[seed], gaps[seed],
                          counts.get((name, seed), {'sysu/num_query': 3803}))

    argv = [
        'a_bn.py:a_mbn.py', '--work-dir',
        str(tmp_path), '--metrics', 'R1', '--no-train'
    ]
    # MBN re-tested on the v2 test set (2,013 queries), BN on v2.1.
    write_runs({('a_mbn', s): {'sysu/num_query': 2013} for s in range(3)})
    with pytest.raises(SystemExit) as info:
        tool.main(argv)
    assert str(info.value) == (
        'error: a_mbn (seed 0) was evaluated on 2013 queries '
        '(sysu/num_query), a_bn on 3803 queries (sysu/num_query): '
        'different test sets are not paired')
    # One BN seed on the other test set: BN's own mean would mix them.
    write_runs({('a_bn', 2): {'sysu/num_query': 2013}})
    with pytest.raises(SystemExit) as info:
        tool.main(argv)
    assert str(info.value) == (
        'error: a_bn: its runs were evaluated on different test sets '
        '(seed 0: 3803 queries (sysu/num_query); seed 1: 3803 queries '
        '(sysu/num_query); seed 2: 2013 queries (sysu/num_query))')
    # MBN evaluated on another target altogether.
    write_runs({})
    for seed in range(3):
        shutil.rmtree(tmp_path / f'a_mbn_seed{seed}')
        finished_run(tmp_path / f'a_mbn_seed{seed}', 'a_mbn.py', seed, {
            'llcm/R1': 20.0,
            'llcm/num_query': 3803
        })
    with pytest.raises(SystemExit) as info:
        tool.main(argv)
    assert str(info.value) == (
        "error: a_mbn is read under 'llcm', a_bn under 'sysu': different "
        'test sets are not paired')
    # One test set: the table as before.
    write_runs({})
    tool.main(argv)
    assert cells(capsys.readouterr().out, 'a_bn')[0][6] == \
        '+1.3 [-2.5, +5.1]'


def test_gap_and_floor_columns_are_means_over_the_seeds(
        tmp_path, monkeypatch, capsys):
    """The BN gap is the mean (and range) over the seeds of each run's
    mean over the shared layers; the floor is that of the BN runs (the
    noise of the gap the table sets against), mean over the seeds."""
    tool = load_tool(TOOL)
    monkeypatch.chdir(tmp_path)
    bn_gaps = [(0.1, 0.1), (0.1, 0.1), (0.3, 0.5)]
    for seed in range(3):
        write_run(
            tmp_path / f'bn_seed{seed}',
            10 + seed,
            bn_gaps[seed],
            floor=(0.03, 0.04, 0.08)[seed])
        write_run(tmp_path / f'mbn_seed{seed}', 12, (0.05, 0.05), floor=0.2)
    tool.main(['bn.py:mbn.py', '--work-dir', str(tmp_path), '--metrics', 'R1'])
    (row, ) = cells(capsys.readouterr().out, 'bn')
    # BN gaps per seed 0.1, 0.1, 0.4: mean 0.2, not the median 0.1.
    # Floors of the BN runs 0.03, 0.04, 0.08: mean 0.05.
    assert row[1:4] == ['0.200 (0.100-0.400)', '0.050 (0.050-0.050)', '0.050']


def test_the_gap_counts_names_that_start_with_layers():
    """--layers is a prefix of the norm input's name, not a part of it."""
    tool = load_tool(TOOL)
    with pytest.raises(ValueError, match="starts with 'layer'"):
        tool.summarise(gap_rows([0.1]), 'layer', 'a, seed 0')
    assert tool.summarise(gap_rows([0.1, 0.3]), 'backbone.layer',
                          'a, seed 0')['gap'] == pytest.approx(0.2)


def test_a_gap_without_a_noise_floor_has_no_floor():
    """Norm inputs without a floor (fewer than 4 visible images to halve)
    give no floor (NaN), not a floor of 0."""
    import math
    tool = load_tool(TOOL)
    summary = tool.summarise(
        gap_rows([0.1, 0.3], floor=None), 'backbone.layer', 'a, seed 0')
    assert summary['gap'] == pytest.approx(0.2)
    assert math.isnan(summary['floor'])


def test_seeds_of_one_config_on_other_targets_are_refused(
        tmp_path, monkeypatch):
    """A config whose seeds were evaluated on different targets has no
    mean over its seeds: refused, naming the target of each seed."""
    tool = load_tool(TOOL)
    monkeypatch.chdir(tmp_path)
    for name in ('a_bn', 'a_mbn'):
        r1, gaps = RUNS[name]
        for seed in range(3):
            target = 'llcm' if (name, seed) == ('a_bn', 2) else 'sysu'
            write_run(
                tmp_path / f'{name}_seed{seed}',
                r1[seed],
                gaps[seed], {f'{target}/num_query': 3803},
                target=target)
    with pytest.raises(SystemExit) as info:
        tool.main([
            'a_bn.py:a_mbn.py', '--work-dir',
            str(tmp_path), '--metrics', 'R1', '--no-train'
        ])
    assert str(info.value) == (
        "error: a_bn: its runs have different targets ({0: 'sysu', "
        "1: 'sysu', 2: 'llcm'})")


def test_the_plot_shows_mbn_minus_bn(tmp_path, monkeypatch):
    """Each setting is drawn at its mean BN gap with the paired MBN - BN
    and its interval (the table's +1.3 [-2.5, +5.1] for setting a)."""
    import matplotlib.axes
    tool = load_tool(TOOL)
    drawn = []

    def errorbar(self, x, y, yerr=None, xerr=None, **kwargs):
        drawn.append((x, y, yerr, xerr))

    monkeypatch.setattr(matplotlib.axes.Axes, 'errorbar', errorbar)
    setting = dict(
        name='a',
        bn_gap=[0.15, 0.2, 0.1],
        bn={'R1': [10, 12, 14]},
        mbn={'R1': [11, 15, 14]})
    tool.plot([setting], 'R1', str(tmp_path / 'gap.png'))
    ((x, y, yerr, xerr), ) = drawn
    # MBN - BN = 1, 3, 0: mean 4/3, half width t(0.975; 2) x sqrt(7/3) /
    # sqrt(3), t(0.975; 2) = 0.95 / sqrt(2 x 0.975 x 0.025) exactly.
    half = 0.95 / (2 * 0.975 * 0.025)**0.5 * (7 / 3)**0.5 / 3**0.5
    assert (x, y) == pytest.approx((0.15, 4 / 3))
    assert [yerr[0][0], yerr[1][0]] == pytest.approx([half, half])
    assert [xerr[0][0], xerr[1][0]] == pytest.approx([0.05, 0.05])


def test_a_copied_work_dir_is_measured_on_its_own_checkpoint(
        tmp_path, monkeypatch):
    """last_checkpoint holds mmengine's absolute path: in a copy of a work
    dir it names the original folder's checkpoint, so the copy's gap was
    measured on (and its cache keyed by) the original's model beside the
    copy's metrics. The copy's own file of that name is read, with the
    original there or gone; one the copy lacks is refused, naming both."""
    tool = load_tool(TOOL)
    config = write_config(tmp_path / 'a_bn.py', max_epochs=12)
    original = tmp_path / 'orig' / 'a_bn_seed0'
    finished_run(original, config, 0, {'sysu/R1': 10})
    (original / 'epoch_12.pth').write_text('the original, trained on')
    (original / 'last_checkpoint').write_text(str(original / 'epoch_12.pth'))
    copy = tmp_path / 'copy' / 'a_bn_seed0'
    shutil.copytree(original, copy)
    (copy / 'epoch_12.pth').write_text('the copy')
    measured = []

    def measure(config, checkpoint, num_per_modality, cfg_options=()):
        measured.append(checkpoint)
        return gap_rows([0.1, 0.2])

    monkeypatch.setattr(tool, '_measure', measure, raising=False)
    tool.measure_gap(config, str(copy), 128)
    assert measured == [str(copy / 'epoch_12.pth')]
    cached = json.loads((copy / 'modality_gap_128.json').read_text())
    assert cached['checkpoint_sha256'] == hashlib.sha256(
        b'the copy').hexdigest()
    # The copy without the file: no fallback to the original's.
    (copy / 'epoch_12.pth').unlink()
    with pytest.raises(FileNotFoundError) as info:
        tool.last_checkpoint(str(copy))
    message = str(info.value)
    assert str(original / 'epoch_12.pth') in message
    assert str(copy / 'epoch_12.pth') in message
    # Moved: the original folder gone.
    (copy / 'epoch_12.pth').write_text('the copy')
    shutil.rmtree(original)
    assert tool.last_checkpoint(str(copy)) == str(copy / 'epoch_12.pth')
    # A relative name is resolved in the work dir.
    (copy / 'last_checkpoint').write_text('epoch_12.pth')
    assert tool.last_checkpoint(str(copy)) == str(copy / 'epoch_12.pth')


def test_a_checkpoint_in_the_hooks_out_dir_is_measured(tmp_path, monkeypatch):
    """A run whose CheckpointHook has an out_dir saves into ``<out_dir>/<work
    dir name>`` and names that file in last_checkpoint: it was refused as
    a copied work dir's. The run's config (with its options) says where
    the checkpoints are."""
    tool = load_tool(TOOL)
    config = write_config(tmp_path / 'a_bn.py', max_epochs=12)
    work_dir = tmp_path / 'runs' / 'a_bn_seed0'
    finished_run(work_dir, config, 0, {'sysu/R1': 10})
    saved = tmp_path / 'store' / 'a_bn_seed0' / 'epoch_12.pth'
    saved.parent.mkdir(parents=True)
    saved.write_text('saved by the hook')
    (work_dir / 'last_checkpoint').write_text(str(saved))
    measured = []

    def measure(config, checkpoint, num_per_modality, cfg_options=()):
        measured.append(checkpoint)
        return gap_rows([0.1])

    monkeypatch.setattr(tool, '_measure', measure, raising=False)
    with pytest.raises(FileNotFoundError, match='outside the work dir'):
        tool.measure_gap(config, str(work_dir), 128)
    options = [f'default_hooks.checkpoint.out_dir={tmp_path / "store"}']
    tool.measure_gap(config, str(work_dir), 128, options)
    assert measured == [str(saved)]


def test_a_metric_a_run_did_not_log_is_named(tmp_path, monkeypatch):
    tool = load_tool(TOOL)
    monkeypatch.chdir(tmp_path)
    for name in ('a_bn', 'a_mbn'):
        r1, gaps = RUNS[name]
        for seed in range(3):
            write_run(tmp_path / f'{name}_seed{seed}', r1[seed], gaps[seed])
    # An error line (exit status 1), as for the tool's other errors, not
    # a KeyError's traceback.
    with pytest.raises(SystemExit) as info:
        tool.main([
            'a_bn.py:a_mbn.py', '--work-dir',
            str(tmp_path), '--metrics', 'R1', 'mINP'
        ])
    assert str(info.value) == \
        "error: a_bn, seed 0: no 'mINP' in its last validation"


def test_a_run_of_two_metrics_is_read_with_target(tmp_path, monkeypatch,
                                                  capsys):
    """Runs evaluated with two metrics (``reid/`` and a user's ``my/``)
    could not be read: gap_effect.py had no --target. It takes
    compare_configs.py's, and checks it from the configs before training
    as that does."""
    import subprocess
    tool = load_tool(TOOL)
    monkeypatch.chdir(tmp_path)
    for name in ('a_bn', 'a_mbn'):
        r1, gaps = RUNS[name]
        for seed in range(3):
            write_run(
                tmp_path / f'{name}_seed{seed}',
                r1[seed],
                gaps[seed], {
                    'reid/num_query': 3803,
                    'my/n': 71
                },
                target='reid')
    argv = ['a_bn.py:a_mbn.py', '--work-dir', str(tmp_path), '--metrics', 'R1']
    with pytest.raises(SystemExit) as info:
        tool.main(argv + ['--no-train'])
    assert str(info.value) == (
        'error: a_bn, seed 0: its metrics are of 2 prefixes (my, reid); '
        'give --target with one of them')
    tool.main(argv + ['--no-train', '--target', 'reid'])
    # As in test_table_from_the_definitions: MBN - BN = 1, 3, 0.
    assert cells(capsys.readouterr().out, 'a_bn')[0][6] == \
        '+1.3 [-2.5, +5.1]'
    with pytest.raises(SystemExit) as info:
        tool.main(argv + ['--no-train', '--target', 'sysu'])
    assert str(info.value).startswith(
        "error: a_bn, seed 0: no target 'sysu' in its last evaluation; it "
        'has 2 prefixes (my, reid)')

    # Runs still to train are checked from their configs first.
    def no_training(*args, **kwargs):
        raise AssertionError(f'a training was started: {args}')

    monkeypatch.setattr(subprocess, 'run', no_training)
    two = ("val_evaluator = [dict(type='ReIDMetric'), "
           "dict(type='ReIDMetric', prefix='my')]\n")
    for name in ('b_bn', 'b_mbn'):
        write_config(tmp_path / f'{name}.py', max_epochs=12, extra=two)
    with pytest.raises(SystemExit) as info:
        tool.main(['b_bn.py:b_mbn.py', '--work-dir', str(tmp_path)])
    assert str(info.value) == (
        'error: b_bn.py (its val_cfg and val_evaluator, before training): '
        'its metrics are of 2 prefixes (my, reid); give --target with one '
        'of them')


def test_the_gap_is_measured_with_the_runs_cfg_options(tmp_path, monkeypatch,
                                                       capsys):
    """Runs trained with ``--cfg-options`` were measured without them:
    the gap of a model trained on other images (e.g. ``ir_gap``) was
    measured on the config's own, and cached as such. Every run's gap is
    now measured, and keyed, with the options it was trained with."""
    tool = load_tool(TOOL)
    monkeypatch.chdir(tmp_path)
    option = 'optim_wrapper.optimizer.lr=0.05'
    for name in ('a_bn', 'a_mbn'):
        r1, gaps = RUNS[name]
        for seed in range(3):
            # A cache of the run measured without the option.
            write_run(tmp_path / f'{name}_seed{seed}', r1[seed], gaps[seed])
            finished = tmp_path / f'{name}_seed{seed}'
            shutil.rmtree(finished / '20260101_000000')
            finished_run(
                finished,
                str(tmp_path / f'{name}.py'),
                seed, {
                    'sysu/R1': r1[seed],
                    'sysu/mAP': r1[seed] + 1
                },
                options={'optim_wrapper.optimizer.lr': 0.05})
    measured = []

    def measure(config, checkpoint, num_per_modality, cfg_options=()):
        measured.append(list(cfg_options))
        return gap_rows([0.3, 0.3])

    monkeypatch.setattr(tool, '_measure', measure)
    tool.main([
        'a_bn.py:a_mbn.py', '--work-dir',
        str(tmp_path), '--no-train', '--cfg-options', option
    ])
    assert measured == [[option]] * 6
    assert 'cached for another config than' in capsys.readouterr().err
    cached = json.loads(
        (tmp_path / 'a_bn_seed0' / 'modality_gap_128.json').read_text())
    assert cached['cfg_options'] == [option]


def test_the_measured_gap_is_that_of_the_options_images(tmp_path):
    """End to end on a tiny SynthReID-vi folder: the gap measured with
    ``--cfg-options`` giving the training set another ``ir_gap`` is the
    gap of a config that sets it, and not the config's own."""
    import torch

    from mmreid.apis import init_model
    config = write_tiny_vi_config(tmp_path)
    gap_root = tmp_path / 'vi_gap'
    options = [
        'train_dataloader.dataset.ir_gap=1.0',
        f'train_dataloader.dataset.data_root={gap_root}'
    ]
    written = tmp_path / 'agw_gap.py'
    written.write_text(f"_base_ = ['{config}']\n"
                       'train_dataloader = dict(dataset=dict(ir_gap=1.0, '
                       f"data_root='{gap_root}'))\n")
    torch.manual_seed(0)
    model = init_model(config)
    model.init_weights()
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    tool = load_tool(TOOL)
    rows = {}
    for name, opts in (('own', []), ('options', options)):
        work_dir = tmp_path / f'agw_{name}_seed0'
        work_dir.mkdir()
        # The final checkpoint of the config's 12 epochs.
        shutil.copy(checkpoint, work_dir / 'epoch_12.pth')
        (work_dir / 'last_checkpoint').write_text(
            str(work_dir / 'epoch_12.pth'))
        rows[name] = tool.measure_gap(config, str(work_dir), 4, opts)
    rows['written'] = tool._measure(str(written), str(checkpoint), 4)

    def trunk(rows):
        return [(r['layer'], r['gap']) for r in rows
                if r['layer'].startswith('backbone.layer')]

    assert trunk(rows['options']) == trunk(rows['written'])
    assert trunk(rows['options']) != trunk(rows['own'])


def test_a_test_pipeline_the_models_preprocessor_misreads_is_refused(tmp_path):
    """A ``Normalize`` in the test pipeline beside the model's normalising
    data preprocessor normalises the images twice: the gap is not
    measured on them, the pipeline is refused naming both."""
    import torch

    from mmreid.apis import init_model
    config = write_tiny_vi_config(tmp_path)
    twice = tmp_path / 'agw_twice.py'
    twice.write_text(
        f"_base_ = ['{config}']\n"
        'test_dataloader = dict(dataset=dict(pipeline=[\n'
        "    dict(type='ReIDLoadImageFromFile'),\n"
        "    dict(type='ReIDResize', size=(64, 32)),\n"
        "    dict(type='Normalize', mean=[123.675, 116.28, 103.53],\n"
        "         std=[58.395, 57.12, 57.375], to_rgb=False),\n"
        "    dict(type='PackReIDInputs')]))\n")
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict=init_model(config).state_dict()), checkpoint)
    tool = load_tool(TOOL)
    with pytest.raises(ValueError, match='normalis') as info:
        tool._measure(str(twice), str(checkpoint), 4)
    assert 'test_dataloader.dataset.pipeline' in str(info.value)


def test_the_gap_is_measured_on_draw_seed_0_in_training_mode(monkeypatch):
    """The docstring's protocol: the trained model's gap is
    modality_gap.py's on ``--num-per-modality`` images of each modality
    drawn with seed 0, in training mode (batch statistics). Another draw
    seed or eval mode would print another gap than the documented one
    (and than ``modality_gap.py CONFIG CKPT`` gives)."""
    import importlib

    import torch
    import torch.nn as nn
    from mmengine.structures import BaseDataElement

    import mmreid.apis
    tool = load_tool(TOOL)
    # The module _measure imports (the tools folder is on sys.path).
    gap_tool = importlib.import_module('modality_gap')

    class Trained(nn.Module):

        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(1)
            self.cfg = 'the run config'

        def data_preprocessor(self, batch, training):
            samples = [
                BaseDataElement(metainfo=dict(modality=k))
                for k in (0, 0, 1, 1)
            ]
            return dict(inputs=torch.zeros(4, 1), data_samples=samples)

    calls = []

    def mixed_batch(cfg, num_per_modality, seed, preprocessor):
        calls.append(('draw', cfg, num_per_modality, seed))

    def measure(model, inputs, modality, forward=None):
        calls.append(('measure', model.training, model.bn.training,
                      list(modality)))
        return ['rows']

    monkeypatch.setattr(tool, 'run_config', lambda config, options=(): config)
    monkeypatch.setattr(mmreid.apis, 'init_model',
                        lambda cfg, checkpoint: Trained().eval())
    monkeypatch.setattr(gap_tool, 'mixed_batch', mixed_batch)
    monkeypatch.setattr(gap_tool, 'measure_modality_gap', measure)
    assert tool._measure('bn.py', 'epoch_12.pth', 16) == ['rows']
    assert calls == [('draw', 'the run config', 16, 0),
                     ('measure', True, True, [0, 0, 1, 1])]
