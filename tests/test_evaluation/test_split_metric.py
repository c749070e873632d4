"""DGSplitMetric (all splits of a small DG target in one run) and
CUHK03ClassicMetric (single-gallery-shot, seeded)."""
import os
import os.path as osp
import random
from collections import defaultdict

import cv2
import numpy as np
import pytest
import torch
from mmengine.runner import Runner

import mmreid.evaluation.metrics.reid_metric as reid_metric_module
from mmreid.datasets import GRID, PRID2011, QMULiLIDS, VIPeR
from mmreid.evaluation.functional import classic_cmc
from mmreid.evaluation.metrics import (CUHK03ClassicMetric, DGSplitMetric,
                                       ReIDMetric)
from mmreid.registry import METRICS
from mmreid.utils import register_all_modules
from ..fixtures.dataset_trees import (make_grid, make_ilids, make_prid,
                                      make_viper)
from ..fixtures.files import touch


def sample(path, pid, camid, role, feature, idx):
    return dict(
        pred_feature=feature,
        gt_label=pid,
        camid=camid,
        role=role,
        sample_idx=idx,
        dataset='fake',
        img_path=path)


def naive_single_shot(dist, q_pids, g_pids, ranks=(1, 5, 10, 20)):
    """Rank of the one positive by brute force (tie-free distances)."""
    out = {f'R{k}': 0.0 for k in ranks}
    ap = 0.0
    for q in range(len(q_pids)):
        order = np.argsort(dist[q])
        rank = int(np.nonzero(g_pids[order] == q_pids[q])[0][0]) + 1
        for k in ranks:
            out[f'R{k}'] += float(rank <= k)
        ap += 1.0 / rank
    out = {k: 100 * v / len(q_pids) for k, v in out.items()}
    out['mAP'] = 100 * ap / len(q_pids)
    return out


