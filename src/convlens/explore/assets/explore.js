"use strict";
// convlens explore. Every number on the page is computed here, in the browser, from the
// configuration and the values convlens embedded; on load the page recomputes the convolution
// convlens computed and compares (the self-check). The math is convlens's (src/convlens/algos/direct.py):
//
//   ordinary:   out[co, y, x] = b[co] + sum over ci in co's group, ky, kx of
//                               w[co, ci - g*C_in/G, ky, kx] * x_padded[ci, y*sh + ky*dh, x*sw + kx*dw]
//   transposed: out[co, oy, ox] = b[co] + sum over ci in co's group, iy, ix, ky, kx with
//                               oy = iy*sh - ph + ky*dh and ox = ix*sw - pw + kx*dw of
//                               x[ci, iy, ix] * w[ci, co - g*C_out/G, ky, kx]
//
// Tensors are flat arrays in PyTorch's (contiguous, row-major) order.

const DATA = JSON.parse(document.getElementById("convlens-data").textContent);

// ---------------------------------------------------------------- helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function decode(base64) {  // little-endian float32 values, as numpy's tobytes() writes them
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}

function fmt(value) {  // integers as they are, others to 4 significant digits, -0 as 0
  if (Object.is(value, -0) || value === 0) return "0";
  if (Number.isInteger(value)) return String(value);
  const text = Math.abs(value) >= 1e4 || Math.abs(value) < 1e-3 ? value.toExponential(3) : value.toPrecision(4);
  return text.replace(/\.?0+(e|$)/, "$1");
}

function factor(value) { return value < 0 ? `(${fmt(value)})` : fmt(value); }

function sumText(terms) {  // "a + b - c": a negative number is subtracted, not "+ -c"; a product is always added
  return terms.map((t, i) => (i === 0 ? t.text : t.value < 0 ? `- ${t.text.slice(1)}` : `+ ${t.text}`)).join(" ");
}

function colour(value, scale) {
  if (!scale || !value) return "white";
  const a = Math.min(1, Math.abs(value) / scale) * 0.65;
  return value > 0 ? `rgba(228, 87, 46, ${a})` : `rgba(46, 134, 171, ${a})`;
}

