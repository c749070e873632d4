"""tools/dataset_converters/cuhk03.py on a tiny synthetic release."""
import os
import os.path as osp
import re
import shutil

import cv2
import numpy as np
import pytest

from mmreid.datasets import CUHK03NP
from ..fixtures.processes import load_tool

TOOL = 'tools/dataset_converters/cuhk03.py'

mat4py = pytest.importorskip('mat4py')

tool = load_tool(TOOL)

# Pair 1: pids 1-3, pair 2: pids 1-2 (numbers repeat across pairs); the
# protocol relabels them 1..5. Images 1-5 are view 1, 6-10 view 2.
RAW = [(1, 1, [1, 2, 6, 7]), (1, 2, [1, 6]), (1, 3, [2, 3, 8]),
       (2, 1, [1, 6, 9]), (2, 2, [4, 10])]


def make_release(root, variant='labeled'):
    images = osp.join(root, 'extracted', f'images_{variant}')
    os.makedirs(images)
    filelist, labels = [], []
    for label, (pair, pid, imgs) in enumerate(RAW, 1):
        for img in imgs:
            name = tool.image_name(pair, pid, 1 if img <= 5 else 2, img)
            cv2.imwrite(
                osp.join(images, name),
                np.full((8, 4, 3), 10 * label + img, np.uint8))
            filelist.append(name)
            labels.append([label])
    n = len(filelist)
    # Train: labels 1-3; test: labels 4-5 (query = the first view-1 image,
    # gallery = the rest).
    train = [i + 1 for i in range(n) if labels[i][0] <= 3]
    query = [
        filelist.index('2_001_1_01.png') + 1,
        filelist.index('2_002_1_04.png') + 1
    ]
    gallery = [
        i + 1 for i in range(n) if labels[i][0] > 3 and i + 1 not in query
    ]
    raw = osp.join(root, 'raw')
    os.makedirs(raw)
    mat4py.savemat(
        osp.join(raw, tool.PROTOCOL_FILE.format(variant)),
        dict(
            filelist=filelist,
            labels=labels,
            train_idx=train,
            query_idx=query,
            gallery_idx=gallery))
    return raw, osp.join(root, 'extracted')


def test_new_protocol_to_np_layout(tmp_path):
    raw, extracted = make_release(str(tmp_path))
    out = str(tmp_path / 'cuhk03-np')
    assert tool.main(
        [raw, out, '--variants', 'labeled', '--images-dir', extracted]) == 0
    train = CUHK03NP(out, split='train', variant='labeled')
    infos = [train.get_data_info(i) for i in range(len(train))]
    assert len(infos) == 4 + 2 + 3
    assert sorted({r['pid'] for r in infos}) == [0, 1, 2]
    assert sorted(osp.basename(r['img_path']) for r in infos
                  if r['pid'] == 0) == [
                      '0001_c1_01.png', '0001_c1_02.png', '0001_c2_06.png',
                      '0001_c2_07.png'
                  ]
    test = CUHK03NP(out, split='test', variant='labeled')
    infos = [test.get_data_info(i) for i in range(len(test))]
    query = [(r['pid'], r['camid']) for r in infos if r['role'] == 'query']
    gallery = [(r['pid'], r['camid']) for r in infos if r['role'] == 'gallery']
    assert sorted(query) == [(4, 0), (5, 0)]
    assert sorted(gallery) == [(4, 1), (4, 1), (5, 1)]
    # The pixels travel with the file.
    image = cv2.imread(osp.join(out, 'labeled', 'query', '0005_c1_04.png'))
    assert image.shape == (8, 4, 3) and int(image[0, 0, 0]) == 54


def test_errors(tmp_path):
    raw, extracted = make_release(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='detected'):
        tool.convert(raw, str(tmp_path / 'o'), ['detected'], extracted)
    os.remove(osp.join(extracted, 'images_labeled', '1_002_2_06.png'))
    with pytest.raises(FileNotFoundError, match='1_002_2_06.png'):
        tool.convert(raw, str(tmp_path / 'o'), ['labeled'], extracted)
    mat4py.savemat(
        osp.join(raw, tool.PROTOCOL_FILE.format('labeled')),
        dict(
            filelist=['a.png'],
            labels=[1],
            train_idx=[2],
            query_idx=[1],
            gallery_idx=[1]))
    with pytest.raises(ValueError, match='train_idx holds 2'):
        tool.load_protocol(osp.join(raw, tool.PROTOCOL_FILE.format('labeled')))


def tree(folder):
    """{relative path: bytes} of the files under ``folder``."""
    found = {}
    for d, _, files in os.walk(folder):
        for f in files:
            with open(osp.join(d, f), 'rb') as file:
                found[osp.relpath(file.name, folder)] = file.read()
    return found


