# AGW on RegDB, thermal -> visible (thermal query), one model per trial
# (1..10); the training is that of the visible -> thermal config, only the
# test direction changes. Change `trial` here, or pass
#   --cfg-options train_dataloader.dataset.trial=T \
#       val_dataloader.dataset.trial=T test_dataloader.dataset.trial=T
# The 10-trial mean, both directions: tools/analysis_tools/regdb_trials.py
# (on the -v2t config: one training per trial gives both directions).
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
model = dict(head=dict(num_classes=206))
randomness = dict(seed=0)
