# Sensitivity to lambda (the weight of L_pic), SynthReID v2: 0.1 instead of
# the calibrated 10 (specs/gmn.md section 6 sweeps 0.01-100). lambda = 0 is
# the no-PIC ablation (gmn_r18_synthreid-v2_no-pic.py).
_base_ = './gmn_r18_synthreid-v2.py'

model = dict(head=dict(pic=dict(weight=0.1)))
