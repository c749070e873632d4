# Ablation "SNR w/o L_SNR": the full SNR modules, no dual causality loss.
_base_ = ['./snr_r18_synthreid.py']

model = dict(aux_loss=None)
