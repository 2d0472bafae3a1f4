// The console's entry: the screens behind #hash links, the API key field, and the first look at the service.

import { apiKey } from "./api.js";
import { $, notify } from "./dom.js";
import { initEnrol } from "./enrol.js";
import { initGallery, showGallery } from "./gallery.js";
import { initImport } from "./importer.js";
import { initRecognize } from "./recognize.js";
import { initService, refreshService, service } from "./service.js";

const SCREENS = ["recognize", "gallery", "service"];

function show(screen, { focus = true } = {}) {
  if (!SCREENS.includes(screen)) screen = "recognize";
  for (const name of SCREENS) {
    $(`#screen-${name}`).hidden = name !== screen;
    const link = document.querySelector(`nav a[data-screen="${name}"]`);
    if (name === screen) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (screen === "gallery") showGallery();
  if (screen === "service") refreshService();
  if (focus) $(`#${screen}-title`).focus();
}

function initKey() {
  const input = $("#api-key");
  const state = $("#key-state");
  const describe = () => { state.textContent = apiKey.get() ? "key set for this browser session" : "no key sent"; };
  input.value = apiKey.get();
  describe();
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    apiKey.set(input.value.trim());
    describe();
    notify(apiKey.get() ? "The API key is sent with every request of this session." : "No API key is sent.");
    refreshService();
  });
  $("#key-forget").addEventListener("click", () => {
    apiKey.set("");
    input.value = "";
    describe();
  });
}

$("#notice-close").addEventListener("click", () => { $("#notice").hidden = true; });
initKey();
initService();
initRecognize(service);
initEnrol();
initGallery();
initImport();
window.addEventListener("hashchange", () => show(location.hash.slice(1)));
show(location.hash.slice(1), { focus: false });
if (location.hash.slice(1) !== "service") refreshService(); // the defaults for the sliders
document.body.dataset.ready = "yes";
