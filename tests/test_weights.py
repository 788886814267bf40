"""The weights registry: first use downloads (local HTTP server only), verifies and loads; a second use makes no
request; a file whose hash differs is refused and left alone; a 404 moves to the next mirror; offline never opens
a socket."""

from __future__ import annotations

import hashlib
import io
import re
import socket
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from http_faults import FaultServer

from m3svd import methods, metrics, weights
from m3svd.cli import main
from m3svd.data import download as dl
from m3svd.methods.base import MethodError

HEX = re.compile(r"[0-9a-f]+")


# -- the registry itself (no network) -----------------------------------------------------------------------------
def test_every_entry_can_be_had_and_verified():
    known = weights.registry()
    assert {"videofusion", "temcoco", "magicfuse-ae", "magicfuse-ikr", "magicfuse-ckg", "magicfuse-mkf", "resnet18",
            "raft-large", "raft-small", "niqe", "vgg19", "dinov2-vitl14"} <= set(known)
    for item in known.values():
        assert item.terms and item.users and item.hash_source and item.description
        assert bool(item.urls) != bool(item.manual), item.name  # downloadable, or a manual step, never neither
        assert item.published_hash or item.manual, f"{item.name}: a downloadable file needs a published hash"
        assert not item.sha256 or (len(item.sha256) == 64 and HEX.fullmatch(item.sha256))
        assert not item.git_blob_sha1 or (len(item.git_blob_sha1) == 40 and HEX.fullmatch(item.git_blob_sha1))
        if item.sha256_prefix:  # torchvision's file names carry the hash prefix
            assert item.sha256.startswith(item.sha256_prefix) and item.sha256_prefix in item.file
        for url in item.urls:
            assert url.startswith("https://") and Path(url).name == Path(item.file).name


def test_the_registry_agrees_with_the_code_that_uses_it():
    from m3svd.flow import raftnet
    from m3svd.methods import temcoco, videofusion
    from m3svd.methods.magicfuse import weights as mf
    from m3svd.methods.temcoco import train as tc_train
    from m3svd.metrics import niqe, temporal

    known = weights.registry()
    assert known["videofusion"].urls[0] == videofusion.CHECKPOINT_URL
    assert known["videofusion"].git_blob_sha1 == videofusion.CHECKPOINT_GIT_BLOB
    assert known["temcoco"].urls[0] == temcoco.CHECKPOINT_URL
    assert known["resnet18"].urls[0] == temporal.RESNET18_URL and known["resnet18"].file == temporal.RESNET18_FILE
    assert known["niqe"].file == niqe.PARAMS_FILE
    for variant, name in raftnet.DEFAULT_FILES.items():
        assert known[f"raft-{variant}"].file == name
    assert known["vgg19"].urls[0] == tc_train.VGG19_URL and known["dinov2-vitl14"].urls[0] == tc_train.DINOV2_URL
    assert known["magicfuse-ae"].urls[0] == f"{mf.REPO}/pretrained/AE/ae.pth"
    assert known["magicfuse-mkf"].urls[0] == f"{mf.REPO}/pretrained/MKF/model.pth"
    assert all(mf.BAIDU.split("?")[0] in known[f"magicfuse-{p}"].manual for p in ("ikr", "ckg"))


def test_unknown_name_gets_a_hint():
    with pytest.raises(weights.M3SVDError, match=r"no weights named 'raft-larg'.*did you mean 'raft-large'"):
        weights.get("raft-larg")


# -- a local server standing in for the publishers --------------------------------------------------------------
def git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class Published:
    """The registry pointed at a local server: ``publish`` swaps an entry's hashes for those of bytes the test made
    and serves them under the registry's path; ``$M3SVD_WEIGHTS_MIRROR`` lists a dead mirror, then a live one."""

    def __init__(self, server: FaultServer, monkeypatch):
        self.server, self.monkeypatch = server, monkeypatch
        self.entries = dict(weights.registry())
        monkeypatch.setattr(weights, "_REGISTRY", self.entries)
        server.mirror("dead", up=False)
        server.mirror("live")
        monkeypatch.setenv(weights.MIRROR_ENV, f"{server.url}dead {server.url}live")

    def publish(self, name: str, content: bytes, how: str = "sha256", urls=None) -> weights.WeightsFile:
        item = self.entries[name]
        hashes = ({"sha256": hashlib.sha256(content).hexdigest(), "size": len(content), "git_blob_sha1": None}
                  if how == "sha256" else {"sha256": None, "size": None, "git_blob_sha1": git_blob(content)})
        item = replace(item, sha256_prefix=None, **hashes, **({"urls": tuple(urls)} if urls is not None else {}))
        self.entries[name] = item
        self.server.add(item.file, content)
        return item

    def gets(self) -> list[tuple[str, int]]:
        return [(r["path"], r["status"]) for r in self.server.requests if r["method"] == "GET"]


