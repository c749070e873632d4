# Runtime shared by every mmreid config.
default_scope = 'mmreid'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    # Logs losses, learning rate, time per iteration and the ETA.
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # DG protocols report the last epoch; no selection on a test set.
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3),
    # Gives samplers their epoch, so every epoch draws a new order.
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Random draws that a resumed run repeats (seeded per iteration).
    random_state=dict(type='TrainRandomStateHook'),
)
custom_hooks = [
    dict(type='TrainSetupCheckHook'),
    dict(type='FeatureProgressHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo when there is no GPU.
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='ReIDVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
log_processor = dict(by_epoch=True)
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
