"""What a dataset's files may hold that the parsers must not misread: list
files saved with a byte-order mark or in another encoding, two folders of
one camera or identity, a folder named like an image."""
import logging
import os
import os.path as osp
import re

import pytest

from mmreid.datasets import LLCM, MSMT17, SYSUMM01
from mmreid.datasets.base_reid_dataset import list_images

NAME = '0000/0000_000_01_0303morning_0015_0.jpg'


def touch(path):
    os.makedirs(osp.dirname(path), exist_ok=True)
    open(path, 'wb').close()


def write(path, text):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)


def msmt17(root, train_list: bytes):
    for folder in ('train', 'test'):
        touch(osp.join(root, folder, NAME))
    for name in ('list_val', 'list_query', 'list_gallery'):
        write(
            osp.join(root, f'{name}.txt'),
            '' if name == 'list_val' else f'{NAME} 0\n')
    with open(osp.join(root, 'list_train.txt'), 'wb') as f:
        f.write(train_list)


def test_a_list_saved_with_a_byte_order_mark_is_read(tmp_path):
    """The BOM became part of the first path: 'train/\\ufeff0000/...
    does not exist' for an image that exists."""
    root = str(tmp_path / 'msmt17')
    msmt17(root, b'\xef\xbb\xbf' + f'{NAME} 0\n'.encode())
    logging.disable(logging.WARNING)
    try:
        dataset = MSMT17(root, split='train', version='V1')
    finally:
        logging.disable(logging.NOTSET)
    assert [dataset.get_data_info(i)['img_path']
            for i in range(len(dataset))] == [osp.join(root, 'train', NAME)]


def test_a_list_that_is_not_utf8_is_refused_naming_file_and_line(tmp_path):
    """A Latin-1 byte was a bare UnicodeDecodeError naming no file."""
    root = str(tmp_path / 'msmt17')
    msmt17(root, f'{NAME} 0\ncaf\xe9 1\n'.encode('latin-1'))
    with pytest.raises(
            ValueError,
            match=r"list_train.txt', line 2: not UTF-8 text \(byte "
            r"b'\\xe9'\)"):
        MSMT17(root, split='train', version='V1')
    # CRLF and a missing final newline are text like any other.
    from mmreid.datasets.base_reid_dataset import read_list_file
    path = tmp_path / 'ids.txt'
    path.write_bytes(b'\xef\xbb\xbf1,2\r\n3')
    assert read_list_file(str(path)).splitlines() == ['1,2', '3']


def test_a_folder_named_like_an_image_is_refused(tmp_path):
    """It was listed as an image (counted, then failing to load)."""
    touch(str(tmp_path / 'train' / '0001_c1s1_000151_01.jpg'))
    (tmp_path / 'train' / '0003_c1s1_000451_03.jpg').mkdir()
    with pytest.raises(
            ValueError,
            match="0003_c1s1_000451_03.jpg' is a "
            "folder with an image's name"):
        list_images(str(tmp_path / 'train'))
    (tmp_path / 'train' / '0003_c1s1_000451_03.jpg').rmdir()
    (tmp_path / 'train' / 'Thumbs.db').write_bytes(b'')
    assert list_images(str(tmp_path / 'train')) == ['0001_c1s1_000151_01.jpg']


def sysu(root):
    write(osp.join(root, 'exp', 'train_id.txt'), '1')
    write(osp.join(root, 'exp', 'val_id.txt'), '2')
    write(osp.join(root, 'exp', 'test_id.txt'), '4')
    touch(osp.join(root, 'cam3', '0004', '0001.jpg'))
    touch(osp.join(root, 'cam1', '0004', '0001.jpg'))


