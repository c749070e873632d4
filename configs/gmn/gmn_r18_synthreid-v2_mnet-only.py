# Ablation on SynthReID v2: M-Net and L_gmn only (no DP, no PIC).
_base_ = './gmn_r18_synthreid-v2.py'

model = dict(head=dict(dp=None, pic=None))
