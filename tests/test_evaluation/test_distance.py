import numpy as np
import pytest
import torch

from mmreid.evaluation.functional import GalleryDistance, compute_distance


def features(seed=0, num=7, dim=5, scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num, dim, generator=generator) * scale


def test_euclidean_matches_float64_reference():
    query, gallery = features(0), features(1, num=9)
    expected = torch.cdist(query.double(), gallery.double())
    dist = compute_distance(query, gallery)
    assert dist.dtype == torch.float32 and dist.shape == (7, 9)
    torch.testing.assert_close(dist.double(), expected, atol=1e-5, rtol=0)
    sq_dist = compute_distance(query, gallery, 'sqeuclidean')
    torch.testing.assert_close(
        sq_dist.double(), expected**2, atol=1e-4, rtol=1e-5)


def test_squared_distance_is_clamped_at_zero():
    # Large norms make |q|^2 + |g|^2 - 2 q.g of identical rows round to
    # small nonzero values of either sign; negatives must not survive.
    query = features(3, num=50, dim=64, scale=1000.)
    dist = compute_distance(query, query, 'sqeuclidean')
    assert (dist >= 0).all()
    assert (compute_distance(query, query).diagonal() >= 0).all()


def test_cosine_and_normalize():
    query, gallery = features(4), features(5, num=9)
    cos = torch.nn.functional.cosine_similarity(
        query.double()[:, None], gallery.double()[None], dim=2)
    dist = compute_distance(query, gallery, 'cosine')
    torch.testing.assert_close(dist.double(), 1 - cos, atol=1e-6, rtol=0)
    # On unit vectors |q - g|^2 = 2 - 2 cos.
    sq_dist = compute_distance(query, gallery, 'sqeuclidean', normalize=True)
    torch.testing.assert_close(
        sq_dist.double(), 2 - 2 * cos, atol=1e-5, rtol=0)
    # Cosine ignores the scale of the features.
    torch.testing.assert_close(
        compute_distance(query * 3, gallery, 'cosine'), dist)


def test_numpy_float64_input_gives_fp32():
    query, gallery = features(6).double().numpy(), features(7).numpy()
    dist = compute_distance(query, gallery)
    assert isinstance(dist, torch.Tensor) and dist.dtype == torch.float32
    expected = np.sqrt(((query[:, None] - gallery[None])**2).sum(-1))
    np.testing.assert_allclose(dist.numpy(), expected, atol=1e-5)


def test_autocast_is_disabled():
    query, gallery = features(8, dim=33), features(9, num=11, dim=33)
    expected = compute_distance(query, gallery)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        dist = compute_distance(query, gallery)
    assert dist.dtype == torch.float32
    torch.testing.assert_close(dist, expected, atol=0, rtol=0)


def test_cpu_matmul_precision_setting_does_not_change_distances():
    """torch.set_float32_matmul_precision('medium') makes oneDNN compute
    fp32 matmuls in bf16 on the CPU; distances stay true fp32, and the
    setting is restored after."""
    query = features(12, num=64, dim=256) * 8
    gallery = features(13, num=300, dim=256) * 8
    expected = {
        name: compute_distance(query, gallery, name)
        for name in ('euclidean', 'cosine')
    }
    reference = GalleryDistance(gallery, 'euclidean')(query)
    previous = torch.get_float32_matmul_precision()
    mkldnn = torch.backends.mkldnn.matmul
    try:
        torch.set_float32_matmul_precision('medium')
        before = mkldnn.fp32_precision
        for name, value in expected.items():
            torch.testing.assert_close(
                compute_distance(query, gallery, name), value, atol=0, rtol=0)
        torch.testing.assert_close(
            GalleryDistance(gallery, 'euclidean')(query),
            reference,
            atol=0,
            rtol=0)
        assert mkldnn.fp32_precision == before
    finally:
        torch.set_float32_matmul_precision(previous)


