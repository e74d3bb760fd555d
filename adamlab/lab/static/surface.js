/* "Races on surfaces": the registry's optimizers down a loss of two parameters, raced in this
 * page by ADAMLAB_RULES on ADAMLAB_SURFACES (rules.js: the surfaces, their gradients and the
 * steps all printed from adamlab.maths). Click the surface (or type x and y, or move the start
 * with the arrow keys) to start elsewhere; each optimizer has its own learning rate on a log
 * slider; play, pause, step and scrub move the balls along their paths. The settings are kept
 * in the link; a setting that is not valid says so beside itself and the last picture stays. */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const NAMES = Object.keys(ADAMLAB_RULES);
  const LR_LOW = -5, LR_HIGH = 1;  // the learning-rate sliders' range, in decades
  const MAX_STEPS = 5000;
  const PLAY_SECONDS = 4;  // a whole race plays in about this long, however many steps it has
  // frame: the step the balls are at (null: the end of the race, until played, stepped or scrubbed)
  const view = window.surfaceView = {draws: 0, runs: {}, frame: null, playing: false, frames: 0};
  let background = null;  // the surface drawn once per surface and canvas size: {key, canvas}
  let last = null;  // the settings of the picture on the page
  let play = null;  // play(on): the player's (view.js), once the page has started

  const surface = () => ADAMLAB_SURFACES[$("surface-name").value];
  const lrs = {};  // each optimizer's learning rate: exactly as given (a default, a link), or a slider's place
  const tidy = (value) => Number(value.toPrecision(4));
  const chosen = () => NAMES.filter((name) => $(`surface-on-${name}`).checked);

  /* The settings typed, and a message for each that is not valid. */
  function read() {
    const course = surface();
    const [xLow, xHigh, yLow, yHigh] = course.bounds;
    const values = {}, errors = {};
    for (const field of ["x", "y", "steps"]) {
      const text = $(`surface-${field}`).value.trim();
      values[field] = text === "" ? NaN : Number(text);
    }
    if (!(values.x >= xLow && values.x <= xHigh)) errors.x = `x must be a number in [${xLow}, ${xHigh}], the surface's box`;
    if (!(values.y >= yLow && values.y <= yHigh)) errors.y = `y must be a number in [${yLow}, ${yHigh}], the surface's box`;
    if (!(Number.isInteger(values.steps) && values.steps >= 1 && values.steps <= MAX_STEPS)) {
      errors.steps = `steps must be a whole number from 1 to ${MAX_STEPS}`;
    }
    return {values, errors};
  }

  /* Race every chosen optimizer, and draw it all; `fromStart`: the balls start again. */
  function update(fromStart = false) {
    const {values, errors} = read();
    for (const field of ["x", "y", "steps"]) {
      $(`surface-${field}-error`).textContent = errors[field] || "";
      $(`surface-${field}`).setAttribute("aria-invalid", field in errors ? "true" : "false");
    }
    for (const name of NAMES) $(`surface-lr-${name}-value`).textContent = String(lrs[name]);
    if (Object.keys(errors).length) return;  // the last picture stays
    const course = surface();
    const began = performance.now();
    view.runs = {};
    for (const name of chosen()) {
      view.runs[name] = {lr: lrs[name], ...adamlabDescend(course, name, {lr: lrs[name]}, [values.x, values.y], values.steps)};
    }
    last = {course, ...values};
    view.frame = fromStart ? 0 : view.frame === null ? null : Math.min(view.frame, values.steps);
    $("surface-scrub").max = String(values.steps);
    const raced = performance.now();
    drawLosses();
    const a = performance.now();
    drawTable();
    const b = performance.now();
    drawFrame();
    view.timing = {race: raced - began, chart: a - raced, table: b - a, frame: performance.now() - b};
    view.draws += 1;
    const settings = {surface_name: $("surface-name").value, surface_x: $("surface-x").value,
                      surface_y: $("surface-y").value, surface_steps: $("surface-steps").value,
                      surface_on: chosen().join(",")};
    for (const name of chosen()) settings[`surface_lr_${name}`] = String(lrs[name]);
    // an optimizer switched off takes its surface's default when switched on again: its rate leaves the link
    adamlabKeepInLink(settings, NAMES.filter((name) => !chosen().includes(name)).map((name) => `surface_lr_${name}`));
    if (fromStart) play(true);
  }

  /* The first step at which a run's parameters or loss are no longer finite, null if none. */
  function divergedAt(run) {
    const index = run.losses.findIndex((loss, t) => !Number.isFinite(loss) || !run.path[t].every(Number.isFinite));
    return index < 0 ? null : index;
  }

  // --- the picture ------------------------------------------------------------------------------

  /* A pixel of the canvas for a point of the surface's box, and the point for a pixel. */
  function toPixel(canvas, course, [x, y]) {
    const [xLow, xHigh, yLow, yHigh] = course.bounds;
    return [(x - xLow) / (xHigh - xLow) * canvas.width, (yHigh - y) / (yHigh - yLow) * canvas.height];
  }
  function toPoint(canvas, course, px, py) {
    const [xLow, xHigh, yLow, yHigh] = course.bounds;
    return [xLow + px / canvas.width * (xHigh - xLow), yHigh - py / canvas.height * (yHigh - yLow)];
  }

  /* A colour for a share of the loss's range (0: the least), from pale cream through light blue
   * to slate: low ground light, so that the paths stand out where they end. */
  const RAMP = [[255, 252, 235], [205, 224, 238], [138, 158, 196]];
  function shade(share) {
    const at = Math.min(Math.max(share, 0), 1) * (RAMP.length - 1);
    const low = Math.min(Math.floor(at), RAMP.length - 2), part = at - low;
    return RAMP[low].map((channel, index) => channel + (RAMP[low + 1][index] - channel) * part);
  }

  /* The surface's loss as colours, light where low, with level lines a decade of loss apart
   * (above the least loss); made once per surface and canvas size. */
  function surfaceImage(canvas, course) {
    const key = `${$("surface-name").value} ${canvas.width} ${canvas.height}`;
    if (background && background.key === key) return background.canvas;
    const image = new ImageData(canvas.width, canvas.height);
    const least = Math.min(...course.minima.map(([x, y]) => course.loss(x, y)));
    const levels = new Float64Array(canvas.width * canvas.height);
    for (let py = 0; py < canvas.height; py++) {
      for (let px = 0; px < canvas.width; px++) {
        const [x, y] = toPoint(canvas, course, px + 0.5, py + 0.5);
        levels[py * canvas.width + px] = Math.log10(Math.max(course.loss(x, y) - least, 0) + 1e-3);
      }
    }
    let low = Infinity, high = -Infinity;
    for (const level of levels) if (Number.isFinite(level)) { low = Math.min(low, level); high = Math.max(high, level); }
    for (let i = 0; i < levels.length; i++) {
      const share = Number.isFinite(levels[i]) ? (levels[i] - low) / (high - low || 1) : 1;
      const px = i % canvas.width, below = i + canvas.width;
      const line = (px + 1 < canvas.width && Math.floor(levels[i + 1]) !== Math.floor(levels[i]))
        || (below < levels.length && Math.floor(levels[below]) !== Math.floor(levels[i]));
      const colour = shade(share).map((channel) => Math.round(line ? channel * 0.6 : channel));
      image.data.set([...colour, 255], 4 * i);
    }
    const drawn = Object.assign(document.createElement("canvas"), {width: canvas.width, height: canvas.height});
    drawn.getContext("2d").putImageData(image, 0, 0);
    background = {key, canvas: drawn};
    return drawn;
  }

  /* The surface, every run's trail up to the frame shown and its ball there, the start (a ring)
   * and the minima (crosses). */
  function drawFrame() {
    if (!last) return;
    const canvas = $("surface-canvas");
    const box = canvas.parentElement.clientWidth;
    const [xLow, xHigh, yLow, yHigh] = last.course.bounds;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(box * ratio), height = Math.round(box * ratio * (yHigh - yLow) / (xHigh - xLow));
    if (canvas.width !== width || canvas.height !== height) {
      Object.assign(canvas, {width, height});
      canvas.style.height = `${height / ratio}px`;
    }
    const context = canvas.getContext("2d");
    context.drawImage(surfaceImage(canvas, last.course), 0, 0);
    context.lineWidth = 2 * ratio;
    for (const point of last.course.minima) {
      const [px, py] = toPixel(canvas, last.course, point);
      const arm = 6 * ratio;
      context.strokeStyle = "#222";
      context.beginPath();
      context.moveTo(px - arm, py - arm); context.lineTo(px + arm, py + arm);
      context.moveTo(px - arm, py + arm); context.lineTo(px + arm, py - arm);
      context.stroke();
    }
    const frame = Math.round(view.frame ?? last.steps);
    for (const [name, run] of Object.entries(view.runs)) {
      const end = Math.min(frame, (divergedAt(run) ?? Infinity) - 1);
      if (end < 0) continue;
      context.strokeStyle = context.fillStyle = adamlabColor(name);
      context.beginPath();
      for (let t = 0; t <= end; t++) {
        const [px, py] = toPixel(canvas, last.course, run.path[t]);
        if (t === 0) context.moveTo(px, py); else context.lineTo(px, py);
      }
      context.stroke();
      const [px, py] = toPixel(canvas, last.course, run.path[end]);
      context.beginPath();
      context.arc(px, py, 5 * ratio, 0, 2 * Math.PI);
      context.fill();
    }
    const [sx, sy] = toPixel(canvas, last.course, [last.x, last.y]);
    context.strokeStyle = "#000";
    context.beginPath();
    context.arc(sx, sy, 8 * ratio, 0, 2 * Math.PI);
    context.stroke();
    $("surface-scrub").value = String(frame);
    $("surface-at").textContent = `step ${frame} of ${last.steps}`;
    canvas.setAttribute("aria-label", `${last.course.summary}; from (${last.x}, ${last.y}), step ${frame}: `
      + Object.entries(view.runs).map(([name, run]) => {
        const at = run.path[Math.min(frame, run.path.length - 1)];
        return `${name} at (${at.map((v) => tidy(v)).join(", ")})`;
      }).join("; "));
  }

  function drawLosses() {
    const least = Math.min(...last.course.minima.map(([x, y]) => last.course.loss(x, y)));
    // below this the difference is rounding (the minima are given to a few places): drawn at it
    const floor = 1e-15 * Math.max(1, Math.abs(least));
    const datasets = Object.entries(view.runs).map(([name, run]) => ({
      label: name, borderColor: adamlabColor(name), backgroundColor: adamlabColor(name), borderWidth: 2, pointRadius: 0,
      data: run.losses.map((loss, t) => ({x: t, y: Number.isFinite(loss) ? Math.max(loss - least, floor) : null})),
    }));
    adamlabChart("surface-loss", {
      type: "line", data: {datasets},
      // Chart.js draws each curve from at most 200 of its points (largest-triangle sampling): a
      // curve of thousands of steps redraws in a few milliseconds and looks the same.
      options: {animation: false, maintainAspectRatio: false, spanGaps: false, parsing: false, normalized: true,
                plugins: {decimation: {enabled: true, algorithm: "lttb", samples: 200, threshold: 200}},
                scales: {x: {type: "linear", title: {display: true, text: "step"}},
                         y: {type: "logarithmic", ticks: ADAMLAB_DECADES,
                             title: {display: true, text: "loss above the least (log scale)"}}}},
    });
  }

  function drawTable() {
    $("surface-table").querySelector("tbody").replaceChildren(...Object.entries(view.runs).map(([name, run]) => {
      const tr = document.createElement("tr");
      const diverged = divergedAt(run);
      const [x, y] = run.path[run.path.length - 1];
      const distance = Math.min(...last.course.minima.map(([mx, my]) => Math.hypot(x - mx, y - my)));
      const cells = diverged === null ? [name, run.lr, x, y, run.losses[run.losses.length - 1], distance]
        : [name, run.lr, `diverged at step ${diverged}`];
      for (const value of cells) {
        const td = document.createElement("td");
        td.textContent = typeof value === "string" ? value : String(tidy(value));
        if (diverged !== null && cells.length === 3 && value === cells[2]) td.colSpan = 4;
        tr.append(td);
      }
      tr.querySelector("td").style.color = adamlabColor(name);
      return tr;
    }));
  }

  // --- playing ----------------------------------------------------------------------------------

  function moveStart(x, y) {
    const [xLow, xHigh, yLow, yHigh] = surface().bounds;
    $("surface-x").value = String(tidy(Math.min(Math.max(x, xLow), xHigh)));
    $("surface-y").value = String(tidy(Math.min(Math.max(y, yLow), yHigh)));
    update(true);
  }

  /* The chosen surface's start, steps and field of optimizers at their learning rates there;
   * `wanted`: settings from a link, over those. */
  function reset(wanted = new URLSearchParams()) {
    const course = surface();
    $("surface-x").value = wanted.get("surface_x") ?? String(course.start[0]);
    $("surface-y").value = wanted.get("surface_y") ?? String(course.start[1]);
    $("surface-steps").value = wanted.get("surface_steps") ?? String(course.steps);
    const on = wanted.has("surface_on") ? wanted.get("surface_on").split(",") : course.field;
    const refused = [];
    for (const name of NAMES) {
      $(`surface-on-${name}`).checked = on.includes(name);
      const key = `surface_lr_${name}`, given = Number(wanted.get(key));
      const fits = given >= 10 ** LR_LOW && given <= 10 ** LR_HIGH;
      if (wanted.has(key) && !fits) refused.push(`${name}'s lr in the link (${wanted.get(key).slice(0, 20)})`);
      lrs[name] = wanted.has(key) && fits ? given : course.lrs[name];
      $(`surface-lr-${name}`).value = String(Math.log10(lrs[name]));
    }
    $("surface-lr-error").textContent = refused.length
      ? `${refused.join(", ")} is not a number in [1e${LR_LOW}, 1e${LR_HIGH}]: the surface's default is used` : "";
    $("surface-summary").textContent = course.summary;
  }

  function start() {
    const select = $("surface-name");
    for (const name of Object.keys(ADAMLAB_SURFACES)) select.add(new Option(name, name));
    $("surface-optimizers").append(...NAMES.map((name) => {
      const row = Object.assign(document.createElement("div"), {className: "lr-row"});
      const box = Object.assign(document.createElement("input"), {type: "checkbox", id: `surface-on-${name}`});
      const label = Object.assign(document.createElement("label"), {htmlFor: box.id, textContent: name});
      label.style.color = adamlabColor(name);
      const slider = Object.assign(document.createElement("input"), {
        type: "range", id: `surface-lr-${name}`, min: String(LR_LOW), max: String(LR_HIGH), step: "any"});
      slider.setAttribute("aria-label", `${name}'s learning rate, on a log scale`);
      const shown = Object.assign(document.createElement("output"), {id: `surface-lr-${name}-value`});
      shown.htmlFor = slider.id;
      box.addEventListener("change", () => update());
      slider.addEventListener("input", () => {
        lrs[name] = tidy(10 ** Number(slider.value));
        update();
      });
      row.append(box, label, slider, shown);
      return row;
    }));
    const wanted = new URLSearchParams(location.hash.slice(1));
    if (Object.hasOwn(ADAMLAB_SURFACES, wanted.get("surface_name") ?? "")) select.value = wanted.get("surface_name");
    reset(wanted);
    select.addEventListener("change", () => { reset(); update(true); });
    for (const field of ["x", "y", "steps"]) $(`surface-${field}`).addEventListener("input", () => update());
    play = adamlabPlayer("surface", view, () => (last ? last.steps : null), drawFrame, PLAY_SECONDS);
    const canvas = $("surface-canvas");
    canvas.addEventListener("click", (event) => {
      const bounds = canvas.getBoundingClientRect();
      const scale = canvas.width / bounds.width;
      moveStart(...toPoint(canvas, surface(), (event.clientX - bounds.left) * scale, (event.clientY - bounds.top) * scale));
    });
    canvas.addEventListener("keydown", (event) => {  // arrows move the start by a 50th of the box; space plays
      const [xLow, xHigh, yLow, yHigh] = surface().bounds;
      const moves = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1]};
      if (event.key in moves && last) {
        const [dx, dy] = moves[event.key];
        moveStart(last.x + dx * (xHigh - xLow) / 50, last.y + dy * (yHigh - yLow) / 50);
      } else if (event.key === " ") {
        play(!view.playing);
      } else {
        return;
      }
      event.preventDefault();
    });
    new ResizeObserver(() => drawFrame()).observe(canvas.parentElement);
    update();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
