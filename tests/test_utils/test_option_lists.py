"""``--cfg-options`` keys and values that meet a list in the config."""
import os.path as osp

import pytest

from mmreid.utils.config import load_config
from ..fixtures.processes import REPO

MARKET = osp.join(REPO, 'configs/baseline/bot_r50_1xb64-120e_market1501.py')


@pytest.fixture
def two_metrics(tmp_path):
    """A config whose test evaluator is a list: a user added a metric."""
    path = tmp_path / 'two_metrics.py'
    path.write_text(f"_base_ = ['{MARKET}']\n"
                    "test_evaluator = [dict(type='ReIDMetric', "
                    "distance='euclidean'), dict(type='MyRank1Metric')]\n")
    return str(path)


def test_a_field_of_an_evaluator_list_needs_an_index(two_metrics):
    # mmengine's merge failed with "TypeError: list indices must be
    # integers or slices, not str".
    with pytest.raises(ValueError) as info:
        load_config(two_metrics, {'test_evaluator.distance': 'cosine'})
    message = str(info.value)
    assert message.startswith(
        "--cfg-options test_evaluator.distance='cosine': test_evaluator is "
        'a list of 2 items (0 ReIDMetric, 1 MyRank1Metric)')
    # Only the item that has the field is suggested.
    assert message.endswith(
        'e.g. --cfg-options test_evaluator.0.distance=cosine')
    cfg = load_config(two_metrics, {'test_evaluator.0.distance': 'cosine'})
    assert cfg.test_evaluator[0].distance == 'cosine'
    assert cfg.test_evaluator[1] == dict(type='MyRank1Metric')


def test_a_key_through_a_list_in_the_middle_needs_an_index():
    with pytest.raises(ValueError) as info:
        load_config(MARKET,
                    {'test_dataloader.dataset.pipeline.size': (128, 64)})
    message = str(info.value)
    assert 'test_dataloader.dataset.pipeline is a list of 3 items (0 ' \
        'ReIDLoadImageFromFile, 1 ReIDResize, 2 PackReIDInputs)' in message
    assert message.endswith('e.g. --cfg-options '
                            'test_dataloader.dataset.pipeline.1.size=(128,64)')


def test_a_delete_set_to_false_replaces_nothing():
    """``_delete_=False`` merges as any option does: a key through a list
    beneath it still needs an index."""
    pipeline = 'test_dataloader.dataset.pipeline'
    with pytest.raises(ValueError, match=f'{pipeline} is a list of 3 items'):
        load_config(
            MARKET, {
                'test_dataloader.dataset._delete_': False,
                f'{pipeline}.size': (128, 64)
            })


def test_an_index_past_the_end_of_a_list_is_refused(two_metrics):
    # mmengine: "KeyError: Index 2 exceeds the length of list [...]".
    with pytest.raises(
            ValueError,
            match=r'test_evaluator is a list of 2 items .*, '
            r'and it has no item 2'):
        load_config(two_metrics, {'test_evaluator.2.distance': 'cosine'})


def test_a_list_replaced_by_a_dict_with_delete_is_accepted(two_metrics):
    cfg = load_config(
        two_metrics,
        {'test_evaluator': dict(_delete_=True, type='ReIDMetric')})
    assert cfg.test_evaluator == dict(type='ReIDMetric')


def cli_error(capsys, *options):
    """The usage error ``tools/train.py``'s parser gives ``options``."""
    import argparse

    from mmreid.utils.config.runtime import add_runtime_args
    parser = argparse.ArgumentParser()
    add_runtime_args(parser, 'train_cfg.max_epochs=2')
    with pytest.raises(SystemExit):
        parser.parse_args(['--cfg-options', *options])
    return capsys.readouterr().err


@pytest.mark.parametrize(
    'key, value, fix',
    [
        # mmengine's DictAction recursed without end on these two.
        ('custom_hooks', "[dict(type='MyNoteHook',priority=1)]",
         '--cfg-options custom_hooks.0.type=MyNoteHook '
         'custom_hooks.0.priority=1'),
        ('test_cfg.targets.0.evaluator',
         "[dict(type='ReIDMetric', distance='euclidean')]",
         '--cfg-options test_cfg.targets.0.evaluator.0.type=ReIDMetric '
         'test_cfg.targets.0.evaluator.0.distance=euclidean'),
        # These reached the config as text (a list of pieces, or one
        # piece without its brackets).
        ('test_evaluator', "[{'type':'ReIDMetric','distance':'euclidean'}]",
         '--cfg-options test_evaluator.0.type=ReIDMetric '
         'test_evaluator.0.distance=euclidean'),
        ('custom_hooks', "[dict(type='MyNoteHook')]",
         '--cfg-options custom_hooks.0.type=MyNoteHook'),
        ('x', "(1, dict(a=1))", '--cfg-options x.1.a=1'),
    ])
