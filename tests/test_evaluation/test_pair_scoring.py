import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmreid.evaluation.functional import (compute_distance, evaluate_features,
                                          evaluate_rank, fold_mnet_batchnorm,
                                          make_mnet_scorer,
                                          max_abs_logit_error, mnet_distances,
                                          mnet_pair_logits)
from mmreid.evaluation.functional.mnet_logits import (decomposed_chunk_shape,
                                                      fixed_blocks)

DIM, HIDDEN = 48, 24


def make_mnet(dim=DIM, hidden=HIDDEN, seed=0):
    """An nn M-Net (Linear, BN with non-trivial stats, ReLU, Linear)."""
    torch.manual_seed(seed)
    first = nn.Linear(dim, hidden, bias=False)
    bn = nn.BatchNorm1d(hidden)
    bn.running_mean.uniform_(-0.05, 0.05)
    bn.running_var.uniform_(0.001, 0.01)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.5, 0.5)
    out = nn.Linear(hidden, 1)
    mnet = nn.Sequential(first, bn, nn.ReLU(), out).eval()
    weight, bias = fold_mnet_batchnorm(first.weight, bn)
    params = (weight, bias, out.weight.detach()[0], out.bias.detach()[0])
    return mnet, params


def features(num, dim=DIM, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(num, dim, generator=generator), dim=1)


def nn_reference(mnet, query, gallery):
    """Logits of the nn.Module on the explicit (Q * G, D) tensor."""
    diff = (query[:, None, :] - gallery[None, :, :]).pow(2)
    with torch.no_grad():
        z = mnet(diff.reshape(-1, query.shape[1]))
    return z.view(len(query), len(gallery))


def labels(num_query, num_gallery, num_ids, seed=0):
    rng = np.random.default_rng(seed)
    q_pids = np.arange(num_query) % num_ids
    g_pids = rng.integers(0, num_ids, num_gallery)
    g_pids[:num_ids] = np.arange(num_ids)
    return (q_pids, g_pids, rng.integers(0, 3, num_query),
            rng.integers(0, 3, num_gallery))


def assert_same_result(a, b, atol=1e-6):
    np.testing.assert_allclose(a.cmc, b.cmc, atol=atol)
    assert abs(a.mAP - b.mAP) <= atol
    assert abs(a.mINP - b.mINP) <= atol


def test_fold_and_methods_match_nn_reference():
    mnet, params = make_mnet()
    query = features(7, seed=1)
    gallery = features(33, seed=2)
    ref = nn_reference(mnet, query, gallery)
    assert ref.abs().max() > 0.1  # not a trivial M-Net
    for method in ('direct', 'decomposed'):
        z = mnet_pair_logits(query, gallery, *params, method=method)
        assert z.dtype == torch.float32 and z.shape == (7, 33)
        torch.testing.assert_close(z, ref, atol=1e-4, rtol=0)


def test_max_abs_logit_error_is_the_largest_error():
    """The check users run on their own features reports the largest
    |direct - decomposed|, which sits at q ~ g (the top of a ranking) on
    raw features with a large common part: an average hides it."""
    generator = torch.Generator().manual_seed(0)
    dim, hidden = 64, 32
    common = 30 * torch.rand(dim, generator=generator)
    query = common + torch.randn(8, dim, generator=generator)
    gallery = torch.cat([
        query[:4] + 1e-3 * torch.randn(4, dim, generator=generator),
        common + torch.randn(40, dim, generator=generator)
    ])
    params = (torch.randn(hidden, dim, generator=generator) / dim,
              torch.randn(hidden, generator=generator),
              torch.randn(hidden, generator=generator), 0.3)
    error = (mnet_pair_logits(query, gallery, *params, method='direct') -
             mnet_pair_logits(query, gallery, *params)).abs()
    assert error.max() > 2 * error.mean()  # the two differ here
    assert max_abs_logit_error(query, gallery, *params) == pytest.approx(
        error.max().item(), rel=1e-6)
    assert max_abs_logit_error(query[:0], gallery, *params) == 0.0


