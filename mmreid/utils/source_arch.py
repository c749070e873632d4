"""The facts of a network converted from fast-reid or torchreid.

A fast-reid or torchreid checkpoint with every key mapped can still compute
another network than its source: the two toolboxes pool the ResNet stem,
stride the last stage, pool, normalise and resize differently from mmreid's
defaults. The converters (:mod:`mmreid.utils.key_mapping`) record the
source network's facts in the converted checkpoint as
``meta['source_arch']`` (:func:`source_arch`, from :data:`SOURCE_ARCH`,
the tensors and the options or fast-reid ``config.yaml`` read by
:mod:`mmreid.utils.fastreid_config`);
:func:`mmreid.utils.arch_check.check_source_arch` compares them with the
model a config builds and its test pipeline.
"""
import copy
import re
from typing import Dict, List, Optional, Tuple

import torch

#: ImageNet statistics on the 0-255 scale (fast-reid's ``PIXEL_MEAN``/
#: ``PIXEL_STD`` defaults; torchreid's ``norm_mean``/``norm_std`` times 255).
IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]

#: The two ResNet stem max poolings, by the name ``--stem-pool`` takes:
#: ``ceil``, fast-reid's ``MaxPool2d(3, 2, padding=0, ceil_mode=True)``
#: (the Caffe pooling); ``pad``, torchvision's (and mmpretrain's)
#: ``MaxPool2d(3, 2, padding=1)``. On a 256 x 128 input both give a
#: 64 x 32 map, one pixel apart: the same weights compute other features.
STEM_POOLS = dict(
    ceil=dict(kernel_size=3, stride=2, padding=0, ceil_mode=True),
    pad=dict(kernel_size=3, stride=2, padding=1, ceil_mode=False))

#: How a source ranks the features it tests with, by the name
#: ``--distance`` takes: ``euclidean``, the (squared) Euclidean distance of
#: the features as they are; ``cosine``, the cosine distance (or the
#: Euclidean distance of L2-normalised features, which ranks the same).
#: The same features give other rankings, so other mAP/CMC.
DISTANCES = dict(
    euclidean='Euclidean distance of the unnormalised features',
    cosine='cosine distance (L2-normalised features)')

#: What each source computes, as its code and default configs define it;
#: the converters record these facts (with the user's overrides) in the
#: converted checkpoint as ``meta['source_arch']``.
#:
#: * fast-reid v1.x ``build_resnet_backbone``: stem ``ceil``
#:   (:data:`STEM_POOLS`; its code until August 2020 pooled with ``pad``,
#:   see :func:`fastreid_stem_pool`); the BoT configs
#:   (``Base-bagtricks.yml``): ``LAST_STRIDE: 1``, BNNeck
#:   (``WITH_BNNECK: True``; ``EmbeddingHead`` then tests with the BNNeck's
#:   output, whatever ``NECK_FEAT``, which picks the training feature),
#:   ``SIZE_TEST: [256, 128]``; its test transform is torchvision
#:   ``Resize(size, interpolation=3)`` (PIL bicubic) on PIL RGB images; the
#:   model normalises with ``pixel_mean``/``pixel_std`` (0-255); its
#:   evaluator averages the features of each image and its mirror if
#:   ``TEST.FLIP.ENABLED`` (default off: ``flip=False``); it ranks with
#:   ``TEST.METRIC`` (:data:`DISTANCES`; default ``cosine``: its
#:   ``build_dist`` L2-normalises the features, ``euclidean`` does not).
#: * torchreid v1.x ``resnet50``: torchvision stem, ``last_stride=2``, no
#:   BNNeck, global average pooling, the pooled feature as test feature;
#:   ``Resize((h, w))`` (PIL bilinear) on PIL RGB images, ``Normalize`` with
#:   ImageNet statistics; default size 256 x 128; no flip averaging; it
#:   ranks with ``test.dist_metric='euclidean'`` and
#:   ``test.normalize_feature=False`` (``scripts/default_config.py``): the
#:   squared Euclidean distance of the unnormalised features.
SOURCE_ARCH: Dict[str, dict] = dict(
    fastreid=dict(
        stem_pool=STEM_POOLS['ceil'],
        last_stride=1,
        pooling='avg',
        neck='bnneck',
        test_feature='after_bn',
        input_size=[256, 128],
        interpolation='bicubic',
        resize_backend='pillow',
        colour_order='rgb',
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        flip=False,
        distance='cosine'),
    torchreid=dict(
        stem_pool=STEM_POOLS['pad'],
        last_stride=2,
        pooling='avg',
        neck=None,
        test_feature='before_bn',
        input_size=[256, 128],
        interpolation='bilinear',
        resize_backend='pillow',
        colour_order='rgb',
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        flip=False,
        distance='euclidean'))

