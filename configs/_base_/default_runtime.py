# Runtime shared by every mmreid config.
default_scope = 'mmreid'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    # Logs losses, learning rate, time per iteration and the ETA.
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Keeps the last epochs, no selection: a DG protocol has no validation
    # set of its targets, and picking the best epoch on the test set would
    # report a number tuned on the test data. A single-domain protocol with
    # its own validation split may select, e.g.
    #   checkpoint=dict(save_best='reid/mAP', rule='greater')
    # (docs/visualization.md, "Keeping the best checkpoint").
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3),
    # Gives samplers their epoch, so every epoch draws a new order (an
    # epoch-based loop does not; ReIDRunner refuses one without this hook).
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Random draws that a resumed run repeats (seeded per iteration).
    random_state=dict(type='TrainRandomStateHook'),
    # The final metrics as one table: a row per target, distance mode or
    # metric; columns R1 R5 R10 R20 mAP mINP (mean±std over trials).
    results_table=dict(type='ResultsTableHook'),
    # Refuses config mistakes before the first iteration (classifier size,
    # P x K sampler, identity split, combine_all, save_best). Here and not
    # in custom_hooks: a config that sets custom_hooks replaces the whole
    # list, while default_hooks is merged key by key, so a user's hooks
    # leave these in place.
    setup_check=dict(type='TrainSetupCheckHook'),
    # A progress bar while features are extracted for evaluation.
    feature_progress=dict(type='FeatureProgressHook'),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # tools/train.py switches to gloo when there is no GPU.
    dist_cfg=dict(backend='nccl'),
)

# Scalars and pictures go to work_dir/<timestamp>/vis_data. TensorBoard or
# Weights & Biases: `tools/train.py --vis-backend tensorboard` (or wandb),
# or inherit _base_/runtime_tensorboard.py instead of this file.
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='ReIDVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
# mmengine's, whose evaluation lines name the target of a multi-target loop
# (Epoch(test) [d3] [40/52]).
log_processor = dict(type='ReIDLogProcessor', by_epoch=True)
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
