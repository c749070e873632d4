"""Convert a torchreid (deep-person-reid) ResNet checkpoint to mmreid keys.

Mapped layout (see ``mmreid.utils.key_mapping.TORCHREID_RULES``): torchreid
v1.x ``resnet*`` models (top-level ``conv1``, ``bn1``, ``layer1-4``,
``classifier.weight``) and BoT-style forks with a BatchNorm1d neck named
``bnneck`` or ``bottleneck``. ``classifier.bias`` and the ``fc`` embedding
of ``resnet50_fc512`` are reported, not mapped.

Example::

    python tools/model_converters/torchreid2mmreid.py \\
        log/resnet50/model/model.pth.tar-60 checkpoints/r50_torchreid.pth
"""
from mmreid.utils.key_mapping import converter_main

if __name__ == '__main__':
    converter_main('torchreid', __doc__.splitlines()[0])
