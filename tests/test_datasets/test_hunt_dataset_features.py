"""Wrong-number hunt: mmengine dataset options, wrappers and dataloader
settings on ReID datasets.

mmreid datasets are mmengine ``BaseDataset``\\ s, so a user passes
mmengine's options (``indices``, ``filter_cfg``, ``data_prefix``,
``lazy_init``, ``metainfo``, ``max_refetch``), its wrappers and its
samplers as in any OpenMMLab config. Each test below says what the user
does and what the definition (docs/datasets.md, the protocol specs in
``/work/shared/specs``) makes right. The references are computed from the
file names of tiny fake dataset trees by the datasets' published naming
rules, never from mmreid's code.
"""
import copy
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
from mmengine.runner import Runner

from mmreid.datasets import SYSUMM01, Market1501, RegDB
from mmreid.datasets.base_reid_dataset import identity_split_conflict
from ..fixtures.dataset_trees import (REGDB_TRIALS, SYSU_IDS, SYSU_IMAGES,
                                      make_market1501, make_regdb, make_sysu)
from ..fixtures.tiny_models import TINY_BOT_MODEL

MARKET_NAME = re.compile(r'^(-?\d+)_c(\d)s\d+_\d+_\d+\.jpg$')
PIPELINE = [
    dict(type='ReIDLoadImageFromFile'),
    dict(type='ReIDResize', size=(32, 16)),
    dict(type='PackReIDInputs'),
]


def records_of(dataset):
    """Every record of ``dataset``, in order."""
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def market_pid(path):
    """The Market-1501 person number of an image, from its file name."""
    return int(MARKET_NAME.match(osp.basename(path)).group(1))


def write_images(folder, skip=()):
    """Write a small random 3-channel image over every ``.jpg`` of
    ``folder`` whose name does not start with one of ``skip`` (those stay
    0-byte files)."""
    rng = np.random.default_rng(0)
    for name in sorted(os.listdir(folder)):
        if name.endswith('.jpg') and not name.startswith(tuple(skip)):
            pixels = rng.integers(0, 256, (32, 16, 3), dtype=np.uint8)
            cv2.imwrite(osp.join(folder, name), pixels)


def test_a_training_image_that_fails_to_load_is_not_replaced(tmp_path):
    """A user's training pipeline loads with mmcv's
    ``LoadImageFromFile(ignore_empty=True)`` (mmengine's way of "broken
    images"); one image of the copy is a 0-byte file (an interrupted
    copy). mmengine's ``BaseDataset.__getitem__`` then draws a random
    other index (up to ``max_refetch`` times) and returns *its* image
    and label without a word: Market's person 0007 (its only image) is
    never trained on and another person's image is trained twice; in a
    P x K batch the substitute sits in another identity's group.

    Right: docs/datasets.md promises that an empty image "raises when it
    is loaded, naming the file"; the training set is the listed images,
    so ``dataset[i]`` gives record ``i`` or refuses, naming its file.
    """
    from mmcv.transforms import LoadImageFromFile
    root = make_market1501(tmp_path / 'market1501')
    write_images(osp.join(root, 'bounding_box_train'), skip=('0007', ))
    dataset = Market1501(
        root,
        split='train',
        pipeline=[LoadImageFromFile(ignore_empty=True)])
    index = next(i for i, r in enumerate(records_of(dataset))
                 if market_pid(r['img_path']) == 7)
    broken = osp.basename(dataset.get_data_info(index)['img_path'])
    try:
        out = dataset[index]
    except Exception as error:  # a refusal must name the file
        assert broken in str(error), str(error)
        return
    assert osp.basename(out['img_path']) == broken, (
        f'dataset[{index}] is {broken!r}, got {out["img_path"]!r} '
        f'(pid {out["pid"]}) in its place')


def relabelled(records):
    """The training labels the definition gives ``records``: the persons
    (original Market pids, read from the file names) in sorted order,
    numbered ``0..N-1`` (docs/datasets.md, common rules)."""
    persons = sorted({market_pid(r['img_path']) for r in records})
    label = {pid: i for i, pid in enumerate(persons)}
    return [label[market_pid(r['img_path'])] for r in records]


