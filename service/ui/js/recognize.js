// The Recognize screen: a photo in, its boxes drawn with label, score and source, candidates, timings.

import { formData, request } from "./api.js";
import { $, describeError, formatScore, h, showError, svg } from "./dom.js";
import { openEnrol } from "./enrol.js";
import { thumbnail } from "./thumbs.js";

const SLIDERS = [
  ["#min-score", "min_score", (value) => Number(value).toFixed(2)],
  ["#detection-threshold", "detection_threshold", (value) => Number(value).toFixed(2)],
  ["#max-detections", "max_detections", (value) => String(value)],
];

let photo = null; // { blob, name, url }
let sequence = 0; // only the answer to the latest request is shown
let rerunTimer;
// box labels keep one size on screen, whatever the photo's size in pixels and on the page
const LABEL_PX = 15;

function scaleLabels() {
  const shown = $("#photo").clientWidth;
  const width = $("#boxes").viewBox.baseVal?.width;
  if (shown && width) $("#boxes").style.setProperty("--label-size", `${(LABEL_PX * width) / shown}px`);
}

export function initRecognize(service) {
  const drop = $("#drop-zone");
  $("#photo-input").addEventListener("change", (event) => useFile(event.target.files[0], event.target));
  $("#camera-input").addEventListener("change", (event) => useFile(event.target.files[0], event.target));
  $("#camera-open").addEventListener("click", openCamera);
  $("#photo-choose").addEventListener("click", () => $("#photo-input").click());
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("is-over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("is-over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("is-over");
    useFile(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    if (document.getElementById("screen-recognize").hidden || event.target.closest?.("input, textarea")) return;
    const file = [...event.clipboardData.files].find((candidate) => candidate.type.startsWith("image/"));
    if (file) useFile(file);
  });
  for (const [selector, , show] of SLIDERS) {
    const input = $(selector);
    input.addEventListener("input", () => {
      input.dataset.touched = "yes"; // the service's defaults no longer overwrite it
      $(`${selector}-value`).textContent = show(input.value);
    });
  }
  $("#recognize-options").addEventListener("change", () => {
    clearTimeout(rerunTimer);
    rerunTimer = setTimeout(recognize, 200);
  });
  $("#recognize-options").addEventListener("submit", (event) => event.preventDefault());
  service.onInfo((info) => applyDefaults(info));
  new ResizeObserver(scaleLabels).observe($("#photo"));
  $("#photo").addEventListener("load", scaleLabels);
}

function applyDefaults(info) {
  const defaults = info.defaults;
  for (const [selector, name, show] of SLIDERS) {
    const input = $(selector);
    if (input.dataset.touched) continue;
    input.value = defaults[name];
    input.dataset.fromService = "yes";
    $(`${selector}-value`).textContent = show(input.value);
  }
  $("#top-k").value ||= defaults.top_k;
  const windows = $("#sliding-windows");
  if (!windows.dataset.fromService) windows.checked = Boolean(defaults.sliding_windows);
  windows.dataset.fromService = "yes";
  const detector = Boolean(info.detector);
  for (const selector of ["#detection-threshold", "#max-detections"]) {
    $(selector).disabled = !detector;
    $(selector).title = detector ? "" : "no detector is loaded: the whole image is the only box";
  }
}

function useFile(file, input) {
  if (input) input.value = ""; // choosing the same file again still fires change
  if (!file) return;
  if (file.type && !file.type.startsWith("image/")) {
    showError(new Error(`${file.name || "the file"} is not an image (${file.type})`));
    return;
  }
  if (photo) URL.revokeObjectURL(photo.url);
  photo = { blob: file, name: file.name || "photo.png", url: URL.createObjectURL(file) };
  recognize();
}

function options() {
  const values = {};
  for (const [selector, name] of SLIDERS) {
    const input = $(selector);
    // a slider neither set by hand nor from /info (unreachable, or a 401) sends nothing: the service's default
    if (!input.disabled && (input.dataset.touched || input.dataset.fromService)) values[name] = input.value;
  }
  values.top_k = $("#top-k").value;
  values.sliding_windows = $("#sliding-windows").checked;
  values.include_unknown = true; // unknown boxes are the ones a person enrols
  return values;
}

