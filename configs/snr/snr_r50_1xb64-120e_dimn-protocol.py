# SNR (Jin et al., CVPR 2020), multi-source domain generalisation, the DIMN
# protocol: all images of Market-1501 + DukeMTMC-reID + CUHK02 + CUHK03
# (detected) + CUHK-SYSU (18,530 identities, per-source pid offsets), tested
# in one run on PRID2011, GRID, VIPeR and QMUL-iLIDS, ten fixed splits each
# (mean and std over splits, then dg/<metric>: the mean over the targets).
# The model (_base_/models/snr_r50.py) and recipe are those of the M->D
# config (SNR after all four stages, dual causality loss (0.1, 0.1, 0.5,
# 0.5), soft-margin triplet on BN(v), Random2DTranslation, no random
# erasing, Adam 120 epochs).
_base_ = [
    '../_base_/models/snr_r50.py',
    '../_base_/datasets/dg_dimn.py',
    '../_base_/schedules/bot_adam_120e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes={{_base_.num_classes}}))

train_pipeline = [
    dict(type='ReIDLoadImageFromFile'),
    dict(
        type='Random2DTranslation',
        size={{_base_.img_size}},
        prob=0.5,
        backend='pillow'),
    dict(type='ReIDRandomFlip', prob=0.5),
    dict(type='ReIDColorJitter', brightness=0.2, contrast=0.15),
    dict(type='PackReIDInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
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
