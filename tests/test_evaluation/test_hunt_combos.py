"""Wrong-number hunt: evaluation options that are right alone, together.

Each option of the metrics is tested on its own elsewhere; these tests
combine them as the docs allow and check the printed numbers against
references written from the definitions, never from mmreid's code:

* per query, the gallery kept by the junk rule (``specs/evaluation.md``
  section 2.2: ``market`` drops same pid and camid, ``sysu`` drops every
  cam2 item for a cam3 query, ``none`` nothing), ordered by ascending
  distance under the tie policy (section 4.2: a Python sort on
  ``(distance, policy key, gallery index)``);
* CMC from the first positive, or under ``cmc_mode='dedup'`` from the
  ranked list with repeated pids removed (section 3); AP as the mean of
  ``j / r_j`` or, for ``ap_mode='threshold'``, sklearn's step-wise AP over
  distinct distances (section 4.1); INP as ``m / r_m``;
* alpha query expansion (Radenovic et al.) as the ``query_expansion``
  docstring writes it, k-reciprocal re-ranking from the paper
  (``tests/fixtures/rerank_reference.py``), AGW's seeded SYSU-MM01 gallery
  draw (``specs/mbn_vireid.md``), GMN's top-k rerank (``specs/gmn.md``
  section 8.4) and TPR at FPR from the textbook ROC (positive pair = same
  pid, section 11.1).

The area was found clean: these are test gaps, each a combination whose
numbers no other test checks.
"""
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmreid.evaluation.metrics import ReIDMetric, SYSUMetric
from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample
from ..fixtures.metric_samples import data_samples
from ..fixtures.rerank_reference import paper_rerank

# ---------------------------------------------------------------------------
# References written from the definitions.


def kept_gallery(q_pid, q_cam, g_pids, g_cams, junk_rule):
    """The gallery items a query ranks (spec section 2.2), a bool mask."""
    if junk_rule == 'market':
        return ~((g_pids == q_pid) & (g_cams == q_cam))
    if junk_rule == 'sysu':  # camids are 0-based: cam3 = 2, cam2 = 1
        return g_cams != 1 if q_cam == 2 else np.ones(len(g_pids), bool)
    return np.ones(len(g_pids), bool)


def textbook_metrics(dist,
                     q_pids,
                     g_pids,
                     q_cams,
                     g_cams,
                     junk_rule='market',
                     tie_policy='stable',
                     ap_mode='cumsum',
                     cmc_mode='standard',
                     ranks=(1, 2, 3)):
    """``R<k>``, ``mAP`` and ``mINP`` in percent (queries without a kept
    positive skipped), from the definitions of spec sections 2-4."""
    dist = np.asarray(dist, dtype=np.float64)
    sign = {'stable': 0, 'pessimistic': 1, 'optimistic': -1}[tie_policy]
    firsts, aps, inps = [], [], []
    for i in range(len(q_pids)):
        kept = kept_gallery(q_pids[i], q_cams[i], g_pids, g_cams, junk_rule)
        row, pids = dist[i][kept], g_pids[kept]
        pos = pids == q_pids[i]
        if not pos.any():
            continue
        order = sorted(
            range(len(row)), key=lambda j: (row[j], sign * int(pos[j]), j))
        hits = np.flatnonzero(pos[order]) + 1
        if cmc_mode == 'dedup':
            distinct = list(dict.fromkeys(pids[order].tolist()))
            firsts.append(distinct.index(q_pids[i]) + 1)
        else:
            firsts.append(hits[0])
        inps.append(len(hits) / hits[-1])
        if ap_mode == 'cumsum':
            aps.append(np.mean(np.arange(1, len(hits) + 1) / hits))
            continue
        ap, recall = 0.0, 0.0
        for threshold in np.unique(row):
            accepted = row <= threshold
            true_pos = int((pos & accepted).sum())
            if true_pos / pos.sum() > recall:
                ap += (true_pos / pos.sum() - recall) * true_pos / \
                    accepted.sum()
                recall = true_pos / pos.sum()
        aps.append(ap)
    firsts = np.array(firsts)
    out = {f'R{k}': 100 * float(np.mean(firsts <= k)) for k in ranks}
    out.update(mAP=100 * np.mean(aps), mINP=100 * np.mean(inps))
    return out


