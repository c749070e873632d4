# The SNR authors' --only-N ablation on SynthReID v2: snr_r18_synthreid-v2.py
# with the dual causality loss reduced to its anchor-negative terms,
# sp(D0_an - D+_an) + sp(D-_an - D0_an) (configs/snr/README.md). Not the
# paper's "only L-" half (snr_r18_synthreid-v2_no-lplus.py).
_base_ = ['./snr_r18_synthreid-v2.py']

model = dict(aux_losses=dict(snr=dict(terms=('pos_an', 'neg_an'))))
