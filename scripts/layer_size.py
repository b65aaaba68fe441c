"""`make layer-size`: the built shared layer (`.aws-sam/build/CommonLayer`, after `sam build`): its size unpacked
and zipped, its largest packages, whether it carries a boto3/botocore of its own (it must not: they come from the
Lambda runtime), and whether every handler imports against it alone. Ends with one JSON line; exits 1 when the
layer has boto3/botocore, exceeds 15 MB unpacked, a handler cannot import, or httpx cannot send a request (the
layer leaves out anyio, httpx's dependency for its async client only: its sync client must work without it)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / ".aws-sam" / "build" / "CommonLayer"
LIMIT_MB = 15.0
#: What the Lambda runtime provides besides the standard library (boto3 and its dependencies).
RUNTIME = ("boto3", "botocore", "s3transfer", "dateutil", "urllib3", "six.py", "jmespath")


def smoke_import(layer_site: Path) -> list[str]:
    """Import every handler module against the built layer alone (no site-packages: `python -S`), with boto3 from
    this environment standing in for the runtime's. Returns the modules that failed, with their error."""
    import boto3

    site = Path(boto3.__file__).resolve().parent.parent
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="paybridge-runtime-") as runtime:
        for name in RUNTIME:
            if (site / name).exists():
                os.symlink(site / name, Path(runtime) / name)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join([str(layer_site), runtime, str(ROOT)]),
            "AWS_DEFAULT_REGION": "eu-central-1",
        }
        for app in sorted((ROOT / "functions").glob("*/app.py")):
            module = f"functions.{app.parent.name}.app"
            done = subprocess.run(  # noqa: S603
                [sys.executable, "-S", "-c", f"import {module}"], env=env, capture_output=True, text=True
            )
            if done.returncode:
                failed.append(f"{module}: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
    return failed


def smoke_request(layer_site: Path) -> str | None:
    """Send a request with httpx's sync client against the built layer alone (`python -S`) to a server of this
    process. None when it got the answer, else what went wrong."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"layer-ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    script = f"import httpx\nwith httpx.Client() as c:\n    assert c.get({url!r}).text == 'layer-ok'"
    try:
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-S", "-c", script],
            env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(layer_site)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        server.shutdown()
        server.server_close()
    if done.returncode:
        return done.stderr.strip().splitlines()[-1] if done.stderr else f"exit {done.returncode}"
    return None


def main() -> int:
    if not LAYER.is_dir():
        print(f"{LAYER} is missing: run `make build` first", file=sys.stderr)
        return 2
    files = [p for p in LAYER.rglob("*") if p.is_file()]
    unpacked = sum(p.stat().st_size for p in files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(LAYER))
    zipped = buffer.tell()
    top: dict[str, int] = {}
    site = LAYER / "python"
    for path in files:
        parts = path.relative_to(site).parts if path.is_relative_to(site) else path.relative_to(LAYER).parts
        top[parts[0]] = top.get(parts[0], 0) + path.stat().st_size
    largest = sorted(top.items(), key=lambda item: -item[1])[:8]
    own_sdk = sorted(name for name in top if name.lower().startswith(("boto3", "botocore")))
    mb = 1024 * 1024
    for name, size in largest:
        print(f"{name:<40} {size / mb:6.2f} MB")
    sdk = ", ".join(own_sdk) or "none"
    print(f"unpacked {unpacked / mb:.2f} MB, zipped {zipped / mb:.2f} MB, boto3/botocore in the layer: {sdk}")
    failed = smoke_import(site)
    for failure in failed:
        print(f"cannot import against the layer alone: {failure}")
    print(f"every handler imports against the layer alone: {'no' if failed else 'yes'}")
    request_failed = smoke_request(site)
    print(f"httpx sends a request against the layer alone: {'no: ' + request_failed if request_failed else 'yes'}")
    summary = {
        "unpacked_mb": round(unpacked / mb, 2),
        "zipped_mb": round(zipped / mb, 2),
        "boto3_or_botocore": own_sdk,
        "limit_unpacked_mb": LIMIT_MB,
        "largest": {name: round(size / mb, 2) for name, size in largest},
        "handlers_import": not failed,
        "httpx_request": request_failed is None,
    }
    print(json.dumps(summary))
    return 0 if not own_sdk and not failed and request_failed is None and unpacked / mb <= LIMIT_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
