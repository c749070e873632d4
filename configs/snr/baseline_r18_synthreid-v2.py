# Baseline of the SNR SynthReID v2 evidence: the quick-start BoT recipe with
# ResNet-18 (random init), trained on d0-d2 and evaluated in one run on the
# unseen style d3, its style-only control d3-d0style, the held-out d0 and
# d0-d3style (see _base_/datasets/synthreid.py). Same model
# and schedule as baseline_r18_synthreid.py; snr_r18_synthreid-v2.py
# changes only the backbone plugins and the auxiliary loss.
_base_ = [
    '../_base_/models/bot_r50.py',
    '../_base_/datasets/synthreid.py',
    '../_base_/schedules/synthreid_adam_8e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(depth=18, init_cfg=None),
    head=dict(in_channels=512, num_classes=450))  # 3 domains x 150 ids
val_cfg = dict(type='MultiTargetValLoop', targets={{_base_.val_targets}})
test_cfg = dict(type='MultiTargetTestLoop', targets={{_base_.test_targets}})
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=8))