def build_fake_target(num_splits=3, num_ids=30, test_ids=12, seed=0):
    """Query camera 0, gallery camera 1, one image per id and camera, plus
    gallery-only negatives (pids 100..109)."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    samples, feats = [], {}
    for pid in range(1, num_ids + 1):
        feats[('q', pid)] = torch.randn(8, generator=gen)
        feats[('g', pid)] = feats[('q', pid)] + torch.randn(8, generator=gen)
    for pid in range(100, 110):
        feats[('g', pid)] = torch.randn(8, generator=gen)
    for i, ((role, pid), f) in enumerate(sorted(feats.items())):
        path = f'/fake/{role}/{pid:04d}.png'
        samples.append(
            sample(path, pid, 0 if role == 'q' else 1,
                   'query' if role == 'q' else 'gallery', f, i))
    splits = []
    for _ in range(num_splits):
        ids = sorted(rng.sample(range(1, num_ids + 1), test_ids))
        splits.append(
            dict(
                query=[f'/fake/q/{p:04d}.png' for p in ids],
                gallery=[f'/fake/g/{p:04d}.png' for p in ids] +
                [f'/fake/g/{p:04d}.png' for p in range(100, 110)]))
    return samples, feats, splits


def test_dg_split_metric_matches_naive_reference():
    samples, feats, splits = build_fake_target()
    metric = DGSplitMetric(metric='euclidean')
    metric.dataset_meta = dict(dg_splits=splits)
    rng = random.Random(1)
    rng.shuffle(samples)  # order of arrival does not matter
    metric.process(None, samples)
    metrics = metric.compute_metrics(metric.results)
    per_split = []
    for i, split in enumerate(splits):
        q_pids = np.array([int(p[-8:-4]) for p in split['query']])
        g_pids = np.array([int(p[-8:-4]) for p in split['gallery']])
        q = torch.stack([feats[('q', p)] for p in q_pids])
        g = torch.stack([feats[('g', p)] for p in g_pids])
        dist = torch.cdist(q, g).numpy()
        expected = naive_single_shot(dist, q_pids, g_pids)
        per_split.append(expected)
        for key, value in expected.items():
            assert metrics[f'split{i}/{key}'] == pytest.approx(value)
        assert metrics[f'split{i}/mINP'] == pytest.approx(expected['mAP'])
        assert metrics[f'split{i}/num_query'] == 12
        assert metrics[f'split{i}/num_gallery'] == 22
    for key in ('R1', 'R5', 'mAP'):
        values = [s[key] for s in per_split]
        assert metrics[key] == pytest.approx(np.mean(values))
        assert metrics[f'{key}_std'] == pytest.approx(np.std(values))
    assert metrics['num_splits'] == 3
    # The splits give different numbers (the test is not vacuous).
    assert len({round(s['mAP'], 6) for s in per_split}) > 1


def test_dg_split_metric_counts_the_queries_each_split_averages(monkeypatch):
    # Without the single-positive check a query without a positive is
    # skipped: the counts say how many queries each split's numbers
    # average over, as for the other targets (num_query, num_valid_query).
    logs = []
    monkeypatch.setattr(reid_metric_module, 'print_log',
                        lambda msg, **kwargs: logs.append(msg))
    samples, _, splits = build_fake_target()
    lost = splits[0]['query'][0].replace('/q/', '/g/')
    splits[0]['gallery'].remove(lost)
    metric = DGSplitMetric(check_single_positive=False)
    metric.dataset_meta = dict(dg_splits=splits)
    metric.process(None, samples)
    metrics = metric.compute_metrics(metric.results)
    counts = [
        (metrics[f'split{i}/num_query'], metrics[f'split{i}/num_valid_query'],
         metrics[f'split{i}/num_gallery']) for i in range(3)
    ]
    assert counts == [(12, 11, 21), (12, 12, 22), (12, 12, 22)]
    assert (metrics['num_query'], metrics['num_valid_query']) == (12, 11)
    assert metrics['num_splits'] == 3
    assert any('skipped (per split: [1, 0, 0])' in msg for msg in logs)


def test_dg_split_metric_errors():
    samples, _, splits = build_fake_target()
    metric = DGSplitMetric()
    metric.process(None, samples)
    with pytest.raises(ValueError, match='dg_splits'):
        metric.compute_metrics(metric.results)
    metric.dataset_meta = dict(
        dg_splits=[dict(splits[0], query=['/fake/q/9999.png'])])
    with pytest.raises(ValueError, match='9999.png'):
        metric.compute_metrics(metric.results)
    # A query whose match shares its camera has no valid positive.
    bad = [dict(s) for s in samples]
    for s in bad:
        s['camid'] = 0
    metric = DGSplitMetric()
    metric.dataset_meta = dict(dg_splits=splits)
    metric.process(None, bad)
    with pytest.raises(ValueError, match='0 valid positives'):
        metric.compute_metrics(metric.results)
    with pytest.raises(ValueError, match='rerank'):
        DGSplitMetric(rerank=dict(k1=20, k2=6, lambda_value=0.3))


def test_dg_split_metric_on_ilids_equals_per_split_reid_metric(tmp_path):
    """All splits from one extraction == ReIDMetric on each split alone;
    iLIDS lists an image once per role, with camid 0 / 1."""
    # 3 to 5 images per identity, 476 in all as published (a copy with
    # another count is refused).
    names = []
    for pid in range(1, 120):
        count = 4 if pid == 119 else 3 + 2 * (pid % 2)
        names += [f'{pid:04d}{k:03d}.jpg' for k in range(1, count + 1)]
    assert len(names) == 476
    touch(osp.join(tmp_path, 'i-LIDS_Pedestrian', 'Persons'), *names)
    gen = torch.Generator().manual_seed(0)
    feature = {n: torch.randn(6, generator=gen) for n in names}

    def to_samples(dataset):
        out = []
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            out.append(
                sample(info['img_path'], info['pid'], info['camid'],
                       info['role'], feature[osp.basename(info['img_path'])],
                       i))
        return out

    every = QMULiLIDS(str(tmp_path))
    metric = DGSplitMetric(metric='cosine')
    metric.dataset_meta = every.metainfo
    metric.process(None, to_samples(every))
    metrics = metric.compute_metrics(metric.results)
    for index in (0, 7):
        one = QMULiLIDS(str(tmp_path), split_index=index)
        reference = ReIDMetric(metric='cosine')
        reference.process(None, to_samples(one))
        expected = reference.compute_metrics(reference.results)
        for key in ('R1', 'R5', 'R10', 'mAP'):
            assert metrics[f'split{index}/{key}'] == pytest.approx(
                expected[key])
        assert expected['num_valid_query'] == 60


SMALL_DG = dict(
    prid=(PRID2011, make_prid),
    grid=(GRID, lambda root: make_grid(root, [list(range(1, 126))] * 10)),
    viper=(VIPeR, make_viper),
    ilids=(QMULiLIDS, lambda root: make_ilids(root)[0]))


@pytest.mark.parametrize('name', sorted(SMALL_DG))
def test_only_dg_split_metric_evaluates_the_union_of_the_splits(
        name, tmp_path):
    """The default test split lists the union of the ten splits (an iLIDS
    image is a query in one split and in the gallery of another): ranked
    as one query/gallery set it gives numbers of no split, e.g. R1 70 with
    random features on iLIDS. Every other metric refuses it, naming the
    dataset and DGSplitMetric; one split alone is a plain ranking."""
    cls, make = SMALL_DG[name]
    root = make(str(tmp_path))
    union = cls(root, split='test').metainfo
    assert len(union['dg_splits']) == 10
    for metric in (ReIDMetric(), CUHK03ClassicMetric()):
        with pytest.raises(
                ValueError,
                match=f"{type(metric).__name__}.*{union['dataset_name']}"
                '.*DGSplitMetric'):
            metric.dataset_meta = union
    DGSplitMetric().dataset_meta = union
    one = cls(root, split='test', split_index=3).metainfo
    ReIDMetric().dataset_meta = one
    # its one split would be reported as split0 with a spread of 0
    with pytest.raises(ValueError, match='split 3 alone.*ReIDMetric'):
        DGSplitMetric().dataset_meta = one


def test_reid_metric_refuses_a_union_of_splits_without_a_name():
    """dg_splits with several splits declares the protocol even without
    the dataset's protocol_metric key (a metainfo built by hand)."""
    _, _, splits = build_fake_target(num_splits=2)
    with pytest.raises(ValueError, match='2 splits.*DGSplitMetric'):
        ReIDMetric().dataset_meta = dict(dg_splits=splits)
    ReIDMetric().dataset_meta = dict(dg_splits=splits[:1])


