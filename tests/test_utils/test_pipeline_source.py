"""One answer to "which test pipeline" for the API and the tools
(:mod:`mmreid.utils.pipeline_source`), in ``tools/test.py``'s order."""
import pytest
from mmengine.config import Config

from mmreid.utils.pipeline_source import (inference_pipelines,
                                          resolve_test_pipeline,
                                          split_datasets, split_targets)


def pipeline(size):
    return [
        dict(type='ReIDLoadImageFromFile'),
        dict(type='ReIDResize', size=size),
        dict(type='PackReIDInputs')
    ]


def target(name, size):
    return dict(
        name=name,
        dataloader=dict(dataset=dict(type='D', pipeline=pipeline(size))),
        evaluator=dict(type='ReIDMetric'))


def test_the_test_dataloader_wins_over_a_stale_test_pipeline():
    # test_pipeline is the variable the file substituted; the dataloader's
    # pipeline (here overridden, as --cfg-options would) is what
    # tools/test.py runs.
    keys = dict(
        test_pipeline=pipeline((32, 16)),
        test_dataloader=dict(dataset=dict(pipeline=pipeline((64, 32)))),
        val_dataloader=dict(dataset=dict(pipeline=pipeline((8, 4)))))
    source = resolve_test_pipeline(Config(keys))
    assert source.path == 'test_dataloader.dataset.pipeline'
    assert source.pipeline[1]['size'] == (64, 32)
    assert source.target is None
    # Without a test dataloader: test_pipeline, then the validation one.
    del keys['test_dataloader']
    assert resolve_test_pipeline(Config(keys)).path == 'test_pipeline'
    del keys['test_pipeline']
    assert resolve_test_pipeline(Config(keys)).path == \
        'val_dataloader.dataset.pipeline'
    with pytest.raises(KeyError, match='no test pipeline'):
        resolve_test_pipeline(Config(dict()))


def test_multi_target_pipelines():
    cfg = Config(
        dict(
            test_pipeline=pipeline((256, 128)),
            test_dataloader=dict(),
            test_cfg=dict(targets=[target(name, (64, 32)) for name in 'ab'])))
    # The same pipeline everywhere: no choice needed.
    source = resolve_test_pipeline(cfg)
    assert source.path == 'test_cfg.targets.0.dataloader.dataset.pipeline'
    assert source.pipeline[1]['size'] == (64, 32)
    assert resolve_test_pipeline(cfg, 'b').path == \
        'test_cfg.targets.1.dataloader.dataset.pipeline'
    unknown = r"--target 'c': no such target.*\['a', 'b'\]"
    with pytest.raises(ValueError, match=unknown):
        resolve_test_pipeline(cfg, 'c', option='--target {}')
    # Different pipelines: refused without a choice, naming both.
    cfg.test_cfg.targets[1] = target('b', (128, 64))
    with pytest.raises(ValueError) as info:
        resolve_test_pipeline(cfg, option='--target {}')
    message = str(info.value)
    assert '2 different pipelines' in message
    assert 'test_cfg.targets.0.dataloader.dataset.pipeline' in message
    assert 'test_cfg.targets.1.dataloader.dataset.pipeline' in message
    assert "--target NAME (one of ['a', 'b'])" in message
    assert resolve_test_pipeline(cfg, 'b').pipeline[1]['size'] == (128, 64)
    assert len(inference_pipelines(cfg)) == 2
    # A name where there are no targets.
    plain = Config(dict(test_pipeline=pipeline((32, 16))))
    with pytest.raises(ValueError, match='no multi-target test loop'):
        resolve_test_pipeline(plain, 'a')


def test_split_datasets():
    cfg = Config(
        dict(
            test_dataloader=dict(),
            test_cfg=dict(targets=[target('a', (64, 32))]),
            train_dataloader=dict(dataset=dict(type='T', pipeline=[]))))
    [(name, key, dataset)] = split_datasets(cfg, 'test')
    assert (name, key) == ('a', 'test_cfg.targets.0.dataloader.dataset')
    assert dataset['type'] == 'D'
    train = split_datasets(cfg, 'train')
    assert train[0][:2] == ('T', 'train_dataloader.dataset')
    with pytest.raises(KeyError, match=r'no val_dataloader\.dataset'):
        split_datasets(cfg, 'val')


def test_pipelines_no_name_chooses_are_refused():
    """The datasets of a ConcatDataset and a list of test dataloaders may
    run different pipelines: every one counts, not the first only."""
    concat = Config(
        dict(
            test_dataloader=dict(
                dataset=dict(
                    type='ConcatDataset',
                    datasets=[
                        dict(type='D', pipeline=pipeline((32, 16))),
                        dict(type='D', pipeline=pipeline((64, 32)))
                    ]))))
    with pytest.raises(
            ValueError,
            match=r'2 different pipelines.*'
            r'test_dataloader\.dataset\.datasets\.1\.pipeline.*'
            r'give them the same pipeline'):
        resolve_test_pipeline(concat)
    loaders = Config(
        dict(test_dataloader=[
            dict(dataset=dict(pipeline=pipeline((32, 16)))),
            dict(dataset=dict(pipeline=pipeline((64, 32))))
        ]))
    with pytest.raises(
            ValueError, match=r'test_dataloader\.1\.dataset\.pipeline'):
        resolve_test_pipeline(loaders)


def test_a_wrapped_dataset_and_unnamed_targets():
    # A wrapper's pipeline is under its dataset; a target without a name
    # is named by its index.
    wrapped = dict(
        type='RepeatDataset',
        times=2,
        dataset=dict(type='D', pipeline=pipeline((32, 16))))
    plain = dict(type='D', pipeline=pipeline((64, 32)))
    cfg = Config(
        dict(
            test_dataloader=dict(),
            test_cfg=dict(targets=[
                dict(dataloader=dict(dataset=wrapped)),
                dict(dataloader=dict(dataset=plain))
            ])))
    assert split_targets(cfg) == ['0', '1']
    source = resolve_test_pipeline(cfg, '0')
    assert source.path == \
        'test_cfg.targets.0.dataloader.dataset.dataset.pipeline'
    assert source.pipeline[1]['size'] == (32, 16)
    assert resolve_test_pipeline(cfg, '1').pipeline[1]['size'] == (64, 32)


def test_the_pipeline_is_a_copy():
    cfg = Config(
        dict(test_dataloader=dict(dataset=dict(pipeline=pipeline((8, 4))))))
    resolve_test_pipeline(cfg).pipeline[1]['size'] = (1, 1)
    assert resolve_test_pipeline(cfg).pipeline[1]['size'] == (8, 4)


def test_a_chosen_target_with_different_pipelines_is_refused():
    concat = dict(
        type='ConcatDataset',
        datasets=[
            dict(type='D', pipeline=pipeline((32, 16))),
            dict(type='D', pipeline=pipeline((64, 32)))
        ])
    cfg = Config(
        dict(
            test_dataloader=dict(),
            test_cfg=dict(targets=[
                dict(name='a', dataloader=dict(dataset=concat)),
                target('b', (64, 32))
            ])))
    with pytest.raises(ValueError) as info:
        resolve_test_pipeline(cfg, 'a')
    assert str(info.value).endswith('give them the same pipeline')
