import math
import re

import numpy as np
import pytest
import torch

import mmreid.evaluation.metrics.records as records_module
import mmreid.evaluation.metrics.reid_metric as reid_metric_module
from mmreid.evaluation import ReIDMetric
from mmreid.evaluation.functional import (evaluate_features, evaluate_rank,
                                          evaluate_verification,
                                          evaluate_verification_features,
                                          k_reciprocal_rerank, query_expansion)
from mmreid.registry import METRICS
from mmreid.structures import ReIDDataSample


def make_samples(seed=0, num_query=12, num_gallery=40, dim=8):
    """Data samples as mmengine hands them to a metric: dicts made by
    ``ReIDDataSample.to_dict()``, query first, then gallery."""
    generator = torch.Generator().manual_seed(seed)
    num_pids = 6
    centers = torch.randn(num_pids, dim, generator=generator)
    samples = []
    for idx in range(num_query + num_gallery):
        role = 'query' if idx < num_query else 'gallery'
        pid = idx % num_pids
        # One query (pid 5 on camera 0) has only same-camera matches.
        camid = 0 if pid == 5 else int(torch.randint(0, 3, (1, ))) + 1
        if pid != 5 and role == 'query':
            camid = 0
        feature = centers[pid] + torch.randn(dim, generator=generator)
        sample = ReIDDataSample(
            metainfo=dict(
                camid=camid,
                role=role,
                modality=0,
                dataset='toy',
                img_path=f'toy/{idx:04d}.jpg',
                sample_idx=idx))
        sample.set_gt_label(pid)
        sample.set_pred_feature(feature)
        samples.append(sample.to_dict())
    return samples


def run_metric(metric, samples, batch_size=5):
    for start in range(0, len(samples), batch_size):
        metric.process(None, samples[start:start + batch_size])
    return metric.evaluate(len(metric.results))


def expected_metrics(samples, **kwargs):
    query = [s for s in samples if s['role'] == 'query']
    gallery = [s for s in samples if s['role'] == 'gallery']

    def labels(records, key):
        return torch.tensor([int(torch.as_tensor(r[key])) for r in records])

    return evaluate_features(
        torch.stack([s['pred_feature'] for s in query]),
        torch.stack([s['pred_feature'] for s in gallery]),
        labels(query, 'gt_label'), labels(gallery, 'gt_label'),
        labels(query, 'camid'), labels(gallery, 'camid'), **kwargs)


def test_end_to_end():
    samples = make_samples()
    metric = METRICS.build(dict(type='ReIDMetric', distance='euclidean'))
    assert isinstance(metric, ReIDMetric)
    metrics = run_metric(metric, samples)
    assert set(metrics) == {
        'reid/R1', 'reid/R5', 'reid/R10', 'reid/R20', 'reid/mAP', 'reid/mINP',
        'reid/num_query', 'reid/num_valid_query'
    }
    # mmengine sums every logged key containing 'loss'.
    assert not any('loss' in key for key in metrics)
    expected = expected_metrics(samples)
    assert metrics['reid/num_query'] == 12
    # The pid 5 queries sit on camera 0 with their whole gallery.
    assert metrics['reid/num_valid_query'] == 10 == expected.num_valid_query
    assert metrics['reid/R1'] == pytest.approx(expected.cmc[0] * 100)
    assert metrics['reid/R5'] == pytest.approx(expected.cmc[4] * 100)
    assert metrics['reid/mAP'] == pytest.approx(expected.mAP * 100)
    assert metrics['reid/mINP'] == pytest.approx(expected.mINP * 100)
    assert 0 < metrics['reid/mAP'] < 100
    assert metric.last_result.num_valid_query == 10


def test_options_are_forwarded():
    samples = make_samples(1)
    metric = ReIDMetric(
        distance='cosine',
        ranks=(1, 3),
        max_rank=3,
        junk_rule='none',
        tie_policy='pessimistic',
        ap_mode='threshold',
        prefix='market')
    metrics = run_metric(metric, samples)
    expected = expected_metrics(
        samples,
        distance='cosine',
        max_rank=3,
        junk_rule='none',
        tie_policy='pessimistic',
        ap_mode='threshold')
    assert set(metrics) >= {'market/R1', 'market/R3', 'market/mAP'}
    assert metrics['market/R3'] == pytest.approx(expected.cmc[2] * 100)
    assert metrics['market/mAP'] == pytest.approx(expected.mAP * 100)
    # No removal: every query has a positive.
    assert metrics['market/num_valid_query'] == 12


