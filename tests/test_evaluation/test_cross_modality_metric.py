import os.path as osp
import random
import re

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator

from mmreid.datasets import LLCM, SYSUMM01, RegDB
from mmreid.evaluation.functional import (group_pool, normalize_rand_perm_cam,
                                          official_gallery_draw,
                                          seeded_gallery_draw)
from mmreid.evaluation.metrics import (DGSplitMetric, LLCMMetric, RegDBMetric,
                                       ReIDMetric, SYSUMetric,
                                       TrialGalleryMetric, load_rand_perm_cam)
from mmreid.evaluation.sampling_error import (query_sampling_error,
                                              trial_sampling_errors)
from mmreid.registry import METRICS
from ..fixtures.dataset_trees import make_llcm, make_regdb, make_sysu
from ..fixtures.processes import REPO, load_tool


def make_sample(feat, pid, cam, role, idx, modality=0, path=None):
    """A data sample as mmengine passes it (``ReIDDataSample.to_dict()``);
    ``cam`` is the 1-based camera number, stored as camid ``cam - 1``."""
    return dict(
        pred_feature=torch.as_tensor(feat, dtype=torch.float32).reshape(-1),
        gt_label=torch.tensor([pid]),
        camid=cam - 1,
        role=role,
        modality=modality,
        sample_idx=idx,
        dataset='sysu-mm01-all',
        img_path=path or f'cam{cam}/{pid:04d}/{idx:04d}.jpg')


def run_metric(metric, samples, size=None):
    metric.process(None, samples)
    return metric.evaluate(len(samples) if size is None else size)


# Hand-built case: one visible image per (pid, camera), so every trial's
# single-shot gallery is the whole pool and the answer is worked out here.
QUERIES = [
    # (feature, pid, camera): A is a cam3 query, B a cam6 query and D a
    # cam3 query whose only positive is in cam2.
    (0.0, 1, 3),
    (10.0, 2, 6),
    (100.0, 4, 3),
]
POOL = [
    (0.1, 1, 2),  # skipped by A (cam2), although nearest and positive
    (0.2, 2, 2),  # skipped by A too: any pid
    (3.0, 1, 1),
    (1.0, 3, 1),
    (1.5, 3, 4),
    (10.5, 2, 1),
    (12.0, 2, 4),
    (9.0, 1, 4),
    (50.0, 4, 2),
]


def hand_samples():
    samples = [
        make_sample([f], p, c, 'query', i, modality=1)
        for i, (f, p, c) in enumerate(QUERIES)
    ]
    samples += [
        make_sample([f], p, c, 'gallery',
                    len(QUERIES) + i) for i, (f, p, c) in enumerate(POOL)
    ]
    return samples


def expected_hand_metrics():
    # A (q=0): kept items by distance: pid 3 (1.0), pid 3 (1.5), pid 1
    # (3.0), pid 1 (9.0), pid 2, pid 2: positives at full ranks 3 and 4;
    # de-duplicated pids 3, 1, 2 -> match at rank 2 (standard CMC: 3).
    ap_a, inp_a = (1 / 3 + 2 / 4) / 2, 2 / 4
    # B (q=10): 0.5 (2), 1 (1), 2 (2), 7 (1), 8.5 (3), 9 (3), 9.8 (2, cam2
    # kept for a cam6 query), 9.9 (1), 40 (4): positives at 1, 3, 7.
    ap_b, inp_b = (1 + 2 / 3 + 3 / 7) / 3, 3 / 7
    # D has no positive once cam2 is removed: skipped.
    return dict(
        R1=50.0,
        R2=100.0,
        R5=100.0,
        mAP=100 * (ap_a + ap_b) / 2,
        mINP=100 * (inp_a + inp_b) / 2)


def test_hand_built_sysu_case():
    metric = SYSUMetric(
        mode='all', num_trials=3, metric='euclidean', ranks=(1, 2, 5))
    results = run_metric(metric, hand_samples())
    expected = expected_hand_metrics()
    for trial in range(3):
        for key, value in expected.items():
            assert results[f'sysu-all/trial{trial}/{key}'] == pytest.approx(
                value), (trial, key)
        assert results[f'sysu-all/trial{trial}/num_gallery'] == len(POOL)
        assert results[f'sysu-all/trial{trial}/num_valid_query'] == 2
    for key, value in expected.items():
        assert results[f'sysu-all/{key}'] == pytest.approx(value)
        assert results[f'sysu-all/{key}_std'] == pytest.approx(0.0)
    assert results['sysu-all/num_query'] == 3
    assert results['sysu-all/num_valid_query'] == 2


def test_hand_built_standard_cmc_differs():
    # The de-duplicated CMC is what makes A a rank-2 match.
    metric = SYSUMetric(
        num_trials=1, metric='euclidean', ranks=(1, 2, 5), cmc_mode='standard')
    results = run_metric(metric, hand_samples())
    assert results['sysu-all/R2'] == pytest.approx(50.0)
    assert results['sysu-all/R5'] == pytest.approx(100.0)
    assert results['sysu-all/mAP'] == pytest.approx(
        expected_hand_metrics()['mAP'])


def test_cam6_query_keeps_cam2_and_cam3_query_drops_it():
    # A cam3 query whose nearest positive is in cam2 must not use it; the
    # same query from cam6 must.
    pool = [
        make_sample([0.0], 1, 2, 'gallery', 10),
        make_sample([5.0], 1, 1, 'gallery', 11),
        make_sample([1.0], 2, 1, 'gallery', 12)
    ]
    for cam, r1, inp in ((3, 0.0, 50.0), (6, 100.0, 200 / 3)):
        metric = SYSUMetric(num_trials=1, metric='euclidean')
        query = make_sample([0.0], 1, cam, 'query', 0, modality=1)
        results = run_metric(metric, [query] + pool)
        assert results['sysu-all/R1'] == pytest.approx(r1)
        assert results['sysu-all/mINP'] == pytest.approx(inp)


def random_pool(seed=0,
                pids=(1, 2, 3, 5),
                cams=(1, 2, 4, 5),
                dim=8,
                max_images=13):
    rng = np.random.default_rng(seed)
    samples = []
    idx = 100
    for pid in pids:
        for cam in cams:
            for image in range(1, int(rng.integers(1, max_images)) + 1):
                samples.append(
                    make_sample(
                        rng.standard_normal(dim),
                        pid,
                        cam,
                        'gallery',
                        idx,
                        path=f'cam{cam}/{pid:04d}/{image:04d}.jpg'))
                idx += 1
    queries = []
    for i, pid in enumerate(pids):
        for cam in (3, 6):
            for _ in range(2):
                queries.append(
                    make_sample(
                        rng.standard_normal(dim),
                        pid,
                        cam,
                        'query',
                        i,
                        modality=1))
                i += len(pids)
    for i, q in enumerate(queries):
        q['sample_idx'] = i
    return queries, samples


def pool_groups(metric, pool):
    keys = {
        s['sample_idx']: (int(s['gt_label']), s['camid'] + 1)
        for s in pool
    }
    return [[keys[i] for i in gallery]
            for gallery in metric.trial_gallery_sample_idx]


@pytest.mark.parametrize('shot,shots', [('single', 1), ('multi', 10)])
def test_gallery_draw_counts(shot, shots):
    queries, pool = random_pool()
    metric = SYSUMetric(shot=shot, num_trials=4)
    run_metric(metric, queries + pool)
    sizes = {}
    for s in pool:
        key = (int(s['gt_label']), s['camid'] + 1)
        sizes[key] = sizes.get(key, 0) + 1
    for keys in pool_groups(metric, pool):
        counts = {}
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        assert counts == {k: min(shots, n) for k, n in sizes.items()}
    for gallery in metric.trial_galleries:
        assert len(set(gallery)) == len(gallery)


