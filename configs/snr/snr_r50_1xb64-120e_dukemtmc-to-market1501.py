# SNR, single-source domain generalisation D->M: the M->D recipe with the
# source and target swapped (DukeMTMC-reID train split, 702 identities;
# Market1501 query/gallery).
_base_ = ['./snr_r50_1xb64-120e_market1501-to-dukemtmc.py']

model = dict(head=dict(num_classes=702))
# The layout of docs/datasets.md, as in _base_/datasets/dukemtmc.py.
train_dataloader = dict(
    dataset=dict(
        type='DukeMTMCReID', data_root='data/dukemtmc-reid/DukeMTMC-reID/'))
target = dict(type='Market1501', data_root='data/market1501/')
val_dataloader = dict(dataset=target)
test_dataloader = dict(dataset=target)
