# The BoT recipe with ResNet-18 (random init: nothing is downloaded) on
# SynthReID v1, the quick-start job before SynthReID v2 (the quick start is
# now configs/snr/snr_r18_synthreid-v2.py). Trains on source domains 0-2 and
# evaluates on the unseen-style domain 3, on 2 CPU cores in a few minutes.
_base_ = [
    '../_base_/models/bot_r50.py',
    '../_base_/datasets/synthreid_v1.py',
    '../_base_/schedules/synthreid_adam_8e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(depth=18, init_cfg=None),
    head=dict(in_channels=512, num_classes=450))  # 3 domains x 150 ids

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=8))
