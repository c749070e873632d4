"""PRID2011, GRID, VIPeR and QMUL-iLIDS on fake trees in their exact
layouts (empty files: the parsers read names only)."""
import json
import os
import os.path as osp
import random
import re
import shutil

import pytest

from mmreid.datasets import GRID, PRID2011, QMULiLIDS, VIPeR
from mmreid.datasets.base_reid_dataset import DatasetLayoutError
from mmreid.datasets.small_dg import (SPLIT_DIR, load_grid_partitions,
                                      load_split_file, splits_checksum)
from ..fixtures.dataset_trees import (make_grid, make_ilids, make_prid,
                                      make_viper, viper_pid)
from ..fixtures.files import touch
from ..fixtures.processes import load_tool


def roles(dataset):
    out = dict(query=[], gallery=[], train=[])
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        out[info['role']].append(info)
    return out


def test_shipped_split_files_counts_and_checksums():
    prid = load_split_file(osp.join(SPLIT_DIR, 'prid2011.json'), 'prid2011')
    viper = load_split_file(osp.join(SPLIT_DIR, 'viper.json'), 'viper')
    ilids = load_split_file(osp.join(SPLIT_DIR, 'ilids.json'), 'ilids')
    for splits in (prid, viper, ilids):
        assert len(splits) == 10
        assert [s['seed'] for s in splits] == list(range(10))
    for s in prid:
        assert (len(s['query']), len(s['gallery'])) == (100, 649)
        assert set(s['test_ids']).isdisjoint(s['train_ids'])
        assert max(s['test_ids']) <= 200
    for s in viper:
        assert len(s['test_pairs']) == 316
        assert sorted(s['test_pairs'] + s['train_pairs']) == list(range(632))
    for s in ilids:
        assert (len(s['test_ids']), len(s['train_ids'])) == (60, 59)
    # The splits differ from each other.
    assert len({tuple(s['test_ids']) for s in prid}) == 10


def test_split_file_checksum_protects(tmp_path):
    with open(osp.join(SPLIT_DIR, 'viper.json')) as f:
        content = json.load(f)
    assert content['sha256'] == splits_checksum(content['splits'])
    content['splits'][0]['test_pairs'][0] += 1
    path = tmp_path / 'viper.json'
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match='checksum'):
        load_split_file(str(path), 'viper')
    with pytest.raises(ValueError, match="'viper', expected 'ilids'"):
        content['sha256'] = splits_checksum(content['splits'])
        path.write_text(json.dumps(content))
        load_split_file(str(path), 'ilids')
    with pytest.raises(FileNotFoundError, match='make_dg_splits'):
        load_split_file(str(tmp_path / 'none.json'), 'viper')


def test_prid2011(tmp_path):
    root = make_prid(tmp_path)
    splits = load_split_file(osp.join(SPLIT_DIR, 'prid2011.json'), 'prid2011')
    one = PRID2011(root, split='test', split_index=3)
    parts = roles(one)
    assert len(parts['query']) == 100 and len(parts['gallery']) == 649
    assert {r['camid'] for r in parts['query']} == {0}
    assert {r['camid'] for r in parts['gallery']} == {1}
    assert sorted(r['pid'] for r in parts['query']) == splits[3]['test_ids']
    gallery_pids = {r['pid'] for r in parts['gallery']}
    assert gallery_pids == set(splits[3]['test_ids']) | set(range(201, 750))
    # Query first, then gallery.
    assert [
        r['role']
        for r in (one.get_data_info(0), one.get_data_info(len(one) - 1))
    ] == ['query', 'gallery']
    assert one.metainfo['dg_splits'][0]['query'][0] == osp.join(
        root, 'prid_2011', 'single_shot', 'cam_a',
        f'person_{splits[3]["test_ids"][0]:04d}.png')

    every = PRID2011(root, split='test')
    parts = roles(every)
    union = set().union(*[s['test_ids'] for s in splits])
    assert {r['pid'] for r in parts['query']} == union
    assert len(parts['gallery']) == len(union) + 549
    assert len(every.metainfo['dg_splits']) == 10
    assert [len(s['gallery'])
            for s in every.metainfo['dg_splits']] == [649] * 10

    train = PRID2011(root, split='train', split_index=0)
    pids = train.get_pids()
    assert sorted(set(pids)) == list(range(100)) and len(pids) == 200


