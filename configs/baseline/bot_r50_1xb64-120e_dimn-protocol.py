# Multi-source domain generalization, the DIMN protocol: BoT trained on all
# images of Market-1501 + DukeMTMC-reID + CUHK02 + CUHK03 (detected) +
# CUHK-SYSU (18,530 identities), tested in one run on PRID2011, GRID, VIPeR
# and QMUL-iLIDS, ten fixed splits each (mean and std over the splits, then
# dg/<metric>, the mean over the four targets).
_base_ = [
    '../_base_/models/bot_r50.py',
    '../_base_/datasets/dg_dimn.py',
    '../_base_/schedules/bot_adam_120e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes={{_base_.num_classes}}))
val_cfg = dict(
    type='MultiTargetValLoop',
    targets={{_base_.dg_targets}},
    aggregate_prefix='dg')
test_cfg = dict(
    type='MultiTargetTestLoop',
    targets={{_base_.dg_targets}},
    aggregate_prefix='dg')
# DG protocols report the last epoch; the targets never select a model.
train_cfg = dict(val_interval=120)
