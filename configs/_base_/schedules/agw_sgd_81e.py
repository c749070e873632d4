# The AGW schedule (mbn_vireid.md section 3.3): SGD (Nesterov, momentum
# 0.9, weight decay 5e-4 on every parameter), lr 0.01 and 10x for the BNNeck
# and classifier; linear warm-up over epochs 0-9 from lr / 10, x0.1 at
# epochs 20 and 50; 81 epochs. The reference evaluates every 2 epochs and
# keeps the best test Rank-1 (model selection on the test set); mmreid
# reports the last epoch.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='SGD', lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4),
    paramwise_cfg=dict(custom_keys={
        'head.bnneck': dict(lr_mult=10),
        'head.classifier': dict(lr_mult=10)
    }))
max_epochs = 81
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        end_factor=1.0,
        by_epoch=True,
        begin=0,
        end=10),
    dict(
        type='MultiStepLR',
        by_epoch=True,
        milestones=[20, 50],
        gamma=0.1,
        begin=0,
        end=max_epochs),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64, enable=False)
