// Supervisor review console: one call (/review/calls/{id}).
// Hear it, read it, see what the bot decided and why, correct the incident, annotate, score.
// Plain ES2020, no framework. Everything from the server (the transcript above all) is set
// with textContent / createElement, never innerHTML.
"use strict";

(() => {
  const C = window.Callbot; // common.js
  const { el, valueText, detailText, ApiError, retriable, showGlobalError, loadLang, priorityClass, priorityShort, CATEGORY_LABELS, FLAG_LABELS, CHANNEL_LABELS } = C;

  // ---------------------------------------------------------------- strings

  const I18N = {
    vi: {
      ...C.I18N.vi,
      title: "Xem lại cuộc gọi",
      nav: "Điều hướng",
      nav_calls: "Cuộc gọi",
      nav_dashboard: "Thống kê",
      yes: "Có",
      no: "Không",
      not_found: "Không tìm thấy cuộc gọi",
      not_found_hint: "Cuộc gọi không tồn tại hoặc đã bị xóa theo thời hạn lưu trữ.",
      sec_facts: "Thông tin cuộc gọi",
      sec_transcript: "Hội thoại",
      sec_incident: "Sự việc bot ghi nhận",
      sec_qa: "Kiểm tra chất lượng tự động",
      sec_review: "Chấm điểm cuộc gọi",
      sec_audit: "Nhật ký thay đổi",
      no_recording: "Không có bản ghi âm cho cuộc gọi này.",
      player_hint: "Bấm vào một lượt nói để nghe từ đó.",
      fact_line: "Đường dây",
      fact_channel: "Kênh",
      fact_language: "Ngôn ngữ",
      fact_caller: "Số người gọi",
      fact_started: "Bắt đầu",
      fact_ended: "Kết thúc",
      fact_duration: "Thời lượng",
      fact_status: "Kết quả",
      fact_handoff: "Lý do chuyển cán bộ",
      fact_category: "Loại sự việc",
      fact_priority: "Ưu tiên",
      fact_review: "Xem lại",
      fact_call_id: "Mã cuộc gọi",
      lang_vi: "Tiếng Việt",
      lang_en: "Tiếng Anh",
      cst_completed: "Hoàn tất",
      cst_handed_off: "Chuyển cán bộ",
      cst_dropped: "Mất kết nối",
      cst_failed: "Lỗi",
      cst_in_progress: "Đang diễn ra",
      ist_new: "Mới",
      ist_acknowledged: "Đã tiếp nhận",
      ist_dispatched: "Đã điều lực lượng",
      ist_closed: "Đã đóng",
      ist_merged: "Đã gộp",
      prio_1: "P1 – Nguy hiểm tính mạng",
      prio_2: "P2 – Khẩn cấp",
      prio_3: "P3 – Bình thường",
      prio_4: "P4 – Không khẩn cấp",
      prio_none: "Chưa rõ mức ưu tiên",
      reason_random: "ngẫu nhiên",
      reason_priority1: "ưu tiên 1",
      reason_flagged: "bị đánh dấu",
      reviewed: "đã xem lại",
      not_reviewed: "chưa xem lại",
      speaker_caller: "Người gọi",
      speaker_bot: "Tổng đài tự động",
      transcript_empty: "Không có lượt nói nào.",
      asr_title: "Nhận dạng giọng nói: {engine}, độ tin cậy {p}%",
      low_conf: "tin cậy thấp",
      decisions: "Bot quyết định",
      dec_intent: "Phân loại",
      dec_slots: "Thông tin thay đổi",
      dec_no_change: "không đổi",
      dec_latency: "Độ trễ trả lời",
      dec_latency_slow: "chậm hơn mục tiêu 800 ms",
      annotate: "Ghi chú",
      annotate_label: "Ghi chú cho lượt {seq}",
      annotate_placeholder: "Nhận xét về lượt nói này…",
      save: "Lưu",
      cancel: "Hủy",
      err_annotation_empty: "Nhập nội dung ghi chú.",
      play_from: "Nghe từ {time}",
      no_incident: "Cuộc gọi này không tạo sự việc.",
      inc_version: "phiên bản {v}",
      f_category: "Loại sự việc",
      f_priority: "Ưu tiên",
      f_location_text: "Địa điểm (lời người gọi)",
      f_location_unit: "Địa bàn xác định",
      f_what_happened: "Diễn biến",
      f_callback_number: "Số gọi lại",
      f_caller_name: "Tên người gọi",
      f_injured: "Số người bị thương",
      f_trapped: "Mắc kẹt",
      f_red_flags: "Dấu hiệu nguy hiểm",
      f_handoff: "Yêu cầu cán bộ",
      loc_confirmed: "người gọi đã xác nhận",
      loc_unconfirmed: "người gọi chưa xác nhận",
      ev_turn: "lượt người gọi {n}",
      ev_asr: "ASR {p}%",
      ev_intent: "phân loại {p}%",
      ev_by_caller: "✓ người gọi xác nhận",
      ev_by_human: "✓ cán bộ xác nhận",
      ev_none: "không có căn cứ từ lời người gọi",
      ev_hint: "Di chuột hoặc bấm để xem lượt nói làm căn cứ",
      correct: "Sửa",
      correct_label: "Sửa “{field}”",
      correct_save: "Lưu sửa đổi",
      correct_ok: "Đã sửa “{field}”.",
      correct_conflict: "Sự việc vừa được người khác thay đổi; đã tải lại. Kiểm tra rồi sửa lại.",
      correct_empty: "(để trống)",
      err_injured: "Nhập một số nguyên ≥ 0, hoặc để trống.",
      qa_passed: "Đạt",
      qa_failed: "Không đạt",
      qa_na: "Không áp dụng",
      qa_flagged: "Bị đánh dấu cần xem lại",
      qa_none: "Chưa có kết quả kiểm tra.",
      review_notes: "Nhận xét",
      review_submit: "Lưu đánh giá",
      review_ok: "Đã lưu đánh giá.",
      review_missing: "Hãy trả lời mọi câu hỏi.",
      review_no_form: "Không tải được mẫu chấm điểm.",
      earlier_reviews: "Các lần chấm trước",
      no_reviews: "Chưa ai chấm cuộc gọi này.",
      score: "Điểm {s}",
      audit_at: "Lúc",
      audit_actor: "Người",
      audit_field: "Trường",
      audit_change: "Thay đổi",
      audit_none: "Chưa có thay đổi.",
      cat_unknown: "Chưa phân loại",
      forbidden_hint: "Trang này chỉ dành cho trưởng ca và quản trị viên.",
      err_audio: "Không phát được bản ghi âm: {why}",
    },
    en: {
      ...C.I18N.en,
      title: "Call review",
      nav: "Navigation",
      nav_calls: "Calls",
      nav_dashboard: "Dashboard",
      yes: "Yes",
      no: "No",
      not_found: "Call not found",
      not_found_hint: "There is no such call, or it was purged when its retention ended.",
      sec_facts: "Call facts",
      sec_transcript: "Transcript",
      sec_incident: "Incident as the bot recorded it",
      sec_qa: "Automatic quality checks",
      sec_review: "Score this call",
      sec_audit: "Audit trail",
      no_recording: "There is no recording of this call.",
      player_hint: "Click a turn to listen from there.",
      fact_line: "Line",
      fact_channel: "Channel",
      fact_language: "Language",
      fact_caller: "Caller number",
      fact_started: "Started",
      fact_ended: "Ended",
      fact_duration: "Duration",
      fact_status: "Outcome",
      fact_handoff: "Hand-off reason",
      fact_category: "Category",
      fact_priority: "Priority",
      fact_review: "Review",
      fact_call_id: "Call id",
      lang_vi: "Vietnamese",
      lang_en: "English",
      cst_completed: "Completed",
      cst_handed_off: "Handed off",
      cst_dropped: "Dropped",
      cst_failed: "Failed",
      cst_in_progress: "In progress",
      ist_new: "New",
      ist_acknowledged: "Acknowledged",
      ist_dispatched: "Dispatched",
      ist_closed: "Closed",
      ist_merged: "Merged",
      prio_1: "P1 – Threat to life",
      prio_2: "P2 – Urgent",
      prio_3: "P3 – Normal",
      prio_4: "P4 – Low / non-emergency",
      prio_none: "Priority not known",
      reason_random: "random",
      reason_priority1: "priority 1",
      reason_flagged: "flagged",
      reviewed: "reviewed",
      not_reviewed: "not reviewed",
      speaker_caller: "Caller",
      speaker_bot: "Callbot",
      transcript_empty: "No turns.",
      asr_title: "Speech recognition: {engine}, confidence {p}%",
      low_conf: "low confidence",
      decisions: "Bot decided",
      dec_intent: "Intent",
      dec_slots: "Changed",
      dec_no_change: "no change",
      dec_latency: "Reply latency",
      dec_latency_slow: "slower than the 800 ms target",
      annotate: "Annotate",
      annotate_label: "Note on turn {seq}",
      annotate_placeholder: "What about this turn…",
      save: "Save",
      cancel: "Cancel",
      err_annotation_empty: "Write the note first.",
      play_from: "Play from {time}",
      no_incident: "This call created no incident.",
      inc_version: "version {v}",
      f_category: "Category",
      f_priority: "Priority",
      f_location_text: "Location (as said)",
      f_location_unit: "Resolved area",
      f_what_happened: "What happened",
      f_callback_number: "Callback number",
      f_caller_name: "Caller name",
      f_injured: "Injured",
      f_trapped: "Trapped",
      f_red_flags: "Red flags",
      f_handoff: "Hand-off requested",
      loc_confirmed: "confirmed by caller",
      loc_unconfirmed: "not confirmed by caller",
      ev_turn: "caller turn {n}",
      ev_asr: "ASR {p}%",
      ev_intent: "intent {p}%",
      ev_by_caller: "✓ confirmed by caller",
      ev_by_human: "✓ confirmed by staff",
      ev_none: "no evidence from the caller's words",
      ev_hint: "Hover or click to see the turn it came from",
      correct: "Correct",
      correct_label: "Correct “{field}”",
      correct_save: "Save correction",
      correct_ok: "Corrected “{field}”.",
      correct_conflict: "Someone changed this incident meanwhile; it was reloaded. Check, then correct again.",
      correct_empty: "(leave empty)",
      err_injured: "Enter a whole number ≥ 0, or leave it empty.",
      qa_passed: "Passed",
      qa_failed: "Failed",
      qa_na: "Not applicable",
      qa_flagged: "Flagged for review",
      qa_none: "No check results.",
      review_notes: "Notes",
      review_submit: "Save review",
      review_ok: "Review saved.",
      review_missing: "Answer every question.",
      review_no_form: "Could not load the review form.",
      earlier_reviews: "Earlier reviews",
      no_reviews: "Nobody has reviewed this call yet.",
      score: "Score {s}",
      audit_at: "At",
      audit_actor: "Actor",
      audit_field: "Field",
      audit_change: "Change",
      audit_none: "No changes yet.",
      cat_unknown: "Not classified",
      forbidden_hint: "This page is for supervisors and admins only.",
      err_audio: "The recording cannot be played: {why}",
    },
  };

  // The categories a supervisor can correct to (the dialogue engine's codes).
  const CATEGORY_CHOICES = [
    "theft", "robbery", "assault", "weapon_threat", "domestic_violence", "missing_child",
    "public_disorder", "traffic_accident", "fire", "explosion_gas_leak", "collapse_trapped",
    "drowning_water_rescue", "other_rescue", "medical", "administrative", "prank_silent", "human_request",
  ];

  const QA_LABELS = {
    emergency_type_captured: ["Xác định loại sự việc", "Emergency type captured"],
    location_captured: ["Ghi nhận địa điểm", "Location captured"],
    location_read_back: ["Đọc lại địa điểm cho người gọi", "Location read back"],
    callback_captured: ["Ghi nhận số gọi lại", "Callback number captured"],
    safety_instruction_given: ["Đưa hướng dẫn an toàn", "Safety instruction given"],
    red_flag_handled: ["Xử lý dấu hiệu nguy hiểm", "Red flag handled"],
    time_to_greeting_ms: ["Thời gian đến lời chào", "Time to greeting"],
    time_to_first_question_ms: ["Thời gian đến câu hỏi đầu tiên", "Time to first question"],
    time_to_handoff_ms: ["Thời gian chuyển cán bộ", "Time to hand-off"],
    silence_count: ["Số lần im lặng", "Silences"],
    repeat_count: ["Số lần phải hỏi lại", "Repeats"],
  };

  // The incident panel: [field, evidence key, correctable input kind or null].
  const INCIDENT_FIELDS = [
    ["category", "category", "category"],
    ["priority", null, "priority"],
    ["location_text", "location_text", "text"],
    ["location_unit", "location_unit", null],
    ["what_happened", "what_happened", null],
    ["callback_number", "callback_number", "tel"],
    ["caller_name", "caller_name", "text"],
    ["injured", "injured", "count"],
    ["trapped", "trapped", null],
    ["red_flags", "red_flags", null],
  ];

  const RETRY_MS = 5000;
  const LOW_CONFIDENCE = 0.6;
  const LATENCY_TARGET_MS = 800;

  // ---------------------------------------------------------------- state

  const state = {
    lang: "vi",
    me: null,
    csrf: "",
    redirecting: false,
    callId: "",
    detail: null, // the answer of GET /api/v1/review/calls/{id}
    form: null, // questions of the review form; [] when it could not be loaded
    turns: [], // sorted by seq
    turnNodes: new Map(), // seq -> .turn
    timeline: [], // [start_ms, seq] sorted by time
    currentSeq: null,
    pinnedField: null,
    hoverField: null,
    openCorrection: null, // field name whose form is open
    busy: false,
  };

  // ---------------------------------------------------------------- helpers

  const $ = (sel) => document.querySelector(sel);

  function t(key, vars) {
    return C.translate(I18N, state.lang, key, vars);
  }

  function tOr(key, fallback, vars) {
    const text = t(key, vars);
    return text === key ? fallback : text;
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

  function qaLabel(name) {
    return pick(QA_LABELS[name], String(name).replace(/_/g, " "));
  }

  function channelLabel(code) {
    return pick(CHANNEL_LABELS[code], code ? String(code) : "—");
  }

  function priorityLong(p) {
    return [1, 2, 3, 4].includes(p) ? t("prio_" + p) : t("prio_none");
  }

  function pct(x) {
    return Math.round(x * 100);
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
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  // Call time: mm:ss from the start of the call (h:mm:ss past an hour).
  function fmtClock(ms) {
    if (typeof ms !== "number" || !Number.isFinite(ms)) return "--:--";
    const total = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    const mm = String(m).padStart(2, "0") + ":" + String(s).padStart(2, "0");
    return h ? h + ":" + mm : mm;
  }

  function fmtMs(ms) {
    if (typeof ms !== "number" || !Number.isFinite(ms)) return "—";
    if (Math.abs(ms) < 1000) return Math.round(ms) + " ms";
    return (ms / 1000).toLocaleString(locale(), { maximumFractionDigits: 1 }) + " s";
  }

  // ---------------------------------------------------------------- API

  function goLogin() {
    C.goLogin(state);
  }

  function api(method, path, body) {
    return C.api({ t, csrf: state.csrf, goLogin }, method, path, body);
  }

  function callPath(suffix) {
    return "/api/v1/review/calls/" + encodeURIComponent(state.callId) + (suffix ? "/" + suffix : "");
  }

  function showForbidden() {
    $("#forbidden").hidden = false;
    $("#content").hidden = true;
    $("#call-loading").hidden = true;
    showGlobalError("");
  }

  function showMsg(box, message, ok) {
    box.textContent = message || "";
    box.className = "msg " + (ok ? "msg-ok" : "msg-error");
    box.hidden = !message;
  }

  // ---------------------------------------------------------------- language

  function setLang(lang) {
    state.lang = C.saveLang(lang);
    applyLang();
  }

  function applyLang() {
    C.applyStaticTexts(t, state.lang);
    document.title = t("title") + (state.callId ? " " + state.callId : "");
    renderUser();
    if (state.detail) renderAll();
    renderForm();
  }

  function renderUser() {
    C.renderUser(state.me, t);
  }

  // ---------------------------------------------------------------- loading

  async function loadCall(opts) {
    const quiet = opts && opts.quiet;
    try {
      const data = await api("GET", callPath());
      if (!data || !data.call) throw new ApiError(500, t("err_generic", { status: "?" }), data);
      const first = !state.detail;
      state.detail = data;
      $("#call-loading").hidden = true;
      $("#content").hidden = false;
      showGlobalError("");
      if (first || !(opts && opts.partial)) renderAll();
      else {
        renderIncident();
        renderAudit();
        renderQa();
        renderFacts();
      }
    } catch (err) {
      if (err.status === 401) return;
      if (err.status === 403) {
        showForbidden();
        return;
      }
      if (err.status === 404) {
        $("#call-loading").hidden = true;
        $("#content").hidden = true;
        $("#not-found").hidden = false;
        return;
      }
      if (!quiet || !state.detail) showGlobalError(err.message);
      if (retriable(err) || !state.detail) window.setTimeout(() => loadCall(opts), RETRY_MS);
    }
  }

  async function loadForm() {
    try {
      const data = await api("GET", "/api/v1/review/form");
      state.form = Array.isArray(data && data.questions) ? data.questions : [];
    } catch (err) {
      if (err.status === 401 || err.status === 403) return;
      state.form = [];
      if (retriable(err)) window.setTimeout(loadForm, RETRY_MS);
    }
    renderForm();
    if (state.detail) renderReviews(); // question texts for the earlier answers
  }

  function renderAll() {
    renderFacts();
    renderPlayer();
    renderTranscript();
    renderIncident();
    renderQa();
    renderReviews();
    renderAudit();
  }

  // ---------------------------------------------------------------- facts

  function fact(labelKey, value, cls) {
    const box = el("div", { cls: "fact" + (cls ? " " + cls : "") }, el("span", { cls: "fact-label", text: t(labelKey) }));
    const v = el("span", { cls: "fact-value" });
    if (value instanceof Node) v.append(value);
    else v.textContent = valueText(value);
    box.append(v);
    return box;
  }

  function renderFacts() {
    const call = state.detail.call;
    const line = el("span", null,
      el("span", { cls: "line-chip line-" + call.line, text: call.line || "—" }),
      " ",
      el("span", { cls: "small", text: tOr("line_" + call.line, "") }));
    const status = el("span", { cls: "status-chip st-" + call.status, text: tOr("cst_" + call.status, valueText(call.status)) });
    const prio = el("span", { cls: "prio-badge " + priorityClass(call.priority), text: priorityShort(call.priority), attrs: { title: priorityLong(call.priority) } });
    const nodes = [
      fact("fact_line", line),
      fact("fact_channel", channelLabel(call.channel)),
      fact("fact_language", tOr("lang_" + call.language, valueText(call.language))),
      fact("fact_caller", call.caller_number ? el("span", { cls: "mono", text: call.caller_number }) : null),
      fact("fact_started", fmtDateTime(call.started_at)),
      fact("fact_ended", fmtDateTime(call.ended_at)),
      fact("fact_duration", fmtDuration(call.duration_s)),
      fact("fact_status", status),
      fact("fact_category", categoryLabel(call.category)),
      fact("fact_priority", prio),
    ];
    const review = call.review || {};
    if (review.reason || review.reviewed) {
      const box = el("span");
      if (review.reason) box.append(el("span", { cls: "badge reason-" + review.reason, text: tOr("reason_" + review.reason, review.reason) }), " ");
      box.append(el("span", { cls: review.reviewed ? "badge ok" : "muted", text: review.reviewed ? "✓ " + t("reviewed") : t("not_reviewed") }));
      nodes.push(fact("fact_review", box));
    }
    nodes.push(fact("fact_call_id", el("span", { cls: "mono", text: call.call_id })));
    if (call.handoff || call.handoff_reason) {
      const reason = el("span", null, el("span", { cls: "badge handoff", text: t("yes") }), " ", call.handoff_reason || "");
      nodes.push(fact("fact_handoff", reason, "wide"));
    }
    $("#facts").replaceChildren(...nodes);
    $("#title-id").textContent = call.call_id || state.callId;
  }

  // ---------------------------------------------------------------- audio

  function renderPlayer() {
    const url = state.detail.recording_url;
    const player = $("#player");
    if (url) {
      if (player.getAttribute("src") !== url) player.setAttribute("src", url);
      player.hidden = false;
      $("#no-recording").hidden = true;
      $("#player-hint").hidden = false;
    } else {
      if (player.hasAttribute("src")) {
        player.pause();
        player.removeAttribute("src");
        player.load();
      }
      player.hidden = true;
      $("#no-recording").hidden = false;
      $("#player-hint").hidden = true;
    }
  }

  // Seek the player to `ms` (call time) and play from there.
  function seekTo(ms) {
    const player = $("#player");
    if (!state.detail || !state.detail.recording_url || typeof ms !== "number" || !Number.isFinite(ms)) return;
    const target = Math.max(0, ms / 1000);
    const play = () => {
      const promise = player.play();
      if (promise && promise.catch) promise.catch(() => { /* autoplay refused or aborted by a newer seek */ });
    };
    if (player.readyState >= 1) {
      const duration = player.duration;
      player.currentTime = Number.isFinite(duration) && duration > 0 ? Math.min(target, duration) : target;
      play();
    } else {
      // Not loaded yet: the position applies when the metadata arrives.
      player.currentTime = target;
      player.addEventListener("loadedmetadata", () => {
        if (Math.abs(player.currentTime - target) > 0.25) player.currentTime = target;
      }, { once: true });
      play();
    }
    setCurrent(state.timeline.length ? seqAt(ms) : null, false);
  }

  function seqAt(ms) {
    let found = null;
    for (const [start, seq] of state.timeline) {
      if (start <= ms + 1) found = seq;
      else break;
    }
    return found;
  }

  function setCurrent(seq, scroll) {
    if (seq === state.currentSeq) return;
    const old = state.currentSeq !== null ? state.turnNodes.get(state.currentSeq) : null;
    if (old) {
      old.classList.remove("current");
      old.removeAttribute("aria-current");
    }
    state.currentSeq = seq;
    const node = seq !== null ? state.turnNodes.get(seq) : null;
    if (node) {
      node.classList.add("current");
      node.setAttribute("aria-current", "true");
      if (scroll) scrollIntoViewIfNeeded(node);
    }
  }

  function scrollIntoViewIfNeeded(node) {
    const rect = node.getBoundingClientRect();
    const top = 110; // below the sticky header and player
    if (rect.top < top || rect.bottom > window.innerHeight) {
      node.scrollIntoView({ block: "center", behavior: "smooth" });
    }
  }

  function onTimeUpdate() {
    const player = $("#player");
    if (!state.timeline.length) return;
    setCurrent(seqAt(player.currentTime * 1000), !player.paused);
  }

  // ---------------------------------------------------------------- transcript

  function slotDiff(prev, next) {
    const before = prev && typeof prev === "object" ? prev : {};
    const after = next && typeof next === "object" ? next : {};
    const changes = [];
    const names = new Set([...Object.keys(before), ...Object.keys(after)]);
    for (const name of [...names].sort()) {
      const a = before[name];
      const b = after[name];
      const emptyA = a === null || a === undefined || a === "";
      const emptyB = b === null || b === undefined || b === "";
      if (emptyA && emptyB) continue;
      if (emptyA) changes.push(["added", name, null, b]);
      else if (emptyB) changes.push(["removed", name, a, null]);
      else if (JSON.stringify(a) !== JSON.stringify(b)) changes.push(["changed", name, a, b]);
    }
    return changes;
  }

  function buildDecisions(turn, prevSlots) {
    const box = el("div", { cls: "decisions" }, el("div", { cls: "dec-title", text: t("decisions") }));
    if (turn.intent) {
      const intent = el("div", { cls: "intent" },
        el("span", { text: categoryLabel(turn.intent) }),
        " ",
        el("span", { cls: "muted mono", text: "(" + turn.intent + ")" }));
      if (typeof turn.intent_confidence === "number") {
        intent.append(" ", el("span", {
          cls: "conf" + (turn.intent_confidence < LOW_CONFIDENCE ? " low" : ""),
          text: pct(turn.intent_confidence) + "%",
          attrs: { title: t("dec_intent") },
        }));
      }
      box.append(intent);
    }
    const changes = slotDiff(prevSlots, turn.slots);
    if (changes.length) {
      const list = el("ul", { cls: "slot-diff", attrs: { "aria-label": t("dec_slots") } });
      for (const [kind, name, oldValue, newValue] of changes) {
        const sign = kind === "added" ? "+" : kind === "removed" ? "−" : "~";
        const li = el("li", { cls: "slot-" + kind, data: { slot: name } },
          el("span", { cls: "slot-sign", text: sign + " " }),
          el("span", { cls: "slot-name", text: name }),
          ": ");
        if (kind === "changed") li.append(el("span", { cls: "slot-old", text: valueText(oldValue) }), " → ");
        li.append(el("span", { cls: "slot-new", text: kind === "removed" ? valueText(oldValue) : valueText(newValue) }));
        list.append(li);
      }
      box.append(list);
    } else if (turn.slots && typeof turn.slots === "object") {
      box.append(el("div", { cls: "muted", text: t("dec_slots") + ": " + t("dec_no_change") }));
    }
    if (typeof turn.reply_latency_ms === "number") {
      const slow = turn.reply_latency_ms > LATENCY_TARGET_MS;
      box.append(el("div", {
        cls: "latency" + (slow ? " slow" : ""),
        text: t("dec_latency") + ": " + fmtMs(turn.reply_latency_ms),
        attrs: { title: slow ? t("dec_latency_slow") : null },
      }));
    }
    return box;
  }

  function buildAnnotation(a) {
    return el("li", { cls: "annotation", data: { id: a.id !== undefined ? a.id : "" } },
      el("div", { cls: "ann-meta" }, el("strong", { text: valueText(a.author) }), " · ", fmtDateTime(a.at)),
      el("div", { cls: "ann-text", text: a.text || "" }));
  }

  function buildTurn(turn, prevBotSlots) {
    const speaker = turn.speaker === "bot" ? "bot" : "caller";
    const hasTime = typeof turn.start_ms === "number" && Number.isFinite(turn.start_ms);
    const meta = el("div", { cls: "turn-meta" },
      el("span", { cls: "speaker", text: t(speaker === "bot" ? "speaker_bot" : "speaker_caller") }),
      el("span", { cls: "turn-time", text: fmtClock(turn.start_ms), attrs: { title: fmtDateTime(turn.at) } }));
    let low = false;
    if (speaker === "caller" && (turn.asr_engine || typeof turn.asr_confidence === "number")) {
      const parts = [];
      if (turn.asr_engine) parts.push(String(turn.asr_engine));
      if (typeof turn.asr_confidence === "number") {
        parts.push(pct(turn.asr_confidence) + "%");
        low = turn.asr_confidence < LOW_CONFIDENCE;
      }
      if (low) parts.push(t("low_conf"));
      meta.append(el("span", {
        cls: "asr" + (low ? " low" : ""),
        text: parts.join(" · "),
        attrs: {
          title: t("asr_title", {
            engine: turn.asr_engine || "?",
            p: typeof turn.asr_confidence === "number" ? pct(turn.asr_confidence) : "?",
          }),
        },
      }));
    }
    const main = el("div", { cls: "turn-main" }, meta, el("div", { cls: "turn-text", text: turn.text || "" }));
    const node = el("div", {
      cls: "turn turn-" + speaker + (low ? " low-confidence" : "") + (hasTime ? "" : " no-time"),
      attrs: {
        tabindex: "0",
        title: hasTime && state.detail.recording_url ? t("play_from", { time: fmtClock(turn.start_ms) }) : null,
      },
    }, main);
    node.dataset.seq = String(turn.seq);
    if (hasTime) node.dataset.startMs = String(turn.start_ms);
    if (speaker === "bot") {
      node.classList.add("has-decisions");
      node.append(buildDecisions(turn, prevBotSlots));
    }

    const extra = el("div", { cls: "turn-extra" });
    const list = el("ul", { cls: "annotations" });
    for (const a of Array.isArray(turn.annotations) ? turn.annotations : []) list.append(buildAnnotation(a));
    const button = el("button", { cls: "annotate-btn small-btn", text: "✎ " + t("annotate"), attrs: { type: "button" } });
    const form = buildAnnotateForm(turn, list, button);
    button.addEventListener("click", () => {
      form.hidden = !form.hidden;
      if (!form.hidden) form.querySelector("textarea").focus();
    });
    extra.append(list, form, el("div", { cls: "turn-tools" }, button));
    node.append(extra);
    return node;
  }

  function buildAnnotateForm(turn, list, button) {
    const areaId = "annotate-" + turn.seq;
    const area = el("textarea", { cls: "annotate-text", attrs: { id: areaId, rows: "2", maxlength: "2000", placeholder: t("annotate_placeholder") } });
    const msg = el("div", { cls: "msg", attrs: { role: "status" } });
    msg.hidden = true;
    const submit = el("button", { cls: "annotate-submit small-btn", text: t("save"), attrs: { type: "submit" } });
    const cancel = el("button", { cls: "ghost-dark small-btn", text: t("cancel"), attrs: { type: "button" } });
    const form = el("form", { cls: "inline-form annotate-form", attrs: { autocomplete: "off" } },
      el("label", { text: t("annotate_label", { seq: turn.seq }), attrs: { for: areaId } }),
      area,
      el("div", { cls: "inline-row" }, submit, cancel),
      msg);
    form.hidden = true;
    cancel.addEventListener("click", () => {
      form.hidden = true;
      showMsg(msg, "");
      button.focus();
    });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") cancel.click();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = area.value.trim();
      if (!text) {
        showMsg(msg, t("err_annotation_empty"));
        area.focus();
        return;
      }
      submit.disabled = true;
      try {
        const answer = await api("POST", callPath("turns/" + encodeURIComponent(turn.seq) + "/annotations"), { text });
        const annotation = answer && answer.annotation ? answer.annotation : answer;
        const saved = annotation && typeof annotation === "object" ? annotation : { text, author: state.me && state.me.name, at: new Date().toISOString() };
        if (!Array.isArray(turn.annotations)) turn.annotations = [];
        turn.annotations.push(saved);
        list.append(buildAnnotation(saved));
        area.value = "";
        form.hidden = true;
        showMsg(msg, "");
      } catch (err) {
        if (err.status !== 401) showMsg(msg, err.message);
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  function renderTranscript() {
    const box = $("#transcript");
    const turns = (Array.isArray(state.detail.turns) ? state.detail.turns : [])
      .filter((turn) => turn && typeof turn === "object")
      .slice()
      .sort((a, b) => (a.seq || 0) - (b.seq || 0));
    state.turns = turns;
    state.turnNodes = new Map();
    const nodes = [];
    let prevBotSlots = {};
    for (const turn of turns) {
      const node = buildTurn(turn, prevBotSlots);
      if (turn.speaker === "bot" && turn.slots && typeof turn.slots === "object") prevBotSlots = turn.slots;
      state.turnNodes.set(turn.seq, node);
      nodes.push(node);
    }
    if (!nodes.length) nodes.push(el("p", { cls: "empty", text: t("transcript_empty") }));
    box.replaceChildren(...nodes);
    state.timeline = turns
      .filter((turn) => typeof turn.start_ms === "number" && Number.isFinite(turn.start_ms))
      .map((turn) => [turn.start_ms, turn.seq])
      .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const seq = state.currentSeq;
    state.currentSeq = null;
    if (seq !== null) setCurrent(seq, false);
    applyEvidenceHighlight();
  }

  function onTranscriptClick(event) {
    if (!(event.target instanceof Element)) return;
    if (event.target.closest("button, a, input, textarea, select, form, label")) return;
    const node = event.target.closest(".turn");
    if (!node || node.dataset.startMs === undefined) return;
    const selection = window.getSelection && window.getSelection();
    if (selection && String(selection).length > 0 && node.contains(selection.anchorNode)) return; // copying text
    seekTo(Number(node.dataset.startMs));
  }

  function onTranscriptKey(event) {
    if (event.key !== "Enter" && event.key !== " ") return;
    const node = event.target instanceof Element && event.target.classList.contains("turn") ? event.target : null;
    if (!node || node.dataset.startMs === undefined) return;
    event.preventDefault();
    seekTo(Number(node.dataset.startMs));
  }

  // ---------------------------------------------------------------- evidence

  // The transcript turn an evidence item points to: the Nth caller turn (1-based); if its
  // text is not the utterance the evidence quotes, the caller turn that says exactly that.
  function evidenceTurnSeq(item) {
    if (!item || typeof item !== "object") return null;
    const callerTurns = state.turns.filter((turn) => turn.speaker !== "bot");
    const n = typeof item.caller_turn === "number" ? item.caller_turn : Number.parseInt(item.caller_turn, 10);
    let turn = Number.isFinite(n) && n >= 1 ? callerTurns[n - 1] : undefined;
    const said = typeof item.utterance === "string" ? item.utterance.trim() : "";
    if (said && (!turn || (turn.text || "").trim() !== said)) {
      const exact = callerTurns.filter((c) => (c.text || "").trim() === said);
      if (exact.length) {
        // the one nearest to the numbered turn
        const target = Number.isFinite(n) ? n - 1 : 0;
        exact.sort((a, b) => Math.abs(callerTurns.indexOf(a) - target) - Math.abs(callerTurns.indexOf(b) - target));
        turn = exact[0];
      }
    }
    return turn ? turn.seq : null;
  }

  function evidenceFor(field) {
    const inc = state.detail && state.detail.incident;
    const evidence = inc && inc.evidence && typeof inc.evidence === "object" ? inc.evidence : {};
    const def = INCIDENT_FIELDS.find((f) => f[0] === field);
    const key = def ? def[1] : field;
    return key && evidence[key] ? evidence[key] : null;
  }

  function applyEvidenceHighlight() {
    for (const node of document.querySelectorAll(".turn.evidence-hit")) node.classList.remove("evidence-hit");
    const field = state.hoverField || state.pinnedField;
    if (!field) return null;
    const seq = evidenceTurnSeq(evidenceFor(field));
    const node = seq !== null ? state.turnNodes.get(seq) : null;
    if (node) node.classList.add("evidence-hit");
    return node;
  }

  function hoverField(field) {
    state.hoverField = field;
    applyEvidenceHighlight();
  }

  function togglePin(field) {
    state.pinnedField = state.pinnedField === field ? null : field;
    for (const row of document.querySelectorAll(".inc-field")) {
      row.classList.toggle("pinned", row.dataset.field === state.pinnedField);
    }
    state.hoverField = null;
    const node = applyEvidenceHighlight();
    if (node) scrollIntoViewIfNeeded(node);
  }

  // ---------------------------------------------------------------- incident

  function fieldValue(inc, field) {
    const loc = inc.location || {};
    const caller = inc.caller || {};
    switch (field) {
      case "category":
        return inc.category ? el("span", null, categoryLabel(inc.category), " ", el("span", { cls: "muted mono small", text: "(" + inc.category + ")" })) : null;
      case "priority":
        return [1, 2, 3, 4].includes(inc.priority)
          ? el("span", null, el("span", { cls: "prio-badge " + priorityClass(inc.priority), text: priorityShort(inc.priority) }), " ", priorityLong(inc.priority))
          : null;
      case "location_text":
        return loc.said
          ? el("span", null, loc.said, " ", el("span", { cls: loc.confirmed ? "chip ok" : "chip warn", text: loc.confirmed ? t("loc_confirmed") : t("loc_unconfirmed") }))
          : null;
      case "location_unit": {
        const r = loc.resolved;
        if (!r) return null;
        const parts = [r.name, r.old_district, r.landmark].filter(Boolean).join(" · ");
        return el("span", null, parts || "", r.code ? " " : "", r.code ? el("span", { cls: "mono muted small", text: "(" + r.code + ")" }) : null);
      }
      case "what_happened":
        return inc.what_happened || null;
      case "callback_number":
        return caller.callback_number ? el("span", { cls: "mono", text: caller.callback_number }) : null;
      case "caller_name":
        return caller.name || null;
      case "injured":
        return typeof inc.injured === "number" ? String(inc.injured) : null;
      case "trapped":
        return inc.trapped || null;
      case "red_flags":
        return Array.isArray(inc.red_flags) && inc.red_flags.length
          ? el("span", null, ...inc.red_flags.map((f) => el("span", { cls: "chip warn", text: "⚠ " + flagLabel(f) })))
          : null;
      default:
        return null;
    }
  }

  function rawValue(inc, field) {
    const loc = inc.location || {};
    const caller = inc.caller || {};
    switch (field) {
      case "category": return inc.category || "";
      case "priority": return [1, 2, 3, 4].includes(inc.priority) ? String(inc.priority) : "";
      case "location_text": return loc.said || "";
      case "callback_number": return caller.callback_number || "";
      case "caller_name": return caller.name || "";
      case "injured": return typeof inc.injured === "number" ? String(inc.injured) : "";
      default: return "";
    }
  }

  function evidenceLine(item) {
    const box = el("div", { cls: "evidence" });
    if (!item) {
      box.append(el("span", { text: t("ev_none") }));
      return box;
    }
    if (item.utterance) box.append(el("q", { text: String(item.utterance) }), " ");
    const facts = [];
    if (item.caller_turn !== undefined && item.caller_turn !== null) facts.push(el("span", { text: t("ev_turn", { n: item.caller_turn }) }));
    if (typeof item.asr_confidence === "number") {
      facts.push(el("span", { cls: "conf" + (item.asr_confidence < LOW_CONFIDENCE ? " low" : ""), text: t("ev_asr", { p: pct(item.asr_confidence) }) }));
    }
    if (typeof item.intent_confidence === "number") {
      facts.push(el("span", { cls: "conf" + (item.intent_confidence < LOW_CONFIDENCE ? " low" : ""), text: t("ev_intent", { p: pct(item.intent_confidence) }) }));
    }
    if (item.confirmed_by_caller) facts.push(el("span", { cls: "chip ok", text: t("ev_by_caller") }));
    if (item.confirmed_by_human) facts.push(el("span", { cls: "chip ok", text: t("ev_by_human") }));
    facts.forEach((node, i) => {
      if (i) box.append(" · ");
      box.append(node);
    });
    if (item.model) box.title = String(item.model);
    return box;
  }

  function buildCorrectionForm(inc, field, kind) {
    const inputId = "correct-" + field;
    let input;
    if (kind === "category") {
      input = el("select", { cls: "correct-input", attrs: { id: inputId } });
      const codes = CATEGORY_CHOICES.includes(inc.category) || !inc.category ? CATEGORY_CHOICES : [inc.category, ...CATEGORY_CHOICES];
      for (const code of codes) input.append(el("option", { text: categoryLabel(code) + " (" + code + ")", attrs: { value: code } }));
    } else if (kind === "priority") {
      input = el("select", { cls: "correct-input", attrs: { id: inputId } });
      for (const p of [1, 2, 3, 4]) input.append(el("option", { text: t("prio_" + p), attrs: { value: String(p) } }));
    } else if (kind === "count") {
      input = el("input", { cls: "correct-input", attrs: { id: inputId, type: "number", min: "0", max: "10000", step: "1", inputmode: "numeric", placeholder: t("correct_empty") } });
    } else {
      input = el("input", {
        cls: "correct-input",
        attrs: { id: inputId, type: kind === "tel" ? "tel" : "text", maxlength: field === "caller_name" ? "120" : kind === "tel" ? "32" : "500", placeholder: t("correct_empty") },
      });
    }
    input.value = rawValue(inc, field);
    const msg = el("div", { cls: "msg", attrs: { role: "status" } });
    msg.hidden = true;
    const submit = el("button", { cls: "correct-submit small-btn", text: t("correct_save"), attrs: { type: "submit" } });
    const cancel = el("button", { cls: "ghost-dark small-btn", text: t("cancel"), attrs: { type: "button" } });
    const form = el("form", { cls: "inline-form correct-form", attrs: { autocomplete: "off" }, data: { field } },
      el("label", { text: t("correct_label", { field: t("f_" + field) }), attrs: { for: inputId } }),
      el("div", { cls: "inline-row" }, input, submit, cancel),
      msg);
    cancel.addEventListener("click", () => {
      state.openCorrection = null;
      renderIncident();
    });
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") cancel.click();
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      let value = input.value.trim();
      if (kind === "priority") value = Number.parseInt(value, 10);
      else if (kind === "count") {
        if (value === "") value = null;
        else if (!/^\d+$/.test(value)) {
          showMsg(msg, t("err_injured"));
          input.focus();
          return;
        } else value = Number.parseInt(value, 10);
      } else if (value === "") value = null;
      submit.disabled = true;
      await submitCorrection(inc, field, value, msg);
      submit.disabled = false;
    });
    return form;
  }

  async function submitCorrection(inc, field, value, msg) {
    const incidentId = inc.id || state.detail.call.incident_id;
    const path = "/api/v1/review/incidents/" + encodeURIComponent(incidentId) + "/corrections";
    try {
      const answer = await api("POST", path, { field, value, expected_version: inc.version });
      const updated = answer && answer.incident ? answer.incident : answer;
      if (updated && typeof updated === "object" && updated.id) state.detail.incident = updated;
      state.openCorrection = null;
      renderIncident();
      showMsg($("#incident-msg"), t("correct_ok", { field: t("f_" + field) }), true);
      loadCall({ quiet: true, partial: true }); // the audit trail and QA
    } catch (err) {
      if (err.status === 401) return;
      if (err.status === 409) {
        state.openCorrection = null;
        showMsg($("#incident-msg"), t("correct_conflict"), false);
        loadCall({ quiet: true, partial: true });
        return;
      }
      showMsg(msg, err.message);
    }
  }

  function renderIncident() {
    const box = $("#incident");
    const inc = state.detail.incident;
    if (!inc) {
      box.replaceChildren(el("p", { cls: "muted", text: t("no_incident") }));
      return;
    }
    const head = el("div", { cls: "inc-head" },
      el("span", { cls: "prio-badge " + priorityClass(inc.priority), text: priorityShort(inc.priority), attrs: { title: priorityLong(inc.priority) } }),
      el("strong", { text: categoryLabel(inc.category) }),
      el("span", { cls: "mono muted", text: inc.id }),
      el("span", { cls: "mono muted", text: t("inc_version", { v: inc.version }) }),
      el("span", { cls: "status-chip", text: tOr("ist_" + inc.status, valueText(inc.status)) }));
    if (inc.handoff_requested) head.append(el("span", { cls: "badge handoff", text: t("f_handoff") }));

    const list = el("div", { cls: "inc-fields" });
    const shown = new Set();
    for (const [field, evKey, kind] of INCIDENT_FIELDS) {
      if (evKey) shown.add(evKey);
      const value = fieldValue(inc, field);
      const item = evidenceFor(field);
      if (value === null && !item && !kind) continue; // nothing to show nor correct
      list.append(buildFieldRow(inc, field, value, item, kind));
    }
    // evidence for fields this page has no row for
    const evidence = inc.evidence && typeof inc.evidence === "object" ? inc.evidence : {};
    for (const key of Object.keys(evidence).sort()) {
      if (shown.has(key)) continue;
      const item = evidence[key];
      list.append(buildFieldRow(inc, key, item && item.value !== undefined ? valueText(item.value) : null, item, null));
    }
    box.replaceChildren(head, list);
    applyEvidenceHighlight();
    if (state.openCorrection) {
      const input = box.querySelector(".correct-form .correct-input");
      if (input) input.focus();
    }
  }

  function buildFieldRow(inc, field, value, item, kind) {
    const row = el("div", { cls: "inc-field" + (item ? " has-evidence" : "") + (field === state.pinnedField ? " pinned" : ""), data: { field } });
    const label = tOr("f_" + field, field);
    const valueNode = el("span", { cls: "f-value" + (value === null ? " empty-value" : "") });
    if (value instanceof Node) valueNode.append(value);
    else valueNode.textContent = value === null ? "—" : String(value);
    const line = el("div", { cls: "f-row" }, el("span", { cls: "f-label", text: label }), valueNode);
    if (kind) {
      const button = el("button", { cls: "correct-btn small-btn ghost-dark", text: t("correct"), attrs: { type: "button", "aria-label": t("correct_label", { field: label }) } });
      button.addEventListener("click", () => {
        state.openCorrection = state.openCorrection === field ? null : field;
        showMsg($("#incident-msg"), "");
        renderIncident();
      });
      line.append(button);
    }
    row.append(line, evidenceLine(item));
    if (item) {
      row.tabIndex = 0;
      row.title = t("ev_hint");
      row.addEventListener("mouseenter", () => hoverField(field));
      row.addEventListener("mouseleave", () => hoverField(null));
      row.addEventListener("focus", () => hoverField(field));
      row.addEventListener("blur", () => hoverField(null));
      row.addEventListener("click", (event) => {
        if (event.target instanceof Element && event.target.closest("button, input, select, form, a")) return;
        togglePin(field);
      });
      row.addEventListener("keydown", (event) => {
        if ((event.key === "Enter" || event.key === " ") && event.target === row) {
          event.preventDefault();
          togglePin(field);
        }
      });
    }
    if (kind && state.openCorrection === field) row.append(buildCorrectionForm(inc, field, kind));
    return row;
  }

  // ---------------------------------------------------------------- QA

  function qaValue(name, value) {
    if (value === null || value === undefined || typeof value === "boolean") return "";
    if (typeof value === "number" && /_ms$/.test(name)) return fmtMs(value);
    return valueText(value);
  }

  function renderQa() {
    const qa = state.detail.qa || {};
    const checks = Array.isArray(qa.checks) ? qa.checks : [];
    const summary = [];
    if (qa.passed === true) summary.push(el("span", { cls: "badge ok", text: "✓ " + t("qa_passed") }));
    else if (qa.passed === false) summary.push(el("span", { cls: "badge bad", text: "✗ " + t("qa_failed") }));
    if (qa.flagged) summary.push(el("span", { cls: "badge reason-flagged", text: t("qa_flagged") }));
    $("#qa-summary").replaceChildren(...summary);
    if (!checks.length) {
      $("#qa-checks").replaceChildren(el("li", { cls: "muted", text: t("qa_none") }));
      return;
    }
    $("#qa-checks").replaceChildren(...checks.map((check) => {
      const kind = check.passed === true ? "pass" : check.passed === false ? "fail" : "na";
      const icon = kind === "pass" ? "✓" : kind === "fail" ? "✗" : "—";
      const word = kind === "pass" ? t("qa_passed") : kind === "fail" ? t("qa_failed") : t("qa_na");
      const li = el("li", { cls: "qa-check " + kind, data: { name: check.name } },
        el("span", { cls: "qa-icon", text: icon, attrs: { title: word, "aria-label": word } }),
        el("span", { cls: "qa-label", text: qaLabel(check.name), attrs: { title: check.name } }),
        el("span", { cls: "qa-value", text: qaValue(check.name, check.value) }));
      if (check.detail) li.append(el("span", { cls: "qa-detail", text: valueText(check.detail) }));
      return li;
    }));
  }

  // ---------------------------------------------------------------- review form

  function questionText(q) {
    const text = q && q.text;
    if (text && typeof text === "object") return text[state.lang] || text.vi || text.en || String(q.id);
    return text ? String(text) : String(q.id);
  }

  function renderForm() {
    const box = $("#review-questions");
    if (state.form === null) return; // still loading
    if (!state.form.length) {
      box.replaceChildren(el("p", { cls: "muted", text: t("review_no_form") }));
      $("#review-submit").disabled = true;
      return;
    }
    // keep what was already ticked across a language switch
    const ticked = collectAnswers().answers;
    const nodes = state.form.map((q, index) => {
      const name = "rq-" + index;
      const choices = el("div", { cls: "choices" });
      const options = q.kind === "score_1_5"
        ? [1, 2, 3, 4, 5].map((n) => [String(n), String(n)])
        : [["true", t("yes")], ["false", t("no")]];
      for (const [value, label] of options) {
        const input = el("input", { attrs: { type: "radio", name, value } });
        const prior = ticked[q.id];
        if (prior !== undefined && String(prior) === value) input.checked = true;
        choices.append(el("label", null, input, label));
      }
      return el("fieldset", { cls: "question", data: { qid: q.id, kind: q.kind || "yes_no", index } },
        el("legend", { text: questionText(q) }), choices);
    });
    box.replaceChildren(...nodes);
    $("#review-submit").disabled = false;
  }

  function collectAnswers() {
    const answers = {};
    const missing = [];
    for (const fieldset of document.querySelectorAll("#review-questions .question")) {
      const qid = fieldset.dataset.qid;
      const picked = fieldset.querySelector("input[type=radio]:checked");
      if (!picked) {
        missing.push(fieldset);
        continue;
      }
      answers[qid] = fieldset.dataset.kind === "score_1_5" ? Number.parseInt(picked.value, 10) : picked.value === "true";
    }
    return { answers, missing };
  }

  async function submitReview(event) {
    event.preventDefault();
    const msg = $("#review-msg");
    const { answers, missing } = collectAnswers();
    for (const fieldset of document.querySelectorAll("#review-questions .question")) {
      fieldset.classList.toggle("missing", missing.includes(fieldset));
    }
    if (missing.length) {
      showMsg(msg, t("review_missing"));
      const first = missing[0].querySelector("input");
      if (first) first.focus();
      return;
    }
    const notes = $("#review-notes").value.trim();
    $("#review-submit").disabled = true;
    try {
      const answer = await api("POST", callPath("reviews"), { answers, notes });
      const review = answer && answer.review ? answer.review : answer;
      if (!Array.isArray(state.detail.reviews)) state.detail.reviews = [];
      if (review && typeof review === "object") state.detail.reviews.push(review);
      if (state.detail.call && state.detail.call.review) state.detail.call.review.reviewed = true;
      renderReviews();
      renderFacts();
      $("#review-form").reset();
      showMsg(msg, t("review_ok"), true);
    } catch (err) {
      if (err.status !== 401) showMsg(msg, err.message);
    } finally {
      $("#review-submit").disabled = false;
    }
  }

  // The server's score: the share of the form's points earned, 0-100.
  function fmtScore(score) {
    if (typeof score !== "number" || !Number.isFinite(score)) return "—";
    return score.toLocaleString(locale(), { maximumFractionDigits: 1 }) + "/100";
  }

  function answerText(q, value) {
    if (typeof value === "boolean") return value ? t("yes") : t("no");
    if (q && q.kind === "score_1_5" && typeof value === "number") return value + "/5";
    return valueText(value);
  }

  function renderReviews() {
    const list = $("#reviews");
    const reviews = (Array.isArray(state.detail.reviews) ? state.detail.reviews : []).slice()
      .sort((a, b) => (Date.parse(b.at) || 0) - (Date.parse(a.at) || 0));
    if (!reviews.length) {
      list.replaceChildren(el("li", { cls: "muted small", text: t("no_reviews") }));
      return;
    }
    const questions = new Map((state.form || []).map((q) => [String(q.id), q]));
    list.replaceChildren(...reviews.map((review) => {
      const li = el("li", { cls: "review", data: { id: review.id !== undefined ? review.id : "" } },
        el("div", { cls: "rv-head" },
          el("strong", { text: valueText(review.reviewer) }),
          el("span", { cls: "muted small", text: fmtDateTime(review.at) }),
          el("span", { cls: "rv-score", text: t("score", { s: fmtScore(review.score) }) })));
      const answers = review.answers && typeof review.answers === "object" ? review.answers : {};
      const keys = Object.keys(answers);
      if (keys.length) {
        const ul = el("ul", { cls: "rv-answers" });
        for (const key of keys) {
          const q = questions.get(key);
          ul.append(el("li", null, el("span", { text: q ? questionText(q) : key }), ": ", el("strong", { text: answerText(q, answers[key]) })));
        }
        li.append(ul);
      }
      if (review.notes) li.append(el("div", { cls: "rv-notes", text: review.notes }));
      return li;
    }));
  }

  // ---------------------------------------------------------------- audit

  // A long value (the incident's whole details, say) cut short; all of it in the tooltip.
  function clipped(cls, value) {
    const text = valueText(value);
    if (text.length <= 160) return el("span", { cls, text });
    return el("span", { cls, text: text.slice(0, 157) + "…", attrs: { title: text.slice(0, 4000) } });
  }

  function renderAudit() {
    const body = $("#audit-body");
    const audit = Array.isArray(state.detail.audit) ? state.detail.audit : [];
    $("#audit-count").textContent = "(" + audit.length + ")";
    if (!audit.length) {
      body.replaceChildren(el("tr", null, el("td", { cls: "muted", text: t("audit_none"), attrs: { colspan: 5 } })));
      return;
    }
    const rows = [...audit]
      .sort((a, b) => (b.version || 0) - (a.version || 0) || (Date.parse(b.at) || 0) - (Date.parse(a.at) || 0))
      .map((entry) => el("tr", null,
        el("td", { cls: "mono", text: valueText(entry.version) }),
        el("td", { text: fmtDateTime(entry.at), attrs: { title: entry.at || "" } }),
        el("td", { text: valueText(entry.actor) }),
        el("td", { cls: "mono", text: valueText(entry.field) }),
        el("td", { cls: "change" }, clipped("old", entry.old), " → ", clipped("new", entry.new))));
    body.replaceChildren(...rows);
  }

  // ---------------------------------------------------------------- wiring

  async function logout() {
    try {
      await api("POST", "/auth/logout", {});
    } catch (err) {
      if (err.status === 401) return;
    }
    state.redirecting = true;
    window.location.assign("/login");
  }

  function audioError() {
    const player = $("#player");
    const error = player.error;
    if (!error || !state.detail || !state.detail.recording_url) return;
    const why = { 1: "aborted", 2: "network", 3: "decode", 4: "not supported / not found" }[error.code] || String(error.code);
    showGlobalError(t("err_audio", { why }));
  }

  function wire() {
    for (const button of document.querySelectorAll(".lang-switch button")) {
      button.addEventListener("click", () => setLang(button.dataset.lang));
    }
    $("#logout-button").addEventListener("click", logout);
    const transcript = $("#transcript");
    transcript.addEventListener("click", onTranscriptClick);
    transcript.addEventListener("keydown", onTranscriptKey);
    const player = $("#player");
    for (const name of ["timeupdate", "seeked", "play"]) player.addEventListener(name, onTimeUpdate);
    player.addEventListener("ended", () => setCurrent(null, false));
    player.addEventListener("error", audioError);
    $("#review-form").addEventListener("submit", submitReview);
  }

  function callIdFromPath() {
    const match = /^\/review\/calls\/([^/]+)\/?$/.exec(window.location.pathname);
    if (!match) return "";
    try {
      return decodeURIComponent(match[1]);
    } catch (e) {
      return match[1];
    }
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
    if (!state.callId) {
      $("#call-loading").hidden = true;
      $("#not-found").hidden = false;
      return;
    }
    loadForm();
    loadCall();
  }

  function boot() {
    state.lang = loadLang();
    state.callId = callIdFromPath();
    wire();
    applyLang();
    start();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
