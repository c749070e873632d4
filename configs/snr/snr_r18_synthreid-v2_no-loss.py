# Ablation "SNR w/o L_SNR" on SynthReID v2: snr_r18_synthreid-v2.py's SNR
# modules without the dual causality loss (the modules' auxiliary outputs
# are discarded on purpose: snr=None). Compared with the full SNR and the
# baseline on the four v2 targets (docs/benchmarks.md).
_base_ = ['./snr_r18_synthreid-v2.py']

model = dict(aux_losses=dict(snr=None), aux_stage_weights=None)
