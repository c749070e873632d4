"""A partial or wrong copy of a dataset does not load silently: published
counts, the load-time warning, empty splits, empty images, AppleDouble
files, the accepted alternative layouts and the start-up summary table."""
import os
import os.path as osp
import re

import numpy as np
import pytest

import mmreid.datasets.base_reid_dataset as base_module
import mmreid.datasets.summary as summary_module
from mmreid.datasets import (CUHK02, CUHK03NP, CUHKSYSU, GRID, LLCM, MSMT17,
                             PRID2011, SYSUMM01, ConcatReIDDataset,
                             DatasetLayoutError, DukeMTMCReID, Market1501,
                             QMULiLIDS, RegDB, VIPeR)
from mmreid.datasets.transforms import ReIDLoadImageFromFile
from ..fixtures.dataset_trees import (make_ilids, make_msmt17, make_prid,
                                      make_sysu)
from ..fixtures.files import touch

DATASET_CLASSES = (Market1501, DukeMTMCReID, MSMT17, CUHK03NP, CUHK02,
                   CUHKSYSU, SYSUMM01, RegDB, LLCM, PRID2011, GRID, VIPeR,
                   QMULiLIDS)


@pytest.fixture
def logged(monkeypatch):
    """``(level, message)`` of every line the datasets log."""
    lines = []

    def record(msg, logger=None, level=20):
        lines.append((level, str(msg)))

    monkeypatch.setattr(base_module, 'print_log', record)
    monkeypatch.setattr(summary_module, 'print_log', record)
    return lines


def warnings_of(lines):
    return [m for level, m in lines if level >= 30]


def test_every_dataset_declares_its_published_counts():
    for cls in DATASET_CLASSES:
        own = vars(cls)
        declared = ('PUBLISHED_COUNTS' in own or 'published_counts' in own
                    or 'SPLIT_SIZES' in own)
        assert declared, cls.__name__
    # A few numbers from the datasets' papers / the spec.
    gallery = Market1501.PUBLISHED_COUNTS['gallery']
    found = (gallery['ids'], gallery['images'], gallery['cams'])
    assert found == (751, 15913, 6)
    assert DukeMTMCReID.PUBLISHED_COUNTS['gallery']['ids'] == 1110
    assert MSMT17.PUBLISHED_COUNTS['train']['images'] == 32621
    assert CUHK03NP.VARIANT_COUNTS['detected']['gallery']['images'] == 5332
    assert SYSUMM01.MODE_COUNTS['all']['query']['images'] == 3803
    # Counts are not inherited by a class with other data (SynthReID).
    from mmreid.datasets import SynthReID
    assert 'PUBLISHED_COUNTS' not in vars(SynthReID)