@pytest.fixture
def published(tmp_path, monkeypatch):
    monkeypatch.setenv("M3SVD_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("M3SVD_OFFLINE", "M3SVD_WEIGHTS", "M3SVD_RESNET18", "M3SVD_RAFT_SMALL", "M3SVD_NIQE_PARAMS"):
        monkeypatch.delenv(var, raising=False)
    real_connect = socket.socket.connect

    def loopback_only(sock, address):  # a registry URL on the internet would fail the test, not be fetched
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"a test tried to reach {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    with FaultServer() as server:
        yield Published(server, monkeypatch)


def fast(retries: int = 2) -> dl.Options:
    return dl.Options(workers=1, timeout=2.0, retries=retries, backoff=0.0, sleep=lambda s: None)


pytestmark = pytest.mark.network


# -- first use, second use ----------------------------------------------------------------------------------------
def test_first_use_downloads_verifies_and_loads_and_the_second_makes_no_request(published):
    from m3svd.methods.videofusion.arch import build

    torch.manual_seed(0)
    content = torch_bytes({"params": build("small").state_dict()})
    item = published.publish("videofusion", content, how="git-blob")  # verified by blob id, as the real entry
    method = methods.create("videofusion")
    dest = weights.cache_dir() / item.file
    assert method.weights == dest and dest.read_bytes() == content and method.arch == "small"
    assert published.gets() == [(f"dead/{item.file}", 404), (f"live/{item.file}", 200)]  # 404: next mirror
    assert method.identity()["weights_sha256"] == hashlib.sha256(content).hexdigest()  # results record it
    assert not list(weights.cache_dir().glob(".partial/**/*.part"))  # nothing half-written left behind
    before = len(published.server.requests)
    again = methods.create("videofusion")
    assert len(published.server.requests) == before and again.weights_sha256 == method.weights_sha256


def test_metric_and_flow_weights_come_from_the_registry(published):
    from m3svd.flow import estimator, raftnet

    params = {"mu_pris_param": np.zeros((1, 36)), "cov_pris_param": np.eye(36), "gaussian_window": np.ones((7, 7)) / 49}
    buffer = io.BytesIO()
    np.savez(buffer, **params)
    published.publish("niqe", buffer.getvalue())
    frames = np.random.default_rng(0).integers(0, 256, (1, 192, 192), dtype=np.uint8)
    assert np.isfinite(metrics.get("niqe")(frames)).all()
    torch.manual_seed(0)
    raft = published.publish("raft-small", torch_bytes(raftnet.raft_small().state_dict()))
    est = estimator("raft-small", iters=1)
    assert est.params["weights_sha256"] == raft.sha256
    assert [p for p, s in published.gets() if s == 200] == ["live/niqe_pris_params.npz", f"live/{raft.file}"]


def test_cli_download_then_verify_and_path(published, capsys):
    content = b"resnet bytes" * 1000
    item = published.publish("resnet18", content)
    assert main(["weights", "download", "resnet18", "--no-progress"]) == 0
    assert f"sha256 {item.sha256}" in capsys.readouterr().out
    requests = len(published.server.requests)
    assert main(["weights", "download", "resnet18"]) == 0
    assert "already present (cache), verified" in capsys.readouterr().out and len(published.server.requests) == requests
    assert main(["weights", "path", "resnet18"]) == 0
    assert capsys.readouterr().out.strip() == str(weights.cache_dir() / item.file)
    assert main(["weights", "verify"]) == 0
    assert "1 verified, 0 refused" in capsys.readouterr().out
    (weights.cache_dir() / item.file).write_bytes(content[:-1] + b"X")  # same size, other bytes
    assert main(["weights", "verify", "resnet18"]) == 1
    out = capsys.readouterr().out
    assert "sha256 mismatch" in out and "1 refused" in out
    assert main(["weights", "path", "raft-large"]) == 1


# -- refusals -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["corrupt", "truncate"])
def test_a_damaged_file_on_disk_is_refused_in_one_line_and_left_alone(published, damage):
    content = bytes(range(256)) * 400
    item = published.publish("resnet18", content)
    path = weights.cache_dir() / item.file
    path.parent.mkdir(parents=True)
    bad = content[:5000] + b"\0" + content[5001:] if damage == "corrupt" else content[: len(content) // 2]
    path.write_bytes(bad)
    with pytest.raises(weights.WeightsRefused) as refused:
        weights.ensure("resnet18")
    line = str(refused.value)
    assert "\n" not in line and str(path) in line and "refusing to load it" in line
    assert ("sha256 mismatch" if damage == "corrupt" else f"should be {len(content)} bytes") in line
    assert path.read_bytes() == bad and published.gets() == []  # never replaced, nothing fetched


def test_a_file_verified_once_is_checked_again_when_it_changes(published):
    from m3svd.methods.videofusion.arch import build

    torch.manual_seed(0)
    content = torch_bytes({"params": build("small").state_dict()})
    item = published.publish("videofusion", content, how="git-blob")
    methods.create("videofusion")
    path = weights.cache_dir() / item.file
    path.write_bytes(content[:-10])
    with pytest.raises(MethodError, match=r"git_blob_sha1 mismatch.*refusing to load it") as refused:
        methods.create("videofusion")
    assert "\n" not in str(refused.value) and path.read_bytes() == content[:-10]


def test_download_that_fails_verification_is_discarded_and_retried(published):
    content = b"\x01" * 300_000
    item = published.publish("raft-small", content, urls=[published.server.url_for(item_file := "raft-small.bin")])
    published.server.add(item_file, content)
    published.monkeypatch.delenv(weights.MIRROR_ENV)
    published.server.fault(item_file, "corrupt")
    published.server.fault(item_file, "truncate", after=1000)
    found = weights.ensure("raft-small", options=fast(retries=3))
    assert found.how == "downloaded" and found.path.read_bytes() == content and found.sha256 == item.sha256
    assert [s for _, s in published.gets()] == [200, 200, 206]  # corrupt: discarded; truncated: resumed


def test_a_download_that_never_verifies_leaves_nothing(published):
    content = b"\x02" * 50_000
    item = published.publish("raft-small", content, urls=[published.server.url_for(name := "only.bin")])
    published.server.add(name, content)
    published.monkeypatch.delenv(weights.MIRROR_ENV)
    published.server.fault(name, "corrupt", times=5)
    with pytest.raises(weights.WeightsMissing, match=r"could not be downloaded \(.*sha256 mismatch") as missing:
        weights.ensure("raft-small", options=fast(retries=2))
    assert "\n" not in str(missing.value)
    assert not (weights.cache_dir() / item.file).exists()
    assert not list((weights.cache_dir() / ".partial").rglob("*.part"))


def test_a_manual_file_is_named_with_its_step_then_held_to_its_first_hash(published):
    item = weights.get("magicfuse-ikr")
    with pytest.raises(weights.WeightsMissing) as missing:
        weights.ensure("magicfuse-ikr")
    line = str(missing.value)
    assert "pan.baidu.com" in line and str(weights.cache_dir() / item.file) in line and "\n" not in line
    path = weights.cache_dir() / item.file
    path.parent.mkdir(parents=True)
    path.write_bytes(b"first placed bytes")
    first = weights.ensure("magicfuse-ikr")
    assert first.sha256 == hashlib.sha256(b"first placed bytes").hexdigest() and first.how == "cache"
    path.write_bytes(b"other placed bytes")  # same size, other content
    with pytest.raises(weights.WeightsRefused, match="recorded on first use"):
        weights.ensure("magicfuse-ikr")
    assert published.gets() == []


# -- offline ------------------------------------------------------------------------------------------------------
def test_offline_never_opens_a_socket_and_names_the_file(published, monkeypatch, capsys):
    published.publish("resnet18", b"never fetched")

    def no_connect(sock, address):
        raise AssertionError(f"offline mode opened a connection to {address}")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    with pytest.raises(weights.WeightsMissing) as missing:
        frames = np.zeros((3, 16, 16), np.uint8)
        metrics.get("feacd")(frames, ir=frames, vi=np.zeros((3, 16, 16, 3), np.uint8))
    line = str(missing.value)
    assert "\n" not in line and "resnet18-f37072fd.pth" in line and "M3SVD_OFFLINE=1 forbids downloading" in line
    assert str(weights.cache_dir() / "resnet18-f37072fd.pth") in line and "download.pytorch.org" in line
    monkeypatch.delenv(weights.OFFLINE_ENV)
    assert main(["weights", "download", "resnet18", "--offline"]) == 1  # the flag alone is enough
    assert "M3SVD_OFFLINE=1 forbids downloading" in capsys.readouterr().out
    assert main(["evaluate", "--method", "videofusion", "--protocol", "sample", "--offline"]) == 2
    assert "net_g_latest.pth is not in the weights cache" in capsys.readouterr().err
    assert published.server.requests == []
