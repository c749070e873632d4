import os

import pytest

from mmreid.datasets.base_reid_dataset import DatasetLayoutError
from mmreid.datasets.msmt17 import MSMT17
from ..fixtures.dataset_trees import make_msmt17
from ..fixtures.files import touch


@pytest.fixture
def v1_root(tmp_path):
    root = tmp_path / 'msmt17' / 'MSMT17_V1'
    root.mkdir(parents=True)
    return make_msmt17(root, 'V1')


@pytest.fixture
def v2_root(tmp_path):
    root = tmp_path / 'msmt17' / 'MSMT17_V2'
    root.mkdir(parents=True)
    return make_msmt17(root, 'V2')


def test_v1_train_is_train_plus_val(v1_root):
    ds = MSMT17(data_root=v1_root, version='V1')
    assert ds.version == 'V1'
    assert ds.dataset_name == 'msmt17-v1'
    assert ds.metainfo['version'] == 'V1'
    records = [ds.get_data_info(i) for i in range(len(ds))]
    assert len(records) == 4
    by_name = {os.path.basename(r['img_path']): r for r in records}
    # List pids 0, 2 (val), 5 -> 0, 1, 2.
    assert by_name['0000_000_01_0303morning_0015_0.jpg']['pid'] == 0
    assert by_name['0002_000_07_0303afternoon_0020_0.jpg']['pid'] == 1
    assert by_name['0005_000_15_0303noon_0100_1.jpg']['pid'] == 2
    # Camera from the third field: 01 -> 0, 03 -> 2, 15 -> 14.
    assert by_name['0000_000_01_0303morning_0015_0.jpg']['camid'] == 0
    assert by_name['0000_001_03_0303morning_0016_0.jpg']['camid'] == 2
    assert by_name['0005_000_15_0303noon_0100_1.jpg']['camid'] == 14
    assert all(os.sep + 'train' + os.sep in r['img_path'] for r in records)
    assert ds.num_pids == 3


def test_test_split_is_separate_from_train(v1_root):
    ds = MSMT17(data_root=v1_root, version='V1', split='test')
    records = [ds.get_data_info(i) for i in range(len(ds))]
    assert [r['role'] for r in records] == ['query'] * 2 + ['gallery'] * 3
    # Original list labels, in list order.
    assert [r['pid'] for r in records] == [1, 0, 0, 1, 9]
    assert [r['camid'] for r in records] == [1, 3, 4, 11, 9]
    # Test pid 0 reuses train's integer 0 but only test images carry it.
    assert all(os.sep + 'test' + os.sep in r['img_path'] for r in records)
    train = MSMT17(data_root=v1_root, version='V1')
    train_paths = {
        train.get_data_info(i)['img_path']
        for i in range(len(train))
    }
    assert train_paths.isdisjoint(r['img_path'] for r in records)


def test_v2_from_the_parent_root(v2_root):
    ds = MSMT17(data_root=os.path.dirname(v2_root), version='V2', split='test')
    assert ds.version == 'V2'
    assert ds.dataset_name == 'msmt17-v2'
    assert ds.data_root == v2_root
    records = [ds.get_data_info(i) for i in range(len(ds))]
    assert len(records) == 5
    assert all('mask_test_v2' in r['img_path'] for r in records)
    ds = MSMT17(data_root=v2_root, version='v2')
    assert ds.num_pids == 3
    assert ds.metainfo['version'] == 'V2'


def test_version_mismatch_and_ambiguous_parent(v1_root, v2_root):
    with pytest.raises(ValueError, match="version='V2'.*V1"):
        MSMT17(data_root=v1_root, version='V2')
    with pytest.raises(ValueError, match='"V1" or "V2", got .V3.'):
        MSMT17(data_root=v1_root, version='V3')
    parent = os.path.dirname(v1_root)
    with pytest.raises(ValueError, match='version is required.*V1 and V2'):
        MSMT17(data_root=parent)
    assert MSMT17(data_root=parent, version='V1').data_root == v1_root
    assert MSMT17(data_root=parent, version='V2').data_root == v2_root