def test_an_interrupted_conversion_leaves_no_tree(tmp_path, monkeypatch):
    """Interrupted while copying the gallery, it left a half tree that
    CUHK03NP read (with only a warning about the published counts). Now
    no tree is left, and the next run writes it whole."""
    raw, extracted = make_release(str(tmp_path))
    out = str(tmp_path / 'cuhk03-np')
    copyfile = tool.shutil.copyfile
    copied = []

    def interrupted(src, dst):
        if len(copied) == 4 + 2 + 3 + 2 + 1:  # train, query, 1 gallery
            raise KeyboardInterrupt('simulated Ctrl-C')
        copied.append(dst)
        return copyfile(src, dst)

    with monkeypatch.context() as ctrl_c:
        ctrl_c.setattr(tool.shutil, 'copyfile', interrupted)
        with pytest.raises(KeyboardInterrupt):
            tool.convert(raw, out, ['labeled'], extracted)
    assert os.listdir(out) == []
    with pytest.raises(Exception, match='labeled'):
        CUHK03NP(out, split='test', variant='labeled')
    tool.convert(raw, out, ['labeled'], extracted)
    test = CUHK03NP(out, split='test', variant='labeled')
    assert sorted(test.get_data_info(i)['role']
                  for i in range(len(test))) == ['gallery'] * 3 + ['query'] * 2


def test_an_existing_output_is_refused_not_mixed(tmp_path):
    """A rerun over an older output kept its stale files next to the new
    ones; it is refused before anything is written, naming the folder,
    and the older output is left as it was."""
    raw, extracted = make_release(str(tmp_path))
    out = tmp_path / 'cuhk03-np'
    tool.convert(raw, str(out), ['labeled'], extracted)
    stale = out / 'labeled' / 'query' / '0099_c1_01.png'
    stale.write_bytes(b'an older conversion')
    before = tree(str(out))
    with pytest.raises(FileExistsError) as error:
        tool.convert(raw, str(out), ['labeled'], extracted)
    assert repr(str(out / 'labeled')) in str(error.value)
    assert 'another OUT_DIR' in str(error.value)
    assert tree(str(out)) == before
    # Images a run extracted to OUT_DIR: refused before reading
    # cuhk-03.mat (absent here), with the switch that reuses them.
    images = out / 'images_labeled'
    os.rename(osp.join(extracted, 'images_labeled'), images)
    before = tree(str(out))
    other = tmp_path / 'other'
    with pytest.raises(FileExistsError) as error:
        tool.convert(raw, str(out), ['labeled'])
    assert repr(str(images)) in str(error.value)
    assert f'--images-dir {out}' in str(error.value)
    assert tree(str(out)) == before
    # As advised: another OUT_DIR with --images-dir.
    args = [raw, str(other), '--variants', 'labeled']
    tool.main(args + ['--images-dir', str(out)])
    query = sorted(os.listdir(other / 'labeled' / 'query'))
    assert query == ['0004_c1_01.png', '0005_c1_04.png']


def test_extract_images_from_hdf5(tmp_path):
    h5py = pytest.importorskip(
        'h5py', reason='h5py (requirements/tests.txt) is not installed')
    path = str(tmp_path / 'cuhk-03.mat')
    rng = np.random.RandomState(0)
    expected = {}
    with h5py.File(path, 'w') as mat:
        refs = mat.create_group('#refs#')
        pair_refs = []
        for pair in (1, 2):
            cells = np.empty((10, 2), dtype=h5py.ref_dtype)  # (10, pids)
            for pid in (1, 2):
                for img in range(1, 11):
                    if img in (5, 10) and pid == 2:
                        data = np.zeros((2, ), np.uint64)  # empty cell
                    else:
                        image = rng.randint(0, 255, (6, 4, 3), np.uint8)
                        data = image.T  # MATLAB column-major
                        expected[tool.image_name(pair, pid,
                                                 1 if img <= 5 else 2,
                                                 img)] = image
                    ds = refs.create_dataset(f'{pair}_{pid}_{img}', data=data)
                    cells[img - 1, pid - 1] = ds.ref
            ds = refs.create_dataset(f'pair{pair}', data=cells)
            pair_refs.append(ds.ref)
        mat.create_dataset(
            'labeled', data=np.array([pair_refs], dtype=h5py.ref_dtype).T)
    names = tool.extract_images(path, 'labeled', str(tmp_path / 'img'))
    assert sorted(names) == sorted(expected)
    for name, image in expected.items():
        read = cv2.imread(str(tmp_path / 'img' / name))[..., ::-1]
        np.testing.assert_array_equal(read, image)


