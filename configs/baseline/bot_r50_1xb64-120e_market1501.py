# Bag of Tricks (Luo et al., CVPRW 2019) on Market-1501: ResNet-50 with last
# stride 1 from ImageNet, BNNeck, label-smoothed CE + triplet (margin 0.3),
# 256x128, random erasing, 10-epoch warm-up, Adam, 120 epochs, 1 GPU x 64.
_base_ = [
    '../_base_/models/bot_r50.py',
    '../_base_/datasets/market1501.py',
    '../_base_/schedules/bot_adam_120e.py',
    '../_base_/default_runtime.py',
]

# Test distance: reid-strong-baseline reports with TEST.FEAT_NORM='yes', the
# after-BN feature L2-normalised before the Euclidean distance, i.e. the
# cosine ranking. The model's distance is the same, so rank_gallery and the
# ranked-list pictures rank as the reported numbers do.
model = dict(head=dict(num_classes=751), distance='cosine')
val_evaluator = dict(type='ReIDMetric', distance='cosine')
test_evaluator = val_evaluator