def alpha_qe(query, gallery, k, alpha):
    """``normalize(q + sum_{i<=k} max(cos, 0)**alpha g_i)`` of unit
    vectors over the ``k`` most cosine-similar gallery items."""
    query = query / np.linalg.norm(query, axis=1, keepdims=True)
    gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    out = []
    for q in query:
        sim = gallery @ q
        total = q.copy()
        for idx in np.argsort(-sim, kind='stable')[:k]:
            total += max(sim[idx], 0.0)**alpha * gallery[idx]
        out.append(total / np.linalg.norm(total))
    return np.array(out)


def feature_distance(query, gallery, distance):
    """Euclidean, squared Euclidean or cosine (1 - cos) in float64."""
    query, gallery = np.asarray(query, float), np.asarray(gallery, float)
    if distance == 'cosine':
        query = query / np.linalg.norm(query, axis=1, keepdims=True)
        gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
        return 1 - query @ gallery.T
    squared = ((query[:, None] - gallery[None])**2).sum(-1)
    return squared if distance == 'sqeuclidean' else np.sqrt(squared)


def textbook_tpr_at_fpr(dist, q_pids, g_pids, q_cams, g_cams, junk_rule,
                        fpr):
    """Best TPR over every threshold on ``-dist`` whose FPR is at most
    ``fpr``; pairs the junk rule removes are neither positive nor
    negative."""
    kept = np.stack([
        kept_gallery(q_pids[i], q_cams[i], g_pids, g_cams, junk_rule)
        for i in range(len(q_pids))
    ])
    same = q_pids[:, None] == g_pids[None, :]
    score = -np.asarray(dist, dtype=np.float64)
    pos, neg = score[same & kept], score[~same & kept]
    best = 0.0
    for threshold in np.concatenate([np.unique(score[kept]), [np.inf]]):
        if (neg >= threshold).sum() / len(neg) <= fpr:
            best = max(best, (pos >= threshold).sum() / len(pos))
    return 100 * best


# ---------------------------------------------------------------------------
# Data.


