# LLCM: train on idx/train_vis.txt + idx/train_nir.txt (713 ids); test on
# the ids of idx/test_id.txt, query and gallery pools by direction.
# TODO: the per-trial single-shot gallery draw (10 trials) and the
# reference's transposed VIS->IR evaluation come with the LLCM protocol.
data_root = 'data/llcm/LLCM/'
dataset_type = 'LLCM'
direction = 'ir2vis'  # 'ir2vis' (NIR query) or 'vis2ir' (VIS query)
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

# VIS and NIR of camera K share camid K-1: same pid + camera removed.
val_evaluator = dict(
    type='ReIDMetric', metric='cosine', junk_rule='market', cmc_mode='dedup')
test_evaluator = val_evaluator
