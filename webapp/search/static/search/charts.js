// Live training curves: polls the run's JSON and draws loss per step and validation mAP per epoch as SVG.
(function () {
  const box = document.getElementById("training");
  if (!box) return;
  const NS = "http://www.w3.org/2000/svg";

  function draw(svg, points, colour, yMin, yMax) {
    svg.replaceChildren();
    if (!points.length) return;
    const xs = points.map((p) => p[0]);
    const xMin = Math.min(...xs), xMax = Math.max(...xs, xMin + 1);
    const lo = yMin ?? Math.min(...points.map((p) => p[1]));
    const hi = yMax ?? Math.max(...points.map((p) => p[1]), lo + 1e-6);
    const x = (v) => 40 + (550 * (v - xMin)) / (xMax - xMin);
    const y = (v) => 175 - (165 * (v - lo)) / (hi - lo || 1);
    const line = document.createElementNS(NS, "polyline");
    line.setAttribute("points", points.map((p) => `${x(p[0])},${y(p[1])}`).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", colour);
    line.setAttribute("stroke-width", "2");
    svg.appendChild(line);
    const labels = [
      [0, y(hi) + 4, hi.toFixed(3)],
      [0, y(lo) + 4, lo.toFixed(3)],
      [x(xMin) - 4, 198, String(xMin)],
      [x(xMax) - 12, 198, String(xMax)],
    ];
    for (const [left, top, label] of labels) {
      const text = document.createElementNS(NS, "text");
      text.setAttribute("x", String(left));
      text.setAttribute("y", String(top));
      text.setAttribute("font-size", "11");
      text.textContent = label;
      svg.appendChild(text);
    }
  }

  async function tick() {
    const run = await (await fetch(box.dataset.url)).json();
    document.getElementById("training-status").textContent =
      `${run.status} · epoch ${run.epoch} · step ${run.step}/${run.total_steps}` +
      (run.images_per_s ? ` · ${run.images_per_s.toFixed(1)} img/s` : "");
    const bar = document.getElementById("training-bar");
    bar.max = run.total_steps || 1;
    bar.value = run.step;
    draw(document.getElementById("loss-chart"), run.losses, "#2f6fed");
    const maps = run.epochs.filter((e) => e.validation_map !== null).map((e) => [e.epoch, e.validation_map]);
    if (run.initial_map !== null) maps.unshift([0, run.initial_map]);
    draw(document.getElementById("map-chart"), maps, "#067647", 0, 1);
    if (run.status === "queued" || run.status === "running") setTimeout(tick, 2000);
    else if (box.dataset.finished === "0") location.reload();  // show the result, drop the cancel button
  }
  tick().catch(() => {});
})();