def test_decomposed_matches_direct_near_duplicates():
    _, params = make_mnet()
    query = features(16, seed=3)
    noise = torch.randn(16, DIM, generator=torch.Generator().manual_seed(4))
    gallery = torch.cat([
        query,  # exact duplicates
        F.normalize(query + 1e-4 * noise, dim=1),  # near-identical
        features(40, seed=5)
    ])
    direct = mnet_pair_logits(query, gallery, *params, method='direct')
    decomposed = mnet_pair_logits(query, gallery, *params)
    assert (direct - decomposed).abs().max() <= 1e-4
    assert max_abs_logit_error(query[:4], gallery, *params) <= 1e-4
    # the duplicate pair has f_sp = 0: z = w2 . relu(b) + b2
    weight, bias, out_weight, out_bias = params
    expected = out_weight @ bias.relu() + out_bias
    torch.testing.assert_close(
        direct.diagonal(), expected.expand(16), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        decomposed.diagonal(), expected.expand(16), atol=1e-4, rtol=0)


def test_input_dtypes_and_shapes():
    _, params = make_mnet()
    query, gallery = features(3), features(5, seed=2)
    ref = mnet_pair_logits(query, gallery, *params)
    z = mnet_pair_logits(query.double(), gallery.half().float(), *params)
    assert z.dtype == torch.float32
    weight, bias, out_weight, out_bias = params
    # nn-shaped output layer: (1, H) weight and (1,) bias
    z2 = mnet_pair_logits(query, gallery, weight, bias, out_weight[None],
                          out_bias.reshape(1))
    torch.testing.assert_close(z2, ref, atol=0, rtol=0)
    assert mnet_pair_logits(query[:0], gallery, *params).shape == (0, 5)
    with pytest.raises(ValueError, match='weight has shape'):
        mnet_pair_logits(query[:, :10], gallery, *params)
    with pytest.raises(ValueError, match='method'):
        mnet_pair_logits(query, gallery, *params, method='fast')


@pytest.mark.parametrize('method', ['direct', 'decomposed'])
def test_chunk_invariance(method):
    _, params = make_mnet()
    query, gallery = features(13, seed=6), features(157, seed=7)
    full = mnet_pair_logits(query, gallery, *params, method=method)
    # one query and 70 gallery columns (or pairs); 3 queries; blocks of
    # 100 pairs
    if method == 'decomposed':
        columns = HIDDEN * DIM * 4 + 70 * (HIDDEN + 4) * 4
        per_query = HIDDEN * DIM * 4 + 157 * (HIDDEN + 4) * 4
    else:
        columns = 70 * (DIM + HIDDEN + 1) * 4
        per_query = 157 * (DIM + HIDDEN + 1) * 4
    budgets = [1e3, columns / 2**20, per_query * 3 / 2**20]
    if method == 'direct':
        budgets.append(100 * (DIM + HIDDEN + 1) * 4 / 2**20)
    for budget in budgets:
        z = mnet_pair_logits(
            query, gallery, *params, method=method, memory_budget_mb=budget)
        assert (z - full).abs().max() <= 1e-6, budget


