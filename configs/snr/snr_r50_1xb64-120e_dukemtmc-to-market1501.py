# SNR, single-source domain generalisation D->M: the M->D recipe
# (snr_r50_1xb64-120e_market1501-to-dukemtmc.py) with the source and target
# swapped: DukeMTMC-reID's train split (702 identities) is trained on,
# Market-1501's query/gallery tested. Market-1501's dataset file gives the
# test side and the loaders; the training set is replaced below.
_base_ = [
    '../_base_/models/snr_r50.py',
    '../_base_/datasets/market1501.py',
    '../_base_/schedules/bot_adam_120e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=702))

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
# The layout of docs/datasets.md, as in _base_/datasets/dukemtmc.py.
train_dataloader = dict(
    dataset=dict(
        type='DukeMTMCReID',
        data_root='data/dukemtmc-reid/DukeMTMC-reID/',
        pipeline=train_pipeline))
target = dict(type='Market1501', data_root='data/market1501/')
val_dataloader = dict(dataset=target)
test_dataloader = dict(dataset=target)
# DG protocols report the last epoch; the target is never used to select.
train_cfg = dict(val_interval=120)
