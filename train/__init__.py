"""Finetuning of fold models (datasets, backbones, training loop). Needs the ``train`` extra."""
