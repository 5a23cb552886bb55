// The query playground: every stage's score, the cutoff, the rerank status, stage timings.
"use strict";

(() => {
  const { api, el, notify, fmt, seg } = Sieve;
  const name = Sieve.collection;
  const path = "/v1/collections/" + seg(name) + "/query";
  const form = document.getElementById("query-form");
  const results = document.getElementById("results");
  const outcome = document.getElementById("outcome");
  const curlButton = document.getElementById("copy-curl");
  const curlText = document.getElementById("curl-text");
  let lastBody = null;

  function requestBody() {
    const body = { query: document.getElementById("q-text").value };
    for (const [id, key] of [["q-top-k", "top_k"], ["q-top-n", "top_n"]]) {
      const v = document.getElementById(id).value;
      if (v !== "") body[key] = parseInt(v, 10);
    }
    const min = document.getElementById("q-min-score").value;
    if (min !== "") body.min_score = Number(min);
    body.mode = document.getElementById("q-mode").value;
    body.rerank = document.getElementById("q-rerank").checked;
    const final = document.getElementById("q-final").value;
    if (final) body.final = final;
    return body;
  }

  function shellQuote(text) {
    return "'" + text.replace(/'/g, "'\\''") + "'";
  }

  function curlFor(body) {
    const parts = ["curl -s " + shellQuote(location.origin + path),
      "-H 'content-type: application/json'"];
    if (!Sieve.openMode) parts.push('-H "Authorization: Bearer $SIEVE_API_KEY"');
    parts.push("-d " + shellQuote(JSON.stringify(body)));
    return parts.join(" \\\n  ");
  }

  function bar(label, value, width, opts) {
    const track = el("span", { class: "track" },
      el("span", { class: "fill fill-" + label, style: { width: (Math.max(0, Math.min(1, width)) * 100).toFixed(1) + "%" } }));
    if (opts && opts.cutoff !== null && opts.cutoff !== undefined) {
      track.append(el("span", { class: "cutoff", title: "min_score " + opts.cutoff,
        style: { left: (opts.cutoff * 100).toFixed(1) + "%" } }));
    }
    const shown = value === null || value === undefined ? "not scored" : fmt(value, label === "sparse" ? 2 : 4);
    return el("div", { class: "score-row", "data-stage": label },
      el("span", { class: "score-label" }, label), track, el("span", { class: "score-value" }, shown));
  }

  const maxOf = (hits, key) => Math.max(0, ...hits.map((h) => h.scores[key] || 0)) || 1;

  function renderResults(out) {
    const hits = out.results;
    const reranked = out.rerank.status === "ok";
    const cutoff = reranked ? out.rerank.min_score : null;
    const max = { sparse: maxOf(hits, "sparse"), fused: maxOf(hits, "fused"), final: maxOf(hits, "final") };
    const finalAbsolute = reranked && out.rerank.final === "rerank";
    if (!hits.length) {
      results.replaceChildren(el("li", { class: "muted empty" },
        "No results" + (out.rerank.dropped_by_cutoff ? ": every candidate fell below the cutoff." : ".")));
      return;
    }
    results.replaceChildren(...hits.map((h) => {
      const s = h.scores;
      const where = [h.source || h.document_id];
      if (h.page !== null) where.push("page " + h.page);
      where.push("chars " + h.char_start + "–" + h.char_end);
      return el("li", { class: "hit", "data-rank": h.rank },
        el("div", { class: "hit-head" },
          el("span", { class: "rank" }, "#" + h.rank),
          el("strong", { class: "hit-title" }, h.title || h.document_id),
          el("span", { class: "provenance muted" }, where.join(" · ")),
          el("span", { class: "muted small" }, "document " + h.document_id + (h.collection !== name ? " in " + h.collection : ""))),
        el("div", { class: "hit-body" },
          el("p", { class: "hit-text" }, h.text),
          el("div", { class: "scores", role: "group", "aria-label": "Scores of result " + h.rank },
            bar("dense", s.dense, s.dense || 0),
            bar("sparse", s.sparse, (s.sparse || 0) / max.sparse),
            bar("fused", s.fused, (s.fused || 0) / max.fused),
            bar("rerank", s.rerank, s.rerank || 0, { cutoff }),
            bar("final", s.final, finalAbsolute ? s.final : s.final / max.final, { cutoff: finalAbsolute ? cutoff : null }))));
    }));
  }

  function renderRerank(out) {
    const r = out.rerank;
    const box = document.getElementById("rerank-status");
    box.dataset.status = r.status;
    const lines = [el("p", { class: "rerank-head" }, el("strong", { id: "rerank-words" }, Sieve.rerankText(r)),
      r.model ? el("span", { class: "muted" }, " by " + r.model) : null)];
    if (r.reason) lines.push(el("p", { id: "rerank-reason" }, "Why: " + r.reason));
    lines.push(el("dl", { class: "facts" },
      el("dt", {}, "status"), el("dd", {}, el("code", {}, r.status)),
      el("dt", {}, "candidates"), el("dd", {}, r.candidates),
      el("dt", {}, "min_score"), el("dd", {}, r.min_score === null ? "none" : fmt(r.min_score, 2)),
      el("dt", {}, "dropped by cutoff"), el("dd", { id: "dropped" }, r.dropped_by_cutoff),
      el("dt", {}, "final policy"), el("dd", {}, r.final),
      el("dt", {}, "returned"), el("dd", {}, out.results.length)));
    box.replaceChildren(...lines);
  }

  function renderTimings(t) {
    const total = t.total || 1;
    let start = 0;
    const rows = ["embed", "recall", "rerank"].map((stage) => {
      const ms = t[stage] || 0;
      const row = el("div", { class: "wf-row", "data-stage": stage },
        el("span", { class: "wf-label" }, stage),
        el("span", { class: "track" }, el("span", { class: "wf-seg wf-" + stage, style: {
          left: (start / total * 100).toFixed(2) + "%", width: Math.max(0.5, ms / total * 100).toFixed(2) + "%" } })),
        el("span", { class: "wf-value" }, fmt(ms, 1)));
      start += ms;
      return row;
    });
    rows.push(el("div", { class: "wf-row", "data-stage": "total" }, el("span", { class: "wf-label" }, "total"),
      el("span", { class: "track" }, el("span", { class: "wf-seg wf-total", style: { left: "0%", width: "100%" } })),
      el("span", { class: "wf-value" }, fmt(t.total, 1))));
    document.getElementById("waterfall").replaceChildren(...rows);
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = requestBody();
    lastBody = body;
    curlButton.disabled = false;
    curlText.value = curlFor(body);
    const run = document.getElementById("q-run");
    run.disabled = true;
    run.textContent = "Searching…";
    try {
      const out = await api("POST", path, body);
      renderRerank(out);
      renderTimings(out.timings_ms);
      renderResults(out);
      outcome.hidden = false;
    } catch (err) {
      notify("The query failed: " + err.message, "error");
    } finally {
      run.disabled = false;
      run.textContent = "Search";
    }
  });

  curlButton.addEventListener("click", async () => {
    if (!lastBody) return;
    const text = curlFor(lastBody);
    curlText.value = text;
    curlText.hidden = false;
    const status = document.getElementById("copy-status");
    try {
      await navigator.clipboard.writeText(text);
      status.textContent = "Copied to the clipboard.";
    } catch (err) {
      curlText.focus();
      curlText.select();
      status.textContent = "Select the command below and copy it.";
    }
  });

  onReady(() => {
    if (!Sieve.openMode && !Sieve.apiKey()) notify("Enter your API key above to run queries.");
  });
})();
