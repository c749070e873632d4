"""Map the parameter names of other ReID/ImageNet projects to mmreid's.

The converters in ``tools/model_converters/`` are thin command lines around
:func:`convert_state_dict`; the rules for each source layout live here so
that they are importable and tested.

mmreid's keys (``ReIDModel`` with ``ReIDResNet``, an optional ``GeMPool``
neck and ``BNNeckHead``)::

    backbone.conv1.weight, backbone.bn1.*, backbone.layer{1-4}.{i}.conv{1-3}
    .weight, backbone.layer{1-4}.{i}.bn{1-3}.*, ...downsample.{0,1,2}.*,
    backbone.stem.{0,1,2}.{conv,bn}.* (deep stem only), neck.p (GeM only),
    head.bnneck.*, head.classifier.weight

These are the torchvision / mmpretrain ResNet names, so an ImageNet ResNet
only needs the ``backbone.`` prefix. A key that no rule maps is never
dropped silently: it is returned in the report, and the converters print it.
An ImageNet backbone (``torchvision``, ``mmpretrain``) with a backbone
tensor no rule maps is refused (:data:`NOT_BACKBONE`): mmreid would build
the backbone without that layer and compute another network.
"""
import os.path as osp
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .atomic import open_atomic
from .fastreid_config import FASTREID_KEYS, FASTREID_USE, read_fastreid_config
from .source_arch import (DISTANCES, FACT_OPTIONS, FACT_TENSORS, SOURCE_ARCH,
                          STEM_POOLS, add_identity_bnneck, check_resnet_layout,
                          same_pixel_stats, source_arch)

# The tensors of a torchvision-style ResNet: stem, stages and shortcuts.
# IBN-Net-a blocks (fast-reid ``WITH_IBN``, mmreid ``ibn_stages``) split
# ``bn1`` into ``bn1.IN`` (instance norm) and ``bn1.BN`` under the same names
# in both projects. The shortcut is ``downsample.0`` (1x1 conv) and
# ``downsample.1`` (BN), or with mmpretrain's ``avg_down`` (ResNetV1d) for a
# strided block ``downsample.0`` (AvgPool2d, no tensors), ``downsample.1``
# (conv) and ``downsample.2`` (BN).
_RESNET = (r'(conv1\.weight|bn1\.\w+|'
           r'layer[1-4]\.\d+\.(?:conv[1-3]\.weight|bn[1-3]\.\w+|'
           r'bn1\.(?:IN|BN)\.\w+|downsample\.[0-2]\.\w+))')
# mmpretrain's deep stem (``deep_stem=True``: ResNetV1c, ResNetV1d): three
# mmcv ConvModules ``stem.{0,1,2}``, each a ``conv`` and a ``bn``; mmreid's
# ReIDResNet (an mmpretrain ResNet) has the same names.
_DEEP_STEM = r'(stem\.[0-2]\.(?:conv\.weight|bn\.\w+))'
_BN = r'(weight|bias|running_mean|running_var|num_batches_tracked)'

# (source pattern, target template, optional value transform). The pattern
# must match the whole key; the first matching rule wins.
Rule = Tuple[str, str, Optional[Callable[[torch.Tensor], torch.Tensor]]]


def _scalar(value: torch.Tensor) -> torch.Tensor:
    """fast-reid stores GeM's p with shape (1,); mmreid with shape ()."""
    if value.numel() != 1:
        raise ValueError(f'expected a single GeM exponent, got a tensor of '
                         f'shape {tuple(value.shape)}')
    return value.reshape(())


def _bn_shaped(tensors: Dict[str, torch.Tensor]) -> bool:
    """Whether the tensors of one source module are a BatchNorm's.

    Args:
        tensors (dict[str, Tensor]): The module's tensors by attribute
            (``weight``, ``bias``, ``running_mean``, ``running_var``,
            ``num_batches_tracked``).

    Returns:
        bool: True when ``weight``, ``bias``, ``running_mean`` and
        ``running_var`` are all 1-D of one length (C,) and
        ``num_batches_tracked`` is a single count. A Linear (2-D weight)
        or a conv (4-D weight) is not a BatchNorm, even though its bias is
        1-D; nor is a module without running statistics (a LayerNorm, a
        BatchNorm without ``track_running_stats``), whose 1-D weight and
        bias a BNNeck would use with statistics it never had.
    """
    if not {'running_mean', 'running_var'} <= set(tensors):
        return False
    lengths = set()
    for name, value in tensors.items():
        if name == 'num_batches_tracked':
            if value.numel() != 1:
                return False
        elif value.dim() != 1:
            return False
        else:
            lengths.add(value.numel())
    return len(lengths) <= 1


