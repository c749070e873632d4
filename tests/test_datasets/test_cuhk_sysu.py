import os

import pytest

from mmreid.datasets.base_reid_dataset import DatasetLayoutError
from mmreid.datasets.cuhk_sysu import CUHKSYSU
from ..fixtures.files import touch


@pytest.fixture
def sysu_root(tmp_path):
    root = tmp_path / 'cuhk_sysu'
    touch(root / 'cropped_images', 'p10_s13.jpg', 'p10_s200.jpg', 'p2_s5.jpg',
          'p11000_s7_1.jpg', 'Thumbs.db')
    return str(root)


def test_train_only_relabel_and_dummy_camera(sysu_root):
    ds = CUHKSYSU(data_root=sysu_root)
    records = [ds.get_data_info(i) for i in range(len(ds))]
    assert len(records) == 4
    by_name = {os.path.basename(r['img_path']): r for r in records}
    # Original pids 2, 10, 11000 -> 0, 1, 2 (numeric, not string, order).
    assert by_name['p2_s5.jpg']['pid'] == 0
    assert by_name['p10_s13.jpg']['pid'] == 1
    assert by_name['p10_s200.jpg']['pid'] == 1
    assert by_name['p11000_s7_1.jpg']['pid'] == 2
    assert {r['camid'] for r in records} == {0}
    assert {r['role'] for r in records} == {'train'}
    assert ds.dataset_name == 'cuhk-sysu'
    assert ds.num_pids == 3
    with pytest.raises(ValueError, match='train-only'):
        CUHKSYSU(data_root=sysu_root, split='test')


def test_wrong_root_and_bad_name(tmp_path, sysu_root):
    with pytest.raises(DatasetLayoutError) as err:
        CUHKSYSU(data_root=str(tmp_path))
    assert 'cropped_images' in str(err.value)
    assert 'p<pid>_s<scene>' in str(err.value)  # the tree is shown
    touch(os.path.join(sysu_root, 'cropped_images'), 's13_p10.jpg')
    with pytest.raises(ValueError, match='s13_p10.jpg'):
        CUHKSYSU(data_root=sysu_root)
