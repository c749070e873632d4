# Ablation: M-Net + PIC, without DP. (SynthReID v2)
_base_ = './gmn_r18_synthreid-v2.py'

model = dict(head=dict(dp=None))
