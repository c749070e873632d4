"""The one reader of MATLAB protocol files, on the real SYSU-MM01 files and
on broken ones; the GRID and CUHK03 readers go through it."""
import hashlib
import os.path as osp

import pytest

from mmreid.datasets.small_dg import load_grid_partitions
from mmreid.evaluation.metrics import load_rand_perm_cam
from mmreid.utils.mat_file import MatVariableError, load_mat

mat4py = pytest.importorskip('mat4py')

SYSU_FIXTURES = osp.join(
    osp.dirname(__file__), '..', '..', '..', 'shared', 'fixtures', 'sysu_mm01')
needs_sysu_files = pytest.mark.skipif(
    not osp.isfile(osp.join(SYSU_FIXTURES, 'rand_perm_cam.mat')),
    reason='the official SYSU-MM01 split files are read from '
    '../shared/fixtures/sysu_mm01/, which this checkout does not have')
# sha256 of the published files (../shared/fixtures/README.md).
SHA256 = {
    'rand_perm_cam.mat':
    '90402382dd587e05b615dcee35637fee9ad61e56e26ac86988a00a43997ac0a7',
    'test_id.mat':
    '6aea5e85cabe88cdf473c7c8b517c779f2b8cf1df4335f275a9d7ed7bc4a9c54',
}


def fixture(name):
    path = osp.join(SYSU_FIXTURES, name)
    with open(path, 'rb') as file:
        assert hashlib.sha256(file.read()).hexdigest() == SHA256[name]
    return path


@needs_sysu_files
def test_load_mat_reads_the_published_sysu_files():
    test_id = load_mat(fixture('test_id.mat'), ['id'], 'SYSU-MM01 test ids')
    ids = [int(i[0]) if isinstance(i, list) else int(i) for i in test_id['id']]
    assert len(ids) == 96 and len(set(ids)) == 96
    assert all(1 <= i <= 533 for i in ids)

    path = fixture('rand_perm_cam.mat')
    raw = load_mat(path, ['rand_perm_cam'], 'rand_perm_cam.mat')
    # The loader hands over what mat4py reads, nothing dropped or changed.
    assert raw == mat4py.loadmat(path)
    perms = load_rand_perm_cam(path)
    assert len(perms) == 6
    for camera in perms:
        assert len(camera) >= 333
        for rows in camera:
            assert len(rows) == 10
            for row in rows:
                assert sorted(row) == list(range(1, len(row) + 1))
    # Every test id has images in some visible camera (1, 2, 4, 5).
    for pid in ids:
        assert any(perms[cam - 1][pid - 1][0] for cam in (1, 2, 4, 5))


def test_load_mat_errors_name_the_file_and_what_was_expected(tmp_path):
    path = str(tmp_path / 'partitions.mat')
    mat4py.savemat(path, dict(other=[1, 2]))
    with pytest.raises(MatVariableError) as info:
        load_mat(path, ['trainIdxAll', 'other'], 'GRID partitions',
                 'ten vectors of 125 ids')
    message = str(info.value)
    assert message == (f'{path}: no variable "trainIdxAll", found '
                       "['other']; expected ten vectors of 125 ids")
    # Callers that caught either type keep working.
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, ValueError)

    page = tmp_path / 'page.mat'
    page.write_text('<html>not found</html>')
    with pytest.raises(
            ValueError,
            match='page.mat: cannot be read as a '
            r'MATLAB \(v5\) file'):
        load_mat(str(page), [], 'GRID partitions')
    missing = str(tmp_path / 'missing.mat')
    with pytest.raises(FileNotFoundError) as info:
        load_mat(missing, [], 'GRID partitions')
    assert str(info.value) == f'GRID partitions: file {missing!r} not found'


def test_grid_and_sysu_readers_fail_through_the_one_loader(tmp_path):
    path = str(tmp_path / 'features_and_partitions.mat')
    mat4py.savemat(path, dict(other=[1, 2]))
    with pytest.raises(MatVariableError, match='no variable "trainIdxAll"'):
        load_grid_partitions(path)
    with pytest.raises(MatVariableError, match='no variable "rand_perm_cam"'):
        load_rand_perm_cam(path)
    with pytest.raises(FileNotFoundError, match='GRID partitions: file'):
        load_grid_partitions(str(tmp_path / 'none.mat'))


def test_every_missing_variable_is_named(tmp_path):
    path = str(tmp_path / 'partitions.mat')
    mat4py.savemat(path, dict(other=[1, 2]))
    with pytest.raises(MatVariableError) as info:
        load_mat(path, ['other', 'a', 'b'], 'GRID partitions')
    # Without an expected layout, the message ends with what was found.
    assert str(info.value) == \
        f'{path}: no variable "a", "b", found [\'other\']'
