# AGW baseline on SYSU-MM01 indoor-search single-shot (gallery cams 1, 2);
# the training is that of the all-search config (the mode only changes the
# test gallery).
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
model = dict(head=dict(num_classes=395))
randomness = dict(seed=0)
