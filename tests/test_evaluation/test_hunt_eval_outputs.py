"""Wrong-number hunt: the numbers single- and multi-target evaluation
prints, checked against their definitions (evaluation spec sections 2-4,
7 and 11) with small references written here."""
import numpy as np
import pytest
import torch

from mmreid.engine.runner import merge_target_metrics
from mmreid.evaluation import ReIDMetric
from mmreid.evaluation.functional import (compute_distance, evaluate_rank,
                                          evaluate_verification)
from mmreid.evaluation.results_table import format_results_table
from mmreid.structures import ReIDDataSample


def _samples(query_feats, gallery_feats, q_pids, g_pids, q_camids,
             g_camids):
    """Data samples as mmengine hands them to a metric, query first."""
    feats = list(query_feats) + list(gallery_feats)
    roles = ['query'] * len(query_feats) + ['gallery'] * len(gallery_feats)
    pids = list(q_pids) + list(g_pids)
    camids = list(q_camids) + list(g_camids)
    samples = []
    for idx, (feat, role, pid, camid) in enumerate(
            zip(feats, roles, pids, camids)):
        sample = ReIDDataSample(
            metainfo=dict(
                camid=int(camid),
                role=role,
                dataset='toy',
                img_path=f'toy/{idx:03d}.jpg',
                sample_idx=idx))
        sample.set_gt_label(int(pid))
        sample.set_pred_feature(torch.as_tensor(feat, dtype=torch.float32))
        samples.append(sample.to_dict())
    return samples


def _run(metric, samples):
    metric.process(None, samples)
    return metric.evaluate(len(metric.results))


def _reference(dist, q_pids, g_pids, q_camids, g_camids, tie_policy,
               max_rank):
    """CMC, mAP and mINP by the definitions of spec sections 2-4.

    Per query: drop same-pid-same-camera items (``market`` rule), skip a
    query without a positive, order the rest by (distance, tie key,
    gallery index) with a full sort, and read CMC_q(k) = 1[r_1 <= k],
    AP_q = mean_j j / r_j and INP_q = m / r_m off the positives' ranks.
    """
    cmcs, aps, inps = [], [], []
    for i in range(len(q_pids)):
        kept = np.flatnonzero(~((g_pids == q_pids[i])
                                & (g_camids == q_camids[i])))
        dist_i = dist[i, kept]
        pos = g_pids[kept] == q_pids[i]
        if not pos.any():
            continue
        index = np.arange(len(kept))
        if tie_policy == 'stable':
            order = np.lexsort((index, dist_i))
        elif tie_policy == 'pessimistic':
            order = np.lexsort((index, pos, dist_i))
        else:
            order = np.lexsort((index, ~pos, dist_i))
        ranks = np.flatnonzero(pos[order]) + 1
        cmcs.append(np.arange(1, max_rank + 1) >= ranks[0])
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
        inps.append(len(ranks) / ranks[-1])
    return np.mean(cmcs, axis=0), np.mean(aps), np.mean(inps)


