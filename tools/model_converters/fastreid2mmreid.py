"""Convert a fast-reid BoT-style ResNet checkpoint to mmreid keys.

Mapped layout (see ``mmreid.utils.key_mapping.FASTREID_RULES``): fast-reid
v0.x/v1.x ``Baseline`` with a plain or IBN-a ResNet backbone and an
``EmbeddingHead`` without embedding layer (the BoT configs): ``backbone.*``
(``bn1.IN``/``bn1.BN`` of IBN blocks included), ``heads.bottleneck.0.*``
(BNNeck; ``heads.bnneck.*`` of the older ``BNneckHead``), ``heads.weight``
(v1.x) or ``heads.classifier.weight`` (v0.x),
``heads.pool_layer.p`` (GeM). Every other key (non-local, SE) is reported,
and a model that had such layers is refused when loaded. A head the
pooling cannot feed (a BNNeck or classifier that does not take the
channels of ``layer4``, pooling tensors other than GeM's exponent) is
refused by the converter, naming the key.

The converted checkpoint records the source network's facts
(``meta['source_arch']``, see ``mmreid.utils.source_arch``): fast-reid's
stem pooling ``MaxPool2d(3, 2, padding=0, ceil_mode=True)``, last stride,
pooling, test feature, test size, test-time flip, PIL bicubic resizing
and pixel statistics. ``--config`` reads them from the ``config.yaml``
fast-reid wrote next to the checkpoint; the other options override single
facts (``--mean``/``--std`` that contradict the config.yaml or the
checkpoint's ``pixel_mean``/``pixel_std``, and ``--flip``/``--no-flip``
that contradicts its ``TEST.FLIP.ENABLED``, are refused).
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
