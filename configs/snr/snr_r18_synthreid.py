# SNR (Jin et al., CVPR 2020) on the SynthReID quick-start recipe: an SNR
# module after each of the four ResNet-18 stages and the dual causality loss
# per stage, weights (0.1, 0.1, 0.5, 0.5). Everything else is
# baseline_r18_synthreid.py.
_base_ = [
    '../_base_/models/bot_r50.py',
    '../_base_/datasets/synthreid_v1.py',
    '../_base_/schedules/synthreid_adam_8e.py',
    '../_base_/default_runtime.py',
]

snr_stages = (True, True, True, True)
snr_reduction = 16
snr_loss_weights = (0.1, 0.1, 0.5, 0.5)

model = dict(
    backbone=dict(
        depth=18,
        init_cfg=None,
        plugins=[
            dict(
                cfg=dict(type='SNR', reduction=snr_reduction),
                stages=snr_stages,
                position='after_stage')
        ]),
    # One auxiliary loss per plugin, keyed by its abbreviation.
    aux_losses=dict(
        snr=dict(type='DualCausalityLoss', use_pos=True, use_neg=True)),
    aux_stage_weights=dict(snr=snr_loss_weights),
    head=dict(in_channels=512, num_classes=450))
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=8))
