# Baseline of SNR, single-source domain generalisation M->D (SNR spec
# section 7: "same losses otherwise, same recipe"): snr_r50_1xb64-120e_
# market1501-to-dukemtmc.py without the SNR modules and without the dual
# causality loss. Everything else is that config's: ResNet-50 (ImageNet,
# last stride 1), BNNeck, CE with label smoothing 0.1 + soft-margin triplet
# on BN(v), Random2DTranslation + colour jitter, no random erasing, Adam 120
# epochs, last epoch reported. Not the BoT M->D config
# (configs/baseline/bot_r50_1xb64-120e_market1501-to-dukemtmc.py), whose
# augmentation and triplet loss differ.
_base_ = ['./snr_r50_1xb64-120e_market1501-to-dukemtmc.py']

model = dict(
    backbone=dict(plugins=None),  # no SNR module
    aux_losses=None,  # no dual causality loss
    aux_stage_weights=None)
# The SNR settings of the base config, unused here.
snr_stages = None
snr_reduction = None
snr_loss_weights = None
