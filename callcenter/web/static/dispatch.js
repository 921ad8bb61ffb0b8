// Dispatcher console for the 113 / 114 callbot.
// Plain ES2020, no framework. Every piece of data from the server is set with
// textContent / setAttribute, never innerHTML.
"use strict";

(() => {
  const C = window.Callbot; // common.js
  const { el, valueText, detailText, ApiError, retriable, showGlobalError, loadLang, priorityClass, priorityShort, CATEGORY_LABELS, CATEGORY_GROUPS, FLAG_LABELS } = C;

  // ---------------------------------------------------------------- strings

  const I18N = {
    vi: {
      ...C.I18N.vi,
      title: "Điều phối 113/114",
      conn_connecting: "Đang kết nối…",
      conn_live: "Trực tuyến",
      conn_reconnecting: "Mất kết nối – đang kết nối lại…",
      banner_reconnecting: "Mất kết nối với máy chủ – đang kết nối lại… Danh sách có thể chưa cập nhật.",
      help_title: "Phím tắt",
      help_close: "Đóng (Esc)",
      reload: "Tải lại",
      f_line: "Đường dây",
      f_status: "Trạng thái",
      f_category: "Loại sự việc",
      f_priority: "Ưu tiên",
      f_search: "Tìm",
      search_placeholder: "Địa điểm, loại, mã… (/)",
      opt_all: "Tất cả",
      line_other: "Khác",
      status_open: "Đang mở",
      status_all: "Tất cả (kể cả đã đóng)",
      st_new: "Mới",
      st_acknowledged: "Đã tiếp nhận",
      st_dispatched: "Đã điều lực lượng",
      st_closed: "Đã đóng",
      st_merged: "Đã gộp",
      prio_1: "P1 – Nguy hiểm tính mạng",
      prio_2: "P2 – Khẩn cấp",
      prio_3: "P3 – Bình thường",
      prio_4: "P4 – Không khẩn cấp",
      prio_none: "Chưa rõ mức ưu tiên",
      queue_heading: "Danh sách sự việc",
      detail_heading: "Chi tiết sự việc",
      col_priority: "Ưu tiên",
      col_line: "Đường dây",
      col_category: "Loại sự việc",
      col_location: "Địa điểm",
      col_age: "Thời gian",
      col_status: "Trạng thái",
      col_call: "Cuộc gọi",
      live_badge: "ĐANG GỌI",
      handoff_badge: "CẦN CÁN BỘ",
      queue_empty: "Không có sự việc nào",
      queue_count: "{n} sự việc",
      queue_count_filtered: "{shown} / {n} sự việc",
      queue_limit: "(chỉ hiện {n} sự việc đầu)",
      age_now: "<1 phút",
      age_min: "{n} phút",
      age_hour: "{h} giờ {m} phút",
      age_day: "{d} ngày",
      detail_empty: "Chọn một sự việc trong danh sách (Enter để mở)",
      actions: "Thao tác",
      act_ack: "Tiếp nhận",
      act_dispatch: "Điều lực lượng",
      act_close: "Đóng sự việc",
      act_merge: "Gộp",
      act_takeover: "Tiếp quản",
      takeover_mic: "Đang xin quyền micrô…",
      takeover_connecting: "Đang kết nối với người gọi…",
      takeover_live: "Bạn đang nói chuyện với người gọi",
      takeover_end: "Kết thúc",
      takeover_ended: "Đã kết thúc tiếp quản {id}. Cuộc gọi vẫn chờ điều phối viên; tổng đài tự động không nói nữa.",
      takeover_call_ended: "Cuộc gọi {id} đã kết thúc.",
      err_takeover_mic: "Không dùng được micrô",
      err_takeover_not_live: "Cuộc gọi này không còn diễn ra trên máy chủ này.",
      err_takeover_taken: "Đã có điều phối viên khác đang nói chuyện với người gọi này.",
      err_takeover_failed: "Không kết nối được âm thanh với người gọi.",
      err_takeover_busy: "Bạn đang tiếp quản một cuộc gọi khác.",
      confirm: "Xác nhận",
      cancel: "Hủy (Esc)",
      units_label: "Lực lượng điều đến (cách nhau bằng dấu phẩy)",
      units_placeholder: "PCCC Hoàn Kiếm, CA phường Hàng Trống",
      outcome_label: "Kết quả xử lý",
      outcome_placeholder: "Đã dập tắt, không có thương vong",
      merge_label: "Gộp sự việc này vào sự việc (mã)",
      merge_hint: "Chọn một sự việc trong mục \"Có thể trùng\" bên dưới hoặc nhập mã.",
      merge_into_this: "Gộp vào sự việc này",
      open: "Mở",
      ok_ack: "Đã tiếp nhận {id}.",
      ok_dispatch: "Đã điều lực lượng cho {id}: {units}.",
      ok_close: "Đã đóng {id}.",
      ok_merge: "Đã gộp {id} vào {into}.",
      err_units_empty: "Nhập ít nhất một lực lượng.",
      err_outcome_empty: "Nhập kết quả xử lý.",
      err_merge_empty: "Chọn hoặc nhập mã sự việc cần gộp vào.",
      err_merge_self: "Không thể gộp một sự việc vào chính nó.",
      err_not_allowed_now: "Thao tác này không hợp lệ với trạng thái hiện tại.",
      err_reloaded: "Đã tải lại sự việc.",
      err_not_found: "Không tìm thấy sự việc.",
      sec_what: "Diễn biến",
      sec_location: "Địa điểm",
      sec_caller: "Người gọi",
      sec_people: "Người bị nạn",
      sec_lifecycle: "Xử lý",
      sec_call: "Cuộc gọi",
      sec_transcript: "Hội thoại",
      sec_duplicates: "Có thể trùng",
      sec_audit: "Nhật ký thay đổi",
      sec_evidence: "Căn cứ (bot ghi từ lời người gọi)",
      ev_asr: "nhận dạng",
      ev_intent: "phân loại",
      ev_confirmed: "người gọi đã xác nhận",
      ev_turn: "lượt",
      no_what: "Chưa có mô tả.",
      f_said: "Người gọi nói",
      f_confirmed: "Xác nhận",
      f_resolved: "Xác định được",
      f_code: "Mã địa bàn",
      f_ward: "Phường / xã",
      f_old_district: "Quận / huyện cũ",
      f_landmark: "Mốc gần đó",
      f_caller_name: "Tên",
      f_callback: "Số gọi lại",
      f_injured: "Số người bị thương",
      f_trapped: "Mắc kẹt",
      f_handoff: "Yêu cầu cán bộ",
      f_created: "Tạo lúc",
      f_updated: "Cập nhật",
      f_acknowledged: "Tiếp nhận",
      f_dispatched: "Điều lực lượng",
      f_units: "Lực lượng",
      f_closed: "Đóng",
      f_outcome: "Kết quả",
      f_merged_into: "Đã gộp vào",
      f_call_id: "Mã cuộc gọi",
      f_call_state: "Trạng thái cuộc gọi",
      loc_confirmed: "đã xác nhận",
      loc_unconfirmed: "chưa xác nhận",
      loc_unresolved: "Chưa xác định được địa bàn",
      yes: "Có",
      no: "Không",
      by: "bởi {who}",
      ago: "{age} trước",
      call_live: "Đang diễn ra",
      call_ended: "Đã kết thúc",
      no_call: "Không có cuộc gọi",
      audit_at: "Lúc",
      audit_actor: "Người",
      audit_field: "Trường",
      audit_change: "Thay đổi",
      audit_none: "Chưa có thay đổi.",
      transcript_none: "Không có bản ghi hội thoại.",
      transcript_empty: "Chưa có lượt nói nào.",
      speaker_caller: "Người gọi",
      speaker_bot: "Tổng đài tự động",
      asr: "ASR {p}%",
      tx_language: "ngôn ngữ: {lang}",
      dup_none: "Không có sự việc nghi trùng.",
      cat_unknown: "Chưa phân loại",
      k_move: "Chọn sự việc kế tiếp / trước",
      k_open: "Mở sự việc đang chọn",
      k_ack: "Tiếp nhận",
      k_dispatch: "Điều lực lượng",
      k_close: "Đóng sự việc",
      k_merge: "Gộp vào sự việc khác",
      k_takeover: "Tiếp quản cuộc gọi: nói chuyện với người gọi",
      k_search: "Tìm kiếm",
      k_help: "Hiện / ẩn bảng phím tắt",
      k_escape: "Đóng biểu mẫu / bảng này",
    },
    en: {
      ...C.I18N.en,
      title: "Dispatch 113/114",
      conn_connecting: "Connecting…",
      conn_live: "Live",
      conn_reconnecting: "Reconnecting…",
      banner_reconnecting: "Lost connection to the server – reconnecting… The queue may be out of date.",
      help_title: "Keyboard shortcuts",
      help_close: "Close (Esc)",
      reload: "Reload",
      f_line: "Line",
      f_status: "Status",
      f_category: "Category",
      f_priority: "Priority",
      f_search: "Search",
      search_placeholder: "Location, category, id… (/)",
      opt_all: "All",
      line_other: "Other",
      status_open: "Open",
      status_all: "All (incl. closed)",
      st_new: "New",
      st_acknowledged: "Acknowledged",
      st_dispatched: "Dispatched",
      st_closed: "Closed",
      st_merged: "Merged",
      prio_1: "P1 – Threat to life",
      prio_2: "P2 – Urgent",
      prio_3: "P3 – Normal",
      prio_4: "P4 – Low / non-emergency",
      prio_none: "Priority not known yet",
      queue_heading: "Incident queue",
      detail_heading: "Incident detail",
      col_priority: "Priority",
      col_line: "Line",
      col_category: "Category",
      col_location: "Location",
      col_age: "Age",
      col_status: "Status",
      col_call: "Call",
      live_badge: "LIVE",
      handoff_badge: "HAND-OFF",
      queue_empty: "No incidents",
      queue_count: "{n} incidents",
      queue_count_filtered: "{shown} of {n} incidents",
      queue_limit: "(showing the first {n})",
      age_now: "<1 min",
      age_min: "{n} min",
      age_hour: "{h} h {m} min",
      age_day: "{d} d",
      detail_empty: "Select an incident in the queue (Enter opens it)",
      actions: "Actions",
      act_ack: "Acknowledge",
      act_dispatch: "Dispatch",
      act_close: "Close",
      act_merge: "Merge",
      act_takeover: "Take over",
      takeover_mic: "Asking for the microphone…",
      takeover_connecting: "Connecting to the caller…",
      takeover_live: "You are talking to the caller",
      takeover_end: "End",
      takeover_ended: "Take-over of {id} ended. The call still waits for a dispatcher; the bot stays silent.",
      takeover_call_ended: "Call {id} has ended.",
      err_takeover_mic: "The microphone is not available",
      err_takeover_not_live: "This call is no longer in progress on this server.",
      err_takeover_taken: "Another dispatcher is already talking with this caller.",
      err_takeover_failed: "Could not connect audio with the caller.",
      err_takeover_busy: "You are already talking with another caller.",
      confirm: "Confirm",
      cancel: "Cancel (Esc)",
      units_label: "Units sent (comma separated)",
      units_placeholder: "PCCC Hoàn Kiếm, CA phường Hàng Trống",
      outcome_label: "Outcome",
      outcome_placeholder: "Fire put out, no casualties",
      merge_label: "Merge this incident into (id)",
      merge_hint: "Pick one under \"Possible duplicates\" below, or type an id.",
      merge_into_this: "Merge into this",
      open: "Open",
      ok_ack: "Acknowledged {id}.",
      ok_dispatch: "Dispatched {units} to {id}.",
      ok_close: "Closed {id}.",
      ok_merge: "Merged {id} into {into}.",
      err_units_empty: "Enter at least one unit.",
      err_outcome_empty: "Enter the outcome.",
      err_merge_empty: "Pick or type the id of the incident to merge into.",
      err_merge_self: "An incident cannot be merged into itself.",
      err_not_allowed_now: "This action is not valid for the current status.",
      err_reloaded: "The incident was reloaded.",
      err_not_found: "Incident not found.",
      sec_what: "What happened",
      sec_location: "Location",
      sec_caller: "Caller",
      sec_people: "People",
      sec_lifecycle: "Handling",
      sec_call: "Call",
      sec_transcript: "Transcript",
      sec_duplicates: "Possible duplicates",
      sec_audit: "Audit trail",
      sec_evidence: "Evidence (what the caller said)",
      ev_asr: "ASR",
      ev_intent: "intent",
      ev_confirmed: "confirmed by caller",
      ev_turn: "turn",
      no_what: "No description yet.",
      f_said: "As said",
      f_confirmed: "Confirmed",
      f_resolved: "Resolved",
      f_code: "Area code",
      f_ward: "Ward / commune",
      f_old_district: "Old district",
      f_landmark: "Landmark",
      f_caller_name: "Name",
      f_callback: "Callback number",
      f_injured: "Injured",
      f_trapped: "Trapped",
      f_handoff: "Hand-off requested",
      f_created: "Created",
      f_updated: "Updated",
      f_acknowledged: "Acknowledged",
      f_dispatched: "Dispatched",
      f_units: "Units",
      f_closed: "Closed",
      f_outcome: "Outcome",
      f_merged_into: "Merged into",
      f_call_id: "Call id",
      f_call_state: "Call",
      loc_confirmed: "confirmed",
      loc_unconfirmed: "not confirmed",
      loc_unresolved: "Not resolved yet",
      yes: "Yes",
      no: "No",
      by: "by {who}",
      ago: "{age} ago",
      call_live: "In progress",
      call_ended: "Ended",
      no_call: "No call",
      audit_at: "At",
      audit_actor: "Actor",
      audit_field: "Field",
      audit_change: "Change",
      audit_none: "No changes yet.",
      transcript_none: "No transcript.",
      transcript_empty: "No turns yet.",
      speaker_caller: "Caller",
      speaker_bot: "Callbot",
      asr: "ASR {p}%",
      tx_language: "language: {lang}",
      dup_none: "No duplicate candidates.",
      cat_unknown: "Not classified yet",
      k_move: "Next / previous incident",
      k_open: "Open the selected incident",
      k_ack: "Acknowledge",
      k_dispatch: "Dispatch",
      k_close: "Close",
      k_merge: "Merge into another incident",
      k_takeover: "Take over the call: talk with the caller",
      k_search: "Search",
      k_help: "Show / hide this help",
      k_escape: "Close forms / this help",
    },
  };

  // [vi, en]; the codes the dialogue engine uses, plus the short spellings.
  // Category filter choices, grouped by line.
  const OPEN_STATUSES = ["new", "acknowledged", "dispatched"];
  const ALL_STATUSES = ["new", "acknowledged", "dispatched", "closed", "merged"];
  const LOGIN_URL = "/login?next=/dispatch";
  const QUEUE_LIMIT = 200;
  const ARRIVAL_MS = 10000;
  const AGE_REFRESH_MS = 15000;
  const RETRY_MS = 5000;

  // ---------------------------------------------------------------- state

  const state = {
    lang: "vi",
    me: null,
    csrf: "",
    incidents: new Map(), // id -> Incident, only the ones matching the filters
    order: [], // ids, sorted
    selectedId: null, // keyboard cursor / highlighted row
    openedId: null, // incident shown in the detail panel
    detailInc: null,
    audit: null,
    duplicates: [],
    tx: { incidentId: null, nodes: new Map(), lastData: null, missing: false, error: "" },
    filters: { line: "", status: "open", category: "", priority: "" },
    search: "",
    unseen: new Set(),
    arrivals: new Map(), // id -> expiry ms
    busy: false,
    es: null,
    esErrored: false,
    esRetryMs: 2000,
    esTimer: 0,
    loadSeq: 0,
    queueLoaded: false,
    queueRetryTimer: 0,
    renderTimer: 0,
    txTimer: 0,
    detailTimer: 0,
    redirecting: false,
    lastBeep: 0,
    limitHit: false,
    dupError: "",
    announced: new Set(), // ids already announced as new arrivals
    eventCount: 0, // incident events received so far
    recentEvents: [], // [eventCount, Incident], the last few, replayed over a fresh queue load
    takeover: null, // { id, pc, mic, phase: "mic" | "connecting" | "connected", timer }
  };

  const rowCache = new Map(); // id -> <tr>
  let audioCtx = null;

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

  function flagLabel(code) {
    return pick(FLAG_LABELS[code], String(code));
  }

  function statusLabel(status) {
    const key = "st_" + status;
    const text = t(key);
    return text === key ? String(status) : text;
  }

  function priorityLong(priority) {
    return [1, 2, 3, 4].includes(priority) ? t("prio_" + priority) : t("prio_none");
  }

  function parseTime(iso) {
    if (!iso) return NaN;
    return Date.parse(iso);
  }

  function fmtTime(iso) {
    if (!iso) return "—";
    const ms = parseTime(iso);
    if (!Number.isFinite(ms)) return String(iso);
    const d = new Date(ms);
    const time = d.toLocaleTimeString(locale());
    if (d.toDateString() === new Date().toDateString()) return time;
    return d.toLocaleDateString(locale()) + " " + time;
  }

  function fmtAge(iso) {
    const ms = parseTime(iso);
    if (!Number.isFinite(ms)) return "—";
    const minutes = Math.max(0, Math.floor((Date.now() - ms) / 60000));
    if (minutes < 1) return t("age_now");
    if (minutes < 60) return t("age_min", { n: minutes });
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return t("age_hour", { h: hours, m: minutes % 60 });
    return t("age_day", { d: Math.floor(hours / 24) });
  }

  function ageMinutes(iso) {
    const ms = parseTime(iso);
    return Number.isFinite(ms) ? (Date.now() - ms) / 60000 : 0;
  }

  function fold(text) {
    return String(text || "")
      .normalize("NFD")
      .replace(/[\u0300-\u036f]/g, "")
      .replace(/đ/g, "d")
      .replace(/Đ/g, "D")
      .toLowerCase();
  }

  function isTyping(target) {
    if (!target || !(target instanceof Element)) return false;
    const tag = target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable;
  }

  // ---------------------------------------------------------------- API

  function goLogin() {
    if (state.redirecting) return;
    state.redirecting = true;
    if (state.es) state.es.close();
    window.location.assign(LOGIN_URL);
  }

  function api(method, path, body) {
    return C.api({ t, csrf: state.csrf, goLogin }, method, path, body);
  }

  // Re-run a read for the open incident a little later (service down or network lost).
  const retryTimers = new Map(); // loader name -> timer, one pending retry each
  function retryWhileOpen(id, load, name) {
    window.clearTimeout(retryTimers.get(name));
    retryTimers.set(name, window.setTimeout(() => {
      retryTimers.delete(name);
      if (state.openedId === id) load(id);
    }, RETRY_MS));
  }

  function incidentPath(id, suffix) {
    return "/api/v1/incidents/" + encodeURIComponent(id) + (suffix ? "/" + suffix : "");
  }

  // ---------------------------------------------------------------- language

  function setLang(lang) {
    state.lang = C.saveLang(lang);
    applyLang();
  }

  function applyLang() {
    C.applyStaticTexts(t, state.lang);
    const hints = { "act-ack": ["act_ack", "a"], "act-dispatch": ["act_dispatch", "d"], "act-close": ["act_close", "c"], "act-merge": ["act_merge", "m"], "act-takeover": ["act_takeover", "t"] };
    for (const [id, [key, k]] of Object.entries(hints)) {
      const button = document.getElementById(id);
      if (button) button.title = t(key) + " (" + k + ")";
    }
    fillCategoryOptions();
    renderUser();
    renderConn();
    for (const tr of rowCache.values()) tr.dataset.rendered = "";
    renderQueue();
    renderDetail();
    renderAudit();
    rerenderTranscript();
    renderDuplicates();
    renderTakeover();
    updateTitle();
  }

  function fillCategoryOptions() {
    const select = $("#filter-category");
    const current = select.value || state.filters.category;
    const nodes = [el("option", { text: t("opt_all"), attrs: { value: "" } })];
    for (const [groupKey, codes] of CATEGORY_GROUPS) {
      const group = el("optgroup", { attrs: { label: t(groupKey) } });
      for (const code of codes) group.append(el("option", { text: categoryLabel(code), attrs: { value: code } }));
      nodes.push(group);
    }
    select.replaceChildren(...nodes);
    select.value = current;
    if (select.value !== current) select.value = "";
  }

  // ---------------------------------------------------------------- header

  function renderUser() {
    C.renderUser(state.me, t);
  }

  function renderConn() {
    const conn = $("#conn");
    const text = $("#conn-text");
    let mode = "connecting";
    if (document.body.dataset.live === "1") mode = "live";
    else if (state.esErrored) mode = "reconnecting";
    conn.className = "conn conn-" + mode;
    text.textContent = t("conn_" + mode);
    $("#conn-banner").hidden = mode !== "reconnecting";
  }

  function updateTitle() {
    const n = state.unseen.size;
    document.title = (n > 0 ? "(" + n + ") " : "") + t("title");
  }

  // ---------------------------------------------------------------- queue

  function compareIncidents(a, b) {
    const pa = [1, 2, 3, 4].includes(a.priority) ? a.priority : 99;
    const pb = [1, 2, 3, 4].includes(b.priority) ? b.priority : 99;
    if (pa !== pb) return pa - pb;
    const ta = parseTime(a.created_at);
    const tb = parseTime(b.created_at);
    const va = Number.isFinite(ta) ? ta : 0;
    const vb = Number.isFinite(tb) ? tb : 0;
    if (va !== vb) return va - vb;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  }

  function statusSet() {
    const status = state.filters.status;
    if (status === "open") return OPEN_STATUSES;
    if (status === "all") return ALL_STATUSES;
    return [status];
  }

  function matchesFilters(inc) {
    const f = state.filters;
    if (!statusSet().includes(inc.status)) return false;
    if (f.line && String(inc.line) !== f.line) return false;
    if (f.category && inc.category !== f.category) return false;
    if (f.priority && String(inc.priority) !== f.priority) return false;
    return true;
  }

  function matchesSearch(inc) {
    const query = fold(state.search).trim();
    if (!query) return true;
    const loc = inc.location || {};
    const resolved = loc.resolved || {};
    const haystack = fold(
      [
        inc.id,
        inc.category,
        categoryLabel(inc.category),
        loc.said,
        resolved.code,
        resolved.name,
        resolved.old_district,
        resolved.landmark,
      ]
        .filter((x) => x !== null && x !== undefined)
        .join(" \u0001 ")
    );
    return query.split(/\s+/).every((word) => haystack.includes(word));
  }

  function queueUrl() {
    const params = new URLSearchParams();
    for (const status of statusSet()) params.append("status", status);
    const f = state.filters;
    if (f.line) params.set("line", f.line);
    if (f.category) params.set("category", f.category);
    if (f.priority) params.set("priority", f.priority);
    params.set("limit", String(QUEUE_LIMIT));
    return "/api/v1/incidents?" + params.toString();
  }

  async function loadQueue() {
    const seq = ++state.loadSeq;
    window.clearTimeout(state.queueRetryTimer);
    state.queueRetryTimer = 0;
    if (!state.queueLoaded) $("#queue-loading").hidden = false;
    const eventsBefore = state.eventCount;
    try {
      const data = await api("GET", queueUrl());
      if (seq !== state.loadSeq) return;
      const items = Array.isArray(data && data.items) ? data.items : [];
      const fresh = new Map();
      for (const inc of items) {
        if (!inc || !inc.id) continue;
        const cur = state.incidents.get(inc.id);
        // An event may have brought a newer version while the request was in flight.
        fresh.set(inc.id, cur && cur.version > inc.version ? cur : inc);
      }
      // Replay the events that arrived while the request was in flight, so that an
      // incident created (or closed) after the server took its snapshot is not lost.
      for (const [n, inc] of state.recentEvents) {
        if (n <= eventsBefore) continue;
        const cur = fresh.get(inc.id);
        if (cur && cur.version > inc.version) continue;
        if (matchesFilters(inc)) fresh.set(inc.id, inc);
        else fresh.delete(inc.id);
      }
      state.incidents = fresh;
      state.limitHit = items.length >= ((data && data.limit) || QUEUE_LIMIT);
      state.queueLoaded = true;
      for (const id of [...state.unseen]) if (!fresh.has(id)) state.unseen.delete(id);
      updateTitle();
      $("#queue-error").hidden = true;
      $("#queue-loading").hidden = true;
      renderQueue();
      if (state.detailInc && fresh.has(state.detailInc.id)) {
        const inc = fresh.get(state.detailInc.id);
        if (inc.version > state.detailInc.version) {
          state.detailInc = inc;
          renderDetail();
        }
      }
    } catch (err) {
      if (seq !== state.loadSeq || err.status === 401) return;
      $("#queue-loading").hidden = true;
      const box = $("#queue-error");
      box.textContent = err.message;
      box.hidden = false;
      if (retriable(err) || err.status >= 500) {
        state.queueRetryTimer = window.setTimeout(loadQueue, RETRY_MS);
      }
    }
  }

  function scheduleRender() {
    if (state.renderTimer) return;
    state.renderTimer = window.setTimeout(() => {
      state.renderTimer = 0;
      renderQueue();
    }, 0);
  }

  function fillRow(tr, inc) {
    const loc = inc.location || {};
    const resolved = loc.resolved || null;

    const prioCell = el("td", { cls: "prio" },
      el("span", { cls: "prio-badge " + priorityClass(inc.priority), text: priorityShort(inc.priority), attrs: { title: priorityLong(inc.priority) } }));

    const lineCell = el("td", { cls: "line" }, el("span", { cls: "line-chip line-" + inc.line, text: inc.line || "—" }));

    const catCell = el("td", { cls: "category" }, el("div", { cls: "cat-label", text: categoryLabel(inc.category) }));
    const flags = Array.isArray(inc.red_flags) ? inc.red_flags : [];
    if (flags.length || inc.handoff_requested) {
      const flagBox = el("div", { cls: "flags" });
      for (const flag of flags) flagBox.append(el("span", { cls: "flag-badge", text: "⚠ " + flagLabel(flag), attrs: { title: flag } }));
      if (inc.handoff_requested) flagBox.append(el("span", { cls: "handoff-badge", text: t("handoff_badge") }));
      catCell.append(flagBox);
    }
    catCell.append(el("div", { cls: "row-id mono", text: inc.id }));

    const locCell = el("td", { cls: "location" });
    const said = el("div", { cls: "said", text: loc.said || "—" });
    if (loc.said && !loc.confirmed) {
      said.append(el("span", { cls: "unconfirmed", text: " ?", attrs: { title: t("loc_unconfirmed") } }));
    }
    locCell.append(said);
    if (resolved && (resolved.name || resolved.old_district)) {
      const parts = [resolved.name, resolved.old_district].filter(Boolean);
      locCell.append(el("div", { cls: "resolved", text: parts.join(" · ") }));
    }

    const ageCell = el("td", { cls: "age", text: fmtAge(inc.created_at), attrs: { title: fmtTime(inc.created_at) } });

    const statusCell = el("td", { cls: "status", attrs: { "data-status": inc.status } },
      el("span", { cls: "status-label", text: statusLabel(inc.status) }),
      " ",
      el("span", { cls: "status-code", text: inc.status }));

    const callCell = el("td", { cls: "call" });
    if (inc.call_in_progress) callCell.append(el("span", { cls: "live-badge", text: t("live_badge") }));

    tr.replaceChildren(prioCell, lineCell, catCell, locCell, ageCell, statusCell, callCell);
    tr.dataset.rendered = String(inc.version);
  }

  function rowClass(inc) {
    const classes = ["incident", priorityClass(inc.priority), "status-" + inc.status];
    if (inc.id === state.selectedId) classes.push("selected");
    if (inc.id === state.openedId) classes.push("opened");
    const expiry = state.arrivals.get(inc.id);
    if (expiry && expiry > Date.now()) classes.push("new-arrival");
    if (state.unseen.has(inc.id)) classes.push("unseen");
    if (inc.call_in_progress) classes.push("live");
    if (Array.isArray(inc.red_flags) && inc.red_flags.length) classes.push("has-flags");
    if (inc.status === "new" && ageMinutes(inc.created_at) >= 3) classes.push("waiting");
    return classes.join(" ");
  }

  function renderQueue() {
    const body = $("#queue-body");
    const list = [...state.incidents.values()].sort(compareIncidents);
    state.order = list.map((inc) => inc.id);
    const keep = new Set(state.order);
    for (const [id, tr] of rowCache) {
      if (!keep.has(id)) {
        tr.remove();
        rowCache.delete(id);
      }
    }
    let shown = 0;
    let ref = body.firstChild;
    for (const inc of list) {
      let tr = rowCache.get(inc.id);
      if (!tr) {
        tr = el("tr");
        tr.dataset.id = inc.id;
        rowCache.set(inc.id, tr);
      }
      if (tr.dataset.rendered !== String(inc.version)) fillRow(tr, inc);
      tr.className = rowClass(inc);
      tr.tabIndex = inc.id === state.selectedId ? 0 : -1;
      if (inc.id === state.selectedId) tr.setAttribute("aria-selected", "true");
      else tr.removeAttribute("aria-selected");
      const visible = matchesSearch(inc);
      tr.hidden = !visible;
      if (visible) shown += 1;
      if (tr === ref) ref = ref.nextSibling;
      else body.insertBefore(tr, ref);
    }
    while (ref) {
      const next = ref.nextSibling;
      ref.remove();
      ref = next;
    }
    const total = list.length;
    $("#queue-empty").hidden = !state.queueLoaded || shown > 0;
    let count = shown === total ? t("queue_count", { n: total }) : t("queue_count_filtered", { shown, n: total });
    if (state.limitHit) count += " " + t("queue_limit", { n: QUEUE_LIMIT });
    $("#queue-count").textContent = state.queueLoaded ? count : "";
  }

  function refreshAges() {
    for (const [id, tr] of rowCache) {
      const inc = state.incidents.get(id);
      if (!inc) continue;
      const cell = tr.querySelector("td.age");
      if (cell) cell.textContent = fmtAge(inc.created_at);
      tr.classList.toggle("waiting", inc.status === "new" && ageMinutes(inc.created_at) >= 3);
    }
    const created = $("#created-age");
    if (created && state.detailInc) created.textContent = t("ago", { age: fmtAge(state.detailInc.created_at) });
  }

  function upsertIncident(inc) {
    if (!inc || !inc.id) return;
    const cur = state.incidents.get(inc.id);
    if (cur && typeof cur.version === "number" && cur.version > inc.version) return;
    const tk = state.takeover;
    if (tk && tk.id === inc.id && tk.phase === "connected" && !inc.call_in_progress) takeoverLost(tk);
    if (matchesFilters(inc)) {
      state.incidents.set(inc.id, inc);
    } else {
      state.incidents.delete(inc.id);
      if (state.unseen.delete(inc.id)) updateTitle();
    }
    if (state.detailInc && state.detailInc.id === inc.id && !(state.detailInc.version > inc.version)) {
      state.detailInc = inc;
      renderDetail();
    }
    scheduleRender();
  }

  function markSeen(id) {
    if (state.unseen.delete(id)) updateTitle();
  }

  function visibleIds() {
    return state.order.filter((id) => {
      const tr = rowCache.get(id);
      return tr && !tr.hidden;
    });
  }

  function selectRow(id, opts) {
    state.selectedId = id;
    if (id) markSeen(id);
    for (const [rowId, tr] of rowCache) {
      const on = rowId === id;
      tr.classList.toggle("selected", on);
      tr.tabIndex = on ? 0 : -1;
      if (on) tr.setAttribute("aria-selected", "true");
      else tr.removeAttribute("aria-selected");
    }
    const tr = id ? rowCache.get(id) : null;
    if (tr && opts && opts.scroll) tr.scrollIntoView({ block: "nearest" });
    if (tr && opts && opts.focus) tr.focus({ preventScroll: true });
  }

  function moveSelection(step) {
    const ids = visibleIds();
    if (!ids.length) return;
    let index = ids.indexOf(state.selectedId);
    if (index < 0) index = step > 0 ? 0 : ids.length - 1;
    else index = Math.min(ids.length - 1, Math.max(0, index + step));
    selectRow(ids[index], { scroll: true, focus: document.activeElement && document.activeElement.closest && document.activeElement.closest("#queue") });
  }

  // ---------------------------------------------------------------- live events

  function connectEvents() {
    window.clearTimeout(state.esTimer);
    if (state.es) state.es.close();
    let es;
    try {
      es = new EventSource("/api/v1/events");
    } catch (err) {
      state.esErrored = true;
      renderConn();
      scheduleReconnect();
      return;
    }
    state.es = es;
    es.addEventListener("ready", () => {
      state.esRetryMs = 2000;
      const wasDown = state.esErrored;
      state.esErrored = false;
      document.body.dataset.live = "1";
      renderConn();
      // Catch anything published between the queue snapshot and this connection.
      loadQueue();
      if (wasDown && state.openedId) {
        loadDetail(state.openedId);
        loadTranscript(state.openedId);
      }
    });
    // Sent by the server when this page may have missed changes: read everything again.
    es.addEventListener("resync", () => {
      loadQueue();
      if (state.openedId) {
        loadDetail(state.openedId, { quiet: true });
        loadTranscript(state.openedId);
      }
    });
    es.addEventListener("incident", (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (!data || !data.incident) return;
      onIncidentEvent(data.kind, data.incident);
    });
    es.addEventListener("turn", (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      if (!data || !state.openedId) return;
      const opened = state.detailInc;
      const mine = data.incident_id === state.openedId || (opened && data.call_id && opened.call_id === data.call_id);
      if (!mine) return;
      window.clearTimeout(state.txTimer);
      const id = state.openedId;
      state.txTimer = window.setTimeout(() => loadTranscript(id), 150);
    });
    es.addEventListener("error", () => {
      if (state.redirecting || es !== state.es) return;
      state.esErrored = true;
      delete document.body.dataset.live;
      renderConn();
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. 401 or 5xx on connect): check the session, then retry ourselves.
        es.close();
        state.es = null;
        scheduleReconnect();
      }
    });
  }

  function scheduleReconnect() {
    window.clearTimeout(state.esTimer);
    const wait = state.esRetryMs;
    state.esRetryMs = Math.min(30000, state.esRetryMs * 2);
    state.esTimer = window.setTimeout(async () => {
      try {
        await api("GET", "/auth/me");
      } catch (err) {
        if (err.status === 401) return; // redirecting to login
      }
      connectEvents();
    }, wait);
  }

  function onIncidentEvent(kind, inc) {
    state.eventCount += 1;
    state.recentEvents.push([state.eventCount, inc]);
    if (state.recentEvents.length > 300) state.recentEvents.splice(0, state.recentEvents.length - 300);
    upsertIncident(inc);
    if (kind === "created" && matchesFilters(inc) && !state.announced.has(inc.id)) {
      state.announced.add(inc.id);
      announce(inc);
    }
    if (state.openedId === inc.id) {
      // The incident itself came with the event; the audit trail needs a fetch.
      window.clearTimeout(state.detailTimer);
      state.detailTimer = window.setTimeout(() => loadDetail(inc.id, { quiet: true }), 300);
    }
  }

  function announce(inc) {
    state.arrivals.set(inc.id, Date.now() + ARRIVAL_MS);
    if (inc.id !== state.openedId) state.unseen.add(inc.id);
    updateTitle();
    scheduleRender();
    window.setTimeout(() => {
      const expiry = state.arrivals.get(inc.id);
      if (expiry && expiry <= Date.now() + 50) {
        state.arrivals.delete(inc.id);
        const tr = rowCache.get(inc.id);
        if (tr) tr.classList.remove("new-arrival");
      }
    }, ARRIVAL_MS);
    beep(inc.priority);
  }

  // ---------------------------------------------------------------- sound

  function unlockAudio() {
    try {
      if (!audioCtx) {
        const Ctor = window.AudioContext || window.webkitAudioContext;
        if (!Ctor) return;
        audioCtx = new Ctor();
      }
      if (audioCtx.state === "suspended") audioCtx.resume().catch(() => {});
    } catch (err) {
      audioCtx = null;
    }
  }

  function beep(priority) {
    if (!audioCtx || audioCtx.state !== "running") return;
    const urgent = priority === 1;
    const now = Date.now();
    if (!urgent && now - state.lastBeep < 1200) return;
    state.lastBeep = now;
    // [frequency Hz, start s, length s]
    const pattern = urgent
      ? [[988, 0, 0.16], [740, 0.2, 0.16], [988, 0.4, 0.16], [740, 0.6, 0.16], [988, 0.8, 0.16], [740, 1.0, 0.3]]
      : [[660, 0, 0.14], [880, 0.18, 0.2]];
    const peak = urgent ? 0.4 : 0.18;
    try {
      const t0 = audioCtx.currentTime + 0.03;
      for (const [freq, start, length] of pattern) {
        const osc = audioCtx.createOscillator();
        const gain = audioCtx.createGain();
        osc.type = urgent ? "square" : "sine";
        osc.frequency.setValueAtTime(freq, t0 + start);
        gain.gain.setValueAtTime(0.0001, t0 + start);
        gain.gain.exponentialRampToValueAtTime(peak, t0 + start + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, t0 + start + length);
        osc.connect(gain);
        gain.connect(audioCtx.destination);
        osc.start(t0 + start);
        osc.stop(t0 + start + length + 0.05);
      }
    } catch (err) {
      /* sound is a nicety */
    }
  }

  // ---------------------------------------------------------------- detail

  function openIncident(id, opts) {
    if (!id) return;
    const keepMessages = opts && opts.keepMessages;
    const changed = state.openedId !== id;
    state.openedId = id;
    selectRow(id, { scroll: true });
    markSeen(id);
    if (changed) {
      const cached = state.incidents.get(id) || null;
      state.detailInc = cached;
      state.audit = null;
      state.duplicates = null;
      state.tx = { incidentId: id, nodes: new Map(), lastData: null, missing: false, error: "" };
      $("#transcript").replaceChildren(el("p", { cls: "tx-note muted", text: t("loading") }));
      $("#transcript-status").textContent = "";
      $("#audit").open = false;
      closeForms();
      if (!keepMessages) clearActionMessages();
      renderDetail();
      renderAudit();
      renderDuplicates();
    }
    for (const [rowId, tr] of rowCache) tr.classList.toggle("opened", rowId === id);
    loadDetail(id);
    loadTranscript(id);
    loadDuplicates(id);
  }

  async function loadDetail(id, opts) {
    try {
      const data = await api("GET", incidentPath(id));
      if (state.openedId !== id || !data) return;
      if (data.incident) {
        if (!state.detailInc || state.detailInc.id !== id || !(state.detailInc.version > data.incident.version)) {
          state.detailInc = data.incident;
        }
        upsertIncident(data.incident);
        renderDetail();
      }
      state.audit = Array.isArray(data.audit) ? data.audit : [];
      renderAudit();
    } catch (err) {
      if (state.openedId !== id || err.status === 401) return;
      if (!(opts && opts.quiet)) {
        showActionError(err.status === 404 ? t("err_not_found") : err.message);
      }
      if (retriable(err)) retryWhileOpen(id, (again) => loadDetail(again, { quiet: true }), "detail");
    }
  }

  function field(labelKey, value) {
    const dd = el("dd");
    if (value instanceof Node) dd.append(value);
    else dd.textContent = valueText(value);
    return [el("dt", { text: t(labelKey) }), dd];
  }

  function section(titleKey, rows) {
    const dl = el("dl");
    for (const [dt, dd] of rows) dl.append(dt, dd);
    return el("section", { cls: "block fields" }, el("h3", { text: t(titleKey) }), dl);
  }

  // One row per field the bot filled: the caller's words, then how sure it was.
  function evidenceFields(evidence) {
    if (!evidence || typeof evidence !== "object") return [];
    return Object.keys(evidence).sort().map((name) => {
      const item = evidence[name] || {};
      const facts = [];
      if (typeof item.caller_turn === "number") facts.push(t("ev_turn") + " " + item.caller_turn);
      if (typeof item.asr_confidence === "number") facts.push(t("ev_asr") + " " + item.asr_confidence.toFixed(2));
      if (typeof item.intent_confidence === "number") facts.push(t("ev_intent") + " " + item.intent_confidence.toFixed(2));
      if (item.confirmed_by_caller) facts.push("✓ " + t("ev_confirmed"));
      const dd = el("dd", { cls: "evidence" },
        el("q", { text: String(item.utterance || "") }),
        el("span", { cls: "muted", text: facts.length ? " · " + facts.join(" · ") : "" }));
      if (item.model) dd.title = String(item.model);
      return [el("dt", { cls: "mono", text: name }), dd];
    });
  }

  function whenWho(at, who) {
    if (!at) return "—";
    const span = el("span", null, fmtTime(at));
    if (who) span.append(" ", el("span", { cls: "muted", text: t("by", { who }) }));
    return span;
  }

  function renderDetail() {
    const inc = state.detailInc;
    $("#detail-empty").hidden = !!inc;
    $("#detail-body").hidden = !inc;
    if (!inc) {
      updateActionButtons();
      return;
    }
    const prio = $("#detail-prio");
    prio.className = "prio-badge big " + priorityClass(inc.priority);
    prio.textContent = priorityShort(inc.priority);
    prio.title = priorityLong(inc.priority);
    $("#detail-category").textContent = categoryLabel(inc.category);
    const line = $("#detail-line");
    line.textContent = inc.line || "—";
    line.className = "line-chip line-" + inc.line;
    $("#detail-live").hidden = !inc.call_in_progress;
    $("#detail-id").textContent = inc.id;
    $("#detail-version").textContent = "v" + inc.version;
    const status = $("#detail-status");
    status.textContent = statusLabel(inc.status);
    status.dataset.status = inc.status;
    status.className = "status-chip status-" + inc.status;

    const flagBox = $("#detail-flags");
    const flags = Array.isArray(inc.red_flags) ? inc.red_flags : [];
    const flagNodes = flags.map((flag) => el("span", { cls: "flag-badge big", text: "⚠ " + flagLabel(flag), attrs: { title: flag } }));
    if (inc.handoff_requested) flagNodes.push(el("span", { cls: "handoff-badge big", text: t("handoff_badge") }));
    flagBox.replaceChildren(...flagNodes);
    flagBox.hidden = flagNodes.length === 0;

    const what = $("#what-happened");
    what.textContent = inc.what_happened || t("no_what");
    what.classList.toggle("muted", !inc.what_happened);

    const loc = inc.location || {};
    const resolved = loc.resolved || null;
    const saidNode = el("span", null, loc.said || "—");
    const confirmed = el("span", { cls: loc.confirmed ? "chip ok" : "chip warn", text: loc.confirmed ? t("loc_confirmed") : t("loc_unconfirmed") });
    const locRows = [field("f_said", saidNode), field("f_confirmed", confirmed)];
    if (resolved) {
      locRows.push(field("f_ward", resolved.name), field("f_old_district", resolved.old_district),
        field("f_landmark", resolved.landmark), field("f_code", resolved.code ? el("span", { cls: "mono", text: resolved.code }) : null));
    } else {
      locRows.push(field("f_resolved", el("span", { cls: "muted", text: t("loc_unresolved") })));
    }

    const caller = inc.caller || {};
    let phone = null;
    if (caller.callback_number) {
      const digits = String(caller.callback_number).replace(/[^0-9+]/g, "");
      phone = digits
        ? el("a", { cls: "mono", text: caller.callback_number, attrs: { href: "tel:" + digits } })
        : el("span", { cls: "mono", text: caller.callback_number });
    }
    const callerRows = [field("f_caller_name", caller.name), field("f_callback", phone)];

    const peopleRows = [
      field("f_injured", typeof inc.injured === "number" ? inc.injured : null),
      field("f_trapped", inc.trapped),
      field("f_handoff", inc.handoff_requested ? el("strong", { cls: "warn-text", text: t("yes") }) : t("no")),
    ];

    const created = el("span", null, fmtTime(inc.created_at), " ",
      el("span", { cls: "muted", text: t("ago", { age: fmtAge(inc.created_at) }), attrs: { id: "created-age" } }));
    const units = Array.isArray(inc.units) && inc.units.length
      ? el("span", { cls: "units" }, ...inc.units.map((u) => el("span", { cls: "chip", text: u })))
      : null;
    let mergedInto = null;
    if (inc.merged_into) {
      mergedInto = el("button", {
        cls: "linkish mono",
        text: inc.merged_into,
        attrs: { type: "button" },
        on: { click: () => openIncident(inc.merged_into) },
      });
    }
    const lifeRows = [
      field("f_created", created),
      field("f_updated", fmtTime(inc.updated_at)),
      field("f_acknowledged", whenWho(inc.acknowledged_at, inc.acknowledged_by)),
      field("f_dispatched", inc.dispatched_at ? fmtTime(inc.dispatched_at) : null),
      field("f_units", units),
      field("f_closed", whenWho(inc.closed_at, inc.closed_by)),
      field("f_outcome", inc.outcome),
    ];
    if (inc.merged_into || inc.status === "merged") lifeRows.push(field("f_merged_into", mergedInto));

    const callRows = [
      field("f_call_id", inc.call_id ? el("span", { cls: "mono", text: inc.call_id }) : t("no_call")),
    ];
    if (inc.call_id) {
      callRows.push(field("f_call_state", inc.call_in_progress
        ? el("span", { cls: "live-badge", text: t("live_badge") })
        : t("call_ended")));
    }

    const sections = [
      section("sec_location", locRows),
      section("sec_caller", callerRows),
      section("sec_people", peopleRows),
      section("sec_lifecycle", lifeRows),
      section("sec_call", callRows),
    ];
    const evidenceRows = evidenceFields(inc.evidence);
    if (evidenceRows.length) sections.push(section("sec_evidence", evidenceRows));
    $("#detail-fields").replaceChildren(...sections);
    updateActionButtons();
    renderDuplicates();
  }

  function renderAudit() {
    const body = $("#audit-body");
    const audit = state.audit;
    $("#audit-count").textContent = Array.isArray(audit) ? "(" + audit.length + ")" : "";
    if (!Array.isArray(audit)) {
      body.replaceChildren(el("tr", null, el("td", { text: t("loading"), attrs: { colspan: 5 } })));
      return;
    }
    if (!audit.length) {
      body.replaceChildren(el("tr", null, el("td", { cls: "muted", text: t("audit_none"), attrs: { colspan: 5 } })));
      return;
    }
    const rows = [...audit]
      .sort((a, b) => (b.version || 0) - (a.version || 0) || (parseTime(b.at) || 0) - (parseTime(a.at) || 0))
      .map((entry) => el("tr", null,
        el("td", { cls: "mono", text: valueText(entry.version) }),
        el("td", { text: fmtTime(entry.at), attrs: { title: entry.at || "" } }),
        el("td", { text: valueText(entry.actor) }),
        el("td", { cls: "mono", text: valueText(entry.field) }),
        el("td", { cls: "change" },
          el("span", { cls: "old", text: valueText(entry.old) }),
          " → ",
          el("span", { cls: "new", text: valueText(entry.new) }))));
    body.replaceChildren(...rows);
  }

  // ---------------------------------------------------------------- transcript

  async function loadTranscript(id) {
    try {
      const data = await api("GET", incidentPath(id, "transcript"));
      if (state.openedId !== id) return;
      state.tx.missing = false;
      state.tx.error = "";
      state.tx.lastData = data || { turns: [] };
      renderTranscript(data || { turns: [] });
    } catch (err) {
      if (state.openedId !== id || err.status === 401) return;
      if (err.status === 404) {
        state.tx.missing = true;
        state.tx.lastData = null;
        state.tx.nodes = new Map();
        $("#transcript-status").textContent = "";
        $("#transcript").replaceChildren(el("p", { cls: "tx-note muted", text: t("transcript_none") }));
      } else if (!state.tx.lastData) {
        state.tx.error = err.message;
        $("#transcript").replaceChildren(el("p", { cls: "tx-note inline-error", text: err.message }));
      }
      if (retriable(err)) retryWhileOpen(id, loadTranscript, "transcript");
    }
  }

  function buildTurn(turn) {
    const speaker = turn.speaker === "bot" ? "bot" : "caller";
    const meta = el("div", { cls: "turn-meta" },
      el("span", { cls: "speaker", text: t(speaker === "bot" ? "speaker_bot" : "speaker_caller") }),
      " · ",
      el("span", { text: fmtTime(turn.at) }));
    if (typeof turn.asr_confidence === "number") {
      const pct = Math.round(turn.asr_confidence * 100);
      meta.append(" · ", el("span", { cls: turn.asr_confidence < 0.6 ? "asr low" : "asr", text: t("asr", { p: pct }) }));
    }
    const node = el("div", { cls: "turn turn-" + speaker }, meta, el("div", { cls: "turn-text", text: turn.text || "" }));
    node.dataset.seq = String(turn.seq);
    node.dataset.text = turn.text || "";
    return node;
  }

  function renderTranscript(data) {
    const box = $("#transcript");
    const tx = state.tx;
    const first = tx.nodes.size === 0;
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    for (const note of box.querySelectorAll(".tx-note")) note.remove();

    const statusParts = [];
    if (data.call_status) {
      const key = data.call_status === "in_progress" ? "call_live" : data.call_status === "ended" || data.call_status === "completed" ? "call_ended" : null;
      statusParts.push(key ? t(key) : String(data.call_status));
    }
    if (data.language) statusParts.push(t("tx_language", { lang: data.language }));
    $("#transcript-status").textContent = statusParts.length ? "· " + statusParts.join(" · ") : "";

    const turns = (Array.isArray(data.turns) ? data.turns : []).slice().sort((a, b) => a.seq - b.seq);
    let added = false;
    for (const turn of turns) {
      const existing = tx.nodes.get(turn.seq);
      if (existing) {
        if (existing.dataset.text !== (turn.text || "")) {
          const fresh = buildTurn(turn);
          existing.replaceWith(fresh);
          tx.nodes.set(turn.seq, fresh);
        }
        continue;
      }
      const node = buildTurn(turn);
      let before = null;
      for (const [seq, other] of tx.nodes) {
        if (seq > turn.seq && (!before || Number(before.dataset.seq) > seq)) before = other;
      }
      box.insertBefore(node, before);
      tx.nodes.set(turn.seq, node);
      added = true;
    }
    if (!tx.nodes.size) box.append(el("p", { cls: "tx-note muted", text: t("transcript_empty") }));
    if (added && (first || nearBottom)) box.scrollTop = box.scrollHeight;
  }

  function rerenderTranscript() {
    if (!state.openedId) return;
    const box = $("#transcript");
    if (state.tx.missing) {
      box.replaceChildren(el("p", { cls: "tx-note muted", text: t("transcript_none") }));
      return;
    }
    if (!state.tx.lastData) return;
    state.tx.nodes = new Map();
    box.replaceChildren();
    renderTranscript(state.tx.lastData);
  }

  // ---------------------------------------------------------------- duplicates

  async function loadDuplicates(id) {
    try {
      const data = await api("GET", incidentPath(id, "duplicates"));
      if (state.openedId !== id) return;
      state.duplicates = (Array.isArray(data && data.items) ? data.items : []).filter((d) => d && d.id && d.id !== id);
    } catch (err) {
      if (state.openedId !== id || err.status === 401) return;
      state.duplicates = [];
      state.dupError = err.status === 404 ? "" : err.message;
      if (retriable(err)) retryWhileOpen(id, loadDuplicates, "duplicates");
    }
    renderDuplicates();
  }

  function canMerge(inc) {
    return !!inc && OPEN_STATUSES.includes(inc.status);
  }

  function renderDuplicates() {
    const list = $("#duplicates");
    const datalist = $("#merge-candidates");
    if (!state.openedId) {
      list.replaceChildren();
      return;
    }
    if (state.duplicates === null) {
      list.replaceChildren(el("li", { cls: "muted", text: t("loading") }));
      return;
    }
    const items = state.duplicates;
    datalist.replaceChildren(...items.map((d) => el("option", { attrs: { value: d.id }, text: categoryLabel(d.category) + " – " + ((d.location && d.location.said) || "") })));
    if (!items.length) {
      const text = state.dupError ? state.dupError : t("dup_none");
      state.dupError = "";
      list.replaceChildren(el("li", { cls: "muted", text }));
      return;
    }
    const mergeable = canMerge(state.detailInc) && !state.busy;
    list.replaceChildren(...items.map((d) => {
      const loc = d.location || {};
      const resolvedName = loc.resolved && loc.resolved.name;
      const info = el("div", { cls: "dup-info" },
        el("div", { cls: "dup-title" },
          el("span", { cls: "prio-badge " + priorityClass(d.priority), text: priorityShort(d.priority) }),
          " ",
          el("span", { cls: "line-chip line-" + d.line, text: d.line || "—" }),
          " ",
          el("strong", { text: categoryLabel(d.category) }),
          " · ",
          el("span", { cls: "status-label", text: statusLabel(d.status) }),
          " · ",
          el("span", { cls: "muted", text: fmtAge(d.created_at) })),
        el("div", { cls: "dup-loc", text: [loc.said, resolvedName].filter(Boolean).join(" — ") || "—" }),
        el("div", { cls: "mono muted small", text: d.id }));
      const openButton = el("button", {
        cls: "ghost-dark small-btn",
        text: t("open"),
        attrs: { type: "button" },
        on: { click: () => openIncident(d.id) },
      });
      const mergeButton = el("button", {
        cls: "merge-into small-btn",
        text: t("merge_into_this"),
        attrs: { type: "button", "data-into": d.id, disabled: !mergeable },
        on: { click: () => doMerge(d.id) },
      });
      return el("li", { cls: "dup " + priorityClass(d.priority), data: { id: d.id } }, info, el("div", { cls: "dup-actions" }, openButton, mergeButton));
    }));
  }

  // ---------------------------------------------------------------- actions

  function allowed(action, inc) {
    if (!inc) return false;
    switch (action) {
      case "ack": return inc.status === "new";
      case "dispatch": return inc.status === "acknowledged";
      case "close": return inc.status === "acknowledged" || inc.status === "dispatched";
      case "merge": return canMerge(inc);
      case "takeover": return !!inc.call_in_progress && !!inc.call_id && !state.takeover;
      default: return false;
    }
  }

  function updateActionButtons() {
    const inc = state.detailInc;
    for (const action of ["ack", "dispatch", "close", "merge", "takeover"]) {
      const button = document.getElementById("act-" + action);
      button.disabled = state.busy || !allowed(action, inc);
    }
    for (const submit of ["#units-submit", "#outcome-submit", "#merge-submit"]) $(submit).disabled = state.busy;
    for (const button of document.querySelectorAll("#duplicates .merge-into")) {
      button.disabled = state.busy || !canMerge(inc);
    }
    // A form left open for an action that is no longer valid is closed.
    if (!allowed("dispatch", inc)) $("#units-form").hidden = true;
    if (!allowed("close", inc)) $("#outcome-form").hidden = true;
    if (!allowed("merge", inc)) $("#merge-form").hidden = true;
  }

  function setBusy(busy) {
    state.busy = busy;
    $("#detail-body").classList.toggle("busy", busy);
    updateActionButtons();
  }

  function clearActionMessages() {
    const error = $("#action-error");
    error.textContent = "";
    error.hidden = true;
    const ok = $("#action-result");
    ok.textContent = "";
    ok.hidden = true;
  }

  function showActionError(message) {
    const ok = $("#action-result");
    ok.hidden = true;
    const box = $("#action-error");
    box.textContent = message;
    box.hidden = false;
  }

  function showActionResult(message) {
    const error = $("#action-error");
    error.hidden = true;
    const box = $("#action-result");
    box.textContent = message;
    box.hidden = false;
  }

  function closeForms() {
    let closed = false;
    for (const id of ["#units-form", "#outcome-form", "#merge-form"]) {
      const form = $(id);
      if (!form.hidden) closed = true;
      form.hidden = true;
    }
    return closed;
  }

  function openForm(which) {
    const inc = state.detailInc;
    const action = { units: "dispatch", outcome: "close", merge: "merge" }[which];
    if (!allowed(action, inc) || state.busy) return;
    closeForms();
    clearActionMessages();
    const form = $("#" + which + "-form");
    form.hidden = false;
    const input = $("#" + which + "-input");
    if (which === "merge" && !input.value && state.duplicates && state.duplicates.length) {
      input.value = state.duplicates[0].id;
    }
    input.focus();
    input.select();
  }

  async function runAction(action, body, describe) {
    const inc = state.detailInc;
    if (!inc || state.busy) return null;
    if (!allowed(action, inc)) {
      showActionError(t("err_not_allowed_now"));
      return null;
    }
    const id = inc.id;
    clearActionMessages();
    setBusy(true);
    try {
      const payload = Object.assign({}, body, { expected_version: inc.version });
      const updated = await api("POST", incidentPath(id, action), payload);
      if (updated && updated.id) upsertIncident(updated);
      closeForms();
      showActionResult(describe(updated));
      return updated;
    } catch (err) {
      if (err.status === 401) return null;
      if (err.status === 409) {
        showActionError(err.message + " " + t("err_reloaded"));
        if (state.openedId === id) {
          loadDetail(id, { quiet: true });
          loadDuplicates(id);
        }
      } else {
        showActionError(err.message);
      }
      return null;
    } finally {
      setBusy(false);
    }
  }

  function doAck() {
    const inc = state.detailInc;
    if (!inc) return;
    runAction("ack", {}, () => t("ok_ack", { id: inc.id }));
  }

  function submitUnits(event) {
    event.preventDefault();
    const raw = $("#units-input").value;
    const units = [];
    for (const part of raw.split(",")) {
      const unit = part.trim();
      if (unit && !units.includes(unit)) units.push(unit);
    }
    if (!units.length) {
      showActionError(t("err_units_empty"));
      $("#units-input").focus();
      return;
    }
    const inc = state.detailInc;
    runAction("dispatch", { units }, () => t("ok_dispatch", { id: inc.id, units: units.join(", ") })).then((done) => {
      if (done) $("#units-input").value = "";
    });
  }

  function submitOutcome(event) {
    event.preventDefault();
    const outcome = $("#outcome-input").value.trim();
    if (!outcome) {
      showActionError(t("err_outcome_empty"));
      $("#outcome-input").focus();
      return;
    }
    const inc = state.detailInc;
    runAction("close", { outcome }, () => t("ok_close", { id: inc.id })).then((done) => {
      if (done) $("#outcome-input").value = "";
    });
  }

  function submitMerge(event) {
    event.preventDefault();
    doMerge($("#merge-input").value.trim());
  }

  async function doMerge(into) {
    const inc = state.detailInc;
    if (!inc) return;
    if (!into) {
      showActionError(t("err_merge_empty"));
      return;
    }
    if (into === inc.id) {
      showActionError(t("err_merge_self"));
      return;
    }
    const id = inc.id;
    const survivor = await runAction("merge", { into }, () => t("ok_merge", { id, into }));
    if (!survivor) return;
    $("#merge-input").value = "";
    // The answer is the surviving incident; fetch this one again to show it as merged.
    if (state.openedId === id) {
      loadDetail(id, { quiet: true });
      loadDuplicates(id);
    }
  }

  // ---------------------------------------------------------------- keyboard & wiring

  // ---------------------------------------------------------------- take-over

  // The dispatcher's browser joins a live call over WebRTC (microphone and
  // speaker); once audio flows the bot falls silent. Ending it closes only the
  // dispatcher's connection: the call stays with the human queue.

  const GATHER_TIMEOUT_MS = 3000;
  const DISCONNECTED_GRACE_MS = 4000;

  function waitForCandidates(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (pc.iceGatheringState !== "complete") return;
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      };
      pc.addEventListener("icegatheringstatechange", done);
      window.setTimeout(resolve, GATHER_TIMEOUT_MS);
    });
  }

  function renderTakeover() {
    const tk = state.takeover;
    const bar = $("#takeover-bar");
    bar.hidden = !tk;
    document.body.dataset.takeover = tk ? tk.phase : "";
    if (!tk) return;
    bar.dataset.phase = tk.phase;
    const key = { mic: "takeover_mic", connecting: "takeover_connecting", connected: "takeover_live" }[tk.phase];
    $("#takeover-text").textContent = t(key);
    $("#takeover-incident").textContent = tk.id;
  }

  function endTakeover(message, isError) {
    const tk = state.takeover;
    if (!tk) return;
    state.takeover = null;
    window.clearTimeout(tk.timer);
    if (tk.pc) {
      tk.pc.onconnectionstatechange = null;
      tk.pc.close();
    }
    if (tk.mic) for (const track of tk.mic.getTracks()) track.stop();
    $("#takeover-audio").srcObject = null;
    renderTakeover();
    updateActionButtons();
    if (message) {
      if (isError) showActionError(message);
      else showActionResult(message);
    }
  }

  function takeoverLost(tk) {
    if (state.takeover !== tk) return;
    const wasConnected = tk.phase === "connected";
    const inc = state.incidents.get(tk.id) || (state.detailInc && state.detailInc.id === tk.id ? state.detailInc : null);
    if (!wasConnected) endTakeover(t("err_takeover_failed"), true);
    else if (inc && !inc.call_in_progress) endTakeover(t("takeover_call_ended", { id: tk.id }), false);
    else endTakeover(t("takeover_ended", { id: tk.id }), false);
  }

  function onTakeoverState(tk) {
    if (state.takeover !== tk) return;
    const connection = tk.pc.connectionState;
    window.clearTimeout(tk.timer);
    if (connection === "connected") {
      tk.phase = "connected";
      renderTakeover();
    } else if (connection === "failed" || connection === "closed") {
      takeoverLost(tk);
    } else if (connection === "disconnected") {
      tk.timer = window.setTimeout(() => {
        if (state.takeover === tk && tk.pc.connectionState !== "connected") takeoverLost(tk);
      }, DISCONNECTED_GRACE_MS);
    }
  }

  async function startTakeover() {
    const inc = state.detailInc;
    if (state.takeover) {
      showActionError(t("err_takeover_busy"));
      return;
    }
    if (!allowed("takeover", inc) || state.busy) return;
    closeForms();
    clearActionMessages();
    const tk = { id: inc.id, pc: null, mic: null, phase: "mic", timer: 0 };
    state.takeover = tk;
    renderTakeover();
    updateActionButtons();
    try {
      tk.mic = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (err) {
      if (state.takeover === tk) endTakeover(t("err_takeover_mic") + " (" + err.name + ")", true);
      return;
    }
    if (state.takeover !== tk) {
      for (const track of tk.mic.getTracks()) track.stop();
      return;
    }
    tk.phase = "connecting";
    renderTakeover();
    const pc = new RTCPeerConnection({ iceServers: [] });
    tk.pc = pc;
    for (const track of tk.mic.getAudioTracks()) pc.addTrack(track, tk.mic);
    pc.ontrack = (event) => {
      const audio = $("#takeover-audio");
      audio.srcObject = event.streams && event.streams[0] ? event.streams[0] : new MediaStream([event.track]);
      audio.play().catch(() => { /* autoplay allowed after the key press or click */ });
    };
    pc.onconnectionstatechange = () => onTakeoverState(tk);
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await waitForCandidates(pc);
      const answer = await api("POST", incidentPath(tk.id, "takeover"), { sdp: pc.localDescription.sdp, type: "offer" });
      if (state.takeover !== tk) return;
      await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      const sender = pc.getSenders()[0];
      const transport = sender && sender.transport;
      if (transport) {
        // the server hanging up closes DTLS: not every browser reports it as a connection state
        transport.addEventListener("statechange", () => {
          if (transport.state === "closed" || transport.state === "failed") takeoverLost(tk);
        });
      }
    } catch (err) {
      if (state.takeover !== tk || err.status === 401) return;
      let message = err.message || t("err_takeover_failed");
      if (err.status === 404) message = t("err_takeover_not_live");
      else if (err.status === 409) message = t("err_takeover_taken");
      endTakeover(message, true);
    }
  }

  function toggleHelp(force) {
    const overlay = $("#help-overlay");
    const show = force === undefined ? overlay.hidden : force;
    overlay.hidden = !show;
    if (show) $("#help-close").focus();
  }

  // Action keys act on the incident shown in the detail panel. When the keyboard cursor
  // sits on another (visible) row, the first press opens that row instead, so nothing is
  // ever changed that the dispatcher is not looking at.
  function openSelectedFirst() {
    const id = state.selectedId;
    if (!id || id === state.openedId) return false;
    const tr = rowCache.get(id);
    if (!tr || tr.hidden) return false;
    openIncident(id);
    return true;
  }

  function onKeyDown(event) {
    unlockAudio();
    const overlay = $("#help-overlay");
    if (event.key === "Escape") {
      if (!overlay.hidden) {
        toggleHelp(false);
        event.preventDefault();
        return;
      }
      if (closeForms()) {
        event.preventDefault();
        const row = state.selectedId && rowCache.get(state.selectedId);
        if (row) row.focus({ preventScroll: true });
        return;
      }
      if (event.target === $("#search")) {
        $("#search").blur();
        return;
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (isTyping(event.target)) return;
    if (!overlay.hidden) {
      if (event.key === "?") {
        toggleHelp(false);
        event.preventDefault();
      }
      return;
    }
    const onButton = event.target instanceof Element && event.target.closest("button, a, summary");
    switch (event.key) {
      case "j":
      case "ArrowDown":
        moveSelection(1);
        event.preventDefault();
        break;
      case "k":
      case "ArrowUp":
        moveSelection(-1);
        event.preventDefault();
        break;
      case "Enter":
        if (onButton) return;
        if (state.selectedId) {
          openIncident(state.selectedId);
          event.preventDefault();
        }
        break;
      case "a":
        if (openSelectedFirst()) break;
        if (allowed("ack", state.detailInc) && !state.busy) doAck();
        break;
      case "d":
        if (openSelectedFirst()) break;
        if (allowed("dispatch", state.detailInc)) {
          openForm("units");
          event.preventDefault();
        }
        break;
      case "c":
        if (openSelectedFirst()) break;
        if (allowed("close", state.detailInc)) {
          openForm("outcome");
          event.preventDefault();
        }
        break;
      case "m":
        if (openSelectedFirst()) break;
        if (allowed("merge", state.detailInc)) {
          openForm("merge");
          event.preventDefault();
        }
        break;
      case "t":
        if (openSelectedFirst()) break;
        if (allowed("takeover", state.detailInc) || state.takeover) {
          startTakeover();
          event.preventDefault();
        }
        break;
      case "/":
        $("#search").focus();
        $("#search").select();
        event.preventDefault();
        break;
      case "?":
        toggleHelp();
        event.preventDefault();
        break;
      default:
        break;
    }
  }

  function readFilters() {
    state.filters = {
      line: $("#filter-line").value,
      status: $("#filter-status").value || "open",
      category: $("#filter-category").value,
      priority: $("#filter-priority").value,
    };
  }

  function onFilterChange() {
    readFilters();
    state.incidents = new Map();
    state.queueLoaded = false;
    state.limitHit = false;
    renderQueue();
    loadQueue();
  }

  async function logout() {
    try {
      await api("POST", "/auth/logout", {});
    } catch (err) {
      if (err.status === 401) return; // already on the way to the login page
    }
    state.redirecting = true;
    if (state.es) state.es.close();
    window.location.assign("/login");
  }

  function wire() {
    document.addEventListener("keydown", onKeyDown);
    document.addEventListener("pointerdown", unlockAudio, { capture: true });
    document.addEventListener("click", unlockAudio, { capture: true });

    for (const button of document.querySelectorAll(".lang-switch button")) {
      button.addEventListener("click", () => setLang(button.dataset.lang));
    }
    $("#help-button").addEventListener("click", () => toggleHelp());
    $("#help-close").addEventListener("click", () => toggleHelp(false));
    $("#help-overlay").addEventListener("click", (event) => {
      if (event.target === event.currentTarget) toggleHelp(false);
    });
    $("#logout-button").addEventListener("click", logout);
    $("#reload-button").addEventListener("click", () => loadQueue());

    $("#filters").addEventListener("submit", (event) => event.preventDefault());
    for (const id of ["#filter-line", "#filter-status", "#filter-category", "#filter-priority"]) {
      $(id).addEventListener("change", onFilterChange);
    }
    $("#search").addEventListener("input", () => {
      state.search = $("#search").value;
      renderQueue();
    });
    $("#search").addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        const ids = visibleIds();
        if (ids.length) {
          openIncident(ids.includes(state.selectedId) ? state.selectedId : ids[0]);
          $("#search").blur();
        }
      }
    });

    const body = $("#queue-body");
    body.addEventListener("click", (event) => {
      const tr = event.target instanceof Element ? event.target.closest("tr.incident") : null;
      if (tr && tr.dataset.id) openIncident(tr.dataset.id);
    });
    body.addEventListener("focusin", (event) => {
      const tr = event.target instanceof Element ? event.target.closest("tr.incident") : null;
      if (tr && tr.dataset.id && tr.dataset.id !== state.selectedId) selectRow(tr.dataset.id);
    });

    $("#act-ack").addEventListener("click", doAck);
    $("#act-dispatch").addEventListener("click", () => openForm("units"));
    $("#act-close").addEventListener("click", () => openForm("outcome"));
    $("#act-merge").addEventListener("click", () => openForm("merge"));
    $("#act-takeover").addEventListener("click", startTakeover);
    $("#takeover-end").addEventListener("click", () => {
      const tk = state.takeover;
      if (tk) endTakeover(tk.phase === "connected" ? t("takeover_ended", { id: tk.id }) : "", false);
    });
    $("#takeover-incident").addEventListener("click", () => {
      if (state.takeover) openIncident(state.takeover.id);
    });
    window.addEventListener("pagehide", () => endTakeover("", false));
    $("#units-form").addEventListener("submit", submitUnits);
    $("#outcome-form").addEventListener("submit", submitOutcome);
    $("#merge-form").addEventListener("submit", submitMerge);
    for (const cancel of document.querySelectorAll(".inline-form .cancel")) {
      cancel.addEventListener("click", () => closeForms());
    }

    window.setInterval(refreshAges, AGE_REFRESH_MS);
  }

  async function start() {
    try {
      const me = await api("GET", "/auth/me");
      state.me = me || {};
      state.csrf = (me && me.csrf_token) || "";
      showGlobalError("");
    } catch (err) {
      if (err.status === 401) return;
      showGlobalError(err.message);
      window.setTimeout(start, RETRY_MS);
      return;
    }
    renderUser();
    connectEvents();
    loadQueue();
  }

  function boot() {
    state.lang = loadLang();
    readFilters();
    wire();
    applyLang();
    start();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