@pytest.mark.parametrize('how', ['indices', 'get_subset'])
def test_a_training_subset_is_labelled_0_to_n_minus_1(tmp_path, how):
    """To "train quickly" a user takes a subset of Market's training
    split, ``indices=[0, 3]`` in the dataset config (mmengine's option)
    or ``dataset.get_subset([0, 3])``: persons 0002 and 0010.

    ``indices`` is applied after the relabelling, so the labels are 0 and
    2 while ``metainfo['num_pids']`` is 2: the start-up check demands
    ``num_classes=2`` and the loss then fails on label 2 (a CUDA device
    assert on the GPU). ``get_subset`` keeps the full split's metainfo
    (3 identities): the check demands 3 and a classifier row trains
    with no image, without a word.

    Right: docs/datasets.md, common rules, "train split: pids
    relabelled to 0..N-1 in sorted order of the original pid", for the
    split as loaded; the classifier size is its number of persons.
    """
    root = make_market1501(tmp_path / 'market1501')
    if how == 'indices':
        subset = Market1501(root, split='train', indices=[0, 3])
    else:
        subset = Market1501(root, split='train').get_subset([0, 3])
    records = records_of(subset)
    persons = {market_pid(r['img_path']) for r in records}
    assert len(persons) == 2
    assert [r['pid'] for r in records] == relabelled(records)
    assert subset.metainfo['num_pids'] == len(persons)


def test_a_regdb_trial_in_metainfo_names_the_trial_loaded(tmp_path):
    """A user trains RegDB trial 2 (``trial=2``) and, reading that "the
    trial is stored in the metainfo", tests with ``RegDB(split='test',
    metainfo=dict(trial=2))``. The records are trial 1's (the ``trial``
    argument's default), whose test persons are trial 2's training
    persons, but the metainfo says trial 2, so the identity-split check
    (docs/datasets.md, RegDB) passes and the model is scored on the
    persons it trained on: an inflated number reported as trial 2.

    Right (specs/mbn_vireid.md section 6: one model per trial, tested on
    that trial's test ids): the metainfo names the split its records
    come from, or the contradiction is refused naming ``trial``.
    """
    root = make_regdb(tmp_path / 'RegDB')
    train = RegDB(root, split='train', trial=2)
    try:
        test = RegDB(root, split='test', metainfo=dict(trial=2))
    except ValueError as error:
        assert 'trial' in str(error), str(error)
        return
    trained = set(REGDB_TRIALS[2]['train'])
    tested = {r['pid'] for r in records_of(test)}
    named = test.metainfo['trial']
    assert tested == set(REGDB_TRIALS[named]['test']), (
        f'metainfo trial={named} but the test persons are {sorted(tested)}')
    assert not trained & tested \
        or identity_split_conflict(train.metainfo, test.metainfo)


def test_a_sysu_mode_in_metainfo_names_the_pool_loaded(tmp_path):
    """A user evaluates ``SYSUMM01(split='test', mode='indoor',
    metainfo=dict(mode='all'))`` (a config edited in two places) with
    ``SYSUMetric(mode='all')``. The pool holds cams 1 and 2 only, the
    metainfo says all-search, the metric accepts it and prints indoor
    numbers under ``sysu-all/``.

    Right (specs/mbn_vireid.md section 5.3: the all-search gallery is
    drawn from cams 1, 2, 4, 5; indoor from cams 1, 2): the metainfo's
    ``mode`` is that of the pool, or the contradiction is refused naming
    ``mode``.
    """
    os.makedirs(tmp_path / 'SYSU-MM01')
    root = make_sysu(str(tmp_path / 'SYSU-MM01'))
    try:
        test = SYSUMM01(
            root, split='test', mode='indoor', metainfo=dict(mode='all'))
    except ValueError as error:
        assert 'mode' in str(error), str(error)
        return
    test_ids = {int(i) for i in re.findall(r'\d+', SYSU_IDS['test'])}
    cams = dict(all=(1, 2, 4, 5), indoor=(1, 2))[test.metainfo['mode']]
    expected = sum(n for pid, per_cam in SYSU_IMAGES.items()
                   if pid in test_ids for cam, n in per_cam.items()
                   if cam in cams)
    gallery = [r for r in records_of(test) if r['role'] == 'gallery']
    assert len(gallery) == expected
    assert {r['camid'] + 1 for r in gallery} <= set(cams)


