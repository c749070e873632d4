"""--cfg-options on a config variable that the file already substituted.

``data_root = 'data/market1501/'`` at the top of a config is copied into
every dataset when the file is parsed; ``--cfg-options data_root=X`` only
changed the variable, so the run silently read the old folder (or, for
SynthReID, generated the default one).
"""
import os.path as osp

import pytest
from mmengine.config import Config

from mmreid.utils.config import load_config

MARKET = 'configs/baseline/bot_r50_1xb64-120e_market1501.py'


def test_an_already_substituted_variable_is_refused_naming_the_keys():
    with pytest.raises(ValueError) as info:
        load_config(MARKET, {'data_root': '/data/my_market/'})
    message = str(info.value)
    assert "'data_root' is a variable of" in message
    assert "keep 'data/market1501/'" in message
    for split in ('train', 'val', 'test'):
        assert f'{split}_dataloader.dataset.data_root' in message
    assert ("--cfg-options train_dataloader.dataset.data_root="
            "'/data/my_market/'") in message


def test_a_numeric_variable_names_the_keys_of_its_name_first():
    with pytest.raises(ValueError) as info:
        load_config(MARKET, {'batch_size': 32})
    message = str(info.value)
    assert 'keys keep 64: train_dataloader.batch_size, ' \
        'train_dataloader.sampler.batch_size' in message
    assert 'e.g. --cfg-options train_dataloader.batch_size=32' in message


@pytest.mark.parametrize('options', [
    {'train_dataloader.dataset.data_root': '/data/my_market/'},
    {'train_cfg.max_epochs': 3},
    {'randomness.seed': 5},
    {'load_strict': False},
    {'resume_world_size_check': False},
    # Keys the runner reads that the config does not set.
    {'sync_bn': 'torch'},
    {'env_cfg.cudnn_benchmark': True},
    # A variable set to its own value.
    {'data_root': 'data/market1501/'},
])
def test_keys_the_run_reads_are_accepted(options):
    cfg = load_config(MARKET, options)
    for key, value in options.items():
        node = cfg
        for part in key.split('.'):
            node = node[part]
        assert node == value


@pytest.mark.parametrize('key, value, close', [
    ('max_epoch', 1, 'max_epochs'),
    ('img_szie.0', 128, 'img_size'),
    ('not_in_the_config', 1, None),
])
def test_a_top_level_key_nothing_reads_is_refused(key, value, close):
    """``Config.merge_from_dict`` adds a key the config lacks: a typo of a
    variable (``max_epoch`` for ``max_epochs``) was a new key that nothing
    read, and the run trained the config's epochs."""
    path = 'configs/snr/snr_r18_synthreid-v2.py'
    with pytest.raises(ValueError) as info:
        # With a valid option beside it, as in the user's command.
        load_config(path, {key: value, 'train_cfg.max_epochs': 1})
    message = str(info.value)
    assert message.startswith(f'--cfg-options {key}={value!r}: '
                              f'{key.split(".")[0]!r} is not a top-level '
                              f'key of {path}')
    if close is None:
        assert 'Did you mean' not in message
    else:
        assert f'Did you mean {close}?' in message


def test_init_model_refuses_a_key_nothing_reads_too():
    from mmreid.apis import init_model
    with pytest.raises(
            ValueError,
            match=r"^cfg_options img_szie=\(128, 64\): "
            "'img_szie' is not a top-level key") as info:
        init_model(MARKET, cfg_options={'img_szie': (128, 64)})
    assert 'Did you mean img_size?' in str(info.value)


def test_a_new_test_pipeline_is_a_key_only_without_a_test_loader(tmp_path):
    """The API reads a top-level ``test_pipeline`` only where no test
    dataloader has a pipeline."""
    pipeline = [dict(type='PackReIDInputs')]
    path = config(
        tmp_path, "val_dataloader = dict(dataset=dict("
        "pipeline=[dict(type='A')]))\n")
    assert load_config(path, {'test_pipeline': pipeline}).test_pipeline \
        == pipeline
    path = config(
        tmp_path, "test_dataloader = dict(dataset=dict("
        "pipeline=[dict(type='A')]))\n")
    with pytest.raises(ValueError, match="'test_pipeline' is not a top-level"):
        load_config(path, {'test_pipeline': pipeline})


def test_init_model_refuses_a_substituted_variable_too():
    """init_model(cfg_options=...) merges as the tools do: an image size
    given as the variable left the test pipeline at its old size."""
    from mmreid.apis import init_model
    with pytest.raises(ValueError) as info:
        init_model(MARKET, cfg_options={'img_size': (128, 64)})
    message = str(info.value)
    assert message.startswith('cfg_options img_size=(128, 64)')
    assert 'test_pipeline' in message or 'test_dataloader' in message
    model = init_model(MARKET, cfg_options={'model.head.num_classes': 5})
    assert model.head.num_classes == 5


def test_an_override_of_the_test_pipeline_variable_is_refused():
    """The API and the tools run the test dataloader's pipeline, as
    tools/test.py: an override of the top-level ``test_pipeline`` (which
    the file substituted into the dataloaders) would reach none of them."""
    from mmreid.apis import init_model
    with pytest.raises(ValueError) as info:
        init_model(MARKET, cfg_options={'test_pipeline.1.size': (128, 64)})
    message = str(info.value)
    assert "'test_pipeline' is a variable of" in message
    assert 'test_dataloader.dataset.pipeline.1.size' in message
    # The suggested override is the test loader's, not the training one's
    # (which shares the last key parts and was suggested first).
    assert "e.g. cfg_options test_dataloader.dataset.pipeline.1.size" in \
        message or 'e.g. --cfg-options test_dataloader' in message


