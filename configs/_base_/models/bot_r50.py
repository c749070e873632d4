# ReID strong baseline ("bag of tricks"): ResNet-50 with last stride 1, global
# average pooling, BNNeck, label-smoothed identity loss + batch-hard triplet.
model = dict(
    type='ReIDModel',
    data_preprocessor=dict(
        type='ReIDDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375]),
    backbone=dict(
        type='ReIDResNet',
        depth=50,
        last_stride=1,
        # torchvision's ImageNet ResNet-50 (resnet50-19c8e357.pth), as the
        # reference code loads it; its classifier fc.* is left out.
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.pytorch.org/models/'
            'resnet50-19c8e357.pth')),
    neck=dict(type='GlobalAvgPool'),
    head=dict(
        type='BNNeckHead',
        in_channels=2048,
        num_classes=751,  # set by the dataset config or the leaf config
        loss_cls=dict(type='ReIDCrossEntropyLoss', label_smooth_eps=0.1),
        loss_tri=dict(type='TripletLoss', margin=0.3),
        test_feature='after_bn'),
    distance='euclidean',
)
