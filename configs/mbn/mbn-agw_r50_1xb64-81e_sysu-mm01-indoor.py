# MBN-AGW on SYSU-MM01 indoor-search: the AGW indoor-search config
# (agw_r50_1xb64-81e_sysu-mm01-indoor.py) with MBN in the shared stages
# (see mbn-agw_r50_1xb64-81e_sysu-mm01-all.py).
_base_ = [
    '../_base_/models/agw_r50.py',
    '../_base_/datasets/sysu_mm01.py',
    '../_base_/schedules/agw_sgd_81e.py',
    '../_base_/default_runtime.py',
]

# AGW's transforms (PIL Lanczos to 288x144, flip, pad 10 + random crop, no
# random erasing) come from the dataset file.
mode = 'indoor'
val_dataloader = dict(dataset=dict(mode=mode))
test_dataloader = val_dataloader
val_evaluator = dict(mode=mode)
test_evaluator = val_evaluator
model = dict(
    backbone=dict(
        norm_cfg=dict(
            type='MBN',
            num_modalities=2,
            share_affine=True,
            eval_stats='modality')),
    head=dict(num_classes=395))
randomness = dict(seed=0)
