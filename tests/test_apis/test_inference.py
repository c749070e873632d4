"""init_model, get_model, extract_features and rank_gallery on a tiny
model."""
import os.path as osp
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mmreid.apis import (extract_features, get_model, init_model,
                         parse_market_name, rank_gallery)
from mmreid.apis.inference_inputs import ArgumentError
from mmreid.evaluation.functional import compute_distance
from mmreid.visualization.ranked_list import (MATCH_COLOR, MISMATCH_COLOR,
                                              QUERY_COLOR, tile_offsets)
from ..fixtures.processes import load_tool
from ..fixtures.tiny_models import tiny_model_config

TINY_CONFIG = tiny_model_config(
    num_classes=4, model_extra=",\n    distance='{distance}'")


@pytest.fixture
def config(tmp_path):

    def make(distance='euclidean'):
        path = tmp_path / f'tiny_{distance}.py'
        path.write_text(TINY_CONFIG.format(distance=distance))
        return str(path)

    return make


def trained_like(model, seed=0):
    """Random but non-trivial BN statistics, so eval mode matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                noise = torch.rand(tensor.shape, generator=gen)
                if name.endswith('running_var'):
                    tensor.copy_(0.5 + noise)
                elif name.endswith(('running_mean', 'bias')):
                    tensor.copy_(noise - 0.5)
                elif tensor.dim() == 1:
                    tensor.copy_(0.5 + noise)
    return model


def calibrated(model):
    """Seeded weights and BatchNorm statistics measured on random images,
    so that features are well spread (distances far from float noise)."""
    torch.manual_seed(0)
    model.init_weights()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average
    images = torch.from_numpy(np.stack(make_images(32, seed=5)))
    data = model.data_preprocessor(
        dict(inputs=images.permute(0, 3, 1, 2)), False)
    model.train()
    with torch.no_grad():
        model(data['inputs'], mode='tensor')
    return model.eval()


def write_image(path, rgb):
    # PNG: lossless, so the file and the array give the same pixels.
    assert cv2.imwrite(str(path), rgb[..., ::-1])
    return str(path)


def make_images(num, seed=0):
    rng = np.random.default_rng(seed)
    return [
        rng.integers(0, 256, (32, 16, 3), dtype=np.uint8) for _ in range(num)
    ]


def reference_features(model, images):
    """The tiny model run by hand: normalise, backbone, pool, BNNeck."""
    model.eval()
    mean = torch.tensor([120., 110., 100.]).view(1, 3, 1, 1)
    std = torch.tensor([60., 55., 50.]).view(1, 3, 1, 1)
    x = torch.stack([torch.from_numpy(i).permute(2, 0, 1) for i in images])
    x = (x.float() - mean) / std
    with torch.no_grad():
        feat = model.backbone(x)[-1].mean((2, 3))
        return model.head.bnneck(feat)


def test_init_model_and_checkpoint(config, tmp_path):
    source = trained_like(init_model(config()))
    assert not source.training
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=source.state_dict(), meta=dict(epoch=1)), ckpt)
    model = init_model(config(), str(ckpt))
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert model.cfg.model.head.num_classes == 4
    # Another number of identities: the classifier is skipped, not fatal.
    model = init_model(
        config(), str(ckpt), cfg_options={'model.head.num_classes': 7})
    assert model.head.classifier.weight.shape == (7, 64)
    assert torch.equal(model.head.bnneck.running_var,
                       source.head.bnneck.running_var)
    # A checkpoint that lacks model tensors is an error naming them.
    partial = {
        k: v
        for k, v in source.state_dict().items() if not k.startswith('head.')
    }
    torch.save(partial, tmp_path / 'partial.pth')
    with pytest.raises(RuntimeError, match='head.bnneck.weight'):
        init_model(config(), str(tmp_path / 'partial.pth'))
    init_model(config(), str(tmp_path / 'partial.pth'), strict=False)
    with pytest.raises(FileNotFoundError, match='nope.py'):
        init_model(str(tmp_path / 'nope.py'))


def test_extract_features_matches_reference(config, tmp_path):
    model = trained_like(init_model(config()))
    images = make_images(5)
    paths = [
        write_image(tmp_path / f'{i}.png', img) for i, img in enumerate(images)
    ]
    expected = reference_features(model, images)
    model.train()  # extract_features must switch to eval mode itself
    feats = extract_features(model, paths, batch_size=2)
    assert not model.training
    assert feats.shape == (5, 64) and feats.dtype == torch.float32
    assert feats.device.type == 'cpu'
    torch.testing.assert_close(feats, expected, rtol=1e-4, atol=1e-5)
    # Arrays, a folder, one path; batch size and repetition do not matter.
    torch.testing.assert_close(
        extract_features(model, images, batch_size=5), feats)
    torch.testing.assert_close(
        extract_features(model, str(tmp_path), batch_size=1),
        feats,
        rtol=1e-4,
        atol=1e-5)
    torch.testing.assert_close(
        extract_features(model, paths[3]), feats[3:4], rtol=1e-4, atol=1e-5)
    assert torch.equal(extract_features(model, paths, batch_size=2), feats)
    # Larger images go through the pipeline's resize.
    big = cv2.resize(images[0], (32, 64))
    assert extract_features(model, big).shape == (1, 64)


def test_extract_features_bad_input(config, tmp_path):
    model = init_model(config())
    with pytest.raises(ValueError, match=r'RGB uint8 array .*float'):
        extract_features(model, np.zeros((32, 16, 3)))
    with pytest.raises(ValueError, match=r'\(32, 16\)'):
        extract_features(model, np.zeros((32, 16), np.uint8))
    with pytest.raises(ValueError, match=r'image #0: .*\(32, 16, 4\)'):
        extract_features(model, np.zeros((32, 16, 4), np.uint8))
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        extract_features(model, str(tmp_path / 'missing.jpg'))
    with pytest.raises(ValueError, match='no images'):
        extract_features(model, str(tmp_path))
    with pytest.raises(ValueError, match='batch_size'):
        extract_features(model, make_images(1), batch_size=0)


def test_images_that_are_no_image_argument_are_named(config, tmp_path):
    """A PIL image gave "'JpegImageFile' object is not iterable", bytes
    "image #0 ... got int", a (32, 16, 3) tensor was split into its rows,
    an empty array stopped in OpenCV and a folder inside a list with a
    bare '[Errno 21] Is a directory'. Each is refused naming the argument
    and what it takes."""
    from PIL import Image
    model = init_model(config())
    [image] = make_images(1)
    path = write_image(tmp_path / 'a.png', image)
    expected = r'expected a path, a folder, an RGB uint8 array \(H, W, 3\)'
    with pytest.raises(
            TypeError,
            match=rf'^images: {expected}.*got '
            r'Image \(a PIL image: pass np\.asarray'):
        extract_features(model, Image.fromarray(image))
    with pytest.raises(
            TypeError,
            match=rf'^images: {expected}.*got bytes \(a path '
            r'as bytes: pass os\.fsdecode\(path\)\)'):
        extract_features(model, path.encode())
    with pytest.raises(
            TypeError,
            match=rf'^images: {expected}.*got Tensor '
            r'\(a tensor: pass an RGB uint8 array'):
        extract_features(model, torch.from_numpy(image))
    with pytest.raises(
            TypeError,
            match=r'^images\[1\]: expected a path or '
            r'an RGB uint8 array \(H, W, 3\), got Image \(a PIL'):
        extract_features(model, [path, Image.fromarray(image)])
    with pytest.raises(
            ValueError,
            match=r'^image #0: expected an RGB uint8 array of shape '
            r'\(H, W, 3\), H and W >= 1, got uint8 \(0, 0, 3\)'):
        extract_features(model, np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(ValueError, match=r'^images\[1\] is a folder \('):
        extract_features(model, [path, str(tmp_path)])
    with pytest.raises(ValueError, match=r'^query\[0\] is a folder \('):
        rank_gallery(model, [str(tmp_path)], [path])
    with pytest.raises(
            TypeError,
            match=r'^gallery\[0\]: expected an image '
            r'path .*got ndarray'):
        rank_gallery(model, path, [image])
    # A mistyped folder was reported as a missing image file.
    gone = str(tmp_path / 'bounding_box_tst')
    with pytest.raises(
            FileNotFoundError,
            match=rf"^gallery: {re.escape(repr(gone))} is neither a folder "
            'nor a file'):
        rank_gallery(model, path, gone)
    # What they name is taken.
    torch.testing.assert_close(
        extract_features(model, [path, str(tmp_path / 'a.png'), image]),
        extract_features(model, [image] * 3))


def make_gallery(root):
    """Market-style names: 3 identities, each a base image plus noise."""
    rng = np.random.default_rng(1)
    bases = make_images(3, seed=2)
    gallery = root / 'gallery'
    gallery.mkdir()
    for pid, base in enumerate(bases, 1):
        for cam in (1, 2, 3):
            noise = rng.integers(-20, 21, base.shape)
            img = np.clip(base.astype(int) + noise, 0, 255).astype(np.uint8)
            write_image(gallery / f'{pid:04d}_c{cam}s1_000001_00.png', img)
    # A junk image (pid -1) identical to the query: the Market protocol
    # ignores it.
    write_image(gallery / '-1_c2s1_000001_00.png', bases[1])
    query = write_image(root / '0002_c1s1_000009_00.png', bases[1])
    return query, str(gallery)


@pytest.mark.parametrize('distance', ['euclidean', 'cosine'])
def test_rank_gallery_matches_naive_ranking(config, tmp_path, distance):
    model = calibrated(init_model(config(distance)))
    query, gallery = make_gallery(tmp_path)
    names = sorted(
        osp.basename(p)
        for p in __import__('glob').glob(osp.join(gallery, '*.png')))
    [result] = rank_gallery(model, query, gallery, topk=4)
    # Naive reference: features one by one, distance, stable argsort,
    # without junk and the query's own camera for its identity.
    q = extract_features(model, query, batch_size=1)
    g = torch.cat([
        extract_features(model, osp.join(gallery, n), batch_size=1)
        for n in names
    ])
    dist = compute_distance(q, g, distance=distance)[0]
    order = [
        int(i) for i in np.argsort(dist.numpy(), kind='stable')
        if not names[i].startswith(('0002_c1', '-1_'))
    ][:4]
    assert [osp.basename(p) for p in result.gallery] == \
        [names[i] for i in order]
    assert result.indices.tolist() == order
    torch.testing.assert_close(result.distances, dist[order])
    assert result.query == query
    # The two other views of identity 2 are the nearest: its images differ
    # from the query by small noise only.
    assert result.matches[:2] == [True, True]
    assert result.matches == [names[i].startswith('0002') for i in order]
    assert all('0002_c1' not in p for p in result.gallery)
    # Without the same-camera filter the same-camera view comes back; the
    # junk copy of the query (pid -1, nearest of all) stays out: it is no
    # retrieval, and the picture would show it as another identity.
    [full] = rank_gallery(
        model, query, gallery, topk=10, exclude_same_camera=False)
    assert len(full.gallery) == 9  # the whole gallery but the junk image
    assert not any(osp.basename(p).startswith('-1_') for p in full.gallery)
    assert any('0002_c1' in p for p in full.gallery[:3])
    assert full.matches[:3] == [True, True, True]
    # Junk is left out for an unlabelled (array) query too.
    [array] = rank_gallery(
        model, cv2.imread(query)[..., ::-1].copy(), gallery, topk=10)
    assert len(array.gallery) == 9 and array.matches is None
    assert not any(osp.basename(p).startswith('-1_') for p in array.gallery)


def test_rank_gallery_without_labels(config, tmp_path):
    model = init_model(config())
    gallery = tmp_path / 'g'
    gallery.mkdir()
    images = make_images(3)
    for i, img in enumerate(images):
        write_image(gallery / f'person{i}.png', img)
    results = rank_gallery(
        model, [images[2], images[0]], str(gallery), topk=10)
    assert len(results) == 2
    assert results[0].matches is None and results[0].query is None
    assert len(results[0].gallery) == 3  # topk larger than the gallery
    # The query itself is in the gallery: distance ~0, rank 1.
    assert results[0].gallery[0].endswith('person2.png')
    assert results[1].gallery[0].endswith('person0.png')
    assert results[0].distances[0] < 1e-3
    assert parse_market_name('/x/0003_c2s1_000001_00.jpg') == (3, 2)
    assert parse_market_name('-1_c4_f001.jpg') == (-1, 4)
    assert parse_market_name('person.jpg') == (None, None)


def test_get_model(config, tmp_path):
    model = get_model('bot_r18_synthreid')
    assert model.cfg.filename.endswith('bot_r18_synthreid.py')
    assert model.head.in_channels == 512 and not model.training
    with pytest.raises(ValueError, match='no released weights'):
        get_model('bot_r18_synthreid', pretrained=True)
    with pytest.raises(KeyError, match='did you mean'):
        get_model('bot_r18_synthreld')
    source = trained_like(init_model(config()))
    torch.save(source.state_dict(), tmp_path / 'w.pth')
    model = get_model(config(), pretrained=str(tmp_path / 'w.pth'))
    assert torch.equal(model.head.bnneck.running_mean,
                       source.head.bnneck.running_mean)


def test_demo_writes_ranked_lists(config, tmp_path, monkeypatch):
    model = calibrated(init_model(config()))
    ckpt = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    query, gallery = make_gallery(tmp_path)
    demo = load_tool('demo/rank_gallery.py')
    out_dir = tmp_path / 'vis'
    written = demo.main([
        config(),
        str(ckpt), query, gallery, '--topk', '3', '--out-dir',
        str(out_dir), '--tile-size', '64', '32'
    ])
    assert written == [str(out_dir / '0002_c1s1_000009_00_ranked.png')]
    canvas = cv2.imread(written[0])[..., ::-1]  # RGB
    [result] = rank_gallery(model, query, gallery, topk=3)
    offsets = tile_offsets(3, (64, 32))
    assert canvas.shape[1] == offsets[-1] + 32
    # Frames (PNG: exact colours): blue query, then green/red per match.
    assert tuple(canvas[1, offsets[0] + 1]) == QUERY_COLOR
    for x, match in zip(offsets[1:], result.matches):
        color = MATCH_COLOR if match else MISMATCH_COLOR
        assert tuple(canvas[1, x + 1]) == color
    assert result.matches[:2] == [True, True] and not result.matches[2]


def test_modality_reaches_the_model(config, monkeypatch):
    model = init_model(config())
    seen = []
    forward = model.forward

    def recording_forward(inputs, data_samples=None, mode='tensor', **kw):
        seen.extend(s.metainfo.get('modality') for s in data_samples)
        return forward(inputs, data_samples, mode=mode, **kw)

    monkeypatch.setattr(model, 'forward', recording_forward)
    images = make_images(3)
    extract_features(model, images, batch_size=2, modality=[0, 1, 1])
    assert seen == [0, 1, 1]
    seen.clear()
    extract_features(model, images, modality=1)
    assert seen == [1, 1, 1]
    seen.clear()
    extract_features(model, images)
    assert seen == [None, None, None]
    with pytest.raises(ValueError, match='2 labels for 3 images'):
        extract_features(model, images, modality=[0, 1])


@pytest.mark.parametrize('modality, labels', [
    (np.int64(1), [1, 1, 1]),
    (torch.tensor(1), [1, 1, 1]),
    (torch.tensor([0, 1, 1]), [0, 1, 1]),
    (np.array([1, 0, 1]), [1, 0, 1]),
    ((0, 1, 0), [0, 1, 0]),
])
def test_integer_modalities_are_taken(config, monkeypatch, modality, labels):
    """An int for all images (a NumPy integer or a 0-d tensor too) or one
    int per image; before, a 0-d tensor stopped with 'iteration over a
    0-d tensor'."""
    model = init_model(config())
    seen = []
    forward = model.forward

    def recording_forward(inputs, data_samples=None, mode='tensor', **kw):
        seen.extend(s.metainfo.get('modality') for s in data_samples)
        return forward(inputs, data_samples, mode=mode, **kw)

    monkeypatch.setattr(model, 'forward', recording_forward)
    extract_features(model, make_images(3), modality=modality)
    assert seen == labels
    assert all(type(label) is int for label in seen)


