/* o2m desk: progressive enhancement only. Everything works without this file. */
"use strict";
(function () {
  var body = document.body;
  var base = body.getAttribute("data-base") || "/";
  var csrf = body.getAttribute("data-csrf");
  if (!csrf) { return; }  // signed out: nothing to enhance

  function post(path, fields) {
    var data = new URLSearchParams(fields);
    data.append("csrf", csrf);
    return fetch(base + path, {method: "POST", body: data, credentials: "same-origin"});
  }

  // The preview, as the owner types (the Preview button works without it).
  var text = document.getElementById("body");
  var preview = document.getElementById("preview");
  if (text && preview && text.tagName === "TEXTAREA") {
    var timer = null;
    text.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        var fields = {body: text.value};
        var path = document.querySelector("#compose input[name=path]");
        if (path) { fields.path = path.value; }
        post("preview", fields).then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) {
            if (html === null) { return; }
            preview.innerHTML = html;  // cleaned by nh3 on the server; CSP backs it up
            document.getElementById("preview-section").hidden = false;
          });
      }, 400);
    });
  }

  // An opened post is read: marked by a POST, never by the GET that showed it, and
  // only when the person opened it from the desk or the address bar (the server says
  // so: data-mark-read), never when another site sent the browser here (THREATS 53).
  var article = document.getElementById("post");
  if (article && article.getAttribute("data-mark-read") === "1") {
    post("post/" + article.getAttribute("data-id") + "/read", {read: "1", quiet: "1"});
  }

  // Copy buttons.
  document.querySelectorAll("button[data-copy]").forEach(function (copy) {
    if (!navigator.clipboard) { return; }
    copy.hidden = false;
    copy.addEventListener("click", function () {
      var source = document.getElementById(copy.getAttribute("data-copy"));
      navigator.clipboard.writeText(source.value).then(function () { copy.textContent = "Copied"; });
    });
  });

  // Live updates: the server sends an event when a fetch stored something new.
  if (window.EventSource && (document.getElementById("timeline") || document.getElementById("heading"))) {
    var events = new EventSource(base + "events");
    events.onmessage = function () {
      var live = document.getElementById("live");
      if (!live || !live.hidden) { return; }
      var link = document.createElement("a");
      link.href = base;
      link.textContent = "New posts or notifications: show them";
      live.appendChild(link);
      live.hidden = false;
    };
  }
})();
