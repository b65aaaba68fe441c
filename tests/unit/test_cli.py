"""The `paybridge` command on local files: `tenants check` (every rule, each problem naming its field path), `tenants
put` / `keys` on the local tenants file (bad input: a message, exit 2, the file untouched), `secrets template`
derived from the settings models, and the console script's entry point."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from paybridge.tenants import FileTenantDirectory, TenantConfig
from scripts.cli.main import main
from tests.conftest import ROOT

LOCAL_FILE = ROOT / "config" / "tenants.local.json"
SHIPPED = json.loads(LOCAL_FILE.read_text(encoding="utf-8"))
AMO_STAGES = {
    "issued": "61000001",
    "awaiting_payment": "61000002",
    "partially_paid": "61000003",
    "paid": "142",
    "partially_refunded": "61000004",
    "refunded": "61000005",
    "expired": "61000006",
    "cancelled": "143",
    "failed": "61000007",
}


def named(path: str) -> dict[str, str]:
    return {"secret_name": f"paybridge/prod/acme/{path}"}


#: A tenant ready for a deployed stage: Stripe + amoCRM, every secret by name.
ACME: dict[str, Any] = {
    "tenant_id": "acme",
    "name": "Acme GmbH",
    "api_keys_sha256": [hashlib.sha256(b"acme-key").hexdigest()],
    "currency": "EUR",
    "return_url": "https://acme.example/thanks",
    "psp": {
        "provider": "stripe",
        "secret_key": named("psp/secret_key"),
        "webhook_secret": named("psp/webhook_secret"),
    },
    "crm": {
        "kind": "amocrm",
        "base_url": "https://acme.amocrm.ru",
        "subdomain": "acme",
        "auth": {"kind": "long_lived", "token": named("crm/auth/token")},
        "webhook_token": named("crm/webhook_token"),
        "trigger": {"status_id": 61000001},
        "pipeline_id": 7000001,
    },
    "stages": AMO_STAGES,
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, tenants: list[dict[str, Any]], name: str = "tenants.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"tenants": tenants}, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def local_file(tmp_path: Path) -> Path:
    """A copy of the shipped local tenants file, for the commands that write it."""
    path = tmp_path / "tenants.local.json"
    path.write_text(LOCAL_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    return path


# -- tenants check -----------------------------------------------------------------------------------------------


def test_the_shipped_local_file_is_ready_for_the_local_stack(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tenants", "check", str(LOCAL_FILE))
    assert (code, err) == (0, "")
    assert f"{len(SHIPPED['tenants'])} tenant(s) ready for stage local" in out


def test_a_stripe_link_lifetime_of_three_days_fails_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tenants = copy.deepcopy(SHIPPED["tenants"])
    index = next(i for i, t in enumerate(tenants) if t["psp"]["provider"] == "stripe")
    tenants[index]["link_lifetime_seconds"] = 3 * 24 * 3600
    code, out, err = run(capsys, "tenants", "check", str(write(tmp_path, tenants)))
    assert code == 1 and out == ""
    assert f"tenants[{index}].link_lifetime_seconds: 259200 s is outside what stripe accepts: 1800 to 86400 s" in err
    assert err.count("\n") == 2  # that problem and the count


def test_a_stripe_tenant_without_a_lifetime_gets_stripes_longest_and_others_three_days() -> None:
    stripe = TenantConfig.model_validate({k: v for k, v in ACME.items() if k != "link_lifetime_seconds"})
    assert stripe.link_lifetime_seconds == 24 * 3600
    tbank = {**ACME, "psp": {"provider": "tbank", "terminal_key": "T1", "password": named("psp/password")}}
    assert TenantConfig.model_validate(tbank).link_lifetime_seconds == 3 * 24 * 3600


def test_a_tenant_ready_for_a_deployed_stage_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tenants", "check", str(write(tmp_path, [ACME])), "--stage", "prod")
    assert (code, err) == (0, "")
    assert "1 tenant(s) ready for stage prod: acme" in out


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(item: dict[str, Any]) -> None:
        node = item
        *parents, last = path.split(".")
        for part in parents:
            node = node[part]
        if value is None:
            del node[last]
        else:
            node[last] = value

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            _set("psp.secret_key", {"value": "sk_live_inline"}),
            ["tenants[0].psp.secret_key: an inline secret", "paybridge/prod/acme/psp/secret_key"],
        ),
        (
            _set("crm.auth.token", {"secret_name": "paybridge/dev/acme/token"}),
            ["tenants[0].crm.auth.token: secret 'paybridge/dev/acme/token' is outside paybridge/prod/"],
        ),
        (
            _set("crm.base_url", "http://127.0.0.1:3000/fake/amocrm"),
            ["tenants[0].crm.base_url: 'http://127.0.0.1:3000/fake/amocrm' is a URL of this machine"],
        ),
        (
            _set("return_url", "${PAYBRIDGE_LOCAL_URL}/thanks"),
            ["tenants[0].return_url: '${PAYBRIDGE_LOCAL_URL}/thanks' has a placeholder"],
        ),
        (
            _set("stages", None),
            ["tenants[0]: amoCRM stages are status ids (digits); not so for: issued, awaiting_payment"],
        ),
        (_set("stages.refunded", None), ["tenants[0]: amoCRM stages are status ids (digits); not so for: refunded"]),
        (
            _set("link_lifetime_seconds", 90_000),
            ["tenants[0].link_lifetime_seconds: 90000 s is outside what stripe accepts"],
        ),
        (_set("psp.webhook_secret", None), ["tenants[0].psp.webhook_secret: Field required"]),
        (_set("crm.subdomain", "Acme Shop"), ["tenants[0].crm.subdomain: String should match pattern"]),
    ],
)
def test_each_deploy_rule_fails_naming_its_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, expected: list[str]
) -> None:
    item = copy.deepcopy(ACME)
    change(item)
    code, out, err = run(capsys, "tenants", "check", str(write(tmp_path, [item])), "--stage", "prod")
    assert code == 1 and out == ""
    for text in expected:
        assert text in err


def test_a_real_crm_tenant_names_every_stage_itself(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bitrix = {k: v for k, v in ACME.items() if k != "stages"}
    bitrix["crm"] = {
        "kind": "bitrix24",
        "portal": "acme.bitrix24.ru",
        "auth": {"kind": "webhook", "url": named("crm/auth/url")},
        "application_token": named("crm/application_token"),
        "trigger": {"kind": "stage", "stage_id": "PREPAYMENT_INVOICE"},
    }
    code, _, err = run(capsys, "tenants", "check", str(write(tmp_path, [bitrix])), "--stage", "prod")
    assert code == 1
    for state in AMO_STAGES:
        assert f"tenants[0].stages.{state}: not set — a bitrix24 tenant names the stage of every state" in err
    assert "advance_paid" not in err  # optional: defaults to partially_paid's stage
    bitrix["stages"] = {state: f"UC_{state.upper()}" for state in AMO_STAGES}
    assert run(capsys, "tenants", "check", str(write(tmp_path, [bitrix])), "--stage", "prod")[0] == 0


def test_every_problem_of_every_tenant_is_reported_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = {**copy.deepcopy(ACME), "currency": "euro"}
    code, _, err = run(capsys, "tenants", "check", str(write(tmp_path, [broken, ACME, {**ACME, "name": "x"}])))
    assert code == 1
    assert "tenants[0].currency: String should match pattern" in err
    assert "tenants[2].tenant_id: 'acme' is defined twice" in err


@pytest.mark.parametrize("content", ["{not json", '{"tenant": []}', "[]"])
def test_a_file_that_is_not_a_tenants_file_gets_a_message_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    code, out, err = run(capsys, "tenants", "check", str(path))
    assert code == 2 and out == "" and err.startswith(f"paybridge: {path}:")


# -- tenants put / list on the local file ----------------------------------------------------------------------------


def test_put_adds_a_checked_tenant_to_the_local_file_and_list_shows_it(
    tmp_path: Path, local_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "tenants", "put", str(write(tmp_path, [ACME])), "--local-file", str(local_file))
    assert code == 0 and "acme: written to stage local" in out
    stored = json.loads(local_file.read_text(encoding="utf-8"))["tenants"]
    assert stored[-1] == ACME and stored[:-1] == SHIPPED["tenants"]  # the rest as it was, placeholders included
    code, out, _ = run(capsys, "tenants", "list", "--local-file", str(local_file))
    listed = [json.loads(line) for line in out.splitlines()]
    assert [t["tenant_id"] for t in listed] == [*(t["tenant_id"] for t in SHIPPED["tenants"]), "acme"]
    assert listed[-1] | {"psp": "stripe", "crm": "amocrm", "link_lifetime_seconds": 86400} == listed[-1]


@pytest.mark.parametrize(
    "argv",
    [
        ["--tenant", "nobody"],  # not in the file
        [],  # with a broken tenant in the file: nothing at all is written
    ],
)
def test_put_with_bad_input_writes_nothing(
    tmp_path: Path, local_file: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    tenants = [ACME] if argv else [ACME, {**ACME, "tenant_id": "broken", "currency": "euro"}]
    before = local_file.read_bytes()
    code, _, err = run(capsys, "tenants", "put", str(write(tmp_path, tenants)), "--local-file", str(local_file), *argv)
    assert code == 2 and "nothing written" in err
    assert local_file.read_bytes() == before


# -- keys ------------------------------------------------------------------------------------------------------------


def test_a_new_key_is_shown_once_only_its_hash_is_kept_and_it_carries_its_scope(
    local_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "keys", "new", "qr-shop", "--scope", "ops", "--local-file", str(local_file))
    assert code == 0
    key = out.strip()
    assert key.startswith("pbk_") and len(key) > 40 and "shown" in err and key not in err
    text = local_file.read_text(encoding="utf-8")
    assert key not in text and hashlib.sha256(key.encode()).hexdigest() in text
    item = next(t for t in json.loads(text)["tenants"] if t["tenant_id"] == "qr-shop")
    config = TenantConfig.model_validate(
        json.loads(json.dumps(item).replace("${PAYBRIDGE_LOCAL_URL}", "http://127.0.0.1:3000"))
    )
    assert config.scopes_of(key) == {"ops"} and config.scopes_of("demo-api-key") == {"integration"}
    # a second key is another key
    run(capsys, "keys", "new", "qr-shop", "--local-file", str(local_file))
    listed = run(capsys, "keys", "list", "qr-shop", "--local-file", str(local_file))[1].splitlines()
    assert [json.loads(line)["scopes"] for line in listed] == [["integration"], ["integration"], ["ops"]]


def test_the_first_key_of_a_new_tenant_goes_into_its_draft_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = write(tmp_path, [{k: v for k, v in ACME.items() if k != "api_keys_sha256"}])
    code, out, _ = run(capsys, "keys", "new", "acme", "--local-file", str(draft))
    assert code == 0
    (item,) = json.loads(draft.read_text())["tenants"]
    assert item["api_keys_sha256"] == [hashlib.sha256(out.strip().encode()).hexdigest()]
    assert run(capsys, "tenants", "check", str(draft), "--stage", "prod")[0] == 0


def test_rotation_new_key_then_revoke_the_old_and_never_the_last(
    local_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = hashlib.sha256(b"demo-api-key").hexdigest()
    code, _, err = run(capsys, "keys", "revoke", "qr-shop", old[:12], "--local-file", str(local_file))
    assert code == 2 and "last integration key" in err
    new_key = run(capsys, "keys", "new", "qr-shop", "--local-file", str(local_file))[1].strip()
    code, _, err = run(capsys, "keys", "revoke", "qr-shop", old[:12], "--local-file", str(local_file))
    assert code == 0 and "revoked" in err
    item = next(t for t in json.loads(local_file.read_text())["tenants"] if t["tenant_id"] == "qr-shop")
    assert item["api_keys_sha256"] == [hashlib.sha256(new_key.encode()).hexdigest()]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["keys", "new", "nobody"], "no tenant 'nobody'"),
        (["keys", "revoke", "demo", "xyz"], "at least 8 hex digits"),
        (["keys", "revoke", "demo", "00000000"], "0 keys of demo start with 00000000"),
        (["tenants", "reindex"], "reindex is for a deployed stage"),
    ],
)
def test_bad_key_commands_get_a_message_and_write_nothing(
    local_file: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    before = local_file.read_bytes()
    code, out, err = run(capsys, *argv, "--local-file", str(local_file))
    assert (code, out) == (2, "") and message in err
    assert local_file.read_bytes() == before


def test_the_local_directory_reads_a_changed_file_at_its_next_lookup(
    local_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYBRIDGE_LOCAL_URL", "http://127.0.0.1:3000")
    directory = FileTenantDirectory(str(local_file))
    key = run(capsys, "keys", "new", "demo", "--local-file", str(local_file))[1].strip()
    os.utime(local_file, ns=(1, os.stat(local_file).st_mtime_ns + 1_000_000))  # a coarse clock must still see it
    assert directory.get("demo").scopes_of(key) == {"integration"}
    local_file.write_text("{broken", encoding="utf-8")  # a broken edit keeps what was read
    assert directory.get("demo").scopes_of(key) == {"integration"}


# -- secrets template ------------------------------------------------------------------------------------------------


def test_the_secrets_template_names_every_secret_the_settings_declare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = copy.deepcopy(ACME)
    draft["psp"] = {
        "provider": "stripe",
        "secret_key": {"value": "sk_test_x1234"},
        "webhook_secret": {"value": "whsec_1234"},
    }
    draft["crm"]["auth"] = {"kind": "oauth", "client_id": "abc", "client_secret": {"value": "client-secret"}}
    draft["reminders"] = {"channels": {"email": {"kind": "ses", "from_address": "billing@acme.example"}}}
    path = write(tmp_path, [draft])
    code, out, _ = run(capsys, "secrets", "template", "acme", "--file", str(path), "--stage", "prod")
    assert code == 0
    answer = json.loads(out)
    secrets = {s["config_path"]: s for s in answer["secrets"]}
    assert set(secrets) == {
        "psp.secret_key",
        "psp.webhook_secret",
        "crm.auth.client_secret",
        "crm.auth.initial_refresh_token",
        "crm.webhook_token",
    }
    assert secrets["psp.secret_key"]["secret_name"] == "paybridge/prod/acme/psp/secret_key"
    assert secrets["psp.secret_key"]["tags"] == {"paybridge-use": "psp"}
    assert secrets["crm.webhook_token"]["secret_name"] == "paybridge/prod/acme/crm/webhook_token"  # named already
    assert secrets["crm.auth.client_secret"]["tags"] == {"paybridge-use": "crm"}
    assert secrets["crm.auth.initial_refresh_token"]["required"] is False
    assert "sk_live_" in secrets["psp.secret_key"]["secret_string"]
    assert (
        "--name paybridge/prod/acme/psp/secret_key --tags Key=paybridge-use,Value=psp"
        in secrets["psp.secret_key"]["create"]
    )
    assert "sk_test_x1234" not in out and "client-secret" not in out  # values never printed
    # The tenant's JSON naming them passes the deploy check
    code, _, err = run(
        capsys, "tenants", "check", str(write(tmp_path, [answer["config"]], "c.json")), "--stage", "prod"
    )
    assert (code, err) == (0, "")


# -- the console script ----------------------------------------------------------------------------------------------


def test_the_console_script_runs_the_checkout_without_a_python_path(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import paybridge_cli; del sys.argv[0]; "
        "raise SystemExit(paybridge_cli.main())"
    )
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", script, str(ROOT), "tenants", "check", str(LOCAL_FILE)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ready for stage local" in done.stdout
