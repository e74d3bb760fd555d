/* What every view computed in the page shares: its inputs read as numbers, a message beside
 * each that is not valid (the last picture then stays), its settings kept in the link's fragment
 * beside the other views', and its charts made once and updated after. */
"use strict";

/* Set `settings` (key -> text) in the link's fragment, and take the keys `dropped` out of it,
 * keeping every other view's. */
function adamlabKeepInLink(settings, dropped = []) {
  const query = new URLSearchParams(location.hash.slice(1));
  for (const [key, value] of Object.entries(settings)) query.set(key, value);
  for (const key of dropped) query.delete(key);
  history.replaceState(null, "", `#${query}`);
}

/* A view whose inputs are `${prefix}-${name}` for each of `fields` (name -> {initial, valid,
 * message, and optionally slider: [min, max, step]}), kept in the link as `${prefix}_${name}`:
 * `redraw(values)` runs with the numbers whenever every input holds a valid one. A field with a
 * slider gets one beside its input, the two kept together (the input takes values beyond it). */
function adamlabView(prefix, fields, redraw) {
  const input = (name) => document.getElementById(`${prefix}-${name}`);
  const update = () => {
    const values = {}, errors = {};
    for (const [name, field] of Object.entries(fields)) {
      const text = input(name).value.trim();
      values[name] = text === "" ? NaN : Number(text);
      if (!field.valid(values[name])) errors[name] = field.message;
      document.getElementById(`${prefix}-${name}-error`).textContent = errors[name] || "";
      input(name).setAttribute("aria-invalid", name in errors ? "true" : "false");
    }
    if (Object.keys(errors).length) return;  // the last picture stays
    redraw(values);
    adamlabKeepInLink(Object.fromEntries(Object.keys(fields).map((name) => [`${prefix}_${name}`, input(name).value])));
  };
  const start = () => {
    const wanted = new URLSearchParams(location.hash.slice(1));
    for (const [name, field] of Object.entries(fields)) {
      input(name).value = wanted.get(`${prefix}_${name}`) ?? field.initial;
      input(name).addEventListener("input", update);
      if (field.slider) {
        const [min, max, step] = field.slider.map(String);
        const slider = Object.assign(document.createElement("input"), {type: "range", min, max, step,
                                                                      id: `${prefix}-${name}-slider`});
        slider.setAttribute("aria-label", `${name}, on a slider`);
        const follow = () => { slider.value = input(name).value; };
        input(name).addEventListener("input", follow);
        slider.addEventListener("input", () => {
          input(name).value = slider.value;
          update();
        });
        input(name).closest("label").after(slider);
        follow();
      }
    }
    update();
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
}

/* The chart on canvas `id`: made from `config` the first time, its data replaced after. */
const adamlabCharts = new Map();
function adamlabChart(id, config) {
  const chart = adamlabCharts.get(id);
  if (chart) {
    chart.data = config.data;
    chart.update("none");
  } else {
    adamlabCharts.set(id, new Chart(document.getElementById(id), config));
  }
}

/* An optimizer's colour, by its place in adamlab's registry (ADAMLAB_NAMES): the same in every
 * view. Past the palette, hues a golden angle apart. */
const ADAMLAB_PALETTE = [
  "#7f7f7f", "#8c564b", "#bcbd22", "#17becf", "#d62728", "#ff7f0e", "#9467bd", "#2ca02c",
  "#1f77b4", "#e377c2", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173",
];
function adamlabColor(name) {
  const index = ADAMLAB_NAMES.indexOf(name);
  return ADAMLAB_PALETTE[index] ?? `hsl(${(index * 137.5) % 360}, 60%, 40%)`;
}

/* Ticks for a log axis that spans many decades: a label at each power of ten, as 1e-8, where
 * Chart.js would write 0.00000001. */
const ADAMLAB_DECADES = {
  callback: (value) => {
    const exponent = Math.log10(value);
    return Math.abs(exponent - Math.round(exponent)) < 1e-9 ? `1e${Math.round(exponent)}` : "";
  },
};

/* The play, step and scrub controls (`${prefix}-play`, `-step`, `-scrub`) of a view that draws a
 * race a step at a time: `view.frame` is the step shown (null: the race's end, until played,
 * stepped or scrubbed), `steps()` the race's steps (null before the first race) and `draw()` draws
 * view.frame. A race plays in about `seconds`, however many steps it has. Returns play(on). */
function adamlabPlayer(prefix, view, steps, draw, seconds) {
  const control = (name) => document.getElementById(`${prefix}-${name}`);
  const play = (on) => {
    view.playing = on && steps() !== null;
    control("play").textContent = view.playing ? "pause" : "play";
    control("play").setAttribute("aria-pressed", String(view.playing));
    if (!view.playing) return;
    if (view.frame === null || view.frame >= steps()) view.frame = 0;
    let before = null;
    const tick = (now) => {
      if (!view.playing) return;
      if (before !== null) view.frame = Math.min(steps(), view.frame + (now - before) / 1000 * steps() / seconds);
      before = now;
      draw();
      view.frames += 1;
      if (view.frame >= steps()) play(false);
      else requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  };
  control("play").addEventListener("click", () => play(!view.playing));
  control("step").addEventListener("click", () => {
    play(false);
    if (steps() === null) return;
    view.frame = Math.min(steps(), Math.floor(view.frame ?? steps()) + 1);
    draw();
  });
  control("scrub").addEventListener("input", () => {
    play(false);
    view.frame = Number(control("scrub").value);
    draw();
  });
  return play;
}
