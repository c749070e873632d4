# AGW cross-modality baseline (Ye et al., TPAMI 2021; reference code
# mangye16/Cross-Modal-Re-ID-baseline, method='agw'): a two-stream
# ResNet-50 (one stem per modality, shared layer1-4, last stride 1) with
# non-local blocks after blocks 2, 3 of layer2 and 3, 4, 5 of layer3, GeM
# pooling (p = 3, fixed), a BNNeck with a bias-free classifier, identity
# loss (no label smoothing) and the weighted regularized triplet on the
# pooled feature. The test feature is the BNNeck output compared by cosine.
model = dict(
    type='ReIDModel',
    data_preprocessor=dict(
        type='ReIDDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375]),
    backbone=dict(
        type='AGWResNet',
        depth=50,
        last_stride=1,
        num_modalities=2,
        non_local_stages=(0, 2, 3, 0),
        # The reference's 1-channel non-local quirk; reduc_ratio=2 gives
        # C / 2 intermediate channels.
        non_local_cfg=dict(reduc_ratio=None),
        stem_norm_cfg=dict(type='BN'),
        # dict(type='MBN') for MBN-AGW: shared stages and non-local norms.
        norm_cfg=dict(type='BN'),
        # torchvision's ImageNet ResNet-50 (resnet50-19c8e357.pth), as the
        # reference code loads it; its classifier fc.* is left out.
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.pytorch.org/models/'
            'resnet50-19c8e357.pth')),
    neck=dict(type='GeMPool', p=3.0, learnable=False),
    head=dict(
        type='BNNeckHead',
        in_channels=2048,
        num_classes=395,  # SYSU-MM01 train + val ids
        loss_cls=dict(type='ReIDCrossEntropyLoss'),
        loss_tri=dict(type='WRTLoss'),
        test_feature='after_bn'),
    distance='cosine',
)
