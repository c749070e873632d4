"""The contracts the metric family shares: the prelude and the pairwise
step of :class:`ReIDMetric`, the summary over partitions, the junk rules
of the positive check, and the old import paths."""
import importlib
import math
import warnings

import pytest
import torch

from mmreid.evaluation.functional import (count_valid_positives, evaluate_rank,
                                          summarize_partitions)
from mmreid.evaluation.metrics import (CUHK03ClassicMetric, DGSplitMetric,
                                       LLCMMetric, QueryGallery, ReIDMetric,
                                       SYSUMetric, TrialGalleryMetric)
from mmreid.registry import METRICS


def record_sample(idx, pid, camid, role, feature, path=None):
    """A sample as mmengine hands it to ``process``."""
    return dict(
        pred_feature=torch.as_tensor(feature, dtype=torch.float32),
        gt_label=torch.tensor([pid]),
        camid=camid,
        role=role,
        sample_idx=idx,
        dataset='toy',
        img_path=path or f'toy/{idx:03d}.jpg')


def records_of(metric, samples):
    metric.process(None, samples)
    records, metric.results = metric.results, []
    return records


def toy_samples():
    """Queries and gallery interleaved, features = (idx, pid)."""
    roles = ['gallery', 'query', 'gallery', 'gallery', 'query', 'gallery']
    pids = [1, 1, 2, 1, 2, 3]
    camids = [1, 0, 1, 2, 0, 1]
    return [
        record_sample(i, pid, cam, role, [float(i), float(pid)])
        for i, (role, pid, cam) in enumerate(zip(roles, pids, camids))
    ]


def test_summarize_partitions_against_hand_computation():
    per_split = [
        dict(R1=50.0, mAP=10.0),
        dict(R1=70.0, mAP=20.0),
        dict(R1=90.0, mAP=60.0),
    ]
    summary = summarize_partitions(per_split)
    # R1: mean 70, deviations -20, 0, 20 -> population variance 800 / 3.
    # mAP: mean 30, deviations -20, -10, 30 -> variance 1400 / 3.
    assert summary == pytest.approx(
        dict(
            R1=70.0,
            mAP=30.0,
            R1_std=math.sqrt(800 / 3),
            mAP_std=math.sqrt(1400 / 3)))
    assert list(summary) == ['R1', 'mAP', 'R1_std', 'mAP_std']
    # One partition: its values, no spread.
    assert summarize_partitions([dict(R1=42.0)]) == dict(R1=42.0, R1_std=0.0)
    with pytest.raises(ValueError, match='at least one'):
        summarize_partitions([])
    with pytest.raises(ValueError, match='partition 1 has keys'):
        summarize_partitions([dict(R1=1.0), dict(mAP=1.0)])


def test_split_roles_drops_padding_duplicates_and_splits_roles():
    samples = toy_samples()
    # Distributed padding repeats the first samples at the end.
    padded = samples + samples[:2]
    metric = ReIDMetric()
    data = metric.split_roles(records_of(metric, padded))
    assert isinstance(data, QueryGallery)
    assert [r['sample_idx'] for r in data.query] == [1, 4]
    assert [r['sample_idx'] for r in data.gallery] == [0, 2, 3, 5]
    assert data.query_feats.dtype == torch.float32
    assert data.query_feats.tolist() == [[1.0, 1.0], [4.0, 2.0]]
    assert data.gallery_feats[:, 0].tolist() == [0.0, 2.0, 3.0, 5.0]
    q_pids, g_pids, q_camids, g_camids = data.labels
    assert q_pids.dtype == torch.long and g_camids.dtype == torch.long
    assert q_pids.tolist() == [1, 2] and g_pids.tolist() == [1, 2, 1, 3]
    assert q_camids.tolist() == [0, 0] and g_camids.tolist() == [1, 1, 2, 1]


