// The inbox, kept live over a WebSocket: the waiting list, and an open conversation's lines.
// Everything is rendered with textContent: residents' words are never parsed as HTML.
"use strict";
(function () {
  const WHO = { resident: "居民", bot: "机器人", staff: "工作人员" };
  const STATUS = { waiting: "等待中", claimed: "已接入", closed: "已结束" };

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function waited(seconds) {
    return Math.floor(seconds / 60) + " 分 " + (seconds % 60) + " 秒";
  }

  function renderRows(body, rows) {
    body.replaceChildren();
    if (!rows.length) {
      const tr = el("tr", null, "empty-row");
      const td = el("td", "暂无等待人工的会话", "empty");
      td.colSpan = 7;
      tr.append(td);
      body.append(tr);
      return;
    }
    for (const r of rows) {
      const tr = el("tr", null, r.overdue ? "overdue" : "");
      tr.dataset.id = r.id;
      const wait = el("td", waited(r.waited), "waited");
      if (r.overdue) { wait.append(" "); wait.append(el("strong", "超时", "flag")); }
      const open = el("td");
      const a = el("a", "打开");
      a.href = "/console/inbox/" + r.id;
      open.append(a);
      const status = r.status === "claimed" ? "已接入 " + r.claimed_by : STATUS[r.status];
      tr.append(el("td", r.id), el("td", r.channel), el("td", r.chat), el("td", r.reason),
        wait, el("td", status), open);
      body.append(tr);
    }
  }

  // A time as the server writes it (Asia/Shanghai, 2026-12-05 15:52), whatever the
  // browser's own time zone.
  const minute = new Intl.DateTimeFormat("en-CA", {
    timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });
  function local(iso) {
    const p = Object.fromEntries(minute.formatToParts(new Date(iso)).map((x) => [x.type, x.value]));
    return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute;
  }

  function renderLines(list, lines) {
    list.replaceChildren();
    for (const line of lines) {
      const li = el("li", null, line.who);
      li.append(el("span", WHO[line.who] || line.who, "who"));
      li.append(el("span", local(line.at), "at"));
      if (line.intent) {
        const confidence = line.confidence === null ? "" : " " + line.confidence.toFixed(2);
        li.append(el("span", line.intent_name + confidence, "nlu"));
      }
      li.append(el("div", line.text, "text"));
      for (const ref of line.media) li.append(el("div", "[照片] " + ref, "media"));
      if (line.location !== null) li.append(el("div", "[位置] " + line.location, "media"));
      list.append(li);
    }
  }

  function connect(path, onData) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const state = document.getElementById("live-state");
    const socket = new WebSocket(scheme + "//" + location.host + path);
    socket.onopen = () => { if (state) state.textContent = "实时"; };
    socket.onmessage = (event) => onData(JSON.parse(event.data));
    socket.onclose = () => {
      if (state) state.textContent = "已断开，正在重连…";
      setTimeout(() => connect(path, onData), 2000);
    };
  }

  const table = document.getElementById("inbox");
  if (table) {
    const body = document.getElementById("inbox-rows");
    connect(table.dataset.live, (data) => renderRows(body, data.rows));
  }
  const transcript = document.getElementById("transcript");
  if (transcript) {
    const status = document.getElementById("status");
    connect(transcript.dataset.live, (data) => {
      if (data.lines) renderLines(transcript, data.lines);
      if (data.status && status && data.status === "closed") status.textContent = STATUS.closed;
    });
  }
  for (const button of document.querySelectorAll("[data-canned]")) {
    button.addEventListener("click", () => {
      const box = document.getElementById("reply-text");
      box.value = button.dataset.canned;
      box.focus();
    });
  }
})();
