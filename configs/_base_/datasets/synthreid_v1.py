# SynthReID, first release (kept for the record; the benchmark is v2,
# synthreid.py): generated on first use under data_root (deterministic from
# the seed). Train on the source domains, test on a held-out domain whose
# global style none of the sources has.
data_root = 'data/synthreid/'
synth = dict(
    type='SynthReID',
    data_root=data_root,
    num_domains=4,
    size='demo',
    seed=0,
    img_size=(128, 64))
# Images are generated at 128x64 and trained at 64x32 so that the CPU demos
# finish in minutes.
img_size = (64, 32)  # (height, width)
batch_size = 32  # P=8 identities x K=4 images
num_instances = 4

train_pipeline = [
    dict(type='ReIDLoadImageFromFile'),
    dict(type='ReIDResize', size=img_size),
    dict(type='ReIDRandomFlip', prob=0.5),
    dict(type='PadRandomCrop', padding=4),
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
    num_workers=2,
    persistent_workers=True,
    sampler=dict(
        type='IdentitySampler',
        batch_size=batch_size,
        num_instances=num_instances),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='ConcatReIDDataset',
        datasets=[
            dict(synth, domain=0, split='train'),
            dict(synth, domain=1, split='train'),
            dict(synth, domain=2, split='train'),
        ],
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(synth, domain=3, split='test', pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='ReIDMetric')
test_evaluator = val_evaluator
