# SNR (Jin et al., CVPR 2020), single-source domain generalisation M->D:
# ResNet-50 (ImageNet, last stride 1) with SNR after all four stages, BNNeck,
# CE with label smoothing 0.1 + soft-margin batch-hard triplet on BN(v) +
# dual causality loss per stage with weights (0.1, 0.1, 0.5, 0.5) (the model
# of _base_/models/snr_r50.py); Adam 3.5e-4, 10 warm-up epochs, x0.1 at 40
# and 70, 120 epochs, P x K = 16 x 4.
_base_ = [
    '../_base_/models/snr_r50.py',
    '../_base_/datasets/market1501.py',
    '../_base_/schedules/bot_adam_120e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=751))

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
