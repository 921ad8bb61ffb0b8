// Supervisor review console: the call list (/review).
// Plain ES2020, no framework. Everything from the server (transcript snippets above
// all) is set with textContent / createElement, never innerHTML.
"use strict";

(() => {
  const C = window.Callbot; // common.js
  const { el, valueText, detailText, ApiError, retriable, showGlobalError, loadLang, priorityClass, priorityShort, CATEGORY_LABELS, CATEGORY_GROUPS, QA_LABELS, CHANNEL_LABELS } = C;

  // ---------------------------------------------------------------- strings

  const I18N = {
    vi: {
      ...C.I18N.vi,
      title: "Xem lại cuộc gọi 113/114",
      nav: "Điều hướng",
      nav_calls: "Cuộc gọi",
      nav_dashboard: "Thống kê",
      f_search: "Tìm trong hội thoại",
      search_placeholder: "Từ trong lời người gọi hoặc bot, có dấu hay không dấu (vd: chay nha)",
      f_line: "Đường dây",
      f_from: "Từ",
      f_to: "Đến",
      f_category: "Loại sự việc",
      f_priority: "Ưu tiên",
      f_status: "Kết quả cuộc gọi",
      f_handoff: "Chuyển cán bộ",
      f_lowconf: "Nhận dạng kém (< 0,6)",
      f_flagged: "QA đánh dấu",
      f_queue: "Chỉ hàng đợi xem lại",
      search: "Tìm",
      reset: "Xóa lọc",
      opt_all: "Tất cả",
      yes: "Có",
      no: "Không",
      line_other: "Khác",
      prio_1: "P1 – Nguy hiểm tính mạng",
      prio_2: "P2 – Khẩn cấp",
      prio_3: "P3 – Bình thường",
      prio_4: "P4 – Không khẩn cấp",
      prio_none: "Chưa rõ mức ưu tiên",
      cst_completed: "Hoàn tất",
      cst_handed_off: "Chuyển cán bộ",
      cst_dropped: "Mất kết nối",
      cst_failed: "Lỗi",
      cst_in_progress: "Đang diễn ra",
      col_started: "Bắt đầu",
      col_line: "Đường dây",
      col_channel: "Kênh",
      col_duration: "Thời lượng",
      col_category: "Loại sự việc",
      col_priority: "Ưu tiên",
      col_status: "Kết quả",
      col_handoff: "Chuyển cán bộ",
      col_qa: "QA",
      col_review: "Xem lại",
      col_match: "Đoạn khớp",
      calls_empty: "Không có cuộc gọi nào khớp.",
      paging: "Phân trang",
      prev: "‹ Trước",
      next: "Sau ›",
      page_info: "{from}–{to} / {total}",
      count: "{n} cuộc gọi",
      reason_random: "ngẫu nhiên",
      reason_priority1: "ưu tiên 1",
      reason_flagged: "bị đánh dấu",
      reviewed: "Đã xem lại",
      not_reviewed: "Chưa xem lại",
      qa_ok: "Đạt mọi tiêu chí",
      qa_na: "Chưa chấm",
      handoff_yes: "Có",
      low_conf: "ASR {p}%",
      low_conf_title: "Độ tin cậy nhận dạng thấp nhất: {p}%",
      cat_unknown: "Chưa phân loại",
      open_call: "Mở cuộc gọi {id}",
      forbidden_hint: "Trang này chỉ dành cho trưởng ca và quản trị viên.",
      err_bad_range: "Thời điểm \"Từ\" phải trước \"Đến\".",
    },
    en: {
      ...C.I18N.en,
      title: "Call review 113/114",
      nav: "Navigation",
      nav_calls: "Calls",
      nav_dashboard: "Dashboard",
      f_search: "Search transcripts",
      search_placeholder: "Words the caller or the bot said, with or without diacritics (e.g. chay nha)",
      f_line: "Line",
      f_from: "From",
      f_to: "To",
      f_category: "Category",
      f_priority: "Priority",
      f_status: "Call outcome",
      f_handoff: "Hand-off",
      f_lowconf: "Low ASR confidence (< 0.6)",
      f_flagged: "Flagged by QA",
      f_queue: "Review queue only",
      search: "Search",
      reset: "Clear filters",
      opt_all: "All",
      yes: "Yes",
      no: "No",
      line_other: "Other",
      prio_1: "P1 – Threat to life",
      prio_2: "P2 – Urgent",
      prio_3: "P3 – Normal",
      prio_4: "P4 – Low / non-emergency",
      prio_none: "Priority not known",
      cst_completed: "Completed",
      cst_handed_off: "Handed off",
      cst_dropped: "Dropped",
      cst_failed: "Failed",
      cst_in_progress: "In progress",
      col_started: "Started",
      col_line: "Line",
      col_channel: "Channel",
      col_duration: "Duration",
      col_category: "Category",
      col_priority: "Priority",
      col_status: "Outcome",
      col_handoff: "Hand-off",
      col_qa: "QA",
      col_review: "Review",
      col_match: "Match",
      calls_empty: "No calls match.",
      paging: "Paging",
      prev: "‹ Previous",
      next: "Next ›",
      page_info: "{from}–{to} of {total}",
      count: "{n} calls",
      reason_random: "random",
      reason_priority1: "priority 1",
      reason_flagged: "flagged",
      reviewed: "Reviewed",
      not_reviewed: "Not reviewed yet",
      qa_ok: "All checks passed",
      qa_na: "Not scored",
      handoff_yes: "Yes",
      low_conf: "ASR {p}%",
      low_conf_title: "Lowest ASR confidence: {p}%",
      cat_unknown: "Not classified",
      open_call: "Open call {id}",
      forbidden_hint: "This page is for supervisors and admins only.",
      err_bad_range: "\"From\" must be before \"To\".",
    },
  };

  // [vi, en]; the codes the dialogue engine uses, plus the short spellings.
  // [vi, en] readable QA check names, for the failed checks in the list.
  const PAGE_LIMIT = 50;
  const RETRY_MS = 5000;
  const SEARCH_DEBOUNCE_MS = 350;
  const LOW_CONFIDENCE = 0.6;

  // ---------------------------------------------------------------- state

  const state = {
    lang: "vi",
    me: null,
    csrf: "",
    redirecting: false,
    forbidden: false,
    filters: {},
    offset: 0,
    data: null, // last answer of the list
    loadSeq: 0,
    retryTimer: 0,
    searchTimer: 0,
  };

  // ---------------------------------------------------------------- helpers

  const $ = (sel) => document.querySelector(sel);

  function t(key, vars) {
    return C.translate(I18N, state.lang, key, vars);
  }

  function locale() {
    return C.locale(state.lang);
  }

  function pick(pair, fallback) {
    return C.pick(pair, fallback, state.lang);
  }

  function categoryLabel(code) {
    if (code === null || code === undefined || code === "") return t("cat_unknown");
    return pick(CATEGORY_LABELS[code], String(code));
  }

  function qaLabel(name) {
    return pick(QA_LABELS[name], String(name).replace(/_/g, " "));
  }

  function channelLabel(code) {
    return pick(CHANNEL_LABELS[code], code ? String(code) : "—");
  }

  function statusLabel(status) {
    const key = "cst_" + status;
    const text = t(key);
    return text === key ? String(status || "—") : text;
  }

  function priorityLong(p) {
    return [1, 2, 3, 4].includes(p) ? t("prio_" + p) : t("prio_none");
  }

  function fmtDateTime(iso) {
    if (!iso) return "—";
    const ms = Date.parse(iso);
    if (!Number.isFinite(ms)) return String(iso);
    const d = new Date(ms);
    return d.toLocaleDateString(locale()) + " " + d.toLocaleTimeString(locale());
  }

  function fmtDuration(seconds) {
    if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "—";
    const s = Math.max(0, Math.round(seconds));
    const m = Math.floor(s / 60);
    return m + ":" + String(s % 60).padStart(2, "0");
  }

  // "2024-05-01T10:00" (a datetime-local value, local time) -> ISO with this browser's offset.
  function localInputToIso(value) {
    if (!value) return "";
    const d = new Date(value);
    if (!Number.isFinite(d.getTime())) return "";
    return isoWithOffset(d);
  }

  function isoWithOffset(d) {
    const pad = (n) => String(Math.abs(Math.trunc(n))).padStart(2, "0");
    const offset = -d.getTimezoneOffset();
    const sign = offset >= 0 ? "+" : "-";
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
      "T" + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) +
      sign + pad(Math.abs(offset) / 60) + ":" + pad(Math.abs(offset) % 60);
  }

  // Lower-case, no diacritics, đ -> d: how the server compares (dispatch/text.py `fold`).
  function fold(text) {
    return String(text || "")
      .toLowerCase()
      .replace(/đ/g, "d")
      .normalize("NFD")
      .replace(/[\u0300-\u036f]/g, "")
      .normalize("NFC");
  }

  // `text` as nodes, with every occurrence of a query word (compared folded) in <mark>.
  function highlighted(text, query) {
    const source = String(text || "");
    const words = fold(query).split(/[\s,.;:!?"'()]+/).filter((w) => w.length > 0);
    if (!words.length || !source) return [document.createTextNode(source)];
    // The folded text, and for each of its UTF-16 units the span of `source` it came from.
    let folded = "";
    const fromIdx = [];
    const toIdx = [];
    let index = 0;
    for (const ch of source) {
      const piece = fold(ch);
      for (let k = 0; k < piece.length; k += 1) {
        fromIdx.push(index);
        toIdx.push(index + ch.length);
      }
      folded += piece;
      index += ch.length;
    }
    const ranges = [];
    for (const word of words) {
      let at = folded.indexOf(word);
      while (at >= 0) {
        let end = toIdx[at + word.length - 1];
        while (end < source.length && /[\u0300-\u036f]/.test(source[end])) end += 1; // trailing marks
        ranges.push([fromIdx[at], end]);
        at = folded.indexOf(word, at + word.length);
      }
    }
    if (!ranges.length) return [document.createTextNode(source)];
    ranges.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
    const merged = [];
    for (const range of ranges) {
      const last = merged[merged.length - 1];
      if (last && range[0] <= last[1]) last[1] = Math.max(last[1], range[1]);
      else merged.push([range[0], range[1]]);
    }
    const nodes = [];
    let pos = 0;
    for (const [start, end] of merged) {
      if (start > pos) nodes.push(document.createTextNode(source.slice(pos, start)));
      nodes.push(el("mark", { text: source.slice(start, end) }));
      pos = end;
    }
    if (pos < source.length) nodes.push(document.createTextNode(source.slice(pos)));
    return nodes;
  }

  // ---------------------------------------------------------------- API

  function goLogin() {
    C.goLogin(state);
  }

  function api(method, path, body) {
    return C.api({ t, csrf: state.csrf, goLogin }, method, path, body);
  }

  function showForbidden() {
    state.forbidden = true;
    $("#forbidden").hidden = false;
    $("#content").hidden = true;
    showGlobalError("");
  }

  // ---------------------------------------------------------------- language

  function setLang(lang) {
    state.lang = C.saveLang(lang);
    applyLang();
  }

  function applyLang() {
    C.applyStaticTexts(t, state.lang);
    document.title = t("title");
    fillCategoryOptions();
    renderUser();
    renderList();
  }

  function fillCategoryOptions() {
    const select = $("#f-category");
    const current = select.value || state.filters.category || "";
    const nodes = [el("option", { text: t("opt_all"), attrs: { value: "" } })];
    for (const [groupKey, codes] of CATEGORY_GROUPS) {
      const group = el("optgroup", { attrs: { label: t(groupKey) } });
      for (const code of codes) group.append(el("option", { text: categoryLabel(code), attrs: { value: code } }));
      nodes.push(group);
    }
    select.replaceChildren(...nodes);
    select.value = current;
    if (select.value !== current) {
      // a code from the URL that is not in the list: keep it selectable
      select.append(el("option", { text: current, attrs: { value: current } }));
      select.value = current;
    }
  }

  function renderUser() {
    C.renderUser(state.me, t);
  }

  // ---------------------------------------------------------------- filters & URL

  const FILTER_FIELDS = [
    // [input id, page URL param, kind]
    ["#q", "q", "text"],
    ["#f-line", "line", "text"],
    ["#f-from", "from", "text"],
    ["#f-to", "to", "text"],
    ["#f-category", "category", "text"],
    ["#f-priority", "priority", "text"],
    ["#f-status", "status", "text"],
    ["#f-handoff", "handoff", "text"],
    ["#f-lowconf", "low_confidence", "check"],
    ["#f-flagged", "flagged", "check"],
    ["#f-queue", "queue", "check"],
  ];

  function readFilters() {
    const filters = {};
    for (const [sel, name, kind] of FILTER_FIELDS) {
      const input = $(sel);
      filters[name] = kind === "check" ? input.checked : input.value.trim();
    }
    state.filters = filters;
  }

  function filtersFromUrl() {
    const params = new URLSearchParams(window.location.search);
    for (const [sel, name, kind] of FILTER_FIELDS) {
      const input = $(sel);
      const value = params.get(name);
      if (kind === "check") input.checked = value === "true" || value === "1";
      else if (value !== null) {
        if (input.tagName === "SELECT" && ![...input.options].some((o) => o.value === value)) {
          input.append(el("option", { text: value, attrs: { value } }));
        }
        input.value = value;
      }
    }
    const offset = Number.parseInt(params.get("offset") || "0", 10);
    state.offset = Number.isFinite(offset) && offset > 0 ? offset : 0;
    readFilters();
  }

  function pageParams() {
    const params = new URLSearchParams();
    for (const [, name, kind] of FILTER_FIELDS) {
      const value = state.filters[name];
      if (kind === "check") {
        if (value) params.set(name, "true");
      } else if (value) params.set(name, value);
    }
    if (state.offset > 0) params.set("offset", String(state.offset));
    return params;
  }

  function syncUrl() {
    const query = pageParams().toString();
    const url = window.location.pathname + (query ? "?" + query : "");
    if (url !== window.location.pathname + window.location.search) {
      window.history.replaceState(null, "", url);
    }
  }

  function apiUrl() {
    const f = state.filters;
    const params = new URLSearchParams();
    if (f.q) params.set("q", f.q);
    if (f.line) params.set("line", f.line);
    const since = localInputToIso(f.from);
    const until = localInputToIso(f.to);
    if (since) params.set("since", since);
    if (until) params.set("until", until);
    if (f.category) params.set("category", f.category);
    if (f.priority) params.set("priority", f.priority);
    if (f.status) params.set("status", f.status);
    if (f.handoff === "true" || f.handoff === "false") params.set("handoff", f.handoff);
    if (f.low_confidence) params.set("low_confidence", "true");
    if (f.flagged) params.set("flagged", "true");
    if (f.queue) params.set("queue", "true");
    params.set("limit", String(PAGE_LIMIT));
    params.set("offset", String(state.offset));
    return "/api/v1/review/calls?" + params.toString();
  }

  // ---------------------------------------------------------------- list

  async function loadList() {
    if (state.forbidden) return;
    const seq = ++state.loadSeq;
    window.clearTimeout(state.retryTimer);
    const f = state.filters;
    const since = localInputToIso(f.from);
    const until = localInputToIso(f.to);
    if (since && until && Date.parse(since) >= Date.parse(until)) {
      showListError(t("err_bad_range"));
      return;
    }
    syncUrl();
    $("#calls-loading").hidden = false;
    $("#calls").setAttribute("aria-busy", "true");
    try {
      const data = await api("GET", apiUrl());
      if (seq !== state.loadSeq) return;
      state.data = data || { items: [], total: 0, limit: PAGE_LIMIT, offset: state.offset };
      showListError("");
      renderList();
    } catch (err) {
      if (seq !== state.loadSeq || err.status === 401) return;
      if (err.status === 403) {
        showForbidden();
        return;
      }
      showListError(err.message);
      if (retriable(err)) state.retryTimer = window.setTimeout(loadList, RETRY_MS);
    } finally {
      if (seq === state.loadSeq) {
        $("#calls-loading").hidden = true;
        $("#calls").removeAttribute("aria-busy");
      }
    }
  }

  function showListError(message) {
    const box = $("#list-error");
    box.textContent = message || "";
    box.hidden = !message;
  }

  function callUrl(id) {
    return "/review/calls/" + encodeURIComponent(id);
  }

  function qaCell(qa) {
    const td = el("td", { cls: "qa" });
    if (!qa || (qa.passed === null || qa.passed === undefined) && !(Array.isArray(qa.failed) && qa.failed.length)) {
      td.append(el("span", { cls: "qa-na", text: "—", attrs: { title: t("qa_na") } }));
      return td;
    }
    const failed = Array.isArray(qa.failed) ? qa.failed : [];
    if (qa.passed && !failed.length) {
      td.append(el("span", { cls: "qa-ok", text: "✓", attrs: { title: t("qa_ok"), "aria-label": t("qa_ok") } }));
      return td;
    }
    const list = el("div", { cls: "qa-failed" });
    failed.forEach((name, i) => {
      if (i) list.append(el("br"));
      list.append("✗ " + qaLabel(name));
    });
    if (!failed.length) list.append("✗");
    td.append(list);
    return td;
  }

  function reviewCell(review) {
    const td = el("td", { cls: "review-cell nowrap" });
    const reason = review && review.reason;
    if (reason) {
      td.append(el("span", { cls: "badge reason-" + reason, text: t("reason_" + reason) === "reason_" + reason ? reason : t("reason_" + reason) }));
    }
    if (review && review.reviewed) {
      td.append(el("span", { cls: "reviewed-mark", text: "✓", attrs: { title: t("reviewed"), "aria-label": t("reviewed") } }));
    }
    return td;
  }

  function buildRow(row) {
    const id = String(row.call_id || "");
    const tr = el("tr", { cls: "call " + priorityClass(row.priority) });
    tr.dataset.id = id;
    if (row.review && row.review.reviewed) tr.classList.add("reviewed");
    if (row.review && row.review.reason) tr.classList.add("queued");
    tr.tabIndex = -1;

    const started = el("td", { cls: "started nowrap" },
      el("a", { cls: "call-link", text: fmtDateTime(row.started_at), attrs: { href: callUrl(id), title: t("open_call", { id }) } }),
      el("div", { cls: "call-id mono", text: id }));

    const line = el("td", { cls: "line" }, el("span", { cls: "line-chip line-" + row.line, text: row.line || "—" }));
    const channel = el("td", { cls: "channel small", text: channelLabel(row.channel) });
    if (row.language) channel.append(el("div", { cls: "muted small", text: String(row.language) }));

    const duration = el("td", { cls: "duration mono nowrap", text: fmtDuration(row.duration_s) });

    const category = el("td", { cls: "category" }, el("div", { text: categoryLabel(row.category) }));
    if (typeof row.min_asr_confidence === "number" && row.min_asr_confidence < LOW_CONFIDENCE) {
      const p = Math.round(row.min_asr_confidence * 100);
      category.append(el("span", { cls: "badge low-conf", text: t("low_conf", { p }), attrs: { title: t("low_conf_title", { p }) } }));
    }

    const priority = el("td", { cls: "priority" },
      el("span", { cls: "prio-badge " + priorityClass(row.priority), text: priorityShort(row.priority), attrs: { title: priorityLong(row.priority) } }));

    const status = el("td", { cls: "status" }, el("span", { cls: "status-chip st-" + row.status, text: statusLabel(row.status) }));

    const handoff = el("td", { cls: "handoff" });
    if (row.handoff) {
      handoff.append(el("span", { cls: "badge handoff", text: t("handoff_yes"), attrs: { title: row.handoff_reason || "" } }));
      if (row.handoff_reason) handoff.append(el("div", { cls: "muted small", text: row.handoff_reason }));
    } else {
      handoff.append(el("span", { cls: "muted", text: "—" }));
    }

    const match = el("td", { cls: "match" });
    if (row.match) match.append(...highlighted(row.match, state.filters.q || ""));

    tr.append(started, line, channel, duration, category, priority, status, handoff, qaCell(row.qa), reviewCell(row.review), match);
    return tr;
  }

  function renderList() {
    const data = state.data;
    const body = $("#calls-body");
    if (!data) {
      body.replaceChildren();
      $("#calls-empty").hidden = true;
      $("#page-info").textContent = "";
      $("#result-count").textContent = "";
      return;
    }
    const items = Array.isArray(data.items) ? data.items : [];
    body.replaceChildren(...items.filter((row) => row && row.call_id).map(buildRow));
    $("#calls-empty").hidden = items.length > 0;
    const total = typeof data.total === "number" ? data.total : items.length;
    const offset = typeof data.offset === "number" ? data.offset : state.offset;
    const limit = typeof data.limit === "number" && data.limit > 0 ? data.limit : PAGE_LIMIT;
    $("#page-info").textContent = items.length
      ? t("page_info", { from: offset + 1, to: offset + items.length, total })
      : "";
    $("#result-count").textContent = t("count", { n: total });
    $("#prev-page").disabled = offset <= 0;
    $("#next-page").disabled = items.length < limit || offset + items.length >= total;
  }

  // ---------------------------------------------------------------- wiring

  function onFiltersChanged() {
    readFilters();
    state.offset = 0;
    loadList();
  }

  async function logout() {
    try {
      await api("POST", "/auth/logout", {});
    } catch (err) {
      if (err.status === 401) return;
    }
    state.redirecting = true;
    window.location.assign("/login");
  }

  function wire() {
    for (const button of document.querySelectorAll(".lang-switch button")) {
      button.addEventListener("click", () => setLang(button.dataset.lang));
    }
    $("#logout-button").addEventListener("click", logout);
    $("#filters").addEventListener("submit", (event) => {
      event.preventDefault();
      window.clearTimeout(state.searchTimer);
      onFiltersChanged();
    });
    $("#reset-button").addEventListener("click", () => {
      for (const [sel, , kind] of FILTER_FIELDS) {
        const input = $(sel);
        if (kind === "check") input.checked = false;
        else input.value = "";
      }
      onFiltersChanged();
    });
    for (const [sel] of FILTER_FIELDS) {
      if (sel !== "#q") $(sel).addEventListener("change", onFiltersChanged);
    }
    $("#q").addEventListener("input", () => {
      window.clearTimeout(state.searchTimer);
      state.searchTimer = window.setTimeout(onFiltersChanged, SEARCH_DEBOUNCE_MS);
    });
    $("#prev-page").addEventListener("click", () => {
      state.offset = Math.max(0, state.offset - PAGE_LIMIT);
      loadList();
    });
    $("#next-page").addEventListener("click", () => {
      state.offset += PAGE_LIMIT;
      loadList();
    });
    const body = $("#calls-body");
    body.addEventListener("click", (event) => {
      if (!(event.target instanceof Element)) return;
      if (event.target.closest("a")) return; // the link itself (also ctrl-click, middle click)
      const tr = event.target.closest("tr.call");
      if (!tr || !tr.dataset.id) return;
      const selection = window.getSelection && window.getSelection();
      if (selection && String(selection).length > 0 && tr.contains(selection.anchorNode)) return; // copying text
      window.location.assign(callUrl(tr.dataset.id));
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "/" && !(event.target instanceof Element && event.target.closest("input, textarea, select"))) {
        event.preventDefault();
        $("#q").focus();
        $("#q").select();
      }
    });
    window.addEventListener("popstate", () => {
      filtersFromUrl();
      loadList();
    });
  }

  async function start() {
    try {
      const me = await api("GET", "/auth/me");
      state.me = me || {};
      state.csrf = (me && me.csrf_token) || "";
      showGlobalError("");
    } catch (err) {
      if (err.status === 401) return;
      if (err.status === 403) {
        showForbidden();
        return;
      }
      showGlobalError(err.message);
      window.setTimeout(start, RETRY_MS);
      return;
    }
    renderUser();
    loadList();
  }

  function boot() {
    state.lang = loadLang();
    filtersFromUrl();
    wire();
    applyLang();
    filtersFromUrl(); // the category options exist now
    start();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
