/* "One step at a time", played: Adam and momentum on the lessons' parabola w^2 from w = 5 (the
 * quadratic race), at the step-by-step view's lr and betas, stepped in this page by ADAMLAB_RULES
 * on ADAMLAB_PARABOLA's gradient (rules.js, printed from adamlab.maths). Two dots move down the
 * parabola; beside them Adam's raw moments m and v ramp up from zero while m_hat and v_hat stand
 * where they will stay from the first step. Play, pause, step and scrub move through the steps. */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const RUNNERS = ["momentum", "adam"];  // momentum at its own coefficient; Adam at the view's betas
  const PLAY_SECONDS = 5;
  const MAX_STEPS = 2000;
  const TRAIL = 60;  // the steps a dot leaves drawn behind it
  // frame: the step the dots are at (null: the end of the run, until played, stepped or scrubbed)
  const view = window.parabolaView = {draws: 0, runs: {}, frame: null, playing: false, frames: 0, settings: null};

  /* The step-by-step view's lr and betas, as it last drew them (stepper.js says so). */
  let settings = null;

  function readSteps() {
    const text = $("parabola-steps").value.trim();
    const steps = text === "" ? NaN : Number(text);
    const valid = Number.isInteger(steps) && steps >= 1 && steps <= MAX_STEPS;
    $("parabola-steps-error").textContent = valid ? "" : `steps must be a whole number from 1 to ${MAX_STEPS}`;
    $("parabola-steps").setAttribute("aria-invalid", String(!valid));
    return valid ? steps : null;
  }

  function update() {
    const steps = readSteps();
    if (steps === null || settings === null) return;  // the last picture stays
    const adam = {lr: settings.lr};
    for (const knob of ["beta1", "beta2"]) {  // the table's optimizer may have no betas: Adam's own then
      if (settings[knob] >= 0 && settings[knob] < 1) adam[knob] = settings[knob];
    }
    view.runs = {
      momentum: adamlabDescend(ADAMLAB_PARABOLA, "momentum", {lr: settings.lr}, ADAMLAB_PARABOLA.start, steps),
      adam: adamlabDescend(ADAMLAB_PARABOLA, "adam", adam, ADAMLAB_PARABOLA.start, steps),
    };
    view.settings = {...adam, steps};
    if (view.frame !== null) view.frame = Math.min(view.frame, steps);
    $("parabola-scrub").max = String(steps);
    drawFrame();
    view.draws += 1;
    adamlabKeepInLink({parabola_steps: $("parabola-steps").value});
  }

  /* The dots where they are at the frame, with the steps behind them, and Adam's moments so far. */
  function drawFrame() {
    const frame = Math.round(view.frame ?? view.settings.steps);
    const reach = Math.max(6, ...RUNNERS.flatMap((name) => view.runs[name].path.slice(0, frame + 1)
      .map(([w]) => Math.abs(w)).filter(Number.isFinite)));
    const curve = Array.from({length: 121}, (_, i) => {
      const w = -reach + (2 * reach * i) / 120;
      return {x: w, y: ADAMLAB_PARABOLA.loss(w)};
    });
    const datasets = [{label: "f(w) = w²", data: curve, showLine: true, pointRadius: 0, borderColor: "#bbb", borderWidth: 1}];
    for (const name of RUNNERS) {
      const run = view.runs[name];
      // the dot where it is, and a trail of its last TRAIL steps
      const first = Math.max(0, frame - TRAIL);
      const points = run.path.slice(first, frame + 1).map(([w], t) => ({x: w, y: run.losses[first + t]}));
      datasets.push({label: name, data: points, showLine: false, borderColor: adamlabColor(name),
                     backgroundColor: adamlabColor(name),
                     pointRadius: points.map((_, t) => (t === points.length - 1 ? 7 : 2))});
    }
    adamlabChart("parabola-chart", {
      type: "scatter", data: {datasets},
      options: {animation: false, maintainAspectRatio: false,
                scales: {x: {type: "linear", title: {display: true, text: "w"}},
                         y: {type: "linear", title: {display: true, text: "f(w)"}}}},
    });
    const quantities = view.runs.adam.quantities.slice(0, frame);
    const series = (key) => quantities.map((step, t) => ({x: t + 1, y: step[key][0] ?? step[key]}));
    const line = (key, label, axis, dashed) => ({label, data: series(key), yAxisID: axis, pointRadius: 0, borderWidth: 2,
                                                borderColor: axis === "m" ? "#d62728" : "#1f77b4", borderDash: dashed ? [5, 4] : []});
    adamlabChart("parabola-moments", {
      type: "line",
      data: {datasets: [line("m", "m (raw)", "m", true), line("m_hat", "m_hat", "m", false),
                        line("v", "v (raw)", "v", true), line("v_hat", "v_hat", "v", false)]},
      // Chart.js draws each curve from at most 200 of its points (largest-triangle sampling)
      options: {animation: false, maintainAspectRatio: false, parsing: false, normalized: true,
                plugins: {decimation: {enabled: true, algorithm: "lttb", samples: 200, threshold: 200}},
                scales: {x: {type: "linear", min: 1, max: Math.max(2, view.settings.steps), title: {display: true, text: "step"}},
                         m: {type: "linear", position: "left", title: {display: true, text: "m, m_hat"}},
                         v: {type: "linear", position: "right", title: {display: true, text: "v, v_hat"},
                             grid: {drawOnChartArea: false}}}},
    });
    $("parabola-scrub").value = String(frame);
    const where = RUNNERS.map((name) => `${name} w = ${Number(view.runs[name].path[frame][0].toPrecision(4))}`);
    $("parabola-at").textContent = `step ${frame} of ${view.settings.steps}: ${where.join(", ")}`;
  }

  function start() {
    const wanted = new URLSearchParams(location.hash.slice(1));
    $("parabola-steps").value = wanted.get("parabola_steps") ?? "100";
    $("parabola-steps").addEventListener("input", update);
    adamlabPlayer("parabola", view, () => (view.settings ? view.settings.steps : null), drawFrame, PLAY_SECONDS);
    document.addEventListener("adamlab:stepper", (event) => {
      settings = event.detail;
      update();
    });
    if (window.stepper && window.stepper.values) {  // the table drew before this script ran
      settings = window.stepper.values;
      update();
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
