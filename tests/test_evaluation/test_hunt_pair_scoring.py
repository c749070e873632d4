"""Wrong-number hunt: GMN's test-time pair scoring against brute force.

Every number here is checked against a reference written from the spec
(``specs/gmn.md`` section 8): each query-gallery pair is scored through
the M-Net in eval mode, one pair at a time; ``'euclid'`` is ``||q - g||^2``
and ``'fused'`` is ``(1 - beta) ||q - g||^2 / 4 + beta (1 - sigmoid(z))``;
the ranking is the gallery sorted by distance with ties in gallery order
(``tie_policy='stable'``), the Market rule drops the query's pid seen by
its camera, and CMC / AP / mINP follow their textbook definitions.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmreid.evaluation.functional import evaluate_features_multi
from mmreid.evaluation.functional.mnet_distance import PairDistanceOptions
from mmreid.evaluation.functional.mnet_logits import OUT_GEMM_ROWS
from mmreid.evaluation.metrics import ReIDMetric
from mmreid.registry import MODELS

DIM, HIDDEN = 64, 16


def budget_for_columns(method, columns):
    """``memory_budget_mb`` whose scorer splits the gallery into blocks of
    ``columns`` items for one query (``decomposed_chunk_shape``'s and the
    direct form's own accounting: fp32 buffers of a block)."""
    if method == 'decomposed':  # left operand + hidden and output columns
        size = HIDDEN * DIM + columns * (HIDDEN + OUT_GEMM_ROWS)
    else:  # squared differences, hidden activations, logit per pair
        size = columns * (DIM + HIDDEN + 1)
    return 4 * size / 2**20


def build_gmn(**test_cfg):
    """A tiny GMNReID whose M-Net is set from a fixed generator."""
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type='GMNReID',
            backbone=dict(
                type='ReIDResNet', depth=18, base_channels=8, stem_channels=8),
            head=dict(
                type='GMNHead',
                in_channels=DIM,
                num_classes=4,
                mnet=dict(hidden_channels=HIDDEN)),
            test_cfg=test_cfg or None))
    model.init_weights()
    mnet = model.head.mnet
    gen = torch.Generator().manual_seed(0)
    first, bn, out = mnet.hidden[0], mnet.hidden[1], mnet.fc_out
    with torch.no_grad():
        # f_sp of unit features is ~1/D: a large first layer gives logits
        # of order 1, as a trained M-Net's.
        first.weight.copy_(3 * torch.randn(HIDDEN, DIM, generator=gen))
        bn.running_mean.uniform_(-0.05, 0.05, generator=gen)
        bn.running_var.uniform_(0.01, 0.1, generator=gen)
        bn.weight.uniform_(0.5, 1.5, generator=gen)
        bn.bias.uniform_(-0.5, 0.5, generator=gen)
        out.weight.copy_(torch.randn(1, HIDDEN, generator=gen))
        out.bias.fill_(0.1)
    return model.eval()


def unit(num, seed):
    gen = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(num, DIM, generator=gen), dim=1)


def reference_logits(model, query, gallery):
    """z of every pair, each pair on its own through the eval M-Net."""
    mnet = model.head.mnet.eval()
    out = torch.empty(len(query), len(gallery), dtype=torch.float64)
    with torch.no_grad():
        for i, q in enumerate(query.float()):
            for j, g in enumerate(gallery.float()):
                out[i, j] = float(mnet(((q - g)**2)[None])[0])
    return out


def reference_distances(model, query, gallery, beta=0.5):
    """The three modes of spec 8.1, in float64 from the per-pair z."""
    z = reference_logits(model, query, gallery)
    euclid = ((query.double()[:, None] - gallery.double()[None])**2).sum(-1)
    return dict(
        mnet=-z,
        euclid=euclid,
        fused=(1 - beta) * euclid / 4 + beta * (1 - torch.sigmoid(z)))


