# Baseline-IBN on SynthReID v2: the v2 baseline with an IBN-Net-a backbone
# (half instance / half batch normalisation in the first norm of every block
# of stages 1-3), no SNR module and no SNR loss.
_base_ = ['./baseline_r18_synthreid-v2.py']

model = dict(backbone=dict(ibn_stages=(True, True, True, False)))
