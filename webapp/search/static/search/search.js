// Search without a page reload: drop, paste or pick a photo; the grid is filled from the JSON API.
(function () {
  const form = document.getElementById("search-form");
  if (!form) return;
  const input = document.getElementById("photo-input");
  const status = document.getElementById("search-status");
  const results = document.getElementById("results");
  const preview = document.getElementById("query-preview");
  const prediction = document.getElementById("prediction");
  const map = document.getElementById("results-map");
  const FILTERS = ["landmark", "taken_after", "taken_before", "lat", "lon", "radius_m"];

  function showPrediction(data) {
    const p = data.prediction;
    prediction.replaceChildren();
    if (p.recognised) {
      const name = document.createElement("strong");
      name.textContent = p.landmark.name;
      prediction.append("This is ", name, ` (${p.confidence.toFixed(2)})`);
    } else {
      const guess = p.evidence.best_guess;
      prediction.textContent = "Not in the collection"
        + (guess ? ` (closest: ${guess.name}, ${p.confidence.toFixed(2)})` : "");
    }
  }

  // The same offline map as the image page (webapp/catalog/maps.py): equirectangular around the points,
  // a degree graticule, no tiles, nothing fetched.
  function positionMap(data) {
    const points = data.results.filter((hit) => hit.position)
      .map((hit) => ({ lat: hit.position.latitude, lon: hit.position.longitude, label: `#${hit.rank}`, kind: "result" }));
    if (data.query.position) {
      points.push({ lat: data.query.position.latitude, lon: data.query.position.longitude, label: "your photo", kind: "query" });
    }
    map.replaceChildren();
    if (!points.length) return;
    const ns = "http://www.w3.org/2000/svg", width = 320, height = 200;
    const lats = points.map((p) => p.lat), lons = points.map((p) => p.lon);
    const span = Math.max(Math.max(...lats) - Math.min(...lats), Math.max(...lons) - Math.min(...lons), 0.01) * 1.3;
    const midLat = (Math.max(...lats) + Math.min(...lats)) / 2, midLon = (Math.max(...lons) + Math.min(...lons)) / 2;
    const scale = Math.min(width, height) / span;
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "position-map");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "where the photos were taken");
    const background = document.createElementNS(ns, "rect");
    background.setAttribute("width", width);
    background.setAttribute("height", height);
    background.setAttribute("fill", "#eef3f7");
    svg.appendChild(background);
    points.sort((a, b) => (a.kind === "query") - (b.kind === "query"));
    for (const p of points) {
      const dot = document.createElementNS(ns, "circle");
      dot.setAttribute("class", "map-" + p.kind);
      dot.setAttribute("cx", (width / 2 + (p.lon - midLon) * scale).toFixed(1));
      dot.setAttribute("cy", (height / 2 - (p.lat - midLat) * scale).toFixed(1));
      dot.setAttribute("r", p.kind === "query" ? 7 : 5);
      dot.setAttribute("fill", p.kind === "query" ? "#d62728" : "#1f77b4");
      dot.setAttribute("stroke", "white");
      const title = document.createElementNS(ns, "title");
      title.textContent = `${p.label} (${p.lat.toFixed(5)}, ${p.lon.toFixed(5)})`;
      dot.appendChild(title);
      svg.appendChild(dot);
    }
    map.appendChild(svg);
  }

  const rendered = document.getElementById("search-response");
  if (rendered) positionMap(JSON.parse(rendered.textContent));

  function card(hit) {
    const link = document.createElement("a");
    link.className = "card result";
    link.href = hit.page_url;
    const img = document.createElement("img");
    img.src = hit.thumbnail_url;
    img.alt = "result " + hit.rank;
    img.loading = "lazy";
    const local = hit.local_score === null ? "no local evidence" : "local " + hit.local_score.toFixed(3);
    const inliers = (hit.inliers === null ? "" : ` · ${hit.inliers} inliers`) +
      (hit.matched_via ? ` · matched through image ${hit.matched_via}` : "");
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
    for (const name of FILTERS) {
      const value = form.elements[name] ? form.elements[name].value.trim() : "";
      if (value) body.append(name, value);
    }
    prediction.replaceChildren();
    map.replaceChildren();
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
      showPrediction(data);
      positionMap(data);
    } catch (error) {
      status.textContent = "The server could not be reached: " + error;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search(input.files[0]);
  });
  input.addEventListener("change", () => search(input.files[0]));
  for (const name of FILTERS) {  // a changed filter searches the chosen photo again
    if (form.elements[name]) form.elements[name].addEventListener("change", () => search(input.files[0]));
  }
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
