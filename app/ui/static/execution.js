// The execution page: the DAG (laid out by dagre in layout-worker.js), kept live by the
// execution's own stream.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const TERMINAL = ["execution.completed", "execution.failed", "execution.cancelled"];
  const STEP_STATUS = {
    "step.started": "running", "step.completed": "completed", "step.failed": "failed",
    "step.retrying": "running", "step.skipped": "skipped", "step.waiting": "waiting",
  };

  function el(name, attrs) {
    const node = document.createElementNS(SVG, name);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    return node;
  }

  // Statuses seen on the stream, so a graph drawn after they arrived shows them too.
  const known = {};

  function drawDag(host, data) {
    const byId = {};
    for (const n of data.nodes) byId[n.id] = n;
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = "Laying out " + data.nodes.length + " steps…";
    host.appendChild(note);
    const worker = new Worker("/ui/static/layout-worker.js");
    worker.onmessage = (message) => {
      worker.terminate();
      const layout = message.data;
      const svg = el("svg", { width: layout.width, height: layout.height, role: "presentation" });
      const defs = el("defs", {});
      const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" });
      marker.appendChild(el("path", { d: "M0,0 L10,5 L0,10 z", fill: "currentColor" }));
      defs.appendChild(marker);
      svg.appendChild(defs);
      for (const points of layout.edges) {
        const line = points.map((p) => p.x + "," + p.y).join(" ");
        svg.appendChild(el("polyline", { class: "edge", points: line, "marker-end": "url(#arrow)" }));
      }
      for (const box of layout.nodes) {
        const n = byId[box.id];
        const status = known[box.id] || n.status;
        const group = el("g", {
          class: "node", "data-node-id": box.id, "data-status": status, tabindex: 0, role: "button",
          transform: "translate(" + (box.x - box.width / 2) + "," + (box.y - box.height / 2) + ")",
        });
        group.appendChild(el("rect", { width: box.width, height: box.height }));
        const name = el("text", { x: 8, y: 16 });
        name.textContent = box.id + " ";  // its name is its text: "id type · status"
        const text = el("text", { x: 8, y: 32, class: "st-text" });
        text.textContent = n.type + " · " + status;
        group.append(name, text);
        svg.appendChild(group);
      }
      note.remove();
      host.appendChild(svg);
      host.dataset.drawn = "true";
    };
    worker.postMessage(data);
  }

  function setStatus(root, nodeId, status) {
    known[nodeId] = status;
    for (const item of root.querySelectorAll('[data-node-id="' + CSS.escape(nodeId) + '"]')) {
      item.setAttribute("data-status", status);
      const text = item.querySelector(".st-text, .st-word");
      if (text && text.classList.contains("st-word")) text.textContent = status;
      if (text && text.classList.contains("st-text")) text.textContent = text.textContent.replace(/[^·]+$/, " " + status);
    }
  }

  function openStep(page, nodeId) {
    for (const chosen of page.querySelectorAll(".node.chosen")) chosen.classList.remove("chosen");
    const node = page.querySelector('.node[data-node-id="' + CSS.escape(nodeId) + '"]');
    if (node) node.classList.add("chosen");
    const url = "/ui/executions/" + page.dataset.executionId + "/steps/" + encodeURIComponent(nodeId);
    htmx.ajax("GET", url, { target: "#step-panel", swap: "innerHTML" });
  }

  function refresher(page, part, ms) {
    const url = "/ui/executions/" + page.dataset.executionId + "/part/" + part;
    if (part !== "input") {
      return Turnout.throttle(() => htmx.ajax("GET", url, { target: "#" + part, swap: "innerHTML" }), ms);
    }
    // The input form is replaced only when it asks for another node (or none): what the
    // user is typing survives every other update.
    const region = document.getElementById("input-region");
    return Turnout.throttle(async () => {
      const response = await fetch(url);
      if (!response.ok) return;
      const html = await response.text();
      const next = new DOMParser().parseFromString(html, "text/html").querySelector("form");
      const current = region.querySelector("form");
      const same = (f) => (f ? f.dataset.nodeIdInput : null);
      if (same(next) !== same(current)) region.innerHTML = html;
    }, ms);
  }

  // EventSource reconnects by itself with Last-Event-ID after a network drop. When it gives
  // up (an HTTP error, e.g. 503), a new one starts after the last seq seen: nothing is lost.
  function follow(page) {
    const summary = refresher(page, "summary", 500);
    const timeline = refresher(page, "timeline", 1000);
    const input = refresher(page, "input", 300);
    let lastSeq = Number(page.dataset.lastSeq || 0);
    let delay = 500;
    let source = null;
    const types = Object.keys(STEP_STATUS).concat([
      "execution.created", "execution.started", "execution.paused", "execution.resumed",
      "execution.waiting", "execution.promoted", "execution.completed", "execution.failed",
      "execution.cancelled", "queue",
    ]);
    const onEvent = (event) => {
      const data = JSON.parse(event.data);
      if (event.lastEventId) lastSeq = Math.max(lastSeq, Number(event.lastEventId));
      delay = 500;
      if (event.type === "queue") { summary(); return; }
      if (event.type in STEP_STATUS && data.itemIndex === undefined) {
        setStatus(page, data.nodeId, STEP_STATUS[event.type]);
        timeline();
        if (data.progress) summary();
      }
      if (event.type.startsWith("execution.")) {
        summary();
        timeline();
        if (["execution.waiting", "execution.resumed"].includes(event.type) || TERMINAL.includes(event.type)) input();
      }
      if (TERMINAL.includes(event.type)) {
        source.close();
        source = null;
        page.dataset.terminal = "true";
        page.dataset.stream = "ended";
      }
    };
    const connect = () => {
      source = new EventSource("/execution/" + page.dataset.executionId + "/stream?after=" + lastSeq);
      for (const type of types) source.addEventListener(type, onEvent);
      source.onopen = () => { page.dataset.stream = "open"; };
      source.onerror = () => {
        if (source && source.readyState === EventSource.CLOSED) {
          source = null;
          setTimeout(connect, delay);
          delay = Math.min(delay * 2, 15000);
        }
      };
    };
    // A finished run's stream has nothing more to say (until a retry starts a new attempt).
    if (page.dataset.terminal === "true") page.dataset.stream = "idle";
    else connect();
    // A retry starts a new attempt on the same stream: follow it again.
    Turnout.onControl = (answer) => {
      if (!source && !["completed", "failed", "cancelled"].includes(answer.status)) connect();
      summary();
    };
  }

  document.addEventListener("DOMContentLoaded", () => {
    const page = document.getElementById("execution");
    if (!page) return;
    const dag = document.getElementById("dag");
    if (dag) drawDag(dag, JSON.parse(document.getElementById("dag-data").textContent));
    page.addEventListener("click", (event) => {
      const target = event.target.closest(".node, .step-open");
      if (target) openStep(page, target.dataset.nodeId || target.dataset.node);
    });
    page.addEventListener("keydown", (event) => {
      const node = event.target.closest && event.target.closest(".node");
      if (node && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); openStep(page, node.dataset.nodeId); }
    });
    follow(page);
  });
})();
