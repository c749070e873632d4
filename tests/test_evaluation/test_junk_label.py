"""Market-1501's junk label (pid -1) in the rank metrics.

Market-1501's own evaluation ignores the gallery images labelled -1 (junk),
like the same-pid same-camera items; pid 0 distractors stay negatives.
"""
import numpy as np
import pytest
import torch

from mmreid.evaluation.functional import (evaluate_features, evaluate_rank,
                                          reference_evaluate_rank)
from mmreid.evaluation.functional.protocols import count_valid_positives
from mmreid.evaluation.functional.verification import tpr_at_fpr

# One query, pid 1 on camera 0, and six gallery items in distance order:
#   g0 pid -1 (junk)         -> ignored
#   g1 pid  1 camera 1       -> positive, rank 1
#   g2 pid  0 (distractor)   -> negative, rank 2
#   g3 pid  1 camera 0       -> same pid and camera: removed
#   g4 pid -1 (junk)         -> ignored
#   g5 pid  1 camera 2       -> positive, rank 3
DIST = np.array([[0.1, 0.2, 0.3, 0.4, 0.45, 0.5]])
Q_PIDS, Q_CAMS = np.array([1]), np.array([0])
G_PIDS = np.array([-1, 1, 0, 1, -1, 1])
G_CAMS = np.array([1, 1, 1, 0, 2, 2])
# Ranks of the positives 1 and 3: AP = (1/1 + 2/3) / 2, INP = 2 / 3.
AP, INP = (1 + 2 / 3) / 2, 2 / 3


def test_market_rule_ignores_junk_gallery_items():
    result = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=3)
    assert result.mAP == pytest.approx(AP)
    assert result.mINP == pytest.approx(INP)
    np.testing.assert_allclose(result.cmc, [1, 1, 1])


def test_junk_items_equal_their_removal():
    # The same as leaving the junk items out (what the datasets do).
    kept = G_PIDS != -1
    left_out = evaluate_rank(DIST[:, kept], Q_PIDS, G_PIDS[kept], Q_CAMS,
                             G_CAMS[kept])
    full = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    assert full.mAP == left_out.mAP and full.mINP == left_out.mINP
    np.testing.assert_array_equal(full.cmc, left_out.cmc)


def test_without_junk_nothing_changes():
    # No pid -1 (mmreid's datasets drop it at load): the reference, which
    # knows no junk label, gives the same numbers.
    rng = np.random.default_rng(0)
    q_pids, g_pids = rng.integers(0, 5, 20), rng.integers(0, 5, 60)
    q_cams, g_cams = rng.integers(0, 3, 20), rng.integers(0, 3, 60)
    dist = rng.random((20, 60))
    for rule in ('market', 'none', 'sysu'):
        ours = evaluate_rank(
            dist, q_pids, g_pids, q_cams, g_cams, junk_rule=rule)
        ref = reference_evaluate_rank(
            dist, q_pids, g_pids, q_cams, g_cams, junk_rule=rule)
        assert ours.mAP == pytest.approx(ref['mAP'])
        np.testing.assert_allclose(ours.cmc, ref['cmc'])


def test_chunked_features_and_torch_inputs():
    feats_g = torch.tensor([[0.1], [0.2], [0.3], [0.4], [0.45], [0.5]])
    result = evaluate_features(
        torch.zeros(1, 1),
        feats_g,
        torch.as_tensor(Q_PIDS),
        torch.as_tensor(G_PIDS),
        torch.as_tensor(Q_CAMS),
        torch.as_tensor(G_CAMS),
        distance='euclidean')
    assert result.mAP == pytest.approx(AP)


def test_junk_query_is_refused():
    with pytest.raises(ValueError, match=r'query 1 of 2 has pid -1'):
        evaluate_rank(np.zeros((2, 6)), [1, -1], G_PIDS, [0, 0], G_CAMS)


@pytest.mark.parametrize('rule', ['none', 'sysu'])
def test_other_rules_refuse_junk_gallery(rule):
    with pytest.raises(
            ValueError,
            match=r"gallery items 0, 4 of 6 have pid -1.*"
            rf"junk_rule='{rule}' would count them"):
        evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, junk_rule=rule)


