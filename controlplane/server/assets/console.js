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
    if (el.hasAttribute("title")) {
      el.title = text;
    }
    if (cls !== undefined) {
      el.classList.remove("ok", "bad", "unknown");
      el.classList.add(cls);
    }
  }
  // The rows of an environment's services table, from the event (the set of services
  // may have changed since the page was rendered).
  function rebuild(body, env) {
    var withEndpoint = body.hasAttribute("data-with-endpoint");
    var rows = env.services.map(function (s) {
      var key = env.name + "/" + s.service;
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      th.scope = "row";
      th.textContent = s.service;
      tr.appendChild(th);
      // [attribute, text, class, clipped, label]: a clipped value sits in a span that
      // truncates it, its full text in the title (as the server renders it); the
      // label heads the value when a phone stacks the row.
      var cells = [["data-health", s.health, s.class, false, "Health"], ["data-version", s.version, null, true, "Version"], ["data-uptime", s.uptime, null, false, "Uptime"]];
      if (withEndpoint) {
        cells.push([null, s.endpoint, "opt", true, "Endpoint"]);
      }
      cells.forEach(function (c) {
        var td = document.createElement("td");
        td.setAttribute("data-label", c[4]);
        var holder = td;
        if (c[3]) {
          holder = document.createElement("span");
          holder.className = "clip";
          td.appendChild(holder);
        }
        if (c[0]) {
          holder.setAttribute(c[0], key);
        }
        holder.textContent = c[1];
        holder.title = c[1];
        if (c[2]) {
          td.className = c[2];
        }
        tr.appendChild(td);
      });
      return tr;
    });
    body.replaceChildren.apply(body, rows);
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
    var tbodies = byAttr("data-env-services");
    var tiers = byAttr("data-env-tier");
    cards.forEach(function (env) {
      var body = tbodies[env.name];
      if (body) {
        rebuild(body, env);
      }
      set(tiers[env.name], env.tier);
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

// A job's progress on the backups page: its events (SSE) appended as they
// come, then its final state.
(function () {
  var state = document.querySelector("[data-job-state]");
  if (!state || !window.EventSource) {
    return;
  }
  var job = state.getAttribute("data-job");
  var list = document.querySelector("[data-job-events]");
  var src = new EventSource("/console/jobs/" + encodeURIComponent(job) + "/events");
  var seen = list ? list.children.length : 0;
  src.addEventListener("progress", function (m) {
    var e = JSON.parse(m.data);
    if (e.seq < seen || !list) {
      return;
    }
    seen = e.seq + 1;
    var li = document.createElement("li");
    li.textContent = e.text;
    list.appendChild(li);
  });
  src.addEventListener("result", function (m) {
    var v = JSON.parse(m.data);
    state.textContent = v.state + (v.error ? ": " + v.error : "");
    state.setAttribute("data-done", v.state);
    src.close();
  });
})();
