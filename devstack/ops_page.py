"""The ops console of the local stack (`/ops/`): one self-contained page (inline CSS and JS, no CDN) that a person
uses to see what went wrong and pull the levers — by calling the same HTTP API any console would (`/v1/{tenant}/...`
with an `ops` key, `X-Actor` and an `Idempotency-Key` per intended action):

- invoices by state and age, or by deal — stuck ones first (`GET /v1/{tenant}/invoices`), each with its money facts
  (paid, by method, outstanding) and the levers that fit its state: record a payment made elsewhere (`POST
  .../payments`), reissue the link (`POST .../reissue`), re-sync the deal (`POST /v1/{tenant}/deals/{deal}/resync`);
- the drift list (`GET /v1/{tenant}/drift`) and "Check for drift now" (`POST /v1/{tenant}/drift`);
- the bank review list (`GET /bank/{tenant}/review`) with Assign (to an invoice, an amount) and Dismiss
  (`POST /v1/{tenant}/bank/review/{fingerprint}/resolve`).

The key field is prefilled with the local demo key (`demo-ops-key`, tenants `demo` and `bank-shop`): local only — the
page is served by the local stack, never deployed. A lever's form gets its Idempotency-Key when it is opened, so a
double click or a retry of the same form answers the first outcome (`replayed`) and does nothing twice."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence

from werkzeug.wrappers import Response

from devstack.web import page

LOCAL_OPS_KEY = "demo-ops-key"
STATES = (
    "issued",
    "awaiting_payment",
    "partially_paid",
    "paid",
    "partially_refunded",
    "refunded",
    "expired",
    "cancelled",
    "failed",
)

_SCRIPT = r"""
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var invoices = [];
  var LEVERS = { manual_payment: "Payment recorded", reissue: "Link reissued", deal_resync: "Deal re-synced",
    bank_resolve: "Bank line decided" };

  function who() {
    return { tenant: $("tenant").value, key: $("api-key").value.trim(), actor: $("actor").value.trim() };
  }
  function newKey() {
    var random = (window.crypto && crypto.randomUUID) ? crypto.randomUUID().replace(/-/g, "")
      : (Date.now().toString(16) + Math.random().toString(16).slice(2));
    return "ops-console-" + random.slice(0, 40);
  }
  function esc(text) {
    return String(text == null ? "" : text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  // Minor units to "150 000.00 RUB" with integer arithmetic only (money is never a float here).
  function money(minor, currency) {
    var sign = minor < 0 ? "-" : "";
    var abs = Math.abs(minor);
    var major = Math.floor(abs / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, " ");
    var cents = String(abs % 100).padStart(2, "0");
    return '<span class="amount">' + sign + major + "." + cents + " " + esc(currency) + "</span>";
  }
  // "1500", "1500.5", "1 500,50" -> 150050 (minor units), or null.
  function toMinor(text) {
    var clean = String(text).replace(/[\s\u00a0]/g, "").replace(",", ".");
    var m = /^(\d{1,11})(?:\.(\d{1,2}))?$/.exec(clean);
    if (!m) { return null; }
    return parseInt(m[1], 10) * 100 + parseInt((m[2] || "0").padEnd(2, "0"), 10);
  }
  function majorOf(minor) { return Math.floor(minor / 100) + "." + String(minor % 100).padStart(2, "0"); }
  function age(seconds) {
    if (seconds < 90) { return seconds + " s"; }
    if (seconds < 5400) { return Math.round(seconds / 60) + " min"; }
    if (seconds < 172800) { return Math.round(seconds / 3600) + " h"; }
    return Math.round(seconds / 86400) + " d";
  }
  function say(text, kind) {
    var box = $("status");
    box.dataset.seq = String(+(box.dataset.seq || 0) + 1);  // each answer is a new one, even if it reads the same
    box.className = "notice " + (kind || "");
    box.textContent = text;
    box.hidden = false;
  }
  function problemText(status, body) {
    if (body && typeof body === "object") {
      var text = status + " " + (body.title || "") + (body.detail ? ": " + body.detail : "");
      (body.errors || []).forEach(function (e) {
        text += " · " + (e.field || e.loc || "") + " " + (e.message || e.msg || "");
      });
      return text;
    }
    return status + " " + String(body || "");
  }

  function call(method, path, options) {
    options = options || {};
    var w = who();
    var headers = { "x-api-key": w.key };
    if (options.actor) { headers["X-Actor"] = w.actor; }
    if (options.idempotencyKey) { headers["Idempotency-Key"] = options.idempotencyKey; }
    var init = { method: method, headers: headers };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    return fetch(path, init).then(function (response) {
      return response.text().then(function (text) {
        var body;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
        if (!response.ok) { throw new Error(problemText(response.status, body)); }
        return body;
      });
    });
  }

  // -- invoices --------------------------------------------------------------------------------------------------
  function loadInvoices() {
    var w = who();
    var params = new URLSearchParams({ limit: "100" });
    if ($("f-state").value) { params.set("state", $("f-state").value); }
    if ($("f-older").value.trim()) { params.set("older_than", $("f-older").value.trim()); }
    if ($("f-deal").value.trim()) { params.set("deal_id", $("f-deal").value.trim()); }
    return call("GET", "/v1/" + encodeURIComponent(w.tenant) + "/invoices?" + params.toString()).then(function (data) {
      invoices = data.invoices;
      renderInvoices();
    });
  }
  var METHODS = { card: "card", sbp: "SBP", bank_transfer: "bank transfer", saved_method: "saved card",
    manual: "recorded by hand" };
  function methods(invoice) {
    var parts = Object.keys(invoice.paid_by_method || {}).map(function (m) {
      return esc(METHODS[m] || m.replace(/_/g, " ")) + " " + money(invoice.paid_by_method[m], invoice.currency);
    });
    return parts.length ? '<br><span class="muted">' + parts.join(", ") + "</span>" : "";
  }
  function renderInvoices() {
    var rows = invoices.map(function (inv, i) {
      var state = '<span class="badge">' + esc(inv.state.replace(/_/g, " ")) + "</span>";
      if (inv.stuck) { state += ' <span class="badge stuck">stuck</span>'; }
      var levers = [];
      if (inv.outstanding > 0) {
        levers.push('<button data-lever="payment" data-i="' + i + '">Record payment…</button>');
      }
      if (["expired", "cancelled", "failed"].indexOf(inv.state) >= 0 && inv.paid === 0) {
        levers.push('<button data-lever="reissue" data-i="' + i + '">Reissue link…</button>');
      }
      levers.push('<button data-lever="resync" data-i="' + i + '">Re-sync deal…</button>');
      return '<tr id="inv-' + esc(inv.invoice_id) + '" data-state="' + esc(inv.state) + '"><td>' + esc(inv.number) +
        '<br><span class="muted wrap">' + esc(inv.invoice_id) + "</span></td><td>" + esc(inv.deal_id) + "</td><td>" +
        state + '</td><td class="amount">' + money(inv.amount, inv.currency) + '</td><td class="amount">' +
        money(inv.paid, inv.currency) + methods(inv) + '</td><td class="amount">' +
        money(inv.outstanding, inv.currency) + '</td><td class="amount">' + age(inv.age_seconds) + "</td><td>" +
        levers.join(" ") + "</td></tr>";
    });
    $("invoice-rows").innerHTML = rows.join("") ||
      '<tr><td colspan="8" class="muted">No invoices match.</td></tr>';
    $("invoice-count").textContent = invoices.length + " shown";
  }

  // A lever's form, under the row it acts on; its Idempotency-Key is made when it opens (one per intended action).
  function openForm(anchorRow, title, fields, submit) {
    closeForm();
    var key = newKey();
    var row = document.createElement("tr");
    row.id = "lever-row";
    var cell = document.createElement("td");
    cell.colSpan = 8;
    var form = document.createElement("form");
    form.className = "box";
    form.setAttribute("aria-label", title);
    form.innerHTML = "<b>" + esc(title) + "</b> " + fields +
      ' <label>Reason <input name="reason" required minlength="3" maxlength="500" size="32"></label>' +
      ' <button class="primary" type="submit">Apply</button> <button type="button" data-close>Close</button>' +
      ' <span class="muted">Idempotency-Key ' + esc(key) + "</span>";
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      var data = {};
      new FormData(form).forEach(function (value, name) { data[name] = String(value).trim(); });
      var request;
      try { request = submit(data, key); } catch (e) { request = Promise.reject(e); }
      request.then(function (outcome) {
        var done = (LEVERS[outcome.lever] || outcome.lever) + ": " + outcome.detail;
        say(done + " (" + outcome.target + ", by " + outcome.actor + ")" +
          (outcome.replayed ? " — replayed: this key was answered before, nothing done again" : ""), "ok");
        closeForm();
        return refreshAll();
      }).catch(function (e) {
        say(e.message, "bad");
        button.disabled = false;
      });
    });
    form.querySelector("[data-close]").addEventListener("click", closeForm);
    cell.appendChild(form);
    row.appendChild(cell);
    anchorRow.parentNode.insertBefore(row, anchorRow.nextSibling);
    form.querySelector("input,select").focus();
  }
  function closeForm() {
    var open = $("lever-row");
    if (open) { open.parentNode.removeChild(open); }
  }
  function requireActor() {
    if (!who().actor) { throw new Error("Type your login first: every lever records who pulled it."); }
  }
  function lever(kind, inv, row) {
    var t = encodeURIComponent(who().tenant);
    var path = "/v1/" + t + "/invoices/" + encodeURIComponent(inv.invoice_id);
    if (kind === "payment") {
      openForm(row, "Record a payment made outside PayBridge — invoice " + inv.number,
        '<label>Amount <input name="amount" required inputmode="decimal" size="12" value="' +
        majorOf(inv.outstanding) + '"></label> <label>Method <select name="method">' +
        '<option value="cash">cash</option><option value="bank_transfer">bank transfer</option>' +
        '<option value="other">other</option></select></label>' +
        ' <label>Reference <input name="reference" maxlength="200" size="16"></label>',
        function (data, key) {
          requireActor();
          var amount = toMinor(data.amount);
          if (!amount) { throw new Error("Amount: a positive number like 1500 or 1500.50"); }
          return call("POST", path + "/payments", { actor: true, idempotencyKey: key,
            body: { amount: amount, method: data.method, reference: data.reference, reason: data.reason } });
        });
    } else if (kind === "reissue") {
      openForm(row, "Reissue the link of invoice " + inv.number, "", function (data, key) {
        requireActor();
        return call("POST", path + "/reissue", { actor: true, idempotencyKey: key, body: { reason: data.reason } });
      });
    } else if (kind === "resync") {
      openForm(row, "Re-sync deal " + inv.deal_id + " with its invoices", "", function (data, key) {
        requireActor();
        return call("POST", "/v1/" + t + "/deals/" + encodeURIComponent(inv.deal_id) + "/resync",
          { actor: true, idempotencyKey: key, body: { reason: data.reason } });
      });
    }
  }

  // -- drift -----------------------------------------------------------------------------------------------------
  function loadDrift() {
    return call("GET", "/v1/" + encodeURIComponent(who().tenant) + "/drift").then(function (data) {
      var html = data.reports.slice(0, 10).map(function (r) {
        var findings = r.findings.map(function (f) {
          return '<li class="wrap">' + (f.repaired ? "✓ repaired" : "✗ not repaired") + " · " +
            esc(f.kind.replace(/_/g, " ")) + " · deal " + esc(f.deal_id) + " · " + esc(f.invoice_id) + " — " +
            esc(f.detail) + "</li>";
        }).join("");
        var at = String(r.at).replace("T", " ").slice(0, 19) + " UTC";
        return '<li class="drift-report"><b>' + esc(at) + "</b>: " + r.invoices_checked + " invoices and " +
          r.deals_checked + " deals checked, " + r.found + " found, " + r.repaired + " repaired" +
          (r.skipped && r.skipped.length ? " (skipped: " + esc(r.skipped.join(", ")) + ")" : "") +
          (findings ? "<ul>" + findings + "</ul>" : "") + "</li>";
      }).join("");
      $("drift-list").innerHTML = html || '<li class="muted">No drift checks yet.</li>';
    });
  }
  function checkDrift() {
    try { requireActor(); } catch (e) { say(e.message, "bad"); return; }
    var button = $("drift-check");
    button.disabled = true;
    call("POST", "/v1/" + encodeURIComponent(who().tenant) + "/drift", { actor: true }).then(function (r) {
      say("Drift check: " + r.invoices_checked + " invoices, " + r.deals_checked + " deals checked; " + r.found +
        " found, " + r.repaired + " repaired.", "ok");
      return refreshAll();
    }).catch(function (e) { say(e.message, "bad"); }).then(function () { button.disabled = false; });
  }

  // -- bank review -----------------------------------------------------------------------------------------------
  var lines = [];
  function loadBank() {
    return call("GET", "/bank/" + encodeURIComponent(who().tenant) + "/review").then(function (data) {
      lines = data.lines;
      var rows = lines.map(function (l, i) {
        var found = l.decision.numbers_found && l.decision.numbers_found.length
          ? '<br><span class="muted">numbers found: ' + esc(l.decision.numbers_found.join(", ")) + "</span>" : "";
        return '<tr id="line-' + esc(l.decision.fingerprint) + '"><td class="nowrap">' + esc(l.value_date) +
          '</td><td class="amount">' + money(l.amount, l.currency) + '</td><td class="wrap">' + esc(l.payer_name) +
          (l.payer_inn ? '<br><span class="muted">INN ' + esc(l.payer_inn) + "</span>" : "") +
          '</td><td class="wrap">' + esc(l.purpose) + '</td><td class="wrap">' + esc(l.decision.reason) + found +
          '</td><td><button data-bank="assign" data-i="' + i + '">Assign…</button> <button data-bank="dismiss"' +
          ' data-i="' + i + '">Dismiss…</button></td></tr>';
      }).join("");
      $("bank-rows").innerHTML = rows || '<tr><td colspan="6" class="muted">Nothing waits for a person.</td></tr>';
    }).catch(function (e) {
      var text = String(e.message);
      $("bank-rows").innerHTML = '<tr><td colspan="6" class="muted">' +
        esc(text.indexOf("404") === 0 ? "This tenant has no bank settings." : text) + "</td></tr>";
    });
  }
  function bank(kind, line, row) {
    var path = "/v1/" + encodeURIComponent(who().tenant) + "/bank/review/" + line.decision.fingerprint + "/resolve";
    if (kind === "assign") {
      openForm(row, "Assign this bank line's money to an invoice",
        '<label>Invoice id <input name="invoice_id" required pattern="inv_[a-z2-7]{26}" size="32"' +
        ' list="open-invoices"></label> <label>Amount <input name="amount" required size="12" value="' +
        majorOf(line.amount) + '"></label>', function (data, key) {
          requireActor();
          var amount = toMinor(data.amount);
          if (!amount) { throw new Error("Amount: a positive number like 1500 or 1500.50"); }
          return call("POST", path, { actor: true, idempotencyKey: key,
            body: { assign: [{ invoice_id: data.invoice_id, amount: amount }], reason: data.reason } });
        });
      var options = invoices.filter(function (inv) { return inv.outstanding > 0; }).map(function (inv) {
        var label = esc(inv.number + " · deal " + inv.deal_id);
        return '<option value="' + esc(inv.invoice_id) + '">' + label + "</option>";
      });
      $("open-invoices").innerHTML = options.join("");
    } else {
      openForm(row, "Dismiss this bank line", "", function (data, key) {
        requireActor();
        return call("POST", path, { actor: true, idempotencyKey: key, body: { dismiss: { reason: data.reason } } });
      });
    }
  }

  // Reload the three lists; after a lever the lists refresh under its answer, which stays on the page.
  function refreshAll(announce) {
    if (announce) { say("Loading " + who().tenant + "…"); }
    document.body.dataset.busy = "1";
    return Promise.all([loadInvoices(), loadDrift(), loadBank()]).then(function () {
      $("loaded").textContent = "Loaded " + new Date().toLocaleTimeString() + " for tenant " + who().tenant + ".";
      if (announce) { $("status").hidden = true; }
    }).catch(function (e) { say(e.message, "bad"); }).then(function () { document.body.dataset.busy = "0"; });
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest("button");
    if (!target) { return; }
    if (target.dataset.lever) {
      lever(target.dataset.lever, invoices[+target.dataset.i], target.closest("tr"));
    } else if (target.dataset.bank) {
      bank(target.dataset.bank, lines[+target.dataset.i], target.closest("tr"));
    }
  });
  $("who").addEventListener("submit", function (event) { event.preventDefault(); closeForm(); refreshAll(true); });
  $("filters").addEventListener("submit", function (event) {
    event.preventDefault();
    loadInvoices().catch(function (e) { say(e.message, "bad"); });
  });
  $("drift-check").addEventListener("click", checkDrift);
  refreshAll(true);
})();
"""


def ops_page(tenants: Sequence[str], default_tenant: str = "demo") -> Response:
    options = "".join(
        f'<option value="{html.escape(t)}"{" selected" if t == default_tenant else ""}>{html.escape(t)}</option>'
        for t in tenants
    )
    states = "".join(f'<option value="{s}">{s.replace("_", " ")}</option>' for s in STATES)
    body = f"""<p class="muted">The levers call the same HTTP API as any console (an <code>ops</code> key, your login as
<code>X-Actor</code>, an Idempotency-Key per action). Local stack only: the key is prefilled with the demo key
(<code>{LOCAL_OPS_KEY}</code>, tenants demo and bank-shop). <a href="/docs/">API reference</a></p>
<form id="who" class="box"><label>Tenant <select id="tenant">{options}</select></label>
<label>Ops API key <input id="api-key" type="password" value="{LOCAL_OPS_KEY}" autocomplete="off" size="20"></label>
<label>Your login (X-Actor) <input id="actor" value="" placeholder="e.g. anna" size="14"
pattern="[A-Za-z0-9][A-Za-z0-9 ._@-]{{0,63}}"></label> <button class="primary" type="submit">Load</button>
<span class="muted" id="loaded"></span></form>
<p id="status" role="status" aria-live="polite" class="notice" hidden></p>
<section aria-labelledby="h-invoices"><h2 id="h-invoices">Invoices — stuck first, then the oldest</h2>
<form id="filters"><label>State <select id="f-state"><option value="">any</option>
<option value="awaiting_payment,partially_paid">open (awaiting or partly paid)</option>{states}</select></label>
<label>Older than <input id="f-older" placeholder="90m, 2d" size="8"></label>
<label>Deal <input id="f-deal" size="10"></label> <button type="submit">Show</button>
<span class="muted" id="invoice-count"></span></form>
<table id="invoices"><thead><tr><th>Invoice</th><th>Deal</th><th>State</th><th class="amount">Amount</th>
<th class="amount">Paid</th><th class="amount">Outstanding</th><th class="amount">Age</th><th>Levers</th></tr></thead>
<tbody id="invoice-rows"></tbody></table></section>
<section aria-labelledby="h-drift"><h2 id="h-drift">Drift</h2>
<p><button id="drift-check" type="button">Check for drift now</button>
<span class="muted">deals against their invoices, invoices against their providers; what lags is repaired</span></p>
<ul id="drift-list"></ul></section>
<section aria-labelledby="h-bank"><h2 id="h-bank">Bank review</h2>
<table id="bank"><thead><tr><th>Value date</th><th class="amount">Amount</th><th>Payer</th><th>Purpose</th>
<th>Why a person decides</th><th>Levers</th></tr></thead><tbody id="bank-rows"></tbody></table>
<datalist id="open-invoices"></datalist></section>
<script>{_SCRIPT}</script>"""
    return page("PayBridge ops console (local)", body, lang="en")


def swagger_page() -> Response:
    """Swagger UI for `openapi.json`, from the Swagger UI assets Powertools bundles (present in the dev venv; the
    layer strips them), served by the local stack itself: no CDN."""
    config = json.dumps({"url": "/openapi.json", "dom_id": "#swagger-ui", "deepLinking": True, "filter": True})
    document = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>PayBridge API — Swagger UI</title>
<link rel="stylesheet" href="/docs/swagger-ui.min.css"></head><body>
<p style="font-family:system-ui,sans-serif;margin:1em 2em"><a href="/">← PayBridge local stack</a> ·
<a href="/openapi.json">openapi.json</a></p><div id="swagger-ui">Loading…</div>
<script src="/docs/swagger-ui-bundle.min.js"></script>
<script>window.ui = SwaggerUIBundle({config});</script></body></html>"""
    return Response(document, mimetype="text/html")
