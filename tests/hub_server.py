"""A minimal Hugging Face Hub-compatible HTTP server for offline tests of pushing and pulling.

Stdlib only (``http.server``), in-memory storage. It implements the routes the real
``huggingface_hub`` client (and ``transformers`` / ``datasets`` on top of it) calls to create a
repo, commit files, read repo info, list trees and download files::

    POST /api/repos/create                                  create_repo (409 if it exists)
    POST /api/validate-yaml                                 README.md metadata check before a commit
    GET  /api/whoami-v2                                     whoami
    GET  /api/agent-harnesses                               huggingface_hub's agent registry (empty)
    GET  /api/{type}s/{ns}/{name}[/revision/{rev}]          model_info / dataset_info / repo_info
    GET  /api/{type}s/{ns}/{name}/tree/{rev}[/{path}]       list_repo_tree (one page, ?recursive=)
    POST /api/{type}s/{ns}/{name}/paths-info/{rev}          get_paths_info (form or JSON body)
    GET  /api/{type}s/{ns}/{name}/refs                      list_repo_refs
    POST /api/{type}s/{ns}/{name}/branch/{branch}           create_branch
    POST /api/{type}s/{ns}/{name}/preupload/{rev}           upload mode per file: "regular" or "lfs"
    POST /api/{type}s/{ns}/{name}/commit/{rev}              NDJSON commit: base64 inline files, lfsFile refs
    POST /[datasets/|spaces/]{ns}/{name}.git/info/lfs/objects/batch   Git LFS batch API, "basic" transfer
    PUT  /__lfs__/{sha256}   POST /__lfs__/{sha256}/verify  LFS object upload and verify
    HEAD|GET /[datasets/|spaces/]{ns}/{name}/resolve/{rev}/{path}   file download (Range supported)

Upload modes: ``preupload`` answers ``"regular"`` (the file travels base64-encoded inside the commit)
for every file except those matching ``lfs_patterns`` (default ``*.parquet``), which get ``"lfs"``.
The exception exists because ``datasets``' ``push_to_hub`` writes each Parquet shard to a temporary
file, calls ``preupload_lfs_files`` and deletes the file before committing: it relies on the Hub
always storing Parquet in LFS, and an inline commit of the shard would find the file gone. Those
uploads use the legacy LFS "basic" transfer, which ``huggingface_hub`` only uses when ``hf_xet`` is
absent or disabled (``HF_HUB_DISABLE_XET=1``); with ``hf_xet`` active it would ask for a Xet token,
which this server refuses with a 501 naming the fix. Model folders (safetensors, JSON, code) are all
"regular", so pushing and pulling them never touches LFS or Xet. Downloads carry no ``X-Xet-*``
header and no ``xet-auth`` link, so ``hf_xet`` is never asked to download anything.

Responses carry the headers the client requires (``X-Repo-Commit``, ``ETag``, ``Content-Length``)
and typed errors (``X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound``). Any other
route answers 404 with a JSON ``error`` naming the route, is printed to stderr and recorded in
``HubServer.unhandled``, so a test can assert the client needed nothing more.

Usage::

    with HubServer() as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "dummy", ...}
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

REPO_TYPES = ("model", "dataset", "space")
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.parquet filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob: what the Hub reports as a regular file's ``oid`` and ``ETag``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


@dataclass
class Commit:
    oid: str
    files: dict[str, bytes]
    title: str
    parent: str | None
    date: str
    lfs: set[str] = field(default_factory=set)  # paths stored in LFS

    def entry(self, path: str) -> dict:
        """The tree / paths-info entry of a file, like the Hub's (LFS files: oid of the pointer + lfs)."""
        data = self.files[path]
        if path in self.lfs:
            sha256 = hashlib.sha256(data).hexdigest()
            pointer = lfs_pointer(sha256, len(data))
            return {"type": "file", "oid": git_blob_sha1(pointer), "size": len(data), "path": path,
                    "lfs": {"oid": sha256, "size": len(data), "pointerSize": len(pointer)}}
        return {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": path}

    def etag(self, path: str) -> str:
        """What the Hub sends as ETag and preupload ``oid``: sha256 for LFS files, git blob sha1 otherwise."""
        data = self.files[path]
        return hashlib.sha256(data).hexdigest() if path in self.lfs else git_blob_sha1(data)


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, revision: str) -> Commit:
        revision = unquote(revision)
        if revision in self.branches:
            return self.commits[self.branches[revision]]
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            found = [c for oid, c in self.commits.items() if oid.startswith(revision)]
            if len(found) == 1:
                return found[0]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def _entries(commit: Commit, prefix: str, recursive: bool) -> list[dict]:
    """Tree entries (files and directories) below ``prefix`` ("" = root), like the Hub's tree API."""
    base = prefix.strip("/")
    base = base + "/" if base else ""
    out, dirs = [], set()
    for path in sorted(commit.files):
        if not path.startswith(base):
            continue
        rest = path[len(base):]
        parts = rest.split("/")
        for i in range(1, len(parts)):
            if recursive or i == 1:
                dirs.add(base + "/".join(parts[:i]))
        if recursive or len(parts) == 1:
            out.append(commit.entry(path))
    out += [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d} for d in dirs]
    return sorted(out, key=lambda e: e["path"])


