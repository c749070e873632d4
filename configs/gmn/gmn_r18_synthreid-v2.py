# GMN on SynthReID v2: the model of gmn_r18_synthreid.py
# (_base_/models/gmn_r18_synthreid.py) trained on d0-d2 and evaluated in one
# run on the four targets of _base_/datasets/synthreid.py
# (d3, d3-d0style, d0, d0-d3style; about 5,200 queries each on v2.1, the
# default since 2026-12-04: the M-Net ranks about 5,200 x 10,500 pairs per
# target), every target
# ranked by the M-Net, by Euclidean distance and fused. The comparison row
# is configs/snr/baseline_r18_synthreid-v2.py (same data and schedule,
# without the M-Net, DP and PIC).
_base_ = [
    '../_base_/models/gmn_r18_synthreid.py',
    '../_base_/datasets/synthreid.py',
    '../_base_/schedules/synthreid_adam_8e.py',
    '../_base_/default_runtime.py',
]

val_cfg = dict(type='MultiTargetValLoop', targets={{_base_.val_targets}})
test_cfg = dict(type='MultiTargetTestLoop', targets={{_base_.test_targets}})

# The base's start-up checks and progress bar are default_hooks, so this
# list only adds GMN's hook.
custom_hooks = [
    dict(type='GMNDPWarmupHook'),  # E_dp from model.head.dp.warmup_epochs
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=8))
