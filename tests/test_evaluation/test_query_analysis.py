"""analyse_queries: per-query facts that equal the metric's and the spec's
definitions (a naive per-query sort, reference_evaluate_rank)."""
import numpy as np
import pytest
import torch

from mmreid.evaluation.functional import (compute_distance, evaluate_features,
                                          reference_evaluate_rank)
from mmreid.evaluation.query_analysis import analyse_queries


def toy(seed=0, num_query=12, num_gallery=40, dim=3, levels=3,
        directed=False):
    """Integer features in few levels, so that distances tie often;
    ``directed``: no all-zero feature (a normalised distance refuses
    one)."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(0, levels, (num_query, dim), generator=gen).float()
    g = torch.randint(0, levels, (num_gallery, dim), generator=gen).float()
    if directed:
        for feats in (q, g):
            feats[(feats == 0).all(dim=1), 0] = 1
    q_pids = torch.randint(0, 5, (num_query, ), generator=gen)
    g_pids = torch.randint(0, 5, (num_gallery, ), generator=gen)
    q_cams = torch.randint(0, 3, (num_query, ), generator=gen)
    g_cams = torch.randint(0, 3, (num_gallery, ), generator=gen)
    return q, g, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize('tie_policy', ['stable', 'pessimistic', 'optimistic'])
@pytest.mark.parametrize('ap_mode', ['cumsum', 'threshold'])
@pytest.mark.parametrize('junk_rule', ['market', 'none', 'sysu'])
@pytest.mark.parametrize('cmc_mode', ['standard', 'dedup'])
def test_equals_the_metric_and_the_reference(tie_policy, ap_mode, junk_rule,
                                             cmc_mode):
    q, g, q_pids, g_pids, q_cams, g_cams = toy()
    options = dict(junk_rule=junk_rule, tie_policy=tie_policy, ap_mode=ap_mode)
    analysis = analyse_queries(
        q,
        g,
        q_pids,
        g_pids,
        q_cams,
        g_cams,
        max_rank=10,
        topk=4,
        memory_budget_mb=1e-4,
        cmc_mode=cmc_mode,
        **options)  # one query per chunk
    result = evaluate_features(
        q,
        g,
        q_pids,
        g_pids,
        q_cams,
        g_cams,
        max_rank=10,
        cmc_mode=cmc_mode,
        **options)
    np.testing.assert_array_equal(analysis.valid, result.valid_mask)
    np.testing.assert_allclose(analysis.ap[analysis.valid], result.all_AP)
    np.testing.assert_allclose(analysis.inp[analysis.valid], result.all_INP)
    np.testing.assert_allclose(analysis.cmc, result.cmc)
    assert analysis.mAP == pytest.approx(100 * result.mAP)

    # Camera pairs: the queries of camera a ranked against the gallery of
    # camera b only, as the reference sees that sub-problem.
    dist = compute_distance(q, g).numpy()
    for a in range(3):
        for b in range(3):
            rows, cols = (q_cams == a).numpy(), (g_cams == b).numpy()
            ref = reference_evaluate_rank(
                dist[rows][:, cols],
                q_pids[rows],
                g_pids[cols],
                q_cams[rows],
                g_cams[cols],
                max_rank=1,
                **options)
            stats = analysis.camera_pairs.get((a, b))
            if ref['num_valid_query'] == 0:
                assert stats is None or stats.num_valid == 0
                continue
            assert stats.num_valid == ref['num_valid_query']
            assert stats.rank1 == pytest.approx(100 * ref['cmc'][0])
            assert stats.mAP == pytest.approx(100 * ref['mAP'])


def test_first_match_and_topk_lists_by_hand():
    # 1-D features: distances are |q - g|.
    g = torch.tensor([[0.], [10.], [20.], [30.]])
    q = torch.tensor([[21.], [0.5]])
    g_pids, q_pids = [0, 1, 2, 3], [1, 7]
    analysis = analyse_queries(
        q, g, q_pids, g_pids, [0, 0], [1, 1, 1, 1], topk=2, max_rank=4)
    # q0 ranks g2 (1), g3 (9), g1 (11), g0 (21): its positive g1 is third.
    assert analysis.first_rank.tolist() == [3, 0]
    assert analysis.topk_index[0].tolist() == [2, 3]
    np.testing.assert_allclose(analysis.topk_distance[0], [1.0, 9.0])
    assert analysis.topk_match[0].tolist() == [False, False]
    assert analysis.ap[0] == pytest.approx(1 / 3)
    assert np.isnan(analysis.ap[1])  # pid 7 is not in the gallery
    np.testing.assert_allclose(analysis.cmc, [0, 0, 1, 1])
    assert analysis.camera_pairs[(0, 1)].num_valid == 1


def test_dedup_cmc_counts_distinct_pids_by_hand():
    """SYSU-MM01's CMC: each gallery pid counts once in the ranked list.
    The report's curve used the plain ranks whatever the metric's
    cmc_mode."""
    g = torch.tensor([[1.], [2.], [3.], [4.], [5.]])
    q = torch.tensor([[0.]])
    # Ranked: pid 4, 4, 4, 9, then the match (pid 1) at position 5.
    g_pids = [4, 4, 4, 9, 1]
    plain = analyse_queries(q, g, [1], g_pids, [0], [1] * 5, max_rank=5)
    dedup = analyse_queries(
        q, g, [1], g_pids, [0], [1] * 5, max_rank=5, cmc_mode='dedup')
    np.testing.assert_allclose(plain.cmc, [0, 0, 0, 0, 1])
    np.testing.assert_allclose(dedup.cmc, [0, 0, 1, 1, 1])
    # The position in the list (drawn lists, R1 error) is the same.
    assert plain.first_rank.tolist() == dedup.first_rank.tolist() == [5]
    with pytest.raises(ValueError, match='cmc_mode'):
        analyse_queries(q, g, [1], g_pids, [0], [1] * 5, cmc_mode='x')


def test_a_query_is_never_ranked_against_its_own_image():
    """QMUL-iLIDS's union of splits lists an image once per role (query
    camid 0, gallery camid 1): its gallery copy is no match of its own
    query (no split ranks an image against itself), while it stays a
    match of another query of its pid. Images without a path (None) are
    nobody's."""
    g = torch.tensor([[0.], [1.], [2.]])
    q = torch.tensor([[0.], [0.1]])
    # q0's copy is g0 (pid 1); q1 (pid 1 too) is another image.
    paths = dict(q_images=['a', 'b'], g_images=['a', 'c', 'd'])
    args = (q, g, [1, 1], [1, 3, 1], [0, 0], [1, 1, 1])
    analysis = analyse_queries(*args, topk=3, max_rank=3, **paths)
    # q0 ranks g1 (pid 3), g2 (pid 1): AP 1/2; q1 ranks g0 first.
    assert analysis.topk_index.tolist() == [[1, 2, -1], [0, 1, 2]]
    np.testing.assert_allclose(analysis.ap, [0.5, (1 + 2 / 3) / 2])
    assert analysis.first_rank.tolist() == [2, 1]
    assert analysis.camera_pairs[(0, 1)].num_valid == 2
    unnamed = analyse_queries(
        *args,
        topk=3,
        max_rank=3,
        q_images=[None, 'b'],
        g_images=[None, 'c', 'd'])
    assert unnamed.first_rank.tolist() == [1, 1]
    with pytest.raises(ValueError, match=r'g_images must have shape \(3,\)'):
        analyse_queries(*args, q_images=['a', 'b'], g_images=['a'])


