# agw_r18_synthreid-vi-v2.py (plain BN) on SynthReID-vi v2 rendered
# with ir_gap=1.0: the infrared sensor's tone curve and coarse-pitch noise,
# differences a per-modality stem does not remove (docs/datasets.md). One
# point of MBN - BN against the measured modality gap (docs/benchmarks.md);
# its twin: mbn-agw_r18_synthreid-vi-v2_ir-gap-1.0.py.
# A folder holds one parameter set, so this setting has its own data_root.
# SynthReID-vi v2.1 (ir_luminance=0.5), where this pair was measured; the
# demo it varies reads v2.2 (0.7) since 2026-12-08.
_base_ = ['./agw_r18_synthreid-vi-v2.py']

ir_gap = 1.0
ir_luminance = 0.5
data_root = 'data/synthreid-vi-v2.1-ir-gap-1.0/'
synth = dict(ir_gap=ir_gap, ir_luminance=ir_luminance)  # for readers
train_dataloader = dict(
    dataset=dict(
        ir_gap=ir_gap, ir_luminance=ir_luminance, data_root=data_root))
val_dataloader = dict(
    dataset=dict(
        ir_gap=ir_gap, ir_luminance=ir_luminance, data_root=data_root))
test_dataloader = val_dataloader
