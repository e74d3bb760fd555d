/* "AdaGrad's dying learning rate": AdaGrad divides lr by the root of the sum of every squared
 * gradient so far, so on a steady gradient its step shrinks as 1/sqrt(t) and never recovers;
 * RMSprop and Adam divide by a moving average and keep stepping. The steps come from the
 * optimizers' own maths (rules.js, printed from adamlab.maths); the effective learning rate is
 * each step's update over its gradient. */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const STEPS = 10000;
  const SHOWN = [1, 10, 100, 1000, 10000];
  const OPTIMIZERS = ["adagrad", "rmsprop", "adam"];
  const COLOURS = {adagrad: "#bcbd22", rmsprop: "#17becf", adam: "#d62728"};
  const dying = window.dying = {draws: 0, runs: {}};
  let chart = null;

  function run(name, lr, grad) {
    const rule = ADAMLAB_RULES[name];
    const h = {...rule.hyperparameters, lr};
    let state = adamlabInit(rule, 1);
    let theta = Float64Array.of(0);
    const rows = [];
    for (let t = 1; t <= STEPS; t++) {
      const next = adamlabStep(rule, h, state, theta, Float64Array.of(grad));
      state = next.state;
      theta = next.param;
      const row = {step: t, effective: next.quantities.update[0] / grad};
      if ("sum" in next.quantities) row.sum = next.quantities.sum[0];
      rows.push(row);
    }
    return rows;
  }

  function read() {
    const errors = {}, values = {};
    const grad = $("dying-grad").value.trim(), lr = $("dying-lr").value.trim();
    values.grad = grad === "" ? NaN : Number(grad);
    values.lr = lr === "" ? NaN : Number(lr);
    if (!(Number.isFinite(values.grad) && values.grad !== 0 && Math.abs(values.grad) <= 1e6)) {
      errors.grad = "the gradient must be a number other than 0, at most 1e6 in size";
    }
    if (!(values.lr > 0 && values.lr <= 10)) errors.lr = "lr must be a number in (0, 10]";
    return {values, errors};
  }

  function draw() {
    const table = $("dying-table").querySelector("tbody");
    table.replaceChildren(...SHOWN.map((t) => {
      const tr = document.createElement("tr");
      const cells = [t, dying.runs.adagrad[t - 1].sum, ...OPTIMIZERS.map((name) => dying.runs[name][t - 1].effective)];
      for (const value of cells) {
        const td = document.createElement("td");
        td.textContent = String(Number(value.toPrecision(5)));
        tr.append(td);
      }
      return tr;
    }));
    const datasets = OPTIMIZERS.map((name) => ({
      label: name, borderColor: COLOURS[name], borderWidth: 2, pointRadius: 0,
      data: dying.runs[name].filter((row, i) => i < 100 || i % 20 === 0).map((row) => ({x: row.step, y: row.effective})),
    }));
    if (chart) {
      chart.data.datasets = datasets;
      chart.update("none");
      return;
    }
    chart = new Chart($("dying-chart"), {
      type: "line", data: {datasets},
      options: {animation: false, maintainAspectRatio: false,
                scales: {x: {type: "logarithmic", title: {display: true, text: "step t"}},
                         y: {type: "logarithmic", title: {display: true, text: "effective learning rate: update / g"}}}},
    });
  }

  function update() {
    const {values, errors} = read();
    for (const name of ["grad", "lr"]) {
      $(`dying-${name}-error`).textContent = errors[name] || "";
      $(`dying-${name}`).setAttribute("aria-invalid", name in errors ? "true" : "false");
    }
    if (Object.keys(errors).length) return;  // the last picture stays
    for (const name of OPTIMIZERS) dying.runs[name] = run(name, values.lr, values.grad);
    draw();
    dying.draws += 1;
    const query = new URLSearchParams(location.hash.slice(1));
    query.set("dying_grad", $("dying-grad").value);
    query.set("dying_lr", $("dying-lr").value);
    history.replaceState(null, "", `#${query}`);
  }

  function start() {
    const wanted = new URLSearchParams(location.hash.slice(1));
    $("dying-grad").value = wanted.get("dying_grad") ?? "1";
    $("dying-lr").value = wanted.get("dying_lr") ?? "0.01";
    for (const name of ["grad", "lr"]) $(`dying-${name}`).addEventListener("input", update);
    update();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
