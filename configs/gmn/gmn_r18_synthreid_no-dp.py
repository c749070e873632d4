# Ablation: M-Net + PIC, without DP.
_base_ = './gmn_r18_synthreid.py'

model = dict(head=dict(dp=None))