def test_trials_differ_and_are_reproducible():
    queries, pool = random_pool()
    first = SYSUMetric(num_trials=5, seed=3)
    second = SYSUMetric(num_trials=5, seed=3)
    other = SYSUMetric(num_trials=5, seed=4)
    res_first = run_metric(first, queries + pool)
    res_second = run_metric(second, queries + pool)
    run_metric(other, queries + pool)
    assert first.trial_galleries == second.trial_galleries
    assert res_first == res_second
    assert len({tuple(g) for g in first.trial_galleries}) == 5
    assert other.trial_galleries != first.trial_galleries
    # seed + trial: trial 1 of seed 3 is trial 0 of seed 4.
    assert other.trial_galleries[0] == first.trial_galleries[1]


def reference_gallery_draw(paths, pids, cams, trial, prefix=''):
    """The reference loops' draw (AGW ``process_gallery_sysu``, LLCM's
    ``process_gallery_llcm``), written out: ``random.seed(trial)``, the
    ids in sorted order, the cameras in the given order, one
    ``random.choice(sorted(files))`` per (id, camera) that has files.

    Args:
        paths (list[str]): The gallery pool's image paths.
        pids (Iterable[int]): The pool's ids.
        cams (Sequence[int]): The cameras, in the order visited.
        trial (int): The trial (its seed).
        prefix (str): What precedes ``cam<k>/<pid:04d>/`` in a path.

    Returns:
        list[str]: The drawn paths, in draw order.
    """
    random.seed(trial)
    drawn = []
    for pid in sorted(pids):
        for cam in cams:
            files = sorted(
                p for p in paths
                if p.startswith(f'{prefix}cam{cam}/{pid:04d}/'))
            if files:
                drawn.append(random.choice(files))
    return drawn


def test_seeded_draw_matches_agw_loop():
    queries, pool = random_pool(seed=1)
    paths = [s['img_path'] for s in pool]
    groups = group_pool([int(s['gt_label']) for s in pool],
                        [s['camid'] + 1 for s in pool], paths)
    pids = {int(s['gt_label']) for s in pool}
    for trial in range(3):
        expected = reference_gallery_draw(paths, pids, (1, 2, 4, 5), trial)
        drawn = seeded_gallery_draw(groups, (1, 2, 4, 5), 1, trial)
        assert [paths[i] for i in drawn] == expected


@pytest.mark.parametrize('config,name', [
    ('configs/_base_/datasets/sysu_mm01.py', 'sysu-all'),
    ('configs/_base_/datasets/llcm.py', 'llcm-ir2vis'),
])
def test_base_config_evaluators_run_the_protocols_ten_trials(config, name):
    """SYSU-MM01 and LLCM average 10 gallery trials (AGW's and the LLCM
    reference's ``for trial in range(10)``); the base configs do not say
    ``num_trials``, so the metrics' defaults must be the protocol's."""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, config))
    metric = METRICS.build(cfg.test_evaluator)
    queries, pool = random_pool(seed=3)
    results = run_metric(metric, queries + pool)
    assert len(metric.trial_results) == 10
    assert len(metric.trial_galleries) == 10
    trials = {
        key.split('/')[1]
        for key in results if re.fullmatch(rf'{name}/trial\d+/mAP', key)
    }
    assert trials == {f'trial{t}' for t in range(10)}


def test_llcm_draw_visits_the_pool_cameras_in_ascending_order():
    """LLCM's reference (``process_gallery_llcm``) seeds ``random.seed(
    trial)`` and, for every id in sorted order, visits cam1, cam2, ...
    cam9 and takes ``random.choice`` of the sorted files; with
    ``gallery_cams=None`` TrialGalleryMetric takes every pool camera in
    ascending order (its docstring). Nine cameras with a missing one and
    images in random counts, so another order draws other images."""
    rng = np.random.default_rng(4)
    pool = []
    for pid in (2, 7, 11):
        for cam in range(1, 10):
            if cam == 3 and pid != 7:
                continue  # as LLCM's NIR cam3: absent for these ids
            for image in range(int(rng.integers(2, 6))):
                pool.append(
                    make_sample(
                        rng.standard_normal(4),
                        pid,
                        cam,
                        'gallery',
                        1000 + len(pool),
                        path=f'test_vis/cam{cam}/{pid:04d}/{image:02d}.jpg'))
    queries = [
        make_sample(rng.standard_normal(4), pid, 1, 'query', i, modality=1)
        for i, pid in enumerate((2, 7, 11))
    ]
    metric = LLCMMetric(num_trials=2)
    run_metric(metric, queries + pool)
    paths = {s['sample_idx']: s['img_path'] for s in pool}
    for trial in range(2):
        expected = reference_gallery_draw(
            list(paths.values()), (2, 7, 11), range(1, 10), trial, 'test_vis/')
        drawn = [paths[i] for i in metric.trial_gallery_sample_idx[trial]]
        assert drawn == expected, trial


def test_seeded_draw_does_not_depend_on_the_pool_order():
    """AGW draws ``random.choice(sorted(files))``: the gallery depends on
    the file names, not on the order the pool records arrive in (loader,
    distributed collection, a pool other than the SYSU parser's)."""
    _, pool = random_pool(seed=1)
    order = np.random.default_rng(0).permutation(len(pool))
    pool = [pool[i] for i in order]
    paths = [s['img_path'] for s in pool]
    assert paths != sorted(paths)
    groups = group_pool([int(s['gt_label']) for s in pool],
                        [s['camid'] + 1 for s in pool], paths)
    pids = {int(s['gt_label']) for s in pool}
    for trial in range(3):
        expected = reference_gallery_draw(paths, pids, (1, 2, 4, 5), trial)
        drawn = seeded_gallery_draw(groups, (1, 2, 4, 5), 1, trial)
        assert [paths[i] for i in drawn] == expected


def test_indoor_uses_cams_1_and_2_only():
    queries, pool = random_pool()
    metric = SYSUMetric(mode='indoor', num_trials=3)
    results = run_metric(metric, queries + pool)
    for keys in pool_groups(metric, pool):
        assert {cam for _, cam in keys} == {1, 2}
    pids = {int(s['gt_label']) for s in pool}
    assert results['sysu-indoor/trial0/num_gallery'] == 2 * len(pids)


def naive_sysu(dist, q_pids, g_pids, q_cams, g_cams, ranks):
    """Sort-based reference with camera numbers (cam3 skips cam2)."""
    cmc, aps, inps = [], [], []
    for i in range(len(q_pids)):
        keep = ~((q_cams[i] == 3) & (g_cams == 2))
        order = np.argsort(dist[i][keep], kind='stable')
        pids = g_pids[keep][order]
        match = pids == q_pids[i]
        if not match.any():
            continue
        pos = np.flatnonzero(match) + 1
        aps.append(np.mean(np.arange(1, len(pos) + 1) / pos))
        inps.append(len(pos) / pos[-1])
        _, first = np.unique(pids, return_index=True)
        dedup = pids[np.sort(first)]
        rank = np.flatnonzero(dedup == q_pids[i])[0] + 1
        cmc.append([rank <= k for k in ranks])
    cmc = np.mean(cmc, axis=0) * 100
    values = {f'R{k}': c for k, c in zip(ranks, cmc)}
    values.update(mAP=np.mean(aps) * 100, mINP=np.mean(inps) * 100)
    return values


