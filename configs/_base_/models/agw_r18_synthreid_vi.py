# The AGW model of the SynthReID-vi CPU demos: agw_r50.py's two-stream
# network as ResNet-18 (random init: nothing is downloaded) with one
# non-local block in layer2 and layer3, GeM, BNNeck, CE + WRT. Shared by
# the SynthReID-vi configs of configs/mbn/ (both releases); an MBN twin sets
# backbone.norm_cfg, a one-stream config replaces the backbone.
_base_ = ['./agw_r50.py']

model = dict(
    backbone=dict(depth=18, non_local_stages=(0, 1, 1, 0), init_cfg=None),
    head=dict(in_channels=512, num_classes=180))  # 150 train + 30 val ids
