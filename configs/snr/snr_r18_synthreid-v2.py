# SNR on SynthReID v2: snr_r18_synthreid.py's model (an SNR module after
# each ResNet-18 stage, dual causality loss weights 0.1, 0.1, 0.5, 0.5)
# with baseline_r18_synthreid-v2.py's data and targets, so the table
# separates the cost of the style shift (d3 vs d3-d0style) from the cost of
# new cameras and identities. Everything but the backbone plugins and the
# auxiliary loss is baseline_r18_synthreid-v2.py's.
_base_ = [
    '../_base_/models/bot_r50.py',
    '../_base_/datasets/synthreid.py',
    '../_base_/schedules/synthreid_adam_8e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    backbone=dict(
        depth=18,
        init_cfg=None,
        plugins=[
            dict(
                cfg=dict(type='SNR', reduction=16),
                stages=(True, True, True, True),
                position='after_stage')
        ]),
    # One auxiliary loss per plugin, keyed by its abbreviation.
    aux_losses=dict(
        snr=dict(type='DualCausalityLoss', use_pos=True, use_neg=True)),
    aux_stage_weights=dict(snr=(0.1, 0.1, 0.5, 0.5)),
    head=dict(in_channels=512, num_classes=450))  # 3 domains x 150 ids
val_cfg = dict(type='MultiTargetValLoop', targets={{_base_.val_targets}})
test_cfg = dict(type='MultiTargetTestLoop', targets={{_base_.test_targets}})
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=8))
