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
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
