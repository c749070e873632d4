"""The facts of a converted network's source and the check against them
(:mod:`mmreid.utils.source_arch`, :mod:`mmreid.utils.arch_check`), on
tensors and configs built here."""
import copy
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config

from mmreid.registry import MODELS
from mmreid.utils.arch_check import check_source_arch
from mmreid.utils.source_arch import SOURCE_ARCH, source_arch
from ..fixtures.processes import REPO

#: ImageNet's per-channel (R, G, B) statistics on the 0-255 scale.
IMAGENET = [123.675, 116.28, 103.53]
IMAGENET_SD = [58.395, 57.12, 57.375]

MULTI_TARGET = osp.join(REPO, 'configs', 'baseline',
                        'bot_r18_synthreid_multi-target.py')

#: The model facts of fast-reid's BoT, so that only the pipelines differ.
FASTREID_MODEL = {
    'model.backbone.stem_pool.padding': 0,
    'model.backbone.stem_pool.ceil_mode': True,
    'model.backbone.init_cfg': None,
}


def fastreid_meta():
    facts = copy.deepcopy(SOURCE_ARCH['fastreid'])
    facts['source'] = 'fastreid'
    return dict(source='fastreid', unmapped=[], source_arch=facts)


#: fast-reid's default ranking (TEST.METRIC: cosine) on each target of
#: the multi-target config, whose metrics rank by ReIDMetric's default
#: Euclidean distance.
FASTREID_RANKING = {
    f'test_cfg.targets.{i}.evaluator.distance': 'cosine'
    for i in range(2)
}


def multi_target_config(**options):
    cfg = Config.fromfile(MULTI_TARGET)
    cfg.merge_from_dict(dict(FASTREID_MODEL, **FASTREID_RANKING, **options))
    return cfg


def test_multi_target_pipelines_are_checked():
    # A multi-target config tests with test_cfg.targets; its
    # test_dataloader is an empty placeholder. fast-reid resizes to
    # 256 x 128 with PIL bicubic, every target here to 64 x 32 with cv2
    # bilinear: refused, naming each target's resize.
    cfg = multi_target_config()
    assert cfg.test_dataloader == {} and len(cfg.test_cfg.targets) == 2
    model = MODELS.build(cfg.model)
    with pytest.raises(ValueError) as info:
        check_source_arch(fastreid_meta(), model, cfg, 'ckpt.pth')
    message = str(info.value)
    for i in range(2):
        path = f'test_cfg.targets.{i}.dataloader.dataset.pipeline'
        assert f'{path} ReIDResize size: the source has [256, 128]' \
            in message
        assert f'{path} ReIDResize interpolation' in message
        assert f'{path} ReIDResize backend' in message
    # The API (init_model) reads the pipelines tools/test.py runs, the
    # targets' (not the top-level test_pipeline variable), and words the
    # fix for init_model.
    with pytest.raises(ValueError) as info:
        check_source_arch(fastreid_meta(), model, cfg, 'ckpt.pth', api=True)
    assert 'test_cfg.targets.1.dataloader.dataset.pipeline ReIDResize ' \
        'size' in str(info.value)
    assert 'test_pipeline ReIDResize' not in str(info.value)
    assert 'init_model(..., cfg_options=' in str(info.value)
    # The printed overrides make the config compute the source network.
    fix = re.search(r'--cfg-options (.*)$', message).group(1).split()
    assert len(fix) == 6
    options = dict(item.split('=', 1) for item in fix)
    options = {
        k: [int(v) for v in v.strip('[]').split(',')] if 'size' in k else v
        for k, v in options.items()
    }
    cfg = multi_target_config(**options)
    assert check_source_arch(fastreid_meta(), model, cfg, 'ckpt.pth') == []


