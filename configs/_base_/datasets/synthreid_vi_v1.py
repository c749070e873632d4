# SynthReID-vi: the visible-infrared variant of the embedded synthetic
# benchmark, in the exact SYSU-MM01 layout (cams 1, 2, 4, 5 visible; 3, 6
# infrared), parsed by the real SYSUMM01 dataset and evaluated with the
# SYSU-MM01 all-search single-shot protocol (10 seeded gallery trials, cam3
# queries skip cam2). Generated on first use under data_root, deterministic
# from the seed. Images are generated at 128x64 and trained at 64x32 so that
# the CPU demos finish in minutes.
#
# This is the first release, kept for the record (ir_mode='hard': infrared
# intensities drawn per identity, independent of the dyes; only small shape
# cues cross the modalities). SynthReIDVI's default is v2 (ir_mode='dye'),
# see synthreid_vi.py.
data_root = 'data/synthreid-vi/'
dataset_type = 'SynthReIDVI'
synth = dict(size='demo', seed=0, img_size=(128, 64), ir_mode='hard')
mode = 'all'
img_size = (64, 32)  # (height, width)
# P=8 identities x K=4 visible + the same 8 x 4 infrared images.
batch_size = 64
num_instances = 4  # K, per modality

train_pipeline = [
    dict(type='ReIDLoadImageFromFile'),
    dict(type='ReIDResize', size=img_size),
    dict(type='ReIDRandomFlip', prob=0.5),
    dict(type='PadRandomCrop', padding=4),
    # Not in the AGW recipe: a channel augmentation of visible images after
    # CAJ's (a random R/G/B channel or the grey image). SynthReID's infrared
    # intensities are independent of garment colours, and from random init
    # both AGW variants otherwise learn colour shortcuts that do not cross
    # modalities (cross-modality R1 at chance after 8 epochs).
    dict(type='RandomChannel', prob=0.5),
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
        type='CrossModalityIdentitySampler',
        batch_size=batch_size,
        num_instances=num_instances),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        **synth,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        **synth,
        mode=mode,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='SYSUMetric', mode=mode, shot='single')
test_evaluator = val_evaluator