@pytest.mark.parametrize('modality, refusal', [
    (1.7, r'modality=1\.7: not an integer label'),
    ([1.7, 1, 1], r'modality=\[1\.7, 1, 1\]: modality\[0\]=1\.7 is not'),
    (True, r'modality=True: not an integer label'),
    ([0, True, 1], r'modality=\[0, True, 1\]: modality\[1\]=True is not'),
    ('1', r"modality='1': not an integer label"),
    (torch.tensor(True), r'modality=tensor\(True\): not an integer'),
])
def test_a_modality_that_is_no_integer_is_refused(config, modality, refusal):
    """int() took modality=[1.7, 1] as 1 and True as 1; a scalar 1.7 gave
    "'float' object is not iterable" and '1' "1 labels for 2 images".
    Refused now by the rule ReIDMetric applies to labels, naming the
    argument and the value."""
    model = init_model(config())
    with pytest.raises(ArgumentError, match='^' + refusal) as error:
        extract_features(model, make_images(3), modality=modality)
    assert 'a bool, a fraction or a string is refused' in str(error.value)


def test_rank_gallery_names_a_modality_that_is_no_integer(tmp_path):
    """rank_gallery's modalities are refused by their own names, before
    either set is extracted."""
    model = mbn_model(tmp_path, 'modality')
    [query, image
     ] = write_images(tmp_path,
                      ['0001_c1s1_000001_00.png', '0001_c2s1_000001_00.png'])
    with pytest.raises(
            ArgumentError, match=r'^gallery_modality=0\.5: not an integer'):
        rank_gallery(
            model, query, [image], query_modality=1, gallery_modality=0.5)
    with pytest.raises(
            ArgumentError, match=r'^query_modality=True: not an integer'):
        rank_gallery(
            model, query, [image], query_modality=True, gallery_modality=0)


