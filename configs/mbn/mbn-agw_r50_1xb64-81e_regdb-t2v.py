# MBN-AGW on RegDB, thermal -> visible (one model per trial).
_base_ = ['./agw_r50_1xb64-81e_regdb-t2v.py']

model = dict(
    backbone=dict(
        norm_cfg=dict(
            type='MBN',
            num_modalities=2,
            share_affine=True,
            eval_stats='modality')))
