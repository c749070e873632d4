import os

import pytest

from mmreid.datasets.base_reid_dataset import DatasetLayoutError
from mmreid.datasets.dukemtmc import DukeMTMCReID
from mmreid.registry import DATASETS
from ..fixtures.files import touch


@pytest.fixture
def duke_parent(tmp_path):
    """The official archive unpacked under data/dukemtmc-reid/."""
    root = tmp_path / 'dukemtmc-reid' / 'DukeMTMC-reID'
    touch(root / 'bounding_box_train', '0005_c2_f0046985.jpg',
          '0001_c2_f0046182.jpg', '0001_c5_f0051341.jpg',
          '0012_c8_f0000001.jpg', 'Thumbs.db')
    touch(root / 'query', '0005_c1_f0046000.jpg', '0012_c3_f0000010.jpg')
    # 0007 only appears in the gallery (one of Duke's 408 such ids).
    touch(root / 'bounding_box_test', '0005_c2_f0046001.jpg',
          '0012_c4_f0000020.jpg', '0007_c7_f0000030.jpg')
    return str(tmp_path / 'dukemtmc-reid')


def test_train_split_relabels_sorted_pids(duke_parent):
    root = os.path.join(duke_parent, 'DukeMTMC-reID')
    ds = DukeMTMCReID(data_root=root, split='train')
    records = [ds.get_data_info(i) for i in range(len(ds))]
    assert len(records) == 4  # Thumbs.db ignored
    by_name = {os.path.basename(r['img_path']): r for r in records}
    # Original pids 1, 5, 12 -> 0, 1, 2 in sorted (not listing) order.
    assert by_name['0001_c2_f0046182.jpg']['pid'] == 0
    assert by_name['0001_c5_f0051341.jpg']['camid'] == 4
    assert by_name['0005_c2_f0046985.jpg']['pid'] == 1
    assert by_name['0012_c8_f0000001.jpg']['pid'] == 2
    assert by_name['0012_c8_f0000001.jpg']['camid'] == 7
    assert {r['role'] for r in records} == {'train'}
    assert {r['dataset'] for r in records} == {'dukemtmc'}
    assert ds.num_pids == 3
    assert ds.metainfo['num_cams'] == 3  # c2, c5, c8


def test_parent_root_and_query_first(duke_parent):
    ds = DukeMTMCReID(data_root=duke_parent, split='test')
    assert ds.data_root.endswith('DukeMTMC-reID')
    records = [ds.get_data_info(i) for i in range(len(ds))]
    assert [r['role'] for r in records] == ['query'] * 2 + ['gallery'] * 3
    assert [r['pid'] for r in records[:2]] == [5, 12]
    # Original pids kept, gallery-only identity kept.
    assert sorted(r['pid'] for r in records[2:]) == [5, 7, 12]
    assert [r['camid'] for r in records[:2]] == [0, 2]
    assert ds.metainfo['role_counts'] == dict(query=2, gallery=3)
    assert DATASETS.get('DukeMTMCReID') is DukeMTMCReID


def test_wrong_root_shows_tree(tmp_path, duke_parent):
    with pytest.raises(DatasetLayoutError) as err:
        DukeMTMCReID(data_root=str(tmp_path / 'nowhere'))
    assert 'nowhere' in str(err.value)
    assert 'bounding_box_train/' in str(err.value)
    assert 'DukeMTMC-reID' in str(err.value)
    os.rename(
        os.path.join(duke_parent, 'DukeMTMC-reID', 'query'),
        os.path.join(duke_parent, 'DukeMTMC-reID', 'queries'))
    with pytest.raises(DatasetLayoutError, match='query'):
        DukeMTMCReID(data_root=duke_parent, split='test')


@pytest.mark.parametrize(
    'name',
    [
        '0001_c2s1_0046182.jpg',  # a Market name
        '-1_c2_f0046182.jpg',  # Duke has no junk label
        '0001_c9_f0046182.jpg',  # camera out of 1..8
        '0001_c0_f0046182.jpg',  # camid -1
    ])
def test_unparsable_name_names_the_file(duke_parent, name):
    touch(
        os.path.join(duke_parent, 'DukeMTMC-reID', 'bounding_box_train'), name)
    with pytest.raises(ValueError, match=name):
        DukeMTMCReID(data_root=duke_parent)
