# MBN-AGW on RegDB, visible -> thermal (one model per trial; see
# agw_r50_1xb64-81e_regdb-v2t.py for the trial option).
_base_ = ['./agw_r50_1xb64-81e_regdb-v2t.py']

model = dict(
    backbone=dict(
        norm_cfg=dict(
            type='MBN',
            num_modalities=2,
            share_affine=True,
            eval_stats='modality')))
