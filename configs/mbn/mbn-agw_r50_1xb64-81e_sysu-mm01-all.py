# MBN-AGW on SYSU-MM01 all-search: the AGW config with Modality Batch
# Normalization in the shared stages (every bn1/bn2/bn3 and downsample.1 of
# layer1-4) and the non-local W norms; the modality-specific stems keep
# plain BN. Shared affine, per-modality running statistics, each test
# sample normalised with its own modality's statistics.
_base_ = ['./agw_r50_1xb64-81e_sysu-mm01-all.py']

model = dict(
    backbone=dict(
        norm_cfg=dict(
            type='MBN',
            num_modalities=2,
            share_affine=True,
            eval_stats='modality')),
    # mbn_in_neck (ablation; off by default):
    # head=dict(norm_cfg=dict(type='MBN', dims=1)),
)
