"""Wrong-number hunt: CUHK03 protocols and the single-gallery-shot CMC.

The references here are written from the definitions (evaluation spec
section 5 for the classic CMC, datasets spec section 2.4 for the new
protocol), not from mmreid's code.
"""
import os
import os.path as osp
import random
from collections import OrderedDict

import cv2
import numpy as np
import pytest
import torch

from mmreid.evaluation.functional import classic_cmc
from mmreid.evaluation.metrics import CUHK03ClassicMetric, ReIDMetric
from ..fixtures.processes import load_tool

converter = load_tool('tools/dataset_converters/cuhk03.py')


def reference_classic_cmc(dist, q_pids, g_pids, q_camids, g_camids,
                          max_rank, num_repeats, seed):
    """Evaluation spec section 5, drawn as the spec's parity note says.

    ``np.random.seed(seed)``, then per query (in order) per repeat per
    pid bucket (in order of first appearance in the stably ranked list,
    after removing the query's pid and camid) one
    ``np.random.choice``; the query's CMC is 1 from the rank of its
    drawn positive among the drawn items, averaged over the repeats.

    Returns:
        tuple: The CMC curve (max_rank,) and the valid-query mask.
    """
    np.random.seed(seed)
    total = np.zeros(max_rank)
    valid = np.zeros(len(q_pids), dtype=bool)
    for q in range(len(q_pids)):
        order = np.argsort(dist[q], kind='stable')
        kept = [
            g for g in order
            if not (g_pids[g] == q_pids[q] and g_camids[g] == q_camids[q])
        ]
        if not any(g_pids[g] == q_pids[q] for g in kept):
            continue
        valid[q] = True
        buckets = OrderedDict()
        for position, g in enumerate(kept):
            buckets.setdefault(int(g_pids[g]), []).append(position)
        curve = np.zeros(max_rank)
        for _ in range(num_repeats):
            drawn = {pid: np.random.choice(m) for pid, m in buckets.items()}
            mine = drawn[int(q_pids[q])]
            rank = sum(position < mine for position in drawn.values())
            if rank < max_rank:
                curve[rank:] += 1
        total += curve / num_repeats
    return total / valid.sum(), valid


def record(path, pid, camid, role, feature, idx):
    return dict(
        pred_feature=torch.as_tensor(feature, dtype=torch.float32),
        gt_label=pid,
        camid=camid,
        role=role,
        sample_idx=idx,
        dataset='cuhk03-np-labeled',
        img_path=path)


def cuhk03_like_records(seed=0, num_ids=12):
    """A CUHK03-NP-like test set in dataset order: per identity one query
    per view and three gallery images per view, tie-free features."""
    gen = torch.Generator().manual_seed(seed)
    query, gallery = [], []
    for pid in range(1, num_ids + 1):
        centre = torch.randn(6, generator=gen)
        for view in (0, 1):
            query.append((f'/np/query/{pid:04d}_c{view + 1}_01.png', pid,
                          view, centre + 0.8 * torch.randn(6, generator=gen)))
            for k in range(3):
                gallery.append(
                    (f'/np/bounding_box_test/{pid:04d}_c{view + 1}_'
                     f'{k + 2:02d}.png', pid, view,
                     centre + 0.8 * torch.randn(6, generator=gen)))
    records = [
        record(path, pid, cam, 'query', feat, i)
        for i, (path, pid, cam, feat) in enumerate(query)
    ]
    records += [
        record(path, pid, cam, 'gallery', feat, len(query) + i)
        for i, (path, pid, cam, feat) in enumerate(gallery)
    ]
    return records


def as_problem(records):
    """Euclidean distances and labels of the records, in their order."""
    query = [r for r in records if r['role'] == 'query']
    gallery = [r for r in records if r['role'] == 'gallery']
    q_feats = torch.stack([r['pred_feature'] for r in query]).double()
    g_feats = torch.stack([r['pred_feature'] for r in gallery]).double()
    dist = torch.cdist(q_feats, g_feats).numpy()
    labels = [
        np.array([r[key] for r in role]) for key, role in (
            ('gt_label', query), ('gt_label', gallery), ('camid', query),
            ('camid', gallery))
    ]
    return (dist, *labels)


def run_metric(records, **kwargs):
    metric = CUHK03ClassicMetric(**kwargs)
    metric.process(None, records)
    return metric.compute_metrics(metric.results)


