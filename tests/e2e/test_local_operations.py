"""Operating the local stack: `paybridge webhooks register --stage local` through the stack's dev-only route (the
CRM fakes accept Bitrix24's and amoCRM's registration calls), and the stack's own process — `python -m devstack
serve` stops promptly with exit code 0 and no traceback on SIGTERM and Ctrl-C, and when whoever started it (make)
is gone; `python -m devstack demo` prints its scenario and nothing else."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from scripts.cli.main import main
from tests.conftest import ROOT


def register(capsys: pytest.CaptureFixture[str], tenant: str) -> str:
    code = main(["webhooks", "register", tenant, "--stage", "local"])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def test_amocrm_webhook_is_registered_through_its_api_once(stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    account = stack.fakes["amocrm"].accounts["amoshop"]
    account.webhooks.clear()  # as a fresh amoCRM account
    out = register(capsys, "amo-shop")
    assert f"crm (amocrm): {stack.url}/crm/amo-shop/amocrm" in out
    assert "registered (POST /api/v4/webhooks)" in out and "amo-shop-webhook-token" not in out
    (hook,) = account.webhooks
    assert hook["destination"] == f"{stack.url}/crm/amo-shop/amocrm?token=amo-shop-webhook-token"
    assert hook["settings"] == ["status_lead"] and account.webhook_url == hook["destination"]
    assert "registered already" in register(capsys, "amo-shop")
    assert len(account.webhooks) == 1


def test_bitrix24_robot_of_an_app_is_added_and_a_webhook_portal_gets_steps(
    stack: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    portal = stack.fakes["bitrix24"].portals["bitrix-app.bitrix24.ru"]
    portal.robot_code = None  # as a fresh installation of the app
    out = register(capsys, "bitrix-app")
    assert "robot paybridge_issue_invoice" in out and "added (bizproc.robot.add)" in out
    assert (
        portal.robot_code == "paybridge_issue_invoice" and portal.handler_url == f"{stack.url}/crm/bitrix-app/bitrix24"
    )
    assert "installed already" in register(capsys, "bitrix-app")
    # The incoming-webhook portal: Bitrix24 has no API for it, so the exact steps
    out = register(capsys, "bitrix-shop")
    assert "Исходящий вебхук" in out and f"{stack.url}/crm/bitrix-shop/bitrix24" in out and "registered:" not in out
    assert "locally nothing: the stack gave /fake/bitrix24 this URL at start" in out  # the fake needs no cabinet


def test_a_sandbox_tenant_and_a_bank_tenant(stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    out = register(capsys, "bank-shop")
    assert "nothing to register" in out  # the sandbox CRM and PSP are wired by the stack
    assert f"bank (tbank_business): {stack.url}/bank/bank-shop/tbank_business" in out and "oper-feed-operation" in out


def test_an_unknown_tenant_is_refused(stack: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["webhooks", "register", "nobody", "--stage", "local"]) == 2
    assert "no tenant 'nobody'" in capsys.readouterr().err
    answer = httpx.post(f"{stack.url}/_dev/webhooks/nobody", json={"api_url": stack.url})
    assert answer.status_code == 404


# -- the stack's process ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYBRIDGE_", "POWERTOOLS_", "PUBLIC_BASE"))}
    return {**env, "PYTHONPATH": f"{ROOT / 'layers' / 'common'}{os.pathsep}{ROOT}", **extra}


def wait_up(port: int, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the local stack did not come up")


@pytest.fixture
def serve() -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "serve"],
        cwd=ROOT,
        env=child_env(PAYBRIDGE_PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_up(port, process)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_promptly_and_cleanly_on_sigterm_and_ctrl_c(
    serve: tuple[subprocess.Popen[str], int], signum: int
) -> None:
    process, port = serve
    httpx.get(f"http://127.0.0.1:{port}/sandbox/crm/demo/")  # a request: no request line is logged by default
    started = time.monotonic()
    process.send_signal(signum)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0
    assert time.monotonic() - started < 10  # ~1.5 s on a quiet machine
    assert "Traceback" not in err and err == "", err
    assert out.rstrip().endswith("PayBridge local stack stopped.")


def test_serve_stops_when_whoever_started_it_is_gone() -> None:
    """`make dev` runs it with PAYBRIDGE_STOP_WITH_PARENT=1: a killed make must not leave the server running."""
    port = free_port()
    launcher = (
        "import subprocess, sys; child = subprocess.Popen([sys.executable, '-m', 'devstack', 'serve'], "
        "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(child.pid, flush=True); child.wait()"
    )
    parent = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", launcher],
        cwd=ROOT,
        env=child_env(PAYBRIDGE_PORT=str(port), PAYBRIDGE_STOP_WITH_PARENT="1"),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        wait_up(port, parent)
        parent.kill()  # as `kill -9 <make>`
        parent.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _running(child):
            time.sleep(0.1)
        assert not _running(child), "the server outlived its parent"
    finally:
        if _running(child):
            os.kill(child, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_the_demo_prints_its_scenario_and_nothing_else() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devstack", "demo"],
        cwd=ROOT,
        env=child_env(PAYBRIDGE_PORT=str(free_port()), POWERTOOLS_LOG_LEVEL="ERROR"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no third-party noise, no traceback
    assert json.loads(done.stdout.splitlines()[-1])["final_state"] == "paid"
