/* o2m desk: progressive enhancement only. Everything works without this file. */
"use strict";

// Passkeys (WebAuthn): the browser's own dialog, for signing in and for adding one. The
// server makes each challenge and checks each answer; this only carries them.
(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) { return; }

  function bytes(value) {
    var b64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out.buffer;
  }
  function text(buffer) {
    if (!buffer) { return null; }
    var view = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < view.length; i++) { raw += String.fromCharCode(view[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function descriptors(list) {
    return (list || []).map(function (c) { return {type: c.type, id: bytes(c.id), transports: c.transports}; });
  }
  function send(form, credential, response) {
    form.querySelector("input[name=credential]").value = JSON.stringify({
      id: credential.id, rawId: text(credential.rawId), type: credential.type,
      response: response, clientExtensionResults: credential.getClientExtensionResults()});
    form.submit();
  }

  var signin = document.getElementById("passkey-signin");
  if (signin) {
    signin.hidden = false;
    document.getElementById("sign-in-passkey").addEventListener("click", function () {
      var o = JSON.parse(signin.getAttribute("data-options"));
      navigator.credentials.get({publicKey: {
        challenge: bytes(o.challenge), rpId: o.rpId, timeout: o.timeout,
        userVerification: o.userVerification, allowCredentials: descriptors(o.allowCredentials)
      }}).then(function (c) {
        send(signin, c, {clientDataJSON: text(c.response.clientDataJSON),
                         authenticatorData: text(c.response.authenticatorData),
                         signature: text(c.response.signature),
                         userHandle: text(c.response.userHandle)});
      }).catch(function () {});
    });
  }

  var create = document.getElementById("passkey-create");
  if (create) {
    document.getElementById("passkey-needs-script").hidden = true;
    document.getElementById("create-passkey").addEventListener("click", function () {
      var o = JSON.parse(create.getAttribute("data-options"));
      navigator.credentials.create({publicKey: {
        challenge: bytes(o.challenge), rp: o.rp, timeout: o.timeout,
        user: {id: bytes(o.user.id), name: o.user.name, displayName: o.user.displayName},
        pubKeyCredParams: o.pubKeyCredParams, excludeCredentials: descriptors(o.excludeCredentials),
        authenticatorSelection: o.authenticatorSelection, attestation: o.attestation
      }}).then(function (c) {
        send(create, c, {clientDataJSON: text(c.response.clientDataJSON),
                         attestationObject: text(c.response.attestationObject),
                         transports: c.response.getTransports ? c.response.getTransports() : []});
      }).catch(function () {});
    });
  }
})();
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
