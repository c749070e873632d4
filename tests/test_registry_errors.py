"""An unknown ``type`` names its config key and the closest registered names.

Written against mmengine's behaviour before the change: "X is not in the
mmreid::model registry" with neither the key nor a suggestion.
"""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.runner import Runner

from mmreid.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS
from mmreid.utils.registry_suggestions import UnknownTypeError, suggestions

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def tiny_model(**overrides) -> dict:
    cfg = dict(
        type='ReIDModel',
        backbone=dict(type='ReIDResNet', depth=18, init_cfg=None),
        neck=dict(type='GlobalAvgPool'),
        head=dict(
            type='BNNeckHead',
            in_channels=512,
            num_classes=10,
            loss_cls=dict(type='ReIDCrossEntropyLoss', label_smooth_eps=0.1),
            loss_tri=dict(type='TripletLoss', margin=0.3)))
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def build_error(registry, cfg) -> str:
    with pytest.raises(UnknownTypeError) as info:
        registry.build(cfg)
    # Still a KeyError, as mmengine's own error, for `except KeyError`.
    assert isinstance(info.value, KeyError)
    return str(info.value)


def test_misspelt_backbone_names_key_and_both_scopes():
    msg = build_error(MODELS,
                      tiny_model(backbone=dict(type='ResNett', depth=18)))
    assert msg.startswith("backbone.type='ResNett' (in a type='ReIDModel' "
                          'config) is not registered in mmreid::model')
    assert "'ReIDResNet'" in msg
    assert "'mmpretrain.ResNet'" in msg


def test_mmpretrain_name_without_scope_is_pointed_to_both_resnets():
    msg = build_error(MODELS,
                      tiny_model(backbone=dict(type='ResNet', depth=18)))
    near = msg.split('Did you mean ', 1)[1].split('?')[0]
    assert "'ReIDResNet'" in near and "'mmpretrain.ResNet'" in near
    assert 'another scope is written with its prefix' in msg


def test_nested_loss_key_path():
    head = tiny_model()['head']
    head['loss_tri'] = dict(type='TripletLos', margin=0.3)
    msg = build_error(MODELS, tiny_model(head=head))
    assert msg.startswith("head.loss_tri.type='TripletLos'")
    assert "Did you mean 'TripletLoss'" in msg


@pytest.mark.parametrize('registry, wrong, right', [
    (DATASETS, 'SynthReId', 'SynthReID'),
    (METRICS, 'ReIDMetrik', 'ReIDMetric'),
    (HOOKS, 'TrainSetup', 'TrainSetupCheckHook'),
    (MMENGINE_MODELS, 'ReIDModl', 'ReIDModel'),
])
def test_top_level_misspellings(registry, wrong, right):
    msg = build_error(registry, dict(type=wrong))
    assert msg.startswith(f"type='{wrong}' is not registered in mmreid::")
    assert f"'{right}'" in msg.split('\n')[1]


def test_ancestor_scope_is_named():
    msg = build_error(MMENGINE_HOOKS, dict(type='CheckpointHok'))
    assert "Did you mean 'CheckpointHook' (mmengine)?" in msg


def test_prefixed_name_reports_its_scope():
    msg = build_error(MODELS, dict(type='mmpretrain.ResNett', depth=18))
    assert 'is not registered in mmpretrain::model' in msg
    assert "'mmpretrain.ResNet'" in msg


def test_nothing_close():
    msg = build_error(HOOKS, dict(type='Zzzq'))
    assert 'No registered name is close to it.' in msg


def test_other_key_errors_pass_unchanged():
    """A KeyError raised while building a known type is not rewritten."""

    @MODELS.register_module(force=True)
    class RaisesKeyError:

        def __init__(self):
            raise KeyError('from the constructor')

    with pytest.raises(KeyError) as info:
        MODELS.build(dict(type='RaisesKeyError'))
    assert not isinstance(info.value, UnknownTypeError)
    assert info.value.args == ('from the constructor', )
    MODELS.module_dict.pop('RaisesKeyError')


def test_suggestions_rank_case_and_containment():
    near = suggestions('synthreid', DATASETS)
    assert near[0] == "'SynthReID'"


