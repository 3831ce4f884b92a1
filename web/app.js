// The missing-images panel: lists the signed-in user's records without images, queues generation and
// follows its progress. Plain JavaScript, no build step; configuration comes from config.js.
(() => {
  "use strict";

  const config = window.IMAGE_RECOVERY_CONFIG || {};
  const apiBase = (config.apiBase || "").replace(/\/$/, "");
  const POLL_MS = 1500;
  const TOAST_MS = 6000;
  const KINDS = [
    { key: "trips", type: "trip", idsField: "tripIds", label: (item) => item.title },
    { key: "segments", type: "segment", idsField: "segmentIds", label: (item) => item.name },
    { key: "reservations", type: "reservation", idsField: "reservationIds", label: (item) => item.name },
  ];

  const $ = (id) => document.getElementById(id);
  const busy = new Set(); // keys of requests in flight: "all" or "<type>:<id>"
  let listing = null;

  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  async function bearer() {
    const token = typeof config.tokenProvider === "function" ? await config.tokenProvider() : config.token;
    if (!token) throw new Error("Not signed in: config.js gives no token.");
    return `Bearer ${token}`;
  }

  // One API call; rejects with the API's {"error": {"message"}} (or the gateway's {"message"}) text.
  async function api(method, path, body) {
    const headers = { Accept: "application/json", Authorization: await bearer() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(apiBase + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch {
      throw new Error("The API could not be reached.");
    }
    const payload = await response.json().catch(() => null);
    if (!response.ok) {
      const message = payload?.error?.message || payload?.message || `The API answered ${response.status}.`;
      throw new Error(message);
    }
    return payload;
  }

  function toast(message, kind = "success") {
    const node = document.createElement("div");
    node.className = `toast toast-${kind}`;
    if (kind === "error") node.setAttribute("role", "alert");
    node.textContent = message;
    $("toasts").append(node);
    setTimeout(() => node.remove(), TOAST_MS);
  }

  // A button's in-flight state; `subject` (an item's name) gives it an accessible name of its own.
  function setBusy(button, isBusy, idleText, subject) {
    button.disabled = isBusy;
    button.textContent = isBusy ? "Queueing…" : idleText;
    if (subject) button.setAttribute("aria-label", `${isBusy ? "Queueing" : "Generate"} image for ${subject}`);
  }

  function context(kind, item) {
    if (kind.key === "segments") return item.tripTitle || "";
    if (kind.key === "reservations") return [item.tripTitle, item.segmentName].filter(Boolean).join(" · ");
    return "";
  }

  function statusText(item) {
    const status = item.imageStatus || "missing";
    return status === "failed" && item.imageError ? `failed: ${item.imageError}` : status;
  }

  function renderItem(kind, item) {
    const name = kind.label(item) || item.id;
    const key = `${kind.type}:${item.id}`;
    const li = document.createElement("li");
    li.className = "item";
    li.dataset.key = key;

    const text = document.createElement("div");
    text.className = "item-text";
    const title = document.createElement("div");
    title.className = "item-name";
    title.textContent = name;
    text.append(title);
    const parent = context(kind, item);
    if (parent) {
      const line = document.createElement("div");
      line.className = "item-context";
      line.textContent = parent;
      text.append(line);
    }

    const status = document.createElement("span");
    status.className = `status status-${item.imageStatus || "missing"}`;
    status.textContent = statusText(item);

    const button = document.createElement("button");
    button.type = "button";
    button.dataset.key = key;
    const inProgress = item.imageStatus === "queued" || item.imageStatus === "generating";
    setBusy(button, busy.has(key), "Generate", name);
    if (inProgress) button.disabled = true;
    button.addEventListener("click", () =>
      queue(key, button, { [kind.idsField]: [item.id] }, "Generate", name),
    );

    li.append(text, status, button);
    return li;
  }

  function render() {
    const count = listing.count;
    $("page-status").textContent = count ? "" : "Every trip, segment and reservation has its image.";
    $("panel").hidden = count === 0;
    $("missing-count").textContent = `${plural(count, "item")} missing images`;
    const allText = `Generate All ${plural(count, "Image")}`;
    setBusy($("generate-all"), busy.has("all"), allText);

    const focused = document.activeElement?.dataset?.key; // keep keyboard focus across re-renders
    for (const kind of KINDS) {
      const items = listing[kind.key] || [];
      $(`${kind.key}-heading`).textContent = `${kind.key[0].toUpperCase()}${kind.key.slice(1)} (${items.length})`;
      const list = $(`${kind.key}-list`);
      list.replaceChildren(...items.map((item) => renderItem(kind, item)));
      if (!items.length) {
        const empty = document.createElement("li");
        empty.className = "empty";
        empty.textContent = "None";
        list.append(empty);
      }
    }
    if (focused) document.querySelector(`button[data-key="${CSS.escape(focused)}"]`)?.focus();
  }

  // The listing pages (GET /missing-images?limit=&cursor=): follow nextCursor up to MAX_PAGES pages.
  const PAGE_SIZE = 500;
  const MAX_PAGES = 10;

  async function loadListing() {
    let page = await api("GET", `/missing-images?limit=${PAGE_SIZE}`);
    const merged = { count: page.count, trips: [], segments: [], reservations: [] };
    for (let pages = 1; ; pages += 1) {
      for (const kind of KINDS) merged[kind.key].push(...(page[kind.key] || []));
      if (!page.nextCursor || pages >= MAX_PAGES) return merged;
      page = await api("GET", `/missing-images?limit=${PAGE_SIZE}&cursor=${encodeURIComponent(page.nextCursor)}`);
    }
  }

  async function refresh() {
    try {
      listing = await loadListing();
      render();
    } catch (error) {
      $("page-status").textContent = "The list could not be loaded.";
      toast(error.message, "error");
    }
  }

  function styleId() {
    return $("style").value || undefined;
  }

  function describe(result) {
    const totals = { queued: 0, skipped: 0, failed: 0 };
    for (const summary of Object.values(result.summary)) {
      for (const name of Object.keys(totals)) totals[name] += summary[name] || 0;
    }
    const parts = [`Queued ${plural(totals.queued, "image")}`];
    if (totals.skipped) parts.push(`${totals.skipped} skipped`);
    if (totals.failed) parts.push(`${totals.failed} failed`);
    const reasons = [...new Set(result.items.filter((i) => i.outcome !== "queued").map((i) => i.reason))];
    return { totals, text: parts.join(", ") + (reasons.length ? ` (${reasons.join(", ")})` : "") + "." };
  }

  async function queue(key, button, selection, idleText, subject) {
    busy.add(key);
    setBusy(button, true, idleText, subject);
    try {
      const result = await api("POST", "/image-jobs", { ...selection, styleId: styleId() });
      const { totals, text } = describe(result);
      toast(text, totals.failed ? "error" : "success");
      if (totals.queued || !result.complete) follow(result.batchId);
    } catch (error) {
      toast(error.message, "error");
    } finally {
      busy.delete(key);
      setBusy(button, false, idleText, subject);
      await refresh();
    }
  }

  // Polls a batch until nothing is waiting and everything asked for was queued, then re-lists.
  function follow(batchId) {
    const tick = async () => {
      try {
        const p = await api("GET", `/image-jobs/${encodeURIComponent(batchId)}`);
        const done = p.succeeded + p.failed;
        $("progress").textContent = `Generating: ${done} of ${p.total} done (${p.queued} queued, ${p.generating} generating).`;
        if (p.queued + p.generating === 0 && p.complete) {
          $("progress").textContent = "";
          if (p.failed) toast(`${plural(p.failed, "image")} failed; see the list for the reason.`, "error");
          else toast(`${plural(p.succeeded, "image")} generated.`);
          await refresh();
          return;
        }
        await refresh();
      } catch (error) {
        toast(`Progress unavailable: ${error.message}`, "error");
        return;
      }
      setTimeout(tick, POLL_MS);
    };
    setTimeout(tick, POLL_MS);
  }

  async function loadStyles() {
    const select = $("style");
    try {
      const { styles } = await api("GET", "/styles");
      select.replaceChildren(
        ...styles.map((style) => {
          const option = new Option(style.name, style.id, style.isDefault, style.isDefault);
          if (style.description) option.title = style.description;
          return option;
        }),
      );
    } catch (error) {
      toast(`Styles unavailable, the default style will be used: ${error.message}`, "error");
    }
  }

  function init() {
    const toggle = $("toggle");
    toggle.addEventListener("click", () => {
      const expanded = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(expanded));
      $("panel-body").hidden = !expanded;
    });
    const all = $("generate-all");
    all.addEventListener("click", () =>
      queue("all", all, { all: true }, `Generate All ${plural(listing.count, "Image")}`),
    );
    if (!window.IMAGE_RECOVERY_CONFIG) {
      $("page-status").textContent = "config.js is missing: it must set window.IMAGE_RECOVERY_CONFIG.";
      return;
    }
    loadStyles();
    refresh();
  }

  init();
})();
