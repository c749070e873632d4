import json
import subprocess
import sys

import pytest

from ..fixtures.processes import REPO, load_tool, tool_env

TOOL = 'tools/analysis_tools/benchmark_pair_scoring.py'


def test_tiny_run_writes_json(tmp_path, capsys):
    tool = load_tool(TOOL)
    out = tmp_path / 'sub' / 'pair_scoring.json'
    summary = tool.main([
        '--num-query', '6', '--num-gallery', '40', '--dim', '16', '--hidden',
        '8', '--topk', '40', '--repeat', '1', '--memory-budget-mb', '0.012',
        '--out',
        str(out)
    ])
    printed = capsys.readouterr().out
    assert '| decomposed (mmreid) |' in printed
    assert '| matmul ceiling |' in printed
    data = json.loads(out.read_text())
    assert data == json.loads(json.dumps(summary))
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    assert (data['num_query'], data['num_gallery']) == (6, 40)
    # a tiny budget: several decomposed chunks
    assert data['decomposed_chunk']['queries'] < 6
    assert data['max_abs_logit_error'] < 1e-4
    rows = {row['method']: row for row in data['rows']}
    assert set(rows) == {
        'direct (naive chunked)', 'decomposed (mmreid)', 'matmul ceiling',
        'streamed (evaluate_features)', 'top-40 rerank',
        '3 modes, one by one', '3 modes, one pass (mmreid)'
    }
    for row in rows.values():
        assert row['seconds'] > 0 and row['flop_per_s'] > 0
    assert rows['decomposed (mmreid)']['flops'] == 2 * 6 * 40 * 16 * 8
    assert rows['matmul ceiling']['ratio_to_ceiling'] == pytest.approx(1)
    # top-k with k = G is the full M-Net ranking; streaming is exact
    assert abs(rows['top-40 rerank']['mAP_diff']) <= 1e-6
    assert abs(rows['top-40 rerank']['R1_diff']) <= 1e-6
    assert rows['streamed (evaluate_features)']['max_abs_metric_diff'] <= 1e-6
    assert rows['streamed (evaluate_features)']['mAP'] == pytest.approx(
        data['full_mnet']['mAP'], abs=1e-6)
    # One pass over the chunks for the three modes gives their numbers.
    assert rows['3 modes, one pass (mmreid)']['max_abs_metric_diff'] == 0
    assert rows['3 modes, one by one']['mAP'] == pytest.approx(
        data['full_mnet']['mAP'], abs=1e-6)


def test_presets_and_bad_args():
    tool = load_tool(TOOL)
    args = tool.parse_args(['--preset', 'market1501'])
    assert (args.num_query, args.num_gallery) == (3368, 15913)
    args = tool.parse_args(['--preset', 'msmt17', '--num-query', '5'])
    assert (args.num_query, args.num_gallery) == (5, 82161)
    with pytest.raises(SystemExit):
        tool.parse_args(['--topk', '0'])


