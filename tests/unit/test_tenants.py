"""Tenant configuration (paybridge.tenants): the shipped local file, validation errors, stages and API keys."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from paybridge.adapters.crm.bitrix24 import Bitrix24Settings
from paybridge.adapters.psp.sandbox import SandboxPspSettings
from paybridge.adapters.settings import SecretRef
from paybridge.domain.invoice import InvoiceState
from paybridge.tenants import (
    FileTenantDirectory,
    StageMapping,
    TenantConfig,
    TenantConfigError,
    TenantNotFound,
    parse_tenants,
)

ROOT = Path(__file__).resolve().parents[2]
LOCAL_FILE = ROOT / "config" / "tenants.local.json"
LOCAL_URL = "http://127.0.0.1:4567"
DEMO_API_KEY = "demo-api-key"
STAGE_NAMES = list(StageMapping.model_fields)


@pytest.fixture
def directory(monkeypatch: pytest.MonkeyPatch) -> FileTenantDirectory:
    monkeypatch.setenv("PAYBRIDGE_LOCAL_URL", LOCAL_URL)
    return FileTenantDirectory(str(LOCAL_FILE))


def valid_tenant(**overrides: Any) -> dict[str, Any]:
    tenant: dict[str, Any] = {
        "tenant_id": "acme",
        "name": "Acme",
        "api_keys_sha256": [hashlib.sha256(b"acme-key").hexdigest()],
        "psp": {"provider": "sandbox", "base_url": "https://psp.test", "secret": {"value": "psp-secret-1"}},
        "crm": {"kind": "sandbox", "base_url": "https://crm.test", "token": {"secret_name": "acme/crm-token"}},
    }
    tenant.update(overrides)
    return tenant


def error_of(raw: Any, origin: str = "tenants.json") -> str:
    with pytest.raises(TenantConfigError) as caught:
        parse_tenants(raw, origin)
    return str(caught.value)


# ---------------------------------------------------------------------------------------------------------------
# The shipped local configuration
# ---------------------------------------------------------------------------------------------------------------


class TestShippedConfig:
    def test_loads_every_tenant_with_the_url_substituted(self, directory: FileTenantDirectory) -> None:
        # Given the shipped file and PAYBRIDGE_LOCAL_URL set
        # When it is loaded
        # Then every tenant is there, with ${PAYBRIDGE_LOCAL_URL} replaced
        assert directory.tenant_ids() == [
            "demo",
            "qr-shop",
            "tbank-shop",
            "tbank-sbp",
            "yookassa-shop",
            "stripe-shop",
            "bitrix-shop",
            "bitrix-app",
            "amo-shop",
            "bank-shop",
            "acquiring-shop",
            "profile-shop",
        ]
        assert directory.get("tbank-shop").psp.base_url == f"{LOCAL_URL}/fake/tbank/v2/"
        bitrix_app = directory.get("bitrix-app").crm
        assert isinstance(bitrix_app, Bitrix24Settings) and bitrix_app.rest_url == f"{LOCAL_URL}/fake/bitrix24/rest/"
        demo = directory.get("demo")
        assert isinstance(demo.psp, SandboxPspSettings)
        assert demo.name == "Demo LLC (sandbox PSP + sandbox CRM)"
        assert demo.psp.provider == "sandbox"
        assert demo.psp.base_url == f"{LOCAL_URL}/sandbox/psp"
        assert demo.psp.secret == SecretRef(value="sandbox-psp-secret-demo")
        assert demo.psp.method == "card"
        assert demo.crm.kind == "sandbox"
        assert demo.crm.base_url == f"{LOCAL_URL}/sandbox/crm/demo"
        assert demo.crm.token.value == "sandbox-crm-token-demo"
        assert demo.currency == "RUB"
        assert demo.link_lifetime_seconds == 86400

    def test_second_tenant_uses_defaults(self, directory: FileTenantDirectory) -> None:
        qr = directory.get("qr-shop")
        assert qr.psp.method == "sbp"
        assert qr.psp.secret.value == "sandbox-psp-secret-qr"
        assert qr.crm.base_url == f"{LOCAL_URL}/sandbox/crm/qr-shop"
        assert qr.currency == "RUB"
        assert qr.link_lifetime_seconds == 3 * 24 * 3600
        assert qr.stages == StageMapping()

    def test_same_as_parse_tenants_on_the_substituted_text(self, directory: FileTenantDirectory) -> None:
        text = LOCAL_FILE.read_text(encoding="utf-8").replace("${PAYBRIDGE_LOCAL_URL}", LOCAL_URL)
        parsed = parse_tenants(json.loads(text), "local")
        assert parsed == {tid: directory.get(tid) for tid in directory.tenant_ids()}

    def test_unknown_tenant(self, directory: FileTenantDirectory) -> None:
        with pytest.raises(TenantNotFound, match="nobody"):
            directory.get("nobody")

    def test_without_the_url_variable_the_base_url_error_is_clear(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Given PAYBRIDGE_LOCAL_URL is not set (the placeholder stays as it is)
        monkeypatch.delenv("PAYBRIDGE_LOCAL_URL", raising=False)
        # When the file is loaded
        with pytest.raises(TenantConfigError) as caught:
            FileTenantDirectory(str(LOCAL_FILE))
        # Then the error names the file and the field
        message = str(caught.value)
        assert message.startswith(str(LOCAL_FILE))
        assert "tenants[0].psp.base_url" in message

    def test_missing_file(self, tmp_path: Path) -> None:
        missing = tmp_path / "nope.json"
        with pytest.raises(TenantConfigError, match=r"nope\.json"):
            FileTenantDirectory(str(missing))

    def test_bad_json(self, tmp_path: Path) -> None:
        bad = tmp_path / "bad.json"
        bad.write_text("{ not json", encoding="utf-8")
        with pytest.raises(TenantConfigError, match=r"bad\.json: Expecting"):
            FileTenantDirectory(str(bad))

    def test_accepts_the_demo_api_key(self, directory: FileTenantDirectory) -> None:
        assert directory.get("demo").accepts_api_key(DEMO_API_KEY)
        assert directory.get("qr-shop").accepts_api_key(DEMO_API_KEY)

    @pytest.mark.parametrize("key", ["wrong-key", "demo-api-key ", "DEMO-API-KEY", "", None])
    def test_rejects_other_api_keys(self, directory: FileTenantDirectory, key: str | None) -> None:
        assert directory.get("demo").accepts_api_key(key) is False

    def test_rejects_the_hash_itself_as_a_key(self, directory: FileTenantDirectory) -> None:
        demo = directory.get("demo")
        assert demo.accepts_api_key(demo.api_keys_sha256[0]) is False


# ---------------------------------------------------------------------------------------------------------------
# Validation errors
# ---------------------------------------------------------------------------------------------------------------


class TestErrors:
    def test_valid_minimal_tenant(self) -> None:
        tenants = parse_tenants({"tenants": [valid_tenant()]}, "x")
        acme = tenants["acme"]
        assert acme.crm.token.secret_name == "acme/crm-token"
        assert acme.crm.token.value is None
        assert acme.accepts_api_key("acme-key")
        assert not acme.accepts_api_key("demo-api-key")

    def test_several_api_keys(self) -> None:
        hashes = [hashlib.sha256(k.encode()).hexdigest() for k in ("old-key", "new-key")]
        acme = parse_tenants({"tenants": [valid_tenant(api_keys_sha256=hashes)]}, "x")["acme"]
        assert acme.accepts_api_key("old-key")
        assert acme.accepts_api_key("new-key")
        assert not acme.accepts_api_key("other-key")

    @pytest.mark.parametrize("raw", [[], {}, {"tenants": {}}, {"tenants": "acme"}, None, "x"])
    def test_not_an_object_with_a_tenants_list(self, raw: Any) -> None:
        assert error_of(raw) == "tenants.json: expected an object with a 'tenants' list"

    def test_empty_list_is_no_tenants(self) -> None:
        assert parse_tenants({"tenants": []}, "x") == {}

    def test_missing_psp(self) -> None:
        tenant = valid_tenant()
        del tenant["psp"]
        assert error_of({"tenants": [tenant]}) == "tenants.json: tenants[0].psp: Field required"

    def test_error_names_the_index_of_the_bad_tenant(self) -> None:
        second = valid_tenant(tenant_id="beta")
        del second["crm"]
        message = error_of({"tenants": [valid_tenant(), second]})
        assert message == "tenants.json: tenants[1].crm: Field required"

    def test_secret_with_both_value_and_secret_name(self) -> None:
        tenant = valid_tenant()
        tenant["psp"]["secret"] = {"value": "psp-secret-1", "secret_name": "acme/psp"}
        message = error_of({"tenants": [tenant]})
        assert message.startswith("tenants.json: tenants[0].psp.secret: ")
        assert "give exactly one of 'value' (local only) or 'secret_name' (Secrets Manager)" in message

    def test_secret_with_neither(self) -> None:
        tenant = valid_tenant()
        tenant["crm"]["token"] = {}
        message = error_of({"tenants": [tenant]})
        assert "tenants[0].crm.token" in message
        assert "give exactly one of" in message

    def test_inline_secret_too_short(self) -> None:
        tenant = valid_tenant()
        tenant["psp"]["secret"] = {"value": "short"}
        assert "tenants[0].psp.secret.value: String should have at least 8 characters" in error_of(
            {"tenants": [tenant]}
        )

    @pytest.mark.parametrize(
        "bad_hash",
        ["demo-api-key", "CA6F2E39B2FF141859B18BB5283AADD5093C8EDE2869F3656231A054E54BFC22", "ab" * 31, "ab" * 33],
    )
    def test_bad_api_key_hash(self, bad_hash: str) -> None:
        message = error_of({"tenants": [valid_tenant(api_keys_sha256=[bad_hash])]})
        assert "tenants[0].api_keys_sha256.0: String should match pattern '^[0-9a-f]{64}$'" in message

    def test_no_api_keys(self) -> None:
        message = error_of({"tenants": [valid_tenant(api_keys_sha256=[])]})
        assert "tenants[0].api_keys_sha256: List should have at least 1 item" in message

    def test_duplicate_tenant_ids(self) -> None:
        message = error_of({"tenants": [valid_tenant(), valid_tenant(name="Acme again")]})
        assert message == "tenants.json: tenant 'acme' is defined twice"

    def test_unknown_provider_name(self) -> None:
        tenant = valid_tenant()
        tenant["psp"]["provider"] = "paypal"
        assert error_of({"tenants": [tenant]}) == (
            "tenants.json: tenants[0].psp: Input tag 'paypal' found using 'provider' does not match any of the"
            " expected tags: 'sandbox', 'tbank', 'yookassa', 'stripe'"
        )

    def test_unknown_crm_kind(self) -> None:
        tenant = valid_tenant()
        tenant["crm"]["kind"] = "pipedrive"
        assert error_of({"tenants": [tenant]}) == (
            "tenants.json: tenants[0].crm: Input tag 'pipedrive' found using 'kind' does not match any of the"
            " expected tags: 'sandbox', 'bitrix24', 'amocrm'"
        )

    def test_bitrix24_errors_name_the_field_as_written(self) -> None:
        tenant = valid_tenant()
        tenant["crm"] = {
            "kind": "bitrix24",
            "portal": "acme.bitrix24.ru",
            "auth": {"kind": "oauth", "client_secret": {"value": "app-secret-123"}},
            "application_token": {"value": "app-token-123"},
            "trigger": {"kind": "stage"},
        }
        assert error_of({"tenants": [tenant]}) == (
            "tenants.json: tenants[0].crm.auth.client_id: Field required; "
            "tenants[0].crm.trigger.stage_id: Field required"
        )

    def test_amocrm_stages_must_be_status_ids(self) -> None:
        tenant = valid_tenant()
        tenant["crm"] = {
            "kind": "amocrm",
            "base_url": "https://acme.amocrm.ru",
            "subdomain": "acme",
            "auth": {"kind": "long_lived", "token": {"value": "long-lived-token"}},
            "webhook_token": {"value": "webhook-token-1"},
            "trigger": {"status_id": 61234},
            "pipeline_id": 7001,
        }
        message = error_of({"tenants": [tenant]})
        assert message.startswith("tenants.json: tenants[0]: amoCRM stages are status ids (digits)")
        tenant["stages"] = {name: str(142 + i) for i, name in enumerate(STAGE_NAMES)}
        assert parse_tenants({"tenants": [tenant]}, "tenants.json")["acme"].crm.kind == "amocrm"

    def test_unknown_field_is_rejected(self) -> None:
        message = error_of({"tenants": [valid_tenant(colour="blue")]})
        assert message == "tenants.json: tenants[0].colour: Extra inputs are not permitted"

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"tenant_id": "Acme"}, "tenant_id"),
            ({"tenant_id": "a"}, "tenant_id"),
            ({"currency": "rub"}, "currency"),
            ({"link_lifetime_seconds": 59}, "link_lifetime_seconds"),
        ],
    )
    def test_field_errors_name_the_field(self, overrides: dict[str, Any], field: str) -> None:
        assert f"tenants[0].{field}:" in error_of({"tenants": [valid_tenant(**overrides)]})

    def test_psp_base_url_must_be_http(self) -> None:
        tenant = valid_tenant()
        tenant["psp"]["base_url"] = "ftp://psp.test"
        assert "tenants[0].psp.base_url: String should match pattern" in error_of({"tenants": [tenant]})

    def test_all_problems_of_a_tenant_are_reported(self) -> None:
        tenant = valid_tenant(currency="rub")
        del tenant["psp"]
        message = error_of({"tenants": [tenant]})
        assert "tenants[0].currency:" in message
        assert "tenants[0].psp: Field required" in message
        assert "; " in message

    def test_stage_mapping_rejects_unknown_states(self) -> None:
        message = error_of({"tenants": [valid_tenant(stages={"won": "WON"})]})
        assert "tenants[0].stages.won: Extra inputs are not permitted" in message


# ---------------------------------------------------------------------------------------------------------------
# Stage mapping
# ---------------------------------------------------------------------------------------------------------------

DEFAULT_STAGES = {
    InvoiceState.ISSUED: "NEW",
    InvoiceState.AWAITING_PAYMENT: "AWAITING_PAYMENT",
    InvoiceState.PARTIALLY_PAID: "PARTIALLY_PAID",
    InvoiceState.PAID: "PAID",
    InvoiceState.PARTIALLY_REFUNDED: "PARTIALLY_REFUNDED",
    InvoiceState.REFUNDED: "REFUNDED",
    InvoiceState.EXPIRED: "EXPIRED",
    InvoiceState.CANCELLED: "CANCELLED",
    InvoiceState.FAILED: "FAILED",
}


def test_default_stage_mapping_covers_every_state() -> None:
    assert set(DEFAULT_STAGES) == set(InvoiceState)


@pytest.mark.parametrize("state", list(InvoiceState))
def test_default_stage_for_every_state(state: InvoiceState) -> None:
    assert StageMapping().stage_for(state) == DEFAULT_STAGES[state]


@pytest.mark.parametrize("state", list(InvoiceState))
def test_custom_stage_for_every_state(state: InvoiceState) -> None:
    # Given a tenant mapping every state to its own CRM stage
    custom = {s.value: f"C{i}:{s.value.upper()}" for i, s in enumerate(InvoiceState)}
    tenant = TenantConfig.model_validate(valid_tenant(stages=custom))
    # Then each state maps to its own stage
    assert tenant.stages.stage_for(state) == custom[state.value]


@pytest.mark.parametrize("state", list(InvoiceState))
def test_shipped_demo_stages(directory: FileTenantDirectory, state: InvoiceState) -> None:
    assert directory.get("demo").stages.stage_for(state) == DEFAULT_STAGES[state]


def test_partial_stage_mapping_keeps_defaults_for_the_rest() -> None:
    tenant = TenantConfig.model_validate(valid_tenant(stages={"paid": "WON", "cancelled": "LOSE"}))
    assert tenant.stages.stage_for(InvoiceState.PAID) == "WON"
    assert tenant.stages.stage_for(InvoiceState.CANCELLED) == "LOSE"
    assert tenant.stages.stage_for(InvoiceState.AWAITING_PAYMENT) == "AWAITING_PAYMENT"


def test_tenant_config_is_frozen_and_parse_does_not_mutate_input() -> None:
    raw = {"tenants": [valid_tenant()]}
    snapshot = copy.deepcopy(raw)
    acme = parse_tenants(raw, "x")["acme"]
    assert raw == snapshot
    with pytest.raises(ValueError, match="frozen"):
        acme.name = "changed"  # type: ignore[misc]


@pytest.mark.parametrize("secret", ["pa$$word-1234", "key-$PB_UNIT_VAR-1234"])
def test_file_directory_only_substitutes_braced_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    # Given a tenants file whose inline secret contains '$' but no ${NAME} placeholder
    monkeypatch.setenv("PB_UNIT_VAR", "replaced")
    tenant = valid_tenant()
    tenant["psp"]["secret"] = {"value": secret}
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": [tenant]}), encoding="utf-8")
    # When it is loaded
    loaded = FileTenantDirectory(str(path)).get("acme")
    # Then the secret is exactly what the file says (regression: string.Template once replaced $NAME and collapsed $$)
    assert loaded.psp.secret.value == secret


def test_file_directory_substitutes_several_braced_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PB_PSP_URL", "https://psp.example")
    monkeypatch.setenv("PB_PSP_SECRET", "from-the-environment")
    tenant = valid_tenant()
    tenant["psp"]["base_url"] = "${PB_PSP_URL}/v1"
    tenant["psp"]["secret"] = {"value": "${PB_PSP_SECRET}"}
    tenant["crm"]["token"] = {"value": "${PB_UNSET_VARIABLE_XYZ}"}  # unknown names stay as they are
    monkeypatch.delenv("PB_UNSET_VARIABLE_XYZ", raising=False)
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": [tenant]}), encoding="utf-8")
    loaded = FileTenantDirectory(str(path)).get("acme")
    assert loaded.psp.base_url == "https://psp.example/v1"
    assert loaded.psp.secret.value == "from-the-environment"
    assert loaded.crm.token.value == "${PB_UNSET_VARIABLE_XYZ}"
