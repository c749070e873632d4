"""EvalReportHook: the note that compares the report with the metric."""
from types import SimpleNamespace

import pytest

from mmreid.engine.hooks import EvalReportHook
from mmreid.evaluation.metrics import ReIDMetric


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


@pytest.mark.parametrize('kwargs', [dict(max_rank=0), dict(topk=0)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        EvalReportHook(**kwargs)


def test_sampling_errors_of_a_trial_protocol_are_named_by_what_they_measure():
    import numpy as np
    import torch

    from mmreid.engine.hooks.report_hook import (sampling_error_line,
                                                 section_sampling_errors)
    from mmreid.evaluation.functional import evaluate_rank
    from mmreid.evaluation.report import analyse_queries
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