def test_dg_split_metric_is_registered():
    register_all_modules()
    metric = METRICS.build(dict(type='DGSplitMetric', metric='cosine'))
    assert isinstance(metric, DGSplitMetric)
    assert metric.prefix == 'dg'


def reference_eval_cuhk03(distmat,
                          q_pids,
                          g_pids,
                          q_camids,
                          g_camids,
                          max_rank,
                          num_repeats=10):
    """fast-reid's ``eval_cuhk03`` with its global numpy RNG (stable sort,
    CMC padded to max_rank; fast-reid fixes ``num_repeats`` at 10)."""
    indices = np.argsort(distmat, axis=1, kind='stable')
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc = []
    for q_idx in range(len(q_pids)):
        order = indices[q_idx]
        remove = (g_pids[order] == q_pids[q_idx]) & (
            g_camids[order] == q_camids[q_idx])
        keep = np.invert(remove)
        raw_cmc = matches[q_idx][keep]
        if not np.any(raw_cmc):
            continue
        kept_g_pids = g_pids[order][keep]
        g_pids_dict = defaultdict(list)
        for idx, pid in enumerate(kept_g_pids):
            g_pids_dict[pid].append(idx)
        cmc = np.zeros(max_rank)
        for _ in range(num_repeats):
            mask = np.zeros(len(raw_cmc), dtype=bool)
            for _, idxs in g_pids_dict.items():
                mask[np.random.choice(idxs)] = True
            _cmc = raw_cmc[mask].cumsum()
            _cmc[_cmc > 1] = 1
            _cmc = np.concatenate(
                [_cmc, np.full(max(0, max_rank - len(_cmc)), _cmc[-1])])
            cmc += _cmc[:max_rank]
        all_cmc.append(cmc / num_repeats)
    return np.mean(all_cmc, axis=0)


def multi_shot_problem(seed=0):
    rng = np.random.RandomState(seed)
    q_pids = np.repeat(np.arange(10), 2)
    q_camids = np.tile([0, 1], 10)
    g_pids = np.repeat(np.arange(12), 4)
    g_camids = np.tile([0, 1, 0, 1], 12)
    dist = rng.rand(len(q_pids), len(g_pids))
    return dist, q_pids, g_pids, q_camids, g_camids


