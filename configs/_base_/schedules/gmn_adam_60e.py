# The GMN recipe's schedule (specs/gmn.md section 10): Adam lr 3.5e-4,
# weight decay 5e-4 (M-Net included), 10 warm-up epochs from lr/10, x0.1 at
# epochs 30 and 50, 60 epochs; the last epoch is evaluated (the target is
# never used for model selection).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=3.5e-4, weight_decay=5e-4),
)
max_epochs = 60
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
        milestones=[30, 50],
        gamma=0.1,
        begin=0,
        end=max_epochs),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
# The recipe's batch is 64 images (16 identities x 4) on one GPU.
auto_scale_lr = dict(base_batch_size=64, enable=False)
