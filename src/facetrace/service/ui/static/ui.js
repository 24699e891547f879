// facetrace dashboard: enrolment one photo at a time (progress and an outcome per photo as it comes), and
// dropping photos onto a file field. Without JavaScript every form still works as a plain POST.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const drop of document.querySelectorAll("label.drop")) {
    const input = drop.querySelector("input[type=file]");
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault(); drop.classList.remove("over");
      if (e.dataTransfer && e.dataTransfer.files.length) { input.files = e.dataTransfer.files; }
    });
  }
  for (const form of document.querySelectorAll("form[data-enrol]")) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const files = Array.from(form.querySelector("input[type=file]").files);
      const list = form.parentElement.querySelector(".outcomes");
      const bar = form.querySelector("progress");
      const button = form.querySelector("button");
      button.disabled = true; bar.hidden = false; bar.max = files.length; bar.value = 0;
      for (const file of files) {
        const body = new FormData();
        body.append("csrf", form.elements.csrf.value);
        body.append("person", form.elements.person.value);
        body.append("photos", file, file.name);
        try {
          const answer = await fetch(form.action, { method: "POST", body, headers: { "X-Fragment": "1" } });
          const html = await answer.text();
          if (answer.ok) { list.insertAdjacentHTML("beforeend", html); }
          else {
            const li = document.createElement("li");
            li.className = "error";
            const doc = new DOMParser().parseFromString(html, "text/html");
            const why = doc.querySelector("[role=alert]");
            li.textContent = file.name + ": " + (why ? why.textContent : "refused (" + answer.status + ")");
            list.appendChild(li);
          }
        } catch (err) {
          const li = document.createElement("li"); li.className = "error";
          li.textContent = file.name + ": " + err; list.appendChild(li);
        }
        bar.value += 1;
      }
      button.disabled = false;
      const done = document.createElement("li");
      done.innerHTML = '<a href="">Reload to see the faces</a>';
      list.appendChild(done);
    });
  }
});
// Live view: a fresh annotated JPEG from the running pipeline every 400 ms (2.5 fps), and who is in it.
document.addEventListener("DOMContentLoaded", () => {
  const img = document.querySelector("img[data-live]");
  if (!img) { return; }
  const list = document.querySelector("ul.now");
  const status = document.querySelector("[data-status]");
  let busy = false;
  const tick = async () => {
    if (busy || document.hidden) { return; }
    busy = true;
    try {
      const answer = await fetch(img.dataset.live + "?t=" + Date.now(), { cache: "no-store" });
      if (answer.ok) {
        const url = URL.createObjectURL(await answer.blob());
        const old = img.src; img.src = url; if (old.startsWith("blob:")) { URL.revokeObjectURL(old); }
      }
      const now = await fetch(img.dataset.now, { cache: "no-store" });
      if (now.ok) {
        const data = await now.json();
        status.textContent = data.status.toLowerCase();
        list.replaceChildren(...(data.faces.length ? data.faces.map((f) => {
          const li = document.createElement("li");
          li.textContent = f.name ? `${f.name} (similarity ${f.similarity.toFixed(1)})` : `unknown face (track ${f.track})`;
          li.className = f.name ? "ok identified" : "small";
          return li;
        }) : [Object.assign(document.createElement("li"), { textContent: "nobody in view", className: "small" })]));
      }
    } catch (err) { /* the next tick tries again */ }
    busy = false;
  };
  setInterval(tick, 400);
  tick();
});
// Events: a server-sent-events subscription (re-opened when the camera filter changes), newest first.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-events]");
  if (!form) { return; }
  const list = document.querySelector("ul.events");
  const state = document.querySelector("[data-stream-state]");
  let source = null;
  const show = (type, data) => {
    const who = data.UserId || data.ExternalImageId || "";
    if (form.elements.identified.checked && !who) { return; }
    const wanted = form.elements.person.value.trim();
    if (wanted && who !== wanted) { return; }
    const li = document.createElement("li");
    if (data.Snapshot) {
      const img = document.createElement("img");
      img.src = "data:image/jpeg;base64," + data.Snapshot; img.alt = ""; li.appendChild(img);
    }
    const text = document.createElement("span");
    const when = new Date((data.WallTime || data.Timestamp || Date.now() / 1000) * 1000).toLocaleTimeString();
    text.textContent = `${when} · ${data.Camera || data.Processor} · ${type}` +
      (who ? ` · ${who} (similarity ${Number(data.Similarity).toFixed(1)})` : "");
    text.className = who ? "event-who" : "small";
    li.appendChild(text);
    list.prepend(li);
    while (list.children.length > 200) { list.lastChild.remove(); }
  };
  const open = () => {
    if (source) { source.close(); }
    const camera = form.elements.processor.value;
    source = new EventSource(form.dataset.events + (camera ? "?processor=" + encodeURIComponent(camera) : ""));
    source.onopen = () => { state.textContent = "connected: new events appear at the top"; };
    source.onerror = () => { state.textContent = "disconnected; retrying…"; };
    for (const type of ["TrackStarted", "TrackIdentified", "TrackEnded", "StreamStatus"]) {
      source.addEventListener(type, (e) => show(type, JSON.parse(e.data)));
    }
  };
  form.elements.processor.addEventListener("change", open);
  form.addEventListener("submit", (e) => e.preventDefault());
  open();
});
// Stored video: a job still running reloads itself; clicking an appearance plays the video from there.
document.addEventListener("DOMContentLoaded", () => {
  const job = document.querySelector("[data-job-state]");
  if (job && job.dataset.jobState === "IN_PROGRESS") { setTimeout(() => location.reload(), 1500); }
  const player = document.querySelector("video[data-player]");
  for (const button of document.querySelectorAll("[data-seek]")) {
    button.addEventListener("click", () => {
      if (!player) { return; }
      player.currentTime = Number(button.dataset.seek);
      player.play().catch(() => {});
      player.scrollIntoView({ block: "nearest" });
    });
  }
});
// Timelines: place each bar from its data attributes (the CSP allows no inline style attributes).
document.addEventListener("DOMContentLoaded", () => {
  for (const bar of document.querySelectorAll("[data-left][data-width]")) {
    bar.style.left = bar.dataset.left + "%";
    bar.style.width = bar.dataset.width + "%";
  }
});
