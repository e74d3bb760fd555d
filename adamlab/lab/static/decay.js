/* "L2 against AdamW": two weights from 1.0 with zero-mean gradients, one of size 10 and one of
 * size 0.01 (the weight-decay race of adamlab.lab.race, ADAMLAB_LINEAR), raced in the page by
 * Adam with L2 (weight_decay added to the gradient) and by AdamW (decay decoupled from it). The
 * picture shows each weight's size on a log scale: AdamW shrinks both alike, Adam + L2 hardly
 * shrinks the weight with large gradients and crushes the one with small ones. */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const PROBLEM = ADAMLAB_LINEAR["weight-decay"];
  const RUNS = {adam: "Adam + L2", adamw: "AdamW"};
  const COLOURS = {adam: "#1f77b4", adamw: "#ff7f0e"};
  const SIZES = ["|g| = 10", "|g| = 0.01"];
  const view = window.decayView = {draws: 0, paths: {}};

  function redraw(values) {
    const problem = {...PROBLEM, knobs: {...PROBLEM.knobs, weight_decay: values.wd}};
    for (const name of Object.keys(RUNS)) view.paths[name] = adamlabRace(problem, name, values.lr);
    const datasets = [];
    for (const [name, label] of Object.entries(RUNS)) {
      SIZES.forEach((size, index) => datasets.push({
        label: `${label}, ${size}`, borderColor: COLOURS[name], borderWidth: 2, pointRadius: 0,
        borderDash: index === 0 ? [] : [5, 4],
        data: view.paths[name].map((w, t) => ({x: t, y: Math.max(Math.abs(w[index]), 1e-12)})),
      }));
    }
    adamlabChart("decay-chart", {
      type: "line", data: {datasets},
      options: {animation: false, maintainAspectRatio: false,
                scales: {x: {type: "linear", title: {display: true, text: "step"}},
                         y: {type: "logarithmic", ticks: ADAMLAB_DECADES, title: {display: true, text: "|w| (log scale)"}}}},
    });
    const steps = view.paths.adam.length - 1;
    $("decay-table").querySelector("tbody").replaceChildren(...Object.entries(RUNS).map(([name, label]) => {
      const tr = document.createElement("tr");
      const finals = view.paths[name][steps];
      // the decay per step that shrinks 1.0 to the final weight, as the race's table gives it
      const cells = [label, ...finals.flatMap((w) => [w, -Math.log(Math.max(Math.abs(w), 1e-300)) / steps])];
      for (const value of cells) {
        const td = document.createElement("td");
        td.textContent = typeof value === "string" ? value : String(Number(value.toPrecision(4)));
        tr.append(td);
      }
      return tr;
    }));
    view.draws += 1;
  }

  adamlabView("decay", {
    lr: {initial: String(PROBLEM.lrs.adam), valid: (x) => x > 0 && x <= 10, message: "lr must be a number in (0, 10]"},
    wd: {initial: String(PROBLEM.knobs.weight_decay), valid: (x) => x >= 0 && x <= 10,
         message: "weight decay must be a number in [0, 10]"},
  }, redraw);
})();