@pytest.mark.parametrize('resize', [
    dict(backend='cv2'),
    dict(type='ReIDResize', size=(256, 128), backend='cv2'),
])
def test_a_dict_option_is_checked_field_by_field(resize):
    """A dict merges into the config's dict field by field, as
    ``resize.backend=cv2`` does: ``cfg_options={'resize': dict(...)}``
    changed the variable only, the pipelines kept PIL."""
    with pytest.raises(ValueError) as info:
        load_config(MARKET, {'resize': resize})
    message = str(info.value)
    assert "--cfg-options resize.backend='cv2': 'resize' is a variable" \
        in message
    assert "keep 'pillow'" in message
    assert 'test_dataloader.dataset.pipeline.1.backend' in message


def config(tmp_path, text):
    path = tmp_path / 'tiny.py'
    path.write_text(text)
    return str(path)


def test_an_override_of_a_last_list_item_is_refused(tmp_path):
    path = config(
        tmp_path, 'size = (32, 16)\n'
        "test_pipeline = [dict(type='A'), dict(type='R', size=size)]\n"
        'test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n')
    with pytest.raises(
            ValueError,
            match='keep \\(32, 16\\): '
            'test_dataloader.dataset.pipeline.1.size'):
        load_config(path, {'test_pipeline.1.size': (64, 32)})


def test_values_equal_by_chance_in_another_type_are_no_holders(tmp_path):
    # cudnn_benchmark=True == 1, but a bool is not the int variable.
    path = config(tmp_path,
                  'scale = 1\nenv_cfg = dict(cudnn_benchmark=True)\n')
    assert load_config(path, {'scale': 2}).scale == 2


def test_a_boolean_switch_is_left_to_what_it_switches():
    # combine_all is read by TrainSetupCheckHook, which refuses it where
    # the sources contradict it; the many False keys do not hold it.
    cfg = load_config('configs/gmn/gmn_r50_1xb64-60e_ms-cs-c3-to-m.py',
                      {'combine_all': True})
    assert cfg.combine_all is True


def test_a_dotted_option_suggests_the_key_named_like_its_field(tmp_path):
    path = config(
        tmp_path, 'opts = dict(size=64)\n'
        'train_dataloader = dict(batch_size=64, '
        "dataset=dict(type='D', size=opts['size']))\n")
    with pytest.raises(ValueError) as info:
        load_config(path, {'opts.size': 32})
    assert 'e.g. --cfg-options train_dataloader.dataset.size=32.' in str(
        info.value)


@pytest.mark.parametrize('count,more', [(6, ''), (7, ' and 1 more')])
def test_the_message_shows_six_keys(tmp_path, count, more):
    keys = ', '.join(f'k{i}=n' for i in range(count))
    path = config(tmp_path, f'n = 5\ntrain_cfg = dict({keys})\n')
    with pytest.raises(ValueError) as info:
        load_config(path, {'n': 6})
    shown = ', '.join(f'train_cfg.k{i}' for i in range(6))
    assert f'keys keep 5: {shown}{more}. Override' in str(info.value)


def leaf_of(tmp_path, base: str) -> str:
    """``base`` written as ``base.py`` and the path of a leaf config of it
    (``model = dict(type='M')``)."""
    (tmp_path / 'base.py').write_text(base)
    return config(tmp_path, "_base_ = ['base.py']\nmodel = dict(type='M')\n")


def copying_config(tmp_path):
    """A base that builds the test loader from the validation loader, as
    the shipped dataset bases do, and a leaf of it."""
    return leaf_of(
        tmp_path,
        "val_dataloader = dict(batch_size=4, dataset=dict(type='D'))\n"
        'test_dataloader = val_dataloader\n')


def test_an_option_on_a_key_the_base_copied_is_refused(tmp_path):
    """``test_dataloader = val_dataloader`` in a base is a copy made when
    the base was read: ``--cfg-options val_dataloader.batch_size=7``
    changed the validation loader only, and tools/test.py tested with
    the old batch (or set) without a word."""
    path = copying_config(tmp_path)
    with pytest.raises(ValueError) as info:
        load_config(path, {'val_dataloader.batch_size': 7}, phase='test')
    message = str(info.value)
    assert message.startswith(
        '--cfg-options val_dataloader.batch_size=7: test_dataloader is '
        f'built from val_dataloader in {tmp_path / "base.py"} when')
    assert 'would not follow: test_dataloader.batch_size (stays 4). ' \
        'Set them too: --cfg-options val_dataloader.batch_size=7 ' \
        'test_dataloader.batch_size=7' in message
    # A field the base's dict lacks would have followed too.
    with pytest.raises(
            ValueError, match=r'test_dataloader\.num_workers '
            r'\(stays unset\)'):
        load_config(path, {'val_dataloader.num_workers': 2})


@pytest.mark.parametrize(
    'options',
    [
        [('val_dataloader.batch_size', 7), ('test_dataloader.batch_size', 7)],
        [('val_dataloader', dict(batch_size=7)),
         ('test_dataloader.batch_size', 7)],
        # The copy alone: nothing follows it.
        [('test_dataloader.batch_size', 7)],
        # The value the copy holds anyway.
        [('val_dataloader.batch_size', 4)],
    ])
def test_an_option_on_the_copied_key_with_its_copy_is_accepted(
        tmp_path, options):
    options = dict(options)
    cfg = load_config(copying_config(tmp_path), options, phase='test')
    assert cfg.test_dataloader.batch_size == options.get(
        'test_dataloader.batch_size', 4)
    assert cfg.val_dataloader.batch_size in (4, 7)


