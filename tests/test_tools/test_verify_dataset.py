"""tools/misc/verify_dataset.py on a tiny SynthReID config."""
import os
import os.path as osp

import pytest

from ..fixtures.processes import (PYTHON, load_tool, run_process, run_tool,
                                  tool_env)

TOOL = osp.join('tools', 'misc', 'verify_dataset.py')

PUBLISHED_MODULE = '''
from mmreid.datasets.synthetic import SynthReID
from mmreid.registry import DATASETS


@DATASETS.register_module()
class PublishedSynthReID(SynthReID):
    PUBLISHED_COUNTS = dict(
        train=dict(ids=4, images=18, cams=3, verified=True),
        query=dict(ids=3, images=7, verified=True),
        gallery=dict(ids=4, images=10, verified=False))


@DATASETS.register_module()
class StrictSynthReID(SynthReID):
    PUBLISHED_COUNTS = dict(query=dict(ids=3, images=8, verified=True))
'''

# Domain 0 trains on all its images, domain 1 on its train split; the
# val/test sets are two targets of a multi-target loop.
EXTRA = '''
custom_imports = dict(imports=['published_synth'], allow_failed_imports=False)
train_dataloader = dict(
    batch_size=8,
    sampler=dict(type='IdentitySampler', batch_size=8, num_instances=2),
    dataset=dict(
        type='ConcatReIDDataset',
        datasets=[
            dict(dataset=dict(synth, type='PublishedSynthReID', domain=0),
                 combine_all=True),
            dict(synth, domain=1),
        ],
        pipeline=train_pipeline))
targets = [
    dict(name='d2',
         dataloader=dict(val_dataloader, dataset=dict(
             synth, type='PublishedSynthReID', domain=2, split='test'))),
    dict(name='d0',
         dataloader=dict(val_dataloader, dataset=dict(
             synth, domain=0, split='test'))),
]
val_cfg = dict(type='MultiTargetValLoop', targets=targets)
test_cfg = dict(type='MultiTargetTestLoop', targets=targets)
val_dataloader = dict()
test_dataloader = dict()
'''


