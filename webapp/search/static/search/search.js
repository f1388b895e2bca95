// Search without a page reload: drop, paste or pick a photo; the grid is filled from the JSON API.
(function () {
  const form = document.getElementById("search-form");
  if (!form) return;
  const input = document.getElementById("photo-input");
  const status = document.getElementById("search-status");
  const results = document.getElementById("results");
  const preview = document.getElementById("query-preview");

  function card(hit) {
    const link = document.createElement("a");
    link.className = "card result";
    link.href = hit.page_url;
    const img = document.createElement("img");
    img.src = hit.thumbnail_url;
    img.alt = "result " + hit.rank;
    img.loading = "lazy";
    const local = hit.local_score === null ? "no local evidence" : "local " + hit.local_score.toFixed(3);
    const inliers = hit.inliers === null ? "" : ` · ${hit.inliers} inliers`;
    const parts = [
      ["rank", "#" + hit.rank + (hit.global_rank !== hit.rank ? ` (global #${hit.global_rank})` : "")],
      ["landmark", hit.landmark ? hit.landmark.name : "unlabelled"],
      ["score", "score " + hit.score.toFixed(3)],
      ["components", `global ${hit.global_score.toFixed(3)} · ${local}${inliers}`],
    ];
    link.appendChild(img);
    for (const [cls, text] of parts) {
      const span = document.createElement("span");
      span.className = cls;
      span.textContent = text;
      link.appendChild(span);
    }
    return link;
  }

  async function search(file) {
    if (!file) return;
    preview.replaceChildren();
    const thumb = document.createElement("img");
    thumb.src = URL.createObjectURL(file);
    thumb.alt = "your photo";
    preview.appendChild(thumb);
    status.textContent = "Searching…";
    results.replaceChildren();
    const body = new FormData();
    body.append("image", file, file.name || "pasted.png");
    try {
      const reply = await fetch(form.dataset.api, { method: "POST", body: body });
      const data = await reply.json();
      if (!reply.ok) {
        status.innerHTML = "";
        const span = document.createElement("span");
        span.className = "error";
        span.textContent = data.error || "The search failed.";
        status.appendChild(span);
        return;
      }
      const rerank = data.rerank.method === "none" ? "global ranking"
        : `re-ranked with ${data.rerank.method}, v = ${data.rerank.weight_global.toFixed(2)}`;
      status.textContent = data.results.length
        ? `Top ${data.results.length} in ${Math.round(data.timings_ms.total)} ms (${rerank})`
        : "The collection has no indexed images yet.";
      results.replaceChildren(...data.results.map(card));
    } catch (error) {
      status.textContent = "The server could not be reached: " + error;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search(input.files[0]);
  });
  input.addEventListener("change", () => search(input.files[0]));
  for (const name of ["dragenter", "dragover"]) {
    form.addEventListener(name, (event) => { event.preventDefault(); form.classList.add("hover"); });
  }
  form.addEventListener("dragleave", () => form.classList.remove("hover"));
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    form.classList.remove("hover");
    search(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const item = [...event.clipboardData.items].find((i) => i.kind === "file");
    if (item) search(item.getAsFile());
  });
})();