def test_classic_cmc_equals_reference_under_same_seed():
    dist, q_pids, g_pids, q_camids, g_camids = multi_shot_problem()
    np.random.seed(5)
    expected = reference_eval_cuhk03(dist, q_pids, g_pids, q_camids, g_camids,
                                     20)
    cmc, valid = classic_cmc(
        dist, q_pids, g_pids, q_camids, g_camids, max_rank=20, seed=5)
    np.testing.assert_allclose(cmc, expected)
    assert valid.all()
    # Seeded: the same numbers every time, others with another seed.
    again, _ = classic_cmc(
        dist, q_pids, g_pids, q_camids, g_camids, max_rank=20, seed=5)
    np.testing.assert_array_equal(cmc, again)
    other, _ = classic_cmc(
        dist, q_pids, g_pids, q_camids, g_camids, max_rank=20, seed=6)
    assert not np.array_equal(cmc, other)


def test_cuhk03_classic_metric_one_image_per_pid_equals_standard():
    gen = torch.Generator().manual_seed(0)
    samples = []
    for pid in range(15):
        q = torch.randn(8, generator=gen)
        samples.append(sample(f'/q/{pid}', pid, 0, 'query', q, pid))
        samples.append(
            sample(f'/g/{pid}', pid, 1, 'gallery',
                   q + torch.randn(8, generator=gen), 100 + pid))
    classic = CUHK03ClassicMetric(seed=0)
    classic.process(None, samples)
    got = classic.compute_metrics(classic.results)
    standard = ReIDMetric()
    standard.process(None, samples)
    expected = standard.compute_metrics(standard.results)
    for key in ('R1', 'R5', 'R10', 'mAP', 'mINP', 'num_valid_query'):
        assert got[key] == pytest.approx(expected[key])


def test_cuhk03_classic_metric_multi_shot():
    dist, q_pids, g_pids, q_camids, g_camids = multi_shot_problem(1)
    # Features whose Euclidean distances are not the random matrix: use
    # a scorer that returns it, indexed by sample order.
    samples, scorer = multi_shot_samples(dist, q_pids, g_pids, q_camids,
                                         g_camids)
    metric = CUHK03ClassicMetric(seed=3)
    metric.set_scorers(dict(given=scorer))
    metric.process(None, samples)
    got = metric.compute_metrics(metric.results)
    np.random.seed(3)
    expected = reference_eval_cuhk03(dist, q_pids, g_pids, q_camids, g_camids,
                                     50)
    assert got['R1'] == pytest.approx(100 * expected[0])
    assert got['R5'] == pytest.approx(100 * expected[4])
    full = ReIDMetric()
    full.set_scorers(dict(given=scorer))
    full.process(None, samples)
    assert got['mAP'] == pytest.approx(
        full.compute_metrics(full.results)['mAP'])
    with pytest.raises(ValueError, match='junk_rule'):
        CUHK03ClassicMetric(junk_rule='none')


def distractor_gallery(distractor_pid):
    """One query (pid 1) whose true match is at distance 10.5, behind 20
    different distractors under one pid at distances 1..20."""
    samples = [sample('/q/0', 1, 0, 'query', torch.tensor([0.0]), 0)]
    samples += [
        sample(f'/g/{k}', distractor_pid, 1, 'gallery',
               torch.tensor([1.0 + k]), 1 + k) for k in range(20)
    ]
    samples += [
        sample('/g/match', 1, 1, 'gallery', torch.tensor([10.5]), 30),
        sample('/g/other', 2, 1, 'gallery', torch.tensor([50.0]), 31)
    ]
    return samples


