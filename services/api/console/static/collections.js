// Collections: list with counts by status, create, delete with confirmation.
"use strict";

(() => {
  const { api, el, notify, confirmDanger, fmt, seg } = Sieve;
  const tbody = document.querySelector("#collections-table tbody");

  function needKey() {
    if (Sieve.openMode || Sieve.apiKey()) return false;
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "muted" },
      "Enter your API key above to see your collections.")));
    return true;
  }

  function statusChips(byStatus) {
    const entries = Object.entries(byStatus || {}).filter(([, n]) => n > 0);
    if (!entries.length) return el("span", { class: "muted" }, "none");
    return el("ul", { class: "chips" }, entries.map(([status, n]) =>
      el("li", { class: "chip status-" + status }, status + " " + n)));
  }

  async function load() {
    if (needKey()) return;
    let listing;
    try {
      listing = await api("GET", "/v1/collections");
    } catch (err) {
      tbody.replaceChildren(el("tr", {}, el("td", { colspan: 8 }, "Could not list collections: " + err.message)));
      return;
    }
    const rows = await Promise.all(listing.collections.map(async (c) => {
      try { return await api("GET", "/v1/collections/" + seg(c.name)); } catch (err) { return c; }
    }));
    if (!rows.length) {
      tbody.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No collections yet: create one below.")));
      return;
    }
    rows.sort((a, b) => a.name.localeCompare(b.name));
    tbody.replaceChildren(...rows.map((c) => {
      const base = "/console/collections/" + seg(c.name);
      return el("tr", { "data-collection": c.name },
        el("th", { scope: "row" }, el("a", { href: base }, c.name)),
        el("td", {}, c.documents === undefined || c.documents === null ? "–"
          : [el("span", { class: "count" }, c.documents + " total"), statusChips(c.documents_by_status)]),
        el("td", { class: "num" }, c.chunks === null || c.chunks === undefined ? "–" : c.chunks),
        el("td", {}, c.embedding_model + " (" + c.dimension + "-d)"),
        el("td", {}, c.hybrid ? "yes" : "no"),
        el("td", {}, c.rerank_model || el("span", { class: "muted" }, "server default")),
        el("td", { class: "num" }, c.min_score === null ? "–" : fmt(c.min_score, 2)),
        el("td", { class: "actions" },
          el("a", { href: base, class: "button" }, "Documents"),
          el("a", { href: base + "/query", class: "button" }, "Query"),
          el("button", { type: "button", class: "danger", "aria-label": "Delete collection " + c.name,
            onclick: () => remove(c) }, "Delete")));
    }));
  }

  async function remove(c) {
    const docs = c.documents ? " and its " + c.documents + " documents" : "";
    const ok = await confirmDanger("Delete " + c.name + "?",
      "This deletes the collection " + c.name + docs + " (every chunk in the store). It cannot be undone.",
      "Delete collection");
    if (!ok) return;
    try {
      await api("DELETE", "/v1/collections/" + seg(c.name));
      notify("Deleted " + c.name + ".");
    } catch (err) {
      notify("Could not delete " + c.name + ": " + err.message, "error");
    }
    load();
  }

  async function loadModels() {
    const emb = document.getElementById("c-embedding");
    const rer = document.getElementById("c-rerank");
    let ids = [];
    if (Sieve.openMode || Sieve.apiKey()) {
      try {
        ids = (await api("GET", "/v1/models")).data.map((m) => m.id);
      } catch (err) {
        notify("The model hub did not list its models: " + err.message, "error");
      }
    }
    const fill = (select, fallback, blankLabel) => {
      const opts = [];
      if (blankLabel) opts.push(el("option", { value: "" }, blankLabel));
      const all = ids.includes(fallback) || !fallback ? ids : [fallback, ...ids];
      for (const id of all) {
        opts.push(el("option", { value: id, selected: !blankLabel && id === fallback }, id));
      }
      select.replaceChildren(...opts);
    };
    fill(emb, Sieve.defaults.embedding, null);
    fill(rer, Sieve.defaults.rerank, "server default (" + Sieve.defaults.rerank + ")");
  }

  document.getElementById("create-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    const data = new FormData(form);
    const body = { name: data.get("name").trim(), hybrid: form.elements.hybrid.checked };
    if (data.get("embedding_model")) body.embedding_model = data.get("embedding_model");
    if (data.get("rerank_model")) body.rerank_model = data.get("rerank_model");
    if (data.get("min_score") !== "") body.min_score = Number(data.get("min_score"));
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await api("POST", "/v1/collections", body);
      notify("Created " + body.name + ".");
      form.elements.name.value = "";
      load();
    } catch (err) {
      notify("Could not create " + body.name + ": " + err.message, "error");
    } finally {
      button.disabled = false;
    }
  });

  onReady(() => { load(); loadModels(); });
})();
