import os
import shutil

import pytest

from mmreid.datasets.base_reid_dataset import DatasetLayoutError
from mmreid.datasets.cuhk03 import CUHK03NP
from ..fixtures.dataset_trees import make_cuhk03_np
from ..fixtures.files import touch


@pytest.mark.parametrize('variant', [None, '', 'Labeled', 'classic'])
def test_variant_is_required(cuhk03_root, variant):
    kwargs = {} if variant is None else dict(variant=variant)
    with pytest.raises(ValueError, match='labeled.*detected'):
        CUHK03NP(data_root=cuhk03_root, **kwargs)


def test_train_labeled(cuhk03_root):
    ds = CUHK03NP(data_root=cuhk03_root, variant='labeled')
    records = [ds.get_data_info(i) for i in range(len(ds))]
    assert len(records) == 4
    by_name = {os.path.basename(r['img_path']): r for r in records}
    assert by_name['0001_c1_1.png']['pid'] == 0
    assert by_name['0003_c1_1.png']['pid'] == 1
    assert by_name['0003_c2_2.png']['camid'] == 1
    assert by_name['0003_c1_1.png']['camid'] == 0
    assert by_name['0100_c2_5.png']['pid'] == 2
    assert all(os.sep + 'labeled' + os.sep in r['img_path'] for r in records)
    assert ds.dataset_name == 'cuhk03-np-labeled'
    assert ds.metainfo['variant'] == 'labeled'
    assert ds.num_pids == 3


def test_test_detected_query_first(cuhk03_root):
    ds = CUHK03NP(data_root=cuhk03_root, split='test', variant='detected')
    assert ds.dataset_name == 'cuhk03-np-detected'
    records = [ds.get_data_info(i) for i in range(len(ds))]
    assert [r['role'] for r in records] == ['query', 'gallery']
    assert [(r['pid'], r['camid']) for r in records] == [(20, 0), (20, 1)]
    ds = CUHK03NP(data_root=cuhk03_root, split='test', variant='labeled')
    records = [ds.get_data_info(i) for i in range(len(ds))]
    assert [r['role'] for r in records] == ['query'] * 2 + ['gallery'] * 3
    assert [r['pid'] for r in records[:2]] == [20, 50]  # file order
    assert ds.metainfo['num_pids'] == 2


def test_wrong_root_and_bad_name(tmp_path, cuhk03_root):
    with pytest.raises(DatasetLayoutError) as err:
        CUHK03NP(data_root=str(tmp_path / 'nowhere'), variant='labeled')
    assert 'bounding_box_train/' in str(err.value)
    assert 'detected/' in str(err.value)
    # Pointing at the variant folder itself is a wrong root.
    with pytest.raises(DatasetLayoutError, match='labeled'):
        CUHK03NP(
            data_root=os.path.join(cuhk03_root, 'labeled'), variant='labeled')
    touch(
        os.path.join(cuhk03_root, 'detected', 'bounding_box_train'),
        '0003_c3_1.png')
    with pytest.raises(ValueError, match='0003_c3_1.png'):
        CUHK03NP(data_root=cuhk03_root, variant='detected')
    touch(os.path.join(cuhk03_root, 'labeled', 'query'), '0003_c1_1.jpg')
    with pytest.raises(ValueError, match='0003_c1_1.jpg'):
        CUHK03NP(data_root=cuhk03_root, split='test', variant='labeled')


def test_a_single_nested_tree_is_found_and_two_are_refused(tmp_path):
    """``data_root`` may be the folder above the tree; with two copies of
    the tree there (an old and a new extraction) the first by name was
    not guessed, but the error named a missing folder instead of them."""
    parent = tmp_path / 'data'
    make_cuhk03_np(parent / 'cuhk03-np')
    dataset = CUHK03NP(data_root=str(parent), variant='labeled')
    assert dataset.data_root == str(parent / 'cuhk03-np')
    shutil.copytree(parent / 'cuhk03-np', parent / 'a-old-copy')
    with pytest.raises(DatasetLayoutError) as error:
        CUHK03NP(data_root=str(parent), variant='labeled')
    assert '2 copies of the tree' in str(error.value)
    for copy in ('a-old-copy', 'cuhk03-np'):
        assert repr(str(parent / copy)) in str(error.value)


@pytest.mark.parametrize('name', ['0004_c0_1.png', '0004_c3_1.png'])
def test_a_view_out_of_1_to_2_names_the_file(cuhk03_root, name):
    """CUHK03 has two views per pair, c1 and c2: c0 would become camid
    -1."""
    touch(os.path.join(cuhk03_root, 'labeled', 'bounding_box_train'), name)
    with pytest.raises(ValueError, match=f'views are c1 or c2.*{name}'):
        CUHK03NP(data_root=cuhk03_root, variant='labeled')


@pytest.mark.parametrize('name', ['-1_c1_1.png', '-5_c2_1.png'])
def test_negative_pid_names_the_file(cuhk03_root, name):
    # CUHK03-NP has no junk label: a negative pid is a bad name, never
    # dropped as junk nor kept as an identity.
    touch(os.path.join(cuhk03_root, 'labeled', 'query'), name)
    with pytest.raises(ValueError, match=name):
        CUHK03NP(data_root=cuhk03_root, variant='labeled', split='test')
