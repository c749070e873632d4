import json
import sys

import pytest

from ..fixtures.processes import load_tool

TOOL = 'tools/analysis_tools/compare_configs.py'


def test_reads_the_last_validation_of_the_latest_run(tmp_path):
    tool = load_tool(TOOL)
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
    metrics = tool.last_validation(str(tmp_path))
    assert tool.pick(metrics, 'R1') == 30.0
    assert tool.pick(metrics, 'mAP') == 2.0
    assert tool.pick(metrics, 'mINP') is None
    assert tool.last_validation(str(tmp_path / 'missing')) == {}


def test_reads_a_retested_checkpoint(tmp_path):
    # tools/test.py CONFIG CKPT --work-dir DIR writes <stamp>/<stamp>.json
    # (one record): a checkpoint re-tested on another test set is read
    # like a finished run, and the latest evaluation wins.
    tool = load_tool(TOOL)
    train = tmp_path / '20260101_000000' / 'vis_data'
    train.mkdir(parents=True)
    (train / 'scalars.json').write_text(json.dumps({'d3/R1': 10.0}))
    (train / '20260101_000000.json').write_text(json.dumps({'loss': 1.0}))
    assert tool.pick(tool.last_validation(str(tmp_path)), 'R1', 'd3') == 10.0
    test = tmp_path / '20260105_000000'
    test.mkdir()
    (test / '20260105_000000.json').write_text(
        json.dumps({
            'd3/R1': 7.5,
            'd3/num_query': 5210
        }))
    metrics = tool.last_validation(str(tmp_path))
    assert tool.pick(metrics, 'R1', 'd3') == 7.5
    assert metrics['d3/num_query'] == 5210
    # A test-only work dir (no training logs) is read too.
    only = tmp_path / 'only' / '20260105_000000'
    only.mkdir(parents=True)
    (only / '20260105_000000.json').write_text(json.dumps({'sysu/R1': 3.0}))
    assert tool.pick(tool.last_validation(str(tmp_path / 'only')), 'R1') == 3.0


def test_t_quantiles_match_the_tables():
    tool = load_tool(TOOL)
    # Textbook two-sided 95 % values of Student's t.
    for df, value in ((1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228),
                      (30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980)):
        assert abs(tool.t975(df) - value) < 1.5e-3, df


def test_paired_interval_from_the_definition():
    tool = load_tool(TOOL)
    base, other = [10.0, 12.0, 11.0], [13.0, 14.0, 15.0]
    # Differences 3, 2, 4: mean 3, sample variance ((0 + 1 + 1) / 2) = 1,
    # half width t(0.975; 2) * 1 / sqrt(3).
    mean, low, high = tool.paired_interval(base, other)
    half = 4.303 / 3**0.5
    assert mean == 3.0
    assert abs(low - (3 - half)) < 1e-9 and abs(high - (3 + half)) < 1e-9
    # Pairing matters: the same values with the seeds shuffled differ.
    assert tool.paired_interval(base, [15.0, 14.0, 13.0])[2] - \
        tool.paired_interval(base, [15.0, 14.0, 13.0])[1] > high - low
    with pytest.raises(ValueError, match='two seeds'):
        tool.paired_interval([1.0], [2.0])


def write_run(work_dir, metrics):
    folder = work_dir / '20260101_000000' / 'vis_data'
    folder.mkdir(parents=True)
    (folder / 'scalars.json').write_text(json.dumps(metrics) + '\n')


def test_baseline_table_with_targets(tmp_path, monkeypatch, capsys):
    tool = load_tool(TOOL)
    for seed, (a, b) in enumerate(((10.0, 13.0), (12.0, 14.0), (11.0, 15.0))):
        write_run(tmp_path / f'base_seed{seed}', {
            'd3/R1': a,
            'd0/R1': 50.0,
            'd3/mAP': 1.0
        })
        write_run(tmp_path / f'new_seed{seed}', {
            'd3/R1': b,
            'd0/R1': 50.0 + seed,
            'd3/mAP': 1.0
        })
    monkeypatch.setattr(sys, 'argv', [
        'compare_configs.py', 'new.py', '--baseline', 'base.py', '--seeds',
        '0', '1', '2', '--work-dir',
        str(tmp_path), '--metrics', 'R1', 'mAP', '--target', 'd3', '--out',
        str(tmp_path / 'tables' / 'table.md')
    ])
    tool.main()
    out = capsys.readouterr().out
    assert (tmp_path / 'tables' / 'table.md').read_text() == out
    assert '| base.py | 11.0 ± 0.8 | 1.0 ± 0.0 |' in out
    assert '| config - base.py | ΔR1 [95 % CI] | ΔmAP [95 % CI] | seeds |' \
        in out
    assert '| new.py | +3.0 [+0.5, +5.5] | +0.0 [+0.0, +0.0] | 3 |' in out


def test_no_train_refuses_a_run_without_results(tmp_path, monkeypatch):
    """--no-train reads only: a missing or unfinished run (a timestamp
    folder with training scalars but no validation) is an error naming
    its work dir; nothing is trained."""
    tool = load_tool(TOOL)
    write_run(tmp_path / 'a_seed0', {'d3/R1': 10.0})
    write_run(tmp_path / 'a_seed1', {'loss': 1.0})  # still training

    def no_training(*args, **kwargs):
        raise AssertionError(f'a training was started: {args}')

    monkeypatch.setattr(tool.subprocess, 'run', no_training)
    monkeypatch.setattr(sys, 'argv', [
        'compare_configs.py', 'a.py', '--seeds', '0', '1', '--work-dir',
        str(tmp_path), '--no-train'
    ])
    args = tool.parse_args()
    assert tool.run('a.py', 0, args) == {'d3/R1': 10.0}
    for seed in (1, 2):
        with pytest.raises(
                FileNotFoundError, match=f'a_seed{seed}.*'
                'no-train'):
            tool.run('a.py', seed, args)


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
