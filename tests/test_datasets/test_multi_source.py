import os.path as osp

import pytest
from mmengine.dataset import BaseDataset

from mmreid.datasets import ConcatReIDDataset
from mmreid.registry import DATASETS
from ..fixtures.dataset_trees import (MSMT17_TEST, fake_cuhk03, fake_duke,
                                      make_msmt17, make_prid, make_source)
from ..fixtures.files import touch


def test_offsets_keep_identities_and_cameras_apart(tmp_path):
    a = make_source(tmp_path / 'a', pids=[5, 9], cams=[1, 2])
    b = make_source(tmp_path / 'b', pids=[5, 7, 11], cams=[1, 2, 3])
    ds = ConcatReIDDataset(datasets=[a, b])
    records = [ds.get_data_info(i) for i in range(len(ds))]
    assert len(records) == 4 + 9
    pids_a = {r['pid'] for r in records if r['dsetid'] == 0}
    pids_b = {r['pid'] for r in records if r['dsetid'] == 1}
    # Original pid 5 exists in both sources: two different classes.
    assert pids_a == {0, 1} and pids_b == {2, 3, 4}
    cams_b = {r['camid'] for r in records if r['dsetid'] == 1}
    assert cams_b == {2, 3, 4}
    assert ds.num_pids == 5
    assert ds.metainfo['sources'][1]['pid_offset'] == 2
    assert ds.metainfo['sources'][1]['num_pids'] == 3
    assert ds.get_pids() == [r['pid'] for r in records]


def test_a_test_split_is_refused(tmp_path):
    a = make_source(tmp_path / 'a', pids=[5, 9], cams=[1, 2])
    test_split = dict(a, split='test')
    with pytest.raises(ValueError, match='training split'):
        ConcatReIDDataset(datasets=[test_split])
    with pytest.raises(ValueError, match='at least one'):
        ConcatReIDDataset(datasets=[])


def test_a_test_split_with_labels_0_to_n_is_refused(tmp_path):
    # MSMT17's test labels are 0..n-1 like a train split's: only the
    # records' role tells them apart.
    folder = tmp_path / 'msmt17' / 'MSMT17_V1'
    folder.mkdir(parents=True)
    root = make_msmt17(folder)
    gallery = [line for line in MSMT17_TEST['list_gallery.txt'] if line[1] < 2]
    (folder / 'list_gallery.txt').write_text(''.join(f'{path} {pid}\n'
                                                     for path, pid in gallery))
    msmt_test = dict(type='MSMT17', data_root=root, version='V1', split='test')
    test_split = DATASETS.build(msmt_test)
    assert sorted(
        {test_split.get_data_info(i)['pid']
         for i in range(len(test_split))}) == [0, 1]
    with pytest.raises(
            ValueError,
            match=r"source 0 \(MSMT17\) must be a training split.*role "
            r"'query'.*combine_all=True"):
        ConcatReIDDataset(datasets=[msmt_test])
    # Also as the train entry of a combine-all source, and by name.
    with pytest.raises(ValueError, match='must be a training split'):
        ConcatReIDDataset(datasets=[dict(dataset=msmt_test, combine_all=True)])
    with pytest.raises(ValueError, match='must be a training split'):
        ConcatReIDDataset(
            sources=[dict(type='MSMT17', version='V1', split='test')],
            data_root=str(tmp_path),
            combine_all=False)


def test_a_source_with_its_own_pipeline_is_refused(tmp_path):
    source = make_source(tmp_path / 'a', pids=[5, 9], cams=[1, 2])
    pipeline = [dict(type='ReIDResize', size=(32, 16))]
    with pytest.raises(
            ValueError,
            match=r'source 0 \(Market1501, its train split\) has a pipeline'
            r'.*ReIDResize.*ConcatReIDDataset\(pipeline=\.\.\.\)'):
        ConcatReIDDataset(datasets=[dict(source, pipeline=pipeline)])
    # The test split of a combine-all source: not silently replaced.
    with pytest.raises(ValueError, match='its test split'):
        ConcatReIDDataset(datasets=[
            dict(
                dataset=source,
                combine_all=True,
                test_dataset=dict(source, split='test', pipeline=pipeline))
        ])
    built = DATASETS.build(dict(source, pipeline=pipeline))
    with pytest.raises(ValueError, match='pipeline of its own'):
        ConcatReIDDataset(datasets=[built])
    # An empty pipeline is no pipeline.
    assert ConcatReIDDataset(datasets=[dict(source, pipeline=[])]).num_pids \
        == 2


