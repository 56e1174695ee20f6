"""A small Hugging Face Hub stand-in on 127.0.0.1, for testing real `huggingface_hub` / `datasets` code offline.

It implements just the HTTP API the clients call to create a repo, upload in one commit (preupload; small text files
inline in the NDJSON commit, binaries through the basic Git-LFS batch + PUT protocol) and download back (repo info, tree, paths-info, refs, resolve). Repos live
in memory; every commit is a full snapshot. It binds to the loopback address only and stops with the test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse


class Repo:
    def __init__(self, private: bool):
        self.private = private
        empty = self._commit_id({}, "initial")
        self.commits = {empty: {".gitattributes": b""}}
        self.branches = {"main": empty}
        self.log = {empty: "initial commit"}

    @staticmethod
    def _commit_id(files: dict, message: str) -> str:
        digest = hashlib.sha1(message.encode() + str(time.time_ns()).encode())
        for path in sorted(files):
            digest.update(path.encode() + hashlib.sha1(files[path]).digest())
        return digest.hexdigest()

    def resolve(self, revision: str) -> str | None:
        revision = unquote(revision)
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None

    def commit(self, branch: str, additions: dict, deletions: list, message: str) -> str:
        files = dict(self.commits[self.branches[branch]])
        for path in deletions:
            files.pop(path, None)
        files.update(additions)
        sha = self._commit_id(files, message)
        self.commits[sha] = files
        self.branches[branch] = sha
        self.log[sha] = message
        return sha


class HubState:
    def __init__(self):
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.lfs: dict[str, bytes] = {}  # sha256 -> content uploaded through the LFS protocol


def _entry(path: str, data: bytes | None) -> dict:
    if data is None:
        return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}
    return {"type": "file", "oid": hashlib.sha1(data).hexdigest(), "size": len(data), "path": path}


def _directories(files: dict) -> set[str]:
    dirs = set()
    for path in files:
        parts = path.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return dirs


class HubHandler(BaseHTTPRequestHandler):
    state: HubState
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    # --- helpers -------------------------------------------------------------------------------------------
    def _send(self, status: int, body=b"", headers: dict | None = None, content_type="application/json", head=False):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, head=False):
        self._send(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message}, head=head)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _repo(self, kind: str, repo_id: str, head=False) -> Repo | None:
        repo = self.state.repos.get((kind, repo_id))
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found", head=head)
        return repo

    def _base(self) -> str:
        return f"http://{self.headers.get('Host')}"

    # --- routing -------------------------------------------------------------------------------------------
    def do_HEAD(self):
        self._route("HEAD")

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_PUT(self):
        self._route("PUT")

    def _route(self, method: str):
        url = urlparse(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        query = parse_qs(url.query)
        self.state.requests.append(f"{method} {url.path}")
        with self.state.lock:
            try:
                if parts[:2] == ["api", "validate-yaml"] and method == "POST":
                    return self._validate_yaml(json.loads(self._body() or b"{}"))
                if parts[:3] == ["api", "repos", "create"] and method == "POST":
                    return self._create_repo(json.loads(self._body() or b"{}"))
                if parts[0] == "lfs-upload" and method == "PUT":
                    return self._lfs_put(parts[1])
                if parts[-4:] == ["info", "lfs", "objects", "batch"] and method == "POST":
                    return self._lfs_batch(json.loads(self._body()))
                if parts[0] == "api" and len(parts) >= 4 and parts[1] in ("models", "datasets"):
                    return self._api(method, parts[1][:-1], f"{parts[2]}/{parts[3]}", parts[4:], query)
                if "resolve" in parts:
                    kind = "dataset" if parts[0] == "datasets" else "model"
                    rest = parts[1:] if kind == "dataset" else parts
                    return self._resolve(method, kind, f"{rest[0]}/{rest[1]}", rest[3], "/".join(rest[4:]))
                return self._error(404, "NotFound", f"no route for {method} {url.path}", head=method == "HEAD")
            except Exception as err:  # report server bugs to the client instead of hanging it
                return self._error(500, "ServerError", repr(err), head=method == "HEAD")

    def _validate_yaml(self, payload: dict):
        """The README metadata must be a YAML mapping (the real Hub checks much more)."""
        import yaml

        content = payload.get("content", "")
        front = content.split("---")[1] if content.startswith("---") else ""
        try:
            meta = yaml.safe_load(front) if front.strip() else {}
        except yaml.YAMLError as err:
            return self._send(400, {"error": f"invalid YAML metadata: {err}"})
        if not isinstance(meta, dict):
            return self._send(400, {"error": "YAML metadata must be a mapping"})
        return self._send(200, {"warnings": []})

    def _create_repo(self, payload: dict):
        kind = payload.get("type") or "model"
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        prefix = "datasets/" if kind == "dataset" else ""
        if (kind, repo_id) in self.state.repos:
            return self._send(409, {"error": "You already created this repo", "url": f"{self._base()}/{prefix}{repo_id}"})
        self.state.repos[(kind, repo_id)] = Repo(bool(payload.get("private")))
        return self._send(200, {"url": f"{self._base()}/{prefix}{repo_id}", "name": repo_id, "id": repo_id})

    def _api(self, method: str, kind: str, repo_id: str, rest: list[str], query: dict):
        repo = self._repo(kind, repo_id)
        if repo is None:
            return
        action = rest[0] if rest else "info"
        revision = rest[1] if len(rest) > 1 else "main"
        if action in ("info", "revision"):
            sha = repo.resolve(revision)
            if sha is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            files = repo.commits[sha]
            info = {"id": repo_id, "modelId": repo_id, "sha": sha, "private": repo.private, "disabled": False,
                    "gated": False, "downloads": 0, "likes": 0, "tags": [], "author": repo_id.split("/")[0],
                    "lastModified": "2026-11-22T00:00:00.000Z", "createdAt": "2026-11-22T00:00:00.000Z",
                    "siblings": [{"rfilename": p, "size": len(d)} for p, d in sorted(files.items())]}
            return self._send(200, info)
        if action == "preupload" and method == "POST":
            payload = json.loads(self._body())
            def mode(entry):
                binary = entry["path"].endswith((".safetensors", ".parquet", ".arrow", ".png"))
                return "lfs" if binary or entry["size"] > 100_000 else "regular"

            return self._send(200, {"files": [{"path": f["path"], "uploadMode": mode(f), "shouldIgnore": False}
                                              for f in payload["files"]], "commitOid": repo.branches.get(revision)})
        if action == "commit" and method == "POST":
            return self._commit(repo, kind, repo_id, unquote(revision))
        if action == "branch" and method == "POST":
            if revision in repo.branches:
                return self._error(409, "BranchExists", f"branch {revision} already exists")
            repo.branches[revision] = repo.branches["main"]
            return self._send(200, {})
        if action == "refs":
            return self._send(200, {"branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s}
                                                 for b, s in repo.branches.items()], "tags": [], "converts": []})
        if action == "commits":
            sha = repo.resolve(revision)
            return self._send(200, [{"id": sha, "title": repo.log[sha], "message": repo.log[sha], "authors": [],
                                     "date": "2026-11-22T00:00:00.000Z"}])
        if action == "tree":
            return self._tree(repo, revision, "/".join(rest[2:]), query.get("recursive", ["false"])[0] in ("true", "1", "True"))
        if action == "paths-info" and method == "POST":
            return self._paths_info(repo, revision)
        return self._error(404, "NotFound", f"unsupported API call {action}")

    def _commit(self, repo: Repo, kind: str, repo_id: str, branch: str):
        if branch not in repo.branches:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {branch}")
        additions, deletions, message = {}, [], ""
        for line in self._body().decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "header":
                message = value.get("summary", "")
            elif item["key"] == "file":
                additions[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "lfsFile":
                if value["oid"] not in self.state.lfs:
                    return self._error(400, "BadRequest", f"LFS object {value['oid']} of {value['path']} was never uploaded")
                additions[value["path"]] = self.state.lfs[value["oid"]]
            elif item["key"] in ("deletedFile", "deletedFolder"):
                deletions.append(value["path"])
            else:
                return self._error(400, "BadRequest", f"unsupported commit operation {item['key']}")
        sha = repo.commit(branch, additions, deletions, message)
        prefix = "datasets/" if kind == "dataset" else ""
        return self._send(200, {"commitUrl": f"{self._base()}/{prefix}{repo_id}/commit/{sha}", "commitOid": sha,
                                "pullRequestUrl": None})

    def _lfs_batch(self, payload: dict):
        objects = []
        for obj in payload.get("objects", []):
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.state.lfs:
                entry["actions"] = {"upload": {"href": f"{self._base()}/lfs-upload/{obj['oid']}", "header": {}}}
            objects.append(entry)
        return self._send(200, {"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    def _lfs_put(self, oid: str):
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            return self._error(400, "BadRequest", "uploaded content does not match its sha256")
        self.state.lfs[oid] = data
        return self._send(200, {})

    def _tree(self, repo: Repo, revision: str, path: str, recursive: bool):
        sha = repo.resolve(revision)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = repo.commits[sha]
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        if prefix and prefix[:-1] not in _directories(files):
            return self._error(404, "EntryNotFound", f"{path} does not exist")
        entries = []
        for directory in sorted(_directories(files)):
            if directory.startswith(prefix) and (recursive or "/" not in directory[len(prefix):]):
                entries.append(_entry(directory, None))
        for file_path, data in sorted(files.items()):
            if file_path.startswith(prefix) and (recursive or "/" not in file_path[len(prefix):]):
                entries.append(_entry(file_path, data))
        return self._send(200, entries)

    def _paths_info(self, repo: Repo, revision: str):
        sha = repo.resolve(revision)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        body = self._body().decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body).get("paths", [])
        files = repo.commits[sha]
        dirs = _directories(files)
        out = [_entry(p, files[p]) if p in files else _entry(p, None) for p in paths if p in files or p in dirs]
        return self._send(200, out)

    def _resolve(self, method: str, kind: str, repo_id: str, revision: str, path: str):
        head = method == "HEAD"
        repo = self._repo(kind, repo_id, head=head)
        if repo is None:
            return
        sha = repo.resolve(revision)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head=head)
        data = repo.commits[sha].get(path)
        if data is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist at {revision}", head=head)
        etag = f'"{hashlib.sha1(data).hexdigest()}"'
        return self._send(200, data, {"X-Repo-Commit": sha, "ETag": etag}, content_type="application/octet-stream",
                          head=head)


class LocalHub:
    """`with LocalHub() as hub:` serves on http://127.0.0.1:<free port> (`hub.endpoint`) until the block ends."""

    def __init__(self):
        self.state = HubState()
        handler = type("Handler", (HubHandler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def files(self, repo_id: str, kind: str = "model", revision: str = "main") -> dict[str, bytes]:
        repo = self.state.repos[(kind, repo_id)]
        return repo.commits[repo.resolve(revision)]
