(() => {
  "use strict";
  const log = document.getElementById("log");
  const statusEl = document.getElementById("status");
  const input = document.getElementById("text");
  const newId = () => { const b = new Uint8Array(16); crypto.getRandomValues(b);
                         return Array.from(b, x => x.toString(16).padStart(2, "0")).join(""); };
  let ws = null;
  const queue = [];          // frames not yet acknowledged, resent after a reconnect
  let retry = 500;

  function bubble(kind, text, buttons, images) {
    const row = document.createElement("div");
    row.className = "row " + kind;
    const b = document.createElement("div");
    b.className = "bubble";
    b.textContent = text || "";
    for (const url of images || []) {
      const img = document.createElement("img");
      img.src = url; img.alt = "照片";
      b.appendChild(img);
    }
    if (buttons && buttons.length) {
      const bar = document.createElement("div");
      bar.className = "buttons";
      for (const btn of buttons) {
        const el = document.createElement("button");
        el.type = "button";
        el.textContent = btn.label;
        el.dataset.payload = btn.payload;
        el.addEventListener("click", () => {
          bar.querySelectorAll("button").forEach(x => x.disabled = true);
          send({ text: btn.label, payload: btn.payload });
        });
        bar.appendChild(el);
      }
      b.appendChild(bar);
    }
    row.appendChild(b);
    log.appendChild(row);
    log.scrollTop = log.scrollHeight;
  }

  function send(fields) {
    const frame = Object.assign({ type: "message", id: newId(), text: "" }, fields);
    bubble("me", frame.text || (frame.location ? "📍 " + (frame.location.label || "我的位置") : ""),
           null, frame.media);
    queue.push(frame);
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/chat/ws`);
    ws.onopen = () => {
      statusEl.textContent = "在线"; retry = 500;
      for (const frame of queue) ws.send(JSON.stringify(frame));  // same ids: no doubles
    };
    ws.onclose = (event) => {
      if (event.code === 1009 && queue.length) {  // a frame the server refuses outright
        queue.shift();
        bubble("bot", "消息太长，未能发送，请精简后分段发送。");
      }
      statusEl.textContent = "重新连接中…";
      setTimeout(connect, retry); retry = Math.min(retry * 2, 10000);
    };
    ws.onmessage = (event) => {
      const data = JSON.parse(event.data);
      if (data.type === "error" && data.error === "busy") {
        // Not processed: send the same frame (same id, so never twice) again shortly.
        const frame = queue.find(f => f.id === data.in_reply_to);
        if (frame) setTimeout(() => ws && ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(frame)), 3000);
        return;
      }
      if (data.in_reply_to) {
        const i = queue.findIndex(f => f.id === data.in_reply_to);
        if (i >= 0) queue.splice(i, 1);
      }
      if (data.type === "reply") {
        for (const m of data.messages) bubble("bot", m.text, m.buttons, m.media.map(x => x.url));
      } else if (data.type === "push") {
        bubble("bot push", data.message.text, data.message.buttons);
      } else if (data.type === "error") {
        bubble("bot", "消息格式有误，请重试。");
      }
    };
  }

  document.getElementById("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    input.value = "";
    send({ text });
  });

  document.getElementById("file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    event.target.value = "";
    if (!file) return;
    const body = new FormData();
    body.append("file", file);
    const response = await fetch("/chat/upload", { method: "POST", body });
    if (!response.ok) { bubble("bot", "照片上传失败：" + (await response.text())); return; }
    const { ref } = await response.json();
    send({ media: [ref] });
  });

  document.getElementById("locate").addEventListener("click", () => {
    if (!navigator.geolocation) { bubble("bot", "此浏览器无法获取位置，请直接输入地址。"); return; }
    navigator.geolocation.getCurrentPosition(
      (pos) => send({ location: { latitude: pos.coords.latitude, longitude: pos.coords.longitude, label: "" } }),
      () => bubble("bot", "未能获取位置，请直接输入地址。"));
  });

  connect();
})();
