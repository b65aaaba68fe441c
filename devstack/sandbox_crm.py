"""The sandbox CRM: one portal per tenant with deals, stages, a timeline, manager notifications and client messages;
a page lists the deals with an "Issue invoice" button that fires the outbound webhook (form-encoded, Bitrix24-like).

The page, as a manager uses it: each deal's amount (never wrapped), stage and payment link (long links wrap), the
timeline newest first (PayBridge's entries say how the money came: "оплачен картой", "через СБП"...), the notices
to the manager. "Issue invoice" answers at once with what PayBridge said, and the page refreshes itself until the
payment link has arrived; a paid deal (stage PAID, PARTIALLY_REFUNDED or REFUNDED) has no button.

Contacts and companies: a deal's contact is the portal's contact with its e-mail (or phone), made on first use, so
a customer's deals share it; a deal may name a company. Each has its own timeline and fields (payments on the
customer's profile: `GET /<portal>/api/contacts/<id>`), and the page shows a contact's total paid under the deal.

Wire format: see `paybridge.adapters.crm.sandbox` (our side)."""

from __future__ import annotations

import html
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from devstack.serving import ClientPool
from devstack.web import bearer, error, json_response, money, page
from paybridge.adapters.crm.sandbox import ISSUE_EVENT


@dataclass
class Deal:
    id: str
    title: str
    amount: int
    currency: str = "RUB"
    stage: str = "NEW"
    contact: dict[str, Any] = field(default_factory=dict)
    company: dict[str, Any] | None = None
    invoice_number: str | None = None
    payment_url: str | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    stage_history: list[dict[str, Any]] = field(default_factory=list)
    issued: dict[str, Any] | None = None  # what PayBridge answered the last "Issue invoice" click (the page shows it)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "amount": self.amount,
            "currency": self.currency,
            "stage": self.stage,
            "contact": self.contact,
            "company": self.company,
            "invoice_number": self.invoice_number,
            "payment_url": self.payment_url,
            "timeline": self.timeline,
            "notifications": self.notifications,
            "stage_history": self.stage_history,
        }


@dataclass
class Entity:
    """A contact or a company: its fields (what PayBridge maps its totals to) and its own timeline."""

    id: str
    name: str = ""
    email: str | None = None
    phone: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "fields": self.fields,
            "timeline": self.timeline,
        }


@dataclass
class Portal:
    name: str
    token: str
    webhook_url: str
    deals: dict[str, Deal] = field(default_factory=dict)
    #: Contacts (a deal's contact; one per e-mail, as a CRM's duplicate check keeps it) and companies, by id.
    contacts: dict[str, Entity] = field(default_factory=dict)
    companies: dict[str, Entity] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 1


