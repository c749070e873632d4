# AGW baseline (two-stream ResNet-50, non-local, GeM, WRT) on SYSU-MM01,
# all-search single-shot (10 seeded gallery trials); plain BN everywhere.
_base_ = [
    '../_base_/models/agw_r50.py',
    '../_base_/datasets/sysu_mm01.py',
    '../_base_/schedules/agw_sgd_81e.py',
    '../_base_/default_runtime.py',
]

# AGW transforms: pad 10 + random crop, flip; no random erasing.
train_pipeline = [
    dict(type='ReIDLoadImageFromFile'),
    # PIL Lanczos, as AGW resizes when it loads the images.
    dict(
        type='ReIDResize',
        size=(288, 144),
        interpolation='lanczos',
        backend='pillow'),
    dict(type='ReIDRandomFlip', prob=0.5),
    dict(type='PadRandomCrop', padding=10),
    dict(type='PackReIDInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
model = dict(head=dict(num_classes=395))
randomness = dict(seed=0)
