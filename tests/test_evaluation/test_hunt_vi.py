"""Wrong-number hunt: visible-infrared evaluation and modality handling.

Each test checks what mmreid prints for a cross-modality protocol against
the protocol's definition (``specs/mbn_vireid.md`` sections 5 and 7),
computed here by small reference loops written from that definition, not
from mmreid's code. The batch-statistics test pinned a defect (fixed
since): it asserts the correct behaviour and fails on the code before the
fix.
"""
import copy
import os
import os.path as osp
import random

import numpy as np
import pytest
import torch
from mmengine.runner import Runner
from PIL import Image

from mmreid.datasets import SYSUMM01
from mmreid.evaluation.metrics import LLCMMetric, SYSUMetric
from ..fixtures.tiny_models import TINY_BOT_MODEL

#: SYSU-MM01 cameras (numbers): visible 1, 2, 4, 5; infrared 3, 6.
VISIBLE_CAMS = (1, 2, 4, 5)
INFRARED_CAMS = (3, 6)
GALLERY_CAMS = dict(all=(1, 2, 4, 5), indoor=(1, 2))
PIPELINE = [
    dict(type='ReIDLoadImageFromFile'),
    dict(type='ReIDResize', size=(32, 16)),
    dict(type='PackReIDInputs'),
]


def write_sysu_tree(root, test_ids, seed=0, max_images=14, pixels=False,
                    images=None):
    """A SYSU-MM01 folder in its real layout (``cam<k>/<pid:04d>/
    <img:04d>.jpg`` and the ``exp`` id files).

    Every test id has 1..``max_images`` - 1 images in each camera, except
    that some (id, camera) folders are left out at random, so some ids
    have no indoor (cams 1, 2) image and some queries no positive.

    Args:
        root (str): The folder to fill.
        test_ids (Sequence[int]): The ids of ``exp/test_id.txt``.
        seed (int): Seed of the layout.
        max_images (int): One more than the most images of a folder.
        pixels (bool): Write 16 x 8 random JPEG images (for a model)
            instead of empty files (enough for the parser).
        images (dict, optional): Camera number -> images of every test id
            in it, no folder left out (instead of the random layout).

    Returns:
        str: ``root``.
    """
    rng = np.random.default_rng(seed)
    for pid in test_ids:
        for cam in VISIBLE_CAMS + INFRARED_CAMS:
            if images is None and pid != test_ids[0] and rng.random() < 0.25:
                continue
            folder = osp.join(root, f'cam{cam}', f'{pid:04d}')
            os.makedirs(folder)
            count = images[cam] if images is not None else int(
                rng.integers(1, max_images))
            for i in range(count):
                path = osp.join(folder, f'{i + 1:04d}.jpg')
                if pixels:
                    image = rng.integers(0, 256, (16, 8, 3)).astype(np.uint8)
                    Image.fromarray(image).save(path)
                else:
                    open(path, 'wb').close()
    os.makedirs(osp.join(root, 'exp'))
    for name, text in (('train', '1'), ('val', '99'),
                       ('test', ','.join(map(str, test_ids)))):
        with open(osp.join(root, 'exp', f'{name}_id.txt'), 'w') as f:
            f.write(text + '\n')
    return root


def reference_gallery(pool, cams, trial, shots):
    """The seeded gallery of ``mbn_vireid.md`` section 5.3, written out.

    ``random.seed(trial)``; for each id in sorted order and each camera in
    list order that holds images of it: ``random.choice(sorted(files))``
    (single-shot) or ``random.sample(sorted(files), 10)`` (mmreid's
    seeded multi-shot; every folder here with fewer images gives all).

    Args:
        pool (list[tuple]): ``(path, pid, camera number)`` per pool image.
        cams (Sequence[int]): Gallery cameras, in visiting order.
        trial (int): The trial, its seed.
        shots (int): 1 or 10.

    Returns:
        list[int]: Indices into ``pool``, in draw order.
    """
    random.seed(trial)
    drawn = []
    for pid in sorted({p for _, p, _ in pool}):
        for cam in cams:
            files = sorted((path, i) for i, (path, p, c) in enumerate(pool)
                           if p == pid and c == cam)
            if not files:
                continue
            if shots == 1:
                drawn.append(random.choice(files)[1])
            else:
                picked = random.sample(files, min(shots, len(files)))
                drawn.extend(i for _, i in picked)
    return drawn


