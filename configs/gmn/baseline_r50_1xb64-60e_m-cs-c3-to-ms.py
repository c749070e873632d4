# Baseline row of GMN, Protocol-2 m-cs-c3-to-ms: the same backbone, data and
# schedule with L_gmn = L_pic = 0 (plain BNNeck head, ReIDModel) and the
# Euclidean test distance on the post-BN feature (not L2-normalised; the
# ranking of Euclidean on L2-normalised features is GMN's 'euclid' mode).
_base_ = './gmn_r50_1xb64-60e_m-cs-c3-to-ms.py'

model = dict(
    _delete_=True,
    type='ReIDModel',
    data_preprocessor=dict(
        type='ReIDDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375]),
    backbone=dict(
        type='ReIDResNet',
        depth=50,
        last_stride=1,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth',
            prefix='backbone.')),
    neck=dict(type='GlobalAvgPool'),
    head=dict(
        type='BNNeckHead',
        in_channels=2048,
        num_classes={{_base_.num_classes_p2}},
        loss_cls=dict(type='CrossEntropyLoss', label_smooth_eps=0.1),
        loss_triplet=dict(type='TripletLoss', margin=0.3),
        test_feature='after_bn'),
    distance='euclidean')

custom_hooks = [
    dict(type='TrainSetupCheckHook'),
    dict(type='FeatureProgressHook'),
]