DUKE = DukeMTMCReID.PUBLISHED_COUNTS
# (class, its counts of one role, role) -> the numbers specs/datasets.md
# tags [unverified] (§1 and the per-dataset tables): a difference on them
# warns, on the others it is an error (spec §5).
SPEC_UNVERIFIED = [
    (Market1501, Market1501.PUBLISHED_COUNTS, 'train', {'images'}),
    (Market1501, Market1501.PUBLISHED_COUNTS, 'query', {'ids'}),
    # "750 + distractor label 0 [unverified]"; 15,913 itself is not
    # tagged, only its "breakdown".
    (Market1501, Market1501.PUBLISHED_COUNTS, 'gallery', {'ids'}),
    (DukeMTMCReID, DUKE, 'train', {'images'}),
    (DukeMTMCReID, DUKE, 'query', {'ids', 'images'}),
    (DukeMTMCReID, DUKE, 'gallery', {'images', 'ids'}),
    # "15 [unverified]" cameras.
    (MSMT17, MSMT17.PUBLISHED_COUNTS, 'train', {'images', 'cams'}),
    (MSMT17, MSMT17.PUBLISHED_COUNTS, 'query', {'ids', 'cams'}),
    (MSMT17, MSMT17.PUBLISHED_COUNTS, 'gallery', {'ids', 'cams'}),
    (CUHK03NP, CUHK03NP.VARIANT_COUNTS['labeled'], 'train', {'images'}),
    (CUHK03NP, CUHK03NP.VARIANT_COUNTS['labeled'], 'query', set()),
    (CUHK03NP, CUHK03NP.VARIANT_COUNTS['detected'], 'gallery', set()),
    # "1,816 [unverified]" (§1); 7,264 images are not tagged.
    (CUHK02, CUHK02.PUBLISHED_COUNTS, 'train', {'ids'}),
    (CUHKSYSU, CUHKSYSU.PREPARATIONS['cropped_images'][1], 'train', set()),
    # Training images and the 3,803 queries [unverified].
    (SYSUMM01, SYSUMM01.MODE_COUNTS['all'], 'train', {'images'}),
    (SYSUMM01, SYSUMM01.MODE_COUNTS['indoor'], 'query', {'images'}),
    # 206 ids and 2,060 test images per modality are given; 4,120 train
    # images rest on "10 visible + 10 thermal [unverified]".
    (RegDB, RegDB.PUBLISHED_COUNTS, 'train', {'images'}),
    (RegDB, RegDB.PUBLISHED_COUNTS, 'query', set()),
    (RegDB, RegDB.PUBLISHED_COUNTS, 'gallery', set()),
    # 713 train ids [reference code]; images per split not in the spec.
    (LLCM, dict(train=LLCM.TRAIN_COUNTS), 'train', {'images', 'cams'}),
]


@pytest.mark.parametrize(
    'cls, counts, role, unverified',
    SPEC_UNVERIFIED,
    ids=[f'{c.__name__}-{role}' for c, _, role, _ in SPEC_UNVERIFIED])
def test_spec_unverified_numbers_are_not_verified(cls, counts, role,
                                                  unverified):
    from mmreid.datasets.summary import verified_keys
    expected = counts[role]
    published = {key for key in ('ids', 'images', 'cams') if key in expected}
    assert published - set(verified_keys(expected)) == unverified


@pytest.mark.parametrize('verified', [('ids', 'image'), ['Images'],
                                      ('ids', 'cameras'), 'images'])
def test_a_misspelt_verified_name_is_refused(verified):
    """verified=('ids', 'image') (for 'images') read as "ids verified"
    would make tools/misc/verify_dataset.py warn '(unverified)' on a wrong
    image count and exit 0. A name that is not one of the counts, or a
    bare string, is refused naming the value."""
    from mmreid.datasets.summary import verified_keys
    expected = dict(ids=751, images=12936, cams=6, verified=verified)
    with pytest.raises(
            ValueError,
            match=r"^published counts: verified must be True, False or some "
            r"of \('ids', 'images', 'cams'\), got " +
            re.escape(repr(verified)) + '$'):
        verified_keys(expected)
    # The names it knows, in any order, in COUNT_KEYS order.
    expected['verified'] = ['cams', 'ids']
    assert verified_keys(expected) == ('ids', 'cams')


def set_counts(monkeypatch, cls, counts):
    monkeypatch.setattr(cls, 'PUBLISHED_COUNTS', counts)


MARKET_FIXTURE_COUNTS = dict(
    train=dict(ids=3, images=4, cams=4, verified=True),
    query=dict(ids=2, images=2, cams=2, verified=True),
    gallery=dict(ids=4, images=4, cams=3, verified=True))


def test_complete_copy_loads_without_warning(market_root, monkeypatch, logged):
    set_counts(monkeypatch, Market1501, MARKET_FIXTURE_COUNTS)
    Market1501(market_root, split='train')
    Market1501(market_root, split='test')
    assert warnings_of(logged) == []


