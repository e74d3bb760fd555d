// The explorer's page. Every number drawn here comes from adamlab's JSON API (/api/problems,
// /api/race): this script holds no optimizer maths, only the mapping from slider positions to
// the values it asks for, and the drawing. The last answer and the charts are on
// window.explorer, so a test (or a curious person in the console) can compare the two.
"use strict";

const explorer = window.explorer = {
  problems: null,   // the answer to /api/problems
  query: null,      // the query string of the last race drawn
  response: null,   // the answer to that race
  charts: {},       // path and loss: the Chart.js charts now on the page
  progress: null,   // the last answer of /api/progress while a race computed
  draws: 0,         // how many races have been drawn
};

// An optimizer's colour is view.js's adamlabColor: its place in adamlab's registry, which is
// also the server's list (/api/problems).
const color = adamlabColor;

const TABLE_ROWS = 50;
const DEBOUNCE_MS = 150;

// Slider position -> value, and value -> position for placing a slider at a default.
// lr is a multiplier of every optimizer's default learning rate on the problem, on a log scale;
// beta2 moves in decades of 1 - beta2 (0.9, 0.99, 0.999 ... are equally far apart); eps in
// decades; steps on a log scale so that 8 and 5000 are both within reach.
const SCALES = {
  lr: {value: (p) => 10 ** p, position: Math.log10},
  beta1: {value: (p) => p, position: (v) => v},
  beta2: {value: (p) => 1 - 10 ** -p, position: (v) => -Math.log10(1 - v)},
  eps: {value: (p) => 10 ** p, position: Math.log10},
  weight_decay: {value: (p) => p, position: (v) => v},
  steps: {value: (p) => Math.max(1, Math.round(10 ** p)), position: Math.log10},
};
// The knobs the server races (/api/problems' "knobs", adamlab's registry); each has a slider in
// explore.html, a scale above and a resting place below.
const KNOBS = [];
// Where a knob's slider rests while the knob is left to the optimizers' defaults (Adam's).
const RESTING = {beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0};

const $ = (id) => document.getElementById(id);
// The knobs (and steps) the person has moved; the rest are left to their defaults, sent exactly
// rather than read back from a slider whose positions cannot all land on, say, 3000 steps.
const state = {set: new Set()};
let timer = null;
let inFlight = null;

// Numbers as `adamlab trace` prints them (%.6g): six significant digits, no trailing zeros.
function format(value) {
  if (value === null || value === undefined) return "";
  const text = Number(value).toPrecision(6);
  const [mantissa, exponent] = text.split("e");
  const trimmed = mantissa.includes(".") ? mantissa.replace(/\.?0+$/, "") : mantissa;
  return exponent === undefined ? trimmed : `${trimmed}e${exponent}`;
}

// A value with few enough digits to read in a query, and exactly what the page says it sends.
const tidy = (value) => Number(value.toPrecision(6));

function sliderValue(name) {
  return tidy(SCALES[name].value(Number($(name).value)));
}

function place(name, value) {
  $(name).value = String(SCALES[name].position(value));
}

function steps() {
  return state.set.has("steps") ? sliderValue("steps") : currentProblem().steps;
}

function currentProblem() {
  return explorer.problems.problems.find((problem) => problem.name === $("problem").value);
}

function chosenOptimizers() {
  return [...document.querySelectorAll("#optimizers input:checked")].map((box) => box.value);
}

// The query for /api/race from the controls: each chosen optimizer's lr is its default on the
// problem times the lr slider; knobs only once moved.
function buildQuery() {
  const problem = currentProblem();
  const optimizers = chosenOptimizers();
  const query = new URLSearchParams({problem: problem.name, optimizers: optimizers.join(",")});
  const scale = sliderValue("lr");
  for (const name of optimizers) query.set(`lr_${name}`, String(tidy(problem.lrs[name] * scale)));
  for (const knob of KNOBS) if (state.set.has(knob)) query.set(knob, String(sliderValue(knob)));
  // the problem's own settings (moments: the gradients' mean and spread), as typed; the API says
  // what is wrong with one that is not a number
  for (const input of document.querySelectorAll("#option-inputs input")) query.set(input.name, input.value);
  query.set("steps", String(steps()));
  return query.toString();
}

