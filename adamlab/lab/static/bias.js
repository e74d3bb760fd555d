/* "Bias correction": Adam's m and v start at zero, so after t steps they hold only 1 - beta^t of
 * what they estimate; m_hat and v_hat divide that out. The multipliers 1/(1 - beta^t) come from
 * Adam's own step here (rules.js, printed from adamlab.maths): its bias_correction1 and
 * bias_correction2 over 1,000 steps. Betas live in the URL's fragment with the other views'. */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const SHOWN = [1, 5, 10, 50, 100, 1000];
  const bias = window.bias = {draws: 0, rows: []};
  let chart = null;

  /* 1 - beta1^t and 1 - beta2^t for t = 1 .. steps, as Adam's step computes them. */
  function corrections(beta1, beta2, steps) {
    const rule = ADAMLAB_RULES.adam;
    const h = {...rule.hyperparameters, beta1, beta2};
    let state = adamlabInit(rule, 1);
    let theta = Float64Array.of(0);
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

  function read() {
    const errors = {};
    const values = {};
    for (const beta of ["beta1", "beta2"]) {
      const text = $(`bias-${beta}`).value.trim();
      values[beta] = text === "" ? NaN : Number(text);
      if (!(values[beta] >= 0 && values[beta] < 1)) errors[beta] = `${beta} must be a number in [0, 1)`;
    }
    return {values, errors};
  }

  function draw(all, values) {
    const table = $("bias-table");
    const shown = all.filter((row) => SHOWN.includes(row.step));
    table.querySelector("tbody").replaceChildren(...shown.map((row) => {
      const tr = document.createElement("tr");
      for (const text of [row.step, Number(row.m_multiplier.toPrecision(5)), Number(row.v_multiplier.toPrecision(5))]) {
        const td = document.createElement("td");
        td.textContent = String(text);
        tr.append(td);
      }
      return tr;
    }));
    const data = {
      labels: all.map((row) => row.step),
      datasets: [
        {label: `m: 1/(1-${values.beta1}^t)`, data: all.map((row) => row.m_multiplier), borderColor: "#d62728",
         pointRadius: 0, borderWidth: 2},
        {label: `v: 1/(1-${values.beta2}^t)`, data: all.map((row) => row.v_multiplier), borderColor: "#1f77b4",
         pointRadius: 0, borderWidth: 2},
      ],
    };
    if (chart) {
      chart.data = data;
      chart.update("none");
      return;
    }
    chart = new Chart($("bias-chart"), {
      type: "line", data,
      options: {animation: false, maintainAspectRatio: false,
                scales: {x: {type: "logarithmic", title: {display: true, text: "step t"}},
                         y: {type: "logarithmic", title: {display: true, text: "multiplier 1/(1 - beta^t)"}}}},
    });
  }

  function update() {
    const {values, errors} = read();
    for (const beta of ["beta1", "beta2"]) {
      $(`bias-${beta}-error`).textContent = errors[beta] || "";
      $(`bias-${beta}`).setAttribute("aria-invalid", beta in errors ? "true" : "false");
    }
    if (Object.keys(errors).length) return;  // the last picture stays
    bias.rows = corrections(values.beta1, values.beta2, SHOWN[SHOWN.length - 1]);
    draw(bias.rows, values);
    bias.draws += 1;
    const query = new URLSearchParams(location.hash.slice(1));
    query.set("bias_beta1", $("bias-beta1").value);
    query.set("bias_beta2", $("bias-beta2").value);
    history.replaceState(null, "", `#${query}`);
  }

  function start() {
    const wanted = new URLSearchParams(location.hash.slice(1));
    $("bias-beta1").value = wanted.get("bias_beta1") ?? "0.9";
    $("bias-beta2").value = wanted.get("bias_beta2") ?? "0.999";
    for (const beta of ["beta1", "beta2"]) $(`bias-${beta}`).addEventListener("input", update);
    update();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