#: The facts of each source that its checkpoint may not show and its
#: training config or code version sets (the converter's options, fast-reid's
#: config.yaml). Those neither given nor shown by the tensors (a GeM
#: exponent, BNNeck tensors, ``pixel_mean``/``pixel_std``, the classifier
#: layout of :func:`fastreid_stem_pool`) are the source's defaults, recorded
#: as ``assumed`` and named in the refusals. The other facts are its code's
#: (fast-reid's test resize; torchreid's ``resnet`` stem, average pooling
#: and its evaluation without flip). No checkpoint shows the ranking
#: distance: fast-reid's config.yaml (``TEST.METRIC``) or ``--distance``
#: gives it.
ASSUMABLE_FACTS: Dict[str, Tuple[str, ...]] = dict(
    fastreid=('stem_pool', 'last_stride', 'pooling', 'input_size', 'flip',
              'mean', 'std', 'distance'),
    torchreid=('last_stride', 'test_feature', 'input_size', 'mean', 'std',
               'distance'))

#: How to give each assumable fact to the converter, for the messages.
FACT_OPTIONS = dict(
    stem_pool='--stem-pool',
    last_stride='--last-stride',
    pooling='--pooling',
    test_feature='--test-feature',
    input_size='--input-size',
    flip='--flip/--no-flip',
    mean='--mean',
    std='--std',
    distance='--distance')

#: What the converters of whole ReID networks convert, for the messages.
RESNET_LAYOUTS = ('ResNet-18/34/50/101/152 (torchvision names, IBN-a '
                  'blocks included)')


def _layer4_bn(converted: Dict[str, torch.Tensor]) -> Optional[int]:
    """Channels of the last stage (its last block's last BN), or None
    without a ``backbone.layer4`` block."""
    last = None
    for key, value in converted.items():
        match = re.fullmatch(r'backbone\.layer4\.(\d+)\.bn(\d)\.weight', key)
        if match:
            rank = (int(match.group(1)), int(match.group(2)))
            if last is None or rank > last[0]:
                last = (rank, value.numel())
    return None if last is None else last[1]


def check_resnet_layout(source: str, converted: Dict[str, torch.Tensor],
                        unmapped: List[str]) -> None:
    """Refuse a whole ReID network whose backbone is not a ResNet.

    The rules map ResNet names only; another backbone (OSNet, MobileNet...)
    leaves its tensors unmapped, and the head alone would convert into a
    checkpoint without backbone.

    Args:
        source (str): ``'fastreid'`` or ``'torchreid'``.
        converted (dict[str, Tensor]): The converted tensors.
        unmapped (list[str]): The source keys no rule maps.

    Raises:
        ValueError: No ``backbone.conv1`` or no ``backbone.layer4`` block
            was converted, naming the source keys not mapped.
    """
    found = {
        'stem (backbone.conv1)': 'backbone.conv1.weight' in converted,
        'backbone.layer4 block': _layer4_bn(converted) is not None
    }
    missing = [name for name, ok in found.items() if not ok]
    if not missing:
        return
    keys = ', '.join(unmapped[:8]) + (', ...' if len(unmapped) > 8 else '')
    raise ValueError(
        f'not a ResNet layout: the converted tensors have no ResNet '
        f'{" and no ".join(missing)}; the {source} '
        f'converter converts {RESNET_LAYOUTS}, and mmreid builds no other '
        f'backbone. Source keys not mapped ({len(unmapped)}): '
        f'{keys or "none"} (nothing written)')


