// One collection: uploads (per-file progress, then the job's live progress) and documents.
"use strict";

(() => {
  const { api, upload, el, notify, confirmDanger, failureText, bytes, seg } = Sieve;
  const name = Sieve.collection;
  const base = "/v1/collections/" + seg(name);
  const docPath = (id) => base + "/documents/" + seg(id);
  const ready = () => Sieve.openMode || Sieve.apiKey();

  // ------------------------------------------------------------ summary
  async function loadSummary() {
    const box = document.getElementById("collection-summary");
    if (!ready()) { box.textContent = "(enter your API key above)"; return; }
    try {
      const c = await api("GET", base);
      box.textContent = c.documents + " documents, " + c.chunks + " chunks · " + c.embedding_model +
        (c.hybrid ? " · hybrid" : " · dense only");
    } catch (err) {
      box.textContent = "(" + err.message + ")";
    }
  }

  // ------------------------------------------------------------ picking files
  function readAll(reader) {
    // readEntries answers in batches; an empty batch means the end.
    return new Promise((resolve, reject) => {
      const out = [];
      const next = () => reader.readEntries((batch) => {
        if (!batch.length) resolve(out);
        else { out.push(...batch); next(); }
      }, reject);
      next();
    });
  }

  async function walk(entry, into) {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      into.push({ file, path: entry.fullPath.replace(/^\//, "") });
    } else if (entry.isDirectory) {
      for (const child of await readAll(entry.createReader())) await walk(child, into);
    }
  }

  async function fromDrop(dataTransfer) {
    const items = Array.from(dataTransfer.items || []);
    const entries = items.map((it) => (it.webkitGetAsEntry ? it.webkitGetAsEntry() : null));
    if (entries.length && entries.every(Boolean)) {
      const out = [];
      for (const entry of entries) await walk(entry, out);
      return out;
    }
    return Array.from(dataTransfer.files).map((file) => ({ file, path: file.name }));
  }

  const fromInput = (input) => Array.from(input.files).map((file) => ({
    file, path: file.webkitRelativePath || file.name,
  }));

  // ------------------------------------------------------------ uploading
  const list = document.getElementById("upload-list");
  const queue = [];
  let active = 0;
  const PARALLEL = 2;

  function enqueue(picked) {
    if (!ready()) { notify("Enter your API key first.", "error"); return; }
    for (const { file, path } of picked) {
      const bar = el("progress", { max: 1, value: 0, "aria-label": "Upload of " + path });
      const status = el("span", { class: "upload-status" }, "waiting");
      const row = el("li", { class: "upload-row" },
        el("span", { class: "upload-name" }, path), el("span", { class: "muted" }, bytes(file.size)), bar, status);
      list.append(row);
      queue.push({ file, path, bar, status, row });
    }
    pump();
  }

  function pump() {
    while (active < PARALLEL && queue.length) {
      const item = queue.shift();
      active += 1;
      send(item).finally(() => { active -= 1; pump(); });
    }
  }

  async function send(item) {
    const form = new FormData();
    form.append("files", item.file, item.path);
    item.status.textContent = "uploading";
    try {
      const res = await upload("POST", base + "/documents", form, (f) => { item.bar.value = f; });
      item.bar.value = 1;
      describeAccepted(item, res);
      if (res.documents.length || Object.keys(res.failed).length) trackJob(res.job_id, item.path);
    } catch (err) {
      item.row.classList.add("failed");
      item.status.textContent = "refused: " + err.message;
    }
  }

  function describeAccepted(item, res) {
    const parts = [];
    if (res.documents.length) parts.push(res.documents.length + " queued");
    if (res.unchanged.length) parts.push(res.unchanged.length + " unchanged (skipped)");
    const failed = Object.entries(res.failed);
    if (failed.length) parts.push(failed.length + " refused");
    item.status.textContent = "uploaded: " + (parts.join(", ") || "nothing to do");
    if (failed.length) {
      item.row.append(el("ul", { class: "errors" }, failed.map(([doc, reason]) =>
        el("li", {}, el("strong", {}, doc + ": "), failureText(reason)))));
    }
  }

  // ------------------------------------------------------------ job progress
  const jobs = document.getElementById("jobs");
  const tracked = new Set();
  const ORDER = ["queued", "parsing", "embedding", "writing", "indexed", "failed", "cancelled",
    "superseded", "deleted"];
  const FINISHED = ["indexed", "failed", "cancelled", "superseded", "deleted"];

  function trackJob(jobId, label) {
    if (tracked.has(jobId)) return;
    tracked.add(jobId);
    const box = el("article", { class: "job", "data-job": jobId, "aria-label": "Job for " + label },
      el("h3", {}, "Job for " + label, " ", el("code", { class: "muted small" }, jobId)));
    const state = el("p", { class: "job-state" }, "queued");
    const bar = el("div", { class: "stack-bar", role: "img", "aria-label": "progress" });
    const counts = el("p", { class: "job-counts" });
    const errors = el("ul", { class: "errors" });
    box.append(state, bar, counts, errors);
    jobs.prepend(box);
    poll(jobId, { box, state, bar, counts, errors });
  }

  async function poll(jobId, ui) {
    let job;
    try {
      job = await api("GET", "/v1/jobs/" + seg(jobId));
    } catch (err) {
      ui.state.textContent = "could not read the job: " + err.message;
      return;
    }
    renderJob(job, ui);
    if (job.state === "queued" || job.state === "running") {
      setTimeout(() => poll(jobId, ui), 600);
    } else {
      loadSummary();
      loadDocs();
    }
  }

  function renderJob(job, ui) {
    const done = FINISHED.reduce((n, s) => n + (job.counts[s] || 0), 0);
    const words = {
      queued: "waiting for a worker", running: "indexing", completed: "done",
      completed_with_errors: "done, with failures", cancelled: "cancelled",
    };
    ui.state.textContent = (words[job.state] || job.state) + ": " + done + " of " + job.total + " documents finished";
    ui.box.dataset.state = job.state;
    ui.bar.setAttribute("aria-label", done + " of " + job.total + " documents finished");
    ui.bar.replaceChildren(...ORDER.filter((s) => job.counts[s]).map((s) =>
      el("span", { class: "seg status-" + s, style: { flexGrow: String(job.counts[s]) }, title: s + " " + job.counts[s] })));
    ui.counts.replaceChildren(...ORDER.filter((s) => job.counts[s]).map((s) =>
      el("span", { class: "chip status-" + s }, s + " " + job.counts[s])));
    ui.errors.replaceChildren(...Object.entries(job.errors || {}).map(([doc, e]) =>
      el("li", { class: "doc-error" }, el("strong", {}, doc + ": "), failureText(e.reason, e.message))));
  }

  // ------------------------------------------------------------ documents
  const tbody = document.querySelector("#docs-table tbody");
  const pageInfo = document.getElementById("doc-page");
  const view = { offset: 0, limit: 20, status: "", source: "" };

  async function fetchPage() {
    const q = (offset, limit) => base + "/documents?offset=" + offset + "&limit=" + limit +
      (view.status ? "&status=" + encodeURIComponent(view.status) : "");
    if (!view.source) {
      const page = await api("GET", q(view.offset, view.limit));
      return { docs: page.documents, total: page.total };
    }
    // The API filters by status only: for a source filter read every page and filter here
    // (up to 20,000 documents).
    const all = [];
    for (let offset = 0; ; offset += 1000) {
      const page = await api("GET", q(offset, 1000));
      all.push(...page.documents);
      if (offset + 1000 >= page.total || offset >= 20000) break;
    }
    const needle = view.source.toLowerCase();
    const hit = all.filter((d) => ((d.source || "") + "\n" + d.id).toLowerCase().includes(needle));
    return { docs: hit.slice(view.offset, view.offset + view.limit), total: hit.length };
  }

  async function loadDocs() {
    if (!ready()) {
      tbody.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "Enter your API key above.")));
      return;
    }
    let page;
    try {
      page = await fetchPage();
    } catch (err) {
      tbody.replaceChildren(el("tr", {}, el("td", { colspan: 8 }, "Could not list documents: " + err.message)));
      return;
    }
    if (!page.docs.length) {
      tbody.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No documents match.")));
    } else {
      tbody.replaceChildren(...page.docs.map(docRow));
    }
    const last = Math.min(view.offset + view.limit, page.total);
    pageInfo.textContent = page.total ? (view.offset + 1) + "–" + last + " of " + page.total : "";
    document.getElementById("doc-prev").disabled = view.offset === 0;
    document.getElementById("doc-next").disabled = last >= page.total;
  }

  function docRow(d) {
    return el("tr", { "data-document": d.id, "data-status": d.status },
      el("th", { scope: "row" }, d.title ? [d.id, el("br"), el("span", { class: "muted small" }, d.title)] : d.id),
      el("td", {}, d.source || "–"),
      el("td", {}, el("span", { class: "chip status-" + d.status }, d.status),
        d.version > 1 ? el("span", { class: "muted small" }, " v" + d.version) : null),
      el("td", { class: "num" }, d.chunk_count),
      el("td", { class: "num" }, d.pages === null ? "–" : d.pages),
      el("td", { class: "num" }, bytes(d.size)),
      el("td", { class: "doc-error" }, d.error ? failureText(d.error.reason, d.error.message) : ""),
      el("td", { class: "actions" },
        el("button", { type: "button", "aria-label": "Replace " + d.id, onclick: () => replace(d) }, "Replace"),
        el("button", { type: "button", class: "danger", "aria-label": "Delete " + d.id, onclick: () => removeDoc(d) }, "Delete")));
  }

  const replaceInput = document.getElementById("replace-input");
  let replacing = null;
  function replace(d) {
    replacing = d;
    replaceInput.value = "";
    replaceInput.click();
  }
  replaceInput.addEventListener("change", async () => {
    const d = replacing;
    const file = replaceInput.files[0];
    if (!d || !file) return;
    const form = new FormData();
    form.append("files", file, file.name);
    try {
      const res = await upload("PUT", docPath(d.id), form, () => {});
      notify("Replacing " + d.id + " with " + file.name + ".");
      trackJob(res.job_id, d.id + " (replace)");
    } catch (err) {
      notify("Could not replace " + d.id + ": " + err.message, "error");
    }
  });

  async function removeDoc(d) {
    let path;
    try {
      path = docPath(d.id);
    } catch (err) {
      notify("Could not delete " + d.id + ": " + err.message, "error");
      return;
    }
    const ok = await confirmDanger("Delete " + d.id + "?",
      "Every chunk of " + d.id + " leaves the store. It cannot be undone.", "Delete document");
    if (!ok) return;
    try {
      await api("DELETE", path);
      notify("Deleted " + d.id + ".");
    } catch (err) {
      notify("Could not delete " + d.id + ": " + err.message, "error");
    }
    loadDocs();
    loadSummary();
  }

  // ------------------------------------------------------------ wiring
  const zone = document.getElementById("drop-zone");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (ev) => { ev.preventDefault(); zone.classList.add("over"); });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (ev) => {
    ev.preventDefault();
    zone.classList.remove("over");
    enqueue(await fromDrop(ev.dataTransfer));
  });
  zone.addEventListener("keydown", (ev) => {
    if (ev.target === zone && (ev.key === "Enter" || ev.key === " ")) {
      ev.preventDefault();
      document.getElementById("file-input").click();
    }
  });
  for (const id of ["file-input", "folder-input"]) {
    const input = document.getElementById(id);
    input.addEventListener("change", () => { enqueue(fromInput(input)); input.value = ""; });
  }
  const folder = document.getElementById("folder-input");
  if (!("webkitdirectory" in folder)) {
    document.getElementById("folder-label").hidden = true;
  }
  document.getElementById("doc-filter").addEventListener("submit", (ev) => {
    ev.preventDefault();
    view.status = document.getElementById("f-status").value;
    view.source = document.getElementById("f-source").value.trim();
    view.offset = 0;
    loadDocs();
  });
  document.getElementById("doc-refresh").addEventListener("click", () => { loadDocs(); loadSummary(); });
  document.getElementById("doc-prev").addEventListener("click", () => {
    view.offset = Math.max(0, view.offset - view.limit); loadDocs();
  });
  document.getElementById("doc-next").addEventListener("click", () => {
    view.offset += view.limit; loadDocs();
  });

  onReady(() => { loadSummary(); loadDocs(); });
})();
