"""Convert a fast-reid BoT-style ResNet checkpoint to mmreid keys.

Mapped layout (see ``mmreid.utils.key_mapping.FASTREID_RULES``): fast-reid
v0.x/v1.x ``Baseline`` with a plain ResNet backbone and an
``EmbeddingHead`` without embedding layer (the BoT configs): ``backbone.*``,
``heads.bottleneck.0.*`` (BNNeck), ``heads.weight`` (v1.x) or
``heads.classifier.weight`` (v0.x), ``heads.pool_layer.p`` (GeM). Every
other key (IBN, non-local, ``pixel_mean``/``pixel_std``) is reported.

Example::

    python tools/model_converters/fastreid2mmreid.py \\
        market_bot_R50.pth checkpoints/bot_r50_fastreid.pth
"""
from mmreid.utils.key_mapping import converter_main

if __name__ == '__main__':
    converter_main('fastreid', __doc__.splitlines()[0])
