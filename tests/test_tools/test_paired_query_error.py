"""tools/analysis_tools/paired_query_error.py: the difference of two runs
on the same queries, with its error clustered by query identity."""
import json
import re

import numpy as np
import pytest

from mmreid.evaluation.sampling_error import query_sampling_error
from ..fixtures.processes import load_tool

TOOL = 'tools/analysis_tools/paired_query_error.py'


def write(path, **arrays):
    with open(path, 'wb') as f:
        np.savez(f, **arrays)
    return str(path)


def two_runs(tmp_path):
    """Six queries of three identities; B holds them in another order."""
    paths = np.array([f'q/{i}.jpg' for i in range(6)])
    pids = np.array([1, 1, 2, 2, 3, 3])
    rank_a = np.array([1, 2, 1, 0, 3, 1])  # query 3 has no positive
    ap_a = np.array([1.0, 0.5, 1.0, np.nan, 0.2, 0.9])
    rank_b = np.array([1, 1, 2, 0, 1, 1])
    ap_b = np.array([1.0, 0.8, 0.4, np.nan, 0.6, 1.0])
    order = np.array([5, 3, 0, 1, 4, 2])
    a = write(
        tmp_path / 'a.npz', **{
            'd3/img_path': paths,
            'd3/pid': pids,
            'd3/first_rank': rank_a,
            'd3/ap': ap_a
        })
    b = write(
        tmp_path / 'b.npz', **{
            'd3/img_path': paths[order],
            'd3/pid': pids[order],
            'd3/first_rank': rank_b[order],
            'd3/ap': ap_b[order],
            'other/img_path': paths,
            'other/pid': pids,
            'other/first_rank': rank_b,
            'other/ap': ap_b
        })
    return a, b, (pids, rank_a, ap_a, rank_b, ap_b)


def test_differences_are_per_matched_query(tmp_path):
    tool = load_tool(TOOL)
    a, b, (pids, rank_a, ap_a, rank_b, ap_b) = two_runs(tmp_path)
    rows = tool.paired_rows(tool.load_per_query(a), tool.load_per_query(b))
    assert [(r['section'], r['metric']) for r in rows] == [('d3', 'R1'),
                                                           ('d3', 'mAP')]
    valid = np.arange(6) != 3
    # R1 hits: A 1 0 1 - 0 1, B 1 1 0 - 1 1: differences 0 1 -1 1 0.
    r1 = rows[0]
    assert r1['a'] == pytest.approx(60.0) and r1['b'] == pytest.approx(80.0)
    assert r1['diff'] == pytest.approx(20.0)
    expected = query_sampling_error(
        100.0 * ((rank_b == 1).astype(float) - (rank_a == 1))[valid],
        pids[valid])
    assert r1['se_clustered'] == pytest.approx(expected.se_clustered)
    assert r1['se_independent'] == pytest.approx(expected.se_independent)
    # Three identities: Student t(0.975; 2 df), exactly 0.95 /
    # sqrt(2 x 0.975 x 0.025) = 4.30265.
    t = 0.95 / (2 * 0.975 * 0.025)**0.5
    assert r1['low'] == pytest.approx(20.0 - t * expected.se_clustered)
    assert (r1['queries'], r1['identities']) == (5, 3)
    m = rows[1]
    assert m['diff'] == pytest.approx(100 * np.mean(ap_b[valid] - ap_a[valid]))
    table = tool.format_rows(rows)
    assert '| d3 | R1 | 60.00 | 80.00 | +20.00 |' in table


