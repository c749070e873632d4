# Ablation "only L-" on SynthReID v2: snr_r18_synthreid-v2.py with the dual
# causality loss without its L+ half.
_base_ = ['./snr_r18_synthreid-v2.py']

model = dict(aux_losses=dict(snr=dict(use_pos=False, use_neg=True)))