def cosine_problem(queries, pool):
    """Cosine distances, labels (1-based cameras) and the pool groups of
    samples made by :func:`random_pool`."""
    q = torch.stack([s['pred_feature'] for s in queries])
    g = torch.stack([s['pred_feature'] for s in pool])
    q, g = [torch.nn.functional.normalize(x, dim=1) for x in (q, g)]
    dist = (1 - q @ g.t()).numpy()
    q_pids = np.array([int(s['gt_label']) for s in queries])
    g_pids = np.array([int(s['gt_label']) for s in pool])
    q_cams = np.array([s['camid'] + 1 for s in queries])
    g_cams = np.array([s['camid'] + 1 for s in pool])
    groups = group_pool(g_pids.tolist(), g_cams.tolist(),
                        [s['img_path'] for s in pool])
    return dist, q_pids, g_pids, q_cams, g_cams, groups


def test_end_to_end_matches_naive_reference_and_std():
    queries, pool = random_pool(seed=2, max_images=6)
    ranks = (1, 2, 5)
    metric = SYSUMetric(num_trials=4, ranks=ranks)
    results = run_metric(metric, queries + pool)
    dist, q_pids, g_pids, q_cams, g_cams, groups = cosine_problem(
        queries, pool)
    per_trial = {}
    for trial in range(4):
        idx = seeded_gallery_draw(groups, (1, 2, 4, 5), 1, trial)
        expected = naive_sysu(dist[:, idx], q_pids, g_pids[idx], q_cams,
                              g_cams[idx], ranks)
        for key, value in expected.items():
            assert results[f'sysu-all/trial{trial}/{key}'] == pytest.approx(
                value, abs=1e-4), (trial, key)
            per_trial.setdefault(key, []).append(value)
    for key, values in per_trial.items():
        assert results[f'sysu-all/{key}'] == pytest.approx(np.mean(values))
        assert results[f'sysu-all/{key}_std'] == pytest.approx(
            np.std(values, ddof=0), abs=1e-4)
    assert len(set(per_trial['mAP'])) > 1  # the std is not trivially 0
    metric_keys = ['R1', 'R2', 'R5', 'mAP', 'mINP']
    expected_keys = {f'sysu-all/{k}' for k in metric_keys}
    expected_keys |= {f'sysu-all/{k}_std' for k in metric_keys}
    expected_keys |= {
        f'sysu-all/trial{t}/{k}'
        for t in range(4)
        for k in metric_keys + ['num_query', 'num_valid_query', 'num_gallery']
    }
    expected_keys |= {'sysu-all/num_query', 'sysu-all/num_valid_query'}
    assert set(results) == expected_keys


def test_trial_sampling_errors_are_those_of_the_reported_averages():
    # Each query's R1 hit (de-duplicated CMC, cam3 skips cam2) and AP are
    # worked out per trial by a naive sort, averaged over the trials, then
    # averaged over the queries of each identity.
    queries, pool = random_pool(seed=3, pids=(1, 2, 3, 5, 8, 9), max_images=5)
    metric = SYSUMetric(num_trials=3)
    results = run_metric(metric, queries + pool)
    dist, q_pids, g_pids, q_cams, g_cams, groups = cosine_problem(
        queries, pool)
    hits = np.zeros((3, len(queries)))
    aps = np.zeros((3, len(queries)))
    for trial in range(3):
        idx = seeded_gallery_draw(groups, (1, 2, 4, 5), 1, trial)
        for i in range(len(queries)):
            keep = ~((q_cams[i] == 3) & (g_cams[idx] == 2))
            order = np.argsort(dist[i, idx][keep], kind='stable')
            match = g_pids[idx][keep][order] == q_pids[i]
            assert match.any()  # every query is valid in every trial
            pos = np.flatnonzero(match) + 1
            aps[trial, i] = np.mean(np.arange(1, len(pos) + 1) / pos)
            hits[trial, i] = g_pids[idx][keep][order][0] == q_pids[i]
    errors = trial_sampling_errors(metric.trial_results,
                                   metric.trial_query_pids)
    np.testing.assert_array_equal(metric.trial_query_pids, q_pids)
    assert errors['R1'].value == pytest.approx(results['sysu-all/R1'])
    assert errors['mAP'].value == pytest.approx(results['sysu-all/mAP'])
    for name, per_trial in (('R1', hits), ('mAP', aps)):
        expected = query_sampling_error(100 * per_trial.mean(0), q_pids)
        assert errors[name].se_clustered == pytest.approx(
            expected.se_clustered)
        assert errors[name].se_independent == pytest.approx(
            expected.se_independent)
        assert errors[name].num_identities == 6


def test_duplicated_sample_idx_gives_identical_results():
    queries, pool = random_pool(seed=5)
    samples = queries + pool
    clean = run_metric(SYSUMetric(num_trials=3), samples)
    padded = samples + [dict(s) for s in samples[:3]] + [dict(pool[0])]
    dirty = run_metric(SYSUMetric(num_trials=3), padded)
    assert clean == dirty


def test_official_draw_takes_first_shots_of_row_t():
    pool = [
        make_sample([0.0],
                    pid,
                    cam,
                    'gallery',
                    0,
                    path=f'cam{cam}/{pid:04d}/{image:04d}.jpg')
        for pid in (1, 2) for cam in (1, 2) for image in (1, 2, 3)
    ]
    paths = [s['img_path'] for s in pool]
    groups = group_pool([int(s['gt_label']) for s in pool],
                        [s['camid'] + 1 for s in pool], paths)
    # rand_perm_cam{cam}{pid}: 10 x n permutations, row t = trial t.
    perms = [[[[(t + j + pid + cam) % 3 + 1 for j in range(3)]
               for t in range(10)] for pid in (1, 2)] for cam in range(1, 7)]
    for trial in (0, 4):
        for shots in (1, 2):
            drawn = official_gallery_draw(perms, groups, paths, (1, 2), shots,
                                          trial)
            expected = [
                f'cam{cam}/{pid:04d}/{number:04d}.jpg' for cam in (1, 2)
                for pid in (1, 2)
                for number in perms[cam - 1][pid - 1][trial][:shots]
            ]
            assert [paths[i] for i in drawn] == expected


def test_official_draw_through_metric_and_errors():
    queries, pool = random_pool(seed=6, pids=(1, 2), max_images=4)
    # Every row a permutation that starts with image 1.
    perms = [[[[1, 2, 3] for _ in range(10)] for _ in range(2)]
             for _ in range(6)]
    metric = SYSUMetric(num_trials=2, rand_perm_cam=perms)
    assert metric.gallery_draw == 'official_rand_perm'
    run_metric(metric, queries + pool)
    for gallery in metric.trial_galleries:
        assert all(pool[i]['img_path'].endswith('/0001.jpg') for i in gallery)
    with pytest.raises(ValueError, match='needs rand_perm_cam'):
        SYSUMetric(gallery_draw='official_rand_perm')
    with pytest.raises(ValueError, match='mode'):
        SYSUMetric(mode='outdoor')
    with pytest.raises(ValueError, match='shot'):
        SYSUMetric(shot='double')
    with pytest.raises(ValueError, match='rerank'):
        SYSUMetric(rerank=dict(k1=20, k2=6, lambda_value=0.3))


def test_official_draw_refuses_a_seed_it_would_ignore():
    """SYSUMetric(seed=5) with the official draw printed the seed=0
    numbers: rand_perm_cam fixes every draw (audit t12_seed_ignored.py:
    seed 0 and 5 identical). The seeded draw keeps its seed."""
    perms = [[[[1, 2, 3] for _ in range(10)] for _ in range(2)]
             for _ in range(6)]
    with pytest.raises(
            ValueError,
            match="seed=5 has no effect with gallery_draw="
            "'official_rand_perm'"):
        SYSUMetric(num_trials=2, rand_perm_cam=perms, seed=5)
    assert SYSUMetric(rand_perm_cam=perms, seed=0).seed == 0
    assert SYSUMetric(gallery_draw='agw_seeded', seed=5).seed == 5


