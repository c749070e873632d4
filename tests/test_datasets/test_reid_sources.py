"""ConcatReIDDataset(sources=[...]): multi-source training in one line."""
import pytest

from mmreid.datasets import ConcatReIDDataset
from mmreid.datasets.multi_source import reid_sources
from mmreid.registry import DATASETS
from ..fixtures.dataset_trees import make_msmt17, make_source


@pytest.fixture
def data_root(tmp_path):
    """Market-1501 and MSMT17 in their standard folders."""
    make_source(tmp_path / 'market1501', pids=[5, 9], cams=[1, 2])
    (tmp_path / 'msmt17' / 'MSMT17_V1').mkdir(parents=True)
    make_msmt17(tmp_path / 'msmt17' / 'MSMT17_V1', 'V1')
    return tmp_path


def records(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def test_names_equal_the_explicit_configs(data_root):
    short = DATASETS.build(
        dict(
            type='ConcatReIDDataset',
            sources=['Market1501',
                     dict(type='MSMT17', version='V1')],
            data_root=str(data_root)))
    explicit = ConcatReIDDataset(datasets=[
        dict(type='Market1501', data_root=str(data_root / 'market1501')),
        dict(type='MSMT17', data_root=str(data_root / 'msmt17'), version='V1'),
    ])
    assert len(short) > 4  # both sources are there
    assert records(short) == records(explicit)
    assert short.num_pids == explicit.num_pids
    assert [s['name'] for s in short.metainfo['sources']
            ] == [s['name'] for s in explicit.metainfo['sources']]


def test_combine_all_by_name(data_root):
    short = ConcatReIDDataset(
        sources=['Market1501', dict(type='MSMT17', version='V1')],
        data_root=str(data_root),
        combine_all=['Market1501'])
    explicit = ConcatReIDDataset(datasets=[
        dict(
            dataset=dict(
                type='Market1501',
                data_root=str(data_root / 'market1501'),
                split='train'),
            combine_all=True),
        dict(type='MSMT17', data_root=str(data_root / 'msmt17'), version='V1'),
    ])
    assert records(short) == records(explicit)
    used = [s['split_used'] for s in short.metainfo['sources']]
    assert used == ['all', 'train']


def test_dict_sources_keep_their_arguments(data_root, tmp_path):
    elsewhere = make_source(tmp_path / 'my_market', pids=[3], cams=[1, 2])
    configs = reid_sources(['Market1501', elsewhere],
                           data_root=str(data_root),
                           combine_all=True)
    assert configs[0] == dict(
        dataset=dict(
            type='Market1501',
            data_root=str(data_root / 'market1501'),
            split='train'),
        combine_all=True)
    assert configs[1]['dataset']['data_root'] == str(tmp_path / 'my_market')


def test_train_only_sources_are_used_whole(data_root):
    configs = reid_sources(['Market1501', 'CUHKSYSU', 'CUHK02'],
                           data_root='data/',
                           combine_all=True)
    assert configs[0]['combine_all'] is True
    assert configs[1] == dict(type='CUHKSYSU', data_root='data/cuhk_sysu')
    assert configs[2] == dict(type='CUHK02', data_root='data/cuhk02')
    with pytest.raises(ValueError, match="'CUHK02', which has no test"):
        reid_sources(['Market1501', 'CUHK02'], combine_all=['CUHK02'])


@pytest.mark.parametrize('kwargs, message', [
    (dict(sources=['Market'], ), "'Market' has no standard folder"),
    (dict(sources=['Market1501'],
          combine_all=['MSMT17']), "'MSMT17', which is not in sources"),
    (dict(sources=['Market1501'], datasets=[dict(type='Market1501')]),
     'datasets or sources, not both'),
    (dict(datasets=[dict(type='Market1501')],
          combine_all=True), 'combine_all goes with sources'),
    (dict(sources=[3]), 'expected a dataset name or a config dict'),
])
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConcatReIDDataset(**kwargs)


def test_msmt17_by_name_needs_its_version(data_root):
    with pytest.raises(
            ValueError, match='dict\\(type="MSMT17", version=\'V1\'\\)'):
        ConcatReIDDataset(
            sources=['Market1501', 'MSMT17'], data_root=str(data_root))


def test_combine_all_by_a_repeated_name_is_refused():
    """Both CUHK03-NP variants are sources: combine_all=['CUHK03NP'] is
    ambiguous (combining both would make each test person two classes),
    so it is refused; per-entry dicts say which."""
    variants = [
        dict(type='CUHK03NP', variant='labeled'),
        dict(type='CUHK03NP', variant='detected')
    ]
    with pytest.raises(
            ValueError,
            match=r"^combine_all names \['CUHK03NP'\], which appear more "
            r'than once in sources; use dict\(dataset=..., '
            r'combine_all=True\) entries'):
        reid_sources(variants, combine_all=['CUHK03NP'])
    configs = reid_sources(variants, combine_all=False)
    assert [c['variant'] for c in configs] == ['labeled', 'detected']
    assert not any('combine_all' in c for c in configs)


def test_combine_all_takes_a_source_without_a_standard_folder(tmp_path):
    """A dataset outside STANDARD_SOURCES (with its data_root) that has a
    test split is combined by combine_all=True or by its name."""
    prid = dict(type='PRID2011', data_root=str(tmp_path / 'prid'))
    for combine_all in (True, ['PRID2011']):
        assert reid_sources([prid], combine_all=combine_all) == [
            dict(dataset=dict(prid, split='train'), combine_all=True)
        ]
