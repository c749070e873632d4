# Ablation "only L+": the dual causality loss without its L- half.
_base_ = ['./snr_r18_synthreid.py']

model = dict(aux_losses=dict(snr=dict(use_pos=True, use_neg=False)))