def test_an_existing_variant_is_refused_before_images_are_extracted(
        tmp_path, monkeypatch):
    """``OUT_DIR/labeled`` with files: refused before cuhk-03.mat is read,
    so no ``images_labeled`` folder is left behind by a conversion that
    could not finish."""
    raw, _ = make_release(str(tmp_path))
    out = tmp_path / 'cuhk03-np'
    (out / 'labeled').mkdir(parents=True)
    (out / 'labeled' / 'notes.txt').write_text('mine')
    extracted = []
    monkeypatch.setattr(tool, 'extract_images',
                        lambda *args: extracted.append(args))
    with pytest.raises(FileExistsError) as error:
        tool.convert(raw, str(out), ['labeled'])
    assert repr(str(out / 'labeled')) in str(error.value)
    assert extracted == []
    assert os.listdir(out) == ['labeled']


def test_a_protocol_with_more_files_than_labels_is_refused(tmp_path):
    """``filelist`` and ``labels`` are parallel (one pid per file): a file
    without a label must be refused when the protocol is read, naming the
    file and both counts, not fail later with an IndexError halfway
    through the copy."""
    path = str(tmp_path / tool.PROTOCOL_FILE.format('labeled'))
    mat4py.savemat(
        path,
        dict(
            filelist=['1_001_1_01.png', '1_001_2_06.png'],
            labels=[1],
            train_idx=[1],
            query_idx=[2],
            gallery_idx=[2]))
    with pytest.raises(ValueError, match='2 files but 1 labels') as error:
        tool.load_protocol(path)
    assert path in str(error.value)


def test_a_file_name_that_is_not_four_numbers_is_refused(tmp_path):
    """The pid-free view and image numbers are read from the
    ``<pair>_<pid>_<view>_<img>.png`` name: a name with a non-numeric
    field must be refused naming that name (not a bare int() error)."""
    raw, extracted = make_release(str(tmp_path))
    images = osp.join(extracted, 'images_labeled')
    os.rename(
        osp.join(images, '1_001_1_01.png'), osp.join(images, '1_001_x_01.png'))
    protocol = tool.load_protocol(
        osp.join(raw, tool.PROTOCOL_FILE.format('labeled')))
    protocol['filelist'] = [
        '1_001_x_01.png' if n == '1_001_1_01.png' else n
        for n in protocol['filelist']
    ]
    (tmp_path / 'cuhk03-np').mkdir()
    out = tmp_path / 'cuhk03-np' / 'labeled'
    with pytest.raises(ValueError, match=r"'1_001_x_01\.png'"):
        tool.write_np_layout(protocol, images, str(out))
    # Nothing half written.
    assert not out.exists()


def test_a_missing_protocol_file_is_refused_before_anything_is_written(
        tmp_path):
    """Every input is checked up front: converting both variants where
    only the labeled protocol exists must fail before the labeled variant
    is written, not leave ``OUT_DIR/labeled`` behind and then fail on
    detected."""
    raw, extracted = make_release(str(tmp_path))
    out = tmp_path / 'cuhk03-np'
    missing = osp.join(raw, tool.PROTOCOL_FILE.format('detected'))
    with pytest.raises(FileNotFoundError, match=re.escape(repr(missing))):
        tool.convert(raw, str(out), ['labeled', 'detected'], extracted)
    assert not out.exists() or os.listdir(out) == []


def test_missing_images_are_refused_before_anything_is_written(tmp_path):
    """Both variants with --images-dir holding only the labeled images:
    the labeled variant was written and the detected one then failed on
    its first image; without --images-dir and without cuhk-03.mat, the
    error came from h5py. Both are refused up front, naming the path."""
    raw, extracted = make_release(str(tmp_path))
    shutil.copyfile(
        osp.join(raw, tool.PROTOCOL_FILE.format('labeled')),
        osp.join(raw, tool.PROTOCOL_FILE.format('detected')))
    out = tmp_path / 'cuhk03-np'
    missing = osp.join(extracted, 'images_detected')
    with pytest.raises(FileNotFoundError,
                       match=re.escape(f'{missing!r} is missing')):
        tool.convert(raw, str(out), ['labeled', 'detected'], extracted)
    assert not out.exists() or os.listdir(out) == []
    mat = osp.join(raw, 'cuhk-03.mat')
    with pytest.raises(FileNotFoundError,
                       match=re.escape(f'{mat!r} is missing')):
        tool.convert(raw, str(out), ['labeled'])
    assert not out.exists() or os.listdir(out) == []
