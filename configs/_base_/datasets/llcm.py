# LLCM: train on idx/train_vis.txt + idx/train_nir.txt (713 ids); test on
# the ids of idx/test_id.txt, query and gallery pools by direction.
# The dataset gives the pools; LLCMMetric draws each trial's gallery (and
# evaluates VIS->IR transposed, as the reference code does).
data_root = 'data/llcm/LLCM/'
dataset_type = 'LLCM'
direction = 'ir2vis'  # 'ir2vis' (NIR query) or 'vis2ir' (VIS query)
img_size = (384, 144)  # (height, width), as in the LLCM reference (DEEN)
# P=8 identities x K=4 visible + the same 8 x 4 infrared images.
batch_size = 64
num_instances = 4  # K, per modality

train_pipeline = [
    dict(type='ReIDLoadImageFromFile'),
    dict(type='ReIDResize', size=img_size),
    dict(type='ReIDRandomFlip', prob=0.5),
    dict(type='PadRandomCrop', padding=10),
    dict(type='ReIDRandomErasing', prob=0.5),
    dict(type='PackReIDInputs'),
]
test_pipeline = [
    dict(type='ReIDLoadImageFromFile'),
    dict(type='ReIDResize', size=img_size),
    dict(type='PackReIDInputs'),
]

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
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
        direction=direction,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# The LLCM protocol: 10 seeded gallery trials (one image per pid and
# camera); VIS and NIR of camera K share camid K-1, so same pid + camera is
# removed; distinct-pid CMC.
val_evaluator = dict(type='LLCMMetric', direction=direction)
test_evaluator = val_evaluator
