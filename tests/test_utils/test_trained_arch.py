"""The facts of a network trained by mmreid and the check against them
(:mod:`mmreid.utils.trained_arch`, :mod:`mmreid.utils.arch_check`): a
checkpoint's config (``meta['cfg']``) against the config it is tested
with."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmreid.registry import MODELS
from mmreid.utils.arch_check import check_source_arch
from ..fixtures.processes import REPO
from ..fixtures.tiny_models import TINY_BOT_MODEL

MULTI_TARGET = osp.join(REPO, 'configs', 'baseline',
                        'bot_r18_synthreid_multi-target.py')


def test_each_target_is_checked_against_a_trained_checkpoints_config(
        make_config):
    # An mmreid checkpoint keeps its run's config (meta['cfg']); the tiny
    # config tests at 32 x 16, every target of the multi-target config at
    # 64 x 32: each target is refused, with the size to set.
    meta = dict(cfg=Config.fromfile(make_config()).pretty_text)
    cfg = Config.fromfile(MULTI_TARGET)
    model = MODELS.build(cfg.model)
    with pytest.raises(ValueError, match='was trained with a config') as e:
        check_source_arch(meta, model, cfg, 'ckpt.pth')
    for i in range(2):
        path = f'test_cfg.targets.{i}.dataloader.dataset.pipeline'
        assert (f"{path} ReIDResize size: the checkpoint's config has "
                '[32, 16], the config [64, 32]' in str(e.value))
        assert f'{path}.1.size=[32,16]' in str(e.value)
    # Not when it is loaded to train from (load_from).
    assert check_source_arch(meta, model, cfg, 'ckpt.pth', test=False) == []


def saved_config(pipelines: str, model: str = '') -> str:
    """A dumped mmreid config (``meta['cfg']``) with these pipeline keys."""
    model = model or ("model = dict(type='ReIDModel', data_preprocessor="
                      "dict(type='ReIDDataPreprocessor', mean=[123.675, "
                      '116.28, 103.53], std=[58.395, 57.12, 57.375]))\n')
    return "default_scope = 'mmreid'\n" + model + pipelines


def loader(*transforms: str) -> str:
    return ('dict(batch_size=4, dataset=dict(type=\'SynthReIDDataset\', '
            'pipeline=[dict(type=\'LoadImageFromFile\'), ' +
            ', '.join(transforms) + ', dict(type=\'PackReIDInputs\')]))')


def test_trained_config_facts_read_the_test_resize_and_normalisation():
    """``trained_config_facts``: the ``model.data_preprocessor`` mean and
    std as floats, and the test pipeline's ``ReIDResize`` as
    ``tools/test.py`` reads the pipelines (the test split first), its
    unset arguments at ``ReIDResize``'s defaults (bilinear, cv2)."""
    from mmreid.utils.trained_arch import trained_config_facts
    stats = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])
    text = saved_config(
        'test_dataloader = ' +
        loader("dict(type='mmreid.ReIDResize', size=(64, 32))") + '\n'
        "test_cfg = dict(type='TestLoop')\n"
        'val_dataloader = ' +
        loader("dict(type='ReIDResize', size=(80, 40), interpolation='bicubic'"
               ", backend='pillow')") + '\n')
    assert trained_config_facts(text) == dict(
        stats,
        input_size=[64, 32],
        interpolation='bilinear',
        resize_backend='cv2')
    assert trained_config_facts(None) == {}


@pytest.mark.parametrize(
    'pipelines',
    [
        # Targets resized to different sizes: no one test size.
        "test_dataloader = dict()\ntest_cfg = dict(type='MultiTargetTestLoop'"
        ', targets=[dict(name=\'a\', dataloader=' +
        loader("dict(type='ReIDResize', size=(64, 32))") + '), dict(name='
        "'b', dataloader=" + loader("dict(type='ReIDResize', size=(96, 48))") +
        ')])\n',
        # A target without ReIDResize.
        "test_dataloader = dict()\ntest_cfg = dict(type='MultiTargetTestLoop'"
        ', targets=[dict(name=\'a\', dataloader=' +
        loader("dict(type='ReIDResize', size=(64, 32))") + '), dict(name='
        "'b', dataloader=" + loader("dict(type='RandomFlip')") + ')])\n',
        # A test loader the text does not state as a literal: the
        # validation loader is not read in its place.
        'test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n'
        'val_dataloader = ' +
        loader("dict(type='ReIDResize', size=(64, 32))") + '\n',
    ])
def test_trained_config_facts_give_no_resize_unless_one_is_stated(pipelines):
    from mmreid.utils.trained_arch import trained_config_facts
    assert trained_config_facts(saved_config(pipelines)) == dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])


