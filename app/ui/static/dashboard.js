// Turnout dashboard: shared behaviour (theme, API calls, schema forms, the live list).
"use strict";
(function () {
  const T = (window.Turnout = {});

  T.toast = function (text) {
    const box = document.getElementById("toast");
    box.textContent = text;
    clearTimeout(T._toastTimer);
    T._toastTimer = setTimeout(() => { box.textContent = ""; }, 6000);
  };

  // Every write goes to the public API, as any client's would.
  T.call = async function (method, url, body) {
    const init = { method, headers: { "X-Actor": "dashboard", Accept: "application/json" } };
    const csrf = T.csrfToken();
    if (csrf) init.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { ok: response.ok, status: response.status, data };
  };

  // The session's CSRF token (a readable cookie; the session cookie itself is HttpOnly).
  T.csrfToken = function () {
    const found = document.cookie.split("; ").find((c) => c.startsWith("turnout_csrf="));
    return found ? decodeURIComponent(found.slice("turnout_csrf=".length)) : "";
  };
  document.addEventListener("htmx:configRequest", (event) => {
    const csrf = T.csrfToken();
    if (csrf) event.detail.headers["X-CSRF-Token"] = csrf;
  });

  T.errorText = function (data, status) {
    const err = data && data.error;
    return err ? err.message : "request failed (" + status + ")";
  };

  // A trailing throttle: run at most every `ms`, and always once after the last call.
  T.throttle = function (fn, ms) {
    let timer = null, again = false;
    return function () {
      if (timer) { again = true; return; }
      fn();
      timer = setTimeout(function tick() {
        if (again) { again = false; fn(); timer = setTimeout(tick, ms); } else { timer = null; }
      }, ms);
    };
  };

  function setupTheme() {
    const button = document.getElementById("theme-toggle");
    const show = () => {
      const dark = document.documentElement.dataset.theme === "dark";
      button.setAttribute("aria-pressed", String(dark));
    };
    button.addEventListener("click", () => {
      const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
      document.documentElement.dataset.theme = next;
      localStorage.setItem("turnout-theme", next);
      show();
    });
    show();
  }

  // ---- schema forms (human input, Run) ----
  function fieldValue(el) {
    const kind = el.dataset.kind;
    if (kind === "checkbox") return el.checked;
    if (el.value === "" ) return undefined;
    if (kind === "number") return Number(el.value);
    if (kind === "integer") return Number.parseInt(el.value, 10);
    if (kind === "json") return JSON.parse(el.value);
    return el.value;
  }

  function collect(form) {
    const errors = [];
    let data = {};
    for (const el of form.querySelectorAll("[data-kind]")) {
      if (el.dataset.kind === "meta") continue;
      let value;
      try { value = fieldValue(el); } catch (e) {
        errors.push([el.name, "not valid JSON: " + e.message]);
        continue;
      }
      if (el.name === "__json__") data = value === undefined ? {} : value;
      else if (value !== undefined) data[el.name] = value;
    }
    return { data, errors };
  }

  function clearErrors(form) {
    form.querySelectorAll(".field-error").forEach((p) => { p.textContent = ""; });
    form.querySelector(".form-errors").textContent = "";
  }

  function showFieldError(form, name, message) {
    const p = form.querySelector('.field-error[data-for="' + CSS.escape(name) + '"]');
    if (p) p.textContent = message;
    return Boolean(p);
  }

  function showServerErrors(form, data, status) {
    const box = form.querySelector(".form-errors");
    const err = (data && data.error) || {};
    const lines = [err.message || "request failed (" + status + ")"];
    for (const d of err.details || []) {
      const loc = (d.loc || []).filter((x) => x !== "data" && x !== "body" && x !== "input");
      const text = (loc.length ? loc.join(".") + ": " : "") + d.message;
      if (!(loc.length && showFieldError(form, String(loc[0]), d.message))) lines.push(text);
      else lines.push(text);
    }
    box.textContent = lines.join(" · ");
  }

  function browserCheck(form) {
    let valid = true;
    for (const el of form.querySelectorAll("input, select, textarea")) {
      if (!el.checkValidity()) {
        valid = false;
        showFieldError(form, el.name, el.validationMessage);
      }
    }
    if (!valid) form.querySelector(".form-errors").textContent = "Please fix the fields marked above.";
    return valid;
  }

  async function submitSchemaForm(form) {
    clearErrors(form);
    if (!browserCheck(form)) return;
    const { data, errors } = collect(form);
    if (errors.length) {
      for (const [name, message] of errors) showFieldError(form, name, message);
      form.querySelector(".form-errors").textContent = "Please fix the fields marked above.";
      return;
    }
    let body;
    if (form.id === "input-form") body = { nodeId: form.dataset.nodeIdInput, data };
    else body = { version: form.dataset.version, input: data, mode: form.querySelector('[name="__mode__"]').value };
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const answer = await T.call("POST", form.dataset.post, body);
      if (!answer.ok) { showServerErrors(form, answer.data, answer.status); return; }
      if (form.id === "run-form") {
        window.location.assign("/ui/executions/" + answer.data.executionId);
      } else {
        T.toast("Input sent; the run resumes.");
        form.querySelector(".form-errors").textContent = "";
      }
    } finally {
      button.disabled = false;
    }
  }

  function setupForms() {
    document.addEventListener("submit", (event) => {
      const form = event.target;
      if (!form.classList || !form.classList.contains("schema-form")) return;
      event.preventDefault();
      submitSchemaForm(form);
    });
    // Browser messages as the user types, not only on submit.
    document.addEventListener("change", (event) => {
      const el = event.target;
      const form = el.closest && el.closest(".schema-form");
      if (form && el.name) showFieldError(form, el.name, el.checkValidity() ? "" : el.validationMessage);
    });
  }

  // ---- control buttons (execution page) ----
  function setupControls() {
    document.addEventListener("click", async (event) => {
      const button = event.target.closest && event.target.closest("button.control");
      if (!button) return;
      const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
      button.disabled = true;
      const answer = await T.call("POST", button.dataset.url, body);
      if (!answer.ok) { T.toast(button.textContent + ": " + T.errorText(answer.data, answer.status)); button.disabled = false; return; }
      T.toast(button.textContent + ": done (" + answer.data.status + ")");
      if (T.onControl) T.onControl(answer.data);
    });
  }

  // ---- executions list: selection, bulk actions, live refresh ----
  function setupList() {
    const rows = document.getElementById("rows");
    if (!rows) return;
    const picked = new Set();
    const results = new Map();
    const count = document.getElementById("selected-count");
    const bulk = document.querySelectorAll(".bulk-action");
    const all = document.getElementById("select-all");
    const sync = () => {
      for (const box of rows.querySelectorAll("input.pick")) box.checked = picked.has(box.value);
      for (const [id, text] of results) {
        const cell = rows.querySelector('tr[data-execution-id="' + id + '"] .result');
        if (cell) cell.textContent = text;
      }
      count.textContent = picked.size + " selected";
      bulk.forEach((b) => { b.disabled = picked.size === 0; });
    };
    rows.addEventListener("change", (event) => {
      const box = event.target;
      if (!box.classList.contains("pick")) return;
      if (box.checked) picked.add(box.value); else picked.delete(box.value);
      sync();
    });
    all.addEventListener("change", () => {
      for (const box of rows.querySelectorAll("input.pick")) {
        if (all.checked) picked.add(box.value); else picked.delete(box.value);
      }
      sync();
    });
    const dialog = document.getElementById("confirm");
    bulk.forEach((button) => button.addEventListener("click", () => {
      const verb = button.dataset.verb;
      const ids = Array.from(picked);
      document.getElementById("confirm-text").textContent =
        button.textContent + " " + ids.length + " execution(s)? " + ids.map((i) => i.slice(0, 8)).join(", ");
      dialog.returnValue = "";
      dialog.onclose = async () => {
        if (dialog.returnValue !== "ok") return;
        await Promise.all(ids.map(async (id) => {
          const answer = await T.call("POST", "/execution/" + id + "/" + verb, verb === "retry" ? { from: "failed" } : undefined);
          results.set(id, answer.ok ? button.textContent + ": " + answer.data.status : T.errorText(answer.data, answer.status));
        }));
        sync();
        T.toast(button.textContent + ": " + ids.length + " done; see the Result column.");
      };
      dialog.showModal();
    }));
    document.body.addEventListener("htmx:afterSwap", (event) => { if (event.target === rows) sync(); });
    if (rows.dataset.liveUrl) {
      const refresh = T.throttle(() => {
        htmx.ajax("GET", rows.dataset.liveUrl, { target: rows, swap: "innerHTML" });
      }, 400);
      document.body.addEventListener("htmx:sseMessage", refresh);
      // Visible state for people (and tests): is the live feed connected?
      // The feed is live only: after a lost connection, re-read what changed meanwhile.
      document.body.addEventListener("htmx:sseOpen", () => {
        if (document.body.dataset.feed === "lost") refresh();
        document.body.dataset.feed = "open";
      });
      document.body.addEventListener("htmx:sseError", () => { document.body.dataset.feed = "lost"; });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    setupTheme();
    setupForms();
    setupControls();
    setupList();
  });
})();
