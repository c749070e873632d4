# CUHK03-NP (new protocol, 767 train / 700 test ids): train on
# bounding_box_train, test on query + bounding_box_test with the Market
# protocol. The variant is explicit (peers disagree on the default): this
# base reads the labeled boxes; a leaf config for the detected (DPM) boxes
# sets it on each dataset, and says so in its name:
#   train_dataloader = dict(dataset=dict(variant='detected'))
#   val_dataloader = dict(dataset=dict(variant='detected'))
#   test_dataloader = dict(dataset=dict(variant='detected'))
data_root = 'data/cuhk03-np/'
dataset_type = 'CUHK03NP'
variant = 'labeled'
img_size = (256, 128)  # (height, width)
batch_size = 64  # P=16 identities x K=4 images
num_instances = 4

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
        type='IdentitySampler',
        batch_size=batch_size,
        num_instances=num_instances),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        variant=variant,
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
        variant=variant,
        split='test',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='ReIDMetric')
test_evaluator = val_evaluator
