import os

import pytest

from mmreid.datasets.base_reid_dataset import DatasetLayoutError
from mmreid.datasets.synthetic import generate_synthreid
from mmreid.datasets.sysu_mm01 import SYSUMM01
from ..fixtures.dataset_trees import SYSU_IDS, SYSU_IMAGES, make_sysu


@pytest.fixture
def sysu_root(tmp_path):
    return make_sysu(tmp_path / 'sysu-mm01' / 'SYSU-MM01')


def records_of(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


def key(r):
    parts = r['img_path'].split(os.sep)
    return '/'.join(parts[-3:])


def test_train_is_train_plus_val_relabelled(sysu_root):
    ds = SYSUMM01(data_root=sysu_root)
    records = records_of(ds)
    assert ds.dataset_name == 'sysu-mm01'
    assert ds.metainfo['mode'] == 'all'
    assert ds.num_pids == 3
    by_key = {key(r): r for r in records}
    assert len(records) == 3 + 3 + 2
    assert by_key['cam1/0003/0001.jpg']['pid'] == 0
    assert by_key['cam6/0007/0002.jpg']['pid'] == 1
    assert by_key['cam3/0012/0001.jpg']['pid'] == 2
    for r in records:
        cam = int(key(r).split('/')[0][3:])
        assert r['camid'] == cam - 1
        # Modality by camera: 3 and 6 infrared.
        assert r['modality'] == (1 if cam in (3, 6) else 0)
        assert r['role'] == 'train'
    assert '0099' not in ' '.join(by_key)


@pytest.mark.parametrize('mode, gallery_cams', [('all', (1, 2, 4, 5)),
                                                ('indoor', (1, 2))])
def test_test_query_and_gallery(sysu_root, mode, gallery_cams):
    ds = SYSUMM01(data_root=sysu_root, split='test', mode=mode)
    assert ds.dataset_name == f'sysu-mm01-{mode}'
    assert ds.metainfo['mode'] == mode
    records = records_of(ds)
    query = [key(r) for r in records if r['role'] == 'query']
    gallery = [key(r) for r in records if r['role'] == 'gallery']
    roles = [r['role'] for r in records]
    assert roles == sorted(roles, key=lambda x: x != 'query')
    # Query: every IR image of the test ids, sorted pid, camera, file.
    assert query == [
        'cam3/0005/0001.jpg', 'cam3/0005/0002.jpg', 'cam6/0005/0001.jpg',
        'cam6/0020/0001.jpg'
    ]
    expected = []
    for pid in (5, 20):
        for cam in gallery_cams:
            for i in range(SYSU_IMAGES[pid].get(cam, 0)):
                expected.append(f'cam{cam}/{pid:04d}/{i + 1:04d}.jpg')
    assert gallery == expected
    for r in records:
        assert r['modality'] == (1 if r['role'] == 'query' else 0)
        assert r['pid'] in (5, 20)


def test_parent_root_and_synthreid_vi_tree(tmp_path):
    root = str(tmp_path / 'synth')
    manifest = generate_synthreid(root, modality='vi', size='tiny')
    ids = manifest['counts']['SYSU-MM01']['ids']
    train = SYSUMM01(data_root=root)
    assert train.data_root == os.path.join(root, 'SYSU-MM01')
    assert train.num_pids == ids['train'] + ids['val']
    records = records_of(train)
    assert {r['modality'] for r in records} == {0, 1}
    test = SYSUMM01(data_root=root, split='test')
    records = records_of(test)
    assert len({r['pid'] for r in records}) <= ids['test']
    assert all(r['modality'] == 1 for r in records if r['role'] == 'query')
    assert all(r['camid'] in (2, 5) for r in records if r['role'] == 'query')
    counts = manifest['counts']['SYSU-MM01']
    assert len(train) + len(test) == counts['visible'] + counts['infrared']


def test_wrong_root_shows_the_tree(tmp_path):
    with pytest.raises(DatasetLayoutError, match='exp/train_id.txt'):
        SYSUMM01(data_root=str(tmp_path))
    with pytest.raises(DatasetLayoutError, match='cam1/0001/0001.jpg'):
        SYSUMM01(data_root=str(tmp_path / 'missing'))


@pytest.mark.parametrize('text',
                         ['1,2,x3', '', '1;2', '1,1', '1,-2', '1,٣', '1,²'])
def test_bad_id_file_names_the_file(tmp_path, text):
    root = make_sysu(tmp_path, ids=dict(SYSU_IDS, val=text))
    with pytest.raises(ValueError, match='val_id.txt'):
        SYSUMM01(data_root=root)


def test_unexpected_names_raise(sysu_root):
    os.makedirs(os.path.join(sysu_root, 'cam1', 'person3'))
    with pytest.raises(ValueError, match='person3'):
        SYSUMM01(data_root=sysu_root)


def test_unexpected_image_name_raises(sysu_root):
    open(os.path.join(sysu_root, 'cam1', '0003', 'a.jpg'), 'wb').close()
    with pytest.raises(ValueError, match='a.jpg'):
        SYSUMM01(data_root=sysu_root)


def test_bad_mode(sysu_root):
    with pytest.raises(ValueError, match='indoor'):
        SYSUMM01(data_root=sysu_root, mode='outdoor')


@pytest.mark.parametrize('shared_file', ['train', 'val'])
def test_an_id_in_a_train_and_the_test_id_file_is_refused(
        tmp_path, shared_file):
    """Id 3 trains (train_id or val_id) and would be tested on: both
    splits refuse, naming both files and the id."""
    ids = dict(SYSU_IDS, test='5, 20, 3\n')
    if shared_file == 'val':
        ids.update(train='7\n', val='12,3')
    root = make_sysu(tmp_path / 'SYSU-MM01', ids=ids)
    for split in ('train', 'test'):
        with pytest.raises(
                ValueError,
                match=rf'{shared_file}_id.txt and .*test_id.txt share 1 '
                r'id\(s\): 3\.'):
            SYSUMM01(data_root=root, split=split)
