# Multi-source domain generalization, the DIMN protocol (Song et al., CVPR
# 2019): train on all images (train + query + gallery) of Market-1501,
# DukeMTMC-reID, CUHK02, CUHK03 and CUHK-SYSU; test, in one run, on PRID2011,
# GRID, VIPeR and QMUL-iLIDS, each on its ten fixed splits (DGSplitMetric:
# `prid/R1`, `prid/R1_std`, `prid/split0/R1`, ...) with `dg/<metric>`, the
# mean over the four targets.
#
# Each source keeps its own identities (ConcatReIDDataset offsets pids and
# camids): 1,501 + 1,812 + 1,816 + 1,467 + 11,934 = 18,530 classes. CUHK03
# uses the detected boxes by default (`cuhk03_variant`; report which).
# CUHK02 and CUHK-SYSU are train-only and used whole.
#
# Schedule bases set `val_cfg`/`test_cfg`, so the leaf names the loops:
#   val_cfg = dict(type='MultiTargetValLoop', targets={{_base_.dg_targets}},
#                  aggregate_prefix='dg')
#   test_cfg = dict(type='MultiTargetTestLoop', targets={{_base_.dg_targets}},
#                   aggregate_prefix='dg')
# A leaf can change the sources in a few lines, e.g. without Duke:
#   train_dataloader = dict(dataset=dict(datasets=[...]))
market_root = 'data/market1501/'
duke_root = 'data/dukemtmc-reid/DukeMTMC-reID/'
cuhk02_root = 'data/cuhk02/'
cuhk03_root = 'data/cuhk03-np/'
cuhk_sysu_root = 'data/cuhk_sysu/'
prid_root = 'data/prid2011/'
grid_root = 'data/grid/'
viper_root = 'data/viper/'
ilids_root = 'data/ilids/'
cuhk03_variant = 'detected'
img_size = (256, 128)  # (height, width)
batch_size = 64  # P=16 identities x K=4 images
num_instances = 4
num_classes = 18530

# The BoT and SNR (torchreid) reference code resizes PIL images with the
# bilinear filter, which antialiases when it shrinks (cv2 does not).
resize = dict(
    type='ReIDResize', size=img_size, interpolation='bilinear',
    backend='pillow')
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

dimn_sources = [
    dict(
        dataset=dict(type='Market1501', data_root=market_root, split='train'),
        combine_all=True),
    dict(
        dataset=dict(type='DukeMTMCReID', data_root=duke_root, split='train'),
        combine_all=True),
    dict(type='CUHK02', data_root=cuhk02_root),
    dict(
        dataset=dict(
            type='CUHK03NP',
            data_root=cuhk03_root,
            variant=cuhk03_variant,
            split='train'),
        combine_all=True),
    dict(type='CUHKSYSU', data_root=cuhk_sysu_root),
]

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    # The BoT and torchreid RandomIdentitySampler: n // K groups per
    # identity, the n mod K other images sit the epoch out.
    sampler=dict(
        type='IdentitySampler',
        batch_size=batch_size,
        num_instances=num_instances,
        remainder='drop'),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='ConcatReIDDataset',
        datasets=dimn_sources,
        pipeline=train_pipeline))

target_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'))
split_evaluator = dict(type='DGSplitMetric')
dg_targets = [
    dict(
        name='prid',
        dataloader=dict(
            target_dataloader,
            dataset=dict(
                type='PRID2011',
                data_root=prid_root,
                split='test',
                pipeline=test_pipeline)),
        evaluator=split_evaluator),
    dict(
        name='grid',
        dataloader=dict(
            target_dataloader,
            dataset=dict(
                type='GRID',
                data_root=grid_root,
                split='test',
                pipeline=test_pipeline)),
        evaluator=split_evaluator),
    dict(
        name='viper',
        dataloader=dict(
            target_dataloader,
            dataset=dict(
                type='VIPeR',
                data_root=viper_root,
                split='test',
                pipeline=test_pipeline)),
        evaluator=split_evaluator),
    dict(
        name='ilids',
        dataloader=dict(
            target_dataloader,
            dataset=dict(
                type='QMULiLIDS',
                data_root=ilids_root,
                split='test',
                pipeline=test_pipeline)),
        evaluator=split_evaluator),
]
# mmengine requires these whenever val_cfg / test_cfg are set; the loops
# above evaluate the targets only.
val_dataloader = dict()
val_evaluator = dict()
test_dataloader = dict()
test_evaluator = dict()