def test_prid2011_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match='cam_a'):
        PRID2011(str(tmp_path), split='test')
    root = make_prid(tmp_path)
    touch(osp.join(root, 'prid_2011', 'single_shot', 'cam_b'), 'person_x.png')
    with pytest.raises(ValueError, match='person_x.png'):
        PRID2011(root, split='test')
    with pytest.raises(ValueError, match='needs split_index'):
        PRID2011(root, split='train')
    with pytest.raises(ValueError, match='split_index'):
        PRID2011(root, split_index=10)
    # The metainfo names the split loaded (the identity-split leak check
    # reads it): another split_index there is refused, the same one kept.
    root = make_prid(tmp_path / 'clean')
    with pytest.raises(ValueError, match='metainfo split_index=3'):
        PRID2011(root, split_index=0, metainfo=dict(split_index=3))
    assert PRID2011(
        root, split_index=0,
        metainfo=dict(split_index=0)).metainfo['split_index'] == 0


def edited_prid_split_file(tmp_path, edit):
    """A copy of the shipped PRID2011 split file changed by ``edit`` (a
    function of its splits), with its checksum recomputed: only the
    protocol checks stand between it and the printed numbers."""
    with open(osp.join(SPLIT_DIR, 'prid2011.json'), encoding='utf-8') as f:
        content = json.load(f)
    content['splits'] = edit(content['splits'])
    content['sha256'] = splits_checksum(content['splits'])
    path = tmp_path / 'prid2011_edited.json'
    path.write_text(json.dumps(content))
    return str(path)


def test_prid2011_split_file_with_fewer_splits_is_refused(tmp_path):
    """The protocol is the mean over 10 trials: a split file of 3 splits
    would print the mean over 3 (with split_index=None)."""
    root = make_prid(tmp_path / 'prid')
    path = edited_prid_split_file(tmp_path, lambda splits: splits[:3])
    for split_index in (None, 0):
        with pytest.raises(
                ValueError,
                match=f'^PRID2011: {re.escape(path)} holds 3 splits, '
                'expected 10$'):
            PRID2011(root, split_index=split_index, split_file=path)


def test_prid2011_split_file_with_more_splits_is_refused(tmp_path):
    """The protocol is the mean over 10 splits (datasets spec 3.5): a
    split file of 11 would print the mean over 11 (split_index=None), as
    GRID refuses an eleventh partition."""
    root = make_prid(tmp_path / 'prid')
    path = edited_prid_split_file(tmp_path,
                                  lambda splits: splits + splits[:1])
    for split_index in (None, 0):
        with pytest.raises(
                ValueError,
                match=f'^PRID2011: {re.escape(path)} holds 11 splits, '
                'expected 10$'):
            PRID2011(root, split_index=split_index, split_file=path)


def test_prid2011_split_of_the_wrong_size_is_refused(tmp_path):
    """Split 0 with 99 queries (the protocol: 100 query and 649 gallery
    images per split) is refused, not evaluated."""
    root = make_prid(tmp_path / 'prid')

    def drop_a_query(splits):
        splits[0]['query'] = splits[0]['query'][:-1]
        return splits

    path = edited_prid_split_file(tmp_path, drop_a_query)
    with pytest.raises(
            ValueError,
            match='^PRID2011: split 0 has 99 query images, expected 100$'):
        PRID2011(root, split_index=0, split_file=path)