def test_version_is_required_not_read_from_the_layout(v2_root):
    # Spec datasets.md 2.3: the version is a required config key. A config
    # that names none must not get whatever copy data_root points at.
    with pytest.raises(
            ValueError,
            match=r"version is required.*"
            r"holds V2: add version='V2'"):
        MSMT17(data_root=v2_root)


def test_wrong_root_shows_tree(tmp_path, v1_root):
    with pytest.raises(DatasetLayoutError) as err:
        MSMT17(data_root=str(tmp_path / 'nowhere'), version='V1')
    assert 'nowhere' in str(err.value)
    assert 'mask_train_v2/' in str(err.value)
    assert 'list_gallery.txt' in str(err.value)
    os.remove(os.path.join(v1_root, 'list_val.txt'))
    with pytest.raises(DatasetLayoutError, match='list_val.txt'):
        MSMT17(data_root=v1_root, version='V1')


def test_malformed_line_names_file_and_line(v1_root):
    with open(os.path.join(v1_root, 'list_gallery.txt'), 'a') as f:
        f.write('\n0009/0009_000_10_0113noon_0006_0.jpg nine\n')
    with pytest.raises(ValueError, match=r'list_gallery.txt, line 5'):
        MSMT17(data_root=v1_root, version='V1', split='test')
    MSMT17(data_root=v1_root, version='V1')  # the train lists are fine


def test_missing_image_and_bad_name(v1_root):
    with open(os.path.join(v1_root, 'list_query.txt'), 'a') as f:
        f.write('0001/0001_000_02_0113morning_0099_0.jpg 1\n')
    with pytest.raises(
            FileNotFoundError,
            match=r'0001_000_02_0113morning_0099_0.jpg.*line 3'):
        MSMT17(data_root=v1_root, version='V1', split='test')
    touch(os.path.join(v1_root, 'train', '0002'), '0002_c1s1_000451_03.jpg')
    with open(os.path.join(v1_root, 'list_val.txt'), 'a') as f:
        f.write('0002/0002_c1s1_000451_03.jpg 2\n')
    with pytest.raises(ValueError, match='0002_c1s1_000451_03.jpg'):
        MSMT17(data_root=v1_root, version='V1')


@pytest.mark.parametrize('camera', ['00', '16'])
def test_a_camera_out_of_1_to_15_names_the_file(v1_root, camera):
    """MSMT17 has cameras 01..15: 00 would become camid -1."""
    name = f'0002_001_{camera}_0303afternoon_0021_0.jpg'
    touch(os.path.join(v1_root, 'train', '0002'), name)
    with open(os.path.join(v1_root, 'list_val.txt'), 'a') as f:
        f.write(f'0002/{name} 2\n')
    with pytest.raises(ValueError, match=rf'cameras are 1\.\.15.*{name}'):
        MSMT17(data_root=v1_root, version='V1')


@pytest.mark.parametrize(
    'list_name,line,label',
    [
        # No junk label in MSMT17's lists: -1 must not be dropped as junk.
        ('list_gallery.txt', 1, '-1'),
        ('list_gallery.txt', 1, '-3'),
        # str.isdigit accepts these: '٣' used to become pid 3 and '²'
        # failed in int() without naming the list.
        ('list_query.txt', 2, '٣'),
        ('list_query.txt', 2, '²'),
    ])
def test_a_bad_list_label_names_file_and_line(v1_root, list_name, line,
                                              label):
    path = os.path.join(v1_root, list_name)
    with open(path) as f:
        lines = f.read().splitlines()
    lines[line - 1] = f'{lines[line - 1].rsplit(" ", 1)[0]} {label}'
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with pytest.raises(ValueError, match=rf'{list_name}, line {line}'):
        MSMT17(data_root=v1_root, version='V1', split='test')
