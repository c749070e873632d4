import os

import pytest

from mmreid.datasets.base_reid_dataset import DatasetLayoutError
from mmreid.datasets.cuhk02 import CUHK02
from mmreid.datasets.cuhk_sysu import CUHKSYSU
from mmreid.datasets.market1501 import Market1501
from mmreid.datasets.multi_source import ConcatReIDDataset
from ..fixtures.dataset_trees import make_cuhk02
from ..fixtures.files import touch


@pytest.fixture
def cuhk02_root(tmp_path):
    return make_cuhk02(tmp_path / 'cuhk02')


def test_identity_is_pair_and_pid(cuhk02_root):
    ds = CUHK02(data_root=cuhk02_root)
    records = [ds.get_data_info(i) for i in range(len(ds))]
    assert len(records) == 8
    key = {(r['pair'], r['local_pid']): r['pid'] for r in records}
    # Sorted by (pair, pid): (1,1) (1,20) (3,1) (5,7).
    assert key == {(1, 1): 0, (1, 20): 1, (3, 1): 2, (5, 7): 3}
    assert ds.num_pids == 4  # pid 1 of P1 and of P3 are two identities
    assert {r['role'] for r in records} == {'train'}
    assert ds.dataset_name == 'cuhk02'


def test_camid_formula(cuhk02_root):
    ds = CUHK02(data_root=cuhk02_root)
    for i in range(len(ds)):
        r = ds.get_data_info(i)
        parts = r['img_path'].split(os.sep)
        pair, view = int(parts[-3][1:]), int(parts[-2][3:])
        assert r['camid'] == 2 * (pair - 1) + (view - 1)
    cams = {ds.get_data_info(i)['camid'] for i in range(len(ds))}
    assert cams == {0, 1, 4, 5, 9}


def test_train_only_and_errors(tmp_path, cuhk02_root):
    with pytest.raises(ValueError, match='train-only'):
        CUHK02(data_root=cuhk02_root, split='test')
    with pytest.raises(DatasetLayoutError) as err:
        CUHK02(data_root=str(tmp_path / 'nowhere'))
    assert 'P1/cam1/' in str(err.value)
    os.rmdir(os.path.join(cuhk02_root, 'Dataset', 'P4', 'cam2'))
    with pytest.raises(DatasetLayoutError, match='P4/cam2'):
        CUHK02(data_root=cuhk02_root)
    os.makedirs(os.path.join(cuhk02_root, 'Dataset', 'P4', 'cam2'))
    touch(os.path.join(cuhk02_root, 'Dataset', 'P4', 'cam2'), '3.png')
    with pytest.raises(ValueError, match='3.png'):
        CUHK02(data_root=cuhk02_root)


def test_concat_market_sysu_cuhk02(tmp_path):
    market = tmp_path / 'market1501'
    touch(market / 'bounding_box_train', '0002_c1s1_000451_03.jpg',
          '0007_c3s1_000001_01.jpg', '0010_c6s2_000002_02.jpg')
    touch(market / 'bounding_box_test', '0002_c2s1_000003_01.jpg')
    touch(market / 'query', '0002_c1s1_000001_00.jpg')
    sysu = tmp_path / 'cuhk_sysu'
    touch(sysu / 'cropped_images', 'p2_s5.jpg', 'p10_s13.jpg')
    cuhk02 = make_cuhk02(tmp_path / 'cuhk02')
    ds = ConcatReIDDataset(datasets=[
        Market1501(data_root=str(market)),
        CUHKSYSU(data_root=str(sysu)),
        dict(type='CUHK02', data_root=cuhk02),  # built from the registry
    ])
    sources = ds.metainfo['sources']
    names = [s['name'] for s in sources]
    assert names == ['market1501', 'cuhk-sysu', 'cuhk02']
    assert [s['num_pids'] for s in sources] == [3, 2, 4]
    assert [s['pid_offset'] for s in sources] == [0, 3, 5]
    assert ds.num_pids == 9
    ranges = {}
    for i in range(len(ds)):
        r = ds.get_data_info(i)
        ranges.setdefault(r['dsetid'], set()).add(r['pid'])
    assert ranges == {0: {0, 1, 2}, 1: {3, 4}, 2: {5, 6, 7, 8}}
    # camids: Market 0..5 (c1..c6 seen), SYSU 6, CUHK02 7..16.
    assert [s['camid_offset'] for s in sources] == [0, 6, 7]
    assert ds.metainfo['num_cams'] == 17
