"""mammo-batch: batch inference for screening mammography recall models.

The subsystems live in sibling folders and install as subpackages:
``mammo_batch.engine`` (runtime), ``mammo_batch.train`` (finetuning),
``mammo_batch.build`` (checkpoints -> model bundle).
"""

__version__ = "0.1.0"