@pytest.mark.parametrize('combine_all', [False, True])
def test_the_same_dataset_twice_is_refused(tmp_path, combine_all):
    make_source(tmp_path / 'market1501', pids=[5, 9], cams=[1, 2])
    with pytest.raises(
            ValueError,
            match=r'sources\[0\] and sources\[1\] are the same dataset '
            r'\(Market1501'):
        ConcatReIDDataset(
            sources=['Market1501',
                     dict(type='Market1501', split='train')],
            data_root=str(tmp_path),
            combine_all=combine_all)
    # The same through datasets=, a trailing slash making no difference.
    market = dict(type='Market1501', data_root=str(tmp_path / 'market1501'))
    with pytest.raises(ValueError, match=r'datasets\[0\] and datasets\[1\]'):
        ConcatReIDDataset(datasets=[
            market,
            dict(
                dataset=dict(market, data_root=market['data_root'] + '/'),
                combine_all=combine_all)
        ])
    # Both CUHK03-NP variants are other images: accepted.
    fake_cuhk03(str(tmp_path / 'cuhk03-np'))
    ds = ConcatReIDDataset(
        sources=[
            dict(type='CUHK03NP', variant='labeled'),
            dict(type='CUHK03NP', variant='detected')
        ],
        data_root=str(tmp_path),
        combine_all=combine_all)
    assert [s['name'] for s in ds.metainfo['sources']
            ] == ['cuhk03-np-labeled', 'cuhk03-np-detected']


def test_sources_record_their_identity_split(tmp_path):
    root = make_prid(str(tmp_path / 'prid'))
    ds = ConcatReIDDataset(datasets=[
        dict(type='PRID2011', data_root=root, split='train', split_index=3),
        make_source(tmp_path / 'm', pids=[1, 2], cams=[1, 2]),
    ])
    sources = ds.metainfo['sources']
    assert sources[0]['name'] == 'prid2011'
    assert sources[0]['split_index'] == 3
    # A source without one gets no key (older checkpoints compare equal).
    assert 'split_index' not in sources[1] and 'trial' not in sources[1]


def make_market_with_test(root):
    """Train pids 3, 8; test: pid 8 in query and gallery, gallery-only pid
    12, a distractor (pid 0) and junk (pid -1)."""
    touch(root / 'bounding_box_train', '0003_c1s1_000001_01.jpg',
          '0008_c2s1_000001_01.jpg')
    touch(root / 'query', '0008_c1s1_000002_01.jpg')
    touch(root / 'bounding_box_test', '0008_c3s1_000002_01.jpg',
          '0012_c4s1_000002_01.jpg', '0000_c1s1_000003_01.jpg',
          '-1_c2s1_000004_01.jpg')
    return dict(type='Market1501', data_root=str(root))


