# RegDB: one model per trial (1..10); train on the trial's 206 ids, test
# on its 206 other ids with the full visible and thermal test sets.
data_root = 'data/regdb/RegDB/'
dataset_type = 'RegDB'
trial = 1
direction = 'v2t'  # 'v2t' (visible query) or 't2v' (thermal query)
img_size = (288, 144)  # (height, width), as in the AGW baseline
batch_size = 64  # P=16 identities x K=4 images
num_instances = 4

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ReIDResize', size=img_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PadRandomCrop', padding=10),
    dict(type='RandomErasing', prob=0.5),
    dict(type='PackReIDInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ReIDResize', size=img_size),
    dict(type='PackReIDInputs'),
]

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    # A plain PK sampler until the cross-modality sampler (P ids x K VIS +
    # the same P ids x K IR per batch, mbn_vireid.md section 4) lands.
    sampler=dict(
        type='IdentitySampler',
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

# One dual camera: nothing is removed from the gallery.
val_evaluator = dict(type='ReIDMetric', metric='cosine', junk_rule='none')
test_evaluator = val_evaluator
