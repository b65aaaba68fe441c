"""Local fakes of the real payment providers' and CRMs' APIs, served by the local stack on 127.0.0.1 under
`/fake/<name>`.

Each speaks its provider's documented wire format (the same bytes our adapters send and parse in production), so the
end-to-end tests run every adapter for real against them. A fake is a WSGI app with:

- `__init__(base_url)`: where it is served (e.g. `http://127.0.0.1:3000/fake/tbank`);
- `add_merchant(tenant, secrets, notification_url)`: a tenant of the local config that uses this provider, with its
  resolved secrets by settings field name (e.g. `{"password": ...}`) and our webhook URL for it;
- `stop()`: cancel pending deliveries.

A fake lives in `devstack/fakes/<registry name>.py` (e.g. `tbank.py` for the PSP registered as `tbank`) and names its
class `FAKE`: the stack finds it by the name a tenant's settings carry, so adding one needs no list.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from paybridge.tenants import TenantConfig


class FakeProvider(Protocol):
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any: ...

    def add_merchant(self, tenant: TenantConfig, secrets: dict[str, str], notification_url: str) -> None: ...

    def stop(self) -> None: ...


def load(name: str, base_url: str) -> FakeProvider | None:
    """The fake of the adapter registered as `name`: the module `devstack/fakes/<name>.py` and the class it names
    `FAKE`; None when there is none (the sandbox PSP and CRM are served by the stack itself)."""
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        return None
    fake: FakeProvider = module.FAKE(base_url)
    return fake
