# The default runtime plus TensorBoard: use this file in a config's _base_
# list in place of default_runtime.py (the same without a config change:
# `python tools/train.py CONFIG --vis-backend tensorboard`). Losses, lr and
# the validation metrics go to work_dir/<timestamp>/vis_data as event files:
#   tensorboard --logdir work_dirs/
# Needs `pip install tensorboard`.
_base_ = ['./default_runtime.py']

vis_backends = [
    dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend'),
]
visualizer = dict(type='ReIDVisualizer', vis_backends=vis_backends)