def reference_metrics(dist, q_pids, g_pids, q_cams, g_cams, max_rank=10):
    """R1..R<max_rank>, mAP and mINP (fractions) of a distance matrix:
    stable sort, Market rule, queries without a positive skipped."""
    dist = np.asarray(dist, dtype=np.float64)
    cmcs, aps, inps = [], [], []
    for i in range(len(q_pids)):
        order = np.argsort(dist[i], kind='stable')
        junk = (g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i])
        hits = np.flatnonzero((g_pids[order] == q_pids[i])[~junk])
        if not len(hits):
            continue
        cmc = np.zeros(max_rank)
        if hits[0] < max_rank:
            cmc[hits[0]:] = 1
        cmcs.append(cmc)
        aps.append(np.mean([(n + 1) / (h + 1) for n, h in enumerate(hits)]))
        inps.append(len(hits) / (hits[-1] + 1))
    return dict(cmc=np.mean(cmcs, 0), mAP=np.mean(aps), mINP=np.mean(inps))


def records(query, gallery, q_pids, g_pids, q_cams, g_cams):
    """ReIDMetric's records of the query and gallery features."""
    out = []
    sets = ((query, q_pids, q_cams, True), (gallery, g_pids, g_cams, False))
    for feats, pids, cams, is_query in sets:
        for feat, pid, cam in zip(feats, pids, cams):
            out.append(
                dict(
                    feature=feat,
                    pid=int(pid),
                    camid=int(cam),
                    is_query=is_query,
                    sample_idx=len(out),
                    dataset=None,
                    img_path=None))
    return out


def twin_gallery(num, seed):
    """A gallery of ``num`` features, each twice: a negative (pid 100 +
    j) at j and a positive of query pid j at ``num + j``. Twins have the
    same features, hence the same distance to any query: by the stable
    tie policy the negative (lower index) ranks first."""
    base = unit(num, seed)
    gallery = torch.cat([base, base])
    g_pids = np.concatenate([100 + np.arange(num), np.arange(num)])
    return base, gallery, g_pids


def assert_same_metrics(result, ref, what):
    assert result.mAP == pytest.approx(ref['mAP'], abs=1e-9), what
    assert result.mINP == pytest.approx(ref['mINP'], abs=1e-9), what
    np.testing.assert_allclose(
        result.cmc[:10], ref['cmc'], atol=1e-9, err_msg=what)


# ------------------------------------------------------------ test gaps


@pytest.mark.parametrize('dtype', (torch.float32, torch.float16))
def test_every_mode_matches_brute_force_with_one_row_chunks(dtype):
    """A user evaluates a GMN with ``ReIDMetric`` on a tight budget: the
    metric ranks one query at a time and the scorer (``memory_budget_mb``
    of ``test_cfg``) splits the 37-item gallery into column blocks that
    do not divide it (300 items in blocks of 220 or 67; the decomposed
    form's check needs a budget for 64 direct pairs). Every mode's numbers
    (``reid/mnet/...``, ``reid/euclid/...``, ``reid/fused/...`` and the
    primary mode unprefixed) must be those of the brute-force reference
    of spec 8.1, fp16 features included (the M-Net scores them in
    fp32)."""
    q_pids, g_pids = np.arange(11) % 6, np.arange(300) % 6
    q_cams, g_cams = np.zeros(11, int), np.ones(300, int)
    g_cams[::5] = 0  # some junk under the Market rule
    query, gallery = unit(11, 1).to(dtype), unit(300, 2).to(dtype)
    refs = reference_distances(build_gmn(), query, gallery, beta=0.3)
    labels = (q_pids, g_pids, q_cams, g_cams)
    for method, columns in (('decomposed', 220), ('direct', 67)):
        model = build_gmn(
            method=method,
            memory_budget_mb=budget_for_columns(method, columns),
            fuse_beta=0.3)
        metric = ReIDMetric(memory_budget_mb=0.001)  # one query per chunk
        metric.set_scorers(model.scorers())
        metrics = metric.compute_metrics(records(query, gallery, *labels))
        assert {k.split('/')[0]
                for k in metrics if '/' in k} == {'mnet', 'euclid', 'fused'}
        for mode, dist in refs.items():
            ref = reference_metrics(dist.numpy(), *labels)
            assert metrics[f'{mode}/mAP'] == pytest.approx(
                100 * ref['mAP'], abs=1e-7), (method, mode)
            assert metrics[f'{mode}/R1'] == pytest.approx(
                100 * ref['cmc'][0], abs=1e-7), (method, mode)
        assert metrics['mAP'] == metrics['mnet/mAP']