def _feature_dim(converted: Dict[str, torch.Tensor]) -> int:
    """Channels of the last stage: its last block's last BN."""
    dim = _layer4_bn(converted)
    if dim is None:
        raise ValueError('the checkpoint has no backbone.layer4 block: not '
                         f'a ResNet layout (mmreid converts {RESNET_LAYOUTS})'
                         ', cannot size the BNNeck')
    return dim


def _refuse_unmapped_neck(state_dict: Dict[str, torch.Tensor]) -> None:
    """Refuse to read "no BNNeck" from a checkpoint with neck tensors.

    The converter found no BNNeck; source tensors named ``bnneck`` or
    ``bottleneck`` (an embedding head, a layout the rules do not map) mean
    the source has a neck whose test feature is unknown, not none.
    """
    neck = [
        k for k in state_dict
        if re.match(r'(?:heads\.)?(?:bnneck|bottleneck)\.', k)
    ]
    if neck:
        raise ValueError(
            f'the source has neck tensors that are not a BNNeck mmreid '
            f'builds ({", ".join(neck[:6])}{", ..." if len(neck) > 6 else ""}'
            '): its test feature is not the pooled feature, and mmreid '
            'has no equivalent (nothing written)')


def _source_key(state_dict: Dict[str, torch.Tensor], tensor: torch.Tensor,
                default: str) -> str:
    """The source key of a converted tensor (the converter keeps the source's
    tensor objects), for the messages."""
    return next((k for k, v in state_dict.items() if v is tensor), default)


def _refuse_contradicted_head(converted: Dict[str, torch.Tensor],
                              state_dict: Dict[str, torch.Tensor],
                              pooling: str, fix: str) -> None:
    """Refuse a head that the pooling the facts name cannot feed.

    Average and GeM pooling have no tensors but GeM's exponent
    (``heads.pool_layer.p``) and keep the channels of the last stage; a
    BNNeck keeps its width. Other pooling tensors, or a BNNeck or
    classifier that does not take the channels of ``backbone.layer4``,
    mean another pooling or an embedding layer: a network the converted
    model would not compute.

    Args:
        converted (dict[str, Tensor]): The converted tensors.
        state_dict (dict[str, Tensor]): The source tensors.
        pooling (str): The pooling and where the fact comes from, e.g.
            ``'average pooling (assumed)'``.
        fix (str): What to give, appended to the message.

    Raises:
        ValueError: Such a pooling tensor or head width, named.
    """
    extra = [
        k for k in state_dict
        if k.startswith('heads.pool_layer.') and k != 'heads.pool_layer.p'
    ]
    if extra:
        raise ValueError(
            f'the checkpoint has pooling tensors ({", ".join(extra)}): the '
            f'source pools with a layer that has parameters, not with '
            f'{pooling}; mmreid computes average and GeM pooling only'
            f'{fix} (nothing written)')
    try:
        channels = _feature_dim(converted)
    except ValueError:  # no last stage to compare with
        return
    for key in ('head.bnneck.weight', 'head.classifier.weight'):
        tensor = converted.get(key)
        # BNNeck weight (C,); classifier weight (num_classes, C).
        if tensor is None or tensor.shape[-1] == channels:
            continue
        raise ValueError(
            f'{_source_key(state_dict, tensor, key)} has shape '
            f'{tuple(tensor.shape)}: it takes {tensor.shape[-1]}-d '
            f'features, but {pooling} of backbone.layer4 gives '
            f'{channels}-d ones; the source has another neck (an embedding '
            'layer, or a pooling that changes the width), which mmreid '
            f'does not build{fix} (nothing written)')


def same_pixel_stats(a, b) -> bool:
    """Equal 0-255 pixel statistics (to 1e-3, as
    :func:`mmreid.utils.arch_check.check_source_arch` compares them)."""
    return len(a) == len(b) and all(
        abs(float(x) - float(y)) <= 1e-3 for x, y in zip(a, b))


