# MBN twin of agw_r18_synthreid-vi.py: Modality Batch Normalization in the
# shared stages and the non-local W norms; the stems keep plain BN.
# Everything else is the twin's.
_base_ = [
    '../_base_/models/agw_r18_synthreid_vi.py',
    '../_base_/datasets/synthreid_vi_v1.py',
    '../_base_/schedules/synthreid_adam_8e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(
        norm_cfg=dict(
            type='MBN',
            num_modalities=2,
            share_affine=True,
            eval_stats='modality')))
# The Adam schedule's base is its 32-image batch; this demo trains 64
# (synthreid_vi_v1.py), so --auto-scale-lr keeps lr on one process.
auto_scale_lr = dict(base_batch_size=64)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=8))
randomness = dict(seed=0)
