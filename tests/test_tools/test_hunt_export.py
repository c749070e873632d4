"""Wrong-number hunt: exporting (ONNX) and converting (fast-reid,
torchreid) models.

Four tests assert the correct behaviour of a path where mmreid wrote or
printed a plausible but wrong result (pinned as strict xfails until it
was fixed: the 0-1 mean/std export, the torchreid and fast-reid ranking
distance, fast-reid's flat flip key); the other tests pin behaviour that
a printed number depends on and that no other test checks. References
are computed here from the definitions (GeM, BNNeck, flip averaging; the
peers' documented layouts and defaults), not from mmreid's code.
"""
import os.path as osp

import numpy as np
import pytest
import torch
import torchvision
from mmengine.config import Config

from mmreid.registry import MODELS
from ..fixtures.processes import load_tool
from ..fixtures.tiny_models import randomize_statistics, tiny_model_config

TOOL = osp.join('tools', 'deployment', 'pytorch2onnx.py')
BOT_MARKET = osp.join('configs', 'baseline',
                      'bot_r50_1xb64-120e_market1501.py')
IMAGENET_MEAN_255 = [123.675, 116.28, 103.53]
IMAGENET_STD_255 = [58.395, 57.12, 57.375]


def _write_tiny(tmp_path, text, name='tiny'):
    """Write config ``text`` and a checkpoint of its randomly initialised
    model (BN statistics randomised, no ``meta``); return both paths and
    the model (eval mode)."""
    config = str(tmp_path / f'{name}.py')
    with open(config, 'w') as f:
        f.write(text)
    model = randomize_statistics(MODELS.build(Config.fromfile(config).model))
    checkpoint = str(tmp_path / f'{name}.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    return config, checkpoint, model


def _onnx_features(path, images):
    onnxruntime = pytest.importorskip('onnxruntime')
    session = onnxruntime.InferenceSession(
        path, providers=['CPUExecutionProvider'])
    return session.run(None, {'input': images.astype(np.float32)})[0]


def test_onnx_of_a_0_1_scale_preprocessor_is_refused_or_right(tmp_path):
    """A config whose ``ReIDDataPreprocessor`` has 0-1 mean/std.

    The user exports a model whose config normalises with torchreid's 0-1
    statistics (``mean=[0.485, 0.456, 0.406]``, ``std=[0.229, ...]``),
    which ``ReIDDataPreprocessor`` documents as taking 0-1 float images,
    and deploys the file as its metadata says: ``input`` float32 RGB
    0-255. Today the export succeeds (without ``--verify``) and the graph
    computes ``(x - 0.485) / 0.229`` of 0-255 pixels, i.e. inputs about
    255 times too large: features of another image than the model sees
    (``tools/test.py`` itself refuses uint8 images with such statistics).
    Right: refuse the export (nothing written), or give the model's
    features of the same image on the 0-1 scale the statistics are for.
    """
    pytest.importorskip('onnx')
    text = tiny_model_config().replace(
        'mean=[120., 110., 100.]', 'mean=[0.485, 0.456, 0.406]').replace(
            'std=[60., 55., 50.]', 'std=[0.229, 0.224, 0.225]')
    config, checkpoint, model = _write_tiny(tmp_path, text)
    output = str(tmp_path / 'model.onnx')
    tool = load_tool(TOOL)
    try:
        rc = tool.main([
            config, checkpoint, '--output-file', output, '--exporter',
            'legacy'
        ])
    except ValueError:
        rc = 1
    if rc != 0:
        assert not osp.exists(output)
        return
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 32, 16))
    actual = _onnx_features(output, images)
    # The model's features of these images, normalised on the 0-1 scale
    # that its statistics are for.
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    inputs = (torch.from_numpy(images).float() / 255 - mean) / std
    with torch.no_grad():
        expected = model(inputs, mode='tensor').numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def _torchreid_resnet50_file(path):
    """A torchreid ``resnet50`` checkpoint as torchreid saves it.

    torchreid's ``resnet50`` keeps torchvision's ResNet names at the top
    level (``conv1``, ``bn1``, ``layer1-4``) and a ``classifier`` Linear
    (with bias) in place of ``fc``; ``save_checkpoint`` stores the
    ``DataParallel`` state dict (``module.`` prefix) under ``state_dict``
    with ``epoch`` and ``rank1``.
    """
    torch.manual_seed(0)
    state = {}
    for key, value in torchvision.models.resnet50().state_dict().items():
        if key.startswith('fc.'):
            continue
        state['module.' + key] = value
    state['module.classifier.weight'] = torch.randn(751, 2048) * 0.01
    state['module.classifier.bias'] = torch.zeros(751)
    torch.save({'state_dict': state, 'epoch': 60, 'rank1': 0.9}, path)


