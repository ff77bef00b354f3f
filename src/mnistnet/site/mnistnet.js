// The trained network, run in the page: the forward pass and softmax of
// src/mnistnet/nn/model.py, and the MNIST normalization of src/mnistnet/data/images.py, in
// plain JavaScript. The weights come from model.js, which the pipeline's site stage writes.
//
//   mnistnet.predict(pixels)                → ten probabilities (an Array)
//   mnistnet.normalize(rgba, width, height) → pixels: 784 numbers in [0, 1]
//   mnistnet.facts                          → what made the model (params, test accuracy)
//
// pixels: 784 numbers in [0, 1], row-major, light ink on black, scaled as the preprocess
// stage scales them (a byte / 255). rgba: an ImageData's data (4 bytes a pixel).
"use strict";

window.mnistnet = (() => {
  const SIDE = 28; // pixels per side of an image
  const PIXELS = SIDE * SIDE; // 784: d, the network's input
  const CLASSES = 10; // k
  const LOGIT_FLOOR = -60; // as in model.py: e^-60 rather than less (no subnormal floats)

  // --- the network (nn/model.py) -----------------------------------------------------------

  // model.js: W1 (d, h), b1 (h,), W2 (h, k), b2 (k,), row-major float32, little-endian (as
  // every browser's Float32Array is), concatenated and base64-encoded.
  function unpack({ weights, hidden_size: h }) {
    const bytes = Uint8Array.from(atob(weights), (c) => c.charCodeAt(0));
    const all = new Float32Array(bytes.buffer);
    let at = 0;
    const take = (n) => all.subarray(at, (at += n));
    return { W1: take(PIXELS * h), b1: take(h), W2: take(h * CLASSES), b2: take(CLASSES), h };
  }

  // Hidden activations H (h) and logits Z2 (k) for one input X (d): Z = X @ W + b.
  function forward({ W1, b1, W2, b2, h }, X) {
    const H = Float64Array.from(b1); // (h)  Z1 = X @ W1 + b1
    for (let i = 0; i < PIXELS; i++) {
      if (X[i] === 0) continue; // most of a digit is background: nothing to add
      const row = i * h;
      for (let j = 0; j < h; j++) H[j] += X[i] * W1[row + j];
    }
    for (let j = 0; j < h; j++) H[j] = Math.max(H[j], 0); // ReLU
    const Z2 = Float64Array.from(b2); // (k)  logits: H @ W2 + b2
    for (let j = 0; j < h; j++) {
      if (H[j] === 0) continue;
      for (let c = 0; c < CLASSES; c++) Z2[c] += H[j] * W2[j * CLASSES + c];
    }
    return { H, Z2 };
  }

  // Probabilities (k) from logits (k); they sum to 1. Subtracting the max makes the largest
  // exponent e^0 = 1, so exp cannot overflow.
  function softmax(Z2) {
    const max = Math.max(...Z2);
    const exp = Z2.map((z) => Math.exp(Math.max(z - max, LOGIT_FLOOR)));
    const sum = exp.reduce((a, b) => a + b, 0);
    return Array.from(exp, (e) => e / sum);
  }

  const params = unpack(window.MNISTNET_MODEL);

  function predict(pixels) {
    if (pixels.length !== PIXELS) {
      throw new RangeError(`predict takes ${PIXELS} pixels (28×28, row-major), not ${pixels.length}`);
    }
    return softmax(forward(params, pixels).Z2);
  }

  // --- MNIST's normalization (data/images.py) ----------------------------------------------

  const BOX = 20; // the digit fits a 20×20 box inside the 28×28 field
  const INK_FRACTION = 0.2; // a pixel is ink above this share of the brightest
  const MIN_CONTRAST = 16; // less than this between paper and ink: a blank image
  const WORK_SIDE = 96; // larger images are first shrunk by a whole factor to about this

  // An RGBA image → gray (Pillow's "L"), transparent pixels on white paper.
  function grayOnWhite(rgba, n) {
    const gray = new Uint8Array(n);
    for (let p = 0; p < n; p++) {
      const a = rgba[4 * p + 3];
      const [r, g, b] = [0, 1, 2].map((c) => (rgba[4 * p + c] * a + 255 * (255 - a)) / 255);
      gray[p] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16; // ITU-R 601-2 luma
    }
    return gray;
  }

  // Pillow's Image.reduce: the mean of each factor × factor block (partial ones at the edges).
  function reduce(gray, width, height, factor) {
    const w = Math.ceil(width / factor), h = Math.ceil(height / factor);
    const out = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let sum = 0, count = 0;
        for (let yy = y * factor; yy < Math.min((y + 1) * factor, height); yy++) {
          for (let xx = x * factor; xx < Math.min((x + 1) * factor, width); xx++) {
            sum += gray[yy * width + xx];
            count++;
          }
        }
        out[y * w + x] = Math.round(sum / count);
      }
    }
    return { gray: out, width: w, height: h };
  }

  // Pillow's Lanczos resize of a float image (Image.resize(size, LANCZOS) in mode "F"):
  // rows first, then columns, each output pixel a weighted sum over ±3 input pixels (scaled
  // up when shrinking), weights normalized to sum to 1.
  function lanczos(x) {
    const sinc = (t) => (t === 0 ? 1 : Math.sin(Math.PI * t) / (Math.PI * t));
    return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
  }

  function resample1d(src, inSize, outSize, count, stride, step) {
    // src: `count` lines of `inSize` samples, sample i of line l at l * stride + i * step
    const scale = inSize / outSize, filterScale = Math.max(scale, 1), support = 3 * filterScale;
    const out = new Float32Array(outSize * count);
    for (let o = 0; o < outSize; o++) {
      const center = (o + 0.5) * scale;
      const lo = Math.max(Math.trunc(center - support + 0.5), 0);
      const hi = Math.min(Math.trunc(center + support + 0.5), inSize);
      const k = [];
      for (let i = lo; i < hi; i++) k.push(lanczos((i - center + 0.5) / filterScale));
      const total = k.reduce((a, b) => a + b, 0);
      for (let l = 0; l < count; l++) {
        let s = 0;
        for (let i = lo; i < hi; i++) s += src[l * stride + i * step] * (k[i - lo] / total);
        out[l * outSize + o] = s; // (count, outSize)
      }
    }
    return out;
  }

  function resize(image, width, height, w, h) {
    const rows = resample1d(image, width, w, height, width, 1); // (height, w)
    const cols = resample1d(rows, height, h, w, 1, w); // (w, h): transposed
    const out = new Float32Array(w * h);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = cols[x * h + y];
    return out;
  }

  // Python's round(): halves to the even neighbour, as NumPy's np.round too.
  function roundHalfEven(v) {
    const r = Math.round(v);
    return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  // Gray (height, width) of a digit → 784 pixels: light ink on black, cropped to the ink,
  // boxed into 20×20 keeping the aspect ratio, centred by mass in 28×28, scaled to [0, 1].
  function centred(gray, width, height) {
    const border = [];
    for (let x = 0; x < width; x++) border.push(gray[x], gray[(height - 1) * width + x]);
    for (let y = 0; y < height; y++) border.push(gray[y * width], gray[y * width + width - 1]);
    border.sort((a, b) => a - b);
    let paper = border[border.length >> 1]; // the median: the paper's level
    const light = paper > 127; // dark ink on light paper: make it MNIST's light on dark
    if (light) paper = 255 - paper;
    const ink = Int16Array.from(gray, (v) => (light ? 255 - v : v) - paper); // paper → 0
    const peak = Math.max(...ink);
    if (peak < MIN_CONTRAST) {
      throw new Error("no ink found: the image is blank or has almost no contrast");
    }
    let top = height, bottom = -1, left = width, right = -1; // the ink's bounding box
    ink.forEach((v, p) => {
      if (v <= INK_FRACTION * peak) return;
      const y = Math.floor(p / width), x = p % width;
      [top, bottom, left, right] = [Math.min(top, y), Math.max(bottom, y), Math.min(left, x), Math.max(right, x)];
    });
    const h = bottom - top + 1, w = right - left + 1;
    const gain = Math.fround(255 / peak);
    const crop = new Float32Array(w * h);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) crop[y * w + x] = Math.max(ink[(top + y) * width + left + x], 0) * gain;
    }
    const scale = BOX / Math.max(h, w);
    const bw = Math.max(1, roundHalfEven(w * scale)), bh = Math.max(1, roundHalfEven(h * scale));
    const boxed = resize(crop, w, h, bw, bh).map((v) => Math.min(Math.max(v, 0), 255));

    let total = 0, cy = 0, cx = 0; // the centre of mass
    boxed.forEach((v, p) => {
      total += v;
      cy += v * Math.floor(p / bw);
      cx += v * (p % bw);
    });
    const y0 = Math.min(Math.max(roundHalfEven(SIDE / 2 - cy / total), 0), SIDE - bh);
    const x0 = Math.min(Math.max(roundHalfEven(SIDE / 2 - cx / total), 0), SIDE - bw);
    const pixels = new Array(PIXELS).fill(0);
    boxed.forEach((v, p) => {
      const y = y0 + Math.floor(p / bw), x = x0 + (p % bw);
      pixels[y * SIDE + x] = Math.fround(roundHalfEven(v) / 255);
    });
    return pixels;
  }

  function normalize(rgba, width, height) {
    let image = { gray: grayOnWhite(rgba, width * height), width, height };
    const factor = Math.floor(Math.max(width, height) / WORK_SIDE);
    if (factor > 1) image = reduce(image.gray, width, height, factor); // loses nothing at 20 px
    return centred(image.gray, image.width, image.height);
  }

  return { predict, normalize, facts: window.MNISTNET_MODEL.facts, SIDE };
})();
