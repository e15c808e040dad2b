"""The Mammo-CLIP authors' own code (PyPI `mammoclip` 0.1.8, its `codebase/` folder), file by file.

    encoder = their_encoder("b2")          # their EfficientNet class (efficientnet_custom.py)
    utils = their_module("mc_utils", "breastclip/util/utils.py")

Importing their `breastclip` package itself pulls in transformers, tensorboard and the rest of
their training stack (and `breastclip/model/modules/__init__.py` imports transformers too), none
of which the tests need; so the files that matter are loaded on their own, unchanged.
Install: `pip install --no-deps mammoclip==0.1.8` (pyproject's `test-train` note).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import torch


def codebase() -> Path | None:
    spec = importlib.util.find_spec("codebase")
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def their_module(name: str, relative: str) -> types.ModuleType:
    """One of their files, or a package folder with its __init__ (for relative imports)."""
    if name in sys.modules:
        return sys.modules[name]
    path = codebase() / relative
    folder = path.is_dir()
    spec = importlib.util.spec_from_file_location(
        name, path / "__init__.py" if folder else path, submodule_search_locations=[str(path)] if folder else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def their_submodule(package: str, relative_folder: str, name: str) -> types.ModuleType:
    """`package.name` from one of their folders, without running the folder's __init__."""
    if package not in sys.modules:
        shell = types.ModuleType(package)
        shell.__path__ = [str(codebase() / relative_folder)]
        sys.modules[package] = shell
    return importlib.import_module(f"{package}.{name}")


def their_encoder(variant: str) -> torch.nn.Module:
    """Their image encoder as their model builder makes it (`EfficientNet.from_pretrained(
    "efficientnet-bX", num_classes=1)`, breastclip/model/modules/__init__.py), without the
    download: from_name builds the same modules, and the weights are loaded by the caller."""
    custom = their_submodule("mammoclip_modules", "breastclip/model/modules", "efficientnet_custom")
    return custom.EfficientNet.from_name(f"efficientnet-{variant}", num_classes=1)
