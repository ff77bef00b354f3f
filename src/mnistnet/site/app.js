// The page: a drawing pad, or an opened or dropped image → mnistnet.normalize → predict →
// the digit, ten bars, and the 28×28 input. No libraries, no server: pointer events cover
// mouse, touch and pen alike, and the network runs here (mnistnet.js).
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d", { willReadFrequently: true });
const seen = document.getElementById("seen").getContext("2d");
const digit = document.getElementById("digit");
const message = document.getElementById("message");
const bars = document.getElementById("bars");
const EMPTY = message.textContent; // what to do before anything is drawn
const INK_WIDTH = 20; // px on the 280 px pad: MNIST strokes are ~2-3 of 28 px wide
const MAX_PIXELS = 40_000_000; // as data/images.py: larger images are not read

function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  digit.textContent = "–";
  message.textContent = EMPTY;
  message.className = "message";
  bars.replaceChildren();
  seen.clearRect(0, 0, 28, 28);
}

function padPoint(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width,
          (event.clientY - box.top) * pad.height / box.height];
}

let last = null;
pad.addEventListener("pointerdown", (event) => {
  pad.setPointerCapture(event.pointerId);
  last = padPoint(event);
  stroke(last, last);
});
pad.addEventListener("pointermove", (event) => {
  if (last === null) return;
  const point = padPoint(event);
  stroke(last, point);
  last = point;
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (last === null) return;
    last = null;
    read(ctx.getImageData(0, 0, pad.width, pad.height));
  });
}

function stroke(from, to) {
  ctx.strokeStyle = "#000";
  ctx.lineWidth = INK_WIDTH;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(...from);
  ctx.lineTo(...to);
  ctx.stroke();
}

// An image's pixels → the model's answer on the page (pad.dataset.answered counts them).
function read({ data, width, height }) {
  let pixels;
  try {
    pixels = mnistnet.normalize(data, width, height);
  } catch (error) {
    showError(error.message);
    return;
  }
  showPrediction(mnistnet.predict(pixels), pixels);
  pad.dataset.answered = String(Number(pad.dataset.answered || 0) + 1);
}

function showError(text) {
  digit.textContent = "?";
  message.textContent = text;
  message.className = "message error";
  bars.replaceChildren();
}

function showPrediction(probabilities, pixels) {
  const best = probabilities.indexOf(Math.max(...probabilities));
  digit.textContent = String(best);
  message.textContent = `${(100 * probabilities[best]).toFixed(1)} % sure`;
  message.className = "message";
  bars.replaceChildren(...probabilities.map((p, d) => {
    const item = document.createElement("li");
    item.className = d === best ? "top" : "";
    item.innerHTML = `<span>${d}</span><span class="bar"><span class="fill"></span></span>` +
      `<span class="pct">${(100 * p).toFixed(1)} %</span>`;
    item.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    return item;
  }));
  const image = seen.createImageData(28, 28);
  pixels.forEach((v, i) => {
    const level = Math.round(255 * v);
    image.data.set([level, level, level, 255], 4 * i);
  });
  seen.putImageData(image, 0, 0);
}

// A PNG or JPEG file: decoded by the browser (upright by its EXIF orientation), read at its
// own size as data/images.py reads it, and shown on the pad, scaled to fit.
async function openFile(file) {
  if (!file) return;
  if (!["image/png", "image/jpeg"].includes(file.type)) {
    return showError(`${file.name} is not a PNG or JPEG`);
  }
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return showError(`${file.name} could not be decoded as an image`);
  }
  if (bitmap.width * bitmap.height > MAX_PIXELS) {
    return showError(`${file.name} has ${bitmap.width}×${bitmap.height} pixels; at most ` +
      `${MAX_PIXELS.toLocaleString("en")} are read`);
  }
  clearPad();
  const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
  const w = bitmap.width * scale, h = bitmap.height * scale;
  ctx.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
  const full = new OffscreenCanvas(bitmap.width, bitmap.height).getContext("2d");
  full.drawImage(bitmap, 0, 0);
  read(full.getImageData(0, 0, bitmap.width, bitmap.height));
}

document.getElementById("clear").addEventListener("click", clearPad);
document.getElementById("file").addEventListener("change", (e) => openFile(e.target.files[0]));
pad.addEventListener("dragover", (e) => { e.preventDefault(); pad.classList.add("dragging"); });
pad.addEventListener("dragleave", () => pad.classList.remove("dragging"));
pad.addEventListener("drop", (e) => {
  e.preventDefault();
  pad.classList.remove("dragging");
  openFile(e.dataTransfer.files[0]);
});

function augmentation(copies, shift) {
  const parts = [];
  if (copies) parts.push(`${copies} distorted copies`);
  if (shift) parts.push(`±${shift} px shift per epoch`);
  return parts.length ? parts.join(", ") : "none";
}

function showFacts(facts) {
  const t = facts.train;
  const rows = [
    ["network", `784 → ${facts.hidden_size} (ReLU) → 10`],
    ["test accuracy", facts.test_accuracy === null ? "not measured"
      : `${(100 * facts.test_accuracy).toFixed(2)} %`],
    ["training", `${t.epochs} epochs, ${t.optimizer}, lr ${t.lr} (${t.lr_schedule}), ` +
      `batch ${t.batch_size || "full"}, ${t.dtype}, seed ${t.seed}`],
    ["augmentation", augmentation(facts.augment && facts.augment.copies, t.shift)],
    ["model", `md5 ${facts.model_md5} (as dvc.lock lists data/model/model.npz)`],
  ];
  document.getElementById("facts").replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = k;
    dd.textContent = v;
    return [dt, dd];
  }));
}

clearPad();
showFacts(mnistnet.facts);
