/* views-explain.js: the #explain panel, "how is this value computed?".
 *
 * A click on a channel pixel calls open({layerId, channel, y, x}). We fetch the layer's input
 * and output blobs (exact float32) and its parameters, let explain.js (ConvnetExplain) redo the
 * layer's arithmetic for that one value, and show the work: the receptive field on the input,
 * the window on the layer's input, the kernel / patch / products grids and the final sum next
 * to the model's own value. Registers itself as ConvnetExplorer.views.explain.
 */
(function (App) {
  "use strict";

  var X = ConvnetExplain, el = App.el, fmt = App.fmt;
  var current = null;         // the {layerId, channel, y, x} explained now
  var pageCi = 0;             // input channel shown in the conv grids (paged)
  var openToken = 0;

  // ------------------------------------------------------------------------------------------
  // Where the clicked value sits: flat index and (c, y, x) in the layer's output
  // ------------------------------------------------------------------------------------------

  function position(layer, fl, at) {
    var L = fl.layout, shape = layer.output_shape, flat;
    if (L.mode === "channels") flat = (at.channel * L.tile_h + at.y) * L.tile_w + at.x;
    else if (L.mode === "tokens") flat = at.y * L.tile_w + at.x;
    else flat = at.y * L.tile_w + at.x;
    var total = shape.reduce(function (a, b) { return a * b; }, 1);
    if (flat >= total) return null;   // the unused end of a vector's last row
    return {flat: flat, c: L.mode === "channels" ? at.channel : 0, y: at.y, x: at.x, mode: L.mode};
  }

  /** (c, y, x) of a flat index in an (N, C, ...) input for the per-channel ops. */
  function channelPos(shape, flat) {
    if (shape.length === 4) {
      var hw = shape[2] * shape[3];
      return {c: Math.floor(flat / hw), y: Math.floor((flat % hw) / shape[3]), x: flat % shape[3]};
    }
    if (shape.length === 3) return {c: Math.floor(flat / shape[2]), y: 0, x: flat % shape[2]};
    return {c: flat, y: 0, x: 0};
  }

  function params(layer, names) {
    return Promise.all(names.map(function (n) {
      if (layer.param_names.indexOf(n) < 0) return null;
      return App.getTensor("/api/param/" + layer.id + "/" + n + ".bin");
    }));
  }

  // ------------------------------------------------------------------------------------------
  // Opening the panel
  // ------------------------------------------------------------------------------------------

  function open(at) {
    var state = App.state, layer = state.byId.get(at.layerId), fl = state.fwdLayers.get(at.layerId);
    var token = ++openToken;
    if (!current || current.layerId !== at.layerId || current.channel !== at.channel) pageCi = null;
    current = at;
    var box = App.$("#explain");
    box.dataset.layerId = at.layerId;
    box.dataset.channel = at.channel;
    box.dataset.y = at.y;
    box.dataset.x = at.x;
    App.clear(box).appendChild(el("h2", {text: "How is this value computed?"}));
    var pos = position(layer, fl, at);
    if (!pos) {
      box.appendChild(el("p", {class: "caption", text: "That cell is past the last unit of the vector."}));
      return Promise.resolve();
    }
    box.dataset.index = pos.flat;
    box.appendChild(titleLine(layer, fl, pos));
    var body = el("div", {class: "ex-body"}, el("p", {class: "caption", text: "loading…"}));
    box.appendChild(body);
    App.clearMarks();
    markPixel(layer, pos);
    var inputId = state.inputId;
    if (App.isStatic && /^shift-/.test(inputId)) {
      // an export keeps the exact tensors of its inputs, not of their shifts (they are the bulk)
      App.clear(body).appendChild(el("p", {class: "note", text: "This static export has the maps of the " +
        "shifted input but not its exact numbers: press · under the input to go back to the unshifted " +
        "image and click again (the live `convnet explore` explains every input)."}));
      return Promise.resolve();
    }
    return Promise.all([fl.output_blob ? App.getTensor(fl.output_blob) : null,
      fl.input_blob ? App.getTensor(fl.input_blob) : null]).then(function (t) {
      if (token !== openToken) return null;
      var ctx = {layer: layer, fl: fl, pos: pos, out: t[0], input: t[1], inputId: inputId, body: body,
        token: token};
      ctx.model = t[0] ? t[0].data[pos.flat] : null;
      var kind = layer.explain, fn = RENDER[kind] || renderOther;
      if (!t[1] && kind && kind !== "identity") fn = renderOther;
      return fn(ctx);
    });
  }

  function titleLine(layer, fl, pos) {
    var where = pos.mode === "channels" ? "channel " + pos.c + ", pixel (y " + pos.y + ", x " + pos.x + ")" :
      pos.mode === "tokens" ? "token " + pos.y + ", feature " + pos.x : "unit " + pos.flat;
    return el("div", null, el("div", {class: "ex-head"}, el("p", {class: "ex-title"},
      el("span", {class: "mono", text: layer.name}), " ", el("span", {class: "lkind", text: layer.kind}),
      " · " + where), moveButtons(fl)), pickers(layer, fl));
  }

  /** Keyboard route to any value: a layer menu and output-channel buttons. */
  function pickers(layer, fl) {
    var sel = el("select", {id: "explain-layer", "aria-label": "layer to explain"});
    App.state.meta.layers.forEach(function (l) {
      var f = App.state.fwdLayers.get(l.id);
      if (!f || !f.layout) return;
      sel.appendChild(el("option", {value: l.id, text: "  ".repeat(l.depth) + l.name + " (" + l.kind + ")"}));
    });
    sel.value = String(layer.id);
    sel.addEventListener("change", function () { jump(+sel.value, current.channel); });
    var row = el("div", {class: "chanpager"}, el("label", null, "layer ", sel));
    var n = fl.layout.mode === "channels" ? fl.layout.channels : 1;
    if (n > 1) {
      row.appendChild(el("button", {type: "button", id: "explain-ch-prev", "aria-label": "previous output channel",
        text: "‹ ch", onclick: function () { jump(layer.id, (current.channel - 1 + n) % n); }}));
      row.appendChild(el("button", {type: "button", id: "explain-ch-next", "aria-label": "next output channel",
        text: "ch ›", onclick: function () { jump(layer.id, (current.channel + 1) % n); }}));
    }
    return row;
  }

  /** Explain the same position (clamped) in another layer or channel. */
  function jump(layerId, channel) {
    var f = App.state.fwdLayers.get(layerId);
    if (!f || !f.layout || !current) return;
    var L = f.layout, n = L.mode === "channels" ? L.channels : 1;
    var at = {layerId: layerId, channel: Math.min(channel, n - 1), y: Math.min(current.y, L.tile_h - 1),
      x: Math.min(current.x, L.tile_w - 1)};
    var canvas = document.querySelector('#layers canvas.chan[data-layer-id="' + layerId + '"][data-channel="' +
      at.channel + '"]');
    if (canvas) canvas.scrollIntoView({block: "nearest"});   // the marks go on a visible tile
    App.guarded(open)(at);
  }

  /** Buttons (and arrow keys) that move the explained pixel: watch the window slide while the
   * kernel stays the same (weight sharing). */
  var MOVES = {left: [0, -1, "←"], right: [0, 1, "→"], up: [-1, 0, "↑"], down: [1, 0, "↓"]};
  function moveButtons(fl) {
    var box = el("span", {class: "ex-move", role: "group", "aria-label": "move the explained pixel"});
    Object.keys(MOVES).forEach(function (k) {
      box.appendChild(el("button", {type: "button", id: "explain-move-" + k, title: "explain the pixel " + k +
        " (arrow key)", text: MOVES[k][2], onclick: function () { move(k); }}));
    });
    return box;
  }

  function move(k) {
    if (!current) return;
    var fl = App.state.fwdLayers.get(current.layerId);
    if (!fl || !fl.layout) return;
    var y = current.y + MOVES[k][0], x = current.x + MOVES[k][1];
    if (y < 0 || x < 0 || y >= fl.layout.tile_h || x >= fl.layout.tile_w) return;
    var done = open({layerId: current.layerId, channel: current.channel, y: y, x: x});
    // the panel was rebuilt: keep the focus on the same button, so arrow keys keep working
    var b = document.getElementById("explain-move-" + k);
    if (b) b.focus();
    done.catch(App.showError);
  }

  document.addEventListener("keydown", function (e) {
    var t = e.target, tag = t && t.tagName;
    // only while the focus is in the panel (e.g. after a move button): elsewhere arrows scroll
    if (!current || e.altKey || e.ctrlKey || e.metaKey || !t || !t.closest || !t.closest("#explain") ||
        tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
    var k = {ArrowLeft: "left", ArrowRight: "right", ArrowUp: "up", ArrowDown: "down"}[e.key];
    if (!k) return;
    e.preventDefault();
    move(k);
  });

  function markPixel(layer, pos) {
    if (pos.mode === "channels") App.markBox(layer.id, pos.c, pos.y, pos.x, pos.y, pos.x, "pixel");
  }

  /** The result row: our computed value, the model's value, and ✓ when they agree. */
  function compare(computed, model, what) {
    var same = model !== null && Math.abs(computed - model) <= 1e-4 * Math.max(Math.abs(model), 1e-2);
    return el("div", {class: "compare"},
      el("div", null, el("div", {class: "k", text: what || "computed here (Σ w·x + b)"}),
        el("div", {id: "explain-sum", class: "v", dataset: {value: String(computed)}, text: fmt(computed)})),
      el("div", {class: "check" + (same ? "" : " bad"), title: same ? "equal to display precision" :
        "differs from the model", text: same ? "✓" : "≠"}),
      el("div", null, el("div", {class: "k", text: "the model's output (from the map)"}),
        el("div", {id: "explain-activation", class: "v", dataset: {value: model === null ? "" : String(model)},
          text: fmt(model)})));
  }

  // ------------------------------------------------------------------------------------------
  // Small pictures: the input with the receptive field, the layer input with the window
  // ------------------------------------------------------------------------------------------

  var PIC = 104;   // target size of the pictures, CSS px
  var PIC_PREV = 168;   // the layer's input with the window: the picture that matters most

  /** The model input with the receptive-field box of output unit (y, x) (null rf: no box). */
  function inputPicture(ctx, caption) {
    var fig = el("figure", null);
    var cv = el("canvas", {id: "explain-input"});
    fig.appendChild(cv);
    fig.appendChild(el("figcaption", {text: caption}));
    var rf = ctx.layer.rf;
    App.loadImage("/api/input/" + ctx.inputId + ".png").then(function (img) {
      var H = img.naturalHeight, W = img.naturalWidth;
      var box = rf && ctx.pos.mode === "channels" ? X.receptiveBox(rf, ctx.pos.y, ctx.pos.x) : null;
      // a margin so that a field passing the border (padding) stays visible
      var m = box ? Math.max(0, Math.ceil(Math.max(-box.y0, -box.x0, box.y1 - H + 1, box.x1 - W + 1))) : 0;
      m = Math.min(m, Math.ceil(Math.max(H, W) / 4));
      var s = Math.max(1, Math.floor(PIC / (Math.max(H, W) + 2 * m)));
      if ((Math.max(H, W) + 2 * m) * s < PIC / 2) s = PIC / (Math.max(H, W) + 2 * m);
      cv.width = Math.round((W + 2 * m) * s);
      cv.height = Math.round((H + 2 * m) * s);
      var g = cv.getContext("2d");
      g.imageSmoothingEnabled = false;
      hatch(g, 0, 0, cv.width, cv.height);
      g.drawImage(img, m * s, m * s, W * s, H * s);
      if (box) {
        strokeBox(g, (box.x0 + m) * s, (box.y0 + m) * s, (box.x1 - box.x0 + 1) * s,
          (box.y1 - box.y0 + 1) * s, "#22c55e");
      }
    }).catch(App.showError);
    return fig;
  }

  function hatch(g, x, y, w, h) {
    g.fillStyle = "#e5e7eb";
    g.fillRect(x, y, w, h);
    g.strokeStyle = "#cbd5e1";
    g.lineWidth = 1;
    g.beginPath();
    for (var d = -h; d < w; d += 6) { g.moveTo(x + d, y + h); g.lineTo(x + d + h, y); }
    g.save();
    g.rect(x, y, w, h);
    g.clip();
    g.stroke();
    g.restore();
  }

  function strokeBox(g, x, y, w, h, colour) {
    g.lineWidth = 2;
    g.strokeStyle = "#fff";
    g.strokeRect(x - 1, y - 1, w + 2, h + 2);
    g.strokeStyle = colour;
    g.strokeRect(x, y, w, h);
  }

  /** One channel of a (1, C, H, W) tensor as a heatmap, with `pad` hatched cells around it
   * (padding), a window box (map coordinates, inclusive) and dots on the cells read. */
  function mapPicture(id, t, c, opts) {
    var H = t.shape[2], W = t.shape[3], pad = opts.pad || [0, 0];
    var off = c * H * W, scale = 0, i;
    for (i = 0; i < H * W; i++) scale = Math.max(scale, Math.abs(t.data[off + i]));
    var tw = W + 2 * pad[1], th = H + 2 * pad[0];
    var s = Math.max(1, Math.floor((opts.size || PIC) / Math.max(tw, th)));
    var cv = el("canvas", {id: id, width: tw * s, height: th * s});
    var g = cv.getContext("2d");
    hatch(g, 0, 0, cv.width, cv.height);
    var imgData = g.createImageData(W, H);
    for (i = 0; i < H * W; i++) {
      var rgb = App.colour(t.data[off + i], scale);
      imgData.data[4 * i] = rgb[0];
      imgData.data[4 * i + 1] = rgb[1];
      imgData.data[4 * i + 2] = rgb[2];
      imgData.data[4 * i + 3] = 255;
    }
    // draw at 1:1 on a scratch canvas, then scale up with nearest neighbour
    if (scale === 0) {  // a silent channel would look like an empty picture: say so
      imgData.data.fill(255);
    }
    var scratch = el("canvas", {width: W, height: H});
    scratch.getContext("2d").putImageData(imgData, 0, 0);
    g.imageSmoothingEnabled = false;
    g.drawImage(scratch, pad[1] * s, pad[0] * s, W * s, H * s);
    if (opts.ghost) {  // the next output pixel's window, dashed: the stride made visible
      var q = opts.ghost;
      g.save();
      g.setLineDash([3, 2]);
      g.lineWidth = 1.5;
      g.strokeStyle = "#7c3aed";
      g.strokeRect((q.x0 + pad[1]) * s, (q.y0 + pad[0]) * s, (q.x1 - q.x0 + 1) * s, (q.y1 - q.y0 + 1) * s);
      g.restore();
    }
    if (opts.window) {
      var w = opts.window;
      strokeBox(g, (w.x0 + pad[1]) * s, (w.y0 + pad[0]) * s, (w.x1 - w.x0 + 1) * s, (w.y1 - w.y0 + 1) * s,
        "#22c55e");
    }
    if (scale === 0) {
      g.fillStyle = "#6b7280";
      g.font = "11px system-ui, sans-serif";
      g.fillText("all zeros", 4, cv.height - 5);
    }
    (opts.dots || []).forEach(function (d) {
      g.fillStyle = d.best ? "#16a34a" : "#111827";
      g.beginPath();
      g.arc((d.ix + pad[1] + 0.5) * s, (d.iy + pad[0] + 0.5) * s, Math.max(1.5, s / 5), 0, 2 * Math.PI);
      g.fill();
    });
    return cv;
  }

  function figure(canvas, caption) {
    return el("figure", null, canvas, el("figcaption", {text: caption}));
  }

  /** Outline the window on the previous layer's tile in the network column (clipped). */
  function markPrev(layer, ci, w, H, W) {
    if (layer.input_from === null || layer.input_from === undefined || layer.input_from < 0) return;
    App.markBox(layer.input_from, ci, Math.max(0, w.y0), Math.max(0, w.x0), Math.min(H - 1, w.y1),
      Math.min(W - 1, w.x1));
  }

  // ------------------------------------------------------------------------------------------
  // Number grids
  // ------------------------------------------------------------------------------------------

  /** A label of at most 4 characters that fits a cell (".04", "-1.3", "12", "≈0"); the cell's
   * title holds the full value. */
  function short(v) {
    if (v === null || v === undefined) return "";
    var a = Math.abs(v);
    if (a === 0) return "0";
    if (a >= 999.5) return v.toExponential(0).replace("+", "");
    if (a >= 9.95) return v.toFixed(0);
    if (a >= 0.995) return v.toFixed(1);
    if (a >= 0.005) return v.toFixed(2).replace(/^(-?)0\./, "$1.");
    return "≈0";
  }

  /** rows × cols cells; cell(r, c) -> {v, scale, cls, title, text} or null (an empty cell). */
  function grid(rows, cols, cell, caption, id) {
    var size = Math.max(14, Math.min(36, Math.floor(132 / Math.max(rows, cols))));
    var showText = size >= 24;   // below that a number does not fit: the cell's title has it
    var t = el("table", {class: "grid", id: id});
    for (var r = 0; r < rows; r++) {
      var tr = el("tr");
      for (var c = 0; c < cols; c++) {
        var d = cell(r, c) || {}, td = el("td", {class: d.cls || "", title: d.title || ""});
        td.style.width = td.style.height = td.style.minWidth = size + "px";
        td.style.maxWidth = size + "px";
        if (d.v !== undefined && d.v !== null && !/padcell/.test(d.cls || "")) {
          td.style.background = App.colourCSS(d.v, d.scale);
          td.style.color = App.inkFor(d.v, d.scale);
        }
        if (showText) td.textContent = d.text !== undefined ? d.text : short(d.v);
        td.style.fontSize = size >= 32 ? "10px" : "9px";
        tr.appendChild(td);
      }
      t.appendChild(tr);
    }
    return el("div", {class: "grid-box"}, el("div", {class: "gcap", text: caption}), t);
  }

  function maxAbs(list, key) {
    var m = 0;
    list.forEach(function (o) { var v = key ? o[key] : o; if (v !== null && isFinite(v)) m = Math.max(m, Math.abs(v)); });
    return m || 1;
  }

  // ------------------------------------------------------------------------------------------
  // Convolution
  // ------------------------------------------------------------------------------------------

  function renderConv(ctx) {
    var layer = ctx.layer, cfg = layer.config;
    return params(layer, ["weight", "bias"]).then(function (p) {
      if (ctx.token !== openToken) return;
      var r = X.conv2d(ctx.input, p[0], p[1], cfg, ctx.pos.c, ctx.pos.y, ctx.pos.x);
      var body = App.clear(ctx.body);
      var H = ctx.input.shape[2], W = ctx.input.shape[3];
      if (pageCi === null || r.inChannels.indexOf(pageCi) < 0) pageCi = strongestChannel(r);
      var kh = cfg.kernel_size[0], kw = cfg.kernel_size[1], OH = r.outShape[1], OW = r.outShape[2];

      // pictures: input + receptive field, layer input + window, output + clicked pixel
      var pics = el("div", {class: "ex-pics"});
      pics.appendChild(inputPicture(ctx, rfCaption(layer)));
      var tapsCi = r.taps.filter(function (t) { return t.ci === pageCi; });
      // the window of the neighbouring output pixel (right, or left at the last column)
      var step = ctx.pos.x + 1 < OW ? cfg.stride[1] : -cfg.stride[1];
      var ghost = {y0: r.window.y0, y1: r.window.y1, x0: r.window.x0 + step, x1: r.window.x1 + step};
      pics.appendChild(figure(mapPicture("explain-prev", ctx.input, pageCi,
        {pad: cfg.padding, window: r.window, ghost: ghost, size: PIC_PREV,
          dots: tapsCi.map(function (t) { return {iy: t.iy, ix: t.ix}; })}),
        "its input, channel " + pageCi + ": the " + kh + "×" + kw + " window (dashed: the " +
        (step > 0 ? "next" : "previous") + " pixel's, " + Math.abs(step) + " px away = the stride)" +
        (cfg.dilation[0] > 1 ? " (dilation " + cfg.dilation[0] + ": dots = the taps read)" : "") +
        (cfg.padding[0] || cfg.padding[1] ? "; hatched = padding" : "")));
      pics.appendChild(figure(mapPicture("explain-out", ctx.out, ctx.pos.c,
        {window: {y0: ctx.pos.y, x0: ctx.pos.x, y1: ctx.pos.y, x1: ctx.pos.x}}),
        "output channel " + ctx.pos.c + " (" + OH + "×" + OW + "): the clicked pixel"));
      body.appendChild(pics);
      markPrev(layer, pageCi, r.window, H, W);


      if (layer.input_from === null) {
        body.appendChild(el("p", {class: "caption", text: "This layer's input was made by an operation that " +
          "is not a module (a concatenation, an addition, a reshape…): its " + ctx.input.shape[1] +
          " channels are paged below like any other."}));
      }
      // the input-channel pager with each channel's partial sum
      if (r.inChannels.length > 1) body.appendChild(channelPager(r, ctx));

      // kernel ⊙ patch = products, for input channel pageCi
      body.appendChild(el("h3", {text: "input channel " + pageCi + ": kernel ⊙ patch = products"}));
      body.appendChild(convGrids(r, tapsCi, cfg, p[0]));

      var eq = el("div", {class: "equation"});
      if (r.inChannels.length > 1) {
        var part = r.perChannel.filter(function (q) { return q.ci === pageCi; })[0];
        eq.appendChild(el("div", {text: "Σ over channel " + pageCi + " (" + kh * kw + " products) = " +
          fmt(part.sum)}));
      }
      eq.appendChild(el("div", {text: "Σ w·x over " + r.taps.length + " products (" + r.inChannels.length +
        " input channel" + (r.inChannels.length > 1 ? "s" : "") + " × " + kh * kw + ") = " + fmt(r.sum)}));
      eq.appendChild(el("div", {text: (r.hasBias ? "+ bias " + fmt(r.bias) : "no bias") + " = " + fmt(r.value)}));
      body.appendChild(eq);
      body.appendChild(compare(r.value, ctx.model, "computed here: Σ w·x + b"));
      body.appendChild(el("div", {class: "note"},
        el("b", {text: "Weight sharing: "}),
        "the same " + kh + "×" + kw + (r.inChannels.length > 1 ? "×" + r.inChannels.length : "") +
        " kernel (" + kh * kw * r.inChannels.length + " weights" + (r.hasBias ? " + 1 bias" : "") +
        ") computes all " + OH + "×" + OW + " = " + OH * OW + " positions of channel " + ctx.pos.c +
        "; only the window moves, by the stride (" + cfg.stride[0] + ")." +
        " Local connectivity: this value depends only on the window, nothing else."));
      body.appendChild(geometryNotes(cfg, layer));
    });
  }

  /** The input channel with the largest |partial sum|: where the interesting products are. */
  function strongestChannel(r) {
    var best = r.perChannel[0];
    r.perChannel.forEach(function (q) { if (Math.abs(q.sum) > Math.abs(best.sum)) best = q; });
    return best.ci;
  }

  function channelPager(r, ctx) {
    var i = r.inChannels.indexOf(pageCi);
    var go = function (ci) { return function () { pageCi = ci; rerender(); }; };
    var pager = el("div", {class: "chanpager"},
      el("button", {type: "button", id: "explain-ci-prev", text: "‹", "aria-label": "previous input channel",
        onclick: go(r.inChannels[(i - 1 + r.inChannels.length) % r.inChannels.length])}),
      el("span", {text: "input channel " + pageCi + " (" + (i + 1) + " of " + r.inChannels.length + ")"}),
      el("button", {type: "button", id: "explain-ci-next", text: "›", "aria-label": "next input channel",
        onclick: go(r.inChannels[(i + 1) % r.inChannels.length])}));
    var parts = el("div", {class: "partials", title: "partial sum of each input channel; click one"});
    var scale = maxAbs(r.perChannel, "sum");
    r.perChannel.slice(0, 256).forEach(function (q) {
      var b = el("button", {type: "button", class: q.ci === pageCi ? "on" : "",
        title: "input channel " + q.ci + ": Σ = " + q.sum, text: q.ci + ": " + short(q.sum), onclick: go(q.ci)});
      if (q.ci !== pageCi) {  // the chosen one keeps the "on" style
        b.style.background = App.colourCSS(q.sum, scale);
        b.style.color = App.inkFor(q.sum, scale);
      }
      parts.appendChild(b);
    });
    return el("div", null, el("h3", {text: "one partial sum per input channel (" + r.inChannels.length +
      (r.inChannels.length < ctx.input.shape[1] ? " of " + ctx.input.shape[1] + ": grouped conv" : "") + ")"}),
      pager, parts);
  }

  function rerender() { if (current) App.guarded(open)(current); }

  /** Kernel, patch (dilation gaps and padding visible) and products of one input channel. */
  function convGrids(r, taps, cfg, weight) {
    var kh = cfg.kernel_size[0], kw = cfg.kernel_size[1], dh = cfg.dilation[0], dw = cfg.dilation[1];
    var ws = maxAbs(taps, "w"), xs = maxAbs(taps, "x"), ps = maxAbs(taps, "product");
    var byK = function (ky, kx) { return taps[ky * kw + kx]; };
    var kernel = grid(kh, kw, function (ky, kx) {
      var t = byK(ky, kx);
      return {v: t.w, scale: ws, title: "w[" + ky + "," + kx + "] = " + t.w};
    }, "kernel w (" + kh + "×" + kw + ")", "explain-kernel");
    // the patch spans the dilated window: gap cells are not read
    var ph = (kh - 1) * dh + 1, pw = (kw - 1) * dw + 1;
    var patch = grid(ph, pw, function (r2, c2) {
      if (r2 % dh || c2 % dw) return {cls: "gap", title: "skipped by dilation", text: "·"};
      var t = byK(r2 / dh, c2 / dw);
      if (t.inPadding) {
        return {cls: "padcell", v: t.x, scale: xs, text: short(t.x),
          title: "padding at (" + t.iy + ", " + t.ix + ")" + (t.srcY !== null ? ": copies (" + t.srcY + ", " +
            t.srcX + ")" : ": zero") + " = " + t.x};
      }
      return {v: t.x, scale: xs, title: "x[" + t.iy + "," + t.ix + "] = " + t.x};
    }, "input patch x" + (dh > 1 || dw > 1 ? " (dilated " + ph + "×" + pw + ")" : ""), "explain-patch");
    var products = grid(kh, kw, function (ky, kx) {
      var t = byK(ky, kx);
      return {v: t.product, scale: ps, title: t.w + " × " + t.x + " = " + t.product};
    }, "products w·x", "explain-products");
    return el("div", {class: "grids"}, kernel, el("span", {class: "op", text: "⊙"}), patch,
      el("span", {class: "op", text: "="}), products);
  }

  function rfCaption(layer) {
    if (!layer.rf) return "the input (this unit sees all of it)";
    return "the input: this pixel's receptive field, " + layer.rf.size[0] + "×" + layer.rf.size[1] + " px";
  }

  /** Stride / padding / dilation / receptive field, said in words, only when they matter. */
  function geometryNotes(cfg, layer) {
    var lines = [];
    if (cfg.stride[0] > 1 || cfg.stride[1] > 1) {
      lines.push("Stride " + cfg.stride.join("×") + ": neighbouring output pixels read windows " +
        cfg.stride[0] + " pixels apart, so the map shrinks by " + cfg.stride[0] + ".");
    }
    if (cfg.padding[0] || cfg.padding[1]) {
      lines.push("Padding " + cfg.padding.join("×") + ": the hatched border lies outside the input; it reads " +
        (cfg.padding_mode === "zeros" ? "0" : cfg.padding_mode + " copies of the edge pixels") +
        ", so the border pixels get a full window.");
    }
    if (cfg.dilation[0] > 1 || cfg.dilation[1] > 1) {
      lines.push("Dilation " + cfg.dilation.join("×") + ": the kernel taps are " + cfg.dilation[0] +
        " pixels apart, a " + cfg.kernel_size[0] + "×" + cfg.kernel_size[1] + " kernel covers " +
        ((cfg.kernel_size[0] - 1) * cfg.dilation[0] + 1) + "×" + ((cfg.kernel_size[1] - 1) * cfg.dilation[1] + 1) +
        " pixels with no extra weights.");
    }
    if (cfg.groups > 1) lines.push("Groups " + cfg.groups + ": each output channel reads only its group's input channels.");
    if (layer.rf) {
      lines.push("Receptive field " + layer.rf.size.join("×") + " on the input (grows with every layer: +(k−1)·jump," +
        " jump = product of the strides so far = " + layer.rf.jump[0] + ").");
    }
    var box = el("div", {class: "caption"});
    lines.forEach(function (l) { box.appendChild(el("div", {text: "• " + l})); });
    return box;
  }

  // ------------------------------------------------------------------------------------------
  // Pooling
  // ------------------------------------------------------------------------------------------

  function renderPool(ctx) {
    var layer = ctx.layer, cfg = layer.config, pos = ctx.pos;
    if (cfg.flat) pos = {c: pos.flat, y: 0, x: 0, flat: pos.flat, mode: pos.mode};  // (C,) output: unit = channel
    var r = layer.explain === "pool" ? X.pool2d(ctx.input, cfg, pos.c, pos.y, pos.x) :
      X.adaptivePool2d(ctx.input, cfg, pos.c, pos.y, pos.x);
    var body = App.clear(ctx.body), H = ctx.input.shape[2], W = ctx.input.shape[3];
    var pad = layer.explain === "pool" ? [].concat(cfg.padding).concat(cfg.padding).slice(0, 2) : [0, 0];
    var pics = el("div", {class: "ex-pics"});
    pics.appendChild(inputPicture(ctx, rfCaption(layer)));
    pics.appendChild(figure(mapPicture("explain-prev", ctx.input, pos.c, {pad: pad, window: r.window, size: PIC_PREV,
      dots: r.argmax ? [{iy: r.argmax.iy, ix: r.argmax.ix, best: true}] : []}),
      "before: input channel " + pos.c + " with the window" + (r.argmax ? " (dot: the max)" : "")));
    if (ctx.out.shape.length === 4) {
      pics.appendChild(figure(mapPicture("explain-out", ctx.out, pos.c,
        {window: {y0: pos.y, x0: pos.x, y1: pos.y, x1: pos.x}}), "after: output channel " + pos.c));
    }
    body.appendChild(pics);
    markPrev(layer, pos.c, r.window, H, W);
    var rows = r.window.y1 - r.window.y0 + 1, cols = r.window.x1 - r.window.x0 + 1;
    var byPos = {};
    r.taps.forEach(function (t) { byPos[t.iy + "," + t.ix] = t; });
    var xs = maxAbs(r.taps.filter(function (t) { return t.x !== null; }), "x");
    body.appendChild(el("div", {class: "grids"}, grid(rows, cols, function (a, b) {
      var t = byPos[(r.window.y0 + a) + "," + (r.window.x0 + b)];
      if (!t) return {cls: "gap", text: "·", title: "skipped by dilation"};
      if (t.inPadding) return {cls: "padcell", text: t.x === null ? "" : short(t.x), title: "padding"};
      var best = r.argmax && r.argmax.iy === t.iy && r.argmax.ix === t.ix;
      return {v: t.x, scale: xs, cls: best ? "best" : "", title: "x[" + t.iy + "," + t.ix + "] = " + t.x};
    }, "the " + rows + "×" + cols + " window", "explain-window")));
    var eq = el("div", {class: "equation"});
    if (r.kind === "max") {
      eq.appendChild(el("div", {text: "max of the " + r.count + " values in the window = " + fmt(r.value) +
        " (outlined, at y " + r.argmax.iy + ", x " + r.argmax.ix + ")"}));
    } else {
      eq.appendChild(el("div", {text: "sum " + fmt(r.sum) + " / " + r.divisor + " = " + fmt(r.value) +
        " (the mean" + (r.divisor !== r.count ? "; padding counts in the divisor" : "") + ")"}));
    }
    body.appendChild(eq);
    body.appendChild(compare(r.value, ctx.model, "computed here: " + r.kind + " of the window"));
    body.appendChild(el("div", {class: "note"}, el("b", {text: "Why pool? "}),
      r.kind === "max" ? "Moving the input by a pixel often keeps the same maximum inside the window, " +
        "so the pooled map changes less than the map before it (a little translation invariance), " +
        (ctx.out.shape.length === 4 ? "and it is " + App.fmt(ctx.input.shape[2] / ctx.out.shape[2], 3) +
          "× smaller per side. " : "") + "Try the shift buttons." :
        "Averaging smooths the map and makes it smaller; a one-pixel shift changes the mean only a little."));
  }

  // ------------------------------------------------------------------------------------------
  // Element-wise layers: activation, normalization, identity
  // ------------------------------------------------------------------------------------------

  /** before/after pictures of one channel (channel layouts only). */
  function beforeAfter(ctx, what) {
    var pics = el("div", {class: "ex-pics"}), pos = ctx.pos;
    if (pos.mode === "channels" && ctx.input.shape.length === 4) {
      var one = {y0: pos.y, x0: pos.x, y1: pos.y, x1: pos.x};
      pics.appendChild(figure(mapPicture("explain-prev", ctx.input, pos.c, {window: one}),
        "before" + (what ? " " + what : "") + ": channel " + pos.c));
      pics.appendChild(figure(mapPicture("explain-out", ctx.out, pos.c, {window: one}), "after: channel " + pos.c));
      markPrev(ctx.layer, pos.c, one, ctx.input.shape[2], ctx.input.shape[3]);
    } else {
      pics.appendChild(inputPicture(ctx, rfCaption(ctx.layer)));
    }
    return pics;
  }

  function renderActivation(ctx) {
    var v = ctx.input.data[ctx.pos.flat], r = X.activation(ctx.layer.config, v);
    var body = App.clear(ctx.body);
    body.appendChild(beforeAfter(ctx));
    body.appendChild(el("div", {class: "equation"}, el("div", {class: "mono", text: r.formula}),
      el("div", {text: "before: x = " + fmt(v)}), el("div", {text: "after: " + r.text})));
    body.appendChild(compare(r.value, ctx.model, "computed here: " + r.name + "(x)"));
    addSource(ctx, v, "its input x", body);
    body.appendChild(el("p", {class: "caption", text: "An activation acts on each number alone: " +
      "same position, same channel, no window, no weights." +
      (r.name === "relu" ? " ReLU keeps positives and turns every negative (blue) into 0 (white)." : "")}));
  }

  /** Append where a functional-op input came from (input_from null: e.g. a residual add). */
  function addSource(ctx, v, name, body) {
    var layer = ctx.layer;
    if (layer.input_from !== null || layer.parent_id === null || layer.parent_id === undefined) return;
    decompose(layer.parent_id, layer.id, ctx.pos.flat, v, ctx.input.data.length).then(function (terms) {
      if (ctx.token !== openToken) return;
      var line = sourceLine(terms, v, name);
      if (line) body.insertBefore(line, body.querySelector(".compare").nextSibling);
    }).catch(App.showError);
  }

  function renderBatchnorm(ctx) {
    var layer = ctx.layer, cp = channelPos(ctx.input.shape.slice(1).length === 3 ?
      [1].concat(ctx.input.shape.slice(1)) : ctx.input.shape, ctx.pos.flat);
    return params(layer, ["running_mean", "running_var", "weight", "bias"]).then(function (p) {
      if (ctx.token !== openToken) return;
      var r = X.batchnorm(ctx.input, p[0], p[1], p[2], p[3], layer.config, cp.c, cp.y, cp.x);
      var body = App.clear(ctx.body);
      body.appendChild(beforeAfter(ctx));
      body.appendChild(el("div", {class: "equation"},
        el("div", {class: "mono", text: "y = (x − μ) / √(σ² + ε) · γ + β"}),
        el("div", {text: "x = " + fmt(r.x) + "; " + (r.batchStats ? "batch" : "running (learned during training)") +
          " statistics of channel " + cp.c + ": μ = " + fmt(r.mean) + ", σ² = " + fmt(r.var) + ", ε = " + r.eps}),
        el("div", {text: "(x − μ) / √(σ² + ε) = (" + fmt(r.x) + " − " + fmt(r.mean) + ") / " + fmt(r.std) +
          " = " + fmt(r.normalized)}),
        el("div", {text: "· γ " + fmt(r.gamma) + " + β " + fmt(r.beta) + " = " + fmt(r.value)})));
      body.appendChild(compare(r.value, ctx.model, "computed here: batch norm"));
      body.appendChild(el("p", {class: "caption", text: "In evaluation mode BatchNorm uses the mean and variance " +
        "it averaged over the training set, the same for every image: one scale and shift per channel."}));
    });
  }

  function renderLayernorm(ctx) {
    var layer = ctx.layer;
    return params(layer, ["weight", "bias"]).then(function (p) {
      if (ctx.token !== openToken) return;
      var r = X.layernorm(ctx.input, p[0], p[1], layer.config, ctx.pos.flat);
      var body = App.clear(ctx.body);
      body.appendChild(beforeAfter(ctx));
      body.appendChild(el("div", {class: "equation"},
        el("div", {class: "mono", text: "y = (x − mean) / √(var + ε) · γ_j + β_j"}),
        el("div", {text: "x = " + fmt(r.x) + "; this " + (ctx.pos.mode === "tokens" ? "token's " : "") +
          r.count + " values: mean = " + fmt(r.mean) + ", var = " + fmt(r.var) + ", ε = " + r.eps}),
        el("div", {text: "normalized = " + fmt(r.normalized) + "; · γ " + fmt(r.gamma) + " + β " + fmt(r.beta) +
          " = " + fmt(r.value)})));
      body.appendChild(compare(r.value, ctx.model, "computed here: layer norm"));
      addSource(ctx, r.x, "its input x", body);
      body.appendChild(el("p", {class: "caption", text: "LayerNorm computes its statistics from this one " +
        (ctx.pos.mode === "tokens" ? "token" : "sample") + " (no running averages), then applies a learned scale and shift."}));
    });
  }

  function renderGroupnorm(ctx) {
    var layer = ctx.layer, cp = channelPos(ctx.input.shape, ctx.pos.flat);
    return params(layer, ["weight", "bias"]).then(function (p) {
      if (ctx.token !== openToken) return;
      var r = X.groupnorm(ctx.input, p[0], p[1], layer.config, cp.c, cp.y, cp.x);
      var body = App.clear(ctx.body);
      body.appendChild(beforeAfter(ctx));
      body.appendChild(el("div", {class: "equation"},
        el("div", {class: "mono", text: "y = (x − mean_g) / √(var_g + ε) · γ_c + β_c"}),
        el("div", {text: "group " + r.group + " = channels " + r.channels[0] + "–" + r.channels[1] + " (" + r.count +
          " values): mean = " + fmt(r.mean) + ", var = " + fmt(r.var)}),
        el("div", {text: "x = " + fmt(r.x) + " → " + fmt(r.normalized) + " · γ " + fmt(r.gamma) + " + β " +
          fmt(r.beta) + " = " + fmt(r.value)})));
      body.appendChild(compare(r.value, ctx.model, "computed here: group norm"));
    });
  }

  function renderIdentity(ctx) {
    var body = App.clear(ctx.body);
    var v = ctx.input ? ctx.input.data[ctx.pos.flat] : ctx.model;
    body.appendChild(beforeAfter(ctx));
    var where = ctx.input && ctx.input.shape.length === 4 ? (function () {
      var cp = channelPos(ctx.input.shape, ctx.pos.flat);
      return " = input (channel " + cp.c + ", y " + cp.y + ", x " + cp.x + ")";
    })() : "";
    body.appendChild(el("div", {class: "equation"}, el("div", {text: "output[" + ctx.pos.flat + "]" + where +
      " = " + fmt(v)})));
    body.appendChild(compare(v, ctx.model, "computed here: copied input"));
    body.appendChild(el("p", {class: "caption", text: ctx.layer.kind === "Flatten" ?
      "Flatten changes no number: it reads the (C, H, W) values in order (channel, then row, then column) " +
      "as one long vector." : ctx.layer.kind + " passes its input through unchanged in evaluation mode."}));
  }

  // ------------------------------------------------------------------------------------------
  // Linear
  // ------------------------------------------------------------------------------------------

  function renderLinear(ctx) {
    var layer = ctx.layer;
    return params(layer, ["weight", "bias"]).then(function (p) {
      if (ctx.token !== openToken) return;
      var r = X.linear(ctx.input, p[0], p[1], ctx.pos.flat);
      var body = App.clear(ctx.body);
      body.appendChild(inputPicture(ctx, rfCaption(layer)));
      var names = App.state.meta.class_names || [];
      var isLogit = App.state.forward && ctx.fl.output_blob === App.state.forward.output_blob;
      body.appendChild(el("p", {class: "caption", text: "Output unit " + r.out + (r.token !== null ? " of token " +
        r.token : "") + (isLogit && names[r.out] !== undefined ? " (the logit of class " + names[r.out] + ")" : "") +
        ": one weight per input feature (" + r.taps.length + "), no window: every input counts."}));
      // the terms that matter most: largest |w·x|
      var sorted = r.taps.slice().sort(function (a, b) { return Math.abs(b.product) - Math.abs(a.product); });
      var top = sorted.slice(0, 12), rest = 0;
      sorted.slice(12).forEach(function (t) { rest += t.product; });
      var ps = maxAbs(top, "product");
      var t = el("table", {class: "terms", id: "explain-terms"}, el("tr", null, el("th", {text: "i"}),
        el("th", {text: "w"}), el("th", {text: "x"}), el("th", {text: "w·x"})));
      top.forEach(function (q) {
        var cell = el("td", {text: fmt(q.product)});
        cell.style.background = App.colourCSS(q.product, ps);
        cell.style.color = App.inkFor(q.product, ps);
        t.appendChild(el("tr", null, el("td", {text: q.i}), el("td", {text: fmt(q.w)}), el("td", {text: fmt(q.x)}), cell));
      });
      if (sorted.length > 12) {
        t.appendChild(el("tr", null, el("td", {text: "…"}), el("td", {colspan: 2, text: (sorted.length - 12) +
          " other terms"}), el("td", {text: fmt(rest)})));
      }
      body.appendChild(el("h3", {text: sorted.length > 12 ? "the 12 largest terms w·x" : "the terms w·x"}));
      body.appendChild(t);
      body.appendChild(el("div", {class: "equation"}, el("div", {text: "Σ w·x over " + r.taps.length + " inputs = " +
        fmt(r.sum)}), el("div", {text: (r.hasBias ? "+ bias " + fmt(r.bias) : "no bias") + " = " + fmt(r.value)})));
      body.appendChild(compare(r.value, ctx.model, "computed here: Σ w·x + b"));
    });
  }

  // ------------------------------------------------------------------------------------------
  // Containers and layers without an explanation
  // ------------------------------------------------------------------------------------------

  function renderOther(ctx) {
    var body = App.clear(ctx.body), layer = ctx.layer;
    if (ctx.pos.mode === "channels") body.appendChild(el("div", {class: "ex-pics"}, inputPicture(ctx, rfCaption(layer))));
    var text = !layer.leaf ? layer.name + " is a container: its output is computed by the layers inside it " +
      "(listed above its output in the column; click those to see each step)." +
      (/Block|Bottleneck/.test(layer.kind) ? " In a residual block the last step adds the block's input " +
        "(the shortcut) to the main path." : "") :
      layer.kind + " has no step-by-step view yet; here is its value.";
    body.appendChild(el("p", {class: "caption", text: text}));
    var box = el("div", {class: "compare"},
      el("div", null, el("div", {class: "k", text: "computed here"}),
        el("div", {id: "explain-sum", class: "v", dataset: {value: ""}, text: "–"})),
      el("div", null, el("div", {class: "k", text: "the model's output"}),
        el("div", {id: "explain-activation", class: "v", dataset: {value: ctx.model === null ? "" : String(ctx.model)},
          text: fmt(ctx.model)})));
    body.appendChild(box);
    if (!layer.leaf && ctx.model !== null && ctx.out) {
      return decompose(layer.id, Infinity, ctx.pos.flat, ctx.model, ctx.out.data.length).then(function (terms) {
        if (ctx.token !== openToken) return;
        var line = sourceLine(terms, ctx.model, "this output");
        if (!line) return;
        body.appendChild(line);
        // the container's value, rebuilt from its parts
        var sum = terms.reduce(function (a, t) { return a + t.v; }, 0), node = App.$("#explain-sum");
        node.dataset.value = String(sum);
        node.textContent = fmt(sum);
      });
    }
    return null;
  }

  // ------------------------------------------------------------------------------------------
  // Values made by no module (a residual add): which earlier outputs of the same block sum to it
  // ------------------------------------------------------------------------------------------

  /** Candidate tensors inside container `parentId` made before layer `beforeId`: each child's
   * output, the input of a child fed by a functional op, and the container's own input. */
  function candidates(parentId, beforeId, numel) {
    var st = App.state, out = [];
    var parent = st.byId.get(parentId), pf = st.fwdLayers.get(parentId);
    if (!parent || !pf) return out;
    if (pf.input_blob) out.push({blob: pf.input_blob, label: "the input of " + parent.name + " (the shortcut)"});
    App.state.meta.layers.forEach(function (l) {
      if (l.parent_id !== parentId || l.id >= beforeId) return;
      var f = st.fwdLayers.get(l.id);
      if (!f) return;
      if (f.output_blob) out.push({blob: f.output_blob, label: "the output of " + l.name});
      if (l.input_from === null && f.input_blob) out.push({blob: f.input_blob, label: "the input of " + l.name});
    });
    return out;
  }

  /** -> Promise of [a, b] (each {label, v}) with a.v + b.v = value at `flat`, or one equal
   * term [a], or null. Values are float32 sums: compared with a relative tolerance. */
  function decompose(parentId, beforeId, flat, value, numel) {
    var cands = candidates(parentId, beforeId, numel);
    return Promise.all(cands.map(function (c) {
      return App.getTensor(c.blob).then(function (t) {
        return t.data.length === numel ? {label: c.label, v: t.data[flat]} : null;
      }, function () { return null; });
    })).then(function (vals) {
      vals = vals.filter(function (v) { return v !== null; });
      var tol = 1e-5 * Math.max(1, Math.abs(value));
      // a later candidate first: the most recent step is the most telling
      for (var i = vals.length - 1; i >= 0; i--) if (Math.abs(vals[i].v - value) <= tol && vals[i].v !== 0) return [vals[i]];
      for (i = 0; i < vals.length; i++) {
        for (var j = i + 1; j < vals.length; j++) {
          if (vals[i].label === vals[j].label) continue;
          if (Math.abs(vals[i].v + vals[j].v - value) <= tol) return [vals[j], vals[i]];
        }
      }
      return null;
    });
  }

  /** A line saying where a value came from, or nothing when no decomposition is found. */
  function sourceLine(terms, value, name) {
    if (!terms) return null;
    if (terms.length === 1) {
      return el("div", {class: "note"}, el("b", {text: "Where it comes from: "}), name + " = " + fmt(value) +
        " is " + terms[0].label + ".");
    }
    return el("div", {class: "note", id: "explain-add"}, el("b", {text: "A residual connection: "}),
      name + " = " + fmt(terms[0].v) + " (" + terms[0].label + ") + " + fmt(terms[1].v) + " (" + terms[1].label +
      ") = " + fmt(value) + ". The block adds a copy of earlier values to what its layers computed, so " +
      "information (and gradients) can skip the layers.");
  }

  var RENDER = {
    conv: renderConv, pool: renderPool, adaptive_pool: renderPool, activation: renderActivation,
    batchnorm: renderBatchnorm, layernorm: renderLayernorm, groupnorm: renderGroupnorm,
    identity: renderIdentity, linear: renderLinear
  };

  /** A new input: explain the same position again, so the change is visible. */
  function inputChanged() {
    if (current && App.state.fwdLayers.has(current.layerId)) rerender();
  }

  App.views.explain = {open: open, inputChanged: inputChanged};
})(ConvnetExplorer);