def clustered(seed, num_query, num_gallery, dim=5, num_ids=4):
    """Features around one centre per pid (float32 values held in
    float64), pids 1..num_ids and 0-based camids 0..3."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_ids, dim))
    pids = rng.integers(1, num_ids + 1, num_query + num_gallery)
    feats = centres[pids - 1] + 0.7 * rng.normal(size=(len(pids), dim))
    feats = feats.astype(np.float32).astype(np.float64)
    cams = rng.integers(0, 4, len(pids))
    return (feats[:num_query], feats[num_query:], pids[:num_query],
            pids[num_query:], cams[:num_query], cams[num_query:])


def integer_features(seed, num_query, num_gallery, dim=3):
    """Small-integer features (many exactly tied distances, exact in
    fp32 for the Euclidean and cosine forms), with labels."""
    rng = np.random.default_rng(seed)
    query = rng.integers(-2, 3, (num_query, dim)).astype(np.float32)
    gallery = rng.integers(-2, 3, (num_gallery, dim)).astype(np.float32)
    query[~query.any(1), 0] = 1  # no zero feature (refused under cosine)
    gallery[~gallery.any(1), 0] = 1
    return (query, gallery, rng.integers(1, 4, num_query),
            rng.integers(1, 5, num_gallery), rng.integers(0, 4, num_query),
            rng.integers(0, 4, num_gallery))


def evaluate(metric, samples):
    metric.process(None, samples)
    return metric.compute_metrics(metric.results)


def assert_metrics(printed, expected, abs_tol=1e-6):
    for key, value in expected.items():
        assert printed[key] == pytest.approx(value, abs=abs_tol), key


# ---------------------------------------------------------------------------
# Test gaps.


@pytest.mark.parametrize('distance,junk_rule,cmc_mode,ap_mode', [
    ('cosine', 'sysu', 'dedup', 'threshold'),
    ('euclidean', 'none', 'standard', 'cumsum'),
])
def test_query_expansion_then_rerank_with_rank_rules(distance, junk_rule,
                                                     cmc_mode, ap_mode):
    """A user turns on both feature options of ``ReIDMetric``
    (``query_expansion`` and ``rerank``) with non-default rank rules and
    a budget that splits every pass. The printed R1/R2/R3, mAP and mINP
    must be those of the definitions in order: alpha-QE of the queries
    against the L2-normalised gallery (``ReIDMetric`` docstring: query
    and gallery are then L2-normalised), the paper's re-ranking of those
    unit features, then the junk rule, CMC mode and AP mode of spec
    sections 2-4."""
    query, gallery, *labels = clustered(1, 6, 16)
    qe, rerank = dict(k=2, alpha=1.0), dict(k1=4, k2=2, lambda_value=0.3)
    metric = ReIDMetric(
        distance=distance,
        junk_rule=junk_rule,
        cmc_mode=cmc_mode,
        ap_mode=ap_mode,
        query_expansion=qe,
        rerank=rerank,
        ranks=(1, 2, 3),
        memory_budget_mb=0.001)
    printed = evaluate(metric, data_samples(query, gallery, *labels))
    expanded = alpha_qe(query, gallery, **qe)
    unit = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    dist = paper_rerank(expanded, unit, **rerank, normalize=True)
    assert_metrics(
        printed,
        textbook_metrics(
            dist, *labels, junk_rule=junk_rule, cmc_mode=cmc_mode,
            ap_mode=ap_mode),
        abs_tol=1e-4)


def test_analysis_agrees_with_the_printed_numbers_under_combined_options():
    """``EvalReportHook``'s per-query analysis (``analysis_request``)
    analyses the distances the metric ranks; with query expansion,
    re-ranking, the pessimistic tie policy, threshold AP and the
    de-duplicated CMC together on tied integer features, its mAP, mINP
    and CMC must be the printed ones, and both the definitions'."""
    query, gallery, *labels = integer_features(3, 8, 20)
    options = dict(
        junk_rule='market',
        tie_policy='pessimistic',
        ap_mode='threshold',
        cmc_mode='dedup')
    metric = ReIDMetric(
        distance='cosine',
        query_expansion=dict(k=2, alpha=1.0),
        rerank=dict(k1=4, k2=2, lambda_value=0.3),
        ranks=(1, 2, 3),
        memory_budget_mb=0.001,
        **options)
    metric.analysis_request = dict(topk=5, max_rank=50)
    printed = evaluate(metric, data_samples(query, gallery, *labels))
    analysis = metric.last_analysis
    analysis = getattr(analysis, 'analysis', analysis)
    assert analysis.mAP == pytest.approx(printed['mAP'], abs=1e-9)
    assert analysis.mINP == pytest.approx(printed['mINP'], abs=1e-9)
    for k in (1, 2, 3):
        assert 100 * analysis.cmc[k - 1] == pytest.approx(
            printed[f'R{k}'], abs=1e-9)
    expanded = alpha_qe(
        query.astype(np.float64), gallery.astype(np.float64), 2, 1.0)
    unit = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    dist = paper_rerank(
        expanded, unit, k1=4, k2=2, lambda_value=0.3, normalize=True)
    assert_metrics(
        printed, textbook_metrics(dist, *labels, **options), abs_tol=1e-4)


@pytest.mark.parametrize('junk_rule', ['sysu', 'none'])
def test_tpr_at_fpr_under_other_junk_rules_matches_the_textbook(junk_rule):
    """``verification_fprs`` beside ``junk_rule='sysu'`` or ``'none'``
    (RegDB's rule) on tied integer features, with a budget of a few
    rows: each ``TPR@FPR=...`` is the textbook ROC's over the pairs the
    rule keeps, and R1/mAP stay the ranking's."""
    query, gallery, *labels = integer_features(7, 6, 15)
    fprs = (0.0, 0.1, 0.25, 0.5)
    metric = ReIDMetric(
        distance='sqeuclidean',
        junk_rule=junk_rule,
        verification_fprs=fprs,
        ranks=(1, 2, 3),
        memory_budget_mb=1e-4)
    printed = evaluate(metric, data_samples(query, gallery, *labels))
    dist = feature_distance(query, gallery, 'sqeuclidean')
    for fpr in fprs:
        key = [k for k in printed if k.startswith('TPR@FPR=')
               and float(k.split('=')[1]) == fpr]
        assert len(key) == 1, sorted(printed)
        assert printed[key[0]] == pytest.approx(
            textbook_tpr_at_fpr(dist, *labels, junk_rule, fpr), abs=1e-9)
    assert_metrics(printed,
                   textbook_metrics(dist, *labels, junk_rule=junk_rule))


