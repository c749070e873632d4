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
    std='MODEL.PIXEL_STD',
    distance='TEST.METRIC')

#: The flat flip key of the fast-reid versions before ``TEST.FLIP``
#: (``_C.TEST.FLIP_ENABLED``, given to ``inference_on_dataset`` as
#: ``flip_test``): the same fact as ``TEST.FLIP.ENABLED``.
FASTREID_FLAT_FLIP = 'TEST.FLIP_ENABLED'

#: fast-reid ``TEST.METRIC`` values, by the ranking they give
#: (:data:`~mmreid.utils.source_arch.DISTANCES`): its ``build_dist``
#: L2-normalises the features for ``cosine`` and takes the squared
#: Euclidean distance of the features as they are for ``euclidean``.
FASTREID_METRICS = dict(cosine='cosine', euclidean='euclidean')

#: The ``TEST`` steps of fast-reid's evaluator that change the ranking of
#: the features after the distance, which a converted checkpoint does not
#: record: average query expansion and k-reciprocal re-ranking.
FASTREID_RANKING_STEPS = {
    'AQE': 'average query expansion (TEST.AQE: QE_TIME, QE_K, ALPHA)',
    'RERANK': 'k-reciprocal re-ranking (TEST.RERANK: K1, K2, LAMBDA)'
}

#: What fast-reid did with each fact of its ``config.yaml``, for the
#: message that refuses an option contradicting it.
FASTREID_USE = dict(
    last_stride='with which fast-reid built the network',
    pooling='with which fast-reid built the network',
    test_feature='which fixes the feature fast-reid tested with',
    input_size='the size fast-reid tested at',
    flip='with which fast-reid evaluated the model',
    mean='with which fast-reid normalised the input',
    std='with which fast-reid normalised the input',
    distance='with which fast-reid ranked the features')


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


def _fastreid_flip(test: dict, path: str, keys: dict):
    """fast-reid's test-time flip: ``TEST.FLIP.ENABLED`` or the flat
    ``TEST.FLIP_ENABLED`` of older versions, None without either.

    Raises:
        ValueError: Both keys are given and disagree.
    """
    nested = test.get('FLIP')
    nested = nested.get('ENABLED') if isinstance(nested, dict) else None
    flat = test.get('FLIP_ENABLED')
    if nested is not None and flat is not None and \
            bool(nested) != bool(flat):
        raise ValueError(
            f'{path}: {FASTREID_KEYS["flip"]} is {nested} but '
            f'{FASTREID_FLAT_FLIP} is {flat}: the two keys of fast-reid\'s '
            'test-time flip disagree, so whether fast-reid averaged the '
            'features of each image and its mirror is unknown (give one '
            'of them in a copy of the config.yaml)')
    if nested is not None:
        keys['flip'] = FASTREID_KEYS['flip']
        return bool(nested)
    if flat is not None:
        keys['flip'] = FASTREID_FLAT_FLIP
        return bool(flat)
    return None


def _fastreid_ranking(test: dict, path: str) -> Optional[str]:
    """The ranking distance of fast-reid's ``TEST.METRIC``, None without
    it.

    Raises:
        ValueError: A ``TEST.METRIC`` other than :data:`FASTREID_METRICS`,
            or ``TEST.AQE.ENABLED``/``TEST.RERANK.ENABLED`` true: fast-reid
            ranked otherwise than any distance of two features, which the
            converted checkpoint cannot record.
    """
    for step, what in FASTREID_RANKING_STEPS.items():
        section = test.get(step)
        if isinstance(section, dict) and section.get('ENABLED'):
            raise ValueError(
                f'{path}: TEST.{step}.ENABLED is true: fast-reid ranked the '
                f'features with {what} after the distance, a step the '
                'converted checkpoint does not record, so mmreid would '
                'report other numbers than fast-reid\'s for it (nothing '
                'written). To convert the network, set '
                f'TEST.{step}.ENABLED: False in a copy of the config.yaml '
                '(and compare with fast-reid\'s numbers without it)')
    metric = test.get('METRIC')
    if metric is None:
        return None
    if metric not in FASTREID_METRICS:
        raise ValueError(
            f'{path}: TEST.METRIC is {metric!r}: expected one of '
            f'{sorted(FASTREID_METRICS)}, the distances the converted '
            'checkpoint records (nothing written)')
    return FASTREID_METRICS[metric]


def read_fastreid_config(path: str, keys: Optional[dict] = None) -> dict:
    """The architecture facts of a fast-reid ``config.yaml``.

    fast-reid writes its merged config next to the checkpoints
    (``OUTPUT_DIR/config.yaml``). Read: ``MODEL.BACKBONE`` (``NAME``,
    ``LAST_STRIDE``, ``WITH_SE``, ``WITH_NL``), ``MODEL.HEADS`` (``NAME``,
    one of :data:`FASTREID_HEADS`, ``POOL_LAYER``, ``EMBEDDING_DIM``,
    ``WITH_BNNECK`` of ``EmbeddingHead``: the test feature is ``after_bn``
    with a BNNeck, else ``before_bn``; ``NECK_FEAT`` is a training option
    and not read),
    ``INPUT.SIZE_TEST``, ``INPUT.CROP`` (``ENABLED``, ``SIZE``),
    ``TEST.FLIP.ENABLED`` (or the flat ``TEST.FLIP_ENABLED`` of older
    versions), ``TEST.METRIC``, ``TEST.AQE.ENABLED``,
    ``TEST.RERANK.ENABLED`` and ``MODEL.PIXEL_MEAN``/``PIXEL_STD``.

    Args:
        path (str): The config.yaml.
        keys (dict, optional): Filled with the config.yaml key each fact
            was read from, for the messages (:data:`FASTREID_KEYS`, or
            :data:`FASTREID_FLAT_FLIP` for the flip of older versions).

    Returns:
        dict: Facts for :func:`~mmreid.utils.source_arch.source_arch`
        (``last_stride``, ``test_feature``, ``pooling``, ``input_size``,
        ``flip``, ``mean``, ``std``, ``distance``).

    Raises:
        ValueError: A network mmreid does not compute (SE or non-local
            blocks, an embedding layer, another pooling or backbone), a
            test transform it does not (a ``SIZE_TEST`` other than two
            positive values, a centre crop that changes the image), or a
            ranking the converted checkpoint does not record (a
            ``TEST.METRIC`` other than ``cosine``/``euclidean``, query
            expansion or re-ranking enabled); flip keys that disagree.
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
    test = cfg.get('TEST') or {}
    read = {}
    flip = _fastreid_flip(test, path, read)
    if flip is not None:
        facts['flip'] = flip
    distance = _fastreid_ranking(test, path)
    if distance is not None:
        facts['distance'] = distance
    for key, name in (('PIXEL_MEAN', 'mean'), ('PIXEL_STD', 'std')):
        if model.get(key):
            facts[name] = [float(v) for v in model[key]]
    if keys is not None:
        keys.update({name: FASTREID_KEYS[name] for name in facts})
        keys.update(read)
    return facts


__all__ = [
    'FASTREID_POOLING', 'FASTREID_HEADS', 'FASTREID_KEYS', 'FASTREID_USE',
    'FASTREID_FLAT_FLIP', 'FASTREID_METRICS', 'FASTREID_RANKING_STEPS',
    'read_fastreid_config'
]