def check_pixel_stats(name: str, value, origin: str) -> List[float]:
    """Three per-channel (R, G, B) statistics on the 0-255 scale.

    Args:
        name (str): ``'mean'`` or ``'std'``.
        value (Sequence[float]): The values, shape (3,).
        origin (str): Where they come from, for the message.

    Returns:
        list[float]: The values as floats.

    Raises:
        ValueError: Not three finite values in [0, 255], a std of 0, or
            values on the 0-1 scale: a mean of three fractions in (0, 1)
            (ImageNet's 0.485, 0.456, 0.406) or a std below 1 in every
            channel (0.229, ...), which on the 0-255 scale would be an
            image mean under one grey level, or a std that magnifies the
            input. One value alone cannot tell a mean of 0 or a std of 1
            from a 0-1 one: :func:`check_pixel_scale` judges the pair.
    """
    values = [float(v) for v in value]
    in_range = all(0 <= v <= 255 for v in values)
    expected = (f'expected three values (R, G, B) on the 0-255 scale, as '
                f'the data_preprocessor takes them'
                f'{", each above 0" if name == "std" else ""} '
                '(torchreid\'s norm_mean/norm_std times 255)')
    if len(values) != 3 or not in_range or (name == 'std'
                                            and min(values) <= 0):
        raise ValueError(f'{name} {value} (from {origin}): {expected}')
    if all(0 < v < 1 for v in values) or (name == 'std' and max(values) < 1):
        raise ValueError(
            f'{name} {value} (from {origin}) is on the 0-1 scale: '
            f'{expected}, i.e. '
            f'{[round(v * 255, 4) for v in values]}')
    return values


def check_pixel_scale(mean, std, origins: Dict[str, str]) -> None:
    """Refuse a mean and std that are both on the 0-1 scale.

    On the 0-255 scale of the data preprocessor's input, a mean and a std
    of at most 1 in every channel are no statistics of a ReID image set
    (images darker than one grey level, varying by less than one): they
    are 0-1 values (torchreid's ``norm_mean``/``norm_std``, ``ToTensor``
    statistics) that :func:`check_pixel_stats` alone lets through when a
    channel is exactly 0 or 1 (``norm_mean = [0, 0, 0]``,
    ``norm_std = [1, 1, 1]`` is 0 and 255 on the 0-255 scale).

    Args:
        mean (Sequence[float]): Per-channel mean, shape (3,).
        std (Sequence[float]): Per-channel std, shape (3,).
        origins (dict[str, str]): Where ``'mean'`` and ``'std'`` come
            from, for the message.

    Raises:
        ValueError: Every channel of both at most 1; the message gives the
            values times 255.
    """
    if max(mean) > 1 or max(std) > 1:
        return
    times_255 = {
        name: [round(float(v) * 255, 4) for v in values]
        for name, values in (('mean', mean), ('std', std))
    }
    raise ValueError(
        f'mean {list(mean)} (from {origins["mean"]}) and std {list(std)} '
        f'(from {origins["std"]}) are on the 0-1 scale: every channel is '
        'at most 1, which no image set has on the 0-255 scale of the '
        'pixels the data_preprocessor normalises; give them times 255, '
        f'mean {times_255["mean"]} and std {times_255["std"]}')