def test_padding_duplicates_are_dropped(monkeypatch):
    samples = make_samples(2)
    logs = []
    monkeypatch.setattr(records_module, 'print_log',
                        lambda msg, **kwargs: logs.append(msg))
    plain = ReIDMetric()
    plain_metrics = plain.compute_metrics(_records(plain, samples))

    # Distributed padding repeats samples; interleaved results of two
    # ranks put the repeats anywhere in the list.
    padded_samples = samples[:30] + samples[:3] + samples[30:] + samples[-2:]
    padded = ReIDMetric()
    padded_metrics = padded.compute_metrics(_records(padded, padded_samples))
    assert padded_metrics == plain_metrics
    assert any('ReIDMetric dropped 5 repeated records' in msg for msg in logs)

    # The warning names the metric that dropped them: a protocol metric or
    # a user's subclass is not "ReIDMetric" in its log.
    class MyMetric(ReIDMetric):
        pass

    logs.clear()
    mine = MyMetric()
    assert mine.compute_metrics(_records(mine,
                                         padded_samples)) == plain_metrics
    assert any('MyMetric dropped 5 repeated records' in msg for msg in logs)


def _records(metric, samples):
    metric.process(None, samples)
    records, metric.results = metric.results, []
    return records


def test_conflicting_sample_idx_raises():
    samples = make_samples(3)
    clash = dict(samples[20])
    clash['gt_label'] = torch.tensor([99])
    metric = ReIDMetric()
    with pytest.raises(ValueError, match='share sample_idx'):
        metric.compute_metrics(_records(metric, samples + [clash]))
    # The same pid on another camera is another sample too: refused, not
    # merged into the first record.
    clash = dict(samples[20], camid=samples[20]['camid'] + 1)
    metric = ReIDMetric()
    with pytest.raises(
            ValueError,
            match=r"^two samples share sample_idx=20 \(dataset 'toy', "
            r"image 'toy/0020.jpg'\) but differ in pid or camid"):
        metric.compute_metrics(_records(metric, samples + [clash]))


def test_skipped_queries_are_logged(monkeypatch):
    logs = []
    monkeypatch.setattr(reid_metric_module, 'print_log',
                        lambda msg, **kwargs: logs.append(msg))
    run_metric(ReIDMetric(), make_samples(4))
    assert any('2 of 12 queries have no positive' in msg for msg in logs)


def test_skipped_queries_are_named(monkeypatch):
    """The warning named no query: which of them has no positive? In
    :func:`make_samples` queries 5 and 11 (pid 5, camera 0) have only
    same-camera matches."""
    logs = []
    monkeypatch.setattr(reid_metric_module, 'print_log',
                        lambda msg, **kwargs: logs.append(msg))
    run_metric(ReIDMetric(), make_samples(4))
    assert [msg for msg in logs if 'were skipped' in msg] == [
        "2 of 12 queries have no positive in the gallery after the "
        "'market' junk rule and were skipped: query 5 (pid 5, camid 0), "
        "query 11 (pid 5, camid 0)."
    ]


@pytest.mark.filterwarnings(  # the deprecated set_scorer, kept one release
    'ignore:ReIDMetric.set_scorer:FutureWarning')
def test_data_elements_and_set_scorer():
    samples = make_samples(5)
    calls = []

    def scorer(query, gallery):
        calls.append(len(query))
        return -query @ gallery.t()

    metric = ReIDMetric()
    metric.set_scorer(scorer)
    elements = [ReIDDataSample(**_split(sample)) for sample in samples]
    metrics = run_metric(metric, elements)
    assert sum(calls) == 12
    expected = expected_metrics(samples, distance=scorer)
    assert metrics['reid/mAP'] == pytest.approx(expected.mAP * 100)
    with pytest.raises(TypeError, match='callable'):
        metric.set_scorer('euclidean')


