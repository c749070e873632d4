# MBN twin of agw_r18-onestream_synthreid-vi-v2.py: Modality Batch
# Normalization in every norm layer of the one-stream ResNet-18 (the stem
# included), as in the MBN paper's one-stream experiments.
_base_ = ['./agw_r18_synthreid-vi-v2.py']

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