def reverse_copying_config(tmp_path):
    """A base that builds the validation loader from the test loader."""
    return leaf_of(
        tmp_path,
        "test_dataloader = dict(batch_size=4, dataset=dict(type='D', "
        "data_root='a/'))\n"
        'val_dataloader = test_dataloader\n')


def test_a_test_run_takes_an_option_on_a_loader_a_copy_was_made_of(tmp_path):
    """With ``val_dataloader = test_dataloader`` in a base, a test run
    reads the test loader only: ``tools/test.py --cfg-options
    test_dataloader.dataset.data_root=b/`` was refused because the
    validation loader, which it never reads, would keep 'a/'."""
    from mmreid.apis.model import _load_config
    path = reverse_copying_config(tmp_path)
    option = {'test_dataloader.dataset.data_root': 'b/'}
    tested = load_config(path, dict(option), phase='test')
    for cfg in (tested, _load_config(path, dict(option))):
        assert cfg.test_dataloader.dataset.data_root == 'b/'
        assert cfg.val_dataloader.dataset.data_root == 'a/'
    # Training validates with the copy: there it must follow.
    with pytest.raises(ValueError) as info:
        load_config(path, dict(option))
    assert str(info.value).endswith(
        "would not follow: val_dataloader.dataset.data_root (stays 'a/'). "
        "Set them too: --cfg-options test_dataloader.dataset.data_root='b/' "
        "val_dataloader.dataset.data_root='b/'")


def test_a_copy_in_the_config_file_itself_is_found(tmp_path):
    # The GMN leaves restate val_evaluator and copy it there.
    path = config(
        tmp_path, "val_evaluator = dict(type='ReIDMetric', device='cuda')\n"
        'test_evaluator = val_evaluator\n')
    with pytest.raises(
            ValueError,
            match=r"test_evaluator\.device \(stays 'cuda'\)\. Set them too: "
            r"--cfg-options val_evaluator\.device='cpu' "
            r"test_evaluator\.device='cpu'$"):
        load_config(path, {'val_evaluator.device': 'cpu'})


def test_an_option_on_a_key_nothing_copies_is_accepted(tmp_path):
    # Equal values are no copy: the test loader was written on its own.
    path = config(
        tmp_path, "val_dataloader = dict(batch_size=4, dataset=dict(type='D'))"
        "\ntest_dataloader = dict(batch_size=4, dataset=dict(type='D'))\n")
    cfg = load_config(path, {'val_dataloader.batch_size': 7})
    assert (cfg.val_dataloader.batch_size,
            cfg.test_dataloader.batch_size) == (7, 4)


def test_init_model_refuses_an_option_on_a_copied_loader():
    """The API merges options as tools/test.py does: the Market base builds
    test_dataloader from val_dataloader."""
    from mmreid.apis import init_model
    with pytest.raises(ValueError) as info:
        init_model(
            MARKET,
            cfg_options={'val_dataloader.dataset.data_root': '/data/other/'})
    message = str(info.value)
    assert message.startswith(
        "cfg_options val_dataloader.dataset.data_root='/data/other/': "
        'test_dataloader is built from val_dataloader in ')
    assert 'configs/_base_/datasets/market1501.py' in message
    assert "test_dataloader.dataset.data_root (stays 'data/market1501/')" \
        in message


def resize_config(tmp_path):
    return config(
        tmp_path, "resize = dict(type='R', size=(32, 16), backend='pillow')\n"
        "test_pipeline = [dict(type='A'), resize]\n"
        'test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n')


@pytest.mark.parametrize('options', [
    [('resize', dict(_delete_=True, type='R', size=(32, 16)))],
    [('resize._delete_', True), ('resize.type', 'R'),
     ('resize.size', (32, 16))],
])
def test_a_field_an_option_deletes_is_an_override(tmp_path, options):
    """mmengine replaces a dict given with ``_delete_=True``: the variable
    lost its backend, the pipeline kept 'pillow', and the check saw only
    the fields given, all equal to the old ones."""
    with pytest.raises(ValueError) as info:
        load_config(resize_config(tmp_path), dict(options))
    message = str(info.value)
    assert message.startswith(
        "--cfg-options resize.backend=<removed by _delete_>: 'resize' is a "
        'variable of ')
    assert "these keys keep 'pillow': test_dataloader.dataset.pipeline.1." \
        'backend. Override those keys instead, e.g. --cfg-options ' \
        'test_dataloader.dataset.pipeline.1.backend=<a value> (an option ' \
        'cannot drop a field of a list item: to drop it, give ' \
        'test_dataloader.dataset.pipeline = [...] in a config that ' \
        'inherits this one).' in message
    # The fix it gives can be typed (a list of dicts cannot: it was
    # suggested as --cfg-options test_dataloader.dataset.pipeline=[...]).
    cfg = load_config(
        resize_config(tmp_path),
        {'test_dataloader.dataset.pipeline.1.backend': 'cv2'})
    assert cfg.test_dataloader.dataset.pipeline[1].backend == 'cv2'


def test_a_dropped_field_of_a_top_level_list_item_is_set(tmp_path):
    """A list at the top level (``test_evaluator``) holds the item as a
    list below a dict does: the fix sets the field (an item's
    ``_delete_`` is refused), and names the list to replace."""
    path = config(
        tmp_path, "metric = dict(type='ReIDMetric', distance='euclidean')\n"
        "test_evaluator = [metric, dict(type='MyRank1Metric')]\n")
    with pytest.raises(ValueError) as info:
        load_config(path, {'metric': dict(_delete_=True, type='ReIDMetric')})
    assert 'e.g. --cfg-options test_evaluator.0.distance=<a value> (an ' \
        'option cannot drop a field of a list item: to drop it, give ' \
        'test_evaluator = [...] in a config that inherits this one)' \
        in str(info.value)


