import base64
import re

import cv2
import numpy as np
import torch

from mmreid.evaluation.query_analysis import PairStats, QueryAnalysis
from mmreid.evaluation.results_table import ResultRow
from mmreid.evaluation.sampling_error import SamplingError
from mmreid.visualization import html_report


def _rows(page, css_class):
    """The cell texts of each row of the table of ``css_class``."""
    table = re.search(f'<table class="{css_class}">(.*?)</table>',
                      page).group(1)
    return [[
        ' '.join(re.sub(r'<[^>]+>', ' ', cell).split())
        for cell in re.findall(r'<t[hd][^>]*>(.*?)</t[hd]>', row)
    ] for row in re.findall(r'<tr>(.*?)</tr>', table)]


def test_summary_gives_the_cmc_at_ranks_1_5_10_and_the_valid_queries():
    # 5 queries, one without a positive; first matches at ranks 1, 2, 6
    # and 11: R1 1/4, R5 2/4, R10 3/4.
    first_rank = np.array([1, 2, 0, 6, 11])
    ranks = np.arange(1, 13)
    cmc = np.array([(first_rank[first_rank > 0] <= r).mean() for r in ranks])
    ap = np.array([1.0, 0.55, np.nan, 0.25, 0.05])
    analysis = QueryAnalysis(
        ap=ap,
        inp=np.array([1.0, 0.5, np.nan, 0.2, 0.1]),
        first_rank=first_rank,
        topk_index=np.zeros((5, 0), int),
        topk_distance=np.zeros((5, 0)),
        topk_match=np.zeros((5, 0), bool),
        cmc=cmc,
        camera_pairs={},
        modality_pairs={})
    page = html_report.section_html(
        html_report.ReportSection('d0', analysis, {}, 30), 'target-0')
    head, values = _rows(page, 'summary')
    assert dict(zip(head, values)) == dict(
        queries='5',
        valid_queries='4',
        gallery='30',
        R1='25.00',
        R5='50.00',
        R10='75.00',
        mAP='46.25',
        mINP='45.00')


def test_ap_histogram_bins_ap_over_0_to_1():
    labels, counts = html_report.ap_histogram(
        np.array([1.0, 0.55, np.nan, 0.25, 0.05]))
    # Ten bins of [0, 1], the last closed; NaN (no positive) left out.
    assert labels[0] == '.0-.1' and labels[-1] == '.9-1'
    assert counts == [1, 0, 1, 0, 0, 1, 0, 0, 0, 1]


def test_pair_table_rows_are_query_groups_cells_r1_then_map():
    pairs = {
        (0, 1): PairStats(num_valid=2, rank1_hits=1, ap_sum=1.5),
        (1, 0): PairStats(num_valid=1, rank1_hits=1, ap_sum=1.0),
        (0, 0): PairStats(),
    }
    page = html_report.pair_table(pairs, 'camera-pairs', 'query camid',
                                  'gallery camid', lambda c: f'camid {c}')
    assert _rows(page, 'camera-pairs') == [
        ['query camid \\ gallery camid', 'camid 0', 'camid 1'],
        ['camid 0', '-', '50.0 / 75.0 n=2'],
        ['camid 1', '100.0 / 100.0 n=1', '-'],
    ]


def test_results_and_sampling_error_tables():
    rows = [
        ResultRow('reid', dict(R1=90.0, mAP=70.5), dict(mAP=1.25)),
        ResultRow('d3', dict(R1=80.0)),
    ]
    # R5 is in no row: no column; a value a row lacks: '-'.
    page = html_report.results_table_html(rows, ('R1', 'R5', 'mAP'))
    assert _rows(page, 'results') == [
        ['row', 'R1', 'mAP'],
        ['reid', '90.00', '70.50 ± 1.25'],
        ['d3', '80.00', '-'],
    ]
    errors = dict(R1=SamplingError(80.0, 2.0, 4.0, 100, 10))
    # value, queries, identities, SE independent, SE clustered, (4 / 2)^2
    (_, row) = _rows(html_report.sampling_error_html(errors), 'sampling-error')
    assert row == ['R1', '80.00', '100', '10', '2.00', '4.00', '4.0']


def test_ranked_list_numbers_ranks_from_1_and_frames_by_match():
    example = html_report.RankedExample(
        kind='worst',
        query=dict(image=None, pid=3, camid=2, modality=0),
        gallery=[
            dict(image=None, pid=4, camid=0, distance=0.5, match=False),
            dict(image=None, pid=3, camid=1, distance=0.75, match=True)
        ],
        ap=0.5,
        first_rank=2)
    page = html_report.ranked_list_html(example, 0)
    tiles = re.findall(r'class="tile (\w+)">.*?<figcaption>(.*?)<br>', page)
    assert tiles == [('query', 'query'), ('mismatch', '#1 d=0.5'),
                     ('match', '#2 d=0.75')]
    # Modality 0 is named, like 1.
    assert 'camid 2<br>visible' in page


