"""A model is never evaluated on identities it trained on: another RegDB
trial or DG split of its training set is refused, in validation (before
the first iteration) and in a test from its checkpoint."""
import pytest
import torch
from mmengine.config import Config

from mmreid.datasets.base_reid_dataset import identity_split_conflict
from mmreid.engine.runner import ReIDRunner
from ..fixtures.dataset_trees import make_regdb


def regdb(root, split, trial):
    return dict(
        type='RegDB',
        data_root=root,
        split=split,
        trial=trial,
        pipeline=[
            dict(type='ReIDLoadImageFromFile'),
            dict(type='PackReIDInputs')
        ])


def regdb_runner(make_config, tmp_path, train_trial, eval_trial, **cfg):
    root = make_regdb(tmp_path / 'RegDB')
    config = Config.fromfile(make_config())
    config.train_dataloader.dataset = regdb(root, 'train', train_trial)
    # Two training identities: P = 2.
    config.train_dataloader.batch_size = 4
    config.train_dataloader.sampler.batch_size = 4
    for key in ('val_dataloader', 'test_dataloader'):
        config[key].dataset = regdb(root, 'test', eval_trial)
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
