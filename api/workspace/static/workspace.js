// ticketflow workspace: live countdowns, live updates over server-sent events, forms that
// send their action id again after a timeout, script replies, presence and shortcuts.
// No library: the browser's EventSource, fetch and <dialog> are enough (docs/workspace.md).
"use strict";

(() => {
  const body = document.body;
  const t = (name) => body.dataset["t" + name[0].toUpperCase() + name.slice(1)] || name;
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const page = body.dataset.page;
  const ticketId = body.dataset.ticket || null;
  const me = body.dataset.me;

  // ------------------------------------------------------------ countdowns
  // Every [data-due] ticks from its absolute instant, in the browser: no request per ticket.
  const pad = (n) => String(n).padStart(2, "0");
  function formatLeft(ms) {
    const sign = ms < 0 ? "−" : "";
    let s = Math.floor(Math.abs(ms) / 1000);
    const d = Math.floor(s / 86400); s -= d * 86400;
    const h = Math.floor(s / 3600); s -= h * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    return sign + (d ? t("days").replace("%(days)s", d) + " " : "") + h + ":" + pad(m) + ":" + pad(s);
  }
  function tick() {
    const now = Date.now();
    for (const el of document.querySelectorAll("[data-due]")) {
      const left = Date.parse(el.dataset.due) - now;
      el.textContent = formatLeft(left) + (left < 0 ? " " + t("overdue") : "");
      el.closest(".clock")?.classList.toggle("late", left < 0);
      el.closest(".clock")?.classList.toggle("soon", left >= 0 && left < 15 * 60 * 1000);
    }
  }
  tick();
  setInterval(tick, 1000);

  // ------------------------------------------------------------ live updates
  const status = document.querySelector(".live-state");
  const parts = () => document.querySelectorAll("[data-refresh]");
  let refreshing = null;
  let again = false;

  async function refresh() {
    // One read at a time; changes during a read make one more read after it.
    if (refreshing) { again = true; return refreshing; }
    refreshing = (async () => {
      for (const part of parts()) {
        const url = part.dataset.refresh + (page === "queue" ? location.search : "");
        const answer = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
        if (answer.status === 401) { location.href = "/app/signin"; return; }
        if (!answer.ok) continue;
        const html = await answer.text();
        const focused = document.activeElement?.closest("[data-ticket]")?.dataset.ticket;
        part.innerHTML = html;
        if (focused) select(part.querySelector(`[data-ticket="${focused}"]`));
        part.dispatchEvent(new CustomEvent("refreshed", { bubbles: true }));
      }
      tick();
      rememberQueue();
    })();
    try { await refreshing; } finally {
      refreshing = null;
      if (again) { again = false; refresh(); }
    }
  }

  function showPresence(viewers) {
    const el = document.querySelector("[data-presence]");
    if (!el) return;
    const others = viewers.filter((v) => !v.me);
    if (!others.length) { el.textContent = t("alone"); el.classList.remove("busy"); return; }
    const now = Date.now();
    el.classList.add("busy");
    el.textContent = t("viewing") + " " + others.map((v) =>
      v.staff_id + (v.typing_until && Date.parse(v.typing_until) > now ? " (" + t("typing") + ")" : "")
    ).join(", ");
    // "typing…" ends by itself when its instant passes.
    const until = Math.max(0, ...others.map((v) => (v.typing_until ? Date.parse(v.typing_until) - now : 0)));
    if (until > 0) setTimeout(() => showPresence(viewers), until + 50);
  }

  if (page === "queue" || page === "ticket") {
    const source = new EventSource("/app/live" + (ticketId ? "?ticket=" + encodeURIComponent(ticketId) : ""));
    source.addEventListener("tickets", (e) => {
      const changed = JSON.parse(e.data);
      if (page === "queue" || changed.includes(ticketId)) refresh();
    });
    source.addEventListener("resync", () => refresh());
    source.addEventListener("presence", (e) => showPresence(JSON.parse(e.data)));
    // What changed while the stream was down (an API restart) was never told: on
    // reconnecting, read the page's parts again.
    let interrupted = false;
    source.addEventListener("open", () => {
      status.hidden = true;
      if (interrupted) { interrupted = false; refresh(); }
    });
    source.addEventListener("error", () => {
      interrupted = true;
      status.textContent = t("offline");
      status.hidden = false;
    });
    window.addEventListener("pagehide", () => source.close());
  }

  // ------------------------------------------------------------ forms
  const pause = (ms) => new Promise((done) => setTimeout(done, ms));

  async function send(form) {
    const refusal = form.querySelector(".refusal");
    const button = form.querySelector("button[type=submit]");
    const data = new URLSearchParams(new FormData(form));
    refusal.hidden = true;
    button.disabled = true;
    try {
      // The same action id every time: the ticket applies it once, however often it
      // arrives. Retried only when no answer came, or the service said 503.
      for (const wait of [0, 500, 1000, 2000, 4000]) {
        if (wait) { refusal.textContent = t("retrying"); refusal.hidden = false; await pause(wait); }
        let answer;
        try {
          answer = await fetch(form.action, {
            method: "POST",
            body: data,
            credentials: "same-origin",
            headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
          });
        } catch (error) { continue; }
        if (answer.status === 503) continue;
        const said = await answer.json().catch(() => ({}));
        if (!answer.ok) {
          refusal.textContent = said.detail || answer.statusText;
          refusal.hidden = false;
          return false;
        }
        refusal.hidden = true;
        form.reset();
        form.querySelector("[name=action_id]").value = said.next_action_id;
        const script = form.querySelector("[name=script_id]");
        if (script) script.value = "";
        form.closest("details")?.removeAttribute("open");
        refresh();
        return true;
      }
      refusal.textContent = t("failed");
      refusal.hidden = false;
      return false;
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("submit", (e) => {
    const form = e.target.closest("form[data-action]");
    if (!form) return;
    e.preventDefault();
    send(form);
  });

  for (const select of document.querySelectorAll("[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.requestSubmit());
  }
  for (const next of document.querySelectorAll("[data-next]")) next.value = location.pathname + location.search;

  // Reply or note: one composer, two forms.
  function mode(name) {
    for (const form of document.querySelectorAll("[data-composer]")) form.hidden = form.dataset.composer !== name;
    const radio = document.querySelector(`[data-mode][value="${name}"]`);
    if (radio) radio.checked = true;
    document.querySelector(`[data-composer="${name}"] textarea`)?.focus();
  }
  for (const radio of document.querySelectorAll("[data-mode]")) radio.addEventListener("change", () => mode(radio.value));

  // A script, rendered by the server in the customer's language with the ticket's data.
  document.addEventListener("click", async (e) => {
    const button = e.target.closest("[data-script]");
    if (!button) return;
    const answer = await fetch(`/app/tickets/${encodeURIComponent(ticketId)}/scripts/${encodeURIComponent(button.dataset.script)}`,
      { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!answer.ok) return;
    const script = await answer.json();
    mode("respond");
    const form = document.querySelector('[data-composer="respond"]');
    form.querySelector("[name=message]").value = script.text;
    form.querySelector("[name=script_id]").value = script.script_id;
    form.querySelector("[name=message]").focus();
  });

  // Others see who is typing: at most one note every two seconds.
  let lastTyping = 0;
  document.addEventListener("input", (e) => {
    if (!e.target.matches("[data-typing]") || !ticketId) return;
    const now = Date.now();
    if (now - lastTyping < 2000) return;
    lastTyping = now;
    fetch(`/app/tickets/${encodeURIComponent(ticketId)}/typing`,
      { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
  });

  // ------------------------------------------------------------ keyboard
  const rows = () => [...document.querySelectorAll("tr[data-ticket]")];
  function select(row) {
    if (!row) return;
    for (const other of rows()) other.classList.remove("selected");
    row.classList.add("selected");
    row.querySelector("a")?.focus();
  }
  function rememberQueue() {
    if (page === "queue") sessionStorage.setItem("tf-queue", JSON.stringify(rows().map((r) => r.dataset.ticket)));
  }
  rememberQueue();

  function step(by) {
    if (page === "queue") {
      const all = rows();
      const at = all.findIndex((r) => r.classList.contains("selected"));
      select(all[Math.max(0, Math.min(all.length - 1, at + by))]);
      return;
    }
    const order = JSON.parse(sessionStorage.getItem("tf-queue") || "[]");
    const next = order[order.indexOf(ticketId) + by];
    if (next) location.href = "/app/tickets/" + encodeURIComponent(next);
  }

  document.querySelector("[data-help]")?.addEventListener("click", () => document.getElementById("help").showModal());

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.target.closest("input, textarea, select, [contenteditable]")) return;
    const help = document.getElementById("help");
    switch (e.key) {
      case "?": help.open ? help.close() : help.showModal(); break;
      case "j": step(1); break;
      case "k": step(-1); break;
      case "Enter": {
        const row = document.querySelector("tr.selected a");
        if (row && page === "queue") location.href = row.href; else return;
        break;
      }
      case "r": if (page !== "ticket") return; mode("respond"); break;
      case "n": if (page !== "ticket") return; mode("add_note"); break;
      case "u": location.href = "/app/"; break;
      case "a": {
        const form = document.querySelector('form[data-action="assign"]');
        if (!form) return;
        form.querySelector("[name=agent_id]").value = me;
        send(form);
        break;
      }
      default: return;
    }
    e.preventDefault();
  });
})();