def test_a_dropped_list_item_field_is_replaced_by_list_in_python(tmp_path):
    """Where the options are a Python dict (``init_model(cfg_options=)``)
    a list of dicts can be given: the fix replaces the list."""
    from mmreid.apis import init_model
    with pytest.raises(ValueError) as info:
        init_model(
            resize_config(tmp_path),
            cfg_options=dict(
                resize=dict(_delete_=True, type='R', size=(32, 16))))
    assert 'e.g. cfg_options test_dataloader.dataset.pipeline=[...].' \
        in str(info.value)


@pytest.mark.parametrize('options', [
    # Every field restated.
    [('resize', dict(_delete_=True, type='R', size=(32, 16),
                     backend='pillow'))],
    # Merged, not replaced.
    [('resize', dict(_delete_=False, size=(32, 16)))],
])
def test_a_delete_that_drops_nothing_held_is_accepted(tmp_path, options):
    load_config(resize_config(tmp_path), dict(options))


@pytest.mark.parametrize(
    'item,options,kept',
    [
        ('test_dataloader.dataset.pipeline.1', {
            'test_dataloader.dataset.pipeline.1._delete_': True,
            'test_dataloader.dataset.pipeline.1.size': (64, 32)
        }, "{item}.type='R', {item}.backend='pillow'"),
        ('test_dataloader.dataset.pipeline.1', {
            'test_dataloader.dataset.pipeline.1':
            dict(_delete_=True, type='R', size=(64, 32))
        }, "{item}.backend='pillow'"),
        # Any value: mmengine pops _delete_ only under a dict's key.
        ('test_dataloader.dataset.pipeline.1', {
            'test_dataloader.dataset.pipeline.1': dict(_delete_=False)
        }, "{item}.type='R', {item}.size=(32, 16), {item}.backend='pillow'"),
        # Accepted before: the variable's item kept its backend too.
        ('test_pipeline.1', {
            'test_pipeline.1': dict(_delete_=True, size=(32, 16))
        }, "{item}.type='R', {item}.backend='pillow'"),
    ])
def test_a_delete_in_a_list_item_is_refused(tmp_path, item, options, kept):
    """mmengine 0.10.7 merges an option into a list item: the item kept
    backend='pillow' that _delete_ was to drop, and got a field
    ``_delete_``, which the transform then refused as an argument the
    base had no dict for."""
    with pytest.raises(ValueError) as info:
        load_config(resize_config(tmp_path), options)
    message = str(info.value)
    holder = item[:-len('.1')]
    assert f': {item} is an item of the list {holder}, and mmengine ' \
        "honours _delete_ only under a dict's key" in message
    assert f'keep its other fields ({kept.format(item=item)}) and give ' \
        'it a field named _delete_' in message
    assert f'gives {holder} whole' in message


def test_a_delete_under_a_dict_key_of_a_list_item_is_honoured(tmp_path):
    path = config(
        tmp_path, "test_dataloader = dict(dataset=dict(pipeline=["
        "dict(type='A', opts=dict(x=1, y=2))]))\n")
    cfg = load_config(
        path,
        {'test_dataloader.dataset.pipeline.0.opts': dict(_delete_=True, x=3)})
    assert cfg.test_dataloader.dataset.pipeline == [
        dict(type='A', opts=dict(x=3))
    ]


def test_a_delete_in_a_target_of_a_multi_target_loop_is_refused(tmp_path):
    path = config(
        tmp_path, "test_cfg = dict(type='L', targets=[dict(name='m', "
        "dataloader=dict(batch_size=4), evaluator=dict(type='E'))])\n")
    with pytest.raises(ValueError) as info:
        load_config(
            path, {
                'test_cfg.targets.0':
                dict(_delete_=True, name='m', dataloader=dict(batch_size=8))
            })
    assert "keep its other fields (test_cfg.targets.0.evaluator.type='E')" \
        in str(info.value)


def test_a_deleted_field_of_a_variable_nothing_holds_is_dropped(tmp_path):
    # What the check above relies on: the option replaces the dict.
    path = config(tmp_path, "resize = dict(type='R', backend='pillow')\n")
    cfg = load_config(path, {'resize': dict(_delete_=True, type='R')})
    assert cfg.resize == dict(type='R')


def test_a_deleted_field_of_a_copied_loader_must_go_from_the_copy_too(
        tmp_path):
    path = copying_config(tmp_path)
    deleted = dict(_delete_=True)  # every field of the dataset dropped
    with pytest.raises(ValueError) as info:
        load_config(path, {'val_dataloader.dataset': deleted})
    assert str(info.value).endswith(
        "would not follow: test_dataloader.dataset.type (stays 'D'). Set "
        'them too: --cfg-options val_dataloader.dataset._delete_=True '
        'test_dataloader.dataset._delete_=True')
    cfg = load_config(
        path, {
            'val_dataloader.dataset': dict(deleted),
            'test_dataloader.dataset': dict(deleted)
        })
    assert cfg.test_dataloader.dataset == cfg.val_dataloader.dataset == {}


