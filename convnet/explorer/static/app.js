/* app.js: the core of the `convnet explore` page.
 *
 * A classic script (ES modules do not load from file://) defining one global, ConvnetExplorer.
 * It owns the data access (the local server, or the pre-computed files of a static export),
 * the header, the input panel, the network column and the predictions. The explanation panel
 * (views-explain.js) and the whole-model views (views-extra.js) register themselves in
 * ConvnetExplorer.views and are called from here. The maths of the explanations lives in
 * explain.js (ConvnetExplain), which has no DOM.
 *
 * Everything the page draws comes from the API described in the server's docs: small JSON,
 * PNG sprites for the channel heatmaps and CNV1 binary blobs for exact float32 values.
 */
var ConvnetExplorer = (function () {
  "use strict";

  // A layer shows all its channels when they are few enough (<= 256 channels and <= 120k
  // values); a bigger one shows the first 64 and a "show all" button, so a ResNet-50 stays light.
  var MAX_CHANNELS = 64, ALL_CHANNELS = 256, ALL_VALUES = 120000;
  var PAGE = 48;             // test images per page of the picker
  var state = {
    meta: null,
    byId: new Map(),         // layer id -> LAYER of /api/meta
    inputId: null,           // the input shown now (a test image, upload, drawing or shift)
    baseId: null,            // the unshifted input the shift buttons move
    shift: [0, 0],           // (dx, dy) of the shown input relative to baseId
    forward: null,           // /api/forward answer for inputId
    fwdLayers: new Map(),    // layer id -> its entry in forward.layers
    pickerOffset: 0,
    pickerLabel: "",
    pickerTotal: 0,
    strips: [],              // every .maps element of the network column
    visible: new Set(),      // the strips on screen now (IntersectionObserver)
    loadToken: 0             // bumps on every input change, so stale loads are dropped
  };
  var views = {};

  // ------------------------------------------------------------------------------------------
  // DOM helpers
  // ------------------------------------------------------------------------------------------

  function $(sel) { return document.querySelector(sel); }

  /** el("div", {class: "x", dataset: {a: 1}}, child, "text", ...) -> a new element. */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null) return;
        if (k === "dataset") Object.keys(v).forEach(function (d) { node.dataset[d] = v[d]; });
        else if (k === "text") node.textContent = v;
        else if (k === "class") node.className = v;
        else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, v);
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(typeof c === "string" || typeof c === "number" ?
        document.createTextNode(String(c)) : c);
    }
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

  // ------------------------------------------------------------------------------------------
  // Errors: never silent. Every failure lands in #error-banner (and the console stays clean,
  // because a learner reads the banner, not the devtools).
  // ------------------------------------------------------------------------------------------

  function showError(err) {
    var msg = err && err.message ? err.message : String(err);
    $("#error-text").textContent = msg;
    $("#error-banner").hidden = false;
  }

  function hideError() {
    $("#error-text").textContent = "";
    $("#error-banner").hidden = true;
  }

  /** Wrap an async handler so that any failure shows in the banner. */
  function guarded(fn) {
    return function () {
      var args = arguments, self = this;
      return Promise.resolve().then(function () { return fn.apply(self, args); })
        .catch(showError);
    };
  }

  // ------------------------------------------------------------------------------------------
  // Data access. With a server: fetch(). In a static export opened from disk (fetch of file://
  // is blocked), each answer is a script data/<key>.js calling CONVNET_STATIC_PUT(path, mime,
  // base64); we add the <script> tag and read what it registered.
  // ------------------------------------------------------------------------------------------

  var isStatic = !!window.CONVNET_STATIC;
  var staticStore = Object.create(null);
  var staticLoads = Object.create(null);
  var lastPut = null;

  window.CONVNET_STATIC_PUT = function (path, mime, b64) {
    staticStore[path] = {mime: mime, b64: b64};
    lastPut = path;
  };

  /** "/api/x" from "http://127.0.0.1:8050/api/x" (blob links may be absolute). */
  function toPath(url) {
    if (/^https?:\/\//.test(url)) {
      var u = new URL(url);
      return u.pathname + u.search;
    }
    return url;
  }

  function staticKey(path) { return path.replace(/[^A-Za-z0-9]/g, "_"); }

  function loadStatic(path) {
    if (staticStore[path]) return Promise.resolve(staticStore[path]);
    if (!staticLoads[path]) {
      staticLoads[path] = new Promise(function (resolve, reject) {
        var s = document.createElement("script");
        s.src = "data/" + staticKey(path) + ".js";
        s.onload = function () {
          // the file registers under its own path; fall back to the last registration
          var got = staticStore[path] || (lastPut && staticStore[lastPut]);
          if (got) resolve(got);
          else reject(new Error(path + ": the export's data file registered nothing"));
        };
        s.onerror = function () {
          delete staticLoads[path];
          reject(new Error(path + " was not pre-computed in this static export " +
            "(run `convnet explore RUN` for the live explorer)"));
        };
        document.head.appendChild(s);
      });
    }
    return staticLoads[path];
  }

  function b64ToBytes(b64) {
    var bin = atob(b64), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  /** GET a path -> {mime, buffer: ArrayBuffer}; throws with the server's own error message. */
  function getRaw(path) {
    path = toPath(path);
    if (isStatic) {
      return loadStatic(path).then(function (r) {
        if (r.mime === "application/json") {
          var j = JSON.parse(new TextDecoder().decode(b64ToBytes(r.b64)));
          if (j && j.error) throw new Error(j.error);
        }
        return {mime: r.mime, buffer: b64ToBytes(r.b64).buffer};
      });
    }
    return fetch(path).then(function (res) {
      return res.arrayBuffer().then(function (buf) {
        if (!res.ok) throw new Error(errorText(path, res.status, buf));
        return {mime: res.headers.get("Content-Type") || "", buffer: buf};
      });
    });
  }

  /** The {error} message of a failed answer, else "HTTP 404 for /api/x". */
  function errorText(path, status, buf) {
    try {
      var j = JSON.parse(new TextDecoder().decode(buf));
      if (j && j.error) return j.error;
    } catch (e) { /* not JSON: fall through */ }
    return "HTTP " + status + " for " + path;
  }

  function getJSON(path) {
    return getRaw(path).then(function (r) {
      return JSON.parse(new TextDecoder().decode(r.buffer));
    });
  }

  /** A CNV1 tensor {shape, data: Float32Array}; cached, blobs are content-addressed. A bare
   * sha (no slash) names /api/blob/<sha>.bin. */
  var tensorCache = new Map();
  function getTensor(path) {
    path = /^[0-9a-f]+$/i.test(path) ? "/api/blob/" + path + ".bin" : toPath(path);
    if (!tensorCache.has(path)) {
      var p = getRaw(path).then(function (r) { return ConvnetExplain.parseCNV1(r.buffer); });
      p.catch(function () { tensorCache.delete(path); });
      tensorCache.set(path, p);
      if (tensorCache.size > 200) tensorCache.delete(tensorCache.keys().next().value);
    }
    return tensorCache.get(path);
  }

  /** A URL an <img> can show: the path itself with a server, a data: URL in an export. */
  function imageURL(path) {
    path = toPath(path);
    if (!isStatic) return Promise.resolve(path);
    return loadStatic(path).then(function (r) {
      return "data:" + r.mime + ";base64," + r.b64;
    });
  }

  /** A loaded HTMLImageElement (to draw sprites onto canvases). */
  function loadImage(path) {
    return imageURL(path).then(function (url) {
      return new Promise(function (resolve, reject) {
        var img = new Image();
        img.onload = function () { resolve(img); };
        img.onerror = function () {
          // with a server, ask again to read its JSON error message
          if (isStatic) reject(new Error(path + ": not an image"));
          else getRaw(path).then(function () { reject(new Error(path + ": not an image")); }, reject);
        };
        img.src = url;
      });
    });
  }

  /** Show path in an <img>, reporting the server's message if it fails. */
  function setImage(img, path) {
    return loadImage(path).then(function (loaded) {
      img.src = loaded.src;
      return img;
    });
  }

  function postBytes(path, body, headers) {
    // X-Convnet-Page: the server answers a refused file with 200 {error, refused} instead of
    // 400, so a wrong file is a message on the page, not a failed request in the console.
    var h = Object.assign({"X-Convnet-Page": "1"}, headers || {});
    return fetch(path, {method: "POST", body: body, headers: h}).then(function (res) {
      return res.arrayBuffer().then(function (buf) {
        if (!res.ok) throw new Error(errorText(path, res.status, buf));
        var answer = JSON.parse(new TextDecoder().decode(buf));
        if (answer.refused) throw new Error(answer.error);
        return answer;
      });
    });
  }

  // ------------------------------------------------------------------------------------------
  // Formatting
  // ------------------------------------------------------------------------------------------

  /** 4 significant digits: what the page shows (data-value attributes keep full precision). */
  function fmt(v, digits) {
    if (v === null || v === undefined) return "–";
    if (!isFinite(v)) return String(v);
    if (v === 0) return "0";
    var a = Math.abs(v), d = digits || 4;
    if (a >= 1e-3 && a < 1e5) return String(Number(v.toPrecision(d)));
    return v.toExponential(d - 1);
  }

  /** 12345678 -> "12.3M"; small numbers as they are. */
  function fmtCount(n) {
    if (n === null || n === undefined) return "–";
    if (n < 1e4) return String(n);
    var units = [[1e9, "G"], [1e6, "M"], [1e3, "k"]];
    for (var i = 0; i < units.length; i++) {
      if (n >= units[i][0]) return Number((n / units[i][0]).toPrecision(3)) + units[i][1];
    }
    return String(n);
  }

  function fmtShape(shape) { return shape && shape.length ? shape.join("×") : "–"; }

  function fmtRF(rf) {
    if (!rf) return "whole input";
    return rf.size[0] + "×" + rf.size[1] + (rf.jump[0] > 1 || rf.jump[1] > 1 ?
      " (jump " + rf.jump[0] + ")" : "");
  }

  /** The diverging colour map of the server's sprites: blue (-s) - white (0) - orange (+s). */
  var POS = [194, 65, 12], NEG = [29, 78, 216];
  function colour(v, scale) {
    var t = scale > 0 ? Math.max(-1, Math.min(1, v / scale)) : 0;
    var end = t >= 0 ? POS : NEG, a = Math.abs(t);
    return [Math.round(255 + (end[0] - 255) * a), Math.round(255 + (end[1] - 255) * a),
      Math.round(255 + (end[2] - 255) * a)];
  }
  function colourCSS(v, scale) { return "rgb(" + colour(v, scale).join(",") + ")"; }
  /** Black or white text, whichever reads on that background. */
  function inkFor(v, scale) { return Math.abs(v) > 0.6 * scale ? "#fff" : "#111827"; }

  // ------------------------------------------------------------------------------------------
  // Header
  // ------------------------------------------------------------------------------------------

  function renderHeader(meta) {
    document.title = meta.title + " · convnet explore";
    $("#model-title").textContent = meta.title;
    var rf = meta.receptive_field;
    var facts = [
      ["model", meta.model],
      ["task", meta.task === "segment" ? "segmentation" : "classification"],
      ["input", meta.input.channels + "×" + meta.input.height + "×" + meta.input.width],
      ["parameters", fmtCount(meta.total_params)],
      ["MACs / image", fmtCount(meta.total_macs)],
      ["receptive field", rf ? (Array.isArray(rf) ? rf.join("×") : String(rf)) : "–"],
      ["test accuracy", meta.test_accuracy === null || meta.test_accuracy === undefined ? "–" :
        (100 * meta.test_accuracy).toFixed(2) + "%"]
    ];
    var dl = clear($("#model-facts"));
    facts.forEach(function (f) {
      dl.appendChild(el("div", null, el("dt", {text: f[0]}), el("dd", {text: f[1]})));
    });
  }

  // ------------------------------------------------------------------------------------------
  // Input panel: test-image picker, upload, drawing, shifts
  // ------------------------------------------------------------------------------------------

  function loadPicker() {
    var q = "/api/inputs?offset=" + state.pickerOffset + "&limit=" + PAGE +
      (state.pickerLabel !== "" ? "&label=" + state.pickerLabel : "");
    return getJSON(q).then(function (r) {
      state.pickerTotal = r.total;
      var box = clear($("#thumbs"));
      r.items.forEach(function (it) { box.appendChild(thumbButton(it)); });
      if (!r.items.length) box.appendChild(el("p", {class: "caption", text: "no test images"}));
      var pages = Math.max(1, Math.ceil(r.total / PAGE));
      $("#picker-page").textContent = (Math.floor(state.pickerOffset / PAGE) + 1) + " / " + pages;
      $("#picker-prev").disabled = state.pickerOffset === 0;
      $("#picker-next").disabled = state.pickerOffset + PAGE >= r.total;
      markSelectedThumb();
      return r;
    });
  }

  function thumbButton(it) {
    var img = el("img", {alt: it.label_name !== null && it.label_name !== undefined ?
      "test image, label " + it.label_name : "test image"});
    imageURL(it.thumb).then(function (u) { img.src = u; }, showError);
    var title = it.id + (it.label_name !== null && it.label_name !== undefined ?
      " (label " + it.label_name + ")" : "");
    return el("button", {type: "button", class: "thumb", title: title,
      dataset: {inputId: it.id}, onclick: guarded(function () { return selectInput(it.id, true); })},
      img, it.label_name !== null && it.label_name !== undefined ?
        el("span", {class: "tag", text: it.label_name}) : null);
  }

  function markSelectedThumb() {
    document.querySelectorAll("#thumbs .thumb").forEach(function (t) {
      t.classList.toggle("selected", t.dataset.inputId === state.baseId);
    });
  }

  function setupPicker(meta) {
    $("#picker-prev").addEventListener("click", guarded(function () {
      state.pickerOffset = Math.max(0, state.pickerOffset - PAGE);
      return loadPicker();
    }));
    $("#picker-next").addEventListener("click", guarded(function () {
      state.pickerOffset += PAGE;
      return loadPicker();
    }));
    // A class filter (server only: an export holds just a few inputs)
    if (!meta.static && meta.class_names && meta.class_names.length && meta.class_names.length <= 100 &&
        meta.task === "classify") {
      var sel = el("select", {id: "picker-filter", "aria-label": "show test images of one class"},
        el("option", {value: "", text: "all classes"}));
      meta.class_names.forEach(function (n, k) { sel.appendChild(el("option", {value: k, text: n})); });
      sel.addEventListener("change", guarded(function () {
        state.pickerLabel = sel.value;
        state.pickerOffset = 0;
        return loadPicker();
      }));
      $("#picker-label").replaceWith(sel);
    }
  }

  /** Upload: file input and drag-and-drop both POST the raw bytes to /api/upload. */
  function setupUpload(meta) {
    var box = $("#upload-box");
    if (!meta.can_upload) {
      box.hidden = true;
      return;
    }
    var send = guarded(function (file) {
      var notes = $("#upload-notes");
      notes.textContent = "uploading " + file.name + "…";
      return file.arrayBuffer().then(function (buf) {
        return postBytes("/api/upload", buf, {"X-Filename": encodeURIComponent(file.name),
          "Content-Type": "application/octet-stream"});
      }).then(function (r) {
        notes.textContent = (r.notes || []).join(" ") || file.name + " uploaded.";
        return selectInput(r.id, true);
      }, function (err) {
        notes.textContent = err.message;
        throw err;
      });
    });
    $("#upload-input").addEventListener("change", function (e) {
      if (e.target.files && e.target.files[0]) send(e.target.files[0]);
      e.target.value = "";  // choosing the same file again fires change again
    });
    ["dragenter", "dragover"].forEach(function (t) {
      box.addEventListener(t, function (e) { e.preventDefault(); box.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (t) {
      box.addEventListener(t, function (e) { e.preventDefault(); box.classList.remove("over"); });
    });
    box.addEventListener("drop", function (e) {
      var f = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
      if (f) send(f);
    });
  }

  /** Drawing canvas (MNIST-like runs): white strokes on black, a brush ~2 px of 28. */
  function setupDrawing(meta) {
    if (!meta.input.drawable || !meta.can_upload) return;
    $("#draw-box").hidden = false;
    var cv = $("#draw-canvas"), ctx = cv.getContext("2d");
    function wipe() { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, cv.width, cv.height); }
    wipe();
    ctx.strokeStyle = "#fff";
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.lineWidth = cv.width / 12;   // MNIST strokes are ~2-3 pixels wide out of 28
    var last = null;
    function at(e) {
      var r = cv.getBoundingClientRect();
      return [(e.clientX - r.left) * cv.width / r.width, (e.clientY - r.top) * cv.height / r.height];
    }
    cv.addEventListener("pointerdown", function (e) {
      last = at(e);
      cv.setPointerCapture(e.pointerId);
      ctx.beginPath();
      ctx.arc(last[0], last[1], ctx.lineWidth / 2, 0, 2 * Math.PI);
      ctx.fillStyle = "#fff";
      ctx.fill();
    });
    cv.addEventListener("pointermove", function (e) {
      if (!last) return;
      var p = at(e);
      ctx.beginPath();
      ctx.moveTo(last[0], last[1]);
      ctx.lineTo(p[0], p[1]);
      ctx.stroke();
      last = p;
    });
    ["pointerup", "pointercancel"].forEach(function (t) {
      cv.addEventListener(t, function () { last = null; });
    });
    $("#draw-clear").addEventListener("click", wipe);
    $("#draw-use").addEventListener("click", guarded(function () {
      return new Promise(function (resolve) { cv.toBlob(resolve, "image/png"); })
        .then(function (blob) { return postBytes("/api/draw", blob, {"Content-Type": "image/png"}); })
        .then(function (r) { return selectInput(r.id, true); });
    }));
  }

  /** "shift-<base>-<dx>-<dy>" with m1 for -1 (ids allow only letters, digits and dashes). */
  function shiftId(base, dx, dy) {
    function n(v) { return v < 0 ? "m" + (-v) : String(v); }
    return "shift-" + base + "-" + n(dx) + "-" + n(dy);
  }

  function setupShifts() {
    var moves = {left: [-1, 0], right: [1, 0], up: [0, -1], down: [0, 1]};
    Object.keys(moves).forEach(function (k) {
      $("#shift-" + k).addEventListener("click", guarded(function () {
        if (!state.baseId) return null;
        var dx = state.shift[0] + moves[k][0], dy = state.shift[1] + moves[k][1];
        // a static export pre-computes only the four one-pixel shifts of each input
        if (isStatic && Math.abs(dx) + Math.abs(dy) > 1) { dx = moves[k][0]; dy = moves[k][1]; }
        if (Math.max(Math.abs(dx), Math.abs(dy)) > 16) return null;
        return selectShift(dx, dy);
      }));
    });
    $("#shift-reset").addEventListener("click", guarded(function () {
      if (!state.baseId || (!state.shift[0] && !state.shift[1])) return null;
      return selectShift(0, 0);
    }));
  }

  function selectShift(dx, dy) {
    var base = state.baseId;
    var id = dx || dy ? shiftId(base, dx, dy) : base;
    return selectInput(id, false).then(function () {
      state.shift = [dx, dy];
      updateCaption();
      if (views.extra && (dx || dy)) return views.extra.showInvariance(base, dx, dy);
      if (views.extra) views.extra.clearInvariance();
      return null;
    });
  }

  function updateCaption() {
    var f = state.forward, parts = [];
    if (!f) return;
    parts.push(state.inputId);
    if (f.label !== null && f.label !== undefined) {
      parts.push("true class: " + (f.label_name || state.meta.class_names[f.label] || f.label));
    }
    if (state.shift[0] || state.shift[1]) {
      parts.push("shifted by (" + state.shift[0] + ", " + state.shift[1] + ") px");
    }
    (f.notes || []).forEach(function (n) { parts.push(n); });
    $("#current-caption").textContent = parts.join(" · ");
  }

  // ------------------------------------------------------------------------------------------
  // Selecting an input: one forward pass, then every visible layer's maps and the predictions
  // ------------------------------------------------------------------------------------------

  /** Show input `id` everywhere. isBase: a new input for the shift buttons (not a shift). */
  function selectInput(id, isBase) {
    var token = ++state.loadToken;
    document.body.dataset.busy = "1";
    return getJSON("/api/forward/" + id).then(function (fwd) {
      if (token !== state.loadToken) return null;   // a newer choice won
      state.inputId = id;
      if (isBase) {
        state.baseId = id;
        state.shift = [0, 0];
        if (views.extra) views.extra.clearInvariance();
      }
      state.forward = fwd;
      state.fwdLayers = new Map();
      fwd.layers.forEach(function (l) { state.fwdLayers.set(l.id, l); });
      var img = $("#current-input");
      return setImage(img, "/api/input/" + id + ".png").then(function () {
        img.dataset.inputId = id;
        markSelectedThumb();
        updateCaption();
        renderPredictions(fwd);
        clearMarks();
        if (views.explain) views.explain.inputChanged();
        if (views.extra) views.extra.inputChanged(id);
        return refreshMaps(token);
      });
    }).finally(function () {
      if (token === state.loadToken) delete document.body.dataset.busy;
    });
  }

  // ------------------------------------------------------------------------------------------
  // Network column
  // ------------------------------------------------------------------------------------------

  function layerFacts(layer) {
    var bits = [
      el("span", {class: "lname", text: layer.name}),
      el("span", {class: "lkind", text: layer.kind}),
      fact("out", fmtShape(layer.output_shape)),
      fact("params", fmtCount(layer.params)),
      fact("MACs", fmtCount(layer.macs)),
      fact("RF", fmtRF(layer.rf))
    ];
    var cfg = configText(layer);
    if (cfg) bits.push(el("span", {class: "fact", text: cfg}));
    return el.apply(null, ["div", {class: "layer-line"}].concat(bits));
  }

  function fact(k, v) { return el("span", {class: "fact"}, k + " ", el("b", {text: v})); }

  /** The hyper-parameters a learner needs to read a conv or pool (k, stride, padding...). */
  function configText(layer) {
    var c = layer.config;
    if (!c) return "";
    if (layer.explain === "conv") {
      var t = "k " + c.kernel_size.join("×") + ", stride " + c.stride[0] + ", pad " + c.padding[0];
      if (c.dilation[0] > 1 || c.dilation[1] > 1) t += ", dilation " + c.dilation[0];
      if (c.groups > 1) t += ", groups " + c.groups;
      if (c.padding_mode && c.padding_mode !== "zeros") t += ", " + c.padding_mode + " padding";
      return t;
    }
    if (layer.explain === "pool") {
      return c.kind + " " + c.kernel_size.join("×") + ", stride " + [].concat(c.stride)[0] +
        (c.padding && [].concat(c.padding)[0] ? ", pad " + [].concat(c.padding)[0] : "");
    }
    if (layer.explain === "adaptive_pool") return c.kind + " to " + c.output_size.join("×");
    if (layer.explain === "activation") return c.name;
    return "";
  }

  function buildLayers(meta) {
    var root = clear($("#layers"));
    var groups = new Map();  // container id -> the .group body its children go into
    var sections = new Map();
    meta.top_layers.forEach(function (name) {
      var sec = el("section", {class: "section", dataset: {top: name}});
      sections.set(name, sec);
      root.appendChild(sec);
    });
    meta.layers.forEach(function (layer) {
      var sec = sections.get(layer.top);
      if (!sec) {  // a layer whose top is unknown still gets shown, in its own section
        sec = el("section", {class: "section", dataset: {top: layer.top || layer.name}});
        sections.set(layer.top || layer.name, sec);
        root.appendChild(sec);
      }
      var parent = layer.parent_id !== null && layer.parent_id !== undefined ?
        groups.get(layer.parent_id) : null;
      var host = parent || sec;
      // a top-level layer's own row is its section's heading (styled larger)
      var node = el("div", {class: "layer" + (layer.leaf ? "" : " container") + (layer.depth === 0 ? " top" : ""),
        dataset: {layerId: layer.id, layerName: layer.name, kind: layer.kind}}, layerFacts(layer));
      if (layer.leaf) {
        node.appendChild(strip(layer));
        host.appendChild(node);
      } else {
        // a container: its heading, then its children, then its own output (e.g. after the add)
        var body = el("div", {class: "group-body"});
        var group = el("div", {class: "group"}, node, body,
          el("div", {class: "maps-label", text: "output of " + layer.name +
            (layer.kind.indexOf("Block") >= 0 || layer.kind.indexOf("Bottleneck") >= 0 ?
              " (after the residual add)" : "")}), strip(layer));
        groups.set(layer.id, body);
        host.appendChild(group);
      }
    });
    sections.forEach(function (sec, name) {  // a top name with no layer row of its own
      if (!sec.querySelector(".layer.top")) sec.insertBefore(el("h3", {text: name}), sec.firstChild);
    });
  }

  /** The (empty) strip of channel canvases of one layer; filled when it scrolls into view. */
  function strip(layer) {
    var s = el("div", {class: "maps", dataset: {layerId: layer.id}});
    state.strips.push(s);
    observer.observe(s);
    return s;
  }

  var observer = typeof IntersectionObserver !== "undefined" ?
    new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        if (e.isIntersecting) {
          state.visible.add(e.target);
          fillStrip(e.target, state.loadToken).catch(showError);
        } else {
          state.visible.delete(e.target);
        }
      });
    }, {rootMargin: "300px 0px"}) : {observe: function () {}};

  /** Display size of a map: integer upscaling of small maps (crisp), downscaling of big ones,
   * never wider than the column (`avail` px). */
  function displayScale(layout, avail) {
    var h = layout.tile_h, w = layout.tile_w;
    if (layout.mode === "tokens") return Math.min(3, avail / w, 240 / h);
    if (layout.mode === "vector") return Math.max(1, Math.min(16, avail / w, 120 / h));
    var s = 64 / Math.max(h, w);
    return Math.min(s >= 1 ? Math.min(24, Math.floor(s)) : s, avail / w);
  }

  /** Create the channel canvases of a strip for the current layout (kept across inputs). */
  function buildCanvases(s, fl, showAll) {
    var layout = fl.layout, id = +s.dataset.layerId;
    var n = layout.mode === "channels" ? layout.channels : 1;
    var few = n <= ALL_CHANNELS && n * layout.tile_h * layout.tile_w <= ALL_VALUES;
    var shown = showAll || few ? n : Math.min(n, MAX_CHANNELS);
    var k = displayScale(layout, Math.max(120, (s.clientWidth || 400) - 4));
    // many channels: smaller tiles (integer zoom when possible), so the layer stays compact
    if (layout.mode === "channels" && n > 64) {
      var side = Math.max(layout.tile_h, layout.tile_w), target = n > 256 ? 24 : 34;
      k = Math.min(k, target / side >= 1 ? Math.floor(target / side) : target / side);
    }
    clear(s);
    for (var c = 0; c < shown; c++) {
      var cv = el("canvas", {class: "chan", width: layout.tile_w, height: layout.tile_h,
        dataset: {layerId: id, channel: c},
        title: state.byId.get(id).name + (n > 1 ? ", channel " + c : "") + ": click a pixel"});
      cv.style.width = Math.round(layout.tile_w * k) + "px";
      cv.style.height = Math.round(layout.tile_h * k) + "px";
      cv.addEventListener("pointerdown", rememberPointer);
      cv.addEventListener("click", onMapClick);
      cv.addEventListener("pointermove", onMapHover);
      cv.addEventListener("pointerleave", hideHover);
      s.appendChild(el("div", {class: "chan-wrap"}, cv,
        n > 1 && layout.tile_h * k >= 36 ? el("span", {class: "cidx", text: c}) : null));
    }
    if (layout.mode === "tokens") {
      s.appendChild(el("div", {class: "maps-label", text: "rows: " + layout.tile_h + " tokens, columns: " +
        layout.tile_w + " features"}));
    } else if (layout.mode === "vector") {
      s.appendChild(el("div", {class: "maps-label", text: "a vector, " + layout.tile_w + " values per row"}));
    }
    if (shown < n) {
      s.appendChild(el("button", {type: "button", class: "more", text: "show all " + n + " channels",
        onclick: guarded(function () {
          s.dataset.showAll = "1";
          s.dataset.built = "";
          delete s.dataset.drawn;  // else fillStrip sees this input drawn and skips the rebuild
          return fillStrip(s, state.loadToken);
        })}));
    }
    s.dataset.built = JSON.stringify(layout) + (showAll ? "+all" : "");
  }

  /** Every layer's canvases exist as soon as the layout is known (the pixels come later), so
   * any channel can be found, scrolled to and clicked. */
  function ensureBuilt(s) {
    var fl = state.fwdLayers.get(+s.dataset.layerId);
    if (!fl || !fl.layout) return;
    var showAll = s.dataset.showAll === "1";
    if (s.dataset.built !== JSON.stringify(fl.layout) + (showAll ? "+all" : "")) buildCanvases(s, fl, showAll);
  }

  /** Draw a strip's canvases from the layer's sprite for the current input (once per input). */
  function fillStrip(s, token) {
    var id = +s.dataset.layerId, fl = state.fwdLayers.get(id);
    if (!state.inputId) return Promise.resolve();
    if (!fl || !fl.layout) {
      if (!s.dataset.none) {
        clear(s).appendChild(el("span", {class: "caption", text: "(no tensor output to show)"}));
        s.dataset.none = "1";
      }
      return Promise.resolve();
    }
    var key = state.inputId;
    if (s.dataset.drawn === key || s.dataset.loading === key) return s._loading || Promise.resolve();
    ensureBuilt(s);
    s.dataset.loading = key;
    s._loading = loadImage("/api/maps/" + key + "/" + id + ".png").then(function (sprite) {
      if (token !== state.loadToken) return;
      drawSprite(s, sprite, fl.layout);
      s.dataset.drawn = key;
    }).finally(function () {
      if (s.dataset.loading === key) delete s.dataset.loading;
    });
    return s._loading;
  }

  function drawSprite(s, sprite, layout) {
    s.querySelectorAll("canvas.chan").forEach(function (cv) {
      var c = +cv.dataset.channel, ctx = cv.getContext("2d");
      var sx = layout.mode === "channels" ? (c % layout.cols) * layout.tile_w : 0;
      var sy = layout.mode === "channels" ? Math.floor(c / layout.cols) * layout.tile_h : 0;
      ctx.clearRect(0, 0, cv.width, cv.height);
      ctx.drawImage(sprite, sx, sy, layout.tile_w, layout.tile_h, 0, 0, cv.width, cv.height);
    });
  }

  /** After an input change: redraw the strips on screen now (the others when scrolled to). */
  function refreshMaps(token) {
    var vh = window.innerHeight;
    state.strips.forEach(ensureBuilt);
    var jobs = state.strips.filter(function (s) {
      var r = s.getBoundingClientRect();
      return state.visible.has(s) || (r.bottom >= -300 && r.top <= vh + 300);
    }).map(function (s) { return fillStrip(s, token); });
    return Promise.all(jobs);
  }

  // A click's clientX/Y are whole CSS pixels, but a wide token map can give a feature half a
  // pixel: the pointerdown just before it has the fractional position, so we use that one.
  var lastPointer = null;
  function rememberPointer(e) { lastPointer = {target: e.currentTarget, x: e.clientX, y: e.clientY}; }

  /** Which map pixel a click hit: the canvas's content box maps onto its width×height. */
  function onMapClick(e) {
    hideHover();   // the tooltip would sit over the panel the click is about to fill
    var cv = e.currentTarget, r = cv.getBoundingClientRect();
    var px = e.clientX, py = e.clientY;
    if (lastPointer && lastPointer.target === cv && Math.abs(lastPointer.x - px) < 1.5 &&
        Math.abs(lastPointer.y - py) < 1.5) {
      px = lastPointer.x;
      py = lastPointer.y;
    }
    var fx = (px - r.left - cv.clientLeft) / cv.clientWidth;
    var fy = (py - r.top - cv.clientTop) / cv.clientHeight;
    var x = Math.min(cv.width - 1, Math.max(0, Math.floor(fx * cv.width)));
    var y = Math.min(cv.height - 1, Math.max(0, Math.floor(fy * cv.height)));
    var id = +cv.dataset.layerId;
    if (views.explain) {
      guarded(views.explain.open)({layerId: id, channel: +cv.dataset.channel, y: y, x: x});
    }
  }

  // Hover: the value under the pointer, and that unit's receptive field on the input picture
  // (hover deeper and deeper layers to watch the field grow)
  var resolved = new Map();    // output blob -> its tensor, once fetched (hover reads it synchronously)

  function pixelAt(cv, px, py) {
    var r = cv.getBoundingClientRect();
    var fx = (px - r.left - cv.clientLeft) / cv.clientWidth, fy = (py - r.top - cv.clientTop) / cv.clientHeight;
    return {x: Math.min(cv.width - 1, Math.max(0, Math.floor(fx * cv.width))),
      y: Math.min(cv.height - 1, Math.max(0, Math.floor(fy * cv.height)))};
  }

  function onMapHover(e) {
    var cv = e.currentTarget, id = +cv.dataset.layerId, c = +cv.dataset.channel;
    var layer = state.byId.get(id), fl = state.fwdLayers.get(id);
    if (!layer || !fl || !fl.layout) return;
    var p = pixelAt(cv, e.clientX, e.clientY), L = fl.layout;
    var flat = L.mode === "channels" ? (c * L.tile_h + p.y) * L.tile_w + p.x : p.y * L.tile_w + p.x;
    var t = fl.output_blob ? resolved.get(fl.output_blob) : null;
    if (fl.output_blob && !resolved.has(fl.output_blob)) {
      resolved.set(fl.output_blob, null);   // fetch once, show the value on the next move
      getTensor(fl.output_blob).then(function (v) { resolved.set(fl.output_blob, v); }, function () {
        resolved.delete(fl.output_blob);
      });
    }
    var where = L.mode === "channels" ? "ch " + c + " (y " + p.y + ", x " + p.x + ")" :
      L.mode === "tokens" ? "token " + p.y + ", feature " + p.x : "unit " + flat;
    var tip = $("#hover-tip");
    tip.textContent = layer.name + " · " + where + (t && flat < t.data.length ? " = " + fmt(t.data[flat]) : "");
    tip.hidden = false;
    tip.style.left = Math.min(window.innerWidth - 260, e.clientX + 14) + "px";
    tip.style.top = (e.clientY + 16) + "px";
    showInputField(layer, L.mode === "channels" ? p : null);
  }

  window.addEventListener("scroll", function () { if (!$("#hover-tip").hidden) hideHover(); }, {passive: true});

  function hideHover() {
    $("#hover-tip").hidden = true;
    $("#input-field").hidden = true;
  }

  /** Outline the receptive field of unit (y, x) of `layer` on the big input picture. */
  function showInputField(layer, p) {
    var box = $("#input-field"), img = $("#current-input");
    var H = state.meta.input.height, W = state.meta.input.width;
    if (!layer.rf || !p || !img.clientWidth) { box.hidden = true; return; }
    var f = ConvnetExplain.receptiveBox(layer.rf, p.y, p.x);
    var s = Math.min(img.clientWidth / W, img.clientHeight / H);
    var ox = (img.clientWidth - W * s) / 2, oy = (img.clientHeight - H * s) / 2;
    var x0 = Math.max(0, f.x0), y0 = Math.max(0, f.y0), x1 = Math.min(W - 1, f.x1), y1 = Math.min(H - 1, f.y1);
    box.style.left = (img.offsetLeft + ox + x0 * s) + "px";
    box.style.top = (img.offsetTop + oy + y0 * s) + "px";
    box.style.width = ((x1 - x0 + 1) * s) + "px";
    box.style.height = ((y1 - y0 + 1) * s) + "px";
    box.title = "receptive field " + layer.rf.size.join("×");
    box.hidden = false;
  }

  // Marks: outlines drawn over the column's canvases (the clicked pixel, the window it reads)
  function clearMarks() {
    document.querySelectorAll("#layers .mark").forEach(function (m) { m.remove(); });
  }

  /** Outline rows y0..y1, columns x0..x1 (map pixels, inclusive) on a channel canvas. */
  function markBox(layerId, channel, y0, x0, y1, x1, cls) {
    var cv = document.querySelector('#layers canvas.chan[data-layer-id="' + layerId +
      '"][data-channel="' + channel + '"]');
    if (!cv) return null;
    var sx = cv.clientWidth / cv.width, sy = cv.clientHeight / cv.height;
    var m = el("div", {class: "mark " + (cls || "")});
    m.style.left = (cv.offsetLeft + cv.clientLeft + x0 * sx - 1) + "px";
    m.style.top = (cv.offsetTop + cv.clientTop + y0 * sy - 1) + "px";
    m.style.width = ((x1 - x0 + 1) * sx + 2) + "px";
    m.style.height = ((y1 - y0 + 1) * sy + 2) + "px";
    cv.parentNode.appendChild(m);
    return m;
  }

  // ------------------------------------------------------------------------------------------
  // Predictions and softmax
  // ------------------------------------------------------------------------------------------

  function renderPredictions(fwd) {
    var box = clear($("#predictions")), pred = fwd.prediction || {};
    var names = state.meta.class_names || [];
    if (state.meta.task === "segment") {
      $("#softmax-box").hidden = true;
      var img = el("img", {id: "mask-img", alt: "predicted segmentation mask"});
      if (pred.mask) setImage(img, pred.mask).catch(showError);
      box.appendChild(img);
      var leg = el("div", {class: "legend"});
      var palette = state.meta.palette || pred.palette || null;
      (pred.class_fraction || []).forEach(function (f, k) {
        if (!(f > 0)) return;
        var sw = null;
        if (palette && palette[k]) {
          sw = el("span", {class: "swatch"});
          sw.style.background = "rgb(" + palette[k].join(",") + ")";
        }
        leg.appendChild(el("span", {dataset: {"class": k, fraction: f}}, sw, sw ? " " : "",
          (names[k] !== undefined ? names[k] : k) + ": " + (100 * f).toFixed(1) + "%"));
      });
      box.appendChild(el("p", {class: "caption", text: "Each pixel gets the class with the largest logit." +
        (pred.pixel_accuracy !== null && pred.pixel_accuracy !== undefined ?
          " Pixel accuracy: " + (100 * pred.pixel_accuracy).toFixed(1) + "%." : "")}));
      box.appendChild(leg);
      return;
    }
    var probs = pred.probs || [];
    // all classes when they fit, else the 10 most likely
    var order = probs.map(function (_, k) { return k; });
    if (order.length > 10) order = order.sort(function (a, b) { return probs[b] - probs[a]; }).slice(0, 10);
    var top = pred.top && pred.top.length ? pred.top[0].index : -1;
    order.forEach(function (k) {
      var p = probs[k], name = names[k] !== undefined ? names[k] : String(k);
      box.appendChild(el("div", {class: "bar" + (k === top ? " top" : "") + (k === fwd.label ? " truth" : ""),
        dataset: {"class": k, prob: p}, title: name + ": " + (100 * p).toFixed(2) + "%" +
          (k === fwd.label ? " (true class)" : "")},
        el("span", {class: "name", text: name + (k === fwd.label ? " ✔" : "")}),
        el("span", {class: "track"}, (function () {
          var f = el("span", {class: "fill"});
          f.style.display = "block";
          f.style.width = (100 * p).toFixed(2) + "%";
          return f;
        })()),
        el("span", {class: "p num", text: (100 * p).toFixed(1) + "%"})));
    });
    renderSoftmax(pred.logits || [], order, names);
  }

  function renderSoftmax(logits, order, names) {
    var box = clear($("#softmax"));
    $("#softmax-box").hidden = !logits.length;
    if (!logits.length) return;
    var sm = ConvnetExplain.softmax(logits);
    box.appendChild(el("p", {class: "caption"},
      "p_k = exp(z_k − m) / Σ_j exp(z_j − m), with m = max z = " + fmt(sm.max) +
      " (subtracting m changes nothing but keeps exp from overflowing)."));
    var t = el("table", null, el("tr", null, el("th", {text: "class"}), el("th", {text: "logit z"}),
      el("th", {text: "exp(z − m)"}), el("th", {text: "p"})));
    order.forEach(function (k) {
      t.appendChild(el("tr", null, el("td", {text: names[k] !== undefined ? names[k] : k}),
        el("td", {class: "num", text: fmt(sm.logits[k])}), el("td", {class: "num", text: fmt(sm.exps[k])}),
        el("td", {class: "num", text: fmt(sm.probs[k])})));
    });
    t.appendChild(el("tr", null, el("td", {text: "sum"}), el("td"),
      el("td", {class: "num", text: fmt(sm.sum)}), el("td", {class: "num", text: "1"})));
    box.appendChild(t);
    if (order.length < logits.length) {
      box.appendChild(el("p", {class: "caption", text: "(" + (logits.length - order.length) +
        " less likely classes not listed; the sum covers all " + logits.length + ")"}));
    }
  }

  /** Open the page on an example: the strongest pixel of the first conv layer, explained. */
  function explainFirstConv() {
    var layer = state.meta.layers.filter(function (l) { return l.explain === "conv"; })[0];
    var fl = layer && state.fwdLayers.get(layer.id);
    if (!fl || !fl.output_blob || !fl.layout || fl.layout.mode !== "channels" || !views.explain) return null;
    return getTensor(fl.output_blob).then(function (t) {
      var best = 0, L = fl.layout;
      for (var i = 1; i < t.data.length; i++) if (Math.abs(t.data[i]) > Math.abs(t.data[best])) best = i;
      var hw = L.tile_h * L.tile_w, c = Math.floor(best / hw);
      if (!document.querySelector('#layers canvas.chan[data-layer-id="' + layer.id + '"][data-channel="' + c + '"]')) {
        return null;
      }
      return views.explain.open({layerId: layer.id, channel: c, y: Math.floor((best % hw) / L.tile_w),
        x: best % L.tile_w});
    });
  }

  // ------------------------------------------------------------------------------------------
  // Start
  // ------------------------------------------------------------------------------------------

  function start() {
    $("#error-close").addEventListener("click", hideError);
    window.addEventListener("unhandledrejection", function (e) {
      e.preventDefault();
      showError(e.reason);
    });
    getJSON("/api/meta").then(function (meta) {
      state.meta = meta;
      meta.layers.forEach(function (l) { state.byId.set(l.id, l); });
      renderHeader(meta);
      setupPicker(meta);
      setupUpload(meta);
      setupDrawing(meta);
      setupShifts();
      buildLayers(meta);
      if (views.extra) views.extra.setup(meta);
      return loadPicker().then(function (r) {
        var first = r.items.length ? r.items[0].id : null;
        if (!first) {
          $("#current-caption").textContent = "Upload an image to start.";
          return null;
        }
        return selectInput(first, true).then(explainFirstConv);
      });
    }).then(function () {
      document.body.dataset.ready = "1";
    }).catch(function (err) {
      showError(err);
    });
  }

  return {
    start: start, views: views, state: state,
    // shared helpers for the views
    $: $, el: el, clear: clear, fmt: fmt, fmtCount: fmtCount, fmtShape: fmtShape,
    colour: colour, colourCSS: colourCSS, inkFor: inkFor,
    getJSON: getJSON, getTensor: getTensor, imageURL: imageURL, loadImage: loadImage,
    setImage: setImage, showError: showError, guarded: guarded, selectInput: selectInput,
    markBox: markBox, clearMarks: clearMarks, isStatic: isStatic
  };
})();
