// The Service screen: models, thresholds, gallery size and health from /info and /ready.

import { fetchApi, request } from "./api.js";
import { $, describeError, h, showError } from "./dom.js";

const listeners = [];
let latest = null;

export const service = {
  /** Calls back with /info now (when known) and after every refresh. */
  onInfo(listener) {
    listeners.push(listener);
    if (latest) listener(latest);
  },
};

export function initService() {
  $("#service-refresh").addEventListener("click", refreshService);
}

// /info leaves runtime, limits and provenance out (null) for keys without the details scope (admin by default)
const WITHHELD = "shown to keys with the details scope (admin by default)";

// Nested values (the batching queues, per-source thresholds) read as "name value" lists, not as JSON:
// "max_wait_ms 3 · since_start (embedder (batches 12, rows 40), detector (...))".
function describe(value, nested = false) {
  if (Array.isArray(value)) {
    const named = value.every((item) => Array.isArray(item) && item.length === 2 && typeof item[0] === "string");
    return named ? describe(Object.fromEntries(value), true) : value.map((item) => describe(item, true)).join(", ");
  }
  if (typeof value !== "object" || value === null) return String(value);
  const parts = Object.entries(value).map(([name, inner]) =>
    typeof inner === "object" && inner !== null && !Array.isArray(inner)
      ? `${name} (${describe(inner, true)})` : `${name} ${describe(inner, true)}`);
  return parts.join(nested ? ", " : " · ");
}

function pairs(entries) {
  if (entries === null || entries === undefined) return h("p", { class: "muted withheld", text: WITHHELD });
  return h("dl", { class: "pairs" }, Object.entries(entries).flatMap(([name, value]) => [
    h("dt", { text: name }), h("dd", { text: describe(value) })]));
}

function model(title, info) {
  if (!info) return h("section", {}, h("h3", { text: title }), h("p", { text: "none loaded: the whole image is the only box" }));
  const { size, resize, mean, std } = info.preprocess || {};
  return h("section", {}, h("h3", { text: `${title}: ${info.model_id}` }), pairs({
    architecture: info.architecture, format: info.format, directory: info.directory,
    input: `${Array.isArray(size) ? size.join("×") : size ?? "?"}${resize ? ` ${resize}` : ""}`,
    ...(mean ? { mean: mean.join(", "), std: std.join(", ") } : {}),
  }));
}

export async function refreshService() {
  const body = $("#service-body");
  try {
    const [readyResponse, info] = await Promise.all([fetchApi("GET", "ready"), request("GET", "info")]);
    const ready = await readyResponse.json().catch(() => ({}));
    latest = info;
    for (const listener of listeners) listener(info);
    const health = ready.ready ? "ready" : `not ready (models loaded: ${ready.models_loaded}, index consistent: ${ready.index_consistent})`;
    body.replaceChildren(
      h("p", { class: ready.ready ? "health ok" : "health bad", id: "service-health", text: `${health} · version ${info.version}` }),
      model("Embedder", info.embedder),
      model("Detector", info.detector),
      h("section", {}, h("h3", { text: "Defaults (thresholds)" }), pairs(info.defaults)),
      h("section", {}, h("h3", { text: "Gallery" }), pairs(info.gallery)),
      h("section", {}, h("h3", { text: "Gallery threshold (its own min_score suggestion)" }),
        pairs(info.gallery_threshold)),
      h("section", {}, h("h3", { text: "Limits" }), pairs(info.limits)),
      h("section", {}, h("h3", { text: "Runtime" }), pairs(info.runtime)));
  } catch (error) {
    body.replaceChildren(h("p", { class: "health bad", text: describeError(error) }));
    showError(error);
  }
}
