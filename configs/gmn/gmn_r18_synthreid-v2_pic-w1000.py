# Sensitivity to lambda (the weight of L_pic), SynthReID v2: 1000, past the
# spec's sweep (specs/gmn.md section 6 sweeps 0.01-100), to see whether the
# step at 100 continues. lambda = 0 is the no-PIC ablation
# (gmn_r18_synthreid-v2_no-pic.py).
_base_ = './gmn_r18_synthreid-v2.py'

model = dict(head=dict(pic=dict(weight=1000.0)))
