# Stage ablation: one SNR module, after the last stage only (its loss weight
# stays 0.5; the other stages have no module and hence no loss).
_base_ = ['./snr_r18_synthreid.py']

snr_stages = (False, False, False, True)
model = dict(
    backbone=dict(plugins=[
        dict(
            cfg=dict(type='SNR', reduction=16),
            stages=snr_stages,
            position='after_stage')
    ]))
