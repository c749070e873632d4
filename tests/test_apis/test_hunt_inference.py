"""Wrong-number hunt in the Python inference API and its ranking helpers
against ``tools/test.py``: each test states the right result from its
definition (``specs/evaluation.md``, the docs), computed here."""
import itertools
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from mmreid.apis import extract_features, init_model, rank_gallery
from ..fixtures.tiny_models import randomize_statistics, tiny_model_config


@pytest.fixture
def tiny_config(tmp_path):
    """The tiny BoT model's config file (Euclidean, no test metric)."""
    path = tmp_path / 'tiny.py'
    path.write_text(tiny_model_config(num_classes=4))
    return str(path)


def write_png(path, seed):
    """A random 32 x 16 RGB image as a (lossless) PNG; returns the path."""
    rgb = np.random.default_rng(seed).integers(0, 256, (32, 16, 3), np.uint8)
    assert cv2.imwrite(str(path), rgb[..., ::-1])
    return str(path)


def scalar_features(monkeypatch, values):
    """Make every image's feature the number ``values[file name]`` (so
    the Euclidean distance of two images is the difference of theirs)."""
    from mmreid.apis import inference

    def features(model, images, *args):
        return torch.tensor([[float(values[osp.basename(p)]), 0.0]
                             for p in images])

    monkeypatch.setattr(inference, 'extract_features', features)


def classic_r1(dist, g_pids):
    """CMC@1 of one query under the CUHK03 classic single-gallery-shot
    protocol (``specs/evaluation.md`` section 5), as its expectation
    over the draws: every choice of one gallery item per pid is equally
    likely, and the query is found at rank 1 when the drawn positive is
    the nearest drawn item. ``g_pids[i] == 1`` marks the positives.

    Args:
        dist (list[float]): Distances of the kept gallery items.
        g_pids (list[int]): Their pids.

    Returns:
        float: The expected CMC@1, in [0, 1].
    """
    buckets = {}
    for index, pid in enumerate(g_pids):
        buckets.setdefault(pid, []).append(index)
    pids = list(buckets)
    hits = total = 0
    for draw in itertools.product(*(buckets[p] for p in pids)):
        nearest = min(draw, key=lambda i: (dist[i], i))
        hits += g_pids[nearest] == 1
        total += 1
    return hits / total


@pytest.mark.parametrize('metric', ['CUHK03ClassicMetric', 'LLCMMetric'])
def test_a_metric_of_sampled_galleries_is_refused(tiny_config, tmp_path,
                                                  monkeypatch, metric):
    """A user ranks a Market-layout test set (CUHK03-NP names are
    ``0001_c1_1.png``; LLCM's ``0001_c01_s..._vis.jpg`` parse too) with a
    config whose test metric is ``CUHK03ClassicMetric`` (or the trial
    metric ``LLCMMetric``). ``rank_gallery``'s docstring and
    demo/README.md say the top-1 matches of the lists with
    ``has_positive`` give ``tools/test.py``'s R1, and the ranking
    helpers refuse metrics whose lists ``tools/test.py`` does not rank
    (``rerank``, a ``tie_policy``, SYSU's junk rule). These metrics pass
    the checks (``junk_rule='market'``, ``tie_policy='stable'``), but
    their R<k> are not the whole gallery's: section 5 of
    specs/evaluation.md draws one gallery item per pid, 10 times, and
    averages the CMC (a trial metric draws its gallery per trial).
    Measured on a tiny CUHK03-NP tree (8 queries, 24 gallery images):
    ``tools/test.py`` printed ``cuhk03/R1`` 40.0, the lists gave 50.0.

    Here the query's nearest item is another pid's view, so the whole
    gallery's R1 is 0 %, while the classic protocol finds the query at
    rank 1 whenever the draw takes that pid's farther view: 50 % in
    expectation. ``rank_gallery`` must refuse such a metric, naming it,
    before anything is extracted.
    """
    values = {
        '0001_c1s1_000009_00.png': 0.0,  # the query
        '0001_c2s1_000001_00.png': 2.0,  # its one positive
        '0002_c2s1_000001_00.png': 1.0,  # nearest: another pid
        '0002_c3s1_000001_00.png': 3.0,  # that pid's farther view
    }
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    names = list(values)[1:]
    for name in names:
        (gallery / name).write_bytes(b'')
    query = str(tmp_path / list(values)[0])
    dist = [abs(values[n] - values[list(values)[0]]) for n in names]
    pids = [int(n[:4]) for n in names]
    # The definitions disagree on this gallery.
    whole_gallery_r1 = float(pids[int(np.argmin(dist))] == 1)
    assert whole_gallery_r1 == 0.0
    assert classic_r1(dist, pids) == 0.5
    scalar_features(monkeypatch, values)
    # The distance given, as the model's: LLCM's default is cosine.
    model = init_model(
        tiny_config,
        cfg_options={
            'test_evaluator': dict(type=metric, distance='euclidean')
        })
    with pytest.raises(ValueError, match=metric):
        rank_gallery(model, query, str(gallery), topk=3)


