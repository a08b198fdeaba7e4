// The l2h viewer: the run's class map, confidence and imagery as tile layers with opacity, region
// outlines, the legend, and what the run says at a clicked point. Everything comes from the local
// `l2h view` server; Leaflet is the npm-installed copy it serves. The view lives in the page's URL
// (#zoom/lat/lon/layers), so a reload keeps it and a link opens the same place.
"use strict";

const LAYER_TITLES = { imagery: "Imagery", map: "1 m land cover", confidence: "Confidence" };
const LAYER_DEFAULTS = { imagery: [true, 1.0], map: [true, 0.75], confidence: [false, 0.8] };
const ORDER = ["imagery", "map", "confidence"];

function element(tag, attributes, text) {
  const node = document.createElement(tag);
  Object.entries(attributes || {}).forEach(([key, value]) => node.setAttribute(key, value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function layerControl(viewer, id, visible, opacity) {
  const layer = viewer.layers[id];
  const row = element("div", { class: "layer", id: `layer-${id}` });
  const label = element("label");
  const box = element("input", { type: "checkbox", id: `show-${id}` });
  box.checked = visible;
  label.append(box, ` ${LAYER_TITLES[id]}`);
  const slider = element("input", { type: "range", id: `opacity-${id}`, min: "0", max: "1", step: "0.05",
                                    "aria-label": `${LAYER_TITLES[id]} opacity` });
  slider.value = String(opacity);
  box.addEventListener("change", () => showLayer(viewer, id, box.checked));
  slider.addEventListener("input", () => layer.setOpacity(Number(slider.value)));
  viewer.boxes[id] = box;
  row.append(label, slider);
  return row;
}

function showLayer(viewer, id, visible) {
  viewer.boxes[id].checked = visible;
  if (visible) viewer.layers[id].addTo(viewer.map);
  else viewer.layers[id].remove();
  writeHash(viewer);
}

// The view in the URL: #zoom/lat/lon/visible,layers (a layer list of "-" = none shown).
function writeHash(viewer) {
  if (!viewer.ready) return;
  const { map } = viewer;
  const centre = map.getCenter();
  const shown = ORDER.filter((id) => viewer.layers[id] && map.hasLayer(viewer.layers[id]));
  const hash = `#${map.getZoom()}/${centre.lat.toFixed(6)}/${centre.lng.toFixed(6)}/${shown.join(",") || "-"}`;
  if (window.location.hash !== hash) window.history.replaceState(null, "", hash);
}

function readHash(hash) {
  const parts = hash.replace(/^#/, "").split("/");
  if (parts.length < 3) return null;
  const [zoom, lat, lon] = parts.slice(0, 3).map(Number);
  if (![zoom, lat, lon].every(Number.isFinite) || Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
  const layers = parts.length > 3 ? (parts[3] === "-" ? [] : parts[3].split(",")) : null;
  return { zoom, lat, lon, layers };
}

function applyHash(viewer, view) {
  for (const id of Object.keys(viewer.layers)) {
    if (view.layers !== null) {
      viewer.boxes[id].checked = view.layers.includes(id);
      if (viewer.boxes[id].checked) viewer.layers[id].addTo(viewer.map);
      else viewer.layers[id].remove();
    }
  }
  viewer.map.setView([view.lat, view.lon], view.zoom, { animate: false });
}

function describe(info) {
  const list = element("dl");
  const add = (term, value) => list.append(element("dt", {}, term), element("dd", {}, value));
  add("1 m class", info.class.name);
  add("Confidence", info.confidence === null ? "–" : info.confidence.toFixed(2));
  add("Coarse label", info.coarse_label ? info.coarse_label.name : "–");
  add("Region", info.region || "–");
  add("Lon, lat", `${info.lon.toFixed(6)}, ${info.lat.toFixed(6)}`);
  return list;
}

async function start() {
  const run = await (await fetch("/api/layers.json")).json();
  document.getElementById("title").textContent = `l2h: ${run.title}`;
  const [west, south, east, north] = run.bounds;
  const bounds = L.latLngBounds([south, west], [north, east]);
  const maxNative = Math.max(...run.layers.map((l) => l.maxzoom));
  const map = L.map("map", { maxZoom: maxNative + 2, zoomSnap: 1 });
  const viewer = { map, layers: {}, tiles: {}, boxes: {}, lastPoint: null, run, ready: false };
  window.l2hViewer = viewer;

  const panel = document.getElementById("layers");
  for (const id of ORDER) {
    const spec = run.layers.find((l) => l.id === id);
    if (!spec) continue;
    const [visible, opacity] = LAYER_DEFAULTS[id];
    const layer = L.tileLayer(`/tiles/${id}/{z}/{x}/{y}.png`, {
      minZoom: spec.minzoom, maxNativeZoom: spec.maxzoom, maxZoom: maxNative + 2, bounds,
      opacity, zIndex: ORDER.indexOf(id) + 1, tileSize: 256,
    });
    viewer.tiles[id] = 0;
    layer.on("tileload", () => { viewer.tiles[id] += 1; });
    viewer.layers[id] = layer;
    if (visible) layer.addTo(map);
    panel.append(layerControl(viewer, id, visible, opacity));
  }

  const legend = document.getElementById("legend");
  for (const cls of run.legend) {
    const item = element("li", { "data-code": String(cls.code) });
    item.append(element("span", { class: "swatch", style: `background:${cls.colour}` }), cls.name);
    legend.append(item);
  }

  const regions = await (await fetch("/api/regions.geojson")).json();
  viewer.regions = L.geoJSON(regions, {
    style: { color: "#111", weight: 2, fill: false, interactive: false },
  }).addTo(map);

  map.on("click", async (event) => {
    const { lat, lng } = event.latlng;
    const response = await fetch(`/api/point?lon=${lng}&lat=${lat}`);
    const info = await response.json();
    viewer.lastPoint = info;
    const box = document.getElementById("info");
    box.replaceChildren(describe(info));
    L.popup().setLatLng(event.latlng).setContent(describe(info).outerHTML).openOn(map);
  });

  const view = readHash(window.location.hash);
  if (view) applyHash(viewer, view);
  else map.fitBounds(bounds);
  map.on("moveend", () => writeHash(viewer));
  window.addEventListener("hashchange", () => {
    const next = readHash(window.location.hash);
    if (next) applyHash(viewer, next);
  });
  viewer.ready = true;
  writeHash(viewer);
}

start().catch((error) => {
  document.getElementById("info").textContent = `cannot load the run: ${error}`;
});
