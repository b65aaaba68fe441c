"""The sandbox CRM: one portal per tenant with deals, stages, a timeline, manager notifications and client messages;
a page lists the deals with an "Issue invoice" button that fires the outbound webhook (form-encoded, Bitrix24-like).

Wire format: see `paybridge.adapters.crm.sandbox` (our side)."""

from __future__ import annotations

import html
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

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
    invoice_number: str | None = None
    payment_url: str | None = None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    stage_history: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "amount": self.amount,
            "currency": self.currency,
            "stage": self.stage,
            "contact": self.contact,
            "invoice_number": self.invoice_number,
            "payment_url": self.payment_url,
            "timeline": self.timeline,
            "notifications": self.notifications,
            "stage_history": self.stage_history,
        }


@dataclass
class Portal:
    name: str
    token: str
    webhook_url: str
    deals: dict[str, Deal] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)
    next_id: int = 1


class SandboxCrm:
    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self.portals: dict[str, Portal] = {}
        self.unavailable_until = 0.0
        self.calls = 0
        self._lock = threading.RLock()
        self._http = httpx.Client(timeout=httpx.Timeout(30.0, connect=2.0))
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
                Rule("/<portal>/api/messages", methods=["GET"], endpoint="messages"),
                Rule("/<portal>/api/messages", methods=["POST"], endpoint="message"),
                Rule("/<portal>/api/faults", methods=["POST"], endpoint="faults"),
            ]
        )

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
            elif "/api/" in request.path and not endpoint.startswith(("faults", "issue")):
                response = self._api(request, portal, endpoint, args)
            else:
                response = getattr(self, f"on_{endpoint}")(request, portal, **args)
        except HTTPException as exc:
            response = exc.get_response()
        return response(environ, start_response)

    def _api(self, request: Request, portal: Portal, endpoint: str, args: dict[str, Any]) -> Response:
        if bearer(request) != portal.token:
            return error(401, "wrong token")
        with self._lock:
            self.calls += 1
            if time.time() < self.unavailable_until:
                return error(503, "sandbox fault: CRM unavailable")
        return getattr(self, f"on_{endpoint}")(request, portal, **args)

    def _deal(self, portal: Portal, deal_id: str) -> Deal:
        deal = portal.deals.get(deal_id)
        if deal is None:
            raise _NotFound()
        return deal

    def _create(self, portal: Portal, data: dict[str, Any]) -> Deal:
        with self._lock:
            deal = Deal(
                id=str(portal.next_id),
                title=data.get("title", f"Deal {portal.next_id}"),
                amount=int(data["amount"]),
                currency=data.get("currency", "RUB"),
                contact=data.get("contact", {}),
                invoice_number=data.get("invoice_number"),
            )
            portal.next_id += 1
            portal.deals[deal.id] = deal
            return deal

    # -- REST --------------------------------------------------------------------------------------------------------

    def on_list(self, request: Request, portal: Portal) -> Response:
        return json_response([d.public() for d in portal.deals.values()])

    def on_create(self, request: Request, portal: Portal) -> Response:
        return json_response(self._create(portal, json.loads(request.get_data())).public(), 201)

    def on_show(self, request: Request, portal: Portal, deal_id: str) -> Response:
        return json_response(self._deal(portal, deal_id).public())

    def on_update(self, request: Request, portal: Portal, deal_id: str) -> Response:
        deal = self._deal(portal, deal_id)
        data = json.loads(request.get_data())
        with self._lock:
            if "stage" in data and data["stage"] != deal.stage:
                deal.stage = data["stage"]
                deal.stage_history.append({"stage": deal.stage, "at": time.time()})
            if "payment_url" in data:
                deal.payment_url = data["payment_url"]
        return json_response(deal.public())

    def on_timeline(self, request: Request, portal: Portal, deal_id: str) -> Response:
        deal = self._deal(portal, deal_id)
        with self._lock:
            deal.timeline.append({"text": json.loads(request.get_data())["text"], "at": time.time()})
        return json_response({"ok": True}, 201)

    def on_notify(self, request: Request, portal: Portal, deal_id: str) -> Response:
        deal = self._deal(portal, deal_id)
        with self._lock:
            deal.notifications.append({"text": json.loads(request.get_data())["text"], "at": time.time()})
        return json_response({"ok": True}, 201)

    def on_messages(self, request: Request, portal: Portal) -> Response:
        return json_response(portal.messages)

    def on_message(self, request: Request, portal: Portal) -> Response:
        with self._lock:
            portal.messages.append({**json.loads(request.get_data()), "at": time.time()})
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
        self.fire_issue_webhook(portal, self._deal(portal, deal_id))
        return redirect(f"{self.base_url}/{portal.name}/", code=303)

    # -- page --------------------------------------------------------------------------------------------------------

    def on_index(self, request: Request, portal: Portal) -> Response:
        rows = []
        for deal in portal.deals.values():
            link = f'<a href="{html.escape(deal.payment_url)}">payment link</a>' if deal.payment_url else ""
            timeline = "".join(f"<li>{html.escape(t['text'])}</li>" for t in deal.timeline[-5:])
            notes = "".join(f"<li>⚠ {html.escape(n['text'])}</li>" for n in deal.notifications[-3:])
            rows.append(
                f"""<tr><td>#{deal.id}</td><td>{html.escape(deal.title)}<br><span class=muted>
{html.escape(str(deal.contact.get("email") or ""))}</span></td><td>{money(deal.amount, deal.currency)}</td>
<td class="stage">{html.escape(deal.stage)}<br>{link}</td><td><ul>{timeline}{notes}</ul></td>
<td><form method="post" action="{self.base_url}/{portal.name}/deals/{deal.id}/issue">
<button>Issue invoice</button></form></td></tr>"""
            )
        body = f"""<p class="muted">Portal <b>{html.escape(portal.name)}</b>. "Issue invoice" fires the CRM's outbound
webhook to PayBridge. Refresh to see the deal follow the money.</p>
<table><tr><th>Deal</th><th>Title</th><th>Amount</th><th>Stage</th><th>Timeline</th><th></th></tr>{"".join(rows)}</table>"""
        return page(f"Sandbox CRM — {portal.name}", body)


class _NotFound(HTTPException):
    code = 404

    def get_response(self, environ: Any = None, scope: Any = None) -> Response:
        return error(404, "no such deal")