@pytest.mark.parametrize('option', [
    dict(filter_cfg=dict(min_images_per_id=2)),
    dict(data_prefix=dict(img_path='bounding_box_train_clean/')),
])
def test_mmengine_options_a_reid_dataset_never_applies_are_refused(
        tmp_path, option):
    """A user writes mmengine's ``filter_cfg`` (to drop persons with one
    image) or ``data_prefix=dict(img_path=...)`` (to train on a cleaned
    image folder) into a Market config, as in other OpenMMLab configs.
    ``BaseReIDDataset`` keeps them and parses ``data_root``'s fixed
    layout: the training set is the full, unfiltered one (even with a
    prefix folder that does not exist), with no word.

    Right: the promise "no silent fallback ... bad input gets a clear
    error naming the key": an option that cannot take effect is refused,
    naming it.
    """
    root = make_market1501(tmp_path / 'market1501')
    (key, ) = option
    with pytest.raises((TypeError, ValueError), match=key):
        Market1501(root, split='train', **option)


def test_a_lazy_dataset_has_the_eager_records_and_metainfo(tmp_path):
    """``lazy_init=True`` parses the tree on first use: the records, their
    order and the metainfo (``num_pids``, role counts) are the eager
    dataset's, for the train and the test split."""
    root = make_market1501(tmp_path / 'market1501')
    for split in ('train', 'test'):
        eager = Market1501(root, split=split)
        lazy = Market1501(root, split=split, lazy_init=True)
        assert not lazy._fully_initialized
        assert records_of(lazy) == records_of(eager)
        assert lazy.metainfo == eager.metainfo


@pytest.mark.parametrize('sampler', [
    dict(type='InfiniteSampler', shuffle=False),
    dict(type='InfiniteSampler', shuffle=True),
])
def test_an_evaluation_loop_with_an_endless_sampler_is_refused(
        tmp_path, sampler):
    """A user copies the ``InfiniteSampler`` of an iteration-based
    training config into ``test_dataloader``. ``ReIDTestLoop`` is built
    and then iterates its dataloader forever (``Epoch(test) [210/2]``
    and on; the collected features grow without bound): no number, no
    error. (``tools/analysis_tools/extract_features.py`` refuses it.)

    Right: the loop evaluates every sample once (docs/get_started.md:
    "Every sample of a val/test set is evaluated"), so a sampler that
    never ends is refused when the loop is built, naming it.
    """
    root = make_market1501(tmp_path / 'market1501')
    dataloader = dict(
        batch_size=4,
        num_workers=0,
        sampler=sampler,
        collate_fn=dict(type='default_collate'),
        dataset=dict(
            type='Market1501', data_root=root, split='test',
            pipeline=PIPELINE))
    runner = Runner(
        model=copy.deepcopy(TINY_BOT_MODEL),
        work_dir=str(tmp_path / 'work'),
        default_scope='mmreid',
        test_dataloader=dataloader,
        test_evaluator=dict(type='ReIDMetric'),
        test_cfg=dict(type='ReIDTestLoop'))
    with pytest.raises(ValueError, match='InfiniteSampler'):
        runner.test_loop