#: fast-reid (v1.0 - v1.4, ``fastreid/modeling``) ``Baseline`` with a plain
#: ResNet backbone and ``EmbeddingHead`` without embedding layer
#: (``EMBEDDING_DIM: 0``, the BoT configs): ``backbone.*`` ResNet,
#: ``heads.bottleneck.0.*`` BNNeck (``heads.bnneck.*`` in the older
#: ``BNneckHead``, which also tests with its output), ``heads.pool_layer.p``
#: (GeM), the
#: classifier as ``heads.weight`` (the later ``EmbeddingHead``, where it is
#: a Parameter of the head) or ``heads.classifier.weight`` (a Linear, in
#: ``BNneckHead`` and the ``EmbeddingHead`` of 2020; which stem pooling
#: each layout implies: :func:`~.source_arch.fastreid_stem_pool`).
#: IBN/SE/non-local layers and the cosine-margin settings are not mapped
#: (reported); ``pixel_mean``/``pixel_std`` are not converted either, but
#: read as the ``mean``/``std`` facts (:data:`~.source_arch.FACT_TENSORS`).
#: Note: v1.x classifiers with ``CircleSoftmax`` or ``ArcSoftmax`` are
#: cosine classifiers; the weights load, but mmreid's classifier is a plain
#: linear layer (only training logits differ, the test features do not use
#: the classifier).
FASTREID_RULES: List[Rule] = [
    (r'backbone\.' + _RESNET, r'backbone.\1', None),
    (r'heads\.bottleneck\.0\.' + _BN, r'head.bnneck.\1', None),
    (r'heads\.bnneck\.' + _BN, r'head.bnneck.\1', None),
    (r'heads\.(?:classifier\.)?weight', 'head.classifier.weight', None),
    (r'heads\.pool_layer\.p', 'neck.p', _scalar),
]

#: torchreid (deep-person-reid v1.x, ``torchreid/models/resnet.py``):
#: top-level ``conv1``, ``bn1``, ``layer1-4`` and ``classifier`` (a Linear
#: with bias), plus the BNNeck of BoT-style forks named ``bnneck`` or
#: ``bottleneck`` (a BatchNorm1d). ``classifier.bias`` (mmreid's classifier
#: has none) and the optional ``fc`` embedding (``resnet50_fc512``) are not
#: mapped (reported).
TORCHREID_RULES: List[Rule] = [
    (_RESNET, r'backbone.\1', None),
    (r'(?:bnneck|bottleneck)\.' + _BN, r'head.bnneck.\1', None),
    (r'classifier\.weight', 'head.classifier.weight', None),
]

#: torchvision ``resnet18/34/50/101/152`` ImageNet weights (any version:
#: the names have not changed since torchvision 0.2). ``fc.*`` (the ImageNet
#: classifier) is dropped (reported as such, :data:`NOT_BACKBONE`).
TORCHVISION_RULES: List[Rule] = [
    (_RESNET, r'backbone.\1', None),
]

#: mmpretrain 1.x / mmcls 0.x ``ImageClassifier`` with ``ResNet`` backbone
#: (``resnet*_8xb32_in1k``): ``backbone.*`` keys are mmreid's already;
#: ``head.fc.*`` (the ImageNet classifier) is dropped (reported as such). The
#: ``ResNetV1c/V1d`` deep stem (``backbone.stem.*``) and V1d's average-pool
#: shortcut (``downsample.2``) map too, for a config with ``deep_stem=True``
#: (and ``avg_down=True`` for V1d).
MMPRETRAIN_RULES: List[Rule] = [
    (r'backbone\.' + _RESNET, r'backbone.\1', None),
    (r'backbone\.' + _DEEP_STEM, r'backbone.\1', None),
]

RULES: Dict[str, List[Rule]] = dict(
    fastreid=FASTREID_RULES,
    torchreid=TORCHREID_RULES,
    torchvision=TORCHVISION_RULES,
    mmpretrain=MMPRETRAIN_RULES)

