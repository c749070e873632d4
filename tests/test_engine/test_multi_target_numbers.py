"""The numbers a multi-target evaluation reports: each target's own, and
a mean over targets of its summaries only."""
import logging
from types import SimpleNamespace

import pytest
import torch
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.structures import BaseDataElement
from torch.utils.data import DataLoader, Dataset

from mmreid.engine.runner import MultiTargetTestLoop, merge_target_metrics
from mmreid.engine.runner.target_metrics import is_summary_key


def test_a_trial_of_a_trial_protocol_is_not_averaged_over_targets():
    """A trial-based protocol (TrialGalleryMetric: SYSU-MM01, LLCM) reports
    ``trial<t>/mAP`` per drawn gallery, like ``split<i>/mAP``. Trial 3 of
    one benchmark and trial 3 of another have nothing in common, so
    their mean over targets is no number to log; only the summaries
    over the trials are averaged."""
    assert not is_summary_key('trial3/mAP')
    assert not is_summary_key('reid/trial0/R1')
    assert is_summary_key('mAP') and is_summary_key('reid/R1')
    merged = merge_target_metrics({
        'sysu': {
            'trial0/mAP': 40.0,
            'trial1/mAP': 60.0,
            'mAP': 50.0,
            'mAP_std': 10.0
        },
        'llcm': {
            'trial0/mAP': 20.0,
            'trial1/mAP': 40.0,
            'mAP': 30.0,
            'mAP_std': 10.0
        },
    })
    mean = {k: v for k, v in merged.items() if k.startswith('mean/')}
    assert mean == {'mean/mAP': 40.0}
    assert merged['sysu/trial1/mAP'] == 60.0
    assert merged['llcm/trial0/mAP'] == 20.0


class _Values(Dataset):
    """Samples that carry one number each."""

    def __init__(self, values):
        self.values = list(values)

    def __len__(self):
        return len(self.values)

    def __getitem__(self, index):
        return dict(index=index, value=float(self.values[index]))


class _MeanValue(BaseMetric):
    """The mean of the numbers of the samples it was handed."""

    mean_over_targets = True

    def process(self, data_batch, data_samples):
        self.results.extend(sample['value'] for sample in data_samples)

    def compute_metrics(self, results):
        return dict(value=sum(results) / len(results))


class _LossModel:
    """Hands every sample on and reports, per batch, the largest number in
    it as a validation/test loss (``loss_max``)."""

    def eval(self):
        pass

    def test_step(self, data_batch):
        values = data_batch['value'].tolist()
        outputs = [
            dict(sample_idx=int(i), value=v)
            for i, v in zip(data_batch['index'], values)
        ]
        loss = BaseDataElement(loss=dict(loss_max=torch.tensor(max(values))))
        return outputs + [loss]


def _runner(model):
    return SimpleNamespace(
        model=model,
        hooks=[],
        call_hook=lambda *args, **kwargs: None,
        logger=logging.getLogger('test_multi_target_numbers'),
        visualizer=SimpleNamespace())


def _target(name, values, batch_size=2):
    return dict(
        name=name,
        dataloader=DataLoader(_Values(values), batch_size=batch_size),
        evaluator=Evaluator([_MeanValue()]))


def test_a_targets_losses_are_its_own_batches_only():
    """A model whose test_step also returns a loss gets it logged per
    target (``<target>/loss_max``, the mean over the target's batches).
    The second target's loss must not take in the first target's
    batches: that number would be of neither target."""
    loop = MultiTargetTestLoop(
        _runner(_LossModel()),
        targets=[_target('a', [1, 1, 3, 3]),
                 _target('b', [10, 10])])
    metrics = loop.run()
    # a: batches [1, 1] and [3, 3] -> losses 1 and 3; b: one batch, 10.
    assert metrics['a/loss_max'] == pytest.approx(2.0)
    assert metrics['b/loss_max'] == pytest.approx(10.0)
    assert metrics['a/value'] == pytest.approx(2.0)
    assert metrics['b/value'] == pytest.approx(10.0)
    assert metrics['mean/value'] == pytest.approx(6.0)


