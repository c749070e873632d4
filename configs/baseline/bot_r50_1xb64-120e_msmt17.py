# Bag of Tricks on MSMT17 (V1; train = list_train + list_val, 1,041 ids).
_base_ = [
    '../_base_/models/bot_r50.py',
    '../_base_/datasets/msmt17.py',
    '../_base_/schedules/bot_adam_120e.py',
    '../_base_/default_runtime.py',
]

# Test distance: reid-strong-baseline reports with TEST.FEAT_NORM='yes', the
# after-BN feature L2-normalised before the Euclidean distance, i.e. the
# cosine ranking. The model's distance is the same, so rank_gallery and the
# ranked-list pictures rank as the reported numbers do.
model = dict(head=dict(num_classes=1041), distance='cosine')
val_evaluator = dict(type='ReIDMetric', distance='cosine')
test_evaluator = val_evaluator