def test_a_target_without_resize_is_refused():
    cfg = multi_target_config()
    cfg.test_cfg.targets[1].dataloader.dataset.pipeline = [
        dict(type='ReIDLoadImageFromFile'),
        dict(type='PackReIDInputs')
    ]
    model = MODELS.build(cfg.model)
    with pytest.raises(
            ValueError,
            match=r'test_cfg\.targets\.1\.dataloader\.dataset\.pipeline has '
            r'no ReIDResize'):
        check_source_arch(fastreid_meta(), model, cfg, 'ckpt.pth')


def test_pipelines_with_objects_and_classes_are_read():
    # A transform given as a callable object (mmengine's Compose takes
    # them) is not a resize and is passed over; a ReIDResize whose type is
    # the class itself or scoped is read as one; a built ReIDResize is
    # refused by name, its arguments cannot be read back. Before, the
    # first crashed with AttributeError: 'function' ... 'get' and the
    # second said "has no ReIDResize".
    from mmreid.datasets.transforms import ReIDResize
    cfg = multi_target_config()
    pipelines = [t.dataloader.dataset.pipeline for t in cfg.test_cfg.targets]
    model = MODELS.build(cfg.model)
    expected = str(check_source_arch_error(cfg, model))
    for pipeline in pipelines:
        pipeline.insert(0, lambda results: results)
        index = next(i for i, t in enumerate(pipeline)
                     if isinstance(t, dict) and t['type'] == 'ReIDResize')
        pipeline[index]['type'] = ReIDResize
    pipelines[1][index]['type'] = 'mmreid.ReIDResize'
    message = str(check_source_arch_error(cfg, model))
    shifted = re.sub(r'pipeline\.(\d+)\.',
                     lambda m: f'pipeline.{int(m.group(1)) + 1}.', expected)
    assert message == shifted
    pipelines[0][index] = ReIDResize(size=(64, 32))
    with pytest.raises(TypeError,
                       match=r'test_cfg\.targets\.0\.dataloader\.dataset'
                       r'\.pipeline\[2\] is a built ReIDResize object'):
        check_source_arch(fastreid_meta(), model, cfg, 'ckpt.pth')


def check_source_arch_error(cfg, model) -> ValueError:
    with pytest.raises(ValueError) as info:
        check_source_arch(fastreid_meta(), model, cfg, 'ckpt.pth')
    return info.value


def test_a_config_without_test_pipeline_is_refused():
    cfg = multi_target_config()
    del cfg.test_cfg['targets']
    model = MODELS.build(cfg.model)
    with pytest.raises(ValueError, match='the config has no test pipeline'):
        check_source_arch(fastreid_meta(), model, cfg, 'ckpt.pth')
    # Not at training time (load_from): the test facts are not checked.
    assert check_source_arch(
        fastreid_meta(), model, cfg, 'ckpt.pth', test=False) == []


def fastreid_gem_tensors(p=4.7):
    """Converted tensors of a fast-reid network with a learnt GeM exponent
    (``heads.pool_layer.p``, shape (1,) in fast-reid)."""
    converted = {
        'backbone.layer4.1.bn2.weight': torch.ones(512),
        'head.bnneck.weight': torch.ones(512),
        'neck.p': torch.tensor(p),
    }
    return converted, {'heads.pool_layer.p': torch.tensor([p])}


def test_learnt_gem_exponent_gives_gem_pooling():
    converted, state_dict = fastreid_gem_tensors()
    facts = source_arch('fastreid', converted, state_dict)
    assert facts['pooling'] == 'gem'
    assert converted['neck.p'].item() == pytest.approx(4.7)


@pytest.mark.parametrize('pooling', ['avg', 'gem_fixed'])
def test_pooling_option_against_a_learnt_exponent_is_refused(pooling):
    # --pooling avg, or a config.yaml naming fast-reid's fixed-p
    # GeneralizedMeanPooling, while the checkpoint has a learnt p: the
    # option contradicts the tensors. Refused, the exponent kept.
    converted, state_dict = fastreid_gem_tensors()
    with pytest.raises(ValueError) as info:
        source_arch('fastreid', converted, state_dict, pooling=pooling)
    message = str(info.value)
    assert f'pooling {pooling!r}' in message
    assert 'heads.pool_layer.p = 4.7' in message
    assert converted['neck.p'].item() == pytest.approx(4.7)