def test_combine_all_namespaces_test_labels_apart(tmp_path):
    msmt_root = tmp_path / 'MSMT17_V1'
    msmt_root.mkdir()
    msmt = dict(type='MSMT17', data_root=make_msmt17(msmt_root), version='V1')
    market = make_market_with_test(tmp_path / 'market')
    ds = ConcatReIDDataset(datasets=[
        dict(dataset=msmt, combine_all=True),
        dict(dataset=market, combine_all=True),
        make_source(tmp_path / 'c', pids=[1, 2], cams=[1]),
    ])
    records = [ds.get_data_info(i) for i in range(len(ds))]
    sources = ds.metainfo['sources']

    # MSMT17: train list pids {0, 2, 5} -> 0..2; test pids {0, 1, 9} reuse
    # train's integers but are other people -> 3..5 in sorted order.
    msmt_records = [r for r in records if r['dsetid'] == 0]
    assert len(msmt_records) == 4 + 5
    assert {r['pid']
            for r in msmt_records} == set(range(6))  # n_train + n_test
    by_name = {osp.basename(r['img_path']): r for r in msmt_records}
    assert by_name['0000_000_01_0303morning_0015_0.jpg']['pid'] == 0
    assert by_name['0000_000_04_0113morning_0002_0.jpg']['pid'] == 3
    assert by_name['0001_000_02_0113morning_0001_0.jpg']['pid'] == 4
    assert by_name['0009_000_10_0113noon_0005_0.jpg']['pid'] == 5
    assert by_name['0009_000_10_0113noon_0005_0.jpg']['source_role'] == \
        'gallery'
    assert all(r['role'] == 'train' for r in records)
    assert sources[0]['split_used'] == 'all'
    assert sources[0]['version'] == 'V1'
    assert (sources[0]['num_train_pids'], sources[0]['num_test_pids'],
            sources[0]['num_pids']) == (3, 3, 6)
    assert (sources[0]['num_train_images'],
            sources[0]['num_test_images']) == (4, 5)
    # One camid namespace per dataset: train and test cameras 1..15.
    assert sources[0]['num_cams'] == 15

    # Market: distractor and junk excluded, gallery-only pid 12 included.
    market_records = [r for r in records if r['dsetid'] == 1]
    assert len(market_records) == 2 + 3
    assert sources[1]['pid_offset'] == 6
    assert {r['pid'] for r in market_records} == {6, 7, 8, 9}
    names = {osp.basename(r['img_path']) for r in market_records}
    assert '0000_c1s1_000003_01.jpg' not in names
    assert '0012_c4s1_000002_01.jpg' in names
    assert (sources[1]['num_train_pids'], sources[1]['num_test_pids']) == \
        (2, 2)

    # The plain source uses its train split only.
    assert sources[2]['split_used'] == 'train'
    assert sources[2]['num_test_pids'] == 0
    assert sources[2]['pid_offset'] == 10 and ds.num_pids == 12

    # pid and camid ranges of the sources stay disjoint.
    for key, offset_key, count_key in (('pid', 'pid_offset', 'num_pids'),
                                       ('camid', 'camid_offset', 'num_cams')):
        for dsetid, source in enumerate(sources):
            values = {r[key] for r in records if r['dsetid'] == dsetid}
            low = source[offset_key]
            assert values <= set(range(low, low + source[count_key]))
    assert ds.num_pids == len({r['pid'] for r in records})
    assert ds.get_dsetids() == [r['dsetid'] for r in records]


def test_combine_all_source_errors(tmp_path):
    market = make_market_with_test(tmp_path / 'market')
    with pytest.raises(ValueError, match='unknown keys'):
        ConcatReIDDataset(datasets=[dict(dataset=market, combine=True)])
    with pytest.raises(ValueError, match='only used with combine_all'):
        ConcatReIDDataset(datasets=[dict(dataset=market, test_dataset=market)])
    built = DATASETS.build(market)
    with pytest.raises(ValueError, match='needs test_dataset'):
        ConcatReIDDataset(datasets=[dict(dataset=built, combine_all=True)])
    test_split = DATASETS.build(dict(market, split='test'))
    ds = ConcatReIDDataset(datasets=[
        dict(dataset=built, combine_all=True, test_dataset=test_split)
    ])
    assert ds.num_pids == 4
    assert ds.metainfo['sources'][0]['split_used'] == 'all'


class RawSource(BaseDataset):
    """Records straight from a list, with no ``role`` unless given: what a
    dataset class outside mmreid's gives, so only the pid checks of
    ConcatReIDDataset stand between it and the labels."""

    def __init__(self, pids, name, role=None):
        self._pids, self._name, self._role = pids, name, role
        super().__init__(ann_file='', lazy_init=True, serialize_data=False)

    def load_data_list(self):
        records = [
            dict(img_path=f'{self._name}_{i}.jpg', pid=pid, camid=0)
            for i, pid in enumerate(self._pids)
        ]
        if self._role is not None:
            for record in records:
                record['role'] = self._role
        return records


def test_a_source_whose_pids_are_not_0_to_n_is_refused():
    """Raw pids {0, 3} would give source 1 the offset 2, so its pid 1 would
    share label 3 with source 0's pid 3: two people, one class."""
    with pytest.raises(
            ValueError,
            match=r'^source 0 \(RawSource\) must be a training split with '
            r'pids 0..n-1, got pids \[0, 3\]$'):
        ConcatReIDDataset(
            datasets=[RawSource([0, 3], 'a'),
                      RawSource([0, 1], 'b')])
    both = ConcatReIDDataset(
        datasets=[RawSource([0, 1], 'a'),
                  RawSource([1, 0], 'b')])
    assert both.num_pids == 4
    assert sorted(both.get_data_info(i)['pid']
                  for i in range(len(both))) == [0, 1, 2, 3]


def test_combine_all_with_no_test_identity_is_refused():
    """A test split of junk only (pid -1) adds nothing: the source would
    say split_used='all' while training on its train split alone."""
    with pytest.raises(
            ValueError,
            match=r'^source 0 \(RawSource\): combine_all found no test '
            'identity'):
        ConcatReIDDataset(datasets=[
            dict(
                dataset=RawSource([0, 1], 'train', 'train'),
                combine_all=True,
                test_dataset=RawSource([-1, -1], 'query', 'query'))
        ])