def test_prid2011_missing_image(tmp_path):
    root = make_prid(tmp_path)
    os.remove(
        osp.join(root, 'prid_2011', 'single_shot', 'cam_b', 'person_0700.png'))
    with pytest.raises(DatasetLayoutError, match='person_0700.png'):
        PRID2011(root, split='test')


def test_viper(tmp_path):
    root = make_viper(tmp_path)
    splits = load_split_file(osp.join(SPLIT_DIR, 'viper.json'), 'viper')
    one = VIPeR(root, split='test', split_index=0)
    parts = roles(one)
    assert len(parts['query']) == 316 and len(parts['gallery']) == 316
    assert sorted(r['pid'] for r in parts['query']) == [
        viper_pid(i) for i in splits[0]['test_pairs']
    ]
    assert {r['pid']
            for r in parts['query']} == {r['pid']
                                         for r in parts['gallery']}
    assert {r['camid'] for r in parts['query']} == {0}
    assert {r['camid'] for r in parts['gallery']} == {1}
    every = VIPeR(root)
    union = set().union(*[s['test_pairs'] for s in splits])
    assert len(every) == 2 * len(union)
    train = VIPeR(root, split='train', split_index=0)
    assert len(train) == 632 and train.num_pids == 316


def test_viper_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match='cam_a'):
        VIPeR(str(tmp_path))
    root = make_viper(tmp_path)
    touch(osp.join(root, 'VIPeR', 'cam_a'), '999_0.bmp')
    with pytest.raises(DatasetLayoutError, match='632'):
        VIPeR(root)
    shutil.rmtree(osp.join(root, 'VIPeR'))
    touch(
        osp.join(root, 'VIPeR', 'cam_a'),
        *[f'{i:03d}_45.bmp' for i in range(632)])
    touch(
        osp.join(root, 'VIPeR', 'cam_b'),
        *[f'{i + 1:03d}_90.bmp' for i in range(632)])
    with pytest.raises(ValueError, match='different pids'):
        VIPeR(root)


def test_ilids(tmp_path):
    root, num_images = make_ilids(tmp_path)
    one = QMULiLIDS(root, split_index=2)
    parts = roles(one)
    assert len(parts['query']) == 60 and len(parts['gallery']) == 60
    q = {r['pid']: r['img_path'] for r in parts['query']}
    g = {r['pid']: r['img_path'] for r in parts['gallery']}
    assert set(q) == set(g)
    assert all(q[pid] != g[pid] for pid in q)  # the *other* image
    assert {r['camid'] for r in parts['query']} == {0}
    assert {r['camid'] for r in parts['gallery']} == {1}
    splits = load_split_file(osp.join(SPLIT_DIR, 'ilids.json'), 'ilids')
    assert sorted(q) == [pos + 1 for pos in splits[2]['test_ids']]
    # The same tree gives the same images every time.
    again = roles(QMULiLIDS(root, split_index=2))
    assert [r['img_path'] for r in again['query']
            ] == [r['img_path'] for r in parts['query']]
    every = QMULiLIDS(root)
    meta = every.metainfo['dg_splits']
    assert len(meta) == 10 and all(len(s['query']) == 60 for s in meta)
    # An image may be a query in one split and a gallery image in another.
    all_q = {p for s in meta for p in s['query']}
    all_g = {p for s in meta for p in s['gallery']}
    assert len(every) == len(all_q) + len(all_g)
    train = QMULiLIDS(root, split='train', split_index=2)
    assert train.num_pids == 59


