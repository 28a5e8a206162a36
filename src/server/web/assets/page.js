// gate: refreshes the list of pending requests every 2.5 s. Approving and denying are plain
// form posts and need none of this.
(function () {
  "use strict";
  var list = document.getElementById("requests");
  if (!list || !window.fetch) return;
  var last = null;
  // Never replace the list under someone writing a comment.
  function busy() {
    var boxes = list.querySelectorAll("textarea");
    for (var i = 0; i < boxes.length; i++) {
      if (boxes[i].value !== "" || boxes[i] === document.activeElement) return true;
    }
    return false;
  }
  function tick() {
    if (busy()) return;
    fetch("/fragment", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null || html === last || busy()) return;
        last = html;
        list.innerHTML = html;
      })
      .catch(function () {});
  }
  window.setInterval(tick, 2500);
})();