def test_custom_imports_given_as_an_option_are_imported(tmp_path, monkeypatch):
    """``Config.fromfile`` imports a file's ``custom_imports`` before any
    option is merged, so ``--cfg-options custom_imports.imports=[...]`` used
    to be kept in the config and never imported: the user's registered
    component was then unknown. The option's modules are imported."""
    import sys

    from mmreid.registry import MODELS
    name = 'mmreid_test_option_imports'
    (tmp_path / f'{name}.py').write_text(
        'from mmreid.registry import MODELS\n'
        'import torch.nn as nn\n\n\n'
        '@MODELS.register_module()\n'
        'class OptionImportedLoss(nn.Module):\n'
        '    pass\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        cfg = load_config(
            MARKET,
            cfg_options={
                'custom_imports':
                dict(imports=[name], allow_failed_imports=False)
            })
        assert cfg.custom_imports.imports == [name]
        assert MODELS.get('OptionImportedLoss') is not None
    finally:
        MODELS.module_dict.pop('OptionImportedLoss', None)
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    'value',
    [
        # What mmengine's DictAction makes of the user's text.
        ["{'k1':20", "k2':6", "lambda_value':0.3}"],  # {'k1':20,'k2':6,...}
        "dict(k1=20,k2=6,lambda_value=0.3)",
        "{'k1':20,'k2':6,'lambda_value':0.3}",
    ])
def test_a_dict_literal_option_names_the_dotted_keys(value):
    # The metric got the list of pieces (or a string) and refused it
    # without saying that dotted keys set the dict's fields.
    with pytest.raises(ValueError) as info:
        load_config(MARKET, {'test_evaluator.rerank': value})
    message = str(info.value)
    assert 'dict literal' in message
    assert ('--cfg-options test_evaluator.rerank.k1=20 '
            'test_evaluator.rerank.k2=6 '
            'test_evaluator.rerank.lambda_value=0.3') in message


def test_a_dict_literal_that_does_not_parse_names_the_dotted_form():
    with pytest.raises(ValueError) as info:
        load_config(MARKET, {'test_evaluator.rerank': '{k1:20}'})
    assert 'test_evaluator.rerank.<field>=<value>' in str(info.value)


def test_a_string_option_may_look_like_a_dict(tmp_path):
    config = tmp_path / 'c.py'
    config.write_text(f"_base_ = ['{osp.abspath(MARKET)}']\n"
                      "work_dir_template = 'runs/{name}'\n")
    cfg = load_config(str(config), {'work_dir_template': '{name:x}'})
    assert cfg.work_dir_template == '{name:x}'


def test_the_cli_refuses_a_dict_call_with_commas(capsys):
    # DictAction's comma search recursed without end on dict(k1=20, k2=6).
    import argparse

    from mmreid.utils.config.runtime import add_runtime_args
    parser = argparse.ArgumentParser()
    add_runtime_args(parser, 'train_cfg.max_epochs=2')
    with pytest.raises(SystemExit):
        parser.parse_args(
            ['--cfg-options', 'test_evaluator.rerank=dict(k1=20, k2=6)'])
    assert ('--cfg-options test_evaluator.rerank.k1=20 '
            'test_evaluator.rerank.k2=6') in capsys.readouterr().err
    args = parser.parse_args(['--cfg-options', 'test_evaluator.rerank.k1=20'])
    assert args.cfg_options == {'test_evaluator.rerank.k1': 20}


def test_every_tool_parses_cfg_options_with_mmreids_action():
    """mmengine's DictAction recurses without end on
    ``key=dict(k1=20,k2=6)``; every tool that takes ``--cfg-options``
    uses ReIDDictAction, which turns that into a usage error naming the
    dotted keys."""
    import glob
    import os.path as osp
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    plain = [
        osp.relpath(path, repo) for path in sorted(
            glob.glob(osp.join(repo, 'tools', '**', '*.py'), recursive=True))
        if 'action=DictAction' in open(path, encoding='utf-8').read()
    ]
    assert plain == []


@pytest.mark.parametrize(
    'options',
    [
        # A whole section replaced (validation turned off): the test
        # loader is the copy, as wanted.
        {
            'val_dataloader': None
        },
        # An empty dict merges nothing.
        {
            'val_dataloader.dataset': {}
        },
    ])
def test_an_option_that_sets_no_field_of_a_copied_key_is_accepted(
        tmp_path, options):
    cfg = load_config(copying_config(tmp_path), options, phase='test')
    assert cfg.test_dataloader == dict(batch_size=4, dataset=dict(type='D'))


def test_a_copy_under_another_key_path_is_named_where_it_lies(tmp_path):
    """A target of a multi-target loop built from the validation loader
    holds the copy under its own path: that key is named as it lies."""
    path = leaf_of(
        tmp_path,
        "val_dataloader = dict(batch_size=4, dataset=dict(type='D'))\n"
        "test_cfg = dict(type='MultiTargetTestLoop', targets=["
        "dict(name='a', dataloader=val_dataloader)])\n")
    with pytest.raises(ValueError) as info:
        load_config(path, {'val_dataloader.batch_size': 7}, phase='test')
    assert (f'test_cfg is built from val_dataloader in '
            f'{tmp_path / "base.py"} when that file is read') \
        in str(info.value)
    assert 'would not follow: test_cfg.targets.0.dataloader.batch_size ' \
        '(stays 4)' in str(info.value)


def test_an_option_on_a_list_of_the_copy_covers_its_items(tmp_path):
    """The copy's pipeline given whole (a list is one option value) sets
    the field the validation option changes inside it."""
    path = leaf_of(
        tmp_path,
        "val_dataloader = dict(batch_size=4, dataset=dict(type='D', "
        "pipeline=[dict(type='R', size=(32, 16))]))\n"
        'test_dataloader = val_dataloader\n')
    with pytest.raises(
            ValueError,
            match=r'test_dataloader\.dataset\.pipeline\.0\.size '
            r'\(stays \(32, 16\)\)'):
        load_config(path, {'val_dataloader.dataset.pipeline.0.size': [64, 32]})
    cfg = load_config(
        path, {
            'val_dataloader.dataset.pipeline.0.size': [64, 32],
            'test_dataloader.dataset.pipeline':
            [dict(type='R', size=[64, 32])]
        })
    assert cfg.test_dataloader.dataset.pipeline[0]['size'] == [64, 32]