@pytest.mark.parametrize('split_index', [0, 2])
def test_ilids_draws_pick_the_documented_images(tmp_path, split_index):
    """The query of a test id is its image ``query_draw % n`` and the
    gallery image ``gallery_draw % (n - 1)`` of the remaining ones, with
    the id's n images sorted by name (QMULiLIDS docstring, datasets spec
    3.4). The draws are read from the shipped file directly."""
    root, _ = make_ilids(tmp_path)
    with open(osp.join(SPLIT_DIR, 'ilids.json'), encoding='utf-8') as f:
        split = json.load(f)['splits'][split_index]
    names = sorted(os.listdir(osp.join(root, 'i-LIDS_Pedestrian', 'Persons')))
    by_pid = {}
    for name in names:
        by_pid.setdefault(int(name[:4]), []).append(name)
    pids = sorted(by_pid)
    expected_q, expected_g = [], []
    for pos, q_draw, g_draw in zip(split['test_ids'], split['query_draws'],
                                   split['gallery_draws']):
        images = by_pid[pids[pos]]
        query = images[q_draw % len(images)]
        rest = [n for n in images if n != query]
        expected_q.append(query)
        expected_g.append(rest[g_draw % len(rest)])
    parts = roles(QMULiLIDS(root, split_index=split_index))
    assert [osp.basename(r['img_path']) for r in parts['query']] == expected_q
    assert [osp.basename(r['img_path'])
            for r in parts['gallery']] == expected_g
    # The fixture's ids hold 2 to 6 images, so the draws are not trivial.
    assert {len(by_pid[pids[pos]]) for pos in split['test_ids']} >= {3, 5}


def test_ilids_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match='Persons'):
        QMULiLIDS(str(tmp_path))
    root, _ = make_ilids(tmp_path)
    touch(osp.join(root, 'i-LIDS_Pedestrian', 'Persons'), '0120001.jpg')
    with pytest.raises(DatasetLayoutError, match='119 identities'):
        QMULiLIDS(root)
    os.remove(osp.join(root, 'i-LIDS_Pedestrian', 'Persons', '0120001.jpg'))
    for name in os.listdir(osp.join(root, 'i-LIDS_Pedestrian', 'Persons')):
        if name.startswith('0007') and name != '0007001.jpg':
            os.remove(osp.join(root, 'i-LIDS_Pedestrian', 'Persons', name))
    with pytest.raises(ValueError, match='identity 7 has one image'):
        QMULiLIDS(root)


def test_grid(tmp_path):
    rng = random.Random(0)
    partitions = [sorted(rng.sample(range(1, 251), 125)) for _ in range(10)]
    root = make_grid(tmp_path, partitions)
    one = GRID(root, split_index=4)
    parts = roles(one)
    assert len(parts['query']) == 125 and len(parts['gallery']) == 900
    test_ids = set(range(1, 251)) - set(partitions[4])
    assert {r['pid'] for r in parts['query']} == test_ids
    assert {r['pid'] for r in parts['gallery']} == test_ids | {0}
    assert sum(r['pid'] == 0 for r in parts['gallery']) == 775
    assert {r['camid'] for r in parts['query']} == {0, 1, 2, 3}
    assigned = roles(GRID(root, split_index=4, assign_camids=True))
    assert {r['camid'] for r in assigned['gallery']} == {1}
    every = GRID(root)
    assert len(every.metainfo['dg_splits']) == 10
    train = GRID(root, split='train', split_index=4)
    assert train.num_pids == 125 and len(train) == 250


def test_grid_partitions_read_the_third_field_of_an_unnamed_struct(tmp_path):
    """In the release each ``trainIdxAll`` entry is a struct whose third
    field holds the 125 training ids (torchreid reads ``[0][0][2]``; the
    load_grid_partitions docstring). Fields not named like ``train*`` are
    taken by that position; here the first two hold the test ids, so
    another position would silently swap training and test ids."""
    import mat4py
    rng = random.Random(0)
    train = [sorted(rng.sample(range(1, 251), 125)) for _ in range(10)]
    test = [sorted(set(range(1, 251)) - set(ids)) for ids in train]
    path = str(tmp_path / 'features_and_partitions.mat')
    mat4py.savemat(
        path,
        dict(trainIdxAll=[
            dict(idxProbe=t, idxGallery=t, idxLearn=p)
            for p, t in zip(train, test)
        ]))
    assert load_grid_partitions(path) == train


