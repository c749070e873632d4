"""tools/deployment/pytorch2onnx.py on a tiny ResNet-18 ReID model."""
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmreid.registry import MODELS
from mmreid.utils import register_all_modules
from ..fixtures.finished_runs import save_trained_checkpoint
from ..fixtures.processes import (killed_writers_temp, load_tool,
                                  options_not_taken)

onnx = pytest.importorskip('onnx')
onnxruntime = pytest.importorskip('onnxruntime')

TOOL = osp.join('tools', 'deployment', 'pytorch2onnx.py')
SHAPE = (64, 32)


@pytest.fixture
def tiny(make_config, tmp_path):
    """The tiny config and a checkpoint of its (randomly initialised) model.

    The BN statistics are randomised so that normalisation and BNNeck
    matter in the comparison.
    """
    register_all_modules()
    config = make_config()
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d) or isinstance(
                module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    checkpoint = str(tmp_path / 'tiny.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    return config, checkpoint


def test_cli_export_and_verify(tiny, tmp_path, capsys, umask):
    config, checkpoint = tiny
    umask(0o022)
    output = tmp_path / 'out' / 'tiny.onnx'
    # An export killed before (its temporary file is removed, see
    # mmreid.utils.atomic).
    output.parent.mkdir()
    killed_writers_temp(output.parent, 'tiny.onnx')
    # in process (a subprocess would double the runtime of this file)
    assert load_tool(TOOL).main([
        config, checkpoint, '--output-file',
        str(output), '--shape',
        str(SHAPE[0]),
        str(SHAPE[1]), '--verify', '--exporter', 'legacy', '--opset', '17'
    ]) == 0
    assert 'verification passed' in capsys.readouterr().out
    assert output.is_file()
    assert [p.name for p in output.parent.iterdir()] == ['tiny.onnx']
    # As open() would leave it, not the temporary file's private 0600.
    assert os.stat(output).st_mode & 0o777 == 0o644
    graph = onnx.load(str(output)).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert not dims[0].HasField('dim_value')  # symbolic batch
    assert [d.dim_value for d in dims[1:]] == [3, *SHAPE]
    # The output declares the batch axis symbolic too (a runtime that
    # sizes its buffers from it takes any batch), D fixed.
    dims = graph.output[0].type.tensor_type.shape.dim
    assert not dims[0].HasField('dim_value')
    assert [d.dim_value for d in dims[1:]] == [64]


def test_features_match_the_pytorch_pipeline(tiny, tmp_path):
    """ONNX on raw images == the model on data-preprocessed images."""
    pytest.importorskip('onnxscript')  # the dynamo exporter needs it
    tool = load_tool(TOOL)
    config, checkpoint = tiny
    cfg = Config.fromfile(config)
    tool.apply_shape(cfg, SHAPE)  # the test pipeline's size, as --shape
    model = tool.build_model(cfg, checkpoint)
    output = str(tmp_path / 'dynamo.onnx')
    tool.export(model, output, SHAPE)  # the default: dynamo, opset 18
    session = onnxruntime.InferenceSession(
        output, providers=['CPUExecutionProvider'])
    reid = model.model
    for batch in (1, 5):  # the export used 2: the batch axis is dynamic
        images = torch.randint(0, 256, (batch, 3, *SHAPE), dtype=torch.uint8)
        data = reid.data_preprocessor(dict(inputs=images))
        with torch.no_grad():
            expected = reid(data['inputs'], mode='tensor')
        actual = session.run(None, {'input': images.float().numpy()})[0]
        assert actual.shape == (batch, 64)
        np.testing.assert_allclose(actual, expected.numpy(), atol=1e-4)
    # the verification reports agreement, and catches a changed model
    reports = tool.verify(model, output, SHAPE)
    assert [r['batch'] for r in reports] == [1, 3]
    assert max(r['max_abs_diff'] for r in reports) < 1e-4
    with torch.no_grad():
        reid.head.bnneck.bias.add_(0.5)
    reports = tool.verify(model, output, SHAPE)
    assert min(r['max_abs_diff'] for r in reports) > 0.4


def test_verification_failure_exits_non_zero(tiny, tmp_path, monkeypatch):
    tool = load_tool(TOOL)
    config, checkpoint = tiny
    monkeypatch.setattr(
        tool, 'verify', lambda *args, **kwargs:
        [dict(batch=1, max_abs_diff=0.5, max_abs_feature=1.0)])
    argv = [
        config, checkpoint, '--output-file',
        str(tmp_path / 'a.onnx'), '--exporter', 'legacy', '--verify'
    ]
    assert tool.main(argv) == 1
    assert tool.main(argv + ['--tolerance', '0.6']) == 0


def test_bad_checkpoints_leave_no_file(tiny, tmp_path):
    tool = load_tool(TOOL)
    config, checkpoint = tiny
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    output = str(out_dir / 'model.onnx')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        tool.main(
            [config,
             str(tmp_path / 'missing.pth'), '--output-file', output])
    corrupted = tmp_path / 'corrupted.pth'
    corrupted.write_bytes(b'not a checkpoint' * 10)
    with pytest.raises(RuntimeError, match='cannot read checkpoint'):
        tool.main([config, str(corrupted), '--output-file', output])
    partial = tmp_path / 'partial.pth'
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    state.pop('head.bnneck.weight')
    torch.save(state, partial)
    with pytest.raises(
            RuntimeError, match=r'lacks 1 tensors.*head.bnneck.weight'):
        tool.main([config, str(partial), '--output-file', output])
    assert list(out_dir.iterdir()) == []


def test_converted_checkpoint_of_another_network_is_refused(tiny, tmp_path):
    # A fast-reid checkpoint of the tiny network, converted: fast-reid pools
    # its stem without padding, resizes with PIL bicubic and ranks by cosine
    # (given here), the tiny config does none of these, so the exported
    # graph would compute another network (and its metadata record another
    # ranking).
    # The exporter refuses as tools/test.py does; with the overrides it
    # prints, the export goes through.
    from mmreid.utils.key_mapping import convert_checkpoint_file
    tool = load_tool(TOOL)
    config, checkpoint = tiny
    fastreid = {}
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    for key, value in state.items():
        key = key.replace('head.bnneck.', 'heads.bottleneck.0.')
        fastreid[key.replace('head.classifier.', 'heads.')] = value
    src = tmp_path / 'model_final.pth'
    torch.save(dict(model=fastreid, iteration=100), src)
    converted = str(tmp_path / 'converted.pth')
    convert_checkpoint_file(
        str(src),
        converted,
        'fastreid',
        strict=True,
        input_size=[32, 16],
        distance='cosine')
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    args = [
        config, converted, '--output-file',
        str(out_dir / 'model.onnx'), '--exporter', 'legacy', '--opset', '17'
    ]
    with pytest.raises(ValueError, match='was converted from fastreid'):
        tool.main(args)
    assert list(out_dir.iterdir()) == []
    assert tool.main(args + [
        '--cfg-options', 'model.backbone.stem_pool.padding=0',
        'model.backbone.stem_pool.ceil_mode=True',
        'test_evaluator.metric=cosine',
        'test_dataloader.dataset.pipeline.1.interpolation=bicubic',
        'test_dataloader.dataset.pipeline.1.backend=pillow'
    ]) == 0
    assert [p.name for p in out_dir.iterdir()] == ['model.onnx']


def trained_export(tiny, tmp_path, capsys):
    """The tool, its --help, the tiny checkpoint with the tiny config
    saved as a run saves it (meta['cfg']: trained and tested at 32 x 16),
    the arguments exporting it into an empty folder, and that folder."""
    tool = load_tool(TOOL)
    with pytest.raises(SystemExit):
        tool.parse_args(['--help'])
    help_text = capsys.readouterr().out
    config, checkpoint = tiny
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    trained = save_trained_checkpoint(tmp_path / 'trained.pth', state,
                                      config)
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    args = [
        config, trained, '--output-file',
        str(out_dir / 'model.onnx'), '--exporter', 'legacy', '--opset', '17'
    ]
    return tool, help_text, args, out_dir


def test_a_refusal_advises_the_options_this_tool_takes(tiny, tmp_path, capsys):
    """The check against the checkpoint's saved config advised the
    runner's --strict false (load_strict = False), which this tool does
    not take; its advice is this tool's now, and followed, exports."""
    tool, help_text, args, out_dir = trained_export(tiny, tmp_path, capsys)
    size = 'test_dataloader.dataset.pipeline.1.size'
    with pytest.raises(ValueError, match='was trained with a config') as e:
        tool.main(args + ['--cfg-options', f'{size}=[64,32]'])
    message = str(e.value)
    fix = f'--cfg-options {size}=[32,16]'
    assert fix in message, message
    assert options_not_taken(message, help_text) == [], message
    assert list(out_dir.iterdir()) == []
    assert tool.main(args + fix.split()) == 0


def test_shape_is_checked_as_the_test_pipelines_size(tiny, tmp_path, capsys):
    """The tiny config trains and tests at 32 x 16. --shape 64 32 replaced
    the test pipeline's size unchecked, and the file said its images are
    resized "as the test pipeline does" (audit s22: mAP 1.32 from the
    graph, 2.65 from tools/test.py). It is the test pipeline's size now:
    refused as --cfg-options on that size is, naming --shape and both
    sizes, with advice this tool takes; the trained size exports."""
    tool, help_text, args, out_dir = trained_export(tiny, tmp_path, capsys)
    with pytest.raises(ValueError, match='was trained with a config') as e:
        tool.main(args + ['--shape', '64', '32'])
    message = str(e.value)
    assert ("the checkpoint's config has [32, 16], the config [64, 32] "
            '(given by --shape 64 32)' in message), message
    assert 'Use the settings it was trained with: --shape 32 16' in message
    assert options_not_taken(message, help_text) == [], message
    # --shape is applied after --cfg-options: advice to set the size with
    # --cfg-options as well would be undone by the --shape given.
    assert not re.search(r'--cfg-options .*pipeline\S*size=', message), \
        message
    assert list(out_dir.iterdir()) == []
    # The trained size, given or read from the pipeline, exports.
    for extra in (['--shape', '32', '16'], []):
        assert tool.main(args + extra) == 0
        graph = onnx.load(str(out_dir / 'model.onnx')).graph
        dims = graph.input[0].type.tensor_type.shape.dim
        assert [d.dim_value for d in dims[1:]] == [3, 32, 16]


def test_apply_shape_sets_the_size_of_the_pipelines_exported():
    tool = load_tool(TOOL)

    def loader(size):
        return dict(
            dataset=dict(pipeline=[
                dict(type='ReIDLoadImageFromFile'),
                dict(type='ReIDResize', size=size)
            ]))

    cfg = Config(dict(test_dataloader=loader((256, 128))))
    assert tool.apply_shape(cfg) == []
    set_keys = tool.apply_shape(cfg, (64, 32))
    assert set_keys == ['test_dataloader.dataset.pipeline.1.size']
    assert tool.input_shape(cfg) == (64, 32)
    targets = [
        dict(name='a', dataloader=loader((256, 128))),
        dict(name='b', dataloader=loader((128, 64)))
    ]
    cfg = Config(dict(test_dataloader=dict(), test_cfg=dict(targets=targets)))
    set_keys = tool.apply_shape(cfg, (64, 32), target='b')
    assert set_keys == [
        'test_cfg.targets.1.dataloader.dataset.pipeline.1.size'
    ]
    assert tool.input_shape(cfg, target='a') == (256, 128)
    assert tool.input_shape(cfg, target='b') == (64, 32)
    # No ReIDResize: the size is --shape's alone, nothing to set.
    cfg = Config(dict(test_dataloader=dict(dataset=dict(pipeline=[]))))
    assert tool.apply_shape(cfg, (64, 32)) == []


def test_failed_export_leaves_no_file(tmp_path):
    tool = load_tool(TOOL)

    class Broken(torch.nn.Module):

        def forward(self, images):
            raise RuntimeError('broken model')

    with pytest.raises(RuntimeError, match='broken model'):
        tool.export(
            Broken(), str(tmp_path / 'x.onnx'), (8, 4), exporter='legacy')
    assert list(tmp_path.iterdir()) == []


def test_input_shape():
    tool = load_tool(TOOL)
    cfg = Config(
        dict(
            test_dataloader=dict(
                dataset=dict(pipeline=[
                    dict(type='ReIDLoadImageFromFile'),
                    dict(type='ReIDResize', size=(256, 128))
                ]))))
    assert tool.input_shape(cfg) == (256, 128)
    assert tool.input_shape(cfg, [64, 32]) == (64, 32)
    with pytest.raises(ValueError, match='--shape'):
        tool.input_shape(Config(dict()))


def test_input_shape_reads_the_pipeline_tools_test_runs():
    """The test dataloader's resize (as tools/test.py), not a stale
    top-level test_pipeline; a multi-target loop's targets (its
    test_dataloader is an empty placeholder), one chosen by --target where
    they differ."""
    tool = load_tool(TOOL)

    def pipeline(size):
        return [
            dict(type='ReIDLoadImageFromFile'),
            dict(type='ReIDResize', size=size)
        ]

    def target(name, size):
        return dict(
            name=name, dataloader=dict(dataset=dict(pipeline=pipeline(size))))

    cfg = Config(
        dict(
            test_pipeline=pipeline((32, 16)),
            test_dataloader=dict(dataset=dict(pipeline=pipeline((64, 32))))))
    assert tool.input_shape(cfg) == (64, 32)
    targets = [target('a', (64, 32)), target('b', (64, 32))]
    cfg = Config(
        dict(
            test_pipeline=pipeline((32, 16)),
            test_dataloader=dict(),
            test_cfg=dict(targets=targets)))
    assert tool.input_shape(cfg) == (64, 32)
    cfg.test_cfg.targets[1] = target('b', (128, 64))
    with pytest.raises(ValueError, match=r"--target NAME \(one of \['a'"):
        tool.input_shape(cfg)
    assert tool.input_shape(cfg, target='b') == (128, 64)
    with pytest.raises(ValueError, match="--target 'c': no such target"):
        tool.input_shape(cfg, [64, 32], target='c')


def test_failed_verification_leaves_no_file(tiny, tmp_path, monkeypatch,
                                            capsys):
    # The graph is verified under a temporary name and renamed only when it
    # passes: a failed --verify leaves no new file, and an earlier export
    # under that name is kept as it was.
    tool = load_tool(TOOL)
    config, checkpoint = tiny
    verified = []

    def failing_verify(model, onnx_file, *args, **kwargs):
        verified.append(onnx_file)
        assert osp.isfile(onnx_file)
        return [dict(batch=1, max_abs_diff=0.5, max_abs_feature=1.0)]

    monkeypatch.setattr(tool, 'verify', failing_verify)
    out_dir = tmp_path / 'out'
    output = out_dir / 'model.onnx'
    argv = [
        config, checkpoint, '--output-file',
        str(output), '--exporter', 'legacy', '--opset', '17', '--verify'
    ]
    assert tool.main(argv) == 1
    assert 'verification FAILED' in capsys.readouterr().err
    assert list(out_dir.iterdir()) == []
    assert verified and verified[-1] != str(output)
    output.write_bytes(b'an earlier export')
    assert tool.main(argv) == 1
    assert [p.name for p in out_dir.iterdir()] == ['model.onnx']
    assert output.read_bytes() == b'an earlier export'


def test_modality_must_match_the_model(make_config, tiny, tmp_path):
    # --modality for a model without modality-aware modules would be
    # ignored: an error. A modality-aware model (MBN) needs it.
    tool = load_tool(TOOL)
    config, checkpoint = tiny
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    args = [
        '--output-file',
        str(out_dir / 'model.onnx'), '--exporter', 'legacy', '--opset', '17'
    ]
    with pytest.raises(ValueError, match=r'--modality=1.*no modality-aware'):
        tool.main([config, checkpoint, '--modality', '1'] + args)
    assert list(out_dir.iterdir()) == []

    mbn_config = make_config(
        extra="model['backbone']['norm_cfg'] = dict(type='MBN')",
        name='tiny_mbn.py')
    model = MODELS.build(Config.fromfile(mbn_config).model)
    mbn_checkpoint = str(tmp_path / 'mbn.pth')
    torch.save({'state_dict': model.state_dict()}, mbn_checkpoint)
    with pytest.raises(ValueError, match='needs --modality'):
        tool.main([mbn_config, mbn_checkpoint] + args)
    assert list(out_dir.iterdir()) == []
    assert tool.main(
        [mbn_config, mbn_checkpoint, '--modality', '1', '--verify'] +
        args) == 0
    assert [p.name for p in out_dir.iterdir()] == ['model.onnx']


def test_a_cross_modality_model_is_exported_with_the_legacy_exporter(
        make_config, tmp_path, capsys):
    """torch.export (the dynamo exporter) stops at the data-dependent
    modality routing of MBN layers and two-stream backbones: without
    --exporter such a model is exported (and verified) with the legacy
    exporter, and --exporter dynamo is refused before anything is written;
    a model without modality-aware modules keeps the dynamo default."""
    tool = load_tool(TOOL)
    mbn_config = make_config(
        extra="model['backbone']['norm_cfg'] = dict(type='MBN')",
        name='tiny_mbn.py')
    model = MODELS.build(Config.fromfile(mbn_config).model)
    assert tool.choose_exporter(model) == 'legacy'
    assert tool.choose_exporter(model, 'legacy') == 'legacy'
    plain = MODELS.build(Config.fromfile(make_config()).model)
    assert tool.choose_exporter(plain) == 'dynamo'
    assert tool.choose_exporter(plain, 'legacy') == 'legacy'
    checkpoint = str(tmp_path / 'mbn.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    output = tmp_path / 'out' / 'model.onnx'
    output.parent.mkdir()
    args = [
        mbn_config, checkpoint, '--modality', '0', '--output-file',
        str(output), '--opset', '17'
    ]
    with pytest.raises(ValueError, match='--exporter legacy'):
        tool.main(args + ['--exporter', 'dynamo'])
    assert not output.exists()
    capsys.readouterr()
    assert tool.main(args + ['--verify']) == 0
    assert 'exporter legacy' in capsys.readouterr().out
    assert output.exists()
    # The file says which modality's features it computes.
    assert metadata(output)['mmreid.modality'] == '0'


GMN_MODEL = '''
model = dict(
    type='GMNReID',
    backbone=dict(type='ReIDResNet', depth=18, last_stride=1,
                  base_channels=8, stem_channels=8),
    neck=dict(type='GlobalAvgPool'),
    head=dict(type='GMNHead', in_channels=64, num_classes=8,
              mnet=dict(hidden_channels=8)))
'''


def metadata(path):
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_a_model_with_its_own_distance_needs_features_only(
        make_config, tmp_path):
    """GMN ranks with its M-Net, which scores pairs of features: the graph
    has features only, and ranking them by a feature distance gives its
    'euclid' row, not the primary 'mnet' one. Refused unless
    --features-only, which the file then records."""
    register_all_modules()
    tool = load_tool(TOOL)
    config = make_config(extra=GMN_MODEL, name='tiny_gmn.py')
    model, checkpoint = random_checkpoint(config, tmp_path / 'gmn.pth')
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    output = out_dir / 'gmn.onnx'
    args = [
        config, checkpoint, '--output-file',
        str(output), '--exporter', 'legacy', '--opset', '17'
    ]
    with pytest.raises(ValueError) as info:
        tool.main(args)
    message = str(info.value)
    assert "GMNReID ranks with its own distance 'mnet'" in message
    assert '--features-only' in message
    assert list(out_dir.iterdir()) == []
    assert tool.main(args + ['--features-only', '--verify']) == 0
    props = metadata(output)
    assert props['mmreid.features_only'] == 'true'
    assert props['mmreid.ranking_distance'] == 'mnet'
    assert props['mmreid.feature_normalization'] == 'model'
    assert 'not the model\'s ranking' in props['mmreid.note']


@pytest.mark.parametrize('distance, normalization', [('euclidean', 'none'),
                                                     ('cosine', 'l2')])
def test_the_file_records_the_ranking_distance(make_config, tmp_path, distance,
                                               normalization):
    """AGW ranks its features by cosine distance: a deployment must too.
    The file says so (metadata_props)."""
    register_all_modules()
    tool = load_tool(TOOL)
    # The model's distance and the test metric's agree (tools/test.py
    # refuses them otherwise).
    config = make_config(
        extra=f"model['distance'] = {distance!r}\n"
        f"test_evaluator = dict(type='ReIDMetric', distance={distance!r})",
        name=f'{distance}.py')
    model, checkpoint = random_checkpoint(config, tmp_path / 'w.pth')
    output = tmp_path / f'{distance}.onnx'
    assert tool.main([
        config, checkpoint, '--output-file',
        str(output), '--exporter', 'legacy', '--opset', '17'
    ]) == 0
    props = metadata(output)
    assert props['mmreid.ranking_distance'] == distance
    assert props['mmreid.feature_normalization'] == normalization
    assert props['mmreid.features_only'] == 'false'
    assert props['mmreid.input'].startswith('input float32 (N, 3, 32, 16)')
    assert f'{distance} distance' in props['mmreid.note']
    # How to resize: the test pipeline's ReIDResize defaults.
    assert props['mmreid.resize_interpolation'] == 'bilinear'
    assert props['mmreid.resize_backend'] == 'cv2'
    assert "interpolation 'bilinear' of 'cv2'" in props['mmreid.input']


def test_the_file_records_the_test_metrics_ranking(make_config, tmp_path):
    """The file named the model's distance, not the one tools/test.py
    ranks with: a Euclidean model tested with
    ``test_evaluator.distance=cosine`` (or ``normalize=True``) was
    recorded as Euclidean, so a deployment following it ranked otherwise
    than the reported numbers. It records the test metric's ranking, the
    re-ranking steps the graph does not compute, and refuses a config
    whose metric contradicts the model's own distance."""
    register_all_modules()
    tool = load_tool(TOOL)
    config = make_config(name='metric.py')
    model, checkpoint = random_checkpoint(config, tmp_path / 'w.pth')

    def export(*options):
        output = tmp_path / f'm{len(list(tmp_path.iterdir()))}.onnx'
        assert tool.main([
            config, checkpoint, '--output-file',
            str(output), '--exporter', 'legacy', '--opset', '17',
            '--cfg-options', *options
        ]) == 0
        return metadata(output)

    # The config's metric gives the deprecated metric='euclidean': the
    # alias goes, or tools/test.py refuses both.
    props = export('test_evaluator.metric=None',
                   'test_evaluator.distance=cosine')
    assert (props['mmreid.ranking_distance'],
            props['mmreid.feature_normalization']) == ('cosine', 'l2')
    assert props['mmreid.ranking_source'] == 'test_evaluator'
    props = export('test_evaluator.normalize=True')
    assert (props['mmreid.ranking_distance'],
            props['mmreid.feature_normalization']) == ('euclidean', 'l2')
    assert 'mmreid.rerank' not in props
    props = export('test_evaluator.rerank.k1=4', 'test_evaluator.rerank.k2=2')
    assert json.loads(props['mmreid.rerank']) == dict(k1=4, k2=2)
    assert 'k-reciprocal re-ranking' in props['mmreid.note']
    with pytest.raises(
            ValueError,
            match="model.distance='cosine' but "
            'test_evaluator ranks with distance=.euclidean.'):
        export('model.distance=cosine')


def rules_export(make_config, tmp_path, *options):
    """Export the tiny config's (random) model with ``--cfg-options
    options``; returns main's status and the output file."""
    register_all_modules()
    config = make_config(name='rules.py')
    model, checkpoint = random_checkpoint(config, tmp_path / 'w.pth')
    output = tmp_path / 'rules.onnx'
    return load_tool(TOOL).main([
        config, checkpoint, '--output-file',
        str(output), '--exporter', 'legacy', '--opset', '17', '--cfg-options',
        *options
    ]), output


def test_the_file_records_the_rank_rules(make_config, tmp_path):
    """The file recorded the ranking distance but not which gallery items
    each query ignores (``junk_rule``) nor how the metric counts: a
    deployment evaluating a junk_rule='none' config took the Market
    rule."""
    status, output = rules_export(make_config, tmp_path,
                                  'test_evaluator.junk_rule=none',
                                  'test_evaluator.cmc_mode=dedup')
    assert status == 0
    props = metadata(output)
    assert (props['mmreid.junk_rule'], props['mmreid.tie_policy'],
            props['mmreid.ap_mode'], props['mmreid.cmc_mode']) == \
        ('none', 'stable', 'cumsum', 'dedup')


def test_an_fp16_test_config_is_refused(make_config, tmp_path):
    """A config whose test loop extracts under fp16 autocast
    (``test_cfg.fp16=True``) was exported as an fp32 graph without a
    word: its features are not those tools/test.py evaluates."""
    with pytest.raises(
            ValueError,
            match=r'^test_cfg\.fp16=True: .*the exported graph computes them '
            r'in fp32.*--cfg-options test_cfg\.fp16=False'):
        rules_export(make_config, tmp_path, 'test_cfg.fp16=True')
    assert not (tmp_path / 'rules.onnx').exists()


def test_input_resize_is_the_test_pipelines():
    """A deployment resizes as tools/test.py's pipeline does: its
    ReIDResize's interpolation and library, ReIDResize's defaults
    (bilinear, cv2) where it sets none; nothing where it has none."""
    tool = load_tool(TOOL)

    def cfg(**resize):
        return Config(
            dict(
                test_dataloader=dict(
                    dataset=dict(pipeline=[
                        dict(type='ReIDLoadImageFromFile'),
                        dict(type='ReIDResize', size=(64, 32), **resize)
                    ]))))

    assert tool.input_resize(cfg()) == dict(
        interpolation='bilinear', backend='cv2')
    given = cfg(interpolation='bicubic', backend='pillow')
    assert tool.input_resize(given) == dict(
        interpolation='bicubic', backend='pillow')
    props = tool.onnx_metadata(
        dict(
            ranking_distance='euclidean',
            feature_normalization='none',
            features_only=False,
            ranking_source='model.distance',
            ranking_note=''), (64, 32),
        resize=tool.input_resize(given))
    assert props['mmreid.resize_interpolation'] == 'bicubic'
    assert props['mmreid.resize_backend'] == 'pillow'
    assert "interpolation 'bicubic' of 'pillow'" in props['mmreid.input']
    assert tool.input_resize(Config(dict())) == {}


TEST_PIPELINE = ("test_pipeline = [{}]\n"
                 "test_dataloader = dict(test_dataloader, dataset=dict("
                 "test_dataloader['dataset'], pipeline=test_pipeline))")
BGR_LOADER = TEST_PIPELINE.format(
    "dict(type='mmpretrain.LoadImageFromFile'), "
    "dict(type='ReIDResize', size=(32, 16)), dict(type='PackReIDInputs')")
CROP = TEST_PIPELINE.format(
    "dict(type='ReIDLoadImageFromFile'), dict(type='ReIDResize', "
    "size=(40, 20)), dict(type='mmcv.CenterCrop', crop_size=(16, 32)), "
    "dict(type='PackReIDInputs')")
TWO_RESIZES = TEST_PIPELINE.format(
    "dict(type='ReIDLoadImageFromFile'), dict(type='ReIDResize', "
    "size=(40, 20)), dict(type='ReIDResize', size=(32, 16)), "
    "dict(type='PackReIDInputs')")
SWAP = ("model = dict(model, data_preprocessor=dict(type='mmengine."
        "ImgDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, "
        "57.12, 57.375], bgr_to_rgb=True))")


@pytest.mark.parametrize(
    'extra, refusal', [
        (BGR_LOADER,
         r"^the test pipeline test_dataloader\.dataset\.pipeline\.0 "
         r"is type='mmpretrain\.LoadImageFromFile' \(mmcv\..*LoadImageFromFile"
         r"\), not mmreid's ReIDLoadImageFromFile, the loader that gives RGB"),
        (CROP, r"^the test pipeline test_dataloader\.dataset\.pipeline\.2 is "
         r"type='mmcv\.CenterCrop' .*a transform the graph does not compute"),
        (TWO_RESIZES, r"^the test pipeline test_dataloader\.dataset\.pipeline"
         r"\.2 is type='ReIDResize' .*a second resize"),
        (SWAP,
         r"^model\.data_preprocessor is mmengine\..*ImgDataPreprocessor, "
         r"not mmreid's ReIDDataPreprocessor"),
    ],
    ids=['bgr-loader', 'crop', 'two-resizes', 'channel-swap'])
def test_a_data_path_the_graph_does_not_reproduce_is_refused(
        make_config, tiny, tmp_path, extra, refusal):
    """The graph takes RGB images resized to its input size and applies
    mean/std; the file says so (mmreid.input). The tool exported a
    config whose test pipeline loads BGR (mmcv's loader), crops after the
    resize, or whose data preprocessor swaps channels, and wrote that
    metadata: fed as it says, the file was 0.16-0.37 off tools/test.py's
    features (audit s23). Refused now, naming the key, before anything is
    written; the message says what the graph reproduces."""
    tool = load_tool(TOOL)
    _, checkpoint = tiny
    config = make_config(extra=extra, name='other_path.py')
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    with pytest.raises(ValueError, match=refusal) as error:
        tool.main([
            config, checkpoint, '--output-file',
            str(out_dir / 'model.onnx'), '--exporter', 'legacy', '--verify'
        ])
    assert 'ReIDLoadImageFromFile (RGB), at most one ReIDResize and ' \
        'PackReIDInputs' in str(error.value)
    assert list(out_dir.iterdir()) == []


def test_flip_augmentation_is_inside_the_graph(tiny, tmp_path):
    """model.test_cfg.flip is the model's test-time augmentation, not a
    transform of the pipeline: exported, and the file verified against
    tools/test.py's path."""
    tool = load_tool(TOOL)
    config, checkpoint = tiny
    output = tmp_path / 'flip.onnx'
    assert tool.main([
        config, checkpoint, '--output-file',
        str(output), '--exporter', 'legacy', '--verify', '--cfg-options',
        'model.test_cfg.flip=True'
    ]) == 0
    assert output.is_file()


def test_verify_compares_the_file_with_the_test_path(tiny, tmp_path):
    """--verify compared the graph with its own PyTorch wrapper on the same
    tensors, so a data path that the graph does not reproduce passed. It
    feeds the file random images of other sizes as its metadata says
    (RGB, resized as mmreid.resize_* say) and compares with the model's
    features of the same images through the test pipeline and the data
    preprocessor: a file that tells another resize fails it; a pipeline
    that loads BGR and a preprocessor that swaps channels, which that
    test path refuses, stop it."""
    from mmengine.model import ImgDataPreprocessor
    tool = load_tool(TOOL)
    config, checkpoint = tiny
    cfg = Config.fromfile(config)
    pipeline = cfg.test_dataloader.dataset.pipeline
    # PIL bicubic: the file must tell it, and verify resize so.
    pipeline[1].update(interpolation='bicubic', backend='pillow')
    model = tool.build_model(cfg, checkpoint)
    shape = (32, 16)
    output = str(tmp_path / 'model.onnx')

    def difference(resize=None):
        if resize is not None:
            tool.export(
                model,
                output,
                shape,
                exporter='legacy',
                metadata=tool.onnx_metadata(
                    model.ranking, shape, resize=resize))
        reports = tool.verify(model, output, shape)
        return max(r['max_abs_diff'] for r in reports)

    # Each mismatch fails the default --tolerance (1e-3).
    assert difference(tool.input_resize(cfg)) < 1e-4
    assert difference(dict(interpolation='bilinear', backend='cv2')) > 1e-3
    assert difference(tool.input_resize(cfg)) < 1e-4
    # A data path that the graph does not reproduce: the test path itself
    # (extract_features) refuses it, so verify fails rather than compare.
    pipeline[0]['type'] = 'mmpretrain.LoadImageFromFile'  # BGR
    with pytest.raises(ValueError, match='which decodes them to BGR'):
        difference()
    pipeline[0]['type'] = 'ReIDLoadImageFromFile'
    reid = model.model
    reid.data_preprocessor = ImgDataPreprocessor(
        reid.data_preprocessor.mean.flatten().tolist(),
        reid.data_preprocessor.std.flatten().tolist(),
        bgr_to_rgb=True)
    with pytest.raises(
            ValueError,
            match=r"which decodes them to RGB, but ImgDataPreprocessor takes "
            r'BGR images \(it swaps them to RGB itself\)'):
        difference()


def test_verification_takes_the_worst_batch(tiny, tmp_path, monkeypatch):
    """--verify fails when any batch size's difference exceeds
    --tolerance (the largest over the batch sizes decides)."""
    tool = load_tool(TOOL)
    config, checkpoint = tiny
    monkeypatch.setattr(
        tool, 'verify', lambda *args, **kwargs: [
            dict(batch=1, max_abs_diff=0.0, max_abs_feature=1.0),
            dict(batch=3, max_abs_diff=0.5, max_abs_feature=1.0)
        ])
    argv = [
        config, checkpoint, '--output-file',
        str(tmp_path / 'a.onnx'), '--exporter', 'legacy', '--verify'
    ]
    assert tool.main(argv + ['--tolerance', '0.4']) == 1
    assert not (tmp_path / 'a.onnx').exists()
    assert tool.main(argv + ['--tolerance', '0.6']) == 0


def random_checkpoint(config, path):
    """The model of ``config`` with its initial weights, saved to
    ``path``: the model and the checkpoint's path."""
    model = MODELS.build(Config.fromfile(config).model)
    torch.save({'state_dict': model.state_dict()}, path)
    return model, str(path)


def exported_legacy(tool, tiny, tmp_path):
    """The tiny model (at SHAPE) and its legacy-exported file."""
    config, checkpoint = tiny
    cfg = Config.fromfile(config)
    tool.apply_shape(cfg, SHAPE)
    model = tool.build_model(cfg, checkpoint)
    output = str(tmp_path / 'legacy.onnx')
    tool.export(model, output, SHAPE, exporter='legacy')
    return model, output


def test_verify_reports_the_largest_feature_difference(tiny, tmp_path):
    """max_abs_diff is max |onnx - pytorch| over all features: one changed
    feature dimension shows in full, not averaged away."""
    tool = load_tool(TOOL)
    model, output = exported_legacy(tool, tiny, tmp_path)
    with torch.no_grad():
        model.model.head.bnneck.bias[5] += 0.5  # one of 64 dimensions
    reports = tool.verify(model, output, SHAPE)
    for r in reports:
        assert r['max_abs_diff'] == pytest.approx(0.5, abs=1e-3)


def test_a_batch_dependent_model_is_refused(make_config, tmp_path):
    """MBN(eval_stats='batch') normalises each test batch with its own
    statistics: an exported graph's features would depend on the batches
    a deployment feeds it (the legacy exporter stopped with an
    AssertionError of its own). Refused before anything is written, with
    the option that exports the running statistics, which is accepted."""
    tool = load_tool(TOOL)
    config = make_config(
        extra="model['backbone']['norm_cfg'] = dict(type='MBN', "
        "eval_stats='batch')",
        name='tiny_mbn_batch.py')
    model = MODELS.build(Config.fromfile(config).model)
    # What the refusal prevents: one image's feature changes with the
    # other images of its batch.
    model.eval()
    images = torch.randn(4, 3, *SHAPE)
    with torch.no_grad():
        whole = model(images, mode='tensor', modality=1)
        half = model(images[:2], mode='tensor', modality=1)
    assert not torch.allclose(whole[:2], half, atol=1e-4)
    checkpoint = str(tmp_path / 'mbn.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    output = tmp_path / 'out' / 'model.onnx'
    output.parent.mkdir()
    args = [
        config, checkpoint, '--modality', '1', '--output-file',
        str(output), '--opset', '17'
    ]
    way_out = '--cfg-options model.backbone.norm_cfg.eval_stats=modality'
    with pytest.raises(ValueError) as error:
        tool.main(args)
    assert str(error.value).startswith(
        "the model's MBN layers (e.g. 'backbone.bn1') use "
        "eval_stats='batch'")
    assert f'running statistics of each modality instead: {way_out} ' \
        in str(error.value)
    assert list(output.parent.iterdir()) == []
    assert tool.main(args + way_out.split() + ['--verify']) == 0
    assert output.is_file()


def test_the_keys_that_give_batch_statistics():
    """batch_statistics_keys: the dotted key of each MBN config with
    eval_stats='batch', in config order, a scoped type name and list items
    (by index) included; an MBN of other statistics is not listed."""
    from mmreid.models.layers.mbn import (batch_statistics_keys,
                                          running_statistics_fix)
    model = dict(
        type='ReIDModel',
        backbone=dict(norm_cfg=dict(type='mmreid.MBN', eval_stats='batch')),
        neck=[
            dict(type='GlobalAveragePooling'),
            dict(norm_cfg=dict(type='MBN', eval_stats='batch'))
        ],
        head=dict(
            norm_cfg=dict(type='MBN', eval_stats='shared'),
            bn=dict(type='MBN')))
    assert batch_statistics_keys(model) == [
        'model.backbone.norm_cfg.eval_stats',
        'model.neck.1.norm_cfg.eval_stats'
    ]
    assert running_statistics_fix(dict(model=model)) == (
        '--cfg-options model.backbone.norm_cfg.eval_stats=modality '
        'model.neck.1.norm_cfg.eval_stats=modality')


class MeanColour(torch.nn.Module):
    """The smallest graph to export: each image's mean colour (N, 3)."""

    def forward(self, images):
        return images.mean((2, 3))


def test_verify_reports_differences_of_either_sign(tiny, tmp_path):
    """max_abs_diff is max |onnx - pytorch|: a file whose features are
    above the model's fails --tolerance as one whose features are below
    does; max_abs_feature is the magnitude of the model's (PyTorch's)
    features, which the tool prints next to it."""
    tool = load_tool(TOOL)
    model, output = exported_legacy(tool, tiny, tmp_path)
    with torch.no_grad():
        # The model's dimension 5 drops by 100: the file's is 100 above.
        model.model.head.bnneck.bias[5] -= 100
    for r in tool.verify(model, output, SHAPE):
        assert r['max_abs_diff'] == pytest.approx(100, abs=1e-2)
        assert r['max_abs_feature'] > 90  # PyTorch's, not the file's


def test_the_checked_file_holds_its_metadata(tmp_path):
    """--verify feeds the file as its metadata says (mmreid.resize_*), so
    the check gets the file with the metadata already written."""
    tool = load_tool(TOOL)
    seen = {}
    given = {'mmreid.resize_interpolation': 'bicubic', 'mmreid.note': 'x'}
    tool.export(
        MeanColour(),
        str(tmp_path / 'mean.onnx'), (4, 2),
        exporter='legacy',
        check=lambda path: seen.update(metadata(path)),
        metadata=given)
    assert seen == given


def test_write_metadata_replaces_its_keys_and_keeps_the_others(tmp_path):
    tool = load_tool(TOOL)
    path = str(tmp_path / 'mean.onnx')
    tool.export(
        MeanColour(),
        path, (4, 2),
        exporter='legacy',
        metadata={
            'mmreid.note': 'old',
            'producer.key': 'kept'
        })
    tool.write_metadata(path, {'mmreid.note': 'new', 'mmreid.rerank': '{}'})
    props = sorted((p.key, p.value) for p in onnx.load(path).metadata_props)
    assert props == [('mmreid.note', 'new'), ('mmreid.rerank', '{}'),
                     ('producer.key', 'kept')]


def test_an_unknown_exporter_is_refused(tmp_path):
    tool = load_tool(TOOL)
    with pytest.raises(
            ValueError,
            match=r"exporter must be one of \('dynamo', 'legacy'\), got "
            r"'torchscript'"):
        tool.export(
            MeanColour(),
            str(tmp_path / 'mean.onnx'), (4, 2),
            exporter='torchscript')
    assert list(tmp_path.iterdir()) == []


def test_the_file_records_the_modality_it_computes():
    """The graph computes one modality's features (--modality): the file
    says which, the visible one (0) included."""
    tool = load_tool(TOOL)
    ranking = dict(
        ranking_distance='euclidean',
        feature_normalization='none',
        features_only=False,
        ranking_source='model.distance',
        ranking_note='')
    for modality in (0, 1):
        props = tool.onnx_metadata(ranking, SHAPE, modality)
        assert props['mmreid.modality'] == str(modality)
    assert 'mmreid.modality' not in tool.onnx_metadata(ranking, SHAPE)


def test_the_default_tolerance_opset_and_printed_differences(
        tiny, tmp_path, monkeypatch, capsys):
    """--tolerance defaults to 1e-3 and --opset to 18 (their help): a
    largest difference of 2e-3 fails --verify without it, 5e-4 passes.
    Each batch's difference and feature magnitude are printed as verify
    reports them."""
    tool = load_tool(TOOL)
    config, checkpoint = tiny
    worst = []
    monkeypatch.setattr(
        tool, 'verify', lambda *args, **kwargs: [
            dict(batch=1, max_abs_diff=worst[-1], max_abs_feature=1.5),
            dict(batch=3, max_abs_diff=1e-4, max_abs_feature=2.5)
        ])
    output = tmp_path / 'a.onnx'
    argv = [
        config, checkpoint, '--output-file',
        str(output), '--exporter', 'legacy', '--verify'
    ]
    worst.append(2e-3)
    assert tool.main(argv) == 1
    printed = capsys.readouterr()
    assert 'batch 1: max abs diff 0.002 (features up to 1.5)' in printed.out
    assert 'batch 3: max abs diff 0.0001 (features up to 2.5)' in printed.out
    assert 'max abs diff 0.002 > tolerance 0.001' in printed.err
    assert not output.exists()
    worst.append(5e-4)
    assert tool.main(argv) == 0
    assert 'verification passed (tolerance 0.001)' in capsys.readouterr().out
    opsets = {o.domain: o.version for o in onnx.load(str(output)).opset_import}
    assert opsets[''] == 18


def test_verification_batches_differ_from_the_exports():
    """--verify runs two batch sizes, neither the one the graph was traced
    with: a graph with that batch size baked in fails it."""
    tool = load_tool(TOOL)  # puts tools/deployment on sys.path
    from onnx_verify import VERIFY_BATCHES
    assert len(set(VERIFY_BATCHES)) == 2
    assert tool.EXPORT_BATCH not in VERIFY_BATCHES


LOAD = dict(type='ReIDLoadImageFromFile')
RESIZE = dict(type='ReIDResize', size=SHAPE)
PACK = dict(type='PackReIDInputs')
CENTER_CROP = dict(type='mmcv.CenterCrop', crop_size=(16, 32))


@pytest.mark.parametrize(
    'pipeline, refused',
    [([LOAD, RESIZE, PACK], None), ([LOAD, PACK], None),
     ([LOAD, CENTER_CROP, RESIZE, PACK],
      r'\.1 is .*a transform the graph does not compute'),
     ([LOAD, RESIZE], r'\.1 is .*the last transform, not PackReIDInputs')],
    ids=['resize', 'no-resize', 'crop-before-resize', 'no-pack'])
def test_check_data_path_reads_every_transform(make_config, pipeline,
                                               refused):
    """The graph reproduces a loader, at most one resize and the packing,
    wherever another transform stands, the first after the loader
    included, and only a pipeline that ends with PackReIDInputs."""
    from mmengine.registry import init_default_scope
    tool = load_tool(TOOL)
    register_all_modules()
    init_default_scope('mmreid')
    model = MODELS.build(Config.fromfile(make_config()).model)
    cfg = Config(
        dict(test_dataloader=dict(dataset=dict(pipeline=pipeline))))
    if refused is None:
        tool.check_data_path(model, cfg)
        return
    with pytest.raises(
            ValueError,
            match=r'^the test pipeline test_dataloader\.dataset\.pipeline' +
            refused):
        tool.check_data_path(model, cfg)


@pytest.mark.parametrize(
    'mean, std, refused',
    [([123.675, 116.28, 103.53], [58.395, 57.12, 57.375], False),
     ([0., 0., 0.], [1., 1., 1.], False),
     ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225], True)],
    ids=['0-255', 'identity', '0-1'])
def test_check_data_path_reads_the_scale_of_mean_and_std(
        make_config, mean, std, refused):
    """The graph takes 0-255 pixels, as tools/test.py's loader gives them:
    mean/std on the 0-1 scale, which ReIDDataPreprocessor refuses for such
    pixels, are refused with the 0-255 values; 0-255 statistics and no
    normalisation (mean 0, std 1) are exported."""
    from mmengine.registry import init_default_scope
    tool = load_tool(TOOL)
    register_all_modules()
    init_default_scope('mmreid')
    model_cfg = Config.fromfile(make_config()).model
    model_cfg.data_preprocessor = dict(
        type='ReIDDataPreprocessor', mean=mean, std=std)
    model = MODELS.build(model_cfg)
    cfg = Config(
        dict(
            test_dataloader=dict(dataset=dict(pipeline=[LOAD, RESIZE, PACK]))))
    if not refused:
        tool.check_data_path(model, cfg)
        return
    with pytest.raises(ValueError) as info:
        tool.check_data_path(model, cfg)
    message = str(info.value)
    assert message.startswith('the graph takes 0-255 images (mmreid.input)')
    assert 'set mean=[123.675, 116.28, 103.53]' in message
    assert message.endswith('Nothing is written')


def test_check_data_path_reads_the_chosen_target(make_config):
    """A multi-target config: the pipeline of the target --target names is
    checked; targets whose pipelines differ need one."""
    from mmengine.registry import init_default_scope
    tool = load_tool(TOOL)
    register_all_modules()
    init_default_scope('mmreid')
    model = MODELS.build(Config.fromfile(make_config()).model)
    targets = [
        dict(name=name, dataloader=dict(dataset=dict(pipeline=pipeline)))
        for name, pipeline in (('a', [LOAD, RESIZE, PACK]),
                               ('b', [LOAD, CENTER_CROP, RESIZE, PACK]))
    ]
    cfg = Config(dict(test_dataloader=dict(), test_cfg=dict(targets=targets)))
    tool.check_data_path(model, cfg, 'a')
    with pytest.raises(
            ValueError,
            match=r'^the test pipeline test_cfg\.targets\.1\.dataloader\.'
            r'dataset\.pipeline\.1 is '):
        tool.check_data_path(model, cfg, 'b')
    with pytest.raises(ValueError, match=r"--target NAME \(one of \['a'"):
        tool.check_data_path(model, cfg)


def test_input_shape_of_a_square_resize_and_refused_shapes():
    """ReIDResize(size=S) resizes to S x S; --shape takes two positive
    sizes."""
    tool = load_tool(TOOL)
    cfg = Config(
        dict(
            test_dataloader=dict(
                dataset=dict(pipeline=[LOAD,
                                       dict(type='ReIDResize', size=48)]))))
    assert tool.input_shape(cfg) == (48, 48)
    for shape in ([0, 32], [64, -1]):
        with pytest.raises(ValueError, match='--shape must be two positive'):
            tool.input_shape(cfg, shape)


def test_the_model_holds_the_checkpoints_weights(tiny):
    """build_model loads every tensor of the checkpoint (the fixture's
    randomised BN statistics included), not the model's initial ones, and
    gives the model in eval mode (BN running statistics)."""
    tool = load_tool(TOOL)
    config, checkpoint = tiny
    model = tool.build_model(Config.fromfile(config), checkpoint)
    assert not any(m.training for m in model.modules())
    state = model.model.state_dict()
    saved = torch.load(checkpoint, weights_only=True)['state_dict']
    assert set(saved) <= set(state)
    for key, value in saved.items():
        assert torch.equal(state[key], value), key


TWO_TARGETS = '''
def target(name, domain, **resize):
    return dict(
        name=name,
        dataloader=dict(dataset=dict(synth, domain=domain, split='test',
                                     pipeline=[
            dict(type='ReIDLoadImageFromFile'),
            dict(type='ReIDResize', size=(32, 16), **resize),
            dict(type='PackReIDInputs')])),
        evaluator=dict(type='ReIDMetric', **resize.pop('metric', {})))
test_dataloader = dict()
test_cfg = dict(type='MultiTargetTestLoop',
                targets=[target('d1', 1),
                         target('d0', 0, interpolation='bicubic',
                                backend='pillow')])
test_cfg['targets'][1]['evaluator'] = dict(type='ReIDMetric',
                                           distance='cosine')
'''


def test_target_chooses_the_pipeline_and_the_ranking(make_config, tiny,
                                                     tmp_path):
    """Two targets that resize and rank otherwise: --target chooses the
    one whose resize the file records and verifies, and whose metric's
    ranking it records; without it the export is refused."""
    tool = load_tool(TOOL)
    _, checkpoint = tiny
    config = make_config(extra=TWO_TARGETS, name='two_targets.py')
    output = tmp_path / 'out' / 'd0.onnx'
    output.parent.mkdir()
    args = [
        config, checkpoint, '--output-file',
        str(output), '--exporter', 'legacy', '--opset', '17', '--verify'
    ]
    with pytest.raises(ValueError, match=r"--target NAME \(one of \['d1', "):
        tool.main(args)
    assert list(output.parent.iterdir()) == []
    assert tool.main(args + ['--target', 'd0']) == 0
    props = metadata(output)
    assert (props['mmreid.resize_interpolation'],
            props['mmreid.resize_backend']) == ('bicubic', 'pillow')
    assert (props['mmreid.ranking_distance'],
            props['mmreid.ranking_source']) == ('cosine',
                                                'test_cfg.targets.1.evaluator')


def test_verification_fails_on_features_that_are_not_finite(tiny, tmp_path):
    """A checkpoint of a diverged run (a NaN weight): the file and the model
    give NaN features, max abs diff is NaN, which is no agreement within
    --tolerance; --verify must fail and write no file."""
    tool = load_tool(TOOL)
    config, checkpoint = tiny
    saved = torch.load(checkpoint, weights_only=True)
    saved['state_dict']['head.bnneck.bias'][5] = float('nan')
    diverged = str(tmp_path / 'diverged.pth')
    torch.save(saved, diverged)
    output = tmp_path / 'out' / 'nan.onnx'
    output.parent.mkdir()
    try:
        status = tool.main([
            config, diverged, '--output-file',
            str(output), '--exporter', 'legacy', '--opset', '17', '--verify'
        ])
    except (ValueError, RuntimeError):  # a refusal of its own is fine too
        status = 1
    assert status == 1
    assert list(output.parent.iterdir()) == []


def test_verify_refuses_features_of_another_shape(tiny, tmp_path):
    """A file whose output is not the model's (N, D) features is refused
    by shape, naming both, not compared by broadcasting."""
    tool = load_tool(TOOL)
    config, checkpoint = tiny
    model = tool.build_model(Config.fromfile(config), checkpoint)
    output = str(tmp_path / 'mean.onnx')
    tool.export(MeanColour(), output, (32, 16), exporter='legacy')
    with pytest.raises(
            RuntimeError,
            match=r'onnxruntime gave features of shape \(1, 3\) for batch 1, '
            r'PyTorch \(1, 64\)'):
        tool.verify(model, output, (32, 16))


NO_PIPELINE = (
    "model['backbone']['norm_cfg'] = dict(type='MBN')\n"
    'test_pipeline = None\n'
    "test_dataloader = dict(test_dataloader, dataset=dict("
    "test_dataloader['dataset'], pipeline=None))\n"
    'val_dataloader = test_dataloader\n')


def test_a_config_without_a_test_pipeline_is_verified(make_config, tmp_path):
    """A model-only config (no test pipeline) exports at --shape; --verify
    compares the file with the data preprocessor and the test forward of
    the model on the same images, for the modality the graph computes."""
    register_all_modules()
    tool = load_tool(TOOL)
    config = make_config(extra=NO_PIPELINE, name='no_pipeline.py')
    model, checkpoint = random_checkpoint(config, tmp_path / 'mbn.pth')
    output = tmp_path / 'model.onnx'
    assert tool.main([
        config, checkpoint, '--modality', '1', '--shape', '32', '16',
        '--output-file',
        str(output), '--opset', '17', '--verify'
    ]) == 0
    props = metadata(output)
    assert props['mmreid.input'].startswith('input float32 (N, 3, 32, 16)')
    assert 'mmreid.resize_interpolation' not in props


def test_a_batch_norm_without_running_statistics_is_refused(
        make_config, tmp_path):
    """BatchNorm(track_running_stats=False) uses the batch's statistics in
    eval mode too: each image's feature depends on the other images of its
    batch, as with MBN(eval_stats='batch'), which is refused."""
    register_all_modules()
    tool = load_tool(TOOL)
    config = make_config(
        extra="model['backbone']['norm_cfg'] = dict(type='BN', "
        'track_running_stats=False)',
        name='bn_batch.py')
    model = MODELS.build(Config.fromfile(config).model).eval()
    images = torch.randn(4, 3, 32, 16)
    with torch.no_grad():  # what the refusal is for
        whole = model(images, mode='tensor')
        half = model(images[:2], mode='tensor')
    assert not torch.allclose(whole[:2], half, atol=1e-4)
    checkpoint = str(tmp_path / 'bn_batch.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    with pytest.raises(ValueError, match='batch'):
        tool.build_model(Config.fromfile(config), checkpoint)


@pytest.mark.parametrize('value', ['nan', 'inf', '-0.5'])
def test_a_tolerance_that_is_no_bound_is_refused(value, capsys):
    """--tolerance nan passed every file; a negative one failed every one."""
    tool = load_tool(TOOL)
    with pytest.raises(SystemExit):
        tool.parse_args(['c.py', 'c.pth', '--tolerance', value])
    assert '--tolerance must be a finite number >= 0' in capsys.readouterr(
    ).err


@pytest.mark.parametrize('diffs', [(0.0, float('nan')), (float('nan'), 0.0)])
def test_a_nan_difference_disagrees_wherever_it_stands(diffs):
    tool = load_tool(TOOL)
    reports = [dict(batch=b, max_abs_diff=d) for b, d in zip((1, 3), diffs)]
    assert 'features that are not finite' in tool.disagreement(reports, 1e-3)
    assert tool.disagreement(
        [dict(batch=1, max_abs_diff=1e-3)], 1e-3) is None