def test_thumbnails_keep_colour_and_size():
    red = np.zeros((40, 30, 3), np.uint8)
    red[..., 0] = 255  # RGB
    uri = html_report.image_data_uri(red, size=(128, 64))
    jpeg = np.frombuffer(base64.b64decode(uri.split(',', 1)[1]), np.uint8)
    thumb = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1]
    assert thumb.shape == (128, 64, 3)
    assert (np.abs(thumb.astype(int) - (255, 0, 0)) <= 8).all()


def test_a_target_without_valid_queries_shows_no_numbers():
    # No query has its identity in the gallery: there is no R1 or mAP to
    # show. Before, the summary said R1 0.00 and mAP 0.00.
    from mmreid.evaluation.query_analysis import analyse_queries
    gen = np.random.default_rng(0)
    analysis = analyse_queries(
        torch.from_numpy(gen.normal(size=(4, 3))),
        torch.from_numpy(gen.normal(size=(6, 3))),
        q_pids=[0, 1, 2, 3],
        g_pids=[4, 5, 6, 7, 8, 9],
        q_camids=[0, 0, 1, 1],
        g_camids=[1, 1, 0, 0, 1, 0],
        max_rank=10)
    assert not analysis.valid.any()
    assert np.isnan(analysis.mAP) and np.isnan(analysis.mINP)
    assert np.isnan(analysis.cmc).all()
    page = html_report.section_html(
        html_report.ReportSection('d0', analysis, {}, 6), 'target-0')
    head, values = _rows(page, 'summary')
    assert dict(zip(head, values)) == dict(
        queries='4',
        valid_queries='0',
        gallery='6',
        R1='-',
        R5='-',
        R10='-',
        mAP='-',
        mINP='-')
    assert 'nan' not in page.lower()


def test_rank_histogram_counts_each_rank_in_its_bin():
    """Every query with a positive is counted once, in the bin of its
    first match's rank (bins inclusive: 1, 2, 3, 4, 5, 6-10, 11-20,
    21-50, 51-100, >100); a query without a positive (0) in none."""
    ranks = np.array([1, 1, 0, 5, 6, 10, 11, 20, 21, 50, 51, 100, 101, 999])
    labels, counts = html_report.rank_histogram(ranks)
    assert labels == [
        '1', '2', '3', '4', '5', '6-10', '11-20', '21-50', '51-100', '>100'
    ]
    assert counts == [2, 0, 0, 0, 1, 2, 2, 2, 2, 2]


def test_summary_gives_r10_of_a_ten_long_cmc():
    """A CMC of max_rank 10 has its R10 (the last point): shown, not '-'."""
    cmc = np.linspace(0.1, 1.0, 10)
    analysis = QueryAnalysis(
        ap=np.array([1.0]),
        inp=np.array([1.0]),
        first_rank=np.array([1]),
        topk_index=np.zeros((1, 0), int),
        topk_distance=np.zeros((1, 0)),
        topk_match=np.zeros((1, 0), bool),
        cmc=cmc,
        camera_pairs={},
        modality_pairs={})
    page = html_report.section_html(
        html_report.ReportSection('d0', analysis, {}, 3), 'target-0')
    head, values = _rows(page, 'summary')
    assert dict(zip(head, values))['R10'] == '100.00'


def test_results_table_names_the_row_a_mode_also_reports():
    """The primary distance mode's row says which row reports it
    unprefixed too, as the log's table marks it."""
    rows = [ResultRow('reid/mnet', dict(R1=60.0), primary_of='reid')]
    page = html_report.results_table_html(rows, ('R1', ))
    assert _rows(page, 'results')[1] == ['reid/mnet (= reid)', '60.00']


def _example(kind, pid):
    return html_report.RankedExample(
        kind=kind,
        query=dict(image=None, pid=pid, camid=0),
        gallery=[dict(image=None, pid=pid, camid=1, distance=0.5,
                      match=True)],
        ap=1.0,
        first_rank=1)


def test_a_report_shows_every_section_its_results_and_both_lists():
    """Two targets: both sections in order with links to them, the
    reported metrics table, and each section's worst and best lists."""
    from mmreid.evaluation.query_analysis import analyse_queries
    analysis = analyse_queries(
        torch.tensor([[0.0], [1.0]]),
        torch.tensor([[0.1], [1.2]]),
        q_pids=[0, 1],
        g_pids=[0, 1],
        q_camids=[0, 0],
        g_camids=[1, 1],
        max_rank=2)
    sections = [
        html_report.ReportSection(
            name, analysis, {}, 2,
            [_example('worst', pid), _example('best', pid + 1)])
        for name, pid in (('d2', 10), ('d0', 20))
    ]
    page = html_report.render_report(
        sections, results=[ResultRow('d2', dict(R1=100.0))])
    assert _rows(page, 'results') == [['row', 'R1'], ['d2', '100.00']]
    assert re.findall(r'data-target="(\w+)"', page) == ['d2', 'd0']
    assert re.findall(r'<a href="#(target-\d)">(\w+)</a>', page) == [
        ('target-0', 'd2'), ('target-1', 'd0')
    ]
    lists = re.findall(
        r'<div class="ranked-list (\w+)".*?query pid (\d+)', page)
    assert lists == [('worst', '10'), ('best', '11'), ('worst', '20'),
                     ('best', '21')]
