// The Gallery screen: items with thumbnails, exact-label search, paging, and an item's details and edits.

import { formData, path, request } from "./api.js";
import { $, confirmAction, describeError, h, notify, parseMetadata, showError } from "./dom.js";
import { background, forgetImage, framedPhoto, thumbnail } from "./thumbs.js";

const PAGE_SIZE = 24;
const view = { offset: 0, label: "", total: 0, stale: true };
let openItemId = null;

export function initGallery() {
  $("#gallery-search").addEventListener("submit", (event) => {
    event.preventDefault();
    Object.assign(view, { label: $("#gallery-label").value.trim(), offset: 0 });
    loadPage();
  });
  $("#gallery-previous").addEventListener("click", () => turn(-PAGE_SIZE));
  $("#gallery-next").addEventListener("click", () => turn(PAGE_SIZE));
  $("#item-close").addEventListener("click", () => $("#item-dialog").close());
  $("#item-form").addEventListener("submit", (event) => {
    event.preventDefault();
    saveItem();
  });
  $("#item-delete").addEventListener("click", deleteItem);
  $("#item-add").addEventListener("click", () => $("#item-add-photo").click());
  $("#item-add-photo").addEventListener("change", (event) => addPhoto(event.target));
  $("#item-dialog").addEventListener("close", () => {
    openItemId = null;
    if (view.stale && !$("#screen-gallery").hidden) loadPage();
  });
}

/** Something changed the gallery: the list reloads the next time it is shown. */
export function galleryChanged() {
  view.stale = true;
}

export function showGallery() {
  if (view.stale) loadPage();
}

function turn(step) {
  view.offset = Math.max(0, Math.min(view.offset + step, Math.max(0, view.total - 1)));
  loadPage();
}

export async function loadPage() {
  const status = $("#gallery-status");
  status.textContent = "Loading…";
  try {
    const page = await request("GET", "gallery/items", { query: { offset: view.offset, limit: PAGE_SIZE, label: view.label } });
    if (!page.items.length && view.offset > 0 && page.total > 0) {
      view.offset = Math.max(0, page.total - PAGE_SIZE);
      return loadPage();
    }
    Object.assign(view, { total: page.total, stale: false });
    $("#gallery-items").replaceChildren(...page.items.map(itemCard));
    const last = view.offset + page.items.length;
    status.textContent = page.total
      ? `${page.total} item(s)${view.label ? ` labelled “${view.label}”` : ""}.`
      : view.label ? `No item is labelled “${view.label}”.` : "The gallery is empty.";
    $("#gallery-page").textContent = page.total ? `${view.offset + 1}–${last} of ${page.total}` : "";
    $("#gallery-previous").disabled = view.offset === 0;
    $("#gallery-next").disabled = last >= page.total;
  } catch (error) {
    status.textContent = `Failed: ${describeError(error)}`;
    showError(error);
  }
}

function itemCard(item) {
  const picture = h("span", { class: "thumb missing", text: item.image_count ? "…" : "no image" });
  if (item.image_count) {
    background(() => request("GET", path`gallery/items/${item.item_id}`)).then(
      (detail) => detail.images.length && picture.replaceWith(thumbnail(detail.images[0].image_id, `Photo of ${item.label}`)),
      (error) => { picture.title = describeError(error); });
  }
  return h("li", { class: "item", dataset: { itemId: item.item_id } },
    h("button", { type: "button", class: "card", onclick: () => openItem(item.item_id),
      "aria-label": `${item.label}, ${item.image_count} image(s): open` },
    picture,
    h("span", { class: "name", text: item.label }),
    h("span", { class: "muted", text: `${item.image_count} image(s) · ${item.item_id}` })));
}

export async function openItem(itemId) {
  openItemId = itemId;
  $("#item-error").textContent = "";
  try {
    const item = await request("GET", path`gallery/items/${itemId}`);
    fillItem(item);
    if (!$("#item-dialog").open) $("#item-dialog").showModal();
  } catch (error) {
    showError(error);
  }
}

function fillItem(item) {
  $("#item-title").textContent = item.label;
  $("#item-id").textContent = `item id ${item.item_id} · updated ${new Date(item.updated_at * 1000).toLocaleString()}`;
  $("#item-label").value = item.label;
  $("#item-metadata").value = JSON.stringify(item.metadata, null, 2);
  $("#item-images").replaceChildren(...item.images.map((image) => h("li", { dataset: { imageId: image.image_id } },
    framedPhoto(image, `Photo of ${item.label}`),
    h("p", { class: "muted", text: image.bbox ? `box ${image.bbox.join(", ")}` : "whole photo" }),
    h("button", { type: "button", class: "danger", onclick: () => deleteImage(item, image),
      "aria-label": `Delete image ${image.image_id}`, text: "Delete image" }))));
  if (!item.images.length) $("#item-images").append(h("li", { class: "muted", text: "No images: add a photo." }));
}

async function saveItem() {
  try {
    const metadata = parseMetadata($("#item-metadata").value) || {};
    const item = await request("PATCH", path`gallery/items/${openItemId}`,
      { json: { label: $("#item-label").value, metadata } });
    galleryChanged();
    $("#item-title").textContent = item.label;
    $("#item-error").textContent = "";
    notify(`Saved “${item.label}”.`);
  } catch (error) {
    $("#item-error").textContent = describeError(error);
  }
}

async function deleteImage(item, image) {
  if (!(await confirmAction(`Delete this image of “${item.label}”? Its embedding leaves the index.`))) return;
  try {
    await request("DELETE", path`gallery/images/${image.image_id}`);
    forgetImage(image.image_id);
    galleryChanged();
    notify(`Deleted an image of “${item.label}”.`);
    await openItem(item.item_id);
  } catch (error) {
    $("#item-error").textContent = describeError(error);
  }
}

async function deleteItem() {
  const label = $("#item-title").textContent;
  if (!(await confirmAction(`Delete “${label}” and all its images?`))) return;
  try {
    const removed = await request("DELETE", path`gallery/items/${openItemId}`);
    galleryChanged();
    $("#item-dialog").close();
    notify(`Deleted “${label}” (${removed.images_removed} image(s)).`);
  } catch (error) {
    $("#item-error").textContent = describeError(error);
  }
}

async function addPhoto(input) {
  const file = input.files[0];
  input.value = "";
  if (!file) return;
  try {
    await request("POST", path`gallery/items/${openItemId}/images`, { form: formData({ image: [file, file.name] }) });
    galleryChanged();
    await openItem(openItemId);
  } catch (error) {
    $("#item-error").textContent = describeError(error);
  }
}