def _split(sample):
    """Rebuild ReIDDataSample arguments from its to_dict() output."""
    data = {k: sample[k] for k in ('gt_label', 'pred_feature')}
    metainfo = {k: v for k, v in sample.items() if k not in data}
    return dict(metainfo=metainfo, **data)


def test_invalid_samples():
    samples = make_samples(6)
    bad_role = dict(samples[0], role='train')
    with pytest.raises(ValueError, match='role'):
        ReIDMetric().process(None, [bad_role])
    only_query = [s for s in samples if s['role'] == 'query']
    metric = ReIDMetric()
    with pytest.raises(ValueError, match='gallery'):
        metric.compute_metrics(_records(metric, only_query))
    with pytest.raises(ValueError, match='ranks'):
        ReIDMetric(ranks=(1, 60), max_rank=50)
    # R0 does not exist (cmc[-1] would print R at max_rank as 'R0').
    with pytest.raises(
            ValueError,
            match=r'^ranks must lie in \[1, max_rank=50\], got \(0, 1\)$'):
        ReIDMetric(ranks=(0, 1), max_rank=50)


@pytest.mark.parametrize('key, value, shown', [
    ('gt_label', torch.tensor([1.7]), 'tensor([1.7'),
    ('gt_label', np.float32(3.5), '3.5'),
    ('gt_label', 2.5, '2.5'),
    ('gt_label', float('nan'), 'nan'),
    ('gt_label', True, 'True'),
    ('gt_label', torch.tensor([True]), 'tensor([True])'),
    ('camid', torch.tensor([0.9]), 'tensor([0.9'),
    ('camid', np.bool_(False), 'False'),
    ('modality', 0.5, '0.5'),
])
def test_non_integer_labels_are_refused(key, value, shown):
    """int() truncated a pid of 1.7 to 1 and a camid of 0.9 to 0, and made
    True a 1, where evaluate_rank refuses float labels: refused, naming
    the key, the value and the sample's image."""
    sample = dict(make_samples(6)[0], **{key: value})
    metric = ReIDMetric()
    with pytest.raises(
            ValueError,
            match=rf"{key} of sample 'toy/0000.jpg' must be an integer, "
            rf'got .*{re.escape(shown)}'):
        metric.process(None, [sample])


@pytest.mark.parametrize('key, sets', [
    ('pred_feature', 'ReIDModel.predict'),
    ('gt_label', "record's 'pid'"),
    ('camid', "record's 'camid'"),
])
def test_a_sample_without_a_key_is_refused_naming_it(key, sets):
    """A sample without camid gave a bare KeyError: 'camid', naming
    neither the sample nor what sets the key."""
    sample = make_samples(6)[0]
    without = {k: v for k, v in sample.items() if k != key}
    for missing in (without, dict(sample, **{key: None})):
        with pytest.raises(
                ValueError,
                match=rf"ReIDMetric needs '{key}' in every data sample "
                rf".*{re.escape(sets)}.*sample 'toy/0000.jpg' has none"):
            ReIDMetric().process(None, [missing])


def test_a_sample_without_a_role_is_refused_naming_the_metric():
    """The role refusal named ReIDMetric whichever metric raised it."""
    from mmreid.evaluation.metrics import RegDBMetric
    sample = {k: v for k, v in make_samples(6)[0].items() if k != 'role'}
    for metric in (ReIDMetric(), RegDBMetric()):
        with pytest.raises(
                ValueError,
                match=rf"^{type(metric).__name__} needs role in .* got None "
                "for toy/0000.jpg"):
            metric.process(None, [sample])


@pytest.mark.parametrize('value', [
    3,
    np.int64(3),
    torch.tensor([3]),
    torch.tensor(3.0), 3.0, [3],
    np.array([3], dtype=np.int32)
])
def test_integer_labels_are_read_as_int(value):
    sample = dict(make_samples(6)[0], gt_label=value, camid=value)
    metric = ReIDMetric()
    metric.process(None, [sample])
    record = metric.results[0]
    assert record['pid'] == record['camid'] == 3
    assert type(record['pid']) is int and type(record['camid']) is int