class SandboxCrm:
    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self.portals: dict[str, Portal] = {}
        self.unavailable_until = 0.0
        self.calls = 0
        self._lock = threading.RLock()
        self._http = ClientPool(httpx.Timeout(30.0, connect=2.0))
        self.url_map = Map(
            [
                Rule("/<portal>/", methods=["GET"], endpoint="index"),
                Rule("/<portal>/deals/<deal_id>/issue", methods=["POST"], endpoint="issue_button"),
                Rule("/<portal>/api/deals", methods=["GET"], endpoint="list"),
                Rule("/<portal>/api/deals", methods=["POST"], endpoint="create"),
                Rule("/<portal>/api/deals/<deal_id>", methods=["GET"], endpoint="show"),
                Rule("/<portal>/api/deals/<deal_id>", methods=["PATCH"], endpoint="update"),
                Rule("/<portal>/api/deals/<deal_id>/timeline", methods=["POST"], endpoint="timeline"),
                Rule("/<portal>/api/deals/<deal_id>/notifications", methods=["POST"], endpoint="notify"),
                Rule("/<portal>/api/deals/<deal_id>/issue", methods=["POST"], endpoint="issue"),
                Rule("/<portal>/api/<any(contacts, companies):kind>/<entity_id>", methods=["GET"], endpoint="entity"),
                Rule(
                    "/<portal>/api/<any(contacts, companies):kind>/<entity_id>",
                    methods=["PATCH"],
                    endpoint="entity_update",
                ),
                Rule(
                    "/<portal>/api/<any(contacts, companies):kind>/<entity_id>/timeline",
                    methods=["POST"],
                    endpoint="entity_timeline",
                ),
                Rule("/<portal>/api/messages", methods=["GET"], endpoint="messages"),
                Rule("/<portal>/api/messages", methods=["POST"], endpoint="message"),
                Rule("/<portal>/api/faults", methods=["POST"], endpoint="faults"),
                Rule("/<portal>/api/batch", methods=["POST"], endpoint="batch"),
            ]
        )
        self._matcher = self.url_map.bind("sandbox-crm.local")

    def add_portal(self, name: str, token: str, webhook_url: str, seed: bool = True) -> Portal:
        portal = Portal(name=name, token=token, webhook_url=webhook_url)
        self.portals[name] = portal
        if seed:
            for title, amount, email in (
                ("Поставка оборудования", 15_000_000, "buyer@example.com"),
                ("Годовая подписка", 2_400_000, "client@example.com"),
            ):
                self._create(portal, {"title": title, "amount": amount, "contact": {"name": "Клиент", "email": email}})
        return portal

    # -- WSGI --------------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            endpoint, matched = self.url_map.bind_to_environ(environ).match()
            args = dict(matched)
            portal = self.portals.get(args.pop("portal"))
            if portal is None:
                response = error(404, "no such portal")
            elif endpoint in _API:
                response = self._api(request, portal, endpoint, args)
            else:
                response = getattr(self, f"on_{endpoint}")(request, portal, **args)
        except HTTPException as exc:
            response = exc.get_response()
        return response(environ, start_response)

    def _api(self, request: Request, portal: Portal, endpoint: str, args: dict[str, Any]) -> Response:
        """One API request: the token, the injected outage, then the call (a batch counts as one request)."""
        if bearer(request) != portal.token:
            return error(401, "wrong token")
        with self._lock:
            self.calls += 1
            if time.time() < self.unavailable_until:
                return error(503, "sandbox fault: CRM unavailable")
        try:
            data = json.loads(request.get_data() or b"null")
        except ValueError:
            return error(400, "the body is not JSON")
        if endpoint == "batch":
            return self.on_batch(portal, data)
        return self._call(portal, endpoint, data, args)

    def _call(self, portal: Portal, endpoint: str, data: Any, args: dict[str, Any]) -> Response:
        try:
            return getattr(self, f"on_{endpoint}")(portal, data, **args)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return error(400, f"bad request body: {exc!r}")

    def on_batch(self, portal: Portal, data: Any) -> Response:
        """`POST /api/batch {"requests": [{"method", "path", "body"?, "group"?}, …]}`: up to 50 of the API's own
        requests (paths as under `/api/`, without the portal) applied in order, as one request of the portal's budget.
        Answers 200 `{"responses": [{"status", "body"}, …]}`, one per request in the same order; a request whose
        `group` already has a failed request (status ≥ 400) is not applied and answers 424. A malformed batch
        answers 400 and applies nothing."""
        requests = data.get("requests") if isinstance(data, dict) else None
        if not isinstance(requests, list) or not requests:
            return error(400, "requests must be a non-empty array")
        if len(requests) > MAX_BATCH:
            return error(400, f"at most {MAX_BATCH} requests in one batch, got {len(requests)}")
        calls: list[tuple[str, dict[str, Any], Any, str | None]] = []
        for number, sub in enumerate(requests):
            call = self._batched(portal, sub)
            if isinstance(call, str):
                return error(400, f"requests[{number}]: {call}")
            calls.append(call)
        failed: dict[str, int] = {}
        responses: list[dict[str, Any]] = []
        for number, (endpoint, args, body, group) in enumerate(calls):
            if group is not None and group in failed:
                responses.append(
                    {"status": 424, "body": {"error": f"not applied: request {failed[group]} of its group failed"}}
                )
                continue
            try:
                response = self._call(portal, endpoint, body, args)
            except HTTPException as exc:
                response = exc.get_response()
            if response.status_code >= 400 and group is not None:
                failed[group] = number
            responses.append({"status": response.status_code, "body": json.loads(response.get_data())})
        return json_response({"responses": responses})

    def _batched(self, portal: Portal, sub: Any) -> tuple[str, dict[str, Any], Any, str | None] | str:
        """A batch's request as (endpoint, arguments, body, group), or what is wrong with it."""
        if not isinstance(sub, dict):
            return "must be an object"
        method, path, group = sub.get("method"), sub.get("path"), sub.get("group")
        if method not in ("GET", "POST", "PATCH"):
            return "method must be GET, POST or PATCH"
        if not isinstance(path, str) or not path.startswith("/api/"):
            return "path must start with /api/"
        if group is not None and not isinstance(group, str):
            return "group must be a string"
        try:
            endpoint, matched = self._matcher.match(f"/{portal.name}{path}", method=method)
        except HTTPException:
            return f"no such request: {method} {path}"
        if endpoint not in _API or endpoint == "batch":
            return f"not allowed in a batch: {method} {path}"
        args = dict(matched)
        args.pop("portal")
        return endpoint, args, sub.get("body"), group

    def _deal(self, portal: Portal, deal_id: str) -> Deal:
        deal = portal.deals.get(deal_id)
        if deal is None:
            raise _NotFound()
        return deal

    def _create(self, portal: Portal, data: dict[str, Any]) -> Deal:
        with self._lock:
            contact = dict(data.get("contact") or {})
            if contact:
                contact["id"] = self._contact_of(portal, contact).id
            deal = Deal(
                id=str(portal.next_id),
                title=data.get("title", f"Deal {portal.next_id}"),
                amount=int(data["amount"]),
                currency=data.get("currency", "RUB"),
                contact=contact,
                invoice_number=data.get("invoice_number"),
            )
            company = data.get("company")
            if isinstance(company, dict) and company.get("name"):
                known = next((c for c in portal.companies.values() if c.name == company["name"]), None)
                if known is None:
                    known = Entity(id=f"co{len(portal.companies) + 1}", name=str(company["name"]))
                    portal.companies[known.id] = known
                deal.company = {"id": known.id, "name": known.name}
            portal.next_id += 1
            portal.deals[deal.id] = deal
            return deal

    def _contact_of(self, portal: Portal, contact: dict[str, Any]) -> Entity:
        """The portal's contact with this e-mail (or phone), or a new one."""
        for known in portal.contacts.values():
            if (contact.get("email") and known.email == contact["email"]) or (
                contact.get("phone") and known.phone == contact["phone"]
            ):
                return known
        entity = Entity(
            id=f"c{len(portal.contacts) + 1}",
            name=str(contact.get("name") or ""),
            email=contact.get("email"),
            phone=contact.get("phone"),
        )
        portal.contacts[entity.id] = entity
        return entity

    def _entity(self, portal: Portal, kind: str, entity_id: str) -> Entity:
        entity = (portal.contacts if kind == "contacts" else portal.companies).get(entity_id)
        if entity is None:
            raise _NotFound()
        return entity

    def on_entity(self, portal: Portal, data: Any, kind: str, entity_id: str) -> Response:
        return json_response(self._entity(portal, kind, entity_id).public())

    def on_entity_update(self, portal: Portal, data: Any, kind: str, entity_id: str) -> Response:
        entity = self._entity(portal, kind, entity_id)
        fields = data.get("fields")
        if not isinstance(fields, dict):
            return error(400, "fields must be an object")
        with self._lock:
            entity.fields.update(fields)
        return json_response(entity.public())

    def on_entity_timeline(self, portal: Portal, data: Any, kind: str, entity_id: str) -> Response:
        entity = self._entity(portal, kind, entity_id)
        with self._lock:
            entity.timeline.append({"text": data["text"], "at": time.time()})
        return json_response({"ok": True}, 201)

    # -- REST --------------------------------------------------------------------------------------------------------

    def on_list(self, portal: Portal, data: Any) -> Response:
        return json_response([d.public() for d in portal.deals.values()])

    def on_create(self, portal: Portal, data: Any) -> Response:
        return json_response(self._create(portal, data).public(), 201)

    def on_show(self, portal: Portal, data: Any, deal_id: str) -> Response:
        return json_response(self._deal(portal, deal_id).public())

    def on_update(self, portal: Portal, data: Any, deal_id: str) -> Response:
        deal = self._deal(portal, deal_id)
        with self._lock:
            if "stage" in data and data["stage"] != deal.stage:
                deal.stage = data["stage"]
                deal.stage_history.append({"stage": deal.stage, "at": time.time()})
            if "payment_url" in data:
                deal.payment_url = data["payment_url"]
        return json_response(deal.public())

    def on_timeline(self, portal: Portal, data: Any, deal_id: str) -> Response:
        deal = self._deal(portal, deal_id)
        with self._lock:
            deal.timeline.append({"text": data["text"], "at": time.time()})
        return json_response({"ok": True}, 201)

    def on_notify(self, portal: Portal, data: Any, deal_id: str) -> Response:
        deal = self._deal(portal, deal_id)
        with self._lock:
            deal.notifications.append({"text": data["text"], "at": time.time()})
        return json_response({"ok": True}, 201)

    def on_messages(self, portal: Portal, data: Any) -> Response:
        return json_response(portal.messages)

    def on_message(self, portal: Portal, data: Any) -> Response:
        with self._lock:
            portal.messages.append({**data, "at": time.time()})
        return json_response({"ok": True}, 201)

    def on_faults(self, request: Request, portal: Portal) -> Response:
        data = json.loads(request.get_data() or b"{}")
        self.unavailable_until = time.time() + float(data.get("unavailable_for", 0))
        return json_response({"unavailable_until": self.unavailable_until})

    # -- the "Issue invoice" button: the CRM's outbound webhook -------------------------------------------------------

    def fire_issue_webhook(self, portal: Portal, deal: Deal) -> httpx.Response:
        form = {
            "event": ISSUE_EVENT,
            "data[FIELDS][ID]": deal.id,
            "ts": str(int(time.time())),
            "auth[domain]": f"{portal.name}.sandbox-crm.local",
            "auth[member_id]": portal.name,
            "auth[application_token]": portal.token,
        }
        if deal.invoice_number:
            form["data[FIELDS][INVOICE_NUMBER]"] = deal.invoice_number
        return self._http.post(portal.webhook_url, data=form)

    def on_issue(self, request: Request, portal: Portal, deal_id: str) -> Response:
        response = self.fire_issue_webhook(portal, self._deal(portal, deal_id))
        try:
            answer = response.json()
        except ValueError:
            answer = {"raw": response.text}
        return json_response({"webhook_status": response.status_code, "answer": answer})

    def on_issue_button(self, request: Request, portal: Portal, deal_id: str) -> Response:
        deal = self._deal(portal, deal_id)
        try:
            response = self.fire_issue_webhook(portal, deal)
            answer = _answer_of(response)
            deal.issued = {"at": time.time(), "status": response.status_code, "answer": answer}
        except httpx.HTTPError as exc:
            deal.issued = {"at": time.time(), "status": None, "answer": {"detail": f"PayBridge unreachable: {exc}"}}
        return redirect(f"{self.base_url}/{portal.name}/?issued={deal.id}#deal-{deal.id}", code=303)

    # -- page --------------------------------------------------------------------------------------------------------

    def on_index(self, request: Request, portal: Portal) -> Response:
        rows = "".join(self._row(portal, deal) for deal in portal.deals.values())
        shown = portal.deals.get(request.args.get("issued", ""))
        banner = _feedback(shown, banner=True) if shown is not None and shown.issued else ""
        waiting = any(_awaits_link(d) for d in portal.deals.values())
        refresh = (
            "<script>setTimeout(function(){location.reload()},1000)</script>"  # until the link has arrived
            if waiting
            else ""
        )
        body = f"""<style>{_STYLE}</style>
<p class="muted">Portal <b>{html.escape(portal.name)}</b>. "Issue invoice" fires the CRM's outbound
webhook to PayBridge; the deal then follows the money (stage, payment link, timeline).</p>{banner}
<table><thead><tr><th>Deal</th><th class="amount">Amount</th><th>Stage and payment link</th>
<th class="timeline">Timeline (newest first)</th><th class="notices">Manager's notices</th><th>Action</th></tr></thead>
<tbody>{rows}</tbody></table>{refresh}"""
        return page(f"Sandbox CRM — {portal.name}", body)

    def _row(self, portal: Portal, deal: Deal) -> str:
        link = (
            f'<br><a class="link" href="{html.escape(deal.payment_url)}">{html.escape(deal.payment_url)}</a>'
            if deal.payment_url and deal.stage not in PAID_STAGES
            else ""
        )
        entries = [f'<li class="wrap">{_text(t["text"])}{_at(t)}</li>' for t in reversed(deal.timeline)]
        timeline = "".join(entries[:SHOWN])
        if len(entries) > SHOWN:  # the older ones fold away; the newest say where the deal stands
            timeline += (
                f"<li><details><summary>{len(entries) - SHOWN} earlier</summary>"
                f'<ul class="plain">{"".join(entries[SHOWN:])}</ul></details></li>'
            )
        notes = "".join(
            f'<li class="wrap warn">⚠ {_text(n["text"])}{_at(n)}</li>' for n in reversed(deal.notifications)
        )
        if deal.stage in PAID_STAGES:
            action = '<span class="badge paid">Paid</span>'
        else:
            action = f"""<form method="post" action="{self.base_url}/{portal.name}/deals/{deal.id}/issue">
<button class="primary">Issue invoice</button></form>{_feedback(deal, banner=False) if deal.issued else ""}"""
        contact = html.escape(str(deal.contact.get("email") or deal.contact.get("phone") or ""))
        entity = portal.contacts.get(str(deal.contact.get("id") or ""))
        total = entity.fields.get("total_paid") if entity is not None else None
        if isinstance(total, dict) and isinstance(total.get("amount"), int):  # payments on the customer's profile
            paid = money(total["amount"], str(total.get("currency") or deal.currency))
            contact += f'<br><span class="muted">customer paid in total: <span class="amount">{paid}</span></span>'
        return f"""<tr id="deal-{deal.id}" data-stage="{html.escape(deal.stage)}"><td>#{deal.id}
{html.escape(deal.title)}<br><span class="muted">{contact}</span></td>
<td class="amount">{money(deal.amount, deal.currency)}</td>
<td><span class="stage">{html.escape(deal.stage)}</span>{link}</td>
<td><ul class="plain timeline">{timeline}</ul></td><td><ul class="plain notices">{notes}</ul></td>
<td class="action">{action}</td></tr>"""


