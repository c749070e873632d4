# AGW on RegDB, visible -> thermal, one model per trial (1..10): train on the
# trial's 206 ids, test on its other 206 ids (full test sets, no camera
# filtering, standard CMC). Change `trial` here, or pass
#   --cfg-options train_dataloader.dataset.trial=T \
#       val_dataloader.dataset.trial=T test_dataloader.dataset.trial=T
# The protocol's number is the mean over the 10 trials' models, both
# directions; this trains (or reads) them and averages:
#   python tools/analysis_tools/regdb_trials.py \
#       configs/mbn/agw_r50_1xb64-81e_regdb-v2t.py \
#       --work-dir work_dirs/agw_regdb
_base_ = [
    '../_base_/models/agw_r50.py',
    '../_base_/datasets/regdb.py',
    '../_base_/schedules/agw_sgd_81e.py',
    '../_base_/default_runtime.py',
]

trial = 1
direction = 'v2t'
# AGW's transforms (PIL Lanczos to 288x144, flip, pad 10 + random crop, no
# random erasing) come from the dataset file.
train_dataloader = dict(dataset=dict(trial=trial))
val_dataloader = dict(dataset=dict(trial=trial, direction=direction))
test_dataloader = val_dataloader
val_evaluator = dict(direction=direction)
test_evaluator = val_evaluator
model = dict(head=dict(num_classes=206))
randomness = dict(seed=0)
