"""Convert a fast-reid BoT-style ResNet checkpoint to mmreid keys.

Mapped layout (see ``mmreid.utils.key_mapping.FASTREID_RULES``): fast-reid
v0.x/v1.x ``Baseline`` with a plain or IBN-a ResNet backbone and an
``EmbeddingHead`` without embedding layer (the BoT configs): ``backbone.*``
(``bn1.IN``/``bn1.BN`` of IBN blocks included), ``heads.bottleneck.0.*``
(BNNeck; ``heads.bnneck.*`` of the older ``BNneckHead``), ``heads.weight``
(the later ``EmbeddingHead``) or ``heads.classifier.weight`` (``BNneckHead``
and the ``EmbeddingHead`` of 2020),
``heads.pool_layer.p`` (GeM). ``pixel_mean``/``pixel_std`` (the buffers of
older ``Baseline`` checkpoints) are read as the pixel statistics, so
``--strict`` accepts them. Every other key (non-local, SE) is reported,
and a model that had such layers is refused when loaded. A head the
pooling cannot feed (a BNNeck or classifier that does not take the
channels of ``layer4``, pooling tensors other than GeM's exponent) is
refused by the converter, naming the key.

The converted checkpoint records the source network's facts
(``meta['source_arch']``, see ``mmreid.utils.source_arch``): the stem
pooling, last stride, pooling, test feature, test size, test-time flip, PIL
bicubic resizing, pixel statistics and ranking distance (``TEST.METRIC``,
default cosine; ``--distance``). ``--config`` also reads the flat
``TEST.FLIP_ENABLED`` of older versions, and refuses a config.yaml whose
evaluator re-ranked or expanded queries (``TEST.RERANK.ENABLED``,
``TEST.AQE.ENABLED``), naming the key. fast-reid's stem pooling is
``MaxPool2d(3, 2, padding=0, ceil_mode=True)`` since August 2020 and
``MaxPool2d(3, 2, padding=1)`` before; no ``config.yaml`` names it, and
only ``heads.weight`` (the later ``EmbeddingHead``, always the former)
shows it: otherwise the former is assumed (printed), and ``--stem-pool
pad`` gives the latter. ``--config`` reads the other facts from the
``config.yaml`` fast-reid wrote next to the checkpoint; an option that
contradicts it (or ``--mean``/``--std`` that contradict the checkpoint's
``pixel_mean``/``pixel_std``) is refused, naming the config.yaml key, and
``--stem-pool`` states what neither shows.
``init_model`` and ``tools/test.py`` refuse a config that contradicts them
and print the overrides to use.

Example::

    python tools/model_converters/fastreid2mmreid.py \\
        model_final.pth checkpoints/bot_r50_fastreid.pth --strict \\
        --config logs/market1501/bagtricks_R50/config.yaml
"""
from mmreid.utils.key_mapping import converter_main

if __name__ == '__main__':
    converter_main('fastreid', __doc__.splitlines()[0])