@pytest.mark.parametrize('value', [[3, 4], (3, 4), []])
def test_a_label_list_of_other_than_one_is_refused(value):
    """A list or tuple label holds one value; [3, 4] is not pid 3."""
    sample = dict(make_samples(6)[0], gt_label=value)
    with pytest.raises(
            ValueError,
            match=r"^gt_label of sample 'toy/0000.jpg': expected one label, "
            rf'got {re.escape(repr(value))}$'):
        ReIDMetric().process(None, [sample])


def test_feature_storage_is_compact_and_on_cpu():
    samples = make_samples(7)
    metric = ReIDMetric()
    metric.process(None, samples[:2])
    record = metric.results[0]
    assert set(record) == {
        'feature', 'pid', 'camid', 'is_query', 'sample_idx', 'dataset',
        'img_path', 'modality'
    }
    assert record['feature'].device.type == 'cpu'
    assert record['feature'].shape == (8, )
    assert isinstance(record['pid'], int) and record['is_query']
    np.testing.assert_array_equal(record['feature'].numpy(),
                                  samples[0]['pred_feature'].numpy())


def split_samples(samples):
    """Query/gallery features and labels of ``make_samples`` output."""
    query = [s for s in samples if s['role'] == 'query']
    gallery = [s for s in samples if s['role'] == 'gallery']

    def labels(records, key):
        return torch.tensor([int(torch.as_tensor(r[key])) for r in records])

    return (torch.stack([s['pred_feature'] for s in query]),
            torch.stack([s['pred_feature'] for s in gallery]),
            labels(query, 'gt_label'), labels(gallery, 'gt_label'),
            labels(query, 'camid'), labels(gallery, 'camid'))


def test_extra_options_are_off_by_default():
    metric = ReIDMetric()
    assert metric.rerank is None and metric.query_expansion is None
    assert metric.verification_fprs is None
    metrics = run_metric(metric, make_samples(3))
    assert not any(key.startswith('reid/TPR') for key in metrics)


def test_verification_keys():
    samples = make_samples(4)
    metric = ReIDMetric(distance='cosine', verification_fprs=(1e-2, 0.1))
    metrics = run_metric(metric, samples)
    query, gallery, *labels = split_samples(samples)
    expected = evaluate_verification_features(
        query, gallery, *labels, distance='cosine', fprs=(1e-2, 0.1))
    assert metrics['reid/TPR@FPR=1e-02'] == pytest.approx(expected.tpr[0] *
                                                          100)
    assert metrics['reid/TPR@FPR=1e-01'] == pytest.approx(expected.tpr[1] *
                                                          100)
    assert 0 < metrics['reid/TPR@FPR=1e-01'] <= 100
    assert not any('loss' in key for key in metrics)


def test_verification_keys_name_the_fpr_evaluated():
    """A key names its FPR exactly: 0.14 does not overwrite 0.1 and 0.25
    is not printed as 2e-01; powers of ten keep their one-digit keys."""
    samples = make_samples(4)
    fprs = (0.1, 0.14, 0.25, 1e-2)
    metrics = run_metric(
        ReIDMetric(distance='cosine', verification_fprs=fprs), samples)
    query, gallery, *labels = split_samples(samples)
    expected = evaluate_verification_features(
        query, gallery, *labels, distance='cosine', fprs=fprs)
    keys = ('reid/TPR@FPR=1e-01', 'reid/TPR@FPR=1.4e-01',
            'reid/TPR@FPR=2.5e-01', 'reid/TPR@FPR=1e-02')
    reported = {k: v for k, v in metrics.items() if 'TPR' in k}
    assert sorted(reported) == sorted(keys)
    for key, tpr in zip(keys, expected.tpr):
        assert reported[key] == pytest.approx(tpr * 100), key
    # The toy case tells 0.1 from 0.14, so an overwrite would show.
    assert expected.tpr[0] != expected.tpr[1]


def test_float32_verification_fprs_report_the_decimals_written():
    # np.float32(0.001) is the 0.001 the user wrote: the same key and TPR
    # as 0.001, not a key of its float64 expansion 1.0000000474974513e-03.
    samples = make_samples(4)
    written = run_metric(
        ReIDMetric(distance='cosine', verification_fprs=(1e-3, 0.14)), samples)
    float32 = run_metric(
        ReIDMetric(
            distance='cosine',
            verification_fprs=(np.float32(1e-3), np.float32(0.14))), samples)
    keys = sorted(k for k in float32 if 'TPR' in k)
    assert keys == ['reid/TPR@FPR=1.4e-01', 'reid/TPR@FPR=1e-03']
    assert {k: float32[k] for k in keys} == {k: written[k] for k in keys}