def runner_cfg(tmp_path) -> Config:
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'baseline', 'bot_r18_synthreid.py'))
    cfg.work_dir = str(tmp_path)
    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'none')
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    return cfg


def test_runner_errors_name_the_full_key_path(tmp_path):
    cfg = runner_cfg(tmp_path)
    cfg.model.backbone.type = 'ResNett'
    with pytest.raises(UnknownTypeError, match=r"^model\.backbone\.type="):
        Runner.from_cfg(cfg)

    cfg = runner_cfg(tmp_path)
    cfg.custom_hooks = [dict(type='TrainSetup')]
    with pytest.raises(UnknownTypeError) as info:
        Runner.from_cfg(cfg)
    assert str(info.value).startswith("custom_hooks[0].type='TrainSetup'")
    assert "'TrainSetupCheckHook'" in str(info.value)


def test_runner_dataset_key_path(tmp_path):
    cfg = runner_cfg(tmp_path)
    cfg.train_dataloader.dataset.type = 'SynthReId'
    runner = Runner.from_cfg(cfg)
    with pytest.raises(UnknownTypeError) as info:
        runner.train()
    assert str(
        info.value).startswith("train_dataloader.dataset.type='SynthReId'")
    assert "Did you mean 'SynthReID'" in str(info.value)


def test_runner_optimizer_type(tmp_path):
    # mmengine's optimizer constructor looks the class up itself: a
    # misspelt type was "TypeError: None is not a callable object".
    from mmreid.engine.runner import ReIDRunner
    cfg = runner_cfg(tmp_path)
    cfg.optim_wrapper.optimizer.type = 'Adamm'
    runner = ReIDRunner.from_cfg(cfg)
    with pytest.raises(UnknownTypeError) as info:
        runner.build_optim_wrapper(runner.optim_wrapper)
    message = str(info.value)
    assert message.startswith("optim_wrapper.optimizer.type='Adamm'")
    assert "'Adam'" in message and "'AdamW'" in message


def test_an_argument_the_type_does_not_take_names_its_key():
    """A misspelt argument was Python's bare 'unexpected keyword argument'
    TypeError, naming neither the key nor the arguments the class takes."""
    from mmreid.utils.registry_suggestions import ConfigArgumentError
    head = tiny_model()['head']
    head['loss_tri'] = dict(type='TripletLoss', marginn=0.3)
    with pytest.raises(ConfigArgumentError) as info:
        MODELS.build(tiny_model(head=head))
    assert isinstance(info.value, TypeError)
    msg = str(info.value)
    assert msg.startswith("head.loss_tri (in a type='ReIDModel' config) "
                          "(type='TripletLoss') gives marginn=0.3, which "
                          'TripletLoss does not take.')
    assert 'Did you mean margin?' in msg
    assert '_delete_=True' in msg
    # _delete_ where no base dict is replaced reaches the constructor.
    head['loss_tri'] = dict(type='TripletLoss', margin=0.3, _delete_=True)
    with pytest.raises(ConfigArgumentError, match='leave _delete_ out'):
        MODELS.build(tiny_model(head=head))


def test_runner_loop_argument_names_its_key(tmp_path):
    """--cfg-options train_cfg.max_epoch=1 (for max_epochs)."""
    from mmreid.utils.registry_suggestions import ConfigArgumentError
    cfg = runner_cfg(tmp_path)
    from mmreid.engine.runner import ReIDRunner
    cfg.train_cfg.max_epoch = 1
    runner = ReIDRunner.from_cfg(cfg)
    with pytest.raises(ConfigArgumentError) as info:
        runner.train()
    msg = str(info.value)
    assert msg.startswith("train_cfg (type='EpochBasedTrainLoop') gives "
                          'max_epoch=1')
    assert 'Did you mean max_epochs?' in msg