def test_seeded_draw_refuses_official_draws_it_would_ignore():
    # The file was loaded and checked, then never read: the seeded draws'
    # numbers were printed for a config that named the official ones.
    perms = [[[[1, 2, 3] for _ in range(10)] for _ in range(2)]
             for _ in range(6)]
    with pytest.raises(
            ValueError, match="'agw_seeded'.*never reads "
            'rand_perm_cam'):
        SYSUMetric(rand_perm_cam=perms, gallery_draw='agw_seeded')


SYSU_FIXTURES = osp.join(
    osp.dirname(__file__), '..', '..', '..', 'shared', 'fixtures', 'sysu_mm01')
needs_sysu_files = pytest.mark.skipif(
    not osp.isfile(osp.join(SYSU_FIXTURES, 'rand_perm_cam.mat')),
    reason='the official SYSU-MM01 split files are read from '
    '../shared/fixtures/sysu_mm01/, which this checkout does not have')


def official_files():
    mat4py = pytest.importorskip('mat4py')
    perms = mat4py.loadmat(osp.join(SYSU_FIXTURES, 'rand_perm_cam.mat'))
    test_id = mat4py.loadmat(osp.join(SYSU_FIXTURES, 'test_id.mat'))['id']
    return perms['rand_perm_cam'], test_id


def reference_testing_gallery(raw, test_id, gallery_cams, number_shot,
                              run_time):
    """The gallery of ``get_testing_set.m``, from the README's definition.

    Written against the file as mat4py reads it: ``raw[c - 1][0]`` is the
    1 x N cell of camera c, its k-th item (id k) is ``[matrix]``, the
    matrix a list of 10 rows of 1-based image numbers (empty rows: the id
    has no image there). For every gallery camera in list order, every id
    k = 1..N that is a test id and has images, take the first
    ``number_shot`` numbers of row ``run_time`` (1-based) -> files
    ``cam<c>/<k:04d>/<i:04d>.jpg``, in that order.
    """
    files = []
    for cam in gallery_cams:
        cell = raw[cam - 1][0]
        for k in range(1, len(cell) + 1):
            if k not in test_id:
                continue
            row = cell[k - 1][0][run_time - 1]
            if not row:
                continue
            files += [
                f'cam{cam}/{k:04d}/{i:04d}.jpg' for i in row[:number_shot]
            ]
    return files


def official_pool(raw, test_id, cams):
    """Every visible image of the test ids, one sample per file, shuffled
    so the draw cannot rely on the pool order."""
    paths = []
    for cam in cams:
        cell = raw[cam - 1][0]
        for pid in test_id:
            if pid <= len(cell) and cell[pid - 1][0][0]:
                paths += [(pid, cam, f'cam{cam}/{pid:04d}/{i:04d}.jpg')
                          for i in range(1, len(cell[pid - 1][0][0]) + 1)]
    random.Random(0).shuffle(paths)
    return paths


@needs_sysu_files
@pytest.mark.parametrize('mode,cams,shots,sizes', [
    ('all', (1, 2, 4, 5), 1, 301),
    ('indoor', (1, 2), 1, 112),
    ('all', (1, 2, 4, 5), 10, None),
])
def test_official_draw_on_the_real_file_equals_get_testing_set(
        mode, cams, shots, sizes):
    raw, test_id = official_files()
    perms = load_rand_perm_cam(osp.join(SYSU_FIXTURES, 'rand_perm_cam.mat'))
    pool = official_pool(raw, test_id, (1, 2, 4, 5))
    paths = [p for _, _, p in pool]
    groups = group_pool([p for p, _, _ in pool], [c for _, c, _ in pool],
                        paths)
    for trial in range(10):
        drawn = official_gallery_draw(perms, groups, paths, cams, shots,
                                      trial)
        expected = reference_testing_gallery(raw, test_id, cams, shots,
                                             trial + 1)
        assert [paths[i] for i in drawn] == expected
        if sizes is not None:  # the commonly reported gallery sizes
            assert len(drawn) == sizes
    # The raw mat4py lists are accepted as well (normalised on the way).
    assert official_gallery_draw(raw, groups, paths, cams, shots, 3) == \
        official_gallery_draw(perms, groups, paths, cams, shots, 3)


@needs_sysu_files
def test_sysu_metric_with_the_real_rand_perm_cam_file():
    raw, test_id = official_files()
    test_id = test_id[:12]  # a smaller pool keeps the test fast
    pool = official_pool(raw, test_id, (1, 2, 4, 5))
    rng = np.random.default_rng(0)
    samples = [
        make_sample(rng.standard_normal(4), pid, 3, 'query', i, modality=1)
        for i, pid in enumerate(test_id)
    ]
    samples += [
        make_sample(
            rng.standard_normal(4), pid, cam, 'gallery', 1000 + i, path=path)
        for i, (pid, cam, path) in enumerate(pool)
    ]
    path = osp.join(SYSU_FIXTURES, 'rand_perm_cam.mat')
    metric = SYSUMetric(mode='all', rand_perm_cam=path)
    assert metric.gallery_draw == 'official_rand_perm'
    results = run_metric(metric, samples)
    assert results['sysu-all/num_query'] == len(test_id)
    kept = [s for s in samples if s['role'] == 'gallery']
    for trial, gallery in enumerate(metric.trial_galleries):
        expected = reference_testing_gallery(raw, test_id, (1, 2, 4, 5), 1,
                                             trial + 1)
        assert [kept[i]['img_path'] for i in gallery] == expected
        assert results[f'sysu-all/trial{trial}/num_gallery'] == len(expected)


def test_malformed_rand_perm_cam_names_file_and_layout(tmp_path):
    mat4py = pytest.importorskip('mat4py')
    files = [
        (dict(other=[1, 2]), 'no variable "rand_perm_cam"'),
        (dict(rand_perm_cam=[[1, 2], [2, 1]]), 'rand_perm_cam is '),
    ]
    for i, (content, where) in enumerate(files):
        path = str(tmp_path / f'bad{i}.mat')
        mat4py.savemat(path, content)
        with pytest.raises(ValueError) as info:
            SYSUMetric(rand_perm_cam=path)
        message = str(info.value)
        assert path in message and where in message, message
        assert '10 x n matrix' in message
    not_mat = tmp_path / 'page.mat'
    not_mat.write_text('<html>not found</html>')
    with pytest.raises(ValueError, match='page.mat: cannot be read'):
        SYSUMetric(rand_perm_cam=str(not_mat))
    with pytest.raises(FileNotFoundError, match='missing.mat'):
        SYSUMetric(rand_perm_cam=str(tmp_path / 'missing.mat'))
    # Nested content mat4py cannot write: checked the same way.
    good = [[[[2, 1, 3]] * 10] for _ in range(6)]
    cases = [
        (good[:5], r'rand_perm_cam is '),
        (good[:5] + [[[[1, 2]] * 9]], r'rand_perm_cam\{6\}\{1\} is '),
        (good[:5] + [[[[1, 1, 3]] * 10]],
         r'rand_perm_cam\{6\}\{1\}\(1,:\) is \[1, 1, 3\]'),
    ]
    for value, where in cases:
        with pytest.raises(ValueError) as info:
            normalize_rand_perm_cam(value, 'my_perms.mat')
        message = str(info.value)
        assert message.startswith('my_perms.mat: ')
        assert re.search(where, message), message
    assert normalize_rand_perm_cam(good, 'x')[5][0][9] == [2, 1, 3]


def test_official_draw_refuses_a_pick_missing_from_the_pool():
    perms = [[[[2, 1]] * 10] for _ in range(6)]
    paths = ['cam1/0001/0001.jpg']  # image 2 of cam1/0001 is missing
    groups = group_pool([1], [1], paths)
    with pytest.raises(ValueError, match='cam1/0001/0002 in trial 0'):
        official_gallery_draw(perms, groups, paths, (1, ), 1, 0)


