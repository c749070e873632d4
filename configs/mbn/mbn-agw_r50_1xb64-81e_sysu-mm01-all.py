# MBN-AGW on SYSU-MM01 all-search: the AGW config with Modality Batch
# Normalization in the shared stages (every bn1/bn2/bn3 and downsample.1 of
# layer1-4) and the non-local W norms; the modality-specific stems keep
# plain BN. Shared affine, per-modality running statistics, each test
# sample normalised with its own modality's statistics.
_base_ = [
    '../_base_/models/agw_r50.py',
    '../_base_/datasets/sysu_mm01.py',
    '../_base_/schedules/agw_sgd_81e.py',
    '../_base_/default_runtime.py',
]

# AGW's transforms (PIL Lanczos to 288x144, flip, pad 10 + random crop, no
# random erasing) come from the dataset file.
model = dict(
    backbone=dict(
        norm_cfg=dict(
            type='MBN',
            num_modalities=2,
            share_affine=True,
            eval_stats='modality')),
    head=dict(num_classes=395),
    # mbn_in_neck (ablation; off by default):
    # head=dict(num_classes=395, norm_cfg=dict(type='MBN', dims=1)),
)
randomness = dict(seed=0)
