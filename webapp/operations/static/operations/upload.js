// The collection page's drop zone: every photo dropped (or chosen) is sent in a request of its own to the
// page's upload URL, so each file gets its own progress bar and its own answer. Two at a time.
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = document.getElementById("photos-input");
  const list = document.getElementById("upload-list");
  const zone = document.getElementById("drop-zone");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const PARALLEL = 2;

  function row(file) {
    const item = document.createElement("li");
    item.className = "upload-item";
    const name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    const status = document.createElement("span");
    status.className = "upload-status";
    status.textContent = "waiting";
    item.append(name, bar, status);
    list.append(item);
    return { item, bar, status };
  }

  function finish(view, ok, text) {
    view.item.classList.add(ok ? "done" : "failed");
    view.bar.value = ok ? 100 : view.bar.value;
    view.status.textContent = text;
  }

  function explain(xhr) {
    if (xhr.responseURL && xhr.responseURL.includes("/login/")) return "log in again to upload";
    try {
      const body = JSON.parse(xhr.responseText);
      return body.errors.map((e) => e.error).join("; ") || `HTTP ${xhr.status}`;
    } catch (_) {
      return xhr.responseText.slice(0, 200) || `HTTP ${xhr.status} (no answer)`;
    }
  }

  function send(file, view) {
    return new Promise((resolve) => {
      const data = new FormData();
      data.append("photos", file);
      data.append("landmark", form.elements.landmark.value);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", form.action || window.location.pathname);
      xhr.setRequestHeader("X-CSRFToken", csrf);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) view.bar.value = Math.round((100 * event.loaded) / event.total);
        view.status.textContent = "uploading";
      };
      xhr.onload = () => {
        const ok = xhr.status === 201 && !xhr.responseURL.includes("/login/");
        finish(view, ok, ok ? "added, being indexed" : "failed: " + explain(xhr));
        resolve(ok);
      };
      xhr.onerror = () => {
        finish(view, false, "failed: the server could not be reached");
        resolve(false);
      };
      xhr.send(data);
    });
  }

  async function uploadAll(files) {
    const queue = Array.from(files).map((file) => ({ file, view: row(file) }));
    const summary = document.getElementById("upload-summary");
    let added = 0;
    async function lane() {
      for (let next = queue.shift(); next; next = queue.shift()) {
        if (await send(next.file, next.view)) added += 1;
      }
    }
    const total = queue.length;
    await Promise.all(Array.from({ length: PARALLEL }, lane));
    summary.textContent = `${added} of ${total} photo(s) added.`;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (input.files.length) uploadAll(input.files);
    input.value = "";
  });
  input.addEventListener("change", () => {
    if (input.files.length) uploadAll(input.files);
    input.value = "";
  });
  ["dragenter", "dragover"].forEach((type) =>
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("hover");
    })
  );
  ["dragleave", "drop"].forEach((type) =>
    zone.addEventListener(type, () => zone.classList.remove("hover"))
  );
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) uploadAll(event.dataTransfer.files);
  });
})();