def test_chunk_shape_and_budget_errors():
    # whole gallery per chunk when a query fits, columns split otherwise
    # (the output layer's product has OUT_GEMM_ROWS = 4 rows per column)
    per_query = 512 * (2048 + 1000) * 4 + 1000 * 4 * 4
    qc, gc = decomposed_chunk_shape(1000, 2048, 512, 3 * per_query / 2**20)
    assert (qc, gc) == (3, 1000)
    per_query = 512 * (2048 + 10000) * 4 + 10000 * 4 * 4
    qc, gc = decomposed_chunk_shape(10000, 2048, 512, per_query / 2 / 2**20)
    assert (qc, gc) == (1, (per_query // 2 - 512 * 2048 * 4) // (516 * 4))
    _, params = make_mnet()
    query, gallery = features(2), features(3, seed=2)
    for method in ('direct', 'decomposed'):
        with pytest.raises(
                ValueError,
                match='memory_budget_mb=1e-06 is too '
                'small .* at least'):
            mnet_pair_logits(
                query, gallery, *params, method=method, memory_budget_mb=1e-6)
    with pytest.raises(ValueError, match='memory_budget_mb'):
        mnet_distances(query, gallery, *params, topk=2, memory_budget_mb=1e-6)
    with pytest.raises(ValueError, match='memory_budget_mb must be > 0'):
        mnet_pair_logits(query, gallery, *params, memory_budget_mb=0)


def test_chunks_with_a_tail_count_the_transposed_copy():
    """With a tail, a query's chunk also holds the (G, H) transposed copy
    of its hidden buffer and its G logits: H * D + G * (2H + 1) fp32 per
    query, else a chunk can take twice the budget."""
    num_gallery, dim, hidden = 1000, 256, 64
    per_query = (hidden * dim + num_gallery * (2 * hidden + 1)) * 4
    assert decomposed_chunk_shape(
        num_gallery, dim, hidden, 3 * per_query / 2**20,
        tail=True) == (3, num_gallery)
    half = (hidden * dim + num_gallery // 2 * (2 * hidden + 1)) * 4
    assert decomposed_chunk_shape(
        num_gallery, dim, hidden, half / 2**20,
        tail=True) == (1, num_gallery // 2)


def test_direct_blocks_stay_within_the_budget(monkeypatch):
    """The direct form holds a block's pair features, hidden units and
    logits, (D + H + 1) fp32 per pair: no block holds more pairs than the
    budget pays for."""
    from mmreid.evaluation.functional import mnet_logits
    _, params = make_mnet()
    query, gallery = features(37, seed=40), features(23, seed=41)
    pair_bytes = (DIM + HIDDEN + 1) * 4
    blocks = []
    real = mnet_logits._direct_block

    def counted(query_block, gallery_block, *args):
        blocks.append(len(query_block) * len(gallery_block))
        return real(query_block, gallery_block, *args)

    monkeypatch.setattr(mnet_logits, '_direct_block', counted)
    for pairs in (64, 70, 100, 500):
        blocks.clear()
        mnet_pair_logits(
            query,
            gallery,
            *params,
            method='direct',
            memory_budget_mb=pairs * pair_bytes / 2**20)
        assert blocks and max(blocks) <= pairs, (pairs, blocks)
    # fewer pairs per GEMM are padded to 64 (MIN_PAIR_GEMM): the budget
    # must pay for them
    with pytest.raises(ValueError, match='too small for 64 pairs'):
        mnet_pair_logits(
            query,
            gallery,
            *params,
            method='direct',
            memory_budget_mb=63 * pair_bytes / 2**20)


def test_mnet_ranks_by_logit_without_sigmoid_ties():
    _, (weight, bias, out_weight, _) = make_mnet()
    query, gallery = features(1, seed=8), features(30, seed=9)
    z = mnet_pair_logits(query, gallery, weight, bias, out_weight, 0.0)
    # shift so that the 6 best items have z >= 20: sigmoid(z) == 1 in fp32
    out_bias = 20.0 - z[0].sort(descending=True).values[5].item()
    z = mnet_pair_logits(query, gallery, weight, bias, out_weight, out_bias)
    top = z[0] >= 20
    assert top.sum() >= 6
    assert (torch.sigmoid(z[0][top]) == 1).all()  # would tie
    dist = mnet_distances(query, gallery, weight, bias, out_weight, out_bias)
    torch.testing.assert_close(dist, -z, atol=0, rtol=0)
    assert len(torch.unique(dist[0][top])) == int(top.sum())
    # ranking: the true order by descending z
    assert torch.equal(dist[0].argsort(stable=True),
                       z[0].argsort(descending=True))


def test_euclid_and_fused():
    _, params = make_mnet()
    query, gallery = features(5, seed=10), features(21, seed=11)
    euclid = mnet_distances(query, gallery, *params, distance='euclid')
    torch.testing.assert_close(
        euclid,
        compute_distance(query, gallery, 'sqeuclidean'),
        atol=0,
        rtol=0)
    z = mnet_pair_logits(query, gallery, *params)
    for beta in (0.0, 0.3, 0.999):
        fused = mnet_distances(
            query, gallery, *params, distance='fused', fuse_beta=beta)
        expected = (1 - beta) * euclid / 4 + beta * (1 - torch.sigmoid(z))
        torch.testing.assert_close(fused, expected, atol=1e-6, rtol=0)
    for beta in (2, 1):
        with pytest.raises(ValueError, match='fuse_beta'):
            mnet_distances(
                query, gallery, *params, distance='fused', fuse_beta=beta)
    with pytest.raises(ValueError, match='distance'):
        mnet_distances(query, gallery, *params, distance='cosine')
    with pytest.raises(ValueError, match='topk'):
        mnet_distances(query, gallery, *params, distance='fused', topk=3)


def test_topk_full_equals_mnet_metrics():
    _, params = make_mnet()
    query, gallery = features(12, seed=12), features(40, seed=13)
    lab = labels(12, 40, 6)
    full = evaluate_rank(mnet_distances(query, gallery, *params), *lab)
    for k in (40, 100):
        topk = mnet_distances(query, gallery, *params, topk=k)
        assert_same_result(evaluate_rank(topk, *lab), full)


def test_topk_head_and_tail_order():
    _, params = make_mnet()
    query, gallery = features(9, seed=14), features(50, seed=15)
    k = 7
    dist = mnet_distances(
        query, gallery, *params, topk=k, memory_budget_mb=0.03)
    euclid = compute_distance(query, gallery, 'sqeuclidean')
    z = mnet_pair_logits(query, gallery, *params, method='direct')
    for i in range(len(query)):
        # positions are a permutation of 0 .. G - 1
        assert torch.equal(dist[i].sort().values, torch.arange(50.))
        order = dist[i].argsort()
        euclid_order = euclid[i].argsort(stable=True)
        head = euclid_order[:k]
        expected_head = head[(-z[i, head]).argsort(stable=True)]
        assert torch.equal(order[:k], expected_head)
        assert torch.equal(order[k:], euclid_order[k:])


def test_topk_cheaper_than_full(monkeypatch):
    """topk scores Q * k pairs, never the full Q x G M-Net."""
    from mmreid.evaluation.functional import mnet_logits

    def forbidden(*args, **kwargs):
        raise AssertionError('full scoring called')

    monkeypatch.setattr(mnet_logits, '_decomposed_logits', forbidden)
    monkeypatch.setattr(mnet_logits, '_direct_logits', forbidden)
    _, params = make_mnet()
    dist = mnet_distances(features(3), features(20, seed=2), *params, topk=4)
    assert dist.shape == (3, 20)


@pytest.mark.parametrize('mode,topk', [('mnet', None), ('fused', None),
                                       ('euclid', None), ('mnet', 5)])
def test_scorer_streams_like_full_matrix(mode, topk):
    _, params = make_mnet()
    query, gallery = features(30, seed=16), features(45, seed=17)
    lab = labels(30, 45, 8, seed=1)
    full = mnet_distances(query, gallery, *params, distance=mode, topk=topk)
    expected = evaluate_rank(full, *lab)
    scorer = make_mnet_scorer(
        *params, distance=mode, topk=topk, gallery=gallery)
    # a tiny budget: several query chunks of evaluate_features
    result = evaluate_features(
        query, gallery, *lab, distance=scorer, memory_budget_mb=0.01)
    assert_same_result(result, expected)


def test_scorer_caches_gallery_term(monkeypatch):
    from mmreid.evaluation.functional import mnet_logits
    _, params = make_mnet()
    query, gallery = features(20, seed=18), features(25, seed=19)
    expected = -mnet_pair_logits(query, gallery, *params)
    expected_half = -mnet_pair_logits(query[:4], gallery * 0.5, *params)
    calls = []
    original = mnet_logits._decomposed_gallery_term

    def counting(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(mnet_logits, '_decomposed_gallery_term', counting)
    scorer = make_mnet_scorer(*params, gallery=gallery)
    assert len(calls) == 1
    chunks = [scorer(query[i:i + 4], gallery) for i in range(0, 20, 4)]
    assert len(calls) == 1
    torch.testing.assert_close(torch.cat(chunks), expected)
    gallery.mul_(0.5)  # in place: the cache must be invalidated
    changed = scorer(query[:4], gallery)
    assert len(calls) == 2
    torch.testing.assert_close(changed, expected_half)


def test_tail_equals_linear_path():
    mnet, params = make_mnet()
    weight, bias, _, _ = params
    tail = mnet[3]
    query, gallery = features(6, seed=20), features(17, seed=21)
    for method in ('direct', 'decomposed'):
        linear = mnet_pair_logits(query, gallery, *params, method=method)
        with_tail = mnet_pair_logits(
            query, gallery, weight, bias, None, None, method=method, tail=tail)
        torch.testing.assert_close(with_tail, linear, atol=1e-6, rtol=0)
        # blocks of 70 gallery columns (a tail's chunk also holds the
        # transposed hidden copy) or of 71 pairs
        tiny_budget = ((HIDDEN * DIM + 70 * (2 * HIDDEN + 1)) * 4 /
                       2**20 if method == 'decomposed' else 0.02)
        large = features(150, seed=22)
        tiny = mnet_pair_logits(
            query,
            large,
            weight,
            bias,
            None,
            None,
            method=method,
            tail=tail,
            memory_budget_mb=tiny_budget)
        torch.testing.assert_close(
            tiny,
            mnet_pair_logits(query, large, *params, method=method),
            atol=1e-6,
            rtol=0)
    topk = mnet_distances(
        query, gallery, weight, bias, None, None, topk=5, tail=tail)
    torch.testing.assert_close(topk,
                               mnet_distances(query, gallery, *params, topk=5))
    with pytest.raises(ValueError, match='out_weight and out_bias'):
        mnet_pair_logits(query, gallery, weight, bias, None, None)
    with pytest.raises(ValueError, match='tail must map'):
        mnet_pair_logits(
            query, gallery, weight, bias, None, None, tail=lambda h: h[:, :2])


@pytest.mark.cuda
def test_cuda_restores_tf32_flag():
    _, params = make_mnet()
    query, gallery = features(4).cuda(), features(9, seed=2).cuda()
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        z = mnet_pair_logits(query, gallery, *params)
        assert torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    ref = mnet_pair_logits(query.cpu(), gallery.cpu(), *params)
    torch.testing.assert_close(z.cpu(), ref, atol=1e-5, rtol=0)


def common_component_features(num, dim=DIM, seed=20):
    """Un-normalised features that share a large common component (as
    pre-BN features do): the decomposition cancels terms of size |f|^2."""
    generator = torch.Generator().manual_seed(seed)
    common = 40 + 10 * torch.rand(1, dim, generator=generator)
    return common + 0.3 * torch.randn(num, dim, generator=generator)


def test_scorer_falls_back_to_direct_when_decomposition_is_off():
    """Spec 8.3: the decomposition is checked on a query subset at every
    evaluation; above the bound the direct form scores the gallery."""
    mnet, params = make_mnet()
    query = common_component_features(12, seed=21)
    gallery = common_component_features(40, seed=22)
    direct = -mnet_pair_logits(query, gallery, *params, method='direct')
    decomposed = -mnet_pair_logits(query, gallery, *params)
    error = (direct - decomposed).abs().max().item()
    assert error > 1e-5  # the case the check must catch
    messages = []
    scorer = make_mnet_scorer(
        *params, check_queries=5, max_logit_error=1e-5, log=messages.append)
    out = torch.cat([scorer(query[:6], gallery), scorer(query[6:], gallery)])
    # the direct form, bit for bit, for every chunk of this gallery
    assert torch.equal(out, direct)
    check = scorer.last_check
    assert check['method'] == 'direct' and check['num_queries'] == 5
    assert check['num_gallery'] == 40
    # max |dz| on the first 5 queries, as defined
    assert check['max_abs_error'] == pytest.approx(
        (direct[:5] - decomposed[:5]).abs().max().item(), rel=1e-6)
    assert len(messages) == 1  # one check per gallery, not per chunk
    assert 'max |dz|' in messages[0] and 'direct form' in messages[0]
    # the direct form is the M-Net as defined (nn.Module on (q - g)^2)
    reference = -nn_reference(mnet, query, gallery)
    assert (out - reference).abs().max() <= (decomposed -
                                             reference).abs().max()


def test_scorer_keeps_decomposition_within_bound_and_rechecks():
    _, params = make_mnet()
    query, gallery = features(10, seed=23), features(30, seed=24)
    messages = []
    scorer = make_mnet_scorer(*params, check_queries=4, log=messages.append)
    out = scorer(query, gallery)
    assert scorer.last_check['method'] == 'decomposed'
    assert scorer.last_check['max_abs_error'] <= 1e-5
    assert 'within the bound' in messages[0]
    # the 4 checked queries get the direct form's distances, the rest the
    # decomposed form's
    torch.testing.assert_close(
        out[:4],
        -mnet_pair_logits(query[:4], gallery, *params, method='direct'),
        atol=0,
        rtol=0)
    torch.testing.assert_close(out[4:],
                               -mnet_pair_logits(query[4:], gallery, *params))
    # a new gallery (the next evaluation) is checked again
    bad_query = common_component_features(4, seed=25)
    bad_gallery = common_component_features(30, seed=26)
    scorer(bad_query, bad_gallery)
    assert len(messages) == 2 and scorer.last_check['method'] == 'direct'
    # ... and a good one after it goes back to the decomposition
    scorer(query, gallery.clone())
    assert scorer.last_check['method'] == 'decomposed'
    # no check: no message, the configured form
    quiet = make_mnet_scorer(*params, check_queries=0, log=messages.append)
    quiet(bad_query, bad_gallery)
    assert quiet.last_check is None and len(messages) == 3
    # fewer queries than check_queries: all checked, all scored with the
    # direct form, nothing logged, the check incomplete
    scorer = make_mnet_scorer(*params, log=messages.append)  # 32
    out = scorer(query, gallery)
    assert len(messages) == 3 and not scorer.last_check['complete']
    assert scorer.last_check['num_queries'] == 10
    assert scorer.last_check['method'] == 'direct'
    torch.testing.assert_close(
        out,
        -mnet_pair_logits(query, gallery, *params, method='direct'),
        atol=0,
        rtol=0)
    with pytest.raises(ValueError, match='check_queries'):
        make_mnet_scorer(*params, check_queries=-1)
    with pytest.raises(ValueError, match='max_logit_error'):
        make_mnet_scorer(*params, max_logit_error=0)


def test_mode_is_a_deprecated_alias_of_distance():
    _, params = make_mnet()
    query, gallery = features(4, seed=27), features(9, seed=28)
    new = mnet_distances(query, gallery, *params, distance='fused')
    with pytest.warns(FutureWarning, match="distance='fused'"):
        old = mnet_distances(query, gallery, *params, mode='fused')
    torch.testing.assert_close(old, new, atol=0, rtol=0)
    with pytest.warns(FutureWarning):
        scorer = make_mnet_scorer(*params, mode='euclid')
    assert scorer.distance == 'euclid'


def test_shared_logits_give_the_same_bits_with_one_mnet_pass(monkeypatch):
    """share_mnet_logits: 'mnet' and 'fused' of one M-Net score each query
    chunk once when the modes are evaluated chunk by chunk, with the bits
    of the scorers they replace."""
    from mmreid.evaluation.functional import (evaluate_features_multi,
                                              mnet_logits)
    from mmreid.evaluation.functional.mnet_distance import MNetPairScorer
    from mmreid.evaluation.functional.mnet_shared_logits import (
        SharedLogitScorer, share_mnet_logits)
    _, params = make_mnet()
    query, gallery = features(40, seed=30), features(60, seed=31)
    lab = labels(40, 60, 9, seed=3)

    def scorers(**kwargs):
        return {
            mode:
            MNetPairScorer(*params, distance=mode, fuse_beta=0.3, **kwargs)
            for mode in ('mnet', 'euclid', 'fused')
        }

    calls = []
    original = mnet_logits._decomposed_logits

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(mnet_logits, '_decomposed_logits', counting)
    # Budgets small enough for several query chunks.
    options = dict(memory_budget_mb=0.01, tie_policy='stable')
    separate = evaluate_features_multi(
        query, gallery, *lab, distances=scorers(check_queries=0), **options)
    separate_calls, calls[:] = len(calls), []
    shared_scorers = share_mnet_logits(scorers(check_queries=0))
    assert isinstance(shared_scorers['fused'], SharedLogitScorer)
    assert list(shared_scorers) == ['mnet', 'euclid', 'fused']
    shared = evaluate_features_multi(
        query, gallery, *lab, distances=shared_scorers, **options)
    assert 0 < len(calls) and 2 * len(calls) == separate_calls
    for mode in separate:
        for field in ('cmc', 'all_AP', 'all_INP'):
            np.testing.assert_array_equal(
                getattr(shared[mode], field), getattr(separate[mode], field))
    # Scorer by scorer, the distances are the same bits, also when a mode
    # is called alone, and after an in-place change of the query chunk.
    fresh = scorers(check_queries=0)
    shared_scorers = share_mnet_logits(scorers(check_queries=0))
    chunk = query[:7].clone()
    for _ in range(2):
        for mode in ('mnet', 'fused', 'mnet', 'euclid'):
            assert torch.equal(shared_scorers[mode](chunk, gallery),
                               fresh[mode](chunk, gallery))
        chunk.mul_(0.5)
    # The decomposition check and its record are the shared mnet scorer's.
    checked = share_mnet_logits(scorers(check_queries=3))
    checked['fused'](query[:5], gallery)
    assert checked['fused'].last_check['num_queries'] == 3
    assert checked['mnet'].last_check is checked['fused'].last_check
    assert checked['fused'].options.distance == 'fused'
    # top-k 'mnet' distances are positions, not logits: nothing is shared.
    topk = scorers(check_queries=0)
    topk['mnet'] = MNetPairScorer(*params, distance='mnet', topk=5)
    assert share_mnet_logits(topk) == topk


def test_scorers_say_whether_their_distances_depend_on_the_gallery():
    """A top-k scorer's distance of a pair is its position in the query's
    ranking of the whole gallery it is given (the candidates are that
    gallery's k nearest): it declares gallery_dependent, so the metrics
    score each split or trial gallery on its own. Pair scores do not."""
    from mmreid.evaluation.functional.mnet_distance import MNetPairScorer
    from mmreid.evaluation.functional.mnet_shared_logits import \
        share_mnet_logits
    _, params = make_mnet()
    topk = MNetPairScorer(*params, distance='mnet', topk=2)
    assert topk.gallery_dependent is True
    for mode in ('mnet', 'euclid', 'fused'):
        assert MNetPairScorer(*params, distance=mode).gallery_dependent \
            is False
    shared = share_mnet_logits({
        mode: MNetPairScorer(*params, distance=mode)
        for mode in ('mnet', 'fused')
    })
    assert not any(s.gallery_dependent for s in shared.values())
    # The property it declares: scoring a sub-gallery is not indexing the
    # columns of the whole gallery's distances.
    query, gallery = features(4, seed=40), features(12, seed=41)
    part = gallery[::2]
    indexed = topk(query, gallery)[:, ::2]
    assert not torch.equal(topk(query, part).argsort(1), indexed.argsort(1))


def test_a_querys_logits_do_not_depend_on_its_chunk():
    """The decomposed M-Net gives a query the same bits whatever chunk it
    is scored in (a few-row GEMM rounds differently; short chunks are
    padded)."""
    _, params = make_mnet(dim=256, hidden=128, seed=3)
    query, gallery = features(150, dim=256, seed=4), features(800, 256, 5)
    whole = mnet_pair_logits(query, gallery, *params)
    for chunk in (1, 3, 7, 17, 100):
        chunked = torch.cat([
            mnet_pair_logits(query[start:start + chunk], gallery, *params)
            for start in range(0, len(query), chunk)
        ])
        torch.testing.assert_close(
            chunked, whole, atol=0, rtol=0, msg=f'chunk {chunk}')


def test_malformed_mnet_parameters_are_refused():
    """A bias, out_bias or gallery term of the wrong size would broadcast
    silently into the logits; each is refused."""
    _, (weight, bias, out_weight, out_bias) = make_mnet()
    query, gallery = features(3), features(5, seed=2)
    for method in ('direct', 'decomposed'):
        with pytest.raises(ValueError, match=f'bias must have H={HIDDEN}'):
            mnet_pair_logits(
                query,
                gallery,
                weight,
                bias[:1],
                out_weight,
                out_bias,
                method=method)
    with pytest.raises(ValueError, match='out_bias must be a scalar'):
        mnet_pair_logits(query, gallery, weight, bias, out_weight,
                         torch.zeros(2))
    # the gallery term of another (6-item) gallery
    term = weight @ features(6, seed=3).pow(2).t()
    with pytest.raises(ValueError, match='gallery_term must have shape'):
        mnet_pair_logits(
            query,
            gallery,
            weight,
            bias,
            out_weight,
            out_bias,
            gallery_term=term)


def test_direct_method_scorer_scores_the_direct_form():
    """method='direct' scores the M-Net on explicit pairs: the scorer does
    not check the decomposition, nor switch to it."""
    _, params = make_mnet()
    query, gallery = features(10, seed=50), features(70, seed=51)
    direct = -mnet_pair_logits(query, gallery, *params, method='direct')
    messages = []
    scorer = make_mnet_scorer(*params, method='direct', log=messages.append)
    assert torch.equal(scorer(query, gallery), direct)
    assert scorer.last_check is None and not messages


def test_scorer_falls_back_when_the_decomposition_overflows():
    """Features whose squares overflow fp32 make the decomposed logits
    NaN (inf - inf) while every (q - g)^2 is 0: a NaN max |dz| is not
    within the bound, so the gallery is scored with the direct form."""
    _, params = make_mnet()
    weight, bias, out_weight, out_bias = params
    query = torch.full((3, DIM), 2e19)  # 2e19**2 > fp32 max
    gallery = query[:1].repeat(8, 1)
    assert mnet_pair_logits(query, gallery, *params).isnan().all()
    scorer = make_mnet_scorer(*params)
    dist = scorer(query, gallery)
    assert scorer.last_check['method'] == 'direct'
    # (q - g)^2 = 0: z = w2 . relu(b) + b2 for every pair
    expected = out_weight @ bias.relu() + out_bias
    torch.testing.assert_close(dist, -expected.expand(3, 8), atol=1e-6, rtol=0)


def test_direct_blocks_reach_a_last_single_column():
    """The direct form's gallery blocks cover the last column also when it
    would be a block of its own (129 = 2 * 64 + 1 columns): the last block
    is shifted back to 64 columns."""
    mnet, params = make_mnet()
    query, gallery = features(3, seed=60), features(129, seed=61)
    budget = 64 * (DIM + HIDDEN + 1) * 4 / 2**20  # 64 pairs per block
    z = mnet_pair_logits(
        query, gallery, *params, method='direct', memory_budget_mb=budget)
    torch.testing.assert_close(
        z, nn_reference(mnet, query, gallery), atol=1e-4, rtol=0)


def test_callers_may_change_shared_mnet_distances():
    """The 'mnet' distances a shared scorer returns are the caller's: a
    change in place leaves the 'fused' distances of the same chunk as
    defined, (1 - beta) |q - g|^2 / 4 + beta sigmoid(-z)."""
    from mmreid.evaluation.functional.mnet_distance import MNetPairScorer
    from mmreid.evaluation.functional.mnet_shared_logits import \
        share_mnet_logits
    mnet, params = make_mnet()
    query, gallery = features(5, seed=62), features(20, seed=63)
    shared = share_mnet_logits({
        mode:
        MNetPairScorer(*params, distance=mode, fuse_beta=0.4, check_queries=0)
        for mode in ('mnet', 'fused')
    })
    shared['mnet'](query, gallery).fill_(0)
    z = nn_reference(mnet, query, gallery)
    euclid = (query[:, None] - gallery[None]).pow(2).sum(-1)
    expected = 0.6 * euclid / 4 + 0.4 * torch.sigmoid(-z)
    torch.testing.assert_close(
        shared['fused'](query, gallery), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize('hidden,dim', [(29, 55), (8, 16), (512, 2048)])
def test_a_too_small_budget_names_a_budget_that_is_accepted(hidden, dim):
    """The refusal rounded the minimum to 3 decimals, down as often as
    up: 0.006 was refused with "needs at least 0.006 MB"."""
    import re

    from mmreid.evaluation.functional.mnet_logits import mnet_pair_logits
    generator = torch.Generator().manual_seed(hidden)
    args = [
        torch.randn(3, dim, generator=generator),
        torch.randn(5, dim, generator=generator),
        torch.randn(hidden, dim, generator=generator),
        torch.randn(hidden, generator=generator),
        torch.randn(hidden, generator=generator), 0.0
    ]
    with pytest.raises(ValueError, match='too small') as refused:
        mnet_pair_logits(*args, memory_budget_mb=1e-4)
    named = float(
        re.search(r'needs at least ([0-9.]+) MB', str(refused.value)).group(1))
    assert mnet_pair_logits(*args, memory_budget_mb=named).shape == (3, 5)


def test_fixed_blocks_cover_every_item_once_in_blocks_of_one_width():
    """Every block has the same width (the GEMMs one shape) and the kept
    parts cover ``range(total)`` once, in order."""
    for total in (1, 5, 63, 64, 65, 129, 200):
        for width in (1, 7, 64, 100, 300):
            blocks = list(fixed_blocks(total, width))
            kept = [i for start, stop, new in blocks for i in range(new, stop)]
            assert kept == list(range(total)), (total, width)
            assert {stop - start
                    for start, stop, _ in blocks} == {min(width, total)}
            assert all(0 <= start <= new < stop <= total
                       for start, stop, new in blocks)
