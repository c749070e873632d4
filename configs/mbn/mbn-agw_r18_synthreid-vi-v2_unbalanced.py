# MBN twin of agw_r18_synthreid-vi-v2_unbalanced.py: the MBN model of
# mbn-agw_r18_synthreid-vi-v2.py on batches whose modality mix changes from
# batch to batch (1 to 3 of each identity's 4 images infrared).
_base_ = ['./mbn-agw_r18_synthreid-vi-v2.py']

train_dataloader = dict(sampler=dict(infrared_instances=(1, 3)))
