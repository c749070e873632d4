# The SynthReID CPU recipe: the bag-of-tricks Adam schedule compressed to 8
# epochs. From random initialisation the BoT lr of 3.5e-4 (meant for
# ImageNet weights) learns too slowly for a few-minute run; 2e-3 is used,
# with a one-epoch warm-up from lr/10 and x0.1 at epoch 6.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=2e-3, weight_decay=5e-4),
)
max_epochs = 8
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(type='MultiStepLR', by_epoch=True, milestones=[6], gamma=0.1),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32, enable=False)
