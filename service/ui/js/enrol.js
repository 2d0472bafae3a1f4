// Enrol from a box: register a box of the recognized photo as a new item or as another image of an item.

import { formData, path, request } from "./api.js";
import { $, describeError, h, notify, parseMetadata } from "./dom.js";
import { galleryChanged } from "./gallery.js";

const PICKER_ITEMS = 500; // items offered by the picker: the first page of the gallery, filtered here
let current = null;

export function initEnrol() {
  const form = $("#enrol-form");
  for (const radio of form.elements.mode) radio.addEventListener("change", showMode);
  $("#enrol-search").addEventListener("input", renderChoices);
  $("#enrol-cancel").addEventListener("click", () => $("#enrol-dialog").close());
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
}

export async function openEnrol({ photo, box, image, suggestion, onDone }) {
  current = { photo, box, onDone, items: [] };
  const form = $("#enrol-form");
  form.reset();
  form.elements.mode.value = "new";
  $("#enrol-error").textContent = "";
  $("#enrol-box").textContent = `Box ${box.join(", ")} of ${image.width}×${image.height} px`;
  $("#enrol-search").value = suggestion ? suggestion.label : "";
  showMode();
  drawPreview(photo.url, box);
  $("#enrol-dialog").showModal();
  $("#enrol-label").focus();
  try {
    const page = await request("GET", "gallery/items", { query: { limit: PICKER_ITEMS } });
    current.items = page.items;
    current.preferred = suggestion?.item_id;
    renderChoices();
  } catch (error) {
    $("#enrol-error").textContent = describeError(error);
  }
}

function showMode() {
  const existing = $("#enrol-form").elements.mode.value === "existing";
  $("#enrol-new").hidden = existing;
  $("#enrol-existing").hidden = !existing;
  $("#enrol-label").required = !existing;
  (existing ? $("#enrol-search") : $("#enrol-label")).focus();
}

function renderChoices() {
  const needle = $("#enrol-search").value.trim().toLowerCase();
  const matching = current.items.filter((item) =>
    !needle || item.label.toLowerCase().includes(needle) || item.item_id.toLowerCase().includes(needle));
  const checked = $("#enrol-choices").querySelector("input:checked")?.value || current.preferred;
  $("#enrol-choices").replaceChildren(...matching.slice(0, 50).map((item) => h("label", { class: "check" },
    h("input", { type: "radio", name: "item", value: item.item_id, checked: item.item_id === checked }),
    ` ${item.label} `, h("span", { class: "muted", text: `${item.item_id} · ${item.image_count} image(s)` }))));
  if (!matching.length) $("#enrol-choices").append(h("p", { class: "muted", text: "No item matches." }));
}

function drawPreview(url, [x1, y1, x2, y2]) {
  const canvas = $("#enrol-preview");
  const source = new Image();
  source.onload = () => {
    const scale = Math.min(1, 240 / Math.max(x2 - x1, y2 - y1));
    canvas.width = Math.max(1, Math.round((x2 - x1) * scale));
    canvas.height = Math.max(1, Math.round((y2 - y1) * scale));
    canvas.getContext("2d").drawImage(source, x1, y1, x2 - x1, y2 - y1, 0, 0, canvas.width, canvas.height);
  };
  source.src = url;
}

async function submit() {
  const form = $("#enrol-form");
  const existing = form.elements.mode.value === "existing";
  const { photo, box } = current;
  const fields = { image: [photo.blob, photo.name], bbox: box.join(",") };
  let target = "gallery";
  try {
    if (existing) {
      const itemId = $("#enrol-choices").querySelector("input:checked")?.value;
      if (!itemId) throw new Error("choose the item this box shows");
      target = path`gallery/items/${itemId}/images`;
    } else {
      const metadata = parseMetadata($("#enrol-metadata").value);
      Object.assign(fields, { label: $("#enrol-label").value, item_id: $("#enrol-item-id").value.trim(),
        metadata: metadata && JSON.stringify(metadata) });
    }
  } catch (error) {
    $("#enrol-error").textContent = describeError(error);
    return;
  }
  $("#enrol-submit").disabled = true;
  try {
    const enrolment = await request("POST", target, { form: formData(fields) });
    $("#enrol-dialog").close();
    const what = enrolment.created_image ? "Registered" : "Already registered:";
    notify(`${what} this box as “${enrolment.item.label}” (${enrolment.item.item_id}).`);
    galleryChanged();
    await current.onDone();
  } catch (error) {
    $("#enrol-error").textContent = describeError(error);
  } finally {
    $("#enrol-submit").disabled = false;
  }
}
