# Sensitivity to E_dp (DP's warm-up), SynthReID v2: DP on from epoch 5
# instead of epoch 2, so only the last 3 of the 8 epochs (specs/gmn.md
# section 5 sweeps {0, 5, 10, 20}; 10 and 20 lie past this 8-epoch
# schedule: DP never switches on).
_base_ = './gmn_r18_synthreid-v2.py'

model = dict(head=dict(dp=dict(warmup_epochs=5)))