@pytest.mark.parametrize('distractor_pid', [0, -1])
def test_cuhk03_classic_metric_refuses_shared_pid_distractors(distractor_pid):
    """Spec section 5: the classic CMC must not be applied to a gallery of
    shared-pid distractors. Here the true match ranks 11th (R1 = R5 = 0),
    but drawing one of the 20 distractors per repeat gave R1 40 / R5 100.
    Refused, naming the count, the pid and the dataset."""
    samples = distractor_gallery(distractor_pid)
    metric = CUHK03ClassicMetric(ranks=(1, 5))
    metric.process(None, samples)
    with pytest.raises(
            ValueError,
            match=rf"dataset 'fake' holds 20 items of distractor pid\(s\) "
            rf'\[{distractor_pid}\].*ReIDMetric.*distractor_pids=\(\)'):
        metric.compute_metrics(metric.results)
    # Declared real identities, they are ranked as such; but pid -1 is
    # the junk label everywhere in mmreid, never an identity.
    metric = CUHK03ClassicMetric(ranks=(1, 5), distractor_pids=())
    metric.process(None, samples)
    if distractor_pid == -1:
        with pytest.raises(ValueError, match='have pid -1, the junk label'):
            metric.compute_metrics(metric.results)
    else:
        assert metric.compute_metrics(metric.results)['num_valid_query'] == 1


def test_cuhk03_classic_metric_accepts_pid_0_as_a_query_identity():
    """A distractor pid that a query has is an identity (0-based test
    labels, e.g. MSMT17's), not a distractor label."""
    samples = [
        sample('/q/0', 0, 0, 'query', torch.tensor([0.0]), 0),
        sample('/g/0', 0, 1, 'gallery', torch.tensor([1.0]), 1),
        sample('/g/1', 0, 1, 'gallery', torch.tensor([1.5]), 2),
        sample('/g/2', 1, 1, 'gallery', torch.tensor([2.0]), 3)
    ]
    metric = CUHK03ClassicMetric(ranks=(1, ))
    metric.process(None, samples)
    assert metric.compute_metrics(metric.results)['R1'] == 100


@pytest.mark.parametrize('option,value', [('tie_policy', 'pessimistic'),
                                          ('tie_policy', 'optimistic'),
                                          ('cmc_mode', 'dedup')])
def test_cuhk03_classic_metric_refuses_options_its_cmc_ignores(
        option, value):
    """The classic CMC orders each query's gallery stably (ascending
    distance, then gallery index) and draws one item per pid, so another
    tie policy or a de-duplicated CMC would be printed without being
    applied to the CMC: refused, naming the option and the value."""
    with pytest.raises(ValueError, match=f'{option}.*{value}'):
        CUHK03ClassicMetric(**{option: value})
    # The defaults and the options it applies (ap_mode to the mAP) build.
    CUHK03ClassicMetric(tie_policy='stable', cmc_mode='standard')
    CUHK03ClassicMetric(ap_mode='threshold')


def test_multi_target_test_loop_runs_every_split(tmp_path):
    """A DIMN-style run: the loop hands the dataset's splits to the metric
    and names the keys <target>/split<i>/<metric>, <target>/<metric>_std
    and dg/<metric>."""
    register_all_modules()
    folder = osp.join(tmp_path, 'i-LIDS_Pedestrian', 'Persons')
    os.makedirs(folder)
    rng = np.random.RandomState(0)
    for pid in range(1, 120):
        color = rng.randint(0, 255, 3)
        # 4 images per identity: 476 as published.
        for k in range(1, 5):
            image = np.clip(color + rng.randint(-20, 20, (16, 8, 3)), 0, 255)
            cv2.imwrite(
                osp.join(folder, f'{pid:04d}{k:03d}.jpg'),
                image.astype(np.uint8))
    pipeline = [
        dict(type='ReIDLoadImageFromFile'),
        dict(type='ReIDResize', size=(16, 8)),
        dict(type='PackReIDInputs'),
    ]
    target = dict(
        name='ilids',
        dataloader=dict(
            batch_size=64,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='QMULiLIDS', data_root=str(tmp_path), pipeline=pipeline)),
        evaluator=dict(type='DGSplitMetric', metric='euclidean'))
    runner = Runner(
        model=dict(
            type='ReIDModel',
            backbone=dict(
                type='ReIDResNet',
                depth=18,
                last_stride=1,
                base_channels=4,
                stem_channels=4),
            neck=dict(type='GlobalAvgPool'),
            head=dict(type='BNNeckHead', in_channels=32, num_classes=8)),
        work_dir=str(tmp_path / 'work'),
        test_dataloader=dict(),
        test_evaluator=dict(),
        test_cfg=dict(
            type='MultiTargetTestLoop',
            targets=[target],
            aggregate_prefix='dg'),
        default_scope='mmreid')
    metrics = runner.test()
    for i in range(10):
        assert metrics[f'ilids/split{i}/num_query'] == 60
        assert metrics[f'ilids/split{i}/num_gallery'] == 60
    values = [metrics[f'ilids/split{i}/R1'] for i in range(10)]
    assert metrics['ilids/R1'] == pytest.approx(np.mean(values))
    assert metrics['ilids/R1_std'] == pytest.approx(np.std(values))
    assert metrics['dg/R1'] == pytest.approx(metrics['ilids/R1'])
    # Colour-coded identities: far above chance (1/60) on every split.
    assert min(values) > 20


