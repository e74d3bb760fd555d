/* "AMSGrad's fix": Reddi et al.'s online problem, raced in the page. Every third gradient is
 * C = 3, the others -1, so the best x in [-1, 1] is -1; with beta2 = 1/(1 + C^2) Adam forgets the
 * large gradient before it comes again and drifts to +1, while AMSGrad divides by the largest v
 * so far and finds -1. The gradients, the schedule (lr / sqrt(t)) and the interval come from the
 * race's own definition (ADAMLAB_LINEAR), the steps from the optimizers' maths (rules.js). */
"use strict";

(() => {
  const RUNS = ["adam", "amsgrad"];
  const COLOURS = {adam: "#d62728", amsgrad: "#9467bd"};
  const PROBLEM = ADAMLAB_LINEAR.amsgrad;
  const view = window.amsgradView = {draws: 0, paths: {}};

  function redraw({lr}) {
    for (const name of RUNS) view.paths[name] = adamlabRace(PROBLEM, name, lr).map((x) => x[0]);
    const every = Math.max(1, Math.floor(view.paths.adam.length / 600));
    const datasets = RUNS.map((name) => ({
      label: `${name}: x ends at ${Number(view.paths[name].at(-1).toPrecision(4))}`, borderColor: COLOURS[name],
      borderWidth: 2, pointRadius: 0,
      data: view.paths[name].filter((_, t) => t % every === 0).map((x, i) => ({x: i * every, y: x})),
    }));
    adamlabChart("amsgrad-chart", {
      type: "line", data: {datasets},
      options: {animation: false, maintainAspectRatio: false,
                scales: {x: {type: "linear", title: {display: true, text: "step"}},
                         y: {min: -1, max: 1, title: {display: true, text: "x (the optimum is -1)"}}}},
    });
    view.draws += 1;
  }

  document.getElementById("amsgrad-title").title = PROBLEM.title;
  adamlabView("amsgrad", {
    lr: {initial: String(PROBLEM.lrs.adam), valid: (x) => x > 0 && x <= 10, message: "lr must be a number in (0, 10]"},
  }, redraw);
})();