def _ranks_as_unnormalised_euclidean(config, checkpoint, cfg_options):
    """Load as ``tools/test.py`` does and assert that it either refuses
    the config, naming the distance, or ranks with the (squared)
    Euclidean distance of unnormalised features."""
    from mmreid.apis import init_model
    from mmreid.apis.rankings import evaluated_ranking
    try:
        model = init_model(config, checkpoint, cfg_options=cfg_options)
    except ValueError as error:
        assert 'distance' in str(error) or 'metric' in str(error), error
        return
    ranking = evaluated_ranking(model)
    assert (ranking['ranking_distance'],
            ranking['feature_normalization']) in (('euclidean', 'none'),
                                                  ('sqeuclidean', 'none'))


def test_converted_torchreid_model_ranks_as_torchreid(tmp_path):
    """The documented torchreid recipe ranks otherwise than torchreid.

    The user converts torchreid's ``resnet50`` (``torchreid2mmreid.py``,
    defaults) and tests it with a BoT R50 config plus the overrides
    docs/get_started.md gives for it (``last_stride=2``,
    ``test_feature='before_bn'``), expecting torchreid's numbers. torchreid
    reports with ``test.dist_metric='euclidean'`` and
    ``test.normalize_feature=False`` (its ``default_config.py``); the
    Market BoT config ranks with the cosine distance (L2-normalised
    features), and neither the conversion nor the load says so: the
    checkpoint records the source's flip averaging (a ranking setting) but
    not its distance. mAP/CMC then differ from torchreid's with no
    refusal. Right: the load refuses the cosine config naming the
    distance, or the model ranks as torchreid does.
    """
    from mmreid.utils.key_mapping import convert_checkpoint_file
    src = str(tmp_path / 'model.pth.tar-60')
    dst = str(tmp_path / 'r50_torchreid.pth')
    _torchreid_resnet50_file(src)
    convert_checkpoint_file(src, dst, 'torchreid')
    _ranks_as_unnormalised_euclidean(
        BOT_MARKET, dst, {
            'model.backbone.last_stride': 2,
            'model.head.test_feature': 'before_bn'
        })


FASTREID_CONFIG_YAML = '''MODEL:
  META_ARCHITECTURE: Baseline
  BACKBONE:
    NAME: build_resnet_backbone
    DEPTH: 50x
    LAST_STRIDE: 1
    WITH_IBN: False
    WITH_SE: False
    WITH_NL: False
  HEADS:
    NAME: EmbeddingHead
    POOL_LAYER: GlobalAvgPool
    WITH_BNNECK: True
    EMBEDDING_DIM: 0
  PIXEL_MEAN: [123.675, 116.28, 103.53]
  PIXEL_STD: [58.395, 57.12, 57.375]
INPUT:
  SIZE_TEST: [256, 128]
TEST:
  METRIC: euclidean
  FLIP:
    ENABLED: False
'''


def _fastreid_bot_r50_file(path):
    """A fast-reid v1.x BoT R50 checkpoint as its ``Checkpointer`` saves
    it: ``model`` (``backbone.`` torchvision ResNet names,
    ``heads.bottleneck.0.*`` BNNeck, ``heads.weight`` classifier of the
    later ``EmbeddingHead``) with ``iteration``."""
    torch.manual_seed(0)
    state = {
        'backbone.' + k: v
        for k, v in torchvision.models.resnet50().state_dict().items()
        if not k.startswith('fc.')
    }
    state.update({
        'heads.bottleneck.0.weight': torch.rand(2048) + 0.5,
        'heads.bottleneck.0.bias': torch.zeros(2048),
        'heads.bottleneck.0.running_mean': torch.rand(2048) - 0.5,
        'heads.bottleneck.0.running_var': torch.rand(2048) + 0.5,
        'heads.bottleneck.0.num_batches_tracked': torch.tensor(100),
        'heads.weight': torch.randn(751, 2048) * 0.01,
    })
    torch.save({'model': state, 'iteration': 100}, path)


