# MBN-AGW on RegDB, thermal -> visible (one model per trial): the AGW
# config agw_r50_1xb64-81e_regdb-t2v.py with Modality Batch Normalization
# in the shared stages and the non-local W norms (see
# mbn-agw_r50_1xb64-81e_sysu-mm01-all.py); the trial option and the
# 10-trial mean (tools/analysis_tools/regdb_trials.py) as there.
_base_ = [
    '../_base_/models/agw_r50.py',
    '../_base_/datasets/regdb.py',
    '../_base_/schedules/agw_sgd_81e.py',
    '../_base_/default_runtime.py',
]

trial = 1
direction = 't2v'
# AGW's transforms (PIL Lanczos to 288x144, flip, pad 10 + random crop, no
# random erasing) come from the dataset file.
train_dataloader = dict(dataset=dict(trial=trial))
val_dataloader = dict(dataset=dict(trial=trial, direction=direction))
test_dataloader = val_dataloader
val_evaluator = dict(direction=direction)
test_evaluator = val_evaluator
model = dict(
    backbone=dict(
        norm_cfg=dict(
            type='MBN',
            num_modalities=2,
            share_affine=True,
            eval_stats='modality')),
    head=dict(num_classes=206))
randomness = dict(seed=0)
