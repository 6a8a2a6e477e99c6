"""Training recipes: the published ESPNet two-stage schedule, ESPNet-C alone, and ENet.

A recipe is a partial configuration; the config file and command-line flags override it.

ESPNet (Mehta et al., ECCV 2018, and the original code): stage 1 trains ESPNet-C against
labels down-sampled x8; stage 2 trains ESPNet, its encoder initialised from stage 1. Adam,
lr 5e-4, weight decay 5e-4, lr halved every 100 epochs, 300 epochs per stage, class weights
1/ln(1.10 + p_c), batch 12 (ESPNet-C) and 6 (ESPNet).

Fine-tuning (this project's, not a paper's): one stage of ESPNet end to end, initialised from a
trained model (``init_from``, e.g. the published ``espnet-p2q8-cityscapes``) with its
architecture (``model: init``: alpha2, alpha3, K, decoder variant); Adam, lr 5e-4
with a poly decay (a short schedule ends at a small learning rate), weight decay 5e-4, class
weights 1/ln(1.10 + p_c), batch 4.

ENet (Paszke et al., 2016): Adam, lr 5e-4, weight decay 2e-4, class weights 1/ln(1.02 + p_c),
batch 10; trained here end to end in one stage.

ERFNet (Romera et al., 2017, and the authors' code): stage 1 trains the encoder with a 1x1
classifier against labels down-sampled x8, stage 2 the whole network, its encoder initialised
from stage 1 (the stage-1 classifier is dropped); Adam, lr 5e-4, weight decay 2e-4, batch 6,
150 epochs per stage, class weights 1/ln(1.10 + p_c). The paper halves the learning rate
"when the training error becomes stagnant"; the fixed step here (every 50 epochs) stands in
for that, as the schedules of this trainer are fixed steps.
"""
import copy

_OPTIM = {"lr": 5e-4, "weight_decay": 5e-4, "lr_step_epochs": 100, "lr_gamma": 0.5}

RECIPES = {
    "espnet": {
        "optim": dict(_OPTIM),
        "class_weight_c": 1.10,
        "stages": [
            {"name": "encoder", "arch": "espnet-c", "label_stride": 8, "epochs": 300,
             "batch_size": 12},
            {"name": "decoder", "arch": "espnet", "init_from": "encoder", "label_stride": 1,
             "epochs": 300, "batch_size": 6},
        ],
    },
    "espnet-c": {
        "optim": dict(_OPTIM),
        "class_weight_c": 1.10,
        "stages": [{"name": "encoder", "arch": "espnet-c", "label_stride": 8, "epochs": 300,
                    "batch_size": 12}],
    },
    "erfnet": {
        "optim": dict(_OPTIM, weight_decay=2e-4, lr_step_epochs=50),
        "class_weight_c": 1.10,
        "stages": [
            {"name": "encoder", "arch": "erfnet-encoder", "label_stride": 8, "epochs": 150,
             "batch_size": 6},
            {"name": "decoder", "arch": "erfnet", "init_from": "encoder", "label_stride": 1,
             "epochs": 150, "batch_size": 6},
        ],
    },
    "finetune": {
        "model": "init",  # the architecture of init_from's model
        "optim": dict(_OPTIM, schedule="poly"),
        "class_weight_c": 1.10,
        "stages": [{"name": "finetune", "arch": "espnet", "label_stride": 1, "epochs": 20,
                    "batch_size": 4}],
    },
    "enet": {
        "optim": dict(_OPTIM, weight_decay=2e-4),
        "class_weight_c": 1.02,
        "stages": [{"name": "enet", "arch": "enet", "label_stride": 1, "epochs": 300,
                    "batch_size": 10}],
    },
}


def recipe(name: str) -> dict:
    try:
        return copy.deepcopy(RECIPES[name])
    except KeyError:
        raise ValueError("unknown recipe %r; known: %s" % (name, ", ".join(RECIPES))) from None