def test_fused_with_beta_zero_ranks_as_euclid():
    """``fuse_beta=0`` makes ``'fused'`` a quarter of ``||q - g||^2``
    (spec 8.1): its numbers are those of ``'euclid'``, bit for bit."""
    q_pids, g_pids = np.arange(9) % 5, np.arange(30) % 5
    q_cams, g_cams = np.zeros(9, int), np.ones(30, int)
    results = evaluate_features_multi(
        unit(9, 3), unit(30, 4), q_pids, g_pids, q_cams, g_cams,
        build_gmn(fuse_beta=0.0).scorers())
    fused, euclid = results['fused'], results['euclid']
    assert fused.mAP == euclid.mAP and fused.mINP == euclid.mINP
    np.testing.assert_array_equal(fused.cmc, euclid.cmc)


# ------------------------------------------------------------- defects


def test_fused_with_beta_one_is_refused_for_mnet():
    """A user sets ``fuse_beta=1`` (the pure M-Net end of the fused
    mode): ``d = 1 - sigmoid(z)`` is strictly decreasing in ``z``, so by
    spec 8.1 it ranks exactly as ``'mnet'`` (``-z``). In fp32
    ``sigmoid(-z)`` is exactly 1.0 for every z below about -17, the usual
    logit of an easy negative and of a hard positive: all those pairs
    tied and were ordered by gallery index, so ``reid/fused/mAP`` (and
    mINP, R<k>) differed from ``reid/mnet/mAP`` and from the brute-force
    ranking by ``-z`` (25.52 vs 25.24 here). No fp32 value can hold both
    ends of that order, so mmreid refuses beta = 1 and names ``'mnet'``,
    which gives it; ``'mnet'`` itself matches brute force on these
    logits."""
    q_pids, g_pids = np.arange(9) % 5, np.arange(30) % 5
    q_cams, g_cams = np.zeros(9, int), np.ones(30, int)
    query, gallery = unit(9, 3), unit(30, 4)
    model = build_gmn()
    z = reference_logits(model, query, gallery)
    assert (z < -17).any()  # pairs the M-Net calls clearly different
    ref = reference_metrics(-z.numpy(), q_pids, g_pids, q_cams, g_cams)
    results = evaluate_features_multi(query, gallery, q_pids, g_pids, q_cams,
                                      g_cams, model.scorers())
    assert_same_metrics(results['mnet'], ref, 'mnet')
    with pytest.raises(ValueError, match="fuse_beta=1 .*distance='mnet'"):
        build_gmn(fuse_beta=1.0)
    with pytest.raises(ValueError, match="distance='mnet'"):
        PairDistanceOptions(distance='fused', fuse_beta=1)
    build_gmn(fuse_beta=0.999)  # the fused mode, with its Euclidean term