def test_an_option_that_changes_a_type_is_told_to_delete_the_old_fields(
        tmp_path):
    """``--cfg-options test_evaluator.type=ReIDMetric`` on a SYSU config
    keeps SYSUMetric's ``mode``: the message spoke of a base config only.
    It gives the option route too, which is accepted."""
    from mmreid.engine.runner import ReIDRunner
    from mmreid.utils.registry_suggestions import ConfigArgumentError
    cfg = runner_cfg(tmp_path)
    cfg.test_evaluator = dict(type='SYSUMetric', mode='all')
    cfg.merge_from_dict({'test_evaluator.type': 'ReIDMetric'})
    runner = ReIDRunner.from_cfg(cfg)
    with pytest.raises(ConfigArgumentError) as info:
        runner.build_evaluator(runner.cfg.test_evaluator)
    assert str(info.value).startswith(
        "test_evaluator (type='ReIDMetric') gives mode='all'")
    assert ("If --cfg-options test_evaluator.type=ReIDMetric gave the new "
            'type, the old fields were kept: give test_evaluator._delete_'
            '=True with it') in str(info.value)
    cfg.merge_from_dict({
        'test_evaluator._delete_': True,
        'test_evaluator.type': 'ReIDMetric'
    })
    evaluator = runner.build_evaluator(cfg.test_evaluator)
    assert type(evaluator.metrics[0]).__name__ == 'ReIDMetric'


