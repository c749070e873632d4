"""Model-wide modality routing lives apart from the MBN layer."""
import ast
import inspect

import pytest
import torch
import torch.nn as nn

from mmreid.models import modality_routing
from mmreid.models.layers import mbn
from mmreid.models.modality_routing import (as_modality_labels,
                                            check_modality_labels,
                                            modality_aware_modules,
                                            modality_context, modality_groups,
                                            set_modality)
from mmreid.models.reiders import reid_model


class Recorder(nn.Module):
    """A modality-aware module that is not an MBN."""

    def __init__(self):
        super().__init__()
        self.labels = 'unset'

    def set_modality(self, labels):
        self.labels = labels


def test_reid_model_takes_routing_from_the_general_module():
    tree = ast.parse(inspect.getsource(reid_model))
    sources = {
        node.module
        for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    }
    assert 'mmreid.models.modality_routing' in sources
    assert not any(s and s.endswith('mbn') for s in sources)
    assert reid_model.set_modality is modality_routing.set_modality


def test_old_mbn_import_path_is_the_same_functions():
    for name in ('set_modality', 'modality_context', 'modality_aware_modules',
                 'modality_groups', 'check_modality_labels', 'ModalityLabels'):
        assert getattr(mbn, name) is getattr(modality_routing, name)


def test_set_modality_reaches_every_aware_module_and_context_clears():
    model = nn.Sequential(Recorder(), nn.Linear(2, 2),
                          nn.Sequential(Recorder()))
    assert len(modality_aware_modules(model)) == 2
    assert set_modality(model, [0, 1, 1]) == 2
    for m in modality_aware_modules(model):
        assert torch.equal(m.labels, torch.tensor([0, 1, 1]))
    with modality_context(model, 1):
        assert all(m.labels == 1 for m in modality_aware_modules(model))
    assert all(m.labels is None for m in modality_aware_modules(model))


def test_labels_are_checked_and_groups_restore_order():
    assert as_modality_labels(1) == 1
    assert as_modality_labels(torch.tensor([[1], [0]])).tolist() == [1, 0]
    with pytest.raises(RuntimeError, match='Net: no modality labels'):
        check_modality_labels(None, 2, 2, torch.device('cpu'), 'Net')
    with pytest.raises(
            ValueError, match='got 3 modality labels for a '
            'batch of 2'):
        check_modality_labels([0, 1, 0], 2, 2, torch.device('cpu'), 'Net')
    with pytest.raises(ValueError, match=r'in \[0, 2\), got \[0, 2\]'):
        check_modality_labels([0, 2], 2, 2, torch.device('cpu'), 'Net')
    labels = torch.tensor([1, 0, 1, 0, 0])
    indices, inverse = modality_groups(labels, 3)
    assert [i.tolist() for i in indices] == [[1, 3, 4], [0, 2], []]
    values = torch.arange(5) * 10
    grouped = torch.cat([values[i] for i in indices])
    assert torch.equal(grouped[inverse], values)
    assert modality_groups(torch.tensor([0, 0, 1]), 2)[1] is None


def test_labels_below_zero_and_too_few_labels_are_refused():
    """-1 (an 'unknown' marker) is no modality; fewer labels than samples
    would leave some samples without one."""
    cpu = torch.device('cpu')
    with pytest.raises(ValueError, match=r'in \[0, 2\), got \[-1, 0\]'):
        check_modality_labels([0, -1], 2, 2, cpu, 'Net')
    with pytest.raises(
            ValueError, match='got 1 modality labels for a batch of 2'):
        check_modality_labels([0], 2, 2, cpu, 'Net')
    assert check_modality_labels(1, 3, 2, cpu, 'Net').tolist() == [1, 1, 1]


@pytest.mark.parametrize('labels', [
    [0.7, 0.2, 1.0],
    torch.tensor([0.7, 0.2, 1.0]),
    [True, False, True],
    torch.tensor([True, False, True]),
])
def test_labels_that_are_not_integers_are_refused(labels):
    """``.long()`` made 0.7 and 0.2 visible and True infrared."""
    with pytest.raises(TypeError, match='must be integers .* got dtype'):
        as_modality_labels(labels)
    with pytest.raises(TypeError, match='Net: modality labels must be'):
        check_modality_labels(labels, 3, 2, torch.device('cpu'), 'Net')


def test_one_label_of_any_integer_type():
    """A NumPy integer labels the whole batch, as an int does (it raised
    "'numpy.int64' object is not iterable"); 0.5 and True are refused."""
    import numpy as np
    cpu = torch.device('cpu')
    assert as_modality_labels(np.int64(1)) == 1
    assert check_modality_labels(np.int64(1), 3, 2, cpu,
                                 'Net').tolist() == [1, 1, 1]
    for bad in (0.5, True):
        with pytest.raises(ValueError, match='not an integer'):
            as_modality_labels(bad)
        with pytest.raises(ValueError, match='not an integer'):
            check_modality_labels(bad, 3, 2, cpu, 'Net')
    assert as_modality_labels([]).dtype == torch.long


def test_checked_labels_are_one_dimensional():
    """Labels given as a column (N, 1) come back as (N,): kept 2-D, the
    groups of ``modality_groups`` would hold column indices (all 0) next to
    the sample indices, so samples would go through the wrong branch."""
    cpu = torch.device('cpu')
    labels = check_modality_labels(
        torch.tensor([[1], [0], [1]]), 3, 2, cpu, 'Net')
    assert labels.shape == (3, ) and labels.dtype == torch.long
    indices, _ = modality_groups(labels, 2)
    assert [i.tolist() for i in indices] == [[1], [0, 2]]
