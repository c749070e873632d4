# mbn-agw_r18-onestream_synthreid-vi-v2.py (one-stream ResNet-18, MBN in
# every norm layer, the stem included) on SynthReID-vi v2 rendered with
# ir_contrast=0.5: infrared grey levels halved around mid-grey, a per-channel
# affine change of the input that the stem's MBN removes (up to rounding
# and the zero padding at borders). Its twin:
# agw_r18-onestream_synthreid-vi-v2_ir-contrast-0.5.py (docs/benchmarks.md).
# A folder holds one parameter set, so this setting has its own data_root.
_base_ = ['./mbn-agw_r18-onestream_synthreid-vi-v2.py']

ir_contrast = 0.5
data_root = 'data/synthreid-vi-v2.1-ir-contrast-0.5/'
synth = dict(ir_contrast=ir_contrast)  # the base's settings, for readers
train_dataloader = dict(
    dataset=dict(ir_contrast=ir_contrast, data_root=data_root))
val_dataloader = dict(
    dataset=dict(ir_contrast=ir_contrast, data_root=data_root))
test_dataloader = val_dataloader
