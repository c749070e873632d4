# Leave-one-out domain generalisation (GMN / META / ACL Protocol-2): train on
# MSMT17 + CUHK-SYSU + CUHK03-NP, test on the unseen Market-1501.
# Protocol-3 ("combine all") also trains on the query + gallery images of
# MSMT17 and CUHK03-NP: a P3 leaf sets `combine_all = True` and
#   train_dataloader = dict(dataset=dict(datasets={{_base_.sources_p3}}))
#   model = dict(head=dict(num_classes=<sum of the P3 identities>))
# (mmengine does not re-evaluate this file with the leaf's variables;
# TrainSetupCheckHook refuses a combine_all the sources contradict).
# Each source keeps its own identities: ConcatReIDDataset offsets the pids
# per source. CUHK-SYSU is always used whole (it is train-only);
# CUHK03-NP uses the labeled boxes (ACL's loader default), see `variant`.
data_root = 'data/'
market_root = data_root + 'market1501/'
msmt_root = data_root + 'msmt17/MSMT17_V1/'
cuhk03_root = data_root + 'cuhk03-np/'
cuhk_sysu_root = data_root + 'cuhk_sysu/'
msmt_version = 'V1'
cuhk03_variant = 'labeled'
combine_all = False
img_size = (256, 128)  # (height, width)
batch_size = 64  # P=16 identities x K=4 images
num_instances = 4

# Random erasing is off for DG, as in META and ACL.
train_pipeline = [
    dict(type='ReIDLoadImageFromFile'),
    dict(type='ReIDResize', size=img_size),
    dict(type='ReIDRandomFlip', prob=0.5),
    dict(type='PadRandomCrop', padding=10),
    dict(type='PackReIDInputs'),
]
test_pipeline = [
    dict(type='ReIDLoadImageFromFile'),
    dict(type='ReIDResize', size=img_size),
    dict(type='PackReIDInputs'),
]

msmt_train = dict(
    type='MSMT17', data_root=msmt_root, version=msmt_version, split='train')
cuhk_sysu_train = dict(type='CUHKSYSU', data_root=cuhk_sysu_root)
cuhk03_train = dict(
    type='CUHK03NP',
    data_root=cuhk03_root,
    variant=cuhk03_variant,
    split='train')
# Identities: MSMT17 1,041 + CUHK-SYSU 11,934 + CUHK03-NP 767 = 13,742.
sources_p2 = [msmt_train, cuhk_sysu_train, cuhk03_train]
# MSMT17 4,101 (1,041 + 3,060) + CUHK-SYSU 11,934 + CUHK03-NP 1,467
# (767 + 700) = 17,502.
sources_p3 = [
    dict(dataset=msmt_train, combine_all=True),
    cuhk_sysu_train,
    dict(dataset=cuhk03_train, combine_all=True),
]
num_classes_p2 = 13742
num_classes_p3 = 17502

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
        type='ConcatReIDDataset',
        datasets=sources_p3 if combine_all else sources_p2,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='Market1501',
        data_root=market_root,
        split='test',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='ReIDMetric')
test_evaluator = val_evaluator
