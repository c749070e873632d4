"""EvalReportHook: the note that compares the report with the metric;
the report folder."""
import os
import os.path as osp
import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from mmreid.engine.hooks import EvalReportHook
from mmreid.evaluation.metrics import ReIDMetric
from mmreid.utils import atomic
from ..fixtures.processes import load_tool


def compare(mAP, metric, metrics, name='test', by_target=False):
    analysis = SimpleNamespace(mAP=mAP)
    return EvalReportHook._compare(analysis, metric, metrics, name, by_target)


def test_equal_numbers_are_confirmed():
    metric = ReIDMetric()
    assert compare(40.0, metric,
                   {'reid/mAP': 40.0}) == ['reid/mAP 40.00 as reported.']
    assert compare(40.0, ReIDMetric(), {'d3/mAP': 40.0}, 'd3',
                   True) == ['d3/mAP 40.00 as reported.']
    assert compare(40.0, metric, {}) == []
    # 0.3 apart is no rounding: both numbers are given.
    (note, ) = compare(40.0, metric, {'reid/mAP': 40.3})
    assert note.startswith('Reported reid/mAP is 40.30; this analysis '
                           'gives 40.00')


def test_differences_give_both_numbers_and_the_reason():
    trials = {
        'sysu/trial0/mAP': 50.0,
        'sysu/trial1/mAP': 54.0,
        'sysu/mAP': 52.0
    }
    metric = SimpleNamespace(prefix='sysu', rerank=None, query_expansion=None)
    (note, ) = compare(47.5, metric, trials)
    assert note.startswith('Reported sysu/mAP is 52.00; this analysis '
                           'gives 47.50')
    assert 'averages over its own splits or trials' in note
    (note, ) = compare(47.5, ReIDMetric(rerank=dict(k1=20)),
                       {'reid/mAP': 52.0})
    assert 're-ranks or expands queries' in note
    # rerank=dict() re-ranks with every default: the note says so too (an
    # empty dict was read as no re-ranking, and the reason given was the
    # metric's own protocol)
    for options in (dict(rerank=dict()), dict(query_expansion=dict())):
        (note, ) = compare(47.5, ReIDMetric(**options), {'reid/mAP': 52.0})
        assert 're-ranks or expands queries' in note, options


