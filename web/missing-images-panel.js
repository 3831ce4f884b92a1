// <missing-images-panel api-base="https://api.example.com" page-size="100" confirm-above="50">: the
// signed-in user's trips, segments and reservations without an image, with Generate, Retry and bulk actions,
// following the records' state until every listed item has settled. With record-type="trip|segment|
// reservation" and record-id, it is one record's "Regenerate image" action instead (POST /image-jobs with
// "regenerate": true), following that request until the new image is stored. A standard custom element in one
// classic script (no build step, no module CORS); its styles are missing-images-panel.css beside it. The
// host sets `tokenProvider` (a function returning the user's access token, or a promise of it).
(() => {
  "use strict";

  const STYLESHEET = new URL("missing-images-panel.css", document.currentScript.src).href;
  const POLL_MS = 1500;
  const MAX_BACKOFF_MS = 30_000;
  const TOAST_MS = 6000;
  const MAX_TOASTS = 3;
  const MAX_LIMIT = 500; // the listing's largest page (DESIGN §3)
  const KINDS = [
    { key: "trips", type: "trip", idsField: "tripIds", title: "Trips", label: (item) => item.title },
    { key: "segments", type: "segment", idsField: "segmentIds", title: "Segments", label: (item) => item.name },
    {
      key: "reservations",
      type: "reservation",
      idsField: "reservationIds",
      title: "Reservations",
      label: (item) => item.name,
    },
  ];
  // Reason codes (imageError, and the outcomes of POST /image-jobs) in people's words; the code stays visible.
  const REASONS = {
    content_filtered: "The image model refused this prompt",
    invalid_response: "The image model returned an unusable image",
    throttled: "The image model was too busy",
    timeout: "The image model took too long",
    provider_error: "The image model had an error",
    model_unavailable: "The image model is not available",
    model_access_denied: "The service may not use the image model",
    invalid_model_request: "The image model rejected the request",
    storage_error: "The image could not be stored",
    internal_error: "Something went wrong on our side",
    enqueue_failed: "The job could not be queued",
    not_found: "The record no longer exists",
    has_image: "It already has an image",
    already_queued: "It is already queued",
    already_generating: "It is already being generated",
    failed_permanently: "It failed for a reason a new attempt will not fix; use Retry",
    changed_meanwhile: "It changed while it was being queued",
    budget_exhausted: "Waiting: today's image budget is spent; it goes on after midnight UTC",
  };
  // Failures that Generate All (`all`) leaves alone: only Retry queues them again (docs/api.md).
  const PERMANENT = new Set(["content_filtered", "invalid_response"]);
  const IN_PROGRESS = new Set(["queued", "generating"]);
  const STATUS_TEXT = { missing: "Missing", queued: "Queued", generating: "Generating", failed: "Failed" };

  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
  const reasonText = (code) => `${REASONS[code] || "It failed"} (${code})`;
  const statusOf = (item) => item.imageStatus || "missing";
  const setText = (node, text) => {
    if (node.textContent !== text) node.textContent = text;
  };
  const setAttr = (node, name, value) => {
    if (value === null) node.removeAttribute(name);
    else if (node.getAttribute(name) !== value) node.setAttribute(name, value);
  };
  const intAttr = (element, name, fallback) => {
    const value = Number.parseInt(element.getAttribute(name) ?? "", 10);
    return Number.isFinite(value) && value > 0 ? value : fallback;
  };

  class ApiError extends Error {
    constructor(message, status, code = null, details = null) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details;
    }
  }

  const template = (html) => {
    const element = document.createElement("template");
    element.innerHTML = `<link rel="stylesheet" href="${STYLESHEET}">${html}
      <p class="sync" role="status"></p>
      <div class="toasts" aria-live="polite"></div>`;
    return element;
  };
  const STYLE_PICKER = `
    <span class="style-picker">
      <label for="style">Style</label>
      <select id="style"><option value="">Default style</option></select>
    </span>`;
  const RECORD_TEMPLATE = template(`
    <div class="record">
      ${STYLE_PICKER}
      <button class="regenerate primary" type="button">Regenerate image</button>
    </div>
    <p class="status" role="status" tabindex="-1"></p>`);
  const LIST_TEMPLATE = template(`
    <p class="status" role="status" tabindex="-1"></p>
    <div class="load-error" hidden>
      <p class="load-error-text"></p>
      <button type="button" class="load-retry">Retry</button>
    </div>
    <section class="panel" aria-label="Missing images" hidden>
      <button class="banner" type="button" aria-expanded="false" aria-controls="body">
        <span class="banner-icon" aria-hidden="true">⚠</span>
        <span class="banner-text"></span>
        <span class="banner-progress"></span>
        <span class="chevron" aria-hidden="true"></span>
      </button>
      <div class="body" id="body" hidden>
        <div class="toolbar">
          <button class="generate-all primary" type="button" aria-describedby="all-hint"></button>
          <button class="retry-failed" type="button" hidden></button>
          ${STYLE_PICKER}
        </div>
        <p class="hint" id="all-hint"></p>
        <p class="progress" role="status"></p>
        ${KINDS.map(
          (kind) => `
        <section class="kind" data-kind="${kind.key}" aria-labelledby="${kind.key}-heading" hidden>
          <h2 id="${kind.key}-heading"></h2>
          <ul class="items"></ul>
        </section>`,
        ).join("")}
        <button class="more" type="button" hidden></button>
      </div>
    </section>
    <section class="recent" aria-labelledby="recent-heading" hidden>
      <h2 id="recent-heading">Generated in this session</h2>
      <ul class="recent-list"></ul>
    </section>
    <dialog class="confirm" aria-labelledby="confirm-title" aria-describedby="confirm-text">
      <form method="dialog">
        <h2 id="confirm-title"></h2>
        <p id="confirm-text"></p>
        <div class="confirm-actions">
          <button class="primary" value="confirm"></button>
          <button value="cancel" autofocus>Cancel</button>
        </div>
      </form>
    </dialog>`);

  class MissingImagesPanel extends HTMLElement {
    static observedAttributes = ["api-base", "record-type", "record-id"];

    #root;
    #mode = null; // "list", "<type>:<id>" (one record) or "invalid"
    #record = null; // record mode: {kind, id}; null: the listing
    #tokenProvider = null;
    #items = Object.fromEntries(KINDS.map((kind) => [kind.key, []])); // the listed records, in order
    #rows = new Map(); // "<type>:<id>" -> {li, kind, item, parts}
    #count = 0;
    #nextCursor = null;
    #loaded = false;
    #failures = 0; // consecutive failed refreshes, for the backoff
    #timer = null;
    #generation = 0; // refreshes answered out of order are dropped
    #busy = new Set(); // requests in flight: "all", "failed" or a row's key
    #batches = new Map(); // batch id -> {expected, progress}: requests of this page until they end
    #stylesLoaded = false;
    #budget = undefined; // GET /budget's answer; null while loading or when it could not be read
    #queuedHere = new Map(); // key -> subject of the rows this page queued, until they leave the listing

    constructor() {
      super();
      this.#root = this.attachShadow({ mode: "open" });
      // a property set before this element was defined shadows the accessor: take it over
      if (Object.hasOwn(this, "tokenProvider")) {
        const provider = this.tokenProvider;
        delete this.tokenProvider;
        this.#tokenProvider = provider;
      }
      this.#onVisibility = () => {
        if (document.hidden) this.#stop();
        else if (this.#ready()) this.#refresh();
      };
    }

    #onVisibility;
    #connected = false;

    get tokenProvider() {
      return this.#tokenProvider;
    }

    set tokenProvider(provider) {
      this.#tokenProvider = provider;
      if (this.#connected) this.#start();
    }

    get apiBase() {
      return (this.getAttribute("api-base") || "").replace(/\/$/, "");
    }

    connectedCallback() {
      this.#connected = true;
      document.addEventListener("visibilitychange", this.#onVisibility);
      this.#start();
    }

    disconnectedCallback() {
      this.#connected = false;
      document.removeEventListener("visibilitychange", this.#onVisibility);
      this.#stop();
    }

    attributeChangedCallback(name, before, after) {
      if (before !== after && this.#connected) this.#start();
    }

    #$(selector) {
      return this.#root.querySelector(selector);
    }

    #on(selector, event, handler) {
      this.#$(selector).addEventListener(event, handler);
    }

    #ready() {
      return typeof this.#tokenProvider === "function";
    }

    // The shadow content for the element's mode, built anew (with a fresh state) when the mode changes; false
    // for a record-type that names no kind.
    #render() {
      const type = this.getAttribute("record-type");
      const kind = type === null ? null : KINDS.find((k) => k.type === type);
      const record = kind ? { kind, id: this.getAttribute("record-id") || "" } : null;
      const mode = record ? `${kind.type}:${record.id}` : type === null ? "list" : "invalid";
      if (mode === this.#mode) return mode !== "invalid";
      this.#mode = mode;
      this.#record = record;
      this.#rows = new Map();
      this.#items = Object.fromEntries(KINDS.map((k) => [k.key, []]));
      this.#count = 0;
      this.#nextCursor = null;
      this.#loaded = Boolean(record); // a record has no listing to load: every failure is a refresh's
      this.#stylesLoaded = false;
      this.#root.replaceChildren((record ? RECORD_TEMPLATE : LIST_TEMPLATE).content.cloneNode(true));
      if (record) {
        this.#on(".regenerate", "click", () => this.#regenerate());
      } else {
        this.#on(".banner", "click", () => this.#toggle());
        this.#on(".generate-all", "click", () => this.#generateAll());
        this.#on(".retry-failed", "click", () => this.#retryFailed());
        this.#on(".more", "click", () => this.#showMore());
        this.#on(".load-retry", "click", () => this.#refresh());
      }
      if (type === null || kind) return true;
      this.#root.querySelector(".panel").remove(); // nothing to list either
      this.#setStatus("record-type must be trip, segment or reservation.");
      return false;
    }

    #start() {
      this.#stop();
      if (!this.#render()) return;
      if (!this.#ready()) {
        this.#setStatus("Waiting for sign-in…");
        return;
      }
      this.#restoreBatches();
      if (!this.#record) this.#setStatus("Loading…");
      this.#refresh();
    }

    #stop() {
      this.#generation += 1; // an answer still on its way is dropped
      clearTimeout(this.#timer);
      this.#timer = null;
    }

    // ---- the API -------------------------------------------------------------------------------------

    async #api(method, path, body) {
      let token;
      try {
        token = await this.#tokenProvider();
      } catch {
        token = null;
      }
      if (!token) throw new ApiError("you are not signed in (no access token)", 401);
      const headers = { Accept: "application/json", Authorization: `Bearer ${token}` };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      let response;
      try {
        response = await fetch(this.apiBase + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch {
        throw new ApiError("the service could not be reached; check the connection", 0);
      }
      const payload = await response.json().catch(() => null);
      if (response.ok) return payload;
      const code = payload?.error?.code || `HTTP ${response.status}`;
      let message = "the service refused the request";
      if (response.status === 401 || response.status === 403) message = "your sign-in is not valid or has expired";
      else if (response.status === 429) message = "the service is busy";
      else if (response.status >= 500) message = "the service had a problem";
      else if (payload?.error?.message) message = payload.error.message.replace(/\.$/, "");
      throw new ApiError(`${message} (${code})`, response.status, payload?.error?.code, payload?.error?.details);
    }

    // ---- refreshing: the listing of every shown row, and the progress of this page's requests ----------

    async #refresh() {
      this.#stop();
      const generation = ++this.#generation;
      const shown = KINDS.reduce((n, kind) => n + this.#items[kind.key].length, 0);
      const limit = Math.min(MAX_LIMIT, Math.max(this.#pageSize(), shown));
      try {
        const [page, progress] = await Promise.all([
          this.#record ? null : this.#api("GET", `/missing-images?limit=${limit}`),
          Promise.all([...this.#batches.keys()].map((id) => this.#progress(id))),
        ]);
        if (generation !== this.#generation) return;
        this.#failures = 0;
        setText(this.#$(".sync"), "");
        if (page) {
          this.#loaded = true;
          const loadError = this.#$(".load-error");
          const retried = loadError.contains(this.#root.activeElement);
          loadError.hidden = true;
          this.#apply(page, false);
          if (retried) (this.#count ? this.#$(".banner") : this.#$(".status")).focus();
        }
        this.#track(progress);
        if (!this.#stylesLoaded) this.#loadStyles();
        if (this.#budget === undefined && !this.#record) this.#loadBudget();
        if (this.#active()) this.#schedule(POLL_MS);
      } catch (error) {
        if (generation !== this.#generation) return;
        this.#failures += 1;
        const delay = Math.min(POLL_MS * 2 ** (this.#failures - 1), MAX_BACKOFF_MS); // 1.5 s, 3 s, 6 s … 30 s
        const retry = `Trying again in ${Math.round(delay / 1000)} s.`;
        if (this.#loaded) {
          const what = this.#record ? "check on the new image" : "refresh the list";
          setText(this.#$(".sync"), `Couldn't ${what}: ${error.message}. ${retry}`);
        } else {
          this.#setStatus("");
          setText(this.#$(".load-error-text"), `Couldn't load the missing images: ${error.message}. ${retry}`);
          this.#$(".load-error").hidden = false;
        }
        this.#schedule(delay);
      }
    }

    #schedule(delay) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        if (!document.hidden) this.#refresh(); // a hidden tab resumes on visibilitychange
      }, delay);
    }

    async #progress(batchId) {
      try {
        return { batchId, ...(await this.#api("GET", `/image-jobs/${encodeURIComponent(batchId)}`)) };
      } catch (error) {
        if (error.status === 404) return { batchId, gone: true }; // expired, or another user's
        throw error;
      }
    }

    #active() {
      return this.#batches.size > 0 || [...this.#rows.values()].some((row) => IN_PROGRESS.has(statusOf(row.item)));
    }

    #pageSize() {
      return Math.min(MAX_LIMIT, intAttr(this, "page-size", 100));
    }

    async #showMore() {
      const more = this.#$(".more");
      if (!this.#nextCursor || this.#busy.has("more")) return;
      this.#busy.add("more");
      setAttr(more, "aria-disabled", "true");
      const before = new Set(this.#rows.keys());
      try {
        const cursor = encodeURIComponent(this.#nextCursor);
        const page = await this.#api("GET", `/missing-images?limit=${this.#pageSize()}&cursor=${cursor}`);
        this.#stop(); // a refresh still on its way knows fewer rows: it would take the new ones away again
        this.#apply(page, true);
        if (this.#active()) this.#schedule(POLL_MS);
        const added = [...this.#rows.values()].find((row) => !before.has(row.key));
        if (more.hidden && added) added.parts.button.focus(); // keep the keyboard in the list
      } catch (error) {
        this.#toast(`Couldn't load more items: ${error.message}.`, "error");
      } finally {
        this.#busy.delete("more");
        setAttr(more, "aria-disabled", null);
      }
    }

    // ---- rendering in place ----------------------------------------------------------------------------

    // A listing page becomes the rows: replaced (a refresh of every shown row) or appended ("Show more").
    #apply(page, append) {
      if (!append) this.#count = page.count;
      this.#nextCursor = page.nextCursor || null;
      const panel = this.#$(".panel");
      const inPanel = panel.contains(this.#root.activeElement);
      const focused = this.#root.activeElement?.closest?.("li.item")?.dataset.key;
      const order = [...this.#root.querySelectorAll("li.item")].map((li) => li.dataset.key);
      for (const kind of KINDS) {
        const incoming = page[kind.key] || [];
        this.#items[kind.key] = append
          ? [...this.#items[kind.key], ...incoming.filter((i) => !this.#rows.has(`${kind.type}:${i.id}`))]
          : incoming;
      }
      const keep = new Set(KINDS.flatMap((kind) => this.#items[kind.key].map((i) => `${kind.type}:${i.id}`)));
      const generated = [];
      for (const [key, row] of this.#rows) {
        if (keep.has(key)) continue;
        row.li.remove(); // removed first, so that no kept row has to move (a moved node loses focus)
        this.#rows.delete(key);
        if (this.#queuedHere.has(key)) {
          this.#generated(key, this.#queuedHere.get(key));
          generated.push(key);
        }
        this.#queuedHere.delete(key);
      }
      if (generated.length) this.#showImages(generated.slice(0, 10));
      for (const kind of KINDS) this.#reconcile(kind, this.#items[kind.key]);
      this.#renderSummary();
      if (focused && !keep.has(focused)) this.#refocus(order, order.indexOf(focused));
      else if (inPanel && panel.hidden) this.#$(".status").focus(); // the last image arrived
    }

    #reconcile(kind, items) {
      const list = this.#$(`[data-kind="${kind.key}"] .items`);
      items.forEach((item, index) => {
        const key = `${kind.type}:${item.id}`;
        let row = this.#rows.get(key);
        if (!row) {
          row = this.#createRow(kind, key);
          this.#rows.set(key, row);
        }
        row.item = item;
        this.#renderRow(row);
        if (list.children[index] !== row.li) list.insertBefore(row.li, list.children[index] || null);
      });
    }

    // The focused row went away (its image arrived): focus the next row in `order` (the rows as they were
    // shown), or the one before, or the toolbar, or the status line when the panel itself is gone.
    #refocus(order, index) {
      const kept = (key) => this.#rows.has(key);
      const key = order.slice(index + 1).find(kept) ?? order.slice(0, index).reverse().find(kept);
      if (key) this.#rows.get(key).parts.button.focus();
      else if (this.#count > 0) this.#$(".generate-all").focus();
      else this.#$(".status").focus();
    }

    #createRow(kind, key) {
      const li = document.createElement("li");
      li.className = "item";
      li.dataset.key = key;
      li.innerHTML = `
        <div class="item-text">
          <div class="item-name"></div>
          <div class="item-context"></div>
          <div class="item-reason"></div>
        </div>
        <span class="badge"></span>
        <button type="button" class="item-action"></button>`;
      const parts = {
        name: li.querySelector(".item-name"),
        context: li.querySelector(".item-context"),
        reason: li.querySelector(".item-reason"),
        badge: li.querySelector(".badge"),
        button: li.querySelector("button"),
      };
      const row = { li, kind, key, item: null, parts };
      parts.button.addEventListener("click", () => {
        if (parts.button.getAttribute("aria-disabled") !== "true") {
          this.#queue(key, { [kind.idsField]: [row.item.id] }, 1, `the image for ${this.#subject(row)}`);
        }
      });
      return row;
    }

    // "Eiffel Tower Tour, Big Euro Adventure, Paris to Rome": the row's name with its parents, for names
    // that tell two rows apart ("Hotel" in two trips) and for messages.
    #subject(row) {
      return [row.kind.label(row.item) || row.item.id, ...this.#parents(row.kind, row.item)].join(", ");
    }

    #parents(kind, item) {
      if (kind.key === "segments") return [item.tripTitle].filter(Boolean);
      if (kind.key === "reservations") return [item.tripTitle, item.segmentName].filter(Boolean);
      return [];
    }

    #renderRow(row) {
      const { item, kind, parts } = row;
      const status = statusOf(item);
      const name = kind.label(item) || item.id;
      setText(parts.name, name);
      setAttr(parts.name, "title", name);
      const parents = this.#parents(kind, item).join(" · ");
      setText(parts.context, parents);
      setAttr(parts.context, "title", parents || null);
      parts.context.hidden = !parents;
      const reason = item.imageError && status !== "missing" ? reasonText(item.imageError) : "";
      setText(parts.reason, reason);
      parts.reason.hidden = !reason;
      setAttr(parts.badge, "class", `badge badge-${status}`);
      setText(parts.badge, STATUS_TEXT[status] || status);

      const busy = this.#busy.has(row.key);
      const waiting = busy || IN_PROGRESS.has(status);
      let label = status === "failed" ? "Retry" : "Generate";
      if (IN_PROGRESS.has(status)) label = STATUS_TEXT[status];
      if (busy) label = "Queueing";
      setText(parts.button, busy ? `${label}…` : label);
      setAttr(parts.button, "aria-label", `${label} image for ${this.#subject(row)}`);
      setAttr(parts.button, "aria-disabled", waiting ? "true" : null); // stays focusable: focus is not lost
    }

    #queueable() {
      let unavailable = 0;
      for (const row of this.#rows.values()) {
        const status = statusOf(row.item);
        if (IN_PROGRESS.has(status) || (status === "failed" && PERMANENT.has(row.item.imageError))) unavailable += 1;
      }
      return Math.max(0, this.#count - unavailable);
    }

    #failed() {
      return [...this.#rows.values()].filter((row) => statusOf(row.item) === "failed").length;
    }

    #renderSummary() {
      const count = this.#count;
      this.#setStatus(count ? "" : "Every trip, segment and reservation has its image.");
      this.#$(".panel").hidden = count === 0;
      setText(this.#$(".banner-text"), `${plural(count, "item")} missing images`);

      const all = this.#$(".generate-all");
      const queueable = this.#queueable();
      const busy = this.#busy.has("all");
      let label = queueable === 1 ? "Generate 1 image" : `Generate all ${queueable} images`;
      if (queueable === 0) label = "Generate all images";
      setText(all, busy ? "Queueing…" : label);
      setAttr(all, "aria-disabled", busy || queueable === 0 ? "true" : null);
      setText(
        this.#$(".hint"),
        queueable === 0 && !busy
          ? "Nothing to generate: every image is queued, being generated, or failed in a way only Retry can fix."
          : this.#estimate(queueable),
      );

      const retry = this.#$(".retry-failed");
      const failed = this.#failed();
      retry.hidden = failed === 0;
      setText(retry, this.#busy.has("failed") ? "Queueing…" : `Retry failed (${failed})`);
      setAttr(retry, "aria-disabled", this.#busy.has("failed") ? "true" : null);

      for (const kind of KINDS) {
        const items = this.#items[kind.key];
        this.#$(`[data-kind="${kind.key}"]`).hidden = items.length === 0;
        setText(this.#$(`#${kind.key}-heading`), `${kind.title} (${items.length})`);
      }
      const shown = this.#rows.size;
      const more = this.#$(".more");
      more.hidden = !this.#nextCursor;
      setText(more, `Show more (${Math.max(0, count - shown)} not shown)`);
      this.#renderProgress();
    }

    // "About $0.20 for 5 images; 3 left in today's image budget.", or "" without an estimate.
    #estimate(count) {
      const cost = this.#budget?.estimatedCostPerImage;
      if (!count || cost == null) return "";
      const left = this.#budget.remainingToday;
      const budget = left == null ? "" : `; ${left} left in today's image budget`;
      return `About $${(count * cost).toFixed(2)} for ${plural(count, "image")}${budget}.`;
    }

    #renderProgress() {
      let banner = "";
      let body = "";
      const batches = [...this.#batches.values()].filter((b) => b.progress);
      if (batches.length) {
        let done = 0;
        let total = 0;
        for (const { expected, progress } of batches) {
          done += progress.succeeded + progress.failed;
          total += progress.complete ? progress.total : Math.max(progress.total, expected);
        }
        banner = `${done} of ${total} done`;
        body = `Generating images: ${banner}.`;
      } else {
        const working = [...this.#rows.values()].filter((row) => IN_PROGRESS.has(statusOf(row.item))).length;
        if (working) {
          banner = `${working} in progress`;
          body = `${plural(working, "image")} queued or being generated.`;
        }
      }
      setText(this.#$(".banner-progress"), banner);
      setText(this.#$(".progress"), body);
    }

    #setStatus(text) {
      setText(this.#$(".status"), text);
    }

    #toggle() {
      const banner = this.#$(".banner");
      const expanded = banner.getAttribute("aria-expanded") !== "true";
      banner.setAttribute("aria-expanded", String(expanded));
      this.#$(".body").hidden = !expanded;
    }

    // ---- queueing ------------------------------------------------------------------------------------------

    #styleId() {
      return this.#$("#style").value || undefined;
    }

    async #generateAll() {
      const all = this.#$(".generate-all");
      if (all.getAttribute("aria-disabled") === "true") return;
      const count = this.#queueable();
      const asked = await this.#askForBulk(count, count > intAttr(this, "confirm-above", 50));
      if (asked) await this.#queue("all", { all: true, ...asked }, count, plural(count, "image"));
      all.focus();
    }

    async #retryFailed() {
      if (this.#$(".retry-failed").getAttribute("aria-disabled") === "true") return;
      const count = this.#failed();
      const asked = await this.#askForBulk(count, false);
      if (asked) await this.#queue("failed", { retryFailed: true, ...asked }, count, `the ${plural(count, "failed image")}`);
      const retry = this.#$(".retry-failed");
      (retry.hidden ? this.#$(".generate-all") : retry).focus();
    }

    // Before a bulk request: the day's image budget (GET /budget; none if it cannot be read) gives the estimate,
    // and a request over what the day has left, or a large one, is confirmed first. Resolves to the extra body
    // fields to send, or null when the person cancelled.
    async #askForBulk(count, large) {
      const budget = await this.#api("GET", "/budget").catch(() => null);
      if (budget) this.#budget = budget;
      const over = budget?.remainingToday != null && count > budget.remainingToday;
      if ((large || over) && !(await this.#confirm(count, budget))) return null;
      return over ? { confirmOverBudget: true } : {};
    }

    // `budget`: GET /budget's answer, or the details of a 409 over_budget (the same fields), or null.
    #confirm(count, budget = null) {
      const dialog = this.#$(".confirm");
      const style = this.#$("#style").selectedOptions[0]?.textContent || "default";
      const cost = budget?.estimatedCostPerImage;
      const about = cost == null ? "" : `, about $${(count * cost).toFixed(2)}`;
      const left = budget?.remainingToday;
      const waits =
        left != null && count > left
          ? ` Today's image budget has ${left} of ${budget.dailyImages} left: the other ${count - left} wait ` +
            "until it renews at midnight UTC."
          : "";
      setText(this.#$("#confirm-title"), `Generate ${plural(count, "image")}?`);
      setText(
        this.#$("#confirm-text"),
        `This queues ${plural(count, "image")} in the ${style} style${about}. They are generated in the ` +
          `background; large runs take a while.${waits}`,
      );
      setText(dialog.querySelector("[value=confirm]"), `Generate ${plural(count, "image")}`);
      dialog.returnValue = "";
      return new Promise((resolve) => {
        dialog.addEventListener("close", () => resolve(dialog.returnValue === "confirm"), { once: true });
        dialog.showModal();
      });
    }

    // POST /image-jobs for `selection`; `expected` is how many it should queue (the fan-out adds the rest).
    async #queue(key, selection, expected, what) {
      this.#busy.add(key);
      this.#rerender();
      try {
        const result = await this.#post(selection);
        const queued = result.items.filter((i) => i.outcome === "queued");
        for (const outcome of queued) {
          const row = this.#rows.get(`${outcome.type}:${outcome.id}`);
          if (!row) continue;
          row.item = { ...row.item, imageStatus: "queued", imageError: null };
          this.#queuedHere.set(row.key, this.#subject(row));
        }
        if (queued.length || !result.complete) {
          this.#batches.set(result.batchId, { expected: Math.max(expected, queued.length), progress: null });
          this.#saveBatches();
        }
        const { text, failed } = this.#describe(result, expected);
        this.#toast(text, failed ? "error" : "success");
      } catch (error) {
        this.#toast(`Couldn't queue ${what}: ${error.message}.`, "error");
      } finally {
        this.#busy.delete(key);
        this.#rerender();
      }
      this.#refresh();
    }

    // POST /image-jobs; a request the API finds over the day's image budget (409 over_budget, e.g. the budget
    // changed since it was estimated) is shown to the person and sent again only if they confirm it.
    async #post(selection) {
      const body = { ...selection, styleId: this.#styleId() };
      try {
        return await this.#api("POST", "/image-jobs", body);
      } catch (error) {
        if (error.code !== "over_budget" || !(await this.#confirm(error.details.images, error.details))) throw error;
        return this.#api("POST", "/image-jobs", { ...body, confirmOverBudget: true });
      }
    }

    // A row this page queued left the listing: it has its image now, shown with its name, newest first, ten at
    // most. The listing holds only records without one, so the images come from GET /images, for every row
    // that left in one refresh at once (#showImages); until they do, or if they cannot, the name stands alone.
    #generated(key, subject) {
      const item = document.createElement("li");
      item.dataset.key = key;
      const caption = document.createElement("span");
      caption.textContent = subject;
      item.append(caption);
      const list = this.#$(".recent-list");
      list.prepend(item);
      while (list.children.length > 10) list.lastElementChild.remove();
      this.#$(".recent").hidden = false;
    }

    async #showImages(keys) {
      const query = keys
        .map((key) => {
          const at = key.indexOf(":");
          return `${key.slice(0, at)}=${encodeURIComponent(key.slice(at + 1))}`;
        })
        .join("&");
      let images;
      try {
        ({ images } = await this.#api("GET", `/images?${query}`));
      } catch {
        return; // the names stay; the images are a nicety
      }
      const items = [...this.#$(".recent-list").children];
      for (const image of images) {
        const item = items.find((li) => li.dataset.key === `${image.type}:${image.id}`);
        if (!item || item.querySelector("img") || !/^https?:\/\//i.test(image.imageUrl)) continue;
        const img = document.createElement("img");
        img.src = image.imageUrl;
        img.alt = ""; // the caption beside it names the record
        img.width = img.height = 48;
        img.loading = "lazy";
        item.prepend(img);
      }
    }

    #rerender() {
      if (this.#record) {
        this.#renderRecord();
        return;
      }
      for (const row of this.#rows.values()) this.#renderRow(row);
      this.#renderSummary();
    }

    async #regenerate() {
      if (this.#$(".regenerate").getAttribute("aria-disabled") === "true") return;
      const { kind, id } = this.#record;
      this.#setStatus("");
      await this.#queue("record", { [kind.idsField]: [id], regenerate: true }, 1, "a new image");
    }

    // The record's action waits (and keeps focus) while its request is queued or generating.
    #renderRecord() {
      const progress = [...this.#batches.values()][0]?.progress;
      const busy = this.#busy.has("record");
      const working = busy || this.#batches.size > 0;
      const button = this.#$(".regenerate");
      setText(button, busy ? "Queueing…" : working ? "Regenerating…" : "Regenerate image");
      setAttr(button, "aria-disabled", working ? "true" : null);
      if (progress) this.#setStatus(progress.generating ? "Generating the new image…" : "Waiting in the queue…");
    }

    #describe(result, expected) {
      const totals = { queued: 0, skipped: 0, failed: 0 };
      for (const summary of Object.values(result.summary)) {
        for (const name of Object.keys(totals)) totals[name] += summary[name] || 0;
      }
      let text = `Queued ${plural(totals.queued, "image")}`;
      if (!result.complete) {
        text = `Queued ${totals.queued} of ${plural(Math.max(expected, totals.queued), "image")}; the rest are being queued`;
      }
      const reasons = [...new Set(result.items.filter((i) => i.outcome !== "queued").map((i) => i.reason))];
      const others = totals.skipped + totals.failed;
      if (others) text += `; ${others} not queued: ${reasons.map((code) => reasonText(code)).join("; ")}`;
      return { text: `${text}.`, failed: totals.failed };
    }

    // Progress of this page's requests; a request that has ended says how it went and stops being followed.
    #track(progress) {
      for (const p of progress) {
        const batch = this.#batches.get(p.batchId);
        if (!batch) continue;
        if (p.gone) {
          this.#batches.delete(p.batchId);
          continue;
        }
        batch.progress = p;
        if (p.complete && p.queued + p.generating === 0) {
          this.#batches.delete(p.batchId);
          if (this.#record) {
            this.#setStatus(
              p.failed ? "The new image could not be made; the old one is kept." : "The new image is ready.",
            );
          } else if (p.failed) {
            this.#toast(`${p.succeeded} of ${plural(p.total, "image")} generated, ${p.failed} failed; the list says why.`, "error");
          } else {
            this.#toast(`${plural(p.succeeded, "image")} generated.`);
          }
        }
      }
      this.#saveBatches();
      if (this.#record) this.#renderRecord();
      else this.#renderProgress();
    }

    // Batches survive a reload of the page (sessionStorage), so their progress keeps showing.
    #storageKey() {
      const record = this.#record ? `:${this.#record.kind.type}:${this.#record.id}` : "";
      return `missing-images-panel:batches:${this.apiBase}${record}`;
    }

    #saveBatches() {
      const saved = [...this.#batches].map(([id, batch]) => [id, batch.expected]);
      try {
        sessionStorage.setItem(this.#storageKey(), JSON.stringify(saved));
      } catch {
        // storage is full or refused: progress is then followed for this page only
      }
    }

    #restoreBatches() {
      try {
        const saved = JSON.parse(sessionStorage.getItem(this.#storageKey()) || "[]");
        this.#batches = new Map(saved.map(([id, expected]) => [id, { expected, progress: null }]));
      } catch {
        this.#batches = new Map();
      }
    }

    // The day's image budget and an image's estimated cost (GET /budget), for the estimate beside Generate All;
    // read once, and again before each bulk request (#askForBulk). Without it there is no estimate, nothing else.
    async #loadBudget() {
      this.#budget = null;
      this.#budget = await this.#api("GET", "/budget").catch(() => null);
      this.#renderSummary();
    }

    async #loadStyles() {
      this.#stylesLoaded = true;
      try {
        const { styles } = await this.#api("GET", "/styles");
        this.#$("#style").replaceChildren(
          ...styles.map((style) => {
            const option = new Option(style.name, style.id, style.isDefault, style.isDefault);
            if (style.description) option.title = style.description;
            return option;
          }),
        );
      } catch (error) {
        this.#toast(`Couldn't load the styles, so the default style is used: ${error.message}.`, "error");
      }
    }

    // ---- toasts: at most MAX_TOASTS, each dismissable; errors stay until dismissed ------------------------

    #toast(message, kind = "success") {
      const toasts = this.#$(".toasts");
      const node = document.createElement("div");
      node.className = `toast toast-${kind}`;
      if (kind === "error") node.setAttribute("role", "alert");
      const text = document.createElement("p");
      text.textContent = message;
      const close = document.createElement("button");
      close.type = "button";
      close.className = "toast-close";
      close.textContent = "×";
      close.setAttribute("aria-label", "Dismiss");
      close.addEventListener("click", () => this.#dismiss(node));
      node.append(text, close);
      toasts.append(node);
      while (toasts.children.length > MAX_TOASTS) {
        this.#dismiss(toasts.querySelector(".toast-success") || toasts.firstElementChild);
      }
      if (kind !== "error") setTimeout(() => this.#dismiss(node), TOAST_MS);
    }

    #dismiss(node) {
      if (!node.isConnected) return;
      const hadFocus = node.contains(this.#root.activeElement);
      const next = node.nextElementSibling || node.previousElementSibling;
      node.remove();
      if (!hadFocus) return;
      if (next) next.querySelector(".toast-close").focus();
      else if (this.#record) this.#$(".regenerate").focus();
      else (this.#$(".panel").hidden ? this.#$(".status") : this.#$(".banner")).focus();
    }
  }

  customElements.define("missing-images-panel", MissingImagesPanel);
})();