def test_split_roles_needs_both_roles_and_names_the_metric():
    gallery_only = [s for s in toy_samples() if s['role'] == 'gallery']
    for metric in (ReIDMetric(), DGSplitMetric(), CUHK03ClassicMetric()):
        with pytest.raises(ValueError) as info:
            metric.split_roles(records_of(metric, gallery_only))
        assert str(info.value) == (
            f'{type(metric).__name__} got 0 query and 4 gallery samples; '
            'both are needed')


def test_every_metric_of_the_family_drops_padding_the_same_way():
    """DG splits and CUHK03 classic evaluated with and without padding
    repeats give the same numbers (the prelude is shared)."""
    gen = torch.Generator().manual_seed(0)
    samples = []
    for pid in range(6):
        center = torch.randn(4, generator=gen)
        for cam, role in ((0, 'query'), (1, 'gallery'), (2, 'gallery')):
            samples.append(
                record_sample(
                    len(samples), pid, cam, role,
                    center + 0.5 * torch.randn(4, generator=gen),
                    f'toy/{role}/{pid}_{cam}.jpg'))
    splits = [
        dict(
            query=[f'toy/query/{p}_0.jpg' for p in ids],
            gallery=[f'toy/gallery/{p}_1.jpg' for p in ids])
        for ids in ((0, 1, 2), (3, 4, 5))
    ]
    padded = samples + samples[:4]
    for make in (lambda: DGSplitMetric(distance='euclidean'),
                 lambda: CUHK03ClassicMetric(seed=0)):
        plain, repeated = make(), make()
        for metric in (plain, repeated):
            if isinstance(metric, DGSplitMetric):
                # Only the split metric evaluates a union of splits.
                metric.dataset_meta = dict(dg_splits=splits)
        assert (repeated.compute_metrics(records_of(
            repeated,
            padded)) == plain.compute_metrics(records_of(plain, samples)))


def test_pairwise_distances_of_names_and_scorers():
    samples = toy_samples()
    metric = ReIDMetric(memory_budget_mb=1e-6)  # one query row per chunk
    data = metric.split_roles(records_of(metric, samples))
    expected = torch.cdist(data.query_feats, data.gallery_feats)
    dist = metric.pairwise_distances(data.query_feats, data.gallery_feats)
    assert dist.shape == (2, 4)
    torch.testing.assert_close(dist, expected)
    # The old name is the same step.
    torch.testing.assert_close(
        metric.pool_distances(data.query_feats, data.gallery_feats), dist)

    calls = []

    def scorer(query, gallery):
        calls.append(len(query))
        return -query @ gallery.t()

    metric.set_scorers(dict(dot=scorer))
    dist = metric.pairwise_distances(data.query_feats, data.gallery_feats)
    torch.testing.assert_close(dist,
                               -data.query_feats @ data.gallery_feats.t())
    assert sum(calls) == 2 and max(calls) == 1  # chunked by the budget


def test_partition_metrics_report_each_partition_and_the_summary():
    metric = ReIDMetric(ranks=(1, 2), max_rank=2)
    # Two hand-made partitions: dist rows are queries.
    q_pids, g_pids = torch.tensor([1, 2]), torch.tensor([1, 2, 3])
    q_cams, g_cams = torch.tensor([0, 0]), torch.tensor([1, 1, 1])
    first = evaluate_rank(
        torch.tensor([[0.1, 0.5, 0.9], [0.2, 0.1, 0.3]]),
        q_pids,
        g_pids,
        q_cams,
        g_cams,
        max_rank=2)  # both queries right at rank 1
    second = evaluate_rank(
        torch.tensor([[0.5, 0.1, 0.9], [0.2, 0.1, 0.3]]),
        q_pids,
        g_pids,
        q_cams,
        g_cams,
        max_rank=2)  # query 0 at rank 2, AP 1/2
    metrics = metric.partition_metrics(
        'split', [first, second],
        [dict(num_query=2), dict(num_query=2)])
    assert metrics['split0/R1'] == pytest.approx(100.0)
    assert metrics['split1/R1'] == pytest.approx(50.0)
    assert metrics['split1/mAP'] == pytest.approx(75.0)
    assert metrics['split1/num_query'] == 2
    assert metrics['R1'] == pytest.approx(75.0)
    assert metrics['R1_std'] == pytest.approx(25.0)
    assert metrics['R2'] == pytest.approx(100.0)
    assert metrics['mAP'] == pytest.approx(87.5)
    assert metrics['mAP_std'] == pytest.approx(12.5)


