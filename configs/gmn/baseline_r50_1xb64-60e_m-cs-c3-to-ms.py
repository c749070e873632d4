# Baseline row of GMN, Protocol-2 m-cs-c3-to-ms: the same backbone, data and
# schedule with L_gmn = L_pic = 0 (the plain BoT model, ReIDModel) and the
# Euclidean test distance on the post-BN feature (not L2-normalised; the
# ranking of Euclidean on L2-normalised features is GMN's 'euclid' mode).
_base_ = [
    '../_base_/models/bot_r50.py',
    '../_base_/datasets/dg_loo_msmt17.py',
    '../_base_/schedules/gmn_adam_60e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes={{_base_.num_classes_p2}}))