FORCE_LOSS = '''
import torch.nn as nn

from mmreid.registry import MODELS


@MODELS.register_module(name='TripletLoss', force=True)
class MyTripletLoss(nn.Module):

    def forward(self, feats, labels):
        return feats.sum() * 0
'''


def test_init_model_runs_custom_imports_after_mmreid(config, tmp_path):
    """A module of ``custom_imports`` that replaces an mmreid class with
    ``force=True`` (docs/customize.md) works in a fresh process: before,
    its registration came first and mmreid's own import of the class then
    failed with "TripletLoss is already registered"."""
    import os
    import subprocess
    import sys
    (tmp_path / 'my_force_losses.py').write_text(FORCE_LOSS)
    path = tmp_path / 'force.py'
    path.write_text(
        TINY_CONFIG.format(distance='euclidean') +
        "custom_imports = dict(imports=['my_force_losses'])\n"
        "model['head']['loss_tri'] = dict(type='TripletLoss')\n")
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    env = dict(
        os.environ,
        OMP_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join(
            p for p in (repo, str(tmp_path), os.environ.get('PYTHONPATH'))
            if p))
    script = ('import sys\nfrom mmreid.apis import init_model\n'
              'loss = init_model(sys.argv[1]).head.loss_tri\n'
              'print(type(loss).__module__, type(loss).__name__)\n')
    proc = subprocess.run(
        [sys.executable, '-c', script, str(path)],
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == ['my_force_losses', 'MyTripletLoss']


def test_extract_features_runs_the_test_dataloader_pipeline(tmp_path):
    """tools/test.py resizes with test_dataloader.dataset.pipeline; a
    top-level test_pipeline (the variable the file substituted, stale after
    an override of the dataloader's resize) is not what it runs, so the API
    does not run it either."""
    path = tmp_path / 'stale.py'
    path.write_text(
        TINY_CONFIG.format(distance='euclidean') +
        "test_dataloader = dict(dataset=dict(type='SynthReID', pipeline=["
        "dict(type='ReIDLoadImageFromFile'), "
        "dict(type='ReIDResize', size=(64, 32)), "
        "dict(type='PackReIDInputs')]))\n")
    model = trained_like(init_model(str(path)))
    image = np.random.default_rng(3).integers(0, 256, (64, 32, 3), np.uint8)
    file = write_image(tmp_path / 'img.png', image)
    # At 64 x 32 the resize leaves the image as it is.
    torch.testing.assert_close(
        extract_features(model, file),
        reference_features(model, [image]),
        rtol=1e-4,
        atol=1e-5)


MULTI_TARGET = '''
def target(name, size):
    return dict(
        name=name,
        dataloader=dict(dataset=dict(type='SynthReID', pipeline=[
            dict(type='ReIDLoadImageFromFile'),
            dict(type='ReIDResize', size=size),
            dict(type='PackReIDInputs')])),
        evaluator=dict(type='ReIDMetric'))
test_dataloader = dict()
test_cfg = dict(type='MultiTargetTestLoop',
                targets=[target('small', (32, 16)), target('big', (64, 32))])
'''


def test_multi_target_pipelines_are_chosen_by_name(tmp_path):
    path = tmp_path / 'multi.py'
    path.write_text(TINY_CONFIG.format(distance='euclidean') + MULTI_TARGET)
    image = np.random.default_rng(4).integers(0, 256, (64, 32, 3), np.uint8)
    file = write_image(tmp_path / 'img.png', image)
    # Two different pipelines: which one tools/test.py runs depends on the
    # target, so the API refuses to guess.
    model = trained_like(init_model(str(path)))
    with pytest.raises(ValueError) as info:
        extract_features(model, file)
    message = str(info.value)
    assert 'test_cfg.targets.0.dataloader.dataset.pipeline' in message
    assert 'test_cfg.targets.1.dataloader.dataset.pipeline' in message
    assert "init_model(..., target=NAME) (one of ['small', 'big'])" \
        in message
    with pytest.raises(ValueError, match=r"target='huge'\): no such target"):
        init_model(str(path), target='huge')
    big = trained_like(init_model(str(path), target='big'))
    assert big.test_target == 'big'
    torch.testing.assert_close(
        extract_features(big, file),
        reference_features(big, [image]),
        rtol=1e-4,
        atol=1e-5)
    small = trained_like(init_model(str(path), target='small'))
    assert not torch.allclose(
        extract_features(small, file), extract_features(big, file))


def _loader_config(tmp_path, loader, preprocessor=None):
    """TINY_CONFIG with the test pipeline's loader (and the model's data
    preprocessor) replaced."""
    text = TINY_CONFIG.format(distance='euclidean').replace(
        "dict(type='ReIDLoadImageFromFile')", f'dict(type={loader!r})')
    if preprocessor is not None:
        text = text.replace("type='ReIDDataPreprocessor'", preprocessor)
    path = tmp_path / f'{loader}_{preprocessor is not None}.py'
    path.write_text(text)
    return str(path)


def test_a_pipeline_the_model_misreads_is_refused(tmp_path):
    """mmcv's LoadImageFromFile ('mmpretrain.LoadImageFromFile') decodes
    BGR; ReIDDataPreprocessor and the model take RGB. tools/test.py
    refuses such a test pipeline, but extract_features (so
    tools/extract_features.py and rank_gallery) computed every feature on
    swapped channels without a word: refused, naming the key and the fix.
    With a preprocessor that swaps BGR to RGB, the same loader gives the
    features of mmreid's RGB loader."""
    image = make_images(1, seed=6)[0]
    file = write_image(tmp_path / 'img.png', image)
    rgb = trained_like(
        init_model(_loader_config(tmp_path, 'ReIDLoadImageFromFile')))
    bgr = trained_like(
        init_model(_loader_config(tmp_path, 'mmpretrain.LoadImageFromFile')))
    with pytest.raises(ValueError) as info:
        extract_features(bgr, file)
    message = str(info.value)
    assert message.startswith('test_pipeline[0] loads the images with '
                              "type='mmpretrain.LoadImageFromFile'")
    assert "dict(type='ReIDLoadImageFromFile')" in message
    swapping = init_model(
        _loader_config(tmp_path, 'mmpretrain.LoadImageFromFile',
                       "type='ImgDataPreprocessor', bgr_to_rgb=True"))
    for part in ('backbone', 'neck', 'head'):
        weights = getattr(rgb, part).state_dict()
        getattr(swapping, part).load_state_dict(weights)
    torch.testing.assert_close(
        extract_features(swapping, file), extract_features(rgb, file))


def test_a_random_test_transform_is_refused(tmp_path):
    """A test pipeline with a random flip (a config reusing its training
    pipeline) drew from the global random state: the features of one
    image changed from call to call. Refused, naming the key and the
    fix."""
    text = TINY_CONFIG.format(distance='euclidean').replace(
        "dict(type='PackReIDInputs')",
        "dict(type='ReIDRandomFlip'), dict(type='PackReIDInputs')")
    path = tmp_path / 'flip.py'
    path.write_text(text)
    file = write_image(tmp_path / 'img.png', make_images(1, seed=6)[0])
    with pytest.raises(ValueError) as info:
        extract_features(trained_like(init_model(str(path))), file)
    message = str(info.value)
    assert message.startswith("test_pipeline[2] (type='ReIDRandomFlip' ")
    assert 'model.test_cfg.flip=True' in message


def test_arrays_need_mmreids_rgb_loader(tmp_path):
    """An array skips the loading step. mmcv's LoadImageFromFile (a config
    names it 'mmpretrain.LoadImageFromFile') decodes BGR, so an RGB array
    would not be the image its path gives (even for a data preprocessor
    that swaps BGR to RGB, which takes that loader's paths): refused,
    naming the loader. mmreid's loader (also under its deprecated name)
    gives RGB."""
    image = make_images(1, seed=6)[0]
    file = write_image(tmp_path / 'img.png', image)
    for loader in ('ReIDLoadImageFromFile', 'LoadImageFromFile'):
        model = trained_like(init_model(_loader_config(tmp_path, loader)))
        torch.testing.assert_close(
            extract_features(model, image), extract_features(model, file))
    model = trained_like(
        init_model(
            _loader_config(tmp_path, 'mmpretrain.LoadImageFromFile',
                           "type='ImgDataPreprocessor', bgr_to_rgb=True")))
    extract_features(model, file)
    with pytest.raises(ValueError) as info:
        extract_features(model, [file, image])
    message = str(info.value)
    assert message.startswith('image #1 is an array')
    assert "type='mmpretrain.LoadImageFromFile'" in message
    assert 'test_pipeline' in message and 'BGR' in message


def test_demo_draws_the_pid_and_the_camid_on_their_own_lines(monkeypatch):
    """``pid 7499 camid 5`` on one line did not fit a 64-pixel tile and
    lost the camid; as docs/visualization.md says, the rank and distance,
    the pid and the camid each get a line under the tile."""
    import mmreid.visualization.ranked_list as ranked_list
    from mmreid.visualization import draw_ranked_list
    demo = load_tool('demo/rank_gallery.py')
    drawn = []
    monkeypatch.setattr(ranked_list, '_put_text',
                        lambda canvas, text, *args: drawn.append(text))
    image = np.zeros((16, 8, 3), np.uint8)
    canvas = draw_ranked_list(
        image, [image],
        matches=[True],
        distances=[0.25],
        query_label=demo.label('/q/7499_c6s1_000151_01.jpg'),
        gallery_labels=[demo.label('/g/7499_c6s2_000300_02.jpg')])
    # Query: 'query', pid, camid; gallery: rank and distance, pid, camid.
    assert drawn == [
        'query', 'pid 7499', 'camid 5', '#1: 0.25', 'pid 7499', 'camid 5'
    ]
    # Three text lines of TEXT_LINE_HEIGHT under the 128-pixel tiles.
    assert canvas.shape[0] == 128 + 3 * ranked_list.TEXT_LINE_HEIGHT


def test_demo_labels_queries_and_picture_names(tmp_path):
    demo = load_tool('demo/rank_gallery.py')
    # The 0-based camid, as the datasets, the ranked-list hook and the
    # report label it: c1 is camid 0 (it was 'cam 1' here, 'cam 0' there).
    assert demo.label('/x/0002_c1s1_000009_00.png') == 'pid 2\ncamid 0'
    assert demo.label('/x/-1_c3s1_000009_00.png') == 'pid -1\ncamid 2'
    assert demo.label('/x/0002_c0s1_000009_00.png') == 'pid 2'
    assert demo.label('/x/person.png') is None
    # Query folders are listed as the datasets list them: macOS ._ files
    # and other files skipped.
    for folder in ('a', 'b'):
        (tmp_path / folder).mkdir()
        for name in ('0001_c1s1_000001_00.jpg', '._0001_c1s1_000001_00.jpg',
                     'notes.txt', f'{folder}.PNG'):
            (tmp_path / folder / name).write_bytes(b'')
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    expected = [osp.join(a, '0001_c1s1_000001_00.jpg'), osp.join(a, 'a.PNG')]
    assert demo.list_queries([a]) == expected
    # One file name in two folders: the second picture would overwrite the
    # first; refused, naming both, before anything is computed.
    out = str(tmp_path / 'vis')
    with pytest.raises(ValueError) as info:
        demo.output_paths(demo.list_queries([a, b]), out)
    message = str(info.value)
    assert '0001_c1s1_000001_00_ranked.png' in message
    assert osp.join(a, '0001_c1s1_000001_00.jpg') in message
    assert osp.join(b, '0001_c1s1_000001_00.jpg') in message
    distinct = [osp.join(a, 'a.PNG'), osp.join(b, 'b.PNG')]
    assert demo.output_paths(distinct, out) == [
        osp.join(out, 'a_ranked.png'),
        osp.join(out, 'b_ranked.png')
    ]
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='empty.* has no images'):
        demo.list_queries([str(tmp_path / 'empty')])


