"""The architecture facts of a fast-reid ``config.yaml``.

fast-reid writes its merged config next to the checkpoints. The fastreid
converter (:mod:`mmreid.utils.key_mapping`, ``--config``) reads from it the
facts its tensors do not show (:func:`read_fastreid_config`, which refuses
a network or test transform mmreid does not compute) and gives them to
:func:`mmreid.utils.source_arch.source_arch`; a converter option that
contradicts one is refused naming its key (:data:`FASTREID_KEYS`) and what
fast-reid did with it (:data:`FASTREID_USE`).
"""
from typing import List, Optional

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

#: fast-reid ``MODEL.HEADS.NAME`` heads that mmreid computes (without an
#: embedding layer): v1.x ``EmbeddingHead`` and its v0.x predecessor
#: ``BNneckHead``, the same BNNeck head (pooling, a BatchNorm stored as
#: ``heads.bnneck``, a classifier) that tests with the BNNeck's output.
FASTREID_HEADS = ('EmbeddingHead', 'BNneckHead')

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
    one of :data:`FASTREID_HEADS`, ``POOL_LAYER``, ``EMBEDDING_DIM``,
    ``WITH_BNNECK`` of ``EmbeddingHead``: the test feature is ``after_bn``
    with a BNNeck, else ``before_bn``; ``NECK_FEAT`` is a training option
    and not read),
    ``INPUT.SIZE_TEST``, ``INPUT.CROP`` (``ENABLED``, ``SIZE``),
    ``TEST.FLIP.ENABLED`` and ``MODEL.PIXEL_MEAN``/``PIXEL_STD``.

    Returns:
        dict: Facts for :func:`~mmreid.utils.source_arch.source_arch`
        (``last_stride``, ``test_feature``, ``pooling``, ``input_size``,
        ``flip``, ``mean``, ``std``).

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
    head = heads.get('NAME', 'EmbeddingHead')
    if head not in FASTREID_HEADS:
        refuse(f'MODEL.HEADS.NAME is {head!r} (mmreid computes '
               f'{" and ".join(FASTREID_HEADS)})')
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
    # BNneckHead does not read WITH_BNNECK: it always has its BNNeck
    # (heads.bnneck in the checkpoint) and tests with its output.
    if 'WITH_BNNECK' in heads and head == 'EmbeddingHead':
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


__all__ = [
    'FASTREID_POOLING', 'FASTREID_HEADS', 'FASTREID_KEYS', 'FASTREID_USE',
    'read_fastreid_config'
]
