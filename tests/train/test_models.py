"""Fold model architectures (train/models.py) and initial weights (train/init_weights.py).

Needs the `train` extra (torch, timm): skipped where it is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from mammo_batch.train.init_weights import IMPORTERS, InitWeightsError, load_init  # noqa: E402
from mammo_batch.train.models import (  # noqa: E402
    ARCHS,
    ProbabilityModel,
    RecallNet,
    TinyNet,
    create_model,
    list_archs,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# Small inputs keep the big backbones fast; every one downsamples by 32, so 64x32 still works.
SMALL = (64, 32)


def make(arch: str, input_dtype: str = "uint8", seed: int = 0, **kwargs) -> RecallNet:
    torch.manual_seed(seed)
    return create_model(arch, input_dtype, **kwargs).eval()


def random_uint8(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 1, height, width), generator=generator, dtype=torch.uint8)


def test_registry_names() -> None:
    assert list_archs() == ["tiny", "resnet18", "efficientnet_b2", "efficientnet_b5", "convnext_small",
                            "tf_efficientnet_b2", "tf_efficientnet_b5"]
    assert set(ARCHS) == set(list_archs())


@pytest.mark.parametrize("arch", list_archs())
def test_every_arch_runs_and_integer_and_float_inputs_agree(arch: str) -> None:
    net = make(arch)
    pixels = random_uint8(2, *SMALL)
    with torch.no_grad():
        from_uint8 = net(pixels)
        from_float = net(pixels.float())  # an augmented training batch: float, same 0..255 range
    assert from_uint8.shape == (2, 1) and from_uint8.dtype == torch.float32
    assert torch.isfinite(from_uint8).all()
    torch.testing.assert_close(from_uint8, from_float, rtol=0, atol=0)


def test_convnext_small_pools_with_max() -> None:
    assert make("convnext_small").backbone.head.global_pool.pool_type == "max"


def test_tiny_parameter_count() -> None:
    count = sum(p.numel() for p in make("tiny").parameters())
    assert 50_000 <= count <= 200_000, count


def test_dtypes_scale_to_the_same_unit_range() -> None:
    """uint8 x, uint16 x*257 and float32 x/255 are the same image to the network."""
    nets = {dtype: make("tiny", dtype) for dtype in ("uint8", "uint16", "float32")}
    pixels = random_uint8(3, 64, 32)
    inputs = {
        "uint8": pixels,
        "uint16": (pixels.to(torch.int32) * 257).to(torch.uint16),
        "float32": pixels.float() / 255.0,
    }
    with torch.no_grad():
        logits = {dtype: nets[dtype](inputs[dtype]) for dtype in nets}
    torch.testing.assert_close(logits["uint16"], logits["uint8"], rtol=0, atol=1e-5)
    torch.testing.assert_close(logits["float32"], logits["uint8"], rtol=0, atol=1e-5)


def test_probability_model_outputs_probabilities() -> None:
    model = ProbabilityModel(make("tiny")).eval()
    with torch.no_grad():
        probs = model(random_uint8(4, 64, 32))
    assert probs.shape == (4, 1) and probs.dtype == torch.float32
    assert ((probs > 0) & (probs < 1)).all()
    assert model.input_dtype == "uint8"


def test_normalisation_is_configurable_and_travels_in_the_state_dict() -> None:
    net = make("tiny", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))  # ImageNet's
    assert net.mean.shape == (1, 3, 1, 1)
    assert {"mean", "std"} <= set(net.state_dict())
    with torch.no_grad():
        assert net(random_uint8(2, 64, 32)).shape == (2, 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(arch="resnet50"), "unknown arch"),
        (dict(arch="tiny", input_dtype="int16"), "input_dtype"),
        (dict(arch="tiny", std=0.0), "std must be positive"),
        (dict(arch="tiny", mean=(0.1, 0.2)), "one value or three"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_model(**kwargs)


def test_tiny_learns_a_small_bright_lesion() -> None:
    """Global max pooling lets a 3x3 bright spot on noise decide the label within 60 steps."""
    torch.manual_seed(0)
    net = RecallNet(TinyNet()).train()
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        images = torch.randint(0, 160, (n, 1, 96, 48)).float()
        labels = (torch.arange(n) % 2).float()
        for i in range(1, n, 2):  # odd images get a lesion somewhere
            y, x = torch.randint(2, 91, ()).item(), torch.randint(2, 43, ()).item()
            images[i, 0, y:y + 3, x:x + 3] = 255.0
        return images, labels[:, None]

    for _ in range(60):
        images, labels = batch(32)
        optimiser.zero_grad()
        loss_fn(net(images), labels).backward()
        optimiser.step()
    # Judged with batch statistics (still train mode): BatchNorm's running averages lag the
    # fast-moving weights of so short a run; eval-mode behaviour is the parity tests' business.
    images, labels = batch(64)
    with torch.no_grad():
        accuracy = ((net(images) > 0).float() == labels).float().mean().item()
    assert accuracy >= 0.9, accuracy


# --- initial weights ---------------------------------------------------------------------


def outputs(net: RecallNet) -> torch.Tensor:
    with torch.no_grad():
        return net.eval()(random_uint8(2, 64, 32, seed=1))


def test_init_round_trip_of_a_plain_state_dict(tmp_path: Path) -> None:
    source, target = make("tiny", seed=1), make("tiny", seed=2)
    assert not torch.equal(outputs(source), outputs(target))
    path = tmp_path / "plain.pt"
    torch.save(source.backbone.state_dict(), path)
    report = load_init(target, path)
    torch.testing.assert_close(outputs(target), outputs(source), rtol=0, atol=0)
    assert report.source == "top level"
    assert report.loaded == sorted(source.backbone.state_dict())
    assert report.missing == report.unexpected == report.mismatched == []


def test_init_prefers_ema_and_strips_prefixes(tmp_path: Path) -> None:
    ema, plain, target = make("tiny", seed=1), make("tiny", seed=3), make("tiny", seed=2)
    path = tmp_path / "timm_style.pth"
    torch.save({
        "epoch": 7,
        "state_dict": plain.backbone.state_dict(),
        # DataParallel-style names of a whole RecallNet: "module.backbone.<key>", plus mean/std
        "state_dict_ema": {f"module.{k}": v for k, v in ema.state_dict().items()},
    }, path)
    report = load_init(target, path)
    torch.testing.assert_close(outputs(target), outputs(ema), rtol=0, atol=0)
    assert report.source == "state_dict_ema"
    assert report.unexpected == ["mean", "std"]  # RecallNet buffers, not the backbone's


def test_init_skips_shape_mismatches(tmp_path: Path) -> None:
    source, target = make("tiny", seed=1), make("tiny", seed=2)
    weights = source.backbone.state_dict()
    weights["fc.weight"] = torch.zeros(1000, 64)  # an ImageNet head
    weights["fc.bias"] = torch.zeros(1000)
    fc_before = target.backbone.fc.weight.clone()
    path = tmp_path / "imagenet_head.pt"
    torch.save({"model": weights}, path)
    report = load_init(target, path)
    assert [key for key, _, _ in report.mismatched] == ["fc.weight", "fc.bias"]
    assert report.mismatched[0][1:] == ((1000, 64), (1, 64))
    assert report.missing == ["fc.bias", "fc.weight"]
    assert torch.equal(target.backbone.fc.weight, fc_before)
    assert torch.equal(target.backbone.features[0].weight, source.backbone.features[0].weight)
    assert "2 shape-mismatched" in report.summary()


def test_create_model_with_init(tmp_path: Path) -> None:
    source = make("tiny", seed=1)
    path = tmp_path / "init.pt"
    torch.save(source.backbone.state_dict(), path)
    torch.manual_seed(5)
    torch.testing.assert_close(outputs(create_model("tiny", init=path)), outputs(source), rtol=0, atol=0)


def test_init_refuses_a_pickled_module(tmp_path: Path) -> None:
    path = tmp_path / "whole_model.pt"
    torch.save(make("tiny"), path)  # a pickled nn.Module: loading it would run code
    with pytest.raises(InitWeightsError, match="must be a plain state dict"):
        load_init(make("tiny"), path)


def test_init_errors(tmp_path: Path) -> None:
    with pytest.raises(InitWeightsError, match="no such checkpoint file"):
        load_init(make("tiny"), tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InitWeightsError, match="refused by torch.load.*Unsupported operand"):
        load_init(make("tiny"), tmp_path / "junk.pt")
    torch.save({"epoch": 3}, tmp_path / "no_tensors.pt")
    with pytest.raises(InitWeightsError, match="no tensors"):
        load_init(make("tiny"), tmp_path / "no_tensors.pt")
    with pytest.raises(ValueError, match="unknown importer"):
        load_init(make("tiny"), tmp_path / "no_tensors.pt", importer="lukemelas")
    assert list(IMPORTERS) == ["auto", "mammo-clip", "rsna-convnext", "mirai", "seed"]
