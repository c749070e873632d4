# RegDB: one model per trial (1..10); train on the trial's 206 ids, test
# on its 206 other ids with the full visible and thermal test sets.
data_root = 'data/regdb/RegDB/'
dataset_type = 'RegDB'
trial = 1
direction = 'v2t'  # 'v2t' (visible query) or 't2v' (thermal query)
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
        trial=trial,
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
        trial=trial,
        direction=direction,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# One dual camera: nothing is removed from the gallery (junk_rule='none'),
# cosine distances; the keys name the direction (regdb-v2t/R1).
val_evaluator = dict(type='RegDBMetric', direction=direction)
test_evaluator = val_evaluator