def test_the_querys_own_file_is_no_match(tiny_config, tmp_path):
    """A user ranks a gallery image against its own folder with the
    same-camera views kept (``exclude_same_camera=False``, the demo's
    ``--keep-same-camera``, or a config with ``junk_rule='none'``). The
    list's first item is the query's own file at distance 0, marked as a
    correct match (``matches[0]``, a green frame in the demo), and
    ``has_positive`` is True because of it, so the query counts as found
    whatever the model.

    No protocol ranks an image against itself: ``ReIDMetric`` refuses a
    test set that keeps an image in its own query's gallery
    (``check_own_images``), and the ranked lists of ``tools/test.py``
    remove such a copy (``own_image_codes``). The API must do one or the
    other: here the only other view of pid 1 is its positive.
    """
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    names = [
        '0001_c1s1_000001_00.png', '0001_c2s1_000001_00.png',
        '0002_c1s1_000001_00.png', '0003_c2s1_000001_00.png'
    ]
    for seed, name in enumerate(names):
        write_png(gallery / name, seed)
    query = str(gallery / names[0])
    model = randomize_statistics(init_model(tiny_config))
    try:
        [ranked] = rank_gallery(
            model, query, str(gallery), topk=4, exclude_same_camera=False)
    except ValueError as error:  # a refusal naming the image is right
        assert names[0] in str(error)
        return
    assert query not in ranked.gallery, (ranked.gallery, ranked.distances)
    assert len(ranked.gallery) == 3
    # Its other view is still a positive.
    assert ranked.has_positive is True
    assert ranked.matches == [
        osp.basename(p).startswith('0001_') for p in ranked.gallery
    ]


def test_a_distractor_query_has_no_matches(tiny_config, tmp_path,
                                           monkeypatch):
    """A user ranks a Market or SynthReID gallery image named ``0000_...``
    (``ls bounding_box_test | head`` lists the distractors first after
    the junk) against the gallery, e.g. with the demo. pid 0 labels
    distractors: different people under one label, "negatives for every
    query" (specs/evaluation.md section 2.1; the datasets refuse a
    distractor query). ``rank_gallery`` treated 0 as an identity: the
    other distractors came back as correct matches (green frames) and
    ``has_positive`` was True, so the query counted towards R1.

    Right: no match for a distractor query (its labels unknown, matches
    and ``has_positive`` None, or no positive), or a refusal naming it.
    """
    values = {
        '0000_c1s1_000009_00.png': 0.0,  # the query: a distractor
        '0000_c2s1_000001_00.png': 1.0,  # another distractor: nearest
        '0001_c2s1_000001_00.png': 2.0,
        '0000_c3s1_000001_00.png': 3.0,
    }
    gallery = tmp_path / 'gallery'
    gallery.mkdir()
    for name in list(values)[1:]:
        (gallery / name).write_bytes(b'')
    query = str(tmp_path / list(values)[0])
    scalar_features(monkeypatch, values)
    model = init_model(tiny_config)
    try:
        [ranked] = rank_gallery(model, query, str(gallery), topk=3)
    except ValueError as error:
        assert list(values)[0] in str(error)
        return
    assert [osp.basename(p) for p in ranked.gallery] == list(values)[1:]
    assert not any(ranked.matches or []), ranked.matches
    assert ranked.has_positive is not True


def test_a_bgr_view_flipped_to_rgb_gives_the_files_features(
        tiny_config, tmp_path):
    """The usual way to hand OpenCV's decode to the API is the view
    ``cv2.imread(path)[..., ::-1]`` (negative strides, not contiguous),
    or a crop of a larger array. Either is the same RGB image as the
    file, so its features must be the file's (the docs: an RGB uint8
    array (H, W, 3) is taken as the image), in any batch (up to float
    rounding)."""
    model = randomize_statistics(init_model(tiny_config))
    paths = [write_png(tmp_path / f'{i}.png', i) for i in range(3)]
    expected = extract_features(model, paths)
    views = [cv2.imread(p)[..., ::-1] for p in paths]
    assert any(s < 0 for s in views[0].strides)
    assert torch.equal(extract_features(model, views), expected)
    wide = [np.concatenate([v, v[:, ::-1]], axis=1) for v in views]
    crops = [w[:, :16] for w in wide]
    assert not crops[0].flags['C_CONTIGUOUS']
    # One per forward: equal up to float rounding of the batched GEMMs.
    torch.testing.assert_close(
        extract_features(model, crops, batch_size=1),
        expected,
        rtol=1e-5,
        atol=1e-6)