def test_fixed_gem_without_exponent_gets_p_3():
    converted, state_dict = fastreid_gem_tensors()
    del converted['neck.p'], state_dict['heads.pool_layer.p']
    facts = source_arch('fastreid', converted, state_dict, pooling='gem_fixed')
    assert facts['pooling'] == 'gem'
    assert converted['neck.p'].item() == 3.0
    del converted['neck.p']
    with pytest.raises(ValueError, match='no heads.pool_layer.p'):
        source_arch('fastreid', converted, state_dict, pooling='gem')


def matching_multi_target_config():
    """The multi-target config with fast-reid's resize in each target:
    every fact of :func:`fastreid_meta` agrees with it."""
    options = {}
    for i in range(2):
        resize = f'test_cfg.targets.{i}.dataloader.dataset.pipeline.1'
        options.update({
            f'{resize}.size': [256, 128],
            f'{resize}.interpolation': 'bicubic',
            f'{resize}.backend': 'pillow'
        })
    cfg = multi_target_config(**options)
    model = MODELS.build(cfg.model)
    assert check_source_arch(fastreid_meta(), model, cfg, 'ckpt.pth') == []
    return cfg, model


def test_normalisation_and_colour_order_are_checked_per_channel():
    """Each channel of the source's mean and std is compared (a source that
    normalises blue otherwise computes other features), and a source
    taking BGR images is refused: mmreid feeds RGB with no switch."""
    cfg, model = matching_multi_target_config()
    for name, channel, value in (('mean', 2, 127.5), ('std', 1, 64.0)):
        meta = fastreid_meta()
        meta['source_arch'][name][channel] = value
        with pytest.raises(ValueError) as info:
            check_source_arch(meta, model, cfg, 'ckpt.pth')
        assert f'normalisation {name} (0-255): the source has ' \
            f'{meta["source_arch"][name]}, the config ' \
            f'{SOURCE_ARCH["fastreid"][name]}' in str(info.value)
    meta = fastreid_meta()
    meta['source_arch']['colour_order'] = 'bgr'
    with pytest.raises(
            ValueError,
            match=r'colour order: the source takes bgr images, mmreid feeds '
            r'RGB \(no config switch\)'):
        check_source_arch(meta, model, cfg, 'ckpt.pth')


def test_after_bn_for_a_network_without_bnneck_is_refused():
    """The user's test_feature='after_bn' contradicts a source without a
    BNNeck: refused, not dropped in favour of 'before_bn'."""
    converted = {'backbone.layer4.0.conv1.weight': torch.zeros(1)}
    with pytest.raises(
            ValueError,
            match='^the source network has no BNNeck, so its test feature '
            'cannot be "after_bn"$'):
        source_arch('torchreid', converted, {}, test_feature='after_bn')
    facts = source_arch('torchreid', converted, {})
    assert facts['neck'] is None and facts['test_feature'] == 'before_bn'


def test_an_assumed_stem_pooling_is_marked():
    """A stem pooling the converter assumed is marked in the refusal and
    named with its option; one it read or was given is not."""
    cfg = multi_target_config()
    cfg.model.backbone.stem_pool = None  # mmreid's padding=1 stem
    model = MODELS.build(cfg.model)
    meta = fastreid_meta()
    with pytest.raises(ValueError) as info:
        check_source_arch(meta, model, cfg, 'ckpt.pth', test=False)
    assert 'stem max pooling padding: the source has 0, the config 1' \
        in str(info.value)
    assert '--stem-pool' not in str(info.value)
    meta['source_arch']['assumed'] = ['stem_pool']
    with pytest.raises(ValueError) as info:
        check_source_arch(meta, model, cfg, 'ckpt.pth', test=False)
    assert 'stem max pooling padding: the source has 0 (assumed by the ' \
        'converter), the config 1' in str(info.value)
    assert 'convert it again giving them (--stem-pool)' in str(info.value)