def test_count_valid_positives_follows_the_junk_rules():
    q_pids = torch.tensor([1, 1, 2])
    q_cams = torch.tensor([0, 2, 2])  # camid 2 = SYSU cam3
    g_pids = torch.tensor([1, 1, 2, 2, 3])
    g_cams = torch.tensor([0, 1, 1, 2, 1])  # camid 1 = SYSU cam2
    # none: every same-pid item.
    assert count_valid_positives(q_pids, g_pids, q_cams, g_cams,
                                 'none').tolist() == [2, 2, 2]
    # market: minus same pid and same camera.
    assert count_valid_positives(q_pids, g_pids, q_cams,
                                 g_cams).tolist() == [1, 2, 1]
    # sysu: camid-2 queries lose every camid-1 item.
    assert count_valid_positives(q_pids, g_pids, q_cams, g_cams,
                                 'sysu').tolist() == [2, 1, 1]

    def only_camera_zero(same_pid, q_camids, g_camids):
        return (g_camids != 0)[None, :].expand_as(same_pid)

    assert count_valid_positives(q_pids, g_pids, q_cams, g_cams,
                                 only_camera_zero).tolist() == [1, 1, 0]
    with pytest.raises(ValueError, match='junk_rule'):
        count_valid_positives(q_pids, g_pids, q_cams, g_cams, 'duke')


def test_dg_split_metric_checks_positives_with_the_ranking_rule():
    """The single-positive check uses the same rule as the ranking, any
    rule :func:`get_junk_rule` knows (a callable included)."""
    samples = []
    for pid in range(4):
        for cam, role in ((0, 'query'), (1, 'gallery'), (2, 'gallery')):
            feature = [float(pid), float(cam)]
            samples.append(
                record_sample(
                    len(samples), pid, cam, role, feature,
                    f'toy/{role}/{pid}_{cam}.jpg'))
    split = dict(
        query=[f'toy/query/{p}_0.jpg' for p in range(4)],
        gallery=[f'toy/gallery/{p}_{c}.jpg' for p in range(4) for c in (1, 2)])

    def drop_camera_two(same_pid, q_camids, g_camids):
        return (g_camids == 2)[None, :].expand_as(same_pid)

    metric = DGSplitMetric(junk_rule=drop_camera_two)
    metric.dataset_meta = dict(dg_splits=[split])
    metrics = metric.compute_metrics(records_of(metric, samples))
    # The kept positive (camera 1) is the nearest gallery item.
    assert metrics['split0/R1'] == pytest.approx(100.0)
    assert metrics['split0/num_query'] == 4
    # With the 'market' rule both gallery images stay positive: refused.
    metric = DGSplitMetric()
    metric.dataset_meta = dict(dg_splits=[split])
    with pytest.raises(ValueError, match='2 valid positives'):
        metric.compute_metrics(records_of(metric, samples))


def test_partitioned_metrics_refuse_feature_options():
    for cls in (DGSplitMetric, CUHK03ClassicMetric, TrialGalleryMetric,
                SYSUMetric, LLCMMetric):
        for option, value in (('query_expansion', dict(k=2)), ('rerank',
                                                               dict(k1=2)),
                              ('verification_fprs', (0.1, ))):
            with pytest.raises(ValueError) as info:
                cls(**{option: value})
            assert str(info.value) == (f'{cls.__name__} does not support '
                                       f'{option}')