def reference_rank(dist, q_pids, g_pids, q_cams, g_cams, removal,
                   max_rank=20):
    """De-duplicated CMC, mAP and mINP (``mbn_vireid.md`` 5.4, 7).

    For each query: rank the gallery by ascending distance (stable), drop
    the items ``removal(query camera, gallery cameras, query pid, gallery
    pids)`` marks; skip a query without a positive; CMC on the ranked
    pids with repeats removed (first occurrence kept), AP = mean_j j / r_j
    and INP = m / r_m on the full list.

    Returns:
        tuple: CMC (percent, ``max_rank``), mAP and mINP (percent), the
        number of valid queries.
    """
    cmcs, aps, inps = [], [], []
    for q in range(len(q_pids)):
        order = np.argsort(dist[q], kind='stable')
        keep = ~removal(q_cams[q], g_cams[order], q_pids[q], g_pids[order])
        pids = g_pids[order][keep]
        match = pids == q_pids[q]
        if not match.any():
            continue
        distinct = list(dict.fromkeys(pids.tolist()))
        first = distinct.index(q_pids[q]) + 1
        cmcs.append(np.arange(1, max_rank + 1) >= first)
        ranks = np.flatnonzero(match) + 1
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
        inps.append(len(ranks) / ranks[-1])
    return (100 * np.mean(cmcs, axis=0), 100 * np.mean(aps),
            100 * np.mean(inps), len(cmcs))


def sysu_removal(q_cam, g_cams, q_pid, g_pids):
    """A cam3 query skips every cam2 gallery image, of any pid."""
    return (q_cam == 3) & (g_cams == 2)


def market_removal(q_cam, g_cams, q_pid, g_pids):
    """Same pid and same camera (LLCM)."""
    return (g_pids == q_pid) & (g_cams == q_cam)


def as_sample(info, feature, index, dataset):
    """A data sample as mmengine hands it to a metric."""
    return dict(
        pred_feature=feature,
        gt_label=torch.tensor([info['pid']]),
        camid=info['camid'],
        role=info['role'],
        modality=info['modality'],
        sample_idx=index,
        dataset=dataset,
        img_path=info['img_path'])


@pytest.mark.parametrize('mode', ['all', 'indoor'])
@pytest.mark.parametrize('shot,shots', [('single', 1), ('multi', 10)])
def test_sysu_trials_through_the_parser_match_the_protocol(
        tmp_path, mode, shot, shots):
    """A user tests on SYSU-MM01 (``SYSUMM01(split='test', mode=...)`` and
    ``SYSUMetric(mode=..., shot=...)``) and reads ``sysu-<mode>/R1``,
    ``/mAP``, ``/mINP`` and their ``_std``.

    Right: for each of the 10 trials, the gallery is the seeded draw of
    ``mbn_vireid.md`` 5.3 from the mode's visible cameras (one image, or
    ten, per id and camera, ids in sorted order, cameras in list order,
    ``random.seed(trial)``), the queries are every infrared image, cam3
    queries skip cam2, CMC is de-duplicated, mAP/mINP on the full list
    (5.4); the reported value is the mean over the trials and ``_std`` the
    population std (``evaluation.md`` 6.2). The queries without a
    positive (ids outside the indoor cameras, cam3 queries whose only
    positives are in cam2) are skipped. Computed here from the parsed
    records by the reference loops above; the multi-shot gallery is where
    the de-duplicated CMC differs most from the standard one.
    """
    test_ids = [3, 5, 8, 13, 21, 34, 40]
    root = write_sysu_tree(str(tmp_path / 'SYSU-MM01'), test_ids)
    dataset = SYSUMM01(
        root, split='test', mode=mode, pipeline=[], lazy_init=False)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    feats = torch.randn(
        len(infos), 8, generator=torch.Generator().manual_seed(0))
    metric = SYSUMetric(mode=mode, shot=shot, num_trials=10)
    metric.dataset_meta = dataset.metainfo
    name = dataset.metainfo['dataset_name']
    metric.process(None, [
        as_sample(info, feats[i], i, name) for i, info in enumerate(infos)
    ])
    results = metric.evaluate(len(infos))

    query = [i for i, r in enumerate(infos) if r['role'] == 'query']
    pool_index = [i for i, r in enumerate(infos) if r['role'] == 'gallery']
    assert {infos[i]['camid'] + 1 for i in query} == set(INFRARED_CAMS)
    assert all(infos[i]['modality'] == 1 for i in query)
    assert all(infos[i]['modality'] == 0 for i in pool_index)
    pool = [(infos[i]['img_path'], infos[i]['pid'], infos[i]['camid'] + 1)
            for i in pool_index]
    unit = torch.nn.functional.normalize(feats, dim=1).numpy()
    q_feats, p_feats = unit[query], unit[pool_index]
    q_pids = np.array([infos[i]['pid'] for i in query])
    q_cams = np.array([infos[i]['camid'] + 1 for i in query])
    p_pids = np.array([p for _, p, _ in pool])
    p_cams = np.array([c for _, _, c in pool])
    prefix = f'sysu-{mode}'
    per_trial = []
    for trial in range(10):
        drawn = reference_gallery(pool, GALLERY_CAMS[mode], trial, shots)
        cmc, mAP, mINP, valid = reference_rank(-q_feats @ p_feats[drawn].T,
                                               q_pids, p_pids[drawn], q_cams,
                                               p_cams[drawn], sysu_removal)
        values = dict(R1=cmc[0], R5=cmc[4], mAP=mAP, mINP=mINP)
        per_trial.append(values)
        for key, value in values.items():
            assert results[f'{prefix}/trial{trial}/{key}'] == pytest.approx(
                value, abs=1e-4), (trial, key)
        assert results[f'{prefix}/trial{trial}/num_gallery'] == len(drawn)
        assert results[f'{prefix}/trial{trial}/num_valid_query'] == valid
    for key in ('R1', 'R5', 'mAP', 'mINP'):
        values = [v[key] for v in per_trial]
        assert results[f'{prefix}/{key}'] == pytest.approx(
            np.mean(values), abs=1e-4)
        assert results[f'{prefix}/{key}_std'] == pytest.approx(
            np.std(values, ddof=0), abs=1e-4)
    assert len({v['mAP'] for v in per_trial}) > 1  # the trials differ


