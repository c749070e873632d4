# AGW baseline (two-stream ResNet-50, non-local, GeM, WRT) on SYSU-MM01,
# all-search single-shot (10 seeded gallery trials); plain BN everywhere.
_base_ = [
    '../_base_/models/agw_r50.py',
    '../_base_/datasets/sysu_mm01.py',
    '../_base_/schedules/agw_sgd_81e.py',
    '../_base_/default_runtime.py',
]

# AGW's transforms (PIL Lanczos to 288x144, flip, pad 10 + random crop, no
# random erasing) come from the dataset file.
model = dict(head=dict(num_classes=395))
randomness = dict(seed=0)
