"""The model zoo as data: model-index.yml, metafiles, docs/model_zoo.md."""
import glob
import os.path as osp
import re
import sys
from numbers import Number

import pytest
from mmengine.config import Config

from mmreid.apis import (find_model_index, get_model_info, list_models,
                         load_model_index)
from mmreid.registry import DATASETS, MODELS, TRANSFORMS
from ..fixtures.failing_writes import fail_writes
from ..fixtures.processes import REPO, load_tool

INDEX = load_model_index(osp.join(REPO, 'model-index.yml'))
MODEL_NAMES = list(INDEX.models)


def test_every_metafile_is_imported():
    on_disk = sorted(
        osp.relpath(p, REPO)
        for p in glob.glob(osp.join(REPO, 'configs', '*', 'metafile.yml')))
    imported = sorted(osp.relpath(p, REPO) for p in INDEX.metafiles)
    assert on_disk, 'no metafile found'
    not_imported = sorted(set(on_disk) - set(imported))
    assert not not_imported, \
        f'metafiles not imported by model-index.yml: {not_imported}'
    missing = sorted(set(imported) - set(on_disk))
    assert not missing, f'model-index.yml imports missing files: {missing}'
    assert find_model_index() in (osp.join(REPO, 'model-index.yml'),
                                  osp.join(REPO, 'mmreid', '.mim',
                                           'model-index.yml'))


def test_collections_are_complete():
    for name, collection in INDEX.collections.items():
        readme = collection.get('README')
        assert readme and osp.isfile(osp.join(REPO, readme)), name
        paper = collection.get('Paper') or {}
        assert paper.get('Title') and paper.get(
            'URL', '').startswith('https://'), name


def dataset_types(cfg):
    """The ``type`` of every dataset and pipeline transform of a config."""
    datasets, transforms = [], []

    def record(dataset):
        if 'type' not in dataset:
            # A wrapper entry, e.g. dict(dataset=..., combine_all=True).
            return visit(dataset)
        datasets.append(dataset['type'])
        transforms.extend(t['type'] for t in dataset.get('pipeline') or [])
        visit(dataset)

    def visit(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == 'dataset':
                    record(value)
                elif key == 'datasets':
                    for dataset in value:
                        record(dataset)
                else:
                    visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)

    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                'val_cfg', 'test_cfg'):
        visit(cfg.get(key))
    return datasets, transforms


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_model_entry(name):
    model = INDEX.models[name]
    assert model.collection in INDEX.collections, \
        f'{name}: In Collection {model.collection!r} is not defined'
    assert osp.isfile(model.config), f'{name}: {model.config} is missing'
    assert osp.splitext(osp.basename(model.config))[0] == name
    cfg = Config.fromfile(model.config)
    model_cfg = cfg.model.to_dict()
    model_cfg['backbone'].pop('init_cfg', None)  # never download
    if model_cfg['backbone'].get('depth') == 50:
        # Same code path, 4x fewer parameters to build.
        model_cfg['backbone']['base_channels'] = 16
        model_cfg['backbone']['stem_channels'] = 16
        model_cfg['head']['in_channels'] = 512
    built = MODELS.build(model_cfg)
    assert built.head.num_classes > 0
    datasets, transforms = dataset_types(cfg)
    assert datasets, f'{name}: no dataset in the config'
    for dataset_type in datasets:
        assert DATASETS.get(dataset_type) is not None, \
            f'{name}: dataset type {dataset_type!r} is not registered'
    for transform_type in transforms:
        assert TRANSFORMS.get(transform_type) is not None, \
            f'{name}: transform type {transform_type!r} is not registered'
    for result in model.results:
        assert result.get('Task'), f'{name}: a result without Task'
        assert result.get('Dataset'), f'{name}: a result without Dataset'
        metrics = result.get('Metrics')
        assert metrics, f'{name}: a result without Metrics'
        for key, value in metrics.items():
            assert isinstance(value, Number) and 0 <= value <= 100, \
                f'{name}: metric {key}={value!r} is not a percentage'
    if model.weights is not None:
        assert model.weights.startswith('https://'), name
        assert re.search(r'-[0-9a-f]{8,}\.pth$', model.weights), \
            f'{name}: weights file name has no sha256 prefix'


def test_list_models():
    names = list_models()
    assert names == sorted(INDEX.models)
    assert 'bot_r18_synthreid' in names
    r18 = list_models('r18')
    assert r18 and all('r18' in n for n in r18)
    assert list_models('R18') == r18
    assert set(
        list_models('snr_*')) == {n
                                  for n in names if n.startswith('snr_')}
    assert list_models('no-such-model') == []
    with pytest.raises(KeyError, match='did you mean'):
        get_model_info('bot_r18_synthreld')