# SYSU-MM01 -----------------------------------------------------------------


def sysu_records(seed, dim=3):
    """A tiny SYSU-MM01 test set: infrared queries of cams 3 and 6, a
    visible pool of cams 1, 2, 4 and 5 (0 to 2 images per id and camera),
    integer features (ties), paths ``cam<c>/<pid>/<n>.jpg``."""
    rng = np.random.default_rng(seed)
    records = []
    roles = (('query', (3, 6), 1), ('gallery', (1, 2, 4, 5), 0))
    for role, cams, modality in roles:
        for pid in range(1, 6):
            for cam in cams:
                for n in range(int(rng.integers(0, 3))):
                    feat = rng.integers(-2, 3, dim).astype(np.float32)
                    feat[0] += 0 if feat.any() else 1
                    records.append(
                        dict(
                            role=role,
                            feat=feat,
                            pid=pid,
                            camid=cam - 1,
                            modality=modality,
                            img_path=f'cam{cam}/{pid:04d}/{n + 1:04d}.jpg'))
    return records


def sysu_samples(records):
    samples = []
    for idx, r in enumerate(records):
        sample = ReIDDataSample(
            metainfo=dict(
                camid=r['camid'],
                role=r['role'],
                dataset='sysu',
                img_path=r['img_path'],
                sample_idx=idx,
                modality=r['modality']))
        sample.set_gt_label(r['pid'])
        sample.set_pred_feature(torch.as_tensor(r['feat']))
        samples.append(sample.to_dict())
    return samples


def agw_draw(pool, cams, seed):
    """AGW's ``process_gallery_sysu``: ``random.seed(seed)``; for every
    id in ascending order and every camera in order, ``random.choice`` of
    its sorted files."""
    rng = random.Random(seed)
    drawn = []
    for pid in sorted({r['pid'] for r in pool}):
        for cam in cams:
            files = sorted((r for r in pool
                            if r['pid'] == pid and r['camid'] + 1 == cam),
                           key=lambda r: r['img_path'])
            if files:
                drawn.append(rng.choice(files))
    return drawn


@pytest.mark.parametrize('mode,distance,tie_policy,ap_mode', [
    ('indoor', 'euclidean', 'pessimistic', 'threshold'),
    ('all', 'cosine', 'optimistic', 'cumsum'),
])
def test_sysu_trials_with_other_rank_options(mode, distance, tie_policy,
                                             ap_mode):
    """``SYSUMetric`` accepts every ``ReIDMetric`` rank option
    (``**kwargs``). Indoor search on an all-search pool, or all search,
    with another distance, tie policy and AP mode on tied features: each
    of the 3 trials draws AGW's seeded gallery (``random.seed(trial)``)
    from the mode's cameras, ranks with the ``sysu`` rule and the
    de-duplicated CMC, and the printed value is the mean over trials,
    ``_std`` the population spread (spec 6.2, ``mbn_vireid.md``)."""
    records = sysu_records(5)
    metric = SYSUMetric(
        mode=mode,
        distance=distance,
        tie_policy=tie_policy,
        ap_mode=ap_mode,
        num_trials=3,
        ranks=(1, 2, 3))
    printed = evaluate(metric, sysu_samples(records))
    query = [r for r in records if r['role'] == 'query']
    cams = (1, 2) if mode == 'indoor' else (1, 2, 4, 5)
    pool = [
        r for r in records if r['role'] == 'gallery' and r['camid'] + 1 in
        cams
    ]
    per_trial = []
    for trial in range(3):
        drawn = agw_draw(pool, cams, trial)

        def stack(rows, key):
            return np.array([r[key] for r in rows])

        dist = feature_distance(
            stack(query, 'feat'), stack(drawn, 'feat'), distance)
        per_trial.append(
            textbook_metrics(
                dist,
                stack(query, 'pid'),
                stack(drawn, 'pid'),
                stack(query, 'camid'),
                stack(drawn, 'camid'),
                junk_rule='sysu',
                tie_policy=tie_policy,
                ap_mode=ap_mode,
                cmc_mode='dedup'))
    for key in per_trial[0]:
        values = [trial[key] for trial in per_trial]
        assert printed[key] == pytest.approx(np.mean(values), abs=1e-6), key
        assert printed[f'{key}_std'] == pytest.approx(
            np.std(values), abs=1e-6), key


