"""Wrong-number hunt: multi-source training data and the class count.

``ConcatReIDDataset`` must give every person of every source exactly one
training label (specs/datasets.md section 4.1: identities of different
sources never collide, identities of one source are never split), and the
classifier size the start-up check demands must be the number of those
persons. The references here are computed from the file names of tiny
fake dataset trees, by the datasets' own naming rules (docs/datasets.md),
not from mmreid's code.
"""
import os.path as osp
import re
from collections import defaultdict
from types import SimpleNamespace

import pytest

from mmreid.datasets import ConcatReIDDataset
from mmreid.engine.hooks import TrainSetupCheckHook
from ..fixtures.dataset_trees import (make_cuhk02, make_market1501,
                                      make_regdb, make_sysu)

MARKET_NAME = re.compile(r'^(-?\d+)_c(\d)s\d+_\d+_\d+\.jpg$')
CUHK02_PATH = re.compile(r'P(\d)/cam(\d)/(\d+)_\d+\.png$')


def records_of(dataset):
    """Every record of ``dataset``, in order."""
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def images_with_two_labels(dataset):
    """Images trained on under more than one label: ``{path: labels}``.

    One image shows one person, so it must have exactly one label.
    """
    labels = defaultdict(set)
    for record in records_of(dataset):
        labels[osp.realpath(record['img_path'])].add(record['pid'])
    return {
        '/'.join(path.split(osp.sep)[-3:]): sorted(pids)
        for path, pids in labels.items() if len(pids) > 1
    }


def build_or_refusal(datasets):
    """The ConcatReIDDataset of ``datasets``, or None when it is refused
    with a ValueError (refusing is a correct answer too)."""
    try:
        return ConcatReIDDataset(datasets=datasets)
    except ValueError:
        return None


def test_combine_all_test_dataset_that_is_the_train_split(tmp_path):
    """A combine-all source's test_dataset must be its test split.

    The user builds the source's test split by hand, as docs/datasets.md
    and the ConcatReIDDataset docstring allow (``test_dataset``, "a test
    split with other arguments"), and forgets ``split='test'``: the
    dataset's default split is ``'train'``. mmreid accepts it, relabels
    the train images as "test identities" ``n_train, ...`` and trains
    every train image under two labels: each person is two classes and
    ``num_pids`` (the classifier size the start-up check demands) is
    inflated. Right: refuse a test_dataset whose records are not query or
    gallery records (or that shares images with the train split), as a
    train split given as a plain source is refused (specs/datasets.md
    4.1 rule 3: combine-all adds query and gallery).
    """
    market = dict(
        type='Market1501', data_root=make_market1501(tmp_path / 'm'))
    dataset = build_or_refusal([
        dict(dataset=market, combine_all=True, test_dataset=dict(market))
    ])
    if dataset is None:
        return
    twice = images_with_two_labels(dataset)
    assert not twice, f'images trained under two labels: {twice}'


@pytest.mark.parametrize(
    'make, first, second',
    [(make_regdb, dict(type='RegDB', trial=1, direction='v2t'),
      dict(type='RegDB', trial=1, direction='t2v')),
     (make_sysu, dict(type='SYSUMM01', mode='all'),
      dict(type='SYSUMM01', mode='indoor'))],
    ids=['regdb-direction', 'sysu-mode'])
def test_one_train_split_under_two_test_protocols(tmp_path, make, first,
                                                  second):
    """The same training images given twice must be refused.

    A visible-infrared user lists RegDB trial 1 (or SYSU-MM01) twice, once
    per evaluation direction (``v2t``/``t2v``) or search mode
    (``all``/``indoor``). Those arguments choose the query and gallery of
    the test split only: both train splits list the same images of the
    same people. mmreid accepts them as two sources, so every person is
    two classes (``num_pids`` doubles). docs/datasets.md "Multi-source
    training" promises to refuse "the same dataset given twice (same
    type, data_root, version, variant and split keys)"; type, data_root
    and trial agree here.
    """
    root = str(make(str(tmp_path / 'data')))
    dataset = build_or_refusal(
        [dict(first, data_root=root),
         dict(second, data_root=root)])
    if dataset is None:
        return
    twice = images_with_two_labels(dataset)
    assert not twice, f'images trained under two labels: {twice}'


def test_cuhk02_given_by_its_folder_and_its_dataset_folder(tmp_path):
    """CUHK02 given two ways must be refused, as Market-1501 is.

    CUHK02 reads ``<data_root>/Dataset/P1..P5`` (fast-reid) or
    ``<data_root>/P1..P5`` (MetaBIN), so ``data/cuhk02`` and
    ``data/cuhk02/Dataset`` read the same images (e.g. ``sources=
    ['CUHK02']`` next to a copied MetaBIN-style entry). mmreid trains them
    as two sources: every CUHK02 person is two classes. The
    ConcatReIDDataset docstring promises to refuse "two sources that read
    the same folder (its resolved data_root, links followed)", and
    ``built_source_identity`` says a dataset "given once by its folder and
    once by the folder above it" is caught.
    """
    root = make_cuhk02(tmp_path / 'cuhk02')
    dataset = build_or_refusal([
        dict(type='CUHK02', data_root=root),
        dict(type='CUHK02', data_root=osp.join(root, 'Dataset'))
    ])
    if dataset is None:
        return
    twice = images_with_two_labels(dataset)
    assert not twice, f'images trained under two labels: {twice}'


