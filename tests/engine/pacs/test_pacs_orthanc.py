"""A real PACS in the loop: Orthanc (Debian `orthanc` + `orthanc-dicomweb`) on 127.0.0.1.

Synthetic studies and real CBIS-DDSM files go into Orthanc; `mammo-batch pull` fetches a date window
over DICOMweb, `score --sr-out` writes SRs, `push` stores them (STOW-RS and C-STORE), and the SRs queried
back from Orthanc carry the scores of scores.parquet. Credentials: HTTP basic (Orthanc's own users) and
a bearer token (a gateway in front of Orthanc), from the environment only, never in any output.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pydicom
import pytest
from onnx_members import write_test_bundle
from pacs_server import ORTHANC, SKIP_REASON, BearerGate, OrthancServer
from sr_reading import measurement_groups

from mammo_batch.synth import write_studies

pytest.importorskip("dicomweb_client")
pytestmark = pytest.mark.skipif(ORTHANC is None, reason=SKIP_REASON)

MEMBERS = [dict(name="wide", height=96, width=48, weight=8.0, bias=-3.0),
           dict(name="upper", height=64, width=32, weight=6.0, bias=-2.0, region=(0, 32, 0, 16))]
SECRET_ENV = ("MAMMO_BATCH_DICOMWEB_TOKEN", "MAMMO_BATCH_DICOMWEB_USER", "MAMMO_BATCH_DICOMWEB_PASSWORD")


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in SECRET_ENV} | (env or {})
    return subprocess.run([sys.executable, "-m", "mammo_batch.engine.cli", "-v", *args], capture_output=True,
                          text=True, timeout=timeout, env=environment)


def headers(paths) -> dict[str, pydicom.Dataset]:
    """SOPInstanceUID -> header of each readable DICOM file."""
    found = {}
    for path in paths:
        try:
            dataset = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError):
            continue
        found[dataset.SOPInstanceUID] = dataset
    return found


@pytest.fixture(scope="module")
def sources(tmp_path_factory, cbis_cases) -> dict[str, Path]:
    """SOPInstanceUID -> file: 3 synthetic studies (dated 2020-2021) and two real CBIS-DDSM images (2016)."""
    root = tmp_path_factory.mktemp("sources")
    write_studies(root / "synth", 3, seed=0, size=(256, 208))
    cbis = sorted((cbis_cases / "sfm-malign-0").iterdir())[:2]
    files = [p for p in (root / "synth").rglob("*") if p.is_file()] + cbis
    by_uid = {}
    for path in files:
        try:
            by_uid[pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID] = path
        except pydicom.errors.InvalidDicomError:
            continue  # synth writes some non-DICOM files (labels, manifest)
    return by_uid


@pytest.fixture(scope="module")
def pacs(tmp_path_factory, sources):
    with OrthancServer(tmp_path_factory.mktemp("orthanc")) as server:
        for path in sources.values():
            server.upload(path)
        yield server


def mg_studies(sources: dict[str, Path], since: str) -> set[str]:
    found = headers(sources.values())
    return {d.StudyInstanceUID for d in found.values() if d.Modality == "MG" and d.StudyDate >= since}


def test_pull_fetches_the_date_window_as_stored_and_resumes(pacs, sources, tmp_path):
    to = tmp_path / "pulled"
    first = cli("pull", pacs.dicomweb, "--since", "2020-01-01", "--to", str(to), "--quiet")
    assert first.returncode == 0, first.stderr
    pulled = headers(to.rglob("*.dcm"))
    assert {d.StudyInstanceUID for d in pulled.values()} == mg_studies(sources, "20200101")

    everything = cli("pull", pacs.dicomweb, "--since", "1900-01-01", "--to", str(to), "--quiet")
    assert everything.returncode == 0, everything.stderr
    pulled = headers(to.rglob("*.dcm"))
    assert {d.StudyInstanceUID for d in pulled.values()} == mg_studies(sources, "")
    older = sum(1 for d in pulled.values() if d.StudyDate < "20200101")
    assert older and f"{older} fetched, {len(pulled) - older} already in" in everything.stderr
    for uid, dataset in pulled.items():  # as stored: same transfer syntax, same pixel bytes
        original = pydicom.dcmread(sources[uid])
        fetched = pydicom.dcmread(next(p for p in to.rglob("*.dcm") if headers([p]).get(uid)))
        assert fetched.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
        assert fetched.PixelData == original.PixelData
        assert dataset.PatientID == original.PatientID

    only_2016 = cli("pull", pacs.dicomweb, "--since", "2016-01-01", "--until", "2016-12-31", "--to",
                    str(tmp_path / "2016"), "--quiet")
    assert only_2016.returncode == 0, only_2016.stderr
    assert {d.StudyDate for d in headers((tmp_path / "2016").rglob("*.dcm")).values()} == {"20161004"}

    victim = next(iter(to.rglob("*.dcm")))
    victim.unlink()
    again = cli("pull", pacs.dicomweb, "--since", "1900-01-01", "--to", str(to), "--quiet")
    assert "1 fetched" in again.stderr and f"{len(pulled) - 1} already in" in again.stderr


@pytest.mark.slow
def test_pull_score_push_and_read_the_sr_back_from_orthanc(pacs, sources, tmp_path):
    studies, sr_dir, out = tmp_path / "studies", tmp_path / "sr", tmp_path / "scores.parquet"
    bundle = write_test_bundle(tmp_path / "bundle", MEMBERS, threshold=0.5)
    assert cli("pull", pacs.dicomweb, "--since", "1900-01-01", "--to", str(studies), "--quiet").returncode == 0
    scored = cli("score", str(studies), "--models", str(bundle), "--out", str(out), "--sr-out", str(sr_dir),
                 "--workers", "1", "--quiet")
    assert scored.returncode in (0, 3), scored.stderr
    scores = pq.read_table(out).to_pandas()
    scores = scores[scores.status.isin(["ok", "partial"])].set_index("study_instance_uid")
    assert len(scores) == len(mg_studies(sources, ""))  # 3 synthetic studies, 2 CBIS ones (one per image)

    before = len(pacs.instances())
    pushed = cli("push", str(sr_dir), pacs.dicomweb)
    assert pushed.returncode == 0, pushed.stderr
    assert len(pacs.instances()) == before + len(scores)

    from dicomweb_client.api import DICOMwebClient
    client = DICOMwebClient(pacs.dicomweb)
    series = client.search_for_series(search_filters={"Modality": "SR"})
    assert len(series) == len(scores)
    for item in series:
        study_uid, series_uid = item["0020000D"]["Value"][0], item["0020000E"]["Value"][0]
        for instance in client.search_for_instances(study_uid, series_uid):
            sr = client.retrieve_instance(study_uid, series_uid, instance["00080018"]["Value"][0])
            row = scores.loc[sr.StudyInstanceUID]
            assert sr.PatientID == row.patient_id
            study = measurement_groups(sr)["study"]
            assert study["Recall score"] == pytest.approx(row.score, abs=1e-12)
            assert study["Recall (study score at or above the threshold)"] == ("Yes" if row.recall else "No")

    # Idempotent: the ledger skips what was accepted; resending (STOW-RS or C-STORE) stores no duplicate.
    assert f"0 sent, {len(scores)} accepted before" in cli("push", str(sr_dir), pacs.dicomweb).stderr
    assert cli("push", str(sr_dir), pacs.dicomweb, "--resend").returncode == 0
    dimse = cli("push", str(sr_dir), f"dicom://ORTHANC@127.0.0.1:{pacs.dicom_port}", "--resend")
    assert dimse.returncode == 0 and f"{len(scores)} sent" in dimse.stderr, dimse.stderr
    assert len(pacs.instances()) == before + len(scores)

    # The SR series are not pulled back as images: pull takes MG series only.
    again = cli("pull", pacs.dicomweb, "--since", "1900-01-01", "--to", str(studies), "--quiet")
    assert "0 fetched" in again.stderr

    # The next night every decision changes (a new threshold): each study's series gets a second SR
    # that names the first as its predecessor; only those are sent.
    rescored = cli("score", str(studies), "--models", str(bundle), "--out", str(out), "--sr-out", str(sr_dir),
                   "--workers", "1", "--quiet", "--threshold", "0.01")
    assert rescored.returncode in (0, 3), rescored.stderr
    assert f"{len(scores)} sent, 0 accepted before" in cli("push", str(sr_dir), pacs.dicomweb).stderr
    for item in client.search_for_series(search_filters={"Modality": "SR"}):
        study_uid, series_uid = item["0020000D"]["Value"][0], item["0020000E"]["Value"][0]
        found = {int(i["00200013"]["Value"][0]): i["00080018"]["Value"][0]
                 for i in client.search_for_instances(study_uid, series_uid, fields=["InstanceNumber"])}
        assert sorted(found) == [1, 2]
        newer = client.retrieve_instance(study_uid, series_uid, found[2])
        predecessor = newer.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
        assert predecessor.ReferencedSOPInstanceUID == found[1]
        assert measurement_groups(newer)["study"]["Recall (study score at or above the threshold)"] == "Yes"


def test_basic_auth_and_bearer_token_come_from_the_environment_and_never_show(tmp_path, sources, caplog,
                                                                            monkeypatch):
    password, token = "pw-Zq81-never-print", "tok-7f3a-never-print"
    uid, path = next((u, p) for u, p in sources.items() if p.suffix == ".dcm")
    with OrthancServer(tmp_path / "orthanc", users={"nightly": password}) as pacs:
        pacs.upload(path)
        refused = cli("pull", pacs.dicomweb, "--since", "1900-01-01", "--to", str(tmp_path / "a"), "--quiet")
        assert refused.returncode == 1 and "401" in refused.stderr
        basic = {"MAMMO_BATCH_DICOMWEB_USER": "nightly", "MAMMO_BATCH_DICOMWEB_PASSWORD": password}
        allowed = cli("pull", pacs.dicomweb, "--since", "1900-01-01", "--to", str(tmp_path / "a"), env=basic)
        assert allowed.returncode == 0 and "HTTP basic" in allowed.stderr, allowed.stderr
        assert uid in headers((tmp_path / "a").rglob("*.dcm"))
        in_url = cli("pull", pacs.dicomweb.replace("http://", f"http://nightly:{password}@"), "--since",
                     "1900-01-01", "--to", str(tmp_path / "c"))
        assert in_url.returncode == 2 and "must not hold credentials" in in_url.stderr

        with BearerGate(pacs, token) as gate:
            bearer = cli("pull", gate.dicomweb, "--since", "1900-01-01", "--to", str(tmp_path / "b"),
                         env={"MAMMO_BATCH_DICOMWEB_TOKEN": token})
            assert bearer.returncode == 0, bearer.stderr
            assert gate.seen and set(gate.seen) == {f"Bearer {token}"}
            assert uid in headers((tmp_path / "b").rglob("*.dcm"))

            # In process, every library logging at DEBUG (dicomweb-client logs each request): no token.
            from mammo_batch.engine.pacs.dicomweb import dicomweb_client
            from mammo_batch.engine.pacs.pull import pull

            caplog.set_level(logging.DEBUG)
            caplog.set_level(logging.DEBUG, logger="dicomweb_client")  # an in-process CLI run may have quietened it
            monkeypatch.setenv("MAMMO_BATCH_DICOMWEB_TOKEN", token)
            counts = pull(dicomweb_client(gate.dicomweb), date(1900, 1, 1), None, tmp_path / "d")
            assert counts.fetched == 1 and "GET: " in caplog.text and token not in caplog.text
    for secret in (password, token):
        assert not any(secret in r.stdout or secret in r.stderr for r in (refused, allowed, in_url, bearer))
        assert not any(secret.encode() in p.read_bytes() for p in tmp_path.rglob("*")
                       if p.is_file() and "orthanc" not in p.parts[len(tmp_path.parts)])
