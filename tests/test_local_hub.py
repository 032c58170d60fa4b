# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""The local Hub test double against the real clients, each in a fresh process (they read HF_ENDPOINT at
import time)."""

import hashlib
import http.client
import json
from pathlib import Path

import pytest

from tests.local_hub import LocalHub, run_client


def test_hub_api_upload_download_and_second_commit(local_hub: LocalHub, tmp_path: Path) -> None:
    folder = tmp_path / "upload"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(bytes(range(256)) * 40)
    (folder / "notes.txt").write_text("first version\n")
    (folder / "sub" / "config.json").write_text('{"a": 1}\n')

    run_client(
        f"""
        from pathlib import Path

        from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, HfFileSystem
        from huggingface_hub import hf_hub_download, snapshot_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

        folder = Path({str(folder)!r})
        api = HfApi()
        url = api.create_repo("demo")  # no namespace: the user's
        assert url.repo_id == "local-user/demo", url
        api.create_repo("local-user/demo", exist_ok=True)
        try:
            api.create_repo("local-user/demo")
            raise AssertionError("creating an existing repo must fail")
        except HfHubHTTPError as error:
            assert error.response.status_code == 409

        first = api.upload_folder(repo_id="local-user/demo", folder_path=folder)
        assert api.list_repo_files("local-user/demo") == [
            ".gitattributes", "notes.txt", "sub/config.json", "weights.bin"
        ]
        weights = api.get_paths_info("local-user/demo", ["weights.bin"])[0]
        assert weights.lfs is not None and weights.lfs.size == 10240, weights
        assert api.get_paths_info("local-user/demo", ["notes.txt"])[0].lfs is None

        for name in ("weights.bin", "notes.txt", "sub/config.json"):
            assert Path(hf_hub_download("local-user/demo", name)).read_bytes() == (folder / name).read_bytes()
        snapshot = Path(snapshot_download("local-user/demo"))
        assert (snapshot / "sub" / "config.json").read_text() == '{{"a": 1}}\\n'
        for missing in (lambda: hf_hub_download("local-user/demo", "missing.txt"),
                        lambda: api.list_repo_tree("local-user/demo", "missing-dir").__next__()):
            try:
                missing()
                raise AssertionError("a missing entry must raise")
            except EntryNotFoundError:
                pass
        try:
            hf_hub_download("local-user/nope", "notes.txt")
            raise AssertionError("a missing repo must raise")
        except RepositoryNotFoundError:
            pass

        # Nothing changed: no new commit (the preupload answer carries each file's oid).
        assert api.upload_folder(repo_id="local-user/demo", folder_path=folder).oid == first.oid

        second = api.create_commit(
            "local-user/demo",
            operations=[
                CommitOperationAdd("notes.txt", b"second version\\n"),
                CommitOperationDelete("weights.bin"),
            ],
            commit_message="second",
            parent_commit=first.oid,
        )
        assert api.list_repo_files("local-user/demo") == [".gitattributes", "notes.txt", "sub/config.json"]
        assert [c.title for c in api.list_repo_commits("local-user/demo")] == [
            "second", "Upload folder using huggingface_hub", "initial commit"
        ]
        assert api.repo_info("local-user/demo").sha == second.oid
        assert Path(hf_hub_download("local-user/demo", "notes.txt")).read_text() == "second version\\n"
        old = hf_hub_download("local-user/demo", "notes.txt", revision=first.oid)
        assert Path(old).read_text() == "first version\\n"
        try:  # stale parent commit
            api.create_commit("local-user/demo", operations=[CommitOperationDelete("notes.txt")],
                              commit_message="stale", parent_commit=first.oid)
            raise AssertionError("a stale parent commit must be refused")
        except HfHubHTTPError as error:
            assert error.response.status_code == 412

        # HfFileSystem: a ranged read of the LFS file at the first commit.
        with HfFileSystem().open(f"local-user/demo@{{first.oid}}/weights.bin", "rb", block_size=16) as f:
            f.seek(1000)
            assert f.read(8) == (folder / "weights.bin").read_bytes()[1000:1008]
        """,
        local_hub,
        tmp_path / "client",
    )
    puts = [path for method, path, _ in local_hub.requests if method == "PUT"]
    assert len(puts) == 1 and puts[0].startswith("/local-user/demo.git/info/lfs/objects/"), puts
    assert any(method == "GET" and status == 206 for method, _, status in local_hub.requests)


REMOTE_CONFIG = """
from transformers import PreTrainedConfig


class TinyRemoteConfig(PreTrainedConfig):
    model_type = "tiny-remote"
    answer: int = 0