def test_official_draw_refuses_two_files_of_one_image_number():
    """The permutations pick images by number; two pool files of one
    (id, camera) with the same number (``0002.jpg`` and ``0002.png``, a
    converted copy beside the original) left the draw to keep whichever
    came last, silently. It is refused, naming both files."""
    perms = [[[[2, 1]] * 10] for _ in range(6)]
    paths = ['cam1/0001/0001.jpg', 'cam1/0001/0002.jpg', 'cam1/0001/0002.png']
    groups = group_pool([1, 1, 1], [1, 1, 1], paths)
    with pytest.raises(
            ValueError,
            match=r"cam1/0001 has two images numbered 2: "
            r"'cam1/0001/0002\.jpg' and 'cam1/0001/0002\.png'"):
        official_gallery_draw(perms, groups, paths, (1, ), 1, 0)
    # Without the copy, image 2 is drawn.
    groups = group_pool([1, 1], [1, 1], paths[:2])
    assert official_gallery_draw(perms, groups, paths[:2], (1, ), 1, 0) == [1]


def llcm_samples(direction):
    """NIR cams 1, 2 and VIS cams 1, 2, 3 (camid = K - 1 for both)."""
    rng = np.random.default_rng(7)
    nir = [(pid, cam) for pid in (1, 2, 3) for cam in (1, 2) for _ in range(2)]
    vis = [(pid, cam) for pid in (1, 2, 3) for cam in (1, 2, 3)
           for _ in range(3)]
    query, pool = (nir, vis) if direction == 'ir2vis' else (vis, nir)
    # NIR is modality 1, VIS modality 0 (LLCM.MODALITIES).
    q_modality = 1 if direction == 'ir2vis' else 0
    samples = [
        make_sample(
            rng.standard_normal(4),
            p,
            c,
            'query',
            i,
            modality=q_modality,
            path=f'q/cam{c}/{p:04d}/{i:04d}.jpg')
        for i, (p, c) in enumerate(query)
    ]
    samples += [
        make_sample(
            rng.standard_normal(4),
            p,
            c,
            'gallery',
            100 + i,
            modality=1 - q_modality,
            path=f'g/cam{c}/{p:04d}/{i:04d}.jpg')
        for i, (p, c) in enumerate(pool)
    ]
    return samples


def test_llcm_same_pid_same_cam_removal():
    metric = LLCMMetric(num_trials=1, metric='euclidean')
    samples = [
        make_sample([0.0], 1, 1, 'query', 0, modality=1),  # NIR
        make_sample([0.0], 1, 1, 'gallery', 1),  # same pid + cam: removed
        make_sample([1.0], 2, 1, 'gallery', 2),  # same cam, other pid: kept
        make_sample([2.0], 1, 2, 'gallery', 3),
    ]
    results = run_metric(metric, samples)
    assert results['llcm-ir2vis/R1'] == pytest.approx(0.0)
    assert results['llcm-ir2vis/R5'] == pytest.approx(100.0)
    assert results['llcm-ir2vis/mAP'] == pytest.approx(50.0)


def test_llcm_vis2ir_transposed_uses_sampled_nir_as_queries():
    samples = llcm_samples('vis2ir')
    num_vis = 3 * 3 * 3
    transposed = LLCMMetric(direction='vis2ir', num_trials=2)
    results = run_metric(transposed, samples)
    # 3 pids x 2 NIR cams sampled once each: the probes; all VIS: gallery.
    assert results['llcm-vis2ir/trial0/num_query'] == 6
    assert results['llcm-vis2ir/trial0/num_gallery'] == num_vis
    symmetric = LLCMMetric(
        direction='vis2ir', vis2ir_mode='symmetric', num_trials=2)
    results = run_metric(symmetric, samples)
    assert results['llcm-vis2ir/trial0/num_query'] == num_vis
    assert results['llcm-vis2ir/trial0/num_gallery'] == 6
    ir2vis = LLCMMetric(num_trials=2)
    results = run_metric(ir2vis, llcm_samples('ir2vis'))
    assert results['llcm-ir2vis/trial0/num_query'] == 12
    assert results['llcm-ir2vis/trial0/num_gallery'] == 9


def test_llcm_metric_refuses_a_dataset_of_the_other_direction(tmp_path):
    """The direction decides which modality is the probe; a metric of the
    other direction would print the other probes' numbers under its own
    direction's keys."""
    make_llcm(str(tmp_path))
    vis2ir = LLCM(str(tmp_path), split='test', direction='vis2ir').metainfo
    ir2vis = LLCM(str(tmp_path), split='test', direction='ir2vis').metainfo
    for metric_direction, meta in (('ir2vis', vis2ir), ('vis2ir', ir2vis)):
        metric = LLCMMetric(direction=metric_direction, num_trials=2)
        with pytest.raises(
                ValueError,
                match=f"direction='{metric_direction}'.*"
                f"{meta['dataset_name']}.*direction='{meta['direction']}'"):
            metric.dataset_meta = meta
        # As mmengine's loops hand it over.
        with pytest.raises(ValueError, match='direction'):
            Evaluator([metric]).dataset_meta = meta
    # A dataset that does not say its direction cannot be checked.
    with pytest.raises(ValueError, match=r"dataset_meta\['direction'\]"):
        LLCMMetric().dataset_meta = dict(
            dataset_name='reid', protocol_metric='LLCMMetric')
    # The matching direction is accepted and evaluated.
    metric = LLCMMetric(direction='vis2ir', num_trials=2)
    metric.dataset_meta = vis2ir
    results = run_metric(metric, llcm_samples('vis2ir'))
    assert results['llcm-vis2ir/trial0/num_query'] == 6
    metric = LLCMMetric(direction='ir2vis', num_trials=2)
    metric.dataset_meta = ir2vis
    results = run_metric(metric, llcm_samples('ir2vis'))
    assert results['llcm-ir2vis/trial0/num_query'] == 12


def test_sysu_all_search_refuses_an_indoor_pool(tmp_path):
    """An indoor dataset's pool holds cams 1 and 2 only: all-search on it
    would print indoor numbers; indoor search on an all pool keeps cams 1
    and 2 (documented) and is accepted."""
    make_sysu(str(tmp_path))
    indoor = SYSUMM01(str(tmp_path), split='test', mode='indoor').metainfo
    every = SYSUMM01(str(tmp_path), split='test', mode='all').metainfo
    with pytest.raises(ValueError,
                       match="mode='all'.*sysu-mm01-indoor.*mode='indoor'"):
        SYSUMetric(mode='all').dataset_meta = indoor
    SYSUMetric(mode='all').dataset_meta = every
    SYSUMetric(mode='indoor').dataset_meta = indoor
    SYSUMetric(mode='indoor').dataset_meta = every


def test_a_protocol_metric_refuses_a_dataset_of_no_protocol(tmp_path):
    """SYSUMetric accepted a dataset that declares no protocol and ran the
    SYSU draw on it (audit: 'SYSUMetric on regdb-v2t -> R1 12.22 mAP
    37.22 gallery per trial 6 of 18'). A trial metric evaluates only the
    pool of its protocol's datasets; DGSplitMetric needs dg_splits."""
    make_sysu(str(tmp_path / 'sysu'))
    make_llcm(str(tmp_path / 'llcm'))
    regdb = dict(dataset_name='regdb-v2t', trial=1, direction='v2t')
    for metric, declared in ((SYSUMetric(), 'SYSUMetric'),
                             (SYSUMetric(mode='indoor'), 'SYSUMetric'),
                             (LLCMMetric(direction='vis2ir'), 'LLCMMetric')):
        name = type(metric).__name__
        with pytest.raises(
                ValueError,
                match=f"{name} cannot evaluate dataset 'regdb-v2t' "
                r"\(protocol_metric=None\).*"
                f"declares protocol_metric='{declared}'"):
            metric.dataset_meta = regdb
        # As mmengine's loops hand it over, before any extraction.
        with pytest.raises(ValueError, match='regdb-v2t'):
            Evaluator([metric]).dataset_meta = regdb
    with pytest.raises(
            ValueError,
            match="DGSplitMetric cannot evaluate dataset 'regdb-v2t'.*"
            'dg_splits'):
        DGSplitMetric().dataset_meta = regdb
    # The datasets of the protocol are accepted.
    SYSUMetric().dataset_meta = SYSUMM01(
        str(tmp_path / 'sysu'), split='test').metainfo
    LLCMMetric().dataset_meta = LLCM(
        str(tmp_path / 'llcm'), split='test').metainfo


