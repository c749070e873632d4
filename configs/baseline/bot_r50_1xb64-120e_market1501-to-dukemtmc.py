# Direct transfer: train BoT on Market-1501, test on DukeMTMC-reID (the
# single-source domain generalization protocol of SNR).
_base_ = [
    '../_base_/models/bot_r50.py',
    '../_base_/datasets/market1501.py',
    '../_base_/schedules/bot_adam_120e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=751))
# The layout of docs/datasets.md, as in _base_/datasets/dukemtmc.py.
target = dict(
    type='DukeMTMCReID', data_root='data/dukemtmc-reid/DukeMTMC-reID/')
val_dataloader = dict(dataset=target)
test_dataloader = dict(dataset=target)
# DG protocols report the last epoch; the target is never used to select.
train_cfg = dict(val_interval=120)
