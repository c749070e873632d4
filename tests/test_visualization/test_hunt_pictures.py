"""Wrong-number hunt (VZ): pictures users read numbers or labels from.

Each picture is checked against what it claims, with a reference computed
here from the definition: ``browse_dataset.py`` shows the image the model
is fed, the ranked lists show the metric's ranking with its match marks,
the HTML report shows the thumbnails and values of its own analysis.
"""
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from mmreid.utils import register_all_modules
from ..fixtures.processes import load_tool

TOOL = osp.join('tools', 'analysis_tools', 'browse_dataset.py')
IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]
#: An RGB colour with distinct channels: a swap of red and blue shows.
PERSON_RGB = (220, 120, 20)


def _market_tree(root):
    """A two-image Market-1501 training split of one solid colour.

    Returns:
        list[str]: The image files, in the dataset's order.
    """
    folders = {
        'bounding_box_train':
        ['0002_c1s1_000451_03.jpg', '0002_c2s1_000551_01.jpg'],
        'query': ['0002_c1s1_000001_00.jpg'],
        'bounding_box_test': ['0002_c2s1_000003_01.jpg'],
    }
    bgr = np.empty((16, 8, 3), np.uint8)
    bgr[...] = PERSON_RGB[::-1]
    for folder, names in folders.items():
        (root / folder).mkdir(parents=True)
        for name in names:
            cv2.imwrite(str(root / folder / name), bgr)
    return [
        str(root / 'bounding_box_train' / name)
        for name in folders['bounding_box_train']
    ]


def _file_rgb(path):
    """The file's pixels as RGB, decoded by PIL (not mmreid's loader)."""
    with Image.open(path) as image:
        return np.asarray(image.convert('RGB')).astype(int)


def _browse_single(tmp_path, pipeline, preprocessor):
    register_all_modules()
    init_default_scope('mmreid')
    files = _market_tree(tmp_path / 'market')
    dataset = dict(
        type='Market1501',
        data_root=str(tmp_path / 'market'),
        split='train',
        pipeline=pipeline)
    cfg = Config(
        dict(
            train_dataloader=dict(dataset=dataset),
            model=dict(data_preprocessor=preprocessor)))
    tool = load_tool(TOOL)
    written = tool.browse(
        cfg, 'train', 2, str(tmp_path / 'out'), mode='single')
    return cfg, files, written


def _accepted(cfg, preprocessor):
    """mmreid's own pipeline check (tools/train.py and tools/test.py run
    it) accepts the config: the model is fed these pixels."""
    from mmreid.registry import MODELS
    from mmreid.utils.pipeline_check import check_pipelines
    check_pipelines(cfg, MODELS.build(preprocessor), splits=('train', ))


def test_browse_shows_a_bgr_loaded_image_in_the_colours_the_model_gets(
        tmp_path):
    """A BGR pipeline with a converting preprocessor is drawn in true colour.

    The user loads with mmcv's ``LoadImageFromFile`` (BGR, the loader the
    ``ReIDLoadImageFromFile`` docstring names for configs ported from
    mmpretrain) and lets mmengine's ``ImgDataPreprocessor(bgr_to_rgb=True)``
    turn the batch to RGB, a combination mmreid's pipeline check accepts
    (``pipeline_problems``: a converting preprocessor takes BGR). The
    model is fed the person's true colours. ``browse_dataset.py`` writes
    the packed tensor as if it were RGB (``to_image`` never looks at
    ``bgr_to_rgb``), so an orange coat comes out blue: the picture is not
    "the images of a dataset as the model sees them" (the tool's
    docstring). Right: the written pixels are the file's RGB pixels.
    """
    pipeline = [
        dict(type='mmcv.LoadImageFromFile'),
        dict(type='PackReIDInputs')
    ]
    preprocessor = dict(
        type='ImgDataPreprocessor',
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        bgr_to_rgb=True)
    cfg, files, written = _browse_single(tmp_path, pipeline, preprocessor)
    _accepted(cfg, preprocessor)
    assert len(written) == 2
    for path, source in zip(written, files):
        shown = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        expected = _file_rgb(source)
        assert shown.shape == expected.shape
        diff = np.abs(shown.astype(int) - expected).max()
        assert diff <= 3, (
            f'{osp.basename(path)} shows RGB {shown[8, 4].tolist()} where '
            f'the model is fed {expected[8, 4].tolist()}')