def test_grid_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match='probe'):
        GRID(str(tmp_path))
    root = make_grid(tmp_path, [list(range(1, 126))] * 10)
    touch(osp.join(root, 'underground_reid', 'probe'), 'abc.jpeg')
    with pytest.raises(ValueError, match='abc.jpeg'):
        GRID(root)


@pytest.mark.parametrize(
    'first,expected',
    [
        (list(range(0, 125)), r'ids that are not integers in 1\.\.250 \[0\]'),
        # A fraction was truncated (1.5 read as 1) by the file reader.
        ([1.5] + list(range(2, 126)),
         r'ids that are not integers in 1\.\.250 \[1\.5\]'),
        (list(range(2, 127)), None),
        ([1] + list(range(1, 125)), r'repeated ids \[1\]'),
        (list(range(127,
                    252)), r'ids that are not integers in 1\.\.250 \[251\]'),
    ])
def test_grid_partition_ids_are_distinct_and_1_based(tmp_path, first,
                                                     expected):
    """A 0-based partition trained on the distractors (pid 0) and was
    refused only as "split 0 has 126 query images, expected 125". The
    split sizes stay the last guard: a probe image missing from the tree
    is refused by them."""
    root = make_grid(tmp_path, [first] + [list(range(1, 126))] * 9)
    if expected is None:
        assert len(GRID(root, split_index=0)) == 125 + 900
        # pid 1 is a test id of partition 0 only.
        os.remove(
            osp.join(root, 'underground_reid', 'probe',
                     '0001_2_25004_107_32_130_364.jpeg'))
        with pytest.raises(
                ValueError,
                match='^GRID: split 0 has 124 query images, expected 125$'):
            GRID(root, split_index=1)
        return
    with pytest.raises(
            ValueError, match='trainIdxAll partition 0 has ' + expected):
        GRID(root, split_index=1)


def test_dimn_config_datasets_build(tmp_path):
    """The DIMN base: five sources with offsets, four split targets."""
    from mmengine.config import Config

    from mmreid.datasets import ConcatReIDDataset
    from mmreid.registry import DATASETS
    from mmreid.utils import register_all_modules
    from ..fixtures.dataset_trees import fake_duke, fake_market, make_cuhk02
    register_all_modules()
    roots = dict(
        Market1501=str(tmp_path / 'market'),
        DukeMTMCReID=str(tmp_path / 'duke'),
        CUHK02=make_cuhk02(tmp_path / 'cuhk02'),
        CUHK03NP=str(tmp_path / 'cuhk03'),
        CUHKSYSU=str(tmp_path / 'sysu'),
        PRID2011=make_prid(tmp_path / 'prid'),
        VIPeR=make_viper(tmp_path / 'viper'),
        QMULiLIDS=make_ilids(tmp_path / 'ilids')[0],
        GRID=make_grid(tmp_path / 'grid', [list(range(1, 126))] * 10))
    fake_market(roots['Market1501'])
    fake_duke(roots['DukeMTMCReID'])
    cuhk03 = osp.join(roots['CUHK03NP'], 'detected')
    touch(osp.join(cuhk03, 'bounding_box_train'), '0001_c1_1.png')
    touch(osp.join(cuhk03, 'query'), '0002_c1_1.png')
    touch(osp.join(cuhk03, 'bounding_box_test'), '0002_c2_1.png')
    touch(osp.join(roots['CUHKSYSU'], 'cropped_images'), 'p1_s1.jpg')

    def redirect(cfg):
        if isinstance(cfg, dict):
            if cfg.get('type') in roots:
                cfg['data_root'] = roots[cfg['type']]
            for value in cfg.values():
                redirect(value)
        elif isinstance(cfg, list):
            for value in cfg:
                redirect(value)

    cfg = Config.fromfile(
        osp.join(
            osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
            'configs', 'baseline', 'bot_r50_1xb64-120e_dimn-protocol.py'))
    assert cfg.model.head.num_classes == 18530
    assert cfg.test_cfg.aggregate_prefix == 'dg'
    train_cfg = cfg.train_dataloader.dataset.to_dict()
    redirect(train_cfg)
    train = DATASETS.build(train_cfg)
    assert isinstance(train, ConcatReIDDataset)
    sources = train.metainfo['sources']
    assert [s['name'] for s in sources] == [
        'market1501', 'dukemtmc', 'cuhk02', 'cuhk03-np-detected', 'cuhk-sysu'
    ]
    assert [s['split_used']
            for s in sources] == ['all', 'all', 'train', 'all', 'train']
    names = []
    for target in cfg.test_cfg.targets:
        dataset_cfg = target['dataloader']['dataset'].to_dict()
        redirect(dataset_cfg)
        dataset = DATASETS.build(dataset_cfg)
        assert len(dataset.metainfo['dg_splits']) == 10
        assert target['evaluator']['type'] == 'DGSplitMetric'
        names.append(target['name'])
    assert names == ['prid', 'grid', 'viper', 'ilids']


