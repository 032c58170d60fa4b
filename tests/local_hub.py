# Copyright 2026 The LAVT-HF authors. Licensed under the Apache License, Version 2.0.
"""A local Hugging Face Hub *test double*: just enough of the Hub's HTTP API for the real clients.

`huggingface_hub`, `transformers` and `datasets` push to and pull from it with no internet access. It is NOT
a Hub replacement: no permissions model (any token is accepted, see `refuse_auth`), no pull requests, tags,
Xet storage or pagination, and every file is served directly (no CDN redirect). The upload mode of a file is
"lfs" when its first 512 bytes hold a NUL byte or it is larger than 10 MiB, "regular" otherwise.

Storage lives under a temporary directory: blobs are content-addressed by sha256 (`blobs/<sha256>`), and
each repo (`repos/<model|dataset|space>/<namespace>/<name>/`) has a `repo.json` (branch refs, creation date)
and one `commits/<oid>.json` per commit holding the full snapshot (path -> sha256, size, git oid, lfs flag).

Implemented routes (`{kind}` is `models`, `datasets` or `spaces`; `{prefix}` is empty for models, `datasets/`
or `spaces/` otherwise; `{rev}` is a branch or a full commit sha, URL-quoted):

- `GET  /api/whoami-v2`, `GET /api/agent-harnesses` (an empty registry)
- `POST /api/repos/create` (409 if the repo exists), `POST /api/validate-yaml` (accepts everything)
- `GET  /api/{kind}/{repo_id}` and `.../revision/{rev}` (`sha`, `siblings`; `blobs` and `expand` options)
- `GET  /api/{kind}/{repo_id}/tree/{rev}[/{path}]` (`recursive`; `expand` adds `lastCommit`)
- `POST /api/{kind}/{repo_id}/paths-info/{rev}`, `GET .../refs`, `GET .../commits/{rev}`
- `POST /api/{kind}/{repo_id}/preupload/{rev}`, `POST .../commit/{rev}` (ndjson: `header`, with an optional
  `parentCommit` (412 if stale), then `file`, `lfsFile`, `deletedFile`, `deletedFolder`)
- `POST /{prefix}{repo_id}.git/info/lfs/objects/batch` (git-LFS batch API, `basic` transfer), then
  `PUT /{prefix}{repo_id}.git/info/lfs/objects/{sha256}` (upload) and `POST .../info/lfs/verify`
- `HEAD`/`GET /{prefix}{repo_id}/resolve/{rev}/{path}` (Range, `X-Repo-Commit`, `ETag`, `X-Linked-Etag`,
  `X-Linked-Size`)

Errors carry `X-Error-Code` (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`) and `X-Error-Message` like
the Hub's, so the clients raise their usual exceptions. Writes need an `Authorization` header and answer 401
while `LocalHub.refuse_auth` is true; `LocalHub.stop()` takes the server down.

In tests: the `local_hub` fixture gives a started hub, and `run_client(code, hub, tmp_path)` runs a client
snippet in a fresh interpreter (huggingface_hub reads `HF_ENDPOINT` when it is imported). Make the fixture
visible with `pytest_plugins = ["tests.local_hub"]` in `tests/conftest.py`, or bind it in a test module with
`from tests.local_hub import local_hub as local_hub_fixture` and `local_hub = local_hub_fixture` (importing
`local_hub` directly makes ruff report F811 on every test that takes it as an argument).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

TOKEN = "hf_local_hub_test_token"
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_GITATTRIBUTES = "".join(
    f"*.{ext} filter=lfs diff=lfs merge=lfs -text\n"
    for ext in ("bin", "safetensors", "pt", "pth", "ckpt", "h5", "onnx", "msgpack", "arrow", "parquet", "zip")
).encode()
# Inherited variables that would send a client elsewhere (caches, offline mode, proxies, the repo's code).
_DROPPED_ENV = {
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_ASSETS_CACHE",
    "HF_DATASETS_CACHE",
    "HF_MODULES_CACHE",
    "HF_XET_CACHE",
    "HF_TOKEN_PATH",
    "HF_STORED_TOKENS_PATH",
    "TRANSFORMERS_CACHE",
    "HF_HUB_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HUGGINGFACE_CO_STAGING",
    "HF_HUB_ETAG_TIMEOUT",
    "HF_HUB_DOWNLOAD_TIMEOUT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN",
    "PYTHONPATH",
}


class HubError(Exception):
    """An HTTP error answered the way the Hub answers it (status, `X-Error-Code`, `X-Error-Message`)."""

    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _is_under(path: str, folder: str) -> bool:
    return folder == "" or path.startswith(folder + "/")


class Store:
    """Repos on disk: content-addressed blobs and, per repo, branch refs and full-snapshot commits."""

    def __init__(self, root: Path):
        self.root = root
        self.lock = threading.Lock()
        (root / "blobs").mkdir(parents=True, exist_ok=True)

    # -- blobs -----------------------------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise HubError(400, f"Invalid sha256 oid {sha256!r}")
        return self.root / "blobs" / sha256

    def blob_size(self, sha256: str) -> int | None:
        path = self.blob_path(sha256)
        return path.stat().st_size if path.is_file() else None

    def put_blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.blob_path(sha256)
        if not path.is_file():
            tmp = path.with_name(f"{sha256}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return sha256

    # -- repos -----------------------------------------------------------------------------------------------
    def _repo_dir(self, repo_type: str, repo_id: str) -> Path:
        parts = repo_id.split("/")
        if len(parts) != 2 or not all(_REPO_PART.fullmatch(p) and ".." not in p for p in parts):
            raise HubError(400, f"Invalid repo id {repo_id!r}")
        return self.root / "repos" / repo_type / parts[0] / parts[1]

    def repo(self, repo_type: str, repo_id: str) -> dict[str, Any]:
        path = self._repo_dir(repo_type, repo_id) / "repo.json"
        if not path.is_file():
            raise HubError(404, "Repository not found", "RepoNotFound")
        return json.loads(path.read_text())

    def _save_repo(self, repo_type: str, repo_id: str, repo: dict[str, Any]) -> None:
        path = self._repo_dir(repo_type, repo_id) / "repo.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(repo))
        tmp.replace(path)

    def create_repo(self, repo_type: str, repo_id: str, private: bool = False) -> bool:
        """Create the repo with an initial commit holding `.gitattributes`; False if it already exists."""
        with self.lock:
            repo_dir = self._repo_dir(repo_type, repo_id)
            if (repo_dir / "repo.json").is_file():
                return False
            (repo_dir / "commits").mkdir(parents=True)
            entry = self._regular_entry(_GITATTRIBUTES)
            commit = self._write_commit(
                repo_type, repo_id, None, {".gitattributes": entry}, "initial commit", ""
            )
            repo = {"id": repo_id, "type": repo_type, "private": private, "createdAt": commit["date"]}
            self._save_repo(repo_type, repo_id, {**repo, "refs": {"main": commit["id"]}})
            return True

    # -- commits ---------------------------------------------------------------------------------------------
    def commit(self, repo_type: str, repo_id: str, oid: str) -> dict[str, Any]:
        return json.loads((self._repo_dir(repo_type, repo_id) / "commits" / f"{oid}.json").read_text())

    def resolve(self, repo_type: str, repo_id: str, revision: str) -> dict[str, Any]:
        """The commit a branch name or a full commit sha points to."""
        refs = self.repo(repo_type, repo_id)["refs"]
        revision = revision.removeprefix("refs/heads/")
        oid = refs.get(revision, revision)
        commits_dir = self._repo_dir(repo_type, repo_id) / "commits"
        if not re.fullmatch(r"[0-9a-f]{40}", oid) or not (commits_dir / f"{oid}.json").is_file():
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return self.commit(repo_type, repo_id, oid)

    def history(self, repo_type: str, repo_id: str, head: dict[str, Any]) -> list[dict[str, Any]]:
        """`head` and its ancestors, newest first."""
        commits = [head]
        while commits[-1]["parent"] is not None:
            commits.append(self.commit(repo_type, repo_id, commits[-1]["parent"]))
        return commits

    def _regular_entry(self, data: bytes) -> dict[str, Any]:
        return {"sha256": self.put_blob(data), "size": len(data), "oid": _git_blob_oid(data), "lfs": False}

    def _lfs_entry(self, sha256: str) -> dict[str, Any]:
        size = self.blob_size(sha256)
        if size is None:
            raise HubError(400, f"LFS object {sha256} was not uploaded before the commit")
        return {"sha256": sha256, "size": size, "oid": _git_blob_oid(_lfs_pointer(sha256, size)), "lfs": True}

    def _write_commit(
        self,
        repo_type: str,
        repo_id: str,
        parent: str | None,
        files: dict[str, Any],
        title: str,
        message: str,
    ) -> dict[str, Any]:
        commit = {"parent": parent, "title": title, "message": message, "date": _now(), "files": files}
        commit["id"] = hashlib.sha1(json.dumps(commit, sort_keys=True).encode()).hexdigest()
        path = self._repo_dir(repo_type, repo_id) / "commits" / f"{commit['id']}.json"
        path.write_text(json.dumps(commit))
        return commit

    def apply_commit(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        header: dict[str, Any],
        operations: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Apply ndjson commit operations on top of `branch` and move the branch to the new commit."""
        with self.lock:
            repo = self.repo(repo_type, repo_id)
            if branch not in repo["refs"]:
                raise HubError(404, f"Branch {branch!r} not found", "RevisionNotFound")
            head = self.commit(repo_type, repo_id, repo["refs"][branch])
            parent = header.get("parentCommit")
            if parent is not None and parent != head["id"]:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(head["files"])
            for op in operations:
                key, value = op["key"], op["value"]
                path = value["path"]
                if key == "file":
                    files[path] = self._regular_entry(base64.b64decode(value["content"]))
                elif key == "lfsFile":
                    files[path] = self._lfs_entry(value["oid"])
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    folder = path.rstrip("/")
                    doomed = [p for p in files if _is_under(p, folder)]
                    if not doomed:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in doomed:
                        del files[p]
                else:
                    raise HubError(400, f"Unsupported commit operation {key!r}")
            title, message = header.get("summary") or "Commit", header.get("description") or ""
            commit = self._write_commit(repo_type, repo_id, head["id"], files, title, message)
            repo["refs"][branch] = commit["id"]
            self._save_repo(repo_type, repo_id, repo)
            return commit


