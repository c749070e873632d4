"""The facts of a converted network's source, and the check against them.

A fast-reid or torchreid checkpoint with every key mapped can still compute
another network than its source: the two toolboxes pool the ResNet stem,
stride the last stage, pool, normalise and resize differently from mmreid's
defaults. The converters (:mod:`mmreid.utils.key_mapping`) record the
source network's facts in the converted checkpoint as
``meta['source_arch']``; :func:`check_source_arch` compares them with the
model a config builds and its test pipeline, and refuses a mismatch with
the overrides to use (``init_model``, ``tools/test.py``, ``load_from``).
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
#:   ``TEST.FLIP.ENABLED`` (default off: ``flip=False``).
#: * torchreid v1.x ``resnet50``: torchvision stem, ``last_stride=2``, no
#:   BNNeck, global average pooling, the pooled feature as test feature;
#:   ``Resize((h, w))`` (PIL bilinear) on PIL RGB images, ``Normalize`` with
#:   ImageNet statistics; default size 256 x 128; no flip averaging.
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
        flip=False),
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
        flip=False))


#: The facts of each source that its checkpoint may not show and its
#: training config or code version sets (the converter's options, fast-reid's
#: config.yaml). Those neither given nor shown by the tensors (a GeM
#: exponent, BNNeck tensors, ``pixel_mean``/``pixel_std``, the classifier
#: layout of :func:`fastreid_stem_pool`) are the source's defaults, recorded
#: as ``assumed`` and named in the refusals. The other facts are its code's
#: (fast-reid's test resize; torchreid's ``resnet`` stem, average pooling
#: and its evaluation without flip).
ASSUMABLE_FACTS: Dict[str, Tuple[str, ...]] = dict(
    fastreid=('stem_pool', 'last_stride', 'pooling', 'input_size', 'flip',
              'mean', 'std'),
    torchreid=('last_stride', 'test_feature', 'input_size', 'mean', 'std'))

#: How to give each assumable fact to the converter, for the messages.
FACT_OPTIONS = dict(
    stem_pool='--stem-pool',
    last_stride='--last-stride',
    pooling='--pooling',
    test_feature='--test-feature',
    input_size='--input-size',
    flip='--flip/--no-flip',
    mean='--mean',
    std='--std')


def _feature_dim(converted: Dict[str, torch.Tensor]) -> int:
    """Channels of the last stage: its last block's last BN."""
    last = None
    for key, value in converted.items():
        match = re.fullmatch(r'backbone\.layer4\.(\d+)\.bn(\d)\.weight', key)
        if match:
            rank = (int(match.group(1)), int(match.group(2)))
            if last is None or rank > last[0]:
                last = (rank, value.numel())
    if last is None:
        raise ValueError('the checkpoint has no backbone.layer4 block: '
                         'cannot size the BNNeck')
    return last[1]


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
    """Equal 0-255 pixel statistics (to 1e-3, as :func:`check_source_arch`
    compares them)."""
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
            ``'gem_fixed'``), ``flip``, ``mean``, ``std``); None keeps the
            default.

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
            of :data:`STEM_POOLS`.
    """
    facts = copy.deepcopy(SOURCE_ARCH[source])
    unknown = set(overrides) - set(facts) - {'mean', 'std'}
    if unknown:
        raise KeyError(f'unknown architecture facts {sorted(unknown)}')
    facts.update({k: v for k, v in overrides.items() if v is not None})
    facts['source'] = source
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


#: fast-reid ``MODEL.HEADS.POOL_LAYER`` names (v1.x class names and the
#: v0.x/v1.0 aliases) that mmreid computes: average pooling and GeM (with a
#: learnt exponent, ``heads.pool_layer.p``, or the fixed p = 3 of
#: ``GeneralizedMeanPooling``).
FASTREID_POOLING = dict(
    GlobalAvgPool='avg',
    FastGlobalAvgPool='avg',
    avgpool='avg',
    fastavgpool='avg',
    GeneralizedMeanPoolingP='gem',
    gempoolP='gem',
    GeneralizedMeanPooling='gem_fixed',
    gempool='gem_fixed')

#: The fast-reid ``config.yaml`` key of each fact
#: :func:`read_fastreid_config` reads, for the messages.
FASTREID_KEYS = dict(
    last_stride='MODEL.BACKBONE.LAST_STRIDE',
    pooling='MODEL.HEADS.POOL_LAYER',
    test_feature='MODEL.HEADS.WITH_BNNECK',
    input_size='INPUT.SIZE_TEST',
    flip='TEST.FLIP.ENABLED',
    mean='MODEL.PIXEL_MEAN',
    std='MODEL.PIXEL_STD')

#: What fast-reid did with each fact of its ``config.yaml``, for the
#: message that refuses an option contradicting it.
FASTREID_USE = dict(
    last_stride='with which fast-reid built the network',
    pooling='with which fast-reid built the network',
    test_feature='which fixes the feature fast-reid tested with',
    input_size='the size fast-reid tested at',
    flip='with which fast-reid evaluated the model',
    mean='with which fast-reid normalised the input',
    std='with which fast-reid normalised the input')

#: The ``meta`` keys of a converted checkpoint that
#: :func:`check_source_arch` reads; whatever rewrites a checkpoint
#: (``tools/model_converters/publish_model.py``) must keep them, or a
#: converted network is no longer checked (``unmapped``: the source tensors
#: the converter did not map, refused at load).
SOURCE_META_KEYS = ('source', 'source_arch', 'unmapped', 'identity_bnneck')

#: Source tensors that may stay unconverted without changing the test
#: feature: classifier biases (training logits only) and fast-reid's pixel
#: statistics (recorded as ``mean``/``std`` facts instead).
HARMLESS_UNMAPPED = ('classifier.bias', 'pixel_mean', 'pixel_std')


def _fastreid_test_size(inputs: dict, refuse) -> Optional[List[int]]:
    """The (height, width) of fast-reid's test transform.

    fast-reid (``data/transforms/build.py``, test branch) applies
    torchvision ``Resize(SIZE_TEST)`` if ``SIZE_TEST[0] > 0`` (a single
    value keeps the aspect ratio), then ``CenterCrop(CROP.SIZE)`` if
    ``INPUT.CROP.ENABLED``. mmreid's test pipeline resizes to a fixed
    (height, width) and has no centre crop, so only two positive sizes
    and a crop to the resized size (a no-op) are accepted.

    Args:
        inputs (dict): The config's ``INPUT`` section.
        refuse (callable): Raises the error, given what is not computed.

    Returns:
        list[int] | None: ``SIZE_TEST``, None if the config has none.
    """
    size = inputs.get('SIZE_TEST')
    if size is None:
        return None
    if not isinstance(size, (list, tuple)) or len(size) != 2 or any(
            int(v) <= 0 for v in size):
        refuse(f'INPUT.SIZE_TEST is {size!r} (expected two positive '
               'values, [height, width]: a single value resizes keeping '
               'the aspect ratio, 0 does not resize)')
    size = [int(v) for v in size]
    crop = inputs.get('CROP') or {}
    if crop.get('ENABLED'):
        crop_size = [int(v) for v in crop.get('SIZE') or []]
        if len(crop_size) == 1:
            crop_size *= 2
        if crop_size != size:
            refuse(f'INPUT.CROP.ENABLED is true: the test images are '
                   f'centre-cropped to INPUT.CROP.SIZE {crop_size} after '
                   f'the resize to INPUT.SIZE_TEST {size}')
    return size


def read_fastreid_config(path: str) -> dict:
    """The architecture facts of a fast-reid ``config.yaml``.

    fast-reid writes its merged config next to the checkpoints
    (``OUTPUT_DIR/config.yaml``). Read: ``MODEL.BACKBONE`` (``NAME``,
    ``LAST_STRIDE``, ``WITH_SE``, ``WITH_NL``), ``MODEL.HEADS`` (``NAME``,
    ``POOL_LAYER``, ``EMBEDDING_DIM``, ``WITH_BNNECK``: the test feature is
    ``after_bn`` with a BNNeck, else ``before_bn``; ``NECK_FEAT`` is a
    training option and not read),
    ``INPUT.SIZE_TEST``, ``INPUT.CROP`` (``ENABLED``, ``SIZE``),
    ``TEST.FLIP.ENABLED`` and ``MODEL.PIXEL_MEAN``/``PIXEL_STD``.

    Returns:
        dict: Facts for :func:`source_arch` (``last_stride``,
        ``test_feature``, ``pooling``, ``input_size``, ``flip``, ``mean``,
        ``std``).

    Raises:
        ValueError: A network mmreid does not compute (SE or non-local
            blocks, an embedding layer, another pooling or backbone) or a
            test transform it does not (a ``SIZE_TEST`` other than two
            positive values, a centre crop that changes the image).
    """
    import yaml
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    model = cfg.get('MODEL') or {}
    backbone = model.get('BACKBONE') or {}
    heads = model.get('HEADS') or {}

    def refuse(what):
        raise ValueError(f'{path}: {what}; mmreid has no equivalent, so '
                         'the converted model would compute another '
                         'network')

    if backbone.get('NAME', 'build_resnet_backbone') != \
            'build_resnet_backbone':
        refuse(f'MODEL.BACKBONE.NAME is {backbone["NAME"]!r}')
    for key in ('WITH_SE', 'WITH_NL'):
        if backbone.get(key):
            refuse(f'MODEL.BACKBONE.{key} is true')
    if heads.get('NAME', 'EmbeddingHead') != 'EmbeddingHead':
        refuse(f'MODEL.HEADS.NAME is {heads["NAME"]!r}')
    if heads.get('EMBEDDING_DIM', 0):
        refuse(f'MODEL.HEADS.EMBEDDING_DIM is {heads["EMBEDDING_DIM"]}')
    facts = dict()
    if 'LAST_STRIDE' in backbone:
        facts['last_stride'] = int(backbone['LAST_STRIDE'])
    if 'POOL_LAYER' in heads:
        pooling = FASTREID_POOLING.get(heads['POOL_LAYER'])
        if pooling is None:
            refuse(f'MODEL.HEADS.POOL_LAYER is {heads["POOL_LAYER"]!r}')
        facts['pooling'] = pooling
    # EmbeddingHead returns bottleneck(pool_feat) when not training: the
    # BNNeck's output with WITH_BNNECK, else the pooled feature. NECK_FEAT
    # only picks the feature of the training (triplet) loss. Without
    # WITH_BNNECK (v0.x configs) the checkpoint's tensors decide.
    if 'WITH_BNNECK' in heads:
        facts['test_feature'] = 'after_bn' if heads['WITH_BNNECK'] \
            else 'before_bn'
    size = _fastreid_test_size(cfg.get('INPUT') or {}, refuse)
    if size is not None:
        facts['input_size'] = size
    flip = ((cfg.get('TEST') or {}).get('FLIP') or {}).get('ENABLED')
    if flip is not None:
        facts['flip'] = bool(flip)
    for key, name in (('PIXEL_MEAN', 'mean'), ('PIXEL_STD', 'std')):
        if model.get(key):
            facts[name] = [float(v) for v in model[key]]
    return facts


def _override(key: str, value) -> str:
    if isinstance(value, (list, tuple)):
        value = '[' + ','.join(str(v) for v in value) + ']'
    return f'{key}={value}'


def _copied_test_fixes(cfg, fixes: List[Tuple[str, object]]) -> list:
    """The ``test_*`` twins of the ``val_*`` fixes whose transform the test
    loader holds too (``test_dataloader = val_dataloader`` in the dataset
    bases): an option on the validation loader alone is refused there
    (:func:`mmreid.utils.option_overrides.check_variable_overrides`), and
    the test loader feeds the same network."""
    from .config_keys import _option_value
    plain = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg)
    given = {key for key, _ in fixes}
    twins = []
    for key, value in fixes:
        if not key.startswith('val_'):
            continue
        twin = 'test_' + key[len('val_'):]
        parent, twin_parent = key.rsplit('.', 1)[0], twin.rsplit('.', 1)[0]
        transform = _option_value(plain, parent)
        if twin not in given and isinstance(transform, dict) and \
                _option_value(plain, twin_parent) == transform:
            twins.append((twin, value))
    return twins


def _test_pipelines(cfg,
                    api: bool,
                    split: str = 'test') -> List[Tuple[str, list]]:
    """``(config path, transforms)`` of the pipelines that feed the test.

    The runner (``api=False``) evaluates ``split``: ``runner.test()`` with
    ``test_dataloader`` and every target of a multi-target test loop
    (``test_cfg.targets``), ``runner.val()`` with ``val_dataloader`` and
    ``val_cfg.targets``. The API (``init_model``, ``extract_features``)
    and the tools read them in ``tools/test.py``'s order (see
    :func:`mmreid.utils.pipeline_source.inference_pipelines`): the test
    pipelines, else ``test_pipeline``, else the validation ones.
    """
    from .pipeline_source import inference_pipelines, split_pipelines
    found = inference_pipelines(cfg) if api else split_pipelines(cfg, split)
    return [(s.path, list(s.pipeline)) for s in found]


#: ``ReIDResize``'s defaults, for a config that does not set them.
RESIZE_DEFAULTS = dict(
    size=[256, 128], interpolation='bilinear', backend='cv2')

#: The fact of each ``ReIDResize`` argument.
RESIZE_FACTS = dict(
    size='input_size', interpolation='interpolation', backend='resize_backend')

#: The top-level keys of a config that hold its test pipelines (read by
#: :func:`mmreid.utils.pipeline_source.inference_pipelines`).
PIPELINE_KEYS = ('test_dataloader', 'test_cfg', 'test_pipeline',
                 'val_dataloader', 'val_cfg')


def trained_config_facts(text) -> dict:
    """The test-time input facts of the config an mmreid run saved.

    mmreid's (mmengine's) checkpoints keep the run's config as text
    (``meta['cfg']``). It is parsed, never run
    (:func:`~mmreid.engine.runner.resume_checks.config_literal`), and
    gives what a test config can change without any error: the test
    pipeline's ``ReIDResize`` (size, interpolation, library; read as
    ``tools/test.py`` reads the pipelines, and only when they all agree)
    and the ``model.data_preprocessor`` mean and std (those it sets, else
    its class's defaults).

    Args:
        text: A checkpoint's ``meta['cfg']``.

    Returns:
        dict: Facts as :func:`check_source_arch` compares them
        (``input_size``, ``interpolation``, ``resize_backend``, ``mean``,
        ``std``): those the text states; empty for no config text.
    """
    from mmengine.config import Config

    from mmreid.engine.runner.resume_checks import (config_ast, config_literal,
                                                    config_text_value)
    from .pipeline_source import inference_pipelines
    tree = config_ast(text)

    def read(name):
        try:
            return config_literal(config_text_value(tree, name))
        except (ValueError, TypeError, SyntaxError, RecursionError):
            return None

    facts: dict = {}
    model = read('model')
    model = model if isinstance(model, dict) else {}
    preprocessor = model.get('data_preprocessor')
    if model and preprocessor is None:  # ReIDModel's default one
        preprocessor = _default(model_class(model), 'data_preprocessor')
    preprocessor = preprocessor if isinstance(preprocessor, dict) else {}
    kind = model_class(preprocessor)
    for name in ('mean', 'std'):
        # Left out: the class's default (network_differences leaves the
        # statistics to this check).
        value = preprocessor.get(name, _default(kind, name))
        if isinstance(value, (list, tuple)):
            facts[name] = [float(v) for v in value]
    keys = {name: read(name) for name in PIPELINE_KEYS}
    unread = [
        name for name, value in keys.items()
        if value is None and config_text_value(tree, name) is not None
    ]
    if unread:  # a pipeline it cannot read: no resize fact
        return facts
    saved = Config({k: v for k, v in keys.items() if v is not None})
    resizes = []
    for source in inference_pipelines(saved):
        found = [
            t for t in source.pipeline if isinstance(t, dict)
            and str(t.get('type')).split('.')[-1] == 'ReIDResize'
        ]
        resizes.append([
            list(v) if isinstance(v, (list, tuple)) else v
            for v in (dict(RESIZE_DEFAULTS, **found[0])[k]
                      for k in RESIZE_DEFAULTS)
        ] if found else None)
    if resizes and resizes[0] is not None and all(r == resizes[0]
                                                  for r in resizes):
        size, interpolation, backend = resizes[0]
        facts.update(
            input_size=size,
            interpolation=interpolation,
            resize_backend=backend)
    return facts


#: Why a constructor argument leaves the network a trained checkpoint
#: computes at test time as it is (the reasons of :data:`TEST_TIME_FREE_ARGS`).
_INIT = "an initialisation: the checkpoint's tensors replace it"
_LOSS = 'read by the training losses only'
_TRAIN = 'acts in training mode only'
_EVAL = ('an evaluation choice, changed at test time on one checkpoint '
         '(docs/get_started.md, configs/gmn/README.md, configs/mbn/README.md)')

#: The constructor arguments, by class name (a class has those of its
#: bases; ``''``: every class), that do not change what a trained model
#: computes at test time, each with the code's reason;
#: :func:`network_differences` leaves them out. Read from the code:
#:
#: * ``ReIDModel``: ``aux_losses``/``aux_stage_weights``/``aux_loss`` are
#:   used in ``loss()`` only; ``distance`` (the ranking distance, which the
#:   metric must share) and ``test_cfg`` (``flip``; GMN's ``distance``,
#:   ``fuse_beta``, ``mnet_topk``, ``report_modes``, ``memory_budget_mb``,
#:   ``method``, ``check_queries``, ``max_logit_error``) are evaluation
#:   choices;
#: * ``BNNeckHead``: ``num_classes`` sizes the classifier, which
#:   ``predict()`` does not use (a classifier of another size is skipped at
#:   load); ``loss_cls``, ``loss_tri`` (``loss_triplet``) and
#:   ``triplet_feat`` are read by ``loss()`` only; ``test_feature`` is an
#:   evaluation choice (docs/get_started.md's ``--cfg-options
#:   model.head.test_feature=before_bn``);
#: * ``GMNHead``: ``loss_gmn``, ``pair_mining`` and ``pic`` are read by
#:   ``pair_losses()`` only, ``gmn_detach_backbone`` stops training
#:   gradients, ``dp`` perturbs pairs only while ``self.training``
#:   (``dp_active``);
#: * mmpretrain's ``ResNet``: ``frozen_stages``, ``norm_eval`` (``train()``),
#:   ``with_cp`` (checkpointing while training), ``drop_path_rate``
#:   (``DropPath`` is the identity in eval mode); ``zero_init_residual``
#:   is an initialisation;
#: * ``GeMPool``: ``p`` is the initial exponent (the trained one is the
#:   tensor ``neck.p``), ``learnable`` its ``requires_grad``;
#: * ``SNR``: ``log_gate`` adds a log value to the training outputs;
#: * norms (``_BatchNorm``, ``MBN``, ``IBN``): ``momentum`` (running
#:   statistics are updated in training only), ``requires_grad`` (mmcv's
#:   ``build_norm_layer``); ``MBN``'s ``eval_stats`` and its threshold
#:   ``min_per_modality`` are evaluation choices (configs/mbn/README.md);
#: * ``ReIDDataPreprocessor``: ``mean`` and ``std`` are compared with the
#:   test images (:func:`trained_config_facts`), ``non_blocking`` is how
#:   the batch is copied;
#: * every class: ``init_cfg``, and ``_scope_`` (types are compared by the
#:   class they resolve to).
TEST_TIME_FREE_ARGS: Dict[str, Dict[str, str]] = {
    '':
    dict(init_cfg=_INIT, _scope_='types are compared by class'),
    'ReIDModel':
    dict(
        aux_losses=_LOSS,
        aux_stage_weights=_LOSS,
        aux_loss=_LOSS,
        distance=_EVAL,
        test_cfg=_EVAL),
    'BNNeckHead':
    dict(
        num_classes='sizes the classifier, which test features do not use',
        loss_cls=_LOSS,
        loss_tri=_LOSS,
        loss_triplet=_LOSS,
        triplet_feat=_LOSS,
        test_feature=_EVAL),
    'GMNHead':
    dict(
        loss_gmn=_LOSS,
        pair_mining=_LOSS,
        pic=_LOSS,
        gmn_detach_backbone=_TRAIN,
        dp=_TRAIN),
    'ResNet':
    dict(
        frozen_stages=_TRAIN,
        norm_eval=_TRAIN,
        with_cp=_TRAIN,
        drop_path_rate=_TRAIN,
        zero_init_residual=_INIT),
    'GeMPool':
    dict(p=_INIT, learnable=_TRAIN),
    'SNR':
    dict(log_gate=_TRAIN),
    '_BatchNorm':
    dict(momentum=_TRAIN, requires_grad=_TRAIN),
    'IBN':
    dict(momentum=_TRAIN, requires_grad=_TRAIN),
    'MBN':
    dict(
        momentum=_TRAIN,
        requires_grad=_TRAIN,
        eval_stats=_EVAL,
        min_per_modality=_EVAL),
    'ReIDDataPreprocessor':
    dict(
        mean='compared with the test images',
        std='compared with the test images',
        non_blocking='how the batch is copied to the device'),
}

#: Defaults that a constructor computes from a None (its signature says
#: None): ``ReIDModel`` builds ``ReIDDataPreprocessor`` for none.
_IMPLIED_DEFAULTS: Dict[Tuple[str, str], object] = {
    ('ReIDModel', 'data_preprocessor'): dict(type='ReIDDataPreprocessor'),
}

#: A key neither side of a comparison has.
_ABSENT = object()


def model_class(node) -> Optional[type]:
    """The class a model config node builds, or None.

    ``type`` is looked up in mmreid's ``MODELS`` (and its parents), so a
    scope prefix (``'mmreid.MBN'``) and a name registered as an alias (a
    deprecated name builds the class it wraps) give the class itself.

    Args:
        node: A config dict (or anything else: None).

    Returns:
        type | None: The class; None without a ``type`` or for one that is
        not registered (e.g. a custom module not imported now).
    """
    value = node.get('type') if isinstance(node, dict) else None
    if isinstance(value, str):
        from mmreid.registry import MODELS
        try:
            value = MODELS.get(value)
        except (KeyError, ImportError):
            value = None
    value = getattr(value, '__wrapped__', value)  # a registered alias
    return value if isinstance(value, type) else None


def _free_reason(classes, arg) -> str:
    """Why ``arg`` of any of ``classes`` does not change the test-time
    network (:data:`TEST_TIME_FREE_ARGS`), or ``''``."""
    for cls in classes:
        for klass in getattr(cls, '__mro__', ()):
            reason = TEST_TIME_FREE_ARGS.get(klass.__name__, {}).get(arg)
            if reason:
                return reason
    return TEST_TIME_FREE_ARGS[''].get(arg, '')


def _default(cls, arg):
    """The value ``cls`` takes for ``arg`` when a config leaves it out (its
    or a base's signature, :data:`_IMPLIED_DEFAULTS`), or ``_ABSENT``."""
    import inspect
    for klass in getattr(cls, '__mro__', ()):
        implied = _IMPLIED_DEFAULTS.get((klass.__name__, arg), _ABSENT)
        if implied is not _ABSENT:
            return implied
        try:
            parameter = inspect.signature(klass).parameters.get(arg)
        except (TypeError, ValueError):
            continue
        if parameter is not None and \
                parameter.default is not inspect.Parameter.empty:
            return parameter.default
    return _ABSENT


def _at(tree, path):
    """The value at ``path`` (keys and list indices), or ``_ABSENT``."""
    for key in path:
        if isinstance(tree, dict) and key in tree:
            tree = tree[key]
        elif isinstance(tree, (list, tuple)) and isinstance(key, int) \
                and key < len(tree):
            tree = tree[key]
        else:
            return _ABSENT
    return tree


def network_differences(saved: dict, current: dict,
                        path: tuple = ('model', )) -> list:
    """Where two model configs build networks that test differently.

    The leaves where they differ (:func:`~mmreid.utils.checkpoint.
    model_config_differences`) are kept unless:

    * an argument on the way to the leaf does not change the test-time
      network (:data:`TEST_TIME_FREE_ARGS`, for the class of its node on
      either side);
    * it is a ``type`` and both resolve to one class
      (:func:`model_class`: a scope prefix, a registered alias);
    * one side leaves an argument out and the other gives the value the
      class then takes (its default), compared likewise.

    Args:
        saved (dict): The ``model`` a checkpoint was trained with.
        current (dict): The current ``cfg.model``.
        path (tuple): Where ``saved`` and ``current`` are, for the keys.

    Returns:
        list[tuple]: ``(key path, saved value, current value)`` per kept
        difference, ``_ABSENT`` for a side without the key.
    """
    from .checkpoint import model_config_differences
    found = []
    for leaf, _ in model_config_differences(saved, current):
        rel = leaf[1:]  # without 'model'
        want, have = _at(saved, rel), _at(current, rel)
        nodes = [(_at(saved, rel[:i]), _at(current, rel[:i]), arg)
                 for i, arg in enumerate(rel)]
        if any(
                isinstance(arg, str) and _free_reason((model_class(a),
                                                       model_class(b)), arg)
                for a, b, arg in nodes):
            continue
        if rel and rel[-1] == 'type' and _ABSENT not in (want, have):
            classes = [model_class(dict(type=v)) for v in (want, have)]
            if classes[0] is not None and classes[0] is classes[1]:
                continue
        if rel and (want is _ABSENT) != (have is _ABSENT):
            parent = nodes[-1][:2]
            cls = model_class(parent[1]) or model_class(parent[0])
            default = _default(cls, rel[-1]) if isinstance(rel[-1],
                                                           str) else _ABSENT
            if default is not _ABSENT:
                pair = (default, have) if want is _ABSENT else (want, default)
                found += network_differences(*pair, path + rel)
                continue
        found.append((path + rel, want, have))
    return found


def _cfg_options(key: str, value) -> Optional[List[Tuple[str, object]]]:
    """``(key, value)`` options that set ``key`` to ``value``: one per leaf
    of a dict; None for what ``--cfg-options`` cannot write (a dict in a
    list, or a key to remove)."""
    if value is _ABSENT:
        return None
    if isinstance(value, dict):
        options: List[Tuple[str, object]] = []
        for name, item in value.items():
            inner = _cfg_options(f'{key}.{name}', item)
            if inner is None:
                return None
            options += inner
        return options
    if isinstance(value, (list, tuple)) and any(
            isinstance(v, (dict, list, tuple)) for v in value):
        return None
    return [(key, value)]


def _trained_model_problems(meta: dict, cfg) -> List[tuple]:
    """``(key, saved, current, options)`` per test-time model difference
    of a trained checkpoint's config (``meta['cfg']``) from ``cfg``;
    ``options`` is None where ``--cfg-options`` cannot set it."""
    from .checkpoint import saved_model_config
    saved = saved_model_config(meta)
    current = cfg.get('model') if hasattr(cfg, 'get') else None
    if saved is None or not isinstance(current, dict):
        return []
    if hasattr(current, 'to_dict'):
        current = current.to_dict()
    problems = []
    for path, want, have in network_differences(saved, current):
        key = '.'.join(str(k) for k in path)
        problems.append((key, want, have, _cfg_options(key, want)))
    return problems


def mmreid_conversion(meta: Optional[dict], filename: str) -> str:
    """Why a converted checkpoint is no source's conversion, or ``''``.

    Before the converters refused an mmreid checkpoint (see
    :func:`mmreid.utils.key_mapping.mmreid_evidence`), one run on it wrote
    a file: fast-reid's mapped the ResNet tensors, left mmreid's own layers
    (:data:`~mmreid.utils.key_mapping.MMREID_KEY_PREFIXES`) unmapped,
    recorded fast-reid's defaults and put an identity BNNeck in place of
    the trained one. Its ``meta['unmapped']`` (kept by
    ``publish_model.py``) tells: no source layout has those keys.

    Args:
        meta (dict, optional): The checkpoint's ``meta``.
        filename (str): The checkpoint, for the message.

    Returns:
        str: The message naming the file, the lost layers and the fix.
    """
    from mmreid.utils.key_mapping import MMREID_KEY_PREFIXES
    if not isinstance(meta, dict) or 'source' not in meta:
        return ''
    unmapped = meta.get('unmapped') or []
    lost = [
        f'{prefix}* ({count} tensors)' for prefix in MMREID_KEY_PREFIXES
        for count in [sum(str(k).startswith(prefix) for k in unmapped)]
        if count
    ]
    if not lost:
        return ''
    original = meta.get('converted_from')
    original = f' {original!r}' if original else ''
    source = meta['source']
    return (f'checkpoint {filename!r} is not a {source} model: an mmreid '
            'converter of before the converters refused mmreid checkpoints '
            f'wrote it from the mmreid checkpoint{original}, dropping '
            f'mmreid\'s own layers (meta[\'unmapped\']: {", ".join(lost)}) '
            f'and putting {source}\'s defaults in their place. Load the '
            f'original mmreid checkpoint{original} as it is (init_model, '
            'tools/test.py): it needs no conversion.')


def check_source_arch(meta: Optional[dict],
                      model: torch.nn.Module,
                      cfg,
                      filename: str,
                      test: bool = True,
                      api: bool = False,
                      strict: bool = True,
                      split: str = 'test') -> List[str]:
    """Refuse a config that computes another network than the source.

    A checkpoint converted from fast-reid or torchreid carries the source
    network's facts (``meta['source_arch']``, see :func:`source_arch`).
    The stem pooling, last stride and pooling are compared with the built
    ``model``; at test time also the test feature, the normalisation, the
    flip averaging (``test_cfg.flip``) and the test pipeline's
    ``ReIDResize`` (size, interpolation, library).

    A file an old converter wrote from an mmreid checkpoint is refused
    as such (:func:`mmreid_conversion`).

    A checkpoint of an mmreid run carries its config (``meta['cfg']``):
    at test time its normalisation and test resize
    (:func:`trained_config_facts`) are compared likewise, since a model
    fed images of another size or scale still gives features, and a
    number far from its own (a cross-dataset test with another dataset's
    config); so is its ``model`` (:func:`network_differences`), since a
    setting without tensors (a parameter-free neck, the last stride)
    builds another network that loads the same tensors. Loading it for
    training (``load_from``) is not checked.

    Args:
        meta (dict, optional): The checkpoint's ``meta``; nothing is
            checked without ``source_arch`` or (at test time) ``cfg``.
        model (nn.Module): The built (bare) model.
        cfg (Config): Its config.
        filename (str): The checkpoint, for the message.
        test (bool): Check the test-time facts too. Defaults to True.
        api (bool): Word the fix for ``init_model(cfg_options=...)``
            instead of ``--cfg-options``. Defaults to False.
        strict (bool): Raise; False logs the mismatches as a warning.
        split (str): With ``test``, whose pipelines the runner feeds:
            ``'test'`` (``runner.test()``, the default) or ``'val'``
            (``runner.val()``).

    Returns:
        list[str]: The mismatches (empty when the config matches).

    Raises:
        ValueError: A mismatch and ``strict``.
    """
    if not isinstance(meta, dict):
        return []
    converted = mmreid_conversion(meta, filename)
    if converted:
        return _refuse_or_warn(converted, strict)
    facts = meta.get('source_arch')
    trained = not facts
    if trained and not test:
        return []
    model_changes = []
    if trained:
        facts = trained_config_facts(meta.get('cfg'))
        model_changes = _trained_model_problems(meta, cfg)
    if not facts and not model_changes:
        return []
    # Who the facts are of, in each line of the message.
    owner = 'the checkpoint\'s config has' if trained else 'the source has'
    problems: List[str] = []
    fixes: List[Tuple[str, object]] = []
    dropped = [
        k for k in meta.get('unmapped', [])
        if not k.endswith(HARMLESS_UNMAPPED)
    ]
    if dropped:
        problems.append(f'the source has {len(dropped)} tensors the '
                        f'converter did not map ({", ".join(dropped[:10])}'
                        f'{", ..." if len(dropped) > 10 else ""}): layers '
                        'mmreid does not build, so no config computes the '
                        'source network')

    assumed = set(facts.get('assumed') or ())
    guessed: List[str] = []

    def differ(what, want, have, key=None, value=None, fact=None):
        note = ''
        if fact in assumed:
            note = ' (assumed by the converter)'
            guessed.append(fact)
        problems.append(f'{what}: {owner} {want}{note}, the config {have}')
        if key is not None:
            fixes.append((key, want if value is None else value))

    unset = []  # model keys --cfg-options cannot set to the trained value
    for key, want, have, options in model_changes:
        problems.append(
            f'{key}: {owner} {_shown(want)}, the config {_shown(have)}')
        if options is None:
            unset.append(key)
        else:
            fixes += options
    model_problems = len(model_changes)

    backbone = getattr(model, 'backbone', None)
    pool = getattr(backbone, 'maxpool', None)
    if 'stem_pool' in facts and isinstance(pool, torch.nn.MaxPool2d):
        for name, want in facts['stem_pool'].items():
            have = getattr(pool, name)
            if isinstance(have, tuple) and len(set(have)) == 1:
                have = have[0]
            if have != want:
                differ(
                    f'stem max pooling {name}',
                    want,
                    have,
                    f'model.backbone.stem_pool.{name}',
                    fact='stem_pool')
    if facts.get('last_stride') is not None and backbone is not None:
        have = getattr(backbone, 'last_stride', None)
        if have != facts['last_stride']:
            differ(
                'last stride',
                facts['last_stride'],
                have,
                'model.backbone.last_stride',
                fact='last_stride')
    neck = type(getattr(model, 'neck', None)).__name__
    pooling = dict(GlobalAvgPool='avg', GeMPool='gem').get(neck)
    if facts.get('pooling') and pooling != facts['pooling']:
        differ(
            'pooling',
            facts['pooling'],
            f'{neck} ({pooling})',
            'model.neck.type',
            dict(avg='GlobalAvgPool', gem='GeMPool')[facts['pooling']],
            fact='pooling')
    if test:
        head = getattr(model, 'head', None)
        have = getattr(head, 'test_feature', None)
        if facts.get('test_feature') and have != facts['test_feature']:
            differ(
                'test feature',
                facts['test_feature'],
                have,
                'model.head.test_feature',
                fact='test_feature')
        preprocessor = getattr(model, 'data_preprocessor', None)
        for name in ('mean', 'std'):
            want = facts.get(name)
            have = getattr(preprocessor, name, None)
            if want is None or have is None:
                continue
            have = [round(float(v), 4) for v in have.flatten()]
            if len(have) != len(want) or any(
                    abs(a - b) > 1e-3 for a, b in zip(have, want)):
                differ(
                    f'normalisation {name} (0-255)',
                    want,
                    have,
                    f'model.data_preprocessor.{name}',
                    fact=name)
        if facts.get('flip') is not None:
            test_cfg = getattr(model, 'test_cfg', None) or {}
            have = bool(test_cfg.get('flip', False))
            if have != facts['flip']:
                differ(
                    'test-time flip (mirrored-image averaging)',
                    facts['flip'],
                    have,
                    'model.test_cfg.flip',
                    fact='flip')
        if facts.get('colour_order', 'rgb') != 'rgb':
            problems.append(f'colour order: the source takes '
                            f'{facts["colour_order"]} images, mmreid feeds '
                            'RGB (no config switch)')
        pipelines = _test_pipelines(cfg, api, split) \
            if 'input_size' in facts else []
        wanted = (f'{facts.get("input_size")} with '
                  f'{facts.get("resize_backend")} '
                  f'{facts.get("interpolation")}')
        if not pipelines and 'input_size' in facts:
            problems.append(
                f'the config has no {split} pipeline (' +
                ('test_pipeline, ' if api else '') +
                f'{split}_dataloader.dataset.pipeline or {split}_cfg.targets)'
                ' to '
                f'compare with the resize to {wanted} ({owner} it)')
        for path, pipeline in pipelines:
            index = next(
                (i for i, t in enumerate(pipeline)
                 if str(t.get('type')).split('.')[-1] == 'ReIDResize'), None)
            if index is None:
                problems.append(f'{path} has no ReIDResize; {owner} a '
                                f'resize to {wanted}')
                continue
            resize = pipeline[index]
            for name, fact in RESIZE_FACTS.items():
                have = resize.get(name, RESIZE_DEFAULTS[name])
                have = list(have) if isinstance(have, (list, tuple)) \
                    else have
                if have != facts[fact]:
                    differ(
                        f'{path} ReIDResize {name}',
                        facts[fact],
                        have,
                        f'{path}.{index}.{name}',
                        fact=fact)
    if not problems:
        return []
    fixes += _copied_test_fixes(cfg, fixes)
    source = facts.get('source', meta.get('source', 'another toolbox'))
    if api:
        fix = 'init_model(..., cfg_options={' + ', '.join(
            f'{k!r}: {v!r}' for k, v in fixes) + '})'
    else:
        fix = '--cfg-options ' + ' '.join(_override(k, v) for k, v in fixes)
    if trained:
        what = []
        if model_problems:
            what.append('builds another network at test time')
        if len(problems) > model_problems:
            what.append('feeds it other test images')
        message = (f'checkpoint {filename!r} was trained with a config '
                   f'(its meta[\'cfg\']) that {" and ".join(what)} than '
                   'this config: ' + '; '.join(problems) + '.')
        if fixes:
            message += f' Use the settings it was trained with: {fix}'
        if unset:
            message += ((' ' if message.endswith('.') else '. ') +
                        f'No option gives the trained value of '
                        f'{", ".join(unset)} (a key its config does not '
                        'have, or dicts in a list): test it with the '
                        'config it was trained with.')
        off = 'init_model(..., strict=False)' if api else \
            '--strict false (load_strict = False)'
        message += ((' ' if message.endswith('.') else '. ') +
                    f'To test it with this config\'s settings on purpose, '
                    f'load it with {off}' +
                    (' (tensors of other shapes are refused all the same).'
                     if model_problems else '.'))
    else:
        message = (f'checkpoint {filename!r} was converted from {source}, '
                   'and this config computes another network: ' +
                   '; '.join(problems) + '.')
        if fixes:
            message += f' Use the source\'s settings: {fix}'
    if guessed:
        options = ', '.join(FACT_OPTIONS[f] for f in dict.fromkeys(guessed))
        message += ((' ' if message.endswith('.') else '. ') +
                    'The facts marked assumed are not in the source '
                    f'checkpoint: the converter took {source}\'s defaults; '
                    'if the source was trained otherwise, convert it again '
                    f'giving them ({options}).')
    _refuse_or_warn(message, strict)
    return problems


def _shown(value) -> str:
    """A config value in a message; ``'nothing'`` for a key not given."""
    return 'nothing' if value is _ABSENT else repr(value)


def _refuse_or_warn(message: str, strict: bool) -> List[str]:
    """Raise ``message`` (``strict``) or log it as a warning; ``[message]``
    otherwise."""
    if strict:
        raise ValueError(message)
    from mmengine.logging import print_log
    print_log(
        message + ' (accepted: strict loading is off)',
        logger='current',
        level=30)
    return [message]


__all__ = [
    'STEM_POOLS', 'SOURCE_ARCH', 'FASTREID_POOLING', 'FASTREID_KEYS',
    'FASTREID_USE', 'HARMLESS_UNMAPPED', 'SOURCE_META_KEYS', 'ASSUMABLE_FACTS',
    'FACT_OPTIONS', 'fastreid_stem_pool', 'source_arch', 'check_pixel_stats',
    'check_pixel_scale', 'same_pixel_stats', 'add_identity_bnneck',
    'read_fastreid_config', 'mmreid_conversion', 'check_source_arch'
]