def test_training_on_mmengine_concat_of_reid_datasets_is_refused(tmp_path):
    """A user adds their own Market-format folder to Market's training
    set with mmengine's ``ConcatDataset`` (mmengine refuses the differing
    counts, so they pass ``ignore_keys`` as its message leads them to).
    Each dataset labels its persons from 0, so person 0100 of the second
    folder trains as Market's person 0002: 6 persons become 3 classes;
    ``metainfo['num_pids']`` is the first dataset's 3, and
    ``TrainSetupCheckHook`` accepts ``num_classes=3``. (Validation and
    test refuse an mmengine ``ConcatDataset``; ``ConcatReIDDataset``
    gives the 6 persons 6 labels.)

    Right: docs/datasets.md, multi-source training: identities of
    different sources never collide; a training set whose labels are
    numbered per dataset is refused before the first iteration.
    """
    from types import SimpleNamespace

    from mmengine.dataset import ConcatDataset

    from mmreid.engine.hooks import TrainSetupCheckHook
    from ..fixtures.files import touch
    first = make_market1501(tmp_path / 'market1501')
    second = tmp_path / 'mine'
    touch(second / 'bounding_box_train', '0100_c1s1_000001_01.jpg',
          '0100_c2s1_000002_01.jpg', '0200_c1s1_000003_01.jpg',
          '0300_c4s1_000004_01.jpg')
    touch(second / 'query', '0100_c1s1_000005_00.jpg')
    touch(second / 'bounding_box_test', '0100_c2s1_000006_00.jpg')
    parts = [
        Market1501(first, split='train'),
        Market1501(str(second), split='train')
    ]
    persons = {(i, market_pid(r['img_path']))
               for i, part in enumerate(parts) for r in records_of(part)}
    both = ConcatDataset(
        parts,
        ignore_keys=['num_pids', 'num_cams', 'num_images', 'role_counts'])
    labels = {r['pid'] for r in records_of(both)}
    assert (len(persons), len(labels)) == (6, 3)  # the collision
    runner = SimpleNamespace(
        model=SimpleNamespace(
            head=SimpleNamespace(num_classes=both.metainfo['num_pids'])),
        train_dataloader=SimpleNamespace(
            dataset=both, batch_size=8, sampler=SimpleNamespace()))
    with pytest.raises(ValueError, match='ConcatDataset'):
        TrainSetupCheckHook().before_train(runner)


def make_market_test(root):
    """A Market-format test split: 4 persons over cameras 1..3, 3 queries
    and 10 gallery images (one distractor, one junk): 13 samples, which
    batches of 4 do not divide."""
    from ..fixtures.files import touch
    root = osp.join(str(root), 'market1501')
    touch(osp.join(root, 'bounding_box_train'), '0001_c1s1_000001_01.jpg')
    touch(osp.join(root, 'query'), '0001_c1s1_000001_00.jpg',
          '0002_c2s1_000002_00.jpg', '0003_c3s1_000003_00.jpg')
    touch(osp.join(root, 'bounding_box_test'), '0001_c1s1_000010_01.jpg',
          '0001_c2s1_000011_01.jpg', '0001_c3s1_000012_01.jpg',
          '0002_c1s1_000013_01.jpg', '0002_c2s1_000014_01.jpg',
          '0003_c1s1_000015_01.jpg', '0003_c2s1_000016_01.jpg',
          '0004_c1s1_000017_01.jpg', '0000_c2s1_000018_01.jpg',
          '0004_c3s1_000019_01.jpg', '-1_c1s1_000020_01.jpg')
    for folder in ('query', 'bounding_box_test'):
        write_images(osp.join(root, folder))
    return root


def reference_r1_map(features, records):
    """R1 and mAP (percent) by the definition: Euclidean distance; for
    each query the gallery images of its pid and camera are removed
    (the Market rule, specs/evaluation.md); AP is the mean over the
    positives of the precision at their ranks; queries without a
    positive are left out."""
    query = [i for i, r in enumerate(records) if r['role'] == 'query']
    gallery = [i for i, r in enumerate(records) if r['role'] == 'gallery']
    hits, aps = [], []
    for q in query:
        kept = [
            g for g in gallery
            if not (records[g]['pid'] == records[q]['pid']
                    and records[g]['camid'] == records[q]['camid'])
        ]
        dist = [float(np.linalg.norm(features[q] - features[g]))
                for g in kept]
        ranked = [kept[j] for j in np.argsort(dist, kind='stable')]
        match = [records[g]['pid'] == records[q]['pid'] for g in ranked]
        if not any(match):
            continue
        hits.append(float(match[0]))
        ranks = [k + 1 for k, m in enumerate(match) if m]
        aps.append(np.mean([(n + 1) / r for n, r in enumerate(ranks)]))
    return 100 * np.mean(hits), 100 * np.mean(aps)