def test_stem_pool_options_are_checked():
    """Only fast-reid's two stems are options; torchreid's is its code's."""
    converted = {'backbone.layer4.1.bn2.weight': torch.ones(512)}
    facts = source_arch('fastreid', converted, {}, stem_pool='pad')
    assert facts['stem_pool'] == dict(
        kernel_size=3, stride=2, padding=1, ceil_mode=False)
    assert 'stem_pool' not in facts['assumed']
    with pytest.raises(ValueError, match=r"stem pooling 'same'.*'ceil'"):
        source_arch('fastreid', converted, {}, stem_pool='same')
    with pytest.raises(ValueError, match='fast-reid option'):
        source_arch('torchreid', converted, {}, stem_pool='pad')


def test_a_validation_fix_names_the_test_loader_copied_from_it():
    """The dataset bases write ``test_dataloader = val_dataloader``, so an
    option on the validation pipeline alone is refused
    (``check_variable_overrides``): the fix printed when ``runner.val()``
    loads a converted checkpoint names both loaders, and taken as printed
    it is accepted and makes both pipelines compute the source network."""
    from mmreid.utils.config.options import merge_cfg_options
    path = osp.join(REPO, 'configs', 'baseline',
                    'bot_r50_1xb64-120e_market1501.py')
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(FASTREID_MODEL)
    model = MODELS.build(cfg.model)
    with pytest.raises(ValueError) as info:
        check_source_arch(fastreid_meta(), model, cfg, 'ckpt.pth', split='val')
    fix = re.search(r'--cfg-options (.*)$', str(info.value)).group(1)
    options = dict(item.split('=', 1) for item in fix.split())
    assert sorted({k.split('.')[0] for k in options}) == [
        'test_dataloader', 'val_dataloader'
    ]
    options = {
        k: [int(v) for v in v.strip('[]').split(',')] if 'size' in k else v
        for k, v in options.items()
    }
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(FASTREID_MODEL)
    merge_cfg_options(cfg, options, path)
    for split in ('val', 'test'):
        assert check_source_arch(
            fastreid_meta(), model, cfg, 'ckpt.pth', split=split) == []


def test_a_resize_argument_left_out_is_compared_as_its_default():
    """A test ``ReIDResize`` that gives only its size resizes with the
    class's own interpolation and library (its signature's defaults):
    a source resized that way is accepted, one resized otherwise is
    refused naming the default the config runs."""
    import inspect

    from mmreid.datasets.transforms import ReIDResize
    defaults = inspect.signature(ReIDResize).parameters
    interpolation = defaults['interpolation'].default
    backend = defaults['backend'].default
    options = {
        f'test_cfg.targets.{i}.dataloader.dataset.pipeline.1.size':
        [256, 128]
        for i in range(2)
    }
    cfg = multi_target_config(**options)
    for i in range(2):
        resize = cfg.test_cfg.targets[i].dataloader.dataset.pipeline[1]
        assert set(resize) == {'type', 'size'}
    model = MODELS.build(cfg.model)
    meta = fastreid_meta()
    meta['source_arch'].update(
        interpolation=interpolation, resize_backend=backend)
    assert check_source_arch(meta, model, cfg, 'ckpt.pth') == []
    meta['source_arch']['interpolation'] = 'bicubic'
    with pytest.raises(ValueError) as info:
        check_source_arch(meta, model, cfg, 'ckpt.pth')
    assert "ReIDResize interpolation: the source has bicubic, the config " \
        f'{interpolation}' in str(info.value)


