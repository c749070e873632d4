# agw_r18-onestream_synthreid-vi-v2.py (one-stream ResNet-18, plain BN) on
# SynthReID-vi v2 rendered with ir_contrast=0.5: infrared grey levels halved
# around mid-grey, a per-channel affine change of the input (no cue lost
# beyond the grey levels merged by rounding). MBN in the stem removes it
# (up to rounding and the zero padding at borders); the shared BN of this
# model does not: a modality gap without a loss of information
# (docs/benchmarks.md). Its twin: mbn-agw_r18-onestream_..._ir-contrast-0.5.py.
# A folder holds one parameter set, so this setting has its own data_root.
_base_ = ['./agw_r18-onestream_synthreid-vi-v2.py']

ir_contrast = 0.5
data_root = 'data/synthreid-vi-v2.1-ir-contrast-0.5/'
synth = dict(ir_contrast=ir_contrast)  # the base's settings, for readers
train_dataloader = dict(
    dataset=dict(ir_contrast=ir_contrast, data_root=data_root))
val_dataloader = dict(
    dataset=dict(ir_contrast=ir_contrast, data_root=data_root))
test_dataloader = val_dataloader
