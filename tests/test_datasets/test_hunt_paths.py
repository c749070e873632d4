"""Wrong-number hunt: dataset folders as users have them.

A dataset's labels, splits and sample order must depend only on its
files' names and contents (specs/datasets.md §0: "Parsing: by regex on
file/directory names ... unexpected names raise"): not on the order the
file system lists a folder, not on where the copy sits or how its root is
spelled, and not on stray files a real copy holds (``.DS_Store``,
``Thumbs.db``, macOS ``._*`` files, notes, sub-folders), which are
ignored or refused naming the file, never counted as an image.

The expected records are written out from the fixtures' file names and
the layout rules of the spec, not from mmreid's parsers.
"""
import os
import os.path as osp

import pytest

from mmreid.datasets import (CUHK02, CUHK03NP, LLCM, MSMT17, SYSUMM01,
                             DukeMTMCReID, Market1501, RegDB)
from ..fixtures.dataset_trees import (SYSU_IMAGES, fake_duke, make_cuhk02,
                                      make_cuhk03_np, make_llcm,
                                      make_market1501, make_msmt17, make_regdb,
                                      make_sysu)
from ..fixtures.files import touch


def _msmt17(root):
    """An MSMT17 V1 tree (the fixture writes into an existing folder)."""
    os.makedirs(root)
    return make_msmt17(root)


#: Every dataset whose parser lists folders: tree maker, builder, splits.
BUILDERS = dict(
    market1501=(make_market1501,
                lambda root, split: Market1501(root, split=split), ('train',
                                                                    'test')),
    duke=(lambda root: fake_duke(root) or str(root),
          lambda root, split: DukeMTMCReID(root, split=split), ('train',
                                                                'test')),
    cuhk03=(make_cuhk03_np,
            lambda root, split: CUHK03NP(root, split=split, variant='labeled'),
            ('train', 'test')),
    cuhk02=(make_cuhk02, lambda root, split: CUHK02(root, split=split),
            ('train', )),
    msmt17=(_msmt17,
            lambda root, split: MSMT17(root, split=split, version='V1'),
            ('train', 'test')),
    sysu=(make_sysu, lambda root, split: SYSUMM01(root, split=split),
          ('train', 'test')),
    llcm=(make_llcm, lambda root, split: LLCM(root, split=split), ('train',
                                                                   'test')),
    regdb=(make_regdb, lambda root, split: RegDB(root, split=split), ('train',
                                                                      'test')),
)


def records(dataset, root):
    """``(path relative to root, pid, camid, modality, role)`` per record,
    in dataset order (the order the sampler and the metrics see)."""
    out = []
    for i in range(len(dataset)):
        r = dataset.get_data_info(i)
        rel = osp.relpath(r['img_path'], root).replace(os.sep, '/')
        out.append((rel, r['pid'], r['camid'], r['modality'], r['role']))
    return out


def build(name, root, split):
    """The dataset ``name`` at ``root``, loaded."""
    dataset = BUILDERS[name][1](root, split)
    dataset.full_init()
    return dataset


class _ReversedScandir:
    """``os.scandir`` whose entries come in reversed name order."""

    def __init__(self, scandir, path='.'):
        self._it = scandir(path)
        self._entries = sorted(self._it, key=lambda e: e.name, reverse=True)

    def __iter__(self):
        return iter(self._entries)

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self._it.close()


@pytest.mark.parametrize('name, split', [(name, split)
                                         for name in sorted(BUILDERS)
                                         for split in BUILDERS[name][2]])
def test_records_do_not_depend_on_listing_order(tmp_path, monkeypatch, name,
                                                split):
    """The same tree listed in reversed order gives the same records.

    ``os.listdir``/``os.scandir`` return entries in an order the file
    system chooses (ext4 hash order, NFS, a copy made in another order):
    labels (train pids relabelled in sorted order of the original pid,
    specs/datasets.md §0), the query/gallery order and so every printed
    number must be those of the names alone.
    """
    root = BUILDERS[name][0](tmp_path / name)
    expected = records(build(name, root, split), root)
    listdir, scandir = os.listdir, os.scandir
    monkeypatch.setattr(
        os, 'listdir', lambda path='.': sorted(listdir(path), reverse=True))
    monkeypatch.setattr(
        os, 'scandir', lambda path='.': _ReversedScandir(scandir, path))
    assert records(build(name, root, split), root) == expected


def _spellings(tmp_path, make):
    """One tree, under awkward parents, and spellings of its root."""
    parent = tmp_path / 'data set ünï' / '0001_c1s1_000151_01' / 'cam3_nir'
    root = make(parent / 'ds')
    link = str(tmp_path / 'link')
    os.symlink(root, link)
    return root, [root + os.sep, osp.relpath(root), link]