def test_grid_camera_out_of_range_names_the_file(tmp_path):
    # GRID has cameras 1..8: camera 0 used to become camid -1 and camera
    # 12 camid 11, with or without assign_camids.
    root = make_grid(tmp_path, [list(range(1, 126))] * 10)
    cases = [('probe', '0', False), ('probe', '12', True),
             ('gallery', '9', False), ('gallery', '00', True)]
    for folder, cam, assign_camids in cases:
        base = osp.join(root, 'underground_reid', folder)
        old = sorted(n for n in os.listdir(base) if n.startswith('0200_'))[0]
        new = f'0200_{cam}_25004_107_32_130_364.jpeg'
        os.rename(osp.join(base, old), osp.join(base, new))
        with pytest.raises(ValueError, match=f'1..8.*{new}'):
            GRID(root, split_index=0, assign_camids=assign_camids)
        os.rename(osp.join(base, new), osp.join(base, old))
    GRID(root, split_index=0)  # cameras 1..8 parse


@pytest.mark.parametrize('name', ['prid', 'viper'])
def test_a_split_trains_on_the_ids_it_does_not_test(tmp_path, name):
    """PRID2011 trains a split on the other 100 of ids 1-200, VIPeR on the
    other 316 pairs, both cameras (datasets spec 3.1, 3.3). Training on
    the split's test ids gives the same counts, so only the ids tell: the
    model would be tested on the people it trained on."""
    if name == 'prid':
        cls, root = PRID2011, make_prid(tmp_path)
        all_ids = set(range(1, 201))
    else:
        cls, root = VIPeR, make_viper(tmp_path)
        all_ids = {viper_pid(i) for i in range(632)}
    for index in (0, 5):
        query = roles(cls(root, split_index=index))['query']
        test_ids = {r['pid'] for r in query}
        train = roles(cls(root, split='train', split_index=index))['train']
        train_ids = {r['orig_pid'] for r in train}
        assert train_ids.isdisjoint(test_ids)
        assert train_ids | test_ids == all_ids
        assert sorted((r['orig_pid'], r['camid']) for r in train) == sorted(
            (pid, camid) for pid in train_ids for camid in (0, 1))


