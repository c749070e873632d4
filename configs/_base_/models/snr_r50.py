# SNR (Jin et al., CVPR 2020) on the BoT ResNet-50, as the authors' torchreid
# code trains it for domain generalisation: an SNR module after each of the
# four stages (ImageNet weights, last stride 1), BNNeck, CE with label
# smoothing 0.1 + soft-margin batch-hard triplet on BN(v) (SNR spec section
# 3.4, triplet_feat='bn') + the dual causality loss per stage with weights
# (0.1, 0.1, 0.5, 0.5). Shared by the R50 configs of configs/snr/; a leaf
# sets head.num_classes for its training set.
_base_ = ['./bot_r50.py']

snr_stages = (True, True, True, True)
snr_reduction = 16
snr_loss_weights = (0.1, 0.1, 0.5, 0.5)

model = dict(
    backbone=dict(plugins=[
        dict(
            cfg=dict(type='SNR', reduction=snr_reduction),
            stages=snr_stages,
            position='after_stage')
    ]),
    head=dict(
        # Soft margin: log(1 + exp(d_ap - d_an)), no margin.
        loss_tri=dict(type='TripletLoss', margin=None),
        triplet_feat='bn'),
    # One auxiliary loss per plugin, keyed by its abbreviation.
    aux_losses=dict(
        snr=dict(type='DualCausalityLoss', use_pos=True, use_neg=True)),
    aux_stage_weights=dict(snr=snr_loss_weights))
