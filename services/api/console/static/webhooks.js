// One collection's webhooks: add (the secret is shown once), list, delete, and deliveries.
"use strict";

(() => {
  const { api, el, notify, confirmDanger, seg } = Sieve;
  const base = "/v1/collections/" + seg(Sieve.collection) + "/webhooks";
  const ready = () => Sieve.openMode || Sieve.apiKey();
  const EVENTS = ["job.completed", "job.failed", "job.cancelled", "document.failed",
    "reindex.completed", "snapshot.completed"];

  const box = document.getElementById("hook-events");
  for (const e of EVENTS) {
    const id = "hook-ev-" + e.replace(".", "-");
    box.append(el("label", { for: id }, el("input", { id, type: "checkbox", value: e, checked: true }), " " + e));
  }

  const when = (ts) => ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) : "–";

  async function loadHooks() {
    const body = document.querySelector("#hooks-table tbody");
    if (!ready()) return;
    try {
      const res = await api("GET", base);
      body.replaceChildren(...res.webhooks.map(hookRow));
      if (!res.webhooks.length) body.append(el("tr", {}, el("td", { colspan: "4", class: "muted" }, "No webhooks yet.")));
    } catch (err) {
      notify(err.message, "error");
    }
  }

  function hookRow(h) {
    return el("tr", { "data-webhook": h.id },
      el("th", { scope: "row" }, h.id, h.description ? [el("br"), el("span", { class: "muted small" }, h.description)] : null),
      el("td", {}, h.url),
      el("td", {}, h.events.join(", ")),
      el("td", { class: "actions" },
        el("button", { type: "button", onclick: () => showDeliveries(h) }, "Deliveries"),
        el("button", { type: "button", class: "danger", "aria-label": "Delete webhook " + h.id, onclick: () => removeHook(h) }, "Delete")));
  }

  async function showDeliveries(h) {
    const table = document.getElementById("deliveries-table");
    try {
      const page = await api("GET", base + "/" + seg(h.id) + "/deliveries?limit=50");
      document.getElementById("deliveries-caption").textContent =
        "Deliveries of " + h.id + " (newest first, " + page.total + " kept)";
      table.querySelector("tbody").replaceChildren(...page.deliveries.map((d) => el("tr", {},
        el("td", {}, when(d.at)), el("td", {}, d.type || ""), el("td", { class: "num" }, String(d.attempt ?? "")),
        el("td", {}, el("span", { class: "chip" }, d.status || "")),
        el("td", { class: "num" }, d.http_status == null ? "–" : String(d.http_status)),
        el("td", {}, d.error || ""), el("td", { class: "num" }, d.duration_ms == null ? "" : String(d.duration_ms)))));
      table.hidden = false;
    } catch (err) {
      notify(err.message, "error");
    }
  }

  async function removeHook(h) {
    if (!(await confirmDanger("Delete webhook " + h.id + "?", "Deliveries still queued for it are dropped."))) return;
    try {
      await api("DELETE", base + "/" + seg(h.id));
      document.getElementById("deliveries-table").hidden = true;
      await loadHooks();
    } catch (err) {
      notify(err.message, "error");
    }
  }

  document.getElementById("hook-add").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const url = document.getElementById("hook-url").value.trim();
    const events = [...box.querySelectorAll("input:checked")].map((i) => i.value);
    if (!events.length) { notify("Choose at least one event.", "error"); return; }
    try {
      const h = await api("POST", base, { url, events });
      document.getElementById("hook-secret").textContent =
        "Signing secret of " + h.id + " (shown only now, keep it): " + h.secret;
      document.getElementById("hook-url").value = "";
      await loadHooks();
    } catch (err) {
      notify(err.message, "error");
    }
  });

  loadHooks();
})();