def fastreid_stem_pool(state_dict: Dict[str, torch.Tensor],
                       given: Optional[str] = None,
                       origin: str = '--stem-pool') -> Tuple[str, bool]:
    """The stem max pooling of a fast-reid network, and whether it is shown.

    fast-reid's ``build_resnet_backbone`` pooled its stem with ``pad``
    until August 2020, then with ``ceil`` (to match its Caffe export), and
    its code of that year has both, while the head stored its classifier
    as ``heads.classifier.weight`` (``BNneckHead`` with ``heads.bnneck.*``,
    then ``EmbeddingHead`` with ``heads.bottleneck.0.*``): those layouts do
    not show the stem. The later ``EmbeddingHead`` keeps its classifier as
    its own Parameter, ``heads.weight``; fast-reid's versions with it pool
    with ``ceil``, so that key shows the stem. fast-reid's ``config.yaml``
    has no key naming the stem.

    Args:
        state_dict (dict[str, Tensor]): The source tensors.
        given (str, optional): A name of :data:`STEM_POOLS` the user gave.
        origin (str): Where ``given`` comes from, for the messages.

    Returns:
        tuple[str, bool]: The name (``given``, else ``'ceil'``) and whether
        the checkpoint shows it (``heads.weight``, nothing given). A given
        name is taken as stated, also with ``heads.weight`` (a fork may
        have kept the older stem).

    Raises:
        ValueError: ``given`` is not a name of :data:`STEM_POOLS`.
    """
    if given is not None and given not in STEM_POOLS:
        raise ValueError(f'stem pooling {given!r} (from {origin}): expected '
                         f'one of {sorted(STEM_POOLS)}')
    if given is not None:
        # The user's statement: stronger than the layout, which shows the
        # versions seen, not a fork's.
        return given, False
    return 'ceil', 'heads.weight' in state_dict


