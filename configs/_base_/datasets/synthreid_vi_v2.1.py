# SynthReID-vi v2.1 (the default from 2026-12-04 to 2026-12-08): v2.2
# (synthreid_vi.py) with half the infrared intensity from the visible
# luminance, ir_luminance=0.5, where v2.2 takes 0.7. The same identities,
# cameras and visible images; the AGW demo reaches IR->visible R1 9.2 on
# it. The one-stream, ir_gap, ir_contrast and unbalanced-batch MBN
# experiments were measured here and their configs read it
# (docs/benchmarks.md).
_base_ = ['./synthreid_vi.py']

ir_luminance = 0.5
data_root = 'data/synthreid-vi-v2.1/'
synth = dict(ir_luminance=ir_luminance)  # the base's settings, for readers
train_dataloader = dict(
    dataset=dict(ir_luminance=ir_luminance, data_root=data_root))
val_dataloader = dict(
    dataset=dict(ir_luminance=ir_luminance, data_root=data_root))
test_dataloader = val_dataloader