@pytest.mark.cuda
def test_cuda_tf32_is_off_and_restored():
    matmul = torch.backends.cuda.matmul
    previous = matmul.allow_tf32
    try:
        matmul.allow_tf32 = True
        query = features(10, num=64, dim=256).cuda()
        gallery = features(11, num=80, dim=256).cuda()
        dist = compute_distance(query, gallery)
        assert matmul.allow_tf32 is True
        expected = compute_distance(query.cpu(), gallery.cpu())
        torch.testing.assert_close(dist.cpu(), expected, atol=1e-4, rtol=0)
    finally:
        matmul.allow_tf32 = previous


@pytest.mark.parametrize('metric', ['euclidean', 'sqeuclidean', 'cosine'])
@pytest.mark.parametrize('normalize', [False, True])
def test_gallery_distance_matches_float64_without_copying(metric, normalize):
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(23, 16, generator=generator)
    gallery = torch.randn(70, 16, generator=generator) * 3
    # A zero row: a plain distance ranks it; a normalised one refuses it
    # (its direction is 0/0), so there a tiny row with a direction.
    gallery[7] = 0
    if normalize or metric == 'cosine':
        with pytest.raises(ValueError, match='gallery feature 7 has norm 0'):
            GalleryDistance(gallery, metric, normalize)
        gallery[7] = 1e-3
    distance = GalleryDistance(gallery, metric, normalize)
    # The gallery is used in place: no (G, D) copy is held (a gallery of
    # fewer than MIN_GEMM_ROWS items is padded, a copy of at most that).
    assert distance.gallery_t.data_ptr() == gallery.data_ptr()
    q, g = query.double(), gallery.double()
    if normalize or metric == 'cosine':
        q = torch.nn.functional.normalize(q, dim=1)
        g = torch.nn.functional.normalize(g, dim=1)
    if metric == 'cosine':
        expected = 1 - q @ g.t()
    else:
        expected = torch.cdist(q, g)**2
        if metric == 'euclidean':
            expected = expected.sqrt()
    for start in range(0, 23, 5):
        torch.testing.assert_close(
            distance(query[start:start + 5]).double(),
            expected[start:start + 5],
            atol=1e-4,
            rtol=1e-5)
    with pytest.raises(ValueError, match='query dim 8 != gallery dim 16'):
        distance(query[:, :8])
    with pytest.raises(ValueError, match='distance must be one of'):
        GalleryDistance(gallery, 'manhattan')


def test_invalid_inputs():
    query = features(0)
    with pytest.raises(ValueError, match='distance must be one of'):
        compute_distance(query, query, 'manhattan')
    with pytest.raises(ValueError, match='dim'):
        compute_distance(query, features(1, dim=4))
    with pytest.raises(ValueError, match='2-D'):
        compute_distance(query[0], query)


def test_metric_keyword_is_a_deprecated_alias_of_distance():
    """Issue 17.2: ``distance`` is the word in the functional API too."""
    from mmreid.evaluation.functional import (evaluate_features,
                                              evaluate_verification_features)
    torch.manual_seed(0)
    query, gallery = torch.randn(4, 8), torch.randn(6, 8)
    q_pids, g_pids = torch.arange(4), torch.arange(6)
    labels = (q_pids, g_pids, q_pids * 0, g_pids * 0 + 1)
    expected = compute_distance(query, gallery, distance='cosine')
    with pytest.warns(FutureWarning, match=r'use distance='):
        old = compute_distance(query, gallery, metric='cosine')
    assert torch.equal(old, expected)
    with pytest.warns(FutureWarning, match=r'GalleryDistance\(metric='):
        assert torch.equal(
            GalleryDistance(gallery, metric='cosine')(query), expected)
    new = evaluate_features(query, gallery, *labels, distance='cosine')
    with pytest.warns(FutureWarning, match=r'evaluate_features\(metric'):
        old = evaluate_features(query, gallery, *labels, metric='cosine')
    assert old.mAP == new.mAP and torch.equal(
        torch.as_tensor(old.cmc), torch.as_tensor(new.cmc))
    with pytest.warns(FutureWarning):
        evaluate_verification_features(
            query, gallery, *labels, metric='cosine', fprs=(0.5, ))
    with pytest.raises(TypeError, match='got both distance= and'):
        compute_distance(query, gallery, distance='cosine', metric='cosine')


