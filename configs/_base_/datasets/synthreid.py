# SynthReID v2, the embedded synthetic benchmark (issue 16; the first release
# is synthreid_v1.py / synthreid_v1_multi_target.py, kept for the record):
# generated on first use under data_root, deterministic from the seed. Train
# on d0-d2 and evaluate, in one run, on
#   d3          the unseen style, with d3's new identities and cameras;
#   d3-d0style  the same d3 test files rendered in d0's (seen) style;
#   d0          held-out identities of d0: seen style, seen cameras;
#   d0-d3style  the same d0 test files rendered in d3's (unseen) style.
# d3 - d3-d0style and d0 - d0-d3style are the cost of the style shift alone;
# d0 - d3-d0style the cost of new cameras and identities alone. The d0 and
# d3 test splits have 700 + 1,050 identities (about 5,200 queries each, so
# the standard error of R1 from query sampling is at most 0.7 points at any
# accuracy); d1 and d2 keep 100 (their test splits are not evaluated). The
# 1,050 are added to v2's 700 without changing any other file (v2.1,
# 2026-12-04): its training split is v2's, so a model trained on v2 is
# tested on v2.1 as it is.
#
# mmengine requires `val_dataloader`/`val_evaluator` whenever `val_cfg` is
# set, so they are empty placeholders here; the leaf config names the loops:
#
#   val_cfg = dict(type='MultiTargetValLoop', targets={{_base_.val_targets}})
#   test_cfg = dict(type='MultiTargetTestLoop',
#                   targets={{_base_.test_targets}})
data_root = 'data/synthreid-v2.1/'
synth = dict(
    type='SynthReID',
    data_root=data_root,
    num_domains=4,
    size='demo',
    seed=0,
    img_size=(128, 64),
    style_control=True,
    num_workers=2,  # rendering processes; the files do not depend on it
    overrides=dict(
        num_ids_test=[700, 100, 100, 700],
        num_ids_test_added=[1050, 0, 0, 1050]))
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
                synth, domain='d3', split='test', pipeline=test_pipeline)),
        evaluator=reid_evaluator),
    dict(
        name='d3-d0style',
        dataloader=dict(
            target_dataloader,
            dataset=dict(
                synth,
                domain='d3-d0style',
                split='test',
                pipeline=test_pipeline)),
        evaluator=reid_evaluator),
    dict(
        name='d0',
        dataloader=dict(
            target_dataloader,
            dataset=dict(
                synth, domain='d0', split='test', pipeline=test_pipeline)),
        evaluator=reid_evaluator),
    dict(
        name='d0-d3style',
        dataloader=dict(
            target_dataloader,
            dataset=dict(
                synth,
                domain='d0-d3style',
                split='test',
                pipeline=test_pipeline)),
        evaluator=reid_evaluator),
]
test_targets = val_targets
# Placeholders: the targets above are what the loops evaluate.
val_dataloader = dict()
val_evaluator = dict()
test_dataloader = dict()
test_evaluator = dict()
