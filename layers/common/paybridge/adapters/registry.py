"""Where adapters register themselves: each PSP, CRM, bank statement source and message sender module declares its
settings model and how the adapter is built from them, and calls `register` on its kind's registry. The tenant
model builds its discriminated unions from these registries; the wiring only looks adapters up.

Adding an adapter: its module (settings + factory + `register`), one line in `ADAPTER_MODULES`, its local fake
(`devstack/fakes/<name>.py`) and its tests."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar, Union, get_args

from pydantic import BaseModel, Field, GetCoreSchemaHandler

from paybridge.adapters.crm.base import no_throttle
from paybridge.adapters.settings import SecretRef

if TYPE_CHECKING:
    from pydantic_core import CoreSchema

    from paybridge.adapters.bank.base import BankSource
    from paybridge.adapters.crm.base import Crm, Throttle
    from paybridge.adapters.crm.oauth import OAuthSession, TokenPair
    from paybridge.adapters.notify import MessageSender
    from paybridge.adapters.psp.base import PaymentProvider
    from paybridge.adapters.settings import OAuthAppAuth

#: Every adapter module, imported once when the tenant model is built or a registry is first looked up (not when
#: the tenant module is imported: a handler's cold start loads none of them until it reads a tenant). A new adapter
#: is one more line here.
ADAPTER_MODULES = (
    "paybridge.adapters.psp.sandbox",
    "paybridge.adapters.psp.tbank",
    "paybridge.adapters.psp.yookassa",
    "paybridge.adapters.psp.stripe",
    "paybridge.adapters.crm.sandbox",
    "paybridge.adapters.crm.bitrix24",
    "paybridge.adapters.crm.amocrm",
    "paybridge.adapters.bank.tbank_business",
    "paybridge.adapters.notify",
)


@dataclass(frozen=True)
class AdapterContext:
    """What a factory may need beyond its settings, supplied by the wiring."""

    tenant_id: str
    secret: Callable[[SecretRef], str]
    #: CRMs: every request takes a token from the account's shared bucket.
    throttle: Throttle = no_throttle
    #: CRMs with OAuth: the stored, shared session for `key` (single-use refresh tokens, leased refreshes).
    oauth_session: Callable[[str, Callable[[str], TokenPair], OAuthAppAuth], OAuthSession] | None = None
    #: Message senders: the channel (email, sms, messenger) the sender is for.
    channel: str = ""


A = TypeVar("A")


@dataclass(frozen=True)
class Entry(Generic[A]):
    name: str
    settings: type[BaseModel]
    build: Callable[[Any, AdapterContext], A]
    aliases: tuple[str, ...] = ()


class UnknownAdapter(LookupError):
    pass


class Registry(Generic[A]):
    """The adapters of one kind by name; `tag` is the settings field holding the name (the union's discriminator)."""

    def __init__(self, what: str, tag: str, reserved: tuple[str, ...] = ()) -> None:
        self.what, self.tag, self._reserved = what, tag, reserved
        self._entries: dict[str, Entry[A]] = {}
        self._aliases: dict[str, str] = {}

    def register(
        self,
        name: str,
        settings: type[BaseModel],
        build: Callable[[Any, AdapterContext], A],
        aliases: tuple[str, ...] = (),
    ) -> None:
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases or key in self._reserved:
                raise ValueError(f"{self.what} {key!r} is registered already (or reserved)")
        field = settings.model_fields.get(self.tag)
        if field is None or get_args(field.annotation) != (name,):
            raise ValueError(f"{settings.__name__}.{self.tag} must be Literal[{name!r}]")
        self._entries[name] = Entry(name, settings, build, aliases)
        self._aliases.update({alias: name for alias in aliases})

    def names(self) -> tuple[str, ...]:
        load_adapters()
        return tuple(self._entries)

    def entry(self, name: str) -> Entry[A]:
        """The entry named `name` or one of its aliases (an old URL segment, say)."""
        load_adapters()
        found = self._entries.get(self._aliases.get(name, name))
        if found is None:
            raise UnknownAdapter(f"no {self.what} named {name!r}")
        return found

    def build(self, settings: BaseModel, context: AdapterContext) -> A:
        return self.entry(str(getattr(settings, self.tag))).build(settings, context)

    def union(self) -> Any:
        """The settings type a tenant's configuration field accepts: a union discriminated by `tag`."""
        load_adapters()
        # In the order of ADAPTER_MODULES, whichever module happened to be imported first
        order = {module: index for index, module in enumerate(ADAPTER_MODULES)}
        entries = sorted(self._entries.values(), key=lambda e: order.get(e.settings.__module__, len(order)))
        classes = tuple(entry.settings for entry in entries)
        if not classes:
            raise RuntimeError(f"no {self.what} is registered: load the adapter modules first")
        if len(classes) == 1:
            return classes[0]
        return Annotated[Union[classes], Field(discriminator=self.tag)]  # noqa: UP007 - built at run time

    def lazy_union(self) -> LazyUnion:
        """A marker for `Annotated[<the kind's settings base>, registry.lazy_union()]`: the field takes `union()`,
        computed (and the adapter modules imported) only when the model holding it builds its schema — with
        `defer_build`, at its first validation."""
        return LazyUnion(self)


@dataclass(frozen=True)
class LazyUnion:
    registry: Registry[Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return handler.generate_schema(self.registry.union())


PSPS: Registry[PaymentProvider] = Registry("payment provider", "provider")
CRMS: Registry[Crm] = Registry("CRM", "kind")
#: `statements` and `review` are routes of their own under /bank/{tenant}/.
BANK_SOURCES: Registry[BankSource] = Registry("bank statement source", "kind", reserved=("statements", "review"))
SENDERS: Registry[MessageSender] = Registry("message sender", "kind")

_loaded = False


def load_adapters() -> None:
    """Import every adapter module once, so that each has registered itself."""
    global _loaded
    if _loaded:
        return
    _loaded = True  # the modules' own `register` calls come back here
    try:
        for module in ADAPTER_MODULES:
            importlib.import_module(module)
    except BaseException:
        _loaded = False
        raise
