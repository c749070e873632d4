"""Wrong-number hunt of the evaluation report (``tools/test.py --report``).

Every expected value here is recomputed from its definition (the
evaluation spec, ``/work/shared/specs/evaluation.md`` sections 2 to 4, and
textbook statistics), never read back from mmreid's code.
"""
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mmreid.engine.hooks import EvalReportHook
from mmreid.evaluation import ReIDMetric
from mmreid.visualization import html_report


def _records(query, gallery):
    """Hook records of ``(feature, pid, camid, img_path)`` items."""
    records = []
    for role, items in (('query', query), ('gallery', gallery)):
        for feature, pid, camid, path in items:
            records.append(
                dict(
                    feature=torch.tensor(feature, dtype=torch.float32),
                    pid=pid,
                    camid=camid,
                    modality=None,
                    is_query=role == 'query',
                    img_path=path,
                    dataset='hunt',
                    sample_idx=len(records),
                    target=None))
    return records


def _metric_samples(records):
    """ReIDMetric's input for the same samples."""
    return [
        dict(
            pred_feature=r['feature'],
            gt_label=r['pid'],
            camid=r['camid'],
            role='query' if r['is_query'] else 'gallery',
            sample_idx=r['sample_idx'],
            img_path=r['img_path']) for r in records
    ]


def _section(metric, records, metrics=None, topk=4, max_rank=4):
    """The section and HTML EvalReportHook builds of ``records`` for a
    runner whose model has no distance of its own."""
    evaluator = SimpleNamespace(metrics=[metric])
    runner = SimpleNamespace(
        model=SimpleNamespace(scorers=lambda: None),
        test_loop=SimpleNamespace(evaluator=evaluator))
    hook = EvalReportHook(num_queries=2, topk=topk, max_rank=max_rank)
    section = hook.build_section(runner, 'test', 'hunt', records, evaluator,
                                 metrics or {}, False)
    return section, html_report.section_html(section, 'target-0')


def _tested_metric(records, **kwargs):
    """A ReIDMetric that evaluated ``records`` with the report's analysis
    requested, as in ``tools/test.py --report``; and its metrics."""
    metric = ReIDMetric(**kwargs)
    metric.analysis_request = dict(topk=4, max_rank=4)
    metric.process(None, _metric_samples(records))
    metrics = metric.compute_metrics(metric.results)
    assert metric.last_analysis is not None
    return metric, {f'reid/{k}': v for k, v in metrics.items()}


def _ap(matches):
    """Cumsum AP of a ranked 0/1 list (spec section 3)."""
    ranks = np.flatnonzero(matches) + 1
    return float(np.mean(np.arange(1, len(ranks) + 1) / ranks))


def _bars(page, css):
    """The ``data-count`` of each bar of a chart."""
    chart = re.search(rf'<svg class="{css}".*?</svg>', page).group(0)
    return [int(n) for n in re.findall(r'data-count="(\d+)"', chart)]