class TopKTies:
    """A gallery-dependent distance written from its definition: each
    query's k nearest items (Euclidean) of the gallery it is given get
    their positions 0..k-1, every other item position k."""
    gallery_dependent = True

    def __init__(self, k):
        self.k = k

    def __call__(self, query, gallery):
        order = torch.cdist(query, gallery).argsort(dim=1, stable=True)
        out = torch.full(order.shape, float(self.k))
        head = order[:, :self.k]
        positions = torch.arange(head.shape[1]).float()
        out.scatter_(1, head, positions.expand_as(head).contiguous())
        return out


def test_a_gallery_dependent_distance_never_sees_the_querys_own_image():
    """With a gallery-dependent distance (GMN's top-k rerank) the query's
    own copy, at distance 0, took one of the k ranked places before it was
    removed: the query was ranked against a gallery of k - 1 scored items.
    Each query is ranked as against the gallery without its own image."""
    gen = torch.Generator().manual_seed(3)
    g = torch.randn(30, 4, generator=gen)
    own = [0, 7, 12]  # the gallery copies of queries 0, 1, 2
    q = torch.cat([g[own], torch.randn(2, 4, generator=gen)])
    g_pids = torch.randint(0, 6, (30, ), generator=gen)
    q_pids = torch.cat([g_pids[own], torch.tensor([1, 2])])
    g_images = [f'g{i}' for i in range(30)]
    q_images = [g_images[i] for i in own] + ['x', 'y']
    scorer = TopKTies(3)
    options = dict(
        distance=scorer, tie_policy='pessimistic', topk=5, max_rank=5)
    paths = dict(q_images=q_images, g_images=g_images)
    union = analyse_queries(q, g, q_pids, g_pids, [0] * 5, [1] * 30, **paths,
                            **options)
    for i in range(5):
        keep = [j for j in range(30) if g_images[j] != q_images[i]]
        alone = analyse_queries(q[i:i + 1], g[keep], q_pids[i:i + 1],
                                g_pids[keep], [0], [1] * len(keep), **options)
        assert union.ap[i] == pytest.approx(alone.ap[0])
        assert union.first_rank[i] == alone.first_rank[0]
        assert union.topk_index[i].tolist() == [
            keep[j] for j in alone.topk_index[0].tolist()
        ]