def test_bad_index_is_reported(tmp_path):
    meta = tmp_path / 'configs' / 'x' / 'metafile.yml'
    meta.parent.mkdir(parents=True)
    index = tmp_path / 'model-index.yml'
    index.write_text('Import:\n  - configs/x/metafile.yml\n')
    meta.write_text('Models:\n  - Name: a\n')
    with pytest.raises(ValueError, match='has no Config'):
        load_model_index(str(index))
    meta.write_text('Models:\n  - Name: a\n    Config: a.py\n'
                    '  - Name: a\n    Config: b.py\n')
    with pytest.raises(ValueError, match="'a' is defined twice"):
        load_model_index(str(index))
    meta.write_text('Models:\n  - Name: a\n    Config: configs/x/a.py\n')
    info = load_model_index(str(index)).models['a']
    assert info.config == str(tmp_path / 'configs' / 'x' / 'a.py')
    assert list_models(index_file=str(index)) == ['a']


def test_model_zoo_page_is_up_to_date():
    gen = load_tool('tools/misc/gen_model_zoo.py')
    text = gen.generate()
    assert text == gen.generate()  # deterministic
    for name in MODEL_NAMES:
        assert f'| {name} |' in text
    with open(osp.join(REPO, 'docs', 'model_zoo.md'), encoding='utf-8') as f:
        committed = f.read()
    assert committed == text, ('docs/model_zoo.md is out of date: run '
                               'python tools/misc/gen_model_zoo.py')


def test_model_zoo_page_is_written_whole(tmp_path, monkeypatch):
    """gen_model_zoo.py replaces --out only by a complete page: a write
    that fails halfway (a full disk) leaves the previous page."""
    gen = load_tool('tools/misc/gen_model_zoo.py')
    out = tmp_path / 'model_zoo.md'
    out.write_text('the previous page\n')
    monkeypatch.setattr(sys, 'argv', ['gen_model_zoo.py', '--out', str(out)])
    fail_writes(monkeypatch, gen)
    with pytest.raises(OSError, match='No space left'):
        gen.main()
    assert out.read_text() == 'the previous page\n'
    assert [p.name for p in tmp_path.iterdir()] == ['model_zoo.md']
    monkeypatch.undo()
    monkeypatch.setattr(sys, 'argv', ['gen_model_zoo.py', '--out', str(out)])
    gen.main()
    assert out.read_text(encoding='utf-8') == gen.generate()


def test_index_entries_weights_and_patterns(tmp_path, monkeypatch):
    """Models of the index file itself count too; Weights is read;
    patterns ignore case and a ``[...]`` set is a wildcard (no
    substring match then)."""
    index = tmp_path / 'model-index.yml'
    index.write_text('Models:\n'
                     '  - Name: a1\n    Config: a1.py\n'
                     '    Weights: https://x.org/a1-0123abcd.pth\n'
                     '  - Name: A1b\n    Config: a1b.py\n')
    found = str(index)
    assert list_models(index_file=found) == ['A1b', 'a1']
    assert get_model_info('a1', found).weights == \
        'https://x.org/a1-0123abcd.pth'
    assert get_model_info('A1b', found).weights is None
    assert list_models('A1', found) == ['A1b', 'a1']
    assert list_models('a[1]', found) == ['a1']
    # The installed package's copy comes before the checkout's.
    from mmreid.apis import model_zoo
    monkeypatch.setattr(model_zoo.osp, 'isfile', lambda path: True)
    assert find_model_index().endswith(
        osp.join('mmreid', '.mim', 'model-index.yml'))


ZOO_INDEX = '''\
Collections:
  - Name: M
Models:
  - Name: m1
    In Collection: M
    Config: configs/m/m1.py
    Metadata: {Training Data: d1}
    Results:
      - Dataset: d1
        Metrics: {mAP: 80.1, Rank-1: 92.3}
        Source: paper
        Reference: Table 2
      - Dataset: 'a|b'
        Metrics: {mAP: 10.5, top-1: 20.5}
        Source: paper
        Reference: Table 2
  - Name: m2
    In Collection: M
    Config: configs/m/m2.py
  - Name: m3
    Config: configs/m/m3.py
    Results:
      - Dataset: d3
        Metrics: {mAP: 1.5, R1: 2.5}
'''


