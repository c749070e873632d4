# SYSU-MM01: train on the train + val ids (395, both modalities); test with
# the infrared query (cams 3, 6) against the visible gallery pool.
# The dataset gives the whole visible pool; SYSUMetric draws the gallery of
# each trial from it.
data_root = 'data/sysu-mm01/SYSU-MM01/'
dataset_type = 'SYSUMM01'
mode = 'all'  # 'all' (cams 1, 2, 4, 5) or 'indoor' (cams 1, 2) gallery
img_size = (288, 144)  # (height, width), as in the AGW baseline
# AGW resizes each image with PIL's Lanczos filter (Image.ANTIALIAS) when
# it loads it, for training and test.
resize = dict(
    type='ReIDResize', size=img_size, interpolation='lanczos',
    backend='pillow')
# P=8 identities x K=4 visible + the same 8 x 4 infrared images (AGW).
batch_size = 64
num_instances = 4  # K, per modality

# AGW's training transforms: flip, pad 10 + random crop, no random erasing.
train_pipeline = [
    dict(type='ReIDLoadImageFromFile'),
    resize,
    dict(type='ReIDRandomFlip', prob=0.5),
    dict(type='PadRandomCrop', padding=10),
    dict(type='PackReIDInputs'),
]
test_pipeline = [
    dict(type='ReIDLoadImageFromFile'),
    resize,
    dict(type='PackReIDInputs'),
]

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    # Every batch: P ids x K visible + the same P ids x K infrared images
    # (both modalities on every GPU, as MBN needs); AGW epoch size.
    sampler=dict(
        type='CrossModalityIdentitySampler',
        batch_size=batch_size,
        num_instances=num_instances),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        mode=mode,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# The SYSU-MM01 protocol: 10 seeded single-shot gallery trials drawn from
# the visible pool; cam3 queries skip every cam2 gallery image; CMC on the
# distinct-pid ranking, mAP/mINP on the full list; mean and std over trials.
val_evaluator = dict(type='SYSUMetric', mode=mode, shot='single')
test_evaluator = val_evaluator