def test_shuffled_repeated_and_odd_batches_give_the_definitions_numbers(
        tmp_path):
    """The same model on Market's test split evaluated with the default
    loader, with ``shuffle=True`` and batches of 4 for 13 samples, and
    wrapped in mmengine's ``RepeatDataset(times=2)`` (each sample handed
    twice) prints the R1 and mAP computed by the definition from the
    model's own features: the metric orders the samples by
    ``sample_idx`` and counts a repeated sample once."""
    import torch
    from mmengine.dataset import pseudo_collate
    root = make_market_test(tmp_path)
    dataset = dict(
        type='Market1501', data_root=root, split='test', pipeline=PIPELINE)

    def evaluate(name, dataloader):
        runner = Runner(
            model=copy.deepcopy(TINY_BOT_MODEL),
            work_dir=str(tmp_path / name),
            default_scope='mmreid',
            randomness=dict(seed=0),
            test_dataloader=dict(
                dict(
                    batch_size=4,
                    num_workers=0,
                    sampler=dict(type='DefaultSampler', shuffle=False),
                    collate_fn=dict(type='default_collate')), **dataloader),
            test_evaluator=dict(type='ReIDMetric'),
            test_cfg=dict(type='ReIDTestLoop'))
        return runner, runner.test()

    runner, plain = evaluate('plain', dict(dataset=dataset))
    # The definition's numbers, from the runner's model, one image at a
    # time.
    model = runner.model.eval()
    built = runner.test_dataloader.dataset
    records = records_of(built)
    with torch.no_grad():
        features = [
            model.test_step(pseudo_collate([built[i]
                                            ]))[0].pred_feature.numpy()
            for i in range(len(built))
        ]
    r1, mean_ap = reference_r1_map(features, records)
    assert plain['reid/R1'] == pytest.approx(r1, abs=1e-4)
    assert plain['reid/mAP'] == pytest.approx(mean_ap, abs=1e-4)
    _, shuffled = evaluate(
        'shuffled',
        dict(
            dataset=dataset,
            sampler=dict(type='DefaultSampler', shuffle=True, seed=3)))
    _, repeated = evaluate(
        'repeated', dict(dataset=dict(type='RepeatDataset', times=2,
                                      dataset=dataset)))
    for got in (shuffled, repeated):
        assert got['reid/R1'] == pytest.approx(r1, abs=1e-4)
        assert got['reid/mAP'] == pytest.approx(mean_ap, abs=1e-4)
        assert got['reid/num_query'] == plain['reid/num_query'] == 3


def test_a_subset_with_a_repeated_index_does_not_count_an_image_twice(
        tmp_path):
    """A user draws a random test subset with ``np.random.choice(n, k)``
    (with replacement, numpy's default) and passes it as ``indices``.
    A repeated index puts one gallery image in the gallery twice, under
    two ``sample_idx``: ``ReIDMetric`` keeps both, so a negative ranked
    above the positive counts twice and the mAP drops (here 33.3 ->
    25.0 with the distractor repeated); a repeated query is averaged
    twice.

    Right: docs/datasets.md, common rules, "a role lists an image once:
    an img_path repeated within ... the query or the gallery records (it
    would be counted, and ranked, twice) is an error"; the subset's
    numbers are those of its distinct images (or the subset is refused,
    naming ``indices``).
    """
    import torch

    from mmreid.evaluation.metrics import ReIDMetric
    root = make_market1501(tmp_path / 'market1501')
    full = records_of(Market1501(root, split='test'))
    distractor = next(
        i for i, r in enumerate(full)
        if r['role'] == 'gallery' and market_pid(r['img_path']) == 0)
    try:
        subset = Market1501(
            root,
            split='test',
            indices=list(range(len(full))) + [distractor])
    except ValueError as error:
        assert 'indices' in str(error), str(error)
        return
    records = records_of(subset)
    # One fixed feature per image: the query 0002 ranks 0099, the
    # distractor 0000, then its positive (specs: distances ascending).
    place = {
        '0002_c1s1_000001_00.jpg': [0., 0.],
        '0010_c2s1_000002_00.jpg': [9., 9.],
        '0099_c5s3_000007_02.jpg': [1., 0.],
        '0000_c3s1_000005_01.jpg': [2., 0.],
        '0002_c2s1_000003_01.jpg': [3., 0.],
        '0010_c2s1_000004_01.jpg': [5., 5.],
    }
    features = [
        np.asarray(place[osp.basename(r['img_path'])]) for r in records
    ]
    metric = ReIDMetric()
    metric.dataset_meta = subset.metainfo
    metric.process({}, [
        dict(
            pred_feature=torch.as_tensor(f),
            gt_label=r['pid'],
            camid=r['camid'],
            role=r['role'],
            sample_idx=r['sample_idx'],
            dataset=r['dataset'],
            img_path=r['img_path']) for f, r in zip(features, records)
    ])
    got = metric.evaluate(len(subset))
    distinct = {(r['role'], r['img_path']): (f, r)
                for f, r in zip(features, records)}
    feats, recs = zip(*distinct.values())
    r1, mean_ap = reference_r1_map(list(feats), list(recs))
    assert (r1, mean_ap) == pytest.approx((0.0, 100 / 3))
    assert got['reid/mAP'] == pytest.approx(mean_ap)
    assert got['reid/R1'] == pytest.approx(r1)