def test_model_zoo_rows_of_every_metafile_form(tmp_path):
    """The page shows a result's rank-1 under each name a metafile gives it
    (``R1``, ``Rank-1``, ``top-1``; a '-' would hide a published number),
    a model without results as one row of dashes, a '|' in a cell escaped
    (it would split the row), each reference once, and a model of no
    listed collection under "Other models", not left out."""
    gen = load_tool('tools/misc/gen_model_zoo.py')
    index = tmp_path / 'model-index.yml'
    index.write_text(ZOO_INDEX)
    text = gen.generate(str(index))
    rows = [line for line in text.splitlines() if line.startswith('| m')]
    assert rows == [
        '| m1 | d1 | d1 | 80.1 | 92.3 | paper | [config](../configs/m/m1.py)'
        ' | - |',
        '| m1 | d1 | a\\|b | 10.5 | 20.5 | paper | '
        '[config](../configs/m/m1.py) | - |',
        '| m2 | - | - | - | - | - | [config](../configs/m/m2.py) | - |',
        '| m3 | - | d3 | 1.5 | 2.5 | - | [config](../configs/m/m3.py) | - |',
    ]
    assert text.index('## M\n') < text.index('| m1 |')
    assert text.index('## Other models\n') < text.index('| m3 |')
    assert text.count('`m1`: Table 2') == 1


def test_model_zoo_check_exits_1_when_out_of_date(tmp_path, monkeypatch,
                                                  capsys):
    """``gen_model_zoo.py --check`` (CI's guard) exits 1 on a stale page and
    leaves it as it is; on an up-to-date one it exits normally."""
    gen = load_tool('tools/misc/gen_model_zoo.py')
    out = tmp_path / 'model_zoo.md'
    out.write_text(gen.generate(), encoding='utf-8')
    monkeypatch.setattr(sys, 'argv',
                        ['gen_model_zoo.py', '--check', '--out',
                         str(out)])
    gen.main()
    assert 'is up to date' in capsys.readouterr().out
    stale = gen.generate() + 'stale\n'
    out.write_text(stale, encoding='utf-8')
    with pytest.raises(SystemExit) as info:
        gen.main()
    assert info.value.code == 1
    assert 'is out of date' in capsys.readouterr().out
    assert out.read_text(encoding='utf-8') == stale


def test_odd_metafiles_are_read_or_refused_by_name(tmp_path):
    """An empty metafile holds no models; one whose top level is no
    mapping is refused naming the file; a model whose Config is empty is
    refused as one without Config; a name defined in two metafiles is
    refused naming both."""
    index = tmp_path / 'model-index.yml'
    index.write_text('Import:\n  - a/metafile.yml\n  - b/metafile.yml\n')
    for folder in ('a', 'b'):
        (tmp_path / folder).mkdir()
    first, second = (tmp_path / 'a' / 'metafile.yml',
                     tmp_path / 'b' / 'metafile.yml')
    first.write_text('')
    second.write_text('Models:\n  - Name: m\n    Config: b/m.py\n')
    assert list_models(index_file=str(index)) == ['m']
    first.write_text('- Name: x\n  Config: a/x.py\n')
    with pytest.raises(ValueError, match=f'{first}: expected a mapping'):
        load_model_index(str(index))
    first.write_text('Models:\n  - Name: m\n    Config:\n')
    with pytest.raises(ValueError, match=f'{first}: model #0 has no Config'):
        load_model_index(str(index))
    first.write_text('Models:\n  - Name: m\n    Config: a/m.py\n')
    with pytest.raises(ValueError) as info:
        load_model_index(str(index))
    assert str(info.value) == (f"model name 'm' is defined twice: in {first} "
                               f'and {second}')


def test_a_missing_model_index_is_named(monkeypatch):
    """Without model-index.yml in the package's .mim or the checkout the
    error names both places looked at, not a path that is no file."""
    from mmreid.apis import model_zoo
    monkeypatch.setattr(model_zoo.osp, 'isfile', lambda path: False)
    with pytest.raises(FileNotFoundError) as info:
        find_model_index()
    message = str(info.value)
    assert osp.join('mmreid', '.mim', 'model-index.yml') in message
    assert osp.join(REPO, 'model-index.yml') in message


def test_a_collection_defined_twice_is_refused(tmp_path):
    index = tmp_path / 'model-index.yml'
    index.write_text('Import:\n  - a.yml\n  - b.yml\n')
    (tmp_path / 'a.yml').write_text('Collections:\n  - Name: C\n'
                                    '    README: a.md\n')
    (tmp_path / 'b.yml').write_text('Collections:\n  - Name: C\n'
                                    '    README: b.md\n')
    with pytest.raises(ValueError, match="'C' is defined twice"):
        load_model_index(str(index))


@pytest.mark.parametrize('content', [
    'Collections:\n  - README: a.md\n',
    'Models:\n  - bot_r18\n',
])
def test_a_malformed_entry_is_refused_naming_its_metafile(tmp_path, content):
    index = tmp_path / 'model-index.yml'
    index.write_text('Import:\n  - a.yml\n')
    (tmp_path / 'a.yml').write_text(content)
    with pytest.raises(ValueError, match=str(tmp_path / 'a.yml')):
        load_model_index(str(index))
