# Bag of Tricks on MSMT17 (V1; train = list_train + list_val, 1,041 ids).
_base_ = [
    '../_base_/models/bot_r50.py',
    '../_base_/datasets/msmt17.py',
    '../_base_/schedules/bot_adam_120e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=1041))
