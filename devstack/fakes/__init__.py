"""Local fakes of the real payment providers' and CRMs' APIs, served by the local stack on 127.0.0.1 under
`/fake/<name>`.

Each speaks its provider's documented wire format (the same bytes our adapters send and parse in production), so the
end-to-end tests run every adapter for real against them. A fake is a WSGI app with:

- `__init__(base_url)`: where it is served (e.g. `http://127.0.0.1:3000/fake/tbank`);
- `add_merchant(tenant, secrets, notification_url)`: a tenant of the local config that uses this provider, with its
  resolved secrets by settings field name (e.g. `{"password": ...}`) and our webhook URL for it;
- `stop()`: cancel pending deliveries.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from paybridge.tenants import TenantConfig


class FakeProvider(Protocol):
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any: ...

    def add_merchant(self, tenant: TenantConfig, secrets: dict[str, str], notification_url: str) -> None: ...

    def stop(self) -> None: ...


#: provider name (as in the tenant config) → "module:Class"
FAKES: dict[str, str] = {
    "tbank": "devstack.fakes.tbank:FakeTBank",
    "yookassa": "devstack.fakes.yookassa:FakeYooKassa",
    "stripe": "devstack.fakes.stripe:FakeStripe",
    "bitrix24": "devstack.fakes.bitrix24:FakeBitrix24",
    "amocrm": "devstack.fakes.amocrm:FakeAmoCrm",
    "tbank_business": "devstack.fakes.tbank_business:FakeTBankBusiness",
}


def load(provider: str, base_url: str) -> FakeProvider | None:
    """The fake for `provider`, or None when there is none."""
    target = FAKES.get(provider)
    if target is None:
        return None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        return None
    fake: FakeProvider = getattr(module, class_name)(base_url)
    return fake