def test_modality_pairs_and_a_scorer():
    q, g, q_pids, g_pids, q_cams, g_cams = toy(seed=1)
    q_mod = (q_cams > 0).long()
    g_mod = (g_cams > 0).long()
    calls = []

    def scorer(query, gallery):
        calls.append(len(query))
        return compute_distance(query, gallery)

    analysis = analyse_queries(
        q,
        g,
        q_pids,
        g_pids,
        q_cams,
        g_cams,
        q_mod,
        g_mod,
        distance=scorer,
        junk_rule='none')
    assert sum(calls) == len(q)
    plain = analyse_queries(
        q, g, q_pids, g_pids, q_cams, g_cams, junk_rule='none')
    np.testing.assert_allclose(analysis.ap, plain.ap)
    assert set(analysis.modality_pairs) <= {(0, 0), (0, 1), (1, 0), (1, 1)}
    total = sum(
        s.num_valid for (qm, _), s in analysis.modality_pairs.items()
        if qm == 0)
    # every valid query of modality 0 is valid in at least one pair
    assert total >= int((plain.valid & (q_mod.numpy() == 0)).sum())


def test_bad_arguments():
    q, g, q_pids, g_pids, q_cams, g_cams = toy()
    with pytest.raises(ValueError, match='tie_policy'):
        analyse_queries(
            q, g, q_pids, g_pids, q_cams, g_cams, tie_policy='random')
    with pytest.raises(ValueError, match=r'g_pids must have shape \(40,\)'):
        analyse_queries(q, g, q_pids, g_pids[:3], q_cams, g_cams)


def test_analysis_sampling_errors_are_its_r1_and_map():
    q, g, q_pids, g_pids, q_cams, g_cams = toy(num_query=30)
    analysis = analyse_queries(q, g, q_pids, g_pids, q_cams, g_cams)
    np.testing.assert_array_equal(analysis.q_pids, q_pids.numpy())
    errors = analysis.sampling_errors()
    assert errors['R1'].value == pytest.approx(100 * analysis.cmc[0])
    assert errors['mAP'].value == pytest.approx(analysis.mAP)
    valid = analysis.valid
    assert errors['R1'].num_queries == int(valid.sum())
    assert errors['R1'].num_identities == len(np.unique(q_pids.numpy()[valid]))


