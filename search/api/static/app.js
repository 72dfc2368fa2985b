// AssetLens search page: plain JavaScript, no build step.
// Every piece of data from the server reaches the page through textContent or attributes set
// from code, never through innerHTML.
"use strict";

(() => {
  const KEY_STORE = "assetlens.apiKey";
  const PAGE_SIZE = 24;
  const THUMB_SIZE = 256;
  const THUMB_CONCURRENCY = 6;
  const FACET_LIMIT = 12;

  const $ = (id) => document.getElementById(id);
  const el = {
    keyForm: $("key-form"), key: $("api-key"), keyState: $("key-state"),
    form: $("search-form"), q: $("q"), mode: $("mode"), filter: $("filter"), file: $("image-file"),
    kinds: $("facet-kind"), tags: $("facet-tags"),
    error: $("error"), status: $("status"), results: $("results"), more: $("load-more"),
    drop: $("drop-zone"), template: $("result-template"),
  };

  // --- the API ---------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, title, detail, doc = {}) {
      super(detail ? `${title}: ${detail}` : title);
      this.status = status;
      this.title = title;
      this.detail = detail;
      this.type = typeof doc.type === "string" ? doc.type : "";
      this.position = Number.isInteger(doc.position) ? doc.position : null;
    }
  }

  function apiKey() {
    return (localStorage.getItem(KEY_STORE) || "").trim();
  }

  async function api(path, { method = "GET", json, form, signal } = {}) {
    const headers = { Accept: "application/json, application/problem+json" };
    const key = apiKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    let body;
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(json);
    } else if (form !== undefined) {
      body = form; // the browser sets the multipart boundary
    }
    let response;
    try {
      response = await fetch(path, { method, headers, body, signal });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "Network error", `the server could not be reached (${err.message})`);
    }
    if (!response.ok) throw await problem(response);
    return response;
  }

  // RFC 9457 problem details -> ApiError; anything else is shown as its status and a bit of text.
  async function problem(response) {
    let title = response.statusText || `HTTP ${response.status}`;
    let detail = "";
    try {
      const type = response.headers.get("content-type") || "";
      if (type.includes("json")) {
        const doc = await response.json();
        if (typeof doc.title === "string" && doc.title) title = doc.title;
        detail = describeDetail(doc.detail);
        if (!detail && Array.isArray(doc.errors)) detail = doc.errors.map(describeDetail).filter(Boolean).join("; ");
        else if (Array.isArray(doc.errors) && doc.errors.length > 1) detail += ` (and ${doc.errors.length - 1} more)`;
        return new ApiError(response.status, title, detail, doc);
      } else {
        detail = (await response.text()).trim().slice(0, 300);
      }
    } catch {
      // an unreadable body: the status line is all we have
    }
    return new ApiError(response.status, title, detail);
  }

  function describeDetail(d) {
    if (d === undefined || d === null) return "";
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map(describeDetail).filter(Boolean).join("; ");
    if (typeof d === "object") {
      const where = Array.isArray(d.loc) ? d.loc.join(".") : (d.field || d.pointer || "");
      const what = d.msg || d.message || d.detail || JSON.stringify(d);
      return where ? `${where}: ${what}` : String(what);
    }
    return String(d);
  }

  // --- messages ----------------------------------------------------------------------------

  function showError(err) {
    if (err && err.name === "AbortError") return;
    let text = err instanceof ApiError ? err.message : `Unexpected error: ${err && err.message ? err.message : err}`;
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      text += apiKey() ? " (check the API key above)" : " (enter an API key above)";
    }
    el.error.textContent = text;
    el.error.hidden = false;
    // A filter problem points at the filter field, at the column it names when it names one.
    if (err instanceof ApiError && /:(filter|field-type)$/.test(err.type)) {
      el.filter.setAttribute("aria-invalid", "true");
      el.filter.setAttribute("aria-describedby", "error");
      if (err.position !== null && err.position <= el.filter.value.length) {
        el.filter.focus();
        el.filter.setSelectionRange(err.position, Math.min(el.filter.value.length, err.position + 1));
      }
    }
  }

  function clearError() {
    el.error.hidden = true;
    el.error.textContent = "";
    el.filter.removeAttribute("aria-invalid");
    el.filter.removeAttribute("aria-describedby");
  }

  function setStatus(text) {
    el.status.textContent = text;
  }

  // --- the key -----------------------------------------------------------------------------

  function showKeyState() {
    el.keyState.textContent = apiKey() ? "saved in this browser" : "not set";
  }

  el.key.value = apiKey();
  showKeyState();
  function saveKey(event) {
    if (event) event.preventDefault();
    const value = el.key.value.trim();
    if (value) localStorage.setItem(KEY_STORE, value);
    else localStorage.removeItem(KEY_STORE);
    showKeyState();
    loadFacets();
  }
  el.keyForm.addEventListener("submit", saveKey);
  el.key.addEventListener("change", () => saveKey());

  // --- searches ----------------------------------------------------------------------------

  // The running search: `fetchPage(cursor)` returns a promise of a page; load more calls it again.
  let current = null;
  let generation = 0;

  function startSearch(label, fetchPage) {
    generation += 1;
    current = { label, fetchPage, cursor: null, shown: 0, generation };
    resetThumbnails();
    el.results.replaceChildren();
    el.more.hidden = true;
    clearError();
    setStatus(`Searching${label ? ` ${label}` : ""}…`);
    el.results.setAttribute("aria-busy", "true");
    return loadPage();
  }

  async function loadPage() {
    const search = current;
    if (!search) return;
    el.more.disabled = true;
    try {
      const page = await search.fetchPage(search.cursor);
      if (search.generation !== generation) return; // a newer search replaced this one
      const results = Array.isArray(page.results) ? page.results : [];
      for (const result of results) el.results.append(renderResult(result));
      search.cursor = page.next_cursor || null;
      search.shown += results.length;
      el.more.hidden = !search.cursor;
      const took = typeof page.took_ms === "number" ? ` in ${Math.round(page.took_ms)} ms` : "";
      const count = search.shown === 1 ? "1 result" : `${search.shown} results`;
      setStatus(search.shown ? `${count}${search.cursor ? " so far" : ""}${took} ${search.label}`.trim()
        : `No results ${search.label}`.trim());
    } catch (err) {
      if (search.generation !== generation) return;
      showError(err);
      setStatus(search.shown ? `${search.shown} results ${search.label}`.trim() : "Search failed.");
    } finally {
      if (search.generation === generation) {
        el.more.disabled = false;
        el.results.setAttribute("aria-busy", "false");
      }
    }
  }

  const filterValue = () => el.filter.value.trim();

  function textSearch() {
    const text = el.q.value.trim();
    const filter = filterValue();
    const mode = el.mode.value;
    if (!text && !filter) {
      showError(new ApiError(0, "Nothing to search for", "type some text or a filter, or drop an image"));
      return;
    }
    const body = { limit: PAGE_SIZE, mode };
    if (text) body.text = text;
    // A filter on its own lists its assets, newest first.
    else body.sort = "created:desc";
    if (filter) body.filter = filter;
    const label = [text ? `for “${text}”` : "", filter ? `where ${filter}` : ""].filter(Boolean).join(" ");
    loadFacets();
    return startSearch(label, async (cursor) => {
      const response = await api("/v1/search", { method: "POST", json: cursor ? { ...body, cursor } : body });
      return response.json();
    });
  }

  function similarToAsset(result) {
    const body = { asset_id: result.asset_id, limit: PAGE_SIZE };
    const filter = filterValue();
    if (filter) body.filter = filter;
    const label = `similar to ${baseName(result.uri)}${filter ? ` where ${filter}` : ""}`;
    window.scrollTo({ top: 0, behavior: "smooth" });
    return startSearch(label, async (cursor) => {
      const response = await api("/v1/similar", { method: "POST", json: cursor ? { ...body, cursor } : body });
      return response.json();
    });
  }

  function similarToFile(file) {
    if (!file) return;
    if (file.type && !file.type.startsWith("image/")) {
      showError(new ApiError(0, "Not an image", `${file.name} is ${file.type}; drop a JPEG, PNG or WebP image`));
      return;
    }
    const filter = filterValue();
    const label = `similar to ${file.name || "the dropped image"}${filter ? ` where ${filter}` : ""}`;
    return startSearch(label, async (cursor) => {
      const form = new FormData();
      form.append("file", file, file.name || "upload");
      form.append("limit", String(PAGE_SIZE));
      if (filter) form.append("filter", filter);
      if (cursor) form.append("cursor", cursor);
      const response = await api("/v1/similar", { method: "POST", form });
      return response.json();
    });
  }

  el.form.addEventListener("submit", (event) => {
    event.preventDefault();
    textSearch();
  });
  el.mode.addEventListener("change", () => {
    if (el.q.value.trim()) textSearch();
  });
  el.more.addEventListener("click", () => loadPage());
  el.file.addEventListener("change", () => {
    similarToFile(el.file.files && el.file.files[0]);
    el.file.value = ""; // picking the same file again searches again
  });

  // --- results -----------------------------------------------------------------------------

  function baseName(uri) {
    const s = String(uri || "");
    const cut = Math.max(s.lastIndexOf("/"), s.lastIndexOf("\\"));
    return cut >= 0 ? s.slice(cut + 1) || s : s;
  }

  function clock(seconds) {
    const total = Math.max(0, Math.floor(Number(seconds) || 0));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  const isNumber = (x) => typeof x === "number" && Number.isFinite(x);

  function renderResult(result) {
    const card = el.template.content.firstElementChild.cloneNode(true);
    const name = baseName(result.uri) || `asset ${result.asset_id}`;
    card.dataset.assetId = String(result.asset_id);

    const img = card.querySelector("img");
    img.alt = name;
    queueThumbnail(img, result.asset_id);

    const badge = card.querySelector(".badge");
    badge.textContent = result.kind || "";
    badge.hidden = !result.kind || result.kind === "image";

    const time = card.querySelector(".time");
    if (isNumber(result.t) && result.kind !== "image") {
      time.textContent = `▶ ${clock(result.t)}`;
      time.title = `matched at ${clock(result.t)}`;
    } else {
      time.hidden = true;
    }

    const title = card.querySelector(".name");
    title.textContent = name;
    title.title = String(result.uri || "");

    card.querySelector(".scores").append(...scoreParts(result));

    const said = card.querySelector(".said");
    const segment = result.segment;
    if (segment && typeof segment.text === "string" && segment.text.trim()) {
      const when = document.createElement("span");
      when.className = "when";
      when.textContent = isNumber(segment.start)
        ? `${clock(segment.start)}${isNumber(segment.end) ? `–${clock(segment.end)}` : ""}` : "";
      const words = document.createElement("q");
      words.textContent = segment.text.trim();
      said.append(when, " ", words);
      said.hidden = false;
    }

    // Text read in the picture (OCR) that matched the query: the line, and its frame time in a video.
    const read = result.explanation && result.explanation.ocr;
    const seen = card.querySelector(".read");
    if (read && typeof read.text === "string" && read.text.trim()) {
      const where = document.createElement("span");
      where.className = "when";
      where.textContent = isNumber(read.t) ? `text at ${clock(read.t)}` : "text";
      const words = document.createElement("q");
      words.textContent = read.text.trim();
      seen.append(where, " ", words);
      seen.hidden = false;
    }

    const tagList = card.querySelector(".tags");
    for (const tag of (Array.isArray(result.tags) ? result.tags : []).slice(0, 5)) {
      const item = document.createElement("li");
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "chip";
      chip.textContent = tag.tag;
      chip.title = `${tag.source || "tag"} ${isNumber(tag.score) ? tag.score.toFixed(3) : ""} — add tag:${tag.tag} to the filter`;
      chip.addEventListener("click", () => toggleTerm("tag", tag.tag));
      item.append(chip);
      tagList.append(item);
    }

    const similar = card.querySelector(".similar");
    similar.hidden = result.kind === "audio"; // sound has no picture to compare
    similar.setAttribute("aria-label", `Find assets similar to ${name}`);
    similar.addEventListener("click", () => similarToAsset(result));
    return card;
  }

  function scoreParts(result) {
    const parts = [];
    const add = (label, value, cls) => {
      const span = document.createElement("span");
      span.className = cls;
      span.textContent = label ? `${label} ${value}` : value;
      parts.push(span);
    };
    if (isNumber(result.score)) add("score", result.score.toFixed(3), "score");
    if (isNumber(result.relevance)) add("relevance", `${Math.round(result.relevance * 100)}%`, "relevance");
    if (result.match === "text" || result.match === "both") add("", result.match === "both" ? "words + image" : "words", "match");
    if (!parts.length) add("", "matched by filter", "match");
    return parts;
  }

  // --- thumbnails: fetched with the key (an <img> cannot send headers), shown as blob URLs ----

  let thumbQueue = [];
  let thumbActive = 0;
  let thumbUrls = [];
  let thumbAbort = new AbortController();

  function resetThumbnails() {
    thumbAbort.abort();
    thumbAbort = new AbortController();
    thumbQueue = [];
    for (const url of thumbUrls) URL.revokeObjectURL(url);
    thumbUrls = [];
  }

  function queueThumbnail(img, assetId) {
    thumbQueue.push({ img, assetId, signal: thumbAbort.signal });
    pumpThumbnails();
  }

  function pumpThumbnails() {
    while (thumbActive < THUMB_CONCURRENCY && thumbQueue.length) {
      const job = thumbQueue.shift();
      if (job.signal.aborted) continue;
      thumbActive += 1;
      loadThumbnail(job).finally(() => {
        thumbActive -= 1;
        pumpThumbnails();
      });
    }
  }

  async function loadThumbnail({ img, assetId, signal }) {
    const holder = img.parentElement;
    try {
      const response = await api(`/v1/assets/${encodeURIComponent(assetId)}/thumbnail?size=${THUMB_SIZE}`, { signal });
      const blob = await response.blob();
      if (signal.aborted) return;
      const url = URL.createObjectURL(blob);
      thumbUrls.push(url);
      img.src = url;
    } catch (err) {
      if (err.name === "AbortError") return;
      holder.classList.add("missing");
      holder.title = err instanceof ApiError ? `no thumbnail: ${err.message}` : "no thumbnail";
    }
  }

  // --- facets ------------------------------------------------------------------------------

  let facetGeneration = 0;

  // Facets are asked for with or without a key: a server with anonymous read serves them to
  // everyone, and one without answers 401, which the lists show with what to do.
  async function loadFacets() {
    const ticket = ++facetGeneration;
    const filter = filterValue();
    const query = (limit) => {
      const params = new URLSearchParams({ limit: String(limit) });
      if (filter) params.set("filter", filter);
      return params.toString();
    };
    const [kinds, tags] = await Promise.allSettled([
      api(`/v1/facets/kind?${query(FACET_LIMIT)}`).then((r) => r.json()),
      api(`/v1/facets/tag?${query(FACET_LIMIT)}`).then((r) => r.json()),
    ]);
    if (ticket !== facetGeneration) return;
    renderFacet(el.kinds, "kind", kinds);
    renderFacet(el.tags, "tag", tags);
  }

  // GET /v1/facets/{field} answers FacetsOut: {field, values: [{value, count}]}, most frequent
  // first. Anything else is a server the page does not know: say so rather than guess.
  function facetEntries(doc) {
    if (!doc || !Array.isArray(doc.values)) throw new Error("unexpected facets response");
    return doc.values.filter((e) => e && e.value !== null && e.value !== undefined && isNumber(e.count));
  }

  function facetMessage(list, text) {
    const item = document.createElement("li");
    item.className = "muted";
    item.textContent = text;
    list.replaceChildren(item);
  }

  function renderFacet(list, field, settled) {
    let entries;
    try {
      if (settled.status !== "fulfilled") throw settled.reason;
      entries = facetEntries(settled.value);
    } catch (err) {
      const denied = err instanceof ApiError && (err.status === 401 || err.status === 403);
      if (denied) facetMessage(list, apiKey() ? `${err.title}: check the API key` : "enter an API key");
      // A broken filter is reported by the search itself: keep the counts shown before.
      else if (!list.querySelector("button")) facetMessage(list, err instanceof ApiError ? err.title : err.message);
      return;
    }
    if (!entries.length) facetMessage(list, "none");
    else list.replaceChildren();
    for (const { value, count } of entries) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      const active = hasTerm(field, String(value));
      button.setAttribute("aria-pressed", String(active));
      const label = document.createElement("span");
      label.className = "value";
      label.textContent = String(value);
      const n = document.createElement("span");
      n.className = "count";
      n.textContent = String(count);
      button.append(label, n);
      button.title = active ? `remove ${field}:${value} from the filter` : `add ${field}:${value} to the filter`;
      button.addEventListener("click", () => toggleTerm(field, String(value)));
      item.append(button);
      list.append(item);
    }
  }

  // --- the compact filter string ----------------------------------------------------------

  function term(field, value) {
    const bare = /^[\p{L}\p{N}_.\-]+$/u.test(value) && !/^(OR|AND|NOT)$/.test(value);
    return `${field}:${bare ? value : `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`}`;
  }

  function hasTerm(field, value) {
    return splitTerms(el.filter.value).includes(term(field, value));
  }

  // Split on spaces outside quotes, so terms with quoted values stay whole.
  function splitTerms(text) {
    return text.match(/(?:[^\s"]+|"(?:[^"\\]|\\.)*")+/g) || [];
  }

  function toggleTerm(field, value) {
    const wanted = term(field, value);
    const terms = splitTerms(el.filter.value);
    const kept = terms.filter((t) => t !== wanted);
    el.filter.value = (kept.length === terms.length ? [...terms, wanted] : kept).join(" ");
    if (el.q.value.trim() || el.filter.value.trim()) textSearch();
    else loadFacets();
  }

  // --- drag and drop -----------------------------------------------------------------------

  let dragDepth = 0;
  const carriesFiles = (event) => Array.from(event.dataTransfer ? event.dataTransfer.types : []).includes("Files");

  document.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    dragDepth += 1;
    el.drop.hidden = false;
  });
  document.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("dragleave", (event) => {
    if (!carriesFiles(event)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) el.drop.hidden = true;
  });
  document.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    dragDepth = 0;
    el.drop.hidden = true;
    similarToFile(event.dataTransfer.files[0]);
  });

  loadFacets();
})();
