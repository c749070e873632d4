"""A metric of one's own whose ``compute_metrics`` returns no dict is
named.

Written against the behaviour before: docs/customize.md's ``MyMetric``
skeleton (``...`` bodies) stopped the evaluation with mmengine's
"'NoneType' object has no attribute 'items'", naming no metric.
"""
from types import SimpleNamespace

import pytest
import torch
from mmengine.evaluator import BaseMetric, Evaluator

from mmreid.engine.runner import ReIDTestLoop, reid_loops


class SkeletonMetric(BaseMetric):
    default_prefix = 'my'

    def process(self, data_batch, data_samples):
        self.results.append(1)

    def compute_metrics(self, results):
        ...


class CountMetric(SkeletonMetric):

    def compute_metrics(self, results):
        return dict(count=len(results))


class Batches(list):
    """A dataloader: its batches and a dataset."""
    dataset = [0, 1]


def run_test_loop(metric, monkeypatch) -> dict:
    for name in ('check_not_empty', 'check_model_distance',
                 'check_identity_split', 'hand_model_scorers',
                 'check_every_sample_reached'):
        monkeypatch.setattr(reid_loops, name, lambda *args: None)
    loop = ReIDTestLoop.__new__(ReIDTestLoop)
    loop._runner = SimpleNamespace(
        model=torch.nn.Identity(), call_hook=lambda *args, **kwargs: None)
    loop.dataloader = Batches([dict(inputs=[0]), dict(inputs=[1])])
    loop.evaluator = Evaluator([metric])
    loop.test_loss = {}
    loop.run_iter = lambda idx, batch: loop.evaluator.process([batch], batch)
    return loop.run()


def test_a_metric_returning_no_dict_is_named(monkeypatch):
    with pytest.raises(TypeError) as info:
        run_test_loop(SkeletonMetric(), monkeypatch)
    message = str(info.value)
    assert message.startswith(
        f'{__name__}.SkeletonMetric.compute_metrics returned NoneType')
    assert 'returns a dict' in message


def test_a_metric_returning_a_dict_is_logged_under_its_prefix(monkeypatch):
    assert run_test_loop(CountMetric(), monkeypatch) == {'my/count': 2}
