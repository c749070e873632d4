# The SNR authors' --only-P ablation on SynthReID v2: snr_r18_synthreid-v2.py
# with the dual causality loss reduced to its anchor-positive terms,
# sp(D+_ap - D0_ap) + sp(D0_ap - D-_ap) (configs/snr/README.md). Not the
# paper's "only L+" half (snr_r18_synthreid-v2_no-lminus.py).
_base_ = ['./snr_r18_synthreid-v2.py']

model = dict(aux_losses=dict(snr=dict(terms=('pos_ap', 'neg_ap'))))
