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
        with pytest.warns(DeprecationWarning, match=f'functional.{name}'):
            assert getattr(module, name) is getattr(functional, name)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(AttributeError, match='no_such_name'):
            split_metric.no_such_name