def test_verification_of_a_float64_scorer_thresholds_its_distances():
    """TPR@FPR thresholds the distances the ranking ranks: a float64
    positive 1e-9 closer than both negatives is first in the ranking and
    accepted at FPR 0 (float32 rounding tied all three: TPR 0)."""
    samples = [
        dict(
            pred_feature=torch.tensor([float(i)]),
            gt_label=pid,
            camid=0 if i == 0 else 1,
            role='query' if i == 0 else 'gallery',
            sample_idx=i,
            img_path=f'{i}.jpg') for i, pid in enumerate((0, 0, 1, 2))
    ]
    dist = torch.tensor([[0.0, 1.0, 1.0 + 1e-9, 1.0 + 2e-9]],
                        dtype=torch.float64)

    def scorer(query, gallery):
        return dist[query[:, 0].long()][:, gallery[:, 0].long()]

    metric = ReIDMetric(ranks=(1, ), max_rank=3, verification_fprs=(0.0, ))
    metric.set_scorers({'f64': scorer})
    metric.process(None, samples)
    metrics = metric.compute_metrics(metric.results)
    assert metrics['R1'] == 100
    assert metrics['TPR@FPR=0e+00'] == 100


@pytest.mark.parametrize('fprs, match', [
    ((0.1, 0.1), r'verification_fprs repeats \[0.1\]'),
    ((1e-3, 0.001), r'verification_fprs repeats \[0.001\]'),
    ((float('nan'), ), r'verification_fprs must lie in \[0, 1\].*nan'),
    ((1e-2, 1.5), r'verification_fprs must lie in \[0, 1\].*1.5'),
    ((-0.1, ), r'verification_fprs must lie in \[0, 1\].*-0.1'),
])
def test_invalid_verification_fprs_are_refused_at_construction(fprs, match):
    with pytest.raises(ValueError, match=match):
        ReIDMetric(verification_fprs=fprs)


def test_rerank_option():
    samples = make_samples(5)
    rerank = dict(k1=6, k2=3, lambda_value=0.3)
    metric = ReIDMetric(rerank=rerank, verification_fprs=(0.1, ))
    metrics = run_metric(metric, samples)
    query, gallery, *labels = split_samples(samples)
    distmat = k_reciprocal_rerank(query, gallery, **rerank)
    expected = evaluate_rank(distmat, *labels)
    assert metrics['reid/mAP'] == pytest.approx(expected.mAP * 100)
    assert metrics['reid/R1'] == pytest.approx(expected.cmc[0] * 100)
    verification = evaluate_verification(distmat, *labels, fprs=(0.1, ))
    assert metrics['reid/TPR@FPR=1e-01'] == pytest.approx(verification.tpr[0] *
                                                          100)
    # Re-ranking changes the distances, hence (here) the mAP.
    plain = expected_metrics(samples)
    assert metrics['reid/mAP'] != pytest.approx(plain.mAP * 100)


def scaled_samples(seed):
    """``make_samples`` with each feature scaled by 0.2 to 5.2: the
    cosine and Euclidean geometries then rank differently."""
    samples = make_samples(seed)
    generator = torch.Generator().manual_seed(1)
    for sample in samples:
        scale = 0.2 + 5 * torch.rand(1, generator=generator)
        sample['pred_feature'] = sample['pred_feature'] * scale
    return samples


def unit_rows(feats):
    return feats / feats.norm(dim=1, keepdim=True)


