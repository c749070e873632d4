# SynthReID first release (kept for the record; v2 is synthreid.py),
# multi-target: train on domains d0-d2 and evaluate, in one run, on
# the unseen-style domain d3 and on the held-out identities of d0 (a seen
# style). Each target has its own dataloader and metric; the loops report
# `d3/mAP`, `d0/R1`, ... and `mean/<metric>`, the mean over the targets.
#
# mmengine requires `val_dataloader`/`val_evaluator` whenever `val_cfg` is
# set, so they are empty placeholders here. Schedule bases set `val_cfg` and
# `test_cfg` too (two bases may not share a key), so the leaf config names
# the loops:
#
#   val_cfg = dict(type='MultiTargetValLoop', targets={{_base_.val_targets}})
#   test_cfg = dict(type='MultiTargetTestLoop',
#                   targets={{_base_.test_targets}})
#   default_hooks = dict(checkpoint=dict(save_best='d3/mAP'))  # explicit key
data_root = 'data/synthreid/'
synth = dict(
    type='SynthReID',
    data_root=data_root,
    num_domains=4,
    size='demo',
    seed=0,
    img_size=(128, 64))
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

target_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'))
reid_evaluator = dict(type='ReIDMetric')
val_targets = [
    dict(
        name='d3',
        dataloader=dict(
            target_dataloader,
            dataset=dict(
                synth, domain=3, split='test', pipeline=test_pipeline)),
        evaluator=reid_evaluator),
    dict(
        name='d0',
        dataloader=dict(
            target_dataloader,
            dataset=dict(
                synth, domain=0, split='test', pipeline=test_pipeline)),
        evaluator=reid_evaluator),
]
test_targets = val_targets
# Placeholders: the targets above are what the loops evaluate.
val_dataloader = dict()
val_evaluator = dict()
test_dataloader = dict()
test_evaluator = dict()