def table_rows(output):
    """``{(split, dataset, role): [images, ids, cams, published]}``."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split('|')]
        if len(cells) == 7 and cells[3].isdigit():
            rows[tuple(cells[:3])] = [int(c) for c in cells[3:6]] + [cells[6]]
    return rows


def run_verify(args, env):
    return run_process([PYTHON, TOOL] + args, env)


def test_counts_targets_and_published_numbers(make_config, tmp_path):
    user_code = tmp_path / 'user_code'
    user_code.mkdir()
    (user_code / 'published_synth.py').write_text(PUBLISHED_MODULE)
    env = dict(PYTHONPATH=str(user_code))
    config = make_config(extra=EXTRA)

    output = run_tool([PYTHON, TOOL, config], env=env)
    rows = table_rows(output)
    # Combine-all: domain 0's train ids (4) and test ids (3; the gallery's
    # distractors are excluded) as 7 classes.
    assert rows[('train', 'synthreid-d0 (all)', 'train')] == [18, 4, 3, 'ok']
    # Query and gallery are checked on domain 0's test split as loaded
    # (combine-all leaves the distractors out of what it trains on).
    assert rows[('train', 'synthreid-d0 (all)', 'query')] == [7, 3, 3, 'ok']
    assert rows[('train', 'synthreid-d0 (all)',
                 'gallery')][3] == 'differs (unverified)'
    assert rows[('train', 'synthreid-d1', 'train')] == [18, 4, 3, '-']
    total = rows[('train', 'total', 'train')]
    assert total[1] == 4 + 3 + 4 and total[2] == 6
    # Multi-target targets, listed once for the val and test loops.
    assert rows[('val/d2, test/d2', 'synthreid-d2',
                 'query')] == [7, 3, 3, 'ok']
    gallery = rows[('val/d2, test/d2', 'synthreid-d2', 'gallery')]
    assert gallery[:2] == [9, 4] and gallery[3] == 'differs (unverified)'
    assert ('val/d0, test/d0', 'synthreid-d0', 'gallery') in rows
    assert 'WARNING: val/d2, test/d2: synthreid-d2 gallery images: got 9, ' \
        'published 10 (unverified)' in output
    assert 'ERROR' not in output

    # --split train lists the training set only.
    env_full = tool_env(env)
    proc = run_verify([config, '--split', 'train'], env_full)
    assert proc.returncode == 0, proc.stdout
    assert {key[0] for key in table_rows(proc.stdout)} == {'train'}

    # A verified mismatch and a dataset that cannot be built are errors.
    proc = run_verify([
        config, '--split', 'test', '--cfg-options',
        'test_cfg.targets.0.dataloader.dataset.type=StrictSynthReID',
        'val_cfg.targets.1.dataloader.dataset.domain=7'
    ], env_full)
    assert proc.returncode == 1, proc.stdout
    assert 'ERROR: test/d2: synthreid-d2 query images: got 7, published ' \
        '8' in proc.stdout
    assert 'ERROR: val/d0: cannot build SynthReID: ValueError: domain ' \
        'index 7' in proc.stdout
    assert ('val/d2', 'synthreid-d2', 'query') in table_rows(proc.stdout)


def test_modality_column_and_unverified_ok():
    tool = load_tool(TOOL)

    class Published:
        PUBLISHED_COUNTS = dict(train=dict(ids=2, images=3))

    records = [
        dict(pid=0, camid=0, modality=0),
        dict(pid=0, camid=1, modality=1),
        dict(pid=1, camid=1, modality=1)
    ]
    row = dict(
        entry='train',
        dataset='sysu',
        role='train',
        published=Published(),
        **tool.count(records))
    row['check'], errors, warnings = tool.compare(row)
    assert (row['check'], errors, warnings) == ('ok (unverified)', [], [])
    # Verified numbers named one by one: the others only warn.
    Published.PUBLISHED_COUNTS = dict(
        train=dict(ids=2, images=4, verified=('ids', )))
    warning = 'train: sysu train images: got 3, published 4 (unverified)'
    assert tool.compare(row) == ('differs (unverified)', [], [warning])
    Published.PUBLISHED_COUNTS = dict(
        train=dict(ids=3, images=3, verified=('ids', )))
    error = 'train: sysu train ids: got 2, published 3'
    assert tool.compare(row) == ('MISMATCH', [error], [])
    Published.PUBLISHED_COUNTS = dict(
        train=dict(ids=2, images=3, verified=('ids', )))
    assert tool.compare(row) == ('ok (images unverified)', [], [])
    Published.PUBLISHED_COUNTS = dict(train=dict(ids=2, verified='ids'))
    with pytest.raises(ValueError, match="verified must be.*got 'ids'"):
        tool.compare(row)
    table = tool.format_table([row])
    assert 'modality' in table.splitlines()[0]
    assert 'vis:1 ir:2' in table


def write_market(root):
    files = dict(
        bounding_box_train=[
            '0002_c1s1_000451_03.jpg', '0007_c3s1_000001_01.jpg'
        ],
        query=['0002_c2s1_000001_00.jpg', '0007_c1s1_000002_00.jpg'],
        bounding_box_test=[
            '0002_c3s1_000003_01.jpg', '0007_c2s1_000004_01.jpg'
        ])
    for folder, names in files.items():
        os.makedirs(osp.join(root, folder))
        for name in names:
            open(osp.join(root, folder, name), 'wb').close()
    return str(root)


def market_config(tmp_path, root):
    config = tmp_path / 'market.py'
    config.write_text(
        f'train_dataloader = dict(dataset=dict(type="Market1501", '
        f'data_root={root!r}))\n'
        f'test_dataloader = dict(dataset=dict(type="Market1501", '
        f'data_root={root!r}, split="test"))\n')
    return str(config)


def test_incomplete_copy_exits_1_naming_what_is_missing(
        tmp_path, monkeypatch, capsys):
    from mmreid.datasets import Market1501
    tool = load_tool(TOOL)
    root = write_market(tmp_path / 'market1501')
    config = market_config(tmp_path, root)
    # The real published counts: a tiny tree is an incomplete copy. The
    # spec tags Market's train images and gallery ids [unverified]: those
    # differences warn, the others are errors (spec datasets §5).
    assert tool.main([config]) == 1
    out = capsys.readouterr().out
    assert 'ERROR: train: market1501 train ids: got 2, published 751' in out
    assert 'WARNING: train: market1501 train images: got 2, published ' \
        '12936 (unverified)' in out
    assert 'ERROR: test: market1501 gallery images: got 2, published ' \
        '15913' in out
    assert 'WARNING: test: market1501 gallery ids: got 2, published 751 ' \
        '(unverified)' in out
    assert 'ERROR: test: market1501 gallery ids' not in out
    # With the tree's own counts published it passes, until an image and
    # a camera folder's worth of queries go missing.
    monkeypatch.setattr(
        Market1501, 'PUBLISHED_COUNTS',
        dict(
            train=dict(ids=2, images=2, cams=2, verified=True),
            query=dict(ids=2, images=2, cams=2, verified=True),
            gallery=dict(ids=2, images=2, cams=2, verified=True)))
    assert tool.main([config]) == 0
    assert 'ERROR' not in capsys.readouterr().out
    os.remove(osp.join(root, 'query', '0007_c1s1_000002_00.jpg'))
    assert tool.main([config]) == 1
    out = capsys.readouterr().out
    assert 'ERROR: test: market1501 query images: got 1, published 2' in out
    assert 'ERROR: test: market1501 query cams: got 1, published 2' in out
    assert 'gallery images' not in out


def test_a_combine_all_source_with_a_partial_test_split_exits_1(
        tmp_path, monkeypatch, capsys):
    """A test folder trained on with combine-all is checked against its
    published query/gallery counts: a half-copied one is an error, and
    the gallery's distractor (kept in the test split, left out of
    training) counts as published."""
    from mmreid.datasets import Market1501
    tool = load_tool(TOOL)
    root = write_market(tmp_path / 'market1501')
    gallery = osp.join(root, 'bounding_box_test')
    for name in ('0000_c4s1_000005_01.jpg', '-1_c1s1_000006_01.jpg'):
        open(osp.join(gallery, name), 'wb').close()
    # The tree's own counts; the gallery: pids 2, 7 and the distractor
    # label 0 on cameras 2, 3, 4 (the junk image is dropped).
    monkeypatch.setattr(
        Market1501, 'PUBLISHED_COUNTS',
        dict(
            train=dict(ids=2, images=2, cams=2, verified=True),
            query=dict(ids=2, images=2, cams=2, verified=True),
            gallery=dict(ids=3, images=3, cams=3, verified=True)))
    config = tmp_path / 'combine.py'
    config.write_text(
        'train_dataloader = dict(dataset=dict(type="ConcatReIDDataset", '
        f'datasets=[dict(dataset=dict(type="Market1501", data_root={root!r}'
        '), combine_all=True)]))\n')
    assert tool.main([str(config)]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert rows[('train', 'market1501 (all)', 'query')] == [2, 2, 2, 'ok']
    # Trained on: pids 2 and 7 only; checked: the test split's gallery.
    assert rows[('train', 'market1501 (all)', 'gallery')] == [2, 2, 2, 'ok']

    os.remove(osp.join(root, 'query', '0007_c1s1_000002_00.jpg'))
    os.remove(osp.join(gallery, '0007_c2s1_000004_01.jpg'))
    assert tool.main([str(config)]) == 1
    out = capsys.readouterr().out
    assert 'ERROR: train: market1501 (all) query images: got 1, ' \
        'published 2\n' in out
    assert 'ERROR: train: market1501 (all) gallery images: got 2, ' \
        'published 3 (its test split as loaded; combine-all trains on 1,' \
        in out


def test_split_queries_that_share_their_matchs_camera(tmp_path):
    """Spec evaluation §6.2: verify_dataset checks that no GRID probe
    shares a camera with its true match (the Market rule would remove the
    match and the split metric would then refuse the query)."""
    import random

    from mmreid.datasets import GRID
    from ..fixtures.dataset_trees import make_grid
    tool = load_tool(TOOL)
    rng = random.Random(0)
    partitions = [sorted(rng.sample(range(1, 251), 125)) for _ in range(10)]
    root = make_grid(tmp_path, partitions)
    assert tool.split_match_errors('test', GRID(root)) == []
    # A test probe of split 4 moved to its gallery match's camera.
    pid = min(set(range(1, 251)) - set(partitions[4]))
    probe = osp.join(root, 'underground_reid', 'probe')
    old = f'{pid:04d}_{pid % 4 + 1}_25004_107_32_130_364.jpeg'
    new = f'{pid:04d}_{pid % 4 + 5}_25004_107_32_130_364.jpeg'
    os.rename(osp.join(probe, old), osp.join(probe, new))
    errors = tool.split_match_errors('test', GRID(root, split_index=4))
    assert len(errors) == 1
    assert errors[0].startswith('test: grid split 4: 1 queries share the '
                                'camera of every true match')
    assert new in errors[0] and 'assign_camids=True' in errors[0]
    assigned = GRID(root, split_index=4, assign_camids=True)
    assert tool.split_match_errors('test', assigned) == []


class SplitSet:
    """A built dataset as split_match_errors reads it: records and
    ``dg_splits`` (query and gallery paths of each split)."""

    def __init__(self, records, splits):
        self.records = records
        self.metainfo = dict(dataset_name='toy', dg_splits=splits)

    def full_init(self):
        pass

    def __len__(self):
        return len(self.records)

    def get_data_info(self, index):
        return self.records[index]


def test_a_query_keeps_a_match_on_another_camera():
    """A query is lost only when every true match shares its camera (the
    Market rule removes them all); one match on another camera keeps it,
    and a query without a true match in the split is no such case."""
    tool = load_tool(TOOL)
    records = [
        dict(img_path='q1', pid=1, camid=0),
        dict(img_path='g1a', pid=1, camid=0),
        dict(img_path='g1b', pid=1, camid=1),
        dict(img_path='q2', pid=2, camid=0),
        dict(img_path='g3', pid=3, camid=0),
        dict(img_path='q4', pid=4, camid=1),
        dict(img_path='g4', pid=4, camid=1),
    ]
    kept = dict(query=['q1', 'q2'], gallery=['g1a', 'g1b', 'g3'])
    assert tool.split_match_errors('test', SplitSet(records, [kept])) == []
    lost = dict(query=['q1', 'q4'], gallery=['g1b', 'g4'])
    errors = tool.split_match_errors('test', SplitSet(records, [kept, lost]))
    assert errors == [
        "test: toy split 1: 1 queries share the camera of every true "
        "match, which the Market rule removes, e.g. 'q4'"
    ]


def test_records_without_a_modality_are_visible():
    tool = load_tool(TOOL)
    counts = tool.count([dict(pid=0, camid=0), dict(pid=1, camid=1)])
    assert counts == dict(images=2, ids=2, cams=2, modalities={0: 2})


def test_more_than_published_is_a_mismatch():
    """A copy with extra images (another release, a second copy of a
    folder) differs from the published counts as much as a short one."""
    tool = load_tool(TOOL)

    class Published:
        PUBLISHED_COUNTS = dict(
            train=dict(ids=2, images=3, cams=2, verified=True))

    row = dict(
        entry='train',
        dataset='toy',
        role='train',
        published=Published(),
        images=4,
        ids=2,
        cams=2,
        modalities={0: 4})
    assert tool.compare(row) == ('MISMATCH', [
        'train: toy train images: got 4, published 3'
    ], [])


def test_a_gallery_pool_is_named_so(tmp_path):
    """SYSU-MM01's and LLCM's test gallery is the pool each trial draws
    its gallery from; the row said 'gallery' and counted the whole pool,
    read as one trial's gallery (cross-check audit s19 V1). Market's
    gallery stays 'gallery'."""
    from mmreid.datasets import LLCM, SYSUMM01, Market1501
    from ..fixtures.dataset_trees import make_llcm, make_sysu
    tool = load_tool(TOOL)
    make_sysu(str(tmp_path / 'sysu'))
    make_llcm(str(tmp_path / 'llcm'))
    market = write_market(tmp_path / 'market')
    for dataset, label in (
        (SYSUMM01(str(tmp_path / 'sysu'), split='test'), 'gallery pool'),
        (LLCM(str(tmp_path / 'llcm'), split='test'), 'gallery pool'),
        (Market1501(market, split='test'), 'gallery'),
    ):
        rows = {r['role']: r for r in tool.summarize('test', dataset)}
        assert rows['gallery']['label'] == label
        assert rows['query']['label'] == 'query'
        for row in rows.values():
            row['check'] = 'ok'
        lines = tool.format_table(list(rows.values())).splitlines()
        assert any(f'| {label} ' in line for line in lines[2:])


def test_a_config_without_a_dataset_for_the_split_exits_1(tmp_path, capsys):
    """``--split train`` of a test-only config checks nothing: exiting 0
    would pass a script's "the data is complete" step with no count
    verified."""
    tool = load_tool(TOOL)
    config = tmp_path / 'test_only.py'
    config.write_text(
        "test_dataloader = dict(dataset=dict(type='SynthReID'))\n")
    assert tool.main([str(config), '--split', 'train']) == 1
    assert f'no dataset found in {config} for --split train' in \
        capsys.readouterr().out


def test_an_image_that_is_a_symlink_to_nothing_is_an_error(tmp_path, capsys):
    """A query image that is a symbolic link to a moved drive was counted
    as an image (the table showed 3 queries); it is an error naming the
    link and where it points, and the tool exits 1."""
    tool = load_tool(TOOL)
    root = write_market(tmp_path / 'market1501')
    moved = str(tmp_path / 'moved' / '0002_c3s1_000009_00.jpg')
    os.symlink(moved, osp.join(root, 'query', '0002_c3s1_000009_00.jpg'))
    assert tool.main([market_config(tmp_path, root)]) == 1
    out = capsys.readouterr().out
    assert ('ERROR: test: cannot build Market1501: FileNotFoundError: '
            f"{osp.join(root, 'query', '0002_c3s1_000009_00.jpg')!r} is a "
            f'symbolic link to {moved!r}, which does not exist') in out
