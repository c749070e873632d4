"""A model is never evaluated on identities it trained on: another RegDB
trial or DG split of its training set is refused, in validation (before
the first iteration) and in a test from its checkpoint."""
import pytest
import torch
from mmengine.config import Config

from mmreid.datasets.base_reid_dataset import identity_split_conflict
from mmreid.engine.runner import ReIDRunner
from ..fixtures.dataset_trees import make_regdb, regdb_dataset


def regdb_runner(make_config, tmp_path, train_trial, eval_trial, **cfg):
    root = make_regdb(tmp_path / 'RegDB')
    config = Config.fromfile(make_config())
    config.train_dataloader.dataset = regdb_dataset(root, 'train', train_trial)
    # Two training identities: P = 2.
    config.train_dataloader.batch_size = 4
    config.train_dataloader.sampler.batch_size = 4
    for key in ('val_dataloader', 'test_dataloader'):
        config[key].dataset = regdb_dataset(root, 'test', eval_trial)
    # RegDB's test set is evaluated by its protocol's metric only.
    config.val_evaluator = config.test_evaluator = dict(type='RegDBMetric')
    config.model.head.num_classes = 2
    config.work_dir = str(tmp_path / 'work')
    config.merge_from_dict(cfg)
    return ReIDRunner.from_cfg(config)


def test_the_rule():
    train = dict(dataset_name='regdb', trial=2, direction='v2t')
    assert identity_split_conflict(train,
                                   dict(dataset_name='regdb-v2t',
                                        trial=2)) is None
    message = identity_split_conflict(train,
                                      dict(dataset_name='regdb-t2v', trial=1))
    assert 'regdb trial=2' in message and 'regdb-t2v trial=1' in message
    # Another dataset, or a set without splits, is no conflict.
    assert identity_split_conflict(train,
                                   dict(dataset_name='sysu-mm01',
                                        trial=1)) is None
    assert identity_split_conflict(
        dict(dataset_name='viper', split_index=3),
        dict(dataset_name='viper', split_index=None)) is not None
    assert identity_split_conflict(None, dict(dataset_name='viper')) is None


def test_validation_on_another_trial_is_refused_before_training(
        make_config, tmp_path):
    # Trial 2 trains on ids 1 and 4, which are trial 1's test ids: the
    # validation numbers would be a training-set score.
    runner = regdb_runner(make_config, tmp_path, 2, 1)
    with pytest.raises(
            ValueError,
            match=r'validation: the model was trained '
            r'on regdb trial=2 and this evaluates regdb-v2t '
            r'trial=1.*Set trial=2'):
        runner.train()


def test_a_test_of_another_trial_is_refused(make_config, tmp_path):
    runner = regdb_runner(make_config, tmp_path, 2, 2)
    checkpoint = tmp_path / 'trial2.pth'
    torch.save(
        dict(
            state_dict=runner.model.state_dict(),
            meta=dict(dataset_meta=dict(dataset_name='regdb', trial=2))),
        checkpoint)
    runner = regdb_runner(
        make_config, tmp_path / 'b', 2, 1, load_from=str(checkpoint))
    with pytest.raises(
            ValueError,
            match='ReIDTestLoop: the model was '
            'trained on regdb trial=2'):
        runner.test()


def test_the_training_sets_of_the_weights_before_are_checked():
    """A checkpoint of a fine-tune records the training sets its weights
    trained on before (``meta['pretrained_dataset_meta']``): a test on a
    split that one of them trained on is refused, naming it and advising
    other weights (another split of the latest set would not help)."""
    from types import SimpleNamespace

    from mmreid.engine.runner.training_sets import (check_identity_split,
                                                    pretrained_dataset_metas)
    dataset = SimpleNamespace(metainfo=dict(dataset_name='regdb-v2t', trial=1))
    loop = SimpleNamespace(dataloader=SimpleNamespace(dataset=dataset))
    meta = dict(
        dataset_meta=dict(dataset_name='regdb', trial=1),
        pretrained_dataset_meta=[
            dict(dataset_name='market1501'),
            dict(dataset_name='regdb', trial=3)
        ])
    runner = SimpleNamespace(
        _train_loop=None,
        loaded_dataset_meta=meta['dataset_meta'],
        loaded_pretrained_meta=pretrained_dataset_metas(meta, 'ft.pth'))
    with pytest.raises(
            ValueError,
            match=r'^ReIDTestLoop: the weights were trained before on regdb '
            r'trial=3 and this evaluates regdb-v2t trial=1.*never trained'):
        check_identity_split(runner, loop, 'ReIDTestLoop')
    runner.loaded_pretrained_meta = meta['pretrained_dataset_meta'][:1]
    check_identity_split(runner, loop, 'ReIDTestLoop')
    with pytest.raises(
            TypeError,
            match=r"'bad.pth': meta\['pretrained_dataset_meta'\] is "
            r"'regdb', expected a list"):
        pretrained_dataset_metas(
            dict(pretrained_dataset_meta='regdb'), 'bad.pth')


