# Baseline-A-IN on SynthReID v2: instance normalisation (affine) after
# stages 1-3 of the v2 baseline, its output fed to the next stage; no gate,
# no restitution, no dual causality loss. Not after stage 4, for the reason
# given in baseline-a-in_r18_synthreid.py (IN before global pooling gives
# every image the same pooled feature).
_base_ = ['./snr_r18_synthreid-v2.py']

model = dict(
    backbone=dict(plugins=[
        dict(
            cfg=dict(type='SNR', restitution=False),
            stages=(True, True, True, False),
            position='after_stage')
    ]),
    aux_losses=None,  # IN only: the plugin gives no auxiliary outputs
    aux_stage_weights=None)