# -- the analysis a metric makes of its own ranking ----------------------
def samples(q, g, q_pids, g_pids, q_cams, g_cams, modality=True):
    """ReIDMetric's input: one dict per sample, queries first."""
    out = []
    for role, feats, pids, cams in (('query', q, q_pids, q_cams),
                                    ('gallery', g, g_pids, g_cams)):
        for i in range(len(feats)):
            out.append(
                dict(
                    pred_feature=feats[i],
                    gt_label=int(pids[i]),
                    camid=int(cams[i]),
                    role=role,
                    sample_idx=len(out),
                    img_path=f'{role}/{i}.jpg',
                    modality=int(cams[i] > 0) if modality else None))
    return out


def assert_same_analysis(a, b):
    np.testing.assert_array_equal(a.first_rank, b.first_rank)
    np.testing.assert_array_equal(a.ap, b.ap)
    np.testing.assert_array_equal(a.inp, b.inp)
    np.testing.assert_array_equal(a.topk_index, b.topk_index)
    np.testing.assert_array_equal(a.topk_distance, b.topk_distance)
    np.testing.assert_array_equal(a.topk_match, b.topk_match)
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert a.camera_pairs == b.camera_pairs
    assert a.modality_pairs == b.modality_pairs


def shifted(query, gallery):
    """A scorer that is not a feature distance: its ranking differs."""
    return compute_distance(query, gallery) - 0.5 * gallery[:, 0][None]


@pytest.mark.parametrize('setup', ['distance', 'scorers', 'verification'])
def test_a_metric_analyses_its_own_ranking_as_the_report_would(setup):
    """What the report takes from the metric equals what it computes
    itself (analyse_queries over the same samples and distance)."""
    from mmreid.evaluation import ReIDMetric
    q, g, q_pids, g_pids, q_cams, g_cams = toy(
        seed=3, num_query=30, num_gallery=90, directed=True)
    options = dict(
        tie_policy='pessimistic', memory_budget_mb=1e-4, cmc_mode='dedup')
    if setup == 'distance':
        metric = ReIDMetric(distance='cosine', normalize=True, **options)
        expected = dict(distance='cosine', normalize=True)
    else:
        metric = ReIDMetric(
            verification_fprs=(0.1, ) if setup == 'verification' else None,
            **options)
        # The primary is the second mode: the analysis follows it.
        metric.set_scorers(
            dict(euclid=lambda a, b: compute_distance(a, b), mine=shifted),
            primary='mine')
        expected = dict(distance=shifted)
    metric.analysis_request = dict(topk=5, max_rank=7)
    metric.process(None, samples(q, g, q_pids, g_pids, q_cams, g_cams))
    metrics = metric.compute_metrics(metric.results)
    kept = metric.last_analysis
    mod = lambda cams: (cams > 0).long()  # noqa: E731
    reference = analyse_queries(
        q,
        g,
        q_pids,
        g_pids,
        q_cams,
        g_cams,
        mod(q_cams),
        mod(g_cams),
        tie_policy='pessimistic',
        topk=5,
        max_rank=7,
        cmc_mode='dedup',
        **expected)
    assert_same_analysis(kept.analysis, reference)
    assert 100 * kept.analysis.cmc[4] == pytest.approx(metrics['R5'])
    assert kept.analysis.mAP == pytest.approx(metrics['mAP'])
    assert [r['img_path'] for r in kept.query] == [
        f'query/{i}.jpg' for i in range(len(q))
    ]
    assert all('feature' not in r for r in kept.query + kept.gallery)
    if setup != 'distance':
        # Not the Euclidean mode's ranking.
        plain = analyse_queries(q, g, q_pids, g_pids, q_cams, g_cams)
        assert not np.array_equal(plain.topk_index[:, :5],
                                  kept.analysis.topk_index)