def source_arch(source: str,
                converted: Dict[str, torch.Tensor],
                state_dict: Dict[str, torch.Tensor],
                origins: Optional[Dict[str, str]] = None,
                source_config: Optional[str] = None,
                **overrides) -> dict:
    """The facts of a converted ``fastreid``/``torchreid`` network.

    Starts from :data:`SOURCE_ARCH`, applies ``overrides`` (the converter's
    command-line options, e.g. ``last_stride=2``) and what the tensors
    themselves show: a GeM exponent means GeM pooling, fast-reid's
    ``pixel_mean``/``pixel_std`` buffers give the normalisation, its
    ``heads.weight`` the stem pooling (:func:`fastreid_stem_pool`), and a
    network without BNNeck tensors has no BNNeck (its test feature is then
    the pooled feature).

    Args:
        source (str): ``'fastreid'`` or ``'torchreid'``.
        converted (dict[str, Tensor]): The converted tensors; a fixed GeM
            exponent (``pooling='gem_fixed'``) is added as ``neck.p``.
        state_dict (dict[str, Tensor]): The source tensors.
        origins (dict[str, str], optional): Where an override comes from,
            for the messages, e.g. ``dict(pooling='--pooling')``.
        source_config (str, optional): The fast-reid ``config.yaml`` the
            overrides were read from, for the messages.
        **overrides: Facts that the tensors do not show (``stem_pool``
            (fast-reid only: ``'ceil'`` or ``'pad'``, see
            :data:`STEM_POOLS`), ``last_stride``, ``test_feature``,
            ``input_size``, ``pooling`` (``'avg'``, ``'gem'`` or
            ``'gem_fixed'``), ``flip``, ``mean``, ``std``, ``distance``
            (a name of :data:`DISTANCES`)); None keeps the default.

    Returns:
        dict: The facts, as :data:`SOURCE_ARCH` with ``source`` and
        ``assumed``: the facts of :data:`ASSUMABLE_FACTS` neither in
        ``overrides`` nor shown by the tensors (the source's defaults).

    Raises:
        KeyError: An unknown fact.
        ValueError: An override contradicts the tensors: average or
            fixed-p GeM pooling with a learnt exponent in the checkpoint,
            learnt GeM without one, ``after_bn`` without a BNNeck, a
            ``mean``/``std`` other than the checkpoint's ``pixel_mean``/
            ``pixel_std``; neck tensors (``bnneck``/``bottleneck``) that
            are not a BNNeck; a ``mean``/``std`` that is not three 0-255
            values, or a mean and std both on the 0-1 scale
            (:func:`check_pixel_scale`); pooling tensors other than a GeM
            exponent, or a BNNeck or classifier that does not take the
            channels of ``backbone.layer4`` (another pooling or an
            embedding layer); a ``stem_pool`` for torchreid, or not a name
            of :data:`STEM_POOLS`; a ``distance`` not a name of
            :data:`DISTANCES`.
    """
    facts = copy.deepcopy(SOURCE_ARCH[source])
    unknown = set(overrides) - set(facts) - {'mean', 'std'}
    if unknown:
        raise KeyError(f'unknown architecture facts {sorted(unknown)}')
    facts.update({k: v for k, v in overrides.items() if v is not None})
    facts['source'] = source
    if facts['distance'] not in DISTANCES:
        origin = (origins or {}).get('distance', '--distance')
        known = '; '.join(f'{k}: {v}' for k, v in DISTANCES.items())
        raise ValueError(f'ranking distance {facts["distance"]!r} (from '
                         f'{origin}): expected one of {sorted(DISTANCES)} '
                         f'({known})')
    stem = overrides.get('stem_pool')
    stem_shown = False
    if source == 'fastreid':
        stem_origin = (origins or {}).get('stem_pool', '--stem-pool')
        stem, stem_shown = fastreid_stem_pool(state_dict, stem, stem_origin)
        facts['stem_pool'] = dict(STEM_POOLS[stem])
    elif stem is not None:
        raise ValueError(f'stem pooling {stem!r}: the stem pooling is a '
                         f'fast-reid option; {source}\'s ResNet has '
                         'torchvision\'s stem, fixed by its code')
    pooling = overrides.get('pooling')
    learnt_p = 'neck.p' in converted
    option = f'pooling {pooling!r}'
    if (origins or {}).get('pooling'):
        option += f' (from {origins["pooling"]})'
    if 'neck.p' in converted:
        name = 'heads.pool_layer.p' if 'heads.pool_layer.p' in state_dict \
            else 'neck.p'
        learnt = (f'the checkpoint has a learnt GeM exponent {name} = '
                  f'{float(converted["neck.p"]):.4g}')
        if pooling == 'gem_fixed':
            raise ValueError(
                f'{option} means GeM with p fixed at 3 (fast-reid\'s '
                f'GeneralizedMeanPooling, which stores no exponent), but '
                f'{learnt}; the source is GeneralizedMeanPoolingP (drop '
                'the option, or use the config.yaml of this model)')
        if pooling == 'avg':
            raise ValueError(f'{option} means average pooling, but {learnt}: '
                             'the source pools with GeM (drop the option)')
        facts['pooling'] = 'gem'
    elif facts['pooling'] == 'gem_fixed':
        # fast-reid's GeneralizedMeanPooling: p = 3, not a parameter.
        converted['neck.p'] = torch.tensor(3.0)
        facts['pooling'] = 'gem'
    elif facts['pooling'] == 'gem':
        raise ValueError(f'{option} means GeM with a learnt exponent, but '
                         'the checkpoint has no heads.pool_layer.p')
    default = f"{source}'s default"
    stats_from = dict(mean=default, std=default)
    for name in ('mean', 'std'):
        origin = (origins or {}).get(name, name)
        if overrides.get(name) is not None:
            facts[name] = check_pixel_stats(name, overrides[name], origin)
            stats_from[name] = origin
        buffer = state_dict.get(f'pixel_{name}')
        if buffer is None:
            continue
        where = f'the checkpoint\'s pixel_{name}'
        stored = check_pixel_stats(name, buffer.flatten().tolist(), where)
        if overrides.get(name) is not None and not same_pixel_stats(
                facts[name], stored):
            raise ValueError(
                f'{name} {facts[name]} (from {origin}) contradicts the '
                f'checkpoint\'s pixel_{name} = {stored}, with which the '
                'source normalises its input (drop the option, or use the '
                'config.yaml of this model)')
        facts[name] = stored
        stats_from[name] = where
    # fast-reid normalises its 0-255 input with PIXEL_MEAN/PIXEL_STD, so
    # mean 0 with std 1 is a fact there (no normalisation); torchreid's
    # input is 0-1, where a 0-255 std of 1 cannot arise.
    unnormalised = source == 'fastreid' and facts['mean'] == [0.0] * 3 \
        and facts['std'] == [1.0] * 3
    if not unnormalised:
        check_pixel_scale(facts['mean'], facts['std'], stats_from)
    has_bnneck = any(k.startswith('head.bnneck.') for k in converted)
    if not has_bnneck:
        _refuse_unmapped_neck(state_dict)
    described = dict(
        avg='average pooling', gem='GeM pooling')[facts['pooling']]
    if learnt_p:
        described += " (the checkpoint's heads.pool_layer.p)"
    elif pooling is not None:
        described += f' (from {(origins or {}).get("pooling", "--pooling")})'
    elif 'pooling' in ASSUMABLE_FACTS[source]:
        described += ' (assumed)'
    fix = ''
    if source == 'fastreid':
        fix = (f'; is {source_config} the config.yaml of this model?'
               if source_config else
               "; fast-reid's config.yaml of the model, given with "
               '--config, names its pooling and head')
    _refuse_contradicted_head(converted, state_dict, described, fix)
    if source == 'torchreid' and has_bnneck and 'neck' not in overrides:
        facts['neck'] = 'bnneck'
    if not has_bnneck:
        if overrides.get('test_feature') == 'after_bn':
            raise ValueError('the source network has no BNNeck, so its test '
                             'feature cannot be "after_bn"')
        facts.update(neck=None, test_feature='before_bn')
    facts['input_size'] = [int(v) for v in facts['input_size']]
    shown = {name for name in ('mean', 'std') if f'pixel_{name}' in state_dict}
    if stem_shown:
        shown.add('stem_pool')
    if learnt_p:
        shown.add('pooling')
    if not has_bnneck:
        shown.add('test_feature')
    facts['assumed'] = [
        name for name in ASSUMABLE_FACTS[source]
        if overrides.get(name) is None and name not in shown
    ]
    return facts