def test_sources_get_disjoint_camera_ranges(tmp_path):
    """Source 1's cameras start after source 0's highest camera (a
    source's cameras need not all have training images), so no camid
    names two physical cameras."""
    a = make_source(tmp_path / 'a', pids=[5, 9], cams=[1, 3])
    b = make_source(tmp_path / 'b', pids=[5, 7], cams=[1, 2])
    ds = ConcatReIDDataset(datasets=[a, b])
    records = [ds.get_data_info(i) for i in range(len(ds))]
    cams = [{r['camid'] for r in records if r['dsetid'] == d} for d in (0, 1)]
    # Market camids are 0-based: a has cameras 0 and 2 of 0..2.
    assert cams == [{0, 2}, {3, 4}]
    assert [s['camid_offset'] for s in ds.metainfo['sources']] == [0, 3]
    assert ds.metainfo['num_cams'] == 5


def test_a_source_with_one_test_record_among_train_ones_is_refused():
    """Every record's role is checked, not the first one's."""

    class MixedRoles(RawSource):

        def load_data_list(self):
            records = super().load_data_list()
            for record, role in zip(records, ('train', 'query')):
                record['role'] = role
            return records

    with pytest.raises(
            ValueError,
            match=r"^source 0 \(MixedRoles\) must be a training split, but "
            r"1 of its records are not: 'a_1.jpg' has role 'query'"):
        ConcatReIDDataset(datasets=[MixedRoles([0, 1], 'a')])


def test_summary_has_a_row_per_source_role(tmp_path):
    market = make_market_with_test(tmp_path / 'market')
    ds = ConcatReIDDataset(datasets=[dict(dataset=market, combine_all=True)])
    rows = ds.summary_rows()
    # (split used, role, ids, images): train pids 3, 8; query pid 8;
    # gallery pids 8 and 12 (distractor and junk left out).
    counts = [row[1:5] for row in rows]
    assert counts == [('all', 'train', 2, 2), ('all', 'query', 1, 1),
                      ('all', 'gallery', 2, 2), ('train', 'train', 4, 5)]


def test_summary_rows_add_up_for_test_records_without_a_role():
    """A custom test split whose records carry no role trains under the
    source role 'test'; the summary shows it in a row of its own, so the
    source's rows add up to the total (they showed 1 of 3 images)."""
    train = [dict(img_path='train_0.jpg', pid=0, camid=0, role='train')]
    test = [
        dict(img_path='t/a.jpg', pid=7, camid=0),
        dict(img_path='t/b.jpg', pid=8, camid=1),
    ]
    ds = combined(train, test)
    rows = ds.summary_rows()
    assert [row[2:5] for row in rows] == [('train', 1, 1), ('test', 2, 2),
                                          ('train', 3, 3)]
    assert sum(row[4] for row in rows[:-1]) == rows[-1][4]


def test_the_same_folder_given_two_ways_is_refused(tmp_path):
    """Market-1501's data_root may be the archive folder or its parent:
    both read the same images, as does a symbolic link to it or the
    built dataset, so each pair would make every person two classes."""
    parent = tmp_path / 'market1501'
    archive = parent / 'Market-1501-v15.09.15'
    make_source(archive, pids=[5, 9], cams=[1, 2])
    link = tmp_path / 'market-link'
    link.symlink_to(archive)
    by_parent = dict(type='Market1501', data_root=str(parent))
    for other in (dict(by_parent, data_root=str(archive)),
                  dict(by_parent, data_root=str(link)),
                  dict(
                      dataset=dict(by_parent, data_root=str(archive)),
                      combine_all=True),
                  DATASETS.build(dict(by_parent, data_root=str(archive)))):
        with pytest.raises(
                ValueError,
                match=r'datasets\[0\] and datasets\[1\] are the same '
                r'dataset \(Market1501.*both reading '
                f"'{archive}'"):
            ConcatReIDDataset(datasets=[by_parent, other])
    # Another folder with the same names is another dataset.
    make_source(tmp_path / 'copy', pids=[5, 9], cams=[1, 2])
    ds = ConcatReIDDataset(datasets=[
        by_parent,
        dict(by_parent, data_root=str(tmp_path / 'copy'))
    ])
    assert ds.num_pids == 4


