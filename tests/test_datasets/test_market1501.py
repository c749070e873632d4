import os

import pytest

import mmreid
from mmreid.datasets import DatasetLayoutError, Market1501
from ..fixtures.files import touch


def test_train_split_relabels_sorted_pids(market_root):
    ds = Market1501(data_root=market_root, split='train')
    records = [ds.get_data_info(i) for i in range(len(ds))]
    assert len(records) == 4  # Thumbs.db ignored
    by_name = {os.path.basename(r['img_path']): r for r in records}
    # Original pids 2, 7, 10 -> 0, 1, 2 in sorted order.
    assert by_name['0002_c1s1_000451_03.jpg']['pid'] == 0
    assert by_name['0007_c3s1_000001_01.jpg']['pid'] == 1
    assert by_name['0010_c6s2_000002_02.jpg']['pid'] == 2
    assert by_name['0010_c6s2_000002_02.jpg']['camid'] == 5
    assert {r['role'] for r in records} == {'train'}
    assert {r['dataset'] for r in records} == {'market1501'}
    assert {r['modality'] for r in records} == {0}
    assert ds.num_pids == 3
    assert ds.metainfo['num_cams'] == 4


def test_test_split_query_first_junk_dropped_distractor_kept(market_root):
    ds = Market1501(data_root=market_root, split='test')
    records = [ds.get_data_info(i) for i in range(len(ds))]
    roles = [r['role'] for r in records]
    assert roles == ['query'] * 2 + ['gallery'] * 4
    pids = [r['pid'] for r in records]
    # Original pids are kept; -1 is gone, 0 (distractor) stays.
    assert pids[:2] == [2, 10]
    assert sorted(pids[2:]) == [0, 2, 10, 99]
    assert -1 not in pids
    assert ds.test_mode


def test_wrong_root_and_layout_errors(tmp_path, market_root):
    with pytest.raises(DatasetLayoutError) as err:
        Market1501(data_root=str(tmp_path / 'nowhere'))
    assert 'nowhere' in str(err.value)
    assert 'bounding_box_train/' in str(err.value)  # shows the tree
    os.rename(
        os.path.join(market_root, 'query'),
        os.path.join(market_root, 'queries'))
    with pytest.raises(DatasetLayoutError, match='query'):
        Market1501(data_root=market_root, split='test')


def test_a_relative_data_root_names_where_it_looked(tmp_path, monkeypatch):
    """A config's data/market1501/ run from another folder than the
    repository root: the error named the relative path only, not where it
    was looked for nor how to fix it."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetLayoutError) as err:
        Market1501(data_root='data/market1501/')
    message = str(err.value)
    assert message.startswith(
        "Market1501: data_root 'data/market1501/' does not exist or is not "
        f"a folder (looked for {str(tmp_path / 'data' / 'market1501')!r}, "
        f'relative to the current directory {str(tmp_path)!r}; ')
    checkout = os.path.dirname(
        os.path.dirname(os.path.abspath(mmreid.__file__)))
    assert (f'relative to the repository root {checkout!r}: run from there, '
            'or give an absolute data_root)') in message
    # An absolute root is where it was looked for: nothing to add.
    with pytest.raises(DatasetLayoutError) as err:
        Market1501(data_root=str(tmp_path / 'nowhere'))
    assert 'current directory' not in str(err.value)


def test_unparsable_image_name_names_the_file(market_root):
    touch(os.path.join(market_root, 'bounding_box_train'), 'img_001.jpg')
    with pytest.raises(ValueError, match='img_001.jpg'):
        Market1501(data_root=market_root)
    with pytest.raises(ValueError, match='split'):
        Market1501(data_root=market_root, split='val')


@pytest.mark.parametrize('camera', ['c0', 'c7'])
def test_a_camera_out_of_1_to_6_names_the_file(market_root, camera):
    """Market-1501 has cameras c1..c6: c0 would become camid -1."""
    name = f'0003_{camera}s1_000001_00.jpg'
    touch(os.path.join(market_root, 'bounding_box_train'), name)
    with pytest.raises(ValueError, match=rf'cameras are c1\.\.c6.*{name}'):
        Market1501(data_root=market_root)


@pytest.mark.parametrize('folder',
                         ['bounding_box_train', 'query', 'bounding_box_test'])
@pytest.mark.parametrize('pid', ['-5', '-7', '-0', '-01', '-0001'])
def test_negative_pid_other_than_junk_names_the_file(market_root, folder, pid):
    # Only -1 is special (junk). -5 used to become an identity (relabelled
    # as a real class in train) and -0 a distractor.
    name = f'{pid}_c2s1_000001_00.jpg'
    touch(os.path.join(market_root, folder), name)
    split = 'train' if folder == 'bounding_box_train' else 'test'
    with pytest.raises(ValueError, match=f'{name}.*-1') as err:
        Market1501(data_root=market_root, split=split)
    assert repr(pid) in str(err.value)


def test_junk_pid_in_train_is_dropped(market_root):
    touch(
        os.path.join(market_root, 'bounding_box_train'),
        '-1_c1s1_000009_01.jpg')
    ds = Market1501(data_root=market_root, split='train')
    assert len(ds) == 4 and ds.num_pids == 3


def test_distractor_pid_in_train_is_dropped(market_root):
    """pid 0 (distractor) is never used for training (datasets spec): a
    0000_* image in bounding_box_train is no identity of the train set."""
    touch(
        os.path.join(market_root, 'bounding_box_train'),
        '0000_c1s1_000009_01.jpg')
    ds = Market1501(data_root=market_root, split='train')
    assert len(ds) == 4 and ds.num_pids == 3
    paths = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    assert not any(os.path.basename(p).startswith('0000_') for p in paths)


def test_distractor_pid_in_query_is_refused(market_root):
    """pid 0 is kept in the gallery only (datasets spec, docs/datasets.md):
    a 0000_* query would be ranked as a person whose true matches are the
    gallery's distractors, so the test split refuses it, naming the file."""
    name = '0000_c2s1_000002_01.jpg'
    touch(os.path.join(market_root, 'query'), name)
    with pytest.raises(ValueError, match='gallery only') as err:
        Market1501(data_root=market_root, split='test')
    assert name in str(err.value)
    # The training split does not read query/.
    assert len(Market1501(data_root=market_root, split='train')) == 4