def test_a_test_subset_keeps_its_pids_and_counts_itself(tmp_path):
    """A test subset (``indices`` or ``get_subset``) keeps the original
    pids (docs/datasets.md, common rules: test split, "original pids
    kept") and its metainfo counts the subset; two subsets of one dataset
    count themselves, and the full dataset is unchanged."""
    root = make_market1501(tmp_path / 'market1501')
    full = Market1501(root, split='test')
    records = records_of(full)
    queries = [i for i, r in enumerate(records) if r['role'] == 'query']
    subsets = [
        Market1501(root, split='test', indices=queries),
        full.get_subset(queries)
    ]
    for subset in subsets:
        got = records_of(subset)
        pids = [r['pid'] for r in got]
        assert pids == [market_pid(r['img_path']) for r in got] == [2, 10]
        assert subset.metainfo['num_images'] == 2
        assert subset.metainfo['role_counts'] == dict(query=2)
    last = full.get_subset(-1)
    assert last.metainfo['num_images'] == 1
    assert full.get_subset(queries).metainfo['num_images'] == 2
    assert full.metainfo['num_images'] == len(records) == 6


def test_a_repeated_index_is_refused_in_every_form(tmp_path):
    """``get_subset`` and a negative index naming an image already chosen
    (``-1`` is the last record) repeat it as well: refused, naming
    ``indices`` and the image."""
    root = make_market1501(tmp_path / 'market1501')
    train = Market1501(root, split='train')
    last = osp.basename(train.get_data_info(len(train) - 1)['img_path'])
    for make in (lambda: train.get_subset([len(train) - 1, -1]),
                 lambda: Market1501(root, split='train', indices=[3, -1])):
        with pytest.raises(ValueError, match=f'indices.*{last}'):
            make()
    with pytest.raises(ValueError, match='indices'):
        Market1501(root, split='train', indices=[4])
    # A first-n subset larger than the split is not the whole split.
    for n in (len(train) + 1, -len(train) - 1):
        with pytest.raises(ValueError, match=f'indices={n} asks for '
                           f'{len(train) + 1} records, but the split has '
                           f'{len(train)}'):
            Market1501(root, split='train', indices=n)
    assert len(Market1501(root, split='train', indices=len(train))) == \
        len(train)


def test_metainfo_equal_to_the_arguments_or_a_rename_is_kept(tmp_path):
    """A ``metainfo`` that repeats what the arguments chose is accepted,
    and so is a new ``dataset_name`` that keeps the class's first part
    (a rename changes no record: the docs take dataset metadata as
    given); another ``direction`` or ``protocol_metric`` than the class
    sets is refused, naming the key."""
    root = make_regdb(tmp_path / 'RegDB')
    test = RegDB(
        root,
        split='test',
        trial=2,
        metainfo=dict(trial=2, direction='v2t', dataset_name='regdb-mine'))
    assert (test.metainfo['trial'], test.metainfo['dataset_name']) == \
        (2, 'regdb-mine')
    for key, value in (('direction', 't2v'), ('protocol_metric', None)):
        with pytest.raises(ValueError, match=f'metainfo {key}='):
            RegDB(root, split='test', metainfo={key: value})
    from mmreid.datasets import SynthReID  # refused before generating
    with pytest.raises(ValueError, match="metainfo domain='d1'"):
        SynthReID(
            str(tmp_path / 'synth'), domain=0, metainfo=dict(domain='d1'))