# GMN top-k rerank ----------------------------------------------------------

DIM, HIDDEN = 16, 8


def tiny_gmn(**test_cfg):
    """A tiny GMNReID with an M-Net of logits of order 1."""
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='GMNReID',
            backbone=dict(
                type='ReIDResNet', depth=18, base_channels=4,
                stem_channels=4),
            head=dict(
                type='GMNHead',
                in_channels=DIM,
                num_classes=4,
                mnet=dict(hidden_channels=HIDDEN)),
            test_cfg=test_cfg or None))
    gen = torch.Generator().manual_seed(0)
    mnet = model.head.mnet
    with torch.no_grad():
        mnet.hidden[0].weight.copy_(3 * torch.randn(HIDDEN, DIM,
                                                    generator=gen))
        mnet.fc_out.weight.copy_(torch.randn(1, HIDDEN, generator=gen))
    return model.eval()


def topk_keys(model, query, gallery, k):
    """Spec 8.4 as a distance: per query the k Euclidean nearest items
    (stable) ordered by -z, then the rest in Euclidean order; equal keys
    (-z among the candidates, distance among the rest) stay tied. Each
    item gets the dense rank of its key ``(0, -z)`` or ``(1, d)``."""
    mnet = model.head.mnet.eval()
    euclid = feature_distance(query.double(), gallery.double(), 'sqeuclidean')
    out = np.empty_like(euclid)
    with torch.no_grad():
        for i, q in enumerate(query):
            order = sorted(
                range(len(gallery)), key=lambda j: (euclid[i, j], j))
            keys = {}
            for pos, j in enumerate(order):
                if pos < k:
                    z = float(mnet(((q - gallery[j])**2)[None])[0])
                    keys[j] = (0, -z)
                else:
                    keys[j] = (1, euclid[i, j])
            distinct = sorted(set(keys.values()))
            dense = {key: n for n, key in enumerate(distinct)}
            out[i] = [dense[keys[j]] for j in range(len(gallery))]
    return out


@pytest.mark.parametrize('tie_policy,cmc_mode,ap_mode', [
    ('pessimistic', 'dedup', 'cumsum'),
    ('optimistic', 'standard', 'threshold'),
])
def test_mnet_topk_ties_under_other_rank_options(tie_policy, cmc_mode,
                                                 ap_mode):
    """GMN with ``mnet_topk`` (a speed option, configs/gmn/README.md):
    its distances are positions, "tied logits (and tied Euclidean
    distances after the k candidates) sharing one position, so the
    metric's tie_policy applies". With duplicated gallery features (tied
    both among the candidates and after them), the pessimistic or
    optimistic policy, the de-duplicated CMC or threshold AP, the
    primary ``mnet_top4`` numbers are those of the definition."""
    model = tiny_gmn(mnet_topk=4)
    query = F.normalize(torch.randn(5, DIM, generator=torch.Generator(
    ).manual_seed(3)), dim=1)
    gallery = F.normalize(torch.randn(16, DIM, generator=torch.Generator(
    ).manual_seed(4)), dim=1)
    gallery[5] = gallery[2]
    gallery[9] = gallery[2]
    gallery[12] = gallery[14]
    rng = np.random.default_rng(1)
    labels = (rng.integers(0, 3, 5), rng.integers(0, 5, 16),
              rng.integers(0, 3, 5), rng.integers(0, 3, 16))
    metric = ReIDMetric(
        tie_policy=tie_policy,
        cmc_mode=cmc_mode,
        ap_mode=ap_mode,
        ranks=(1, 2, 3))
    scorers = model.scorers()
    assert next(iter(scorers)) == 'mnet_top4'
    metric.set_scorers(scorers, primary='mnet_top4')
    printed = evaluate(
        metric, data_samples(query.numpy(), gallery.numpy(), *labels))
    expected = textbook_metrics(
        topk_keys(model, query, gallery, 4),
        *labels,
        tie_policy=tie_policy,
        cmc_mode=cmc_mode,
        ap_mode=ap_mode)
    assert_metrics(printed, expected, abs_tol=1e-9)
    assert_metrics({k.split('/')[-1]: v
                    for k, v in printed.items()
                    if k.startswith('mnet_top4/')}, expected, abs_tol=1e-9)