def test_classic_cmc_ranks_ties_in_gallery_order():
    """The gallery is ranked by a stable sort: of items at one distance,
    the earlier gallery item ranks first. One item per pid, so no draw:
    the positive's 0-based rank is the count of nearer items plus that of
    tied items before it."""
    from mmreid.evaluation.functional import classic_cmc
    dist = np.random.RandomState(0).randint(0, 3, (20, 40)).astype(float)
    q_pids, g_pids = np.arange(20), np.arange(40)
    ranks = [(row < row[q]).sum() + (row[:q] == row[q]).sum()
             for q, row in enumerate(dist)]
    expected = [np.mean([r <= k for r in ranks]) for k in range(40)]
    cmc, valid = classic_cmc(
        dist, q_pids, g_pids, np.zeros(20), np.ones(40), max_rank=40)
    assert valid.all()
    np.testing.assert_allclose(cmc, expected)


def test_classic_cmc_skips_a_query_whose_positives_share_its_camera():
    """Items of the query's pid and camid are removed: a query left
    without a positive is not valid and does not count."""
    from mmreid.evaluation.functional import classic_cmc

    # Query 0 (pid 1, cam 0) has its only positive in cam 0; query 1
    # (pid 2, cam 0) has its positive in cam 1, ranked second after g0.
    dist = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3]])
    cmc, valid = classic_cmc(
        dist, [1, 2], [1, 2, 3], [0, 0], [0, 1, 1], max_rank=3)
    assert valid.tolist() == [False, True]
    np.testing.assert_allclose(cmc, [0.0, 1.0, 1.0])


def test_dg_split_metric_reports_the_smallest_split():
    """num_query over the splits is the smallest split's (class docstring,
    as TrialGalleryMetric): a split short of queries must show in the
    summary, not be hidden behind the largest one."""
    samples, _, splits = build_fake_target()
    splits[1]['query'] = splits[1]['query'][:-2]
    metric = DGSplitMetric()
    metric.dataset_meta = dict(dg_splits=splits)
    metric.process(None, samples)
    metrics = metric.compute_metrics(metric.results)
    assert [metrics[f'split{i}/num_query'] for i in range(3)] == [12, 10, 12]
    assert (metrics['num_query'], metrics['num_valid_query']) == (10, 10)


def multi_shot_samples(dist, q_pids, g_pids, q_camids, g_camids):
    """Samples and a scorer whose distances are ``dist`` (indexed by the
    samples' one-dimensional features)."""
    samples = []
    for i, (pid, cam) in enumerate(zip(q_pids, q_camids)):
        samples.append(
            sample(f'/q/{i}', int(pid), int(cam), 'query',
                   torch.tensor([float(i)]), i))
    for j, (pid, cam) in enumerate(zip(g_pids, g_camids)):
        samples.append(
            sample(f'/g/{j}', int(pid), int(cam), 'gallery',
                   torch.tensor([float(j)]), 100 + j))

    def scorer(q, g):
        return torch.as_tensor(dist)[q[:, 0].long()][:, g[:, 0].long()]

    return samples, scorer


def test_cuhk03_classic_metric_draws_num_repeats_galleries():
    """Each query's CMC is the mean over ``num_repeats`` drawn galleries
    (spec section 5): with one draw it is 0 or 1 per query, so R1 is a
    multiple of 100 / 20 here, and it equals the reference drawing once.
    The report names the draws and the seed (protocol_settings)."""
    problem = multi_shot_problem(1)
    samples, scorer = multi_shot_samples(*problem)
    metric = CUHK03ClassicMetric(seed=3, num_repeats=1)
    metric.set_scorers(dict(given=scorer))
    metric.process(None, samples)
    got = metric.compute_metrics(metric.results)
    np.random.seed(3)
    expected = reference_eval_cuhk03(*problem, 50, num_repeats=1)
    assert got['R1'] == pytest.approx(100 * expected[0])
    assert got['R5'] == pytest.approx(100 * expected[4])
    assert got['R1'] / 5 == pytest.approx(round(got['R1'] / 5))
    assert metric.protocol_settings() == dict(num_repeats='1', seed='3')