def test_a_count_in_metainfo_is_the_loaded_splits_or_refused(tmp_path):
    """``metainfo=dict(num_pids=...)`` states how many identities the
    user believes the split has. It was replaced by the counted value
    without a word; now a count other than the loaded split's is refused
    naming both, and the right one is accepted."""
    root = make_market1501(tmp_path / 'market1501')
    train = Market1501(root, split='train')
    pids = {market_pid(r['img_path']) for r in records_of(train)}
    assert train.num_pids == len(pids)
    kept = Market1501(
        root, split='train', metainfo=dict(num_pids=len(pids)))
    assert kept.num_pids == len(pids)
    with pytest.raises(ValueError, match=f'num_pids={len(pids) + 1}, but '
                       f'the loaded split has num_pids={len(pids)}'):
        Market1501(root, split='train', metainfo=dict(num_pids=len(pids) + 1))
    with pytest.raises(ValueError, match='metainfo num_images=1'):
        Market1501(root, split='test', metainfo=dict(num_images=1))


def test_a_test_sample_the_pipeline_drops_is_refused_naming_it(tmp_path):
    """In testing too, a sample whose pipeline gives None (an empty query
    loaded with ``ignore_empty=True``) is an error naming its file; and
    ``max_refetch``, which would never apply, is refused."""
    from mmcv.transforms import LoadImageFromFile
    root = make_market1501(tmp_path / 'market1501')
    write_images(osp.join(root, 'query'), skip=('0010', ))
    test = Market1501(
        root, split='test', pipeline=[LoadImageFromFile(ignore_empty=True)])
    index = next(i for i, r in enumerate(records_of(test))
                 if market_pid(r['img_path']) == 10)
    assert test[0]['img_path'] == test.get_data_info(0)['img_path']
    with pytest.raises(ValueError, match='0010_c2s1_000002_00.jpg'):
        test[index]
    with pytest.raises(ValueError, match='max_refetch'):
        Market1501(root, split='train', max_refetch=10)


def test_a_multi_source_sample_the_pipeline_drops_is_not_replaced(tmp_path):
    """``ConcatReIDDataset`` (mmengine's ``__getitem__`` as well) refuses
    a training sample its pipeline drops, naming the file, instead of
    training another image in its place."""
    from mmcv.transforms import LoadImageFromFile

    from mmreid.datasets import ConcatReIDDataset
    root = make_market1501(tmp_path / 'market1501')
    write_images(osp.join(root, 'bounding_box_train'), skip=('0007', ))
    both = ConcatReIDDataset([Market1501(root, split='train')],
                             pipeline=[LoadImageFromFile(ignore_empty=True)])
    index = next(i for i, r in enumerate(records_of(both))
                 if market_pid(r['img_path']) == 7)
    with pytest.raises(ValueError, match='0007_c3s1_000001_01.jpg'):
        both[index]


def test_a_renamed_split_dataset_keeps_the_leak_check(tmp_path):
    """A user trains RegDB trial 1 and tests trial 2 under their own name
    (``metainfo=dict(dataset_name='myregdb')``). The identity-split leak
    check tells datasets apart by the name before its first ``-``, so it
    saw two datasets and let the model be tested on identities it trained
    on (trial 2's test persons are trial 1's training persons), an
    inflated number. Such a rename is refused; one that keeps ``regdb``
    before the ``-`` is kept, and the check still sees the leak."""
    root = make_regdb(tmp_path / 'RegDB')
    train = RegDB(root, split='train', trial=1)
    with pytest.raises(ValueError, match="dataset_name='myregdb' renames"):
        RegDB(
            root, split='test', trial=2,
            metainfo=dict(dataset_name='myregdb'))
    renamed = RegDB(
        root, split='test', trial=2, metainfo=dict(dataset_name='regdb-x'))
    assert identity_split_conflict(train.metainfo, renamed.metainfo)