def test_a_nested_concat_source_is_refused(tmp_path):
    """A ConcatReIDDataset inside another would be recorded as one source
    named after its first, hiding a combine-all source from the
    identity-split leak check; its sources listed flat are each seen."""
    from mmreid.datasets.base_reid_dataset import identity_split_conflict
    fake_cuhk03(str(tmp_path / 'cuhk03-np'))
    inner = [
        make_source(tmp_path / 'market', pids=[5, 9], cams=[1, 2]),
        dict(
            dataset=dict(
                type='CUHK03NP',
                data_root=str(tmp_path / 'cuhk03-np'),
                variant='labeled'),
            combine_all=True)
    ]
    flat = ConcatReIDDataset(datasets=inner)
    assert identity_split_conflict(
        flat.metainfo, dict(dataset_name='cuhk03-np-labeled')) is not None
    nested = dict(type='ConcatReIDDataset', datasets=inner)
    for source in (nested, DATASETS.build(nested),
                   dict(dataset=nested, combine_all=False)):
        with pytest.raises(
                ValueError,
                match=r'source 0 is a ConcatReIDDataset.*List its datasets'):
            ConcatReIDDataset(datasets=[source])


def test_combine_all_test_split_of_another_dataset_is_refused(tmp_path):
    """Market's train split with Duke's test split would be recorded as
    market1501 'all' (evaluating Duke then not refused) with Duke's
    cameras in Market's camid range."""
    market = make_market_with_test(tmp_path / 'market')
    fake_duke(str(tmp_path / 'duke'))
    duke_test = dict(
        type='DukeMTMCReID', data_root=str(tmp_path / 'duke'), split='test')
    for test_dataset in (duke_test, DATASETS.build(duke_test)):
        with pytest.raises(
                ValueError,
                match=r'source 0: combine_all adds the test split of the '
                r'same dataset, but test_dataset is DukeMTMCReID '
                r'\(dukemtmc\) and the source is Market1501 \(market1501\)'):
            ConcatReIDDataset(datasets=[
                dict(
                    dataset=market,
                    combine_all=True,
                    test_dataset=test_dataset)
            ])
    # Another variant of the same class is another dataset too.
    fake_cuhk03(str(tmp_path / 'cuhk03-np'))
    cuhk03 = dict(
        type='CUHK03NP',
        data_root=str(tmp_path / 'cuhk03-np'),
        variant='labeled')
    with pytest.raises(ValueError, match=r'CUHK03NP \(cuhk03-np-detected\)'):
        ConcatReIDDataset(datasets=[
            dict(
                dataset=cuhk03,
                combine_all=True,
                test_dataset=dict(cuhk03, variant='detected', split='test'))
        ])


class ListedSource(BaseDataset):
    """Records as given (dicts of img_path, pid, camid, role)."""

    def __init__(self, records):
        self._records = records
        super().__init__(ann_file='', lazy_init=True, serialize_data=False)

    def load_data_list(self):
        return [dict(r) for r in self._records]


def combined(train, test):
    """One combine-all source of ``train`` records and ``test`` records."""
    return ConcatReIDDataset(datasets=[
        dict(
            dataset=ListedSource(train),
            combine_all=True,
            test_dataset=ListedSource(test))
    ])


def test_combine_all_trains_an_image_of_two_test_roles_once():
    """A test split may list an image as a query and as a gallery image
    (QMUL-iLIDS's union of splits, under camid 0 and 1): combine-all
    trained it twice, and counted it twice in the source's images. It is
    one training image; two pids on one image are refused."""
    train = [
        dict(img_path=f'train_{i}.jpg', pid=i, camid=0, role='train')
        for i in (0, 1)
    ]
    test = [
        dict(img_path='t/a.jpg', pid=7, camid=0, role='query'),
        dict(img_path='t/b.jpg', pid=8, camid=0, role='query'),
        dict(img_path='t/a.jpg', pid=7, camid=1, role='gallery'),
        dict(img_path='t/c.jpg', pid=8, camid=1, role='gallery'),
    ]
    ds = combined(train, test)
    paths = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    assert sorted(paths) == [
        't/a.jpg', 't/b.jpg', 't/c.jpg', 'train_0.jpg', 'train_1.jpg'
    ]
    assert ds.metainfo['sources'][0]['num_images'] == 5
    assert ds.num_pids == 4
    test[2]['pid'] = 8
    with pytest.raises(ValueError, match=r"'t/a.jpg'.*pid 7.*pid 8"):
        combined(train, test)


