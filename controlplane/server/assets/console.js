// controlplane console: live refresh. The server streams every environment's status
// (/console/events, server-sent events) whenever its prober sees a change; this
// updates the cells marked with data-* attributes in place, without a reload.
"use strict";
(function () {
  if (!document.querySelector("[data-live]") || !window.EventSource) {
    return;
  }
  function byAttr(name) {
    var out = {};
    document.querySelectorAll("[" + name + "]").forEach(function (el) {
      out[el.getAttribute(name)] = el;
    });
    return out;
  }
  function set(el, text, cls) {
    if (!el) {
      return;
    }
    if (el.textContent !== text) {
      el.textContent = text;
    }
    if (cls !== undefined) {
      el.classList.remove("ok", "bad", "unknown");
      el.classList.add(cls);
    }
  }
  var source = new EventSource("/console/events");
  source.addEventListener("status", function (ev) {
    var cards;
    try {
      cards = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    var health = byAttr("data-health");
    var version = byAttr("data-version");
    var uptime = byAttr("data-uptime");
    var summary = byAttr("data-env-summary");
    var drift = byAttr("data-env-drift");
    var probed = byAttr("data-env-probed");
    cards.forEach(function (env) {
      set(summary[env.name], env.summary, env.class);
      set(drift[env.name], env.drift);
      set(probed[env.name], env.probed_at);
      env.services.forEach(function (s) {
        var key = env.name + "/" + s.service;
        set(health[key], s.health, s.class);
        set(version[key], s.version);
        set(uptime[key], s.uptime);
      });
    });
    document.body.setAttribute("data-updated", String(Date.now()));
  });
})();
