"""The bare Starlette apps the gateway is measured against, served by `python bench/baselines.py`.

- `fileresponse`: what a user would write first: `FileResponse(path)` for the same file tree
  (Starlette reads 64 KiB per worker-thread hop and handles Range itself).
- `pread`: the floor for small ranged reads: no checks at all, one inline `os.pread` per
  request on a file descriptor opened at start-up.

Both run under the same uvicorn settings as `footage-gateway serve` (uvloop and httptools when
installed, no access log), on a listening socket handed over by the bench (`--fd`), in
`--workers` processes (the gateway's figures with N workers are compared with the bare app's
with N).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import signal
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

RANGE = re.compile(r"bytes=(\d+)-(\d+)")


def fileresponse_app(root: Path) -> Starlette:
    async def serve(request: Request) -> Response:
        path = root / request.path_params["path"]
        return FileResponse(path, headers={"Cache-Control": "private, no-store"})

    return Starlette(routes=[Route("/{path:path}", serve)])


def pread_app(clip: Path) -> Starlette:
    fd = os.open(clip, os.O_RDONLY)
    size = os.fstat(fd).st_size

    async def serve(request: Request) -> Response:
        match = RANGE.fullmatch(request.headers.get("range", ""))
        if match is None:
            return Response(status_code=400)
        start, end = int(match[1]), min(int(match[2]), size - 1)
        body = os.pread(fd, end - start + 1, start)
        headers = {"Content-Range": f"bytes {start}-{end}/{size}", "Accept-Ranges": "bytes"}
        return Response(body, status_code=206, headers=headers, media_type="video/mp4")

    return Starlette(routes=[Route("/{path:path}", serve)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["fileresponse", "pread"])
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--clip", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=1, help="processes on the one socket")
    args = parser.parse_args()
    _fork_workers(args.workers)
    app = fileresponse_app(args.root) if args.kind == "fileresponse" else pread_app(args.clip)
    config = uvicorn.Config(
        app, fd=args.fd, log_config=None, access_log=False, server_header=False, proxy_headers=False
    )
    uvicorn.Server(config).run()


def _fork_workers(count: int) -> None:
    """Become one of `count` processes accepting on the inherited socket, as `serve --workers`
    does (the extra ones die with the first: the bench stops only that one)."""
    parent = os.getpid()
    for _ in range(count - 1):
        if os.fork() == 0:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            if os.getppid() != parent:
                os._exit(1)
            return


if __name__ == "__main__":
    main()