def test_a_typo_of_a_key_the_run_reads_suggests_it():
    """A key the runner reads that the config does not set (``sync_bn``)
    is a candidate of 'Did you mean' too."""
    path = 'configs/snr/snr_r18_synthreid-v2.py'
    with pytest.raises(ValueError, match=r'Did you mean sync_bn\? '):
        load_config(path, {'sync_bm': 'torch'})


@pytest.mark.parametrize(
    'options',
    [
        # TrainSetupCheckHook reads it.
        {
            'combine_all': True
        },
        # An argument of mmengine's Runner that the config leaves out.
        {
            'experiment_name': 'ablation'
        },
    ])
def test_keys_read_beside_the_config_are_no_unknown_keys(options):
    path = 'configs/snr/snr_r18_synthreid-v2.py'
    cfg = load_config(path, options)
    for key, value in options.items():
        assert key not in Config.fromfile(path) and cfg[key] == value


def test_custom_imports_given_as_dotted_options_are_imported(
        tmp_path, monkeypatch):
    import sys

    from mmreid.registry import MODELS
    name = 'mmreid_test_dotted_imports'
    (tmp_path / f'{name}.py').write_text(
        'from mmreid.registry import MODELS\n'
        'import torch.nn as nn\n\n\n'
        '@MODELS.register_module()\n'
        'class DottedImportedLoss(nn.Module):\n'
        '    pass\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        load_config(
            MARKET,
            cfg_options={
                'custom_imports.imports': [name],
                'custom_imports.allow_failed_imports': False
            })
        assert MODELS.get('DottedImportedLoss') is not None
    finally:
        MODELS.module_dict.pop('DottedImportedLoss', None)
        sys.modules.pop(name, None)


def test_a_dict_literals_string_fields_are_written_as_options_take_them():
    """A string after ``key=`` needs no quotes in ``--cfg-options``; other
    values are written as Python literals, without spaces."""
    from mmreid.utils.config.options import dict_literal_message
    message = dict_literal_message('test_evaluator',
                                   "{'distance':'cosine','topk':[1,5]}")
    assert message.endswith(
        'Give its fields as dotted keys instead: --cfg-options '
        'test_evaluator.distance=cosine test_evaluator.topk=[1,5]')


def test_the_cli_refuses_a_dict_literal_with_unbalanced_brackets(capsys):
    """DictAction asserts on unbalanced brackets: a dict literal with such
    a typo is a usage error too, not a traceback."""
    import argparse

    from mmreid.utils.config.runtime import add_runtime_args
    parser = argparse.ArgumentParser()
    add_runtime_args(parser, 'train_cfg.max_epochs=2')
    with pytest.raises(SystemExit):
        parser.parse_args(['--cfg-options', "test_evaluator={'topk':(1,5]}"])
    assert 'test_evaluator.<field>=<value> for each field' in \
        capsys.readouterr().err


def test_a_nested_field_an_option_deletes_names_the_replaced_dict(tmp_path):
    """``loader._delete_=True`` drops ``loader.sampler.type`` two keys
    below the replaced dict: the fix replaces the holder's dict at the
    same level (``test_dataloader._delete_``), not its sampler."""
    path = config(
        tmp_path, "loader = dict(batch_size=4, sampler=dict(type='S'))\n"
        'test_dataloader = loader\n')
    with pytest.raises(ValueError) as info:
        load_config(path, {'loader._delete_': True, 'loader.batch_size': 4})
    message = str(info.value)
    assert message.startswith(
        '--cfg-options loader.sampler.type=<removed by _delete_>: ')
    assert "these keys keep 'S': test_dataloader.sampler.type. Override " \
        'those keys instead, e.g. --cfg-options ' \
        'test_dataloader._delete_=True.' in message


def test_a_suggested_override_is_a_key_of_the_variables_phase(tmp_path):
    """Keys of the variable's phase come before keys named like its field:
    a test-time size suggested the training key, which leaves the test
    run on the old size."""
    path = config(
        tmp_path, 'test_resize = dict(size=(64, 32))\n'
        "train_dataloader = dict(dataset=dict(size=test_resize['size']))\n"
        'test_dataloader = dict(dataset=dict(pipeline=['
        "dict(type='R', scale=test_resize['size'])]))\n")
    with pytest.raises(ValueError) as info:
        load_config(path, {'test_resize.size': (128, 64)})
    message = str(info.value)
    assert 'keep (64, 32): test_dataloader.dataset.pipeline.0.scale, ' \
        'train_dataloader.dataset.size. ' in message
    assert 'e.g. --cfg-options test_dataloader.dataset.pipeline.0.scale=' \
        '(128, 64).' in message


def test_a_list_option_equal_to_a_copied_tuple_is_accepted(tmp_path):
    """A size given as a list (how ``--cfg-options`` writes ``[64,32]``)
    that equals the config's tuple changes nothing the copy holds: it was
    refused as if the copy would keep another value."""
    path = leaf_of(
        tmp_path,
        "val_dataloader = dict(batch_size=4, dataset=dict(type='D', "
        "pipeline=[dict(type='R', size=(32, 16))]))\n"
        'test_dataloader = val_dataloader\n')
    cfg = load_config(path,
                      {'val_dataloader.dataset.pipeline.0.size': [32, 16]})
    assert list(cfg.test_dataloader.dataset.pipeline[0]['size']) == [32, 16]