#: For the ImageNet backbones: the source keys outside the backbone (the
#: ImageNet classifier and anything else of the source's model), which are
#: dropped on purpose: reported and recorded as dropped
#: (``meta['dropped']``), not as unmapped, so ``--strict`` accepts them.
#: Every other source key is a backbone tensor; one that no
#: rule maps is a layer mmreid would not build, and the conversion is
#: refused.
NOT_BACKBONE: Dict[str, str] = dict(
    torchvision=r'fc\..*', mmpretrain=r'(?!backbone\.).*')


def _bnneck_modules(state_dict: Dict[str, torch.Tensor],
                    compiled: Sequence[tuple]) -> Dict[str, bool]:
    """The source modules whose tensors a rule maps to ``head.bnneck.*``.

    Returns:
        dict[str, bool]: For each such module (the key without its last
        attribute), whether all its tensors are a BatchNorm's
        (:func:`_bn_shaped`).
    """
    modules: Dict[str, Dict[str, torch.Tensor]] = dict()
    for key, value in state_dict.items():
        for pattern, template, _ in compiled:
            if not pattern.fullmatch(key):
                continue
            if template.startswith('head.bnneck.'):
                module, _, name = key.rpartition('.')
                modules.setdefault(module, dict())[name] = value
            break
    return {module: _bn_shaped(t) for module, t in modules.items()}


#: Key prefixes of mmreid's own models that no source layout has: every
#: mmreid head (``BNNeckHead``, ``GMNHead``) has ``head.bnneck``, and
#: ``backbone.snr_modules`` are the SNR plugin's. fast-reid names its head
#: ``heads.``, mmpretrain's classifier is ``head.fc``, torchreid and
#: torchvision keys are top-level (``bnneck.``, ``fc.``).
MMREID_KEY_PREFIXES = ('head.bnneck.', 'backbone.snr_modules.')


def mmreid_evidence(checkpoint, state_dict: Dict[str, torch.Tensor]) -> str:
    """What shows that a checkpoint is mmreid's own, for the converters.

    Args:
        checkpoint: The loaded checkpoint file (a dict, or a bare state
            dict).
        state_dict (dict[str, Tensor]): Its tensors, as
            :func:`~mmreid.models.weight_init.extract_state_dict` gives
            them.

    Returns:
        str: The evidence, e.g. ``"keys head.bnneck.* (5 tensors)"``, or
        ``''`` when nothing marks the checkpoint as mmreid's. The evidence
        is an mmreid key layout (:data:`MMREID_KEY_PREFIXES`), the ``meta``
        this module writes (``converted_from`` with a ``source`` of
        :data:`RULES`), or the config text an mmreid run stores
        (``meta['cfg']`` with ``default_scope = 'mmreid'``). mmengine's own
        ``meta`` keys (``mmengine_version``, ``dataset_meta``) are no
        evidence: an mmpretrain checkpoint has them too.
    """
    found = []
    for prefix in MMREID_KEY_PREFIXES:
        count = sum(k.startswith(prefix) for k in state_dict)
        if count:
            found.append(f'keys {prefix}* ({count} tensors)')
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if isinstance(meta, dict):
        source = meta.get('source')
        if 'converted_from' in meta and isinstance(source,
                                                   str) and source in RULES:
            found.append(f'meta of an mmreid conversion from '
                         f'{meta["source"]} ({meta["converted_from"]})')
        cfg = meta.get('cfg')
        if isinstance(cfg, str) and re.search(
                r'^default_scope\s*=\s*[\'"]mmreid[\'"]', cfg, re.M):
            found.append("meta['cfg'] of an mmreid run (default_scope = "
                         "'mmreid')")
    return '; '.join(found)


def _refuse_mmreid_checkpoint(checkpoint, state_dict: Dict[str, torch.Tensor],
                              src: str) -> None:
    """Refuse to convert a checkpoint that is mmreid's already.

    Its keys are no source's layout: the rules would drop mmreid's own
    layers, and the converter would record another network's facts.

    Raises:
        ValueError: :func:`mmreid_evidence` finds any, named.
    """
    evidence = mmreid_evidence(checkpoint, state_dict)
    if not evidence:
        return
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if isinstance(meta, dict) and meta.get('source') in NOT_BACKBONE:
        how = ('it is a converted ImageNet backbone: give it as '
               f"init_cfg=dict(type='Pretrained', checkpoint={src!r}, "
               "prefix='backbone.') in the backbone of the config")
    else:
        how = 'load it directly with init_model / tools/test.py'
    raise ValueError(f'{src!r} is already an mmreid checkpoint ({evidence}): '
                     f'{how}; nothing written')


