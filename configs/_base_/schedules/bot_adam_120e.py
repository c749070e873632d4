# Bag-of-tricks schedule (Luo et al., 2019): Adam, lr 3.5e-4, 10 warm-up
# epochs from lr/10, x0.1 at epochs 40 and 70, 120 epochs.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=3.5e-4, weight_decay=5e-4),
)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='MultiStepLR',
        by_epoch=True,
        milestones=[40, 70],
        gamma=0.1,
        begin=0,
        end=120),
]
train_cfg = dict(by_epoch=True, max_epochs=120, val_interval=40)
val_cfg = dict()
test_cfg = dict()
# The recipe's batch is 64 images (16 identities x 4) on one GPU.
auto_scale_lr = dict(base_batch_size=64, enable=False)
