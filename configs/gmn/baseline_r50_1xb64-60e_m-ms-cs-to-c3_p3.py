# Baseline row of GMN, leave-one-out Protocol-3 ("combine all"): as the
# Protocol-2 baseline, but the train + query + gallery images of every
# source except CUHK-SYSU (always whole) are trained on. CUHK03-NP
# (labeled) is the target. The sources and the classifier are set here as
# well as combine_all: mmengine does not re-evaluate the dataset base with
# this file's variables (TrainSetupCheckHook refuses combine_all alone).
_base_ = './baseline_r50_1xb64-60e_m-ms-cs-to-c3.py'

combine_all = True
train_dataloader = dict(dataset=dict(datasets={{_base_.sources_p3}}))
model = dict(head=dict(num_classes={{_base_.num_classes_p3}}))