def test_only_the_trial_metric_evaluates_a_gallery_pool(tmp_path):
    """SYSU-MM01's and LLCM's test gallery is the pool each trial draws
    its gallery from; ranked whole it is no protocol's gallery. A metric
    other than the dataset's trial metric refuses it, naming the dataset
    and the metric to use."""
    make_sysu(str(tmp_path / 'sysu'))
    make_llcm(str(tmp_path / 'llcm'))
    sysu = SYSUMM01(str(tmp_path / 'sysu'), split='test').metainfo
    llcm = LLCM(str(tmp_path / 'llcm'), split='test').metainfo
    for meta, right in ((sysu, SYSUMetric), (llcm, LLCMMetric)):
        others = [ReIDMetric(), DGSplitMetric(), TrialGalleryMetric()]
        others.append(LLCMMetric() if right is SYSUMetric else SYSUMetric())
        for metric in others:
            with pytest.raises(
                    ValueError,
                    match=f'{type(metric).__name__}.*'
                    f"{meta['dataset_name']}.*{right.__name__}"):
                metric.dataset_meta = meta
        right().dataset_meta = meta
    # The training split is no test protocol.
    ReIDMetric().dataset_meta = SYSUMM01(str(tmp_path / 'sysu')).metainfo


def regdb_samples(direction, seed=0, num_ids=5, per_id=3):
    """A RegDB-like test set: visible images (camid 0, modality 0) and
    thermal ones (camid 1, modality 1) of the same ids, the queries of the
    direction's modality first."""
    rng = np.random.default_rng(seed)
    query_mod = 0 if direction == 'v2t' else 1
    samples = []
    for role, mod in (('query', query_mod), ('gallery', 1 - query_mod)):
        for pid in range(num_ids):
            for _ in range(per_id):
                feat = rng.normal(size=4) + 0.8 * np.eye(4)[pid % 4]
                samples.append(
                    make_sample(
                        feat,
                        pid,
                        mod + 1,
                        role,
                        len(samples),
                        modality=mod,
                        path=f'{role}/{pid}_{len(samples)}.bmp'))
    return samples


def naive_regdb(samples, ranks):
    """RegDB from its definition: every query against the whole gallery by
    cosine distance, nothing removed, standard (not de-duplicated) CMC; AP
    the mean precision at the positives' ranks, INP the share of positives
    within the rank of the last one."""
    queries = [s for s in samples if s['role'] == 'query']
    gallery = [s for s in samples if s['role'] == 'gallery']
    cmc, aps, inps = [], [], []
    for q in queries:
        dists = []
        for g in gallery:
            a, b = q['pred_feature'].double(), g['pred_feature'].double()
            dists.append(1 - float(a @ b) / float(a.norm() * b.norm()))
        order = np.argsort(dists, kind='stable')
        match = np.array(
            [int(gallery[j]['gt_label']) == int(q['gt_label']) for j in order])
        pos = np.flatnonzero(match) + 1
        cmc.append([pos[0] <= k for k in ranks])
        aps.append(np.mean(np.arange(1, len(pos) + 1) / pos))
        inps.append(len(pos) / pos[-1])
    values = {f'R{k}': c * 100 for k, c in zip(ranks, np.mean(cmc, axis=0))}
    values.update(mAP=np.mean(aps) * 100, mINP=np.mean(inps) * 100)
    return values


@pytest.mark.parametrize('direction', ['v2t', 't2v'])
def test_regdb_metric_keys_name_the_direction_and_match_the_definition(
        direction):
    """Both directions of one model were logged under ``reid/`` keys (only
    a log line named the direction); the keys now name it, as the
    multi-target targets ``regdb-v2t``/``regdb-t2v`` do, and the numbers
    are the protocol's (cosine, nothing removed, standard CMC)."""
    ranks = (1, 2, 5)
    samples = regdb_samples(direction)
    metric = RegDBMetric(direction=direction, ranks=ranks)
    results = run_metric(metric, samples)
    expected = naive_regdb(samples, ranks)
    assert 0 < expected['R1'] < 100  # neither trivial nor saturated
    for key, value in expected.items():
        assert results[f'regdb-{direction}/{key}'] == pytest.approx(
            value, abs=1e-4), key
    assert results[f'regdb-{direction}/num_query'] == 15
    assert not any(k.startswith('reid/') for k in results)
    assert metric.protocol_settings() == dict(direction=direction)


def test_regdb_refuses_options_outside_its_protocol(tmp_path):
    """Re-ranking and query expansion are never part of the VI protocols
    (evaluation.md 10): SYSUMetric and LLCMMetric refused them, while a
    RegDB run took them through ReIDMetric and printed the re-ranked number
    as RegDB's. RegDB's test set now names its metric, which refuses them,
    and any other metric refuses the set."""
    make_regdb(str(tmp_path))
    meta = RegDB(
        str(tmp_path), split='test', trial=1, direction='t2v').metainfo
    rerank = dict(k1=20, k2=6, lambda_value=0.3)
    with pytest.raises(
            ValueError,
            match=r"ReIDMetric cannot evaluate dataset 'regdb-t2v'.*"
            r"dict\(type='RegDBMetric'"):
        ReIDMetric(rerank=rerank).dataset_meta = meta
    with pytest.raises(ValueError, match='regdb-t2v'):
        Evaluator([ReIDMetric(distance='cosine',
                              junk_rule='none')]).dataset_meta = meta
    for option, value in (('rerank', rerank), ('query_expansion', dict(k=2)),
                          ('verification_fprs', (1e-2, ))):
        with pytest.raises(
                ValueError, match=f'RegDBMetric does not support {option}'):
            RegDBMetric(direction='t2v', **{option: value})
    RegDBMetric(direction='t2v').dataset_meta = meta
    # A trial metric names RegDB's metric too.
    with pytest.raises(ValueError, match=r"dict\(type='RegDBMetric'"):
        SYSUMetric().dataset_meta = meta
    # The training split is no test protocol.
    ReIDMetric().dataset_meta = RegDB(str(tmp_path), trial=1).metainfo


def test_regdb_metric_refuses_another_direction_or_dataset(tmp_path):
    """A metric of the other direction would log one direction's numbers
    under the other's keys; a set that is not RegDB's test set is no RegDB
    protocol."""
    make_regdb(str(tmp_path))
    for metric_dir, data_dir in (('v2t', 't2v'), ('t2v', 'v2t')):
        meta = RegDB(
            str(tmp_path), split='test', trial=2, direction=data_dir).metainfo
        with pytest.raises(
                ValueError,
                match=f"RegDBMetric\\(direction='{metric_dir}'\\) cannot "
                f"evaluate dataset 'regdb-{data_dir}' "
                f"\\(direction='{data_dir}'\\)"):
            RegDBMetric(direction=metric_dir).dataset_meta = meta
    with pytest.raises(
            ValueError,
            match=r"RegDBMetric cannot evaluate dataset 'market1501' "
            r'\(protocol_metric=None\)'):
        RegDBMetric().dataset_meta = dict(dataset_name='market1501')
    with pytest.raises(ValueError, match="direction must be 'v2t' or 't2v'"):
        RegDBMetric(direction='vis2ir')