def test_verification_ignores_junk_gallery_items():
    # Pairs: positives g1, g5 (g3 removed), negatives g2 only.
    def chunks():
        yield 0, torch.as_tensor(DIST)

    result = tpr_at_fpr(chunks, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, fprs=[0.0])
    assert (result.num_pos, result.num_neg) == (2, 1)
    # FPR 0 accepts the pairs strictly closer than the only negative
    # (0.3): g1 of the positives g1 (0.2) and g5 (0.5).
    np.testing.assert_allclose(result.tpr, [0.5])


def test_count_valid_positives_refuses_junk_query():
    with pytest.raises(ValueError, match='has pid -1'):
        count_valid_positives(
            torch.tensor([-1]), torch.as_tensor(G_PIDS), torch.tensor([0]),
            torch.as_tensor(G_CAMS))


def test_query_analysis_ignores_junk_gallery_items():
    # The per-query report (ranked lists, AP) ranks as the metric does.
    from mmreid.evaluation.query_analysis import QueryAnalyser
    analyser = QueryAnalyser(Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, topk=6)
    analyser.update(torch.as_tensor(DIST))
    analysis = analyser.result()
    assert analysis.ap[0] == pytest.approx(AP)
    assert analysis.first_rank[0] == 1


def test_junk_items_equal_their_removal_on_many_cameras():
    # Junk items spread among positives and negatives of several cameras:
    # each kept item keeps its own camera (a camera taken from the item
    # beside it would remove other same-camera positives). The reference
    # knows no junk label; it is given the gallery without the junk items.
    rng = np.random.default_rng(1)
    q_pids, g_pids = rng.integers(1, 6, 25), rng.integers(-1, 6, 90)
    q_cams, g_cams = rng.integers(0, 4, 25), rng.integers(0, 4, 90)
    dist = rng.random((25, 90))
    kept = g_pids != -1
    assert (~kept).sum() > 5
    full = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    ref = reference_evaluate_rank(
        dist[:, kept], q_pids, g_pids[kept], q_cams, g_cams[kept], max_rank=5)
    assert full.mAP == pytest.approx(ref['mAP'])
    assert full.mINP == pytest.approx(ref['mINP'])
    np.testing.assert_allclose(full.cmc, ref['cmc'])


def test_a_refusal_shows_five_junk_queries_and_counts_the_rest():
    q_pids = [-1] * 7 + [1]
    with pytest.raises(
            ValueError,
            match=r'query 0, 1, 2, 3, 4 \(and 2 more\) of 8 has pid -1'):
        evaluate_rank(np.zeros((8, 6)), q_pids, G_PIDS, [0] * 8, G_CAMS)


def test_classic_cmc_refuses_junk_items():
    """CUHK03's classic CMC draws one gallery item per pid: pid -1 items
    were drawn as one identity (a query of pid -1 had them as its
    positives). It has no junk rule, so they are refused."""
    from mmreid.evaluation.functional import classic_cmc
    with pytest.raises(
            ValueError,
            match=r'gallery items 0, 4 of 6 have pid -1, the junk label'):
        classic_cmc(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=3)
    with pytest.raises(ValueError, match=r'query items 1 of 2 have pid -1'):
        classic_cmc(
            np.zeros((2, 4)), [1, -1], [1, 2, 1, 2], [0, 0], [1, 1, 2, 2],
            max_rank=2)
    # Without junk: one of g1 (rank 1) and g5 (rank 2, after g2) is drawn
    # for pid 1 in each of the 10 repeats.
    keep = G_PIDS != -1
    cmc, valid = classic_cmc(
        DIST[:, keep], Q_PIDS, G_PIDS[keep], Q_CAMS, G_CAMS[keep], max_rank=2)
    assert valid.tolist() == [True] and cmc[1] == 1.0
    assert cmc[0] * 10 in range(1, 10)


def test_the_market_rule_function_ignores_junk_like_its_name():
    """``junk_rule=market_junk`` (the function ``'market'`` names) is the
    Market rule: its junk-labelled gallery items are ignored, not refused
    as if the rule had no junk label."""
    from mmreid.evaluation.functional.junk_rules import market_junk
    result = evaluate_rank(
        DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, junk_rule=market_junk)
    assert result.mAP == pytest.approx(AP)
    assert result.mINP == pytest.approx(INP)
