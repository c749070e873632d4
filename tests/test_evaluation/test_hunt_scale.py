"""Wrong-number hunt SZ: arithmetic at the sizes of real datasets.

MSMT17 has 15 cameras (two-digit camera fields, camids up to 14), DG
training sets and synthetic galleries have pids beyond 9,999, and AMP
extraction gives float16 features. The ranking, re-ranking, query
expansion and verification were probed at those values, with their chunk,
block and digit arithmetic (see the hunt's report); these tests pin the
behaviour that decides a printed number there and that no other test
reaches: every expected value is computed here from the definitions (the
evaluation spec, sections 2.2 and 3), by a full stable sort per query.
"""
import numpy as np
import pytest
import torch

from mmreid.evaluation.functional import evaluate_rank
from mmreid.evaluation.metrics import ReIDMetric


def definition_metrics(dist, q_pids, g_pids, q_camids, g_camids, dedup=False):
    """R1 and mAP (fractions) by a full stable sort per query.

    The ``'market'`` rule (spec 2.2) removes the query's pid seen by its
    camera; AP = mean_j j / r_j (spec 3); with ``dedup`` the CMC rank is 1
    + the distinct pids ranked before the first match.
    """
    hits, aps = [], []
    for q in range(len(q_pids)):
        keep = ~((g_pids == q_pids[q]) & (g_camids == q_camids[q]))
        order = np.argsort(dist[q][keep], kind='stable')
        pids = g_pids[keep][order]
        matches = pids == q_pids[q]
        if not matches.any():
            continue
        ranks = np.flatnonzero(matches) + 1
        first = ranks[0]
        if dedup:
            first = 1 + len(np.unique(pids[:ranks[0] - 1]))
        hits.append(first == 1)
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
    return float(np.mean(hits)), float(np.mean(aps))


@pytest.mark.parametrize('cmc_mode', ['standard', 'dedup'])
def test_five_digit_pids_and_two_digit_cameras_rank_by_the_definition(
        cmc_mode):
    """MSMT17-like labels: pids 10,000 and more, cameras c01..c15.

    A user evaluates a set whose pids pass 9,999 (a DG training set's
    offsets, a synthetic gallery) and whose cameras run to 15. Pids that
    differ only beyond four digits (10,003 and 20,003) are other people,
    and camids 1 and 11 (cameras c02 and c12) other cameras: the
    ``'market'`` rule removes only the query's pid seen by its own camera.
    Reading pids modulo 10,000 or cameras by one digit would merge them;
    R1 and mAP must be those of the definition (spec 2.2, 3).
    """
    rng = np.random.default_rng(0)
    num_query, num_gallery = 24, 300
    base = np.array([10_003, 20_003, 30_003, 10_004, 20_004, 99_999])
    q_pids = base[rng.integers(0, len(base), num_query)]
    g_pids = base[rng.integers(0, len(base), num_gallery)]
    q_camids = rng.choice([1, 11, 14], num_query)
    g_camids = rng.choice([1, 11, 14, 0], num_gallery)
    # Coarse distances: many ties, ordered by gallery index.
    dist = rng.integers(0, 20, (num_query, num_gallery)).astype(np.float32)
    result = evaluate_rank(
        dist, q_pids, g_pids, q_camids, g_camids, cmc_mode=cmc_mode)
    r1, mean_ap = definition_metrics(dist, q_pids, g_pids, q_camids,
                                     g_camids, cmc_mode == 'dedup')
    assert result.cmc[0] == pytest.approx(r1, abs=1e-12)
    assert result.mAP == pytest.approx(mean_ap, abs=1e-12)


def _samples(feats, pids, camids, roles):
    """Data samples as the test loop hands them to a metric."""
    return [
        dict(
            pred_feature=feat,
            gt_label=torch.tensor([pid]),
            camid=camid,
            role=role,
            img_path=f'{role}_{index}.jpg',
            sample_idx=index)
        for index, (feat, pid, camid, role) in enumerate(
            zip(feats, pids, camids, roles))
    ]


@pytest.mark.parametrize('options', [
    dict(),
    dict(distance='cosine'),
    dict(rerank=dict(k1=5, k2=3)),
    dict(query_expansion=dict(k=3)),
    dict(verification_fprs=(0.01, 0.1)),
])
def test_float16_features_print_the_numbers_of_their_values(options):
    """Features extracted under AMP are float16.

    A user tests with ``test_cfg.fp16=True``: ReIDMetric receives float16
    features. Their distances are computed in fp32 (spec 1: distances
    always in fp32), so every printed number must be the one of the same
    values given as float32, and, for plain Euclidean ranking, the R1 and
    mAP of the definition (spec 3) on those values. A path that scored
    the halves in fp16 would round distances into ties and move them.
    """
    generator = torch.Generator().manual_seed(0)
    num_query, num_gallery = 12, 60
    pids = (torch.cat([torch.arange(num_query) % 6,
                       torch.arange(num_gallery) % 8]) + 10_000).tolist()
    camids = ([0] * num_query +
              torch.randint(0, 15, (num_gallery, ),
                            generator=generator).tolist())
    roles = ['query'] * num_query + ['gallery'] * num_gallery
    halves = (torch.randn(num_query + num_gallery, 16, generator=generator) *
              30).half()
    printed = []
    for feats in (halves, halves.float()):
        metric = ReIDMetric(**options)
        metric.process(None, _samples(feats, pids, camids, roles))
        printed.append(metric.compute_metrics(metric.results))
    assert printed[0] == printed[1]
    if options:
        return
    values = halves.double()
    dist = torch.cdist(values[:num_query], values[num_query:]).numpy()
    labels = np.array(pids), np.array(camids)
    r1, mean_ap = definition_metrics(dist, labels[0][:num_query],
                                     labels[0][num_query:],
                                     labels[1][:num_query],
                                     labels[1][num_query:])
    assert printed[0]['R1'] == pytest.approx(100 * r1, abs=1e-9)
    assert printed[0]['mAP'] == pytest.approx(100 * mean_ap, abs=1e-6)
