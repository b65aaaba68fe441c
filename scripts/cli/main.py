"""The `paybridge` command (a console script; `python -m scripts.cli` does the same; make wrappers in the Makefile).

    paybridge tenants check FILE [--stage S] [--verify-secrets]   what stage S needs of FILE; exit 1 naming each
                                                  bad field (--verify-secrets: each named secret exists, tagged)
    paybridge tenants put FILE --stage S          write FILE's tenants to stage S (checked first; all or nothing)
    paybridge tenants list --stage S              the stage's tenants
    paybridge tenants reindex --stage S           put back tenant items made by hand (no gsi2pk/gsi2sk: never polled)
    paybridge keys new TENANT [--scope integration|ops] --stage S   a new API key, printed once; only its hash kept
    paybridge keys list TENANT --stage S          the tenant's keys (hash prefixes) and scopes
    paybridge keys revoke TENANT HASH_PREFIX --stage S              remove a key (rotation: new, deploy it, revoke)
    paybridge secrets template TENANT [--file F] --stage S          the secrets to create and the tenant's JSON
    paybridge webhooks register TENANT --stage S [--api-url URL]   register our URLs; steps for the rest

`--stage local` (the default) is the local stack: its tenants file (`$PAYBRIDGE_TENANTS` or
config/tenants.local.json, `--local-file` to choose), read again by a running `make dev` at its next request. Any
other stage is the deployed `paybridge-<stage>` table (`--table` to override) with the AWS credentials of the shell.
Bad input gets a message and exit code 2 and writes nothing; a failed check exits 1."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from typing import Any

from scripts.cli.stores import LOCAL, LOCAL_URL, CliError, LocalFileStore, TenantStore, open_store, parse

KEY_PREFIX = "pbk_"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except CliError as exc:
        print(f"paybridge: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `paybridge tenants list | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paybridge", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    kinds = parser.add_subparsers(dest="kind", required=True)

    def command(group: Any, name: str, run: Any, help_: str) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, help=help_, description=help_)
        sub.set_defaults(run=run)
        sub.add_argument("--stage", default=LOCAL, help="'local' (the local stack's file, default) or a deployed stage")
        sub.add_argument("--table", help="the stage's table (default paybridge-<stage>)")
        sub.add_argument("--local-file", help="the local stack's tenants file (default $PAYBRIDGE_TENANTS or config/)")
        return sub

    tenants = kinds.add_parser("tenants", help="check, write and list tenants").add_subparsers(
        dest="cmd", required=True
    )
    check = command(tenants, "check", _tenants_check, "check a tenants file for a stage")
    check.add_argument("file")
    check.add_argument(
        "--verify-secrets", action="store_true", help="also ask Secrets Manager: each named secret exists, tagged"
    )
    put = command(tenants, "put", _tenants_put, "write a file's tenants to a stage (checked first)")
    put.add_argument("file")
    put.add_argument("--tenant", action="append", help="only this tenant (repeatable)")
    command(tenants, "list", _tenants_list, "list a stage's tenants")
    command(tenants, "reindex", _tenants_reindex, "find tenant items no schedule sees (made by hand) and fix them")

    keys = kinds.add_parser("keys", help="API keys").add_subparsers(dest="cmd", required=True)
    new = command(keys, "new", _keys_new, "make an API key: printed once, only its SHA-256 stored")
    new.add_argument("tenant")
    new.add_argument("--scope", choices=("integration", "ops"), default="integration")
    listing = command(keys, "list", _keys_list, "list a tenant's keys (hash prefixes) and their scopes")
    listing.add_argument("tenant")
    revoke = command(keys, "revoke", _keys_revoke, "remove a key by its hash prefix (see keys list)")
    revoke.add_argument("tenant")
    revoke.add_argument("hash_prefix")

    secrets_ = kinds.add_parser("secrets", help="Secrets Manager").add_subparsers(dest="cmd", required=True)
    template = command(secrets_, "template", _secrets_template, "the secrets a tenant needs, and its JSON naming them")
    template.add_argument("tenant")
    template.add_argument("--file", help="take the tenant from this file (default: from the stage)")

    hooks = kinds.add_parser("webhooks", help="provider webhooks").add_subparsers(dest="cmd", required=True)
    register = command(hooks, "register", _webhooks_register, "register our URLs; print the steps for the rest")
    register.add_argument("tenant")
    register.add_argument("--api-url", help="the stage's API URL (default: the stack's ApiUrl output)")
    return parser


def _store(args: argparse.Namespace) -> TenantStore:
    return open_store(args.stage, args.local_file, args.table)


def _read(store: TenantStore, tenant_id: str) -> dict[str, Any]:
    item = store.read(tenant_id)
    if item is None:
        where = store.path if isinstance(store, LocalFileStore) else f"stage {store.stage}"
        raise CliError(f"no tenant {tenant_id!r} in {where} (paybridge tenants list --stage {store.stage})")
    return item


# -- tenants ---------------------------------------------------------------------------------------------------------


def _tenants_check(args: argparse.Namespace) -> int:
    from scripts.cli.checks import check_items, load_file

    tenants, problems = check_items(load_file(args.file), args.stage)
    if args.verify_secrets and not problems:
        from scripts.cli.checks import secret_problems

        problems = secret_problems(tenants, args.stage)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{args.file}: {len(problems)} problem(s) for stage {args.stage}", file=sys.stderr)
        return 1
    print(
        f"{args.file}: {len(tenants)} tenant(s) ready for stage {args.stage}: {', '.join(t.tenant_id for t in tenants)}"
    )
    return 0


def _tenants_put(args: argparse.Namespace) -> int:
    from scripts.cli.checks import check_items, load_file

    items = load_file(args.file)
    tenants, problems = check_items(items, args.stage)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        raise CliError(f"{args.file}: {len(problems)} problem(s) for stage {args.stage}; nothing written")
    wanted = set(args.tenant or [t.tenant_id for t in tenants])
    unknown = wanted - {t.tenant_id for t in tenants}
    if unknown:
        raise CliError(f"{args.file} has no tenant {', '.join(sorted(unknown))}; nothing written")
    store = _store(args)
    for item, tenant in zip(items, tenants, strict=True):
        if tenant.tenant_id in wanted:
            store.write(item, None)
            print(f"{tenant.tenant_id}: written to stage {store.stage}")
    if store.stage == LOCAL:
        print("a running `make dev` reads new keys at once; restart it for a new tenant's fakes and portals")
    return 0


def _tenants_list(args: argparse.Namespace) -> int:
    store = _store(args)
    for tenant_id in store.ids():
        item = store.read(tenant_id) or {}
        try:
            tenant = parse(item, tenant_id, local=store.stage == LOCAL)
        except CliError as exc:
            print(json.dumps({"tenant_id": tenant_id, "invalid": str(exc)}, ensure_ascii=False))
            continue
        summary = {
            "tenant_id": tenant.tenant_id,
            "name": tenant.name,
            "psp": tenant.psp.provider,
            "crm": tenant.crm.kind,
            "bank": tenant.bank.source.kind if tenant.bank and tenant.bank.source else None,
            "currency": tenant.currency,
            "link_lifetime_seconds": tenant.link_lifetime_seconds,
            "integration_keys": len(tenant.api_keys_sha256),
            "ops_keys": len(tenant.ops_api_keys_sha256),
        }
        print(json.dumps(summary, ensure_ascii=False))
    return 0


def _tenants_reindex(args: argparse.Namespace) -> int:
    """A tenant item without `gsi2pk`/`gsi2sk` (written by hand) is served but never polled or swept: each one found
    is read, validated and put again with every attribute (over exactly what was read)."""
    from scripts.cli.stores import StageStore

    store = _store(args)
    if not isinstance(store, StageStore):
        raise CliError("the local stack reads its file, which has no index: reindex is for a deployed stage")
    found = store.unindexed_ids()
    for tenant_id in found:
        item = _read(store, tenant_id)
        parse(item, tenant_id, local=False)
        store.write(item, item)
        print(f"{tenant_id}: indexed (listed for the schedules from now on)")
    print(f"{len(found)} tenant item(s) were missing the listing attributes on stage {store.stage}", file=sys.stderr)
    return 0


# -- keys ------------------------------------------------------------------------------------------------------------

_SCOPE_FIELDS = {"integration": "api_keys_sha256", "ops": "ops_api_keys_sha256"}


def _keys_new(args: argparse.Namespace) -> int:
    from paybridge.http.auth import api_key_digest

    store = _store(args)
    item = _read(store, args.tenant)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    digest = api_key_digest(key)
    field = _SCOPE_FIELDS[args.scope]
    changed = {**item, field: [*item.get(field, []), digest]}
    parse(changed, args.tenant, local=store.stage == LOCAL)
    store.write(changed, item)
    print(key)
    print(
        f"{args.scope} key for {args.tenant} on stage {store.stage}: only its SHA-256 ({digest[:12]}…) is stored; "
        "this is the one time the key is shown. Send it as the x-api-key header.",
        file=sys.stderr,
    )
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    item = _read(_store(args), args.tenant)
    scopes: dict[str, list[str]] = {}
    for scope, field in _SCOPE_FIELDS.items():
        for digest in item.get(field, []):
            scopes.setdefault(digest, []).append(scope)
    for digest, held in scopes.items():
        print(json.dumps({"sha256_prefix": digest[:12], "scopes": held}))
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    prefix = args.hash_prefix.lower().removesuffix("…")
    if len(prefix) < 8 or any(c not in "0123456789abcdef" for c in prefix):
        raise CliError("give at least 8 hex digits of the key's SHA-256 (paybridge keys list)")
    store = _store(args)
    item = _read(store, args.tenant)
    matching = {d for field in _SCOPE_FIELDS.values() for d in item.get(field, []) if d.startswith(prefix)}
    if len(matching) != 1:
        raise CliError(f"{len(matching)} keys of {args.tenant} start with {prefix}: give one key's prefix")
    (digest,) = matching
    changed = {**item, **{f: [d for d in item.get(f, []) if d != digest] for f in _SCOPE_FIELDS.values() if f in item}}
    if not changed.get("api_keys_sha256"):
        raise CliError(f"{digest[:12]}… is the last integration key of {args.tenant}: make its successor first")
    parse(changed, args.tenant, local=store.stage == LOCAL)
    store.write(changed, item)
    print(f"{args.tenant}: key {digest[:12]}… revoked on stage {store.stage}", file=sys.stderr)
    return 0


# -- secrets ---------------------------------------------------------------------------------------------------------


def _secrets_template(args: argparse.Namespace) -> int:
    from scripts.cli.checks import load_file
    from scripts.cli.secrets_template import template

    if args.file:
        items = [i for i in load_file(args.file) if isinstance(i, dict) and i.get("tenant_id") == args.tenant]
        if not items:
            raise CliError(f"{args.file} has no tenant {args.tenant!r}")
        item = items[0]
    else:
        item = _read(_store(args), args.tenant)
    tenant = parse(item, args.tenant, local=True)  # a draft may still hold local values: they are what it replaces
    stage = args.stage if args.stage != LOCAL else "dev"
    print(json.dumps(template(tenant, item, stage), ensure_ascii=False, indent=2))
    return 0


# -- webhooks --------------------------------------------------------------------------------------------------------


def _webhooks_register(args: argparse.Namespace) -> int:
    store = _store(args)
    item = _read(store, args.tenant)
    tenant = parse(item, args.tenant, local=store.stage == LOCAL)
    if store.stage == LOCAL:
        entries = _register_on_the_local_stack(args.tenant, args.api_url)
    else:
        from paybridge.adapters.errors import AdapterError
        from scripts.cli.webhooks import register

        try:
            entries = register(tenant, args.api_url or _api_url(args.stage), store.stage, _deployed_crm(store))
        except AdapterError as exc:
            raise CliError(f"the CRM refused: {exc}") from None
    for entry in entries:
        print(f"{entry['part']} ({entry['name']}): {entry['url']}")
        for line in entry["registered"]:
            print(f"  registered: {line}")
        for number, step in enumerate(entry["steps"], 1):
            print(f"  {number}. {step}")
    return 0


def _register_on_the_local_stack(tenant_id: str, api_url: str | None) -> list[dict[str, Any]]:
    """The local stack keeps its CRM sessions (OAuth tokens) in its own process: it registers through its dev-only
    route, with the same code a deployed stage runs here."""
    import httpx

    base = os.environ.get("PAYBRIDGE_LOCAL_URL", LOCAL_URL)
    try:
        answer = httpx.post(f"{base}/_dev/webhooks/{tenant_id}", json={"api_url": api_url or base}, timeout=30)
    except httpx.TransportError as exc:
        raise CliError(f"the local stack does not answer on {base} ({exc}): start it with make dev") from None
    if answer.status_code != 200:
        raise CliError(f"the local stack refused: HTTP {answer.status_code} {answer.text[:300]}")
    return list(answer.json()["entries"])


def _deployed_crm(store: TenantStore) -> Any:
    """The tenant's CRM adapter as the stage's functions build it: secrets from Secrets Manager, the OAuth session
    and the rate bucket in the stage's table (so a registration never races the running functions' tokens)."""
    from scripts.cli.stores import StageStore

    assert isinstance(store, StageStore)
    os.environ["TABLE_NAME"] = store.table
    os.environ["STAGE"] = store.stage
    os.environ.pop("PAYBRIDGE_TENANTS", None)
    from paybridge import wiring

    wiring.reset()
    return wiring.make_crm


def _api_url(stage: str) -> str:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stack = boto3.client("cloudformation").describe_stacks(StackName=f"paybridge-{stage}")["Stacks"][0]
    except (BotoCoreError, ClientError) as exc:
        raise CliError(f"stack paybridge-{stage}: {exc} (or give --api-url)") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if "ApiUrl" not in outputs:
        raise CliError(f"stack paybridge-{stage} has no ApiUrl output (give --api-url)")
    return outputs["ApiUrl"]
