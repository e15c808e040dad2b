"""Checkpoint importers (train/importers/) against the peers' own code, in the peers' file layouts.

Random weights (BatchNorm statistics too) are saved exactly as each peer saves them; the
imported timm model must compute what the peer's model computes. Mammo-CLIP's encoder is
lukemelas' `efficientnet_pytorch` (PyPI), ConvNeXt-S and ResNet18 are timm's own layouts.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
efficientnet_pytorch = pytest.importorskip("efficientnet_pytorch")

from click.testing import CliRunner  # noqa: E402

from mammo_batch.build.export import export_onnx  # noqa: E402
from mammo_batch.build.parity import check_parity  # noqa: E402
from mammo_batch.cli import cli  # noqa: E402
from mammo_batch.train.importers import IMPORTERS, parse_init  # noqa: E402
from mammo_batch.train.importers.common import read_checkpoint  # noqa: E402
from mammo_batch.train.importers.data_globals import EnumValue  # noqa: E402
from mammo_batch.train.init_weights import InitWeightsError, load_init  # noqa: E402
from mammo_batch.train.models import ProbabilityModel, create_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL_SIZES = [(128, 64), (257, 129)]


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random parameters and BatchNorm statistics, so that every tensor's mapping matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.dtype.is_floating_point:
                values = torch.rand(tensor.shape, generator=generator)
                tensor.copy_(values * 0.5 + 0.5 if "running_var" in name else (values - 0.5) * 0.2)
    return model.eval()


def lukemelas(variant: str, seed: int = 0) -> torch.nn.Module:
    return randomise(efficientnet_pytorch.EfficientNet.from_name(f"efficientnet-{variant}"), seed)


def lukemelas_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mammo-CLIP's encoder output: average-pooled features (its forward without _fc)."""
    with torch.no_grad():
        return model._avg_pooling(model.extract_features(x)).flatten(1)


def encoder_state(model: torch.nn.Module) -> dict:
    return {k: v for k, v in model.state_dict().items() if not k.startswith("_fc.")}  # Mammo-CLIP has no _fc


AUTHORS_SAVE = Path(__file__).resolve().parents[1] / "mammo_clip_trainer_save.py"
CONFIGS = {"b2": "pre_train_b2_clip", "b5": "pre_train_b5_clip"}


def require_the_authors_code() -> None:
    for needed in ("codebase", "hydra", "omegaconf"):
        if importlib.util.find_spec(needed) is None:
            pytest.skip(f"{needed} missing: pip install omegaconf==2.3.0 'hydra-core>=1.3,<1.4' and "
                        "pip install --no-deps mammoclip==0.1.8 (the `test-train` extra's note)")


def save_mammo_clip(path: Path, variant: str, encoder: torch.nn.Module) -> None:
    """A checkpoint written by the Mammo-CLIP authors' own code (PyPI `mammoclip` 0.1.8): their
    hydra config, their convert_dictconfig_to_dict, their encoder class, optimizer and scheduler,
    their trainer's torch.save (tests/mammo_clip_trainer_save.py), around `encoder`'s weights."""
    weights = path.with_suffix(".encoder.pt")
    torch.save(encoder_state(encoder), weights)
    env = {**os.environ, "MAMMO_CLIP_ENCODER": str(weights), "MAMMO_CLIP_OUT": str(path),
           "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(AUTHORS_SAVE), "--config-name", CONFIGS[variant],
                    f"hydra.run.dir={path.parent / ('hydra-' + variant)}"], env=env, check=True,
                   capture_output=True, timeout=300)
    weights.unlink()