def test_registered_names_and_old_import_paths():
    for name, cls in (('ReIDMetric', ReIDMetric),
                      ('DGSplitMetric', DGSplitMetric), ('CUHK03ClassicMetric',
                                                         CUHK03ClassicMetric),
                      ('SYSUMetric', SYSUMetric), ('LLCMMetric', LLCMMetric)):
        assert METRICS.get(name) is cls
        assert issubclass(cls, ReIDMetric)
    split_metric = importlib.import_module(
        'mmreid.evaluation.metrics.split_metric')
    cross_modality = importlib.import_module(
        'mmreid.evaluation.metrics.cross_modality_metric')
    assert split_metric.DGSplitMetric is DGSplitMetric
    assert split_metric.CUHK03ClassicMetric is CUHK03ClassicMetric
    assert cross_modality.TrialGalleryMetric is TrialGalleryMetric
    functional = importlib.import_module('mmreid.evaluation.functional')
    moved = [(split_metric, 'classic_cmc')] + [
        (cross_modality, name)
        for name in ('group_pool', 'seeded_gallery_draw',
                     'official_gallery_draw', 'normalize_rand_perm_cam')
    ]
    for module, name in moved:
        with pytest.warns(FutureWarning, match=f'functional.{name}'):
            assert getattr(module, name) is getattr(functional, name)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(AttributeError, match='no_such_name'):
            split_metric.no_such_name


# Gallery-dependent scorers. GMN's top-k rerank (gmn.md 8.4) scores, per
# query, the k nearest Euclidean candidates *of the gallery being
# evaluated*: its distances to a split's or trial's gallery are not columns
# of its distances to the whole pool.
TOPK = 3