def convert_state_dict(
    state_dict: Dict[str, torch.Tensor], rules: Sequence[Rule]
) -> Tuple['OrderedDict[str, torch.Tensor]', List[str]]:
    """Rename the keys of ``state_dict`` with ``rules``.

    Args:
        state_dict (dict[str, Tensor]): Source tensors (a ``module.`` prefix
            must already be stripped, see
            :func:`mmreid.models.weight_init.extract_state_dict`).
        rules (Sequence[Rule]): ``(pattern, template, transform)``; the
            first pattern that matches the whole key gives the new name
            ``re.sub(pattern, template, key)`` and the value
            ``transform(value)`` (or the value itself). A rule to
            ``head.bnneck.*`` applies only to a source module whose
            tensors are all a BatchNorm's (a Linear or conv ``bottleneck``
            stays wholly unmapped, and the converters refuse it).

    Returns:
        tuple: The converted state dict (source order) and the sorted list
        of source keys that no rule maps.

    Raises:
        ValueError: Two source keys map to one mmreid key, or a transform
            refuses a value (named by its source key).
    """
    compiled = [(re.compile(p), t, f) for p, t, f in rules]
    bnneck_ok = _bnneck_modules(state_dict, compiled)
    converted: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    source_of: Dict[str, str] = dict()
    unmapped = []
    for key, value in state_dict.items():
        for pattern, template, transform in compiled:
            match = pattern.fullmatch(key)
            if match is None:
                continue
            module = key.rpartition('.')[0]
            if template.startswith('head.bnneck.') and not bnneck_ok[module]:
                # e.g. fast-reid's bottleneck.0 is a conv when the head has
                # an embedding layer, a torchreid fork's bottleneck a
                # Linear: not a BNNeck, and none of its tensors (not even
                # a 1-D bias) maps to one.
                continue
            new_key = match.expand(template)
            if new_key in source_of:
                raise ValueError(f'source keys {source_of[new_key]!r} and '
                                 f'{key!r} both map to {new_key!r}')
            source_of[new_key] = key
            try:
                converted[new_key] = transform(value) if transform else value
            except ValueError as e:
                raise ValueError(f'{key}: {e}') from e
            break
        else:
            unmapped.append(key)
    return converted, sorted(unmapped)