def test_sysu_refuses_two_folders_of_one_camera_or_identity(tmp_path):
    """cam1 and cam01, or 0004 and 004, parsed to one key and the folder
    sorted last replaced the other: its images vanished without a word."""
    root = str(tmp_path / 'sysu')
    sysu(root)
    gallery = SYSUMM01(root, split='test', mode='all')
    assert sum(
        gallery.get_data_info(i)['role'] == 'gallery'
        for i in range(len(gallery))) == 1
    touch(osp.join(root, 'cam1', '004', '0002.jpg'))
    with pytest.raises(
            ValueError,
            match=r"cam1/0004' and .*cam1/004' are both "
            'SYSU-MM01 identity 4 of camera 1'):
        SYSUMM01(root, split='test', mode='all')
    os.remove(osp.join(root, 'cam1', '004', '0002.jpg'))
    os.rmdir(osp.join(root, 'cam1', '004'))
    touch(osp.join(root, 'cam01', '0004', '0003.jpg'))
    with pytest.raises(
            ValueError, match=r"cam01' and .*cam1' are both SYSU-MM01 "
            'camera 1'):
        SYSUMM01(root, split='test', mode='all')


def test_llcm_refuses_two_folders_of_one_identity(tmp_path):
    root = str(tmp_path / 'llcm')
    for modality in ('vis', 'nir'):
        name = f'{modality}/0001/0001_c01_s1_f1_{modality}.jpg'
        touch(osp.join(root, name))
        write(osp.join(root, 'idx', f'train_{modality}.txt'), f'{name} 1\n')
    write(osp.join(root, 'idx', 'test_id.txt'), '800')
    touch(osp.join(root, 'test_nir', 'cam2', '0800', '0800_c02_s1_f1_nir.jpg'))
    touch(osp.join(root, 'test_vis', 'cam2', '0800', '0800_c02_s1_f1_vis.jpg'))
    logging.disable(logging.WARNING)
    try:
        LLCM(root, split='test')
        touch(
            osp.join(root, 'test_vis', 'cam2', '800',
                     '0800_c02_s1_f2_vis.jpg'))
        with pytest.raises(
                ValueError,
                match=r"0800' and .*800' are both LLCM identity "
                '800 of camera 2'):
            LLCM(root, split='test')
    finally:
        logging.disable(logging.NOTSET)