def test_a_saved_config_without_one_test_size_checks_the_normalisation():
    """A saved config that states no one test resize (its test loader is
    no literal) still gives its mean and std: the resize is not compared
    (nor its lack of a pipeline reported), the normalisation is."""
    cfg = Config.fromfile(MULTI_TARGET)
    model = MODELS.build(cfg.model)  # ImageNet mean and std
    unread = 'test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n'
    # The saved model is the config's (the network check passes), with
    # ImageNet's normalisation stated.
    saved = cfg.model.to_dict()
    saved['data_preprocessor'] = dict(
        type='ReIDDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375])
    meta = dict(cfg=saved_config(unread, model=f'model = {saved!r}\n'))
    assert check_source_arch(meta, model, cfg, 'ckpt.pth') == []
    # One channel's std off by 0.375 (of 57): another input scale.
    saved['data_preprocessor']['std'] = [58.395, 57.12, 57.0]
    meta = dict(cfg=saved_config(unread, model=f'model = {saved!r}\n'))
    with pytest.raises(
            ValueError,
            match=r"normalisation std \(0-255\): the checkpoint's config has "
            r'\[58.395, 57.12, 57.0\], the config \[58.395, 57.12, 57.375\]'
    ) as info:
        check_source_arch(meta, model, cfg, 'ckpt.pth')
    assert 'ReIDResize' not in str(info.value)


class TrainedArchMaxPool(torch.nn.Module):
    """A neck without tensors other than ``GlobalAvgPool``: global max
    pooling, (N, C, H, W) -> (N, C)."""

    def forward(self, inputs):
        if isinstance(inputs, tuple):
            return tuple(self(x) for x in inputs)
        return inputs.amax(dim=(2, 3))


MODELS.register_module('TrainedArchMaxPool', module=TrainedArchMaxPool)

#: A tiny BoT model; a checkpoint of it tested with another config.
TINY_MODEL = dict(TINY_BOT_MODEL, neck=dict(type='TrainedArchMaxPool'))


def tiny_model(**options):
    """:data:`TINY_MODEL` with ``--cfg-options``-style ``model.*`` keys."""
    cfg = Config(dict(model=copy.deepcopy(TINY_MODEL)))
    cfg.merge_from_dict(options)
    return cfg.model.to_dict()


def check_trained(saved, current, **kwargs):
    """check_source_arch at test time of a checkpoint trained with the
    model config ``saved`` (kept as mmengine keeps it, ``meta['cfg']``),
    loaded with a config whose model is ``current``."""
    meta = dict(cfg=Config(dict(model=saved)).pretty_text)
    cfg = Config(dict(model=current))
    return check_source_arch(meta, MODELS.build(current), cfg, 'ckpt.pth',
                             **kwargs)


@pytest.mark.parametrize('key,trained,other', [
    ('model.neck.type', 'TrainedArchMaxPool', 'GlobalAvgPool'),
    ('model.backbone.last_stride', 1, 2),
])
def test_another_network_without_other_tensors_is_refused(key, trained, other):
    # Max and average pooling, last stride 1 and 2: the same tensors load
    # strictly and compute other features. The checkpoint's config names
    # the network it was trained as: refused, naming the key, both values
    # and the option that tests the trained network.
    with pytest.raises(ValueError) as info:
        check_trained(TINY_MODEL, tiny_model(**{key: other}))
    message = str(info.value)
    assert (f"{key}: the checkpoint's config has {trained!r}, the config "
            f'{other!r}') in message, message
    assert 'builds another network at test time' in message
    assert f'--cfg-options {key}={trained}' in message
    assert '--strict false' in message
    # init_model's wording of the same fix.
    with pytest.raises(ValueError) as info:
        check_trained(TINY_MODEL, tiny_model(**{key: other}), api=True)
    assert f"cfg_options={{'{key}': {trained!r}}}" in str(info.value)
    # With it, the config computes the trained network.
    assert check_trained(TINY_MODEL, tiny_model(**{key: trained})) == []


def test_the_trained_config_itself_is_accepted():
    assert check_trained(TINY_MODEL, copy.deepcopy(TINY_MODEL)) == []


def test_names_of_one_class_and_left_out_defaults_are_the_same_network():
    # A scope prefix resolves to the class without it; a key left out is
    # the class's default (ReIDResNet's last_stride=1, ReIDModel's
    # ReIDDataPreprocessor), which the other side may state.
    scoped = tiny_model(
        **{
            'model.neck.type': 'mmreid.TrainedArchMaxPool',
            'model.head.type': 'mmreid.BNNeckHead',
            'model.data_preprocessor': dict(type='ReIDDataPreprocessor'),
        })
    assert check_trained(TINY_MODEL, scoped) == []
    assert check_trained(scoped, TINY_MODEL) == []
    implicit = copy.deepcopy(TINY_MODEL)
    del implicit['backbone']['last_stride']
    assert check_trained(implicit, TINY_MODEL) == []
    # The default is what it is compared with, and what the fix sets.
    stride_2 = tiny_model(**{'model.backbone.last_stride': 2})
    with pytest.raises(ValueError) as info:
        check_trained(implicit, stride_2)
    assert "last_stride: the checkpoint's config has 1, the config 2" in \
        str(info.value)
    assert '--cfg-options model.backbone.last_stride=1' in str(info.value)


def test_training_only_settings_and_evaluation_choices_are_accepted():
    # What test features do not depend on (losses, the classifier's
    # size, frozen stages, BN momentum, initialisation) and what the docs
    # change at test time on one checkpoint (test feature, flip, distance).
    current = tiny_model(
        **{
            'model.head.num_classes':
            3,
            'model.head.loss_tri':
            dict(type='TripletLoss', margin=0.5),
            'model.head.triplet_feat':
            'bn',
            'model.backbone.frozen_stages':
            2,
            'model.backbone.norm_eval':
            True,
            'model.backbone.norm_cfg':
            dict(type='BN', momentum=0.3),
            'model.backbone.init_cfg':
            dict(type='Pretrained', checkpoint='r18.pth'),
            'model.head.test_feature':
            'before_bn',
            'model.test_cfg':
            dict(flip=True),
            'model.distance':
            'cosine',
        })
    assert check_trained(TINY_MODEL, current) == []
    # A norm setting that the test forward reads is not.
    with pytest.raises(
            ValueError,
            match=r'model\.backbone\.norm_cfg\.eps: '
            r"the checkpoint's config has 1e-05, the config "
            r'0\.001'):
        check_trained(
            TINY_MODEL,
            tiny_model(
                **{'model.backbone.norm_cfg': dict(type='BN', eps=1e-3)}))


def test_two_types_that_resolve_to_no_class_are_not_one_class():
    # network_differences drops a type difference only when both names
    # resolve to one class; two names that resolve to none (not
    # registered here) are not shown to be one network.
    from mmreid.utils.trained_arch import network_differences
    saved = dict(type='ReIDModel', neck=dict(type='UnregisteredPoolA'))
    current = dict(type='ReIDModel', neck=dict(type='UnregisteredPoolB'))
    assert network_differences(saved, current) == [
        (('model', 'neck', 'type'), 'UnregisteredPoolA', 'UnregisteredPoolB')
    ]
    assert network_differences(saved, copy.deepcopy(saved)) == []


def test_an_argument_at_its_default_is_compared_with_its_own_class():
    # The saved ReIDResNet has no num_modalities; the current AGWResNet
    # gives its own default (2): the type differs, the argument does not
    # (its default is AGWResNet's, the class that takes it).
    from mmreid.utils.trained_arch import network_differences
    saved = dict(type='ReIDModel', backbone=dict(type='ReIDResNet', depth=18))
    current = dict(
        type='ReIDModel',
        backbone=dict(type='AGWResNet', depth=18, num_modalities=2))
    assert network_differences(saved, current) == [
        (('model', 'backbone', 'type'), 'ReIDResNet', 'AGWResNet')
    ]


def test_a_field_beneath_a_training_only_argument_is_accepted():
    # The triplet margin is read by loss() only: a field of an argument
    # that does not change the test network (loss_tri), however deep.
    saved = tiny_model(
        **{'model.head.loss_tri': dict(type='TripletLoss', margin=0.3)})
    current = tiny_model(
        **{'model.head.loss_tri': dict(type='TripletLoss', margin=0.5)})
    assert check_trained(saved, current) == []


def test_another_network_alone_is_not_called_other_test_images():
    # The message says what differs: here the network only.
    with pytest.raises(ValueError) as info:
        check_trained(TINY_MODEL,
                      tiny_model(**{'model.backbone.last_stride': 2}))
    assert ("(its meta['cfg']) that builds another network at test time "
            'than this config:') in str(info.value)


def test_the_mbn_evaluation_statistics_are_an_evaluation_choice():
    # configs/mbn/README.md tests one MBN checkpoint under each
    # eval_stats (and its min_per_modality threshold): an evaluation
    # choice, not another network. A constant the forward reads (eps, left
    # to MBN's default 1e-5 in the trained config) is another network.
    saved = tiny_model(**{'model.backbone.norm_cfg': dict(type='MBN')})
    for option in (dict(eval_stats='batch'), dict(eval_stats='shared'),
                   dict(min_per_modality=4)):
        current = tiny_model(
            **{'model.backbone.norm_cfg': dict(type='MBN', **option)})
        assert check_trained(saved, current) == [], option
    with pytest.raises(
            ValueError,
            match=r'model\.backbone\.norm_cfg\.eps: '
            r"the checkpoint's config has 1e-05, the config 0\.001"):
        check_trained(
            saved,
            tiny_model(
                **{'model.backbone.norm_cfg': dict(type='MBN', eps=1e-3)}))


def test_strict_off_accepts_another_network_with_a_warning():
    from unittest import mock

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    current = tiny_model(**{'model.backbone.last_stride': 2})
    with mock.patch.object(logger, 'warning') as warned, \
            mock.patch.object(logger, 'log') as logged:
        problems = check_trained(TINY_MODEL, current, strict=False)
    assert problems == [
        "model.backbone.last_stride: the checkpoint's config has 1, the "
        'config 2'
    ]
    lines = [str(c) for c in warned.call_args_list + logged.call_args_list]
    assert any('model.backbone.last_stride' in line
               and 'strict loading is off' in line for line in lines), lines


def test_a_trained_network_is_not_checked_for_training():
    # load_from while training (fine-tuning) starts from the weights only.
    current = tiny_model(**{'model.backbone.last_stride': 2})
    assert check_trained(TINY_MODEL, current, test=False) == []


def test_a_normalisation_left_to_its_default_is_compared():
    # The trained config leaves the data preprocessor to ReIDModel's
    # default, ReIDDataPreprocessor with ImageNet's statistics on the 0-255
    # scale (0.485, 0.456, 0.406 and 0.229, 0.224, 0.225 times 255). A test
    # config that normalises otherwise feeds the network other inputs.
    imagenet = dict(
        type='ReIDDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375])
    other = dict(imagenet, mean=[0, 0, 0], std=[255, 255, 255])
    with pytest.raises(
            ValueError,
            match=r"normalisation mean \(0-255\): the checkpoint's config "
            r'has \[123\.675, 116\.28, 103\.53\], the config \[0\.0'):
        check_trained(TINY_MODEL,
                      tiny_model(**{'model.data_preprocessor': other}))
    assert check_trained(
        TINY_MODEL, tiny_model(**{'model.data_preprocessor': imagenet})) == []


def test_a_difference_no_option_can_undo_points_to_the_trained_config():
    # The trained stem pooling leaves ceil_mode out (a key of a dict
    # without a type, so no class default tells its value); an option
    # cannot remove the key the test config adds.
    saved = tiny_model(**{'model.backbone.stem_pool': dict(padding=0)})
    current = tiny_model(
        **{'model.backbone.stem_pool': dict(padding=0, ceil_mode=True)})
    with pytest.raises(ValueError) as info:
        check_trained(saved, current)
    message = str(info.value)
    assert ("model.backbone.stem_pool.ceil_mode: the checkpoint's config "
            'has nothing, the config True') in message
    assert ('No option gives the trained value of '
            'model.backbone.stem_pool.ceil_mode') in message
    assert 'test it with the config it was trained with' in message


def test_a_list_of_dicts_is_no_command_line_option():
    """``--cfg-options`` refuses a dict literal in a list, so a trained
    value holding one is not offered as an option (the key is named as
    one to set in a config instead); a dict is given leaf by leaf."""
    from mmreid.utils.trained_arch import _cfg_options
    assert _cfg_options('model.neck.blocks', [dict(type='B', k=3)]) is None
    assert _cfg_options('model.neck.sizes', [[1, 2]]) is None
    sizes = [('model.neck.sizes', [1, 2])]
    assert _cfg_options('model.neck.sizes', [1, 2]) == sizes
    leaves = [('model.neck.k', 3), ('model.neck.p', [1])]
    assert _cfg_options('model.neck', dict(k=3, p=[1])) == leaves


def test_a_deprecated_name_resolves_to_the_class_it_builds():
    """A type registered under an old name (a deprecated alias) builds the
    new class: it is that class, so a saved config that spells a module
    by its old name is not taken for another network."""
    from mmreid.models.losses import ReIDCrossEntropyLoss
    from mmreid.utils.trained_arch import model_class
    assert model_class(dict(type='CrossEntropyLoss')) is ReIDCrossEntropyLoss
    assert model_class(
        dict(type='mmreid.ReIDCrossEntropyLoss')) is ReIDCrossEntropyLoss
    assert model_class(dict(type='NoSuchModule')) is None