def toy_mnet(dim=6, hidden=8, seed=0):
    """A folded M-Net: (weight (H, D), bias (H,), out_weight (H,), out_bias)
    for :class:`MNetPairScorer`."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(hidden, dim,
                        generator=gen), torch.randn(hidden, generator=gen),
            torch.randn(hidden, generator=gen), 0.1)


def topk_ranking(query, gallery, mnet, k):
    """The ranked gallery of one query, from the definition (gmn.md 8.4):
    the gallery in ascending squared Euclidean distance (ties: gallery
    order); its first k re-ordered by descending M-Net logit
    z = w2 . relu(W (q - g)^2 + b) + b2 (ties: Euclidean order); the rest
    after them in Euclidean order. In float64."""
    weight, bias, out_weight, out_bias = (
        torch.as_tensor(p, dtype=torch.float64) for p in mnet)
    q, g = query.double(), gallery.double()
    euclid = ((g - q)**2).sum(1).tolist()
    order = sorted(range(len(g)), key=lambda j: (euclid[j], j))
    head, tail = order[:k], order[k:]
    z = {
        j: float(out_weight @ torch.relu(weight @ (q - g[j])**2 + bias) +
                 out_bias)
        for j in head
    }
    return sorted(head, key=lambda j: -z[j]) + tail  # sorted() is stable


def ranked_metrics(probes, gallery, mnet, k):
    """R1 and mAP (percent) of probes against a gallery, each a list of
    (feature, pid, camid); the market rule (same pid and camid removed);
    AP = (1/m) sum_j j / r_j over the ranks r_j of the m positives."""
    firsts, aps = [], []
    for feature, pid, camid in probes:
        ranking = topk_ranking(feature, torch.stack([g[0] for g in gallery]),
                               mnet, k)
        kept = [
            j for j in ranking
            if not (gallery[j][1] == pid and gallery[j][2] == camid)
        ]
        hits = [r for r, j in enumerate(kept, 1) if gallery[j][1] == pid]
        assert hits
        firsts.append(hits[0])
        aps.append(sum(i / r for i, r in enumerate(hits, 1)) / len(hits))
    return dict(
        R1=100 * sum(r == 1 for r in firsts) / len(firsts),
        mAP=100 * sum(aps) / len(aps))


def topk_scorer(mnet, k=TOPK):
    from mmreid.evaluation.functional import MNetPairScorer
    return MNetPairScorer(*mnet, distance='mnet', topk=k)


def dg_target(num_ids=16, dim=6, seed=1):
    """One cam-0 query and one cam-1 gallery image per identity; three
    splits of 8 identities."""
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for pid in range(num_ids):
        base = torch.randn(dim, generator=gen)
        for cam, role in ((0, 'query'), (1, 'gallery')):
            samples.append(
                record_sample(
                    len(samples), pid, cam, role,
                    base + 0.9 * torch.randn(dim, generator=gen),
                    f'{role}/{pid}_{cam}.jpg'))
    splits = []
    for s in range(3):
        ids = torch.randperm(num_ids, generator=gen)[:8].tolist()
        splits.append(
            dict(
                query=[f'query/{p}_0.jpg' for p in ids],
                gallery=[f'gallery/{p}_1.jpg' for p in ids]))
    return samples, splits


def test_dg_split_metric_scores_each_split_gallery_with_a_topk_scorer():
    """Each split ranked with the top-k candidates of its own gallery, as
    gmn.md 8.4 defines them (not of the pool of all splits' galleries)."""
    samples, splits = dg_target()
    mnet = toy_mnet()
    metric = DGSplitMetric()
    metric.dataset_meta = dict(dg_splits=splits)
    metric.set_scorers({'mnet': topk_scorer(mnet)}, primary='mnet')
    got = metric.compute_metrics(records_of(metric, samples))
    by_path = {
        s['img_path']: (s['pred_feature'], int(s['gt_label']), s['camid'])
        for s in samples
    }
    expected = [
        ranked_metrics([by_path[p] for p in split['query']],
                       [by_path[p] for p in split['gallery']], mnet, TOPK)
        for split in splits
    ]
    for index, values in enumerate(expected):
        for key in ('R1', 'mAP'):
            assert got[f'split{index}/{key}'] == pytest.approx(values[key])
    assert got['mAP'] == pytest.approx(
        sum(v['mAP'] for v in expected) / len(expected))


def trial_target(dim=6, seed=2):
    """6 identities: 2 queries each from camera 3 (camid 2), a pool of 3
    images per identity from cameras 1 and 2 (camids 0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for pid in range(6):
        base = torch.randn(dim, generator=gen)
        for cam, role, count in ((2, 'query', 2), (0, 'gallery', 3),
                                 (1, 'gallery', 3)):
            for _ in range(count):
                samples.append(
                    record_sample(
                        len(samples), pid, cam, role,
                        base + 0.9 * torch.randn(dim, generator=gen)))
    return samples


@pytest.mark.parametrize('transpose', [False, True])
def test_trial_metric_scores_each_trial_gallery_with_a_topk_scorer(transpose):
    """Each trial ranked with the top-k candidates of the gallery it ranks:
    the drawn gallery, or, transposed, all query samples for the drawn
    probes."""
    samples = trial_target()
    mnet = toy_mnet()
    metric = TrialGalleryMetric(num_trials=3, transpose=transpose)
    metric.set_scorers({'mnet': topk_scorer(mnet)}, primary='mnet')
    got = metric.compute_metrics(records_of(metric, samples))
    by_idx = {
        s['sample_idx']: (s['pred_feature'], int(s['gt_label']), s['camid'])
        for s in samples
    }
    queries = [
        by_idx[s['sample_idx']] for s in samples if s['role'] == 'query'
    ]
    for trial, drawn in enumerate(metric.trial_gallery_sample_idx):
        drawn = [by_idx[i] for i in drawn]
        assert len(drawn) == 12
        probes, gallery = (drawn, queries) if transpose else (queries, drawn)
        expected = ranked_metrics(probes, gallery, mnet, TOPK)
        for key in ('R1', 'mAP'):
            assert got[f'trial{trial}/{key}'] == pytest.approx(expected[key])


def test_gallery_dependent_scorers_are_refused_where_undefined():
    """Verification thresholds distances across queries, and the classic
    CMC ranks sampled sub-galleries by the full gallery's order; a top-k
    scorer's distances are positions in one query's ranking of one
    gallery, so both refuse it, naming the scorer and the option."""
    samples = trial_target()
    mnet = toy_mnet()
    metric = ReIDMetric(verification_fprs=(0.1, ))
    metric.set_scorers({'mnet': topk_scorer(mnet)}, primary='mnet')
    with pytest.raises(ValueError, match="verification_fprs.*'mnet'"):
        metric.compute_metrics(records_of(metric, samples))
    metric = CUHK03ClassicMetric()
    metric.set_scorers({'mnet': topk_scorer(mnet)}, primary='mnet')
    with pytest.raises(ValueError, match="CUHK03ClassicMetric.*'mnet'"):
        metric.compute_metrics(records_of(metric, samples))
    # Without top-k the M-Net's -z is a pair score: accepted.
    from mmreid.evaluation.functional import MNetPairScorer
    metric = ReIDMetric(verification_fprs=(0.1, ))
    metric.set_scorers({'mnet': MNetPairScorer(*mnet)}, primary='mnet')
    assert 'TPR@FPR=1e-01' in metric.compute_metrics(
        records_of(metric, samples))


@pytest.mark.parametrize('kind', ['trial', 'split', 'classic'])
def test_a_protocol_names_the_model_mode_it_ranks_with(kind):
    """The protocol metrics rank with the model's primary mode only. Their
    keys said nothing of it, so a GMN model's SYSU target was the results
    table's row 'sysu' (beside 'd3/mnet', 'd3/euclid' of a ReIDMetric
    target), a top-k M-Net included. The protocol's keys also come under
    the primary mode's name, and the table's row names it."""
    from mmreid.evaluation.functional import MNetPairScorer
    from mmreid.evaluation.results_table import (format_results_table,
                                                 results_rows)
    mnet = toy_mnet()
    if kind == 'trial':
        samples, metric = trial_target(), TrialGalleryMetric(num_trials=3)
        name, scorer = 'mnet_top3', topk_scorer(mnet, 3)
    elif kind == 'split':
        samples, splits = dg_target()
        metric = DGSplitMetric()
        metric.dataset_meta = dict(dg_splits=splits)
        name, scorer = 'mnet_top3', topk_scorer(mnet, 3)
    else:
        samples, metric = trial_target(), CUHK03ClassicMetric()
        name, scorer = 'mnet', MNetPairScorer(*mnet)
    # Without a model's scorers: the protocol's keys alone.
    plain = metric.compute_metrics(records_of(metric, samples))
    assert not any(key.startswith(f'{name}/') for key in plain)
    metric.set_scorers({
        name: scorer,
        'euclid': MNetPairScorer(*mnet)
    },
                       primary=name)
    got = metric.compute_metrics(records_of(metric, samples))
    whole = [key for key in got if '/' not in key]
    assert {'R1', 'mAP', 'num_query'} <= set(whole)
    for key in whole:
        assert got[f'{name}/{key}'] == got[key], key
    # Only the primary mode is ranked; partitions are not repeated.
    assert not any(key.startswith('euclid/') for key in got)
    assert not any(
        key.startswith(f'{name}/') and key.count('/') > 1 for key in got)
    reported = {f'sysu/{key}': value for key, value in got.items()}
    rows = results_rows(reported)
    assert [(row.name, row.primary_of)
            for row in rows] == [(f'sysu/{name}', 'sysu')]
    if kind != 'classic':
        assert rows[0].stds and rows[0].stds['mAP'] == got['mAP_std']
    lines = format_results_table(reported).splitlines()
    assert lines[2].startswith(f'sysu/{name} *')
    assert lines[-1] == f'* sysu/{name} is also reported as sysu/<metric>'