def test_rank_gallery_refuses_a_ranking_tools_test_does_not_use(
        config, tmp_path):
    # A default (Euclidean) model tested with a cosine metric: tools/test.py
    # reported the cosine R1 while rank_gallery ranked Euclidean (the
    # loops allow it; the audit's repro gave 45.58 vs 44.22).
    query, gallery = make_gallery(tmp_path)
    model = init_model(
        config(),
        cfg_options={
            'test_evaluator': dict(type='ReIDMetric', distance='cosine')
        })
    with pytest.raises(ValueError, match=r"model.distance='euclidean', but "
                       r"the config's test_evaluator \(distance='cosine'"):
        rank_gallery(model, query, gallery, topk=3)
    # mmengine's Evaluator form is read too; the refusal comes before any
    # feature is extracted.
    model = init_model(
        config(),
        cfg_options={
            'test_evaluator':
            dict(
                type='Evaluator',
                metrics=[dict(type='ReIDMetric', distance='cosine')])
        })
    model.extract_feat = None  # extraction would fail
    with pytest.raises(ValueError, match=r"test_evaluator.metrics.0 "
                       r"\(distance='cosine'"):
        rank_gallery(model, query, gallery, topk=3)
    # Euclidean on L2-normalised features ranks as cosine does.
    model = init_model(
        config('cosine'),
        cfg_options={
            'test_evaluator':
            dict(type='ReIDMetric', distance='euclidean', normalize=True)
        })
    assert len(rank_gallery(model, query, gallery, topk=3)[0].gallery) == 3


def test_errors_name_the_image_across_batches(config):
    """The refusal names the image's position in the whole input, also
    beyond the first batch."""
    model = init_model(config())
    images = make_images(3) + [np.zeros((32, 16, 3))]
    with pytest.raises(ValueError, match='image #3:'):
        extract_features(model, images, batch_size=2)


@pytest.mark.parametrize(
    'evaluator, key',
    [([dict(type='ReIDMetric', distance='cosine'),
       dict(type='ReIDMetric')], 'test_evaluator.0'),
     (dict(type='ReIDMetric', metric='cosine'), 'test_evaluator'),
     (dict(type='RegDBMetric'), 'test_evaluator')],
    ids=['primary_metric', 'metric_alias', 'metric_default'])
def test_the_metric_ranking_is_read_as_the_loops_read_it(
        config, tmp_path, evaluator, key):
    """The primary (first) metric of a list, ``metric=`` (the deprecated
    name of ``distance``) and a metric's own default distance (cosine for
    the cross-modality protocols) rank by cosine: refused on a Euclidean
    model before any extraction."""
    query, gallery = make_gallery(tmp_path)
    model = init_model(config(), cfg_options={'test_evaluator': evaluator})
    model.extract_feat = None  # extraction would fail
    with pytest.raises(
            ValueError, match=rf"config's {key} \(distance="
            r"'cosine'"):
        rank_gallery(model, query, gallery, topk=3)


def test_a_chosen_target_is_ranked_as_its_own_metric(tmp_path):
    """init_model(..., target=NAME): only that target's metric says how
    tools/test.py ranks its images."""
    path = tmp_path / 'multi.py'
    path.write_text(
        TINY_CONFIG.format(distance='euclidean') + MULTI_TARGET +
        "test_cfg['targets'][1]['evaluator'] = dict(type='ReIDMetric', "
        "distance='cosine')\n")
    query, gallery = make_gallery(tmp_path)
    small = init_model(str(path), target='small')
    assert len(rank_gallery(small, query, gallery, topk=2)[0].gallery) == 2
    big = init_model(str(path), target='big')
    with pytest.raises(ValueError, match=r'test_cfg.targets.1.evaluator'):
        rank_gallery(big, query, gallery, topk=2)


def test_rank_gallery_ties_and_partial_labels(config, tmp_path, monkeypatch):
    """Equal distances keep gallery order (the sort is stable beyond 16
    items too); a top-k with an unlabelled name has no matches; topk must
    be positive."""
    from mmreid.apis import inference
    model = init_model(config())
    # One feature for every image: all distances tie exactly.
    monkeypatch.setattr(
        inference, 'extract_features',
        lambda model, images, *args: torch.ones(len(images), 4))
    gallery = tmp_path / 'g'
    gallery.mkdir()
    names = [f'{i:04d}_c2s1_000001_00.png' for i in range(1, 21)]
    for name in names + ['person.png']:
        (gallery / name).write_bytes(b'')
    query = str(tmp_path / '0001_c1s1_000001_00.png')
    [labelled] = rank_gallery(
        model, query, [str(gallery / n) for n in names], topk=20)
    assert labelled.indices.tolist() == list(range(20))
    assert labelled.matches == [True] + [False] * 19
    [mixed] = rank_gallery(model, query, str(gallery), topk=21)
    assert [osp.basename(p) for p in mixed.gallery] == names + ['person.png']
    assert mixed.matches is None
    with pytest.raises(ValueError, match='topk must be >= 1'):
        rank_gallery(model, query, str(gallery), topk=0)