@pytest.mark.parametrize('name', sorted(BUILDERS))
def test_records_do_not_depend_on_the_root(tmp_path, name):
    """Where the copy sits and how ``data_root`` is spelled change nothing.

    A parent folder named like an image (``0001_c1s1_000151_01``), like a
    camera or modality (``cam3_nir``), with a space or non-ASCII letters,
    a trailing slash, a relative root and a symbolic link to the root all
    give the records of the plain root: the parsers read the names under
    ``data_root`` only (specs/datasets.md §0, Parsing).
    """
    make, _, splits = BUILDERS[name]
    reference = make(tmp_path / 'plain' / 'ds')
    root, spellings = _spellings(tmp_path, make)
    for split in splits:
        expected = records(build(name, reference, split), reference)
        assert records(build(name, root, split), root) == expected
        for spelled in spellings:
            assert records(build(name, spelled, split),
                           spelled) == expected, spelled


def _image_folders(root):
    """Folders holding images, with one image name of each."""
    found = []
    for folder, _, files in os.walk(root):
        images = sorted(
            f for f in files if f.endswith(('.jpg', '.png', '.bmp')))
        if images:
            found.append((folder, images[0]))
    return found


@pytest.mark.parametrize('name', sorted(BUILDERS))
def test_stray_files_are_not_counted(tmp_path, name):
    """Finder, Explorer and notes files beside the images are ignored.

    Each image folder gets ``.DS_Store``, ``Thumbs.db``, a macOS
    AppleDouble file ``._<image name>`` (left by copying through a Mac),
    a ``README``, a ``list.txt`` and an empty sub-folder; the root gets
    ``.ipynb_checkpoints/`` and ``__MACOSX/``. The records are those of
    the clean copy (docs/datasets.md: stray non-image files and ``._*``
    are ignored).
    """
    make, _, splits = BUILDERS[name]
    reference = make(tmp_path / 'clean')
    root = make(tmp_path / 'stray')
    for folder, image in _image_folders(root):
        touch(folder, '.DS_Store', 'Thumbs.db', '._' + image, 'README',
              'list.txt')
        os.makedirs(osp.join(folder, 'extra'))
    for extra in ('.ipynb_checkpoints', '__MACOSX'):
        os.makedirs(osp.join(root, extra))
    for split in splits:
        assert records(build(name, root, split), root) == records(
            build(name, reference, split), reference)


def _sysu_query(test_ids=(5, 20)):
    """SYSU-MM01 query by definition (specs/datasets.md §3.6, the
    class's docs): every infrared (cam3, cam6) image of the test ids,
    ``cam<k>/<pid:04d>/<img:04d>.jpg``, from the fixture's image counts."""
    return sorted(f'cam{cam}/{pid:04d}/{i:04d}.jpg' for pid in test_ids
                  for cam in (3, 6)
                  for i in range(1, SYSU_IMAGES[pid].get(cam, 0) + 1))


@pytest.mark.parametrize('stray', ['0001.png', '0001.JPG', '1.jpg'])
def test_sysu_counts_an_image_number_once(tmp_path, stray):
    """A second file of one SYSU-MM01 image number is refused or ignored.

    The user's copy of SYSU-MM01 has, beside ``cam3/0005/0001.jpg``, a
    converted or re-cased copy of the same picture (``0001.png`` from an
    image tool, ``0001.JPG``, or ``1.jpg``). mmreid loads both as query
    images: the test split has 5 queries where the copy has 4 images of
    the protocol, the query count printed at start-up is off, and the
    picture is scored twice in mAP/CMC (and drawn from twice by the
    seeded single-shot gallery when the stray is in a gallery folder).

    By definition (specs/datasets.md §3.6) an image is
    ``cam<k>/<pid:04d>/<img:04d>.jpg``: the camera, the identity and the
    image number name it, and the official draws (``rand_perm_cam.mat``)
    pick images by that number. A second file of one number is no second
    image: it must be refused with a message naming it (as SYSUMetric's
    official draw does, later, only for the gallery), or left out. The
    query is then the four infrared images of the test ids 5 and 20.
    """
    root = make_sysu(tmp_path / 'SYSU-MM01')
    touch(osp.join(root, 'cam3', '0005'), stray)
    try:
        dataset = build('sysu', root, 'test')
    except ValueError as error:
        assert stray in str(error)
        return
    query = sorted(r[0] for r in records(dataset, root) if r[4] == 'query')
    assert query == _sysu_query()


def test_llcm_counts_a_test_image_once(tmp_path):
    """An LLCM test folder holding one picture as ``x.jpg`` and a
    converted ``x.png`` loaded both: the picture counted twice and drawn
    twice by the per-trial gallery draw. Refused, naming both files."""
    root = make_llcm(tmp_path / 'LLCM')
    folder = osp.join(root, 'test_nir', 'cam4')
    folder = osp.join(folder, sorted(os.listdir(folder))[0])
    first = sorted(os.listdir(folder))[0]
    touch(folder, first.replace('.jpg', '.png'))
    with pytest.raises(ValueError, match='are one image in two files'):
        build('llcm', root, 'test')
