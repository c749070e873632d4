# Baseline row of GMN, Protocol-2 m-cs-c3-to-ms: the same backbone, data and
# schedule with L_gmn = L_pic = 0 (the plain BoT model, ReIDModel) and the
# Euclidean test (specs/gmn.md section 10) on GMN's retrieval feature, the
# L2-normalised post-BN feature (section 2), as GMN's 'euclid' mode ranks.
_base_ = [
    '../_base_/models/bot_r50.py',
    '../_base_/datasets/dg_loo_msmt17.py',
    '../_base_/schedules/gmn_adam_60e.py',
    '../_base_/default_runtime.py',
]

# Test distance: ||f_q - f_g||^2 on L2-normalised features, GMN's 'euclid'
# (specs/gmn.md section 8.1), so Baseline vs GMN compares like with like.
# The model's distance, cosine, ranks the same way, so rank_gallery agrees.
model = dict(
    head=dict(num_classes={{_base_.num_classes_p2}}), distance='cosine')
val_evaluator = dict(type='ReIDMetric', distance='sqeuclidean', normalize=True)
test_evaluator = val_evaluator