def test_init_model_leaves_the_config_object_alone(config, tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(config())
    model = init_model(cfg, cfg_options={'model.head.num_classes': 7})
    assert model.head.classifier.weight.shape[0] == 7
    assert cfg.model.head.num_classes == 4


def test_get_model_arguments(config, tmp_path):
    """A path to a missing .py is a missing config (not a zoo name), a
    pathlib checkpoint loads, another kind of ``pretrained`` is refused."""
    with pytest.raises(FileNotFoundError, match='nope.py'):
        get_model(str(tmp_path / 'nope.py'))
    source = trained_like(init_model(config()))
    torch.save(source.state_dict(), tmp_path / 'w.pth')
    model = get_model(config(), pretrained=tmp_path / 'w.pth')
    assert torch.equal(model.head.bnneck.running_mean,
                       source.head.bnneck.running_mean)
    with pytest.raises(TypeError, match='pretrained must be'):
        get_model(config(), pretrained=1)


def test_a_model_with_its_own_distance_ranks_by_it(config, tmp_path,
                                                   monkeypatch):
    """GMN ranks by its M-Net whatever feature distance the metric names
    (the loops hand the metric the model's scorer): nothing to refuse."""
    from mmreid.apis import inference
    model = init_model(
        config(),
        cfg_options={
            'model.type': 'GMNReID',
            'model.head.type': 'GMNHead',
            'model.head.mnet': dict(hidden_channels=8),
            'test_evaluator': dict(type='ReIDMetric', distance='cosine')
        })
    monkeypatch.setattr(
        inference, 'extract_features',
        lambda model, images, *args: torch.rand(len(images), 64))
    query, gallery = make_gallery(tmp_path)
    assert len(rank_gallery(model, query, gallery, topk=3)[0].gallery) == 3


def hand_made_gmn(config, topk):
    """A tiny GMN whose M-Net looks at feature dimension 1 only: ``z =
    -c (q_1 - g_1)^2`` (c = 1 / sqrt(1 + eps), the eval BatchNorm), so
    ``-z`` ranks otherwise than the Euclidean distance over dims 0, 1."""
    model = init_model(
        config(),
        cfg_options={
            'model.type': 'GMNReID',
            'model.head.type': 'GMNHead',
            'model.head.mnet': dict(hidden_channels=1),
            'model.test_cfg': dict(mnet_topk=topk, check_queries=0)
        })
    mnet = model.head.mnet
    with torch.no_grad():
        linear, bn = mnet.hidden[0], mnet.hidden[1]
        linear.weight.zero_()
        linear.weight[0, 1] = 1.0
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0)
        bn.weight.fill_(1.0)
        bn.bias.zero_()
        mnet.fc_out.weight.fill_(-1.0)
        mnet.fc_out.bias.zero_()
    return model.eval()


def topk_rerank_reference(model, query, gallery, k):
    """GMN's top-k rerank from its definition (gmn.md 8.4): the k nearest
    items by squared Euclidean distance (stable), ordered by the M-Net's
    ``-z``, then the rest in Euclidean order; returns gallery rows."""
    euclid = ((gallery - query)**2).sum(1)
    with torch.no_grad():
        z = model.head.mnet((gallery - query)**2)
    order = sorted(range(len(gallery)), key=lambda i: (float(euclid[i]), i))
    head = sorted(order[:k], key=lambda i: (-float(z[i]), order.index(i)))
    return head + order[k:]


def test_rank_gallery_scores_the_gallery_without_junk(config, tmp_path,
                                                      monkeypatch):
    """A gallery-dependent scorer (GMN's mnet_topk: the candidates are the
    gallery's k nearest) must not see the junk: tools/test.py scores the
    dataset's gallery, which has none. A junk copy of the query took a
    candidate slot, pushing a true match into the Euclidean tail."""
    from mmreid.apis import inference

    # (dim 0, dim 1) of each image; the query is at the origin.
    points = {
        '0002_c1s1_000009_00.png': (0.0, 0.0),  # the query
        '-1_c2s1_000001_00.png': (0.0, 0.0),  # junk, nearest of all
        '0001_c2s1_000001_00.png': (0.0, 1.0),  # A
        '0002_c1s1_000001_00.png': (0.5, 0.1),  # E: same pid and camera
        '0002_c2s1_000001_00.png': (1.2, 0.0),  # B: the true match
        '0003_c2s1_000001_00.png': (0.0, 2.0),  # C
        '0003_c3s1_000001_00.png': (2.0, 0.5),  # D
    }

    def feature(path):
        feat = torch.zeros(64)
        feat[:2] = torch.tensor(points[osp.basename(path)])
        return feat

    monkeypatch.setattr(
        inference, 'extract_features',
        lambda model, images, *args: torch.stack([feature(p) for p in images]))
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    for name in list(points)[1:]:
        (gallery / name).write_bytes(b'')
    query = str(tmp_path / '0002_c1s1_000009_00.png')
    names = sorted(list(points)[1:])
    model = hand_made_gmn(config, topk=3)
    [result] = rank_gallery(model, query, str(gallery), topk=10)
    # tools/test.py's gallery: without the junk; the same-camera item E
    # is a candidate, then left out by the Market rule.
    clean = [n for n in names if not n.startswith('-1_')]
    ranking = topk_rerank_reference(model, feature(query),
                                    torch.stack([feature(n) for n in clean]),
                                    3)
    expected = [clean[i] for i in ranking if clean[i] != names[2]]
    assert names[2] == '0002_c1s1_000001_00.png'
    assert [osp.basename(p) for p in result.gallery] == expected
    # By construction: B (M-Net nearest) before A; the junk does not
    # push B out of the candidates.
    assert expected == [
        '0002_c2s1_000001_00.png', '0001_c2s1_000001_00.png',
        '0003_c2s1_000001_00.png', '0003_c3s1_000001_00.png'
    ]
    # Indices into the gallery as given; distances are the positions of
    # the junk-free ranking (E, left out, held position 1).
    assert result.indices.tolist() == [names.index(n) for n in expected]
    assert result.distances.tolist() == [0.0, 2.0, 3.0, 4.0]
    assert result.matches == [True, False, False, False]
    # A gallery of junk only has nothing to rank.
    junk = tmp_path / 'junk'
    junk.mkdir()
    (junk / '-1_c2s1_000001_00.png').write_bytes(b'')
    with pytest.raises(ValueError, match=r'holds only junk images'):
        rank_gallery(model, query, str(junk), topk=3)


@pytest.mark.parametrize('option, value',
                         [('rerank', dict(k1=6, k2=3, lambda_value=0.3)),
                          ('query_expansion', dict(k=2, alpha=3))])
@pytest.mark.parametrize('gmn', [False, True], ids=['bot', 'gmn'])
def test_rank_gallery_refuses_a_reranking_metric(config, tmp_path, option,
                                                 value, gmn):
    """tools/test.py ranks by the re-ranked distances (or those of the
    expanded queries); rank_gallery returned the plain ranking without a
    word. Refused, naming the key and the fix."""
    query, gallery = make_gallery(tmp_path)
    options = {'test_evaluator': dict(type='ReIDMetric', **{option: value})}
    if gmn:
        options.update({
            'model.type': 'GMNReID',
            'model.head.type': 'GMNHead',
            'model.head.mnet': dict(hidden_channels=8)
        })
    model = init_model(config(), cfg_options=options)
    with pytest.raises(ValueError) as info:
        rank_gallery(model, query, gallery, topk=3)
    message = str(info.value)
    assert f"test_evaluator.{option}={value!r}" in message
    assert "cfg_options={'test_evaluator." + option + "': None}" in message
    assert '--show-ranked-lists' in message
    # As the message says: without the option the plain ranking is
    # tools/test.py's, and it is given.
    options['test_evaluator'] = dict(type='ReIDMetric', **{option: None})
    model = calibrated(init_model(config(), cfg_options=options))
    assert len(rank_gallery(model, query, gallery, topk=3)[0].gallery) == 3


def test_lists_mark_the_queries_tools_test_skips(config, tmp_path,
                                                 monkeypatch):
    """A query whose gallery holds no image of its pid (after the Market
    rule) is skipped by tools/test.py; its list said nothing of it, so
    the mean top-1 match over all lists was not tools/test.py's R1."""
    # One number per image: the distance is their absolute difference.
    values = {
        '0001_c1s1_000009_00.png': 0.0,  # only a same-camera view of 1
        '0002_c1s1_000009_00.png': 10.0,  # nearest is a view of 2
        '0003_c1s1_000009_00.png': 20.0,  # nearest is another pid
        '0001_c1s1_000001_00.png': 0.5,
        '0002_c2s1_000001_00.png': 10.5,
        '0004_c2s1_000001_00.png': 20.5,
        '0003_c3s1_000001_00.png': 23.0,
        '-1_c2s1_000001_00.png': 1.0,  # junk: no positive of pid 1
    }
    queries, gallery = scalar_gallery(tmp_path, monkeypatch, values)
    gallery = Path(gallery)
    model = init_model(config())
    lists = rank_gallery(model, queries, str(gallery), topk=2)
    assert [rl.has_positive for rl in lists] == [False, True, True]
    # R1 from its definition: the valid queries (2 and 3) whose nearest
    # kept item has their pid (2): 1 / 2, not 1 / 3.
    valid = [rl for rl in lists if rl.has_positive]
    assert [rl.matches[0] for rl in lists] == [False, True, False]
    assert sum(rl.matches[0] for rl in valid) / len(valid) == 0.5
    # tools/test.py's metric on the same distances agrees.
    from mmreid.evaluation.functional import evaluate_rank
    names = sorted(list(values)[3:])
    labels = [parse_market_name(n) for n in names]
    dist = torch.tensor(
        [[abs(values[osp.basename(q)] - values[n]) for n in names]
         for q in queries])
    result = evaluate_rank(dist, torch.tensor([1, 2, 3]),
                           torch.tensor([p for p, _ in labels]),
                           torch.tensor([0, 0, 0]),
                           torch.tensor([c - 1 for _, c in labels]))
    assert result.percentages([1])['R1'] == 50.0
    assert result.num_valid_query == 2
    # Without the Market rule the same-camera view of 1 is a positive.
    lists = rank_gallery(
        model, queries, str(gallery), topk=2, exclude_same_camera=False)
    assert [rl.has_positive for rl in lists] == [True, True, True]
    # Unknown when a name carries no pid (the query's or a gallery's).
    (gallery / 'person.png').write_bytes(b'')
    values['person.png'] = 50.0
    lists = rank_gallery(model, queries[1], str(gallery), topk=1)
    assert lists[0].has_positive is None and lists[0].matches == [True]
    values['person.png'] = 10.0
    lists = rank_gallery(model, str(tmp_path / 'person.png'),
                         [str(gallery / list(values)[4])])
    assert lists[0].has_positive is None and lists[0].matches is None


