import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from ..fixtures.processes import load_tool, run_process, tool_env

# A stand-in for fast-reid's evaluation/rank.py: the same call and return
# convention (cmc, per-query AP list, per-query INP list), written here.
FAKE_FASTREID_RANK = '''
import numpy as np


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50,
                  use_cython=True):
    cmcs, aps, inps = [], [], []
    for q in range(len(q_pids)):
        order = np.argsort(distmat[q], kind='stable')
        keep = ~((g_pids[order] == q_pids[q]) &
                 (g_camids[order] == q_camids[q]))
        match = (g_pids[order] == q_pids[q])[keep]
        if not match.any():
            continue
        hits = np.flatnonzero(match) + 1
        cmc = np.zeros(max_rank)
        cmc[hits[0] - 1:] = 1
        cmcs.append(cmc)
        aps.append(np.mean(np.arange(1, len(hits) + 1) / hits))
        inps.append(len(hits) / hits[-1])
    return np.mean(cmcs, axis=0), aps, inps
'''

# A stand-in for fast-reid's evaluation/rerank.py: re_ranking's call
# convention, backed by mmreid's own implementation.
FAKE_FASTREID_RERANK = '''
from mmreid.evaluation.functional import k_reciprocal_rerank_distances


def re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):
    # The standard implementation squares its Euclidean inputs.
    return k_reciprocal_rerank_distances(q_g_dist**2, q_q_dist**2,
                                         g_g_dist**2, k1, k2,
                                         lambda_value).numpy()
'''


