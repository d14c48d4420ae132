"""Loopback stand-ins for the Hugging Face Hub and the GitHub release server, for the download tests.

One threaded HTTP/1.1 server on 127.0.0.1 answers:
  * HEAD/GET `/<org>/<name>/resolve/<rev>/<file>` for the repos in `repos`, as the Hub does for LFS files:
    `X-Repo-Commit`, `ETag` (the sha256) and `Content-Length`; a missing repo is a 404 with
    `X-Error-Code: RepoNotFound`, a missing file a 404 with `X-Error-Code: EntryNotFound`;
  * HEAD/GET of any path in `files` (release files), plain 404 otherwise.
Faults per path (GET only; HEAD stays honest): 'truncate' (a well-formed response with half the body), 'drop' (headers
promising the full body, then the connection is closed), 'corrupt' (full length, some bytes flipped). One fault for
HEAD and GET alike: 'short' (the first half of the file, served as if it were the whole file: Content-Length and ETag
agree with the bytes, as after a bad upload).
`gates` hold a GET until enough HEADs of another path arrived, to make two processes download at the same time.
"""
import hashlib
import http.server
import json
import socket
import threading
import time
from typing import Dict, List, Optional, Tuple
from urllib.parse import urlsplit


def commit_of(repo_id: str) -> str:
    return hashlib.sha1(repo_id.encode()).hexdigest()


class StandIn:
    """The server; `start()` returns self, `url` is its base URL."""

    def __init__(self) -> None:
        self.repos: Dict[str, Dict[str, bytes]] = {}
        self.files: Dict[str, bytes] = {}
        self.faults: Dict[str, str] = {}
        self.gates: Dict[str, Tuple[str, int]] = {}
        self.gate_timeouts: List[str] = []
        self.log: List[Tuple[str, str]] = []
        self._lock = threading.Lock()
        self._httpd = None

    def start(self) -> 'StandIn':
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_HEAD(self) -> None:
                standin._serve(self, head=True)

            def do_GET(self) -> None:
                standin._serve(self, head=False)

        self._httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self._httpd.server_address[1]}'

    def resolve_path(self, repo_id: str, filename: str) -> str:
        return f'/{repo_id}/resolve/main/{filename}'

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return sum(1 for m, p in self.log if m == method and p == path)

    def _serve(self, handler: http.server.BaseHTTPRequestHandler, head: bool) -> None:
        path = urlsplit(handler.path).path
        method = 'HEAD' if head else 'GET'
        with self._lock:
            self.log.append((method, path))
        parts = path.strip('/').split('/')
        headers = {}
        if len(parts) >= 5 and parts[2] == 'resolve':
            repo_id, filename = '/'.join(parts[:2]), '/'.join(parts[4:])
            if repo_id not in self.repos:
                return self._error(handler, head, 'RepoNotFound', 'Repository not found', {})
            headers['X-Repo-Commit'] = commit_of(repo_id)
            body = self.repos[repo_id].get(filename)
            if body is None:
                return self._error(handler, head, 'EntryNotFound', 'Entry not found', headers)
        elif path in self.files:
            body = self.files[path]
        else:
            return self._error(handler, head, None, 'Not found', {})
        if self.faults.get(path) == 'short':
            body = body[:len(body) // 2]
        headers['ETag'] = f'"{hashlib.sha256(body).hexdigest()}"'

        fault = None if head else self.faults.get(path)
        if not head and path in self.gates:
            watched, needed = self.gates[path]
            deadline = time.monotonic() + 90
            while self.count('HEAD', watched) < needed:
                if time.monotonic() > deadline:
                    self.gate_timeouts.append(path)
                    break
                time.sleep(0.05)
        if fault == 'truncate':
            body = body[:len(body) // 2]
        elif fault == 'corrupt':
            middle = len(body) // 2
            body = body[:middle] + bytes(b ^ 0xFF for b in body[middle:middle + 64]) + body[middle + 64:]
        handler.send_response(200)
        for k, v in headers.items():
            handler.send_header(k, v)
        handler.send_header('Content-Type', 'application/octet-stream')
        handler.send_header('Content-Length', str(len(body)))
        handler.end_headers()
        if head:
            return
        if fault == 'drop':
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        handler.wfile.write(body)

    @staticmethod
    def _error(
            handler: http.server.BaseHTTPRequestHandler,
            head: bool,
            code: Optional[str],
            message: str,
            headers: Dict[str, str],
    ) -> None:
        body = json.dumps({'error': message}).encode()
        handler.send_response(404)
        for k, v in headers.items():
            handler.send_header(k, v)
        if code:
            handler.send_header('X-Error-Code', code)
            handler.send_header('X-Error-Message', message)
        handler.send_header('Content-Type', 'application/json')
        handler.send_header('Content-Length', str(len(body)))
        handler.end_headers()
        if not head:
            handler.wfile.write(body)
