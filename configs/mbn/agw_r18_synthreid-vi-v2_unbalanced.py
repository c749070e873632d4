# Unbalanced-batch case of agw_r18_synthreid-vi-v2.py (the MBN paper's
# inter-mini-batch gap): every batch draws its own modality mix, 1 to 3 of
# each identity's 4 images infrared (visible share 25-75 %), instead of
# 2 + 2 in every batch. Same identities per batch, steps and data. Its MBN
# twin: mbn-agw_r18_synthreid-vi-v2_unbalanced.py.
_base_ = ['./agw_r18_synthreid-vi-v2.py']

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
