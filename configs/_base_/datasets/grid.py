# GRID, a test-only domain-generalization target evaluated on its ten
# official partitions (underground_reid/features_and_partitions.mat) in one
# run: 125 probes, 125 + 775 distractor (pid 0) gallery images per split.
# assign_camids=True gives probes camid 0 and gallery images camid 1, should
# a probe share its true match's camera.
# DGSplitMetric reports split<i>/R1 ... and the mean and the population std
# over the splits (R1, R1_std, ...). A leaf that trains elsewhere inherits
# this file with a train base.
data_root = 'data/grid/'
dataset_type = 'GRID'
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
        assign_camids=False,
        split='test',
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = dict(type='DGSplitMetric')
test_evaluator = val_evaluator