def metric_model(config, **metric):
    """The tiny (Euclidean) model, its config's test metric
    ReIDMetric(**metric)."""
    return init_model(
        config(),
        cfg_options={'test_evaluator': dict(type='ReIDMetric', **metric)})


def scalar_gallery(tmp_path, monkeypatch, values):
    """Empty image files whose feature is one number each (their distance
    is the difference); returns the query paths (the first three names)
    and the gallery folder (the others)."""
    from mmreid.apis import inference

    def features(model, images, *args):
        return torch.tensor([[values[osp.basename(p)], 0.0] for p in images])

    monkeypatch.setattr(inference, 'extract_features', features)
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    for name in list(values)[3:]:
        (gallery / name).write_bytes(b'')
    return [str(tmp_path / n) for n in list(values)[:3]], str(gallery)


def test_lists_follow_the_configs_junk_rule(config, tmp_path, monkeypatch):
    """test_evaluator.junk_rule='none': tools/test.py keeps the query's
    pid seen by its camera; rank_gallery left it out all the same, and
    its R1 (2.86) was not tools/test.py's (8.57). Now the lists follow the
    configured rule; a rule they cannot apply is refused, named."""
    values = {
        '0001_c1s1_000009_00.png': 0.0,  # nearest: a same-camera view of 1
        '0002_c1s1_000009_00.png': 10.0,  # nearest: a view of 2
        '0003_c1s1_000009_00.png': 20.0,  # nearest: another pid
        '0001_c1s1_000001_00.png': 0.5,
        '0002_c2s1_000001_00.png': 10.5,
        '0004_c2s1_000001_00.png': 20.5,
        '0003_c3s1_000001_00.png': 23.0,
    }
    queries, gallery = scalar_gallery(tmp_path, monkeypatch, values)

    def lists(junk_rule, **kwargs):
        model = metric_model(config, junk_rule=junk_rule)
        return rank_gallery(model, queries, gallery, topk=2, **kwargs)

    # junk_rule='none': every query has a positive and, by definition, R1
    # = the share whose nearest gallery item has its pid: 2 of 3.
    kept = lists('none')
    assert [rl.has_positive for rl in kept] == [True, True, True]
    assert [rl.matches[0] for rl in kept] == [True, True, False]
    assert kept[0].gallery[0].endswith('0001_c1s1_000001_00.png')
    # 'market' leaves the same-camera view of 1 out: query 1 is skipped.
    market = lists('market')
    assert [rl.has_positive for rl in market] == [False, True, True]
    assert not any('0001_c1' in p for p in market[0].gallery)
    # A value given is the caller's protocol, whatever the config's.
    assert [rl.has_positive for rl in lists('none', exclude_same_camera=True)
            ] == [False, True, True]
    # SYSU's rule leaves out a camera of every pid: not rank_gallery's.
    with pytest.raises(
            ValueError,
            match=r"test_evaluator\.junk_rule='sysu': tools/test\.py leaves "
            r'out gallery items by that rule.*--cfg-options '
            r'test_evaluator\.junk_rule=market'):
        lists('sysu')


def test_a_tie_policy_the_lists_cannot_follow_is_refused(
        config, tmp_path, monkeypatch):
    """tie_policy='pessimistic' puts the positives after the negatives
    at an equal distance; rank_gallery's stable sort keeps gallery order,
    so its top-1 was not tools/test.py's. Refused before extraction."""
    values = {
        '0001_c1s1_000009_00.png': 0.0,
        '0002_c1s1_000009_00.png': 10.0,
        '0003_c1s1_000009_00.png': 20.0,
        '0001_c2s1_000001_00.png': 1.0,  # tied with the next one
        '0004_c2s1_000001_00.png': 1.0,
    }
    queries, gallery = scalar_gallery(tmp_path, monkeypatch, values)
    model = metric_model(config, tie_policy='pessimistic')
    model.extract_feat = None  # extraction would fail
    with pytest.raises(
            ValueError,
            match=r"test_evaluator\.tie_policy='pessimistic'.*--cfg-options "
            r'test_evaluator\.tie_policy=stable'):
        rank_gallery(model, queries, gallery, topk=1)
    # ap_mode and cmc_mode count the numbers, not the lists: accepted.
    model = metric_model(config, ap_mode='threshold', cmc_mode='dedup')
    [first, _, _] = rank_gallery(model, queries, gallery, topk=1)
    assert first.matches == [True]


def test_the_recorded_ranking_has_the_metrics_rank_rules(config):
    """meta.json (and an ONNX file) recorded how tools/test.py ranks the
    features but not which gallery items each query ignores: an offline
    evaluation of a junk_rule='none' config took the Market rule."""
    from mmreid.apis.inference import evaluated_ranking
    meta = evaluated_ranking(metric_model(config))
    assert (meta['junk_rule'], meta['tie_policy'], meta['ap_mode'],
            meta['cmc_mode']) == ('market', 'stable', 'cumsum', 'standard')
    meta = evaluated_ranking(
        metric_model(config, junk_rule='none', cmc_mode='dedup'))
    assert (meta['junk_rule'], meta['cmc_mode']) == ('none', 'dedup')
    assert "junk_rule='none'" in meta['ranking_note']
    # A protocol metric's own defaults (SYSU: its junk rule, dedup CMC).
    meta = evaluated_ranking(
        init_model(
            config('cosine'),
            cfg_options={'test_evaluator': dict(type='SYSUMetric')}))
    assert (meta['junk_rule'], meta['cmc_mode']) == ('sysu', 'dedup')


def test_distance_and_its_alias_are_refused_as_the_metric_does(config):
    """A metric with metric='euclidean' (the deprecated alias of
    distance, as the tools' tiny config writes it) and distance='cosine'
    added: ReIDMetric (tools/test.py) refuses the pair, but the recorded
    ranking read distance first: extract_features.py wrote
    ranking_distance 'cosine' for a config tools/test.py does not run."""
    from mmreid.apis.inference import configured_rankings, evaluated_ranking
    from mmreid.evaluation.metrics import ReIDMetric
    model = metric_model(config, metric='euclidean', distance='cosine')
    with pytest.raises(ValueError, match='got both distance='):
        ReIDMetric(**{
            k: v
            for k, v in model.cfg.test_evaluator.items() if k != 'type'
        })
    both = (r"^test_evaluator got both distance='cosine' and its deprecated "
            r"alias metric='euclidean'; give distance only$")
    with pytest.raises(ValueError, match=both):
        configured_rankings(model.cfg)
    with pytest.raises(ValueError, match=both):
        evaluated_ranking(model)
    with pytest.raises(ValueError, match=both):
        rank_gallery(model, make_images(1)[0], [], topk=1)


def fp16_model(config, **options):
    return init_model(config(), cfg_options={'test_cfg.fp16': True, **options})


def test_fp16_at_test_time_is_refused_off_cuda(config, tmp_path, monkeypatch):
    """test_cfg.fp16=True: tools/test.py extracts under autocast (the CPU
    ran bfloat16), while the API ran fp32 without a word, so its features
    and lists were not those tools/test.py evaluates. Without CUDA, and
    for a model off CUDA, the API refuses, naming the key."""
    monkeypatch.setattr('torch.cuda.is_available', lambda: False)
    model = fp16_model(config)
    with pytest.raises(
            RuntimeError,
            match=r'^test_cfg\.fp16=True needs a CUDA device, and none is '
            r'available; .*--cfg-options test_cfg\.fp16=False'):
        extract_features(model, make_images(1))
    query, gallery = make_gallery(tmp_path)
    model.extract_feat = None  # refused before any extraction
    with pytest.raises(RuntimeError, match=r'^test_cfg\.fp16=True'):
        rank_gallery(model, query, gallery, topk=1)
    # CUDA on the machine, the model on the CPU: autocast would not reach
    # it (or run bfloat16).
    monkeypatch.setattr('torch.cuda.is_available', lambda: True)
    with pytest.raises(
            RuntimeError,
            match=r"test_cfg\.fp16=True: .*the model is on cpu.*"
            r"init_model\(\.\.\., device='cuda'\)"):
        extract_features(fp16_model(config), make_images(1))
    # fp32 at test time: as before.
    model = init_model(config(), cfg_options={'test_cfg.fp16': False})
    assert extract_features(model, make_images(1)).dtype == torch.float32