def reference_identity(path):
    """(source, identity) and (source, physical camera) of an image, from
    its path by the dataset's naming rules (docs/datasets.md).

    Market-1501 train and test identities are namespaced apart in
    combine-all (specs/datasets.md 4.1 rule 3) but share cameras; a
    CUHK02 identity is (pair, pid), its camera (pair, view).
    """
    match = CUHK02_PATH.search(path)
    if match:
        pair, view, pid = map(int, match.groups())
        return ('cuhk02', pair, pid), ('cuhk02', pair, view)
    match = MARKET_NAME.match(osp.basename(path))
    pid, cam = int(match.group(1)), int(match.group(2))
    split = 'train' if 'bounding_box_train' in path else 'test'
    return ('market', split, pid), ('market', cam)


def market_persons(folders):
    """Distinct Market-1501 pids in ``folders``, junk (-1) and
    distractors (0) left out (specs/datasets.md: Market rules)."""
    pids = set()
    for folder in folders:
        for path in folder.iterdir():
            match = MARKET_NAME.match(path.name)
            if match and int(match.group(1)) > 0:
                pids.add(int(match.group(1)))
    return pids


def test_labels_and_cameras_are_one_to_one_with_the_persons(tmp_path):
    """``sources=['Market1501', 'CUHK02'], combine_all=['Market1501']``,
    as docs/get_started.md shows: each person (Market train, Market test,
    CUHK02 (pair, pid)) has exactly one label and each label one person;
    each physical camera one camid; ``dsetid`` is the source index; the
    labels are ``0..N-1`` with ``N = num_pids``; a second build gives the
    same records."""
    make_market1501(tmp_path / 'market1501')
    make_cuhk02(tmp_path / 'cuhk02')
    kwargs = dict(
        sources=['Market1501', 'CUHK02'],
        data_root=str(tmp_path),
        combine_all=['Market1501'])
    dataset = ConcatReIDDataset(**kwargs)
    market = tmp_path / 'market1501'
    expected = (
        len(market_persons([market / 'bounding_box_train'])) +
        len(market_persons([market / 'query', market / 'bounding_box_test']))
        + 4)  # CUHK02: (1, 1), (1, 20), (3, 1), (5, 7)
    label_of, person_of = {}, {}
    camid_of, camera_of = {}, {}
    for record in records_of(dataset):
        person, camera = reference_identity(record['img_path'])
        assert record['dsetid'] == (0 if person[0] == 'market' else 1)
        assert label_of.setdefault(person, record['pid']) == record['pid']
        assert person_of.setdefault(record['pid'], person) == person
        assert camid_of.setdefault(camera, record['camid']) == \
            record['camid']
        assert camera_of.setdefault(record['camid'], camera) == camera
    assert len(label_of) == expected == dataset.num_pids
    assert sorted(person_of) == list(range(expected))
    assert records_of(ConcatReIDDataset(**kwargs)) == records_of(dataset)


def setup_runner(dataset, num_classes):
    """The parts of a runner ``TrainSetupCheckHook`` reads."""
    loader = SimpleNamespace(dataset=dataset, batch_size=None, sampler=None)
    model = SimpleNamespace(head=SimpleNamespace(num_classes=num_classes))
    return SimpleNamespace(model=model, train_dataloader=loader)


def test_start_up_check_demands_the_number_of_persons(tmp_path):
    """The class count the start-up check accepts is the number of
    distinct training persons of all sources together (docs/
    get_started.md: "one row per identity of all sources together"),
    counted here from the file names: Market-1501 train {2, 7, 10} and
    test {2, 10, 99} (a separate namespace), CUHK02 four (pair, pid)."""
    make_market1501(tmp_path / 'market1501')
    make_cuhk02(tmp_path / 'cuhk02')
    dataset = ConcatReIDDataset(
        sources=['Market1501', 'CUHK02'],
        data_root=str(tmp_path),
        combine_all=['Market1501'])
    persons = 3 + 3 + 4
    hook = TrainSetupCheckHook()
    hook.before_train(setup_runner(dataset, persons))
    for wrong in (persons - 1, persons + 1, 3 + 4):
        with pytest.raises(
                ValueError, match=f'set model.head.num_classes={persons}$'):
            hook.before_train(setup_runner(dataset, wrong))
