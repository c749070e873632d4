import json

import pytest

from ..fixtures.processes import load_tool

TOOL = 'tools/analysis_tools/benchmark_pair_scoring.py'


def test_tiny_run_writes_json(tmp_path, capsys):
    tool = load_tool(TOOL)
    out = tmp_path / 'sub' / 'pair_scoring.json'
    summary = tool.main([
        '--num-query', '6', '--num-gallery', '40', '--dim', '16', '--hidden',
        '8', '--topk', '40', '--repeat', '1', '--memory-budget-mb', '0.01',
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
