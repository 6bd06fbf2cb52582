/* explain.js: how ONE output value of a layer was computed, from the layer's real input tensor,
 * its parameters and its config (the `config` dicts of GET /api/meta).
 *
 * A classic script (no ES module: those do not load from file://), no DOM, nothing external. It
 * defines one global, `ConvnetExplain`, of pure functions returning plain objects for the UI.
 *
 * Tensors are `{shape: [...], data: Float32Array | Array}` in C order with the batch dim first;
 * only batch element n = 0 is explained. Parameters (weight, bias, running stats) are tensors of
 * the same form, or null when the layer has none. Every sum is done in float64 (JS numbers), so a
 * value differs from the model's float32 output only by float32 rounding (~1e-6 relative).
 */
var ConvnetExplain = (function () {
  "use strict";

  // ------------------------------------------------------------------------------------------
  // small helpers
  // ------------------------------------------------------------------------------------------

  function fail(op, msg) {
    throw new Error("ConvnetExplain." + op + ": " + msg);
  }

  /** [a, b] from a number or a 1/2-element list (torch's `_pair`). */
  function pair(v, dflt) {
    if (v === undefined || v === null) v = dflt;
    if (typeof v === "number") return [v, v];
    if (v.length === 1) return [v[0], v[0]];
    return [v[0], v[1]];
  }

  function shapeStr(shape) {
    return "(" + shape.join(", ") + ")";
  }

  /** The data array of a tensor, a plain list, or null. */
  function dataOf(t) {
    if (t === undefined || t === null) return null;
    if (t.data !== undefined) return t.data;
    return t;
  }

  function prod(list) {
    var p = 1;
    for (var i = 0; i < list.length; i++) p *= list[i];
    return p;
  }

  function checkInput(op, input, ranks) {
    if (!input || !input.shape || !input.data) fail(op, "input must be {shape, data}");
    if (ranks.indexOf(input.shape.length) < 0) {
      fail(op, "expected an input of rank " + ranks.join(" or ") + ", got shape " +
        shapeStr(input.shape));
    }
    if (input.data.length < prod(input.shape)) {
      fail(op, "input data has " + input.data.length + " values, shape " + shapeStr(input.shape) +
        " needs " + prod(input.shape));
    }
  }

  function checkIndex(op, name, v, size) {
    if (!(v >= 0 && v < size && Math.floor(v) === v)) {
      fail(op, name + "=" + v + " is outside [0, " + size + ")");
    }
  }

  /** Where padded coordinate i (may be < 0 or >= n) reads from in an input of size n, for
   * torch's padding modes; null for "zeros" outside the input (the value is 0). */
  function sourceIndex(mode, i, n) {
    if (i >= 0 && i < n) return i;
    switch (mode) {
      case "zeros":
        return null;
      case "reflect": // mirror without repeating the edge: -1 -> 1, n -> n-2
        var period = 2 * (n - 1);
        if (period === 0) return 0;
        var r = ((i % period) + period) % period;
        return r < n ? r : period - r;
      case "replicate": // clamp to the edge
        return i < 0 ? 0 : n - 1;
      case "circular": // wrap around
        return ((i % n) + n) % n;
      default:
        fail("conv2d", "unknown padding_mode " + JSON.stringify(mode) +
          " (zeros, reflect, replicate or circular)");
    }
  }

  /** Output size of a conv along one axis: floor((n + 2p - d(k-1) - 1) / s) + 1 (pEnd: the
   * padding after the input when it differs from p, as 'same' with an even kernel makes it). */
  function convOutputSize(n, k, s, p, d, pEnd) {
    if (pEnd === undefined) pEnd = p;
    return Math.floor((n + p + pEnd - d * (k - 1) - 1) / s) + 1;
  }

  /** A conv's padding as [[top, bottom], [left, right]] from a number, [ph, pw],
   * [[top, bottom], [left, right]], "valid" or "same" (torch: total d(k-1), before = total // 2,
   * the odd extra one after). */
  function convPadding(padding, k, d) {
    if (padding === "valid") return [[0, 0], [0, 0]];
    if (padding === "same") {
      return [0, 1].map(function (a) {
        var total = d[a] * (k[a] - 1), before = Math.floor(total / 2);
        return [before, total - before];
      });
    }
    return [0, 1].map(function (a) {
      var v = pair(padding, 0)[a];
      return typeof v === "number" ? [v, v] : [v[0], v[1]];
    });
  }

  /** Output size of a pooling along one axis (torch): like a conv, rounded up with ceil_mode,
   * but a last window that would start in the right padding (or past it) is dropped. */
  function poolOutputSize(n, k, s, p, d, ceil) {
    var span = n + 2 * p - d * (k - 1) - 1;
    var out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
    if (ceil && (out - 1) * s >= n + p) out -= 1;
    return out;
  }

  // ------------------------------------------------------------------------------------------
  // convolution
  // ------------------------------------------------------------------------------------------

  /**
   * conv2d(input (N,C,H,W), weight (O, C/groups, kh, kw), bias (O,)|null, cfg, c, y, x)
   *
   *   out[c, y, x] = b[c] + sum_{ci, ky, kx} w[c, ci - g0, ky, kx] * in[ci, iy, ix]
   *   iy = y*sh - ph + ky*dh,   ix = x*sw - pw + kx*dw
   *
   * ci runs over the C/groups input channels of c's group: g = floor(c / (O/groups)),
   * g0 = g*C/groups, ci = g0 .. g0 + C/groups - 1.
   * A tap (iy, ix) outside the input reads the padding: 0 for "zeros", otherwise the value at
   * (srcY, srcX) given by reflect / replicate / circular (torch pads first, then convolves).
   * cfg.padding: a number, [ph, pw], [[top, bottom], [left, right]], "valid" or "same" (torch's
   * split: an even kernel pads one more after than before); ph, pw above are the before parts.
   * Optional cfg.padding_after: [bottom, right] when they differ from [ph, pw]. Without it, a
   * [ph, pw] equal to the before part of 'same' (stride 1, odd d(k-1)) also accepts the one
   * extra output row/column 'same' has (outShape still follows the symmetric formula).
   * Returns {inChannels, taps: [{ci, ky, kx, iy, ix, inPadding, srcY, srcX, x, w, product}],
   *          perChannel: [{ci, sum}], sum, bias, hasBias, value, window: {y0, x0, y1, x1},
   *          outShape: [O, OH, OW]}
   * (window: the dilated kernel's extent in input coordinates, inclusive, may pass the edges).
   */
  function conv2d(input, weight, bias, cfg, c, y, x) {
    var op = "conv2d";
    checkInput(op, input, [4]);
    cfg = cfg || {};
    var C = input.shape[1], H = input.shape[2], W = input.shape[3];
    if (!weight || !weight.shape) fail(op, "the weight tensor {shape, data} is missing");
    var ws = weight.shape, wd = dataOf(weight);
    if (ws.length !== 4) fail(op, "weight must be (out, in/groups, kh, kw), got " + shapeStr(ws));
    var O = ws[0], Cg = ws[1], kh = ws[2], kw = ws[3];
    var k = pair(cfg.kernel_size, [kh, kw]);
    if (k[0] !== kh || k[1] !== kw) {
      fail(op, "config kernel_size " + shapeStr(k) + " does not match weight " + shapeStr(ws));
    }
    var s = pair(cfg.stride, 1), d = pair(cfg.dilation, 1);
    var pads = convPadding(cfg.padding, k, d), p = [pads[0][0], pads[1][0]];
    if (cfg.padding_after !== undefined && cfg.padding_after !== null) {
      var after = pair(cfg.padding_after);
      pads[0][1] = after[0];
      pads[1][1] = after[1];
    }
    var groups = cfg.groups || 1, mode = cfg.padding_mode || "zeros";
    if (C !== Cg * groups) {
      fail(op, "input has " + C + " channels but weight " + shapeStr(ws) + " with groups=" +
        groups + " expects " + Cg * groups);
    }
    if (O % groups !== 0) fail(op, "out channels " + O + " not divisible by groups=" + groups);
    var OH = convOutputSize(H, kh, s[0], p[0], d[0], pads[0][1]);
    var OW = convOutputSize(W, kw, s[1], p[1], d[1], pads[1][1]);
    // 'same' with an even dilated extent d(k-1) pads one more after than before; a config that
    // gives only the before part as [ph, pw] makes the formula one row/column short: accept it
    var sameLike = function (a) {
      var total = d[a] * (k[a] - 1);
      return typeof cfg.padding !== "string" && !cfg.padding_after && s[a] === 1 &&
        total % 2 === 1 && pads[a][0] === Math.floor(total / 2) && pads[a][1] === pads[a][0];
    };
    checkIndex(op, "c", c, O);
    checkIndex(op, "y", y, OH + (sameLike(0) ? 1 : 0));
    checkIndex(op, "x", x, OW + (sameLike(1) ? 1 : 0));
    var bd = dataOf(bias);
    var g = Math.floor(c / (O / groups)), c0 = g * Cg;
    var y0 = y * s[0] - p[0], x0 = x * s[1] - p[1];
    var inChannels = [], taps = [], perChannel = [], total = 0;
    for (var j = 0; j < Cg; j++) {
      var ci = c0 + j, chanSum = 0;
      inChannels.push(ci);
      for (var ky = 0; ky < kh; ky++) {
        var iy = y0 + ky * d[0];
        var sy = sourceIndex(mode, iy, H);
        for (var kx = 0; kx < kw; kx++) {
          var ix = x0 + kx * d[1];
          var sx = sourceIndex(mode, ix, W);
          var inPad = iy < 0 || iy >= H || ix < 0 || ix >= W;
          var xv = 0, srcY = null, srcX = null;
          if (sy !== null && sx !== null) {
            srcY = sy;
            srcX = sx;
            xv = input.data[(ci * H + sy) * W + sx];
          }
          var wv = wd[((c * Cg + j) * kh + ky) * kw + kx];
          var product = xv * wv;
          chanSum += product;
          taps.push({ci: ci, ky: ky, kx: kx, iy: iy, ix: ix, inPadding: inPad, srcY: srcY,
            srcX: srcX, x: xv, w: wv, product: product});
        }
      }
      perChannel.push({ci: ci, sum: chanSum});
      total += chanSum;
    }
    var b = bd ? bd[c] : 0;
    return {inChannels: inChannels, taps: taps, perChannel: perChannel, sum: total, bias: b,
      hasBias: !!bd, value: total + b, outShape: [O, OH, OW],
      window: {y0: y0, x0: x0, y1: y0 + (kh - 1) * d[0], x1: x0 + (kw - 1) * d[1]}};
  }

  /**
   * conv1d(input (N,C,L), weight (O, C/groups, k), bias, cfg, c, i): conv2d on a height-1 input
   * (cfg.padding: a number, [p], [[before, after]], "valid" or "same").
   *   out[c, i] = b[c] + sum_{ci, kk} w[c, ci - g0, kk] * in[ci, i*s - p + kk*d]
   * Returns {inChannels, taps: [{ci, k, pos, inPadding, src, x, w, product}], perChannel, sum,
   *          bias, value, window: {x0, x1}}.
   */
  function conv1d(input, weight, bias, cfg, c, i) {
    checkInput("conv1d", input, [3]);
    cfg = cfg || {};
    var one = function (v, dflt) {
      if (v === undefined || v === null) return dflt;
      return typeof v === "number" ? v : v[v.length - 1];
    };
    var input2 = {shape: [input.shape[0], input.shape[1], 1, input.shape[2]], data: input.data};
    var ws = weight.shape;
    var weight2 = {shape: [ws[0], ws[1], 1, ws[2]], data: dataOf(weight)};
    var pad = cfg.padding;
    if (typeof pad !== "string") {
      pad = pad === undefined || pad === null ? 0 : (typeof pad === "number" ? pad : pad[0]);
    }
    var cfg2 = {kernel_size: [1, ws[2]], stride: [1, one(cfg.stride, 1)],
      padding: typeof pad === "string" ? pad : [0, pad], dilation: [1, one(cfg.dilation, 1)],
      groups: cfg.groups || 1, padding_mode: cfg.padding_mode || "zeros"};
    var r = conv2d(input2, weight2, bias, cfg2, c, 0, i);
    return {inChannels: r.inChannels, perChannel: r.perChannel, sum: r.sum, bias: r.bias,
      hasBias: r.hasBias, value: r.value, outShape: [r.outShape[0], r.outShape[2]],
      window: {x0: r.window.x0, x1: r.window.x1},
      taps: r.taps.map(function (t) {
        return {ci: t.ci, k: t.kx, pos: t.ix, inPadding: t.inPadding, src: t.srcX, x: t.x,
          w: t.w, product: t.product};
      })};
  }

  // ------------------------------------------------------------------------------------------
  // linear
  // ------------------------------------------------------------------------------------------

  /**
   * linear(input (N, in) or (N, L, in) or (N, ..., in), weight (out, in), bias (out,)|null, flat)
   *
   *   y[t, o] = b[o] + sum_i w[o, i] * x[t, i]
   *
   * `flat` indexes the output without its batch dim, C order: t = floor(flat / out) is the token
   * (null for a 2-d input), o = flat % out the output feature.
   * Returns {token, out, taps: [{i, x, w, product}], sum, bias, value}.
   */
  function linear(input, weight, bias, flat) {
    var op = "linear";
    if (!input || !input.shape || input.shape.length < 2) {
      fail(op, "input must be (N, in) or (N, L, in), got " +
        (input && input.shape ? shapeStr(input.shape) : String(input)));
    }
    var fin = input.shape[input.shape.length - 1];
    if (!weight || !weight.shape) fail(op, "the weight tensor {shape, data} is missing");
    var ws = weight.shape, wd = dataOf(weight);
    if (ws.length !== 2 || ws[1] !== fin) {
      fail(op, "weight " + shapeStr(ws) + " does not fit input " + shapeStr(input.shape) +
        " (expected (out, " + fin + "))");
    }
    var fout = ws[0];
    var tokens = prod(input.shape.slice(1, -1));
    checkIndex(op, "flatIndex", flat, tokens * fout);
    var t = Math.floor(flat / fout), o = flat % fout;
    var bd = dataOf(bias);
    var taps = [], total = 0;
    for (var i = 0; i < fin; i++) {
      var xv = input.data[t * fin + i], wv = wd[o * fin + i], pr = xv * wv;
      total += pr;
      taps.push({i: i, x: xv, w: wv, product: pr});
    }
    var b = bd ? bd[o] : 0;
    return {token: input.shape.length === 2 ? null : t, out: o, taps: taps, sum: total, bias: b,
      hasBias: !!bd, value: total + b};
  }

  // ------------------------------------------------------------------------------------------
  // pooling
  // ------------------------------------------------------------------------------------------

  /**
   * pool2d(input (N,C,H,W), cfg {kind: "max"|"avg", kernel_size, stride, padding, dilation,
   *        ceil_mode, count_include_pad, divisor_override}, c, y, x)   (torch semantics)
   *
   * Window taps: iy = y*sh - ph + ky*dh, ix = x*sw - pw + kx*dw (ky < kh, kx < kw).
   *   max: out = max over the taps inside the input (padding is -inf: never chosen; the first
   *        maximum in row-major order wins, a NaN wins).
   *   avg: out = (sum of the taps inside the input) / divisor, where divisor =
   *        divisor_override if set; else, with count_include_pad, the window's size clipped to
   *        the padded input [-p, n+p) (a ceil_mode window may run past it); else the number of
   *        taps inside the input.
   * Returns {kind, taps: [{iy, ix, inPadding, x}] (x null where the tap is not read: padding of a
   *          max pool, or past the padded input), value, argmax: {iy, ix} | null (max only),
   *          sum (avg), divisor (avg; null for max), count (taps inside the input),
   *          window: {y0, x0, y1, x1}, outShape: [C, OH, OW]}.
   */
  function pool2d(input, cfg, c, y, x) {
    var op = "pool2d";
    checkInput(op, input, [4]);
    var C = input.shape[1], H = input.shape[2], W = input.shape[3];
    var kind = cfg.kind || "max";
    if (kind !== "max" && kind !== "avg") fail(op, "kind must be max or avg, got " + kind);
    var k = pair(cfg.kernel_size);
    var s = pair(cfg.stride, k), p = pair(cfg.padding, 0);
    // torch's avg_pool2d has no dilation
    var d = kind === "avg" ? [1, 1] : pair(cfg.dilation, 1);
    var ceil = !!cfg.ceil_mode;
    if (y === undefined || y === null) y = 0; // a flattened (C,) output: 1x1 per channel
    if (x === undefined || x === null) x = 0;
    var OH = poolOutputSize(H, k[0], s[0], p[0], d[0], ceil);
    var OW = poolOutputSize(W, k[1], s[1], p[1], d[1], ceil);
    checkIndex(op, "c", c, C);
    checkIndex(op, "y", y, OH);
    checkIndex(op, "x", x, OW);
    var base = c * H * W;
    var y0 = y * s[0] - p[0], x0 = x * s[1] - p[1];
    var taps = [], count = 0, total = 0, best = null, bestAt = null;
    for (var ky = 0; ky < k[0]; ky++) {
      var iy = y0 + ky * d[0];
      for (var kx = 0; kx < k[1]; kx++) {
        var ix = x0 + kx * d[1];
        var inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
        var v = null;
        if (inside) {
          v = input.data[base + iy * W + ix];
          count += 1;
          total += v;
          if (bestAt === null || v > best || (v !== v && best === best)) {
            best = v;
            bestAt = {iy: iy, ix: ix};
          }
        } else if (kind === "avg" && iy >= -p[0] && iy < H + p[0] && ix >= -p[1] &&
                   ix < W + p[1]) {
          v = 0; // zero padding, read by the average
        }
        taps.push({iy: iy, ix: ix, inPadding: !inside, x: v});
      }
    }
    var win = {y0: y0, x0: x0, y1: y0 + (k[0] - 1) * d[0], x1: x0 + (k[1] - 1) * d[1]};
    if (kind === "max") {
      // a dilated window can fall entirely in the padding: torch then outputs -inf
      return {kind: kind, taps: taps, value: bestAt === null ? -Infinity : best, argmax: bestAt,
        sum: null, divisor: null, count: count, window: win, outShape: [C, OH, OW]};
    }
    var divisor;
    if (cfg.divisor_override) {
      divisor = cfg.divisor_override;
    } else if (cfg.count_include_pad === undefined || cfg.count_include_pad === null ||
               cfg.count_include_pad) { // torch's default: true
      var hh = Math.min(y0 + k[0], H + p[0]) - y0, ww = Math.min(x0 + k[1], W + p[1]) - x0;
      divisor = hh * ww;
    } else {
      divisor = count;
    }
    return {kind: kind, taps: taps, value: total / divisor, argmax: null, sum: total,
      divisor: divisor, count: count, window: win, outShape: [C, OH, OW]};
  }

  /**
   * adaptivePool2d(input (N,C,H,W), cfg {kind: "max"|"avg", output_size: [oh, ow]}, c, y, x)
   *
   * Window rows [floor(y*H/oh), ceil((y+1)*H/oh)), columns likewise (torch's adaptive formula;
   * windows may overlap and differ in size). max: the largest value (first in row-major order);
   * avg: the mean over the window. An output_size entry of null keeps that input size.
   * Returns {kind, taps: [{iy, ix, inPadding: false, x}], value, argmax | null, sum, divisor,
   *          window: {y0, x0, y1, x1} (inclusive), outShape}.
   */
  function adaptivePool2d(input, cfg, c, y, x) {
    var op = "adaptivePool2d";
    checkInput(op, input, [4]);
    var C = input.shape[1], H = input.shape[2], W = input.shape[3];
    var kind = cfg.kind || "avg";
    var os = pair(cfg.output_size);
    var OH = os[0] === null || os[0] === undefined ? H : os[0];
    var OW = os[1] === null || os[1] === undefined ? W : os[1];
    if (y === undefined || y === null) y = 0; // a flattened (C,) output (global pooling)
    if (x === undefined || x === null) x = 0;
    checkIndex(op, "c", c, C);
    checkIndex(op, "y", y, OH);
    checkIndex(op, "x", x, OW);
    var ys = Math.floor(y * H / OH), ye = Math.ceil((y + 1) * H / OH);
    var xs = Math.floor(x * W / OW), xe = Math.ceil((x + 1) * W / OW);
    var base = c * H * W, taps = [], total = 0, best = null, bestAt = null;
    for (var iy = ys; iy < ye; iy++) {
      for (var ix = xs; ix < xe; ix++) {
        var v = input.data[base + iy * W + ix];
        total += v;
        if (bestAt === null || v > best || (v !== v && best === best)) {
          best = v;
          bestAt = {iy: iy, ix: ix};
        }
        taps.push({iy: iy, ix: ix, inPadding: false, x: v});
      }
    }
    var n = taps.length;
    var win = {y0: ys, x0: xs, y1: ye - 1, x1: xe - 1};
    if (kind === "max") {
      return {kind: kind, taps: taps, value: best, argmax: bestAt, sum: null, divisor: null,
        count: n, window: win, outShape: [C, OH, OW]};
    }
    return {kind: kind, taps: taps, value: total / n, argmax: null, sum: total, divisor: n,
      count: n, window: win, outShape: [C, OH, OW]};
  }

  // ------------------------------------------------------------------------------------------
  // activations
  // ------------------------------------------------------------------------------------------

  var SQRT1_2 = Math.SQRT1_2, TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

  /** erfc(x) for x >= 1 by its continued fraction, evaluated backwards from 200 levels
   *  (~1e-16 relative from x = 1 on):
   *  erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...))))). */
  function erfcLarge(x) {
    var f = x;
    for (var n = 200; n >= 1; n--) f = x + (n / 2) / f;
    return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
  }

  /** erf(x) for |x| < 3: 2/sqrt(pi) * exp(-x^2) * sum_n 2^n x^(2n+1) / (1*3*...*(2n+1));
   *  all terms positive (no cancellation), ~1e-16 relative. */
  function erfSmall(x) {
    var term = x, sum = x, x2 = x * x;
    for (var n = 1; n < 200; n++) {
      term *= 2 * x2 / (2 * n + 1);
      sum += term;
      if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
    }
    return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
  }

  /** The error function, accurate to ~1e-15 (float64). */
  function erf(x) {
    if (x !== x) return x;
    if (Math.abs(x) < 3) return erfSmall(x);
    return x > 0 ? 1 - erfcLarge(x) : erfcLarge(-x) - 1;
  }

  /** erfc(x) = 1 - erf(x), without cancellation for large x (the tail of gelu needs it). */
  function erfc(x) {
    if (x !== x) return x;
    if (x >= 1) return erfcLarge(x);
    if (x <= -1) return 2 - erfcLarge(-x);
    return 1 - erfSmall(x);
  }

  function sigmoid(v) {
    return v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v));
  }

  function softplusRaw(v, beta, threshold) {
    if (v * beta > threshold) return v;
    return Math.log1p(Math.exp(beta * v)) / beta;
  }

  function fmt(v) {
    if (v === null || v === undefined) return String(v);
    if (v === 0 || !isFinite(v)) return String(v);
    var a = Math.abs(v);
    return a >= 1e-3 && a < 1e5 ? String(Number(v.toPrecision(6))) : v.toExponential(4);
  }

  /**
   * activation(cfg {name, negative_slope?, alpha?, beta?, threshold?} | name, v)
   * Returns {name, input: v, value, formula (general), text (with the numbers)}.
   *   relu: max(0, x)                      leaky_relu: x if x > 0 else a*x (a = 0.01)
   *   relu6: min(max(0, x), 6)             sigmoid: 1 / (1 + e^-x)        tanh
   *   gelu: x/2 * (1 + erf(x/sqrt2))       gelu_tanh: x/2 * (1 + tanh(sqrt(2/pi)(x + 0.044715x^3)))
   *   silu: x * sigmoid(x)                 elu: x if x > 0 else a(e^x - 1) (a = 1)
   *   hardswish: x * relu6(x + 3) / 6      hardsigmoid: relu6(x + 3) / 6
   *   softplus: log(1 + e^(b x)) / b, or x when b x > threshold (b = 1, threshold = 20)
   *   mish: x * tanh(softplus(x))
   */
  function activation(cfg, v) {
    if (typeof cfg === "string") cfg = {name: cfg};
    var name = cfg.name, value, formula, text;
    switch (name) {
      case "relu":
        value = v > 0 ? v : (v !== v ? v : 0);
        formula = "relu(x) = max(0, x)";
        text = "max(0, " + fmt(v) + ") = " + fmt(value);
        break;
      case "leaky_relu":
        var a = cfg.negative_slope === undefined || cfg.negative_slope === null ?
          0.01 : cfg.negative_slope;
        value = v > 0 ? v : a * v;
        formula = "leaky_relu(x) = x if x > 0 else " + a + "·x";
        text = v > 0 ? fmt(v) + " > 0, unchanged" : fmt(a) + " × " + fmt(v) + " = " + fmt(value);
        break;
      case "relu6":
        value = Math.min(Math.max(v, 0), 6);
        formula = "relu6(x) = min(max(0, x), 6)";
        text = "min(max(0, " + fmt(v) + "), 6) = " + fmt(value);
        break;
      case "sigmoid":
        value = sigmoid(v);
        formula = "sigmoid(x) = 1 / (1 + e^(−x))";
        text = "1 / (1 + e^(" + fmt(-v) + ")) = " + fmt(value);
        break;
      case "tanh":
        value = Math.tanh(v);
        formula = "tanh(x) = (e^x − e^(−x)) / (e^x + e^(−x))";
        text = "tanh(" + fmt(v) + ") = " + fmt(value);
        break;
      case "gelu":
        // 0.5 x (1 + erf(x/sqrt2)) = 0.5 x erfc(-x/sqrt2): erfc keeps the far-negative tail exact
        value = 0.5 * v * erfc(-v * SQRT1_2);
        formula = "gelu(x) = x · Φ(x) = x/2 · (1 + erf(x/√2))";
        text = fmt(v) + "/2 · (1 + erf(" + fmt(v * SQRT1_2) + ")) = " + fmt(value);
        break;
      case "gelu_tanh":
        var inner = Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v);
        value = 0.5 * v * (1 + Math.tanh(inner));
        formula = "gelu_tanh(x) = x/2 · (1 + tanh(√(2/π) · (x + 0.044715 x³)))";
        text = fmt(v) + "/2 · (1 + tanh(" + fmt(inner) + ")) = " + fmt(value);
        break;
      case "silu":
        value = v * sigmoid(v);
        formula = "silu(x) = x · sigmoid(x)";
        text = fmt(v) + " · " + fmt(sigmoid(v)) + " = " + fmt(value);
        break;
      case "elu":
        var al = cfg.alpha === undefined || cfg.alpha === null ? 1 : cfg.alpha;
        value = v > 0 ? v : al * Math.expm1(v);
        formula = "elu(x) = x if x > 0 else " + al + "·(e^x − 1)";
        text = v > 0 ? fmt(v) + " > 0, unchanged" :
          fmt(al) + " · (e^(" + fmt(v) + ") − 1) = " + fmt(value);
        break;
      case "hardswish":
        var r6 = Math.min(Math.max(v + 3, 0), 6);
        value = v * r6 / 6;
        formula = "hardswish(x) = x · relu6(x + 3) / 6";
        text = fmt(v) + " · " + fmt(r6) + " / 6 = " + fmt(value);
        break;
      case "hardsigmoid":
        value = Math.min(Math.max(v + 3, 0), 6) / 6;
        formula = "hardsigmoid(x) = relu6(x + 3) / 6";
        text = "relu6(" + fmt(v + 3) + ") / 6 = " + fmt(value);
        break;
      case "softplus":
        var b = cfg.beta === undefined || cfg.beta === null ? 1 : cfg.beta;
        var th = cfg.threshold === undefined || cfg.threshold === null ? 20 : cfg.threshold;
        value = softplusRaw(v, b, th);
        formula = "softplus(x) = log(1 + e^(" + b + "·x)) / " + b + " (x itself when " + b +
          "·x > " + th + ")";
        text = v * b > th ? fmt(v * b) + " > " + th + ", unchanged" :
          "log(1 + e^(" + fmt(b * v) + ")) / " + b + " = " + fmt(value);
        break;
      case "mish":
        var sp = softplusRaw(v, 1, 20);
        value = v * Math.tanh(sp);
        formula = "mish(x) = x · tanh(softplus(x))";
        text = fmt(v) + " · tanh(" + fmt(sp) + ") = " + fmt(value);
        break;
      default:
        fail("activation", "unknown activation " + JSON.stringify(name));
    }
    return {name: name, input: v, value: value, formula: formula, text: text};
  }

  // ------------------------------------------------------------------------------------------
  // normalization
  // ------------------------------------------------------------------------------------------

  /** Flat offset (n = 0) of element (c, pos) of an (N, C, ...) tensor, with pos = [y, x] for
   * rank 4, [x] (the L index) for rank 3, [] for rank 2. */
  function channelOffset(op, shape, c, y, x) {
    var C = shape[1];
    checkIndex(op, "c", c, C);
    if (shape.length === 2) return c;
    if (shape.length === 3) {
      checkIndex(op, "x", x, shape[2]);
      return c * shape[2] + x;
    }
    checkIndex(op, "y", y, shape[2]);
    checkIndex(op, "x", x, shape[3]);
    return (c * shape[2] + y) * shape[3] + x;
  }

  /** Mean and biased variance (divide by count) of the given data slice, in float64. */
  function stats(values) {
    var n = values.length, m = 0, i;
    for (i = 0; i < n; i++) m += values[i];
    m /= n;
    var v = 0;
    for (i = 0; i < n; i++) v += (values[i] - m) * (values[i] - m);
    return {mean: m, var: v / n, count: n};
  }

  /**
   * batchnorm(input (N,C,H,W) | (N,C,L) | (N,C), running_mean, running_var, weight, bias, cfg
   *           {eps, affine, track_running_stats}, c, y, x)   (eval mode)
   *
   *   out = (x - mean[c]) / sqrt(var[c] + eps) * gamma[c] + beta[c]
   *
   * mean/var are the running statistics; when they are null (track_running_stats false) the
   * statistics of the batch are used (mean and biased variance over N and the spatial dims of
   * channel c, as torch does in eval mode then). gamma = 1, beta = 0 without affine.
   * For rank 3 the position is x (y is ignored); for rank 2 both are ignored.
   * Returns {x, mean, var, eps, std, normalized, gamma, beta, value, batchStats: bool}.
   */
  function batchnorm(input, mean, variance, weight, bias, cfg, c, y, x) {
    var op = "batchnorm";
    checkInput(op, input, [2, 3, 4]);
    cfg = cfg || {};
    var eps = cfg.eps === undefined || cfg.eps === null ? 1e-5 : cfg.eps;
    var off = channelOffset(op, input.shape, c, y, x);
    var xv = input.data[off];
    var md = dataOf(mean), vd = dataOf(variance), m, v, batchStats = false;
    if (md && vd) {
      m = md[c];
      v = vd[c];
    } else {
      var N = input.shape[0], C = input.shape[1], S = prod(input.shape.slice(2)), vals = [];
      for (var n = 0; n < N; n++) {
        for (var i = 0; i < S; i++) vals.push(input.data[(n * C + c) * S + i]);
      }
      var st = stats(vals);
      m = st.mean;
      v = st.var;
      batchStats = true;
    }
    var wd = dataOf(weight), bd = dataOf(bias);
    var gamma = wd ? wd[c] : 1, beta = bd ? bd[c] : 0;
    var std = Math.sqrt(v + eps), normalized = (xv - m) / std;
    return {x: xv, mean: m, var: v, eps: eps, std: std, normalized: normalized, gamma: gamma,
      beta: beta, value: normalized * gamma + beta, batchStats: batchStats};
  }

  /**
   * layernorm(input (N, ..., *normalized_shape), weight, bias, cfg {normalized_shape, eps,
   *           elementwise_affine}, flat)
   *
   *   out = (x - mean) / sqrt(var + eps) * gamma[j] + beta[j]
   *
   * mean and biased variance over the `count` = prod(normalized_shape) trailing values holding
   * the element; `flat` indexes the output without its batch dim (C order); j = flat % count
   * indexes gamma/beta (1 and 0 without elementwise_affine).
   * Returns {x, mean, var, eps, std, normalized, gamma, beta, value, count, group, start}
   * (start: flat index of the first value of the normalized slice).
   */
  function layernorm(input, weight, bias, cfg, flat) {
    var op = "layernorm";
    if (!input || !input.shape || input.shape.length < 2) fail(op, "input must be (N, ...)");
    cfg = cfg || {};
    var ns = cfg.normalized_shape;
    if (ns === undefined || ns === null) ns = [input.shape[input.shape.length - 1]];
    if (typeof ns === "number") ns = [ns];
    var tail = input.shape.slice(input.shape.length - ns.length);
    if (tail.join(",") !== ns.join(",")) {
      fail(op, "normalized_shape " + shapeStr(ns) + " does not end input " + shapeStr(input.shape));
    }
    var eps = cfg.eps === undefined || cfg.eps === null ? 1e-5 : cfg.eps;
    var count = prod(ns), total = prod(input.shape.slice(1));
    checkIndex(op, "flatIndex", flat, total);
    var group = Math.floor(flat / count), j = flat % count, start = group * count;
    var st = stats(input.data.slice(start, start + count));
    var xv = input.data[flat];
    var wd = dataOf(weight), bd = dataOf(bias);
    var gamma = wd ? wd[j] : 1, beta = bd ? bd[j] : 0;
    var std = Math.sqrt(st.var + eps), normalized = (xv - st.mean) / std;
    return {x: xv, mean: st.mean, var: st.var, eps: eps, std: std, normalized: normalized,
      gamma: gamma, beta: beta, value: normalized * gamma + beta, count: count, group: group,
      start: start};
  }

  /**
   * groupnorm(input (N, C, ...), weight (C,), bias (C,), cfg {num_groups, num_channels, eps,
   *           affine}, c, y, x)
   *
   *   out = (x - mean_g) / sqrt(var_g + eps) * gamma[c] + beta[c]
   *
   * g = floor(c / (C / num_groups)); mean_g, var_g (biased) over the C/num_groups channels of
   * group g and all their positions (of batch element 0). Position as in batchnorm.
   * Returns {x, group, channels: [first, last], count, mean, var, eps, std, normalized, gamma,
   *          beta, value}.
   */
  function groupnorm(input, weight, bias, cfg, c, y, x) {
    var op = "groupnorm";
    checkInput(op, input, [2, 3, 4]);
    cfg = cfg || {};
    var C = input.shape[1], G = cfg.num_groups || 1;
    if (C % G !== 0) fail(op, "channels " + C + " not divisible by num_groups=" + G);
    var eps = cfg.eps === undefined || cfg.eps === null ? 1e-5 : cfg.eps;
    var off = channelOffset(op, input.shape, c, y, x);
    var per = C / G, g = Math.floor(c / per), S = prod(input.shape.slice(2));
    var start = g * per * S;
    var st = stats(input.data.slice(start, start + per * S));
    var xv = input.data[off];
    var wd = dataOf(weight), bd = dataOf(bias);
    var gamma = wd ? wd[c] : 1, beta = bd ? bd[c] : 0;
    var std = Math.sqrt(st.var + eps), normalized = (xv - st.mean) / std;
    return {x: xv, group: g, channels: [g * per, g * per + per - 1], count: st.count,
      mean: st.mean, var: st.var, eps: eps, std: std, normalized: normalized, gamma: gamma,
      beta: beta, value: normalized * gamma + beta};
  }

  // ------------------------------------------------------------------------------------------
  // softmax, receptive field, CNV1 blobs
  // ------------------------------------------------------------------------------------------

  /**
   * softmax(logits: list | Float32Array | tensor (last dim, n = 0))
   *   p_k = e^(z_k - m) / sum_j e^(z_j - m),   m = max_j z_j (subtracting m avoids overflow)
   * Returns {logits, max, exps (of z - m), sum, probs}.
   */
  function softmax(logits) {
    var z = dataOf(logits);
    // a tensor: its first row (n = 0) along the last dim
    var len = logits && logits.shape ? logits.shape[logits.shape.length - 1] : z.length;
    z = Array.prototype.slice.call(z, 0, len);
    if (!z.length) fail("softmax", "no logits");
    var m = -Infinity, i;
    for (i = 0; i < z.length; i++) if (z[i] > m) m = z[i];
    var exps = [], sum = 0;
    for (i = 0; i < z.length; i++) {
      exps.push(Math.exp(z[i] - m));
      sum += exps[i];
    }
    return {logits: z, max: m, exps: exps, sum: sum,
      probs: exps.map(function (e) { return e / sum; })};
  }

  /**
   * receptiveBox(rf {size: [h, w], jump: [h, w], start: [h, w]}, i, j) -> {y0, x0, y1, x1}
   * Output unit (i, j) sees input pixels centred at start + i*jump (rows; columns with j), from
   * centre - (size-1)/2 to centre + (size-1)/2 inclusive (may pass the image: padding).
   */
  function receptiveBox(rf, i, j) {
    var size = pair(rf.size), jump = pair(rf.jump), start = pair(rf.start);
    var cy = start[0] + i * jump[0], cx = start[1] + j * jump[1];
    var hy = (size[0] - 1) / 2, hx = (size[1] - 1) / 2;
    return {y0: cy - hy, x0: cx - hx, y1: cy + hy, x1: cx + hx};
  }

  /**
   * parseCNV1(ArrayBuffer | Uint8Array) -> {shape, data: Float32Array, header}
   * Layout: "CNV1", uint32 LE header length H, H bytes of UTF-8 JSON {shape, dtype: "float32"},
   * then float32 little-endian values in C order (from byte 8 + H, a multiple of 4).
   */
  function parseCNV1(buf) {
    var op = "parseCNV1", offset0 = 0;
    if (buf instanceof Uint8Array) {
      offset0 = buf.byteOffset;
      buf = buf.buffer.slice(offset0, offset0 + buf.byteLength);
    }
    if (!(buf instanceof ArrayBuffer)) fail(op, "expected an ArrayBuffer");
    if (buf.byteLength < 8) fail(op, "blob of " + buf.byteLength + " bytes is too short");
    var bytes = new Uint8Array(buf);
    var magic = String.fromCharCode(bytes[0], bytes[1], bytes[2], bytes[3]);
    if (magic !== "CNV1") fail(op, "not a CNV1 blob (starts with " + JSON.stringify(magic) + ")");
    var dv = new DataView(buf);
    var hlen = dv.getUint32(4, true);
    if (8 + hlen > buf.byteLength) fail(op, "header length " + hlen + " passes the blob end");
    var json;
    if (typeof TextDecoder !== "undefined") {
      json = new TextDecoder("utf-8").decode(bytes.subarray(8, 8 + hlen));
    } else {
      json = String.fromCharCode.apply(null, bytes.subarray(8, 8 + hlen));
    }
    var header = JSON.parse(json);
    if (header.dtype && header.dtype !== "float32") {
      fail(op, "dtype " + header.dtype + " (float32 only)");
    }
    var shape = header.shape || [];
    var n = prod(shape), start = 8 + hlen;
    if (buf.byteLength - start < 4 * n) {
      fail(op, "shape " + shapeStr(shape) + " needs " + 4 * n + " data bytes, blob has " +
        (buf.byteLength - start));
    }
    var data;
    var littleHost = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
    if (start % 4 === 0 && littleHost) {
      data = new Float32Array(buf, start, n);
    } else { // unaligned or big-endian host: decode value by value
      data = new Float32Array(n);
      for (var i = 0; i < n; i++) data[i] = dv.getFloat32(start + 4 * i, true);
    }
    return {shape: shape, data: data, header: header};
  }

  // ------------------------------------------------------------------------------------------
  // one entry point for the UI: a layer of GET /api/meta + its input + its parameters
  // ------------------------------------------------------------------------------------------

  /** The last entry of a number or list (a 1-d layer's kernel_size: 3 or [3]). */
  function last(v, dflt) {
    if (v === undefined || v === null) return dflt;
    return typeof v === "number" ? v : v[v.length - 1];
  }

  /** Flat C-order index of `index` in `shape`. */
  function ravel(shape, index) {
    var off = 0;
    for (var i = 0; i < shape.length; i++) off = off * shape[i] + index[i];
    return off;
  }

  /** Index list of flat C-order offset `flat` in `shape`. */
  function unravel(shape, flat) {
    var idx = new Array(shape.length);
    for (var i = shape.length - 1; i >= 0; i--) {
      idx[i] = flat % shape[i];
      flat = Math.floor(flat / shape[i]);
    }
    return idx;
  }

  /** A 1-d (N, C, L) input seen as (N, C, 1, L), for the 1-d layers. */
  function as2d(input) {
    return {shape: [input.shape[0], input.shape[1], 1, input.shape[2]], data: input.data};
  }

  /**
   * explainAt(layer, input, params, pos) -> {kind, index, flat, value, result}
   *
   * layer: an entry of meta.layers (uses .explain, .config, .output_shape); input: the layer's
   * input tensor (batch dim first, e.g. parsed from its input_blob); params: {weight, bias,
   * running_mean, running_var} tensors (missing ones null); pos: the output element, either
   * {flat} (C-order index into the output without its batch dim) or {c, y, x} for a (C, H, W)
   * output, {y, x} for a 2-d output (row = dim 0: a token or a 1-d layer's channel, col = dim 1),
   * {x} for a 1-d output. `index` is the output index (no batch dim), `value` the explained
   * value, `result` what the kind's own function returned (see each one above); identity
   * layers give {x}, activations {x, value, formula, text}.
   */
  function explainAt(layer, input, params, pos) {
    var op = "explainAt";
    var kind = layer.explain, cfg = layer.config || {}, p = params || {};
    var out = layer.output_shape;
    if (!out) fail(op, "layer " + layer.name + " has no output_shape");
    var idx;
    if (pos.flat !== undefined && pos.flat !== null) {
      checkIndex(op, "flat", pos.flat, prod(out));
      idx = unravel(out, pos.flat);
    } else if (out.length === 3) {
      idx = [pos.c, pos.y, pos.x];
    } else if (out.length === 2) {
      idx = [pos.y, pos.x];
    } else if (out.length === 1) {
      idx = [pos.x];
    } else {
      fail(op, "give {flat} for an output of shape " + shapeStr(out));
    }
    for (var i = 0; i < out.length; i++) checkIndex(op, "index[" + i + "]", idx[i], out[i]);
    var flat = ravel(out, idx), rank = input.shape.length, r;
    switch (kind) {
      case "conv":
        if (rank === 4) r = conv2d(input, p.weight, p.bias, cfg, idx[0], idx[1], idx[2]);
        else if (rank === 3) r = conv1d(input, p.weight, p.bias, cfg, idx[0], idx[1]);
        else fail(op, "conv input of shape " + shapeStr(input.shape));
        break;
      case "linear":
        r = linear(input, p.weight, p.bias, flat);
        break;
      case "pool":
      case "adaptive_pool":
        var fn = kind === "pool" ? pool2d : adaptivePool2d;
        if (rank === 4) { // a (C,) output: global pooling flattened, one value per channel
          r = idx.length === 1 ? fn(input, cfg, idx[0], 0, 0) :
            fn(input, cfg, idx[0], idx[1], idx[2]);
        } else if (rank === 3) { // a 1-d pool: height 1
          var c1 = {};
          for (var key in cfg) c1[key] = cfg[key];
          if (kind === "pool") {
            c1.kernel_size = [1, last(cfg.kernel_size)];
            c1.stride = [1, last(cfg.stride, last(cfg.kernel_size))];
            c1.padding = [0, last(cfg.padding, 0)];
            c1.dilation = [1, last(cfg.dilation, 1)];
          } else {
            c1.output_size = [1, last(cfg.output_size)];
          }
          r = fn(as2d(input), c1, idx[0], 0, idx[1]);
        } else {
          fail(op, kind + " input of shape " + shapeStr(input.shape));
        }
        break;
      case "activation":
      case "identity":
        if (prod(input.shape.slice(1)) !== prod(out)) {
          fail(op, kind + " input " + shapeStr(input.shape) + " and output " + shapeStr(out) +
            " differ in size");
        }
        var xv = input.data[flat];
        if (kind === "identity") {
          r = {x: xv, value: xv};
        } else {
          r = activation(cfg, xv);
          r.x = xv;
        }
        break;
      case "batchnorm":
      case "groupnorm":
        var c = idx[0], y = rank === 4 ? idx[1] : 0;
        var x = rank === 4 ? idx[2] : (rank === 3 ? idx[1] : 0);
        r = kind === "batchnorm" ?
          batchnorm(input, p.running_mean, p.running_var, p.weight, p.bias, cfg, c, y, x) :
          groupnorm(input, p.weight, p.bias, cfg, c, y, x);
        break;
      case "layernorm":
        r = layernorm(input, p.weight, p.bias, cfg, flat);
        break;
      default:
        fail(op, "layer " + layer.name + " has nothing to explain (explain: " +
          JSON.stringify(kind) + ")");
    }
    return {kind: kind, index: idx, flat: flat, value: r.value, result: r};
  }

  /** Value of a tensor at a full index list (batch included). */
  function valueAt(t, index) {
    return t.data[ravel(t.shape, index)];
  }

  return {
    conv2d: conv2d, conv1d: conv1d, linear: linear, pool2d: pool2d,
    adaptivePool2d: adaptivePool2d, activation: activation, batchnorm: batchnorm,
    layernorm: layernorm, groupnorm: groupnorm, softmax: softmax, receptiveBox: receptiveBox,
    parseCNV1: parseCNV1, explainAt: explainAt, erf: erf, erfc: erfc, valueAt: valueAt,
    ravel: ravel, unravel: unravel,
    convOutputSize: convOutputSize, poolOutputSize: poolOutputSize, sourceIndex: sourceIndex
  };
})();