def test_one_split_publishes_the_counts_it_loads(tmp_path):
    """tools/misc/verify_dataset.py checks one split against its published
    counts: PRID2011's 100 / 649 images and ids (evaluation spec 6.1), and
    GRID's 125 / 900 images with 126 gallery ids (the 125 test ids and the
    distractor pid 0), unverified (datasets spec 3.2). A wrong number would
    flag every good copy; a wrong flag would turn a warning into an error
    or hide one."""
    tool = load_tool(osp.join('tools', 'misc', 'verify_dataset.py'))
    grid = GRID(
        make_grid(tmp_path / 'grid', [list(range(1, 126))] * 10),
        split_index=2)
    prid = PRID2011(make_prid(tmp_path / 'prid'), split_index=2)
    for dataset, cell in ((grid, 'ok (unverified)'), (prid, 'ok')):
        rows = tool.summarize('test', dataset)
        assert [row['role'] for row in rows] == ['query', 'gallery']
        assert [tool.compare(row) for row in rows] == [(cell, [], [])] * 2
    assert grid.published_counts()['gallery'] == dict(
        images=900, ids=126, verified=False)


def test_ilids_root_with_both_image_folders_is_refused(tmp_path):
    """QMUL-iLIDS reads i-LIDS_Pedestrian/Persons/ (the release) or
    images/ (MetaBIN); a root holding both is refused (QMULiLIDS
    docstring) rather than silently reading one of two copies that may
    differ."""
    root, _ = make_ilids(tmp_path)
    shutil.copytree(
        osp.join(root, 'i-LIDS_Pedestrian', 'Persons'),
        osp.join(root, 'images'))
    with pytest.raises(DatasetLayoutError, match='holds both'):
        QMULiLIDS(root, split_index=0)


def grid_partition_file(tmp_path, entry):
    """A features_and_partitions.mat whose ten trainIdxAll entries are
    ``entry(train_ids, test_ids)``; returns the path and the train ids."""
    import mat4py
    rng = random.Random(0)
    train = [sorted(rng.sample(range(1, 251), 125)) for _ in range(10)]
    path = str(tmp_path / 'features_and_partitions.mat')
    mat4py.savemat(
        path,
        dict(trainIdxAll=[
            entry(ids, sorted(set(range(1, 251)) - set(ids)))
            for ids in train
        ]))
    return path, train


def test_grid_partitions_prefer_the_field_named_train(tmp_path):
    """A trainIdxAll struct with a field named like ``train`` is read from
    that field wherever it is (load_grid_partitions); the third field is
    only the fallback. Here the third field holds the test ids: reading it
    would swap training and test ids."""
    path, train = grid_partition_file(
        tmp_path, lambda train_ids, test_ids: dict(
            idxTrain=train_ids, idxProbe=test_ids, idxGallery=test_ids))
    assert load_grid_partitions(path) == train


def test_grid_partition_with_two_candidate_vectors_is_refused(tmp_path):
    """An entry with two unnamed vectors of 125 ids (no ``train`` field,
    no third field) is ambiguous: refused, not read from the first
    vector, which may be the test ids."""
    path, _ = grid_partition_file(
        tmp_path, lambda train_ids, test_ids: dict(
            idxA=test_ids, idxB=train_ids))
    with pytest.raises(ValueError, match='cannot find one vector of 125'):
        load_grid_partitions(path)


def test_grid_with_eleven_partitions_is_refused(tmp_path):
    """GRID's protocol is the mean over its ten official partitions: a
    file with an eleventh would print the mean over eleven."""
    root = make_grid(tmp_path, [list(range(1, 126))] * 11)
    with pytest.raises(
            ValueError, match='trainIdxAll has 11 partitions, expected 10$'):
        GRID(root)


def test_grid_split_file_overrides_the_shipped_partitions(tmp_path):
    """``split_file`` names another features_and_partitions.mat
    (SplitReIDDataset's ``split_file``): its partitions are the ones
    evaluated, not silently the copy under underground_reid/."""
    root = make_grid(tmp_path / 'grid', [list(range(1, 126))] * 10)
    path, train = grid_partition_file(
        tmp_path, lambda train_ids, test_ids: dict(
            idxProbe=test_ids, idxGallery=test_ids, idxTrain=train_ids))
    query = roles(GRID(root, split_index=3, split_file=path))['query']
    assert {r['pid'] for r in query} == set(range(1, 251)) - set(train[3])