def save_checkpoint_atomic(checkpoint: dict, path: str) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename.

    An interrupted save never leaves a truncated file under ``path``.
    """
    with open_atomic(path, 'wb') as f:
        torch.save(checkpoint, f)


def format_report(
    converted: Dict[str, torch.Tensor],
    unmapped: Sequence[str],
    state_dict: Dict[str, torch.Tensor],
    read_as_facts: Sequence[str] = (),
    dropped: Sequence[str] = ()
) -> str:
    """A human-readable summary: counts, the source tensors read as facts
    (:data:`~.source_arch.FACT_TENSORS`), those dropped on purpose (an
    ImageNet classifier, :data:`NOT_BACKBONE`) and every unmapped key."""
    lines = [f'converted {len(converted)} of {len(state_dict)} tensors']
    sections = [("read as the source network's facts, not converted",
                 read_as_facts),
                ('dropped, not part of the backbone (the ImageNet '
                 'classifier)', dropped), ('not mapped', unmapped)]
    for title, keys in sections:
        if keys:
            lines.append(f'{title} ({len(keys)}):')
            lines += [
                f'  {key} {tuple(state_dict[key].shape)}' for key in keys
            ]
    return '\n'.join(lines)


def _fact_text(name: str, value) -> str:
    """A fact for the messages; a stem pooling by its :data:`STEM_POOLS`
    name and its layer."""
    stem = next((k for k, v in STEM_POOLS.items() if v == value), None)
    if name != 'stem_pool' or stem is None:
        return str(value)
    return (f'{stem} (MaxPool2d(3, 2, padding={value["padding"]}, '
            f'ceil_mode={value["ceil_mode"]}))')


def format_assumed(facts: dict, source_config: Optional[str]) -> str:
    """One line naming the facts assumed and how to give them."""
    assumed = facts['assumed']
    where = 'the checkpoint' + (f' nor {source_config}'
                                if source_config else '')
    options = ', '.join(FACT_OPTIONS[name] for name in assumed)
    if facts['source'] == 'fastreid' and not source_config and any(
            name in FASTREID_KEYS for name in assumed):
        options += " or --config (fast-reid's config.yaml of the model)"
    if 'stem_pool' in assumed:
        options += ('; no config.yaml names the stem pooling: "pad" for '
                    "fast-reid's code of before August 2020")
    return (f'assumed {facts["source"]} defaults (not in {where}): ' +
            ', '.join(f'{name}={_fact_text(name, facts[name])}'
                      for name in assumed) +
            f'; if the source was trained otherwise, give {options}')


def _same_fact(name: str, given, recorded) -> bool:
    """Whether an option states the fact a ``config.yaml`` records."""
    if name in ('mean', 'std'):
        return same_pixel_stats(given, recorded)
    if name == 'input_size':
        return [int(v) for v in given] == [int(v) for v in recorded]
    return given == recorded


def convert_checkpoint_file(src: str,
                            dst: str,
                            source: str,
                            strict: bool = False,
                            source_config: Optional[str] = None,
                            **arch) -> Tuple[dict, List[str]]:
    """Convert the checkpoint file ``src`` of project ``source`` to ``dst``.

    The source is read with :func:`load_trusted_checkpoint` (tensors, plain
    containers and numpy scalars: no arbitrary classes); its tensors are
    taken from ``state_dict``/``model`` if present. ``dst`` is written
    atomically as ``dict(state_dict=..., meta=dict(converted_from=...))``.
    For the whole ReID networks of ``fastreid`` and ``torchreid``, ``meta``
    also holds ``source_arch``: the facts of the source network (see
    :func:`source_arch`) that ``init_model`` and ``tools/test.py`` compare
    with the config, refusing a config that computes another network.

    Args:
        src (str): Source checkpoint path.
        dst (str): Output path.
        source (str): One of :data:`RULES` (``'fastreid'``, ``'torchreid'``,
            ``'torchvision'``, ``'mmpretrain'``).
        strict (bool): Raise instead of writing when a key is not mapped
            (a tensor read as a fact of the source network,
            :data:`~.source_arch.FACT_TENSORS`, is used, not unmapped; an
            ImageNet source's classifier, :data:`NOT_BACKBONE`, is dropped
            on purpose, recorded as ``meta['dropped']``, not unmapped).
            Without it, an unmapped key is only reported, except a backbone
            tensor of an ImageNet source, which is always refused.
        source_config (str, optional): fast-reid's ``config.yaml`` of the
            model (see :func:`read_fastreid_config`); an option in
            ``arch`` that contradicts it is refused.
        **arch: Facts of the source network that its tensors do not show
            (``stem_pool``: ``'ceil'`` or ``'pad'``, fast-reid only;
            ``last_stride``, ``test_feature``, ``input_size``,
            ``pooling``, ``flip``, ``mean``, ``std``: three 0-255 values
            each; ``distance``: ``'euclidean'`` or ``'cosine'``, how the
            source ranked its features); None keeps the source's default.

    Returns:
        tuple: The converted state dict and the unmapped source keys
        (not those read as facts nor those dropped).

    Raises:
        ValueError: ``src`` is an mmreid checkpoint already
            (:func:`mmreid_evidence`), nothing maps, a key is not mapped
            in ``strict`` mode, a backbone tensor of an ImageNet source is
            not mapped, a whole ReID network has no ResNet backbone
            (:func:`~.source_arch.check_resnet_layout`), or the
            architecture options contradict the tensors or
            ``source_config``.
    """
    from mmreid.models.weight_init import extract_state_dict
    from mmreid.utils.checkpoint import load_trusted_checkpoint
    if source not in RULES:
        raise KeyError(f'unknown source {source!r}; expected one of '
                       f'{sorted(RULES)}')
    checkpoint = load_trusted_checkpoint(src, map_location='cpu')
    state_dict = extract_state_dict(checkpoint, source=src)
    _refuse_mmreid_checkpoint(checkpoint, state_dict, src)
    converted, unmapped = convert_state_dict(state_dict, RULES[source])
    # Read by source_arch (mean/std): used, so not unmapped.
    read_as_facts = [
        k for k in unmapped if source in SOURCE_ARCH and k in FACT_TENSORS
    ]
    # An ImageNet source's classifier: left out on purpose, not unmapped.
    dropped = [
        k for k in unmapped
        if source in NOT_BACKBONE and re.fullmatch(NOT_BACKBONE[source], k)
    ]
    unmapped = [k for k in unmapped if k not in read_as_facts + dropped]
    print(
        format_report(
            converted,
            unmapped,
            state_dict,
            read_as_facts=read_as_facts,
            dropped=dropped))
    if not converted:
        raise ValueError(f'no key of {src!r} is a {source} key; first '
                         f'keys: {list(state_dict)[:5]}')
    if source in SOURCE_ARCH:
        check_resnet_layout(source, converted, unmapped)
    if source in NOT_BACKBONE and unmapped:
        raise ValueError(
            f'{len(unmapped)} backbone tensors of {src!r} are not mapped: '
            f'{unmapped}; mmreid\'s ReIDResNet has no such layers, so the '
            f'converted backbone would compute another network (nothing '
            f'written)')
    if strict and unmapped:
        raise ValueError(f'{len(unmapped)} keys of {src!r} are not mapped '
                         f'(strict mode): {unmapped}')
    meta = dict(converted_from=osp.basename(src), source=source)
    if dropped:
        meta['dropped'] = dropped
    # Where each fact comes from, for the messages.
    origins = {
        k: f'--{k.replace("_", "-")}'
        for k, v in arch.items() if v is not None
    }
    if source_config is not None:
        if source != 'fastreid':
            raise ValueError('source_config reads fast-reid configs only')
        read_from = {}  # the config.yaml key of each fact
        from_file = read_fastreid_config(source_config, read_from)
        for name, recorded in from_file.items():
            given = arch.get(name)
            if given is None or _same_fact(name, given, recorded):
                continue
            if name == 'flip':
                option = '--flip' if given else '--no-flip'
            elif isinstance(given, (list, tuple)):
                option = f'{FACT_OPTIONS[name]} {list(given)}'
            else:
                option = f'{FACT_OPTIONS[name]} {given}'
            raise ValueError(
                f'{option} contradicts {read_from[name]} = {recorded} '
                f'of {source_config}, {FASTREID_USE[name]} (drop the '
                'option; if the source really differs from its '
                'config.yaml, give the value in a copy of the config.yaml)')
        origins = dict(
            {k: f'{read_from[k]} of {source_config}'
             for k in from_file}, **origins)
        arch = dict(from_file, **{
            k: v
            for k, v in arch.items() if v is not None
        })
    if source in SOURCE_ARCH:
        facts = source_arch(
            source,
            converted,
            state_dict,
            origins=origins,
            source_config=source_config,
            **arch)
        # Dropped tensors change the network unless harmless; init_model
        # and tools/test.py refuse the others.
        meta['unmapped'] = list(unmapped)
        if facts['neck'] is None:
            meta['identity_bnneck'] = add_identity_bnneck(converted)
            print('the source has no BNNeck: wrote an identity BNNeck '
                  '(not used by the test feature "before_bn")')
        meta['source_arch'] = facts
        print('source network: ' +
              ', '.join(f'{k}={v}'
                        for k, v in facts.items() if k != 'assumed'))
        if facts['assumed']:
            print(format_assumed(facts, source_config))
    elif any(v is not None for v in arch.values()):
        raise ValueError(f'architecture options apply to whole ReID '
                         f'networks ({sorted(SOURCE_ARCH)}), not to '
                         f'{source!r}')
    save_checkpoint_atomic(dict(state_dict=converted, meta=meta), dst)
    print(f'saved {dst}')
    if source in NOT_BACKBONE:
        print('a backbone checkpoint (no neck or head): load it with '
              "model.backbone.init_cfg=dict(type='Pretrained', "
              f"checkpoint={dst!r}, prefix='backbone.'), not as a whole "
              'model (init_model, load_from)')
    return converted, unmapped


def converter_main(source: str, description: str) -> None:
    """The command line shared by ``tools/model_converters/*2mmreid.py``."""
    import argparse
    import sys
    defaults = SOURCE_ARCH[source]
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help='source checkpoint')
    parser.add_argument('dst', help='output mmreid checkpoint')
    parser.add_argument(
        '--strict',
        action='store_true',
        help='exit with status 1 (and write nothing) if a key is not mapped')
    if source == 'fastreid':
        parser.add_argument(
            '--stem-pool',
            choices=sorted(STEM_POOLS),
            help='max pooling of the source\'s ResNet stem: "ceil" is '
            'MaxPool2d(3, 2, padding=0, ceil_mode=True), fast-reid\'s since '
            'August 2020 (the default); "pad" is MaxPool2d(3, 2, '
            'padding=1), torchvision\'s, fast-reid\'s before. Without it, '
            'a checkpoint with heads.weight (fast-reid\'s later '
            'EmbeddingHead) is taken to show "ceil" and others are recorded '
            'as assumed; no config.yaml names it')
    parser.add_argument(
        '--last-stride',
        type=int,
        choices=(1, 2),
        help=f'last stride the source was trained with (default '
        f'{defaults["last_stride"]})')
    parser.add_argument(
        '--test-feature',
        choices=('after_bn', 'before_bn'),
        help=f'the feature the source tests with (default '
        f'{defaults["test_feature"]}; "before_bn" without a BNNeck' +
        ('; fast-reid tests with the BNNeck\'s output whenever it has '
         'one: its NECK_FEAT picks the training feature only)'
         if source == 'fastreid' else ')'))
    parser.add_argument(
        '--input-size',
        type=int,
        nargs=2,
        metavar=('HEIGHT', 'WIDTH'),
        help=f'test input size of the source (default '
        f'{defaults["input_size"]})')
    parser.add_argument(
        '--pooling',
        choices=('avg', 'gem', 'gem_fixed'),
        help='global pooling of the source (default avg; GeM when the '
        'checkpoint has its exponent, and then avg is an error; gem_fixed: '
        "GeM with p fixed at 3, fast-reid's GeneralizedMeanPooling, which "
        'stores no exponent)')
    for name in ('mean', 'std'):
        default = defaults[name]
        parser.add_argument(
            f'--{name}',
            type=float,
            nargs=3,
            metavar=('R', 'G', 'B'),
            help=f'per-channel {name} the source normalised its input with, '
            f'on the 0-255 scale (default ImageNet, {default}' +
            ('; torchreid\'s data.norm_' + name + ' times 255)'
             if source == 'torchreid' else '; MODEL.PIXEL_' + name.upper() +
             ', an error if the config.yaml or the checkpoint says '
             'otherwise)'))
    parser.add_argument(
        '--flip',
        action=argparse.BooleanOptionalAction,
        help='whether the source tests with the mean of the features of '
        'each image and its mirror (default off' +
        ('; TEST.FLIP.ENABLED, an error if the config.yaml says otherwise)'
         if source == 'fastreid' else '; torchreid does not flip)'))
    parser.add_argument(
        '--distance',
        choices=sorted(DISTANCES),
        help='how the source ranked its test features: "euclidean", the '
        '(squared) Euclidean distance of the unnormalised features; '
        '"cosine", the cosine distance (or Euclidean of L2-normalised '
        'features) (default ' + defaults['distance'] +
        ('; TEST.METRIC, an error if the config.yaml says otherwise)'
         if source == 'fastreid' else '; torchreid\'s test.dist_metric, '
         'cosine also for test.normalize_feature=True)'))
    if source == 'fastreid':
        parser.add_argument(
            '--config',
            dest='source_config',
            metavar='CONFIG_YAML',
            help="fast-reid's config.yaml of the model (written to its "
            'OUTPUT_DIR): the facts above are read from it')
    args = parser.parse_args()
    try:
        convert_checkpoint_file(
            args.src,
            args.dst,
            source,
            args.strict,
            source_config=getattr(args, 'source_config', None),
            stem_pool=getattr(args, 'stem_pool', None),
            last_stride=args.last_stride,
            test_feature=args.test_feature,
            input_size=args.input_size,
            pooling=args.pooling,
            flip=args.flip,
            mean=args.mean,
            std=args.std,
            distance=args.distance)
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(1)


__all__ = [
    'convert_checkpoint_file', 'converter_main', 'Rule', 'RULES',
    'MMREID_KEY_PREFIXES', 'mmreid_evidence', 'FASTREID_RULES',
    'TORCHREID_RULES', 'TORCHVISION_RULES', 'MMPRETRAIN_RULES', 'NOT_BACKBONE',
    'convert_state_dict', 'save_checkpoint_atomic', 'format_report',
    'format_assumed'
]