@pytest.mark.parametrize('metric', ['euclidean', 'cosine'])
def test_a_querys_distances_do_not_depend_on_its_chunk(metric):
    """The same query gets the same bits whatever chunk it is scored in:
    one row, a short last chunk, or the whole set (BLAS kernels for a few
    rows round differently)."""
    query = features(14, num=150, dim=512)
    gallery = features(15, num=1000, dim=512)
    scorer = GalleryDistance(gallery, metric)
    whole = scorer(query)
    for chunk in (1, 3, 7, 17, 33, 100):
        chunked = torch.cat([
            scorer(query[start:start + chunk])
            for start in range(0, len(query), chunk)
        ])
        torch.testing.assert_close(
            chunked, whole, atol=0, rtol=0, msg=f'chunk {chunk}')


@pytest.mark.parametrize('metric', ['euclidean', 'sqeuclidean', 'cosine'])
def test_identical_gallery_rows_get_identical_distances(metric):
    """Two gallery items with the same features tie exactly, whatever
    their columns: BLAS computes the columns of a GEMM of a few columns
    with other kernels, which left two copies 1 ulp apart in galleries of
    5-11 items, and the tie policy could not order the tie it did not
    see."""
    for num in range(2, 40):
        for dim in (4, 16, 64, 512):
            gallery = features(num * 1000 + dim, num=num, dim=dim)
            gallery[-1] = gallery[0]
            gallery[num // 2] = gallery[0]
            dist = GalleryDistance(gallery, metric)(
                features(num + dim, num=5, dim=dim))
            for column in (num // 2, num - 1):
                assert torch.equal(dist[:, 0], dist[:, column]), \
                    f'{num} items of {dim} dims, column {column}'


def test_a_copy_of_the_positive_ties_with_it():
    """The fuzz case: a negative with the positive's features, two columns
    later, ties with it; the optimistic and stable policies rank the
    positive first, in either gallery order."""
    from mmreid.evaluation.functional import evaluate_features
    query = np.array([[1, -1, -2, 2]], np.float32)
    row, other = [1, -1, -1, -1], [9, 9, 9, 9]
    gallery = np.array([other, other, row, other, row], np.float32)
    g_pids, g_cams = np.array([2, 2, 1, 2, 3]), np.ones(5, int)
    for order in (slice(None), slice(None, None, -1)):
        for policy, r1, ap in (('optimistic', 1, 1), ('stable', 1, 1),
                               ('pessimistic', 0, 0.5)):
            if order.step == -1 and policy == 'stable':
                r1, ap = 0, 0.5  # the copy's index comes first now
            result = evaluate_features(
                query,
                gallery[order].copy(), [1],
                g_pids[order].copy(), [0],
                g_cams[order].copy(),
                distance='cosine',
                tie_policy=policy)
            assert (result.cmc[0], result.mAP) == (r1, ap), (policy, order)


@pytest.mark.parametrize('metric', ['euclidean', 'cosine'])
def test_normalisation_does_not_depend_on_the_feature_scale(metric):
    """L2 normalisation is F.normalize's ``x / max(|x|, 1e-12)``: features
    of norm 1e-5 (a weakly activated model) still become unit vectors, on
    both sides. A larger eps would leave them short, and their cosine
    distances would all read about 1."""
    query, gallery = features(14), features(15, num=9)
    expected = compute_distance(query, gallery, metric, normalize=True)
    for q_scale, g_scale in ((1e-5, 1.0), (1.0, 1e-5), (1e-5, 1e-5)):
        dist = compute_distance(query * q_scale, gallery * g_scale, metric,
                                normalize=True)
        torch.testing.assert_close(dist, expected, atol=1e-5, rtol=0)
