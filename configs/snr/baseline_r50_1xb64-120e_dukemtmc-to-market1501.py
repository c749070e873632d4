# Baseline of SNR, single-source domain generalisation D->M (SNR spec
# section 7): snr_r50_1xb64-120e_dukemtmc-to-market1501.py without the SNR
# modules and without the dual causality loss; its data (DukeMTMC-reID
# train, 702 identities -> Market-1501) and recipe otherwise, as in
# baseline_r50_1xb64-120e_market1501-to-dukemtmc.py.
_base_ = ['./snr_r50_1xb64-120e_dukemtmc-to-market1501.py']

model = dict(
    backbone=dict(plugins=None),  # no SNR module
    aux_losses=None,  # no dual causality loss
    aux_stage_weights=None)
# The SNR settings of the base config, unused here.
snr_stages = None
snr_reduction = None
snr_loss_weights = None
