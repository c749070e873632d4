import numpy as np
import pytest
import torch

from mmreid.structures import ReIDDataSample, format_label


@pytest.mark.parametrize('value', [
    7, [7],
    np.array(7),
    np.array([7], dtype=np.int32),
    torch.tensor(7),
    torch.tensor([7], dtype=torch.int16), 7.0,
    torch.tensor([7.0])
])
def test_format_label_gives_one_long_pid(value):
    label = format_label(value)
    assert label.dtype == torch.long
    assert label.tolist() == [7]


def test_format_label_keeps_several_pids_in_order():
    assert format_label([3, 0, 12]).tolist() == [3, 0, 12]
    assert format_label(np.array([5, 1])).tolist() == [5, 1]


@pytest.mark.parametrize('value', [7.5, [1.0, 2.25], np.array([0.5])])
def test_format_label_refuses_a_fractional_pid(value):
    with pytest.raises(ValueError, match='a pid must be an integer'):
        format_label(value)


@pytest.mark.parametrize('value', ['0001', None, {'pid': 1}])
def test_format_label_refuses_other_types(value):
    with pytest.raises(TypeError, match=type(value).__name__):
        format_label(value)


def test_data_sample_fields_and_metainfo():
    sample = ReIDDataSample(
        metainfo=dict(camid=2, modality=1, role='query', dataset='regdb'))
    assert sample.set_gt_label(5) is sample
    assert sample.gt_label.tolist() == [5]
    feature = torch.arange(4.)
    assert sample.set_pred_feature(feature) is sample
    assert torch.equal(sample.pred_feature, feature)
    assert sample.metainfo == dict(
        camid=2, modality=1, role='query', dataset='regdb')
    assert sample.camid == 2 and sample.role == 'query'

    with pytest.raises(AssertionError):  # mmengine's dtype check
        sample.set_pred_feature(np.zeros(4))


def test_data_samples_stay_independent():
    first = ReIDDataSample().set_gt_label(1)
    second = first.clone().set_gt_label(2)
    assert first.gt_label.tolist() == [1]
    assert second.gt_label.tolist() == [2]
    moved = first.set_pred_feature(torch.ones(3)).to('cpu')
    assert moved.pred_feature.device.type == 'cpu'
    assert moved.gt_label.tolist() == [1]