def test_a_normalisation_of_one_value_for_every_channel_is_compared():
    """A data preprocessor with one mean and std for all three channels
    (they broadcast) normalises green and blue with the red statistics:
    against a source with per-channel ones it is refused, not compared on
    its first channel alone."""
    cfg, _ = matching_multi_target_config()
    cfg.model.data_preprocessor.mean = [IMAGENET[0]]
    cfg.model.data_preprocessor.std = [IMAGENET_SD[0]]
    model = MODELS.build(cfg.model)
    with pytest.raises(ValueError) as info:
        check_source_arch(fastreid_meta(), model, cfg, 'ckpt.pth')
    message = str(info.value)
    assert 'normalisation mean (0-255): the source has ' \
        f'{IMAGENET}, the config [{IMAGENET[0]}]' in message
    assert 'normalisation std (0-255)' in message


def test_only_tensors_that_change_no_test_feature_may_stay_unmapped():
    """A classifier bias (training logits only) and fast-reid's pixel
    statistics (recorded as the mean/std facts) left unconverted change
    no test feature and are accepted; any other source tensor left out is
    a layer mmreid does not build, refused naming it."""
    cfg, model = matching_multi_target_config()
    meta = fastreid_meta()
    meta['unmapped'] = ['heads.classifier.bias', 'pixel_mean', 'pixel_std']
    assert check_source_arch(meta, model, cfg, 'ckpt.pth') == []
    meta['unmapped'].append('heads.bottleneck.1.weight')
    with pytest.raises(ValueError) as info:
        check_source_arch(meta, model, cfg, 'ckpt.pth')
    assert 'the source has 1 tensors the converter did not map ' \
        '(heads.bottleneck.1.weight)' in str(info.value)


def test_a_std_of_zero_in_any_channel_is_refused():
    """A std of 0 divides that channel by zero in the data preprocessor:
    every feature would be inf/nan. Refused naming where it comes from;
    a small but positive 0-255 std is accepted."""
    from mmreid.utils.source_arch import check_pixel_stats
    with pytest.raises(ValueError, match=r'std \[58\.395, 0, 57\.375\] '
                       r'\(from --std\).*each above 0'):
        check_pixel_stats('std', [58.395, 0, 57.375], '--std')
    assert check_pixel_stats('std', [58.395, 1.5, 57.375],
                             '--std') == [58.395, 1.5, 57.375]
    # A mean of 0 is a mean (fast-reid without normalisation).
    assert check_pixel_stats('mean', [0, 0, 0], '--mean') == [0.0] * 3


def test_only_a_mean_and_std_both_on_the_0_1_scale_are_refused():
    """A 0-1 pair (every channel of both at most 1) is refused; a 0-255
    mean with a std of 1 (only centring) or a mean of 0 with a 0-255 std
    (only scaling) are statistics of the 0-255 pixels, accepted."""
    from mmreid.utils.source_arch import check_pixel_scale
    origins = dict(mean='--mean', std='--std')
    check_pixel_scale(IMAGENET, [1.0, 1.0, 1.0], origins)
    check_pixel_scale([0.0, 0.0, 0.0], IMAGENET_SD, origins)
    with pytest.raises(ValueError, match='are on the 0-1 scale'):
        check_pixel_scale([0.485, 0.456, 0.406], [0.229, 0.224, 0.225],
                          origins)


def test_a_mean_option_half_a_grey_level_off_the_checkpoints_is_refused():
    """fast-reid normalises with its checkpoint's ``pixel_mean``: a
    ``--mean`` that differs from it by half a grey level in one channel
    contradicts it and is refused; one equal to it up to rounding is
    the same statistic."""
    converted = {
        'backbone.layer4.1.bn2.weight': torch.ones(512),
        'head.bnneck.weight': torch.ones(512),
    }
    state_dict = {'pixel_mean': torch.tensor(IMAGENET).view(1, 3, 1, 1)}
    off = [IMAGENET[0], IMAGENET[1] + 0.5, IMAGENET[2]]
    with pytest.raises(ValueError, match=r"contradicts the checkpoint's "
                       r'pixel_mean'):
        source_arch('fastreid', dict(converted), state_dict, mean=off)
    close = [v + 1e-4 for v in IMAGENET]
    facts = source_arch('fastreid', dict(converted), state_dict, mean=close)
    assert facts['mean'] == pytest.approx(IMAGENET, abs=1e-4)