def test_junk_and_distractors_left_out_of_training_are_logged(
        tmp_path, monkeypatch):
    """A distractor (pid 0) in bounding_box_train is not trained on, as
    the spec says; the count changed with no line saying why."""
    from mmreid.datasets import Market1501, base_reid_dataset
    root = tmp_path / 'market'
    for folder, names in (('bounding_box_train', [
            '0002_c1s1_000451_03.jpg', '0000_c1s1_000001_00.jpg',
            '-1_c1s1_000002_00.jpg'
    ]), ('bounding_box_test', ['0002_c2s1_000301_01.jpg']),
                          ('query', ['0002_c1s1_000001_00.jpg'])):
        for name in names:
            touch(str(root / folder / name))
    logged = []
    monkeypatch.setattr(base_reid_dataset, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    assert len(Market1501(str(root), split='train')) == 1
    (line, ) = [m for m in logged if 'not trained on' in m]
    assert line.startswith('market1501: 2 training image(s) labelled junk '
                           '(-1) or distractor (0) are not trained on, e.g.')


def test_an_image_that_is_a_symlink_to_nothing_is_refused(tmp_path):
    """A Market-1501 copy whose bounding_box_train holds a symbolic link
    to a moved data drive: the link was parsed and counted as an image
    (dataset summary, verify_dataset.py) and only failed when the loader
    opened it mid-training. It is refused at parse time, naming the link
    and where it points; a link to an existing image is an image."""
    from mmreid.datasets import Market1501
    root = tmp_path / 'market'
    for folder, name in (('bounding_box_train', '0002_c1s1_000451_03.jpg'),
                         ('bounding_box_test', '0002_c2s1_000301_01.jpg'),
                         ('query', '0002_c1s1_000001_00.jpg')):
        touch(str(root / folder / name))
    train = root / 'bounding_box_train'
    moved = tmp_path / 'unmounted' / '0007_c3s1_000001_01.jpg'
    os.symlink(moved, train / '0007_c3s1_000001_01.jpg')
    with pytest.raises(
            FileNotFoundError,
            match=r"bounding_box_train/0007_c3s1_000001_01.jpg' is a "
            rf'symbolic link to {re.escape(repr(str(moved)))}, which does '
            'not exist'):
        Market1501(str(root), split='train')
    with pytest.raises(FileNotFoundError, match='symbolic link'):
        list_images(str(train))
    # A relative link is resolved against its folder in the message.
    os.remove(train / '0007_c3s1_000001_01.jpg')
    os.symlink(
        osp.join('..', 'elsewhere', 'x.jpg'),
        train / '0007_c3s1_000001_01.jpg')
    with pytest.raises(
            FileNotFoundError,
            match=r"symbolic link to '\.\./elsewhere/x.jpg' \('.*/market/"
            r"elsewhere/x.jpg'\), which does not exist"):
        list_images(str(train))
    touch(str(root / 'elsewhere' / 'x.jpg'))
    assert len(Market1501(str(root), split='train')) == 2


def test_a_listed_image_that_is_a_symlink_to_nothing_is_refused(tmp_path):
    """An MSMT17 list (or an LLCM/RegDB idx file) naming an image that is
    a symbolic link to nothing: the folder listing held its name, so it
    was taken as present. The error names the link, its target and the
    list file and line."""
    root = str(tmp_path / 'msmt17')
    msmt17(root, f'{NAME} 0\n'.encode())
    image = osp.join(root, 'train', NAME)
    os.remove(image)
    os.symlink(str(tmp_path / 'gone.jpg'), image)
    with pytest.raises(
            FileNotFoundError,
            match=rf"{NAME}', listed in .*list_train.txt line 1, is a "
            rf"symbolic link to '{tmp_path}/gone.jpg', which does not "
            'exist'):
        MSMT17(root, split='train', version='V1')
    llcm = str(tmp_path / 'llcm')
    for modality in ('vis', 'nir'):
        name = f'{modality}/0001/0001_c01_s1_f1_{modality}.jpg'
        touch(osp.join(llcm, name))
        write(osp.join(llcm, 'idx', f'train_{modality}.txt'), f'{name} 1\n')
    nir = osp.join(llcm, 'nir/0001/0001_c01_s1_f1_nir.jpg')
    os.remove(nir)
    os.symlink(str(tmp_path / 'gone.jpg'), nir)
    with pytest.raises(
            FileNotFoundError,
            match=r"0001_c01_s1_f1_nir.jpg', listed in .*train_nir.txt "
            'line 1, is a symbolic link'):
        LLCM(llcm, split='train')


def test_an_identity_folder_that_is_a_symlink_to_nothing_is_refused(tmp_path):
    """SYSU-MM01 and LLCM read identities from folders: a pid folder that
    was a symbolic link to a moved drive was skipped as "not a folder",
    and that identity's images of the camera left out without a word."""
    root = str(tmp_path / 'sysu')
    sysu(root)
    os.makedirs(osp.join(root, 'cam2'))
    os.symlink(str(tmp_path / 'gone'), osp.join(root, 'cam2', '0004'))
    with pytest.raises(
            FileNotFoundError,
            match=r"cam2/0004' is a symbolic link to '.*/gone', which does "
            'not exist'):
        SYSUMM01(root, split='test', mode='all')
    llcm = str(tmp_path / 'llcm')
    write(osp.join(llcm, 'idx', 'test_id.txt'), '800')
    touch(osp.join(llcm, 'test_vis', 'cam2', '0800', '0800_c02_s1_f1_vis.jpg'))
    os.makedirs(osp.join(llcm, 'test_nir'))
    os.symlink(str(tmp_path / 'gone'), osp.join(llcm, 'test_nir', 'cam2'))
    with pytest.raises(
            FileNotFoundError, match=r"test_nir/cam2' is a symbolic link to"):
        LLCM(llcm, split='test')
