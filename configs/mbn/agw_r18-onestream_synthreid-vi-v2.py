# One-stream variant of agw_r18_synthreid-vi-v2.py: a plain ResNet-18 (one
# stem shared by both modalities, no non-local blocks) with the AGW neck,
# head and losses, and the same schedule, on SynthReID-vi v2.1 (where it was
# measured; the two-stream demo reads v2.2 since 2026-12-08). Without
# modality-specific stems the shared layers meet the whole input gap
# between the modalities; the MBN paper's one-stream experiments put MBN in
# every norm layer (mbn-agw_r18-onestream_synthreid-vi-v2.py).
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
        norm_cfg=dict(type='BN'),
        init_cfg=None))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval={{_base_.max_epochs}}))
randomness = dict(seed=0)