@pytest.fixture(scope="module")
def mammo_clip_files(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, torch.nn.Module]]:
    """variant -> (the authors' checkpoint file, the authors' encoder (random weights) it holds),
    written once per module (a subprocess each: hydra owns its process)."""
    folder, files = tmp_path_factory.mktemp("mammo-clip"), {}

    def get(variant: str) -> tuple[Path, torch.nn.Module]:
        require_the_authors_code()
        if variant not in files:
            from mammo_clip_authors import their_encoder

            encoder, path = randomise(their_encoder(variant)), folder / f"{variant}-model-best-epoch-10.tar"
            save_mammo_clip(path, variant, encoder)
            files[variant] = path, encoder
        return files[variant]
    return get


def authors_features(encoder: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The authors' encoder's own forward: average-pooled features, flattened (eval: no dropout)."""
    with torch.no_grad():
        return encoder(x)


def timm_features(net, x: torch.Tensor) -> torch.Tensor:
    backbone = net.backbone
    with torch.no_grad():
        return backbone.forward_head(backbone.forward_features(x), pre_logits=True)


def relative_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# --- Mammo-CLIP ------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["b2", "b5"])
def test_mammo_clip_matches_the_authors_encoder_at_small_and_odd_sizes(variant: str, mammo_clip_files) -> None:
    path, reference = mammo_clip_files(variant)
    net = create_model(f"tf_efficientnet_{variant}", init=f"mammo-clip:{path}").eval()  # no trust_pickle
    plain = timm.create_model(f"tf_efficientnet_{variant}", num_classes=0).eval()
    trunk = {k: v for k, v in net.backbone.state_dict().items() if not k.startswith("classifier.")}
    plain.load_state_dict(trunk)
    worst_plain = 0.0
    for height, width in SMALL_SIZES:
        x = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(height))
        assert relative_diff(timm_features(net, x), authors_features(reference, x)) <= 1e-4
        with torch.no_grad():  # the feature maps before pooling, where padding shows
            want = reference.extract_features(x)
            ours, theirs = net.backbone.forward_features(x), plain.forward_features(x)
        assert relative_diff(ours, want) <= 1e-4, (variant, height, width)
        worst_plain = max(worst_plain, relative_diff(theirs, want) if theirs.shape == want.shape else np.inf)
    assert worst_plain > 1e-3  # timm's dynamic padding alone is not exact: the test can tell


def test_the_authors_file_holds_omegaconf_and_reads_as_plain_data(mammo_clip_files, monkeypatch) -> None:
    path, _ = mammo_clip_files("b2")
    with pytest.raises(pickle.UnpicklingError, match=r"omegaconf\.listconfig\.ListConfig"):
        torch.load(path, map_location="cpu", weights_only=True)  # the failure: the fixture is real
    for module in ("omegaconf", "omegaconf.dictconfig", "omegaconf.listconfig", "omegaconf.nodes"):
        monkeypatch.setitem(sys.modules, module, None)  # any import of omegaconf would now fail
    checkpoint = read_checkpoint(path)
    config = checkpoint["config"]
    assert config["transform"]["train"]["transform"]["affine_scale"] == [0.8, 1.2]  # was a ListConfig
    assert config["model"]["image_encoder"]["name"] == "tf_efficientnetv2-detect"
    assert config["scheduler"]["config"]["total_steps"] == 600  # set by their trainer, 40 x 15 epochs
    assert config["base"]["output"]["checkpoint"].endswith("hydra-b2/checkpoints/")  # resolved by hydra
    assert checkpoint["optimizer"]["param_groups"][0]["initial_lr"] == 5e-5  # their adamw.yaml
    assert checkpoint["scheduler"]["wsteps"] == 40


def test_train_cli_takes_the_authors_file_without_trust_pickle(mammo_clip_files, tmp_path: Path) -> None:
    path, _ = mammo_clip_files("b2")
    labels, images = tmp_path / "labels.csv", tmp_path / "images"
    labels.write_text("")
    images.mkdir()
    result = CliRunner().invoke(cli, ["train", "--labels", str(labels), "--images", str(images), "--out",
                                      str(tmp_path / "run"), "--arch", "tf_efficientnet_b2",
                                      "--init", f"mammo-clip:{path}"])
    assert str(path) not in result.output and "pickle" not in result.output  # init passed; the
    assert "labels" in result.output.lower() or "empty" in result.output.lower()  # empty labels stop it


def test_mammo_clip_report_and_arch_checks(mammo_clip_files) -> None:
    path, encoder = mammo_clip_files("b2")
    net = create_model("tf_efficientnet_b2")
    report = load_init(net, path, "mammo-clip", arch="tf_efficientnet_b2")
    assert report.mapped == len(report.loaded) == len(encoder_state(encoder))
    assert report.missing == ["classifier.1.bias", "classifier.1.weight", "classifier.4.bias",
                              "classifier.4.weight"]  # the seed's head starts fresh
    assert "logit_scale" in report.ignored and not report.unexpected
    with pytest.raises(InitWeightsError, match="for --arch tf_efficientnet_b2, not tf_efficientnet_b5"):
        create_model("tf_efficientnet_b5", init=f"mammo-clip:{path}")
    with pytest.raises(InitWeightsError, match="does not fit the model"):
        load_init(create_model("tf_efficientnet_b5"), path, "mammo-clip")


def test_fixed_pads_survive_onnx_export(mammo_clip_files, tmp_path: Path) -> None:
    path, _ = mammo_clip_files("b2")
    model = ProbabilityModel(create_model("tf_efficientnet_b2", init=f"mammo-clip:{path}")).eval()
    export_onnx(model, tmp_path / "b2.onnx", 257, 129)
    images = np.random.default_rng(0).integers(0, 256, (2, 257, 129), dtype=np.uint8)
    report = check_parity(model, tmp_path / "b2.onnx", None, images)
    assert report.onnx_max_diff <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["b5"])  # B5: where timm's padding is furthest off (~45 s)
def test_mammo_clip_matches_the_authors_encoder_at_the_seeds_size(variant: str, mammo_clip_files) -> None:
    path, reference = mammo_clip_files(variant)
    net = create_model(f"tf_efficientnet_{variant}", init=f"mammo-clip:{path}").eval()
    x = torch.randn(1, 3, 1536, 768, generator=torch.Generator().manual_seed(1))
    assert relative_diff(timm_features(net, x), authors_features(reference, x)) <= 1e-4


# --- what a checkpoint may hold besides tensors -----------------------------------------------

class Opaque:
    """A class of the saving process's own, unknown where the file is read."""

    def __init__(self) -> None:
        self.threshold = 0.5


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Huge:
    def __reduce__(self):
        return (bytes, (10**12,))  # a type named as metadata may not be called: 1 TB otherwise


def save_with_config(path: Path, config: object) -> None:
    encoder = {f"image_encoder.{k}": v for k, v in encoder_state(lukemelas("b2")).items()}
    torch.save({"model": encoder, "config": config, "epoch": 1}, path)


def test_data_types_read_without_trust(tmp_path: Path) -> None:
    from collections import defaultdict

    from hydra.types import RunMode

    config = {"cache": defaultdict(dict, {"a": {"b": 1}}), "mode": RunMode.MULTIRUN,
              "auc": np.float64(0.77), "steps": np.int64(3), "args": argparse.Namespace(gp="max")}
    save_with_config(tmp_path / "data.tar", config)
    read = read_checkpoint(tmp_path / "data.tar")["config"]
    assert read["cache"] == {"a": {"b": 1}} and type(read["cache"]) is dict  # the factory is dropped
    assert read["mode"] == EnumValue("hydra.types.RunMode", 2)
    assert read["auc"] == 0.77 and read["steps"] == 3 and read["args"].gp == "max"


def test_a_whole_omegaconf_config_reads_as_plain_containers(tmp_path: Path) -> None:
    """A trainer that saves its DictConfig as it is (not half converted, as Mammo-CLIP's)."""
    omegaconf = pytest.importorskip("omegaconf")
    config = omegaconf.OmegaConf.create({"missing": "???", "none": None, "link": "${nested.list}",
                                         "nested": {"list": [1, {"deep": 2.5}], "flag": True},
                                         "text": "b2", "raw": b"\x00"})
    save_with_config(tmp_path / "dictconfig.tar", config)
    assert read_checkpoint(tmp_path / "dictconfig.tar")["config"] == {
        "missing": "???", "none": None, "link": "${nested.list}",  # values as stored, never resolved
        "nested": {"list": [1, {"deep": 2.5}], "flag": True}, "text": "b2", "raw": b"\x00"}


def test_other_objects_are_refused_by_name_and_trust_reads_them_as_stand_ins(tmp_path: Path) -> None:
    path = tmp_path / "opaque.tar"
    save_with_config(path, {"model": {"image_encoder": {"name": "tf_efficientnetv2-detect"}}, "x": Opaque()})
    with pytest.raises(InitWeightsError, match=r"pickled \S*Opaque\b.*--trust-pickle reads it"):
        IMPORTERS["mammo-clip"](path)
    weights = IMPORTERS["mammo-clip"](path, trust_pickle=True)
    assert weights.arch == "tf_efficientnet_b2"


def test_code_in_a_checkpoint_is_refused_with_or_without_trust(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.tar"
    save_with_config(path, {"affine_scale": [0.8, 1.2], "hook": Payload(marker)})
    with pytest.raises(InitWeightsError, match=r"pickled (posix|os)\.system"):
        IMPORTERS["mammo-clip"](path)
    with pytest.raises(InitWeightsError, match=r"unsafe pickle: the file calls (posix|os)\.system"):
        IMPORTERS["mammo-clip"](path, trust_pickle=True)
    assert not marker.exists()
    save_with_config(tmp_path / "huge.tar", {"object_type": dict, "huge": Huge()})
    for trust in (False, True):
        with pytest.raises(InitWeightsError, match=r"calls builtins\.bytes\(\.\.\.\); refused"):
            IMPORTERS["mammo-clip"](tmp_path / "huge.tar", trust_pickle=trust)


# --- RSNA ConvNeXt ---------------------------------------------------------------------------

def rsna_convnext(seed: int) -> torch.nn.Module:
    return randomise(timm.create_model("convnext_small", num_classes=1, global_pool="max"), seed)


def save_timm_checkpoint(path: Path, model, ema=None) -> None:
    """timm's CheckpointSaver layout (train.py of the RSNA winner's vendored timm)."""
    checkpoint = {"epoch": 7, "arch": "convnext_small.fb_in22k_ft_in1k_384", "state_dict": model.state_dict(),
                  "optimizer": {"state": {}, "param_groups": []}, "version": 2,
                  "args": argparse.Namespace(model="convnext_small", gp="max", drop=0.5,
                                             input_size=[3, 2048, 1024]),
                  "amp_scaler": {"scale": 65536.0}, "metric": 0.52}
    if ema is not None:
        checkpoint["state_dict_ema"] = ema.state_dict()
    torch.save(checkpoint, path)


def test_rsna_convnext_takes_the_ema_weights(tmp_path: Path) -> None:
    plain, ema = rsna_convnext(0), rsna_convnext(1)
    save_timm_checkpoint(tmp_path / "best_convnext_fold_0.pth.tar", plain, ema)
    save_timm_checkpoint(tmp_path / "no_ema.pth.tar", plain)
    x = torch.randn(2, 3, 96, 48)
    net = create_model("convnext_small", init=f"rsna-convnext:{tmp_path / 'best_convnext_fold_0.pth.tar'}")
    with torch.no_grad():
        assert relative_diff(net.backbone.eval()(x), ema(x)) <= 1e-6
    weights = IMPORTERS["rsna-convnext"](tmp_path / "no_ema.pth.tar")
    assert weights.source == "state_dict" and "no EMA" in weights.notes[0]


# --- Mirai -----------------------------------------------------------------------------------

THROWAWAY = '''
from torch import nn

class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + shortcut)

class Downsampler(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)

    def forward(self, x):
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

class RiskFactorPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.density_fc = nn.Linear(512, 4)

class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.downsampler = Downsampler()
        inplanes = 64
        for layer, planes in enumerate((64, 128, 256, 512), 1):
            setattr(self, f"layer{layer}_0", BasicBlock(inplanes, planes, 1 if layer == 1 else 2))
            setattr(self, f"layer{layer}_1", BasicBlock(planes, planes, 1))
            inplanes = planes
        self.pool = RiskFactorPool()
        self.fc = nn.Linear(512, 2)
        self.prob_of_failure_layer = nn.Linear(512, 5)

    def trunk(self, x):
        x = self.downsampler(x)
        for layer in range(1, 5):
            x = getattr(self, f"layer{layer}_1")(getattr(self, f"layer{layer}_0")(x))
        return x

class CustomResnet(nn.Module):
    def __init__(self):
        super().__init__()
        self._model = ResNet()

class Payload:
    def __reduce__(self):
        import os
        return (os.system, ("touch MARKER",))
'''


@pytest.fixture()
def mirai_files(tmp_path: Path) -> dict:
    """A Mirai-like whole-module snapshot whose classes live in a module gone at load time."""
    source = tmp_path / "src"
    source.mkdir()
    marker = tmp_path / "pwned"
    (source / "throwaway_onconet.py").write_text(THROWAWAY.replace("MARKER", str(marker)))
    sys.path.insert(0, str(source))
    try:
        module = importlib.import_module("throwaway_onconet")
        model = module.CustomResnet()
        randomise(model)
        x = torch.randn(1, 3, 128, 64)
        with torch.no_grad():
            features = model._model.trunk(x)
        files = {"zip": tmp_path / "mirai.p", "legacy": tmp_path / "mirai_legacy.p",
                 "evil": tmp_path / "evil.p"}
        torch.save({"model": torch.nn.DataParallel(model)}, files["zip"])
        torch.save(model, files["legacy"], _use_new_zipfile_serialization=False)
        torch.save({"state_dict": module.Payload()}, files["evil"])
    finally:
        sys.path.remove(str(source))
        sys.modules.pop("throwaway_onconet", None)
    (source / "throwaway_onconet.py").unlink()  # not importable when loading
    return {"x": x, "features": features, "marker": marker, **files}


def test_mirai_restricted_unpickler_maps_the_trunk(mirai_files: dict) -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("throwaway_onconet")
    for kind in ("zip", "legacy"):
        net = create_model("resnet18", init=f"mirai:{mirai_files[kind]}", trust_pickle=True).eval()
        with torch.no_grad():
            got = net.backbone.forward_features(mirai_files["x"])
        assert torch.equal(got, mirai_files["features"]), kind
    weights = IMPORTERS["mirai"](mirai_files["zip"], trust_pickle=True)
    assert any(k.endswith("pool.density_fc.weight") for k in weights.ignored)
    trunk = [k for k in timm.create_model("resnet18").state_dict() if not k.startswith("fc.")]
    assert weights.mapped == len(weights.state_dict) == len(trunk)


def test_mirai_needs_trust_and_refuses_code(mirai_files: dict) -> None:
    with pytest.raises(InitWeightsError, match="needs --trust-pickle"):
        IMPORTERS["mirai"](mirai_files["zip"])
    with pytest.raises(InitWeightsError, match=r"unsafe pickle: the file calls (posix|os)\.system"):
        IMPORTERS["mirai"](mirai_files["evil"], trust_pickle=True)
    assert not mirai_files["marker"].exists()


# --- the seed's fold checkpoints ---------------------------------------------------------------

def seed_head(in_features: int, seed: int = 3) -> torch.nn.Sequential:
    head = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(in_features, 512), torch.nn.ReLU(),
                               torch.nn.Dropout(0.1), torch.nn.Linear(512, 1))
    return randomise(head, seed)


def save_seed(path: Path, state_dict: dict) -> None:
    """Kaggle_SPR utils.save_checkpoint: numpy scalars included."""
    torch.save({"epoch": 12, "state_dict": state_dict, "best_auc": np.float64(0.771),
                "optimizer": {"state": {}, "param_groups": []}, "train_result": {"auc": np.float64(0.8)},
                "valid_result": {}, "test_result": {}}, path)


def seed_input(height: int, width: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(5)
    return torch.randint(0, 256, (2, 1, height, width), generator=generator).to(torch.uint8)


def seed_normalise(image: torch.Tensor) -> torch.Tensor:
    """What the seed's loader and wrapper do: A.Normalize(0.5, 0.5) on uint8, repeat to 3 channels."""
    return ((image.float() / 255.0 - 0.5) / 0.5).repeat(1, 3, 1, 1)


def test_seed_mammo_clip_fold_scores_as_the_seed(tmp_path: Path) -> None:
    encoder, head = lukemelas("b2", 7), seed_head(1408)
    state = {**{f"image_encoder.{k}": v for k, v in encoder_state(encoder).items()},
             **{f"classifier.{k}": v for k, v in head.state_dict().items()}}
    save_seed(tmp_path / "model_best.pth.tar", state)
    net = create_model("tf_efficientnet_b2", init=f"seed:{tmp_path / 'model_best.pth.tar'}").eval()
    for height, width in SMALL_SIZES:
        image = seed_input(height, width)
        with torch.no_grad():
            want = head(lukemelas_features(encoder, seed_normalise(image)))
            got = net(image)
        assert relative_diff(got, want) <= 1e-4


def test_seed_rsna_fold_and_refusals(tmp_path: Path) -> None:
    convnext = rsna_convnext(4)
    save_seed(tmp_path / "rsna.pth.tar", {f"model.{k}": v for k, v in convnext.state_dict().items()})
    net = create_model("convnext_small", init=f"seed:{tmp_path / 'rsna.pth.tar'}").eval()
    image = seed_input(96, 48)
    with torch.no_grad():
        assert relative_diff(net(image), convnext(seed_normalise(image))) <= 1e-5
    save_seed(tmp_path / "mirai.pth.tar", {"image_encoder.0.conv1.weight": torch.zeros(64, 3, 7, 7),
                                           "rf_pool.density_fc.weight": torch.zeros(4, 512)})
    with pytest.raises(InitWeightsError, match="FineTuneMIRAI checkpoint; not supported"):
        IMPORTERS["seed"](tmp_path / "mirai.pth.tar")
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes((tmp_path / "rsna.pth.tar").read_bytes()[:100_000])
    with pytest.raises(InitWeightsError, match=r"truncated\.pth\.tar: cannot read"):
        IMPORTERS["seed"](truncated)


# --- the CLI ---------------------------------------------------------------------------------

def test_parse_init() -> None:
    assert parse_init("mammo-clip:/w/b2.tar") == ("mammo-clip", Path("/w/b2.tar"))
    assert parse_init("/w/plain.pt") == ("auto", Path("/w/plain.pt"))
    assert parse_init("c:/w/x.pt") == ("auto", Path("c:/w/x.pt"))


def test_train_exits_2_on_a_bad_checkpoint(tmp_path: Path) -> None:
    labels, images = tmp_path / "labels.csv", tmp_path / "images"
    labels.write_text("")
    images.mkdir()
    bad = tmp_path / "b2-model-best-epoch-10.tar"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    result = CliRunner().invoke(cli, ["train", "--labels", str(labels), "--images", str(images), "--out",
                                      str(tmp_path / "run"), "--arch", "tf_efficientnet_b2",
                                      "--init", f"mammo-clip:{bad}"])
    assert result.exit_code == 2
    assert str(bad) in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
