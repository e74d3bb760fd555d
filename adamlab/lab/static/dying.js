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

  function run(name, lr, grad) {
    const rule = ADAMLAB_RULES[name];
    const h = {...rule.hyperparameters, lr};
    let theta = Float64Array.of(0);
    let state = adamlabInit(rule, theta);
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
    adamlabChart("dying-chart", {
      type: "line", data: {datasets},
      options: {animation: false, maintainAspectRatio: false,
                scales: {x: {type: "logarithmic", title: {display: true, text: "step t"}},
                         y: {type: "logarithmic", title: {display: true, text: "effective learning rate: update / g"}}}},
    });
  }

  function redraw(values) {
    for (const name of OPTIMIZERS) dying.runs[name] = run(name, values.lr, values.grad);
    draw();
    dying.draws += 1;
  }

  adamlabView("dying", {
    grad: {initial: "1", valid: (x) => Number.isFinite(x) && x !== 0 && Math.abs(x) <= 1e6,
           message: "the gradient must be a number other than 0, at most 1e6 in size"},
    lr: {initial: "0.01", valid: (x) => x > 0 && x <= 10, message: "lr must be a number in (0, 10]"},
  }, redraw);
})();