def _front_matter(text: str) -> dict | None:
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, flags=re.S)
    if not match:
        return None
    try:
        import yaml
    except ImportError:  # metadata is then simply not reported in repo info
        return None
    data = yaml.safe_load(match.group(1))
    if data is not None and not isinstance(data, dict):
        raise ValueError("metadata must be a YAML mapping")
    return data or {}


class HubServer:
    """The server, on 127.0.0.1 and a free port, served from a daemon thread; a context manager."""

    def __init__(self, namespace: str = "user", lfs_patterns: tuple[str, ...] = ("*.parquet",), verbose: bool = False):
        self.namespace = namespace
        self.lfs_patterns = tuple(lfs_patterns)
        self.verbose = verbose
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content, uploaded through the LFS batch API
        self.requests: list[tuple[str, str]] = []
        self.unhandled: list[str] = []
        self.lock = threading.RLock()
        self._counter = 0
        handler = type("Handler", (_Handler,), {"hub": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="hub-server", daemon=True)

    def start(self) -> "HubServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- storage ------------------------------------------------------------------------------
    def repo(self, repo_type: str, repo_id: str) -> Repo:
        with self.lock:
            repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def repo_url(self, repo: Repo) -> str:
        return f"{self.url}/{URL_PREFIX[repo.repo_type]}{repo.repo_id}"

    def new_commit(self, repo: Repo, files: dict[str, bytes], title: str, parent: str | None,
                   lfs: set[str] | None = None) -> Commit:
        with self.lock:
            self._counter += 1
            digest = hashlib.sha1(f"{repo.repo_id}\0{parent}\0{title}\0{self._counter}".encode())
            for path in sorted(files):
                digest.update(path.encode() + b"\0" + git_blob_sha1(files[path]).encode())
            commit = Commit(digest.hexdigest(), dict(files), title, parent, now_iso(), set(lfs or ()) & set(files))
            repo.commits[commit.oid] = commit
            return commit

    def file_list(self, repo_type: str, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of a repo at a revision (for assertions in tests)."""
        return dict(self.repo(repo_type, repo_id).resolve(revision).files)


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    server_version = "MiniHub/1.0"

    # -- plumbing -----------------------------------------------------------------------------
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        if self.hub.verbose:
            sys.stderr.write("hub_server: " + format % args + "\n")

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json",
              headers: dict | None = None, head: bool = False, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, status: int, obj, headers: dict | None = None, head: bool = False) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers, head=head)

    def _error(self, err: HubError, head: bool = False) -> None:
        headers = dict(err.headers)
        if err.code:
            headers["X-Error-Code"] = err.code
        headers["X-Error-Message"] = err.message
        self._json(err.status, {"error": err.message}, headers=headers, head=head)

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        with self.hub.lock:
            self.hub.requests.append((method, self.path))
        body = self._body() if method in ("POST", "PUT", "DELETE") else b""
        head = method == "HEAD"
        try:
            for pattern, methods, func in ROUTES:
                match = pattern.fullmatch(path)
                if match and method in methods:
                    return func(self, match, query, body, head)
            message = f"hub_server: unhandled route {method} {self.path}"
            with self.hub.lock:
                self.hub.unhandled.append(f"{method} {self.path}")
            sys.stderr.write(message + "\n")
            self._json(404, {"error": message}, head=head)
        except HubError as err:
            self._error(err, head=head)
        except Exception as err:  # noqa: BLE001 - a server bug must reach the client as a 500, not hang it
            import traceback

            traceback.print_exc()
            self._json(500, {"error": f"hub_server: {type(err).__name__}: {err}"}, head=head)

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # -- routes -------------------------------------------------------------------------------
    def whoami(self, match, query, body, head):
        name = self.hub.namespace
        self._json(200, {"type": "user", "id": name, "name": name, "fullname": name, "orgs": [],
                         "auth": {"type": "access_token", "accessToken": {"displayName": "dummy", "role": "write"}}},
                   head=head)

    def agent_harnesses(self, match, query, body, head):
        """The registry huggingface_hub fetches to tag requests made from AI coding agents: none here."""
        self._json(200, {"standardEnvVars": [], "harnesses": {}}, head=head)

    def validate_yaml(self, match, query, body, head):
        content = json.loads(body or b"{}").get("content", "")
        try:
            _front_matter(content)
        except Exception as err:  # noqa: BLE001 - any YAML error is the user's, reported like the Hub does
            return self._json(400, {"errors": [{"message": f"Invalid YAML: {err}"}], "warnings": []})
        self._json(200, {"errors": [], "warnings": []})

    def create_repo(self, match, query, body, head):
        payload = json.loads(body or b"{}")
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise HubError(400, f"invalid repo type {repo_type!r}")
        name, org = payload.get("name"), payload.get("organization") or self.hub.namespace
        if not name or not re.fullmatch(r"[\w.-]+", name) or not re.fullmatch(r"[\w.-]+", org):
            raise HubError(400, f"invalid repo name {org}/{name}")
        repo_id = f"{org}/{name}"
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        with self.hub.lock:
            existing = self.hub.repos.get((repo_type, repo_id))
            if existing is not None:
                return self._json(409, {"error": f"You already created this {repo_type} repo",
                                        "url": self.hub.repo_url(existing)})
            repo = Repo(repo_type, repo_id, private, now_iso())
            first = self.hub.new_commit(repo, {".gitattributes": GITATTRIBUTES}, "initial commit", None)
            repo.branches["main"] = first.oid
            self.hub.repos[(repo_type, repo_id)] = repo
        self._json(200, {"url": self.hub.repo_url(repo), "name": repo_id, "id": repo_id})

    def repo_info(self, match, query, body, head):
        repo_type = match["type"]
        repo = self.hub.repo(repo_type, match["repo_id"])
        commit = repo.resolve(match["rev"] or "main")
        blobs = "blobs" in query and query["blobs"][0].lower() in ("1", "true")
        siblings = []
        for path, data in sorted(commit.files.items()):
            sibling = {"rfilename": path}
            if blobs:
                sibling.update(size=len(data), blobId=git_blob_sha1(data))
            siblings.append(sibling)
        info = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.created,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(len(d) for d in commit.files.values()),
        }
        if repo_type == "model":
            info["modelId"] = repo.repo_id
        readme = commit.files.get("README.md")
        if readme is not None:
            try:
                card = _front_matter(readme.decode("utf-8"))
            except Exception:  # noqa: BLE001 - an unreadable card is reported without metadata
                card = None
            if card is not None:
                info["cardData"] = card
                for key in ("library_name", "pipeline_tag"):
                    if key in card:
                        info[key] = card[key]
                tags = card.get("tags") or []
                info["tags"] = list(tags) if isinstance(tags, list) else [tags]
        self._json(200, info, headers={"X-Repo-Commit": commit.oid}, head=head)

    def tree(self, match, query, body, head):
        repo = self.hub.repo(match["type"], match["repo_id"])
        commit = repo.resolve(match["rev"])
        path = unquote(match["path"] or "").strip("/")
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        if path and path in commit.files:
            raise HubError(404, f"{path} is a file, not a directory", "EntryNotFound")
        entries = _entries(commit, path, recursive)
        if path and not entries:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound",
                           {"X-Repo-Commit": commit.oid})
        if query.get("expand", ["false"])[0].lower() in ("1", "true"):
            for entry in entries:
                entry["lastCommit"] = {"id": commit.oid, "title": commit.title, "date": commit.date}
        self._json(200, entries, headers={"X-Repo-Commit": commit.oid}, head=head)

    def paths_info(self, match, query, body, head):
        repo = self.hub.repo(match["type"], match["repo_id"])
        commit = repo.resolve(match["rev"])
        if self.headers.get("Content-Type", "").startswith("application/json"):
            payload = json.loads(body or b"{}")
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:
            form = parse_qs(body.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), form.get("expand", ["false"])[0].lower() in ("1", "true")
        out = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                entry = commit.entry(path)
            elif any(p.startswith(path + "/") for p in commit.files) or path == "":
                entry = {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}
            else:
                continue
            if expand:
                entry["lastCommit"] = {"id": commit.oid, "title": commit.title, "date": commit.date}
            out.append(entry)
        self._json(200, out, headers={"X-Repo-Commit": commit.oid})

    def refs(self, match, query, body, head):
        repo = self.hub.repo(match["type"], match["repo_id"])
        branches = [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid}
                    for name, oid in repo.branches.items() if not name.startswith("refs/pr/")]
        self._json(200, {"branches": branches, "converts": [], "tags": []}, head=head)

    def create_branch(self, match, query, body, head):
        repo = self.hub.repo(match["type"], match["repo_id"])
        branch = unquote(match["branch"])
        start = json.loads(body or b"{}").get("startingPoint") or "main"
        with self.hub.lock:
            if branch in repo.branches:
                raise HubError(409, f"Branch {branch} already exists")
            repo.branches[branch] = repo.resolve(start).oid
        self._json(200, {})

    def preupload(self, match, query, body, head):
        repo = self.hub.repo(match["type"], match["repo_id"])
        revision = unquote(match["rev"])
        current = repo.commits[repo.branches[revision]] if revision in repo.branches else None
        out = []
        for item in json.loads(body or b"{}").get("files", []):
            path = item["path"]
            lfs = item.get("size", 0) > 0 and any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.rsplit("/", 1)[-1], p)
                                                  for p in self.hub.lfs_patterns)
            oid = current.etag(path) if current is not None and path in current.files else None
            out.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        self._json(200, {"files": out})

    def commit(self, match, query, body, head):
        repo = self.hub.repo(match["type"], match["repo_id"])
        revision = unquote(match["rev"])
        lines = [json.loads(line) for line in body.decode("utf-8").splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "commit payload must start with a header line")
        header = lines[0]["value"]
        create_pr = query.get("create_pr", ["0"])[0] in ("1", "true")
        with self.hub.lock:
            if revision not in repo.branches:
                raise HubError(404, f"Invalid rev id: {revision} (commits go to a branch)", "RevisionNotFound")
            head_oid = repo.branches[revision]
            parent = header.get("parentCommit")
            if parent and not head_oid.startswith(parent):
                raise HubError(412, f"parentCommit {parent} is not the head of {revision} ({head_oid})")
            files = dict(repo.commits[head_oid].files)
            lfs = set(repo.commits[head_oid].lfs)
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value", {})
                path = value.get("path", "").strip("/")
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HubError(400, f"unsupported encoding {value.get('encoding')!r} for {path}")
                    files[path] = base64.b64decode(value["content"])
                    lfs.discard(path)
                elif key == "lfsFile":
                    data = self.hub.lfs_objects.get(value.get("oid", ""))
                    if data is None or len(data) != value.get("size"):
                        raise HubError(422, f"LFS object {value.get('oid')} of {path} was not uploaded")
                    files[path] = data
                    lfs.add(path)
                elif key == "deletedFile":
                    if path not in files:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    doomed = [p for p in files if p.startswith(path + "/")]
                    if not doomed:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in doomed:
                        del files[p]
                else:
                    raise HubError(400, f"hub_server: unsupported commit operation {key!r}")
            commit = self.hub.new_commit(repo, files, header.get("summary") or "", head_oid, lfs)
            pr_url = None
            if create_pr:
                number = 1 + sum(name.startswith("refs/pr/") for name in repo.branches)
                repo.branches[f"refs/pr/{number}"] = commit.oid
                pr_url = f"{self.hub.repo_url(repo)}/discussions/{number}"
            else:
                repo.branches[revision] = commit.oid
        self._json(200, {"success": True, "commitOid": commit.oid, "commitMessage": commit.title,
                         "commitUrl": f"{self.hub.repo_url(repo)}/commit/{commit.oid}",
                         "hookOutput": "", "pullRequestUrl": pr_url})

    def resolve(self, match, query, body, head):
        repo_type = {"datasets": "dataset", "spaces": "space"}.get(match["prefix"] or "", "model")
        repo = self.hub.repo(repo_type, match["repo_id"])
        commit = repo.resolve(match["rev"])
        path = unquote(match["path"])
        data = commit.files.get(path)
        if data is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{commit.etag(path)}"', "Accept-Ranges": "bytes",
                   "Content-Disposition": f'inline; filename*=UTF-8\'\'{quote(path.rsplit("/", 1)[-1])}; '
                                          f'filename="{path.rsplit("/", 1)[-1]}";'}
        status, chunk = 200, data
        ranged = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if ranged and data and not head:
            first, last = ranged.groups()
            if first == "":
                start, end = max(len(data) - int(last or 0), 0), len(data) - 1
            else:
                start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            if start >= len(data) or start > end:
                return self._send(416, b"", "application/octet-stream",
                                  {**headers, "Content-Range": f"bytes */{len(data)}"})
            status, chunk = 206, data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self._send(status, chunk, "application/octet-stream", headers, head=head, length=len(chunk))

    def lfs_batch(self, match, query, body, head):
        repo_type = {"datasets": "dataset", "spaces": "space"}.get(match["prefix"] or "", "model")
        self.hub.repo(repo_type, match["repo_id"])
        payload = json.loads(body or b"{}")
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, f"hub_server: only LFS 'upload' with the 'basic' transfer, got {payload.get('operation')!r} "
                                f"{payload.get('transfers')!r}")
        objects = []
        for obj in payload.get("objects", []):
            item = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if self.hub.lfs_objects.get(obj["oid"]) is None:  # already stored: no actions, nothing to upload
                href = f"{self.hub.url}/__lfs__/{obj['oid']}"
                item["actions"] = {"upload": {"href": href, "header": {}}, "verify": {"href": href + "/verify", "header": {}}}
            objects.append(item)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(), "application/vnd.git-lfs+json")

    def lfs_put(self, match, query, body, head):
        oid = match["oid"]
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, f"LFS upload: content does not hash to {oid}")
        with self.hub.lock:
            self.hub.lfs_objects[oid] = body
        self._send(200)

    def lfs_verify(self, match, query, body, head):
        payload = json.loads(body or b"{}")
        data = self.hub.lfs_objects.get(match["oid"])
        if data is None or len(data) != payload.get("size"):
            raise HubError(404, f"LFS object {match['oid']} not found or of another size")
        self._json(200, {})

    def xet_refused(self, match, query, body, head):
        message = ("hub_server: no Xet storage here. This client has hf_xet and was offered an LFS upload; "
                   "set HF_HUB_DISABLE_XET=1 for pushes with LFS files (e.g. datasets' Parquet shards)")
        with self.hub.lock:
            self.hub.unhandled.append(f"{self.command} {self.path}")
        sys.stderr.write(message + "\n")
        self._json(501, {"error": message})


_REPO = r"(?P<type>model|dataset|space)s/(?P<repo_id>[\w.-]+/[\w.-]+)"
ROUTES = [
    (re.compile(r"/api/whoami-v2"), ("GET",), _Handler.whoami),
    (re.compile(r"/api/agent-harnesses"), ("GET",), _Handler.agent_harnesses),
    (re.compile(r"/api/validate-yaml"), ("POST",), _Handler.validate_yaml),
    (re.compile(r"/api/repos/create"), ("POST",), _Handler.create_repo),
    (re.compile(rf"/api/{_REPO}(?:/revision/(?P<rev>[^/]+))?"), ("GET", "HEAD"), _Handler.repo_info),
    (re.compile(rf"/api/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?"), ("GET",), _Handler.tree),
    (re.compile(rf"/api/{_REPO}/paths-info/(?P<rev>[^/]+)"), ("POST",), _Handler.paths_info),
    (re.compile(rf"/api/{_REPO}/refs"), ("GET",), _Handler.refs),
    (re.compile(rf"/api/{_REPO}/branch/(?P<branch>[^/]+)"), ("POST",), _Handler.create_branch),
    (re.compile(rf"/api/{_REPO}/preupload/(?P<rev>[^/]+)"), ("POST",), _Handler.preupload),
    (re.compile(rf"/api/{_REPO}/commit/(?P<rev>[^/]+)"), ("POST",), _Handler.commit),
    (re.compile(rf"/api/{_REPO}/xet-(?:read|write)-token(?:/.*)?"), ("GET", "POST"), _Handler.xet_refused),
    (re.compile(r"/(?:(?P<prefix>datasets|spaces)/)?(?P<repo_id>[\w.-]+/[\w.-]+?)\.git/info/lfs/objects/batch"),
     ("POST",), _Handler.lfs_batch),
    (re.compile(r"/__lfs__/(?P<oid>[0-9a-f]{64})"), ("PUT",), _Handler.lfs_put),
    (re.compile(r"/__lfs__/(?P<oid>[0-9a-f]{64})/verify"), ("POST",), _Handler.lfs_verify),
    (re.compile(r"/(?:(?P<prefix>datasets|spaces)/)?(?P<repo_id>[\w.-]+/[\w.-]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)"),
     ("GET", "HEAD"), _Handler.resolve),
]


if __name__ == "__main__":  # python tests/hub_server.py: serve until Ctrl-C, for manual debugging
    server = HubServer(verbose=True).start()
    print(f"HF_ENDPOINT={server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
