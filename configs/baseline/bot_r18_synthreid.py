# The quick-start job: the BoT recipe with ResNet-18 (random init: nothing is
# downloaded) on SynthReID. Trains on source domains 0-2 and evaluates on the
# unseen-style domain 3, on 2 CPU cores in a few minutes.
_base_ = [
    '../_base_/models/bot_r50.py',
    '../_base_/datasets/synthreid.py',
    '../_base_/schedules/bot_adam_120e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(depth=18, init_cfg=None),
    head=dict(in_channels=512, num_classes=450))  # 3 domains x 150 ids

# From random initialisation the recipe's lr of 3.5e-4 (meant for ImageNet
# weights) learns too slowly for a few-minute run; 2e-3 is used instead.
optim_wrapper = dict(optimizer=dict(lr=2e-3))
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
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs))