def llcm_records(seed=3):
    """LLCM-like test records of both modalities (VIS cams 1..9, NIR cams
    1, 2, 4..9; VIS and NIR camera K share camid K - 1), 1-3 images per
    (id, camera) and some folders missing."""
    rng = np.random.default_rng(seed)
    records = []
    for modality, tag, cams in ((0, 'vis', range(1, 10)),
                                (1, 'nir', (1, 2, 4, 5, 6, 7, 8, 9))):
        for pid in (3, 7, 11, 30, 41):
            for cam in cams:
                if rng.random() < 0.4:
                    continue
                for i in range(int(rng.integers(1, 4))):
                    records.append(
                        dict(
                            pid=pid,
                            camid=cam - 1,
                            modality=modality,
                            img_path=f'test_{tag}/cam{cam}/{pid:04d}/'
                            f'{pid:04d}_c{cam:02d}_f{i:04d}_{tag}.jpg'))
    return records


@pytest.mark.parametrize('direction,vis2ir_mode',
                         [('ir2vis', 'reference_transposed'),
                          ('vis2ir', 'reference_transposed'),
                          ('vis2ir', 'symmetric')])
def test_llcm_trials_match_the_reference_loops(direction, vis2ir_mode):
    """A user tests on LLCM with ``LLCMMetric(direction=...)`` and reads
    ``llcm-<direction>/R1`` and ``/mAP``.

    Right (``mbn_vireid.md`` section 7): query = every image of the query
    modality; per trial ``random.seed(trial)``, one ``random.choice`` of
    the sorted files per (id, camera) of the other modality, ids sorted,
    cameras ascending; removal of same pid and same camera; CMC
    de-duplicated, mAP/mINP on the full list. VIS->IR in the reference
    transposes the distances, so the sampled NIR images are the probes and
    all VIS images the gallery (``'reference_transposed'``, the default);
    ``'symmetric'`` keeps all VIS images as queries.
    """
    records = llcm_records()
    q_mod = 1 if direction == 'ir2vis' else 0
    order = ([i for i, r in enumerate(records) if r['modality'] == q_mod] +
             [i for i, r in enumerate(records) if r['modality'] != q_mod])
    feats = torch.randn(
        len(records), 6, generator=torch.Generator().manual_seed(1))
    samples = []
    for index, i in enumerate(order):
        info = dict(
            records[i],
            role='query' if records[i]['modality'] == q_mod else 'gallery')
        samples.append(as_sample(info, feats[i], index, 'llcm'))
    metric = LLCMMetric(direction=direction, vis2ir_mode=vis2ir_mode)
    metric.process(None, samples)
    results = metric.evaluate(len(samples))

    query = [i for i in order if records[i]['modality'] == q_mod]
    pool = [i for i in order if records[i]['modality'] != q_mod]
    unit = torch.nn.functional.normalize(feats, dim=1).numpy()
    pids = np.array([r['pid'] for r in records])
    cams = np.array([r['camid'] + 1 for r in records])
    pool_cams = sorted({int(cams[i]) for i in pool})
    entries = [(records[i]['img_path'], int(pids[i]), int(cams[i]))
               for i in pool]
    r1s, maps = [], []
    for trial in range(10):
        drawn = [pool[j] for j in reference_gallery(entries, pool_cams,
                                                    trial, 1)]
        sim = unit[query] @ unit[drawn].T
        if direction == 'vis2ir' and vis2ir_mode == 'reference_transposed':
            args = (-sim.T, pids[drawn], pids[query], cams[drawn],
                    cams[query])
        else:
            args = (-sim, pids[query], pids[drawn], cams[query], cams[drawn])
        cmc, mAP, mINP, valid = reference_rank(*args, market_removal)
        key = f'llcm-{direction}/trial{trial}'
        assert results[f'{key}/R1'] == pytest.approx(cmc[0], abs=1e-4)
        assert results[f'{key}/R5'] == pytest.approx(cmc[4], abs=1e-4)
        assert results[f'{key}/mAP'] == pytest.approx(mAP, abs=1e-4)
        assert results[f'{key}/mINP'] == pytest.approx(mINP, abs=1e-4)
        assert results[f'{key}/num_valid_query'] == valid
        r1s.append(cmc[0])
        maps.append(mAP)
    assert results[f'llcm-{direction}/R1'] == pytest.approx(
        np.mean(r1s), abs=1e-4)
    assert results[f'llcm-{direction}/mAP_std'] == pytest.approx(
        np.std(maps, ddof=0), abs=1e-4)


