// Drawing pad → POST /api/predict (a PNG) → the digit, ten bars, and the 28×28 input.
// No libraries: pointer events cover mouse, touch and pen alike.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const seen = document.getElementById("seen").getContext("2d");
const digit = document.getElementById("digit");
const message = document.getElementById("message");
const bars = document.getElementById("bars");
const EMPTY = message.textContent; // what to do before anything is drawn
const INK_WIDTH = 20; // px on the 280 px pad: MNIST strokes are ~2-3 of 28 px wide
let latest = 0; // the number of the newest request: answers to older ones are dropped

function clearPad() {
  latest += 1; // an answer still on its way is for a drawing that is gone
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  digit.value = "–";
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
    const mine = request(); // numbered now: toBlob answers later
    pad.toBlob((blob) => send(blob, "image/png", mine), "image/png");
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

let inflight = 0; // requests not answered yet, shown as pad.dataset.pending (tests wait on it)

function request() {
  pad.dataset.pending = ++inflight;
  return ++latest;
}

async function send(body, type, mine) {
  let reply;
  try {
    const response = await fetch("/api/predict", {
      method: "POST", headers: { "Content-Type": type }, body,
    });
    reply = await response.json();
  } catch (error) {
    if (mine === latest) showError(`the server did not answer (${error.message})`);
    return;
  } finally {
    pad.dataset.pending = --inflight;
  }
  if (mine !== latest) return; // a later stroke was sent meanwhile: its answer wins
  if (reply.error) return showError(reply.error);
  showPrediction(reply);
}

function showError(text) {
  digit.textContent = "?";
  message.textContent = text;
  message.className = "message error";
  bars.replaceChildren();
}

function showPrediction({ digit: best, probabilities, normalized }) {
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
  normalized.forEach((v, i) => {
    const level = Math.round(255 * v);
    image.data.set([level, level, level, 255], 4 * i);
  });
  seen.putImageData(image, 0, 0);
}

function sendFile(file) {
  if (!file) return;
  if (!["image/png", "image/jpeg"].includes(file.type)) {
    return showError(`${file.name} is not a PNG or JPEG`);
  }
  clearPad();
  const url = URL.createObjectURL(file);
  const img = new Image();
  img.onload = () => {  // show it on the pad, scaled to fit; the original bytes are sent
    const scale = Math.min(pad.width / img.width, pad.height / img.height);
    const w = img.width * scale, h = img.height * scale;
    ctx.drawImage(img, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    URL.revokeObjectURL(url);
  };
  img.src = url;
  send(file, file.type, request());
}

document.getElementById("clear").addEventListener("click", clearPad);
document.getElementById("file").addEventListener("change", (e) => sendFile(e.target.files[0]));
pad.addEventListener("dragover", (e) => { e.preventDefault(); pad.classList.add("dragging"); });
pad.addEventListener("dragleave", () => pad.classList.remove("dragging"));
pad.addEventListener("drop", (e) => {
  e.preventDefault();
  pad.classList.remove("dragging");
  sendFile(e.dataTransfer.files[0]);
});

function augmentation(copies, shift) {
  const parts = [];
  if (copies) parts.push(`${copies} distorted copies`);
  if (shift) parts.push(`±${shift} px shift per epoch`);
  return parts.length ? parts.join(", ") : "none";
}

async function showFacts() {
  const facts = await (await fetch("/api/model")).json();
  const t = facts.train || {};
  const a = facts.augment;
  const rows = [
    ["network", `784 → ${facts.hidden_size} (ReLU) → 10`],
    ["test accuracy", facts.test_accuracy == null ? "not measured (run dvc repro)"
      : `${(100 * facts.test_accuracy).toFixed(2)} %`],
    ["training", `${t.epochs} epochs, ${t.optimizer}, lr ${t.lr} (${t.lr_schedule}), ` +
      `batch ${t.batch_size || "full"}, ${t.dtype}, seed ${t.seed}`],
    ["augmentation", augmentation(a && a.copies, t.shift)],
    ["file", facts.model],
  ];
  const list = document.getElementById("facts");
  list.replaceChildren(...rows.flatMap(([k, v]) => {
    const dt = document.createElement("dt");
    const dd = document.createElement("dd");
    dt.textContent = k;
    dd.textContent = v;
    return [dt, dd];
  }));
}

clearPad();
showFacts();
