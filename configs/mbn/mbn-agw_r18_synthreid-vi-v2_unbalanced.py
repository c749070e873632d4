# MBN twin of agw_r18_synthreid-vi-v2_unbalanced.py: the MBN model of
# mbn-agw_r18_synthreid-vi-v2.py on batches whose modality mix changes from
# batch to batch (1 to 3 of each identity's 4 images infrared).
_base_ = ['./mbn-agw_r18_synthreid-vi-v2.py']

# SynthReID-vi v2.1 (ir_luminance=0.5), where this pair was measured; the
# demo it varies reads v2.2 (0.7) since 2026-12-08.
ir_luminance = 0.5
data_root = 'data/synthreid-vi-v2.1/'
train_dataloader = dict(
    sampler=dict(infrared_instances=(1, 3)),
    dataset=dict(ir_luminance=ir_luminance, data_root=data_root))
val_dataloader = dict(
    dataset=dict(ir_luminance=ir_luminance, data_root=data_root))
test_dataloader = val_dataloader