def test_fastreid_config_yaml_test_metric_is_not_ignored(tmp_path):
    """fast-reid's ``TEST.METRIC`` is read like ``TEST.FLIP.ENABLED``.

    The user converts a fast-reid BoT R50 with ``--config config.yaml``
    (which, per the converter docs, records "how fast-reid built and
    tested the model"); its ``TEST.METRIC: euclidean`` says fast-reid
    ranked the unnormalised BNNeck features by Euclidean distance. The
    user then tests with ``bot_r50_1xb64-120e_market1501.py`` and the
    overrides the refusal prints. Today the converter reads
    ``TEST.FLIP.ENABLED`` from the same section (and the load enforces
    it) but drops ``TEST.METRIC`` without a word, and the model is ranked
    by cosine distance: other mAP/CMC than fast-reid's. Right: refuse
    the conversion or the cosine config, naming the metric, or rank as
    the config.yaml says.
    """
    from mmreid.utils.key_mapping import convert_checkpoint_file
    src = str(tmp_path / 'model_final.pth')
    yaml = str(tmp_path / 'config.yaml')
    dst = str(tmp_path / 'bot_fastreid.pth')
    _fastreid_bot_r50_file(src)
    with open(yaml, 'w') as f:
        f.write(FASTREID_CONFIG_YAML)
    try:
        convert_checkpoint_file(
            src, dst, 'fastreid', strict=True, source_config=yaml)
    except ValueError as error:
        assert 'METRIC' in str(error), error
        assert not osp.exists(dst)
        return
    # fast-reid's stem and PIL bicubic test resize, as the refusal of the
    # plain config names them.
    _ranks_as_unnormalised_euclidean(
        BOT_MARKET, dst, {
            'model.backbone.stem_pool.padding': 0,
            'model.backbone.stem_pool.ceil_mode': True,
            'test_dataloader.dataset.pipeline.1.interpolation': 'bicubic',
        })


