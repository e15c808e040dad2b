"""The `mammo-batch` command: the engine's commands, plus `train`, `build`, `demo` and `bench`.

Those four need the `train` extra (torch, timm); they are imported only when run, so
scoring never imports torch and a lean install still has a working CLI.
"""

from __future__ import annotations

import importlib

import click

from mammo_batch.engine.cli import cli as engine_cli

LAZY_COMMANDS = {
    "train": ("mammo_batch.train.cli", "train", "Finetune one fold model."),
    "build": ("mammo_batch.build.cli", "build", "Compile trained runs into a model bundle."),
    "demo": ("mammo_batch.build.demo", "demo", "Synthesize, train, build and score, end to end."),
    "import-seed": ("mammo_batch.build.import_seed", "import_seed_command",
                    "Import the seed's fold checkpoints into a model bundle."),
    "build-engines": ("mammo_batch.build.engines_cli", "build_engines_command",
                      "TensorRT engines for this GPU from a bundle's FP16 ONNX (needs TensorRT)."),
    "bench": ("mammo_batch.bench.cli", "bench", "Time mammo-batch against the seed's pipeline."),
}


class MammoBatchGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*engine_cli.list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS:
            return _load(name)
        return engine_cli.get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the lazy commands by their summary: `--help` must not import torch."""
        rows = [(name, engine_cli.get_command(ctx, name).get_short_help_str(60))
                for name in engine_cli.list_commands(ctx)]
        rows += [(name, summary + " [train extra]") for name, (_, _, summary) in LAZY_COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


def _load(name: str) -> click.Command:
    module_name, attribute, summary = LAZY_COMMANDS[name]
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {"torch", "timm", "torchvision", "sklearn"}:
            return _missing_extra(name, summary, exc.name)
        raise


def _missing_extra(name: str, summary: str, module: str) -> click.Command:
    @click.command(name, help=f"{summary} (needs the `train` extra)",
                   context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def unavailable() -> None:
        click.echo(f"Error: `mammo-batch {name}` needs the train extra ({module} is not installed): "
                   "pip install 'mammo-batch[train]'", err=True)
        raise SystemExit(2)

    return unavailable


@click.group(cls=MammoBatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mammo-batch", prog_name="mammo-batch")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def cli(verbose: bool) -> None:
    """Batch inference for screening mammography recall models."""
    engine_cli.callback(verbose=verbose)


def main() -> None:
    cli(prog_name="mammo-batch")
