# The default runtime plus Weights & Biases: use this file in a config's
# _base_ list in place of default_runtime.py (the same without a config
# change: `python tools/train.py CONFIG --vis-backend wandb`). Needs
# `pip install wandb` and `wandb login` (or WANDB_MODE=offline); the
# project and run name are wandb.init arguments, e.g.
#   --cfg-options visualizer.vis_backends.1.init_kwargs.project=mmreid
_base_ = ['./default_runtime.py']

vis_backends = [
    dict(type='LocalVisBackend'),
    dict(type='WandbVisBackend', init_kwargs=dict(project='mmreid')),
]
visualizer = dict(type='ReIDVisualizer', vis_backends=vis_backends)