def test_a_config_without_default_scope_is_told_to_set_it():
    """Without ``default_scope`` mmengine looks ``type='ReIDModel'`` up in
    its root registry; the error only suggested 'mmreid.ReIDModel', while
    the fix is ``default_scope = 'mmreid'`` (what init_model assumes)."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmengine'):
        msg = build_error(MMENGINE_MODELS, tiny_model())
    assert msg.startswith("type='ReIDModel' is not registered in "
                          'mmengine::model')
    assert "the config sets no default_scope" in msg
    assert "add default_scope = 'mmreid'" in msg
    # In mmreid's scope a misspelt name gets no such advice.
    msg = build_error(MMENGINE_MODELS, dict(type='ReIDModl'))
    assert 'default_scope' not in msg


@pytest.mark.parametrize('registry, right, right_name', [
    (METRICS, 'METRICS', 'metric'),
    (TRANSFORMS, 'TRANSFORMS', 'transform'),
])
def test_a_class_on_a_registry_of_another_kind_is_found(
        registry, right, right_name):
    """A metric (or a transform) registered on MODELS was "not registered"
    with an unrelated suggestion: the build searches registries of its
    own kind only. The message says where it is and where it belongs."""

    @MODELS.register_module()
    class WronglyRegisteredThing:
        pass

    try:
        msg = build_error(registry, dict(type='WronglyRegisteredThing'))
    finally:
        MODELS.module_dict.pop('WronglyRegisteredThing')
    assert msg.startswith("type='WronglyRegisteredThing' is not registered "
                          f'in mmreid::{right_name}')
    assert "'WronglyRegisteredThing' is registered in mmreid::model" in msg
    assert f'register it on {right}' in msg
    assert f'@{right}.register_module()' in msg


def test_every_mmengine_root_registry_has_an_mmreid_child():
    """DESIGN.md: child registries of every mmengine root, each with
    locations. FUNCTIONS (a dataloader's collate_fn) and STRATEGIES had
    none."""
    import mmengine.registry.root as roots
    from mmengine.registry import Registry

    import mmreid.registry as mmreid_registry
    ours = {
        id(getattr(mmreid_registry, name).parent): name
        for name in mmreid_registry.__all__
    }
    for root_name, root in vars(roots).items():
        if not isinstance(root, Registry):
            continue
        assert id(root) in ours, f'no mmreid child of mmengine {root_name}'
        child = getattr(mmreid_registry, ours[id(root)])
        assert child.scope == 'mmreid' and child._locations, root_name
        assert root.children['mmreid'] is child


def collate_cfg(tmp_path) -> Config:
    """runner_cfg, its training set refused at once if it were built."""
    cfg = runner_cfg(tmp_path)
    cfg.train_dataloader.dataset = dict(
        type='Market1501',
        data_root=str(tmp_path / 'none'),
        pipeline=cfg.train_dataloader.dataset.pipeline)
    return cfg


def test_a_misspelt_collate_fn_names_its_key(tmp_path):
    """mmengine looks collate_fn.type up itself: a typo was "TypeError:
    the first argument must be callable", without key or suggestion."""
    from mmreid.engine.runner import ReIDRunner
    cfg = collate_cfg(tmp_path)
    cfg.train_dataloader.collate_fn = dict(type='default_colate')
    runner = ReIDRunner.from_cfg(cfg)
    with pytest.raises(UnknownTypeError) as info:
        runner.train()
    msg = str(info.value)
    assert msg.startswith(
        "train_dataloader.collate_fn.type='default_colate' is not "
        'registered in mmreid::function')
    assert "Did you mean 'default_collate' (mmengine)?" in msg
    assert 'A function of your own' in msg


def test_a_collate_fn_of_mmreids_registry_needs_no_prefix():
    """Looked up as every other type: the default scope's registry first."""
    from mmengine.registry import DefaultScope

    from mmreid.engine.runner import ReIDRunner
    from mmreid.registry import FUNCTIONS

    @FUNCTIONS.register_module()
    def collate_as_pairs(batch):
        return [tuple(batch)]

    loader = dict(
        dataset=[1, 2, 3, 4],
        sampler=dict(type='DefaultSampler', shuffle=False),
        batch_size=2,
        num_workers=0,
        collate_fn=dict(type='collate_as_pairs'))
    try:
        with DefaultScope.overwrite_default_scope('mmreid'):
            batches = list(ReIDRunner.build_dataloader(loader))
    finally:
        FUNCTIONS.module_dict.pop('collate_as_pairs')
    assert batches == [[(1, 2)], [(3, 4)]]
    assert loader['collate_fn'] == dict(type='collate_as_pairs')


def test_a_misspelt_visualizer_names_its_key(tmp_path):
    """mmengine adds name and save_dir to the visualizer's dict before the
    build, so its key was not found: "type='ReIDVisualiser' is not ..."."""
    from mmreid.engine.runner import ReIDRunner
    cfg = runner_cfg(tmp_path)
    cfg.visualizer = dict(type='ReIDVisualiser')
    with pytest.raises(UnknownTypeError) as info:
        ReIDRunner.from_cfg(cfg)
    msg = str(info.value)
    assert msg.startswith("visualizer.type='ReIDVisualiser' is not "
                          'registered in mmreid::visualizer')
    assert "'ReIDVisualizer'" in msg


def test_the_searched_scope_is_not_suggested_again_with_its_prefix():
    """The names of the searched registry are written without a prefix;
    the same names again as 'mmreid.X' would be a second, redundant
    spelling of one class."""
    near = suggestions('ReIDResNett', MODELS)
    assert "'ReIDResNet'" in near
    assert not any(n.startswith("'mmreid.") for n in near), near


def test_the_message_names_every_registry_searched_and_every_candidate():
    """'not registered in mmreid::model (nor in mmengine::model)': the
    ancestors were searched too; several close names are listed as
    'a, b or c'."""
    msg = build_error(MODELS,
                      tiny_model(backbone=dict(type='ResNet', depth=18)))
    assert 'is not registered in mmreid::model (nor in mmengine::model).' \
        in msg
    near = msg.split('Did you mean ', 1)[1].split('?')[0]
    assert ' or ' in near and near.count("'") >= 4
    # A name of the same kind in another scope is not "another kind".
    assert 'another kind' not in msg


def test_a_prefixed_name_on_a_registry_of_another_kind_is_found():
    """``type='mmreid.X'`` with X registered on MODELS, built as a metric:
    the prefix does not hide where X is."""

    @MODELS.register_module()
    class WronglyRegisteredPrefixed:
        pass

    try:
        msg = build_error(METRICS,
                          dict(type='mmreid.WronglyRegisteredPrefixed'))
    finally:
        MODELS.module_dict.pop('WronglyRegisteredPrefixed')
    assert "'WronglyRegisteredPrefixed' is registered in mmreid::model" \
        in msg


def test_the_default_scope_advice_names_the_scope_the_config_set():
    """With ``default_scope = 'mmpretrain'`` an mmreid name is looked up in
    mmpretrain's registries: the advice says so (not 'no default_scope');
    a name that is not mmreid's gets no default_scope advice at all."""
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        msg = build_error(MMENGINE_MODELS, tiny_model())
    assert "the config sets default_scope = 'mmpretrain'" in msg
    assert "looked up in 'mmpretrain''s registries" in msg
    assert "add default_scope = 'mmreid'" in msg
    with DefaultScope.overwrite_default_scope('mmengine'):
        msg = build_error(MMENGINE_MODELS, dict(type='ReIDModl'))
    assert 'default_scope' not in msg
    assert "'mmreid.ReIDModel'" in msg


def test_an_unknown_type_given_by_default_args_is_named():
    """A builder may give the type through ``default_args`` (the config
    only sets the arguments); an unknown one is still named."""
    with pytest.raises(UnknownTypeError) as info:
        MODELS.build(dict(depth=18), default_args=dict(type='ReIDResNett'))
    assert str(info.value).startswith(
        "type='ReIDResNett' is not registered in mmreid::model")
    assert "'ReIDResNet'" in str(info.value)


def test_a_nested_argument_error_does_not_offer_the_cfg_options_route():
    """The --cfg-options hint is for a top-level key path only: for a key
    found relative to an outer type it would name a key that does not
    exist."""
    from mmreid.utils.registry_suggestions import ConfigArgumentError
    head = tiny_model()['head']
    head['loss_tri'] = dict(type='TripletLoss', marginn=0.3)
    with pytest.raises(ConfigArgumentError) as info:
        MODELS.build(tiny_model(head=head))
    assert '--cfg-options' not in str(info.value)


def test_the_key_path_of_one_of_two_equal_configs_is_its_own():
    """Two equal sub-configs (the same transform twice): the key path is
    that of the config being built, found by identity, not the first
    equal one."""
    from mmreid.utils.registry_suggestions import config_key_path
    first, second = dict(type='Resize', scale=8), dict(type='Resize', scale=8)
    outer = dict(type='Compose', transforms=[first, second])
    assert config_key_path([outer, second]) == ('transforms[1]', 'Compose')
    assert config_key_path([outer, first]) == ('transforms[0]', 'Compose')


def test_config_type_name_is_the_class_name_without_scope():
    from mmreid.utils.registry_suggestions import config_type_name
    assert config_type_name(dict(type='mmpretrain.ResNet')) == 'ResNet'
    assert config_type_name(dict(type='ReIDResNet')) == 'ReIDResNet'
    assert config_type_name(dict(type=dict)) == 'dict'
    assert config_type_name(dict(depth=18)) is None
    from mmengine.config import ConfigDict
    assert config_type_name(ConfigDict(type='mmreid.SynthReID')) == \
        'SynthReID'


def test_an_ancestors_class_hidden_by_an_mmreid_name_is_refused():
    """A user's class registered on mmengine's root MODELS under a name
    that mmreid's registry also has would never be built: refused, naming
    both classes and how to register it."""
    from mmreid.utils.registry_suggestions import ShadowedTypeError

    @MMENGINE_MODELS.register_module(name='GlobalAvgPool')
    class UsersPool:
        pass

    try:
        with pytest.raises(ShadowedTypeError) as info:
            MODELS.build(dict(type='GlobalAvgPool'))
    finally:
        MMENGINE_MODELS.module_dict.pop('GlobalAvgPool')
    msg = str(info.value)
    assert isinstance(info.value, KeyError)
    assert msg.startswith("type='GlobalAvgPool' names two classes")
    assert 'UsersPool' in msg and 'mmengine::model' in msg
    assert '`from mmreid.registry import MODELS`' in msg
    # Without the user's class the name builds as before.
    assert type(MODELS.build(dict(type='GlobalAvgPool'))).__name__ == \
        'GlobalAvgPool'


def test_a_users_class_on_mmreids_registry_may_share_a_root_name():
    """A class the user registered on mmreid's own registry is the one
    meant: a root class of the same name (mmengine's CheckpointHook) is
    not a silent shadow, so the build goes on."""

    @HOOKS.register_module(name='CheckpointHook')
    class UsersCheckpointHook:
        pass

    try:
        built = HOOKS.build(dict(type='CheckpointHook'))
    finally:
        HOOKS.module_dict.pop('CheckpointHook')
    assert isinstance(built, UsersCheckpointHook)
