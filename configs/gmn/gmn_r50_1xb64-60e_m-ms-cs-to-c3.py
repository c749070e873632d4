# GMN (Qi et al., arXiv:2306.11991), leave-one-out Protocol-2:
# Market-1501 + MSMT17 + CUHK-SYSU -> CUHK03-NP (labeled).
# The model is configs/_base_/models/gmn_r50.py, the schedule Adam 3.5e-4,
# 10 warm-up epochs, x0.1 at 30 and 50, 60 epochs; P x K = 16 x 4.
_base_ = [
    '../_base_/models/gmn_r50.py',
    '../_base_/datasets/dg_loo_cuhk03.py',
    '../_base_/schedules/gmn_adam_60e.py',
    '../_base_/default_runtime.py',
]

model = dict(head=dict(num_classes={{_base_.num_classes_p2}}))

# Scoring every query-gallery pair with the M-Net is ~1e14 FLOPs on
# Market-1501 (2e15 on MSMT17): rank on the GPU.
val_evaluator = dict(type='ReIDMetric', device='cuda')
test_evaluator = val_evaluator

# The base's start-up checks and progress bar are default_hooks, so this
# list only adds GMN's hook.
custom_hooks = [
    dict(type='GMNDPWarmupHook'),  # E_dp from model.head.dp.warmup_epochs
]
