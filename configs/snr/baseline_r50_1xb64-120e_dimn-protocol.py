# Baseline of SNR on the DIMN protocol (SNR spec section 7): snr_r50_1xb64-
# 120e_dimn-protocol.py without the SNR modules and without the dual
# causality loss; its five sources, four targets (ten splits each, dg/<metric>
# their mean) and recipe otherwise (soft-margin triplet on BN(v),
# Random2DTranslation + colour jitter, no random erasing, Adam 120 epochs,
# last epoch reported). Not configs/baseline/bot_r50_1xb64-120e_dimn-
# protocol.py, whose augmentation and triplet loss are BoT's.
_base_ = ['./snr_r50_1xb64-120e_dimn-protocol.py']

model = dict(
    backbone=dict(plugins=None),  # no SNR module
    aux_losses=None,  # no dual causality loss
    aux_stage_weights=None)
# The SNR settings of the base config, unused here.
snr_stages = None
snr_reduction = None
snr_loss_weights = None