@pytest.mark.parametrize('options', [
    dict(distance='cosine'),
    dict(distance='euclidean', normalize=True)
])
def test_an_all_zero_feature_under_cosine_is_refused(options):
    """A user evaluates with ``ReIDMetric(distance='cosine')`` and one
    query's feature is all zeros (a blank or padded image through a
    ReLU/GAP feature, a dead model output). The cosine of a zero vector
    is undefined (0/0), but mmreid normalises it to the zero vector with
    ``F.normalize``'s eps and scores it at distance 1 from every gallery
    item, a block of ties. The stable tie policy (spec section 4.2) then
    ranks that query's gallery in dataset order, so its R1 is 100 when
    its own identity happens to come first in the gallery and 0 when it
    does not: the printed R1 and mAP are artefacts of the file order,
    not of the model. mmreid refuses what it cannot define (query
    expansion refuses a query cancelled to zero norm); a zero-norm
    feature under a normalised distance should be refused too, naming
    the sample. With ``normalize=True`` (Euclidean of unit features) the
    zero query's distances are 1 up to the rounding of each gallery
    item's norm (0.99999994 for ``[1, 1]``), so rounding noise ranks its
    gallery instead.
    """
    query = [[1.0, 0.0], [0.0, 0.0]]
    gallery = [[0.0, 1.0], [1.0, 0.1], [-1.0, 0.0], [1.0, 1.0]]
    samples = _samples(query, gallery, [0, 1], [1, 0, 1, 2], [0, 0],
                       [1, 1, 1, 1])
    # Now, under cosine: query 1 (all zeros) is tied with the whole
    # gallery, whose first item has its pid, so R1 = 100 is printed; with
    # that item moved to the end of the gallery the same features print
    # R1 = 50.
    with pytest.raises(ValueError) as info:
        _run(ReIDMetric(**options), samples)
    assert "query feature 1 ('toy/001.jpg') has norm 0.0e+00" in \
        str(info.value)
    assert 'gives it no direction (0/0)' in str(info.value)
    # A zero gallery feature is refused the same way, by the functional
    # API too (no image name there); a distance that does not normalise
    # ranks it (its distances are defined).
    gallery[2] = [0.0, 0.0]
    samples = _samples(query[:1], gallery, [0], [1, 0, 1, 2], [0],
                       [1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"gallery feature 2 \('toy/003"):
        _run(ReIDMetric(**options), samples)
    with pytest.raises(ValueError, match='gallery feature 2 has norm'):
        compute_distance(query[:1], gallery, options['distance'],
                         options.get('normalize', False))
    _run(ReIDMetric(distance='euclidean'), samples)


def test_tpr_at_fpr_without_negative_pairs_is_refused():
    """``evaluate_verification`` (``ReIDMetric(verification_fprs=...)``)
    on pairs that are all positives (one identity left in the evaluated
    set, e.g. a debugging subset, or a ``--cfg-options`` that filters the
    gallery): TPR@FPR is defined over the ROC, FPR = FP / N, and with
    N = 0 negative pairs every FPR is 0/0 (sklearn's ``roc_curve`` warns
    that the false positive values are meaningless). mmreid prints
    ``TPR@FPR=1e-04 = 100.00`` anyway, a perfect verification score for
    a trial with nothing to reject. The mirror case, no positive pair
    (the TPR is 0/0), is refused with 'the TPR is undefined'; the
    missing negatives should be refused the same way.
    """
    dist = np.array([[0.1, 0.5], [0.3, 0.2]])
    pids = np.array([0, 0])
    with pytest.raises(ValueError, match='no negative pair .* the FPR is '
                       'undefined'):
        evaluate_verification(
            dist, pids, pids, np.array([0, 0]), np.array([1, 1]),
            fprs=(1e-4, 1e-2))


@pytest.mark.parametrize('tie_policy',
                         ['stable', 'pessimistic', 'optimistic'])
def test_duplicated_gallery_images_tied_with_a_positive(tie_policy):
    """Duplicated gallery images (the same file listed twice, or features
    quantised to equal values) tie exactly with each other and with a
    positive. Each policy orders the tied block as spec section 4.2 says,
    and ``max_rank`` beyond the gallery keeps CMC at 1 past the first
    match (section 3). Checked against a full sort written here, with a
    query whose only match is removed by the camera rule (skipped)."""
    g_pids = np.array([3, 1, 1, 2, 1, 3])
    g_camids = np.array([0, 1, 1, 2, 0, 1])
    q_pids = np.array([1, 3, 2])
    q_camids = np.array([0, 0, 2])
    # Gallery items 1 and 2 are duplicates; 0 and 3 are negatives tied
    # with them for query 0.
    dist = np.array([[0.5, 0.5, 0.5, 0.5, 0.0, 0.9],
                     [0.2, 0.2, 0.2, 0.7, 0.7, 0.2],
                     [0.1, 0.3, 0.3, 0.4, 0.3, 0.3]],
                    dtype=np.float32)
    max_rank = 10
    result = evaluate_rank(
        dist,
        q_pids,
        g_pids,
        q_camids,
        g_camids,
        max_rank=max_rank,
        tie_policy=tie_policy)
    cmc, mean_ap, mean_inp = _reference(
        dist.astype(np.float64), q_pids, g_pids, q_camids, g_camids,
        tie_policy, max_rank)
    assert result.num_valid_query == 2
    assert result.valid_mask.tolist() == [True, True, False]
    np.testing.assert_allclose(result.cmc, cmc)
    assert result.mAP == pytest.approx(mean_ap, abs=1e-12)
    assert result.mINP == pytest.approx(mean_inp, abs=1e-12)


def test_the_mean_row_averages_the_targets_printed():
    """A multi-target run prints one row per target and the mean over
    targets (spec section 7). The mean row of the printed table is the
    plain mean of the targets' rows (not weighted by queries), a split
    target is shown as mean±std over its splits, and counts and split
    values stay out of the mean."""
    target_metrics = {
        'market': {
            'R1': 90.0,
            'mAP': 70.0,
            'num_query': 3368
        },
        'prid': {
            'split0/R1': 20.0,
            'split1/R1': 40.0,
            'R1': 30.0,
            'R1_std': 10.0,
            'split0/mAP': 25.0,
            'split1/mAP': 35.0,
            'mAP': 30.0,
            'mAP_std': 5.0,
            'num_query': 100
        },
    }
    merged = merge_target_metrics(target_metrics, 'mean', {
        'market': ('reid', ),
        'prid': ('dg', )
    }, {
        'market': (True, ),
        'prid': (True, )
    })
    mean = {k: v for k, v in merged.items() if k.startswith('mean/')}
    assert mean == {'mean/R1': 60.0, 'mean/mAP': 50.0}
    lines = format_results_table(merged).splitlines()
    rows = {line.split('|')[0].strip(): line for line in lines[2:]}
    assert set(rows) == {'market', 'prid', 'mean'}
    assert '30.00±10.00' in rows['prid'] and '30.00±5.00' in rows['prid']
    assert '60.00' in rows['mean'] and '50.00' in rows['mean']


def _own_image_case(seed=0):
    """Six queries and twelve gallery items of three pids; query 0's file
    is also gallery item 0 (the same features: one image, listed in both
    roles)."""
    gen = np.random.default_rng(seed)
    query = gen.normal(size=(6, 8)).astype(np.float32)
    gallery = gen.normal(size=(12, 8)).astype(np.float32)
    gallery[0] = query[0]
    q_pids, g_pids = np.arange(6) % 3, np.arange(12) % 3
    q_camids, g_camids = np.zeros(6, int), np.ones(12, int)
    return query, gallery, q_pids, g_pids, q_camids, g_camids


@pytest.mark.parametrize('junk_rule,copy_camid', [('none', 0), ('none', 1),
                                                  ('market', 1)])
def test_a_query_listed_in_the_gallery_is_refused(junk_rule, copy_camid):
    """A user's own dataset lists one image as a query and as a gallery
    item. No protocol ranks an image against itself, and the report and
    ranked lists leave it out of its query's gallery; ``ReIDMetric``
    ranked the copy at distance 0, a true match at rank 1, so R1 and mAP
    counted the query as found whatever the model. Unless the junk rule
    removes the copy from its query's gallery (same pid and camid under
    ``'market'``), the metric refuses, naming the image."""
    query, gallery, *labels = _own_image_case()
    labels[3][0] = copy_camid
    samples = _samples(query, gallery, *labels)
    samples[6]['img_path'] = samples[0]['img_path']
    metric = ReIDMetric(junk_rule=junk_rule)
    with pytest.raises(
            ValueError, match=r"'toy/000\.jpg' is a query and a gallery "
            r"item .*junk_rule='" + junk_rule):
        _run(metric, samples)


def test_a_query_listed_in_the_gallery_under_its_junk_rule_is_counted():
    """Listed in both roles with the same pid and camid, the copy is
    removed from its query's gallery by the ``'market'`` rule: the numbers
    are those of the reference, where it is junk."""
    query, gallery, q_pids, g_pids, q_camids, g_camids = _own_image_case()
    g_camids[0] = q_camids[0]
    samples = _samples(query, gallery, q_pids, g_pids, q_camids, g_camids)
    samples[6]['img_path'] = samples[0]['img_path']
    metrics = _run(ReIDMetric(junk_rule='market'), samples)
    dist = compute_distance(
        torch.from_numpy(query), torch.from_numpy(gallery),
        'euclidean').numpy()
    cmc, mAP, _ = _reference(dist, q_pids, g_pids, q_camids, g_camids,
                             'stable', 5)
    assert metrics['reid/mAP'] == pytest.approx(100 * mAP)
    assert metrics['reid/R1'] == pytest.approx(100 * cmc[0])