def test_ap_histogram_counts_an_ap_of_0_6_in_the_bar_labelled_6_to_7():
    """A user reads the report's "AP per query" chart.

    A query with two positives at ranks 1 and 10 has AP (1/1 + 2/10) / 2
    = 0.6 exactly (spec section 3), a common value; one with positives at
    ranks 2 and 20 has AP 0.3. For the chart
    whose bars are labelled ``.5-.6``, ``.6-.7`` ..., ten equal bins of
    [0, 1] closed on the left (the docstring of ``ap_histogram``), a
    value of 0.6 belongs to the bar ``.6-.7`` and 0.3 to ``.3-.4``. The
    report put them in ``.5-.6`` and ``.2-.3``: ``np.histogram`` with
    ``range=(0, 1)`` uses the edges of ``np.linspace``, whose 4th, 7th
    and 8th values are 0.30000000000000004, 0.6000000000000001 and
    0.7000000000000001, so the APs 0.3, 0.6 and 0.7 fall short of them.
    """
    ap = np.array([
        _ap([1, 0, 0, 0, 0, 0, 0, 0, 0, 1]),  # 0.6
        _ap([0, 1] + [0] * 17 + [1]),  # 0.3
        0.7,
        0.25,
    ])
    assert ap[0] == 0.6 and ap[1] == 0.3
    labels, counts = html_report.ap_histogram(ap)
    by_label = dict(zip(labels, counts))
    # The definition: bin i holds i/10 <= AP < (i+1)/10.
    expected = {label: 0 for label in labels}
    for value in ap:
        expected[labels[min(int(round(value * 1000)) // 100, 9)]] += 1
    assert by_label == expected
    assert by_label['.6-.7'] == by_label['.7-.8'] == by_label['.3-.4'] == 1


def test_report_of_a_reid_metric_never_ranks_a_query_against_its_own_image():
    """A user tests a ReIDMetric config whose test set lists one image as
    a query and again as a gallery item of another camera (as QMUL-iLIDS's
    union of splits does, or a custom list built the same way), and opens
    ``report.html``.

    docs/visualization.md: "A query is never ranked against its own
    image: ... a gallery item with the query's ``img_path`` is left out of
    that query's ranking". When the hook ranks the features itself it
    does so; but with a ReIDMetric, whose own analysis the report takes
    (``analysis_request``), the query's own image stayed in its ranking:
    its ranked list shows itself at rank 1 with ``d=0`` and its AP counts
    it as a correct match.

    Query q0 (pid 1, camid 0, feature 0.0) and its own image listed in
    the gallery with camid 2. The other gallery items: 1.0 (pid 1, camid
    1), 2.0 (pid 2), 3.0 (pid 1). Without its own image q0 ranks 1.0
    (hit), 2.0, 3.0 (hit): AP = (1/1 + 2/3) / 2.
    """
    own = '/data/ilids/0001_c1_0001.jpg'
    records = _records(
        [([0.0], 1, 0, own), ([2.4], 2, 0, '/data/ilids/q1.jpg')],
        [([1.0], 1, 1, '/data/ilids/g0.jpg'),
         ([2.0], 2, 1, '/data/ilids/g1.jpg'),
         ([0.0], 1, 2, own),
         ([3.0], 1, 1, '/data/ilids/g3.jpg')])
    gallery = [r for r in records if not r['is_query']]
    # The metric's own numbers counted the copy too (R1 100 for q0 at
    # d=0): it now refuses such a test set, naming the image (see
    # test_hunt_eval_outputs), so no report is made of a wrong number.
    with pytest.raises(ValueError, match='is a query and a gallery item'):
        _tested_metric(records)
    # The hook's own ranking (no metric analysis, as for the protocol
    # metrics of QMUL-iLIDS's splits) leaves the copy out.
    plain, _ = _section(ReIDMetric(), records)
    shown = [gallery[i]['img_path'] for i in plain.analysis.topk_index[0]
             if i >= 0]
    assert own not in shown
    assert plain.analysis.ap[0] == pytest.approx((1 + 2 / 3) / 2)


def _reference_ranking(dist, q_pid, q_cam, g_pids, g_cams):
    """Gallery indices of one query's kept gallery (market rule: same pid
    and camid removed), ascending distance, ties by gallery index (the
    'stable' policy, spec section 4.2)."""
    kept = np.flatnonzero(~((g_pids == q_pid) & (g_cams == q_cam)))
    return kept[np.lexsort((kept, dist[kept]))]


@pytest.mark.parametrize('own_analysis', [False, True])
def test_camera_table_cmc_and_sampling_errors_match_their_definitions(
        own_analysis):
    """Test gap: the numbers a report prints of one target, recomputed by
    hand from the features.

    Tied, quantised 2-d features, three cameras, pid-0 distractors and a
    query without a positive. Checked on the page: each camera-pair cell
    (each query ranked against one gallery camera after the junk rule;
    R1 = its first kept item is a positive, mAP the mean AP, over the
    queries with a positive there), the CMC points and the summary, and
    the query sampling errors (independent: s / sqrt(n); clustered by
    identity: sqrt(G / (G - 1) sum_g (t_g - m n_g)^2) / n); with the
    hook's own ranking and with the metric's.
    """
    rng = np.random.default_rng(2)
    q_feats = rng.integers(0, 3, (9, 2)).astype(float)
    g_feats = rng.integers(0, 3, (24, 2)).astype(float)
    q_pids = np.array([1, 1, 2, 2, 3, 3, 4, 4, 9])
    g_pids = rng.integers(0, 5, 24)
    q_cams = rng.integers(0, 3, 9)
    g_cams = rng.integers(0, 3, 24)
    records = _records(
        [(f.tolist(), int(p), int(c), f'q{i}.jpg')
         for i, (f, p, c) in enumerate(zip(q_feats, q_pids, q_cams))],
        [(f.tolist(), int(p), int(c), f'g{i}.jpg')
         for i, (f, p, c) in enumerate(zip(g_feats, g_pids, g_cams))])
    if own_analysis:
        metric, metrics = _tested_metric(records, distance='euclidean')
    else:
        metric, metrics = ReIDMetric(distance='euclidean'), {}
    section, page = _section(metric, records, metrics, max_rank=10)
    # The report's query order (the metric's, with its own analysis).
    order = [int(re.sub(r'\D', '', str(p))) for p in
             [q.get('img_path') for q in (
                 metric.last_analysis.query if own_analysis else
                 [r for r in records if r['is_query']])]]
    dist = np.sqrt(((q_feats[:, None] - g_feats[None])**2).sum(-1))
    dist = dist.astype(np.float32)
    cells, first, aps = {}, [], []
    for q in order:
        ranked = _reference_ranking(dist[q], q_pids[q], q_cams[q], g_pids,
                                    g_cams)
        matches = g_pids[ranked] == q_pids[q]
        first.append(np.flatnonzero(matches)[0] + 1 if matches.any() else 0)
        aps.append(_ap(matches) if matches.any() else np.nan)
        for cam in range(3):
            sub = matches[g_cams[ranked] == cam]
            if sub.any():
                n, hits, ap_sum = cells.get((q_cams[q], cam), (0, 0, 0.0))
                cells[(q_cams[q], cam)] = (n + 1, hits + int(sub[0]),
                                           ap_sum + _ap(sub))
    first, aps = np.array(first), np.array(aps)
    assert (~np.isnan(aps)).sum() < len(aps)  # a query without positive
    # Camera table, row by row (query camid), column by column.
    table = re.search(r'<table class="camera-pairs">.*?</table>',
                      page).group(0)
    shown = {}
    for row in re.findall(r'<tr><th class="name">camid (\d+)</th>(.*?)</tr>',
                          table):
        header = re.findall(r'<th>camid (\d+)</th>', table)
        for col, cell in zip(header, re.findall(r'<td[^>]*>', row[1])):
            found = re.search(
                r'data-r1="([\d.]+)" data-map="([\d.]+)" data-n="(\d+)"', cell)
            if found:
                shown[(int(row[0]), int(col))] = tuple(
                    float(v) for v in found.groups())
    expected = {(int(q), int(g)): (100 * hits / n, 100 * ap_sum / n, n)
                for (q, g), (n, hits, ap_sum) in cells.items()}
    assert sorted(shown) == sorted(expected)
    for key, values in expected.items():
        assert shown[key] == pytest.approx(values, abs=1e-4), key
    # CMC points and summary.
    valid = first > 0
    cmc = [100 * np.mean(first[valid] <= k) for k in range(1, 11)]
    assert 100 * section.analysis.cmc == pytest.approx(cmc)
    assert section.analysis.mAP == pytest.approx(100 * np.nanmean(aps))
    assert f'<td>{100 * np.nanmean(aps):.2f}</td>' in page
    # Sampling errors.
    for name, values in (('R1', 100.0 * (first[valid] == 1)),
                         ('mAP', 100.0 * aps[valid])):
        error = section.sampling_errors[name]
        n, mean = len(values), values.mean()
        assert error.value == pytest.approx(mean)
        assert error.se_independent == pytest.approx(
            values.std(ddof=1) / np.sqrt(n))
        pids = q_pids[order][valid]
        groups = np.unique(pids)
        totals = np.array([(values[pids == g] - mean).sum() for g in groups])
        assert error.se_clustered == pytest.approx(
            np.sqrt(len(groups) / (len(groups) - 1) * (totals**2).sum()) / n)


def test_report_tables_never_print_a_bound_a_value_does_not_reach():
    """The log's results table prints an R20 of 99.9974 (one query missed
    in one of ten trials) as ``99.997``; the report's copy of it, its
    summary (R1 of one query in 40,000 found: 0.0025) and its camera
    table (one decimal) printed ``100.00``, ``0.00`` and ``100.0``."""
    from mmreid.evaluation.results_table import ResultRow
    page = html_report.results_table_html(
        [ResultRow('sysu', {'R20': 99.9974, 'mAP': 0.0025}, {'R20': 0.004})],
        ['R20', 'mAP'])
    cells = re.findall(r'<td>([^<]*)</td>', page)
    assert cells == ['99.997 ± 0.004', '0.003']
    assert html_report._fmt(99.96, 1) == '99.96'
    assert html_report._fmt(100.0) == '100.00'
    assert html_report._fmt(0.0, 1) == '0.0'
