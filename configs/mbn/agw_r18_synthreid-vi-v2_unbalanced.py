# Unbalanced-batch case of agw_r18_synthreid-vi-v2.py (the MBN paper's
# inter-mini-batch gap): every batch draws its own modality mix, 1 to 3 of
# each identity's 4 images infrared (visible share 25-75 %), instead of
# 2 + 2 in every batch. Same identities per batch, steps and data. Its MBN
# twin: mbn-agw_r18_synthreid-vi-v2_unbalanced.py.
_base_ = ['./agw_r18_synthreid-vi-v2.py']

train_dataloader = dict(sampler=dict(infrared_instances=(1, 3)))
