# Direct transfer: train BoT on DukeMTMC-reID, test on Market-1501.
_base_ = [
    '../_base_/models/bot_r50.py',
    '../_base_/datasets/dukemtmc.py',
    '../_base_/schedules/bot_adam_120e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=702))
target = dict(type='Market1501', data_root='data/market1501/')
val_dataloader = dict(dataset=target)
test_dataloader = dict(dataset=target)
train_cfg = dict(val_interval=120)
