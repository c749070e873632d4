"""Ties and caching of the GMN pair scoring (audit 12, gmn_scoring).

The references are written from the definitions (spec gmn.md 8.1, 8.4):
logits of the M-Net on explicit ``(q - g)^2`` in float64, and the top-k
rerank as a weak order: the k stable Euclidean nearest first, ordered by
``-z``, then the rest by Euclidean distance, equal keys tied.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmreid.evaluation.functional import (evaluate_rank, make_mnet_scorer,
                                          mnet_distances)
from mmreid.utils.threads import torch_threads

DIM, HIDDEN = 16, 8
TIE_POLICIES = ('stable', 'pessimistic', 'optimistic')


def features(num, dim=DIM, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(num, dim, generator=generator), dim=1)


def random_mnet(dim=DIM, hidden=HIDDEN, seed=0):
    """Folded M-Net parameters (weight, bias, out_weight, out_bias)."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(hidden, dim, generator=generator) * 4
    bias = torch.randn(hidden, generator=generator) * 0.5
    out_weight = torch.randn(hidden, generator=generator)
    return weight, bias, out_weight, 0.25


def reference_logits(query, gallery, weight, bias, out_weight, out_bias):
    """z of every pair from its explicit (q - g)^2, in float64."""
    diff = (query.double()[:, None] - gallery.double()[None]).pow(2)
    hidden = (diff @ weight.double().t() + bias.double()).clamp(min=0)
    return hidden @ out_weight.double() + float(out_bias)


def tied_mnet(query, gallery, dead_share=0.6):
    """An M-Net whose one live hidden unit fires for ~40 % of the pairs:
    the others have z == out_bias exactly (every hidden unit dead)."""
    weight, bias, out_weight, out_bias = random_mnet()
    bias = torch.full_like(bias, -1e3)  # all but unit 0 always dead
    diff = (query[:, None] - gallery[None]).pow(2).reshape(-1, DIM)
    bias[0] = -(diff @ weight[0]).quantile(dead_share)
    out_weight = torch.zeros_like(out_weight)
    out_weight[0] = -5.0
    return weight, bias, out_weight, out_bias


def labels(num_query, num_gallery, num_ids=5, seed=0):
    rng = np.random.default_rng(seed)
    q_pids = np.arange(num_query) % num_ids
    g_pids = rng.integers(0, num_ids, num_gallery)
    return q_pids, g_pids, rng.integers(0, 3, num_query), rng.integers(
        0, 3, num_gallery)


def topk_reference_order(query, gallery, params, k):
    """Per query, the (block, key) of every gallery item under the top-k
    rerank: block 0 = the k stable Euclidean nearest, keyed by -z; block 1
    = the rest, keyed by the squared Euclidean distance (float64)."""
    z = reference_logits(query, gallery, *params)
    euclid = (query.double()[:, None] - gallery.double()[None]).pow(2).sum(2)
    block = torch.ones_like(euclid)
    key = euclid.clone()
    for i in range(len(query)):
        head = euclid[i].argsort(stable=True)[:k]
        block[i, head] = 0
        key[i, head] = -z[i, head]
    return block, key


def assert_same_weak_order(dist, block, key):
    """dist orders every pair of items of a row as (block, key) does,
    equal (block, key) tied."""
    for i in range(len(dist)):
        d, b, k = dist[i].double(), block[i], key[i]
        less = d[:, None] < d[None]
        equal = d[:, None] == d[None]
        same_block = b[:, None] == b[None]
        ref_less = (b[:, None] < b[None]) | same_block & (k[:, None] < k[None])
        ref_equal = same_block & (k[:, None] == k[None])
        assert torch.equal(equal, ref_equal), f'ties of row {i}'
        assert torch.equal(less, ref_less), f'order of row {i}'


def test_topk_keeps_the_ties_of_z_and_of_the_euclidean_tail():
    """Spec 8.4: candidates ordered by -z, the rest by Euclidean distance;
    equal keys stay equal distances, so the metric's tie policy applies."""
    query = features(6, seed=1)
    base = features(30, seed=2)
    # exact duplicates: equal Euclidean distances (tail ties) and equal z
    gallery = torch.cat([base, base[:10]])
    params = tied_mnet(query, gallery)
    z = reference_logits(query, gallery, *params)
    assert (z == params[3]).double().mean() > 0.4  # many tied logits
    for k in (5, 12, len(gallery), 1000):
        dist = mnet_distances(query, gallery, *params, topk=k)
        block, key = topk_reference_order(query, gallery, params, k)
        assert_same_weak_order(dist, block, key)


@pytest.mark.parametrize('tie_policy', TIE_POLICIES)
def test_topk_at_least_g_gives_the_full_mnet_metrics(tie_policy):
    """Spec 14.8 with tied logits, under every tie policy."""
    query, gallery = features(30, seed=3), features(60, seed=4)
    params = tied_mnet(query, gallery)
    lab = labels(30, 60)
    # the reference ranks -z (float64) under the same tie policy
    reference = -reference_logits(query, gallery, *params)
    expected = evaluate_rank(reference, *lab, tie_policy=tie_policy)
    full = evaluate_rank(
        mnet_distances(query, gallery, *params), *lab, tie_policy=tie_policy)
    assert abs(full.mAP - expected.mAP) <= 1e-6
    for k in (60, 10**6):
        dist = mnet_distances(query, gallery, *params, topk=k)
        result = evaluate_rank(dist, *lab, tie_policy=tie_policy)
        np.testing.assert_allclose(result.cmc, expected.cmc, atol=1e-6)
        assert abs(result.mAP - expected.mAP) <= 1e-6, k
        assert abs(result.mINP - expected.mINP) <= 1e-6, k