def test_a_test_run_takes_an_option_on_an_evaluator_copied_for_validation(
        tmp_path):
    """``val_evaluator = test_evaluator``: tools/test.py does not read the
    validation evaluator, so an option on the test evaluator alone is
    fine there; training validates with the copy, so it is refused."""
    path = leaf_of(
        tmp_path,
        "test_evaluator = dict(type='ReIDMetric', device='cuda')\n"
        'val_evaluator = test_evaluator\n')
    option = {'test_evaluator.device': 'cpu'}
    cfg = load_config(path, dict(option), phase='test')
    assert cfg.test_evaluator.device == 'cpu'
    assert cfg.val_evaluator.device == 'cuda'
    with pytest.raises(
            ValueError,
            match=r"would not follow: val_evaluator\.device \(stays 'cuda'\)"):
        load_config(path, dict(option))


def test_a_dict_literal_past_the_end_of_a_list_is_refused_as_one():
    """A dict literal given to an index a list lacks gets the dict literal
    message, not a raw IndexError from walking the config."""
    with pytest.raises(ValueError, match='a dict literal is not read as a '
                       'dict there'):
        load_config(MARKET,
                    {'test_dataloader.dataset.pipeline.9': "dict(type='X')"})


def test_an_override_of_a_none_variable_the_model_used_is_refused(tmp_path):
    """``pretrained = None`` substituted into the model: overriding it
    changes the variable only, the model keeps None (trains from scratch);
    the override must be refused as for any other old value. A None the
    run's keys hold by chance, not made from the variable, is no reason."""
    path = config(
        tmp_path, 'pretrained = None\n'
        "model = dict(type='M', init_cfg=pretrained, neck=None)\n")
    with pytest.raises(ValueError, match=r'these keys keep None: '
                       r'model\.init_cfg\. Override those'):
        load_config(path, {'pretrained': 'ckpt.pth'})
    unused = config(
        tmp_path, 'pretrained = None\n'
        "model = dict(type='M', init_cfg=None)\n")
    assert load_config(unused, {'pretrained': 'ckpt.pth'}).pretrained == \
        'ckpt.pth'


def test_a_sub_dict_of_a_copied_loader_replaced_by_a_value_is_refused(
        tmp_path):
    """``val_dataloader.sampler=None`` replaces the validation sampler
    only: the test loader, a copy, kept its sampler without a word when
    the probe of a whole sub-dict failed."""
    path = leaf_of(
        tmp_path,
        "val_dataloader = dict(batch_size=4, sampler=dict(type='S'), "
        "dataset=dict(type='D'))\n"
        'test_dataloader = val_dataloader\n')
    with pytest.raises(ValueError) as info:
        load_config(path, {'val_dataloader.sampler': None}, phase='test')
    assert str(info.value).endswith(
        "would not follow: test_dataloader.sampler (stays {'type': 'S'}). "
        'Set them too: --cfg-options val_dataloader.sampler=None '
        'test_dataloader.sampler=None')


def test_a_copy_made_through_base_names_the_file_that_makes_it(tmp_path):
    """``test_dataloader = _base_.val_dataloader`` in a leaf: the message
    names that leaf as the file that builds the copy."""
    (tmp_path / 'base.py').write_text(
        "val_dataloader = dict(batch_size=4, dataset=dict(type='D'))\n")
    path = config(
        tmp_path, "_base_ = ['base.py']\n"
        'test_dataloader = _base_.val_dataloader\n')
    with pytest.raises(ValueError) as info:
        load_config(path, {'val_dataloader.batch_size': 7}, phase='test')
    assert str(info.value).startswith(
        '--cfg-options val_dataloader.batch_size=7: test_dataloader is '
        f'built from val_dataloader in {path} when that file is read ')


def test_a_key_that_cannot_be_probed_leaves_the_other_options_checked(
        tmp_path):
    """An option on a loader assigned from a variable (which the check
    cannot probe) beside an option on a copied loader: the copied one is
    still refused, not skipped with the first."""
    path = config(
        tmp_path, 'loader = dict(batch_size=2)\n'
        'train_dataloader = loader\n'
        'val_dataloader = dict(batch_size=4)\n'
        'test_dataloader = val_dataloader\n')
    with pytest.raises(
            ValueError,
            match=r'would not follow: test_dataloader\.batch_size '
            r'\(stays 4\)'):
        load_config(path, {
            'train_dataloader.batch_size': 3,
            'val_dataloader.batch_size': 7
        })


def test_an_option_on_a_loader_copied_through_a_variable_is_refused(
        tmp_path):
    """``val_dataloader = loader`` then ``test_dataloader = val_dataloader``:
    ``val_dataloader.dataset.data_root=b/`` left tools/test.py on 'a/'. The
    training loader, another copy of ``loader`` but none of
    ``val_dataloader``, is not named."""
    path = config(
        tmp_path, "loader = dict(dataset=dict(type='D', data_root='a/'))\n"
        'val_dataloader = loader\n'
        'train_dataloader = loader\n'
        'test_dataloader = val_dataloader\n')
    with pytest.raises(ValueError) as info:
        load_config(path, {'val_dataloader.dataset.data_root': 'b/'},
                    phase='test')
    assert "would not follow: test_dataloader.dataset.data_root (stays " \
        "'a/')." in str(info.value)
    assert 'train_dataloader' not in str(info.value)
    both = {f'{key}.dataset.data_root': 'b/'
            for key in ('val_dataloader', 'test_dataloader')}
    cfg = load_config(path, both, phase='test')
    assert cfg.test_dataloader.dataset.data_root == 'b/'