@pytest.mark.parametrize('option', ['rerank', 'query_expansion'])
def test_analysis_of_a_reranked_ranking_is_the_reported_one(option):
    """Re-ranking and query expansion rank other distances than the plain
    ones: the kept analysis is of those (k-reciprocal distances of
    the features; plain distances of the expanded queries to the
    normalised gallery), so its R1 and mAP are the reported ones."""
    import torch.nn.functional as F

    from mmreid.evaluation import ReIDMetric
    from mmreid.evaluation.functional import (k_reciprocal_rerank,
                                              query_expansion)
    from mmreid.evaluation.query_analysis import QueryAnalyser
    q, g, q_pids, g_pids, q_cams, g_cams = toy(
        seed=4, num_query=10, num_gallery=30, directed=True)
    settings = dict(k1=4, k2=2) if option == 'rerank' else dict(k=2)
    metric = ReIDMetric(**{option: settings})
    metric.analysis_request = dict(topk=3, max_rank=5)
    metric.process(None, samples(q, g, q_pids, g_pids, q_cams, g_cams, False))
    metrics = metric.compute_metrics(metric.results)
    kept = metric.last_analysis
    assert kept is not None
    if option == 'rerank':
        reference = QueryAnalyser(
            q_pids, g_pids, q_cams, g_cams, topk=3, max_rank=5)
        reference.update(k_reciprocal_rerank(q, g, k1=4, k2=2))
        reference = reference.result()
    else:
        reference = analyse_queries(
            query_expansion(q, g, k=2),
            F.normalize(g, dim=1),
            q_pids,
            g_pids,
            q_cams,
            g_cams,
            normalize=True,
            topk=3,
            max_rank=5)
    assert_same_analysis(kept.analysis, reference)
    ranks = kept.analysis.first_rank
    assert 100 * np.mean(ranks[ranks > 0] == 1) == pytest.approx(metrics['R1'])
    assert 100 * np.nanmean(kept.analysis.ap) == pytest.approx(metrics['mAP'])


def test_no_analysis_without_a_request():
    from mmreid.evaluation import ReIDMetric
    metric = ReIDMetric()
    metric.process(None, samples(*toy(seed=4, num_query=10, num_gallery=30)))
    metric.compute_metrics(metric.results)
    assert metric.last_analysis is None


def test_analyser_checks_its_chunks():
    from mmreid.evaluation.query_analysis import QueryAnalyser
    analyser = QueryAnalyser([0, 1], [0, 1, 1], [0, 0], [1, 1, 1])
    with pytest.raises(ValueError, match='3 gallery items'):
        analyser.update(torch.zeros(1, 2))
    analyser.update(torch.zeros(1, 3))
    with pytest.raises(RuntimeError, match='1 of 2 queries'):
        analyser.result()
    with pytest.raises(ValueError, match='at most 1'):
        analyser.update(torch.zeros(2, 3))


def test_a_float64_scorer_is_ranked_in_float64():
    """Distances that differ only below float32's resolution rank as the
    metric ranks them, not as ties."""
    q_pids, g_pids = [0, 1], [1, 0, 0, 1]

    def scorer(query, gallery):
        base = torch.tensor([[1.0, 1.0, 2.0, 3.0], [2.0, 3.0, 1.0, 1.0]],
                            dtype=torch.float64)
        # 1e-9 apart: equal in float32, in order in float64
        return base + torch.tensor([0.0, 1e-9, 0.0, 0.0],
                                   dtype=torch.float64)[None] * torch.tensor(
                                       [[-1.0], [1.0]], dtype=torch.float64)

    feats = torch.zeros(2, 1), torch.zeros(4, 1)
    analysis = analyse_queries(*feats, q_pids, g_pids, [0, 0], [1, 1, 1, 1],
                               distance=scorer, max_rank=4)
    result = evaluate_features(*feats, q_pids, g_pids, [0, 0], [1, 1, 1, 1],
                               distance=scorer, max_rank=4)
    # q0's positive g1 is 1e-9 closer than g0: first in float64.
    assert analysis.first_rank.tolist() == [1, 2]
    np.testing.assert_allclose(analysis.ap, result.all_AP)