def test_trial_protocol_refuses_test_batch_statistics_of_the_pool(tmp_path):
    """A user tests an MBN model with the documented transductive option
    ``norm_cfg=dict(type='MBN', eval_stats='batch')`` (each test batch is
    normalised with its own per-modality statistics) on SYSU-MM01 with
    ``SYSUMetric``, in one process, as ``configs/mbn/README.md`` allows.

    What they get: ``sysu-all/R1`` etc., printed without a word. The test
    loop extracts the features of the whole gallery *pool* (every visible
    test image, in batches of the dataloader's ``batch_size`` in pool
    order) once, and each trial indexes its drawn gallery out of them: a
    gallery image's feature is normalised with the statistics of the pool
    images that happened to share its loader batch (most of which are in
    no trial's gallery), not with those of the trial's gallery.

    What is right: ``mbn_vireid.md`` 5.3 says query features are computed
    once and gallery features per trial, "or once for all candidates,
    then indexed -- valid only with running-stat eval"; 2.4 says
    ``'batch'`` depends on batch composition. With batch statistics the
    indexed features are not those of any trial's gallery, so the printed
    number is of no defined protocol. A trial protocol must refuse such a
    model (naming ``eval_stats``), as ``tools/extract_features.py
    --images`` and ``pytorch2onnx.py`` refuse it, or extract each trial's
    gallery on its own.
    """
    # 16 queries and a pool of 48 images: every loader batch of 8 holds
    # one modality only, so MBN accepts each of them.
    root = write_sysu_tree(
        str(tmp_path / 'SYSU-MM01'), [2, 5, 9, 14],
        pixels=True,
        images={cam: 2 if cam in INFRARED_CAMS else 3
                for cam in VISIBLE_CAMS + INFRARED_CAMS})

    def runner_of(norm_cfg, work):
        model = copy.deepcopy(TINY_BOT_MODEL)
        model['backbone']['norm_cfg'] = norm_cfg
        return Runner(
            model=model,
            work_dir=str(tmp_path / work),
            experiment_name='hunt_vi_batch_stats',
            default_scope='mmreid',
            test_dataloader=dict(
                batch_size=8,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                collate_fn=dict(type='default_collate'),
                dataset=dict(
                    type='SYSUMM01',
                    data_root=root,
                    split='test',
                    mode='all',
                    pipeline=PIPELINE)),
            test_evaluator=dict(type='SYSUMetric', mode='all', num_trials=3),
            test_cfg=dict(type='ReIDTestLoop'))

    runner = runner_of(dict(type='MBN', eval_stats='batch'), 'work')
    with pytest.raises(ValueError) as info:
        runner.test()
    message = str(info.value)
    assert message.startswith("ReIDTestLoop: SYSUMetric draws each trial's "
                              'gallery out of one pool')
    assert "(eval_stats='batch')" in message
    assert "Use eval_stats='modality'" in message
    # A batch norm without running statistics is the same case.
    runner = runner_of(dict(type='BN', track_running_stats=False), 'work2')
    with pytest.raises(ValueError, match='keeps no running statistics'):
        runner.test()
