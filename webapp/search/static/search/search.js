// Search without a page reload: drop, paste or pick a photo; the grid is filled from the JSON API.
(function () {
  const form = document.getElementById("search-form");
  if (!form) return;
  const input = document.getElementById("photo-input");
  const status = document.getElementById("search-status");
  const results = document.getElementById("results");
  const preview = document.getElementById("query-preview");
  const prediction = document.getElementById("prediction");
  const locationLine = document.getElementById("location");
  const map = document.getElementById("results-map");
  const FILTERS = ["landmark", "taken_after", "taken_before", "lat", "lon", "radius_m"];

  // The answer: the landmark when one is recognised; otherwise, never "not in the collection" while a
  // verified match is shown (a collection without landmark names still finds the same place); and where
  // the photo was taken when the collection has positions. The server renders the same words
  // (templates/search/search.html).
  function showPrediction(data) {
    const p = data.prediction;
    prediction.replaceChildren();
    const verified = data.results.filter((hit) => hit.inliers !== null && hit.inliers >= data.rerank.min_inliers);
    if (p.recognised) {
      const name = document.createElement("strong");
      name.textContent = p.landmark.name;
      prediction.append("This is ", name, ` (${p.confidence.toFixed(2)})`);
    } else if (verified.length) {
      const best = Math.max(...verified.map((hit) => hit.inliers));
      const found = document.createElement("strong");
      found.textContent = `${verified.length} verified match${verified.length === 1 ? "" : "es"}`;
      prediction.append("Found in the collection: ", found, ` (best: ${best} inliers)`);
    } else {
      const guess = p.evidence.best_guess;
      prediction.textContent = "Not in the collection"
        + (guess ? ` (closest: ${guess.name}, ${p.confidence.toFixed(2)})` : "");
    }
    locationLine.replaceChildren();
    const loc = data.location;
    if (loc) {
      const place = document.createElement("strong");
      place.textContent = `${loc.latitude.toFixed(5)}, ${loc.longitude.toFixed(5)}`;
      const n = loc.supporting_image_ids.length;
      locationLine.append(
        "Taken near ", place,
        ` (within ${Math.round(loc.radius_m)} m, confidence ${loc.confidence.toFixed(2)}; ` +
        `from ${n} match${n === 1 ? "" : "es"}, ${METHODS[loc.method]})`,
      );
    } else if (data.location_reason) {
      locationLine.textContent = "No location: " + data.location_reason;
    }
  }
  const METHODS = {
    verified_group: "verified",
    agreeing_matches: "close matches that agree, none verified",
    first_result: "the first result's position",
    best_match: "the most similar match's position",
  };

  // The same offline map as the image page (webapp/catalog/maps.py): positions in metres around their
  // centre, a grid and a scale bar in metres, the estimated location as a circle of its radius; no tiles.
  // Its context comes from the collection itself (webapp/catalog/photo_positions.py): where its photos were
  // taken as faint dots, their bounding area dashed, and, when the collection reaches beyond this map, an
  // overview of all of it with this map's area marked.
  function niceScale(span) {
    const target = Math.max(span / 4, 1), power = 10 ** Math.floor(Math.log10(target));
    return Math.max(...[1, 2, 5].map((step) => step * power).filter((m) => m <= target));
  }

  function positionMap(data) {
    const points = data.results.filter((hit) => hit.position)
      .map((hit) => ({ lat: hit.position.latitude, lon: hit.position.longitude, label: `#${hit.rank}`, kind: "result" }));
    if (data.query.position) {
      points.push({ lat: data.query.position.latitude, lon: data.query.position.longitude, label: "your photo", kind: "query" });
    }
    const area = data.location;
    map.replaceChildren();
    if (!points.length && !area) return;
    const width = 320, height = 200;
    const lats = points.map((p) => p.lat).concat(area ? [area.latitude] : []);
    const lons = points.map((p) => p.lon).concat(area ? [area.longitude] : []);
    const midLat = (Math.max(...lats) + Math.min(...lats)) / 2, midLon = (Math.max(...lons) + Math.min(...lons)) / 2;
    const east = perDegree * Math.cos(midLat * Math.PI / 180);
    const metres = (lat, lon) => [(lon - midLon) * east, (lat - midLat) * perDegree];
    const reach = Math.max(...lats.map((lat, i) => Math.max(...metres(lat, lons[i]).map(Math.abs))), area ? area.radius_m : 0);
    const span = Math.max(2 * reach * 1.3, 200);
    const scale = Math.min(width, height) / span;
    const xy = (lat, lon) => {
      const [x, y] = metres(lat, lon);
      return [width / 2 + x * scale, height / 2 - y * scale];
    };
    const svg = el("svg", { class: "position-map", width: width, height: height, viewBox: `0 0 ${width} ${height}`,
      role: "img", "aria-label": "where the photos were taken" });
    svg.appendChild(el("rect", { width: width, height: height, fill: "#eef3f7" }));
    const bar = niceScale(span), step = bar * scale;
    const grid = el("g", { stroke: "#c9d6e0", "stroke-width": 0.5 });
    for (let i = -Math.ceil(width / step); i <= Math.ceil(width / step); i++) {
      const x = (width / 2 + i * step).toFixed(1);
      grid.appendChild(el("line", { x1: x, y1: 0, x2: x, y2: height }));
    }
    for (let i = -Math.ceil(height / step); i <= Math.ceil(height / step); i++) {
      const y = (height / 2 + i * step).toFixed(1);
      grid.appendChild(el("line", { x1: 0, y1: y, x2: width, y2: y }));
    }
    svg.appendChild(grid);
    if (area) {
      const [x, y] = xy(area.latitude, area.longitude);
      svg.appendChild(titled(el("circle", { class: "map-location", cx: x.toFixed(1), cy: y.toFixed(1),
        r: Math.max(area.radius_m * scale, 3).toFixed(1), fill: "#ff7f0e", "fill-opacity": 0.25, stroke: "#ff7f0e",
        "stroke-width": 2 }), `estimated location (${area.latitude.toFixed(5)}, ${area.longitude.toFixed(5)}) ± ${Math.round(area.radius_m)} m`));
    }
    points.sort((a, b) => (a.kind === "query") - (b.kind === "query"));
    for (const p of points) {
      const [x, y] = xy(p.lat, p.lon);
      svg.appendChild(titled(el("circle", { class: "map-" + p.kind, cx: x.toFixed(1), cy: y.toFixed(1),
        r: p.kind === "query" ? 7 : 5, fill: p.kind === "query" ? "#d62728" : "#1f77b4", stroke: "white" }),
        `${p.label} (${p.lat.toFixed(5)}, ${p.lon.toFixed(5)})`));
    }
    const scaleBar = el("g", { class: "map-scale" });
    scaleBar.appendChild(el("line", { x1: 8, y1: height - 8, x2: (8 + step).toFixed(1), y2: height - 8, stroke: "#333",
      "stroke-width": 2 }));
    const label = el("text", { x: 8, y: height - 12, "font-size": 10, fill: "#333" });
    label.textContent = bar >= 1000 ? `${bar / 1000} km` : `${bar} m`;
    scaleBar.appendChild(label);
    svg.appendChild(scaleBar);
    map.appendChild(svg);
    const view = { xy, width, height, midLat, midLon, halfLat: height / 2 / scale / perDegree,
      halfLon: width / 2 / scale / east };
    collectionContext().then((context) => {
      if (context && context.positions.length && svg.isConnected) drawContext(svg, grid, view, context);
    });
  }

  let contextRequest = null;
  function collectionContext() {  // fetched once, when the first map is drawn; none if it fails
    if (!contextRequest) {
      contextRequest = !map.dataset.context ? Promise.resolve(null) : fetch(map.dataset.context)
        .then((reply) => (reply.ok ? reply.json() : null)).catch(() => null);
    }
    return contextRequest;
  }

  function drawContext(svg, grid, view, context) {
    const { xy, width, height } = view;
    const layer = el("g", { class: "map-context" });
    const b = context.bounds;
    const [x1, y1] = xy(b.north, b.west), [x2, y2] = xy(b.south, b.east);
    layer.appendChild(titled(el("rect", { class: "map-collection-area", x: x1.toFixed(1), y: y1.toFixed(1),
      width: Math.max(x2 - x1, 1).toFixed(1), height: Math.max(y2 - y1, 1).toFixed(1), fill: "none",
      stroke: "#7b8794", "stroke-width": 1, "stroke-dasharray": "4 3" }), "the area of the collection's photos"));
    for (const [lat, lon] of context.positions) {
      const [x, y] = xy(lat, lon);
      if (x < -2 || y < -2 || x > width + 2 || y > height + 2) continue;
      layer.appendChild(el("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 2, fill: "#52606d",
        "fill-opacity": 0.35 }));
    }
    grid.after(layer);  // under the estimate and the results
    const outside = b.south < view.midLat - view.halfLat || b.north > view.midLat + view.halfLat
      || b.west < view.midLon - view.halfLon || b.east > view.midLon + view.halfLon;
    if (outside) svg.insertBefore(overview(view, context), svg.lastChild);
    const legend = document.createElement("p");
    legend.className = "map-legend";
    const n = context.photos;
    legend.textContent = `Grey dots: where the collection's ${n} photo${n === 1 ? " with a position was" : "s with a position were"}`
      + ` taken${context.thinned ? " (a sample)" : ""}, dashed: their area`
      + (outside ? "; the inset shows all of them, this map's area in red." : ".");
    svg.after(legend);
  }

  // All of the collection in a corner, its positions in the same projection, this map's area as a red box.
  function overview(view, context) {
    const b = context.bounds, w = 80, h = 56, pad = 5, left = view.width - w - 4, top = 4;
    const midLat = (b.north + b.south) / 2, midLon = (b.east + b.west) / 2;
    const east = Math.cos(midLat * Math.PI / 180);
    const spanX = Math.max((b.east - b.west) * east, 1e-9), spanY = Math.max(b.north - b.south, 1e-9);
    const scale = Math.min((w - 2 * pad) / spanX, (h - 2 * pad) / spanY);
    const xy = (lat, lon) => [left + w / 2 + (lon - midLon) * east * scale, top + h / 2 - (lat - midLat) * scale];
    const inset = el("g", { class: "map-overview" });
    inset.appendChild(titled(el("rect", { x: left, y: top, width: w, height: h, fill: "white", "fill-opacity": 0.85,
      stroke: "#7b8794" }), "the whole collection"));
    for (const [lat, lon] of context.positions) {
      const [x, y] = xy(lat, lon);
      inset.appendChild(el("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 1, fill: "#52606d" }));
    }
    const [x1, y1] = xy(view.midLat + view.halfLat, view.midLon - view.halfLon);
    const [x2, y2] = xy(view.midLat - view.halfLat, view.midLon + view.halfLon);
    const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2, bw = Math.max(x2 - x1, 4), bh = Math.max(y2 - y1, 4);
    inset.appendChild(titled(el("rect", { class: "map-overview-view", x: (cx - bw / 2).toFixed(1),
      y: (cy - bh / 2).toFixed(1), width: bw.toFixed(1), height: bh.toFixed(1), fill: "none", stroke: "#d62728",
      "stroke-width": 1.5 }), "this map's area"));
    return inset;
  }

  const ns = "http://www.w3.org/2000/svg", perDegree = 111195;
  function el(name, attributes) {
    const node = document.createElementNS(ns, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    return node;
  }
  function titled(node, text) {
    const title = document.createElementNS(ns, "title");
    title.textContent = text;
    node.appendChild(title);
    return node;
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
    // A format this browser cannot show (HEIC in most): the file's name instead of a broken image.
    thumb.addEventListener("error", () => thumb.replaceWith(file.name || "your photo"));
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
    locationLine.replaceChildren();
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