def test_tiny_run_agrees_across_methods(tmp_path):
    rank = tmp_path / 'fastreid' / 'fastreid' / 'evaluation' / 'rank.py'
    rank.parent.mkdir(parents=True)
    rank.write_text(FAKE_FASTREID_RANK)
    (rank.parent / 'rerank.py').write_text(FAKE_FASTREID_RERANK)
    out = tmp_path / 'out' / 'bench.json'
    proc = run_process([
        sys.executable, 'tools/analysis_tools/benchmark_eval.py', '--sizes',
        'tiny', '--methods', 'mmreid', 'features', 'fastreid-py', 'rerank',
        'fastreid-rerank', '--reference', '--fastreid-dir',
        str(tmp_path / 'fastreid'), '--threads', '1', '--work-dir',
        str(tmp_path), '--json',
        str(out)
    ],
                       tool_env(),
                       stderr_apart=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    all_rows = json.loads(out.read_text())
    rows = {row['method']: row for row in all_rows}
    # The distance computation of evaluate_features is timed on its own.
    assert 0 < rows['features']['gemm_seconds']
    # fast-reid's Cython evaluator was not asked for: no speed-up column.
    assert all(row['speedup_vs_fastreid_cy'] is None for row in all_rows)
    assert list(rows) == [
        'mmreid', 'features', 'fastreid-py', 'rerank', 'fastreid-rerank',
        'reference'
    ]
    # The bases are not compared with themselves.
    assert rows['mmreid']['max_abs_diff'] is None
    for name in ('features', 'fastreid-py', 'reference'):
        assert rows[name]['max_abs_diff'] < 1e-6, name
        assert rows[name]['base'] == 'mmreid'
    # Re-ranking changes the metrics; its two methods are compared with
    # each other.
    assert rows['rerank']['max_abs_diff'] is None
    assert rows['fastreid-rerank']['base'] == 'rerank'
    assert rows['fastreid-rerank']['max_abs_diff'] < 1e-6
    assert all(row['agrees'] for row in all_rows)
    assert rows['rerank']['mAP'] != rows['mmreid']['mAP']
    assert 0 < rows['mmreid']['mAP'] < 1
    for row in rows.values():
        assert row['seconds'] > 0 and row['peak_over_input'] >= 0
    backend = rows['mmreid']['rank_backend']
    assert backend in ('numba', 'torch')
    assert (f'| tiny (200 x 1,000) | medium | mmreid ({backend}) |'
            in proc.stdout)
    # The inputs lived in a temporary folder under --work-dir.
    assert sorted(p.name for p in tmp_path.iterdir()) == ['fastreid', 'out']


# Deliberately wrong peers: rank.py ranks by the negated distance (worst
# match first), rerank.py returns the distances it is given (no
# re-ranking at all).
WRONG_FASTREID_RANK = FAKE_FASTREID_RANK.replace(
    "order = np.argsort(distmat[q], kind='stable')",
    "order = np.argsort(-distmat[q], kind='stable')")
WRONG_FASTREID_RERANK = '''
def re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):
    return q_g_dist
'''


def test_order_puts_each_base_before_its_rows():
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')
    cases = [
        # A re-ranking peer alone gets rerank as its base, never itself.
        ('fastreid-rerank', 'mmreid rerank fastreid-rerank'),
        ('fastreid-rerank features rerank',
         'mmreid rerank fastreid-rerank features'),
        ('features rerank fastreid-rerank mmreid',
         'mmreid features rerank fastreid-rerank'),
        ('rerank', 'mmreid rerank'),
    ]
    for asked, run in cases:
        assert tool.order_methods(asked.split()) == run.split(), asked


def test_compare_with_bases_flags_a_difference():
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')

    def row(method, cmc, ap, inp=0.5):
        return dict(method=method, cmc=[cmc, 1.0], mAP=ap, mINP=inp)

    rows = [
        row('mmreid', 0.5, 0.4),
        row('fastreid-py', 0.5, 0.4 + 2e-7),
        row('features', 0.5, 0.4, 0.5 + 2e-6),
        row('rerank', 0.9, 0.8),
        row('fastreid-rerank', 0.5, 0.4)
    ]
    tool.compare_with_bases(rows, 1e-6)
    got = {
        r['method']: (r['base'], r['max_abs_diff'], r['agrees'])
        for r in rows
    }
    assert got['mmreid'] == ('mmreid', None, True)
    assert got['rerank'] == ('rerank', None, True)
    assert got['fastreid-py'][2] and got['fastreid-py'][1] < 1e-6
    assert not got['features'][2]
    assert got['fastreid-rerank'][0] == 'rerank'
    assert got['fastreid-rerank'][1] == pytest.approx(0.4)
    assert not got['fastreid-rerank'][2]


def test_a_method_that_differs_is_flagged_and_fails(tmp_path):
    """A wrong peer is not timed and tabled like the others: its row says
    DIFFERS (table and JSON), it gets no speed-up and the tool exits 1.
    A re-ranking peer run alone is compared with mmreid's rerank, which
    the tool adds, not with itself (it printed 0.0e+00)."""
    rank = tmp_path / 'fastreid' / 'fastreid' / 'evaluation' / 'rank.py'
    rank.parent.mkdir(parents=True)
    rank.write_text(WRONG_FASTREID_RANK)
    (rank.parent / 'rerank.py').write_text(WRONG_FASTREID_RERANK)
    out = tmp_path / 'bench.json'
    proc = run_process([
        sys.executable, 'tools/analysis_tools/benchmark_eval.py', '--sizes',
        'tiny', '--feat-dim', '64', '--regime', 'strong', '--methods',
        'fastreid-py', 'fastreid-rerank', '--fastreid-dir',
        str(tmp_path / 'fastreid'), '--threads', '1', '--json',
        str(out)
    ],
                       tool_env(),
                       stderr_apart=True)
    assert proc.returncode == 1, proc.stderr[-2000:]
    rows = {row['method']: row for row in json.loads(out.read_text())}
    assert list(rows) == ['mmreid', 'fastreid-py', 'rerank', 'fastreid-rerank']
    assert rows['fastreid-rerank']['base'] == 'rerank'
    # At 64-d the strong regime is not perfect: re-ranking moves it.
    assert rows['fastreid-rerank']['max_abs_diff'] > 1e-3
    assert rows['fastreid-py']['max_abs_diff'] > 1e-3
    for name in ('fastreid-py', 'fastreid-rerank'):
        assert rows[name]['agrees'] is False
        assert rows[name]['speedup_vs_fastreid_cy'] is None
        assert f'DIFFERS: {name} (tiny, strong)' in proc.stderr
    assert rows['mmreid']['agrees'] and rows['rerank']['agrees']
    table = {
        line.split(' | ')[2]: line
        for line in proc.stdout.splitlines() if line.startswith('| tiny')
    }
    assert table['fastreid-rerank'].endswith(' **DIFFERS** |')
    assert table['rerank'].endswith(' | - |')


def test_regimes_and_contention(tmp_path):
    out = tmp_path / 'bench.json'
    proc = run_process([
        sys.executable, 'tools/analysis_tools/benchmark_eval.py', '--sizes',
        'tiny', '--methods', 'mmreid', '--regime', 'weak', 'strong',
        '--contend', '1', '--threads', '1', '--json',
        str(out)
    ],
                       tool_env(),
                       stderr_apart=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    weak, strong = json.loads(out.read_text())
    assert (weak['regime'], strong['regime']) == ('weak', 'strong')
    # The regimes are what they say: the weak model ranks worse.
    assert weak['mAP'] < 0.5 < 0.9 < strong['mAP']
    assert '1 competing busy process(es)' in proc.stdout
    assert '| tiny (200 x 1,000) | strong | mmreid (' in proc.stdout


def _running(pid):
    """The process exists and is not a zombie."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def test_contenders_stop_when_the_benchmark_is_killed():
    # A killed benchmark cannot stop its busy processes; they stop on
    # their own when their parent is gone (one was left spinning before).
    import os
    import time
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')
    # The parent starts a busy process as the benchmark does and exits
    # without stopping it. The busy process writes nowhere, so that the
    # parent's pipe closes with the parent.
    parent = ('import os, subprocess, sys\n'
              'p = subprocess.Popen([sys.executable, "-c", sys.argv[1], '
              'str(os.getpid())], stdout=subprocess.DEVNULL)\n'
              'print(p.pid, flush=True)\n')
    out = subprocess.run([sys.executable, '-c', parent, tool.BUSY_LOOP],
                         stdout=subprocess.PIPE,
                         text=True,
                         check=True,
                         timeout=60)
    pid = int(out.stdout)
    deadline = time.monotonic() + 20
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _running(pid):
        os.kill(pid, 9)
        raise AssertionError('the busy process outlived its parent')


def test_relative_fastreid_dir_is_made_absolute(monkeypatch, tmp_path):
    # The Cython build runs in the temporary input folder: a relative
    # --fastreid-dir found no rank_cy.pyx there and fast-reid was skipped.
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, 'argv',
                        ['benchmark_eval.py', '--fastreid-dir', 'peers/fr'])
    args = tool.parse_args()
    assert args.fastreid_dir == str(tmp_path / 'peers' / 'fr')


def test_a_missing_work_dir_is_made_and_a_file_refused(monkeypatch, tmp_path,
                                                       capsys):
    """``--work-dir`` that did not exist ended in tempfile's bare
    FileNotFoundError after the tool had started."""
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')
    folder = tmp_path / 'runs' / 'bench'
    monkeypatch.setattr(sys, 'argv',
                        ['benchmark_eval.py', '--work-dir',
                         str(folder)])
    tool.parse_args()
    assert folder.is_dir()
    (tmp_path / 'a_file').write_text('')
    monkeypatch.setattr(
        sys, 'argv',
        ['benchmark_eval.py', '--work-dir',
         str(tmp_path / 'a_file')])
    with pytest.raises(SystemExit):
        tool.parse_args()
    assert 'a_file\' is a file, not a folder' in capsys.readouterr().err


def _row(method, cmc, ap=0.4, inp=0.2):
    return dict(method=method, cmc=list(cmc), mAP=ap, mINP=inp)


def test_every_cmc_rank_and_minp_is_compared():
    """Agreement covers the whole CMC (ranks 1-50), mAP and mINP: a peer
    that differs at rank 5 only, or in mINP only, DIFFERS."""
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')
    cmc = [0.5, 0.6, 0.7, 0.8, 0.9]
    rank5 = cmc[:4] + [0.95]
    rows = [
        _row('mmreid', cmc),
        _row('fastreid-py', rank5),
        _row('reference', cmc, inp=0.3),
        _row('features', cmc)
    ]
    tool.compare_with_bases(rows, 1e-6)
    got = {r['method']: (r['max_abs_diff'], r['agrees']) for r in rows}
    assert got['fastreid-py'] == (pytest.approx(0.05), False)
    assert got['reference'] == (pytest.approx(0.1), False)
    # Identical results agree even with --tolerance 0.
    tool.compare_with_bases(rows, 0.0)
    assert rows[3]['max_abs_diff'] == 0 and rows[3]['agrees']


def _fake_run_size(tool, monkeypatch, records, argv=()):
    """run_size with the inputs, skips and children replaced: each
    method's child reports ``records[method]``."""
    monkeypatch.setattr(tool, 'make_inputs', lambda *args: None)
    monkeypatch.setattr(tool, 'skipped_methods', lambda *args: {})
    monkeypatch.setattr(
        tool, 'run_method_once',
        lambda args, method, folder: dict(
            records[method], peak_over_input=0, gemm_seconds=None))
    monkeypatch.setattr(sys, 'argv', ['benchmark_eval.py', *argv])
    args = tool.parse_args()
    return args


def test_speed_ups_only_between_agreeing_results(monkeypatch, tmp_path):
    """The speed-up over fast-reid's Cython evaluator is given only to a
    row that agrees with its base, and only when fast-reid's own result
    agrees: a wrong computation is never reported as faster."""
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')
    cmc = [0.5, 0.9]
    records = {
        'mmreid': dict(_row('mmreid', cmc), seconds=1.0),
        'features': dict(_row('features', cmc), seconds=2.0),
        'reference': dict(_row('reference', cmc, ap=0.3), seconds=8.0),
        'fastreid-cy': dict(_row('fastreid-cy', cmc), seconds=4.0),
    }
    args = _fake_run_size(tool, monkeypatch, records)
    methods = ['mmreid', 'features', 'reference', 'fastreid-cy']
    rows = tool.run_size(args, methods, str(tmp_path), 'tiny', 'strong')
    speedup = {r['method']: r['speedup_vs_fastreid_cy'] for r in rows}
    assert speedup == dict(
        mmreid=4.0, features=2.0, reference=None, **{'fastreid-cy': 1.0})
    # fast-reid's Cython result differs: nobody is compared with it.
    records['fastreid-cy']['mAP'] = 0.5
    rows = tool.run_size(args, methods, str(tmp_path), 'tiny', 'medium')
    assert [r['speedup_vs_fastreid_cy'] for r in rows] == [None] * 4
    assert [r['agrees'] for r in rows] == [True, True, False, False]


def test_run_size_judges_with_the_given_tolerance(monkeypatch, tmp_path):
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')
    records = {
        'mmreid': dict(_row('mmreid', [0.5]), seconds=1.0),
        'fastreid-py': dict(_row('fastreid-py', [0.5], ap=0.4 + 1e-4),
                            seconds=1.0),
    }
    methods = ['mmreid', 'fastreid-py']
    args = _fake_run_size(tool, monkeypatch, records)
    rows = tool.run_size(args, methods, str(tmp_path), 'tiny', 'strong')
    assert rows[1]['agrees'] is False
    args = _fake_run_size(tool, monkeypatch, records, ['--tolerance', '1e-3'])
    rows = tool.run_size(args, methods, str(tmp_path), 'tiny', 'medium')
    assert rows[1]['agrees'] is True


def test_repeated_runs_report_the_median_and_the_largest_peak():
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')
    runs = [
        dict(seconds=s, peak_over_input=p, gemm_seconds=None, mAP=0.4)
        for s, p in ((3.0, 10), (1.0, 30), (2.0, 20))
    ]
    record = tool.summarize_runs(runs)
    assert (record['seconds'], record['best_seconds']) == (2.0, 1.0)
    assert record['all_seconds'] == [3.0, 1.0, 2.0]
    assert record['peak_over_input'] == 30


def test_repeats_that_give_other_metrics_do_not_agree():
    """Only the first repeat's metrics were compared with the base: a
    method whose later repeats gave another mAP agreed. Now the largest
    difference between repeats is recorded, and beyond --tolerance the
    row (a base too) does not agree."""
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')

    def run(mAP, method):
        return dict(seconds=1.0, peak_over_input=1, gemm_seconds=None,
                    cmc=np.array([0.5, 1.0]), mAP=mAP, mINP=0.1,
                    method=method)

    rows = []
    for method, maps in (('mmreid', (0.4, 0.4)), ('features', (0.4, 0.41))):
        record = tool.summarize_runs([run(m, method) for m in maps])
        rows.append(record)
    assert rows[1]['repeat_max_abs_diff'] == pytest.approx(0.01)
    tool.compare_with_bases(rows, 1e-6)
    assert [r['agrees'] for r in rows] == [True, False]
    assert rows[1]['max_abs_diff'] == 0.0
    rows = [tool.summarize_runs([run(m, 'mmreid') for m in (0.4, 0.5)])]
    tool.compare_with_bases(rows, 1e-6)
    assert rows[0]['agrees'] is False and rows[0]['max_abs_diff'] is None


def test_skipped_methods_say_why(tmp_path):
    """The brute-force reference is skipped at the MSMT17 size only; a
    --fastreid-dir without fastreid/evaluation/rank.py skips fast-reid's
    evaluators (not a child that crashes on the missing file)."""
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')
    args = SimpleNamespace(fastreid_dir=None)
    assert tool.skipped_methods(args, ['mmreid', 'reference'], 'market',
                                str(tmp_path)) == {}
    assert tool.skipped_methods(args, ['reference'], 'msmt',
                                str(tmp_path)) == {
                                    'reference': 'too slow at the MSMT17 size'
                                }
    assert tool.skipped_methods(args, ['fastreid-py'], 'tiny',
                                str(tmp_path)) == {
                                    'fastreid-py': 'no --fastreid-dir'
                                }
    args = SimpleNamespace(fastreid_dir=str(tmp_path / 'empty'))
    skipped = tool.skipped_methods(args, ['mmreid', 'fastreid-py'], 'tiny',
                                   str(tmp_path))
    assert 'rank.py not found' in skipped['fastreid-py']


def test_fastreid_dir_adds_its_evaluator_to_the_default_pair_only(
        monkeypatch, tmp_path):
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')
    asked = []
    monkeypatch.setattr(
        tool, 'run_size',
        lambda args, methods, *rest: asked.append(methods) or [])
    monkeypatch.setattr(tool, 'print_table', lambda *args: None)
    fastreid = ['--fastreid-dir', str(tmp_path), '--work-dir', str(tmp_path)]
    for argv in ([], ['--methods', 'mmreid', 'rerank']):
        monkeypatch.setattr(sys, 'argv',
                            ['benchmark_eval.py', *fastreid, *argv])
        tool.main()
    assert asked == [['mmreid', 'features', 'fastreid-py'],
                     ['mmreid', 'rerank']]


def test_table_prints_each_rows_own_metrics(capsys):
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')
    args = SimpleNamespace(
        threads=1,
        feat_dim=64,
        device='cpu',
        contend=0,
        repeats=1,
        malloc_mmap_threshold=None,
        tolerance=1e-6)
    row = dict(
        _row('fastreid-py', [0.125, 0.5], ap=0.34, inp=0.05),
        size='tiny',
        regime='weak',
        seconds=1.5,
        best_seconds=1.25,
        peak_over_input=0,
        speedup_vs_fastreid_cy=None,
        max_abs_diff=2e-3,
        agrees=False)
    tool.print_table(args, [row])
    assert ('| tiny (200 x 1,000) | weak | fastreid-py | 1.50 (1.25) | - | '
            '0.000 | 12.50 / 34.00 / 5.00 | 2.0e-03 **DIFFERS** |'
            in capsys.readouterr().out)


def test_a_nan_metric_does_not_agree():
    """A peer whose mAP or mINP is NaN (e.g. the mean of an empty list)
    did not compute the base's result: it must not agree and get timed
    like a correct one."""
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')
    rows = [
        _row('mmreid', [0.5, 0.9]),
        _row('fastreid-py', [0.5, 0.9], ap=float('nan'), inp=float('nan'))
    ]
    tool.compare_with_bases(rows, 1e-6)
    assert rows[1]['agrees'] is False


def test_rerank_rows_get_no_speed_up_over_a_plain_evaluator(
        monkeypatch, tmp_path):
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')
    records = {
        'mmreid': dict(_row('mmreid', [0.5]), seconds=1.0),
        'fastreid-cy': dict(_row('fastreid-cy', [0.5]), seconds=2.0),
        'rerank': dict(_row('rerank', [0.7], ap=0.6), seconds=20.0),
    }
    args = _fake_run_size(tool, monkeypatch, records)
    rows = tool.run_size(args, list(records), str(tmp_path), 'tiny',
                         'strong')
    assert rows[2]['method'] == 'rerank'
    assert rows[2]['speedup_vs_fastreid_cy'] is None


def test_cmc_curves_of_other_lengths_are_refused_not_broadcast():
    """A peer that gave one CMC rank was compared, by broadcasting, with
    every rank of the base: refused, naming both."""
    tool = load_tool('tools/analysis_tools/benchmark_eval.py')
    rows = [_row('mmreid', [0.5, 0.9, 0.95]), _row('fastreid-py', [0.5])]
    with pytest.raises(ValueError,
                       match='fastreid-py gave 1 CMC ranks, mmreid 3'):
        tool.compare_with_bases(rows, 1e-6)
