import os

import pytest

from mmreid.datasets.base_reid_dataset import DatasetLayoutError
from mmreid.datasets.regdb import RegDB
from ..fixtures.dataset_trees import REGDB_TRIALS, make_regdb, regdb_image


@pytest.fixture
def regdb_root(tmp_path):
    return make_regdb(tmp_path / 'regdb' / 'RegDB')


def records_of(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


@pytest.mark.parametrize('trial', [1, 2])
def test_train_per_trial(regdb_root, trial):
    ds = RegDB(data_root=regdb_root, trial=trial)
    assert ds.metainfo['trial'] == trial
    records = records_of(ds)
    assert len(records) == 8
    pids = REGDB_TRIALS[trial]['train']
    for r in records:
        rel = os.path.relpath(r['img_path'], regdb_root)
        modality = 0 if rel.startswith('Visible') else 1
        assert r['modality'] == modality and r['camid'] == modality
        # Labels relabelled in sorted order of the listed label.
        assert r['pid'] == sorted(pids).index(int(rel.split('/')[1]))
    assert [r['modality'] for r in records] == [0] * 4 + [1] * 4
    assert ds.num_pids == 2


@pytest.mark.parametrize('direction, query, gallery',
                         [('v2t', 'Visible', 'Thermal'),
                          ('t2v', 'Thermal', 'Visible')])
def test_test_directions(regdb_root, direction, query, gallery):
    ds = RegDB(
        data_root=os.path.dirname(regdb_root),
        split='test',
        trial=2,
        direction=direction)
    assert ds.data_root == regdb_root
    assert ds.dataset_name == f'regdb-{direction}'
    records = records_of(ds)
    assert [r['role'] for r in records] == ['query'] * 4 + ['gallery'] * 4
    for r in records:
        rel = os.path.relpath(r['img_path'], regdb_root)
        folder = query if r['role'] == 'query' else gallery
        assert rel.startswith(folder + '/')
        assert r['modality'] == r['camid'] == int(folder == 'Thermal')
        assert r['pid'] == int(rel.split('/')[1])
    assert {r['pid'] for r in records} == {2, 9}


@pytest.mark.parametrize('trial', [0, 11, '1', 1.0])
def test_bad_trial(regdb_root, trial):
    with pytest.raises(ValueError, match='1..10'):
        RegDB(data_root=regdb_root, trial=trial)


def test_bad_direction(regdb_root):
    with pytest.raises(ValueError, match='t2v'):
        RegDB(data_root=regdb_root, split='test', direction='v2i')


def test_missing_idx_file_shows_the_tree(regdb_root, tmp_path):
    with pytest.raises(DatasetLayoutError, match='train_visible_3.txt'):
        RegDB(data_root=regdb_root, trial=3)
    with pytest.raises(DatasetLayoutError, match='idx/test_thermal_'):
        RegDB(data_root=str(tmp_path / 'nowhere'), split='test')


def test_malformed_line_names_file_and_line(regdb_root):
    path = os.path.join(regdb_root, 'idx', 'test_thermal_1.txt')
    with open(path, 'a') as f:
        f.write('Thermal/1/broken.bmp\n')
    with pytest.raises(ValueError, match=r'test_thermal_1.txt, line 5'):
        RegDB(data_root=regdb_root, split='test', trial=1)


def test_swapped_idx_files_are_refused(regdb_root):
    # The modality came from the idx file's name only: swapped files sent
    # thermal images through the visible stem and MBN slot, silently.
    idx = os.path.join(regdb_root, 'idx')
    visible = os.path.join(idx, 'test_visible_1.txt')
    thermal = os.path.join(idx, 'test_thermal_1.txt')
    os.rename(visible, visible + '.tmp')
    os.rename(thermal, visible)
    os.rename(visible + '.tmp', thermal)
    with pytest.raises(
            ValueError,
            match=r"test_visible_1.txt lists "
            r"'.*Thermal/1/.*', which is not in Visible/"):
        RegDB(data_root=regdb_root, split='test', trial=1)


def test_missing_image_names_file_and_line(regdb_root):
    os.remove(os.path.join(regdb_root, regdb_image('visible', 9, 1)))
    with pytest.raises(FileNotFoundError, match='train_visible_1.txt line 4'):
        RegDB(data_root=regdb_root, trial=1)


@pytest.mark.parametrize('label', ['-1', '-3', '+2', '٣'])
def test_negative_label_names_file_and_line(regdb_root, label):
    # RegDB has no junk label: -1 used to be dropped silently and -3 kept
    # as an identity.
    path = os.path.join(regdb_root, 'idx', 'test_visible_1.txt')
    with open(path) as f:
        lines = f.read().splitlines()
    lines[1] = f'{lines[1].rsplit(" ", 1)[0]} {label}'
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with pytest.raises(
            ValueError, match=r'test_visible_1.txt, line 2.*non-negative'):
        RegDB(data_root=regdb_root, split='test', trial=1)


def test_an_image_in_a_train_and_a_test_idx_file_is_refused(regdb_root):
    """Trial 2's test list holds trial 1's train identities (2, 9): with
    it as trial 1's test list, trial 1 would test on trained images."""
    idx = os.path.join(regdb_root, 'idx')
    with open(os.path.join(idx, 'test_visible_2.txt')) as f:
        trial2_test = f.read()
    with open(os.path.join(idx, 'test_visible_1.txt'), 'w') as f:
        f.write(trial2_test)
    for split in ('train', 'test'):
        with pytest.raises(
                ValueError,
                match=r'RegDB trial 1: .*train_visible_1.txt and .*'
                r'test_visible_1.txt both list 4 image\(s\): '
                r'Visible/2/female_front_v_00000_2.bmp'):
            RegDB(data_root=regdb_root, split=split, trial=1)


def test_an_image_spelt_another_way_is_still_one_image(regdb_root):
    """'./Visible/2/x.bmp' in a test idx file and 'Visible/2/x.bmp' in the
    train idx file are one image: compared as text, trial 2's test list
    (trial 1's train identities) written with './' as trial 1's test list
    would load, and trial 1 would be tested on images it trained on."""
    idx = os.path.join(regdb_root, 'idx')
    with open(os.path.join(idx, 'test_visible_2.txt')) as f:
        lines = [f'./{line}' for line in f if line.strip()]
    with open(os.path.join(idx, 'test_visible_1.txt'), 'w') as f:
        f.writelines(lines)
    for split in ('train', 'test'):
        with pytest.raises(
                ValueError,
                match=r'RegDB trial 1: .*train_visible_1.txt and .*'
                r'test_visible_1.txt both list 4 image\(s\): '
                r'Visible/2/female_front_v_00000_2.bmp'):
            RegDB(data_root=regdb_root, split=split, trial=1)


def test_equal_train_and_test_labels_are_other_people(regdb_root):
    """The AGW idx files number a trial's train and test ids 0..205 each:
    the same label in both is no overlap."""
    idx = os.path.join(regdb_root, 'idx')
    for name in os.listdir(idx):
        with open(os.path.join(idx, name)) as f:
            lines = [line.split() for line in f if line.strip()]
        labels = sorted({int(label) for _, label in lines})
        with open(os.path.join(idx, name), 'w') as f:
            f.writelines(f'{path} {labels.index(int(label))}\n'
                         for path, label in lines)
    train = RegDB(data_root=regdb_root, split='train', trial=1)
    test = RegDB(data_root=regdb_root, split='test', trial=1)
    assert train.num_pids == 2 and len(test) == 8
