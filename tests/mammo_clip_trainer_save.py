"""Write a Mammo-CLIP checkpoint the way the authors' own code does (PyPI `mammoclip` 0.1.8).

    python tests/mammo_clip_trainer_save.py --config-name pre_train_b2_clip hydra.run.dir=DIR
    (environment: MAMMO_CLIP_ENCODER = a torch.save'd state dict of their EfficientNet encoder,
                  MAMMO_CLIP_OUT = where to write the checkpoint)

Their `train.py`: hydra composes the packaged config (`codebase/configs`), `OmegaConf.resolve`,
their `convert_dictconfig_to_dict` (which leaves list values as omegaconf ListConfig, each still
pointing at its DictConfig parent); their `trainer.run` adds the scheduler's step counts to the
config, builds their AdamW and warm-up cosine scheduler, and `torch.save`s {model, optimizer,
scheduler, config, epoch, train_loss}. This script calls their functions for each of those
steps, and builds the image encoder with their own EfficientNet class; only the data loading
and the text tower are left out (the encoder's weights are given). Their files are loaded one
by one (mammo_clip_authors.py): their package's __init__ imports their whole training stack.
"""

from __future__ import annotations

import os

import hydra
import torch
from mammo_clip_authors import codebase, their_encoder, their_module
from omegaconf import DictConfig, OmegaConf

BATCHES_PER_EPOCH = 40  # len(train_dataloader) in their trainer; any positive number
utils = their_module("mammoclip_utils", "breastclip/util/utils.py")
optimizers = their_module("mammoclip_optimizer", "breastclip/optimizer")
schedulers = their_module("mammoclip_scheduler", "breastclip/scheduler")


def clip_model(variant: str) -> torch.nn.Module:
    """BreastClip's parameter layout: their encoder class and the projections."""
    encoder = their_encoder(variant)
    encoder.load_state_dict(torch.load(os.environ["MAMMO_CLIP_ENCODER"], weights_only=True))
    model = torch.nn.Module()
    model.image_encoder = encoder
    model.image_projection = torch.nn.Module()
    model.image_projection.projection = torch.nn.Linear(8, 4, bias=False)
    model.logit_scale = torch.nn.Parameter(torch.tensor(2.65))
    return model


@hydra.main(version_base=None, config_path=str(codebase() / "configs"), config_name="pre_train_b2_clip")
def main(cfg: DictConfig) -> None:
    OmegaConf.resolve(cfg)  # as their train.py
    cfg = utils.convert_dictconfig_to_dict(cfg)
    scheduler_config = cfg["scheduler"]["config"]  # as their trainer.run
    scheduler_config["total_steps"] = BATCHES_PER_EPOCH * scheduler_config["total_epochs"]
    scheduler_config["warmup_steps"] = BATCHES_PER_EPOCH * scheduler_config["warmup_epochs"]
    variant = "b5" if "b5" in cfg["model"]["image_encoder"]["name"] else "b2"
    model = clip_model(variant)
    optimizer = optimizers.build_optimizer(model, cfg["optimizer"])
    scheduler = schedulers.build_scheduler(optimizer, cfg["scheduler"])
    # One step on the small tensors only, so the optimizer holds real Adam state without a
    # copy of the whole encoder's moments (hundreds of MB for B5).
    model.logit_scale.grad = torch.ones(())
    model.image_projection.projection.weight.grad = torch.ones(4, 8)
    optimizer.step()
    scheduler.step()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "config": cfg, "epoch": 10,
                "train_loss": torch.tensor(0.0) + torch.tensor(1.25)},  # their running average
               os.environ["MAMMO_CLIP_OUT"])


if __name__ == "__main__":
    main()
