# MBN twin of agw_r18_synthreid-vi-v2.py: Modality Batch Normalization in
# the shared stages and the non-local W norms; the stems keep plain BN.
# Everything else (data, schedule, steps) is the twin's.
_base_ = [
    '../_base_/models/agw_r18_synthreid_vi.py',
    '../_base_/datasets/synthreid_vi.py',
    '../_base_/schedules/synthreid_vi_adam_12e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(
        norm_cfg=dict(
            type='MBN',
            num_modalities=2,
            share_affine=True,
            eval_stats='modality')))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval={{_base_.max_epochs}}))
randomness = dict(seed=0)