@pytest.mark.cuda
def test_fp16_features_are_the_test_loops(config):
    """On CUDA, test_cfg.fp16=True: the API's features are those of the
    test loop's step, which runs under mmengine's autocast(enabled=True)
    (here around the API's fp32 path), not the fp32 ones."""
    from mmengine.runner.amp import autocast
    model = calibrated(fp16_model(config)).cuda()
    images = make_images(8)
    feats = extract_features(model, images, batch_size=4)
    assert feats.dtype == torch.float32
    model.cfg.test_cfg.fp16 = False
    fp32 = extract_features(model, images, batch_size=4)
    with autocast(enabled=True):
        loop = extract_features(model, images, batch_size=4)
    torch.testing.assert_close(feats, loop, rtol=0, atol=0)
    assert not torch.equal(feats, fp32)
    # fp16 precision: close to the fp32 features, not equal.
    torch.testing.assert_close(feats, fp32, rtol=0, atol=5e-2)


def mbn_model(tmp_path, eval_stats):
    """The tiny model with MBN norms (modality-aware), random weights."""
    path = tmp_path / f'tiny_mbn_{eval_stats}.py'
    path.write_text(
        TINY_CONFIG.format(distance='euclidean').replace(
            'stem_channels=8)', 'stem_channels=8, norm_cfg=dict('
            f'type="MBN", eval_stats={eval_stats!r}))'))
    return init_model(str(path))


def test_extract_features_asks_a_modality_aware_model_for_modality(tmp_path):
    """Without ``modality=``, a modality-aware model is refused by the
    API's argument name; before, MBN raised a KeyError telling the caller
    to set it in the dataset records and PackReIDInputs."""
    model = mbn_model(tmp_path, 'modality')
    images = make_images(3)
    with pytest.raises(
            ArgumentError,
            match=r'\(MBN\): it needs modality, each 0 \(visible\) or 1 '
            r'\(infrared\).*\(e\.g\. modality=1: infrared images\)'):
        extract_features(model, images)
    assert extract_features(model, images, modality=1).shape[0] == 3


def test_batch_dependent_model_is_not_split_into_forwards(tmp_path):
    """MBN(eval_stats='batch') normalises each forward's images together:
    cutting more images than batch_size into forwards would let the cut
    decide the features, so it is refused; one forward is the definition
    (the images normalised together)."""
    model = mbn_model(tmp_path, 'batch')
    images = make_images(4)
    with pytest.raises(
            ValueError,
            match=r"eval_stats='batch'.*4 images in batches of 2 .*Leave "
            r'batch_size out or pass batch_size >= 4'):
        extract_features(model, images, batch_size=2, modality=1)
    whole = extract_features(model, images, batch_size=4, modality=1)
    halves = torch.cat([
        extract_features(model, images[:2], batch_size=2, modality=1),
        extract_features(model, images[2:], batch_size=2, modality=1)
    ])
    # The refused cut would have given other features.
    assert not torch.allclose(whole, halves, atol=1e-4)


def test_batch_norms_without_running_statistics_are_not_split(tmp_path):
    """A BatchNorm with track_running_stats=False normalises each
    forward's images together as well: a cut into forwards is refused, and
    by default all images are one forward (not batches of 64)."""
    path = tmp_path / 'tiny_untracked.py'
    path.write_text(
        TINY_CONFIG.format(distance='euclidean').replace(
            'stem_channels=8)', 'stem_channels=8, norm_cfg=dict('
            'type="BN", track_running_stats=False))'))
    model = init_model(str(path))
    images = make_images(4)
    with pytest.raises(
            ValueError,
            match=r"batch norm layer 'backbone\.bn1' keeps no running "
            r'statistics.*4 images in batches of 2 .*Leave batch_size out'):
        extract_features(model, images, batch_size=2)
    whole = extract_features(model, images)
    torch.testing.assert_close(
        whole, extract_features(model, images, batch_size=4))
    halves = torch.cat([
        extract_features(model, images[:2]),
        extract_features(model, images[2:])
    ])
    assert not torch.allclose(whole, halves, atol=1e-4)


def test_rank_gallery_asks_for_its_modality_arguments(tmp_path):
    """A modality-aware model without query_modality/gallery_modality is
    told those arguments, not to fix dataset records."""
    model = mbn_model(tmp_path, 'modality')
    paths = []
    for i, image in enumerate(make_images(3)):
        paths.append(str(tmp_path / f'000{i}_c1s1_000001_00.png'))
        cv2.imwrite(paths[-1], image[..., ::-1])
    with pytest.raises(
            ValueError,
            match=r'\(MBN\): it needs query_modality and '
            r'gallery_modality, each 0 \(visible\) or 1 \(infrared\)'):
        rank_gallery(model, paths[0], paths[1:])
    with pytest.raises(ValueError, match=r'it needs gallery_modality, each'):
        rank_gallery(model, paths[0], paths[1:], query_modality=1)
    [ranked] = rank_gallery(
        model, paths[0], paths[1:], query_modality=1, gallery_modality=0)
    assert sorted(ranked.gallery) == paths[1:]


def write_images(folder, names, seed=0):
    folder.mkdir(exist_ok=True)
    return [
        write_image(folder / name, image)
        for name, image in zip(names, make_images(len(names), seed))
    ]


def test_demo_errors_name_its_options(tmp_path):
    """The API's refusals name its arguments (query_modality=, batch_size);
    the demo has none of them, so it names its own options and ends with
    one line ``error: ...`` (exit status 1), not a traceback."""
    model = mbn_model(tmp_path, 'modality')
    ckpt = tmp_path / 'mbn.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    [query] = write_images(tmp_path, ['0001_c1s1_000001_00.png'])
    gallery = tmp_path / 'gallery'
    write_images(gallery, ['0001_c2s1_000001_00.png'], seed=1)
    demo = load_tool('demo/rank_gallery.py')
    argv = [
        str(tmp_path / 'tiny_mbn_modality.py'),
        str(ckpt), query,
        str(gallery), '--out-dir',
        str(tmp_path / 'vis')
    ]

    def refusal(*options):
        with pytest.raises(SystemExit) as error:
            demo.main(argv + list(options))
        message = error.value.code
        # A string code: Python prints it to stderr and exits with 1.
        assert isinstance(message, str) and '\n' not in message
        assert message.startswith('error: ')
        return message

    message = refusal()
    assert 'needs --query-modality and --gallery-modality, each 0 ' \
        '(visible) or 1 (infrared)' in message
    assert '(e.g. --query-modality=1, --gallery-modality=0:' in message
    assert 'query_modality' not in message
    modalities = ['--query-modality', '1', '--gallery-modality', '0']
    assert refusal(*modalities, '--batch-size', '0') == \
        'error: --batch-size must be >= 1, got 0'
    assert refusal(*modalities, '--topk', '0') == \
        'error: --topk must be >= 1, got 0'


@pytest.mark.parametrize('evaluator, fix', [
    ("dict(type='ReIDMetric', rerank=dict(k1=6, k2=3, lambda_value=0.3))",
     '--cfg-options test_evaluator.rerank=None'),
    ("dict(type='ReIDMetric', distance='cosine')",
     '--cfg-options model.distance=cosine'),
    ("dict(type='ReIDMetric', junk_rule='sysu')",
     '--cfg-options test_evaluator.junk_rule=market'),
    ("dict(type='ReIDMetric', tie_policy='optimistic')",
     '--cfg-options test_evaluator.tie_policy=stable'),
])
def test_demo_takes_the_cfg_options_its_refusals_name(config, tmp_path,
                                                      evaluator, fix):
    """A config whose metric re-ranks, or ranks by cosine distance a
    Euclidean model, is refused with the option that ranks as
    tools/test.py does; the demo had no --cfg-options, so its user could
    not give it. The option given, the demo draws."""
    path = tmp_path / 'refused.py'
    path.write_text(f"_base_ = ['{config()}']\n"
                    f'test_evaluator = {evaluator}\n')
    ckpt = tmp_path / 'bot.pth'
    torch.save(dict(state_dict=init_model(config()).state_dict()), ckpt)
    query, gallery = make_gallery(tmp_path)
    demo = load_tool('demo/rank_gallery.py')
    argv = [
        str(path),
        str(ckpt), query, gallery, '--out-dir',
        str(tmp_path / 'vis'), '--topk', '3'
    ]
    with pytest.raises(SystemExit) as error:
        demo.main(argv)
    assert fix in error.value.code
    [picture] = demo.main(argv + fix.split())
    assert osp.isfile(picture)