@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_classic_cmc_matches_its_definition_with_ties_and_single_images(
        seed):
    """A user evaluates a multi-shot gallery where some identities have
    one image in a view (a bucket with nothing to draw), distances tie
    (quantised features) and some queries have no positive left after
    the Market removal. classic_cmc must equal the definition (spec
    section 5: stable order, buckets by first appearance, one seeded
    draw per bucket per repeat, invalid queries skipped) exactly, for
    any seed and number of repeats."""
    rng = np.random.RandomState(seed)
    num_q, num_g, num_ids = 14, 40, 9
    # pid 0: one gallery image (nothing to draw); pid num_ids - 1: no
    # gallery image (its query is skipped).
    q_pids = rng.randint(0, num_ids, num_q)
    q_pids[:2] = [0, num_ids - 1]
    g_pids = np.concatenate([[0], rng.randint(1, num_ids - 1, num_g - 1)])
    q_camids = rng.randint(0, 2, num_q)
    q_camids[0] = 0
    g_camids = rng.randint(0, 2, num_g)
    g_camids[0] = 1
    dist = rng.randint(0, 4, (num_q, num_g)).astype(np.float32)
    for repeats in (1, 10):
        expected, valid = reference_classic_cmc(dist, q_pids, g_pids,
                                                q_camids, g_camids, 20,
                                                repeats, seed)
        assert valid[0] and not valid[1]
        cmc, got_valid = classic_cmc(
            dist,
            q_pids,
            g_pids,
            q_camids,
            g_camids,
            max_rank=20,
            num_repeats=repeats,
            seed=seed)
        np.testing.assert_array_equal(got_valid, valid)
        np.testing.assert_allclose(cmc, expected, rtol=0, atol=1e-12)


def test_classic_metric_is_the_definition_whatever_the_gallery_order():
    """The gallery records may reach the metric in another order (another
    dataset listing, the gallery before the query). On tie-free distances
    the ranked list, its buckets and so the seeded draws do not depend on
    it: R<k> must equal the definition computed in dataset order."""
    records = cuhk03_like_records()
    dist, q_pids, g_pids, q_camids, g_camids = as_problem(records)
    expected, _ = reference_classic_cmc(dist, q_pids, g_pids, q_camids,
                                        g_camids, 50, 10, 0)
    query = [r for r in records if r['role'] == 'query']
    gallery = [r for r in records if r['role'] == 'gallery']
    shuffled = gallery[:]
    random.Random(1).shuffle(shuffled)
    for order in (records, query + shuffled, shuffled + query):
        got = run_metric(order, seed=0)
        for k in (1, 5, 10):
            assert got[f'R{k}'] == pytest.approx(100 * expected[k - 1])
        assert (got['num_query'], got['num_valid_query']) == (24, 24)


def test_classic_metric_draws_do_not_depend_on_query_arrival_order():
    """A user tests CUHK03 with ``CUHK03ClassicMetric(seed=0)`` and a test
    dataloader whose ``DefaultSampler`` has ``shuffle=True`` (the loops
    accept it: every sample is handed once). The seeded draws are consumed
    query by query in the order the records reach the metric, so the
    same model on the same data printed R1 27.5 / 27.5 / 25.0 and R5
    62.9 / 61.7 / 64.2 for sampler seeds none / 1 / 2 (mAP identical),
    and an unseeded sampler gives other numbers every run.

    Right: the spec (section 5) fixes the draw order as per query (in
    dataset order) -> per repeat -> per pid bucket after
    ``np.random.seed(seed)``; the docs promise the draws equal the
    reference's after that seed. Each record carries its ``sample_idx``,
    so the dataset order is known whatever the arrival order: the numbers
    must be the definition's in dataset order."""
    records = cuhk03_like_records()
    dist, q_pids, g_pids, q_camids, g_camids = as_problem(records)
    expected, _ = reference_classic_cmc(dist, q_pids, g_pids, q_camids,
                                        g_camids, 50, 10, 0)
    arrival = records[:]
    random.Random(3).shuffle(arrival)
    got = run_metric(arrival, seed=0)
    assert [got[f'R{k}'] for k in (1, 5, 10)] == pytest.approx(
        [100 * expected[k - 1] for k in (1, 5, 10)])


def test_classic_metric_refuses_a_query_ranked_against_its_own_image():
    """A user's test set lists one image both as a query and as a gallery
    item under other labels (here another camid), so the Market rule
    keeps the copy. ``ReIDMetric`` refuses this (a copy at distance 0 is
    a rank-1 hit whatever the model); ``CUHK03ClassicMetric`` ranks it and
    printed R1 20 / mAP 83.3 where the query's only other positive is
    behind a negative.

    Right: no protocol ranks an image against itself (``ReIDMetric``'s
    own-image rule); the classic metric must refuse it the same way,
    naming the image."""
    records = [
        record('/np/query/0001_c1_01.png', 1, 0, 'query', [0.0], 0),
        record('/np/query/0001_c1_01.png', 1, 1, 'gallery', [0.0], 1),
        record('/np/bounding_box_test/0002_c2_02.png', 2, 1, 'gallery',
               [0.5], 2),
        record('/np/bounding_box_test/0001_c2_03.png', 1, 1, 'gallery',
               [3.0], 3)
    ]
    reid = ReIDMetric()
    reid.process(None, records)
    with pytest.raises(ValueError, match='0001_c1_01.png'):
        reid.compute_metrics(reid.results)
    with pytest.raises(ValueError, match='0001_c1_01.png'):
        run_metric(records)