def test_trial_rows_and_the_command_line(tmp_path, capsys):
    tool = load_tool(TOOL)
    common = {
        'vi/img_path': np.array(['a', 'b', 'c']),
        'vi/pid': np.array([1, 2, 3]),
        'vi/first_rank': np.array([1, 1, 2]),
        'vi/ap': np.array([1.0, 1.0, 0.5]),
        'vi/trial_img_path': np.array(['c', 'b', 'a']),
        'vi/trial_pid': np.array([3, 2, 1]),
    }
    a = write(
        tmp_path / 'a.npz', **common, **{
            'vi/trial_r1': np.array([0.5, 0.1, 1.0]),
            'vi/trial_ap': np.array([0.5, 0.2, 1.0])
        })
    (tmp_path / 'b').mkdir()
    write(
        tmp_path / 'b' / 'per_query.npz', **common, **{
            'vi/trial_r1': np.array([0.7, 0.4, 1.0]),
            'vi/trial_ap': np.array([0.6, 0.2, 1.0])
        })
    out = tmp_path / 'table.md'
    assert tool.main([a, str(tmp_path / 'b'), '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert '| vi | R1 (trial average) | 53.33 | 70.00 | +16.67 |' in printed
    assert out.read_text().strip() == printed.strip()


def test_sections_in_one_report_are_named(tmp_path, capsys):
    """A section only one report holds (B's 'other') was dropped without a
    word: the table looked like the whole comparison. It is now listed
    under the table (and in --out) as not compared."""
    tool = load_tool(TOOL)
    a, b, _ = two_runs(tmp_path)
    out = tmp_path / 'table.md'
    assert tool.main([a, b, '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"Not compared (A: {a}, B: {b}):\n* section 'other': only in B" \
        in printed
    assert out.read_text().strip() == printed.strip()
    left_out = []
    tool.paired_rows(tool.load_per_query(b), tool.load_per_query(a), left_out)
    assert left_out == ["section 'other': only in A"]


def test_runs_on_different_queries_are_refused(tmp_path):
    tool = load_tool(TOOL)
    a, _, (pids, rank_a, ap_a, *_) = two_runs(tmp_path)
    c = write(
        tmp_path / 'c.npz', **{
            'd3/img_path': np.array([f'q/{i}.jpg' for i in range(1, 7)]),
            'd3/pid': pids,
            'd3/first_rank': rank_a,
            'd3/ap': ap_a
        })
    with pytest.raises(
            ValueError,
            match=r"section 'd3': the runs have "
            r'different queries \(1 only in A, 1 only in B\)'):
        tool.paired_rows(tool.load_per_query(a), tool.load_per_query(c))
    d = write(
        tmp_path / 'd.npz', **{
            'd3/img_path': np.array([f'q/{i}.jpg' for i in range(6)]),
            'd3/pid': pids[::-1],
            'd3/first_rank': rank_a,
            'd3/ap': ap_a
        })
    with pytest.raises(ValueError, match='different pids'):
        tool.paired_rows(tool.load_per_query(a), tool.load_per_query(d))
    with pytest.raises(FileNotFoundError, match='per_query.npz'):
        tool.load_per_query(str(tmp_path))
    e = write(tmp_path / 'e.npz', **{'other/img_path': np.array(['x'])})
    with pytest.raises(SystemExit, match='share no section'):
        tool.main([a, e])


def test_clustered_error_and_interval_from_the_definition(tmp_path):
    """Both ends of the interval are mean -+ t(0.975; G - 1) clustered SEs
    for G identities, the SEs as query_sampling_error defines them, worked
    by hand. The error is estimated from G draws: a normal quantile (1.96)
    would give an interval less than half as wide with three."""
    tool = load_tool(TOOL)
    a, b, _ = two_runs(tmp_path)
    r1 = tool.paired_rows(tool.load_per_query(a), tool.load_per_query(b))[0]
    # Valid queries 0 1 2 4 5 (pids 1 1 2 3 3), B - A hits in percent:
    # 0 100 -100 100 0, mean 20. Per identity t_g - m n_g: 100 - 40,
    # -100 - 20, 100 - 40: sqrt(3 / 2 * 21600) / 5 = 36. Independent:
    # deviations -20 80 -120 80 -20: sqrt(5 / 4 * 28000) / 5.
    assert r1['se_clustered'] == pytest.approx(36.0)
    assert r1['se_independent'] == pytest.approx(np.sqrt(35000) / 5)
    # G = 3: t(0.975; 2) = 4.3026527 (exact); x 36 = 154.8955.
    assert r1['low'] == pytest.approx(20.0 - 154.8955, abs=1e-4)
    assert r1['high'] == pytest.approx(20.0 + 154.8955, abs=1e-4)
    # The 3-decimal table's 4.303 printed [-134.91, +174.91].
    assert '[-134.90, +174.90]' in tool.format_rows([r1])


def test_trial_rows_are_clustered_by_the_trial_pids(tmp_path):
    """Trial rows are matched by trial_img_path and clustered by
    trial_pid, which need not be in the order of img_path / pid."""
    tool = load_tool(TOOL)
    common = {
        'vi/img_path': np.array(['a', 'b', 'c', 'd']),
        'vi/pid': np.array([1, 1, 2, 2]),
        'vi/trial_img_path': np.array(['a', 'c', 'b', 'd']),
        'vi/trial_pid': np.array([1, 2, 1, 2]),
    }
    a = write(tmp_path / 'a.npz', **common,
              **{'vi/trial_r1': np.array([0.5, 1.0, 0.1, 0.2])})
    b = write(tmp_path / 'b.npz', **common,
              **{'vi/trial_r1': np.array([0.7, 1.0, 0.4, 0.2])})
    (row, ) = tool.paired_rows(tool.load_per_query(a), tool.load_per_query(b))
    # B - A in percent: a 20, c 0, b 30, d 0; mean 12.5. Identity 1 (a, b):
    # 50 - 2 * 12.5 = 25; identity 2 (c, d): -25. sqrt(2 * 1250) / 4.
    assert row['metric'] == 'R1 (trial average)'
    assert row['diff'] == pytest.approx(12.5)
    assert row['se_clustered'] == pytest.approx(12.5)
    assert (row['queries'], row['identities']) == (4, 2)
    # Two identities: t(0.975; 1) = 12.706 (tables).
    assert row['low'] == pytest.approx(12.5 - 12.706 * 12.5, abs=0.01)


def test_only_queries_valid_in_both_runs_count(tmp_path):
    """A query without a positive (first_rank 0) or without an AP (NaN) in
    either run is left out of both; a section keeps a row with two valid
    queries and is listed as not compared with one."""
    tool = load_tool(TOOL)
    two = {
        'img_path': np.array(['x', 'y', 'z']),
        'pid': np.array([1, 2, 3]),
    }
    one = {'img_path': np.array(['u', 'v']), 'pid': np.array([1, 2])}
    a = write(
        tmp_path / 'a.npz', **{
            f'two/{k}': v
            for k, v in two.items()
        }, **{
            'two/first_rank': np.array([0, 1, 2]),
            'two/ap': np.array([0.3, 1.0, 1 / 3]),
            'one/img_path': one['img_path'],
            'one/pid': one['pid'],
            'one/first_rank': np.array([1, 0]),
        })
    b = write(
        tmp_path / 'b.npz', **{
            f'two/{k}': v
            for k, v in two.items()
        }, **{
            'two/first_rank': np.array([1, 1, 1]),
            'two/ap': np.array([np.nan, 1.0, 1.0]),
            'one/img_path': one['img_path'],
            'one/pid': one['pid'],
            'one/first_rank': np.array([1, 1]),
        })
    left_out = []
    rows = tool.paired_rows(
        tool.load_per_query(a), tool.load_per_query(b), left_out)
    r1, ap = rows
    # R1 on y and z only: A 1 0, B 1 1.
    assert (r1['section'], r1['metric'], r1['queries']) == ('two', 'R1', 2)
    assert (r1['a'], r1['b'], r1['diff']) == pytest.approx((50, 100, 50))
    # mAP on y and z only: A 1 and 1/3, B 1 and 1, in percent.
    assert (ap['metric'], ap['queries']) == ('mAP', 2)
    assert (ap['a'], ap['b']) == pytest.approx((200 / 3, 100))
    assert left_out == ["section 'one', R1: 1 queries valid in both"]


def test_a_metric_in_one_run_names_that_run(tmp_path):
    tool = load_tool(TOOL)
    a, b, _ = two_runs(tmp_path)
    runs_a, runs_b = tool.load_per_query(a), tool.load_per_query(b)
    del runs_b['d3']['ap']
    left_out = []
    tool.paired_rows(runs_a, runs_b, left_out)
    assert "section 'd3', mAP: only in A" in left_out
    left_out = []
    tool.paired_rows(runs_b, runs_a, left_out)
    assert "section 'd3', mAP: only in B" in left_out


@pytest.mark.parametrize('run', ['A', 'B'])
def test_a_run_that_repeats_a_query_is_refused(tmp_path, run):
    tool = load_tool(TOOL)
    a, b, _ = two_runs(tmp_path)
    runs = {'A': tool.load_per_query(a), 'B': tool.load_per_query(b)}
    paths = runs[run]['d3']['img_path'].copy()
    paths[1] = paths[0]
    runs[run]['d3']['img_path'] = paths
    with pytest.raises(
            ValueError,
            match=f"section 'd3': run {run} repeats query image paths"):
        tool.paired_rows(runs['A'], runs['B'])


def test_query_counts_of_each_run_are_named(tmp_path):
    """The refusal counts the queries only A holds and only B holds."""
    tool = load_tool(TOOL)
    a, b, _ = two_runs(tmp_path)
    runs_a, runs_b = tool.load_per_query(a), tool.load_per_query(b)
    runs_b['d3'] = {k: v[:4] for k, v in runs_b['d3'].items()}
    with pytest.raises(ValueError, match=r'\(2 only in A, 0 only in B\)'):
        tool.paired_rows(runs_a, runs_b)
    with pytest.raises(ValueError, match=r'\(0 only in A, 2 only in B\)'):
        tool.paired_rows(runs_b, runs_a)


def test_a_section_name_may_hold_a_slash(tmp_path):
    """A key is <section>/<array>: the array is after the last slash, so
    a target with a distance mode (d3/mnet) is one section."""
    tool = load_tool(TOOL)
    path = write(
        tmp_path / 'a.npz', **{
            'd3/mnet/img_path': np.array(['x']),
            'd3/mnet/ap': np.array([0.5])
        })
    sections = tool.load_per_query(path)
    assert list(sections) == ['d3/mnet']
    assert sorted(sections['d3/mnet']) == ['ap', 'img_path']


def report_file(path, gallery, settings=None):
    """A per_query.npz as EvalReportHook writes it: two queries of two
    identities ranked against ``gallery`` (img_path, pid, camid)."""
    from types import SimpleNamespace

    from mmreid.engine.hooks.report_hook import (EvalReportHook,
                                                 ranking_settings)
    query = [dict(img_path=f'q/{i}.jpg', pid=i, camid=0) for i in range(3)]
    analysis = SimpleNamespace(
        first_rank=np.array([1, 2, 1]), ap=np.array([1.0, 0.5, 1.0]))
    metric = SimpleNamespace(rerank=None, query_expansion=None)
    setup = dict(metric='ReIDMetric', distance='euclidean')
    setup.update(settings or {})
    arrays = EvalReportHook.per_query_arrays(
        'd3',
        query,
        analysis,
        metric,
        gallery=[dict(img_path=p, pid=i, camid=c) for p, i, c in gallery],
        settings=ranking_settings(setup, metric, True))
    return write(path, **arrays)


GALLERY = [(f'g/{i}.jpg', i % 3, 1) for i in range(6)]


def test_runs_on_different_galleries_are_refused(tmp_path):
    """The same queries against half the gallery: the difference would
    mix the model with the gallery (user audit 2, finding 6a)."""
    tool = load_tool(TOOL)
    a = tool.load_per_query(report_file(tmp_path / 'a.npz', GALLERY))
    b = tool.load_per_query(report_file(tmp_path / 'b.npz', GALLERY[::2]))
    with pytest.raises(
            ValueError,
            match=r"section 'd3': the runs have different galleries "
            r'\(6 items in A, 3 in B\)'):
        tool.paired_rows(a, b)
    # Same size, another item (a pid changed): refused too.
    other = GALLERY[:-1] + [('g/5.jpg', 0, 1)]
    c = tool.load_per_query(report_file(tmp_path / 'c.npz', other))
    with pytest.raises(ValueError, match='other paths or labels'):
        tool.paired_rows(a, c)
    # The same gallery in another order is the same gallery.
    d = tool.load_per_query(report_file(tmp_path / 'd.npz', GALLERY[::-1]))
    assert len(tool.paired_rows(a, d)) == 2


def test_runs_with_different_settings_are_refused(tmp_path, capsys):
    tool = load_tool(TOOL)
    a = report_file(tmp_path / 'a.npz', GALLERY)
    b = report_file(tmp_path / 'b.npz', GALLERY, dict(distance='cosine'))
    with pytest.raises(
            ValueError,
            match=r"section 'd3': the runs were evaluated with different "
            r"settings \(distance: 'euclidean' in A, 'cosine' in B\).*"
            r'--allow-different distance'):
        tool.paired_rows(tool.load_per_query(a), tool.load_per_query(b))
    assert tool.main([a, b, '--allow-different', 'distance']) == 0
    assert "* section 'd3': distance differs, allowed ('euclidean' in A, " \
        "'cosine' in B)" in capsys.readouterr().out


def test_whole_gallery_values_that_are_not_the_reported_ranking(tmp_path):
    """A hook that ranked plain distances for a re-ranking metric says so;
    those rows are left out, not shown as the run's."""
    from mmreid.engine.hooks.report_hook import ranking_settings
    metric = ReIDMetricLike(rerank=dict(k1=20))
    settings = ranking_settings(dict(distance='euclidean'), metric, False)
    assert settings['values'] == \
        "plain distances, without the metric's rerank"
    assert ranking_settings(dict(distance='euclidean'), metric,
                            True)['values'] == 'reported ranking'
    tool = load_tool(TOOL)
    arrays = tool.load_per_query(report_file(tmp_path / 'a.npz', GALLERY))
    arrays['d3']['settings'] = np.array(
        json.dumps(
            dict(
                json.loads(str(arrays['d3']['settings'])),
                values=settings['values'])))
    left_out = []
    assert tool.paired_rows(arrays, arrays, left_out) == []
    assert left_out[0] == (
        "section 'd3', R1: not the reported ranking (A holds plain "
        "distances, without the metric's rerank; B holds plain distances, "
        "without the metric's rerank)")


def ReIDMetricLike(**kwargs):
    from types import SimpleNamespace
    return SimpleNamespace(
        **dict(dict(rerank=None, query_expansion=None), **kwargs))


def test_files_without_the_records_pair_with_a_note(tmp_path, capsys):
    """Older files hold no gallery or settings: they still pair, and the
    table says these were not checked."""
    tool = load_tool(TOOL)
    a, _, _ = two_runs(tmp_path)
    c = report_file(tmp_path / 'c.npz', GALLERY)
    old = write(
        tmp_path / 'old.npz', **{
            k: v
            for k, v in np.load(c).items()
            if k.split('/')[1] not in tool.SETUP_KEYS
        })
    assert tool.main([old, c]) == 0
    assert ("* section 'd3': run A recorded no gallery or evaluation "
            'settings') in capsys.readouterr().out
    notes = []
    tool.paired_rows(
        tool.load_per_query(a), tool.load_per_query(a), None, notes)
    assert notes == [
        "section 'd3': runs A and B recorded no gallery or evaluation "
        'settings (written before they were recorded), so it was not '
        'checked that both ranked the same gallery in the same way, nor that '
        'the values are the ranking each run reported (they are not for a '
        're-ranked run)'
    ]


def hook_file(path, gallery=GALLERY, settings=None, **metric):
    """Like :func:`report_file`, the metric's ``rerank`` and
    ``query_expansion`` given; ``settings`` replaces entries of what
    :func:`ranking_settings` records."""
    from types import SimpleNamespace

    from mmreid.engine.hooks.report_hook import (EvalReportHook,
                                                 ranking_settings)
    query = [dict(img_path=f'q/{i}.jpg', pid=i, camid=0) for i in range(3)]
    analysis = SimpleNamespace(
        first_rank=np.array([1, 2, 1]), ap=np.array([1.0, 0.5, 1.0]))
    metric = ReIDMetricLike(**metric)
    recorded = ranking_settings(
        dict(metric='ReIDMetric', distance='euclidean'), metric, True)
    recorded.update(settings or {})
    arrays = EvalReportHook.per_query_arrays(
        'd3',
        query,
        analysis,
        metric,
        gallery=[dict(img_path=p, pid=i, camid=c) for p, i, c in gallery],
        settings=recorded)
    return load_tool(TOOL).load_per_query(write(path, **arrays))


@pytest.mark.parametrize(
    'a, b, shown',
    [
        (dict(rerank=dict(k1=20, k2=6, lambda_value=0.3)),
         dict(rerank=dict(k1=30, k2=6, lambda_value=0.3)),
         'rerank: \'{"k1": 20, "k2": 6, "lambda_value": 0.3}\' in A, '
         '\'{"k1": 30, "k2": 6, "lambda_value": 0.3}\' in B'),
        (dict(query_expansion=dict(k=5)), dict(),
         'query_expansion: \'{"k": 5}\' in A, \'none\' in B'),
        # A setting that one run records and the other does not.
        (dict(settings=dict(protocol='all-shot')), dict(),
         "protocol: 'all-shot' in A, None in B"),
    ])
def test_every_recorded_setting_is_compared(tmp_path, a, b, shown):
    """Re-ranking with other parameters, query expansion in one run, or a
    setting only one run records: the runs ranked in different ways."""
    tool = load_tool(TOOL)
    with pytest.raises(
            ValueError,
            match='different settings \\(' + re.escape(shown) + '\\)'):
        tool.paired_rows(
            hook_file(tmp_path / 'a.npz', **a),
            hook_file(tmp_path / 'b.npz', **b))


def test_a_gallery_with_another_camera_label_is_another_gallery(tmp_path):
    """The digest covers each item's camid: the same-camera filter of a
    query removes other gallery items."""
    tool = load_tool(TOOL)
    other = [(p, i, 2 if p == 'g/4.jpg' else c) for p, i, c in GALLERY]
    with pytest.raises(ValueError, match='other paths or labels'):
        tool.paired_rows(
            hook_file(tmp_path / 'a.npz'), hook_file(tmp_path / 'b.npz',
                                                     other))


def test_runs_whose_values_rank_differently_are_left_out_not_refused(tmp_path):
    """``values`` says what the whole-gallery arrays rank, not how the
    run was evaluated: a run whose hook ranked plain distances is left
    out of the rows (with why), not refused as another setting; its trial
    rows are still the reported ones."""
    tool = load_tool(TOOL)
    plain = "plain distances, without the metric's rerank"
    a = hook_file(tmp_path / 'a.npz')
    b = hook_file(tmp_path / 'b.npz', settings=dict(values=plain))
    trials = {
        'trial_img_path': np.array(['t0', 't1', 't2']),
        'trial_pid': np.array([1, 1, 2]),
        'trial_r1': np.array([1.0, 0.5, 0.0]),
        'trial_ap': np.array([0.9, 0.5, 0.2])
    }
    a['d3'].update(trials)
    b['d3'].update(trials)
    left_out = []
    rows = tool.paired_rows(a, b, left_out)
    assert [r['metric']
            for r in rows] == ['R1 (trial average)', 'mAP (trial average)']
    assert left_out == [
        f"section 'd3', R1: not the reported ranking (B holds {plain})",
        f"section 'd3', mAP: not the reported ranking (B holds {plain})"
    ]
    # A file that records no 'values' entry holds the reported ranking.
    del_values = json.loads(str(a['d3']['settings']))
    del del_values['values']
    a['d3']['settings'] = np.array(json.dumps(del_values))
    assert len(tool.paired_rows(a, a)) == 4


def test_a_file_with_a_gallery_but_no_settings_pairs_with_a_note(tmp_path):
    """``per_query_arrays`` given a gallery and no settings writes part of
    the records: the pair is not checked, and says so."""
    tool = load_tool(TOOL)
    a = hook_file(tmp_path / 'a.npz')
    del a['d3']['settings']
    notes = []
    assert len(tool.paired_rows(a, a, None, notes)) == 2
    assert notes[0].startswith(
        "section 'd3': runs A and B recorded no gallery or evaluation "
        'settings')


def test_ranking_settings_record_the_mode_and_what_the_values_rank():
    """The primary mode (GMN's) is a setting; without re-ranking or query
    expansion, the hook's plain distances are the reported ranking."""
    from mmreid.engine.hooks.report_hook import ranking_settings
    setup = dict(distance='mnet (primary mode)')
    settings = ranking_settings(setup, ReIDMetricLike(primary_scorer='mnet'),
                                False)
    assert settings == dict(
        setup,
        primary_mode='mnet',
        rerank='none',
        query_expansion='none',
        values='reported ranking')
    assert ranking_settings(setup, ReIDMetricLike(),
                            True)['primary_mode'] == ''


def test_no_row_to_show_lists_what_was_left_out(tmp_path):
    """With nothing to compare, the error still says why each part was
    left out."""
    tool = load_tool(TOOL)
    plain = "plain distances, without the metric's rerank"
    a = report_file(tmp_path / 'a.npz', GALLERY)
    b = write(
        tmp_path / 'c.npz', **{
            f'd3/{k}': v
            for k, v in hook_file(
                tmp_path / 'b.npz', settings=dict(values=plain))['d3'].items()
        })
    with pytest.raises(SystemExit) as info:
        tool.main([a, b])
    assert f"* section 'd3', R1: not the reported ranking (B holds {plain})" \
        in str(info.value)


def test_a_metric_in_one_run_is_named_when_the_other_is_not_reported(
        tmp_path):
    """Every metric the table does not show gets its line: one that only
    A holds is 'only in A', also when B's values are not its reported
    ranking."""
    tool = load_tool(TOOL)
    plain = "plain distances, without the metric's rerank"
    a = hook_file(tmp_path / 'a.npz')
    b = hook_file(tmp_path / 'b.npz', settings=dict(values=plain))
    del b['d3']['ap']
    left_out = []
    assert tool.paired_rows(a, b, left_out) == []
    assert left_out == [
        f"section 'd3', R1: not the reported ranking (B holds {plain})",
        "section 'd3', mAP: only in A"
    ]


def test_one_identity_gives_no_interval(tmp_path):
    """The clustered error of one identity is estimated from one draw: no
    t interval exists (G - 1 = 0 degrees of freedom), so none is given,
    while the difference itself is."""
    tool = load_tool(TOOL)
    common = {'d3/img_path': np.array(['a', 'b']), 'd3/pid': np.array([4, 4])}
    a = write(tmp_path / 'a.npz', **common,
              **{'d3/first_rank': np.array([1, 2])})
    b = write(tmp_path / 'b.npz', **common,
              **{'d3/first_rank': np.array([1, 1])})
    (row, ) = tool.paired_rows(tool.load_per_query(a), tool.load_per_query(b))
    # R1 hits: A 1 0, B 1 1: differences 0 and 100 percent, mean 50.
    assert row['diff'] == pytest.approx(50.0)
    assert (row['queries'], row['identities']) == (2, 1)
    assert np.isnan(row['low']) and np.isnan(row['high'])
    # Printed as none, as the report prints it, not "[+nan, +nan]".
    line = tool.format_rows([row]).splitlines()[-1]
    assert 'nan' not in line
    assert line.endswith('| +50.00 | 50.00 | - | - | 2 | 1 |')


@pytest.mark.parametrize('run', ['A', 'B'])
@pytest.mark.parametrize('change', [1, -1, 'missing'])
def test_values_not_one_per_query_are_refused(tmp_path, run, change):
    """A file not written whole: B's values one longer than its paths were
    paired silently (the extra one dropped), one shorter gave an
    IndexError traceback, A's shorter numpy's broadcast error."""
    tool = load_tool(TOOL)
    a, b, _ = two_runs(tmp_path)
    runs = {'A': tool.load_per_query(a), 'B': tool.load_per_query(b)}
    section = runs[run]['d3']
    if change == 'missing':  # a value missing is a metric left out
        del section['pid']
        match = f"section 'd3': run {run} has no 'pid'"
    else:
        ranks = section['first_rank']
        section['first_rank'] = np.append(ranks, 1) if change == 1 \
            else ranks[:-1]
        match = (f"section 'd3': run {run}'s first_rank has shape "
                 rf"\({6 + change},\), its img_path \(6,\)")
    with pytest.raises(ValueError, match=match):
        tool.paired_rows(runs['A'], runs['B'])


def protocol_file(path, metric, model=None):
    """A per_query.npz of the same queries, gallery and values, evaluated
    by ``metric`` (a metric instance) on ``model``."""
    from mmreid.engine.hooks.report_hook import (EvalReportHook,
                                                 ranking_settings)
    query = [dict(img_path=f'q/{i}.jpg', pid=i, camid=0) for i in range(3)]
    analysis = ReIDMetricLike(
        first_rank=np.array([1, 2, 1]), ap=np.array([1.0, 0.5, 1.0]))
    setup = dict(metric=type(metric).__name__, distance='cosine')
    settings = (
        ranking_settings(setup, metric, True) if model is None else
        ranking_settings(setup, metric, True, model=model))
    arrays = EvalReportHook.per_query_arrays(
        'd3',
        query,
        analysis,
        metric,
        gallery=[dict(img_path=p, pid=i, camid=c) for p, i, c in GALLERY],
        settings=settings)
    return load_tool(TOOL).load_per_query(write(path, **arrays))


def mbn_model(eval_stats):
    from torch import nn

    from mmreid.models.layers import MBN
    return nn.Sequential(nn.Conv2d(3, 4, 1), MBN(4, eval_stats=eval_stats))


def sysu(**kwargs):
    from mmreid.evaluation.metrics import SYSUMetric
    return SYSUMetric(**kwargs)


def llcm(**kwargs):
    from mmreid.evaluation.metrics import LLCMMetric
    return LLCMMetric(**kwargs)


@pytest.mark.parametrize(
    'a, b, shown',
    [
        # Audit s18 C3: the same checkpoint under another protocol.
        (lambda: sysu(), lambda: sysu(shot='multi'),
         "shots: '1' in A, '10' in B"),
        (lambda: sysu(), lambda: sysu(num_trials=2),
         "num_trials: '10' in A, '2' in B"),
        (lambda: sysu(), lambda: sysu(mode='indoor'),
         "gallery_cams: '1,2,4,5' in A, '1,2' in B; "),
        (lambda: sysu(), lambda: sysu(seed=1),
         "seed: '0' in A, '1' in B"),
        # C5: LLCM VIS->IR as the reference evaluates it, or symmetric.
        (lambda: llcm(direction='vis2ir'),
         lambda: llcm(direction='vis2ir', vis2ir_mode='symmetric'),
         "transpose: 'True' in A, 'False' in B; "
         "vis2ir_mode: 'reference_transposed' in A, 'symmetric' in B"),
    ])
def test_runs_of_different_protocols_are_refused(tmp_path, a, b, shown):
    """Two runs that differ only in a protocol option of their metric
    (gallery draw, shots, trials, search mode, LLCM's VIS->IR mode) ranked
    other galleries or other probes: their difference is no model effect,
    so the pair is refused like one of other rank rules."""
    tool = load_tool(TOOL)
    with pytest.raises(ValueError, match='different settings') as info:
        tool.paired_rows(
            protocol_file(tmp_path / 'a.npz', a()),
            protocol_file(tmp_path / 'b.npz', b()))
    assert shown in str(info.value)


def test_the_official_and_the_seeded_draw_are_different_protocols(tmp_path):
    """Audit s18 C3: SYSU's official ``rand_perm_cam`` draw and AGW's
    seeded draw give other galleries."""
    tool = load_tool(TOOL)
    # One id with one image per camera, the same draw in every trial.
    official = sysu(rand_perm_cam=[[[[1]] * 10]] * 6)
    with pytest.raises(ValueError) as info:
        tool.paired_rows(
            protocol_file(tmp_path / 'a.npz', official),
            protocol_file(tmp_path / 'b.npz', sysu()))
    assert ("gallery_draw: 'official_rand_perm' in A, 'agw_seeded' in B"
            in str(info.value))
    # The same protocol pairs.
    assert len(
        tool.paired_rows(
            protocol_file(tmp_path / 'c.npz', sysu(shot='multi')),
            protocol_file(tmp_path / 'd.npz', sysu(shot='multi')))) == 2


def test_runs_with_other_mbn_test_statistics_are_refused(tmp_path):
    """Audit s18 C4: MBN ``eval_stats='batch'`` normalises each test batch
    with its own statistics (transductive): another feature of the same
    checkpoint, refused; the default pairs with a model without MBN."""
    tool = load_tool(TOOL)
    with pytest.raises(ValueError) as info:
        tool.paired_rows(
            protocol_file(tmp_path / 'a.npz', sysu(), mbn_model('modality')),
            protocol_file(tmp_path / 'b.npz', sysu(), mbn_model('batch')))
    assert ("mbn_eval_stats: None in A, 'batch' in B); None: the run "
            'records no such setting (e.g. a test-time option at its '
            'default); test both with the same evaluator and test-time '
            'options') in str(info.value)
    from torch import nn
    assert len(
        tool.paired_rows(
            protocol_file(tmp_path / 'c.npz', sysu(), mbn_model('modality')),
            protocol_file(tmp_path / 'd.npz', sysu(), nn.Conv2d(3, 4,
                                                                1)))) == 2


def test_the_same_rerank_in_another_key_order_is_the_same_setting():
    """Settings are compared as text by paired_query_error: a rerank dict
    written in another key order is the same re-ranking, so its recorded
    JSON must not tell two such runs apart."""
    from mmreid.engine.hooks.report_hook import ranking_settings
    setup = dict(distance='euclidean')
    a = ranking_settings(setup,
                         ReIDMetricLike(rerank=dict(k1=20, k2=6)), True)
    b = ranking_settings(setup,
                         ReIDMetricLike(rerank=dict(k2=6, k1=20)), True)
    assert a['rerank'] == b['rerank']
    assert json.loads(a['rerank']) == dict(k1=20, k2=6)


def test_plain_values_name_every_option_the_hook_did_not_apply():
    """With both re-ranking and query expansion set and ranked by the hook
    on plain distances, the values' note names both, not the first."""
    from mmreid.engine.hooks.report_hook import ranking_settings
    metric = ReIDMetricLike(rerank=dict(k1=20), query_expansion=dict(k=2))
    settings = ranking_settings(dict(distance='euclidean'), metric, False)
    assert settings['values'] == ('plain distances, without the metric\'s '
                                  'rerank and query_expansion')
    # The caller's setup is not changed by the call.
    setup = dict(distance='euclidean')
    ranking_settings(setup, metric, False)
    assert setup == dict(distance='euclidean')
