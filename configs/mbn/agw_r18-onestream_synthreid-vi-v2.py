# One-stream ablation of agw_r18_synthreid-vi-v2.py: a plain ResNet-18 (one
# stem shared by both modalities, no non-local blocks) with the AGW neck,
# head and losses. Without modality-specific stems the shared layers meet
# the whole input gap between the modalities; the MBN paper's one-stream
# experiments put MBN in every norm layer
# (mbn-agw_r18-onestream_synthreid-vi-v2.py).
_base_ = ['./agw_r18_synthreid-vi-v2.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='ReIDResNet',
        depth=18,
        last_stride=1,
        norm_cfg=dict(type='BN'),
        init_cfg=None))