def test_browse_undoes_the_pipelines_own_normalisation(tmp_path):
    """A pipeline that normalises is drawn de-normalised with its mean/std.

    The user normalises in the pipeline (mmcv's ``Normalize``, RGB
    ImageNet statistics, ``to_rgb=False``) and gives the model an identity
    ``ReIDDataPreprocessor(mean=0, std=1)`` ("mean 0, std 1 is no
    normalisation"), which the pipeline check accepts (the images are
    normalised once). ``browse_dataset.py`` de-normalises a float image
    only with ``model.data_preprocessor``'s mean and std, here 0 and 1,
    and clips the rest: a pixel of 220 normalised to 1.65 is drawn as 2.
    Right: ``x * std + mean`` with the statistics that normalised it gives
    back the file's pixels.
    """
    pipeline = [
        dict(type='ReIDLoadImageFromFile'),
        dict(
            type='mmcv.Normalize',
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            to_rgb=False),
        dict(type='PackReIDInputs')
    ]
    preprocessor = dict(
        type='ReIDDataPreprocessor', mean=[0, 0, 0], std=[1, 1, 1])
    cfg, files, written = _browse_single(tmp_path, pipeline, preprocessor)
    _accepted(cfg, preprocessor)
    assert len(written) == 2
    for path, source in zip(written, files):
        shown = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        expected = _file_rgb(source)
        diff = np.abs(shown.astype(int) - expected).max()
        assert diff <= 3, (
            f'{osp.basename(path)} shows RGB {shown[8, 4].tolist()} where '
            f'the file (de-normalised input) is {expected[8, 4].tolist()}')


def test_browse_shows_the_default_pipelines_image_in_its_file_colours(
        tmp_path):
    """The shipped loading (``ReIDLoadImageFromFile``, RGB, uint8) with
    ``ReIDDataPreprocessor``: the picture is the file's pixels, as PIL
    decodes them. (The tool's own tests compare the picture with the
    packed tensor, which a loader that stopped converting to RGB would
    change alike.)"""
    pipeline = [
        dict(type='ReIDLoadImageFromFile'),
        dict(type='PackReIDInputs')
    ]
    preprocessor = dict(type='ReIDDataPreprocessor')
    cfg, files, written = _browse_single(tmp_path, pipeline, preprocessor)
    _accepted(cfg, preprocessor)
    assert len(written) == 2
    for path, source in zip(written, files):
        shown = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        np.testing.assert_allclose(shown, _file_rgb(source), atol=3)


def _ranked_samples(root, features, pids, camids, num_query):
    """Packed test samples with a picture each (one grey level per
    sample), queries first."""
    import mmcv
    import torch

    from mmreid.structures import ReIDDataSample
    samples = []
    for i, (feature, pid, camid) in enumerate(zip(features, pids, camids)):
        path = osp.join(root, f'img_{i}.png')
        mmcv.imwrite(np.full((32, 16, 3), 5 * i, np.uint8), path)
        sample = ReIDDataSample(
            metainfo=dict(
                role='query' if i < num_query else 'gallery',
                camid=camid,
                img_path=path,
                dataset='toy',
                sample_idx=i))
        sample.set_gt_label(pid)
        sample.pred_feature = torch.from_numpy(feature)
        samples.append(sample)
    return samples