def test_a_copy_beside_a_package_base_is_found(tmp_path):
    """A config that inherits an mmpretrain config (``'mmpretrain::...'``,
    which mmengine resolves) is probed with that base as it is: the copy
    ``test_dataloader = val_dataloader`` is still found."""
    path = config(
        tmp_path, "_base_ = ['mmpretrain::resnet/resnet18_8xb32_in1k.py']\n"
        'val_dataloader = dict(batch_size=4)\n'
        'test_dataloader = val_dataloader\n')
    with pytest.raises(
            ValueError,
            match=r'would not follow: test_dataloader\.batch_size '
            r'\(stays 4\)'):
        load_config(path, {'val_dataloader.batch_size': 7}, phase='test')


def test_keys_built_from_a_variable_are_named(tmp_path):
    """No key holds the variable's value when the files built keys from
    it (``data_root + 'market1501/'``): they are found by reading the
    files with the variable changed, and the option is refused naming
    them (it was accepted and changed nothing)."""
    path = config(
        tmp_path, "data_root = 'data/'\n"
        "train_dataloader = dict(dataset=dict(type='D', "
        "data_root=data_root + 'market1501/'))\n")
    with pytest.raises(ValueError) as info:
        load_config(path, {'data_root': '/datasets/'})
    assert ("these keys were built from its value 'data/': "
            'train_dataloader.dataset.data_root') in str(info.value)
    assert "now 'data/market1501/'" in str(info.value)


def test_a_variable_whose_keys_a_leaf_set_is_refused(tmp_path):
    """A base feeds ``model.w`` from ``w``; the leaf sets ``model.w``
    itself. ``--cfg-options w=...`` on the leaf then changes nothing and
    is refused; a variable no file uses stays the option's to set."""
    (tmp_path / 'base.py').write_text('w = 10\nmodel = dict(w=w)\n')
    leaf = tmp_path / 'leaf.py'
    leaf.write_text("_base_ = ['base.py']\nmodel = dict(w=100.0)\n"
                    "note = 'mine'\n")
    with pytest.raises(ValueError, match="'w' is a variable that the files "
                       'of .* use, but every key it fed is set otherwise'):
        load_config(str(leaf), {'w': 30})
    assert load_config(str(leaf), {'note': 'yours'}).note == 'yours'


def test_keys_holding_the_value_by_chance_are_not_named(tmp_path):
    """A base feeds ``model.w`` from ``w = 2``; two loader keys hold 2 too,
    not made from ``w``. ``--cfg-options w=0`` is refused naming
    ``model.w`` only (the keys listed were those holding 2, and the fix
    offered was ``train_dataloader.num_workers=0``). On a leaf that sets
    ``model.w`` itself, ``w`` feeds no key: it is refused as such, not for
    the loader's 2 and with the loader's key as the fix."""
    (tmp_path / 'base.py').write_text(
        'w = 2\nmodel = dict(w=w)\n'
        'train_dataloader = dict(num_workers=2, batch_size=2)\n')
    with pytest.raises(ValueError) as info:
        load_config(str(tmp_path / 'base.py'), {'w': 0})
    message = str(info.value)
    assert 'these keys keep 2: model.w. Override' in message
    assert 'e.g. --cfg-options model.w=0.' in message
    assert 'train_dataloader' not in message
    leaf = tmp_path / 'leaf.py'
    leaf.write_text("_base_ = ['base.py']\nmodel = dict(w=0)\n")
    with pytest.raises(ValueError) as info:
        load_config(str(leaf), {'w': 5})
    message = str(info.value)
    assert "'w' is a variable that the files of" in message
    assert 'every key it fed is set otherwise' in message
    assert 'instead: model.w (fed from it in ' in message
    assert 'base.py, now 0).' in message
    assert 'train_dataloader' not in message
    # A value the check cannot change to probe it: the keys holding it.
    path = config(
        tmp_path, 'w = 1 + 1\nmodel = dict(w=w)\n'
        'train_dataloader = dict(num_workers=2)\n')
    with pytest.raises(ValueError) as info:
        load_config(path, {'w': 0})
    assert ('keep 2: model.w, train_dataloader.num_workers. Override those '
            'keys instead, e.g. --cfg-options model.w=0 (a key holding the '
            'same value by chance is listed too).') in str(info.value)


def test_a_dp_warmup_variable_option_names_the_dp_key():
    """``--cfg-options dp_warmup_epochs=0`` on the E_dp = 5 sweep leaf
    (which sets ``model.head.dp.warmup_epochs`` itself) was refused naming
    ``train_dataloader.num_workers`` (it holds 2 as the base's
    ``dp_warmup_epochs`` does) and offered ``--cfg-options
    train_dataloader.num_workers=0`` as the fix. It is refused because the
    variable feeds no key there, naming the key it fed in the base;
    ``model.head.dp.warmup_epochs=0`` (E_dp = 0 is in the spec's sweep: DP
    from the first epoch) is the key to set, and is accepted."""
    leaf = 'configs/gmn/gmn_r18_synthreid-v2_dp-e5.py'
    with pytest.raises(ValueError) as info:
        load_config(leaf, {'dp_warmup_epochs': 0})
    message = str(info.value)
    assert "'dp_warmup_epochs' is a variable that the files of" in message
    assert ('instead: model.head.dp.warmup_epochs (fed from it in '
            'configs/_base_/models/gmn_r18_synthreid.py, now 5).') in message
    assert 'num_workers' not in message
    cfg = load_config(leaf, {'model.head.dp.warmup_epochs': 0})
    assert cfg.model.head.dp.warmup_epochs == 0