# -- JSON views of the stored data ---------------------------------------------------------------------------


def _folders(files: dict[str, Any]) -> set[str]:
    return {p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") + 1)}


def _fingerprint(files: dict[str, Any], path: str) -> Any:
    if path in files:
        return files[path]["oid"]
    return sorted((p, e["oid"]) for p, e in files.items() if _is_under(p, path)) or None


def _last_commit(history: list[dict[str, Any]], path: str) -> dict[str, str]:
    """The oldest commit of the run of commits (from the head) in which `path` is unchanged."""
    current = _fingerprint(history[0]["files"], path)
    last = history[0]
    for commit in history[1:]:
        if _fingerprint(commit["files"], path) != current:
            break
        last = commit
    return {"id": last["id"], "title": last["title"], "date": last["date"]}


def _path_info(files: dict[str, Any], path: str, history: list[dict[str, Any]] | None) -> dict[str, Any]:
    """A `tree`/`paths-info` entry; `history` (newest first) adds `lastCommit` (the `expand` option)."""
    if path in files:
        entry = files[path]
        info: dict[str, Any] = {"type": "file", "oid": entry["oid"], "size": entry["size"], "path": path}
        if entry["lfs"]:
            pointer_size = len(_lfs_pointer(entry["sha256"], entry["size"]))
            info["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": pointer_size}
    else:
        tree_oid = hashlib.sha1(json.dumps(_fingerprint(files, path)).encode()).hexdigest()
        info = {"type": "directory", "oid": tree_oid, "size": 0, "path": path}
    if history is not None:
        info["lastCommit"] = _last_commit(history, path)
    return info


def _sibling(path: str, entry: dict[str, Any], blobs: bool) -> dict[str, Any]:
    if not blobs:
        return {"rfilename": path}
    sibling: dict[str, Any] = {"rfilename": path, "size": entry["size"], "blobId": entry["oid"]}
    if entry["lfs"]:
        pointer_size = len(_lfs_pointer(entry["sha256"], entry["size"]))
        sibling["lfs"] = {"size": entry["size"], "sha256": entry["sha256"], "pointerSize": pointer_size}
    return sibling


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`(start, stop)` for a `Range: bytes=...` header, None to serve the whole file."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (header or "").strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # a suffix: the last N bytes
        start, stop = max(size - int(last), 0), size
    else:
        start = int(first)
        stop = min(int(last) + 1, size) if last else size
    if start >= size or stop <= start:
        raise HubError(416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    return start, stop


# -- HTTP ----------------------------------------------------------------------------------------------------


@dataclass
class Request:
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: Any
    body: bytes

    def flag(self, name: str) -> bool:
        return self.query.get(name, ["false"])[-1].lower() in ("1", "true")

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def repo_type(self) -> str:
        return _KINDS[self.params.get("kind") or self.params.get("prefix") or "models"]

    def repo_id(self) -> str:
        return f"{self.params['namespace']}/{self.params['name']}"


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, content_type: str = "application/json") -> Response:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": content_type})


class _Api:
    """The route handlers; `hub` holds the store and the failure switches."""

    def __init__(self, hub: LocalHub):
        self.hub = hub
        self.store = hub.store

    def _require_auth(self, req: Request) -> None:
        if self.hub.refuse_auth or not req.headers.get("Authorization"):
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.hub.endpoint}/{URL_PREFIXES[repo_type]}{repo_id}"

    def _revision(self, req: Request) -> dict[str, Any]:
        return self.store.resolve(req.repo_type(), req.repo_id(), req.params["revision"])

    # -- account and repos -----------------------------------------------------------------------------------
    def whoami(self, req: Request) -> Response:
        self._require_auth(req)
        user = self.hub.user
        token = {"displayName": "local-hub", "role": "write", "createdAt": _now()}
        return Response.json(
            {
                "type": "user",
                "id": hashlib.sha1(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": user,
                "email": f"{user}@example.invalid",
                "emailVerified": True,
                "canPay": False,
                "isPro": False,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": token},
            }
        )

    def agent_harnesses(self, req: Request) -> Response:
        return Response.json({"standardEnvVars": [], "harnesses": {}})

    def create_repo(self, req: Request) -> Response:
        self._require_auth(req)
        payload = req.json()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.hub.user}/{payload['name']}"
        url = self._repo_url(repo_type, repo_id)
        private = payload.get("visibility", "private" if payload.get("private") else "public") != "public"
        if not self.store.create_repo(repo_type, repo_id, private=private):
            return Response.json({"error": "You already created this repo", "url": url}, status=409)
        return Response.json(
            {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]}
        )

    def validate_yaml(self, req: Request) -> Response:
        return Response.json({"errors": [], "warnings": []})

    def repo_info(self, req: Request) -> Response:
        repo_type, repo_id = req.repo_type(), req.repo_id()
        repo = self.store.repo(repo_type, repo_id)
        commit = self.store.resolve(repo_type, repo_id, req.params.get("revision") or "main")
        blobs = req.flag("blobs")
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0],
            "sha": commit["id"],
            "lastModified": commit["date"],
            "createdAt": repo["createdAt"],
            "private": repo["private"],
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [_sibling(p, e, blobs) for p, e in sorted(commit["files"].items())],
        }
        if expand := req.query.get("expand") or req.query.get("expand[]"):
            info = {k: v for k, v in info.items() if k in {"_id", "id", *expand}}
        return Response.json(info)

    # -- reads -----------------------------------------------------------------------------------------------
    def tree(self, req: Request) -> Response:
        commit = self._revision(req)
        files, folder = commit["files"], (req.params.get("path") or "").strip("/")
        if folder and folder not in _folders(files):
            raise HubError(404, f"{folder} does not exist on {commit['id']}", "EntryNotFound")
        recursive = req.flag("recursive")
        paths = [
            p
            for p in sorted(set(files) | _folders(files))
            if _is_under(p, folder) and (recursive or "/" not in p[len(folder) :].lstrip("/"))
        ]
        history = self.store.history(req.repo_type(), req.repo_id(), commit) if req.flag("expand") else None
        return Response.json([_path_info(files, p, history) for p in paths])

    def paths_info(self, req: Request) -> Response:
        commit = self._revision(req)
        if req.headers.get("Content-Type", "").startswith("application/json"):
            payload = req.json()
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:
            form = parse_qs(req.body.decode())
            paths, expand = form.get("paths", []), form.get("expand", ["false"])[-1].lower() == "true"
        files = commit["files"]
        existing = [p.strip("/") for p in paths if p.strip("/") in files or p.strip("/") in _folders(files)]
        history = self.store.history(req.repo_type(), req.repo_id(), commit) if expand else None
        return Response.json([_path_info(files, p, history) for p in existing])

    def refs(self, req: Request) -> Response:
        refs = self.store.repo(req.repo_type(), req.repo_id())["refs"]
        branches = [
            {"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid} for b, oid in sorted(refs.items())
        ]
        return Response.json({"branches": branches, "converts": [], "tags": [], "pullRequests": []})

    def commits(self, req: Request) -> Response:
        history = self.store.history(req.repo_type(), req.repo_id(), self._revision(req))
        return Response.json(
            [
                {
                    "id": c["id"],
                    "title": c["title"],
                    "message": c["message"],
                    "date": c["date"],
                    "authors": [{"user": self.hub.user if c["parent"] else "system"}],
                }
                for c in history
            ]
        )

    def resolve(self, req: Request) -> Response:
        commit = self._revision(req)
        entry = commit["files"].get(req.params["path"])
        if entry is None:
            raise HubError(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": commit["id"]})
        etag = entry["sha256"] if entry["lfs"] else entry["oid"]
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": f'"{etag}"',
            "X-Repo-Commit": commit["id"],
        }
        if entry["lfs"]:
            headers |= {"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(entry["size"])}
        data = self.store.blob_path(entry["sha256"]).read_bytes()
        byte_range = _byte_range(req.headers.get("Range"), entry["size"])
        if byte_range is None:
            return Response(200, data, headers)
        start, stop = byte_range
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{entry['size']}"
        return Response(206, data[start:stop], headers)

    # -- writes ----------------------------------------------------------------------------------------------
    def preupload(self, req: Request) -> Response:
        self._require_auth(req)
        head = self._revision(req)
        answers = []
        for file in req.json()["files"]:
            sample = base64.b64decode(file["sample"])
            lfs = file["size"] > LFS_SIZE_THRESHOLD or b"\0" in sample
            answer = {"path": file["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            if (existing := head["files"].get(file["path"])) is not None:
                answer["oid"] = existing["sha256"] if existing["lfs"] else existing["oid"]
            answers.append(answer)
        return Response.json({"files": answers, "commitOid": head["id"]})

    def commit(self, req: Request) -> Response:
        self._require_auth(req)
        if req.flag("create_pr"):
            raise HubError(400, "LocalHub does not implement pull requests")
        lines = [json.loads(line) for line in req.body.splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        operations = [line for line in lines if line["key"] != "header"]
        repo_type, repo_id = req.repo_type(), req.repo_id()
        commit = self.store.apply_commit(repo_type, repo_id, req.params["revision"], header, operations)
        return Response.json(
            {
                "success": True,
                "commitOid": commit["id"],
                "commitUrl": f"{self._repo_url(repo_type, repo_id)}/commit/{commit['id']}",
            }
        )

    def lfs_batch(self, req: Request) -> Response:
        self._require_auth(req)
        self.store.repo(req.repo_type(), req.repo_id())
        payload = req.json()
        if payload.get("operation") != "upload":
            raise HubError(400, "LocalHub only implements LFS uploads")
        lfs_url = f"{self._repo_url(req.repo_type(), req.repo_id())}.git/info/lfs"
        objects = []
        for obj in payload["objects"]:
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if self.store.blob_size(obj["oid"]) != obj["size"]:
                answer["actions"] = {
                    "upload": {"href": f"{lfs_url}/objects/{obj['oid']}"},
                    "verify": {"href": f"{lfs_url}/verify"},
                }
            objects.append(answer)
        return Response.json(
            {"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json"
        )

    def lfs_upload(self, req: Request) -> Response:
        # The client sends no token here (the href stands for a pre-signed storage URL).
        if self.hub.refuse_auth:
            raise HubError(401, "Invalid credentials in Authorization header")
        if hashlib.sha256(req.body).hexdigest() != req.params["oid"]:
            raise HubError(400, "The uploaded content does not match its sha256 oid")
        self.store.put_blob(req.body)
        return Response()

    def lfs_verify(self, req: Request) -> Response:
        self._require_auth(req)
        payload = req.json()
        if self.store.blob_size(payload["oid"]) != payload["size"]:
            raise HubError(404, f"LFS object {payload['oid']} of size {payload['size']} not found")
        return Response.json({"success": True})


_API = r"/api/(?P<kind>models|datasets|spaces)/(?P<namespace>[^/]+)/(?P<name>[^/]+)"
_GIT = r"/(?:(?P<prefix>datasets|spaces)/)?(?P<namespace>[^/]+)/(?P<name>[^/]+?)"
_ROUTES: list[tuple[frozenset[str], re.Pattern[str], Callable[[_Api, Request], Response]]] = [
    (frozenset(methods.split()), re.compile(pattern), handler)
    for methods, pattern, handler in [
        ("GET", r"/api/whoami-v2", _Api.whoami),
        ("GET", r"/api/agent-harnesses", _Api.agent_harnesses),
        ("POST", r"/api/repos/create", _Api.create_repo),
        ("POST", r"/api/validate-yaml", _Api.validate_yaml),
        ("GET", rf"{_API}(?:/revision/(?P<revision>[^/]+))?", _Api.repo_info),
        ("GET", rf"{_API}/tree/(?P<revision>[^/]+)(?:/(?P<path>.*))?", _Api.tree),
        ("POST", rf"{_API}/paths-info/(?P<revision>[^/]+)", _Api.paths_info),
        ("GET", rf"{_API}/refs", _Api.refs),
        ("GET", rf"{_API}/commits/(?P<revision>[^/]+)", _Api.commits),
        ("POST", rf"{_API}/preupload/(?P<revision>[^/]+)", _Api.preupload),
        ("POST", rf"{_API}/commit/(?P<revision>[^/]+)", _Api.commit),
        ("POST", rf"{_GIT}\.git/info/lfs/objects/batch", _Api.lfs_batch),
        ("PUT", rf"{_GIT}\.git/info/lfs/objects/(?P<oid>[0-9a-f]{{64}})", _Api.lfs_upload),
        ("POST", rf"{_GIT}\.git/info/lfs/verify", _Api.lfs_verify),
        ("GET HEAD", rf"{_GIT}/resolve/(?P<revision>[^/]+)/(?P<path>.+)", _Api.resolve),
    ]
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _HubServer

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET  # unrouted requests get a logged 404, not a bare 501

    def log_message(self, format: str, *args: Any) -> None:  # the request log is `LocalHub.requests`
        pass

    def _read_body(self) -> bytes:
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():  # trailers, up to the blank line
            pass
        return b"".join(chunks)

    def _dispatch(self) -> None:
        hub = self.server.hub
        url = urlsplit(self.path)
        body = self._read_body()
        try:
            for methods, pattern, handler in _ROUTES:
                match = pattern.fullmatch(url.path)
                if match and self.command in methods:
                    params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                    request = Request(params, parse_qs(url.query), self.headers, body)
                    response = handler(self.server.api, request)
                    break
            else:
                raise HubError(404, f"LocalHub does not implement {self.command} {url.path}")
        except HubError as error:
            message = error.message.encode("ascii", "backslashreplace").decode()  # headers are latin-1
            headers = {"Content-Type": "application/json", "X-Error-Message": message, **error.headers}
            if error.code:
                headers["X-Error-Code"] = error.code
            response = Response(error.status, json.dumps({"error": error.message}).encode(), headers)
        except Exception as error:  # a bug in the test double: answer 500 and let the fixture report it
            hub.errors.append(f"{self.command} {self.path}: {error!r}")
            response = Response(500, json.dumps({"error": repr(error)}).encode())
        hub.requests.append((self.command, self.path, response.status))
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)


class _HubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: LocalHub):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hub = hub
        self.api = _Api(hub)
        self.connections: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Drop kept-alive client connections too, so that the server is really down."""
        for connection in list(self.connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class LocalHub:
    """A Hub test double on 127.0.0.1 (random free port), storing repos under a temporary directory.

    Use as a context manager (or `start()`/`close()`). `refuse_auth` (settable at any time) answers 401 to
    every write; `stop()` takes the server down while keeping `endpoint`, to simulate an unreachable Hub.
    `requests` logs `(method, path, status)` of each request; `errors` lists the server's own failures (500s).
    """

    def __init__(self, *, refuse_auth: bool = False, user: str = "local-user"):
        self.refuse_auth = refuse_auth
        self.user = user
        self.requests: list[tuple[str, str, int]] = []
        self.errors: list[str] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="local-hub-")
        self.store = Store(Path(self._tmp.name))
        self._server: _HubServer | None = None
        self._endpoint: str | None = None

    @property
    def endpoint(self) -> str:
        if self._endpoint is None:
            raise RuntimeError("LocalHub is not started")
        return self._endpoint

    def start(self) -> LocalHub:
        self._server = _HubServer(self)
        self._endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)  # a quick `stop()`
        threading.Thread(target=serve, name="local-hub", daemon=True).start()
        return self

    def stop(self) -> None:
        """Take the server down: new connections are refused and open ones are closed."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            self._server = None

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def create_repo(self, repo_id: str, repo_type: str = "model") -> None:
        """Create a repo directly in the store (no HTTP, ignores `refuse_auth`)."""
        self.store.create_repo(repo_type, repo_id)

    def env(self, hf_home: str | Path) -> dict[str, str]:
        """Environment variables that point a fresh client process at this hub, with its own cache."""
        return {
            "HF_ENDPOINT": self.endpoint,
            "HF_TOKEN": TOKEN,
            "HF_HOME": str(hf_home),
            "HF_HUB_DISABLE_XET": "1",  # otherwise every LFS upload goes through the Xet protocol
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            "HF_UPDATE_DOWNLOAD_COUNTS": "0",  # datasets would HEAD an S3 URL on every load
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }


class ClientProcessError(AssertionError):
    """A client process run by `run_client` failed or timed out."""


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def run_client(
    code: str,
    hub: LocalHub,
    tmp_path: str | Path,
    extra_env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the Python snippet `code` in a fresh interpreter pointed at `hub`.

    The process runs in `tmp_path` (created if needed) with `HF_HOME=tmp_path/hf_home`: a fresh directory
    gives a cold cache. The repo's own packages are importable only if `extra_env` sets `PYTHONPATH`.
    Raises `ClientProcessError` with the output when the process fails or runs past `timeout` seconds.
    """
    __tracebackhide__ = True
    tmp_path = Path(tmp_path)
    tmp_path.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env |= hub.env(tmp_path / "hf_home") | (extra_env or {})
    command = [sys.executable, "-c", textwrap.dedent(code)]
    try:
        process = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as expired:
        raise ClientProcessError(
            f"client timed out after {timeout}s\n--- stdout ---\n{_text(expired.stdout)}\n"
            f"--- stderr ---\n{_text(expired.stderr)}"
        ) from None
    if process.returncode != 0:
        raise ClientProcessError(
            f"client exited with {process.returncode}\n--- stdout ---\n{process.stdout}\n"
            f"--- stderr ---\n{process.stderr}"
        )
    return process


@pytest.fixture
def local_hub() -> Iterator[LocalHub]:
    """A started `LocalHub`, stopped and deleted after the test; fails if the server itself errored."""
    with LocalHub() as hub:
        yield hub
        assert not hub.errors, "LocalHub internal errors:\n" + "\n".join(hub.errors)
