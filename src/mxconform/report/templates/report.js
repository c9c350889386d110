// Filters by verdict, spec area and target, kept in the URL fragment so a link reproduces a view.
// A group missing from the fragment has its default (the verdicts: FAIL, ERROR and WARN; the
// others: all). "SKIP" names both kinds of SKIP. A fragment naming a row (#target--check--
// transport) keeps the view and shows that row.
(function () {
  "use strict";
  var groups = ["verdict", "area", "target"];
  var aliases = {SKIP: ["NOT_APPLICABLE", "NOT_TESTED"]};
  var current = null;
  function boxes(g) {
    return Array.prototype.slice.call(document.querySelectorAll('input[data-group="' + g + '"]'));
  }
  function defaults(g) {
    var box = boxes(g)[0];
    var set = box && box.closest("fieldset").dataset.default;
    return set ? new Set(set.split(",")) : null;  // null: every value
  }
  function read() {
    var params = new URLSearchParams(location.hash.slice(1));
    var state = {};
    groups.forEach(function (g) {
      if (!params.has(g)) { state[g] = defaults(g); return; }
      var wanted = new Set();
      params.get(g).split(",").forEach(function (v) {
        (aliases[v] || [v]).forEach(function (a) { if (a) { wanted.add(a); } });
      });
      state[g] = wanted;
    });
    return state;
  }
  function show(state) {
    current = state;
    groups.forEach(function (g) {
      boxes(g).forEach(function (box) { box.checked = !state[g] || state[g].has(box.value); });
    });
    var shown = 0;
    document.querySelectorAll("tr.check").forEach(function (row) {
      var ok = groups.every(function (g) { return !state[g] || state[g].has(row.dataset[g]); });
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    var counter = document.getElementById("shown-count");
    if (counter) { counter.textContent = String(shown); }
    var none = document.getElementById("none-shown");
    if (none) { none.hidden = shown > 0; }
    var table = document.getElementById("checks-table");
    if (table) { table.hidden = shown === 0; }
  }
  function apply() {
    var hash = location.hash.slice(1);
    try { hash = decodeURIComponent(hash); } catch (e) { /* not a row id */ }
    var row = hash && hash.indexOf("=") < 0 ? document.getElementById(hash) : null;
    if (row && row.matches("tr.check")) {
      if (current === null) { show(read()); }
      if (row.hidden) {
        row.hidden = false;
        document.getElementById("checks-table").hidden = false;
        var counter = document.getElementById("shown-count");
        if (counter) { counter.textContent = String(Number(counter.textContent) + 1); }
      }
      row.scrollIntoView();
      return;
    }
    if (row) {
      for (var up = row; up; up = up.parentElement) {
        if (up.tagName === "DETAILS") { up.open = true; }
      }
      row.scrollIntoView();
      if (current !== null) { return; }
    }
    show(read());
  }
  function write() {
    var params = new URLSearchParams();
    groups.forEach(function (g) {
      var all = boxes(g);
      var on = all.filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
      var base = defaults(g);
      var same = base ? on.length === base.size && on.every(function (v) { return base.has(v); })
        : on.length === all.length;
      if (!same) { params.set(g, on.join(",")); }
    });
    history.replaceState(null, "", "#" + params.toString());
    apply();
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches("input[data-group]")) { write(); }
  });
  window.addEventListener("hashchange", apply);
  apply();
})();

// Evidence of PASS, SKIP and INFO checks is built when its button is first pressed, from the
// inert block (gzip, base64, in a JSON string: the browser's own DecompressionStream unpacks
// it, once); everything a server sent goes in as text, never as markup.
(function () {
  "use strict";
  var data = null;
  function unpack() {
    if (data === null) {
      if (typeof DecompressionStream === "undefined") {
        data = Promise.reject(new Error("this browser cannot unpack it (no DecompressionStream)"));
      } else {
        var packed = atob(JSON.parse(document.getElementById("lazy-evidence").textContent));
        var bytes = new Uint8Array(packed.length);
        for (var i = 0; i < packed.length; i += 1) { bytes[i] = packed.charCodeAt(i); }
        var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
        data = new Response(stream).json();
      }
    }
    return data;
  }
  function el(tag, text) {
    var node = document.createElement(tag);
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function pretty(value) {
    if (value === null || value === undefined) { return ""; }
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }
  function block(headers, body) {
    var lines = headers.map(function (h) { return h[0] + ": " + h[1]; }).join("\n");
    var text = pretty(body);
    return el("pre", lines + (text ? "\n\n" + text : ""));
  }
  function build(exchanges) {
    var holder = el("div");
    holder.className = "evidence";
    exchanges.forEach(function (e) {
      var box = el("div");
      box.className = "exchange";
      var outcome = e.status ? String(e.status) : String(e.error);
      box.appendChild(el("code", e.method + " " + e.url));
      box.appendChild(document.createTextNode(" → " + outcome + " in " + e.duration_ms + " ms" +
        (e.note ? " (" + e.note + ")" : "")));
      box.appendChild(block(e.request_headers, e.request_body));
      box.appendChild(block(e.response_headers, e.response_body));
      var curl = el("details");
      curl.appendChild(el("summary", "as curl (secrets as $PLACEHOLDERS)"));
      curl.appendChild(el("pre", e.curl));
      box.appendChild(curl);
      holder.appendChild(box);
    });
    return holder;
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button.lazy-evidence") : null;
    if (!button || button.disabled) { return; }
    var shown = button.nextElementSibling;
    if (shown && shown.classList.contains("evidence")) {
      shown.hidden = !shown.hidden;
      button.setAttribute("aria-expanded", String(!shown.hidden));
      return;
    }
    button.disabled = true;
    unpack().then(function (all) {
      return build(all[button.dataset.evidence] || []);
    }, function (error) {
      var failed = el("div", "evidence not shown: " + error.message);
      failed.className = "evidence";
      return failed;
    }).then(function (holder) {
      button.insertAdjacentElement("afterend", holder);
      button.setAttribute("aria-expanded", "true");
      button.disabled = false;
    });
  });
})();