def test_a_dict_literal_inside_a_list_is_a_usage_error(capsys, key, value,
                                                       fix):
    err = cli_error(capsys, f'{key}={value}')
    assert f'--cfg-options {key}={value}: a dict literal is not read as a ' \
        'dict there' in err
    assert fix in err
    assert 'a config that inherits this one' in err


def test_a_dict_literal_with_commas_is_shown_as_typed(capsys):
    # DictAction split it at its commas and dropped the quotes at the
    # pieces' ends: "{'type':'ReIDMetric,distance':'euclidean'}".
    value = "{'type': 'ReIDMetric', 'distance': 'euclidean'}"
    err = cli_error(capsys, f'test_evaluator={value}')
    assert f'--cfg-options test_evaluator={value}: a dict literal' in err
    assert ('--cfg-options test_evaluator.type=ReIDMetric '
            'test_evaluator.distance=euclidean') in err


def test_an_empty_dict_literal_inside_a_list_is_a_usage_error(capsys):
    # DictAction gives custom_hooks the text ['{}'], not a list of a dict.
    err = cli_error(capsys, 'custom_hooks=[{}]')
    assert '--cfg-options custom_hooks=[{}]: a dict literal is not read as ' \
        'a dict there' in err


@pytest.mark.parametrize(
    'option, parsed', [('work_dir_template=runs/{name}', 'runs/{name}'),
                       ('work_dir_template={name:x}', '{name:x}'),
                       ("custom_imports.imports=['a.b','c']", ['a.b', 'c']),
                       ('x=[(1,2),(3,4)]', [(1, 2), (3, 4)]),
                       ('x=[http://a,https://b]', ['http://a', 'https://b'])])
def test_values_without_a_dict_literal_parse(option, parsed):
    import argparse

    from mmreid.utils.config.runtime import add_runtime_args
    parser = argparse.ArgumentParser()
    add_runtime_args(parser, 'train_cfg.max_epochs=2')
    key = option.partition('=')[0]
    args = parser.parse_args(['--cfg-options', option])
    assert args.cfg_options == {key: parsed}


def test_an_item_of_a_tuple_is_refused_with_the_whole_tuple():
    # mmengine: "TypeError: size={'0': 384} in child config cannot
    # inherit from base because size is a dict in the child config but is
    # of type <class 'tuple'> in base config".
    key = 'test_dataloader.dataset.pipeline.1.size'
    with pytest.raises(ValueError) as info:
        load_config(MARKET, {f'{key}.0': 384})
    message = str(info.value)
    assert f'{key} is a tuple, (256, 128), and mmengine merges' in message
    assert message.endswith(f'Give the tuple whole: --cfg-options '
                            f'{key}=(384,128)')
    cfg = load_config(MARKET, {key: (384, 128)})
    assert cfg.test_dataloader.dataset.pipeline[1].size == (384, 128)


def test_an_index_past_the_end_of_a_tuple_asks_for_the_whole_tuple():
    """A tuple has no item 2 to change: the message asks for the tuple
    whole instead of failing with a raw IndexError."""
    key = 'test_dataloader.dataset.pipeline.1.size'
    with pytest.raises(ValueError) as info:
        load_config(MARKET, {f'{key}.2': 384})
    assert str(info.value).endswith(
        f'Give the tuple whole: --cfg-options {key}=(...)')


def test_an_empty_dict_option_into_a_list_needs_an_index(two_metrics):
    """An empty dict is a key of its own: ``test_evaluator.rerank={}`` on
    a list of metrics names the item's index, as any other value does."""
    with pytest.raises(ValueError) as info:
        load_config(two_metrics, {'test_evaluator.rerank': {}})
    assert str(info.value).endswith(
        'e.g. --cfg-options test_evaluator.0.rerank={}')
