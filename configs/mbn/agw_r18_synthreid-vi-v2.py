# The visible-infrared CPU demo on SynthReID-vi v2 (learnable infrared:
# intensities follow the dyes, shape cues that survive 64x32; see
# _base_/datasets/synthreid_vi.py): AGW with a two-stream ResNet-18
# (random init: nothing is downloaded) and one non-local block in layer2 and
# layer3 (_base_/models/agw_r18_synthreid_vi.py), with the SynthReID Adam
# recipe in steps (_base_/schedules/synthreid_vi_adam_12e.py). Plain BN;
# mbn-agw_r18_synthreid-vi-v2.py is the MBN twin. agw_r18_synthreid-vi.py is
# the same model on the first release (hard infrared).
_base_ = [
    '../_base_/models/agw_r18_synthreid_vi.py',
    '../_base_/datasets/synthreid_vi.py',
    '../_base_/schedules/synthreid_vi_adam_12e.py',
    '../_base_/default_runtime.py',
]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval={{_base_.max_epochs}}))
randomness = dict(seed=0)
