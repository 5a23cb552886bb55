// Shared by every console page: the API key, calls to /v1, small DOM helpers, plain words.
"use strict";

const Sieve = (() => {
  const KEY = "sieve.apiKey";
  const body = document.body;
  const openMode = body.dataset.openMode === "true";

  function apiKey() {
    return openMode ? "" : sessionStorage.getItem(KEY) || "";
  }

  function authHeaders() {
    const key = apiKey();
    return key ? { Authorization: "Bearer " + key } : {};
  }

  // The API's one error body, {"error": {"code", "message", "request_id"}}, or FastAPI's 422.
  function errorText(status, data) {
    if (data && data.error && data.error.message) return data.error.message;
    if (data && Array.isArray(data.detail)) {
      return data.detail.map((d) => (d.loc || []).slice(1).join(".") + ": " + d.msg).join("; ");
    }
    if (status === 0) return "the API did not answer";
    return "HTTP " + status;
  }

  class ApiError extends Error {
    constructor(status, data) {
      super(errorText(status, data));
      this.status = status;
      this.code = data && data.error ? data.error.code : null;
    }
  }

  async function api(method, path, payload) {
    const init = { method, headers: { ...authHeaders() } };
    if (payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, null);
    }
    const text = await resp.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (err) { data = null; }
    }
    if (!resp.ok) {
      const error = new ApiError(resp.status, data);
      if (resp.status === 401) notify("The API refused the key: " + error.message, "error");
      throw error;
    }
    return data;
  }

  // An upload through XMLHttpRequest: fetch() cannot report upload progress.
  function upload(method, path, formData, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, path);
      const headers = authHeaders();
      for (const name of Object.keys(headers)) xhr.setRequestHeader(name, headers[name]);
      xhr.responseType = "text";
      xhr.upload.addEventListener("progress", (ev) => {
        if (ev.lengthComputable) onProgress(ev.loaded / ev.total);
      });
      xhr.addEventListener("load", () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (err) { data = null; }
        if (xhr.status >= 200 && xhr.status < 300) resolve(data);
        else reject(new ApiError(xhr.status, data));
      });
      xhr.addEventListener("error", () => reject(new ApiError(0, null)));
      xhr.send(formData);
    });
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "style") Object.assign(node.style, value); // CSSOM: the CSP allows it
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  let noticeTimer = null;
  function notify(message, kind) {
    const box = document.getElementById("notice");
    box.textContent = message;
    box.className = "notice " + (kind || "info");
    clearTimeout(noticeTimer);
    if (kind !== "error") noticeTimer = setTimeout(() => { box.textContent = ""; box.className = "notice"; }, 6000);
  }

  function confirmDanger(title, text, okLabel) {
    const dialog = document.getElementById("confirm-dialog");
    document.getElementById("confirm-title").textContent = title;
    document.getElementById("confirm-text").textContent = text;
    document.getElementById("confirm-ok").textContent = okLabel || "Delete";
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.returnValue = "";
      dialog.showModal();
    });
  }

  const FAILURES = {
    unsupported_type: "Sieve cannot read this kind of file.",
    corrupt_file: "The file is damaged or is not what its name says.",
    empty_document: "The file contains no text.",
    no_text_layer: "The PDF has no text layer and no page could be read by OCR.",
    too_large: "The file is over the size limit.",
    too_many_pages: "The document has more pages than allowed.",
    encoding_error: "The text is not in a readable encoding (expected UTF-8).",
    archive_too_large: "The archive unpacks to more than the allowed size.",
    archive_ratio_exceeded: "The archive expands suspiciously much (a possible zip bomb) and was refused.",
    archive_too_many_files: "The archive holds more files than allowed.",
    nested_archive: "Archives inside archives are not unpacked.",
    unsafe_path: "A name in the archive points outside it (../ or an absolute path).",
    invalid_record: "The JSON record is missing its text or is malformed.",
    duplicate_id: "Another document in the same upload has this id.",
    stalled: "Processing stopped repeatedly and Sieve gave up.",
    worker_crashed: "The worker processing it died repeatedly, so Sieve stopped retrying.",
    time_limit: "Processing took longer than the time limit.",
    internal_error: "Sieve hit an internal error while processing it.",
    upstream_unavailable: "The model hub did not answer, even after retries.",
    upstream_rejected: "The model hub refused the text.",
  };

  function failureText(reason, message) {
    const words = FAILURES[reason] || "It could not be indexed (" + (reason || "unknown reason") + ").";
    return message ? words + " Detail: " + message : words;
  }

  const RERANK = {
    ok: "Reranked",
    skipped: "Not reranked",
    failed: "Reranking failed: the results are in recall order",
    timeout: "Reranking took too long: the results are in recall order",
    circuit_open: "The reranker is paused after repeated failures: the results are in recall order",
  };

  function rerankText(report) {
    const head = RERANK[report.status] || "Rerank status: " + report.status;
    return head;
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) return "–";
    return Number(value).toFixed(digits === undefined ? 3 : digits);
  }

  function bytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + " KiB";
    return (n / 1024 / 1024).toFixed(1) + " MiB";
  }

  // One path segment, "/" included (the API decodes %2F for its {doc_id:path} routes): an id
  // like "../../victim" stays one segment and can never address another resource. A browser
  // collapses "." and ".." even as %2E, so an id of dots alone cannot be sent in a URL at all.
  function seg(value) {
    if (value === "" || value === "." || value === "..") {
      throw new Error("the id " + JSON.stringify(value) + " cannot be addressed in a URL");
    }
    return encodeURIComponent(value);
  }

  function wireKeyForm() {
    const form = document.getElementById("key-form");
    const input = document.getElementById("api-key");
    if (!input) return;
    input.value = apiKey();
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(KEY, input.value.trim());
      notify("Key saved for this tab.");
      document.dispatchEvent(new CustomEvent("sieve:key"));
    });
    document.getElementById("forget-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      input.value = "";
      notify("Key forgotten.");
    });
  }

  wireKeyForm();

  return {
    api, upload, el, notify, confirmDanger, failureText, rerankText, fmt, bytes, seg,
    apiKey, authHeaders, openMode, collection: body.dataset.collection,
    defaults: {
      embedding: body.dataset.defaultEmbeddingModel,
      rerank: body.dataset.defaultRerankModel,
    },
    ApiError,
  };
})();

// Every page reloads its data when a key is entered.
function onReady(load) {
  document.addEventListener("sieve:key", load);
  load();
}
