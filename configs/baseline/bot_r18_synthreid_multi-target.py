# The quick-start recipe evaluated on several targets in one run: the
# unseen-style domain d3 and the held-out identities of training domain d0,
# each reported under its own prefix (d3/mAP, d0/mAP) plus their mean.
_base_ = [
    '../_base_/models/bot_r50.py',
    '../_base_/datasets/synthreid_v1_multi_target.py',
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
