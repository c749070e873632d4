# Ablation "SNR w/o L_SNR": the full SNR modules, no dual causality loss (the
# modules' auxiliary outputs are discarded on purpose: snr=None).
_base_ = ['./snr_r18_synthreid.py']

model = dict(aux_losses=dict(snr=None), aux_stage_weights=None)
