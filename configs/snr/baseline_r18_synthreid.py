# Baseline of the SNR SynthReID ablations: the quick-start BoT recipe with
# ResNet-18 (random init) on SynthReID, exactly as
# configs/baseline/bot_r18_synthreid.py. The SNR configs of this folder
# change only the backbone plugins and the auxiliary loss.
_base_ = ['../baseline/bot_r18_synthreid.py']