def test_a_multi_source_training_set_is_checked_per_source():
    # ConcatReIDDataset's metainfo: the wrapper's name joins the sources'
    # and has no split key; each source entry carries its own.
    trained = dict(
        dataset_name='prid2011+market1501',
        sources=[
            dict(name='prid2011', split_index=0, split_used='train'),
            dict(name='market1501', split_used='train'),
        ])
    message = identity_split_conflict(
        trained, dict(dataset_name='prid2011', split_index=1))
    assert 'prid2011 split_index=0' in message
    assert 'source 0 of the training set' in message
    assert identity_split_conflict(
        trained, dict(dataset_name='prid2011', split_index=0)) is None
    # Market's train split only: its test split is unseen.
    assert identity_split_conflict(trained,
                                   dict(dataset_name='market1501')) is None
    # A checkpoint written before sources recorded their split: nothing to
    # compare, so it still loads.
    older = dict(
        dataset_name='prid2011',
        sources=[dict(name='prid2011', split_used='train')])
    assert identity_split_conflict(
        older, dict(dataset_name='prid2011', split_index=1)) is None


def test_a_combine_all_source_refuses_its_own_test_set():
    # GMN P3 / DIMN: Market-1501 and CUHK03-NP trained on all their
    # identities, test split included.
    p3 = dict(
        dataset_name='market1501+msmt17-v1+cuhk-sysu',
        sources=[
            dict(name='market1501', split_used='all'),
            dict(name='cuhk03-np-detected', split_used='all'),
            dict(name='cuhk-sysu', split_used='train'),
        ])
    message = identity_split_conflict(p3, dict(dataset_name='market1501'))
    assert 'every identity of market1501' in message
    assert 'source 0 of the training set' in message
    # The other CUHK03-NP variant shows the same people.
    assert 'cuhk03-np-detected' in identity_split_conflict(
        p3, dict(dataset_name='cuhk03-np-labeled'))
    # Even as the only source, named exactly like the evaluated set.
    alone = dict(
        dataset_name='market1501',
        sources=[dict(name='market1501', split_used='all')])
    assert identity_split_conflict(alone,
                                   dict(dataset_name='market1501')) is not None
    # Leave-one-out: the target is not a source.
    for target in ('msmt17-v1', 'prid2011', 'grid', 'dukemtmc'):
        assert identity_split_conflict(p3, dict(dataset_name=target)) is None


def test_a_test_set_concatenating_datasets_is_refused(make_config, tmp_path):
    """Two datasets ranked as one gallery (mmengine's ConcatDataset, which
    needs ignore_keys when the metainfo differ, and not when it is the
    same dataset twice): refused before extraction."""
    runner = regdb_runner(make_config, tmp_path, 1, 1)
    test = runner.cfg.test_dataloader.dataset
    runner = regdb_runner(
        make_config,
        tmp_path / 'b',
        1,
        1,
        test_dataloader=dict(
            dataset=dict(type='ConcatDataset', datasets=[test, test],
                         _delete_=True)))
    with pytest.raises(
            ValueError,
            match=r'ReIDTestLoop: the test set is a ConcatDataset of 2 '
            'datasets, ranked as one gallery'):
        runner.test()


def test_every_target_of_a_multi_target_loop_is_checked():
    """A multi-target loop's own ``dataloader`` is its current (first)
    target's; the check covers every target, so a second target on another
    trial of the training set is refused and named."""
    from types import SimpleNamespace

    from mmreid.engine.runner.training_sets import check_identity_split

    def target(name, trial):
        dataset = SimpleNamespace(
            metainfo=dict(dataset_name='regdb-v2t', trial=trial))
        return SimpleNamespace(
            name=name, dataloader=SimpleNamespace(dataset=dataset))

    runner = SimpleNamespace(
        _train_loop=None,
        loaded_dataset_meta=dict(dataset_name='regdb', trial=1))
    targets = [target('t1', 1), target('t2', 2)]
    loop = SimpleNamespace(targets=targets, dataloader=targets[0].dataloader)
    with pytest.raises(
            ValueError,
            match=r'^MultiTargetTestLoop \(t2\): the model was trained on '
            r'regdb trial=1 and this evaluates regdb-v2t trial=2'):
        check_identity_split(runner, loop, 'MultiTargetTestLoop')
    # Both targets on the trained trial: accepted.
    loop.targets[1] = target('t2', 1)
    check_identity_split(runner, loop, 'MultiTargetTestLoop')