def test_sources_record_their_variant(tmp_path):
    """Spec 4.1 rule 4: each source records its version or variant, so a
    classifier row maps back to the CUHK03-NP labels (labeled or detected
    boxes) it was trained on; without it both read as CUHK03-NP."""
    fake_cuhk03(str(tmp_path / 'cuhk03-np'))
    ds = ConcatReIDDataset(
        sources=[
            dict(type='CUHK03NP', variant='detected'),
            dict(type='CUHK03NP', variant='labeled')
        ],
        data_root=str(tmp_path),
        combine_all=False)
    assert [s.get('variant') for s in ds.metainfo['sources']] == \
        ['detected', 'labeled']


def test_combine_all_trains_an_image_spelled_two_ways_once():
    """A test split that lists one image as 't/a.jpg' and as 't/./a.jpg'
    lists one image: training on it twice would weight it double and
    count it twice in the source's images."""
    train = [
        dict(img_path=f'train_{i}.jpg', pid=i, camid=0, role='train')
        for i in (0, 1)
    ]
    test = [
        dict(img_path='t/a.jpg', pid=7, camid=0, role='query'),
        dict(img_path='t/./a.jpg', pid=7, camid=1, role='gallery'),
        dict(img_path='t/b.jpg', pid=8, camid=1, role='gallery'),
    ]
    ds = combined(train, test)
    source = ds.metainfo['sources'][0]
    assert (source['num_images'], source['num_test_images']) == (4, 2)
    assert len(ds) == 4


def test_combine_all_keeps_the_first_record_of_an_image_of_two_roles():
    """The docstring's rule: an image listed as a query and as a gallery
    image trains once, as its first record (role and camera as listed
    first), so the summary's query row and the camid a camera-aware loss
    sees do not depend on which duplicate came last."""
    train = [dict(img_path='train_0.jpg', pid=0, camid=0, role='train')]
    test = [
        dict(img_path='t/a.jpg', pid=7, camid=0, role='query'),
        dict(img_path='t/a.jpg', pid=7, camid=1, role='gallery'),
    ]
    ds = combined(train, test)
    kept = [
        ds.get_data_info(i) for i in range(len(ds))
        if ds.get_data_info(i)['img_path'] == 't/a.jpg'
    ]
    assert [(r['source_role'], r['camid']) for r in kept] == [('query', 0)]


def test_a_wrapped_config_is_compared_before_anything_is_built(tmp_path):
    """check_no_repeated_source compares a combine-all entry by its
    ``dataset``: a dataset given plainly and again wrapped is refused from
    the configs, with the same-dataset message, not left to fail (or pass)
    while building."""
    from mmreid.datasets.multi_source import check_no_repeated_source
    market = dict(type='Market1501', data_root=str(tmp_path / 'missing'))
    with pytest.raises(
            ValueError, match=r'datasets\[0\] and datasets\[1\] are the '
            r'same dataset \(Market1501'):
        check_no_repeated_source(
            [market, dict(dataset=market, combine_all=True)], 'datasets')
    # Other folders are other datasets.
    check_no_repeated_source([
        market,
        dict(dataset=dict(market, data_root=str(tmp_path)), combine_all=True)
    ], 'datasets')


@pytest.mark.parametrize('value', ['False', 'no', 0, 1, None])
def test_a_wrapped_source_combine_all_that_is_not_a_bool_is_refused(
        tmp_path, value):
    """``dict(dataset=..., combine_all='False')`` (a config written from a
    YAML or a shell string) trained on the source's test split as well:
    ``bool('False')`` is True, so the training set held 5 records instead
    of Market's 2 training images. Only True and False are taken."""
    market = make_market_with_test(tmp_path / 'market')
    with pytest.raises(ValueError,
                       match=rf'source 0: combine_all must be True or False'
                       rf', got {value!r}'):
        ConcatReIDDataset(datasets=[dict(dataset=market, combine_all=value)])
    plain = ConcatReIDDataset(
        datasets=[dict(dataset=market, combine_all=False)])
    assert len(plain) == 2


@pytest.mark.parametrize('value', ['Market1501', None, 1])
def test_sources_combine_all_that_is_no_bool_or_list_is_refused(
        tmp_path, value):
    """``sources=[...]`` with ``combine_all='Market1501'`` (one name, not a
    list) was read as the set of its letters; refused, naming the value."""
    make_market_with_test(tmp_path / 'market1501')
    with pytest.raises(ValueError,
                       match=r'combine_all must be True, False or a list'):
        ConcatReIDDataset(
            sources=['Market1501'],
            data_root=str(tmp_path),
            combine_all=value)
