# MBN-AGW on SYSU-MM01 indoor-search: the AGW indoor-search config with MBN
# in the shared stages (see mbn-agw_r50_1xb64-81e_sysu-mm01-all.py).
_base_ = ['./agw_r50_1xb64-81e_sysu-mm01-indoor.py']

model = dict(
    backbone=dict(
        norm_cfg=dict(
            type='MBN',
            num_modalities=2,
            share_affine=True,
            eval_stats='modality')))