#: An amount as PayBridge writes it into a text ("150 000.00 RUB"): kept on one line on the page.
_AMOUNT = re.compile(r"\d{1,3}(?: \d{3})*\.\d{2} [A-Z]{3}")


def _at(entry: dict[str, Any]) -> str:
    return f' <span class="muted">{time.strftime("%H:%M:%S", time.localtime(entry["at"]))}</span>'


def _text(text: str) -> str:
    """A timeline entry or a notice, escaped, with its amounts unbreakable."""
    return _AMOUNT.sub(lambda m: f'<span class="amount">{m.group(0)}</span>', html.escape(text))


_STYLE = """td.action{min-width:10em}th.timeline{width:34%}th.notices{width:18%}
ul.plain li{border-bottom:1px dotted #ddd;padding:.15em 0}ul.plain li:last-child{border-bottom:0}"""

#: Timeline entries shown open per deal, newest first; the older ones fold under "N earlier".
SHOWN = 3

#: Stages of a deal whose money came: nothing to issue any more.
PAID_STAGES = frozenset({"PAID", "PARTIALLY_REFUNDED", "REFUNDED"})


def _answer_of(response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {"detail": response.text[:200]}
    return answer if isinstance(answer, dict) else {"detail": str(answer)[:200]}


def _awaits_link(deal: Deal) -> bool:
    """Issued from the page a moment ago, accepted, and the payment link not there yet."""
    issued = deal.issued
    return bool(
        issued
        and issued["status"] == 200
        and not deal.payment_url
        and deal.stage not in PAID_STAGES
        and time.time() - issued["at"] < 30
    )


def _feedback(deal: Deal, banner: bool) -> str:
    """What PayBridge answered the deal's last "Issue invoice", as the manager reads it."""
    issued = deal.issued or {}
    answer = issued.get("answer") or {}
    if issued.get("status") == 200:
        invoices = answer.get("invoices") or []
        numbers = ", ".join(str(i.get("invoice_id", "")) for i in invoices)
        said = {
            "issued": "invoice issued",
            "exists": "the invoice already exists",
            "accepted": "request accepted",
            "ignored": "nothing to do",
        }.get(str(answer.get("status")), str(answer.get("status")))
        waiting = " The payment link appears here in a moment." if _awaits_link(deal) else ""
        text = f"Deal #{deal.id}: PayBridge — {said}{f' ({numbers})' if numbers else ''}.{waiting}"
        kind = "ok"
    else:
        detail = answer.get("detail") or answer.get("title") or answer
        text = f"Deal #{deal.id}: PayBridge refused ({issued.get('status')}): {detail}"
        kind = "bad"
    stamp = time.strftime("%H:%M:%S", time.localtime(issued.get("at", time.time())))
    if banner:
        return f'<p class="notice {kind} wrap" role="status" id="feedback">{html.escape(text)}</p>'
    return f'<p class="muted wrap issued">{html.escape(text)} <span class="muted">{stamp}</span></p>'


#: The API's requests: the portal's token checked, counted in `calls`, failed by an injected outage.
_API = frozenset(
    {
        "list", "create", "show", "update", "timeline", "notify", "entity", "entity_update", "entity_timeline",
        "messages", "message", "batch",
    }
)  # fmt: skip

#: Requests in one `POST /api/batch` (Bitrix24's `batch` takes 50 too).
MAX_BATCH = 50


class _NotFound(HTTPException):
    code = 404

    def get_response(self, environ: Any = None, scope: Any = None) -> Response:
        return error(404, "no such deal")
