// The console's shared script: confirmations, and the CSRF token for scripted requests.
"use strict";
(function () {
  const meta = document.querySelector('meta[name="csrf"]');
  window.yimenConsole = {
    csrf: meta ? meta.content : "",
    // fetch() with the session's CSRF token, for scripts that POST.
    post(url, body) {
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": this.csrf, "Content-Type": "application/json" },
        body: JSON.stringify(body || {}),
      });
    },
  };
  // On a phone a list's rows are stacked as cards (console.css): each cell is labelled
  // with its column's heading, also in rows a script adds later (the live inbox).
  function label(table) {
    const heads = Array.from(table.querySelectorAll("thead th"), (th) => th.textContent.trim());
    for (const row of table.querySelectorAll("tbody tr")) {
      Array.from(row.children).forEach((cell, index) => {
        if (heads[index] && cell.colSpan === 1) cell.dataset.label = heads[index];
      });
    }
  }
  for (const table of document.querySelectorAll("table.list")) {
    label(table);
    const body = table.querySelector("tbody");
    if (body) new MutationObserver(() => label(table)).observe(body, { childList: true });
  }
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
