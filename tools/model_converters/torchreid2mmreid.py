"""Convert a torchreid (deep-person-reid) ResNet checkpoint to mmreid keys.

Mapped layout (see ``mmreid.utils.key_mapping.TORCHREID_RULES``): torchreid
v1.x ``resnet*`` models (top-level ``conv1``, ``bn1``, ``layer1-4``,
``classifier.weight``) and BoT-style forks with a BatchNorm1d neck named
``bnneck`` or ``bottleneck``. ``classifier.bias`` (training logits only)
and the ``fc`` embedding of ``resnet50_fc512`` are reported, not mapped; a
model with the embedding is refused (nothing written when its classifier
takes the embedding's width, which the pooled ``layer4`` is not; else when
loaded).

torchreid's ``resnet50`` has last stride 2 and no BNNeck and tests with the
pooled feature: the converted checkpoint gets an identity BNNeck (so it
loads strictly) and records these facts, with PIL bilinear resizing,
ImageNet statistics and torchreid's ranking, the Euclidean distance of the
unnormalised features (``test.dist_metric='euclidean'``,
``normalize_feature=False``; ``--distance cosine`` for a model tested
otherwise) (``meta['source_arch']``); ``init_model`` and ``tools/test.py``
refuse a config that contradicts them and print the overrides
(``model.backbone.last_stride=2 model.head.test_feature=before_bn``, the
``ReIDResize`` backend and the test metric's ``distance``). torchreid
does not store its normalisation (``data.norm_mean``/``norm_std``) in the
checkpoint: give a non-ImageNet one with ``--mean``/``--std`` on the 0-255
scale (times 255).

Example::

    python tools/model_converters/torchreid2mmreid.py \\
        log/resnet50/model/model.pth.tar-60 checkpoints/r50_torchreid.pth
"""
from mmreid.utils.key_mapping import converter_main

if __name__ == '__main__':
    converter_main('torchreid', __doc__.splitlines()[0])
