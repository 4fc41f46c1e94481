/* Vetting page of a cutout run (lsst.analysis.ap.vetting).
 *
 * Plain JavaScript, no library, no request: the records come from
 * records.js (window.CUTOUT_RECORDS, column by column), the images are the
 * run's PNGs next to this page.  The filter, sort, page and open source live
 * in the URL hash, so a view can be shared; labels live in localStorage.
 */
(function () {
  "use strict";

  const DATA = window.CUTOUT_RECORDS;
  const N = DATA.count;
  const COLUMNS = DATA.columns.map((c, i) => ({ name: c.name, kind: c.kind, values: DATA.values[i] }));
  const COL = new Map(COLUMNS.map((c) => [c.name, c]));
  const values = (name) => (COL.has(name) ? COL.get(name).values : null);
  const LABELS = DATA.labels;
  const LABEL_BY_KEY = new Map(LABELS.map((l) => [l.key, l]));
  const LABEL_COLOR = new Map(LABELS.map((l) => [l.name, l.color]));
  const BADGES = DATA.badges;
  const BADGE_COLOR = new Map(BADGES.map((b) => [b.name, b.color]));

  const ids = values("diaSourceId");
  const status = values("status") || new Array(N).fill("written");
  const paths = values("path") || new Array(N).fill("");
  const flagText = values("flags") || new Array(N).fill("");
  const rowOfId = new Map();
  for (let i = 0; i < N; i++) rowOfId.set(ids[i], i);

  // One bit per badge, so that a flag filter is an integer test.
  const BADGE_BIT = new Map(BADGES.map((b, i) => [b.name, 1 << i]));
  const flagBits = new Uint32Array(N);
  for (let i = 0; i < N; i++) {
    const text = flagText[i];
    if (!text) continue;
    for (const name of text.split(" ")) flagBits[i] |= BADGE_BIT.get(name) || 0;
  }

  // Frames of a DiaObject: the other records of the same object, in time order.
  const objectRows = new Map();
  const objectIds = values("diaObjectId");
  if (objectIds) {
    const time = values("midpointMjdTai") || values("visit");
    for (let i = 0; i < N; i++) {
      const obj = objectIds[i];
      if (obj === null || obj === "" || obj === "0") continue;
      if (!objectRows.has(obj)) objectRows.set(obj, []);
      objectRows.get(obj).push(i);
    }
    for (const rows of objectRows.values()) {
      rows.sort((a, b) => (time ? (time[a] ?? Infinity) - (time[b] ?? Infinity) : 0) || a - b);
    }
  }

  // Labels ------------------------------------------------------------------
  // One store per page address (the output directory, from file:// or over HTTP).
  const STORE = "cutout-vetting:" + location.origin + location.pathname.replace(/[^/]*$/, "");
  let labels = {};
  try {
    labels = JSON.parse(localStorage.getItem(STORE) || "{}") || {};
  } catch (error) {
    labels = {};
  }
  const recordLabel = values("label");
  const recordLabelTime = values("label_time");
  if (recordLabel) {
    for (let i = 0; i < N; i++) {
      if (recordLabel[i] && !(ids[i] in labels)) {
        labels[ids[i]] = [recordLabel[i], (recordLabelTime && recordLabelTime[i]) || ""];
      }
    }
  }
  function saveLabels() {
    try {
      localStorage.setItem(STORE, JSON.stringify(labels));
    } catch (error) {
      document.getElementById("label-counts").textContent = "labels could not be saved: " + error;
    }
  }
  function setLabel(row, name) {
    labels[ids[row]] = [name, new Date().toISOString()];
    saveLabels();
    updateLabelMarks();
  }
  function labelOf(row) {
    const entry = labels[ids[row]];
    return entry ? entry[0] : "";
  }
  function labelsCsv() {
    const rows = Object.entries(labels).sort((a, b) => (a[1][1] < b[1][1] ? -1 : a[1][1] > b[1][1] ? 1 : 0));
    const lines = ["diaSourceId,label,time"];
    for (const [id, [label, time]] of rows) lines.push(`${id},${label},${time}`);
    return lines.join("\n") + "\n";
  }
  function exportLabels() {
    const blob = new Blob([labelsCsv()], { type: "text/csv" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "cutout-labels.csv";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  // State in the URL hash ------------------------------------------------------
  const DEFAULTS = {
    status: "present", flag: "", band: "", visit: "", detector: "", rmin: "", rmax: "", label: "",
    sort: "diaSourceId", dir: "asc", view: "grid", size: "100", page: "0", open: "", zoo: "",
  };
  const FILTER_KEYS = ["status", "flag", "band", "visit", "detector", "rmin", "rmax", "label", "sort", "dir"];
  let state = readHash();

  function readHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    const result = { ...DEFAULTS };
    for (const key of Object.keys(DEFAULTS)) if (params.has(key)) result[key] = params.get(key);
    if (!COL.has(result.sort)) result.sort = DEFAULTS.sort;
    return result;
  }
  function hashOf(s) {
    const params = new URLSearchParams();
    for (const key of Object.keys(DEFAULTS)) if (s[key] !== DEFAULTS[key]) params.set(key, s[key]);
    return params.toString();
  }
  function writeHash() {
    const hash = hashOf(state);
    if (location.hash.replace(/^#/, "") !== hash) history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
  }

  // Filtering and sorting --------------------------------------------------------
  let order = new Int32Array(0); // rows shown, in order
  let cursor = 0; // position in order of the current source

  function numberOrNull(text) {
    if (text === "" || text === null || text === undefined) return null;
    const value = Number(text);
    return Number.isFinite(value) ? value : null;
  }
  function applyFilters() {
    const band = values("band");
    const visit = values("visit");
    const detector = values("detector");
    const reliability = values("reliability");
    const wantVisit = numberOrNull(state.visit);
    const wantDetector = numberOrNull(state.detector);
    const rmin = numberOrNull(state.rmin);
    const rmax = numberOrNull(state.rmax);
    const flag = state.flag;
    const bit = BADGE_BIT.get(flag) || 0;
    const rows = [];
    for (let i = 0; i < N; i++) {
      const s = status[i];
      if (state.status === "present") {
        if (s !== "written" && s !== "skipped") continue;
      } else if (state.status !== "all" && s !== state.status) continue;
      if (flag === "+" ? flagBits[i] === 0 : flag === "-" ? flagBits[i] !== 0 : bit && !(flagBits[i] & bit)) continue;
      if (state.band && (!band || band[i] !== state.band)) continue;
      if (wantVisit !== null && (!visit || visit[i] !== wantVisit)) continue;
      if (wantDetector !== null && (!detector || detector[i] !== wantDetector)) continue;
      if (rmin !== null || rmax !== null) {
        const r = reliability ? reliability[i] : null;
        if (r === null || (rmin !== null && r < rmin) || (rmax !== null && r > rmax)) continue;
      }
      if (state.label) {
        const l = labelOf(i);
        if (state.label === "-" ? l !== "" : l !== state.label) continue;
      }
      rows.push(i);
    }
    order = Int32Array.from(rows);
    sortRows();
  }
  function compareIds(a, b) {
    // Non-negative integer ids as text: shorter is smaller.
    if (a === b) return 0;
    if (a === null) return 1;
    if (b === null) return -1;
    const sa = a[0] === "-", sb = b[0] === "-";
    if (sa !== sb) return sa ? -1 : 1;
    const c = a.length - b.length || (a < b ? -1 : 1);
    return sa ? -c : c;
  }
  function sortRows() {
    const column = COL.get(state.sort) || COL.get("diaSourceId");
    const v = column.values;
    const sign = state.dir === "desc" ? -1 : 1;
    let cmp;
    if (column.kind === "number") {
      cmp = (a, b) => {
        const x = v[a], y = v[b];
        if (x === null || y === null) return x === y ? a - b : x === null ? 1 : -1; // missing last
        return sign * (x - y) || a - b;
      };
    } else if (column.kind === "id") {
      cmp = (a, b) => {
        if (v[a] === null || v[b] === null) return v[a] === v[b] ? a - b : v[a] === null ? 1 : -1;
        return sign * compareIds(v[a], v[b]) || a - b;
      };
    } else {
      cmp = (a, b) => {
        const x = v[a], y = v[b];
        if (x === y) return a - b;
        if (x === "") return 1;
        if (y === "") return -1;
        return sign * (x < y ? -1 : 1);
      };
    }
    order.sort(cmp);
  }

  // Rendering ------------------------------------------------------------------
  const el = (id) => document.getElementById(id);
  const grid = el("grid");
  const table = el("table");
  const detail = el("detail");

  function pageSize() {
    return Math.max(1, parseInt(state.size, 10) || 100);
  }
  function pageCount() {
    return Math.max(1, Math.ceil(order.length / pageSize()));
  }
  function fmt(column, value, full) {
    if (value === null || value === undefined || value === "") return "—";
    if (column && column.kind === "number" && !Number.isInteger(value)) {
      if (full) return String(value);
      if (column.name === "ra" || column.name === "dec") return value.toFixed(6);
      const a = Math.abs(value);
      return a !== 0 && (a < 1e-3 || a >= 1e6) ? value.toExponential(3) : String(Number(value.toPrecision(5)));
    }
    return String(value);
  }
  function cell(name, row) {
    const column = COL.get(name);
    return column ? fmt(column, column.values[row]) : "—";
  }
  function imageUrl(path) {
    return path.split("/").map(encodeURIComponent).join("/");
  }
  function badgesHtml(row, into) {
    const text = flagText[row];
    if (!text) return;
    for (const name of text.split(" ")) {
      const span = document.createElement("span");
      span.className = "badge";
      span.textContent = name;
      span.style.background = BADGE_COLOR.get(name) || "#555";
      into.appendChild(span);
    }
  }
  function labelMark(row, span) {
    const label = labelOf(row);
    span.textContent = label;
    span.style.background = LABEL_COLOR.get(label) || "";
    span.dataset.label = label;
  }
  function hasImage(row) {
    return (status[row] === "written" || status[row] === "skipped") && paths[row];
  }
  function failedBox(row) {
    const box = document.createElement("div");
    box.className = "failed-box";
    const code = cell("reason_code", row);
    box.textContent = `${status[row]}: ${code}` + (COL.has("reason") ? ` — ${cell("reason", row)}` : "");
    return box;
  }

  function render() {
    const size = pageSize();
    let page = Math.min(Math.max(0, parseInt(state.page, 10) || 0), pageCount() - 1);
    state.page = String(page);
    const start = page * size;
    const stop = Math.min(order.length, start + size);
    el("counts").textContent =
      `${order.length} of ${N} source(s) shown` + (order.length ? ` (${start + 1}–${stop})` : "");
    el("page-info").textContent = `page ${page + 1} of ${pageCount()}`;
    el("prev-page").disabled = page === 0;
    el("next-page").disabled = page >= pageCount() - 1;
    el("empty").hidden = order.length > 0;
    grid.hidden = state.view !== "grid";
    table.hidden = state.view !== "table";
    if (state.view === "grid") {
      table.tBodies[0].replaceChildren();
      renderGrid(start, stop);
    } else {
      grid.replaceChildren();
      renderTable(start, stop);
    }
    updateLabelCounts();
    markCurrent();
    writeHash();
  }
  function renderGrid(start, stop) {
    const fragment = document.createDocumentFragment();
    for (let k = start; k < stop; k++) {
      const row = order[k];
      const card = document.createElement("div");
      card.className = "card";
      card.setAttribute("role", "listitem");
      card.dataset.id = ids[row];
      card.dataset.pos = String(k);
      if (hasImage(row)) {
        const img = document.createElement("img");
        img.className = "thumb";
        img.loading = "lazy";
        img.decoding = "async";
        img.alt = `cutout of ${ids[row]}`;
        img.src = imageUrl(paths[row]);
        card.appendChild(img);
      } else {
        card.appendChild(failedBox(row));
      }
      const caption = document.createElement("div");
      caption.className = "caption";
      const parts = [
        ["id", ids[row]],
        ["", `v${cell("visit", row)} d${cell("detector", row)}`],
        ["", cell("band", row)],
      ];
      if (COL.has("snr")) parts.push(["", "S/N " + cell("snr", row)]);
      if (COL.has("reliability")) parts.push(["", "rel " + cell("reliability", row)]);
      for (const [cls, text] of parts) {
        const span = document.createElement("span");
        if (cls) span.className = cls;
        span.textContent = text;
        caption.appendChild(span);
      }
      const flags = document.createElement("span");
      badgesHtml(row, flags);
      caption.appendChild(flags);
      card.appendChild(caption);
      const mark = document.createElement("span");
      mark.className = "label-mark";
      labelMark(row, mark);
      card.appendChild(mark);
      fragment.appendChild(card);
    }
    grid.replaceChildren(fragment);
  }
  const TABLE_COLUMNS = COLUMNS.map((c) => c.name).filter((n) => n !== "path");
  function renderTable(start, stop) {
    const head = document.createElement("tr");
    for (const name of ["label", ...TABLE_COLUMNS.filter((n) => n !== "label")]) {
      const th = document.createElement("th");
      th.textContent = name;
      th.dataset.column = name;
      if (name === state.sort) th.className = "sorted" + (state.dir === "desc" ? " desc" : "");
      head.appendChild(th);
    }
    table.tHead.replaceChildren(head);
    const fragment = document.createDocumentFragment();
    for (let k = start; k < stop; k++) {
      const row = order[k];
      const tr = document.createElement("tr");
      tr.dataset.id = ids[row];
      tr.dataset.pos = String(k);
      const labelCell = document.createElement("td");
      const mark = document.createElement("span");
      mark.className = "label-mark";
      labelMark(row, mark);
      labelCell.appendChild(mark);
      tr.appendChild(labelCell);
      for (const name of TABLE_COLUMNS) {
        if (name === "label") continue;
        const td = document.createElement("td");
        if (name === "flags") badgesHtml(row, td);
        else td.textContent = cell(name, row);
        if (name === "reason") td.className = "reason";
        tr.appendChild(td);
      }
      fragment.appendChild(tr);
    }
    table.tBodies[0].replaceChildren(fragment);
  }
  function visibleItems() {
    return state.view === "grid" ? grid.children : table.tBodies[0].rows;
  }
  function markCurrent() {
    for (const item of document.querySelectorAll(".current")) item.classList.remove("current");
    if (!order.length) return;
    const start = parseInt(state.page, 10) * pageSize();
    const item = visibleItems()[cursor - start];
    if (item) item.classList.add("current");
  }
  function updateLabelMarks() {
    for (const item of visibleItems()) {
      const mark = item.querySelector(".label-mark");
      if (mark) labelMark(rowOfId.get(item.dataset.id), mark);
    }
    if (!detail.hidden && order.length) labelMark(order[cursor], el("detail-label"));
    updateLabelCounts();
  }
  function updateLabelCounts() {
    const counts = {};
    let total = 0;
    for (const entry of Object.values(labels)) {
      counts[entry[0]] = (counts[entry[0]] || 0) + 1;
      total++;
    }
    el("label-counts").textContent =
      `labelled: ${total}` + (total ? " (" + LABELS.map((l) => `${l.name} ${counts[l.name] || 0}`).join(", ") + ")" : "");
  }

  // Large view -----------------------------------------------------------------
  function openDetail() {
    if (!order.length) return;
    const row = order[cursor];
    state.open = ids[row];
    detail.hidden = false;
    el("detail-title").textContent = `DiaSource ${ids[row]}  (${cursor + 1} of ${order.length})`;
    labelMark(row, el("detail-label"));
    const image = el("detail-image");
    const zoo = el("zoo-image");
    if (hasImage(row)) {
      const img = document.createElement("img");
      img.src = imageUrl(paths[row]);
      img.alt = `cutout of ${ids[row]}`;
      image.replaceChildren(img);
      const zimg = document.createElement("img");
      zimg.src = img.src;
      zimg.alt = "subject image";
      zoo.replaceChildren(zimg);
    } else {
      image.replaceChildren(failedBox(row));
      zoo.replaceChildren(document.createTextNode("No image: this source would not be a subject."));
    }
    const body = document.createElement("tbody");
    for (const column of COLUMNS) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = column.name;
      const td = document.createElement("td");
      if (column.name === "flags") badgesHtml(row, td);
      else td.textContent = fmt(column, column.values[row], true);
      tr.append(th, td);
      body.appendChild(tr);
    }
    el("detail-record").tBodies[0].replaceWith(body);
    renderFrames(row);
    el("zooniverse").hidden = state.zoo !== "1";
    writeHash();
  }
  function frameFigure(src, caption, isThis, onClick) {
    const figure = document.createElement("figure");
    if (isThis) figure.className = "this";
    const img = document.createElement("img");
    img.loading = "lazy";
    img.src = src;
    img.alt = caption;
    const text = document.createElement("figcaption");
    text.textContent = caption;
    figure.append(img, text);
    if (onClick) figure.addEventListener("click", onClick);
    return figure;
  }
  function renderFrames(row) {
    const box = el("detail-frames");
    const items = [];
    const obj = objectIds ? objectIds[row] : null;
    const others = obj && objectRows.has(obj) ? objectRows.get(obj).filter(hasImage) : [];
    if (others.length > 1) {
      const title = document.createElement("div");
      title.className = "frames-title";
      title.textContent = `DiaObject ${obj}: ${others.length} frames`;
      items.push(title);
      for (const other of others) {
        const caption = `${ids[other]} · visit ${cell("visit", other)} · ${cell("band", other)}` +
          (COL.has("midpointMjdTai") ? ` · MJD ${cell("midpointMjdTai", other)}` : "");
        items.push(frameFigure(imageUrl(paths[other]), caption, other === row, () => jumpTo(other)));
      }
    }
    const framePaths = values("frame_paths");
    const extra = framePaths && framePaths[row] ? framePaths[row].split(";").filter(Boolean) : [];
    const sequence = values("sequence_path");
    if (sequence && sequence[row]) extra.unshift(sequence[row]);
    if (extra.length) {
      const title = document.createElement("div");
      title.className = "frames-title";
      title.textContent = `Sequence of the DiaObject: ${extra.length} image(s)`;
      items.push(title);
      extra.forEach((p, k) => items.push(frameFigure(imageUrl(p.trim()), `${k + 1}: ${p.trim()}`, false, null)));
    }
    box.replaceChildren(...items);
  }
  function closeDetail() {
    detail.hidden = true;
    state.open = "";
    writeHash();
  }
  function jumpTo(row) {
    let pos = order.indexOf(row);
    if (pos < 0) {
      // Not under the current filters: show it without filters.
      Object.assign(state, { status: "all", flag: "", band: "", visit: "", detector: "", rmin: "", rmax: "", label: "" });
      syncForm();
      applyFilters();
      pos = order.indexOf(row);
    }
    moveTo(pos);
  }

  // Navigation -------------------------------------------------------------------
  function moveTo(pos) {
    if (!order.length) return;
    cursor = Math.min(Math.max(0, pos), order.length - 1);
    const page = Math.floor(cursor / pageSize());
    if (String(page) !== state.page) {
      state.page = String(page);
      render();
    } else {
      markCurrent();
    }
    const item = visibleItems()[cursor - page * pageSize()];
    if (item && detail.hidden) item.scrollIntoView({ block: "nearest" });
    if (!detail.hidden) openDetail();
    writeHash();
  }

  // Form <-> state -----------------------------------------------------------
  const FORM = {
    status: "f-status", flag: "f-flag", band: "f-band", visit: "f-visit", detector: "f-detector",
    rmin: "f-rmin", rmax: "f-rmax", label: "f-label", sort: "f-sort", dir: "f-dir", view: "f-view", size: "f-size",
  };
  function fillChoices() {
    const bands = values("band");
    if (bands) {
      const seen = [...new Set(bands.filter(Boolean))].sort();
      for (const b of seen) el("f-band").appendChild(new Option(b, b));
    }
    for (const column of COLUMNS) el("f-sort").appendChild(new Option(column.name, column.name));
  }
  function syncForm() {
    for (const [key, id] of Object.entries(FORM)) el(id).value = state[key];
  }
  function onFormChange(event) {
    const key = Object.keys(FORM).find((k) => FORM[k] === event.target.id);
    if (!key) return;
    state[key] = event.target.value;
    // Back to the page, so that the labelling and arrow keys work at once.
    if (event.target.tagName === "SELECT") event.target.blur();
    if (FILTER_KEYS.includes(key)) {
      applyFilters();
      cursor = 0;
      state.page = "0";
    } else if (key === "size") {
      state.page = String(Math.floor(cursor / pageSize()));
    }
    render();
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA")) {
      if (event.key === "Escape") target.blur();
      return;
    }
    const label = LABEL_BY_KEY.get(event.key);
    if (label && order.length) {
      setLabel(order[cursor], label.name);
      moveTo(cursor + 1);
      event.preventDefault();
      return;
    }
    switch (event.key) {
      case "ArrowRight":
      case "ArrowDown":
        moveTo(cursor + 1);
        break;
      case "ArrowLeft":
      case "ArrowUp":
        moveTo(cursor - 1);
        break;
      case "PageDown":
        moveTo(cursor + pageSize());
        break;
      case "PageUp":
        moveTo(cursor - pageSize());
        break;
      case "Enter":
        openDetail();
        break;
      case "Escape":
        closeDetail();
        break;
      case "z":
        state.zoo = state.zoo === "1" ? "" : "1";
        if (detail.hidden) openDetail();
        else el("zooniverse").hidden = state.zoo !== "1";
        writeHash();
        break;
      default:
        return;
    }
    event.preventDefault();
  }

  function clickedPosition(event) {
    const item = event.target.closest("[data-pos]");
    return item ? parseInt(item.dataset.pos, 10) : null;
  }

  function start() {
    fillChoices();
    syncForm();
    applyFilters();
    if (state.open && rowOfId.has(state.open)) {
      const pos = order.indexOf(rowOfId.get(state.open));
      if (pos >= 0) {
        cursor = pos;
        state.page = String(Math.floor(pos / pageSize()));
      }
    } else {
      cursor = Math.min(parseInt(state.page, 10) * pageSize() || 0, Math.max(0, order.length - 1));
    }
    render();
    if (state.open && rowOfId.has(state.open)) openDetail();

    el("filters").addEventListener("change", onFormChange);
    el("filters").addEventListener("submit", (event) => event.preventDefault());
    el("reset").addEventListener("click", () => {
      for (const key of FILTER_KEYS) state[key] = DEFAULTS[key];
      syncForm();
      applyFilters();
      cursor = 0;
      state.page = "0";
      render();
    });
    el("prev-page").addEventListener("click", () => moveTo((parseInt(state.page, 10) - 1) * pageSize()));
    el("next-page").addEventListener("click", () => moveTo((parseInt(state.page, 10) + 1) * pageSize()));
    el("export").addEventListener("click", exportLabels);
    grid.addEventListener("click", (event) => {
      const pos = clickedPosition(event);
      if (pos !== null) {
        moveTo(pos);
        openDetail();
      }
    });
    table.addEventListener("click", (event) => {
      const th = event.target.closest("th");
      if (th) {
        state.dir = state.sort === th.dataset.column && state.dir === "asc" ? "desc" : "asc";
        state.sort = th.dataset.column === "label" ? state.sort : th.dataset.column;
        syncForm();
        sortRows();
        render();
        return;
      }
      const pos = clickedPosition(event);
      if (pos !== null) moveTo(pos);
    });
    for (const button of document.querySelectorAll(".label-button")) {
      button.addEventListener("click", () => {
        setLabel(order[cursor], button.dataset.label);
        moveTo(cursor + 1);
      });
    }
    el("detail-prev").addEventListener("click", () => moveTo(cursor - 1));
    el("detail-next").addEventListener("click", () => moveTo(cursor + 1));
    el("detail-close").addEventListener("click", closeDetail);
    el("toggle-zooniverse").addEventListener("click", () => {
      state.zoo = state.zoo === "1" ? "" : "1";
      el("zooniverse").hidden = state.zoo !== "1";
      writeHash();
    });
    detail.addEventListener("click", (event) => {
      if (event.target === detail) closeDetail();
    });
    document.addEventListener("keydown", onKey);
    window.addEventListener("hashchange", () => {
      state = readHash();
      syncForm();
      applyFilters();
      cursor = Math.min(parseInt(state.page, 10) * pageSize() || 0, Math.max(0, order.length - 1));
      render();
      if (state.open && rowOfId.has(state.open)) jumpTo(rowOfId.get(state.open));
      else if (!detail.hidden) closeDetail();
    });
    window.vetting = { labelsCsv, shownIds: () => Array.from(order, (row) => ids[row]), state: () => ({ ...state }) };
    document.documentElement.dataset.ready = String(performance.now());
  }

  start();
})();
