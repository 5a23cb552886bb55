// The last `sieve eval` report: quality per stage, latency, and the min_score sweep as a chart.
"use strict";

(() => {
  const { api, el, fmt, seg } = Sieve;
  const NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }

  function chart(rows) {
    const W = 640, H = 260, L = 56, R = 16, T = 16, B = 40;
    const maxY = Math.max(1, ...rows.map((r) => r.kept));
    const x = (i) => L + (rows.length > 1 ? i / (rows.length - 1) : 0) * (W - L - R);
    const y = (v) => T + (1 - v / maxY) * (H - T - B);
    const line = (key, cls) => svg("polyline", { class: cls, fill: "none",
      points: rows.map((r, i) => x(i).toFixed(1) + "," + y(r[key]).toFixed(1)).join(" ") });
    const g = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": "Results kept and relevant results kept for each min_score" });
    for (const frac of [0, 0.5, 1]) {
      const v = Math.round(maxY * frac);
      g.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
        svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" }, v));
    }
    rows.forEach((r, i) => g.append(svg("text", { x: x(i), y: H - B + 18, "text-anchor": "middle" }, r.min_score)));
    g.append(svg("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle" }, "min_score"));
    g.append(line("kept", "series-kept"), line("relevant_kept", "series-relevant"));
    rows.forEach((r, i) => g.append(
      svg("circle", { class: "series-kept", cx: x(i), cy: y(r.kept), r: 3 }),
      svg("circle", { class: "series-relevant", cx: x(i), cy: y(r.relevant_kept), r: 3 })));
    const legend = el("p", { class: "chart-legend small" },
      el("span", { class: "key key-kept" }), " results kept  ",
      el("span", { class: "key key-relevant" }), " relevant results kept");
    return [g, legend];
  }

  function fill(id, rows) {
    document.querySelector("#" + id + " tbody").replaceChildren(...rows.map((cells) =>
      el("tr", {}, el("th", { scope: "row" }, cells[0]), cells.slice(1).map((c) => el("td", { class: "num" }, c)))));
  }

  async function load() {
    if (!Sieve.openMode && !Sieve.apiKey()) {
      Sieve.notify("Enter your API key above to see the report.");
      return;
    }
    let report;
    try {
      report = await api("GET", "/v1/collections/" + seg(Sieve.collection) + "/evaluation");
    } catch (err) {
      if (err.status === 404) { document.getElementById("eval-empty").hidden = false; return; }
      Sieve.notify("Could not read the report: " + err.message, "error");
      return;
    }
    const when = report.saved_at ? new Date(report.saved_at * 1000).toLocaleString() : "unknown time";
    document.getElementById("eval-meta").textContent = report.queries + " queries, " +
      fmt(report.seconds, 0) + " s, saved " + when + "; rerank statuses: " +
      Object.entries(report.rerank_statuses).map(([k, v]) => k + " " + v).join(", ");
    fill("metrics-table", Object.entries(report.metrics).map(([config, m]) =>
      [config, fmt(m["ndcg@10"], 4), fmt(m["recall@100"], 4), fmt(m["mrr@10"], 4)]));
    fill("latency-table", Object.entries(report.latency_ms).map(([stage, v]) =>
      [stage, fmt(v.p50, 1), fmt(v.p95, 1)]));
    fill("sweep-table", report.min_score_sweep.map((r) => [fmt(r.min_score, 2), r.kept, r.relevant_kept]));
    document.getElementById("sweep-chart").replaceChildren(...chart(report.min_score_sweep));
    document.getElementById("eval-notes").replaceChildren(...report.notes.map((n) => el("li", {}, n)));
    document.getElementById("eval-report").hidden = false;
  }

  onReady(load);
})();