function showValues() {
  const problem = currentProblem();
  const scale = sliderValue("lr");
  $("lr-value").textContent = format(scale);
  $("lr-detail").textContent = chosenOptimizers()
    .map((name) => `${name} ${format(tidy(problem.lrs[name] * scale))}`).join(", ");
  for (const knob of KNOBS) {
    const problemDefault = problem.knob_defaults[knob];
    $(`${knob}-value`).textContent = state.set.has(knob) ? format(sliderValue(knob))
      : problemDefault !== undefined ? `${format(problemDefault)} (problem's)` : "default";
  }
  $("steps-value").textContent = String(steps());
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// Set every control to the problem's defaults: its field of optimizers, its steps, its knobs.
function resetControls() {
  const problem = currentProblem();
  for (const box of document.querySelectorAll("#optimizers input")) {
    box.checked = problem.optimizers.includes(box.value);
  }
  state.set.clear();
  place("lr", 1);
  for (const knob of KNOBS) place(knob, problem.knob_defaults[knob] ?? RESTING[knob]);
  place("steps", problem.steps);
  $("option-inputs").replaceChildren(...problem.options.map((option) => {
    const label = Object.assign(document.createElement("label"), {title: option.about});
    const input = Object.assign(document.createElement("input"),
                                {type: "number", name: option.name, id: `option-${option.name}`, step: "any",
                                 min: String(option.low), max: String(option.high), value: String(option.value)});
    input.addEventListener("input", () => scheduleUpdate(DEBOUNCE_MS));
    label.append(`${option.name} `, input);
    return label;
  }));
  $("options").hidden = problem.options.length === 0;
  $("summary").textContent = problem.summary;
  showValues();
}

function scheduleUpdate(delay) {
  clearTimeout(timer);
  timer = setTimeout(update, delay);
}

// While a race computes (the flip network's take seconds), ask the server how far it has gone
// every PROGRESS_MS and show it: the steps done of all its runs'.
const PROGRESS_MS = 300;
function watchProgress(query, request) {
  return setInterval(async () => {
    try {
      const answer = await (await fetch(`api/progress?${query}`, {signal: request.signal})).json();
      if (request !== inFlight || answer.state !== "running") return;
      $("progress").hidden = false;
      $("progress").value = answer.share;
      explorer.progress = answer;
      setStatus(`computing… ${answer.done.toLocaleString()} of ${answer.total.toLocaleString()} steps`);
    } catch (error) {
      // the race's own request says what went wrong, if anything did
    }
  }, PROGRESS_MS);
}

async function update() {
  showValues();
  if (chosenOptimizers().length === 0) {
    setStatus("choose at least one optimizer", true);
    return;
  }
  const query = buildQuery();
  if (inFlight) inFlight.abort();  // only the latest settings are worth drawing
  const request = inFlight = new AbortController();
  setStatus("computing…");
  const watching = watchProgress(query, request);
  let response, body;
  try {
    response = await fetch(`api/race?${query}`, {signal: request.signal});
    body = await response.json();
  } catch (error) {
    if (error.name !== "AbortError") setStatus(`no answer from the server: ${error.message}`, true);
    if (request === inFlight) inFlight = null;  // no progress of it is shown over the message
    return;
  } finally {
    clearInterval(watching);
    $("progress").hidden = true;
  }
  if (request !== inFlight) return;
  inFlight = null;
  if (!response.ok) {
    setStatus(body.error, true);
    // The server is busy with other races: ask again in a moment (newer settings replace this).
    if (response.status === 503) scheduleUpdate(1000 * (Number(response.headers.get("Retry-After")) || 1));
    return;
  }
  explorer.query = query;
  explorer.response = body;
  draw(body);
  explorer.draws += 1;
  setStatus("");
}

// --- drawing -------------------------------------------------------------------------------

function runStyle(run, index) {
  return {
    label: run.label, run: index, showLine: true, borderColor: color(run.optimizer),
    backgroundColor: color(run.optimizer), borderWidth: 2, borderDash: run.other_lr ? [6, 4] : [],
    pointRadius: run.losses.length <= 50 ? 3 : 0,
  };
}

function baseOptions(xTitle, yTitle, yType = "linear") {
  return {
    animation: false, responsive: true, maintainAspectRatio: false, parsing: true,
    scales: {x: {type: "linear", title: {display: true, text: xTitle}},
             y: {type: yType, title: {display: true, text: yTitle}}},
    plugins: {legend: {labels: {filter: (item, data) => !data.datasets[item.datasetIndex].contour}},
              tooltip: {filter: (item) => !item.dataset.contour}},
  };
}

// A problem whose runs estimate true values (moments) is drawn as its estimates against the step,
// raw and bias-corrected, beside the truth: `raw` and `corrected` name the runs' series.
function estimateChart(canvas, race, raw, corrected, truth, title) {
  const steps = race.runs[0][raw].length;
  const datasets = [{label: `true ${title} ${format(truth)}`, showLine: true, pointRadius: 0, borderWidth: 1.5,
                     borderColor: "#000", borderDash: [4, 4], data: [{x: 1, y: truth}, {x: steps, y: truth}]}];
  race.runs.forEach((run, index) => {
    const series = (key) => run[key].map((value, step) => ({x: step + 1, y: value}));
    datasets.push({...runStyle(run, index), label: `${run.label} ${corrected}`, data: series(corrected)});
    datasets.push({...runStyle(run, index), label: `${run.label} ${raw}`, borderWidth: 1, borderDash: [2, 3],
                   data: series(raw), series: raw});
  });
  const options = baseOptions("step", `estimate of the ${title}`, "linear");
  options.scales.x.type = "logarithmic";  // the bias matters in the first few steps
  return new Chart(canvas, {type: "scatter", data: {datasets}, options});
}

// The trajectories: over the loss's level lines for 2-D problems, the parameter against the
// step for 1-D ones. Problems with more parameters have no path to draw.
function pathChart(race) {
  if (race.truth) return estimateChart($("path-chart"), race, "m", "m_hat", race.truth.mean, "mean");
  if (race.dimensions > 2) {
    $("path-note").textContent = `${race.dimensions} parameters: no path to draw, only the loss.`;
    return null;
  }
  if (race.dimensions === 1) {
    const datasets = race.runs.map((run, index) => ({
      ...runStyle(run, index), data: run.params.map((w, step) => ({x: step, y: w[0]})),
    }));
    return new Chart($("path-chart"), {type: "scatter", data: {datasets}, options: baseOptions("step", "w")});
  }
  const datasets = (race.contours || []).map((contour) => ({
    label: `loss ${format(contour.level)}`, contour: true, showLine: true, pointRadius: 0,
    borderWidth: 1, borderColor: "rgba(90, 110, 140, 0.35)",
    // one dataset per level: its polylines joined by gaps (a null y breaks the line)
    data: contour.lines.flatMap((line) => [...line.map(([x, y]) => ({x, y})), {x: line[0][0], y: null}]),
  }));
  race.runs.forEach((run, index) => datasets.push({
    ...runStyle(run, index), data: run.params.map(([x, y]) => ({x, y})),
  }));
  const options = baseOptions("x", "y");
  const problem = currentProblem();
  if (problem.bounds) {  // the problem's box, however far a run wanders
    const [xLow, xHigh, yLow, yHigh] = problem.bounds;
    Object.assign(options.scales.x, {min: xLow, max: xHigh});
    Object.assign(options.scales.y, {min: yLow, max: yHigh});
  }
  return new Chart($("path-chart"), {type: "scatter", data: {datasets}, options});
}

function lossChart(race) {
  if (race.truth) return estimateChart($("loss-chart"), race, "v", "v_hat", race.truth.mean_square, "mean square");
  const losses = race.runs.flatMap((run) => run.losses).filter((loss) => loss !== null);
  // log y where it helps: positive losses spanning more than two decades
  const positive = losses.length > 0 && losses.every((loss) => loss > 0);
  const log = positive && Math.max(...losses) / Math.min(...losses) > 100;
  const datasets = race.runs.map((run, index) => ({
    ...runStyle(run, index), data: run.losses.map((loss, step) => ({x: step, y: loss})),
  }));
  const options = baseOptions("step", "loss", log ? "logarithmic" : "linear");
  // label only the powers of ten: Chart.js's own log labels crowd and overlap
  const decade = (value) => Math.abs(Math.log10(value) - Math.round(Math.log10(value))) < 1e-9;
  if (log) options.scales.y.ticks = {callback: (value) => decade(value) ? format(value) : ""};
  return new Chart($("loss-chart"), {type: "scatter", data: {datasets}, options});
}

function fillTable(table, headers, rows) {
  const head = document.createElement("tr");
  for (const header of headers) head.appendChild(Object.assign(document.createElement("th"), {textContent: header}));
  table.tHead.replaceChildren(head);
  table.tBodies[0].replaceChildren(...rows.map((cells) => {
    const row = document.createElement("tr");
    for (const cell of cells) row.appendChild(Object.assign(document.createElement("td"), {textContent: cell}));
    return row;
  }));
}

// The table of `adamlab race`: each run's final loss and parameters, and the problem's own columns.
function drawFinals(race) {
  const path = race.dimensions <= 2;
  const headers = ["run", "final loss", ...(path ? ["final w"] : []), ...race.columns.map((c) => c.header)];
  fillTable($("finals"), headers, race.runs.map((run) => [
    run.label, format(run.final_loss), ...(path ? [run.final_params.map(format).join(", ")] : []),
    ...race.columns.map((column) => format(run[column.key])),
  ]));
}

// Adam's internals (and the other optimizers'), step by step, from the trace of each run.
function drawInternals() {
  const race = explorer.response;
  const traced = (race.internals || []).map((entry, index) => [entry, index]).filter(([entry]) => entry);
  $("internals").hidden = traced.length === 0;
  if (traced.length === 0) return;
  const select = $("internals-run");
  const chosen = Number(select.value);
  select.replaceChildren(...traced.map(([, index]) => new Option(race.runs[index].label, String(index))));
  const adam = traced.find(([, index]) => race.runs[index].optimizer === "adam");
  select.value = traced.some(([, index]) => index === chosen) && select.dataset.problem === race.problem
    ? String(chosen) : String((adam || traced[0])[1]);
  select.dataset.problem = race.problem;
  const entry = race.internals[Number(select.value)];
  if (entry.error) {
    $("internals-note").textContent = `No trace: ${entry.error}`;
    fillTable($("internals-table"), [], []);
    return;
  }
  const rows = entry.rows;
  const from = Math.min(Math.max(1, Number($("internals-from").value) || 1), rows.length);
  const shown = rows.slice(from - 1, from - 1 + TABLE_ROWS);
  // the columns of `adamlab trace`, from /api/problems; empty columns are hidden
  const columns = Object.entries(explorer.problems.trace_columns).filter(([key]) => rows.some((row) => row[key] !== null && row[key] !== undefined)
    && !(key === "g" && rows.every((row) => row.g === row.grad)));
  fillTable($("internals-table"), columns.map(([, header]) => header),
            shown.map((row) => columns.map(([key]) => key === "step" ? String(row.step) : format(row[key]))));
  let note = `Steps ${from} to ${from + shown.length - 1} of ${rows.length}: the gradients this run saw, ` +
    "through adamlab's reference maths (as `adamlab trace` shows them).";
  if (entry.parts_at !== null) {
    note += ` From step ${entry.parts_at} theta differs from the race's: this problem also changes the ` +
      "step in ways a trace at a constant learning rate does not (a schedule, or clamping w).";
  }
  $("internals-note").textContent = note;
}

function draw(race) {
  for (const chart of Object.values(explorer.charts)) chart?.destroy();
  $("title").textContent = race.title;
  const path = pathChart(race);
  $("path-box").hidden = path === null;
  $("path-note").hidden = path !== null;
  explorer.charts = {path, loss: lossChart(race)};
  drawFinals(race);
  const item = (note) => Object.assign(document.createElement("li"), {textContent: note});
  $("notes").replaceChildren(...race.notes.map(item));
  drawInternals();
}

// --- start ---------------------------------------------------------------------------------

async function start() {
  let response = null;
  try {
    response = await fetch("api/problems");
  } catch (error) {
    response = null;
  }
  // A copy of the page (adamlab explore --export), from file:// or a web host: no server to race on.
  if (response === null || !response.ok || !response.headers.get("Content-Type")?.startsWith("application/json")) {
    document.querySelector("main").hidden = true;
    $("server-note").hidden = false;
    explorer.offline = true;
    return;
  }
  explorer.problems = await response.json();
  KNOBS.push(...explorer.problems.knobs);
  for (const problem of explorer.problems.problems) {
    $("problem").appendChild(new Option(`${problem.name}: ${problem.summary}`, problem.name));
  }
  for (const optimizer of explorer.problems.optimizers) {
    const label = document.createElement("label");
    label.title = optimizer.summary;
    const box = Object.assign(document.createElement("input"), {type: "checkbox", value: optimizer.name});
    box.addEventListener("change", () => scheduleUpdate(0));
    label.append(box, ` ${optimizer.name}`);
    label.style.color = color(optimizer.name);
    $("optimizers").appendChild(label);
  }
  $("problem").addEventListener("change", () => { resetControls(); scheduleUpdate(0); });
  $("reset").addEventListener("click", () => { resetControls(); scheduleUpdate(0); });
  for (const name of ["lr", ...KNOBS, "steps"]) {
    $(name).addEventListener("input", () => {
      if (name !== "lr") state.set.add(name);
      showValues();
      scheduleUpdate(DEBOUNCE_MS);
    });
  }
  $("internals-run").addEventListener("change", drawInternals);
  $("internals-from").addEventListener("input", drawInternals);
  resetControls();
  await update();
}

start().catch((error) => setStatus(`could not start: ${error.message}`, true));