@pytest.mark.parametrize('distance', ['euclidean', 'cosine'])
def test_ranked_lists_of_the_metrics_analysis_match_a_reference(
        tmp_path, monkeypatch, distance):
    """A test with ``RankedListHook`` and a ``ReIDMetric`` (the metric's
    own analysis is drawn): each picture's tiles are the query's gallery
    in ascending distance after the Market junk rule (same pid and camid
    removed, evaluation spec 2.2), each with its distance (the metric's:
    Euclidean, or 1 - cos), pid and camid, framed green exactly when its
    pid is the query's; the file name's AP is the cumsum AP of spec 3."""
    from types import SimpleNamespace

    import torch

    from mmreid.engine.hooks import RankedListHook, ranked_list_hook
    from mmreid.evaluation.metrics import ReIDMetric
    rng = np.random.default_rng(3)
    q_pids, g_pids = [0, 1, 2], [0, 0, 1, 1, 2, 2, 3, 3, 4]
    q_cams, g_cams = [0, 0, 0], [0, 1, 1, 0, 1, 1, 0, 1, 0]
    centres = rng.normal(size=(5, 6))
    q_feat = centres[q_pids] + 0.8 * rng.normal(size=(3, 6))
    g_feat = centres[g_pids] + 0.8 * rng.normal(size=(9, 6))
    feats = np.concatenate([q_feat, g_feat]).astype(np.float32)
    samples = _ranked_samples(
        str(tmp_path), feats, q_pids + g_pids, q_cams + g_cams, 3)
    metric = ReIDMetric(distance=distance)
    loop = SimpleNamespace(evaluator=SimpleNamespace(metrics=[metric]))
    runner = SimpleNamespace(
        log_dir=str(tmp_path / 'log'),
        work_dir=str(tmp_path),
        epoch=0,
        visualizer=SimpleNamespace(add_image=lambda *a, **k: None),
        model=torch.nn.Module(),
        test_loop=loop,
        val_loop=loop)
    drawn = []
    real = ranked_list_hook.draw_ranked_list

    def spy(*args, **kwargs):
        drawn.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(ranked_list_hook, 'draw_ranked_list', spy)
    hook = RankedListHook(num_queries=3, topk=5, tile_size=(32, 16))
    hook.before_test_epoch(runner)
    hook.before_test_iter(runner, 0)
    metric.process(None, [s.to_dict() for s in samples])
    metric.compute_metrics(metric.results)
    assert metric.last_analysis is not None
    hook.after_test_iter(runner, 0, None, samples)
    hook.after_test_epoch(runner)

    q64, g64 = q_feat.astype(np.float32), g_feat.astype(np.float32)
    if distance == 'cosine':
        q64 = q64 / np.linalg.norm(q64, axis=1, keepdims=True)
        g64 = g64 / np.linalg.norm(g64, axis=1, keepdims=True)
        dist = 1 - q64.astype(float) @ g64.astype(float).T
    else:
        dist = np.sqrt(((q64[:, None].astype(float) - g64[None])**2).sum(-1))
    expected_names = set()
    by_pid = {}
    for q in range(3):
        kept = [
            g for g in np.argsort(dist[q], kind='stable')
            if not (g_pids[g] == q_pids[q] and g_cams[g] == q_cams[q])
        ]
        hits = np.flatnonzero([g_pids[g] == q_pids[q] for g in kept]) + 1
        ap = np.mean(np.arange(1, len(hits) + 1) / hits)
        by_pid[q_pids[q]] = (kept[:5], ap)
        expected_names.add(f'_ap{ap:.3f}_pid{q_pids[q]}.jpg')
    assert len(drawn) == 6  # worst 3 and best 3
    colours = set()
    for kwargs in drawn:
        pid = int(kwargs['query_label'].split('\n')[0].split()[1])
        top, _ = by_pid[pid]
        assert kwargs['gallery_labels'] == [
            f'pid {g_pids[g]}\ncamid {g_cams[g]}' for g in top
        ]
        np.testing.assert_allclose(
            kwargs['distances'], dist[pid][top], rtol=1e-4, atol=1e-5)
        assert list(kwargs['matches']) == [g_pids[g] == pid for g in top]
        colours.update(kwargs['matches'])
    assert colours == {True, False}  # green and red tiles both drawn
    names = sorted(p.name for p in (tmp_path / 'log' /
                                    'ranked_lists').iterdir())
    assert {name[name.index('_ap'):] for name in names} == expected_names
