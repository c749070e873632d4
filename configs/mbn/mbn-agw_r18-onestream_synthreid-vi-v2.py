# MBN twin of agw_r18-onestream_synthreid-vi-v2.py: Modality Batch
# Normalization in every norm layer of the one-stream ResNet-18 (the stem
# included), as in the MBN paper's one-stream experiments. Everything else
# is the twin's (SynthReID-vi v2.1 included).
_base_ = [
    '../_base_/models/agw_r18_synthreid_vi.py',
    '../_base_/datasets/synthreid_vi_v2.1.py',
    '../_base_/schedules/synthreid_vi_adam_12e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='ReIDResNet',
        depth=18,
        last_stride=1,
        norm_cfg=dict(
            type='MBN',
            num_modalities=2,
            share_affine=True,
            eval_stats='modality'),
        init_cfg=None))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval={{_base_.max_epochs}}))
randomness = dict(seed=0)
