# Baseline-A-IN: instance normalisation (affine) after each stage, its output
# fed to the next stage; no gate, no restitution, no dual causality loss.
_base_ = ['./snr_r18_synthreid.py']

model = dict(
    backbone=dict(plugins=[
        dict(
            cfg=dict(type='SNR', restitution=False),
            stages=(True, True, True, True),
            position='after_stage')
    ]),
    aux_loss=None)
