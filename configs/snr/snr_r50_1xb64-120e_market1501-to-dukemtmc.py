# SNR (Jin et al., CVPR 2020), single-source domain generalisation M->D:
# ResNet-50 (ImageNet, last stride 1) with SNR after all four stages, BNNeck,
# CE with label smoothing 0.1 + soft-margin batch-hard triplet + dual
# causality loss per stage with weights (0.1, 0.1, 0.5, 0.5); Adam 3.5e-4,
# 10 warm-up epochs, x0.1 at 40 and 70, 120 epochs, P x K = 16 x 4.
# The triplet loss acts on BN(v), the torchreid convention of the authors'
# code (SNR spec section 3.4, triplet_feat='bn').
_base_ = [
    '../_base_/models/bot_r50.py',
    '../_base_/datasets/market1501.py',
    '../_base_/schedules/bot_adam_120e.py',
    '../_base_/default_runtime.py',
]

snr_stages = (True, True, True, True)
snr_reduction = 16
snr_loss_weights = (0.1, 0.1, 0.5, 0.5)

model = dict(
    backbone=dict(plugins=[
        dict(
            cfg=dict(type='SNR', reduction=snr_reduction),
            stages=snr_stages,
            position='after_stage')
    ]),
    head=dict(
        num_classes=751,
        # Soft margin: log(1 + exp(d_ap - d_an)), no margin.
        loss_tri=dict(type='TripletLoss', margin=None),
        triplet_feat='bn'),
    # One auxiliary loss per plugin, keyed by its abbreviation.
    aux_losses=dict(
        snr=dict(type='DualCausalityLoss', use_pos=True, use_neg=True)),
    aux_stage_weights=dict(snr=snr_loss_weights))

img_size = (256, 128)
train_pipeline = [
    dict(type='ReIDLoadImageFromFile'),
    # The authors' torchreid augmentation: p=0.5 resize to 1.125x (288x144)
    # and crop a random 256x128 window, else resize to 256x128; PIL
    # bilinear, as torchreid resizes.
    dict(
        type='Random2DTranslation',
        size=img_size,
        prob=0.5,
        scale=1.125,
        backend='pillow'),
    dict(type='ReIDRandomFlip', prob=0.5),
    dict(type='ReIDColorJitter', brightness=0.2, contrast=0.15),
    # No random erasing for cross-domain training.
    dict(type='PackReIDInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# The layout of docs/datasets.md, as in _base_/datasets/dukemtmc.py.
target = dict(
    type='DukeMTMCReID', data_root='data/dukemtmc-reid/DukeMTMC-reID/')
val_dataloader = dict(dataset=target)
test_dataloader = dict(dataset=target)
# DG protocols report the last epoch; the target is never used to select.
train_cfg = dict(val_interval=120)