@pytest.mark.parametrize('kwargs', [
    dict(max_rank=0), dict(topk=0), dict(num_queries=0)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        EvalReportHook(**kwargs)


def test_sampling_errors_of_a_trial_protocol_are_named_by_what_they_measure():
    import numpy as np
    import torch

    from mmreid.engine.hooks.report_hook import (sampling_error_line,
                                                 section_sampling_errors)
    from mmreid.evaluation.functional import evaluate_rank
    from mmreid.evaluation.query_analysis import analyse_queries
    gen = torch.Generator().manual_seed(0)
    q, g = torch.randn(20, 4, generator=gen), torch.randn(30, 4, generator=gen)
    q_pids, g_pids = torch.arange(20) % 5, torch.arange(30) % 5
    q_cams, g_cams = torch.zeros(20).long(), torch.ones(30).long()
    analysis = analyse_queries(q, g, q_pids, g_pids, q_cams, g_cams)
    plain = section_sampling_errors(analysis, ReIDMetric())
    assert list(plain) == ['R1', 'mAP']
    dist = torch.cdist(q, g)
    trials = [
        evaluate_rank(dist[:, cols], q_pids, g_pids[cols], q_cams,
                      g_cams[cols]) for cols in (slice(0, 15), slice(15, 30))
    ]
    metric = SimpleNamespace(
        trial_results=trials, trial_query_pids=q_pids.numpy())
    errors = section_sampling_errors(analysis, metric)
    assert list(errors) == [
        'R1 (whole gallery)', 'mAP (whole gallery)', 'R1 (2-trial average)',
        'mAP (2-trial average)'
    ]
    assert errors['R1 (whole gallery)'] == plain['R1']
    assert errors['mAP (2-trial average)'].value == pytest.approx(
        100 * np.mean([t.mAP for t in trials]))
    line = sampling_error_line(errors)
    assert line.startswith('R1 (whole gallery) ') and '(20 queries, 5 ids)' \
        in line
    # A transposed protocol (each trial ranks its own sampled queries)
    # leaves the trial rows out.
    metric.trial_query_pids = None
    assert list(section_sampling_errors(analysis, metric)) == ['R1', 'mAP']
    # One valid query has no spread to estimate: no rows.
    alone = analyse_queries(q[:2], g, torch.tensor([0, 9]), g_pids, q_cams[:2],
                            g_cams)
    assert alone.valid.tolist() == [True, False]
    assert section_sampling_errors(alone, ReIDMetric()) == {}


def test_a_gmn_mode_names_the_options_that_change_its_ranking():
    """``mnet_topk`` scores only the top-k Euclidean candidates with the
    M-Net (a speed option, not the paper's M-Net), and ``fuse_beta``
    weighs the fused mode: the report's distance (and so the settings
    that paired_query_error compares) name them, so such a run is not
    taken for the full M-Net."""
    from mmengine.config import Config

    from mmreid.engine.hooks.report_hook import _mode_options
    from mmreid.registry import MODELS
    from mmreid.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile('configs/gmn/gmn_r18_synthreid-v2.py')
    full = MODELS.build(cfg.model).scorers()
    assert _mode_options(full['mnet']) == ''
    assert _mode_options(full['euclid']) == ''
    beta = cfg.model.test_cfg.get('fuse_beta', 0.5)
    assert _mode_options(full['fused']) == f', fuse_beta={beta}'
    cfg.model.test_cfg['mnet_topk'] = 5
    topk = MODELS.build(cfg.model).scorers()
    assert _mode_options(topk['mnet_top5']) == ', mnet_topk=5'
    assert _mode_options('euclidean') == ''


# -- sections built from hand-made records ---------------------------------
# 1-D features. Gallery: g0 = 1.0 (pid 1, camid 1), g1 = 2.0 (pid 2,
# camid 1), g2 = 0.5 (pid 3, camid 2), g3 = 3.0 (pid 1, camid 2); modality
# 1 for camid 2, else 0. Queries (camid 0, modality 0): q0 = 0.0 (pid 1),
# q1 = 2.4 (pid 2).
GALLERY = ((1.0, 1, 1), (2.0, 2, 1), (0.5, 3, 2), (3.0, 1, 2))
QUERY = ((0.0, 1, 0), (2.4, 2, 0))
# The same with a q0 that has a direction, for metrics that normalise
# (cosine, query expansion, SYSU's and LLCM's defaults): they refuse a
# feature of zero norm.
DIRECTED_QUERY = ((0.2, 1, 0), (2.4, 2, 0))


def swap_top2(query, gallery):
    """A gallery-dependent toy scorer, as GMN's top-k rerank: per query,
    the gallery it is given in Euclidean order with its two nearest items
    swapped; the distances are the 0-based positions in that order."""
    import torch
    order = torch.cdist(query, gallery).argsort(dim=1, stable=True)
    order[:, :2] = order[:, :2].flip(1)
    positions = torch.arange(gallery.shape[0], dtype=torch.float32)
    return torch.empty(order.shape).scatter_(
        1, order,
        positions.expand(order.shape).contiguous())


swap_top2.gallery_dependent = True


def hand_records(query=QUERY, gallery=GALLERY):
    """Hook records of ``(feature, pid, camid)`` items."""
    import torch
    records = []
    for role, items in (('query', query), ('gallery', gallery)):
        for i, (x, pid, camid) in enumerate(items):
            records.append(
                dict(
                    feature=torch.tensor([x]),
                    pid=pid,
                    camid=camid,
                    modality=int(camid == 2),
                    is_query=role == 'query',
                    img_path=f'/nonexistent/{role}{i}.jpg',
                    dataset='hand',
                    sample_idx=len(records),
                    target=None))
    return records


def metric_samples(records):
    """ReIDMetric's input for the same samples."""
    return [
        dict(
            pred_feature=r['feature'],
            gt_label=r['pid'],
            camid=r['camid'],
            modality=r['modality'],
            role='query' if r['is_query'] else 'gallery',
            sample_idx=r['sample_idx'],
            img_path=r['img_path']) for r in records
    ]


def hand_section(metric,
                 records,
                 metrics=None,
                 scorers=None,
                 max_rank=4,
                 model=None,
                 hook=None):
    """The section EvalReportHook (``hook``, or a new one) builds of
    ``records`` and its HTML; ``model`` (an ``nn.Module``) is the runner's
    model, else a stand-in that hands ``scorers``."""
    from mmreid.visualization.html_report import section_html
    evaluator = SimpleNamespace(metrics=[metric])
    if model is None:
        model = SimpleNamespace(scorers=lambda: scorers)
    runner = SimpleNamespace(
        model=model, test_loop=SimpleNamespace(evaluator=evaluator))
    hook = hook or EvalReportHook(num_queries=2, topk=4, max_rank=max_rank)
    section = hook.build_section(runner, 'test', 'hand', records, evaluator,
                                 metrics or {}, False)
    return section, section_html(section, 'target-0')


def cells(page, css):
    """``(R1, mAP)`` of each cell of a pair table, row by row."""
    import re
    table = re.search(rf'<table class="{css}">.*?</table>', page).group(0)
    return [(float(r1), float(ap)) for r1, ap in re.findall(
        r'data-r1="([\d.]+)" data-map="([\d.]+)"', table)]


@pytest.mark.parametrize('own_analysis', [False, True])
def test_pair_tables_of_a_gallery_dependent_distance_rank_each_gallery(
        own_analysis):
    """Audit s18 F9: with a gallery-dependent distance (GMN's top-k
    rerank) the camera and modality tables took the camera's columns of
    the whole-gallery ranking, while the page says each query is ranked
    against one camera's gallery only.

    By that definition, with swap_top2 on one camera's gallery:
    camid 1 (g0 pid 1, g1 pid 2): q0 ranks g1, g0 (AP 1/2, R1 miss); q1
    ranks g0, g1 (AP 1/2, miss) -> R1 0, mAP 50 (n=2). camid 2 (g2 pid 3,
    g3 pid 1): q0 ranks g3, g2 (AP 1, hit); q1 has no positive -> R1
    100, mAP 100 (n=1). The whole-gallery ranking of q0 is g0, g2, g1, g3
    (positions 0..3), whose camera columns gave 100 / 100 and 0 / 50.
    """
    from mmreid.evaluation import ReIDMetric
    records = hand_records()
    metric = ReIDMetric()
    if own_analysis:
        metric.set_scorers(dict(top2=swap_top2))
        metric.analysis_request = dict(topk=4, max_rank=4)
        metric.process(None, metric_samples(records))
        metric.compute_metrics(metric.results)
        assert metric.last_analysis is not None
    section, page = hand_section(metric, records, scorers=dict(top2=swap_top2))
    expected = [(0.0, 50.0), (100.0, 100.0)]
    assert cells(page, 'camera-pairs') == expected
    # modality 0 = camid 1's gallery, modality 1 = camid 2's
    assert cells(page, 'modality-pairs') == expected
    # The whole-gallery ranking itself is the scorer's: q0's AP there is
    # that of g0 (pid 1) at 1 and g3 (pid 1) at 4.
    assert section.analysis.ap[0] == pytest.approx((1 + 2 / 4) / 2)
    # The values in the ranked lists are positions, and say so.
    assert 'position=0' in page and ' d=' not in page
    assert 'is gallery-dependent: its values are 0-based positions' in page


def test_the_settings_say_the_features_were_extracted_under_fp16(tmp_path):
    """test_cfg.fp16=True: the loop extracts under fp16 autocast, other
    features than an fp32 run's; the settings line and per_query.npz said
    nothing of it, so paired_query_error.py compared the two runs as one
    model's. Now the fp16 run records fp16 and the pair is refused."""
    from mmreid.visualization.html_report import section_html
    records = hand_records()

    def run(fp16, name):
        evaluator = SimpleNamespace(metrics=[ReIDMetric()])
        runner = SimpleNamespace(
            model=SimpleNamespace(scorers=lambda: None),
            test_loop=SimpleNamespace(evaluator=evaluator, fp16=fp16))
        hook = EvalReportHook(num_queries=2, topk=4, max_rank=4)
        section = hook.build_section(runner, 'test', 'hand', records,
                                     evaluator, {}, False)
        path = str(tmp_path / name)
        with open(path, 'wb') as f:
            np.savez(f, **hook._per_query)
        return section_html(section, 'target-0'), path

    page16, fp16 = run(True, 'fp16.npz')
    page32, fp32 = run(False, 'fp32.npz')
    assert 'fp16' in page16 and 'fp16' not in page32
    tool = load_tool('tools/analysis_tools/paired_query_error.py')
    with pytest.raises(ValueError, match='different settings') as info:
        tool.paired_rows(tool.load_per_query(fp16), tool.load_per_query(fp32))
    assert "fp16: 'True' in A, None in B" in str(info.value)
    # Two fp32 runs still pair.
    assert tool.paired_rows(
        tool.load_per_query(fp32), tool.load_per_query(fp32))


def test_pair_tables_of_a_pair_distance_are_columns_of_the_ranking():
    """For a pair distance the columns are the one-camera ranking: the
    values above are the ones the Euclidean distance gives by hand."""
    from mmreid.evaluation import ReIDMetric
    section, page = hand_section(ReIDMetric(), hand_records())
    # camid 1: q0 ranks g0 (hit), q1 ranks g1 (hit); camid 2: q0 ranks g2,
    # g3 (AP 1/2).
    assert cells(page, 'camera-pairs') == [(100.0, 100.0), (0.0, 50.0)]
    assert '#1 d=0.4' in page
    assert 'position=' not in page


def test_dedup_report_says_which_rank_each_number_is():
    """Audit s18 F1: under cmc_mode='dedup' (SYSU-MM01's) the CMC counts
    distinct identities, while the first-match histogram, the ranked
    lists' "first correct match at rank N" and per_query.npz first_rank
    are positions in the full list; the page did not say which is which.

    Query pid 1 at 0.0; gallery (camid 1) 1.0 pid 2, 2.0 pid 2, 3.0 pid 3,
    4.0 pid 1: the match is 4th in the list, and 3rd counting each pid
    once (pids 2 and 3 before it).
    """
    from mmreid.evaluation import ReIDMetric
    records = hand_records(
        ((0.0, 1, 0), ), ((1.0, 2, 1), (2.0, 2, 1), (3.0, 3, 1), (4.0, 1, 1)))
    metric = ReIDMetric(cmc_mode='dedup')
    section, page = hand_section(metric, records)
    # The data stay as they are: the CMC is de-duplicated, the first rank
    # is the list position.
    assert section.analysis.cmc.tolist() == [0.0, 0.0, 1.0, 1.0]
    assert section.analysis.first_rank.tolist() == [4]
    arrays = EvalReportHook.per_query_arrays('hand', records[:1],
                                             section.analysis, metric)
    assert arrays['hand/first_rank'].tolist() == [4]
    # Each is labelled.
    assert 'CMC curve (distinct identities)' in page
    assert 'First correct match: full-list rank' in page
    assert 'first correct match at rank 4 of the full ranked list' in page
    assert 'per_query.npz first_rank are positions in the full ranked ' \
        'list, not de-duplicated' in page
    # A standard CMC needs no such label.
    _, page = hand_section(ReIDMetric(), records)
    assert 'first correct match at rank 4</div>' in page
    assert 'full ranked list' not in page and 'distinct' not in page


def test_a_metric_with_its_own_cmc_protocol_labels_the_report_cmc():
    """Audit s18 F8: with CUHK03ClassicMetric the report showed the
    standard R1/CMC as "R1" beside the classic protocol's, and said "as
    reported" since only mAP was compared.

    Query q0 (pid 1, 0.0): five pid 2 images at 0.1 .. 0.5, then its match
    at 1.0: standard rank 6; classic (one image per identity, whichever is
    drawn) rank 2. q1 (pid 3, 5.0): its match at 5.1 is first both ways.
    Standard: R1 50, R5 50, R10 100; classic: R1 50, R5 100. mAP (full
    list, both): (1/6 + 1) / 2.
    """
    from mmreid.evaluation.metrics import CUHK03ClassicMetric
    gallery = tuple(
        (0.1 * i, 2, 1) for i in range(1, 6)) + ((1.0, 1, 1), (5.1, 3, 1))
    records = hand_records(((0.0, 1, 0), (5.0, 3, 0)), gallery)
    metric = CUHK03ClassicMetric(distractor_pids=())
    metric.process(None, metric_samples(records))
    reported = {
        f'cuhk03/{k}': v
        for k, v in metric.compute_metrics(metric.results).items()
    }
    assert reported['cuhk03/R5'] == pytest.approx(100.0)
    assert reported['cuhk03/mAP'] == pytest.approx(100 * (1 / 6 + 1) / 2)
    section, page = hand_section(metric, records, reported, max_rank=10)
    assert section.analysis.cmc[4] == pytest.approx(0.5)
    assert ('Reported cuhk03/R5 100.00: CUHK03ClassicMetric computes its '
            'own CMC protocol') in page
    assert 'are the standard protocol (the whole ranked gallery): R5 ' \
        '50.00.' in page
    assert '<th>R5 (standard protocol)</th>' in page
    assert 'CMC curve (standard protocol)' in page
    assert '>R1 (standard protocol)</td>' in page  # sampling error row
    assert section.cmc_label == 'standard protocol'
    # A metric whose CMC is the standard one gets no label.
    from mmreid.evaluation import ReIDMetric
    plain = ReIDMetric()
    plain.process(None, metric_samples(records))
    reported = {
        f'reid/{k}': v
        for k, v in plain.compute_metrics(plain.results).items()
    }
    section, page = hand_section(plain, records, reported, max_rank=10)
    assert section.cmc_label == '' and 'standard protocol' not in page
    assert 'reid/mAP 58.33 as reported.' in page
    # A metric that declares no other protocol and reports another R5 with
    # the same mAP is a discrepancy, not a protocol: said as one, and the
    # section's CMC is not relabelled to explain it away.
    reported['reid/R5'] = 100.0
    section, page = hand_section(plain, records, reported, max_rank=10)
    assert section.cmc_label == '' and 'standard protocol' not in page
    assert ('Reported reid/R5 100.00; this analysis of the same ranking '
            'gives R5 50.00, although the mAP agrees (ReIDMetric declares '
            'no other CMC protocol).') in page


@pytest.mark.parametrize('option,given', [('rerank', dict(k1=2, k2=1)),
                                          ('query_expansion', dict(k=1))])
def test_settings_line_names_rerank_and_query_expansion(option, given):
    """Audit s18 F2: the settings line under a section's title named the
    distance and rank rules but not re-ranking or query expansion, though
    the distances shown were re-ranked."""
    import html
    import json

    from mmreid.evaluation import ReIDMetric
    records = hand_records(query=DIRECTED_QUERY)
    metric = ReIDMetric(**{option: given})
    metric.analysis_request = dict(topk=4, max_rank=4)
    metric.process(None, metric_samples(records))
    metric.compute_metrics(metric.results)
    _, page = hand_section(metric, records)
    meta = html.unescape(
        page.split('<p class="meta">', 1)[1].split('</p>', 1)[0])
    other = 'query_expansion' if option == 'rerank' else 'rerank'
    assert f'{option}: {json.dumps(given, sort_keys=True)}' in meta
    assert f'{other}: none' in meta
    # The camera table's caption says what its cells are then.
    assert (f'With {option}, which depend on the whole gallery, a cell is '
            "that camera's part of the ranking made over the whole gallery"
            ) in html.unescape(page)
    _, page = hand_section(ReIDMetric(), records)
    assert 'rerank: none · query_expansion: none' in page
    assert 'which depend on the whole gallery' not in page
    # Without the metric's own analysis the hook ranks plain distances:
    # the settings line says so, and the caption claims no re-ranking.
    metric = ReIDMetric(**{option: given})
    metric.process(None, metric_samples(records))
    metric.compute_metrics(metric.results)
    _, page = hand_section(metric, records)
    assert ("values: plain distances, without the metric's "
            f'{option}') in html.unescape(page)
    assert 'which depend on the whole gallery' not in page


def settings_line(page):
    """The settings line under a section's title, unescaped."""
    import html
    return html.unescape(
        page.split('<p class="meta">', 1)[1].split('</p>', 1)[0])


def test_settings_line_names_the_protocol_and_the_test_time_options():
    """Audit s18 C4-C6: the settings line of a SYSU, LLCM or MBN run did
    not say its gallery draw, shots, trials, search mode, LLCM's VIS->IR
    mode or MBN's test statistics, and per_query.npz recorded GMN's primary
    mode as ``mode``, readable as SYSU's all/indoor mode."""
    import json
    import re

    from torch import nn

    from mmreid.evaluation.metrics import LLCMMetric, SYSUMetric
    from mmreid.models.layers import MBN
    records = hand_records(query=DIRECTED_QUERY)
    metric = SYSUMetric(mode='indoor', shot='multi', num_trials=2, seed=3)
    section, page = hand_section(metric, records)
    line = settings_line(page)
    for shown in ('gallery_draw: agw_seeded', 'seed: 3', 'shots: 10',
                  'gallery_cams: 1,2', 'num_trials: 2', 'transpose: False',
                  'sysu_mode: indoor'):
        assert shown in line
    # No bare 'mode' (GMN's primary mode is recorded as primary_mode).
    assert re.search(r'(^|· )(primary_)?mode:', line) is None
    hook = EvalReportHook(num_queries=2, topk=4, max_rank=4)
    hand_section(metric, records, hook=hook)
    settings = json.loads(str(hook._per_query['hand/settings']))
    assert settings['sysu_mode'] == 'indoor' and 'mode' not in settings
    assert settings['primary_mode'] == ''
    metric = LLCMMetric(direction='vis2ir', vis2ir_mode='symmetric')
    line = settings_line(hand_section(metric, records)[1])
    assert 'direction: vis2ir' in line
    assert 'vis2ir_mode: symmetric' in line
    # MBN's transductive test statistics are named; the defaults are not.
    model = nn.Sequential(nn.Conv2d(1, 2, 1), MBN(2, eval_stats='batch'))
    line = settings_line(hand_section(ReIDMetric(), records, model=model)[1])
    assert 'mbn_eval_stats: batch' in line
    model = nn.Sequential(nn.Conv2d(1, 2, 1), MBN(2))
    line = settings_line(hand_section(ReIDMetric(), records, model=model)[1])
    assert 'mbn_eval_stats' not in line


def test_a_transposed_ranking_is_not_shown_as_the_reported_one():
    """Audit s18 C2: LLCM VIS->IR in the reference mode reports sampled
    NIR probes against all VIS images; the hook ranks every VIS query
    against the whole NIR pool, the other direction. The section said
    "values: reported ranking", left its R1 and mAP unqualified and
    blamed the gap on trial averaging."""
    import json

    from mmreid.evaluation.metrics import LLCMMetric
    records = hand_records(query=DIRECTED_QUERY)
    metric = LLCMMetric(direction='vis2ir')
    reported = {'llcm-vis2ir/mAP': 1.0, 'llcm-vis2ir/trial0/mAP': 1.0}
    hook = EvalReportHook(num_queries=2, topk=4, max_rank=4)
    section, page = hand_section(metric, records, reported, hook=hook)
    values = json.loads(str(hook._per_query['hand/settings']))['values']
    assert values.startswith('the other direction: every query against '
                             'the whole gallery pool')
    assert f'values: {values}' in settings_line(page)
    assert list(section.sampling_errors) == [
        'R1 (whole gallery, other direction)',
        'mAP (whole gallery, other direction)'
    ]
    note = [
        n for n in section.notes if n.startswith('Reported llcm-vis2ir/mAP')
    ]
    assert note == [
        f'Reported llcm-vis2ir/mAP is 1.00; this analysis gives '
        f'{section.analysis.mAP:.2f} (this analysis ranks {values}).'
    ]
    # The symmetric mode ranks the queries as given: no such label.
    metric = LLCMMetric(direction='vis2ir', vis2ir_mode='symmetric')
    hook = EvalReportHook(num_queries=2, topk=4, max_rank=4)
    section, page = hand_section(metric, records, reported, hook=hook)
    assert json.loads(str(
        hook._per_query['hand/settings']))['values'] == 'reported ranking'
    assert 'other direction' not in page


def test_default_heads_record_no_test_time_setting():
    """A GMN run and its BoT baseline are compared query by query
    (paired_query_error): neither records a test-time option at its
    default (GMNHead's own ``test_feature`` argument defaults to None and
    follows ``pair_feat``), while a before-BN feature is recorded."""
    import torch.nn as nn

    from mmreid.engine.hooks.report_hook import model_test_settings
    from mmreid.models.heads import BNNeckHead, GMNHead

    def with_head(head):
        model = nn.Module()
        model.head = head
        return model

    bot = with_head(BNNeckHead(in_channels=8, num_classes=3))
    gmn = with_head(
        GMNHead(in_channels=8, num_classes=3, mnet=dict(hidden_channels=4)))
    assert model_test_settings(bot) == {} == model_test_settings(gmn)
    before = with_head(
        BNNeckHead(in_channels=8, num_classes=3, test_feature='before_bn'))
    assert model_test_settings(before) == {'test_feature': 'before_bn'}


def test_a_query_is_never_ranked_against_its_own_image():
    """Audit s22: QMUL-iLIDS's test set is the union of its ten splits,
    which lists an image that is a query in one split and a gallery image
    in another once per role (camid 0 and 1). DGSplitMetric ranks each
    split, where no image meets itself; the report ranked every query
    against the whole union and found its own copy at distance 0 (kept by
    the camera rule) as a true match.

    By the protocol the copy is no match of its own query: q0 (pid 1,
    0.0) ranks c (pid 3, 1.0), then d (pid 1, 2.0): AP 1/2, first match
    at rank 2 (with the copy: rank 1, AP (1 + 2/3) / 2). q1 (pid 2, 5.0)
    ranks e (pid 2, 5.5) first: AP 1. One gallery camera: R1 50, mAP 75.
    The copy stays in the gallery of the other queries.
    """
    from mmreid.evaluation.metrics import DGSplitMetric
    records = hand_records(
        ((0.0, 1, 0), (5.0, 2, 0)),
        ((0.0, 1, 1), (1.0, 3, 1), (2.0, 1, 1), (5.5, 2, 1)))
    query, copy = records[0], records[2]
    copy['img_path'] = query['img_path']
    section, page = hand_section(DGSplitMetric(), records)
    assert section.analysis.ap.tolist() == [0.5, 1.0]
    assert section.analysis.first_rank.tolist() == [2, 1]
    assert section.num_gallery == 4
    q0_list = section.analysis.topk_index[0].tolist()
    assert q0_list == [1, 2, 3, -1]  # c, d, e: never the copy (index 0)
    assert cells(page, 'camera-pairs') == [(50.0, 75.0)]
    # A gallery-dependent distance is computed without the copy too (the
    # copy, nearest at 0.0, took one of the two swapped places): swap_top2
    # on q0's gallery without it ranks d, c, e (AP 1), on q1's the copy's
    # gallery ranks d, e (AP 1/2).
    section, page = hand_section(
        DGSplitMetric(), records, scorers=dict(top2=swap_top2))
    assert section.analysis.topk_index[0].tolist() == [2, 1, 3, -1]
    assert cells(page, 'camera-pairs') == [(50.0, 75.0)]


def test_indoor_search_is_analysed_on_the_indoor_gallery():
    """Audit s22: SYSUMetric(mode='indoor') on an all-search pool ranks
    cams 1 and 2 only, as its settings line says (``gallery_cams: 1,2``),
    but the report ranked the whole pool, outdoor cams 4 and 5 included.

    Query pid 1 at 0.0 (cam6, camid 5). Pool: cam1 (camid 0) pid 1 at
    1.0, cam2 (camid 1) pid 2 at 2.0, cam4 (camid 3) pid 2 at 0.5, cam5
    (camid 4) pid 3 at 0.2. Indoor gallery: the first two; the query
    ranks its match first, AP 1 (on the pool: third, AP 1/3).
    """
    from mmreid.evaluation.metrics import SYSUMetric
    records = hand_records(
        ((0.0, 1, 5), ), ((1.0, 1, 0), (2.0, 2, 1), (0.5, 2, 3), (0.2, 3, 4)))
    metric = SYSUMetric(mode='indoor', distance='euclidean')
    hook = EvalReportHook(num_queries=2, topk=4, max_rank=4)
    section, page = hand_section(metric, records, hook=hook)
    assert section.num_gallery == 2
    assert section.analysis.ap.tolist() == [1.0]
    assert set(g for _, g in section.analysis.camera_pairs) == {0, 1}
    assert int(hook._per_query['hand/gallery_size']) == 2
    assert 'gallery_cams: 1,2' in settings_line(page)
    # All-search ranks the whole pool.
    section, _ = hand_section(
        SYSUMetric(mode='all', distance='euclidean'), records)
    assert section.num_gallery == 4
    assert section.analysis.ap.tolist() == [pytest.approx(1 / 3)]


def write_report(out_dir, records, meta):
    """One test of EvalReportHook(out_dir=...) on ``records``, as
    ``tools/test.py --report`` runs it; ``meta`` is a line of its page."""
    evaluator = SimpleNamespace(metrics=[ReIDMetric(distance='euclidean')])
    runner = SimpleNamespace(
        model=SimpleNamespace(scorers=lambda: None),
        work_dir=osp.dirname(out_dir),
        log_dir=osp.dirname(out_dir),
        test_loop=SimpleNamespace(evaluator=evaluator))
    hook = EvalReportHook(
        out_dir=out_dir, num_queries=1, topk=4, max_rank=4, meta=[meta])
    hook.before_test_epoch(runner)
    hook.before_test_iter(runner, 0)
    hook._records = records  # what after_test_iter collects
    hook.after_test_epoch(runner, metrics={})


def report_of(out_dir):
    """The page of a report folder and its per-query values."""
    with open(osp.join(out_dir, 'report.html'), encoding='utf-8') as f:
        page = f.read()
    with np.load(osp.join(out_dir, 'per_query.npz')) as data:
        return page, {k: data[k] for k in data.files}


#: Run B: q0 (pid 1) moves from 0.0 to 2.9, next to g3 (3.0, pid 1).
QUERY_B = ((2.9, 1, 0), (2.4, 2, 0))


def test_a_report_folder_holds_one_runs_whole_report(tmp_path, monkeypatch):
    """Audit s24: run B into run A's report folder, killed while it wrote
    per_query.npz, left B's page beside A's per-query values, and
    paired_query_error.py then compared A with A as "B vs A". The folder
    keeps A's whole report until B's is complete; then B's replaces it,
    said in the log."""
    out = str(tmp_path / 'report')
    write_report(out, hand_records(), 'run A')
    page_a, values_a = report_of(out)
    # A's q0 (0.0, pid 1) ranks g2, g0 (pid 1), g1, g3 (pid 1): AP
    # (1/2 + 2/4) / 2; q1 (2.4, pid 2) ranks g1 (pid 2) first: AP 1.
    assert values_a['hand/ap'].tolist() == [0.5, 1.0]

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as a kill while it is written

    with monkeypatch.context() as patch:
        patch.setattr(np, 'savez_compressed', killed)
        with pytest.raises(KeyboardInterrupt):
            write_report(out, hand_records(QUERY_B), 'run B')
    page, values = report_of(out)
    assert 'run A' in page and 'run B' not in page
    assert values['hand/ap'].tolist() == values_a['hand/ap'].tolist()
    assert sorted(os.listdir(tmp_path)) == ['report']  # no temporary one

    logged = []
    monkeypatch.setattr(atomic, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    write_report(out, hand_records(QUERY_B), 'run B')
    page, values = report_of(out)
    assert 'run B' in page and 'run A' not in page
    # B's q0 (2.9) ranks g3 (pid 1), g1, g0 (pid 1), g2: AP (1 + 2/3) / 2.
    assert values['hand/ap'].tolist() == pytest.approx([5 / 6, 1.0])
    assert len(logged) == 1 and out in logged[0]
    assert 'report.html' in logged[0] and 'per_query.npz' in logged[0]
    # The page and the values name the same run, which A's do not.
    from mmreid.engine.hooks.report_hook import report_run_id
    assert report_run_id(page) == str(values['hand/run_id'])
    assert report_run_id(page_a) == str(values_a['hand/run_id'])
    assert report_run_id(page) != report_run_id(page_a)


def test_paired_query_error_refuses_a_page_and_values_of_two_runs(tmp_path):
    """A folder whose page another run wrote than its per_query.npz (a
    copy, or a release that wrote them one by one) is refused by the
    reader, naming both files and their runs."""
    tool = load_tool('tools/analysis_tools/paired_query_error.py')
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    write_report(a, hand_records(), 'run A')
    write_report(b, hand_records(QUERY_B), 'run B')
    assert list(tool.load_per_query(b)) == ['hand']
    shutil.copy(osp.join(a, 'report.html'), osp.join(b, 'report.html'))
    with pytest.raises(ValueError, match='written by different runs') as info:
        tool.load_per_query(b)
    message = str(info.value)
    assert osp.join(b, 'per_query.npz') in message
    assert osp.join(b, 'report.html') in message
    # The file alone, without a page beside it, is read.
    os.remove(osp.join(b, 'report.html'))
    assert list(tool.load_per_query(b)) == ['hand']


def test_a_report_folder_with_other_files_is_refused(tmp_path):
    out = tmp_path / 'report'
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match=r"holds \['notes.txt'\]"):
        write_report(str(out), hand_records(), 'run A')
    assert os.listdir(out) == ['notes.txt']


def two_dataset_records(query=QUERY):
    """:func:`hand_records` of two datasets, ``hand`` and ``hand2``: a
    report of two sections."""
    second = hand_records(query)
    for record in second:
        record.update(
            dataset='hand2', sample_idx=record['sample_idx'] + len(second))
    return hand_records(query) + second


def test_a_report_of_several_sections_is_read_back_and_paired(tmp_path):
    """paired_query_error.py reads every section of a two-dataset report
    and pairs each with the other run's."""
    tool = load_tool('tools/analysis_tools/paired_query_error.py')
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    write_report(a, two_dataset_records(), 'run A')
    write_report(b, two_dataset_records(QUERY_B), 'run B')
    values_a, values_b = tool.load_per_query(a), tool.load_per_query(b)
    assert sorted(values_a) == sorted(values_b) == ['hand', 'hand2']
    rows = tool.paired_rows(values_a, values_b)
    pairs = sorted((r['section'], r['metric']) for r in rows)
    assert pairs == [('hand', 'R1'), ('hand', 'mAP'), ('hand2', 'R1'),
                     ('hand2', 'mAP')]
    # The AP of q0 moves from 1/2 (A) to 5/6 (B) in each section.
    for section in ('hand', 'hand2'):
        assert values_a[section]['ap'].tolist() == [0.5, 1.0]
        assert values_b[section]['ap'].tolist() == pytest.approx([5 / 6, 1])


def rewrite_values(path, change):
    """Write ``per_query.npz`` at ``path`` again with ``change(values)``."""
    with np.load(path) as data:
        values = {k: data[k] for k in data.files}
    change(values)
    with open(path, 'wb') as f:
        np.savez(f, **values)


def test_values_of_several_runs_in_one_file_are_refused(tmp_path):
    """A per_query.npz whose sections name two runs, or one run and no
    run (a section of a release before run ids), holds values of
    different runs: refused, even with no page beside it."""
    tool = load_tool('tools/analysis_tools/paired_query_error.py')
    out = str(tmp_path / 'a')
    write_report(out, two_dataset_records(), 'run A')
    os.remove(osp.join(out, 'report.html'))
    path = osp.join(out, 'per_query.npz')
    assert sorted(tool.load_per_query(path)) == ['hand', 'hand2']

    def other_run(values):
        values['hand2/run_id'] = np.array('f' * 32)

    rewrite_values(path, other_run)
    with pytest.raises(ValueError, match='its sections name different runs'):
        tool.load_per_query(path)

    def no_run(values):
        del values['hand2/run_id']

    rewrite_values(path, no_run)
    with pytest.raises(ValueError, match='its sections name different runs'):
        tool.load_per_query(path)


def test_a_page_or_values_without_a_run_id_beside_the_other_are_refused(
        tmp_path):
    """A page without a run id (an older release's) beside values that
    name one, and values without one beside a page that names one, are
    not known to be of one run: refused."""
    tool = load_tool('tools/analysis_tools/paired_query_error.py')
    out = str(tmp_path / 'a')
    write_report(out, hand_records(), 'run A')
    page_path = osp.join(out, 'report.html')
    with open(page_path, encoding='utf-8') as f:
        page = f.read()
    without = re.sub(r'<p class="meta">run id: [0-9a-f]{32}</p>', '', page)
    assert without != page
    with open(page_path, 'w', encoding='utf-8') as f:
        f.write(without)
    with pytest.raises(ValueError, match='written by different runs'):
        tool.load_per_query(out)
    with open(page_path, 'w', encoding='utf-8') as f:
        f.write(page)
    assert list(tool.load_per_query(out)) == ['hand']

    def no_run(values):
        del values['hand/run_id']

    rewrite_values(osp.join(out, 'per_query.npz'), no_run)
    with pytest.raises(ValueError, match='written by different runs'):
        tool.load_per_query(out)


def shown(example):
    """``(pid, camid, distance, match)`` of each gallery item of a ranked
    list of the report, in rank order."""
    return [(g['pid'], g['camid'], pytest.approx(g['distance']), g['match'])
            for g in example.gallery]


def test_a_ranked_list_is_its_querys_own_ranking():
    """The worst and best lists name their own query, its AP and first
    match, its gallery nearest first with green (same pid) and red frames,
    and no more items than the gallery keeps; a wrong query, AP or frame
    would show a user another ranking than the one scored.

    q0 (pid 1, 0.0): g2 (pid 3) 0.5, g0 (pid 1) 1.0, g1 (pid 2) 2.0, g3
    (pid 1) 3.0: AP (1/2 + 2/4) / 2 = 1/2, first match at rank 2. q1 (pid
    2, 2.4): g1 (pid 2) 0.4, g3 0.6, g0 1.4, g2 1.9: AP 1. One list each;
    topk 5 of a gallery of four shows four.
    """
    hook = EvalReportHook(num_queries=1, topk=5, max_rank=4)
    section, page = hand_section(ReIDMetric(), hand_records(), hook=hook)
    worst, best = section.examples
    assert (worst.kind, worst.query['pid'], worst.query['camid']) == \
        ('worst', 1, 0)
    assert (worst.ap, worst.first_rank) == (pytest.approx(0.5), 2)
    assert shown(worst) == [(3, 2, 0.5, False), (1, 1, 1.0, True),
                            (2, 1, 2.0, False), (1, 2, 3.0, True)]
    assert (best.kind, best.query['pid'], best.query['camid']) == \
        ('best', 2, 0)
    assert (best.ap, best.first_rank) == (pytest.approx(1.0), 1)
    assert shown(best) == [(2, 1, 0.4, True), (1, 2, 0.6, False),
                           (1, 1, 1.4, False), (3, 2, 1.9, False)]
    # The page frames them so: q0's list red, green, red, green.
    lists = re.findall(r'<div class="ranked-list (\w+)".*?</div></div>',
                       page)
    assert lists == ['worst', 'best']
    worst_html = page.split('<div class="ranked-list worst"')[1].split(
        '<div class="ranked-list best"')[0]
    assert re.findall(r'class="tile (\w+)"', worst_html) == [
        'query', 'mismatch', 'match', 'mismatch', 'match'
    ]


def test_a_validation_report_shows_that_validation(tmp_path):
    """EvalReportHook(phases=('val', )) writes each validation's report
    into ``val_epoch_<n>``, with the metrics that validation reported
    (its results table and the "as reported" note) and the settings of
    the validation loop (fp16 there, not in the test loop); the test
    loop's settings or no metrics would describe another evaluation."""
    import json
    out = str(tmp_path / 'report')
    evaluator = SimpleNamespace(metrics=[ReIDMetric(distance='euclidean')])
    runner = SimpleNamespace(
        model=SimpleNamespace(scorers=lambda: None),
        work_dir=str(tmp_path),
        log_dir=str(tmp_path),
        epoch=2,
        val_loop=SimpleNamespace(evaluator=evaluator, fp16=True),
        test_loop=SimpleNamespace(evaluator=evaluator, fp16=False))
    hook = EvalReportHook(
        out_dir=out, num_queries=1, topk=4, max_rank=4, phases=('val', ))
    hook.before_val_epoch(runner)
    hook.before_val_iter(runner, 0)
    hook._records = hand_records()  # what after_val_iter collects
    # hand_records' mAP: q0 AP 1/2, q1 AP 1.
    hook.after_val_epoch(runner, metrics={'reid/mAP': 75.0, 'reid/R1': 50.0})
    page, values = report_of(osp.join(out, 'val_epoch_2'))
    assert 'reid/mAP 75.00 as reported.' in page
    table = re.search(r'<table class="results">.*?</table>', page).group(0)
    assert '<td class="name">reid</td><td>50.00</td><td>75.00</td>' in table
    assert json.loads(str(values['hand/settings']))['fp16'] == 'True'


def test_two_targets_of_one_dataset_get_a_section_each(tmp_path):
    """A multi-target test may evaluate one dataset twice, each target
    with its own evaluator: the report has a section per target (not one
    per dataset, which would rank each query against two copies of the
    gallery), each ranked with its own target's metric and compared
    with that target's reported numbers."""
    import json
    out = str(tmp_path / 'report')
    evaluators = {
        'a': SimpleNamespace(metrics=[ReIDMetric(distance='euclidean')]),
        'b': SimpleNamespace(metrics=[ReIDMetric(distance='sqeuclidean')])
    }
    loop = SimpleNamespace(current_target=None, evaluator=None)
    runner = SimpleNamespace(
        model=SimpleNamespace(scorers=lambda: None),
        work_dir=str(tmp_path),
        log_dir=str(tmp_path),
        test_loop=loop)
    hook = EvalReportHook(out_dir=out, num_queries=1, topk=4, max_rank=4)
    hook.before_test_epoch(runner)
    for target in ('a', 'b'):
        loop.current_target, loop.evaluator = target, evaluators[target]
        hook.before_test_iter(runner, 0)
        hook.after_test_iter(runner, 0, None,
                             metric_samples(hand_records()))
    # hand_records: q0 AP 1/2, q1 AP 1 with either distance.
    hook.after_test_epoch(runner, metrics={'a/mAP': 75.0, 'b/mAP': 60.0})
    page, values = report_of(out)
    sections = re.findall(r'<section class="target" id="[^"]*" '
                          r'data-target="([^"]*)">', page)
    assert sections == ['a', 'b']
    for name, distance in (('a', 'euclidean'), ('b', 'sqeuclidean')):
        assert values[f'{name}/ap'].tolist() == [0.5, 1.0]
        assert int(values[f'{name}/gallery_size']) == 4
        settings = json.loads(str(values[f'{name}/settings']))
        assert settings['distance'] == distance
    assert 'a/mAP 75.00 as reported.' in page
    assert 'Reported b/mAP is 60.00; this analysis gives 75.00' in page


def test_a_difference_the_page_shows_is_not_called_as_reported():
    """Numbers are shown with two decimals: a reported mAP 0.01 off the
    analysis's is a visible difference, not "as reported"."""
    (note, ) = compare(40.0, ReIDMetric(), {'reid/mAP': 40.01})
    assert note.startswith('Reported reid/mAP is 40.01; this analysis '
                           'gives 40.00')


def compare_cmc(mAP, cmc, metrics):
    analysis = SimpleNamespace(mAP=mAP, cmc=np.asarray(cmc))
    return EvalReportHook._compare_cmc(analysis, ReIDMetric(), metrics,
                                       'test', False)


def test_cmc_notes_compare_every_rank_the_analysis_has():
    """The note on a reported R<k> that is not this analysis's (with the
    same mAP) compares each of R1, R5, R10 and R20 that the analysis's
    CMC reaches, its last rank too; with another mAP the rankings differ
    anyway, which the mAP note says, so no R<k> note is added."""
    cmc = [0.5, 0.5, 0.5, 0.5, 0.5]  # R1 = R5 = 50 (max_rank 5)
    (note, ) = compare_cmc(60.0, cmc, {
        'reid/mAP': 60.0,
        'reid/R1': 50.0,
        'reid/R5': 100.0
    })
    assert note.startswith('Reported reid/R5 100.00; this analysis of the '
                           'same ranking gives R5 50.00')
    # R10 is beyond the analysis's CMC: not compared.
    assert compare_cmc(60.0, cmc, {'reid/mAP': 60.0, 'reid/R10': 90.0}) == []
    assert compare_cmc(60.0, cmc, {
        'reid/mAP': 70.0,
        'reid/R1': 80.0,
        'reid/R5': 100.0
    }) == []


def analysed_metric(records, topk=4, max_rank=4):
    """A ReIDMetric that made its own analysis of ``records``."""
    metric = ReIDMetric()
    metric.analysis_request = dict(topk=topk, max_rank=max_rank)
    metric.process(None, metric_samples(records))
    metric.compute_metrics(metric.results)
    assert metric.last_analysis is not None
    return metric


def test_the_metrics_analysis_is_shown_with_the_metrics_records():
    """The metric's analysis indexes its own records, in its order: the
    report shows its lists and per-query values with those records even
    when the hook collected the samples in another order (a wrong order
    would put another query's pid and images on a list)."""
    records = hand_records()
    metric = analysed_metric(records)
    collected = records[::-1]  # q1, q0, then g3 .. g0
    hook = EvalReportHook(num_queries=1, topk=4, max_rank=4)
    section, _ = hand_section(metric, collected, hook=hook)
    worst, best = section.examples
    assert worst.query['pid'] == 1 and best.query['pid'] == 2
    assert shown(worst) == [(3, 2, 0.5, False), (1, 1, 1.0, True),
                            (2, 1, 2.0, False), (1, 2, 3.0, True)]
    assert shown(best)[0] == (2, 1, 0.4, True)
    paths = hook._per_query['hand/img_path'].tolist()
    aps = hook._per_query['hand/ap'].tolist()
    assert dict(zip(paths, aps)) == {
        '/nonexistent/query0.jpg': 0.5,
        '/nonexistent/query1.jpg': 1.0
    }


def test_the_metrics_analysis_is_taken_only_when_it_fits():
    """The metric's analysis is used when it ranks the collected samples
    with at least the hook's lengths, cut to them; one of other samples
    or too short is not (the hook ranks the samples itself)."""
    records = hand_records()
    query = [r for r in records if r['is_query']]
    gallery = [r for r in records if not r['is_query']]
    metric = analysed_metric(records, topk=8, max_rank=50)
    hook = EvalReportHook(num_queries=1, topk=2, max_rank=3)
    analysis, _, _ = hook._metric_analysis('hand', metric, query, gallery)
    assert analysis.topk_index.shape == (2, 2)
    assert analysis.topk_distance.shape == analysis.topk_match.shape == (2, 2)
    assert len(analysis.cmc) == 3
    # Longer lists than the metric kept.
    longer = EvalReportHook(num_queries=1, topk=9, max_rank=3)
    assert longer._metric_analysis('hand', metric, query, gallery) is None
    # Other samples: a gallery image less, or a query less.
    assert hook._metric_analysis('hand', metric, query, gallery[1:]) is None
    assert hook._metric_analysis('hand', metric, query[1:], gallery) is None


def test_per_query_values_of_a_trial_protocol_average_each_querys_trials():
    """per_query.npz of a trial protocol holds each query's R1 hit and AP
    averaged over the trials (paired_query_error.py compares them): q0
    ranks its match second in trial 0 (hit 0, AP 1/2) and first in trial
    1 (hit 1, AP 1): 0.5 and 0.75; q1 is first in both: 1 and 1."""
    import torch

    from mmreid.evaluation.functional import evaluate_rank
    q_pids, cams = torch.tensor([0, 1]), torch.tensor([0, 0])
    g_cams = torch.tensor([1, 1])
    trials = [
        evaluate_rank(
            torch.tensor(dist), q_pids, torch.tensor(g_pids), cams, g_cams)
        for dist, g_pids in ((((0.1, 0.2), (0.1, 0.2)), (1, 0)),
                             (((0.1, 0.2), (0.2, 0.1)), (0, 1)))
    ]
    metric = SimpleNamespace(
        trial_results=trials,
        trial_query_pids=q_pids.numpy(),
        trial_query_paths=['q0.jpg', 'q1.jpg'])
    analysis = SimpleNamespace(first_rank=np.array([1, 1]), ap=np.ones(2))
    arrays = EvalReportHook.per_query_arrays('t', [], analysis, metric)
    assert arrays['t/trial_img_path'].tolist() == ['q0.jpg', 'q1.jpg']
    assert arrays['t/trial_pid'].tolist() == [0, 1]
    assert arrays['t/trial_r1'].tolist() == [0.5, 1.0]
    assert arrays['t/trial_ap'].tolist() == [0.75, 1.0]


def test_test_time_flip_is_recorded_only_when_on():
    """``test_cfg.flip`` averages each feature with its mirror's: another
    model output, recorded as ``flip: 'True'``; a test_cfg without it (or
    with it off) records nothing, so such runs still compare."""
    import torch.nn as nn

    from mmreid.engine.hooks.report_hook import model_test_settings

    def with_test_cfg(test_cfg):
        model = nn.Module()
        model.test_cfg = test_cfg
        return model

    assert model_test_settings(with_test_cfg(dict())) == {}
    assert model_test_settings(with_test_cfg(dict(flip=False))) == {}
    assert model_test_settings(with_test_cfg(dict(flip=True))) == {
        'flip': 'True'
    }


def test_test_time_options_of_a_wrapped_model_are_recorded():
    """Under distributed (or DataParallel) testing ``runner.model`` is a
    wrapper: its flip and head options are those of the model inside, so
    the run compares with the same model tested on one device."""
    import torch.nn as nn

    from mmreid.engine.hooks.report_hook import model_test_settings
    from mmreid.models.heads import BNNeckHead
    model = nn.Module()
    model.test_cfg = dict(flip=True)
    model.head = BNNeckHead(
        in_channels=8, num_classes=3, test_feature='before_bn')
    expected = {'flip': 'True', 'test_feature': 'before_bn'}
    assert model_test_settings(model) == expected
    assert model_test_settings(nn.DataParallel(model)) == expected


def test_the_log_line_gives_each_value_with_both_standard_errors():
    """sampling_error_line: the value, then the SE with independent
    queries, then the SE clustered by identity (the order its closing
    note names), with the counts of queries and identities."""
    from mmreid.engine.hooks.report_hook import sampling_error_line
    from mmreid.evaluation.sampling_error import SamplingError
    errors = dict(
        R1=SamplingError(
            value=83.333,
            se_independent=1.204,
            se_clustered=2.5,
            num_queries=6,
            num_identities=3))
    assert sampling_error_line(errors) == (
        'R1 83.33 +- 1.20 / +- 2.50 (6 queries, 3 ids) (query sampling '
        'error, one SE: independent queries / clustered by identity)')


def test_a_bound_distance_is_named_with_its_class():
    """A model's ``distance`` method is named ``<Class>.distance`` in the
    settings, so two models' own distances are not taken for one."""
    from mmreid.engine.hooks.report_settings import _scorer_name

    class ModelA:

        def distance(self, query, gallery):
            return query

    class ModelB(ModelA):
        pass

    assert _scorer_name(ModelA().distance) == 'ModelA.distance'
    assert _scorer_name(ModelB().distance) == 'ModelB.distance'
    assert _scorer_name('cosine') == 'cosine'


def test_a_target_without_gallery_or_modalities_is_handled():
    """A target whose (metric's) gallery is empty has nothing to rank: no
    section, not a crash after the evaluation. Records of which only some
    carry a modality get no modality table (and no crash)."""
    records = hand_records()
    queries = [r for r in records if r['is_query']]
    assert hand_section_or_none(ReIDMetric(), queries) is None
    for record in records:
        if record['is_query']:
            record['modality'] = None
    section, page = hand_section(ReIDMetric(), records)
    assert section.analysis.modality_pairs == {}
    assert 'modality-pairs' not in page
    assert cells(page, 'camera-pairs') == [(100.0, 100.0), (0.0, 50.0)]


def hand_section_or_none(metric, records):
    """The section of ``records`` EvalReportHook builds, or None."""
    evaluator = SimpleNamespace(metrics=[metric])
    runner = SimpleNamespace(
        model=SimpleNamespace(scorers=lambda: None),
        test_loop=SimpleNamespace(evaluator=evaluator))
    hook = EvalReportHook(num_queries=2, topk=4, max_rank=4)
    return hook.build_section(runner, 'test', 'hand', records, evaluator, {},
                              False)
