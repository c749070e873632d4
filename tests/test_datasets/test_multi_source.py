import pytest

from mmreid.datasets import ConcatReIDDataset
from .test_market1501 import touch


def make_source(root, pids, cams):
    names = [
        f'{pid:04d}_c{cam}s1_000001_01.jpg' for pid in pids for cam in cams
    ]
    touch(root / 'bounding_box_train', *names)
    touch(root / 'bounding_box_test', '0001_c1s1_000001_01.jpg')
    touch(root / 'query', '0001_c2s1_000001_01.jpg')
    return dict(type='Market1501', data_root=str(root))


def test_offsets_keep_identities_and_cameras_apart(tmp_path):
    a = make_source(tmp_path / 'a', pids=[5, 9], cams=[1, 2])
    b = make_source(tmp_path / 'b', pids=[5, 7, 11], cams=[1, 2, 3])
    ds = ConcatReIDDataset(datasets=[a, b])
    records = [ds.get_data_info(i) for i in range(len(ds))]
    assert len(records) == 4 + 9
    pids_a = {r['pid'] for r in records if r['dsetid'] == 0}
    pids_b = {r['pid'] for r in records if r['dsetid'] == 1}
    # Original pid 5 exists in both sources: two different classes.
    assert pids_a == {0, 1} and pids_b == {2, 3, 4}
    cams_b = {r['camid'] for r in records if r['dsetid'] == 1}
    assert cams_b == {2, 3, 4}
    assert ds.num_pids == 5
    assert ds.metainfo['sources'][1]['pid_offset'] == 2
    assert ds.metainfo['sources'][1]['num_pids'] == 3
    assert ds.get_pids() == [r['pid'] for r in records]


def test_a_test_split_is_refused(tmp_path):
    a = make_source(tmp_path / 'a', pids=[5, 9], cams=[1, 2])
    test_split = dict(a, split='test')
    with pytest.raises(ValueError, match='training split'):
        ConcatReIDDataset(datasets=[test_split])
    with pytest.raises(ValueError, match='at least one'):
        ConcatReIDDataset(datasets=[])