def test_cosine_rerank_reranks_unit_features():
    """A cosine model is re-ranked on L2-normalised features (rerank.py:
    'normalize: L2-normalise the features first (use it for cosine
    models)'), not on its raw features."""
    samples = scaled_samples(5)
    rerank = dict(k1=6, k2=3, lambda_value=0.3)
    metrics = run_metric(ReIDMetric(distance='cosine', rerank=rerank), samples)
    query, gallery, *labels = split_samples(samples)
    expected = evaluate_rank(
        k_reciprocal_rerank(unit_rows(query), unit_rows(gallery), **rerank),
        *labels)
    assert metrics['reid/mAP'] == pytest.approx(expected.mAP * 100)
    assert metrics['reid/R1'] == pytest.approx(expected.cmc[0] * 100)
    raw = evaluate_rank(k_reciprocal_rerank(query, gallery, **rerank), *labels)
    assert metrics['reid/mAP'] != pytest.approx(raw.mAP * 100)


def naive_tpr_at_fpr(dist, q_pids, g_pids, kept, fpr):
    """TPR@FPR from its definition: with k the most negatives an FPR of
    ``fpr`` allows, accept the pairs strictly closer than the (k + 1)-th
    smallest negative distance."""
    same = q_pids[:, None] == g_pids[None, :]
    positives = dist[same & kept]
    negatives = sorted(dist[~same & kept].tolist())
    n = len(negatives)
    k = max(i for i in range(n + 1) if i / n <= fpr)
    threshold = negatives[k] if k < n else float('inf')
    return float((positives < threshold).double().mean())


@pytest.mark.parametrize('junk_rule', ['none', 'sysu'])
def test_rerank_verification_uses_the_metric_junk_rule(junk_rule):
    """After re-ranking, TPR@FPR drops the pairs of the metric's own junk
    rule, as its rank metrics do (RegDB: none; SYSU: a cam3 query ignores
    every cam2 item, camids 2 and 1 here)."""
    samples = make_samples(5)
    if junk_rule == 'sysu':
        for sample in samples:
            if sample['role'] == 'query' and sample['sample_idx'] % 2:
                sample['camid'] = 2
    rerank = dict(k1=6, k2=3, lambda_value=0.3)
    fprs = (0.1, 0.01)
    metric = ReIDMetric(
        junk_rule=junk_rule, rerank=rerank, verification_fprs=fprs)
    metrics = run_metric(metric, samples)
    query, gallery, q_pids, g_pids, q_cams, g_cams = split_samples(samples)
    dist = k_reciprocal_rerank(query, gallery, **rerank)
    same_pid = q_pids[:, None] == g_pids[None, :]
    same_cam = q_cams[:, None] == g_cams[None, :]
    if junk_rule == 'none':
        kept = torch.ones_like(same_pid)
    else:
        kept = ~((q_cams[:, None] == 2) & (g_cams[None, :] == 1))
    market_kept = ~(same_pid & same_cam)
    assert not torch.equal(kept, market_kept)
    differs = False
    for fpr in fprs:
        expected = naive_tpr_at_fpr(dist, q_pids, g_pids, kept, fpr)
        assert metrics[f'reid/TPR@FPR={fpr:.0e}'] == pytest.approx(expected *
                                                                   100)
        market = naive_tpr_at_fpr(dist, q_pids, g_pids, market_kept, fpr)
        differs |= market != pytest.approx(expected)
    assert differs  # the market rule would print other numbers


def naive_euclidean(query, gallery):
    return torch.tensor([[math.dist(q, g) for g in gallery.tolist()]
                         for q in query.tolist()])


def test_pairwise_distances_normalizes_rows_for_a_scorer():
    """With ``normalize=True`` a callable scorer gets unit-norm features,
    each row (one embedding) divided by its own norm (a callable
    ``distance`` is deprecated, but still ranks the split and trial
    protocols)."""
    generator = torch.Generator().manual_seed(0)
    scales = torch.tensor([3.0, 0.5, 1.0, 8.0])
    query = torch.randn(3, 4, generator=generator) * scales
    gallery = torch.randn(5, 4, generator=generator) * scales
    with pytest.warns(FutureWarning, match='distance=<callable>'):
        metric = ReIDMetric(distance=naive_euclidean, normalize=True)
    got = metric.pairwise_distances(query, gallery)
    expected = naive_euclidean(unit_rows(query), unit_rows(gallery))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_query_expansion_option():
    samples = make_samples(6)
    metric = ReIDMetric(query_expansion=dict(k=2, alpha=0))
    metrics = run_metric(metric, samples)
    query, gallery, *labels = split_samples(samples)
    expanded = query_expansion(query, gallery, k=2, alpha=0)
    expected = evaluate_features(expanded, gallery, *labels, normalize=True)
    assert metrics['reid/mAP'] == pytest.approx(expected.mAP * 100)
    plain = expected_metrics(samples, normalize=True)
    assert metrics['reid/mAP'] != pytest.approx(plain.mAP * 100)