def test_partial_split_warns_once_naming_what_differs(market_root, monkeypatch,
                                                      logged):
    set_counts(monkeypatch, Market1501, MARKET_FIXTURE_COUNTS)
    os.remove(osp.join(market_root, 'query', '0010_c2s1_000002_00.jpg'))
    ds = Market1501(market_root, split='test')
    assert len(ds) == 5  # loads: a subset may be on purpose
    warnings = warnings_of(logged)
    assert len(warnings) == 1
    message = warnings[0]
    assert 'market1501' in message and "split 'test'" in message
    assert 'query images: expected 2, found 1' in message
    assert 'query ids: expected 2, found 1' in message
    assert 'query cams: expected 2, found 1' in message
    assert 'gallery' not in message.split('differs')[1].split('.')[0]


def test_real_counts_flag_a_tiny_market_tree(market_root, logged):
    Market1501(market_root, split='train')
    assert len(warnings_of(logged)) == 1
    assert 'train images: expected 12936, found 4' in warnings_of(logged)[0]


def test_sysu_without_cam3_warns(tmp_path, monkeypatch, logged):
    root = str(tmp_path / 'SYSU-MM01')
    make_sysu(root)
    counts = dict(SYSUMM01.MODE_COUNTS)
    counts['all'] = dict(
        train=dict(ids=3, images=9, cams=6),
        query=dict(ids=2, images=4, cams=2),
        gallery=dict(ids=2, images=7, cams=4))
    monkeypatch.setattr(SYSUMM01, 'MODE_COUNTS', counts)
    SYSUMM01(root, split='test')
    assert warnings_of(logged) == []
    for name in os.listdir(osp.join(root, 'cam3', '0005')):
        os.remove(osp.join(root, 'cam3', '0005', name))
    os.rmdir(osp.join(root, 'cam3', '0005'))
    SYSUMM01(root, split='test')
    (message, ) = warnings_of(logged)
    assert 'sysu-mm01-all' in message
    assert 'query images: expected 4, found 2' in message
    assert 'query cams: expected 2, found 1' in message


def test_empty_training_split_names_dataset_and_path(market_root):  # noqa
    folder = osp.join(market_root, 'bounding_box_train')
    for name in os.listdir(folder):
        os.remove(osp.join(folder, name))
    with pytest.raises(DatasetLayoutError) as info:
        Market1501(market_root, split='train')
    assert 'market1501: the training split is empty' in str(info.value)
    assert market_root in str(info.value)


def test_empty_query_is_an_error(market_root):
    folder = osp.join(market_root, 'query')
    for name in os.listdir(folder):
        os.remove(osp.join(folder, name))
    with pytest.raises(DatasetLayoutError, match='no query image'):
        Market1501(market_root, split='test')


def test_appledouble_files_are_skipped(market_root):
    touch(
        osp.join(market_root, 'bounding_box_train'),
        '._0002_c1s1_000451_03.jpg', '._Thumbs.db')
    ds = Market1501(market_root, split='train')
    assert len(ds) == 4


def test_zero_byte_image_names_the_file(tmp_path):
    path = str(tmp_path / '0002_c1s1_000451_03.jpg')
    open(path, 'wb').close()
    with pytest.raises(OSError, match='0002_c1s1_000451_03.jpg.*empty'):
        ReIDLoadImageFromFile()(dict(img_path=path))


def test_missing_prid_image_named_at_its_real_path(tmp_path):
    root = make_prid(tmp_path)
    path = osp.join(root, 'prid_2011', 'single_shot', 'cam_b',
                    'person_0700.png')
    os.remove(path)
    with pytest.raises(DatasetLayoutError) as info:
        PRID2011(root, split='test')
    assert repr(path) in str(info.value)


def test_ilids_with_a_deleted_image_is_an_error(tmp_path):
    root, _ = make_ilids(tmp_path)
    folder = osp.join(root, 'i-LIDS_Pedestrian', 'Persons')
    os.remove(osp.join(folder, sorted(os.listdir(folder))[40]))
    with pytest.raises(DatasetLayoutError, match='expected 476 images'):
        QMULiLIDS(root, split_index=0)


