# Stage ablation on SynthReID v2: one SNR module, after the last stage only
# (its loss weight stays 0.5; the other stages have no module, no loss).
_base_ = ['./snr_r18_synthreid-v2.py']

model = dict(
    backbone=dict(plugins=[
        dict(
            cfg=dict(type='SNR', reduction=16),
            stages=(False, False, False, True),
            position='after_stage')
    ]))