def test_cuhk03_classic_metric_map_and_minp_are_the_full_gallerys():
    """AP (and INP) are computed on the full kept gallery, not on a draw
    (spec section 5): with several positives per query mAP and mINP
    differ, and each must be the full ranking's own."""
    problem = multi_shot_problem(1)
    samples, scorer = multi_shot_samples(*problem)
    metric = CUHK03ClassicMetric()
    metric.set_scorers(dict(given=scorer))
    metric.process(None, samples)
    got = metric.compute_metrics(metric.results)
    full = ReIDMetric()
    full.set_scorers(dict(given=scorer))
    full.process(None, samples)
    expected = full.compute_metrics(full.results)
    assert got['mAP'] == pytest.approx(expected['mAP'])
    assert got['mINP'] == pytest.approx(expected['mINP'])
    assert abs(expected['mAP'] - expected['mINP']) > 1


def test_cuhk03_classic_metric_counts_the_queries_it_averages():
    """A query whose positives all share its camera is removed by the
    Market rule and skipped (spec section 5: for each valid query):
    num_valid_query says the CMC averages over the others."""
    gen = torch.Generator().manual_seed(0)
    samples = []
    for pid in range(6):
        feature = torch.randn(4, generator=gen)
        samples.append(sample(f'/q/{pid}', pid + 1, 0, 'query', feature, pid))
        samples.append(
            sample(f'/g/{pid}', pid + 1, 0 if pid == 0 else 1, 'gallery',
                   feature + 0.1, 10 + pid))
    metric = CUHK03ClassicMetric()
    metric.process(None, samples)
    got = metric.compute_metrics(metric.results)
    assert (got['num_query'], got['num_valid_query']) == (6, 5)
    assert got['R1'] == 100


def test_dg_split_metric_ranks_each_split_with_its_options():
    """The ReIDMetric ranking options apply to every split (class
    docstring), not only to the positive check: a query whose positive
    ties with a negative ranks it first under tie_policy='stable' (the
    gallery order) and second under 'pessimistic'."""
    samples = [
        sample('/q/1', 1, 0, 'query', torch.tensor([0.0]), 0),
        sample('/g/1', 1, 1, 'gallery', torch.tensor([1.0]), 1),
        sample('/g/2', 2, 1, 'gallery', torch.tensor([-1.0]), 2)
    ]
    splits = [dict(query=['/q/1'], gallery=['/g/1', '/g/2'])] * 2
    for policy, r1, m_ap in (('stable', 100, 100), ('pessimistic', 0, 50)):
        metric = DGSplitMetric(tie_policy=policy, ranks=(1, ))
        metric.dataset_meta = dict(dg_splits=splits)
        metric.process(None, samples)
        metrics = metric.compute_metrics(metric.results)
        assert (metrics['split1/R1'], metrics['R1']) == (r1, r1)
        assert metrics['mAP'] == pytest.approx(m_ap)


def test_cuhk03_classic_metric_refuses_no_draw():
    """num_repeats=0 would average the CMC over no drawn gallery."""
    with pytest.raises(
            ValueError, match='num_repeats must be an integer >= 1, got 0'):
        CUHK03ClassicMetric(num_repeats=0)


def distractor_gallery_samples(distractor_pid):
    """One query (pid 1, camera 0); in the gallery (camera 1), three
    items of ``distractor_pid`` nearer than the true match, then pid 2."""
    samples = [sample('/q/1', 1, 0, 'query', torch.tensor([0.0]), 0)]
    for i, d in enumerate((1.0, 2.0, 3.0)):
        samples.append(
            sample(f'/g/d{i}', distractor_pid, 1, 'gallery', torch.tensor([d]),
                   1 + i))
    samples.append(sample('/g/1', 1, 1, 'gallery', torch.tensor([4.0]), 4))
    samples.append(sample('/g/2', 2, 1, 'gallery', torch.tensor([5.0]), 5))
    return samples