def test_tie_policies_differ_under_topk():
    """The tied logits matter: the tie policy changes the top-k metrics
    (it was ignored when the rerank returned ordinal positions)."""
    query, gallery = features(30, seed=3), features(60, seed=4)
    params = tied_mnet(query, gallery)
    dist = mnet_distances(query, gallery, *params, topk=20)
    lab = labels(30, 60)
    maps = {
        policy: evaluate_rank(dist, *lab, tie_policy=policy).mAP
        for policy in TIE_POLICIES
    }
    assert maps['pessimistic'] < maps['stable'] < maps['optimistic']


def test_fused_m_net_term_keeps_the_order_of_saturated_logits():
    """Spec 8.1: sigmoid(z) is exactly 1 in fp32 for z >~ 17; 'fused'
    computes sigma(-z) = 1 - sigma(z) without that cancellation, so its
    M-Net term (``fuse_distances`` at beta = 1, which the options refuse
    for the other end, z <~ -17) is a monotone map of z there and ties no
    pair -mnet does not."""
    from mmreid.evaluation.functional.mnet_distance import fuse_distances
    query, gallery = features(4, seed=5), features(50, seed=6)
    weight, bias, out_weight, _ = random_mnet()
    z = reference_logits(query, gallery, weight, bias, out_weight, 0.0)
    out_bias = 25.0 - z.min().item()  # every z in [25, 25 + spread]
    z = z + out_bias
    assert (torch.sigmoid(z.float()) == 1).all()  # 1 - sigmoid: all ties
    params = (weight, bias, out_weight, out_bias)
    mnet = mnet_distances(query, gallery, *params)
    fused = fuse_distances(query, gallery, -mnet, 1.0)
    torch.testing.assert_close(
        fused.double(), torch.sigmoid(-z), rtol=1e-5, atol=0)
    for i in range(len(query)):
        assert len(torch.unique(fused[i])) == len(torch.unique(mnet[i]))
        assert torch.equal(fused[i].argsort(stable=True),
                           mnet[i].argsort(stable=True))


def test_scorer_scores_fresh_galleries_at_a_reused_address():
    """A new gallery of the same shape at the address of a freed one (the
    allocator reuses it; here forced with one numpy buffer) gets its own
    gallery term and its own decomposition check, never the cached one."""
    params = random_mnet()
    query = features(5, seed=7)
    messages = []
    scorer = make_mnet_scorer(*params, check_queries=5, log=messages.append)
    buffer = np.empty((40, DIM), dtype=np.float32)
    addresses = set()
    for seed in range(6):
        buffer[...] = features(40, seed=100 + seed).numpy()
        gallery = torch.from_numpy(buffer)  # fresh tensor, version 0
        addresses.add(gallery.data_ptr())
        expected = -reference_logits(query, gallery, *params)
        dist = scorer(query, gallery)
        torch.testing.assert_close(
            dist.double(), expected, atol=1e-4, rtol=0, msg=f'gallery {seed}')
        del gallery
    assert len(addresses) == 1
    assert len(messages) == 6  # each gallery checked


def test_scorer_cache_keeps_no_gallery_alive():
    """The cached gallery term refers to its gallery weakly: scoring a
    gallery does not keep it in memory after the caller drops it."""
    import weakref
    params = random_mnet()
    scorer = make_mnet_scorer(*params)
    gallery = features(30, seed=8)
    scorer(features(3, seed=9), gallery)
    alive = weakref.ref(gallery)
    del gallery
    assert alive() is None


@pytest.mark.parametrize('method', ('decomposed', 'direct'))
@pytest.mark.parametrize('distance', ('mnet', 'fused'))
def test_duplicate_gallery_items_get_the_same_bits(method, distance):
    """Bit-identical gallery features tie exactly, wherever their columns
    fall in the GEMMs (an edge tile of the output layer's contraction
    rounded them differently; with two threads, so did the direct form's
    output GEMV at a thread's split), so the tie policy sees the tie."""
    query = features(20, seed=10)
    params = random_mnet(hidden=32, seed=2)
    for num_base in (31, 300):
        base = features(num_base, seed=11)
        gallery = torch.cat([base, base.flip(0), base[:7]])
        with torch_threads(2):
            dist = mnet_distances(
                query, gallery, *params, distance=distance, method=method)
        first, mirrored = dist[:, :num_base], dist[:, num_base:2 * num_base]
        torch.testing.assert_close(
            first, mirrored.flip(1), atol=0, rtol=0, msg=f'{num_base}')
        torch.testing.assert_close(
            first[:, :7], dist[:, 2 * num_base:], atol=0, rtol=0)


def test_scorer_sees_a_numpy_gallery_changed_in_place():
    """A numpy gallery changed in place between two calls (a buffer the
    caller refills) is a new gallery: numpy keeps no version counter, so
    the cached ``W g^2`` of the old values scored the new ones (max error
    in the hundreds here)."""
    params = random_mnet()
    query = features(5, seed=11).numpy()
    gallery = features(70, seed=12).numpy()
    scorer = make_mnet_scorer(*params, check_queries=0)
    scorer(query, gallery)
    gallery[:] = features(70, seed=13).numpy()
    expected = -reference_logits(
        torch.from_numpy(query), torch.from_numpy(gallery), *params)
    torch.testing.assert_close(
        scorer(query, gallery).double(), expected, atol=1e-4, rtol=0)
