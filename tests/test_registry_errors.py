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

from mmreid.registry import DATASETS, HOOKS, METRICS, MODELS
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


class RootTripletLoss:
    """A user's loss registered on mmengine's root registry."""


def test_root_registry_clash_with_a_builtin_is_refused():
    """Before, mmreid's TripletLoss was built and the user's class, under
    the same name in mmengine's root registry, silently never was."""
    MMENGINE_MODELS.register_module(name='TripletLoss', module=RootTripletLoss)
    try:
        # A KeyError, as mmengine's own errors, for `except KeyError`.
        with pytest.raises(KeyError) as info:
            MODELS.build(tiny_model())
    finally:
        MMENGINE_MODELS.module_dict.pop('TripletLoss')
    assert type(info.value).__name__ == 'ShadowedTypeError'
    msg = str(info.value)
    assert msg.startswith("head.loss_tri.type='TripletLoss'")
    assert 'mmreid.models.losses.triplet_loss.TripletLoss' in msg
    assert f'{__name__}.RootTripletLoss' in msg
    assert 'mmengine::model' in msg
    assert 'from mmreid.registry import MODELS' in msg
    assert "register_module(name='TripletLoss', force=True)" in msg
    # A name that only the root registry holds still builds from there.
    MMENGINE_MODELS.register_module(
        name='RootOnlyLoss', module=RootTripletLoss)
    try:
        assert isinstance(
            MODELS.build(dict(type='RootOnlyLoss')), RootTripletLoss)
    finally:
        MMENGINE_MODELS.module_dict.pop('RootOnlyLoss')


def test_the_intended_shadows_are_the_only_ones():
    """mmreid's names that an ancestor registry also holds are the listed
    ones, and they build mmreid's class without an error."""
    import mmreid.registry as registries
    from mmreid.utils import register_all_modules
    from mmreid.utils.registry_suggestions import INTENDED_SHADOWS
    register_all_modules(init_default_scope=False)
    clashes = {}
    for name in registries.__all__:
        registry = getattr(registries, name)
        for key, obj in registry.module_dict.items():
            other = registry.parent.module_dict.get(key)
            if other is not None and other is not obj:
                clashes[(registry.name, key)] = other.__module__.split('.')[0]
    assert clashes == INTENDED_SHADOWS
    assert type(HOOKS.build(dict(type='LoggerHook'))).__module__ \
        .startswith('mmreid.')


class UserLoggerHook:
    """A user's hook that replaced mmengine's LoggerHook in its root."""


def test_an_intended_shadow_of_another_class_is_refused():
    """INTENDED_SHADOWS allows mmreid's LoggerHook over mmengine's own;
    a user's class that replaced it in mmengine's root is another class
    that the build would pass over, and is refused."""
    original = MMENGINE_HOOKS.module_dict['LoggerHook']
    MMENGINE_HOOKS.register_module(
        name='LoggerHook', module=UserLoggerHook, force=True)
    try:
        with pytest.raises(KeyError) as info:
            HOOKS.build(dict(type='LoggerHook'))
    finally:
        MMENGINE_HOOKS.module_dict['LoggerHook'] = original
    assert type(info.value).__name__ == 'ShadowedTypeError'
    assert f'{__name__}.UserLoggerHook' in str(info.value)


class UserMMReIDLoss:
    """A user's loss registered on mmreid's registry."""


def test_a_users_class_on_mmreids_registry_is_not_a_shadow():
    """A class the user registered on mmreid's registry is the one they
    asked for, even where mmengine's root holds the name too."""
    MMENGINE_MODELS.register_module(name='ClashLoss', module=RootTripletLoss)
    MODELS.register_module(name='ClashLoss', module=UserMMReIDLoss)
    try:
        built = MODELS.build(dict(type='ClashLoss'))
    finally:
        MMENGINE_MODELS.module_dict.pop('ClashLoss')
        MODELS.module_dict.pop('ClashLoss')
    assert isinstance(built, UserMMReIDLoss)


def test_suggestions_for_a_prefixed_name_ignore_the_prefix():
    """The scope prefix is not part of the name compared, and the
    searched scope's names are written without one."""
    msg = build_error(MODELS, dict(type='mmpretrain.ResNte', depth=18))
    assert "'mmpretrain.ResNet'" in msg
    msg = build_error(MODELS,
                      tiny_model(backbone=dict(type='ResNett', depth=18)))
    assert "'ReIDResNet'" in msg and "'mmreid." not in msg


def test_an_unknown_type_from_default_args_is_named():
    """The type may come from the build's default_args, as mmengine
    takes it there when the config has none."""
    with pytest.raises(UnknownTypeError) as info:
        MODELS.build(dict(depth=18), default_args=dict(type='ResNett'))
    assert str(info.value).startswith(
        "type='ResNett' is not registered in mmreid::model")


def test_install_keeps_a_childs_own_build_function():
    """A child registry created with its own build function keeps it;
    one that copied its root's gets the suggesting build."""
    from mmengine.registry import Registry

    from mmreid.utils.registry_suggestions import install

    def own_build(cfg, registry, default_args=None):
        return 'own'

    root = Registry('toy')
    copied = Registry('toy', parent=root, scope='toy_copied')
    custom = Registry(
        'toy', parent=root, scope='toy_custom', build_func=own_build)
    install([root])
    assert root.build_func._mmreid_suggestions
    assert copied.build_func is root.build_func
    assert custom.build_func is own_build
