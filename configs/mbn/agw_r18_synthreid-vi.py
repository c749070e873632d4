# The visible-infrared CPU demo: AGW with a two-stream ResNet-18 (random
# init: nothing is downloaded) and one non-local block in layer2 and layer3
# (_base_/models/agw_r18_synthreid_vi.py), on SynthReID-vi (SYSU-MM01
# layout, all-search single-shot protocol), with the SynthReID Adam recipe.
# Plain BN; mbn-agw_r18_synthreid-vi.py is the MBN twin.
_base_ = [
    '../_base_/models/agw_r18_synthreid_vi.py',
    '../_base_/datasets/synthreid_vi_v1.py',
    '../_base_/schedules/synthreid_adam_8e.py',
    '../_base_/default_runtime.py',
]

# The Adam schedule's base is its 32-image batch; this demo trains 64
# (synthreid_vi_v1.py), so --auto-scale-lr keeps lr on one process.
auto_scale_lr = dict(base_batch_size=64)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=8))
randomness = dict(seed=0)
