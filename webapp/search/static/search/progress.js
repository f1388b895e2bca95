// Refresh the indexing progress bars every 2 s while anything is still waiting.
(function () {
  const section = document.getElementById("indexing");
  if (!section) return;
  async function fetchProgress(ids) {
    const url = section.dataset.url + (ids ? "?ids=" + encodeURIComponent(ids) : "");
    const reply = await fetch(url);
    return reply.json();
  }
  async function tick() {
    const all = await fetchProgress("");
    document.getElementById("progress-text").textContent =
      `${all.indexed} indexed, ${all.pending} waiting, ${all.failed} failed, of ${all.total}`;
    document.getElementById("progress-bar").value = all.percent;
    document.getElementById("local-text").textContent = `re-ranking features for ${all.local_features}`;
    const mine = section.dataset.ids;
    if (mine) {
      const upload = await fetchProgress(mine);
      document.getElementById("upload-progress-text").textContent = `${upload.indexed} of ${upload.total} indexed`;
      document.getElementById("upload-progress-bar").value = upload.percent;
    }
    if (all.pending > 0 || all.local_features < all.indexed) setTimeout(tick, 2000);
  }
  tick().catch(() => {});
})();