def add_identity_bnneck(converted: Dict[str, torch.Tensor]) -> List[str]:
    """Give a network without BNNeck the tensors of an identity one.

    mmreid's ``BNNeckHead`` always has a BatchNorm1d; a source without one
    (torchreid's ``resnet50``) then loads strictly, and the recorded test
    feature ``before_bn`` (checked against the config) keeps it out of the
    features. Weight 1, bias 0, running mean 0 and variance 1.

    Returns:
        list[str]: The keys added.
    """
    dim = _feature_dim(converted)
    added = dict([
        ('head.bnneck.weight', torch.ones(dim)),
        ('head.bnneck.bias', torch.zeros(dim)),
        ('head.bnneck.running_mean', torch.zeros(dim)),
        ('head.bnneck.running_var', torch.ones(dim)),
        ('head.bnneck.num_batches_tracked', torch.tensor(0)),
    ])
    converted.update(added)
    return list(added)


#: The ``meta`` keys of a converted checkpoint that
#: :func:`mmreid.utils.arch_check.check_source_arch` reads; whatever
#: rewrites a checkpoint (``tools/model_converters/publish_model.py``) must
#: keep them, or a converted network is no longer checked (``unmapped``: the
#: source tensors the converter did not map, refused at load).
SOURCE_META_KEYS = ('source', 'source_arch', 'unmapped', 'identity_bnneck')

#: Source tensors that are not converted because the converter reads them
#: as facts of the source network (:func:`source_arch`): fast-reid's
#: ``pixel_mean``/``pixel_std`` buffers give ``mean``/``std``. They are
#: used, so ``--strict`` does not count them as unmapped.
FACT_TENSORS = ('pixel_mean', 'pixel_std')

#: Source tensors that may stay unconverted without changing the test
#: feature: classifier biases (training logits only) and fast-reid's pixel
#: statistics (recorded as ``mean``/``std`` facts instead; listed in the
#: ``meta['unmapped']`` of conversions made before :data:`FACT_TENSORS`).
HARMLESS_UNMAPPED = ('classifier.bias', 'pixel_mean', 'pixel_std')

__all__ = [
    'STEM_POOLS', 'DISTANCES', 'SOURCE_ARCH', 'HARMLESS_UNMAPPED',
    'SOURCE_META_KEYS', 'ASSUMABLE_FACTS', 'FACT_OPTIONS',
    'fastreid_stem_pool', 'source_arch', 'check_pixel_stats',
    'check_pixel_scale', 'same_pixel_stats', 'add_identity_bnneck',
    'FACT_TENSORS', 'check_resnet_layout'
]
