// One collection's backup: a snapshot job with its progress, then the bundle as a download.
"use strict";

(() => {
  const { api, el, notify, seg, bytes } = Sieve;
  const button = document.getElementById("backup-start");
  const status = document.getElementById("backup-status");
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function backup() {
    button.disabled = true;
    try {
      let snap = await api("POST", "/v1/collections/" + seg(Sieve.collection) + "/snapshot");
      const started = Date.now();
      while (snap.state === "running") {
        status.textContent = "Taking the snapshot… " + Math.round((Date.now() - started) / 1000) + " s";
        await sleep(500);
        snap = await api("GET", "/v1/snapshots/" + seg(snap.id));
      }
      if (snap.state !== "completed") {
        throw new Error("The snapshot failed: " + (snap.error ? snap.error.message : "no reason given"));
      }
      status.textContent = "Downloading " + bytes(snap.bytes) + "…";
      // The key goes in a header, never in a URL: fetch the bundle, then hand it to the browser.
      const resp = await fetch(snap.file, { headers: Sieve.authHeaders() });
      if (!resp.ok) throw new Error("The download failed: HTTP " + resp.status);
      const url = URL.createObjectURL(await resp.blob());
      const link = el("a", { href: url, download: Sieve.collection + ".sieve", hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      const count = (n, word) => n + " " + word + (n === 1 ? "" : "s");
      status.textContent = "Backup downloaded: " + count(snap.documents, "document") + ", " +
        count(snap.chunks, "chunk") + ", " + bytes(snap.bytes) +
        ". Restore it anywhere with sieve restore FILE.";
    } catch (err) {
      status.textContent = "";
      notify(err.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  button.addEventListener("click", backup);
})();
