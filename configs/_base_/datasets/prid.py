# PRID2011 single-shot, a test-only domain-generalization target evaluated
# on its ten fixed splits in one run (mmreid/datasets/splits/prid2011.json:
# 100 cam_a queries, 649 cam_b gallery images per split).
# DGSplitMetric reports split<i>/R1 ... and the mean and the population std
# over the splits (R1, R1_std, ...). A leaf that trains elsewhere inherits
# this file with a train base.
data_root = 'data/prid2011/'
dataset_type = 'PRID2011'
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
