# GMN (Qi et al., arXiv:2306.11991) on the SynthReID quick-start recipe:
# bot_r18_synthreid.py (ResNet-18 from scratch, 64x32, P=8 x K=4, Adam 8
# epochs) plus the M-Net on sample-pair features, L_gmn, DP after a warm-up
# and the PIC loss (_base_/models/gmn_r18_synthreid.py). The comparison row
# is configs/baseline/bot_r18_synthreid.py. SynthReID v2 (four targets):
# gmn_r18_synthreid-v2.py.
_base_ = [
    '../_base_/models/gmn_r18_synthreid.py',
    '../_base_/datasets/synthreid_v1.py',
    '../_base_/schedules/synthreid_adam_8e.py',
    '../_base_/default_runtime.py',
]

# The base's start-up checks and progress bar are default_hooks, so this
# list only adds GMN's hook.
custom_hooks = [
    dict(type='GMNDPWarmupHook'),  # E_dp from model.head.dp.warmup_epochs
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=8))
