/* "Bias correction": Adam's m and v start at zero, so after t steps they hold only 1 - beta^t of
 * what they estimate; m_hat and v_hat divide that out. The multipliers 1/(1 - beta^t) come from
 * Adam's own step here (rules.js, printed from adamlab.maths): its bias_correction1 and
 * bias_correction2 over 1,000 steps. */
"use strict";

(() => {
  const SHOWN = [1, 5, 10, 50, 100, 1000];
  const bias = window.bias = {draws: 0, rows: []};

  /* 1/(1 - beta1^t) and 1/(1 - beta2^t) for t = 1 .. steps, as Adam's step computes them. */
  function corrections(beta1, beta2, steps) {
    const rule = ADAMLAB_RULES.adam;
    const h = {...rule.hyperparameters, beta1, beta2};
    let theta = Float64Array.of(0);
    let state = adamlabInit(rule, theta);
    const rows = [];
    for (let t = 1; t <= steps; t++) {
      const next = adamlabStep(rule, h, state, theta, Float64Array.of(1));
      state = next.state;
      theta = next.param;
      rows.push({step: t, m_multiplier: 1 / next.quantities.bias_correction1,
                 v_multiplier: 1 / next.quantities.bias_correction2});
    }
    return rows;
  }

  function redraw({beta1, beta2}) {
    bias.rows = corrections(beta1, beta2, SHOWN[SHOWN.length - 1]);
    const shown = bias.rows.filter((row) => SHOWN.includes(row.step));
    document.querySelector("#bias-table tbody").replaceChildren(...shown.map((row) => {
      const tr = document.createElement("tr");
      for (const text of [row.step, Number(row.m_multiplier.toPrecision(5)), Number(row.v_multiplier.toPrecision(5))]) {
        const td = document.createElement("td");
        td.textContent = String(text);
        tr.append(td);
      }
      return tr;
    }));
    const datasets = [
      {label: `m: 1/(1-${beta1}^t)`, data: bias.rows.map((row) => row.m_multiplier), borderColor: "#d62728",
       pointRadius: 0, borderWidth: 2},
      {label: `v: 1/(1-${beta2}^t)`, data: bias.rows.map((row) => row.v_multiplier), borderColor: "#1f77b4",
       pointRadius: 0, borderWidth: 2},
    ];
    adamlabChart("bias-chart", {
      type: "line", data: {labels: bias.rows.map((row) => row.step), datasets},
      options: {animation: false, maintainAspectRatio: false,
                scales: {x: {type: "logarithmic", title: {display: true, text: "step t"}},
                         y: {type: "logarithmic", title: {display: true, text: "multiplier 1/(1 - beta^t)"}}}},
    });
    bias.draws += 1;
  }

  const beta = (name, initial) => ({initial, valid: (x) => x >= 0 && x < 1, message: `${name} must be a number in [0, 1)`});
  adamlabView("bias", {beta1: beta("beta1", "0.9"), beta2: beta("beta2", "0.999")}, redraw);
})();
