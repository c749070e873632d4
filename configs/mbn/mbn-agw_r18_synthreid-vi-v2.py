# MBN twin of agw_r18_synthreid-vi-v2.py: Modality Batch Normalization in
# the shared stages and the non-local W norms; the stems keep plain BN.
_base_ = ['./agw_r18_synthreid-vi-v2.py']

model = dict(
    backbone=dict(
        norm_cfg=dict(
            type='MBN',
            num_modalities=2,
            share_affine=True,
            eval_stats='modality')))