def test_warm_up_covers_every_timed_code_path(monkeypatch):
    """Each function a timed row calls has run before the timing starts
    (on a few queries): evaluate_features and evaluate_features_multi were
    not warmed, so the first row using them carried the imports and the
    rank kernel's load in its peak memory."""
    tool = load_tool(TOOL)
    calls = {'warm': set(), 'timed': set()}
    phase = ['warm']
    for name in ('mnet_pair_logits', 'mnet_distances', 'evaluate_features',
                 'evaluate_features_multi'):
        real = getattr(tool, name)

        def spy(*args, _name=name, _real=real, **kwargs):
            calls[phase[0]].add(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(tool, name, spy)
    real_round_robin = tool.timed_round_robin

    def timed(*args, **kwargs):
        phase[0] = 'timed'
        try:
            return real_round_robin(*args, **kwargs)
        finally:
            phase[0] = 'after'

    calls['after'] = set()
    monkeypatch.setattr(tool, 'timed_round_robin', timed)
    tool.main([
        '--num-query', '6', '--num-gallery', '40', '--dim', '16', '--hidden',
        '8', '--topk', '40', '--repeat', '1'
    ])
    assert calls['timed'] == {
        'mnet_pair_logits', 'mnet_distances', 'evaluate_features',
        'evaluate_features_multi'
    }
    assert calls['timed'] <= calls['warm']


def test_first_streamed_row_holds_no_one_time_cost(tmp_path):
    """In a fresh process, the streamed row (one mode) must not report
    more memory than the one-by-one row that streams three modes; without
    the warm-up it carried ~105 MB of imports and kernel load, against
    0.3 MB."""
    out = tmp_path / 'pair.json'
    proc = subprocess.run([
        sys.executable, TOOL, '--num-query', '16', '--num-gallery', '128',
        '--dim', '32', '--hidden', '16', '--repeat', '1', '--out',
        str(out)
    ],
                          cwd=REPO,
                          env=tool_env(),
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {row['method']: row for row in json.loads(out.read_text())['rows']}
    streamed = rows['streamed (evaluate_features)']['peak_bytes']
    three = rows['3 modes, one by one']['peak_bytes']
    assert streamed <= three + 8 * 2**20, (streamed, three)
    assert 'streamed - full: max |metric diff| = 0.0e+00' in proc.stdout


TINY = [
    '--num-query', '6', '--num-gallery', '40', '--dim', '16', '--hidden', '8',
    '--repeat', '1'
]


def run_not_exact(tool, argv, tmp_path):
    """The summary a run that is not exact writes before it exits 1."""
    out = tmp_path / 'pair.json'
    with pytest.raises(SystemExit) as exit_info:
        tool.main(argv + ['--out', str(out)])
    assert exit_info.value.code == 1
    summary = json.loads(out.read_text())
    assert summary['exactness']['agrees'] is False
    return summary


def test_agreement_numbers_compare_both_sides(monkeypatch, tmp_path):
    """The logit error compares the direct scoring with the decomposed one
    and the streamed row's metric difference compares its metrics with the
    full ranking's: a wrong side shows in them (they are never a method
    compared with itself), in the JSON written before the run fails."""
    import dataclasses
    tool = load_tool(TOOL)
    real_logits, real_features = tool.mnet_pair_logits, tool.evaluate_features

    def off_direct(*args, method='decomposed', **kwargs):
        logits = real_logits(*args, method=method, **kwargs)
        return logits + 0.5 if method == 'direct' else logits

    def off_map(*args, **kwargs):
        result = real_features(*args, **kwargs)
        return dataclasses.replace(result, mAP=result.mAP + 0.01)

    monkeypatch.setattr(tool, 'mnet_pair_logits', off_direct)
    monkeypatch.setattr(tool, 'evaluate_features', off_map)
    summary = run_not_exact(tool, TINY + ['--topk', '40'], tmp_path)
    rows = {row['method']: row for row in summary['rows']}
    assert summary['max_abs_logit_error'] == pytest.approx(0.5, abs=1e-4)
    streamed = rows['streamed (evaluate_features)']
    assert streamed['max_abs_metric_diff'] == pytest.approx(0.01, abs=1e-6)


def test_one_pass_row_is_checked_on_every_mode(monkeypatch, tmp_path):
    """The one-pass row (shared M-Net logits) must equal the one-by-one
    row in all three modes: a difference in 'fused' alone shows. A top-k
    row with k < G does less work: no ratio to the full-scoring ceiling."""
    import dataclasses
    tool = load_tool(TOOL)
    real_multi, real_share = (tool.evaluate_features_multi,
                              tool.share_mnet_logits)
    shared = []

    def off_fused(*args, **kwargs):
        results = real_multi(*args, **kwargs)
        fused = results['fused']
        results['fused'] = dataclasses.replace(fused, mAP=fused.mAP + 0.02)
        return results

    def share(scorers):
        shared.append(sorted(scorers))
        return real_share(scorers)

    monkeypatch.setattr(tool, 'evaluate_features_multi', off_fused)
    monkeypatch.setattr(tool, 'share_mnet_logits', share)
    summary = run_not_exact(tool, TINY + ['--topk', '10'], tmp_path)
    rows = {row['method']: row for row in summary['rows']}
    one_pass = rows['3 modes, one pass (mmreid)']
    assert one_pass['max_abs_metric_diff'] == pytest.approx(0.02, abs=1e-6)
    # The timed one-pass row shares the M-Net logits of the modes.
    assert shared and all(s == sorted(tool.MODES) for s in shared)
    topk = rows['top-10 rerank']
    assert topk['flops'] == 2 * 6 * 10 * 16 * 8
    assert topk['ratio_to_ceiling'] is None
    assert rows['decomposed (mmreid)']['ratio_to_ceiling'] is not None


@pytest.mark.parametrize('flag', [
    '--num-query', '--num-gallery', '--dim', '--hidden', '--repeat', '--topk'
])
def test_a_count_below_one_is_refused_naming_the_flag(flag, capsys):
    tool = load_tool(TOOL)
    with pytest.raises(SystemExit):
        tool.parse_args([flag, '0'])
    assert f'{flag} must be >= 1, got 0' in capsys.readouterr().err


def test_warm_up_queries_have_a_positive_from_another_camera():
    import numpy as np
    tool = load_tool(TOOL)
    query = np.arange(3)[:, None]
    labels = (np.array([1, 2, 3]), np.array([1, 2, 3]), np.array([0, 0, 0]),
              np.array([0, 1, 1]))
    # Query 0's only match shares its camera: junk, no positive.
    kept, (q_pids, g_pids, q_camids, _) = tool.warm_subset(query, labels)
    assert q_pids.tolist() == [2, 3] and kept[:, 0].tolist() == [1, 2]
    assert q_camids.tolist() == [0, 0] and g_pids is labels[1]


def test_peak_memory_is_the_peak_beyond_the_start(monkeypatch):
    tool = load_tool(TOOL)
    monkeypatch.setattr(tool, 'rss_bytes', lambda: 100)
    monkeypatch.setattr(tool, 'reset_peak_rss', lambda: True)
    for peak, beyond in ((250, 150), (90, 0)):
        monkeypatch.setattr(tool, 'peak_rss_bytes', lambda: peak)
        with tool.PeakMemory('cpu') as memory:
            pass
        assert (memory.peak, memory.exact) == (beyond, True)


def test_a_wrong_decomposed_scoring_is_refused(monkeypatch):
    """mmreid's decomposed scoring is timed as the exact M-Net scoring: a
    result that differs from the direct one must fail the run (as
    benchmark_eval.py exits 1 on DIFFERS), not be printed with a speed."""
    tool = load_tool(TOOL)
    real_logits = tool.mnet_pair_logits

    def wrong_decomposed(*args, method='decomposed', **kwargs):
        logits = real_logits(*args, method=method, **kwargs)
        return logits + 1.0 if method == 'decomposed' else logits

    monkeypatch.setattr(tool, 'mnet_pair_logits', wrong_decomposed)
    with pytest.raises(SystemExit) as exit_info:
        tool.main(TINY + ['--topk', '40'])
    assert exit_info.value.code not in (0, None)


@pytest.mark.parametrize('order', [(0.1, float('nan')), (float('nan'), 0.1)])
def test_a_nan_difference_is_never_within_tolerance(order):
    """Python's max keeps or drops a NaN by its position: a NaN metric
    difference must fail the exactness checks wherever it stands."""
    tool = load_tool(TOOL)
    diff = tool.largest(*order)
    failures = tool.exactness_failures(
        dict(
            max_abs_logit_error=0.0,
            streamed_metric_diff=diff,
            one_pass_metric_diff=0.0),
        tool.parse_args([]))
    assert len(failures) == 1 and failures[0].startswith('streamed')


@pytest.mark.parametrize('value', ['-0.5', 'nan', 'inf'])
@pytest.mark.parametrize('flag', ['--logit-tolerance', '--metric-tolerance'])
def test_a_tolerance_that_is_no_bound_is_refused(flag, value, capsys):
    tool = load_tool(TOOL)
    with pytest.raises(SystemExit):
        tool.parse_args([flag, value])
    assert f'{flag} must be a finite number >= 0' in capsys.readouterr().err
