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