function mulberry32(seed) {
  return function () {
    seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------- the convolution
function outputSize(c) {
  if (c.transposed) {
    return [(c.H - 1) * c.sh - 2 * c.pt + c.dh * (c.kh - 1) + c.oph + 1,
            (c.W - 1) * c.sw - 2 * c.pl + c.dw * (c.kw - 1) + c.opw + 1];
  }
  return [Math.floor((c.H + c.pt + c.pb - c.dh * (c.kh - 1) - 1) / c.sh) + 1,
          Math.floor((c.W + c.pl + c.pr - c.dw * (c.kw - 1) - 1) / c.sw) + 1];
}

function sourceIndex(i, n, mode) {  // where padded index i (-before .. n + after - 1) reads from; -1: a zero
  if (i >= 0 && i < n) return i;
  if (mode === "zeros") return -1;
  if (mode === "replicate") return Math.min(Math.max(i, 0), n - 1);
  if (mode === "circular") return ((i % n) + n) % n;
  return i < 0 ? -i : 2 * (n - 1) - i;  // reflect: mirrored about the edge, the edge not repeated
}

function source(c, pi, pj) {  // padded position (from the top-left padding corner) -> [i, j] of the input, or null
  const i = sourceIndex(pi - c.pt, c.H, c.pmode), j = sourceIndex(pj - c.pl, c.W, c.pmode);
  return i < 0 || j < 0 ? null : [i, j];
}

function taps(c, x, w, co, y, xx) {  // the products that make out[co, y, xx]
  const cinG = c.cin / c.groups, coutG = c.cout / c.groups, g = Math.floor(co / coutG), list = [];
  for (let cil = 0; cil < cinG; cil++) {
    const ci = g * cinG + cil;
    for (let ky = 0; ky < c.kh; ky++) {
      for (let kx = 0; kx < c.kw; kx++) {
        if (!c.transposed) {
          const pi = y * c.sh + ky * c.dh, pj = xx * c.sw + kx * c.dw, src = source(c, pi, pj);
          const xv = src ? x[(ci * c.H + src[0]) * c.W + src[1]] : 0;
          list.push({ ci, cil, ky, kx, pi, pj, src, xv, wv: w[((co * cinG + cil) * c.kh + ky) * c.kw + kx] });
        } else {
          const ny = y + c.pt - ky * c.dh, nx = xx + c.pl - kx * c.dw;
          if (ny % c.sh || nx % c.sw) continue;
          const iy = ny / c.sh, ix = nx / c.sw;
          if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
          list.push({ ci, cil, ky, kx, pi: iy, pj: ix, src: [iy, ix], xv: x[(ci * c.H + iy) * c.W + ix],
                      wv: w[((ci * coutG + (co - g * coutG)) * c.kh + ky) * c.kw + kx] });
        }
      }
    }
  }
  return list;
}

function convolve(c, x, w, b, channels = c.cout) {
  // every output value of the first `channels` channels, and the sum of |products| of each (for a
  // rounding tolerance); the ordinary convolution as plain loops, the transposed one through taps()
  const [Ho, Wo] = outputSize(c), out = new Float64Array(channels * Ho * Wo), magnitude = new Float64Array(out.length);
  const cinG = c.cin / c.groups, coutG = c.cout / c.groups;
  const rowsFrom = [], colsFrom = [];  // padded position -> input index, -1 for a zero (padding modes included)
  for (let p = 0; p < c.H + c.pt + c.pb; p++) rowsFrom.push(sourceIndex(p - c.pt, c.H, c.pmode));
  for (let p = 0; p < c.W + c.pl + c.pr; p++) colsFrom.push(sourceIndex(p - c.pl, c.W, c.pmode));
  for (let co = 0; co < channels; co++) {
    const g = Math.floor(co / coutG);
    for (let y = 0; y < Ho; y++) {
      for (let xx = 0; xx < Wo; xx++) {
        let total = b ? b[co] : 0, size = 0;
        if (c.transposed) {
          for (const t of taps(c, x, w, co, y, xx)) { total += t.wv * t.xv; size += Math.abs(t.wv * t.xv); }
        } else {
          for (let cil = 0; cil < cinG; cil++) {
            const plane = (g * cinG + cil) * c.H, kernel = (co * cinG + cil) * c.kh;
            for (let ky = 0; ky < c.kh; ky++) {
              const i = rowsFrom[y * c.sh + ky * c.dh];
              if (i < 0) continue;
              for (let kx = 0; kx < c.kw; kx++) {
                const j = colsFrom[xx * c.sw + kx * c.dw];
                if (j < 0) continue;
                const product = w[(kernel + ky) * c.kw + kx] * x[(plane + i) * c.W + j];
                total += product; size += Math.abs(product);
              }
            }
          }
        }
        out[(co * Ho + y) * Wo + xx] = total;
        magnitude[(co * Ho + y) * Wo + xx] = size;
      }
    }
  }
  out.magnitude = magnitude;
  return out;
}

function fedBy(c, positions, ci) {  // the outputs whose windows read the padded (or input) positions of channel ci
  const [Ho, Wo] = outputSize(c), coutG = c.cout / c.groups, g = Math.floor(ci / (c.cin / c.groups));
  const found = [];
  for (let co = g * coutG; co < (g + 1) * coutG; co++) {
    for (const [pi, pj] of positions) {
      for (let ky = 0; ky < c.kh; ky++) {
        for (let kx = 0; kx < c.kw; kx++) {
          let y, xx;
          if (c.transposed) { y = pi * c.sh - c.pt + ky * c.dh; xx = pj * c.sw - c.pl + kx * c.dw; }
          else {
            const ny = pi - ky * c.dh, nx = pj - kx * c.dw;
            if (ny % c.sh || nx % c.sw) continue;
            y = ny / c.sh; xx = nx / c.sw;
          }
          if (y >= 0 && y < Ho && xx >= 0 && xx < Wo) found.push({ co, y, x: xx, ky, kx, pi, pj });
        }
      }
    }
  }
  return found;
}

// ---------------------------------------------------------------- configuration rules (convlens's words)
function resolve(raw, pageLimits = true) {
  const c = { ...raw };
  for (const key of ["H", "W", "cin", "cout", "kh", "kw", "sh", "sw", "dh", "dw", "groups", "oph", "opw"]) {
    if (!Number.isInteger(c[key])) throw new Error(`${key} must be an integer, got ${c[key]}`);
  }
  for (const key of ["H", "W", "cin", "cout", "kh", "kw", "sh", "sw", "dh", "dw", "groups"]) {
    if (c[key] < 1) throw new Error(`${key} must be 1 or more, got ${c[key]}`);
  }
  if (c.rank === 1) Object.assign(c, { H: 1, kh: 1, sh: 1, dh: 1, oph: 0 });
  if (c.cin % c.groups) throw new Error(`in_channels must be divisible by groups, got in_channels=${c.cin}, groups=${c.groups}`);
  if (c.cout % c.groups) throw new Error(`out_channels must be divisible by groups, got out_channels=${c.cout}, groups=${c.groups}`);
  const text = String(c.paddingText).trim();
  if (text === "valid" || text === "same") {
    if (c.transposed) throw new Error(`padding='${text}' is not supported for transposed convolutions (numbers only)`);
    if (text === "same" && (c.sh !== 1 || c.sw !== 1)) throw new Error(`padding='same' requires stride=1, got stride=(${c.sh}, ${c.sw})`);
    const th = text === "same" ? c.dh * (c.kh - 1) : 0, tw = text === "same" ? c.dw * (c.kw - 1) : 0;
    Object.assign(c, { pt: Math.floor(th / 2), pb: th - Math.floor(th / 2), pl: Math.floor(tw / 2), pr: tw - Math.floor(tw / 2) });
  } else {
    const parts = text.split(",").map((p) => Number(p.trim()));
    if (!parts.every((p) => Number.isInteger(p) && p >= 0) || parts.length > (c.rank === 1 ? 1 : 2)) {
      throw new Error(`padding must be 'same', 'valid' or ${c.rank === 1 ? "one number" : "one or two numbers (h,w)"} of 0 or more, got '${text}'`);
    }
    const [ph, pw] = c.rank === 1 ? [0, parts[0]] : parts.length === 1 ? [parts[0], parts[0]] : parts;
    Object.assign(c, { pt: ph, pb: ph, pl: pw, pr: pw });
  }
  if (c.transposed) {
    if (c.pmode !== "zeros") throw new Error(`padding_mode='${c.pmode}': a transposed convolution takes zeros only (its padding crops the output)`);
    for (const [op, s, d, name] of [[c.oph, c.sh, c.dh, "h"], [c.opw, c.sw, c.dw, "w"]]) {
      if (op < 0 || (op >= s && op >= d)) throw new Error(`output padding must be smaller than either stride or dilation, got output_padding ${name}=${op}, stride=${s}, dilation=${d}`);
    }
  } else {
    c.oph = 0; c.opw = 0;
    const most = { reflect: 1, circular: 0 }[c.pmode];  // reflect: padding below the size; circular: at most it
    if (most !== undefined && Math.max(c.pt, c.pb) > c.H - most || most !== undefined && Math.max(c.pl, c.pr) > c.W - most) {
      throw new Error(`padding_mode='${c.pmode}' needs padding ${most ? "smaller than" : "at most"} the input size, got padding (${c.pt}, ${c.pb}, ${c.pl}, ${c.pr}) for input ${c.H}x${c.W}`);
    }
  }
  const [Ho, Wo] = outputSize(c);
  if (Ho < 1 || Wo < 1) {
    if (c.transposed) throw new Error(`the output would be ${Ho}x${Wo}: too much padding for this input\n${formula(c)}`);
    throw new Error(`Kernel size can't be greater than actual input size: the window spans ${c.dh * (c.kh - 1) + 1}x${c.dw * (c.kw - 1) + 1}, the padded input is ${c.H + c.pt + c.pb}x${c.W + c.pl + c.pr}\n${formula(c)}`);
  }
  if (pageLimits && (c.H * c.W > 48 * 48 || c.cin > 16 || c.cout > 16 || Ho * Wo > 64 * 64)) {
    throw new Error("the page draws inputs up to 48x48 and 16 channels, outputs up to 64x64: use convlens explain for larger ones");
  }
  return c;
}

function formula(c) {
  const [Ho, Wo] = outputSize(c), lines = [];
  const dims = c.rank === 1 ? [["L", c.W, c.pl, c.pr, c.dw, c.kw, c.sw, c.opw, Wo]]
    : [["H", c.H, c.pt, c.pb, c.dh, c.kh, c.sh, c.oph, Ho], ["W", c.W, c.pl, c.pr, c.dw, c.kw, c.sw, c.opw, Wo]];
  for (const [n, size, before, after, d, k, s, op, result] of dims) {
    if (c.transposed) {
      lines.push(`${n}_out = (${n} - 1)*stride - 2*padding + dilation*(kernel - 1) + output_padding + 1` +
                 ` = (${size} - 1)*${s} - 2*${before} + ${d}*(${k} - 1) + ${op} + 1 = ${result}`);
    } else {
      lines.push(`${n}_out = floor((${n} + pad + pad - dilation*(kernel - 1) - 1) / stride) + 1` +
                 ` = floor((${size} + ${before} + ${after} - ${d}*(${k} - 1) - 1) / ${s}) + 1 = ${result}`);
    }
  }
  return lines.join("\n");
}

function pytorchCode(c) {
  const pair = (a, b) => (c.rank === 1 ? `${b}` : `(${a}, ${b})`);
  const [Ho, Wo] = outputSize(c), kind = c.rank === 1 ? "1d" : "2d";
  const padding = c.paddingText === "same" || c.paddingText === "valid" ? `'${c.paddingText}'` : pair(c.pt, c.pl);
  const args = [`in_channels=${c.cin}`, `out_channels=${c.cout}`, `kernel_size=${pair(c.kh, c.kw)}`,
                `stride=${pair(c.sh, c.sw)}`, `padding=${padding}`];
  if (c.transposed) args.push(`output_padding=${pair(c.oph, c.opw)}`);
  if (c.groups !== 1) args.push(`groups=${c.groups}`);
  if (c.dh !== 1 || c.dw !== 1) args.push(`dilation=${pair(c.dh, c.dw)}`);
  if (!c.transposed && c.pmode !== "zeros") args.push(`padding_mode='${c.pmode}'`);
  const layer = `nn.${c.transposed ? "ConvTranspose" : "Conv"}${kind}(${args.join(", ")})`;
  const input = c.rank === 1 ? `(1, ${c.cin}, ${c.W})` : `(1, ${c.cin}, ${c.H}, ${c.W})`;
  const output = c.rank === 1 ? `(1, ${c.cout}, ${Wo})` : `(1, ${c.cout}, ${Ho}, ${Wo})`;
  return `import torch\nfrom torch import nn\n\nlayer = ${layer}\nx = torch.randn${input}\nprint(layer(x).shape)  # torch.Size([${output.slice(1, -1)}])`;
}

// ---------------------------------------------------------------- configuration mode
const page = { c: null, x: null, w: null, b: null, out: null, current: null, timer: null };

function weightLength(c) { return c.transposed ? c.cin * (c.cout / c.groups) * c.kh * c.kw : c.cout * (c.cin / c.groups) * c.kh * c.kw; }

function exampleValues(c) {  // convlens explain's kind of numbers: input 0..2, weights -1..1, bias 0, 1, 2, ...
  const random = mulberry32(c.seed || 0), draw = (low, count) => Array.from({ length: count }, () => low + Math.floor(random() * 3));
  return { x: draw(0, c.cin * c.H * c.W), w: draw(-1, weightLength(c)), b: Array.from({ length: c.cout }, (_, i) => i) };
}

const CONTROLS = [["H", "H"], ["W", "W"], ["cin", "C_in"], ["cout", "C_out"], ["groups", "groups"], ["kh", "k_h"],
  ["kw", "k_w"], ["sh", "stride h"], ["sw", "stride w"], ["paddingText", "padding"], ["dh", "dilation h"],
  ["dw", "dilation w"], ["oph", "output_padding h"], ["opw", "output_padding w"]];

function controls(c) {
  const box = el("div", { id: "controls" });
  for (const [key, label] of CONTROLS) {
    if (c.rank === 1 && ["H", "kh", "sh", "dh", "oph"].includes(key)) continue;
    const input = el("input", { id: `ctl-${key}`, type: key === "paddingText" ? "text" : "number", value: String(c[key]),
                                onchange: update, "aria-label": label });
    if (key !== "paddingText") input.min = key.startsWith("op") ? "0" : "1";
    box.append(el("label", {}, label === "W" && c.rank === 1 ? "L" : label, input));
  }
  const mode = el("select", { id: "ctl-pmode", onchange: update });
  for (const m of ["zeros", "reflect", "replicate", "circular"]) mode.append(el("option", { value: m, text: m }));
  mode.value = c.pmode;
  const transposed = el("input", { id: "ctl-transposed", type: "checkbox", onchange: update });
  transposed.checked = c.transposed;
  box.append(el("label", {}, "padding_mode", mode), el("label", {}, "transposed", transposed));
  return box;
}

function readControls() {
  const c = { ...page.c };
  for (const [key] of CONTROLS) {
    const input = document.getElementById(`ctl-${key}`);
    if (input) c[key] = key === "paddingText" ? input.value : Number(input.value);
  }
  c.pmode = document.getElementById("ctl-pmode").value;
  c.transposed = document.getElementById("ctl-transposed").checked;
  return c;
}

function update() {
  const error = document.getElementById("error");
  let c;
  try { c = resolve(readControls()); } catch (e) { error.textContent = e.message; return; }
  error.textContent = "";
  const values = exampleValues(c);
  setState(c, values.x, values.w, values.b);
}

function setState(c, x, w, b) {
  stop();
  Object.assign(page, { c, x, w, b, out: convolve(c, x, w, b), current: null });
  document.getElementById("formula").textContent = formula(c);
  document.getElementById("code").textContent = pytorchCode(c);
  drawPanels();
  showOutput(0, 0, 0);
}

function cell(attrs, value, scale, text = true) {
  const node = el("div", { class: "cell", ...attrs });  // attrs may give its own class
  node.style.background = colour(value, scale);
  if (text) node.textContent = fmt(value);
  return node;
}

function grid(rows, cols, make) {
  const node = el("div", { class: "grid" });
  node.style.gridTemplateColumns = `repeat(${cols}, auto)`;
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) node.append(make(i, j));
  return node;
}

function drawPanels() {
  const { c, x, w, out } = page, [Ho, Wo] = outputSize(c), cinG = c.cin / c.groups, coutG = c.cout / c.groups;
  const panels = document.getElementById("panels");
  panels.replaceChildren();
  const scaleX = Math.max(...x.map(Math.abs)), scaleW = Math.max(...w.map(Math.abs)), scaleO = Math.max(...out.map(Math.abs));
  const rows = c.transposed ? c.H : c.H + c.pt + c.pb, cols = c.transposed ? c.W : c.W + c.pl + c.pr;
  const inputs = el("div", { class: "panel" }, el("div", { class: "panel-title", text:
    c.transposed ? "input x (hover a value: the outputs it spreads to)" : `input x, padded (${c.pmode}; grey: padding, showing the value it copies)` }));
  const kernels = el("div", { class: "panel" }, el("div", { class: "panel-title", text: "weights, one row of kernels per output channel" }));
  const outputs = el("div", { class: "panel" }, el("div", { class: "panel-title", text:
    c.transposed ? "output (small number: how many windows overlap there)" : "output (hover a value: its window and its sum)" }));
  for (let g = 0; g < c.groups; g++) {
    const inGroup = el("div", { class: "group" }, el("div", { class: "panel-title", text: c.groups > 1 ? `group ${g}` : "" }));
    const channelsRow = el("div", { class: "panels" });
    inGroup.append(channelsRow);
    for (let ci = g * cinG; ci < (g + 1) * cinG; ci++) {
      channelsRow.append(el("div", { class: "panel" }, el("div", { class: "panel-title", text: `channel ${ci}` }), grid(rows, cols, (pi, pj) => {
        const src = c.transposed ? [pi, pj] : source(c, pi, pj);
        const inside = c.transposed || (pi >= c.pt && pi < c.pt + c.H && pj >= c.pl && pj < c.pl + c.W);
        const value = src ? x[(ci * c.H + src[0]) * c.W + src[1]] : 0;
        const node = cell({ "data-input-cell": `${ci},${pi},${pj}`, onmouseenter: () => showInput(ci, pi, pj) }, value, scaleX, cols <= 24);
        if (!inside) { node.classList.add("pad"); node.style.background = ""; node.title = src ? `padding: a copy of x[${ci}, ${src[0]}, ${src[1]}]` : "padding: zero"; }
        return node;
      })));
    }
    const kernelGroup = el("div", { class: "group" }, el("div", { class: "panel-title", text: c.groups > 1 ? `group ${g}` : "" }));
    const weightOut = el("div", { class: "group" }, el("div", { class: "panel-title", text: c.groups > 1 ? `group ${g}` : "" }));
    const outputRow = el("div", { class: "panels" });
    weightOut.append(outputRow);
    for (let co = g * coutG; co < (g + 1) * coutG; co++) {
      const row = el("div", { class: "panels" });
      for (let cil = 0; cil < cinG; cil++) {
        const ci = g * cinG + cil;
        row.append(grid(c.kh, c.kw, (ky, kx) => {
          const index = c.transposed ? ((ci * coutG + (co - g * coutG)) * c.kh + ky) * c.kw + kx : ((co * cinG + cil) * c.kh + ky) * c.kw + kx;
          return cell({ "data-kernel-cell": `${co},${cil},${ky},${kx}` }, w[index], scaleW);
        }));
      }
      kernelGroup.append(el("div", { class: "panel-title", text: `filter ${co} (bias ${fmt(page.b[co])})` }), row);
      outputRow.append(el("div", { class: "panel" }, el("div", { class: "panel-title", text: `output channel ${co}` }), grid(Ho, Wo, (y, xx) => {
        const value = out[(co * Ho + y) * Wo + xx];
        const node = cell({ "data-output-cell": `${co},${y},${xx}`, "data-value": String(value), onmouseenter: () => showOutput(co, y, xx),
                            onclick: () => showOutput(co, y, xx) }, value, scaleO, Wo <= 24);
        if (c.transposed) node.append(el("sup", { text: String(taps(c, x, w, co, y, xx).length / cinG) }));
        return node;
      })));
    }
    inputs.append(inGroup); kernels.append(kernelGroup); outputs.append(weightOut);
  }
  panels.append(inputs, kernels, outputs);
  drawIm2col(0);
}

function clearMarks() {
  for (const name of ["lit", "feeds", "copy", "current", "both"]) {
    for (const node of document.querySelectorAll(`.${name}`)) node.classList.remove(name);
  }
}

function mark(selector, name) { const node = document.querySelector(selector); if (node) node.classList.add(name); }

function showOutput(co, y, xx) {
  const { c, x, w, b, out } = page, [Ho, Wo] = outputSize(c), cinG = c.cin / c.groups;
  page.current = [co, y, xx];
  clearMarks();
  const list = taps(c, x, w, co, y, xx);
  mark(`[data-output-cell="${co},${y},${xx}"]`, "current");
  for (const t of list) {
    mark(`[data-input-cell="${t.ci},${t.pi},${t.pj}"]`, "lit");
    mark(`[data-kernel-cell="${co},${t.cil},${t.ky},${t.kx}"]`, "lit");
  }
  const value = out[(co * Ho + y) * Wo + xx], lines = [];
  const where = c.rank === 1 ? `${xx}` : `${y}, ${xx}`;
  if (c.transposed) {
    lines.push(`output[${co}, ${where}]: every input value whose window lands here, times the weight tap it lands with`);
  } else {
    lines.push(`output[${co}, ${where}] = sum over channels ci and taps (ky, kx) of w[${co}, ci, ky, kx] * x_padded[ci, ${y}*${c.sh} + ky*${c.dh}, ${xx}*${c.sw} + kx*${c.dw}] + b[${co}]`);
  }
  const partials = [];
  for (let cil = 0; cil < cinG; cil++) {
    const mine = list.filter((t) => t.cil === cil);
    const total = mine.reduce((s, t) => s + t.wv * t.xv, 0);
    partials.push({ text: fmt(total), value: total });
    const products = mine.map((t) => ({ text: `${factor(t.wv)}*${factor(t.xv)}`, value: 1 }));
    lines.push(`channel ${mine.length ? mine[0].ci : cil}: ${products.length ? sumText(products) : "(no window lands here)"} = ${fmt(total)}`);
  }
  lines.push(`sum: ${sumText(partials)} + bias ${fmt(b[co])} = ${fmt(value)}`);
  document.getElementById("explanation").textContent = lines.join("\n");
  if (!c.transposed) drawIm2col(Math.floor(co / (c.cout / c.groups)), co, y * Wo + xx);
}

function showInput(ci, pi, pj) {
  const { c, x } = page;
  clearMarks();
  let positions = [[pi, pj]], src = c.transposed ? [pi, pj] : source(c, pi, pj);
  if (!c.transposed && src) {  // the value itself and every padding cell that copies it
    positions = [];
    for (let qi = 0; qi < c.H + c.pt + c.pb; qi++) for (let qj = 0; qj < c.W + c.pl + c.pr; qj++) {
      const s = source(c, qi, qj);
      if (s && s[0] === src[0] && s[1] === src[1]) positions.push([qi, qj]);
    }
  }
  for (const [qi, qj] of positions) mark(`[data-input-cell="${ci},${qi},${qj}"]`, qi === pi && qj === pj ? "current" : "copy");
  const fed = [...new Map(fedBy(c, positions, ci).map((f) => [`${f.co},${f.y},${f.x}`, f])).values()];  // each output once
  for (const f of fed) mark(`[data-output-cell="${f.co},${f.y},${f.x}"]`, "feeds");
  const value = src ? x[(ci * c.H + src[0]) * c.W + src[1]] : 0;
  const name = src ? `x[${ci}, ${c.rank === 1 ? src[1] : src.join(", ")}] = ${fmt(value)}` : `a zero of the padding`;
  const copies = positions.length > 1 ? ` (with its ${positions.length - 1} padding copies)` : "";
  const lines = [`${name}${copies} feeds ${fed.length} output value${fed.length === 1 ? "" : "s"}:`];
  for (const f of fed.slice(0, 16)) lines.push(`  output[${f.co}, ${c.rank === 1 ? f.x : `${f.y}, ${f.x}`}] through weight tap (${f.ky}, ${f.kx})`);
  if (fed.length > 16) lines.push(`  ... and ${fed.length - 16} more`);
  document.getElementById("explanation").textContent = lines.join("\n");
}

function drawIm2col(g, co = null, column = null) {  // X_col (C_in/G*k_h*k_w, L) of group g and W_row (C_out/G, ...)
  const box = document.getElementById("im2col");
  const { c, x, w } = page;
  if (c.transposed) { box.replaceChildren(el("div", { class: "note", text: "A transposed convolution is col2im(W_row^T @ X): see convlens explain --transposed for its matrices." })); return; }
  const [Ho, Wo] = outputSize(c), cinG = c.cin / c.groups, coutG = c.cout / c.groups, K = cinG * c.kh * c.kw, L = Ho * Wo;
  const rowName = (r) => { const cil = Math.floor(r / (c.kh * c.kw)), ky = Math.floor(r / c.kw) % c.kh, kx = r % c.kw; return [cil, ky, kx]; };
  const whole = K * L <= 2400;
  const columns = whole ? [...Array(L).keys()] : column === null ? [0] : [column];
  const xcol = el("table", { class: "matrix", id: "xcol" });
  xcol.append(el("tr", {}, el("th", { text: "" }), ...columns.map((l) => el("th", { text: c.rank === 1 ? `${l}` : `${Math.floor(l / Wo)},${l % Wo}` }))));
  for (let r = 0; r < K; r++) {
    const [cil, ky, kx] = rowName(r), ci = g * cinG + cil, tr = el("tr", {}, el("th", { text: `c${ci} ${c.rank === 1 ? kx : `${ky},${kx}`}` }));
    for (const l of columns) {
      const pi = Math.floor(l / Wo) * c.sh + ky * c.dh, pj = (l % Wo) * c.sw + kx * c.dw, src = source(c, pi, pj);
      const td = el("td", { text: fmt(src ? x[(ci * c.H + src[0]) * c.W + src[1]] : 0), "data-xcol": `${r},${l}` });
      if (l === column) td.className = "lit";
      tr.append(td);
    }
    xcol.append(tr);
  }
  const wrow = el("table", { class: "matrix", id: "wrow" });
  wrow.append(el("tr", {}, el("th", { text: "" }), ...[...Array(K).keys()].map((r) => { const [cil, ky, kx] = rowName(r); return el("th", { text: `c${g * cinG + cil} ${ky},${kx}` }); })));
  for (let o = g * coutG; o < (g + 1) * coutG; o++) {
    const tr = el("tr", {}, el("th", { text: `filter ${o}` }));
    for (let r = 0; r < K; r++) { const td = el("td", { text: fmt(w[o * K + r]), "data-wrow": `${o},${r}` }); if (o === co) td.className = "lit"; tr.append(td); }
    wrow.append(tr);
  }
  const title = co === null ? `im2col for group ${g}` : `output[${co}, ...] = W_row[${co}] . X_col[:, ${column}] + b[${co}]: the highlighted row times the highlighted column`;
  box.replaceChildren(
    el("div", { class: "panel-title", text: `${title}. X_col is ${K} x ${L} (C_in/G*k_h*k_w rows, one column per output position)${whole ? "" : "; too large to draw whole, its one column"}` }),
    el("div", { class: "panels" }, el("div", { class: "panel" }, el("div", { class: "panel-title", text: `W_row (${coutG} x ${K})` }), wrow),
       el("div", { class: "panel" }, el("div", { class: "panel-title", text: "X_col" }), xcol)));
}

function step(by) {
  const [Ho, Wo] = outputSize(page.c), [co, y, xx] = page.current || [0, 0, -1];
  const index = (((y * Wo + xx + by) % (Ho * Wo)) + Ho * Wo) % (Ho * Wo);
  showOutput(co, Math.floor(index / Wo), index % Wo);
}
function play() {
  const button = document.getElementById("play");
  if (page.timer) { stop(); return; }
  button.textContent = "pause";
  page.timer = setInterval(() => step(1), 800);
}
function stop() { if (page.timer) clearInterval(page.timer); page.timer = null; const b = document.getElementById("play"); if (b) b.textContent = "play"; }

function configurationPage() {
  const c = resolve(DATA.config);
  const app = document.getElementById("app");
  app.append(
    controls(c), el("div", { id: "error" }),
    el("h2", { text: "Output size" }), el("pre", { id: "formula" }),
    el("h2", { text: "The same layer in PyTorch" }), el("pre", { id: "code" }),
    el("div", { id: "player" }, el("button", { text: "first", onclick: () => { stop(); showOutput(page.current ? page.current[0] : 0, 0, 0); } }),
       el("button", { text: "step back", onclick: () => { stop(); step(-1); } }), el("button", { id: "play", text: "play", onclick: play }),
       el("button", { text: "step", onclick: () => { stop(); step(1); } })),
    el("div", { id: "explanation" }), el("div", { id: "panels", class: "panels" }),
    el("h2", { text: "im2col: the same numbers as one matrix product" }), el("div", { id: "im2col" }));
  setState(c, DATA.x, DATA.w, DATA.b);
  selfCheck(convolve(c, DATA.x, DATA.w, DATA.b), DATA.out, null);
}

// ---------------------------------------------------------------- model mode
function modelPage() {
  const m = DATA.model, c = resolve(m.config, false);
  const x = decode(m.input), w = decode(m.weight), b = m.bias ? decode(m.bias) : null, out = decode(m.output);
  const [Ho, Wo] = outputSize(c), cinG = c.cin / c.groups;
  Object.assign(page, { c, x, w, b, out });
  const app = document.getElementById("app");
  const channel = el("select", { id: "ctl-channel", onchange: () => drawModel() });
  for (let co = 0; co < c.cout; co++) channel.append(el("option", { value: String(co), text: `output channel ${co}` }));
  const inputChannel = el("select", { id: "ctl-input-channel", onchange: () => drawModel() });
  for (let ci = 0; ci < cinG; ci++) inputChannel.append(el("option", { value: String(ci), text: `input channel ${ci} of the group` }));
  const image = el("img", { src: m.image, width: String(m.imageSize[1] * 2), height: String(m.imageSize[0] * 2), alt: "the input image" });
  const box = el("div", { id: "field-box" });
  app.append(
    el("pre", { text: `${m.name}.${m.layer}: ${m.repr}\ninput ${m.inputShape.join("x")} (from ${m.source}) -> output ${[c.cout, Ho, Wo].join("x")}` }),
    el("div", {}, channel, " ", inputChannel), el("div", { id: "explanation" }),
    el("div", { class: "panels" },
       el("div", { class: "panel" }, el("div", { class: "panel-title", text: "the image fed to the model; the box: the receptive field of the hovered output" }),
          el("div", { id: "image-wrap" }, image, box)),
       el("div", { class: "panel" }, el("div", { class: "panel-title", text: "the layer's input, one channel; the box: the window" }),
          el("div", { id: "input-wrap", style: "position: relative; width: max-content" }, el("canvas", { id: "input-map" }), el("div", { id: "window-box", class: "window-box" }))),
       el("div", { class: "panel" }, el("div", { class: "panel-title", text: "its kernel" }), el("div", { id: "model-kernel" })),
       el("div", { class: "panel" }, el("div", { class: "panel-title", text: "the layer's output (the module's own values)" }), el("div", { id: "model-output" }))));
  drawModel();
  const budget = 2e8, perChannel = Ho * Wo * cinG * c.kh * c.kw, channels = Math.max(1, Math.min(c.cout, Math.floor(budget / perChannel)));
  const mine = convolve(c, x, w, b, channels);
  // the module computed in float32: allow 1e-4 of the sum of |products| (a few hundred float32 roundings)
  selfCheck(mine, out.subarray(0, channels * Ho * Wo), (i) => 1e-4 * mine.magnitude[i] + 1e-6,
            channels < c.cout ? ` (the first ${channels} of ${c.cout} channels)` : "");
}

function inputScale(c) { return Math.max(1, Math.floor(300 / Math.max(c.H, c.W))); }

function drawModel() {
  const { c, x, w, out } = page, [Ho, Wo] = outputSize(c), co = Number(document.getElementById("ctl-channel").value);
  const cinG = c.cin / c.groups, cil = Number(document.getElementById("ctl-input-channel").value);
  const ci = Math.floor(co / (c.cout / c.groups)) * cinG + cil, plane = x.subarray(ci * c.H * c.W, (ci + 1) * c.H * c.W);
  const canvas = document.getElementById("input-map"), s = inputScale(c), context = canvas.getContext("2d");
  canvas.width = c.W * s; canvas.height = c.H * s;
  const top = Math.max(...plane.map(Math.abs));
  for (let i = 0; i < c.H; i++) for (let j = 0; j < c.W; j++) {
    context.fillStyle = colour(plane[i * c.W + j], top) === "white" ? "#fff" : colour(plane[i * c.W + j], top);
    context.fillRect(j * s, i * s, s, s);
  }
  const kernel = w.subarray((co * cinG + cil) * c.kh * c.kw, (co * cinG + cil + 1) * c.kh * c.kw), wide = Math.max(...kernel.map(Math.abs));
  document.getElementById("model-kernel").replaceChildren(el("div", { class: "panel-title", text: `w[${co}, ${cil}]` }),
    grid(c.kh, c.kw, (ky, kx) => cell({ class: "cell wide", "data-kernel-cell": `${co},${cil},${ky},${kx}` }, kernel[ky * c.kw + kx], wide, c.kw <= 7)));
  const values = out.subarray(co * Ho * Wo, (co + 1) * Ho * Wo), scale = Math.max(...values.map(Math.abs));
  const small = Wo > 24;
  document.getElementById("model-output").replaceChildren(grid(Ho, Wo, (y, xx) => {
    const node = cell({ "data-output-cell": `${co},${y},${xx}`, "data-value": String(values[y * Wo + xx]),
                        onmouseenter: () => showModelOutput(co, y, xx), onclick: () => showModelOutput(co, y, xx) }, values[y * Wo + xx], scale, !small);
    if (small) node.classList.add("small");
    return node;
  }));
  showModelOutput(co, Math.floor(Ho / 2), Math.floor(Wo / 2));
}

function showModelOutput(co, y, xx) {
  const { c, x, w, b, out } = page, m = DATA.model, [Ho, Wo] = outputSize(c), cinG = c.cin / c.groups;
  clearMarks();
  mark(`[data-output-cell="${co},${y},${xx}"]`, "current");
  const list = taps(c, x, w, co, y, xx), byChannel = new Map();
  for (const t of list) byChannel.set(t.ci, (byChannel.get(t.ci) || 0) + t.wv * t.xv);
  const total = [...byChannel.values()].reduce((s, v) => s + v, 0) + (b ? b[co] : 0);
  const own = out[(co * Ho + y) * Wo + xx];
  const top = [...byChannel.entries()].sort((p, q) => Math.abs(q[1]) - Math.abs(p[1])).slice(0, 5);
  const f = m.field, lines = [
    `output[0, ${co}, ${y}, ${xx}] by hand: ${list.length} products (${cinG} channels x ${c.kh}x${c.kw} taps) + bias ${b ? fmt(b[co]) : 0} = ${fmt(total)}`,
    `the module's own output: ${fmt(own)}   |difference| ${Math.abs(total - own).toExponential(1)}`,
    `largest channel sums: ${top.map(([ci, v]) => `channel ${ci}: ${fmt(v)}`).join(", ")}`];
  const s = inputScale(c), windowBox = document.getElementById("window-box");
  const first = [y * c.sh - c.pt, xx * c.sw - c.pl], span = [(c.kh - 1) * c.dh + 1, (c.kw - 1) * c.dw + 1];
  Object.assign(windowBox.style, { top: `${first[0] * s}px`, left: `${first[1] * s}px`, height: `${span[0] * s}px`, width: `${span[1] * s}px` });
  lines.push(`its window on the input: rows ${first[0]}..${first[0] + span[0] - 1}, columns ${first[1]}..${first[1] + span[1] - 1} of ${c.H}x${c.W} (negative or past the edge: padding)`);
  if (f) {
    const top0 = f.start[0] + y * f.jump[0], left0 = f.start[1] + xx * f.jump[1];
    lines.push(`receptive field ${f.size[0]}x${f.size[1]} (jump ${f.jump[0]}): rows ${top0}..${top0 + f.size[0] - 1}, columns ${left0}..${left0 + f.size[1] - 1} of the ${m.imageSize[0]}x${m.imageSize[1]} image`);
    const box = document.getElementById("field-box"), zoom = 2;  // the image is drawn at twice its size
    const t = Math.max(0, top0), l = Math.max(0, left0);
    const bottom = Math.min(m.imageSize[0], top0 + f.size[0]), right = Math.min(m.imageSize[1], left0 + f.size[1]);
    Object.assign(box.style, { top: `${t * zoom}px`, left: `${l * zoom}px`, height: `${(bottom - t) * zoom}px`, width: `${(right - l) * zoom}px` });
  }
  document.getElementById("explanation").textContent = lines.join("\n");
}

// ---------------------------------------------------------------- self-check
function selfCheck(mine, theirs, tolerance, note = "") {
  let worst = 0, failed = 0;
  for (let i = 0; i < theirs.length; i++) {
    const difference = Math.abs(mine[i] - theirs[i]);
    worst = Math.max(worst, difference);
    const allowed = tolerance ? tolerance(i) : 1e-9 * (1 + Math.abs(theirs[i]));
    if (!(difference <= allowed)) failed++;
  }
  const pass = failed === 0 && mine.length >= theirs.length;
  document.body.dataset.selfcheck = pass ? "pass" : "fail";
  document.body.dataset.selfcheckDifference = String(worst);
  const badge = document.getElementById("selfcheck");
  badge.className = pass ? "pass" : "fail";
  badge.textContent = `self-check ${pass ? "passed" : `FAILED at ${failed} values`}: this page's JavaScript recomputed ${theirs.length} output values${note}; max |difference| from convlens's ${worst.toExponential(1)}`;
}

window.explore = {
  state: () => ({ config: page.c, x: Array.from(page.x), w: Array.from(page.w), b: page.b ? Array.from(page.b) : null,
                  out: Array.from(page.out), outputSize: outputSize(page.c) }),
  showOutput: (co, y, x) => (DATA.mode === "model" ? showModelOutput(co, y, x) : showOutput(co, y, x)),
  showInput,
};

document.getElementById("made-by").textContent = DATA.madeBy;
try {
  if (DATA.mode === "model") modelPage(); else configurationPage();
} catch (error) {
  document.body.dataset.selfcheck = "fail";
  document.getElementById("selfcheck").textContent = `self-check failed: ${error.message}`;
  throw error;
}