export async function recognize() {
  if (!photo) return;
  const mine = ++sequence;
  const status = $("#recognize-status");
  status.textContent = "Recognizing…";
  try {
    const result = await request("POST", "recognize", { form: formData({ image: [photo.blob, photo.name], ...options() }) });
    if (mine !== sequence) return;
    render(result);
    const known = result.objects.filter((found) => found.match).length;
    status.textContent = `${result.objects.length} object(s), ${known} recognized, ${result.objects.length - known} unknown.`;
  } catch (error) {
    if (mine !== sequence) return;
    status.textContent = `Failed: ${describeError(error)}`;
    showError(error);
  }
}

function caption(found) {
  return found.match ? `${found.match.label} ${formatScore(found.match.score)}` : "unknown";
}

function render(result) {
  $("#recognize-result").hidden = false;
  const image = $("#photo");
  image.src = photo.url;
  const { width, height } = result.image;
  const boxes = $("#boxes");
  boxes.setAttribute("viewBox", `0 0 ${width} ${height}`);
  scaleLabels();
  boxes.replaceChildren(...result.objects.map((found, index) => drawBox(found, index, result)));
  $("#objects").replaceChildren(...result.objects.map((found, index) => describeObject(found, index, result)));
  $("#timings").replaceChildren(...Object.entries(result.timings_ms).flatMap(([stage, ms]) => [
    h("dt", { text: stage.replace(/_ms$/, "") }), h("dd", { text: `${Number(ms).toFixed(1)} ms` })]));
  $("#timings").append(h("dt", { text: "models" }),
    h("dd", { text: `${result.models.embedder}${result.models.detector ? ` + ${result.models.detector}` : ""}` }));
}

function drawBox(found, index, result) {
  const [x1, y1, x2, y2] = found.bbox;
  const label = `${index + 1}. ${caption(found)}`;
  const enrol = () => enrolBox(found, index, result);
  return svg("g", {
    class: `box ${found.match ? "known" : "unknown"}`, tabindex: "0", role: "button",
    "aria-label": `Box ${label} (${found.source}); press Enter to enrol it`,
    dataset: { index: String(index), source: found.source, label: found.match ? found.match.label : "" },
    onclick: enrol,
    onkeydown: (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); enrol(); } },
    onfocus: () => highlight(index), onmouseenter: () => highlight(index),
  },
  svg("rect", { x: x1, y: y1, width: x2 - x1, height: y2 - y1 }),
  svg("text", { x: x1, y: y1, dx: "0.25em", dy: "0.2em", "dominant-baseline": "hanging", text: label }));
}

function highlight(index) {
  for (const element of document.querySelectorAll("#boxes .box, #objects > li")) {
    element.classList.toggle("is-selected", element.dataset.index === String(index));
  }
}

function describeObject(found, index, result) {
  const candidates = found.candidates.map((candidate) => h("li", { class: "candidate" },
    thumbnail(candidate.image_id, `Gallery photo of ${candidate.label}`),
    h("span", { class: "name", text: candidate.label }),
    h("span", { class: "score", text: formatScore(candidate.score) })));
  return h("li", { class: found.match ? "known" : "unknown", dataset: { index: String(index) } },
    h("div", { class: "row between" },
      h("strong", { class: "object-label", text: `${index + 1}. ${caption(found)}` }),
      h("button", { type: "button", onclick: () => enrolBox(found, index, result), text: "Enrol this box…" })),
    h("p", { class: "muted", text: `${found.source}, detection ${formatScore(found.detection_score)}, box ${found.bbox.join(", ")}` }),
    candidates.length ? h("ol", { class: "candidates", "aria-label": `Top ${candidates.length} items` }, candidates)
      : h("p", { class: "muted", text: "The gallery is empty." }));
}

function enrolBox(found, index, result) {
  highlight(index);
  openEnrol({ photo, box: found.bbox, image: result.image, suggestion: found.match || found.candidates[0], onDone: recognize });
}

async function openCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    $("#camera-input").click(); // phones open their camera app for capture inputs
    return;
  }
  const dialog = $("#camera-dialog");
  const video = $("#camera-video");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
  } catch (error) {
    showError(new Error(`no camera (${error.message}); choose a photo instead`));
    return;
  }
  video.srcObject = stream;
  dialog.returnValue = "";
  dialog.showModal();
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "take" && video.videoWidth) {
      const canvas = h("canvas", { width: video.videoWidth, height: video.videoHeight });
      canvas.getContext("2d").drawImage(video, 0, 0);
      canvas.toBlob((blob) => useFile(new File([blob], "camera.jpg", { type: "image/jpeg" })), "image/jpeg", 0.92);
    }
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
  }, { once: true });
}