def test_a_gallery_dependent_distance_is_rescored_in_every_chunk():
    """Queries past the first chunk are rescored without their own image,
    not without the image of the chunk's first query: with one query per
    chunk each query is ranked as in a single chunk."""
    gen = torch.Generator().manual_seed(3)
    g = torch.randn(30, 4, generator=gen)
    own = [0, 7, 12]
    # A query without an own image first, then those with one.
    q = torch.cat([torch.randn(1, 4, generator=gen), g[own]])
    g_pids = torch.randint(0, 6, (30, ), generator=gen)
    q_pids = torch.tensor([1, g_pids[0], g_pids[7], g_pids[12]])
    g_images = [f'g{i}' for i in range(30)]
    q_images = ['x', 'g0', 'g7', 'g12']
    options = dict(
        distance=TopKTies(3),
        tie_policy='pessimistic',
        topk=5,
        max_rank=5,
        q_images=q_images,
        g_images=g_images)
    args = (q, g, q_pids, g_pids, [0] * 4, [1] * 30)
    whole = analyse_queries(*args, **options)
    chunked = analyse_queries(*args, memory_budget_mb=1e-4, **options)
    np.testing.assert_array_equal(chunked.ap, whole.ap)
    np.testing.assert_array_equal(chunked.topk_index, whole.topk_index)
    np.testing.assert_array_equal(chunked.first_rank, whole.first_rank)


def test_minp_is_the_mean_inp_not_the_map():
    """mINP = mean of m / r_m over the valid queries (spec §3): a query
    with positives at ranks 1 and 3 has AP 5/6 but INP 2/3."""
    g = torch.tensor([[0.], [10.], [20.], [30.]])
    analysis = analyse_queries(
        torch.tensor([[0.]]), g, [1], [1, 2, 1, 3], [0], [1, 1, 1, 1])
    assert analysis.mAP == pytest.approx(100 * 5 / 6)
    assert analysis.mINP == pytest.approx(100 * 2 / 3)


def test_an_empty_pair_has_no_rank1_or_map():
    """A camera pair without a query that has a positive reports NaN, not
    a 0 % that reads as a measured failure."""
    from mmreid.evaluation.query_analysis import PairStats
    assert np.isnan(PairStats().rank1) and np.isnan(PairStats().mAP)
    assert PairStats(2, 1, 1.5).rank1 == 50.0
    assert PairStats(2, 1, 1.5).mAP == 75.0


@pytest.mark.parametrize('bad,match', [(dict(topk=0), 'topk and max_rank'),
                                       (dict(max_rank=0), 'topk and max_rank'),
                                       (dict(ap_mode='mean'), 'ap_mode')])
def test_bad_list_lengths_and_ap_modes_are_refused(bad, match):
    """An empty top-k list or CMC curve, or an AP mode the analyser does
    not know (which it scored as cumsum), is refused."""
    q, g, q_pids, g_pids, q_cams, g_cams = toy()
    with pytest.raises(ValueError, match=match):
        analyse_queries(q, g, q_pids, g_pids, q_cams, g_cams, **bad)


def test_a_scorer_gets_both_feature_sets_normalised():
    """``normalize=True`` with a scorer L2-normalises the query and the
    gallery features before scoring, as it does for a named distance."""
    _, _, q_pids, g_pids, q_cams, g_cams = toy(seed=2)
    gen = torch.Generator().manual_seed(2)  # continuous: no ties
    q, g = torch.randn(12, 3, generator=gen), torch.randn(40, 3, generator=gen)
    g = g * torch.arange(1, 41)[:, None]  # norms that differ

    def euclidean(query, gallery):
        return torch.cdist(query, gallery)

    args = (q, g, q_pids, g_pids, q_cams, g_cams)
    named = analyse_queries(*args, normalize=True, junk_rule='none')
    scored = analyse_queries(
        *args, distance=euclidean, normalize=True, junk_rule='none')
    np.testing.assert_allclose(scored.ap, named.ap)
    np.testing.assert_allclose(scored.topk_distance, named.topk_distance,
                               atol=1e-5)
