# Sensitivity to rho (the DP rate), SynthReID v2: 0.3 instead of 0.5
# (specs/gmn.md section 5 sweeps 0.1-0.7). rho = 0 is the no-DP ablation
# (gmn_r18_synthreid-v2_no-dp.py).
_base_ = './gmn_r18_synthreid-v2.py'

model = dict(head=dict(dp=dict(rate=0.3)))