@pytest.mark.parametrize('cls, option, values', [
    (SYSUMetric, 'mode', ('all', 'indoor')),
    (LLCMMetric, 'direction', ('ir2vis', 'vis2ir')),
    (RegDBMetric, 'direction', ('v2t', 't2v')),
])
def test_the_keys_name_the_protocol_variant(cls, option, values):
    """Two variants of one protocol are two tasks (all vs indoor search,
    which modality is queried): their keys differ, the default variant's
    included, and an explicit prefix wins. The prefix read from a config
    (``key_prefix``) is the built metric's."""
    name = cls.default_prefix
    assert cls().prefix == f'{name}-{values[0]}'
    for value in values:
        metric = cls(**{option: value})
        assert metric.prefix == f'{name}-{value}'
        assert cls.key_prefix(**{option: value}) == metric.prefix
        assert cls(prefix='mine', **{option: value}).prefix == 'mine'
    assert cls.key_prefix() == f'{name}-{values[0]}'


def test_regdb_metric_defaults_to_regdbs_direction(tmp_path):
    """Without a direction, RegDBMetric is visible -> thermal ('v2t', as
    its docstring and RegDB's default): it evaluates a RegDB test set that
    names no direction, under regdb-v2t keys."""
    make_regdb(str(tmp_path))
    metric = RegDBMetric()
    metric.dataset_meta = RegDB(str(tmp_path), split='test').metainfo
    assert metric.prefix == 'regdb-v2t'
    results = run_metric(metric, regdb_samples('v2t'))
    assert results['regdb-v2t/num_query'] == 15


@pytest.mark.parametrize('metric_type, options', [
    (RegDBMetric, dict(direction='t2v')),
    (LLCMMetric, dict(direction='vis2ir', num_trials=2)),
])
def test_a_given_prefix_names_the_keys(metric_type, options):
    """``prefix`` is the key prefix when given (the direction's prefix is
    only the default), as compare_configs.py plans the keys."""
    run_plans = load_tool('tools/analysis_tools/run_plans.py')
    metric = metric_type(prefix='mine', **options)
    assert metric.prefix == 'mine'
    config = dict(type=metric_type.__name__, prefix='mine', **options)
    assert run_plans._metric_prefixes_of(config) == ['mine']


def test_registered():
    assert METRICS.get('SYSUMetric') is SYSUMetric
    assert METRICS.get('LLCMMetric') is LLCMMetric
    assert METRICS.get('RegDBMetric') is RegDBMetric
    metric = METRICS.build(dict(type='SYSUMetric', mode='indoor'))
    assert metric.gallery_cams == (1, 2)


def modality_samples(spec):
    """Samples of (pid, camera, role, modality) with random features."""
    rng = np.random.default_rng(3)
    return [
        make_sample(
            rng.standard_normal(4),
            pid,
            cam,
            role,
            i,
            modality=modality,
            path=f'{role}/cam{cam}/{pid:04d}/{i:04d}.jpg')
        for i, (pid, cam, role, modality) in enumerate(spec)
    ]


# The queries and gallery of each protocol, by its definition: SYSU-MM01
# infrared (1) against visible (0), LLCM NIR (1) against VIS (0) for
# ir2vis and the other way round for vis2ir, RegDB visible against
# thermal (1) for v2t and the other way round for t2v.
MODALITY_METRICS = [
    (lambda: SYSUMetric(num_trials=2), 1),
    (lambda: LLCMMetric(direction='ir2vis', num_trials=2), 1),
    (lambda: LLCMMetric(direction='vis2ir', num_trials=2), 0),
    (lambda: LLCMMetric(
        direction='vis2ir', vis2ir_mode='symmetric', num_trials=2), 0),
    (lambda: RegDBMetric(direction='v2t'), 0),
    (lambda: RegDBMetric(direction='t2v'), 1),
]


def protocol_spec(q_mod, g_mod):
    """Two queries (cams 3 and 6) and a gallery of cams 1, 2 and 4."""
    return [(1, 3, 'query', q_mod), (2, 6, 'query', q_mod),
            (1, 1, 'gallery', g_mod), (2, 2, 'gallery', g_mod),
            (2, 4, 'gallery', g_mod), (1, 4, 'gallery', g_mod)]


@pytest.mark.parametrize(
    'make_metric, q_mod',
    MODALITY_METRICS,
    ids=[
        'sysu', 'llcm-ir2vis', 'llcm-vis2ir', 'llcm-vis2ir-symmetric',
        'regdb-v2t', 'regdb-t2v'
    ])
def test_records_of_the_other_modality_are_refused(make_metric, q_mod):
    """Without dataset_meta (a direct API user) nothing checked the
    records: SYSUMetric ranked visible queries, RegDBMetric('v2t') thermal
    ones and LLCMMetric('vis2ir') NIR ones, under their own keys. The
    protocol defines the query modality and the gallery's (the other):
    a record of another modality is refused at compute time, naming the
    metric, the count, an example image and the modality expected."""
    g_mod = 1 - q_mod
    metric = make_metric()
    results = run_metric(metric, modality_samples(protocol_spec(q_mod, g_mod)))
    assert results[f'{metric.prefix}/num_query'] > 0
    name = type(metric).__name__
    # Swapped modalities (the other direction's records): both queries.
    with pytest.raises(
            ValueError,
            match=rf'{name}.*2 of 2 query records are not of modality '
            rf"{q_mod}.*'query/cam3/0001/0000.jpg' \(modality={g_mod}\)"):
        run_metric(make_metric(),
                   modality_samples(protocol_spec(g_mod, q_mod)))
    # One gallery record of the query modality.
    spec = protocol_spec(q_mod, g_mod)
    spec[4] = (2, 4, 'gallery', q_mod)
    with pytest.raises(
            ValueError,
            match=rf'{name}.*1 of 4 gallery records are not of modality '
            rf"{g_mod}.*'gallery/cam4/0002/0004.jpg'"):
        run_metric(make_metric(), modality_samples(spec))
    # Records without a modality.
    spec = protocol_spec(q_mod, g_mod)
    spec[1] = (2, 6, 'query', None)
    with pytest.raises(
            ValueError,
            match=rf'{name}.*1 of 2 query records are not of modality '
            rf"{q_mod} \(1 without one\).*'query/cam6/0002/0001.jpg' "
            r'\(modality=None\)'):
        run_metric(make_metric(), modality_samples(spec))


def dataset_samples(dataset, seed=0):
    """The test set's records as the test loop hands them to a metric:
    packed by PackReIDInputs (an image stands in for the file), a random
    feature as the model's prediction."""
    from mmreid.datasets.transforms import PackReIDInputs
    pack = PackReIDInputs()
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(len(dataset)):
        info = dict(dataset.get_data_info(index), sample_idx=index)
        sample = pack(dict(info, img=np.zeros((4, 2, 3), np.uint8)))
        sample = sample['data_samples']
        sample.set_pred_feature(torch.from_numpy(rng.standard_normal(4)))
        samples.append(sample.to_dict())
    return samples


