# SNR on SynthReID v2: snr_r18_synthreid.py's model (an SNR module after
# each ResNet-18 stage, dual causality loss weights 0.1, 0.1, 0.5, 0.5)
# with baseline_r18_synthreid-v2.py's data and targets, so the table
# separates the cost of the style shift (d3 vs d3-d0style) from the cost of
# new cameras and identities.
_base_ = ['./baseline_r18_synthreid-v2.py']

model = dict(
    backbone=dict(plugins=[
        dict(
            cfg=dict(type='SNR', reduction=16),
            stages=(True, True, True, True),
            position='after_stage')
    ]),
    aux_losses=dict(
        snr=dict(type='DualCausalityLoss', use_pos=True, use_neg=True)),
    aux_stage_weights=dict(snr=(0.1, 0.1, 0.5, 0.5)))
