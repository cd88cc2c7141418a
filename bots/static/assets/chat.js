// The resident's chat page. Who the visitor is lives in an HttpOnly cookie this page
// never sees: the server issued it with the page, and /chat/session renews it before
// each connect. On connect the server sends the conversation's history (and its
// greeting), so a reload or a second tab shows the conversation as it was.
(() => {
  "use strict";
  const log = document.getElementById("log");
  const statusEl = document.getElementById("status");
  const input = document.getElementById("text");
  const largeButton = document.getElementById("large");
  const CASE = /YM\d{10,}/g;
  const MAX_RETRIES = 3;          // "busy" answers before a message is shown as failed
  const LAST_BUTTONS = "yimen-last-buttons";

  const newId = () => {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  };
  localStorage.removeItem("yimen-visitor");  // ids chosen by the page are no longer used

  let ws = null;
  let retry = 500;
  const queue = [];               // frames sent but not yet answered: resent on reconnect
  const answered = new Set();     // message ids the history already shows answered

  // -- large text -----------------------------------------------------------------
  function setLarge(on) {
    document.documentElement.classList.toggle("large", on);
    largeButton.setAttribute("aria-pressed", String(on));
    localStorage.setItem("yimen-large", on ? "1" : "0");
  }
  setLarge(localStorage.getItem("yimen-large") === "1");
  largeButton.addEventListener("click", () => setLarge(!document.documentElement.classList.contains("large")));

  // -- rendering ------------------------------------------------------------------
  // Times as the street office reads them (Asia/Shanghai), like the times in its texts.
  const clock = new Intl.DateTimeFormat("zh-CN", {
    timeZone: "Asia/Shanghai", month: "numeric", day: "numeric",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });
  function timeText(iso) {
    const parts = (at) => Object.fromEntries(clock.formatToParts(at).map((p) => [p.type, p.value]));
    const at = parts(iso ? new Date(iso) : new Date());
    const today = parts(new Date());
    const hm = `${at.hour}:${at.minute}`;
    return at.month === today.month && at.day === today.day ? hm : `${at.month}月${at.day}日 ${hm}`;
  }

  function copyText(text, button) {
    const done = () => {
      button.textContent = "已复制"; button.classList.add("done");
      setTimeout(() => { button.textContent = "复制"; button.classList.remove("done"); }, 2000);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
    } else {
      fallbackCopy(text, done);
    }
  }

  function fallbackCopy(text, done) {
    const area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed";
    area.style.opacity = "0"; document.body.appendChild(area); area.select();
    try { document.execCommand("copy"); done(); } finally { area.remove(); }
  }

  // Text with each case number made bold and given a copy button.
  function fillText(element, text) {
    let last = 0;
    for (const match of (text || "").matchAll(CASE)) {
      element.append(text.slice(last, match.index));
      const number = document.createElement("span");
      number.className = "case-no"; number.textContent = match[0];
      const copy = document.createElement("button");
      copy.type = "button"; copy.className = "copy"; copy.textContent = "复制";
      copy.setAttribute("aria-label", `复制工单号 ${match[0]}`);
      copy.addEventListener("click", () => copyText(match[0], copy));
      element.append(number, copy);
      last = match.index + match[0].length;
    }
    element.append((text || "").slice(last));
  }

  function disableOldButtons() {
    for (const bar of log.querySelectorAll(".buttons")) {
      for (const b of bar.querySelectorAll("button")) b.disabled = true;
    }
  }

  function bubble(kind, text, { buttons, images, time, id } = {}) {
    if (kind !== "me") disableOldButtons();   // only the newest bot message's buttons work
    const row = document.createElement("div");
    row.className = "row-msg " + kind;
    if (id) row.dataset.id = id;
    const b = document.createElement("div");
    b.className = "bubble";
    fillText(b, text);
    for (const url of images || []) {
      const img = document.createElement("img");
      img.src = url; img.alt = "照片"; img.loading = "lazy";
      b.appendChild(img);
    }
    row.appendChild(b);
    if (buttons && buttons.length) {
      const bar = document.createElement("div");
      bar.className = "buttons";
      for (const btn of buttons) {
        const el = document.createElement("button");
        el.type = "button"; el.textContent = btn.label;
        el.addEventListener("click", () => {
          bar.querySelectorAll("button").forEach((x) => { x.disabled = true; });
          el.classList.add("chosen");
          send({ text: btn.label, payload: btn.payload });
        });
        bar.appendChild(el);
      }
      row.appendChild(bar);
    }
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = time === null ? "" : timeText(time);
    row.appendChild(meta);
    log.appendChild(row);
    log.scrollTop = log.scrollHeight;
    return row;
  }

  function mine(frame) {
    const text = frame.text || (frame.location ? "📍 " + (frame.location.label || "我的位置") : "");
    const row = bubble("me", text, { images: frame.media, id: frame.id });
    row.querySelector(".meta").textContent = "发送中…";
    return row;
  }

  function markSent(id, time) {
    const row = log.querySelector(`.row-msg.me[data-id="${id}"]`);
    if (row) { row.classList.remove("failed"); row.querySelector(".meta").textContent = timeText(time); }
  }

  function markFailed(frame, why) {
    const row = log.querySelector(`.row-msg.me[data-id="${frame.id}"]`) || mine(frame);
    row.classList.add("failed");
    const meta = row.querySelector(".meta");
    meta.textContent = why + " ";
    const again = document.createElement("button");
    again.type = "button"; again.className = "retry"; again.textContent = "重发";
    again.addEventListener("click", () => {
      frame.tries = 0; row.classList.remove("failed"); meta.textContent = "发送中…";
      queue.push(frame); transmit(frame);
    });
    meta.appendChild(again);
  }

  function showHistory(frame) {
    log.textContent = "";
    answered.clear();
    const items = frame.items || [];
    bubble("bot greeting", frame.greeting.text, { buttons: frame.greeting.buttons, time: null });
    for (const item of items) {
      if (item.from === "bot" && item.message_id) answered.add(item.message_id);
      const text = item.from === "me" && item.location !== undefined
        ? item.text || "📍 " + (item.location || "我的位置") : item.text;
      bubble(item.from === "push" ? "bot push" : item.from, text,
             { images: item.media, time: item.time, id: item.message_id });
    }
    // The newest bot message's buttons, which the transcript does not keep.
    const saved = JSON.parse(localStorage.getItem(LAST_BUTTONS) || "null");
    const lastBot = [...items].reverse().find((i) => i.from !== "me");
    if (saved && lastBot && lastBot.from === "bot" && lastBot.message_id === saved.reply_to) {
      const rows = log.querySelectorAll(".row-msg.bot");
      rows[rows.length - 1].remove();
      bubble("bot", lastBot.text, { buttons: saved.buttons, time: lastBot.time, id: lastBot.message_id });
    }
    for (const pending of queue) if (!answered.has(pending.id)) mine(pending);
  }

  // -- sending --------------------------------------------------------------------
  function transmit(frame) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  }

  function send(fields) {
    const frame = Object.assign({ type: "message", id: newId(), text: "", tries: 0 }, fields);
    mine(frame);
    queue.push(frame);
    transmit(wire(frame));
  }

  const wire = (frame) => { const { tries, ...rest } = frame; return rest; };
  const settle = (id) => {
    const i = queue.findIndex((f) => f.id === id);
    return i >= 0 ? queue.splice(i, 1)[0] : null;
  };

  function onFrame(data) {
    if (data.type === "history") { showHistory(data); return; }
    if (data.type === "push") {
      const last = [...log.querySelectorAll(".row-msg.push .bubble")].pop();
      if (!last || last.textContent.replace(/复制/g, "") !== data.message.text) {
        bubble("bot push", data.message.text, { buttons: data.message.buttons, time: data.time });
      }
      return;
    }
    if (data.type === "error" && data.error === "busy") {
      const frame = queue.find((f) => f.id === data.in_reply_to);
      if (!frame) return;
      frame.tries += 1;
      if (frame.tries >= MAX_RETRIES) { settle(frame.id); markFailed(frame, "系统繁忙，未能发送。"); return; }
      setTimeout(() => transmit(wire(frame)), 3000 * frame.tries);  // same id: never twice
      return;
    }
    const frame = data.in_reply_to ? settle(data.in_reply_to) : null;
    if (data.type === "reply") {
      if (frame) markSent(frame.id, data.time);
      if (answered.has(data.in_reply_to)) return;   // the history already shows it
      answered.add(data.in_reply_to);
      data.messages.forEach((m, i) => {
        bubble("bot", m.text, { buttons: m.buttons, images: m.media.map((x) => x.url), time: data.time });
        if (i === data.messages.length - 1) {
          localStorage.setItem(LAST_BUTTONS, JSON.stringify({ reply_to: data.in_reply_to, buttons: m.buttons }));
        }
      });
    } else if (data.type === "duplicate") {
      if (frame) markSent(frame.id, data.time);
    } else if (data.type === "error") {
      if (frame) markFailed(frame, data.text || "消息格式有误，未能发送。");
      else bubble("bot", data.text || "消息格式有误，请重试。");
    }
  }

  // -- the socket -----------------------------------------------------------------
  function setStatus(state, text) {
    statusEl.className = "status " + state;
    statusEl.textContent = text;
  }

  async function connect() {
    setStatus("connecting", "正在连接…");
    try {
      const session = await fetch("/chat/session", { method: "POST", credentials: "same-origin" });
      if (!session.ok) throw new Error(String(session.status));
    } catch (error) {
      reconnectLater();
      return;
    }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/chat/ws`);
    ws.onopen = () => {
      setStatus("online", "在线"); retry = 500;
      for (const frame of queue) transmit(wire(frame));   // same ids: no doubles
    };
    ws.onmessage = (event) => onFrame(JSON.parse(event.data));
    ws.onclose = (event) => {
      if (event.code === 1009 && queue.length) {        // a frame the server refuses outright
        markFailed(queue.shift(), "消息太长，请精简后分段发送。");
      }
      reconnectLater();
    };
  }

  function reconnectLater() {
    setStatus("offline", "连接已断开，正在重新连接…");
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  }

  // -- the composer ---------------------------------------------------------------
  function grow() { input.style.height = "auto"; input.style.height = Math.min(input.scrollHeight, window.innerHeight * 0.4) + "px"; }
  input.addEventListener("input", grow);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      document.getElementById("composer").requestSubmit();
    }
  });
  document.getElementById("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    input.value = ""; grow();
    send({ text });
  });

  document.getElementById("file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    event.target.value = "";
    if (!file) return;
    const note = bubble("me", "照片上传中…", { time: null });
    const body = new FormData();
    body.append("file", file);
    let answer;
    try {
      const response = await fetch("/chat/upload", { method: "POST", body, credentials: "same-origin" });
      answer = await response.json();
      if (!response.ok) throw new Error(answer.error || "照片上传失败，请重试。");
    } catch (error) {
      note.remove();
      bubble("bot", error.message || "照片上传失败，请重试。");
      return;
    }
    note.remove();
    send({ media: [answer.ref] });
  });

  document.getElementById("locate").addEventListener("click", () => {
    if (!navigator.geolocation || !window.isSecureContext) {
      bubble("bot", "此页面无法获取位置，请直接输入地址，例如“金辉小区3号楼”。");
      return;
    }
    navigator.geolocation.getCurrentPosition(
      (pos) => send({ location: { latitude: pos.coords.latitude, longitude: pos.coords.longitude, label: "" } }),
      () => bubble("bot", "未能获取位置，请直接输入地址，例如“金辉小区3号楼”。"),
      { timeout: 15000 });
  });

  connect();
})();