@pytest.mark.filterwarnings(  # the deprecated set_scorer, kept one release
    'ignore:ReIDMetric.set_scorer:FutureWarning')
def test_invalid_extra_options():
    with pytest.raises(ValueError, match='rerank'):
        ReIDMetric(rerank=dict(k=3))
    with pytest.raises(ValueError, match='query_expansion'):
        ReIDMetric(query_expansion=dict(k1=3))
    metric = ReIDMetric(rerank=dict(k1=6))
    metric.set_scorer(lambda q, g: torch.cdist(q, g))
    with pytest.raises(ValueError, match='scorer'):
        run_metric(metric, make_samples(7))


def test_one_word_distance_and_deprecated_aliases():
    """Issue 17.2: ``distance`` is the word; ``metric=``, a callable and
    ``set_scorer`` still work for one release, with a warning."""
    samples = make_samples(2)
    new = run_metric(ReIDMetric(distance='cosine'), samples)
    with pytest.warns(FutureWarning, match="distance='cosine'"):
        old = ReIDMetric(metric='cosine')
    assert old.distance == 'cosine' and old.metric == 'cosine'
    assert run_metric(old, samples) == new
    with pytest.raises(ValueError, match='both'):
        ReIDMetric(distance='cosine', metric='euclidean')
    with pytest.warns(FutureWarning, match='set_scorers'):
        ReIDMetric(distance=lambda q, g: torch.cdist(q, g))
    metric = ReIDMetric()
    with pytest.warns(FutureWarning, match='set_scorers'):
        metric.set_scorer(lambda q, g: 1 - q @ g.t())
    assert ReIDMetric().distance == 'euclidean'


def test_model_scorers_refuse_normalize():
    """The model's scorers compare the model's own features."""
    metric = ReIDMetric(normalize=True)
    metric.set_scorers({'mnet': lambda q, g: torch.cdist(q, g)})
    metric.process(None, make_samples(3))
    with pytest.raises(ValueError, match='normalize=True'):
        metric.evaluate(len(metric.results))


@pytest.mark.filterwarnings(  # metric=, the deprecated alias of distance=
    'ignore:ReIDMetric.metric=:FutureWarning')
@pytest.mark.parametrize('option', [
    dict(distance='euclidean'),
    dict(metric='euclidean'),
])
def test_model_scorers_refuse_a_distance_given_by_its_alias(option):
    """The deprecated metric= names a distance as distance= does. With a
    model's own scorers (GMN's M-Net), metric='euclidean' read as no
    distance given would print the M-Net's mAP under a config that says
    Euclidean. It is refused as distance='euclidean' is, by the check the
    loops run before extraction and again when the metric evaluates."""
    scorers = {'mnet': lambda q, g: torch.cdist(q, g)}
    message = (r"^ReIDMetric\(distance='euclidean'\) would be ignored: the "
               r"model ranks with its own distance \(modes \['mnet'\]\)")
    metric = ReIDMetric(**option)
    with pytest.raises(ValueError, match=message):
        metric.check_scorers(scorers)
    metric.set_scorers(scorers)
    metric.process(None, make_samples(3))
    with pytest.raises(ValueError, match=message):
        metric.evaluate(len(metric.results))


def test_records_of_two_datasets_are_refused():
    # Dataset A's pid 5 / camid 1 and dataset B's are other people and
    # cameras: one ranking would count them as true matches (an mmengine
    # ConcatDataset of two test sets gives such records).
    samples = make_samples(3)
    for sample in samples[::2]:
        sample['dataset'] = 'other'
    metric = ReIDMetric()
    with pytest.raises(
            ValueError,
            match=r"2 datasets \('other', 'toy'\).*MultiTargetTestLoop"):
        metric.compute_metrics(_records(metric, samples))
