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
    # BoT's random erasing: aspect ratio uniform in [0.3, 1/0.3], filled
    # with its normalised-space constant (0.485, 0.456, 0.406) in pixels.
    dict(
        type='ReIDRandomErasing',
        prob=0.5,
        aspect_sampling='uniform',
        fill_value=(151.997, 142.327, 126.824)),
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
    # The BoT and torchreid RandomIdentitySampler: n // K groups per
    # identity, the n mod K other images sit the epoch out.
    sampler=dict(
        type='IdentitySampler',
        batch_size=batch_size,
        num_instances=num_instances,
        remainder='drop'),
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
