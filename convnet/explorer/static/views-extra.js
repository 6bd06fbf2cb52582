/* views-extra.js: the whole-model views under the three columns: Grad-CAM, learned filters,
 * training curves (inline SVG), the confusion matrix with its examples, and the shift
 * (invariance / equivariance) bars. Registers itself as ConvnetExplorer.views.extra.
 */
(function (App) {
  "use strict";

  var el = App.el, $ = App.$;
  var classChosen = false;    // once the user picks a Grad-CAM class, keep it across inputs

  // ------------------------------------------------------------------------------------------
  // Grad-CAM
  // ------------------------------------------------------------------------------------------

  function setupGradcam(meta) {
    var layerSel = $("#gradcam-layer"), classSel = $("#gradcam-class");
    (meta.class_names || []).forEach(function (n, k) {
      classSel.appendChild(el("option", {value: k, text: n}));
    });
    layerSel.addEventListener("change", App.guarded(loadGradcam));
    classSel.addEventListener("change", App.guarded(function () { classChosen = true; return loadGradcam(); }));
    return App.getJSON("/api/gradcam-layers").then(function (r) {
      r.layers.forEach(function (id) {
        var l = App.state.byId.get(id);
        layerSel.appendChild(el("option", {value: id, text: l ? l.name + " (" + App.fmtShape(l.output_shape) + ")" : id}));
      });
      if (r.default !== null && r.default !== undefined) layerSel.value = String(r.default);
      if (!r.layers.length) $("#gradcam-note").textContent = "No spatial layer to explain with Grad-CAM.";
      return loadGradcam();
    });
  }

  function loadGradcam() {
    // an export pre-computes Grad-CAM for its inputs, not for their shifts
    var id = App.isStatic ? App.state.baseId : App.state.inputId;
    var layer = $("#gradcam-layer").value, k = $("#gradcam-class").value;
    if (!id || layer === "" || k === "") return null;
    var img = $("#gradcam-img");
    img.dataset.loading = "1";
    return App.setImage(img, "/api/gradcam/" + id + "?layer=" + layer + "&class=" + k).then(function () {
      img.dataset.inputId = id;
      img.dataset.layerId = layer;
      img.dataset.classIndex = k;
      var name = App.state.meta.class_names[k];
      $("#gradcam-note").textContent = "Red: the regions of " + App.state.byId.get(+layer).name +
        "'s maps that raise the score of \"" + name + "\" (gradient-weighted channels, ReLU, upsampled).";
    }).finally(function () { delete img.dataset.loading; });
  }

  // ------------------------------------------------------------------------------------------
  // Learned filters
  // ------------------------------------------------------------------------------------------

  function setupFilters(meta) {
    var sel = $("#filters-layer");
    var convs = meta.layers.filter(function (l) { return l.explain === "conv"; });
    convs.forEach(function (l) {
      sel.appendChild(el("option", {value: l.id, text: l.name + " (" + l.config.out_channels + " × " +
        l.config.kernel_size.join("×") + ")"}));
    });
    if (!convs.length) {
      sel.disabled = true;
      $("#filters-note").textContent = "This model has no Conv2d layer.";
      return null;
    }
    sel.addEventListener("change", App.guarded(loadFilters));
    return loadFilters();
  }

  function loadFilters() {
    var id = $("#filters-layer").value;
    return App.getJSON("/api/filters/" + id + ".json").then(function (info) {
      return App.loadImage("/api/filters/" + id + ".png").then(function (sprite) {
        var img = $("#filters-img");
        img.src = spaced(sprite, info);
        img.style.width = "auto";
        img.dataset.layerId = id;
        $("#filters-note").textContent = info.rgb ?
          "Each tile is one RGB kernel of the first layer: the colour pattern it responds to." :
          (info.cols === 1 ? "One tile per output channel (its only input channel)" :
            "Row = output channel, column = input channel") + shownText(info) + "; " +
          "orange = positive weight, blue = negative (scale ±" + App.fmt(info.scale) + ").";
      });
    });
  }

  /** The server's sprite has no gaps between kernels; redraw it enlarged with a white gap
   * around each tile, and a single column of kernels reflowed into rows of 8. */
  function spaced(sprite, info) {
    var kh = info.kh, kw = info.kw, rows = info.rows, cols = info.cols;
    var tiles = [];
    for (var r = 0; r < rows; r++) for (var c = 0; c < cols; c++) tiles.push([r, c]);
    var outCols = cols === 1 ? Math.min(8, rows) : cols;
    var outRows = Math.ceil(tiles.length / outCols), gap = 2;
    var z = Math.max(2, Math.min(16, Math.floor(380 / (outCols * kw)), Math.floor(420 / (outRows * kh))));
    var cv = el("canvas", {width: outCols * (kw * z + gap) + gap, height: outRows * (kh * z + gap) + gap});
    var g = cv.getContext("2d");
    g.imageSmoothingEnabled = false;
    g.fillStyle = "#fff";
    g.fillRect(0, 0, cv.width, cv.height);
    tiles.forEach(function (t, i) {
      var orow = cols === 1 ? Math.floor(i / outCols) : t[0], ocol = cols === 1 ? i % outCols : t[1];
      g.drawImage(sprite, t[1] * kw, t[0] * kh, kw, kh, gap + ocol * (kw * z + gap), gap + orow * (kh * z + gap),
        kw * z, kh * z);
    });
    return cv.toDataURL("image/png");
  }

  /** "(first 16 of 64 inputs, 64 of 128 outputs shown)" when the sprite is capped. */
  function shownText(info) {
    var bits = [];
    if (info.in_shown !== undefined && info.in_channels !== undefined && info.in_shown < info.in_channels) {
      bits.push("first " + info.in_shown + " of " + info.in_channels + " inputs");
    }
    if (info.out_shown !== undefined && info.out_shown < info.out_channels) {
      bits.push("first " + info.out_shown + " of " + info.out_channels + " outputs");
    }
    return bits.length ? " (" + bits.join(", ") + " shown)" : "";
  }

  // ------------------------------------------------------------------------------------------
  // Training curves: two small SVG charts (loss, accuracy), train and validation lines
  // ------------------------------------------------------------------------------------------

  // the SVG namespace, taken from an <svg> the HTML parser made (no URL literal in the page)
  var SVGNS = (function () {
    var d = document.createElement("div");
    d.innerHTML = "<svg></svg>";
    return d.firstChild.namespaceURI;
  })();
  function svg(tag, attrs, text) {
    var n = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) { n.setAttribute(k, attrs[k]); });
    if (text !== undefined) n.textContent = text;
    return n;
  }

  function setupCurves(meta) {
    var box = $("#curves");
    if (!meta.has_curves) {
      App.clear(box).appendChild(el("p", {class: "caption", text: "No training history for this model " +
        "(curves come from a run folder's metrics.json)."}));
      return null;
    }
    return App.getJSON("/api/curves").then(function (r) {
      App.clear(box);
      var h = r.history || [];
      var row = el("div", {class: "row"});
      row.appendChild(chart(h, [["train_loss", "train", "#c2410c"], ["val_loss", "validation", "#1d4ed8"]], "loss"));
      row.appendChild(chart(h, [["train_accuracy", "train", "#c2410c"], ["val_accuracy", "validation", "#1d4ed8"]],
        "accuracy", r.test_accuracy));
      box.appendChild(row);
      box.appendChild(el("p", {class: "caption", text: h.length + " epoch" + (h.length === 1 ? "" : "s") +
        (r.best_epoch ? "; best epoch " + r.best_epoch : "") +
        (r.test_accuracy !== null && r.test_accuracy !== undefined ? "; test accuracy " +
          (100 * r.test_accuracy).toFixed(2) + "% (dashed)" : "") +
        ". Validation below training = overfitting; both low = underfitting."}));
    });
  }

  /** One line chart of the given history keys: [key, label, colour]. */
  function chart(history, series, title, hline) {
    var W = 260, H = 150, L = 36, R = 8, T = 16, B = 24;
    var pts = [];
    series.forEach(function (s) {
      history.forEach(function (e, i) { if (isFinite(e[s[0]])) pts.push(e[s[0]]); });
    });
    if (hline !== null && hline !== undefined) pts.push(hline);
    var root = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": title + " per epoch",
      "data-chart": title});
    root.appendChild(svg("text", {x: L, y: 11}, title));
    if (!pts.length) {
      root.appendChild(svg("text", {x: L, y: H / 2}, "not recorded"));
      return root;
    }
    var lo = Math.min.apply(null, pts), hi = Math.max.apply(null, pts);
    if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
    var n = Math.max(2, history.length);
    function px(i) { return L + (W - L - R) * (history.length === 1 ? 0.5 : i / (n - 1)); }
    function py(v) { return T + (H - T - B) * (1 - (v - lo) / (hi - lo)); }
    root.appendChild(svg("line", {class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B}));
    root.appendChild(svg("line", {class: "axis", x1: L, y1: T, x2: L, y2: H - B}));
    [lo, hi].forEach(function (v) { root.appendChild(svg("text", {x: 2, y: py(v) + 3}, App.fmt(v, 3))); });
    root.appendChild(svg("text", {x: W - R - 40, y: H - 6}, "epoch " + (history.length ? history[history.length - 1].epoch : "")));
    if (hline !== null && hline !== undefined) {
      root.appendChild(svg("line", {x1: L, x2: W - R, y1: py(hline), y2: py(hline), stroke: "#15803d",
        "stroke-dasharray": "4 3"}));
    }
    series.forEach(function (s, si) {
      var d = [];
      history.forEach(function (e, i) { if (isFinite(e[s[0]])) d.push(px(i) + "," + py(e[s[0]])); });
      if (!d.length) return;
      // one epoch: a short tick, so the path is still a line
      var pathD = d.length > 1 ? "M" + d.join(" L") : (function () {
        var xy = d[0].split(","); return "M" + (+xy[0] - 6) + "," + xy[1] + " L" + (+xy[0] + 6) + "," + xy[1];
      })();
      root.appendChild(svg("path", {d: pathD, fill: "none", stroke: s[2], "stroke-width": 2,
        "data-series": s[0]}));
      d.forEach(function (p) {
        var xy = p.split(",");
        root.appendChild(svg("circle", {cx: xy[0], cy: xy[1], r: 2.5, fill: s[2]}));
      });
      root.appendChild(svg("text", {x: L + 8 + si * 80, y: T + 10, fill: s[2]}, "— " + s[1]));
    });
    return root;
  }

  // ------------------------------------------------------------------------------------------
  // Confusion matrix (computed by the server in the background: poll until ready)
  // ------------------------------------------------------------------------------------------

  function setupConfusion(meta) {
    if (!meta.has_confusion) {
      App.clear($("#confusion")).appendChild(el("p", {class: "caption", text: "No test set to evaluate."}));
      return null;
    }
    return pollConfusion();
  }

  function pollConfusion() {
    return App.getJSON("/api/confusion").then(function (r) {
      if (r.status !== "ready") {
        $("#confusion-note").textContent = "predicting the test set… " + (r.done || 0) + " / " + (r.total || "?");
        return new Promise(function (res) { setTimeout(res, 800); }).then(pollConfusion);
      }
      renderConfusion(r);
      return r;
    });
  }

  function renderConfusion(r) {
    var names = r.class_names, M = r.matrix, box = App.clear($("#confusion"));
    var max = 0, rowSums = M.map(function (row) { return row.reduce(function (a, b) { return a + b; }, 0); });
    M.forEach(function (row, t) { row.forEach(function (v, p) { if (t !== p) max = Math.max(max, v); }); });
    $("#confusion-note").textContent = "Rows: true class, columns: predicted class. Accuracy " +
      (100 * r.accuracy).toFixed(2) + "%" + (r.note ? " (" + r.note + ")" : "") +
      ". Click a cell to see those test images.";
    var table = el("table");
    var head = el("tr", null, el("th", {text: "true ↓ / pred →"}));
    names.forEach(function (n) { head.appendChild(el("th", {text: n, title: n})); });
    table.appendChild(head);
    M.forEach(function (row, t) {
      var tr = el("tr", null, el("th", {text: names[t], title: names[t]}));
      row.forEach(function (v, p) {
        var td = el("td", {class: "cell", tabindex: 0, dataset: {"true": t, pred: p, count: v},
          title: "true " + names[t] + ", predicted " + names[p] + ": " + v + " image" + (v === 1 ? "" : "s"),
          text: v ? v : ""});
        // diagonal: green by the row's share; errors: red by count (the biggest error darkest)
        var a = t === p ? (rowSums[t] ? v / rowSums[t] : 0) : (max ? v / max : 0);
        td.style.background = v === 0 ? "#f8fafc" : t === p ? "rgba(21,128,61," + (0.15 + 0.7 * a) + ")" :
          "rgba(185,28,28," + (0.12 + 0.78 * a) + ")";
        td.style.color = a > 0.55 ? "#fff" : "#111827";
        var go = App.guarded(function () { return showExamples(t, p, td); });
        td.addEventListener("click", go);
        td.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); } });
        tr.appendChild(td);
      });
      table.appendChild(tr);
    });
    box.appendChild(table);
  }

  function showExamples(t, p, td) {
    document.querySelectorAll("#confusion td.cell.selected").forEach(function (c) { c.classList.remove("selected"); });
    td.classList.add("selected");
    var names = App.state.meta.class_names, out = App.clear($("#confusion-examples"));
    return App.getJSON("/api/confusion/" + t + "/" + p + "?limit=24").then(function (r) {
      out.appendChild(el("p", {class: "caption", style: "flex-basis:100%", text: r.items.length ?
        "true " + names[t] + ", predicted " + names[p] + " (most confident first); click one to explore it:" :
        "no test image is in this cell."}));
      r.items.forEach(function (it) {
        var img = el("img", {alt: it.id});
        App.imageURL(it.thumb).then(function (u) { img.src = u; }, App.showError);
        var b = el("button", {type: "button", class: "example", dataset: {inputId: it.id},
          title: it.id + (it.prob_pred !== undefined && it.prob_pred !== null ? ": p(" + names[p] + ") = " +
            App.fmt(it.prob_pred, 3) : "")}, img);
        if (it.selectable === false) b.disabled = true;
        b.addEventListener("click", App.guarded(function () {
          return App.selectInput(it.id, true).then(function () { window.scrollTo({top: 0}); });
        }));
        out.appendChild(b);
      });
    });
  }

  // ------------------------------------------------------------------------------------------
  // Invariance: how much each layer's output changes when the input moves by one pixel
  // ------------------------------------------------------------------------------------------

  function showInvariance(base, dx, dy) {
    return App.getJSON("/api/invariance/" + base + "?dx=" + dx + "&dy=" + dy).then(function (r) {
      var box = App.clear($("#invariance"));
      box.dataset.shiftId = r.shift_id;
      // before and after, side by side: the picture moved, the label did not
      var pair = el("div", {class: "inv-pair"});
      [[base, "before"], [r.shift_id, "after the shift"]].forEach(function (q) {
        var img = el("img", {alt: q[1]});
        App.imageURL("/api/input/" + q[0] + ".png").then(function (u) { img.src = u; }, App.showError);
        pair.appendChild(el("figure", null, img, el("figcaption", {text: q[1]})));
      });
      box.appendChild(pair);
      box.appendChild(el("p", {class: "caption", text: "Input shifted by (dx " + dx + ", dy " + dy + ") px. " +
        "Orange: relative change ‖after − before‖ / ‖before‖ of each layer's output. Green: the same after " +
        "shifting the old map by the matching number of units: near 0 means the map simply moved with the " +
        "input (equivariance, convolutions). Pooling and the final layers change less (invariance)."}));
      var max = 0;
      r.layers.forEach(function (l) {
        [l.invariance, l.equivariance].forEach(function (v) { if (v !== null && isFinite(v)) max = Math.max(max, v); });
      });
      max = max || 1;
      box.appendChild(el("div", {class: "inv-row inv-head"}, el("span", {text: "layer"}),
        el("span", {text: "relative change"}), el("span", {class: "num", text: "change"}),
        el("span", {class: "num eqv-num", text: "moved map"})));
      r.layers.forEach(function (l) {
        var layer = App.state.byId.get(l.id);
        if (!layer) return;
        var track = el("div", {class: "inv-track"});
        var inv = el("div", {class: "inv"});
        inv.style.width = (100 * Math.min(1, l.invariance / max)) + "%";
        track.appendChild(inv);
        if (l.equivariance !== null && l.equivariance !== undefined) {
          var eq = el("div", {class: "eqv"});
          eq.style.width = Math.max(0.5, 100 * Math.min(1, l.equivariance / max)) + "%";
          track.appendChild(eq);
        }
        var row = el("div", {class: "inv-row", dataset: {layerId: l.id, invariance: l.invariance},
          title: layer.name + ": change " + App.fmt(l.invariance, 3) + (l.equivariance !== null &&
            l.equivariance !== undefined ? ", after moving the map " + App.fmt(l.equivariance, 3) : "")},
          el("span", {class: "lname", text: "  ".repeat(layer.depth) + layer.name}), track,
          el("span", {class: "num", text: App.fmt(l.invariance, 2)}),
          // "–": the shift is not a whole number of this layer's units, so the old map
          // cannot be moved by it (e.g. a 1-pixel shift after a stride-2 pooling)
          el("span", {class: "num eqv-num", text: l.equivariance === null ||
            l.equivariance === undefined ? "–" : App.fmt(l.equivariance, 2)}));
        row.firstChild.style.paddingLeft = (8 * layer.depth) + "px";
        box.appendChild(row);
      });
    });
  }

  function clearInvariance() {
    var box = $("#invariance");
    if (box.dataset.shiftId) {
      delete box.dataset.shiftId;
      App.clear(box).appendChild(el("p", {class: "caption", text: "Press one of the arrow buttons under the " +
        "input to shift it by one pixel; the bars will show how much each layer's output changes."}));
    }
  }

  // ------------------------------------------------------------------------------------------

  function setup(meta) {
    // each view loads on its own: one failing (shown in the banner) does not stop the others
    [setupGradcam, setupFilters, setupCurves, setupConfusion].forEach(function (f) {
      App.guarded(f)(meta);
    });
  }

  /** A new input: the Grad-CAM follows it, for the predicted class unless one was chosen. */
  function inputChanged() {
    var f = App.state.forward;
    if (!classChosen && f && f.prediction && f.prediction.top && f.prediction.top.length) {
      $("#gradcam-class").value = String(f.prediction.top[0].index);
    }
    App.guarded(loadGradcam)();
  }

  App.views.extra = {setup: setup, inputChanged: inputChanged, showInvariance: showInvariance,
    clearInvariance: clearInvariance};
})(ConvnetExplorer);