def test_msmt17_train_only_switch(tmp_path, logged):
    root = tmp_path / 'MSMT17_V1'
    root.mkdir()
    make_msmt17(root, 'V1')
    both = MSMT17(str(root), version='V1')
    train_only = MSMT17(str(root), version='V1', with_val=False)
    assert len(both) == 4 and len(train_only) == 3
    assert train_only.metainfo['with_val'] is False
    assert train_only.published_counts()['train']['images'] == 30248
    assert both.published_counts()['train']['images'] == 32621
    with pytest.raises(TypeError, match='with_val'):
        MSMT17(str(root), version='V1', with_val='no')


def make_market(root):
    touch(osp.join(root, 'bounding_box_train'), '0002_c1s1_000451_03.jpg')
    touch(osp.join(root, 'query'), '0002_c2s1_000001_00.jpg')
    touch(osp.join(root, 'bounding_box_test'), '0002_c3s1_000003_01.jpg')


def test_alternative_layouts(tmp_path):
    # Market: data_root one level up.
    make_market(str(tmp_path / 'market' / 'Market-1501-v15.09.15'))
    ds = Market1501(str(tmp_path / 'market'))
    assert ds.data_root.endswith('Market-1501-v15.09.15')
    # CUHK03-NP one level deeper.
    for folder in ('bounding_box_train', 'query', 'bounding_box_test'):
        touch(tmp_path / 'c3' / 'cuhk03-np' / 'labeled' / folder,
              '0001_c1_1.png')
    ds = CUHK03NP(str(tmp_path / 'c3'), variant='labeled')
    assert ds.data_root.endswith('cuhk03-np')
    # CUHK02 (MetaBIN): P1..P5 directly under data_root.
    for pair in range(1, 6):
        for view in (1, 2):
            touch(tmp_path / 'c2' / f'P{pair}' / f'cam{view}', '001_1.png')
    assert CUHK02(str(tmp_path / 'c2')).num_pids == 5
    touch(tmp_path / 'c2' / 'Dataset' / 'P1' / 'cam1', '001_1.png')
    with pytest.raises(DatasetLayoutError, match='both Dataset/P1 and P1'):
        CUHK02(str(tmp_path / 'c2'))
    # CUHK-SYSU (MetaBIN): cropped_image/ with its own names.
    touch(tmp_path / 'sysu' / 'cropped_image', 'p00001_n01_s00001_hard0.png',
          'p00001_n02_s00007_hard1.png', 'p00012_n01_s00002_hard0.png')
    ds = CUHKSYSU(str(tmp_path / 'sysu'))
    assert len(ds) == 3 and ds.num_pids == 2
    assert ds.published_counts() is None
    touch(tmp_path / 'sysu' / 'cropped_images', 'p1_s1.jpg')
    with pytest.raises(DatasetLayoutError, match='holds both'):
        CUHKSYSU(str(tmp_path / 'sysu'))
    # QMUL-iLIDS (MetaBIN): images/ under the QMUL-iLIDS folder.
    root, _ = make_ilids(tmp_path / 'ilids')
    os.rename(
        osp.join(root, 'i-LIDS_Pedestrian', 'Persons'),
        osp.join(root, 'images'))
    ds = QMULiLIDS(root, split_index=1)
    assert len(ds) == 120
    assert all('/images/' in ds.get_data_info(i)['img_path']
               for i in range(len(ds)))


def test_wrong_layout_error_names_the_accepted_layouts(tmp_path):
    with pytest.raises(DatasetLayoutError, match='MetaBIN'):
        CUHK02(str(tmp_path))
    with pytest.raises(DatasetLayoutError, match='cropped_image/'):
        CUHKSYSU(str(tmp_path))
    with pytest.raises(DatasetLayoutError, match='Market-1501-v15.09.15'):
        Market1501(str(tmp_path))