def test_a_fastreid_network_without_bnneck_tests_with_the_pooled_feature():
    """fast-reid's BoT tests after its BNNeck; a converted network
    without BNNeck tensors has none, so its test feature is the pooled
    one (``before_bn``), not fast-reid's default ``after_bn``, which would
    put mmreid's identity BNNeck's output in its place."""
    converted = {'backbone.layer4.1.bn2.weight': torch.ones(512)}
    assert SOURCE_ARCH['fastreid']['test_feature'] == 'after_bn'
    facts = source_arch('fastreid', converted, {})
    assert facts['neck'] is None and facts['test_feature'] == 'before_bn'
    assert 'test_feature' not in facts['assumed']


def test_a_classifier_is_checked_by_its_input_width():
    """A classifier (num_classes, C) takes C-d features: one of any
    number of classes on the width of backbone.layer4 is accepted, one
    on another width (an embedding layer in between) refused."""
    converted = {
        'backbone.layer4.1.bn2.weight': torch.ones(512),
        'head.bnneck.weight': torch.ones(512),
        'head.classifier.weight': torch.zeros(10, 512),
    }
    source_arch('fastreid', dict(converted), {})
    converted['head.classifier.weight'] = torch.zeros(10, 256)
    with pytest.raises(ValueError, match=r'shape \(10, 256\): it takes '
                       r'256-d features'):
        source_arch('fastreid', converted, {})


def test_the_ranking_distance_is_compared_with_every_metric():
    """The source's ranking (``distance``: fast-reid's ``TEST.METRIC``,
    torchreid's Euclidean of unnormalised features) is compared with each
    test metric's: Euclidean (or squared) of L2-normalised features ranks
    as cosine, and a fix for the Euclidean ranking of the unnormalised
    features also turns ``normalize`` off. The model's own non-default
    ``distance`` (``rank_gallery``'s) is compared as well."""
    cfg, model = matching_multi_target_config()
    cfg.test_cfg.targets[0].evaluator = dict(
        type='ReIDMetric', distance='sqeuclidean', normalize=True)
    assert check_source_arch(fastreid_meta(), model, cfg, 'ckpt.pth') == []
    meta = fastreid_meta()
    meta['source_arch'].update(distance='euclidean', assumed=['distance'])
    with pytest.raises(ValueError) as info:
        check_source_arch(meta, model, cfg, 'ckpt.pth')
    message = str(info.value)
    for i in range(2):
        assert f'ranking distance (test_cfg.targets.{i}.evaluator): the ' \
            'source has Euclidean distance of the unnormalised features ' \
            '(assumed by the converter), the config cosine distance' \
            in message
    fix = re.search(r'--cfg-options (.*?)\. The facts', message).group(1)
    assert fix.split() == [
        'test_cfg.targets.0.evaluator.distance=euclidean',
        'test_cfg.targets.0.evaluator.normalize=False',
        'test_cfg.targets.1.evaluator.distance=euclidean'
    ]
    assert 'convert it again giving them (--distance)' in message
    options = dict(item.split('=', 1) for item in fix.split())
    cfg.merge_from_dict({
        k: v == 'True' if 'normalize' in k else v
        for k, v in options.items()
    })
    assert check_source_arch(meta, model, cfg, 'ckpt.pth') == []
    # A model that ranks otherwise (rank_gallery, init_model) too.
    cfg.model.distance = 'cosine'
    model = MODELS.build(cfg.model)
    with pytest.raises(
            ValueError,
            match=r'ranking distance \(model\.'
            r"distance\).*--cfg-options model\.distance="
            r'euclidean\.'):
        check_source_arch(meta, model, cfg, 'ckpt.pth')
    # A checkpoint converted before the fact was recorded is not compared.
    del meta['source_arch']['distance']
    assert check_source_arch(meta, model, cfg, 'ckpt.pth') == []
