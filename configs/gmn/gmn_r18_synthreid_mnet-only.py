# Ablation: M-Net and L_gmn only (no DP, no PIC).
_base_ = './gmn_r18_synthreid.py'

model = dict(head=dict(dp=None, pic=None))