@pytest.mark.parametrize('metric_type', ['ReIDMetric', 'DGSplitMetric'])
def test_dedup_cmc_refuses_pid_0_distractors(metric_type):
    """GRID's 775 gallery distractors (and Market-1501's) share pid 0. The
    de-duplicated CMC keeps one item per pid of a ranked list, so by its
    definition the three distractors before the true match would count
    as one wrong identity and put it at rank 2, where the protocol
    (evaluation spec section 5: each distractor is a negative) puts it at
    rank 4. Such a gallery is refused under ``cmc_mode='dedup'``, naming
    the distractors; ``'standard'`` gives rank 4."""
    meta = dict(
        dataset_name='fake',
        dg_splits=[
            dict(
                query=['/q/1'],
                gallery=['/g/d0', '/g/d1', '/g/d2', '/g/1', '/g/2'])
        ])
    metric = METRICS.build(
        dict(
            type=metric_type,
            ranks=(1, 2, 4),
            cmc_mode='dedup',
            **({} if metric_type == 'ReIDMetric' else dict(
                check_single_positive=True))))
    metric.dataset_meta = meta
    metric.process(None, distractor_gallery_samples(0))
    with pytest.raises(ValueError, match=r"cmc_mode='dedup'.*3 item.*pid 0"):
        metric.compute_metrics(metric.results)

    standard = METRICS.build(
        dict(type=metric_type, ranks=(1, 2, 4), cmc_mode='standard'))
    standard.dataset_meta = meta
    standard.process(None, distractor_gallery_samples(0))
    metrics = standard.compute_metrics(standard.results)
    assert (metrics['R2'], metrics['R4']) == (0.0, 100.0)


def test_dedup_cmc_counts_pid_0_once_where_a_query_has_it():
    """Where a query has pid 0 (0-based labels), pid 0 is an identity and
    the de-duplicated CMC counts it once, by definition: the match of
    pid 1 behind three pid-0 items is at distinct-pid rank 2."""
    samples = distractor_gallery_samples(0)
    samples.append(sample('/q/0', 0, 0, 'query', torch.tensor([1.0]), 6))
    metric = ReIDMetric(ranks=(1, 2), cmc_mode='dedup')
    metric.process(None, samples)
    metrics = metric.compute_metrics(metric.results)
    # pid 0's query finds its own pid at rank 1; pid 1's at rank 2.
    assert (metrics['R1'], metrics['R2']) == (50.0, 100.0)


def test_reid_metric_on_one_dg_split_refuses_a_query_without_its_match():
    """One GRID split with the files' cameras (``assign_camids=False``): a
    probe that shares a camera with its true match loses it to the Market
    rule. DGSplitMetric refuses that split; ReIDMetric on the same split
    (``split_index=0``) skipped the query and printed R1 100 over the one
    query left, where the single-shot protocol ranks both. Refused,
    naming the query."""
    samples = [
        sample('/q/1', 1, 0, 'query', torch.tensor([0.0]), 0),
        sample('/q/2', 2, 0, 'query', torch.tensor([5.0]), 1),
        sample('/g/1', 1, 0, 'gallery', torch.tensor([3.0]), 2),
        sample('/g/2', 2, 1, 'gallery', torch.tensor([5.0]), 3),
        sample('/g/0', 0, 2, 'gallery', torch.tensor([1.0]), 4),
    ]
    meta = dict(
        dataset_name='grid',
        split_index=0,
        dg_splits=[
            dict(query=['/q/1', '/q/2'], gallery=['/g/1', '/g/2', '/g/0'])
        ])
    metric = ReIDMetric(ranks=(1, ))
    metric.dataset_meta = meta
    metric.process(None, samples)
    with pytest.raises(ValueError,
                       match=r"split 0: query '/q/1' has 0 valid positives"):
        metric.compute_metrics(metric.results)
    # A dataset without split_index keeps the skip-and-log rule.
    plain = ReIDMetric(ranks=(1, ))
    plain.dataset_meta = dict(dataset_name='custom')
    plain.process(None, samples)
    metrics = plain.compute_metrics(plain.results)
    assert (metrics['num_valid_query'], metrics['R1']) == (1, 100.0)
