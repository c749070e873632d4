# Baseline of the SNR SynthReID ablations: the quick-start BoT recipe with
# ResNet-18 (random init) on SynthReID, the same merged config as
# configs/baseline/bot_r18_synthreid.py. The SNR configs of this folder
# change only the backbone plugins and the auxiliary loss.
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
