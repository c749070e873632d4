"""Dataset metainfo is data: never looked up as a file in the working
directory (mmengine's ``_load_metainfo`` reads any string value that names
an existing file or folder)."""
import os

import mmengine.dataset.base_dataset as mmengine_base
import pytest

from mmreid.datasets import CUHK03NP, MSMT17, ConcatReIDDataset, RegDB
from ..fixtures.dataset_trees import make_msmt17, make_regdb


@pytest.fixture
def meta_file_warnings(monkeypatch):
    """Messages mmengine's metainfo loader logs (``... is not a meta
    file``)."""
    messages = []
    real = mmengine_base.print_log

    def record(msg, *args, **kwargs):
        messages.append(str(msg))
        return real(msg, *args, **kwargs)

    monkeypatch.setattr(mmengine_base, 'print_log', record)
    return messages


def test_cuhk03np_from_a_folder_holding_labeled(cuhk03_root, monkeypatch,
                                                meta_file_warnings):
    # The recommended layout: data/cuhk03-np/{labeled,detected}; running a
    # tool from data/cuhk03-np used to raise IsADirectoryError: 'labeled'.
    monkeypatch.chdir(cuhk03_root)
    assert os.path.isdir('labeled') and os.path.isdir('detected')
    ds = CUHK03NP(data_root='.', variant='labeled')
    assert ds.metainfo['variant'] == 'labeled'
    assert ds.metainfo['dataset_name'] == 'cuhk03-np-labeled'
    test = CUHK03NP(data_root='.', split='test', variant='detected')
    assert test.metainfo['variant'] == 'detected'
    assert not meta_file_warnings


def test_files_named_like_metadata_change_nothing(tmp_path, monkeypatch,
                                                  meta_file_warnings):
    msmt = make_msmt17(_mkdir(tmp_path / 'MSMT17_V1'), 'V1')
    regdb = make_regdb(tmp_path / 'RegDB')
    work = tmp_path / 'work'
    work.mkdir()
    # Files whose names are metadata values, with other contents.
    for name in ('V1', 'regdb', 'msmt17-v1', 'v2t', 'regdb-v2t', 'mine'):
        (work / name).write_text('not metadata\nat all\n')
    monkeypatch.chdir(work)
    ds = MSMT17(data_root=msmt, version='V1')
    assert ds.metainfo['version'] == 'V1'
    assert ds.metainfo['dataset_name'] == 'msmt17-v1'
    train = RegDB(data_root=regdb, trial=1)
    assert train.metainfo['dataset_name'] == 'regdb'
    test = RegDB(
        data_root=regdb, split='test', metainfo=dict(note='mine', tags=['x']))
    assert test.metainfo['dataset_name'] == 'regdb-v2t'
    assert test.metainfo['direction'] == 'v2t'
    assert test.metainfo['note'] == 'mine'
    assert test.metainfo['tags'] == ['x']
    concat = ConcatReIDDataset([train, ds])
    assert [s['name'] for s in concat.metainfo['sources']] == \
        ['regdb', 'msmt17-v1']
    assert concat.metainfo['sources'][1]['version'] == 'V1'
    assert not meta_file_warnings


def _mkdir(path):
    path.mkdir(parents=True)
    return path
