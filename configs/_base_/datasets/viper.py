# VIPeR, a test-only domain-generalization target evaluated on its ten
# fixed splits in one run (mmreid/datasets/splits/viper.json: 316 cam_a
# queries, 316 cam_b gallery images per split).
# DGSplitMetric reports split<i>/R1 ... and the mean and the population std
# over the splits (R1, R1_std, ...). A leaf that trains elsewhere inherits
# this file with a train base.
data_root = 'data/viper/'
dataset_type = 'VIPeR'
img_size = (256, 128)  # (height, width)

test_pipeline = [
    dict(type='ReIDLoadImageFromFile'),
    dict(type='ReIDResize', size=img_size),
    dict(type='PackReIDInputs'),
]
val_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='DGSplitMetric')
test_evaluator = val_evaluator
