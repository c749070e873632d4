import os

import pytest

from mmreid.datasets.base_reid_dataset import DatasetLayoutError
from mmreid.datasets.llcm import LLCM
from ..fixtures.dataset_trees import make_llcm
from ..fixtures.files import touch_file


@pytest.fixture
def llcm_root(tmp_path):
    return make_llcm(tmp_path / 'llcm' / 'LLCM')


def records_of(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


def test_train(llcm_root):
    ds = LLCM(data_root=llcm_root)
    records = records_of(ds)
    assert ds.dataset_name == 'llcm'
    # Labels 2, 5, 8 -> 0, 1, 2; camid from the _c<K>_ field.
    assert [(r['pid'], r['camid'], r['modality'])
            for r in records] == [(2, 2, 0), (0, 8, 0), (0, 3, 1), (1, 0, 1)]
    assert ds.num_pids == 3


@pytest.mark.parametrize('direction, query, name',
                         [('ir2vis', 'nir', 'ir2vis'),
                          ('i2v', 'nir', 'ir2vis'),
                          ('vis2ir', 'vis', 'vis2ir'),
                          ('v2i', 'vis', 'vis2ir')])
def test_test_directions(llcm_root, direction, query, name):
    ds = LLCM(
        data_root=os.path.dirname(llcm_root),
        split='test',
        direction=direction)
    assert ds.data_root == llcm_root
    assert ds.metainfo['direction'] == name
    assert ds.dataset_name == f'llcm-{name}'
    records = records_of(ds)
    roles = [r['role'] for r in records]
    # Test ids 30, 11: 4 NIR and 4 VIS images (pid 40 is not a test id).
    assert roles == ['query'] * 4 + ['gallery'] * 4
    for r in records:
        rel = os.path.relpath(r['img_path'], llcm_root)
        modality = rel.split('/')[0][5:]
        assert (modality == query) == (r['role'] == 'query')
        assert r['modality'] == (1 if modality == 'nir' else 0)
        assert r['camid'] == int(rel.split('/')[1][3:]) - 1
        assert r['pid'] == int(rel.split('/')[2])
    assert {r['pid'] for r in records} == {11, 30}
    # Sorted pid, then camera.
    query_keys = [(r['pid'], r['camid']) for r in records
                  if r['role'] == 'query']
    assert query_keys == sorted(query_keys)


def test_vis_and_nir_of_camera_k_share_camid(llcm_root):
    records = records_of(LLCM(data_root=llcm_root, split='test'))
    cam1 = [r for r in records if '/cam1/' in r['img_path']]
    assert {r['modality'] for r in cam1} == {0, 1}
    assert {r['camid'] for r in cam1} == {0}
    cam9 = [r for r in records if '/cam9/' in r['img_path']]
    assert {r['modality'] for r in cam9} == {0, 1}
    assert {r['camid'] for r in cam9} == {8}


def test_wrong_root_shows_the_tree(tmp_path):
    with pytest.raises(DatasetLayoutError, match='train_vis.txt'):
        LLCM(data_root=str(tmp_path))
    with pytest.raises(DatasetLayoutError, match='test_nir/cam'):
        LLCM(data_root=str(tmp_path / 'nowhere'), split='test')


def test_malformed_idx_line_names_file_and_line(llcm_root):
    with open(os.path.join(llcm_root, 'idx', 'train_nir.txt'), 'a') as f:
        f.write('nir/0005/x.jpg five\n')
    with pytest.raises(ValueError, match='train_nir.txt, line 3'):
        LLCM(data_root=llcm_root)


def test_modality_or_camera_contradiction_raises(llcm_root):
    rel = 'vis/0002/0002_s200101_f0050_vis.jpg'  # no camera field
    touch_file(os.path.join(llcm_root, rel))
    with open(os.path.join(llcm_root, 'idx', 'train_vis.txt'), 'a') as f:
        f.write(f'{rel} 2\n')
    with pytest.raises(ValueError, match='camera of'):
        LLCM(data_root=llcm_root)
    with open(os.path.join(llcm_root, 'idx', 'train_vis.txt'), 'w') as f:
        f.write('nir/0002/0002_c04_s200101_f0030_nir.jpg 2\n')
    with pytest.raises(ValueError, match='train_vis.txt.*listed as vis'):
        LLCM(data_root=llcm_root)


def test_bad_test_id_file_and_direction(llcm_root):
    with open(os.path.join(llcm_root, 'idx', 'test_id.txt'), 'w') as f:
        f.write('30,eleven\n')
    with pytest.raises(ValueError, match='test_id.txt'):
        LLCM(data_root=llcm_root, split='test')
    with pytest.raises(ValueError, match='vis2ir'):
        LLCM(data_root=llcm_root, split='test', direction='t2v')


@pytest.mark.parametrize('name_cam', ['c10', 'c12', 'c00'])
def test_train_camera_out_of_range_names_file_and_path(llcm_root, name_cam):
    # LLCM has cameras 1..9: c10 used to become camid 9, a tenth camera.
    rel = f'vis/0002/0002_{name_cam}_s200101_f0050_vis.jpg'
    touch_file(os.path.join(llcm_root, rel))
    with open(os.path.join(llcm_root, 'idx', 'train_vis.txt'), 'a') as f:
        f.write(f'{rel} 2\n')
    with pytest.raises(ValueError, match=f'train_vis.txt.*1..9.*{rel}'):
        LLCM(data_root=llcm_root)


@pytest.mark.parametrize('pid', [30, 40])
def test_test_camera_folder_out_of_range_names_it(llcm_root, pid):
    # A cam10 folder is refused even when it holds no test identity (40).
    touch_file(
        os.path.join(llcm_root, 'test_nir', 'cam10', f'{pid:04d}',
                     f'{pid:04d}_c10_s210101_f0000_nir.jpg'))
    with pytest.raises(ValueError, match='1..9.*test_nir/cam10'):
        LLCM(data_root=llcm_root, split='test')


@pytest.mark.parametrize('label', ['-1', '-2'])
def test_negative_train_label_names_file_and_line(llcm_root, label):
    # LLCM lists have no junk label: -1 used to be dropped silently and
    # -2 relabelled as an identity.
    with open(os.path.join(llcm_root, 'idx', 'train_nir.txt'), 'a') as f:
        f.write(f'nir/0005/0005_c01_s200101_f0040_nir.jpg {label}\n')
    with pytest.raises(
            ValueError, match=r'train_nir.txt, line 3.*non-negative'):
        LLCM(data_root=llcm_root)


def test_a_test_image_in_a_train_list_is_refused(llcm_root):
    """A training line naming an image the test split reads (test id 30,
    test_nir/cam1/0030/) is refused by both splits; an image of id 40,
    which is not a test id, is no test image."""
    extra = 'test_vis/cam2/0040/0040_c02_s210101_f0000_vis.jpg 40\n'
    with open(os.path.join(llcm_root, 'idx', 'train_vis.txt'), 'a') as f:
        f.write(extra)
    assert LLCM(data_root=llcm_root).num_pids == 4
    leak = 'test_nir/cam1/0030/0030_c01_s210101_f0000_nir.jpg'
    with open(os.path.join(llcm_root, 'idx', 'train_nir.txt'), 'a') as f:
        f.write(f'{leak} 30\n')
    for split in ('train', 'test'):
        with pytest.raises(
                ValueError,
                match=r'LLCM: .*train_nir.txt lists 1 test image\(s\) '
                rf'\(in test_nir or test_vis, of ids in .*test_id.txt\): '
                rf'{leak}\.'):
            LLCM(data_root=llcm_root, split=split)


def test_a_train_folder_image_of_a_test_ids_number_is_no_test_image(llcm_root):
    """LLCM numbers its train and test ids independently: a training line
    in a training folder (train_vis/cam1/0030/) whose folder number is a
    test id (30) is a training image, and loads; only the test folders
    hold test images."""
    rel = 'train_vis/cam1/0030/0030_c01_s200101_f0001_vis.jpg'
    touch_file(os.path.join(llcm_root, rel))
    with open(os.path.join(llcm_root, 'idx', 'train_vis.txt'), 'a') as f:
        f.write(f'{rel} 30\n')
    ds = LLCM(data_root=llcm_root)
    # Labels 2, 5, 8, 30 -> 0..3; the new image is label 30 on camera 1.
    assert ds.num_pids == 4
    assert (3, 0, 0) in [(r['pid'], r['camid'], r['modality'])
                         for r in records_of(ds)]
    assert len(LLCM(data_root=llcm_root, split='test')) == 8


def test_a_test_image_named_for_another_identity_is_refused(llcm_root):
    """A test image whose name starts with a pid and camera, as the
    training lists' names do (``0030_c01_s210101_f0000_vis.jpg``), is an
    image of that pid. An image of person 11 left in person 30's folder
    was loaded as person 30 and scored as such: it is refused, naming the
    file. A name without those fields says nothing (the test images'
    naming is not documented) and is read from its folders."""
    folder = os.path.join(llcm_root, 'test_vis', 'cam1', '0030')
    path = os.path.join(folder, '0011_c01_s210101_f0009_vis.jpg')
    touch_file(path)
    with pytest.raises(
            ValueError,
            match=r'LLCM: .*pid 11 .*identity folder 0030') as info:
        LLCM(data_root=llcm_root, split='test')
    assert repr(path) in str(info.value)
    os.remove(path)
    before = len(LLCM(data_root=llcm_root, split='test'))
    for name in ('0030_s210101_f0009_vis.jpg', 'x_vis.jpg'):
        touch_file(os.path.join(folder, name))
    ds = LLCM(data_root=llcm_root, split='test')
    assert len(ds) == before + 2
    added = [r for r in records_of(ds) if 'x_vis' in r['img_path']]
    assert [(r['pid'], r['camid']) for r in added] == [(30, 0)]