def _reference_feature(model, images, mean, std, p, after_bn, flip):
    """The test feature by its definition, from the backbone's map.

    ``(x - mean) / std`` of the 0-255 RGB images; GeM pooling
    ``mean(max(x, 1e-6) ** p) ** (1 / p)`` (average pooling for p = 1);
    the BNNeck ``(f - running_mean) / sqrt(running_var + eps) * weight +
    bias`` for ``after_bn``; with ``flip`` the mean of the features of
    each image and its horizontal mirror.
    """
    inputs = (torch.from_numpy(images).float() -
              torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(
                  3, 1, 1)

    def one(x):
        fmap = model.backbone(x)
        fmap = fmap[-1] if isinstance(fmap, (tuple, list)) else fmap
        if p == 1:
            pooled = fmap.mean(dim=(2, 3))
        else:
            pooled = fmap.clamp(min=1e-6).pow(p).mean(dim=(2, 3)).pow(1 / p)
        if not after_bn:
            return pooled
        bn = model.head.bnneck
        return (pooled - bn.running_mean) / torch.sqrt(
            bn.running_var + bn.eps) * bn.weight + bn.bias

    with torch.no_grad():
        feats = one(inputs)
        if flip:
            feats = (feats + one(inputs.flip(3))) / 2
    return feats.numpy()


@pytest.mark.parametrize(
    'neck,plugins,after_bn,flip',
    [('GeM', False, True, True), ('avg', True, False, False)],
    ids=['gem-p4.5-after_bn-flip', 'snr-avg-before_bn'])
def test_onnx_graph_computes_the_defined_test_feature(tmp_path, neck,
                                                      plugins, after_bn,
                                                      flip):
    """The exported graph is the test feature, at batch 1 and 3.

    The user exports a model with a learnt GeM exponent (p = 4.5), the
    BNNeck's output and flip averaging, or one with SNR modules and the
    pooled (before-BN) feature, and feeds the graph raw 0-255 RGB images.
    Its features must be the definition's (see
    :func:`_reference_feature`): the right GeM p, the right side of the
    BNNeck, the flip mean, the config's mean/std, for any batch size (the
    export used 2).
    """
    pytest.importorskip('onnx')
    extra = ''
    if neck == 'GeM':
        extra += "\nmodel['neck'] = dict(type='GeMPool', p=4.5)\n"
    if plugins:
        extra += ("\nmodel['backbone']['plugins'] = [dict(cfg=dict("
                  "type='SNR', reduction=4), stages=(True, True, True, "
                  "True), position='after_stage')]\n"
                  "model['aux_losses'] = dict(snr=None)\n")
    if not after_bn:
        extra += "\nmodel['head']['test_feature'] = 'before_bn'\n"
    if flip:
        extra += "\nmodel['test_cfg'] = dict(flip=True)\n"
    config, checkpoint, model = _write_tiny(tmp_path,
                                            tiny_model_config() + extra)
    output = str(tmp_path / 'model.onnx')
    assert load_tool(TOOL).main([
        config, checkpoint, '--output-file', output, '--exporter', 'legacy'
    ]) == 0
    rng = np.random.default_rng(1)
    for batch in (1, 3):
        images = rng.integers(0, 256, (batch, 3, 32, 16))
        expected = _reference_feature(model, images, [120., 110., 100.],
                                      [60., 55., 50.],
                                      4.5 if neck == 'GeM' else 1, after_bn,
                                      flip)
        actual = _onnx_features(output, images)
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_fastreid_flat_flip_enabled_key_is_read(tmp_path):
    """fast-reid's ``TEST.FLIP_ENABLED: True`` is a flip-averaged test.

    fast-reid versions (``_C.TEST.FLIP_ENABLED`` in their
    ``config/defaults.py``, ``inference_on_dataset(..., flip_test=
    cfg.TEST.FLIP_ENABLED)``) wrote the flip setting as a flat key before
    it became ``TEST.FLIP.ENABLED``. The user converts such a BoT model
    with ``--config config.yaml``. Today the converter records
    ``flip=False`` as an *assumed* default, printing that the config.yaml
    does not give it, and a config without ``test_cfg.flip`` is then
    accepted: the features are not the mirrored-image averages fast-reid
    evaluated, so mAP/CMC differ from fast-reid's. Right: record
    ``flip=True`` (not assumed), or refuse the config.yaml naming the key.
    """
    from mmreid.utils.key_mapping import convert_checkpoint_file
    torch.manual_seed(0)
    state = {
        'backbone.' + k: v
        for k, v in torchvision.models.resnet18().state_dict().items()
        if not k.startswith('fc.')
    }
    state.update({
        'heads.bottleneck.0.weight': torch.ones(512),
        'heads.bottleneck.0.bias': torch.zeros(512),
        'heads.bottleneck.0.running_mean': torch.zeros(512),
        'heads.bottleneck.0.running_var': torch.ones(512),
        'heads.bottleneck.0.num_batches_tracked': torch.tensor(0),
        'heads.weight': torch.randn(751, 512) * 0.01,
    })
    src = str(tmp_path / 'model_final.pth')
    torch.save({'model': state, 'iteration': 100}, src)
    yaml = str(tmp_path / 'config.yaml')
    text = FASTREID_CONFIG_YAML.replace('DEPTH: 50x', 'DEPTH: 18x').replace(
        'TEST:\n  METRIC: euclidean\n  FLIP:\n    ENABLED: False\n',
        'TEST:\n  METRIC: cosine\n  FLIP_ENABLED: True\n')
    assert 'FLIP_ENABLED: True' in text
    with open(yaml, 'w') as f:
        f.write(text)
    dst = str(tmp_path / 'bot_fastreid.pth')
    try:
        convert_checkpoint_file(src, dst, 'fastreid', source_config=yaml)
    except ValueError as error:
        assert 'FLIP_ENABLED' in str(error), error
        assert not osp.exists(dst)
        return
    facts = torch.load(dst, weights_only=True)['meta']['source_arch']
    assert facts['flip'] is True
    assert 'flip' not in facts['assumed']