def test_decomposition_check_covers_check_queries_with_one_row_chunks():
    """A user keeps ``check_queries=4`` and sets ``max_logit_error`` for
    un-normalised features (``pair_norm='raw'``, a common component), and
    evaluates with a small ``ReIDMetric(memory_budget_mb=...)``. The doc
    (``GMNReID`` ``check_queries``: "queries per gallery on which the
    decomposed form is checked against the direct one") and spec 8.3
    ("validate against the direct form on a query subset") promise that
    4 queries are checked and that the direct form scores the gallery
    when max |dz| on them exceeds the bound. The scorer checks only the
    first rows of the first query chunk it is called with: one query
    when the metric ranks one query at a time. The log reads "on 1
    queries", the decomposed form is kept although the checked subset of
    4 queries exceeds the bound, and the numbers depend on the metric's
    memory budget."""
    from mmreid.evaluation.functional import mnet_pair_logits
    query, gallery = unit(6, 31) + 1.0, unit(40, 32) + 1.0
    params = build_gmn().head.mnet.folded_params()
    direct = mnet_pair_logits(query[:4], gallery, **params, method='direct')
    decomposed = mnet_pair_logits(
        query[:4], gallery, **params, method='decomposed')
    errors = (direct - decomposed).abs().amax(1)
    # the bound lies between the first query's error and the largest one
    assert errors[0] < errors.max()
    bound = float(errors[0] + errors.max()) / 2
    q_pids, g_pids = np.arange(6) % 4, np.arange(40) % 4
    q_cams, g_cams = np.zeros(6, int), np.ones(40, int)
    checks = {}
    for budget in (256, 0.001):  # whole query set / one query per chunk
        model = build_gmn(check_queries=4, max_logit_error=bound)
        metric = ReIDMetric(memory_budget_mb=budget)
        scorers = model.scorers()
        metric.set_scorers(scorers)
        metric.compute_metrics(
            records(query, gallery, q_pids, g_pids, q_cams, g_cams))
        checks[budget] = scorers['mnet'].last_check
    assert checks[256]['num_queries'] == 4
    assert checks[256]['method'] == 'direct'
    assert checks[0.001]['num_queries'] == 4, checks[0.001]['message']
    assert checks[0.001]['method'] == 'direct', checks[0.001]['message']


def test_identical_gallery_items_tie_when_the_gallery_is_split():
    """A user lowers ``test_cfg.memory_budget_mb`` (a big gallery, or
    ``method='direct'``, whose blocks are ~26k pairs at the default 256
    MiB on D=2048, H=512): the scorer scores the gallery in column
    blocks. Two gallery items with the same features (a duplicated image
    of two labels) have, by definition, the same M-Net logit, so the
    ranking's tie policy (stable: gallery order) orders them, and the
    project promises it ("bit-identical gallery features tie exactly,
    wherever their columns fall in the GEMMs"). With column blocks the
    twins get logits one ulp apart, the later twin (the positive here)
    jumps ahead of its negative twin, and ``reid/mnet/mAP`` rises above
    the brute-force value, differently for each budget. Here 160 items
    are scored in blocks of 75 or 77: the last block of 10 or 6 items
    went through another GEMM kernel. Galleries of fewer items than a
    GEMM's fewest are checked too (one block, padded)."""
    for twins, blocks in ((80, dict(decomposed=75, direct=77)),
                          (5, dict(decomposed=None, direct=None))):
        base, gallery, g_pids = twin_gallery(twins, 17)
        num_q = min(twins, 10)
        query = F.normalize(base[:num_q] + 0.3 * unit(num_q, 99), dim=1)
        q_pids, q_cams = np.arange(num_q), np.zeros(num_q, int)
        g_cams = np.ones(len(gallery), int)
        labels = (q_pids, g_pids, q_cams, g_cams)
        z = reference_logits(build_gmn(), query, gallery)
        ref = reference_metrics(-z.numpy(), *labels)
        for method, columns in blocks.items():
            budget = (256 if columns is None else budget_for_columns(
                method, columns))
            model = build_gmn(
                method=method, memory_budget_mb=budget, check_queries=0)
            dist = model.scorers()['mnet'](query, gallery)
            torch.testing.assert_close(
                dist[:, :twins], dist[:, twins:], rtol=0, atol=0)
            result = evaluate_features_multi(query, gallery, *labels,
                                             model.scorers())['mnet']
            assert_same_metrics(result, ref, f'{method}, {budget} MiB')