"""


@pytest.mark.slow
def test_transformers_push_to_hub_and_from_pretrained(local_hub: LocalHub, tmp_path: Path) -> None:
    producer = tmp_path / "producer"
    producer.mkdir()
    (producer / "configuration_tiny.py").write_text(REMOTE_CONFIG)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "left", "zebra", "##s", "on"]
    (producer / "vocab.txt").write_text("\n".join(vocab) + "\n")
    run_client(
        """
        import torch
        from safetensors.torch import save_file
        from transformers import BertConfig, BertModel, BertTokenizerFast

        from configuration_tiny import TinyRemoteConfig

        torch.manual_seed(0)
        config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=37, max_position_embeddings=64)
        model = BertModel(config)
        model.push_to_hub("tiny-bert")
        save_file(model.state_dict(), "reference.safetensors")
        # transformers 5 ignores `vocab_file=`: the WordPiece vocabulary is passed as `vocab=`.
        tokenizer = BertTokenizerFast(vocab="vocab.txt")
        assert tokenizer("the zebras on the left")["input_ids"] == [2, 5, 7, 8, 9, 5, 6, 3]
        tokenizer.push_to_hub("local-user/tiny-bert")

        TinyRemoteConfig.register_for_auto_class()
        TinyRemoteConfig(answer=42).push_to_hub("local-user/tiny-remote")
        """,
        local_hub,
        producer,
    )
    run_client(
        f"""
        import torch
        from huggingface_hub import list_repo_files
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        files = list_repo_files("local-user/tiny-bert")
        weights = [f for f in files if f.endswith((".bin", ".safetensors", ".pt", ".pth", ".ckpt", ".h5"))]
        assert weights == ["model.safetensors"], files

        model = AutoModel.from_pretrained("local-user/tiny-bert")
        reference = load_file({str(producer / "reference.safetensors")!r})
        state = model.state_dict()
        assert state.keys() == reference.keys()
        assert all(torch.equal(state[k], reference[k]) for k in reference)

        tokenizer = AutoTokenizer.from_pretrained("local-user/tiny-bert")
        assert tokenizer("the zebras on the left")["input_ids"] == [2, 5, 7, 8, 9, 5, 6, 3]

        config = AutoConfig.from_pretrained("local-user/tiny-remote", trust_remote_code=True)
        assert type(config).__name__ == "TinyRemoteConfig" and config.answer == 42
        """,
        local_hub,
        tmp_path / "consumer",
    )


@pytest.mark.slow
def test_datasets_push_to_hub_and_load_dataset(local_hub: LocalHub, tmp_path: Path) -> None:
    run_client(
        """
        import numpy as np
        from datasets import Dataset, Features, Image, Value
        from PIL import Image as PILImage

        images = [PILImage.fromarray(np.full((4, 5, 3), 40 * i, dtype=np.uint8)) for i in range(3)]
        features = Features({"image": Image(), "sentence": Value("string")})
        dataset = Dataset.from_dict(
            {"image": images, "sentence": ["a red cup", "the left dog", "zebra"]}, features=features
        )
        dataset.push_to_hub("local-user/tiny-images")
        """,
        local_hub,
        tmp_path / "producer",
    )
    run_client(
        """
        import numpy as np
        from datasets import load_dataset

        def rows(dataset):
            return [(np.asarray(row["image"]).tolist(), row["sentence"]) for row in dataset]

        expected = [(np.full((4, 5, 3), 40 * i).tolist(), s)
                    for i, s in enumerate(["a red cup", "the left dog", "zebra"])]
        assert rows(load_dataset("local-user/tiny-images", split="train")) == expected
        assert rows(load_dataset("local-user/tiny-images", split="train", streaming=True)) == expected
        """,
        local_hub,
        tmp_path / "consumer",
    )
    assert any(
        "/datasets/local-user/tiny-images.git/info/lfs/objects/batch" in path
        for _, path, _ in local_hub.requests
    )


def test_unreachable_hub_fails_fast_with_a_connection_error(local_hub: LocalHub, tmp_path: Path) -> None:
    client = tmp_path / "client"  # one HF_HOME for both processes: the second one has a warm cache
    run_client(
        """
        from huggingface_hub import HfApi, hf_hub_download

        HfApi().create_repo("local-user/demo")
        HfApi().upload_file(path_or_fileobj=b"cached\\n", path_in_repo="notes.txt", repo_id="local-user/demo")
        hf_hub_download("local-user/demo", "notes.txt")
        """,
        local_hub,
        client,
    )
    local_hub.stop()
    # API calls fail at once; `hf_hub_download` falls back to the cache. (On a cold cache it retries the HEAD
    # call with backoff, about 23 s, before raising `LocalEntryNotFoundError`: that path is left out here.)
    run_client(
        """
        import time
        from pathlib import Path

        import httpx2
        from huggingface_hub import HfApi, hf_hub_download, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        start = time.monotonic()
        try:
            HfApi().create_repo("local-user/other")
            raise AssertionError("create_repo must fail while the Hub is down")
        except httpx2.ConnectError as error:
            assert "Connection refused" in str(error), error
        try:
            snapshot_download("local-user/other")
            raise AssertionError("snapshot_download must fail while the Hub is down")
        except LocalEntryNotFoundError as error:
            assert isinstance(error.__cause__, httpx2.ConnectError), repr(error.__cause__)
        assert Path(hf_hub_download("local-user/demo", "notes.txt")).read_text() == "cached\\n"
        assert time.monotonic() - start < 10, time.monotonic() - start
        """,
        local_hub,
        client,
        extra_env={"HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2"},
        timeout=60,
    )


def test_refused_auth_gives_401_and_leaves_the_local_folder_untouched(
    local_hub: LocalHub, tmp_path: Path
) -> None:
    local_hub.create_repo("local-user/demo")
    local_hub.refuse_auth = True
    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\0\1\2" * 100)
    (folder / "notes.txt").write_text("hello\n")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}
    run_client(
        f"""
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        api = HfApi()
        for attempt in (lambda: api.create_repo("local-user/other"),
                        lambda: api.upload_folder(repo_id="local-user/demo", folder_path={str(folder)!r})):
            try:
                attempt()
                raise AssertionError("a write must fail when the token is refused")
            except HfHubHTTPError as error:
                assert error.response.status_code == 401, error
        assert api.list_repo_files("local-user/demo") == [".gitattributes"]  # reads still work
        """,
        local_hub,
        tmp_path / "client",
    )
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()} == before
    assert local_hub.store.resolve("model", "local-user/demo", "main")["title"] == "initial commit"
    assert local_hub.store.blob_size(hashlib.sha256(before["weights.bin"][0]).hexdigest()) is None


def test_resolve_ranges_errors_and_chunked_upload_over_raw_http(local_hub: LocalHub) -> None:
    local_hub.create_repo("local-user/raw", repo_type="dataset")
    connection = http.client.HTTPConnection(
        "127.0.0.1", int(local_hub.endpoint.rsplit(":", 1)[1]), timeout=10
    )

    def request(method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()

    data = bytes(range(256))
    oid = hashlib.sha256(data).hexdigest()
    connection.putrequest("PUT", f"/datasets/local-user/raw.git/info/lfs/objects/{oid}")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    for part in (data[:100], data[100:], b""):
        connection.send(b"%x\r\n%s\r\n" % (len(part), part))
    assert connection.getresponse().read() == b""
    operations = [
        {"key": "header", "value": {"summary": "add"}},
        {"key": "lfsFile", "value": {"path": "d/é x.bin", "algo": "sha256", "oid": oid, "size": len(data)}},
    ]
    ndjson = "\n".join(json.dumps(op) for op in operations).encode()
    status, _, body = request(
        "POST", "/api/datasets/local-user/raw/commit/main", ndjson, {"Authorization": "Bearer t"}
    )
    assert status == 200, body
    commit = json.loads(body)["commitOid"]

    url = "/datasets/local-user/raw/resolve/main/d/%C3%A9%20x.bin"
    status, headers, body = request("HEAD", url)
    assert (status, body, headers["Content-Length"], headers["X-Repo-Commit"]) == (200, b"", "256", commit)
    assert headers["X-Linked-Etag"] == headers["ETag"] == f'"{oid}"' and headers["X-Linked-Size"] == "256"
    for range_header, expected in [
        ("bytes=-6", data[-6:]),
        ("bytes=250-999", data[250:]),
        ("bytes=3-4", data[3:5]),
    ]:
        status, headers, body = request("GET", url, headers={"Range": range_header})
        assert (status, body) == (206, expected), range_header
    status, headers, _ = request("GET", url, headers={"Range": "bytes=256-"})
    assert (status, headers["Content-Range"]) == (416, "bytes */256")

    for path, code in [
        ("/datasets/local-user/raw/resolve/main/missing", "EntryNotFound"),
        ("/datasets/local-user/raw/resolve/v9/d/x.bin", "RevisionNotFound"),
        ("/datasets/local-user/nope/resolve/main/x.bin", "RepoNotFound"),
        ("/api/datasets/local-user/raw/tree/main/d%2Fmissing", "EntryNotFound"),
    ]:
        status, headers, _ = request("GET", path)
        assert (status, headers["X-Error-Code"]) == (404, code), path
    connection.close()