def test_the_demo_leaves_out_what_the_configs_metric_does(
        config, tmp_path, capsys):
    """demo/rank_gallery.py left out the query's pid seen by its camera
    for every config; under test_evaluator.junk_rule='none' tools/test.py
    keeps that view, so the demo drew other lists than it evaluates. Now
    the demo follows the rule (--keep-same-camera still keeps the view
    under 'market')."""
    ckpt = tmp_path / 'bot.pth'
    torch.save(
        dict(state_dict=calibrated(init_model(config())).state_dict()), ckpt)
    query, gallery = make_gallery(tmp_path)
    demo = load_tool('demo/rank_gallery.py')

    def top3(junk_rule, *options):
        path = tmp_path / f'{junk_rule}.py'
        path.write_text(f"_base_ = ['{config()}']\n"
                        'test_evaluator = dict(type="ReIDMetric", '
                        f'junk_rule={junk_rule!r})\n')
        capsys.readouterr()
        demo.main([
            str(path),
            str(ckpt), query, gallery, '--out-dir',
            str(tmp_path / 'vis'), '--topk', '3', *options
        ])
        return capsys.readouterr().out.splitlines()[-1]

    # The three views of the query's identity are its nearest images.
    assert ', 3 of 3 correct' in top3('none')
    assert ', 2 of 3 correct' in top3('market')
    assert ', 3 of 3 correct' in top3('market', '--keep-same-camera')


def recorded_forwards(model, monkeypatch):
    """The number of images of each forward of ``model``."""
    sizes = []
    forward = model.forward

    def recording_forward(inputs, data_samples=None, mode='tensor', **kw):
        sizes.append(len(inputs))
        return forward(inputs, data_samples, mode=mode, **kw)

    monkeypatch.setattr(model, 'forward', recording_forward)
    return sizes


def test_the_default_batch_size_fits_the_model(config, tmp_path, monkeypatch):
    """batch_size=None: forwards of 32 images for a model whose features do
    not depend on the batch (the numbers of the former default 32), one
    forward per set for a batch-dependent MBN model (its features are
    those of the set normalised together), so the demo's default works on
    a gallery of more than 32 images."""
    queries = write_images(tmp_path / 'query',
                           [f'{pid:04d}_c1s1_000001_00.png' for pid in (1, 2)])
    gallery = tmp_path / 'gallery'
    gallery_paths = write_images(
        gallery, [f'{i % 5 + 1:04d}_c2s1_{i:06d}_00.png' for i in range(40)],
        seed=1)
    plain = init_model(config())
    sizes = recorded_forwards(plain, monkeypatch)
    lists = rank_gallery(plain, queries, str(gallery), topk=3)
    assert sizes == [2, 32, 8]
    assert [r.gallery for r in lists] == \
        [r.gallery for r in rank_gallery(plain, queries, str(gallery),
                                         topk=3, batch_size=1)]
    model = mbn_model(tmp_path, 'batch')
    sizes = recorded_forwards(model, monkeypatch)
    [first, _] = rank_gallery(
        model,
        queries,
        str(gallery),
        topk=40,
        query_modality=1,
        gallery_modality=0)
    assert sizes == [2, 40]
    # The features of each set normalised together, by definition.
    q = extract_features(model, queries, batch_size=2, modality=1)
    g = extract_features(model, gallery_paths, batch_size=40, modality=0)
    dist = compute_distance(q, g)[0]
    torch.testing.assert_close(first.distances, dist.sort().values)
    # One query cannot be normalised with its own statistics: said of the
    # query images, not of a test batch_size the API has not got.
    with pytest.raises(
            ValueError,
            match=r'needs >= 2 images of it \(min_per_modality\); query '
            r'images given: 1\. Give >= 2'):
        rank_gallery(
            model,
            queries[0],
            str(gallery),
            query_modality=1,
            gallery_modality=0)
    # A given batch_size that would split a set is still refused.
    with pytest.raises(ValueError, match='40 images in batches of 32'):
        rank_gallery(
            model,
            queries,
            str(gallery),
            batch_size=32,
            query_modality=1,
            gallery_modality=0)
    # The demo's default is the API's.
    ckpt = tmp_path / 'mbn.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    written = load_tool('demo/rank_gallery.py').main([
        str(tmp_path / 'tiny_mbn_batch.py'),
        str(ckpt), *queries,
        str(gallery), '--topk', '2', '--query-modality', '1',
        '--gallery-modality', '0', '--out-dir',
        str(tmp_path / 'vis')
    ])
    assert len(written) == 2


def test_a_given_batch_size_is_the_images_per_forward(config, tmp_path,
                                                      monkeypatch):
    """batch_size is the images per forward (its docstring) for a model
    whose features do not depend on the batch: 7 images in forwards of
    3, 3 and 1."""
    images = write_images(
        tmp_path, [f'{pid:04d}_c1s1_000001_00.png' for pid in range(1, 8)])
    model = init_model(config())
    sizes = recorded_forwards(model, monkeypatch)
    assert extract_features(model, images, batch_size=3).shape[0] == 7
    assert sizes == [3, 3, 1]


def test_more_queries_than_gallery_images_for_a_batch_dependent_model(
        tmp_path, monkeypatch):
    """batch_size=None: each set in one forward (its docstring), however
    the two sets' sizes compare: 3 queries, then a gallery of 2."""
    queries = write_images(
        tmp_path / 'query',
        [f'{pid:04d}_c1s1_000001_00.png' for pid in (1, 2, 3)])
    gallery = write_images(
        tmp_path / 'gallery',
        [f'{pid:04d}_c2s1_000001_00.png' for pid in (1, 2)],
        seed=1)
    model = mbn_model(tmp_path, 'batch')
    sizes = recorded_forwards(model, monkeypatch)
    lists = rank_gallery(
        model, queries, gallery, topk=2, query_modality=1, gallery_modality=0)
    assert len(lists) == 3 and sizes == [3, 2]


def test_rank_gallery_refuses_a_modality_the_model_ignores(config, tmp_path):
    """A model without modality-aware modules computes the same features
    for either modality: a query_modality/gallery_modality given to it
    would be ignored silently, so it is refused, named."""
    model = init_model(config())
    [query, image
     ] = write_images(tmp_path,
                      ['0001_c1s1_000001_00.png', '0001_c2s1_000001_00.png'])
    with pytest.raises(
            ValueError,
            match=r'^query_modality=1 given, but the model has no '
            r'modality-aware modules .* so the value would be ignored\. '
            r'Leave query_modality out$'):
        rank_gallery(model, query, [image], query_modality=1)
    with pytest.raises(
            ValueError,
            match=r'^query_modality=0, gallery_modality=1 given, .*Leave '
            r'query_modality and gallery_modality out$'):
        rank_gallery(
            model, query, [image], query_modality=0, gallery_modality=1)
    [ranked] = rank_gallery(model, query, [image])
    assert ranked.gallery == [image]


def test_rank_gallery_ranks_by_the_primary_scorer_not_model_distance(
        config, tmp_path, monkeypatch):
    """The distance is the model's primary scorer (what the loops hand the
    metric), before ``model.distance``: a model whose scorer ranks
    otherwise than its feature distance got lists that were not the ones
    tools/test.py evaluates."""
    from mmreid.apis import inference
    model = init_model(config())
    points = {'0001_c2s1_000001_00.png': 1.0, '0002_c2s1_000001_00.png': 2.0,
              '0003_c2s1_000001_00.png': 3.0}
    monkeypatch.setattr(
        inference, 'extract_features', lambda model, images, *args: torch.
        tensor([[points.get(osp.basename(p), 0.0)] for p in images]))
    # Primary scorer: larger feature = closer; a second mode is not used.
    monkeypatch.setattr(
        model, 'scorers', lambda: {
            'primary': lambda q, g: -g.T.expand(len(q), -1),
            'other': lambda q, g: g.T.expand(len(q), -1)
        })
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    for name in points:
        (gallery / name).write_bytes(b'')
    query = str(tmp_path / '0009_c1s1_000001_00.png')
    [result] = rank_gallery(model, query, str(gallery), topk=3)
    assert [osp.basename(p) for p in result.gallery] == [
        '0003_c2s1_000001_00.png', '0002_c2s1_000001_00.png',
        '0001_c2s1_000001_00.png'
    ]
    assert result.distances.tolist() == [-3.0, -2.0, -1.0]


def test_targets_of_different_junk_rules_need_a_choice():
    """A multi-target test loop whose targets' metrics leave out different
    gallery items (junk_rule 'market' and 'none') has no one rule for
    rank_gallery to follow: without a chosen target it is refused, not
    ranked by the first target's rule (whose R1 is not the other's)."""
    from types import SimpleNamespace

    from mmengine.config import Config

    from mmreid.apis.rankings import same_camera_rule
    cfg = Config(
        dict(
            test_cfg=dict(targets=[
                dict(name='market', evaluator=dict(type='ReIDMetric')),
                dict(
                    name='kept',
                    evaluator=dict(type='ReIDMetric', junk_rule='none'))
            ])))

    def model(target=None):
        return SimpleNamespace(cfg=cfg, test_target=target)

    with pytest.raises(ValueError, match='leave out different gallery items'):
        same_camera_rule(model())
    assert same_camera_rule(model('market')) is True
    assert same_camera_rule(model('kept')) is False
    # The caller's choice needs no target.
    assert same_camera_rule(model(), exclude_same_camera=False) is False