@pytest.mark.parametrize('protocol', [
    'sysu-all', 'sysu-indoor', 'synthreid-vi', 'llcm-ir2vis', 'llcm-vis2ir',
    'regdb-v2t', 'regdb-t2v'
])
def test_the_datasets_records_are_of_their_protocols_modalities(
        tmp_path, protocol):
    """The modality check refuses none of the test sets the metrics are
    for (SynthReIDVI, parsed as SYSU-MM01, included): their records carry
    the query and gallery modalities of the metric's direction."""
    name, variant = protocol.split('-', 1)
    root = str(tmp_path / name)
    if name == 'sysu':
        make_sysu(root)
        dataset = SYSUMM01(root, split='test', mode=variant)
        metric = SYSUMetric(mode=variant, num_trials=2)
    elif name == 'synthreid':
        from mmreid.datasets import SynthReIDVI
        dataset = SynthReIDVI(
            root, split='test', size='tiny', img_size=(32, 16))
        metric = SYSUMetric(num_trials=2)
    elif name == 'llcm':
        make_llcm(root)
        dataset = LLCM(root, split='test', direction=variant)
        metric = LLCMMetric(direction=variant, num_trials=2)
    else:
        make_regdb(root)
        dataset = RegDB(root, split='test', direction=variant)
        metric = RegDBMetric(direction=variant)
    metric.dataset_meta = dataset.metainfo
    samples = dataset_samples(dataset)
    results = run_metric(metric, samples)
    assert results[f'{metric.prefix}/num_valid_query'] > 0


def test_official_draw_refuses_a_pool_id_the_permutations_lack():
    """``rand_perm_cam{cam}`` has one entry per id; a pool id beyond them
    has no official draw, and leaving it out silently gave a gallery
    without that identity."""
    perms = [[[[1]] * 10] for _ in range(6)]  # every camera: id 1 only
    paths = ['cam1/0001/0001.jpg', 'cam1/0002/0001.jpg']
    groups = group_pool([1, 2], [1, 1], paths)
    with pytest.raises(
            ValueError,
            match=r'rand_perm_cam has no entry for cam1/0002 \(camera 1 '
            r'holds ids 1\.\.1\)'):
        official_gallery_draw(perms, groups, paths, (1, ), 1, 0)
    # The ids the permutations hold are drawn.
    groups = group_pool([1], [1], paths[:1])
    assert official_gallery_draw(perms, groups, paths[:1], (1, ), 1, 0) == [0]


@pytest.mark.parametrize('trial', [-1, 10])
def test_official_draw_refuses_a_trial_it_does_not_hold(trial):
    """The official permutations hold rows for trials 0..9; trial -1 read
    row 10 as if it were another trial."""
    perms = [[[[2, 1]] * 10] for _ in range(6)]
    paths = ['cam1/0001/0001.jpg', 'cam1/0001/0002.jpg']
    groups = group_pool([1, 1], [1, 1], paths)
    with pytest.raises(
            ValueError,
            match=rf'the official draws hold trials 0\.\.9, got {trial}'):
        official_gallery_draw(perms, groups, paths, (1, ), 1, trial)


def test_trial_metric_refuses_counts_outside_the_protocol():
    """Trials and shots are counts: zero trials or zero shots have no
    gallery to rank, and more than 10 official trials read rows the file
    does not have; each is refused when the metric is built, before any
    feature is extracted."""
    perms = [[[[1, 2, 3] for _ in range(10)] for _ in range(2)]
             for _ in range(6)]
    cases = [
        (dict(num_trials=0), r'num_trials must be an integer >= 1, got 0'),
        (dict(num_trials=True),
         r'num_trials must be an integer >= 1, got True'),
        (dict(shots=0), r'shots must be an integer >= 1, got 0'),
        (dict(num_trials=11, gallery_draw='official_rand_perm',
              rand_perm_cam=perms),
         r'the official draws hold 10 trials, got num_trials=11'),
    ]
    for options, match in cases:
        with pytest.raises(ValueError, match=match):
            TrialGalleryMetric(**options)
    TrialGalleryMetric(
        num_trials=10, gallery_draw='official_rand_perm', rand_perm_cam=perms)


def test_llcm_cmc_is_de_duplicated():
    """LLCM ranks with SYSU-MM01's de-duplicated CMC (the reference's
    eval_llcm): a NIR query whose ranked VIS gallery reads pids 2, 2, 1
    is a rank-2 match, while mAP uses the full list (AP 1/3)."""
    samples = [
        make_sample([0.0], 1, 1, 'query', 0, modality=1),  # NIR
        make_sample([1.0], 2, 2, 'gallery', 1),
        make_sample([2.0], 2, 3, 'gallery', 2),
        make_sample([3.0], 1, 2, 'gallery', 3),
    ]
    metric = LLCMMetric(num_trials=1, distance='euclidean', ranks=(1, 2))
    results = run_metric(metric, samples)
    assert results['llcm-ir2vis/R1'] == pytest.approx(0.0)
    assert results['llcm-ir2vis/R2'] == pytest.approx(100.0)
    assert results['llcm-ir2vis/mAP'] == pytest.approx(100 / 3)


def test_llcm_vis2ir_transposed_removes_same_pid_same_cam():
    """In the reference VIS->IR evaluation the drawn NIR images are the
    probes and all VIS images the gallery; the probe of camera K drops the
    VIS images of its pid from camera K (VIS and NIR camera K are one
    camera), as in IR->VIS."""
    samples = [
        make_sample([0.0], 1, 1, 'query', 0),  # VIS, same pid + cam
        make_sample([1.0], 2, 1, 'query', 1),  # VIS, other pid: kept
        make_sample([2.0], 1, 2, 'query', 2),  # VIS, other cam: kept
        make_sample([0.0], 1, 1, 'gallery', 3, modality=1),  # NIR probe
    ]
    metric = LLCMMetric(
        direction='vis2ir', num_trials=1, distance='euclidean', ranks=(1, 2))
    results = run_metric(metric, samples)
    assert results['llcm-vis2ir/num_query'] == 1
    assert results['llcm-vis2ir/R1'] == pytest.approx(0.0)
    assert results['llcm-vis2ir/R2'] == pytest.approx(100.0)
    assert results['llcm-vis2ir/mAP'] == pytest.approx(50.0)


def test_regdb_removes_no_gallery_item_even_of_the_query_camera():
    """RegDB removes nothing (junk_rule='none'): a gallery item of the
    query's pid and camera still counts, here with every record given
    camid 0. The numbers equal the definition's, which ignores cameras."""
    ranks = (1, 2, 5)
    samples = regdb_samples('v2t')
    for sample in samples:
        sample['camid'] = 0
    results = run_metric(RegDBMetric(direction='v2t', ranks=ranks), samples)
    expected = naive_regdb(samples, ranks)
    for key, value in expected.items():
        assert results[f'regdb-v2t/{key}'] == pytest.approx(
            value, abs=1e-4), key
    assert results['regdb-v2t/num_valid_query'] == 15


def test_a_trial_that_draws_no_gallery_is_refused():
    """The official permutations can leave every pool id out (empty
    entries): a trial without gallery has no ranking, and is refused
    naming the trial instead of reporting numbers of nothing."""
    perms = [[[[] for _ in range(10)]] for _ in range(6)]
    samples = [
        make_sample([0.5], 1, 3, 'query', 0, modality=1),
        make_sample([1.0], 1, 1, 'gallery', 1, path='cam1/0001/0001.jpg'),
    ]
    with pytest.raises(ValueError, match='trial 0 drew an empty gallery'):
        run_metric(SYSUMetric(num_trials=1, rand_perm_cam=perms), samples)


def test_the_settings_name_the_seed_of_a_seeded_draw_only():
    """A report's settings name how the galleries were drawn; the seed
    only decides a seeded draw, so an official draw's is 'none' (two runs
    of the official draw differ in no seed)."""
    perms = [[[[1, 2, 3] for _ in range(10)] for _ in range(2)]
             for _ in range(6)]
    official = SYSUMetric(rand_perm_cam=perms).protocol_settings()
    assert official['gallery_draw'] == 'official_rand_perm'
    assert official['seed'] == 'none'
    seeded = SYSUMetric(seed=3).protocol_settings()
    assert seeded['gallery_draw'] == 'agw_seeded' and seeded['seed'] == '3'