@pytest.mark.parametrize('seed', ['0', 0.5, -1])
def test_classic_metric_refuses_a_bad_seed_when_built(seed):
    """A user writes ``seed='0'`` (or 0.5, or -1) in the evaluator config.
    The metric is built, the whole test set is extracted, and then numpy
    fails with "Cannot cast scalar from dtype('<U1') to dtype('int64')"
    (or "Seed must be between 0 and 2**32 - 1"), naming neither
    ``seed`` nor the metric.

    Right: bad input gets a clear error naming the key and the value,
    before any work (as ``num_repeats`` is checked at construction)."""
    with pytest.raises((ValueError, TypeError), match='seed'):
        CUHK03ClassicMetric(seed=seed)


def extracted_images(root, names):
    folder = osp.join(root, 'images_labeled')
    os.makedirs(folder)
    for i, name in enumerate(names):
        cv2.imwrite(
            osp.join(folder, name), np.full((8, 4, 3), 10 * i, np.uint8))
    return folder


FILES = [
    '1_001_1_01.png', '1_001_2_06.png', '2_001_1_01.png', '2_001_2_06.png',
    '1_002_1_01.png', '1_002_2_06.png', '1_002_2_07.png'
]


@pytest.mark.parametrize(
    'labels,train,query',
    [
        # Pair 1 pid 1 and pair 2 pid 1 both labelled 1: same view and
        # image numbers, so the same output name.
        ([1, 1, 1, 1, 2, 2, 2], [0, 1, 2, 3], [4]),
        # One query file listed twice.
        ([1, 1, 3, 3, 2, 2, 2], [0, 1, 2, 3], [4, 4]),
    ],
    ids=['two identities one label', 'index listed twice'])
def test_converter_never_loses_an_image_it_counts(tmp_path, labels, train,
                                                  query):
    """A user converts a new-protocol file whose lists send two files to
    one output name ``<label>_c<view>_<img>.png``. The converter copied
    the second over the first and printed the list lengths
    (``train 4`` with 2 files written; ``query 2`` with 1), and
    ``CUHK03NP`` then reads fewer images than the conversion reported.

    Right (datasets spec 2.4; mmreid refuses rather than leaving a wrong
    count): either every listed file is written and the printed counts
    are the files written, or the conversion is refused naming the
    file, leaving no tree behind."""
    images = extracted_images(str(tmp_path), FILES)
    protocol = dict(
        filelist=FILES,
        labels=labels,
        train_idx=train,
        query_idx=query,
        gallery_idx=[5, 6])
    out = str(tmp_path / 'cuhk03-np' / 'labeled')
    os.makedirs(osp.dirname(out))
    try:
        counts = converter.write_np_layout(protocol, images, out)
    except ValueError as error:
        assert any(name in str(error) for name in FILES)
        assert not osp.exists(out)
        return
    written = {
        role: len(os.listdir(osp.join(out, folder)))
        for role, folder in converter.FOLDERS.items()
    }
    listed = {role: len(protocol[f'{role}_idx']) for role in written}
    assert written == counts == listed


def test_converter_refuses_an_image_in_train_and_test(tmp_path):
    """A user converts a protocol file whose ``train_idx`` and
    ``query_idx`` share a file. The converter copies it into both
    ``bounding_box_train`` and ``query`` without a word: the model trains
    on a test image (and its identity), which inflates every test
    number.

    Right: the new protocol's training and test identities are disjoint
    (767 / 700 of 1,467, datasets spec 2.4); a list file that puts one
    image in both is not that protocol and must be refused, naming the
    file."""
    images = extracted_images(str(tmp_path), FILES)
    protocol = dict(
        filelist=FILES,
        labels=[1, 1, 3, 3, 2, 2, 2],
        train_idx=[0, 1, 2, 3, 4],
        query_idx=[4],
        gallery_idx=[5, 6])
    out = str(tmp_path / 'cuhk03-np' / 'labeled')
    os.makedirs(osp.dirname(out))
    with pytest.raises(ValueError, match='1_002_1_01.png'):
        converter.write_np_layout(protocol, images, out)
    assert not osp.exists(out)


@pytest.mark.parametrize('num_trials', [2.5, True, 0])
def test_trial_counts_that_are_not_integers_are_refused(num_trials):
    """``SYSUMetric(num_trials=2.5)`` averaged 2 trials without a word
    (``int()`` truncated it; hunt Z's notes). A count of trials is an
    integer >= 1, refused otherwise, naming it."""
    from mmreid.evaluation.metrics import SYSUMetric
    with pytest.raises(ValueError, match='num_trials must be an integer'):
        SYSUMetric(num_trials=num_trials)
