"""Datasets keep their infos in mmengine's serialized layout, built without
a full garbage collection per dataset."""
import gc

import numpy as np
from mmengine.dataset import BaseDataset

from mmreid.datasets import ConcatReIDDataset, Market1501
from mmreid.datasets.base_reid_dataset import serialize_data_list
from ..fixtures.dataset_trees import make_source


def no_collect(monkeypatch):
    calls = []
    monkeypatch.setattr(gc, 'collect', lambda *a: calls.append(a) or 0)
    return calls


def test_infos_serialized_as_mmengine_does(tmp_path, monkeypatch):
    a = make_source(tmp_path / 'a', pids=[5, 9], cams=[1, 2])
    b = make_source(tmp_path / 'b', pids=[5, 7, 11], cams=[1, 2, 3])

    def build():
        return (ConcatReIDDataset(datasets=[a, b]),
                Market1501(data_root=a['data_root']))

    calls = no_collect(monkeypatch)
    ours = build()
    # mmengine's BaseDataset collected garbage once per dataset built
    # (0.25 s each in a process holding torch).
    assert calls == []
    # The reference: the same datasets serialized by mmengine's own code.
    for cls in (ConcatReIDDataset, Market1501):
        monkeypatch.setattr(cls, '_serialize_data',
                            BaseDataset._serialize_data)
    reference = build()
    # Two sources, their concatenation, Market1501: four collections.
    assert len(calls) == 4
    for dataset, expected in zip(ours, reference):
        assert len(dataset) == len(expected) > 0
        assert np.array_equal(dataset.data_bytes, expected.data_bytes)
        assert np.array_equal(dataset.data_address, expected.data_address)
        assert dataset.data_address.dtype == np.int64
        assert dataset.data_list == []
        assert [dataset.get_data_info(i) for i in range(len(dataset))] == \
            [expected.get_data_info(i) for i in range(len(expected))]


def test_empty_list():
    data_bytes, address = serialize_data_list([])
    assert data_bytes.dtype == np.uint8 and data_bytes.size == 0
    assert address.dtype == np.int64 and address.size == 0
