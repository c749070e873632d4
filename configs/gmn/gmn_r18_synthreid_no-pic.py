# Ablation: M-Net + DP, without PIC.
_base_ = './gmn_r18_synthreid.py'

model = dict(head=dict(pic=None))