def test_summary_table_logged_once_per_dataset(market_root, logged):
    Market1501(market_root, split='test')
    tables = [m for level, m in logged if 'dataset summary' in m]
    assert len(tables) == 1
    rows = [[c.strip() for c in line.split('|')]
            for line in tables[0].splitlines()[1:]]
    assert rows[0] == [
        'dataset', 'split', 'role', 'ids', 'images', 'cams', 'modalities'
    ]
    assert rows[2] == ['market1501', 'test', 'query', '2', '2', '2', 'vis']
    # Junk dropped, distractor pid 0 counted as one id.
    assert rows[3] == ['market1501', 'test', 'gallery', '4', '4', '3', 'vis']


def test_concat_logs_one_table_for_its_sources(market_root, tmp_path, logged):
    sysu = str(tmp_path / 'SYSU-MM01')
    make_sysu(sysu)
    ConcatReIDDataset([
        dict(type='Market1501', data_root=market_root),
        dict(type='SYSUMM01', data_root=sysu),
    ])
    tables = [m for level, m in logged if 'dataset summary' in m]
    assert len(tables) == 1 and 'ConcatReIDDataset' in tables[0]
    lines = tables[0].splitlines()
    sysu_row = [c.strip() for c in lines[4].split('|')]
    # Ids 3, 7 (train) and 12 (val): 4 visible + 4 infrared images from
    # cams 1, 2, 3, 4, 6 (see test_sysu_mm01.IMAGES).
    assert sysu_row == [
        'sysu-mm01', 'train', 'train', '3', '8', '5', 'vis:4 ir:4'
    ]
    total = [c.strip() for c in lines[5].split('|')]
    assert total == ['total', 'train', 'train', '6', '12', '9', 'vis:8 ir:4']


def test_count_helpers_match_a_naive_count():
    rng = np.random.default_rng(0)
    records = [
        dict(
            pid=int(rng.integers(5)),
            camid=int(rng.integers(3)),
            modality=int(rng.integers(2)),
            role=['train', 'query', 'gallery'][int(rng.integers(3))])
        for _ in range(50)
    ]
    counts = summary_module.count_roles(records)
    for role, c in counts.items():
        part = [r for r in records if r['role'] == role]
        assert c['images'] == len(part)
        assert c['ids'] == len({r['pid'] for r in part})
        assert c['cams'] == len({r['camid'] for r in part})
        assert sum(c['modalities'].values()) == len(part)
    assert list(counts) == [
        r for r in ('train', 'query', 'gallery') if r in counts
    ]


def test_summary_row_puts_each_count_in_its_column():
    """The start-up table is read against the published protocol: ids,
    images and cams each under their own header (a fixture where ids and
    images are equal cannot tell them apart)."""
    counts = summary_module.count_roles([
        dict(pid=1, camid=0, role='query'),
        dict(pid=1, camid=1, role='query'),
        dict(pid=1, camid=1, role='query'),
        dict(pid=2, camid=1, role='query', modality=1),
    ])
    rows = summary_module.summary_rows('market1501', 'test', counts)
    assert rows == [('market1501', 'test', 'query', 2, 4, 2, 'vis:3 ir:1')]
    header = summary_module.SUMMARY_HEADER
    assert dict(zip(header[3:6], rows[0][3:6])) == dict(
        ids=2, images=4, cams=2)


def test_compare_counts_flags_a_larger_and_a_missing_role():
    """A difference either way is a difference (a copy with extra images
    is as wrong as one missing some), and a published role that was not
    loaded at all counts as empty: it is never skipped."""
    published = dict(
        query=dict(ids=2, images=3, cams=2, verified=True),
        gallery=dict(ids=4, images=5, cams=3, verified=True))
    found = dict(query=dict(ids=2, images=4, cams=2))
    assert summary_module.compare_counts(published, found) == [
        ('query', 'images', 3, 4),
        ('gallery', 'ids', 4, 0),
        ('gallery', 'images', 5, 0),
        ('gallery', 'cams', 3, 0),
    ]
    # A key left out of the published counts is not compared.
    assert summary_module.compare_counts(
        dict(query=dict(images=4)), found) == []
