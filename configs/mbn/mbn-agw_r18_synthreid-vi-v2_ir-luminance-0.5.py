# mbn-agw_r18_synthreid-vi-v2.py (MBN) on SynthReID-vi v2.1: infrared
# half dye response, half visible luminance (ir_luminance=0.5), the demo's
# data from 2026-12-04 to 2026-12-08 (v2.2 takes 0.7). The ir_gap=0 point
# of the ir_gap sweep and the reference of the unbalanced-batch pair, which
# were measured on v2.1 (docs/benchmarks.md); its twin:
# agw_r18_synthreid-vi-v2_ir-luminance-0.5.py.
# A folder holds one parameter set, so this setting has its own data_root.
_base_ = ['./mbn-agw_r18_synthreid-vi-v2.py']

ir_luminance = 0.5
data_root = 'data/synthreid-vi-v2.1/'
synth = dict(ir_luminance=ir_luminance)  # the base's settings, for readers
train_dataloader = dict(
    dataset=dict(ir_luminance=ir_luminance, data_root=data_root))
val_dataloader = dict(
    dataset=dict(ir_luminance=ir_luminance, data_root=data_root))
test_dataloader = val_dataloader
