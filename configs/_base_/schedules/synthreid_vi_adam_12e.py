# The SynthReID-vi v2 demos' schedule: the visible demo's optimisation
# (synthreid_adam_8e.py, issue 16) in steps. bot_r18_synthreid.py takes
# 8 x 150 = 1,200 steps of 32 images; an epoch of SynthReID-vi v2 is 1,587
# visible training images // 16 + 1 = 100 steps of 16 visible + 16
# infrared images, so 12 epochs (x0.1 at 9, the 3/4 point of the 8-epoch
# recipe). Adam 2e-3, a one-epoch warm-up from lr/10.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=2e-3, weight_decay=5e-4),
)
max_epochs = 12
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[9], gamma=0.1),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32, enable=False)
