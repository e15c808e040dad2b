"""Model bundles: loading, every validation error, the write helpers and `bundle show`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from onnx_members import write_test_bundle

from mammo_batch.engine.bundle import BundleError, load_bundle, sha256_file, write_bundle_json
from mammo_batch.engine.cli.bundle import bundle as bundle_group
from mammo_batch.engine.pixels import PreprocessSettings

MEMBERS = [
    {"name": "fold0", "height": 32, "width": 16, "metrics": {"val_study_auc": 0.91}},
    {"name": "fold1", "height": 24, "width": 24, "fold": 1},
    {"name": "fold2", "height": 32, "width": 16, "fold": 2},
]


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    return write_test_bundle(tmp_path / "bundle", MEMBERS, threshold=0.3, name="demo")


def edit(bundle_dir: Path, change) -> None:
    """Apply `change` to the parsed bundle.json and write it back (artifacts untouched)."""
    document = json.loads((bundle_dir / "bundle.json").read_text())
    change(document)
    write_bundle_json(bundle_dir, document)


def load_error(bundle_dir: Path) -> str:
    with pytest.raises(BundleError) as info:
        load_bundle(bundle_dir)
    return str(info.value)


# --- the happy path --------------------------------------------------------------------------

def test_load_reads_every_field(bundle_dir: Path) -> None:
    bundle = load_bundle(bundle_dir)
    digest = hashlib.sha256((bundle_dir / "bundle.json").read_bytes()).hexdigest()
    assert bundle.id == f"demo@{digest[:12]}"
    assert bundle.path == bundle_dir
    assert bundle.threshold == 0.3
    assert bundle.ensemble == "mean"
    assert bundle.aggregation == {"breast": "mean", "study": "max"}
    assert "not a clinical model" in bundle.description
    assert [m.name for m in bundle.members] == ["fold0", "fold1", "fold2"]
    assert [m.fold for m in bundle.members] == [0, 1, 2]
    assert bundle.settings == PreprocessSettings(window="dicom", crop=True, dtype="uint8")
    assert bundle.sizes == [(32, 16), (24, 24)]  # distinct, in member order
    member = bundle.member("fold0")
    assert member.input_size == (32, 16)
    assert member.metrics == {"val_study_auc": 0.91}
    assert member.artifacts.onnx == "fold0.onnx"
    assert member.sha256 == {"fold0.onnx": sha256_file(bundle_dir / "fold0.onnx")}


def test_settings_follow_the_bundle(tmp_path: Path) -> None:
    members = [{"name": "m", "height": 8, "width": 8, "dtype": "float32"}]
    bundle = load_bundle(write_test_bundle(tmp_path, members, window="minmax", crop=False))
    assert bundle.settings == PreprocessSettings(window="minmax", crop=False, dtype="float32")


def test_the_id_changes_with_bundle_json(bundle_dir: Path) -> None:
    before = load_bundle(bundle_dir).id
    edit(bundle_dir, lambda d: d.update(threshold=0.4))
    assert load_bundle(bundle_dir).id != before
    assert load_bundle(bundle_dir).id.startswith("demo@")


def test_optional_fields_may_be_left_out(bundle_dir: Path) -> None:
    def strip(document: dict) -> None:
        for key in ("description", "provenance"):
            del document[key]
        for member in document["members"]:
            for key in ("fold", "metrics"):
                del member[key]
            del member["artifacts"]["torch"], member["artifacts"]["tensorrt"]

    edit(bundle_dir, strip)
    bundle = load_bundle(bundle_dir)
    assert bundle.description == ""
    assert bundle.members[0].fold is None
    assert bundle.members[0].metrics == {}


def test_write_bundle_json_is_stable_and_atomic(tmp_path: Path) -> None:
    document = {"b": 1, "a": [1, 2], "text": "é"}
    path = write_bundle_json(tmp_path / "new", document)
    first = path.read_bytes()
    assert json.loads(first) == document
    assert first.endswith(b"}\n") and list(json.loads(first)) == ["b", "a", "text"]
    write_bundle_json(tmp_path / "new", document)
    assert path.read_bytes() == first
    assert sorted(p.name for p in path.parent.iterdir()) == ["bundle.json"]  # no temp file left


def test_sha256_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


# --- errors ----------------------------------------------------------------------------------

def test_missing_directory(tmp_path: Path) -> None:
    assert "no such bundle directory" in load_error(tmp_path / "nowhere")


def test_a_file_is_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"x")
    assert "not a directory" in load_error(tmp_path / "model.onnx")


def test_missing_bundle_json(tmp_path: Path) -> None:
    message = load_error(tmp_path)
    assert str(tmp_path / "bundle.json") in message and "missing" in message


@pytest.mark.parametrize("content, problem", [
    (b'{"format_version": 1,', "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b'{"format_version": 1, "format_version": 1}', "duplicate key 'format_version'"),
    (b"[1, 2]", "expected an object"),
])
def test_unreadable_json(tmp_path: Path, content: bytes, problem: str) -> None:
    (tmp_path / "bundle.json").write_bytes(content)
    message = load_error(tmp_path)
    assert str(tmp_path / "bundle.json") in message and problem in message


@pytest.mark.parametrize("version", [2, 0, "1", 1.0, True, None])
def test_unknown_format_version(bundle_dir: Path, version) -> None:
    edit(bundle_dir, lambda d: d.update(format_version=version))
    assert "unknown format_version" in load_error(bundle_dir)


def test_missing_format_version(bundle_dir: Path) -> None:
    edit(bundle_dir, lambda d: d.pop("format_version"))
    assert "format_version: missing required field" in load_error(bundle_dir)


@pytest.mark.parametrize("path", [
    "name", "created", "members", "ensemble", "aggregation", "threshold", "aggregation.study",
    "members.1.name", "members.1.arch", "members.1.input", "members.1.input.height",
    "members.1.input.dtype", "members.1.input.channels", "members.1.input.value_range",
    "members.1.preprocess.window", "members.1.preprocess.crop", "members.1.preprocess.orientation",
    "members.1.artifacts", "members.1.artifacts.onnx", "members.1.sha256",
])
def test_missing_field(bundle_dir: Path, path: str) -> None:
    *parents, key = path.split(".")

    def drop(document: dict) -> None:
        node = document
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[key]

    edit(bundle_dir, drop)
    location = path.replace("members.1", "members[1]")
    assert f"{location}: missing required field" in load_error(bundle_dir)


@pytest.mark.parametrize("path, value, problem", [
    ("threshold", 1.5, "[0, 1]"),
    ("threshold", "0.5", "expected a number"),
    ("name", "demo@v2", "not a valid name"),
    ("created", "yesterday", "ISO 8601"),
    ("description", 3, "expected a string"),
    ("members", [], "at least one member"),
    ("members", {}, "expected a list"),
    ("ensemble", "median", "must be one of mean"),
    ("aggregation.breast", "min", "must be one of mean, max"),
    ("aggregation.study", "sum", "must be one of max, mean, max-image"),
    ("members.0.name", "fold 0/a", "not a valid name"),
    ("members.0.fold", -1, "at least 0"),
    ("members.0.fold", "0", "expected an integer"),
    ("members.0.input.height", 0, "at least 1"),
    ("members.0.input.width", 16.0, "expected an integer"),
    ("members.0.input.channels", 3, "must be 1"),
    ("members.0.input.value_range", [0, 1], "feeds uint8 in [0, 255]"),
    ("members.0.preprocess.crop", "yes", "expected true or false"),
    ("members.0.preprocess.orientation", "chest_wall_right", "must be one of chest_wall_left"),
    ("members.0.artifacts.onnx", "../fold0.onnx", "relative path inside the bundle"),
    ("members.0.artifacts.onnx", "/tmp/fold0.onnx", "relative path inside the bundle"),
    ("members.0.artifacts.tensorrt", [{"file": "x.plan"}], "compute_capability: missing"),
    ("members.0.sha256", {"fold0.onnx": "abc"}, "expected 64 hex digits"),
    ("members.0.sha256", {}, "no checksum for artifact 'fold0.onnx'"),
    ("members.0.metrics", {"auc": "high"}, "metrics.auc: expected a number"),
])
def test_invalid_field(bundle_dir: Path, path: str, value, problem: str) -> None:
    *parents, key = path.split(".")

    def put(document: dict) -> None:
        node = document
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[key] = value

    edit(bundle_dir, put)
    message = load_error(bundle_dir)
    assert str(bundle_dir / "bundle.json") in message
    assert problem in message
    assert path.replace("members.0", "members[0]") in message  # where in the file


@pytest.mark.parametrize("dtype", ["int8", "float16"])
def test_unsupported_input_dtype(bundle_dir: Path, dtype: str) -> None:
    edit(bundle_dir, lambda d: d["members"][2]["input"].update(dtype=dtype))
    assert "members[2].input.dtype: must be one of uint8, uint16, float32" in load_error(bundle_dir)


def test_extra_checksum_entry(bundle_dir: Path) -> None:
    edit(bundle_dir, lambda d: d["members"][0]["sha256"].update({"old.onnx": "0" * 64}))
    assert "'old.onnx', not artifacts of this member" in load_error(bundle_dir)


def test_duplicate_member_names(bundle_dir: Path) -> None:
    edit(bundle_dir, lambda d: d["members"][2].update(name="fold0"))
    assert "duplicate member name 'fold0'" in load_error(bundle_dir)


def test_missing_artifact(bundle_dir: Path) -> None:
    (bundle_dir / "fold1.onnx").unlink()
    message = load_error(bundle_dir)
    assert str(bundle_dir / "fold1.onnx") in message
    assert "missing artifact of member 'fold1'" in message


def test_missing_torch_artifact_file(bundle_dir: Path) -> None:
    def add_torch(document: dict) -> None:
        document["members"][0]["artifacts"]["torch"] = "fold0.pt2"
        document["members"][0]["sha256"]["fold0.pt2"] = "0" * 64

    edit(bundle_dir, add_torch)
    assert "fold0.pt2: missing artifact of member 'fold0'" in load_error(bundle_dir)


def test_tampered_artifact_fails_its_checksum(bundle_dir: Path) -> None:
    path = bundle_dir / "fold2.onnx"
    expected = sha256_file(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    path.write_bytes(bytes(data))
    message = load_error(bundle_dir)
    assert str(path) in message and "checksum mismatch" in message
    assert expected[:12] in message and sha256_file(path)[:12] in message


def test_mismatched_preprocessing_names_the_fields(tmp_path: Path) -> None:
    members = [{"name": "a", "height": 8, "width": 8},
               {"name": "b", "height": 16, "width": 8, "dtype": "uint16"}]
    directory = write_test_bundle(tmp_path, members)
    edit(directory, lambda d: d["members"][1]["preprocess"].update(window="minmax", crop=False))
    message = load_error(directory)
    assert "mismatched preprocessing" in message
    assert "'b' differs from 'a'" in message
    assert "input.dtype ('uint16' vs 'uint8')" in message
    assert "preprocess.window ('minmax' vs 'dicom')" in message
    assert "preprocess.crop (False vs True)" in message
    assert "height" not in message.split("Every member")[0]  # sizes may differ


# --- bundle show -----------------------------------------------------------------------------

@click.group()
def cli() -> None:
    """A stand-in for the main CLI, which registers the same group."""


cli.add_command(bundle_group)


def test_show_describes_the_bundle(bundle_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["bundle", "show", str(bundle_dir)])
    assert result.exit_code == 0, result.output
    bundle = load_bundle(bundle_dir)
    for text in (bundle.id, "2026-01-01T00:00:00Z", "not a clinical model", "threshold:   0.3",
                 "breast = mean", "study = max over breasts", "window dicom"):
        assert text in result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[-3:]}
    assert rows["fold0"][:6] == ["fold0", "0", "mean-intensity", "32x16", "uint8", "onnx"]
    assert "val_study_auc=0.91" in rows["fold0"]
    assert rows["fold1"][3] == "24x24"


def test_show_json(bundle_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["bundle", "show", "--json", str(bundle_dir)])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    written = json.loads((bundle_dir / "bundle.json").read_text())
    assert shown["id"] == load_bundle(bundle_dir).id
    assert shown["path"] == str(bundle_dir)
    assert shown["members"][1]["input"]["height"] == 24
    assert shown["members"][0]["sha256"] == written["members"][0]["sha256"]
    assert {k: shown[k] for k in ("name", "threshold", "aggregation")} == \
           {k: written[k] for k in ("name", "threshold", "aggregation")}
    # one spelling of bundle.json: what loading and serialising again gives is what was written
    assert {k: v for k, v in shown.items() if k not in ("id", "path")} == written


def test_show_a_bad_bundle_exits_2(bundle_dir: Path) -> None:
    (bundle_dir / "fold1.onnx").write_bytes(b"not the model")
    result = CliRunner().invoke(cli, ["bundle", "show", str(bundle_dir)])
    assert result.exit_code == 2
    assert "checksum mismatch" in result.output
    assert "Traceback" not in result.output


# --- artifacts stay inside the bundle directory ------------------------------------------------

def _point_onnx_at(bundle_dir: Path, name: str) -> None:
    def change(document: dict) -> None:
        member = document["members"][0]
        digest = member["sha256"].pop(member["artifacts"]["onnx"])
        member["artifacts"]["onnx"] = name
        member["sha256"][name] = digest

    edit(bundle_dir, change)


def test_an_artifact_symlinked_out_of_the_bundle_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.onnx"
    (bundle_dir / "fold0.onnx").rename(outside)  # the same bytes: only the location is wrong
    (bundle_dir / "fold0.onnx").symlink_to(outside)
    message = load_error(bundle_dir)
    assert "outside the bundle directory" in message and str(bundle_dir / "fold0.onnx") in message


def test_an_artifact_under_a_folder_symlinked_out_is_refused(bundle_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "shared_models"
    outside.mkdir()
    (bundle_dir / "fold0.onnx").rename(outside / "fold0.onnx")
    (bundle_dir / "models").symlink_to(outside, target_is_directory=True)
    _point_onnx_at(bundle_dir, "models/fold0.onnx")
    assert "outside the bundle directory" in load_error(bundle_dir)


def test_a_symlink_that_stays_inside_is_accepted(bundle_dir: Path) -> None:
    (bundle_dir / "store").mkdir()
    (bundle_dir / "fold0.onnx").rename(bundle_dir / "store" / "fold0.onnx")
    (bundle_dir / "fold0.onnx").symlink_to(Path("store") / "fold0.onnx")
    assert load_bundle(bundle_dir).member("fold0").artifacts.onnx == "fold0.onnx"


@pytest.mark.parametrize("name", ["sub/../../fold0.onnx", "/etc/passwd", "..\\fold0.onnx"])
def test_escaping_artifact_names_are_refused(bundle_dir: Path, name: str) -> None:
    _point_onnx_at(bundle_dir, name)
    assert "relative path inside the bundle directory" in load_error(bundle_dir)


def test_an_escaping_tensorrt_engine_is_refused(bundle_dir: Path) -> None:
    engine = {"file": "../engines/fold0.plan", "compute_capability": "9.0",
              "tensorrt_version": "11.0", "precision": "fp16"}
    edit(bundle_dir, lambda d: d["members"][0]["artifacts"].update(tensorrt=[engine]))
    assert "relative path inside the bundle directory" in load_error(bundle_dir)


def test_score_exits_2_on_a_bundle_pointing_outside(bundle_dir: Path, tmp_path: Path) -> None:
    from mammo_batch.engine.cli import cli as main_cli

    outside = tmp_path / "elsewhere.onnx"
    (bundle_dir / "fold1.onnx").rename(outside)
    (bundle_dir / "fold1.onnx").symlink_to(outside)
    (tmp_path / "studies").mkdir()
    result = CliRunner().invoke(main_cli, ["score", str(tmp_path / "studies"), "--models",
                                           str(bundle_dir), "--out", str(tmp_path / "s.parquet")])
    assert result.exit_code == 2, result.output
    assert "outside the bundle directory" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "s.parquet").exists()


def test_unknown_keys_are_named_in_a_warning(bundle_dir: Path, caplog) -> None:
    """A typo ("preprocesss") would otherwise silently fall back to a default."""
    document = json.loads((bundle_dir / "bundle.json").read_text())
    document["members"][0]["preprocesss"] = {"window": "minmax"}
    document["thresold"] = 0.9
    write_bundle_json(bundle_dir, document)
    with caplog.at_level("WARNING", logger="mammo_batch.engine.bundle.load"):
        load_bundle(bundle_dir)
    assert "members[0].preprocesss" in caplog.text and "thresold" in caplog.text
    caplog.clear()
    document = json.loads((bundle_dir / "bundle.json").read_text())
    del document["members"][0]["preprocesss"], document["thresold"]
    write_bundle_json(bundle_dir, document)
    with caplog.at_level("WARNING", logger="mammo_batch.engine.bundle.load"):
        load_bundle(bundle_dir)
    assert "unknown key" not in caplog.text  # provenance and metrics are free-form: never flagged


def test_the_dataclasses_round_trip_through_bundle_json(tmp_path: Path) -> None:
    import dataclasses

    from mammo_batch.engine.bundle import Bf16Gate, Bundle, Fp16Gate, TensorRTEngine, new_member, write_bundle

    for name in ("m.onnx", "m.pt2", "m.fp16.onnx", "m.sm90.engine"):
        (tmp_path / name).write_bytes(name.encode())
    engine = TensorRTEngine("m.sm90.engine", "9.0", "11.4.0", "fp16", "NVIDIA H100", (1, 8, 16))
    member = new_member(tmp_path, name="m", fold=2, arch="tiny", height=64, width=32, onnx="m.onnx",
                        torch="m.pt2", onnx_fp16="m.fp16.onnx", dtype="uint16", window="minmax", crop=False,
                        metrics={"val_study_auc": 0.75},
                        fp16_gate=Fp16Gate(False, 8, 0.0102, 0.01, "max |prob diff| 0.0102 > tolerance 0.01"),
                        bf16_gate=Bf16Gate(False, 0, 0, None, None, 0.02, 0.005, "skipped: no bf16 here"))
    member = dataclasses.replace(member, artifacts=dataclasses.replace(member.artifacts, tensorrt=(engine,)))
    member = dataclasses.replace(member, sha256={**member.sha256, engine.file: sha256_file(tmp_path / engine.file)})
    written = Bundle(name="round-trip", created="2026-01-01T00:00:00Z", members=(member,), threshold=0.25,
                     aggregation={"breast": "max", "study": "max-image"}, provenance={"k": [1, 2]})
    loaded = write_bundle(tmp_path, written)
    assert loaded.members == written.members and loaded.members[0].sha256 == member.sha256
    assert loaded.members[0].metrics == member.metrics
    assert dataclasses.replace(loaded, path=written.path, digest="") == written
    assert loaded.aggregation == written.aggregation and loaded.provenance == written.provenance