def test_a_target_named_as_the_mean_is_refused_when_the_loop_is_made():
    """A target named like the aggregate prefix would have its keys mixed
    with the mean's (``mean/mAP``). It is refused when the loop is made,
    not after every target was extracted (which can take an hour)."""
    model = _LossModel()
    with pytest.raises(ValueError, match="'mean' is used twice"):
        MultiTargetTestLoop(
            _runner(model), targets=[_target('a', [1]),
                                     _target('mean', [2])])
    with pytest.raises(ValueError, match="'avg' is used twice"):
        MultiTargetTestLoop(
            _runner(model),
            targets=[_target('avg', [1])],
            aggregate_prefix='avg')
    # Without a mean, any name is free.
    loop = MultiTargetTestLoop(
        _runner(model), targets=[_target('mean', [2])], aggregate_prefix=None)
    assert loop.run()['mean/value'] == pytest.approx(2.0)


def test_a_metric_without_a_prefix_among_several_is_averaged_if_it_may():
    """A target's metrics 'reid' and one without a prefix: the keys under
    no prefix of the target's (``score``, a per-distance ``cos/score``)
    are the second metric's, averaged when its flag says so
    (``averaged``, per metric in evaluator order)."""
    metrics = {
        'a': {
            'reid/mAP': 10.0,
            'score': 1.0,
            'cos/score': 5.0
        },
        'b': {
            'reid/mAP': 30.0,
            'score': 3.0,
            'cos/score': 7.0
        },
    }
    prefixes = dict(a=('reid', None), b=('reid', None))
    merged = merge_target_metrics(metrics, 'mean', prefixes,
                                  dict(a=(True, True), b=(True, True)))
    mean = {k: v for k, v in merged.items() if k.startswith('mean/')}
    assert mean == {
        'mean/reid/mAP': 20.0,
        'mean/score': 2.0,
        'mean/cos/score': 6.0
    }
    merged = merge_target_metrics(metrics, 'mean', prefixes,
                                  dict(a=(False, True), b=(False, True)))
    mean = {k: v for k, v in merged.items() if k.startswith('mean/')}
    assert mean == {'mean/score': 2.0, 'mean/cos/score': 6.0}


def _cos_r1_sources(c_prefixes, c_metrics):
    """``mean/cos/R1`` of three targets: ``a``'s single metric 'cos'
    (plain keys), ``b``'s 'reid' and 'cos', and ``c``, whose own 'cos'
    metric reports no R1 but whose metric without a prefix does."""
    merged = merge_target_metrics(
        {
            'a': {
                'mAP': 10.0,
                'R1': 20.0
            },
            'b': {
                'reid/mAP': 30.0,
                'cos/mAP': 50.0,
                'cos/R1': 60.0
            },
            'c': c_metrics,
        }, 'mean', dict(a=('cos', ), b=('reid', 'cos'), c=c_prefixes),
        dict(a=(True, ), b=(True, True), c=(True, ) * len(c_prefixes)))
    return {k: v for k, v in merged.items() if k.startswith('mean/')}


def test_a_plain_key_of_a_target_with_several_metrics_is_no_prefixed_key():
    """A plain ``R1`` is matched as ``cos/R1`` only in a target whose one
    metric is 'cos' (its prefix dropped). In a target with several
    metrics a plain key is its metric-without-prefix's: averaging it as
    ``mean/cos/R1`` would mix another metric's number into cos's mean."""
    mean = _cos_r1_sources(('reid', 'cos', None), {
        'reid/mAP': 1.0,
        'cos/mAP': 70.0,
        'R1': 99.0
    })
    assert mean == {'mean/cos/mAP': pytest.approx((10.0 + 50.0 + 70.0) / 3)}


def test_a_plain_key_beside_one_prefixed_metric_is_no_prefixed_key():
    """As above with ``c``'s metrics 'cos' and one without a prefix: its
    plain ``R1`` (99) is not cos's and must stay out of ``mean/cos/R1``
    (it was averaged in: (20 + 60 + 99) / 3 was logged)."""
    mean = _cos_r1_sources(('cos', None), {'cos/mAP': 70.0, 'R1': 99.0})
    assert mean == {'mean/cos/mAP': pytest.approx((10.0 + 50.0 + 70.0) / 3)}


def test_the_single_target_loop_scores_every_sample_of_its_dataset():
    """ReIDTestLoop computes the metric over all the samples of its
    dataset (mmengine keeps the first ``size`` results it is told of): a
    size one short would drop the last sample and log another number."""
    from mmreid.engine.runner import ReIDTestLoop
    loop = ReIDTestLoop(
        _runner(_LossModel()), DataLoader(_Values([1, 2, 6]), batch_size=2),
        Evaluator([_MeanValue()]))
    metrics = loop.run()
    assert metrics['value'] == pytest.approx(3.0)
    # Batches [1, 2] and [6]: the mean of their largest values.
    assert metrics['loss_max'] == pytest.approx(4.0)
