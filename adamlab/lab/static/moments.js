/* "The moment generating function": M(t) = E[exp(t g)] of gradients g ~ N(mean, spread^2), its
 * slope at 0 (the mean, which m estimates) and its curvature at 0 (the mean square, which v
 * estimates), and Adam's m_hat and v_hat on gradients sampled from it finding those two numbers.
 * M and its moments come from adamlab.maths.moments and the estimates from Adam's step
 * (rules.js, both printed from the maths); only the sampling is this file's own. */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const STEPS = 200;
  const SEED = 1;
  const moments = window.moments = {draws: 0, grads: [], rows: [], curve: []};

  /* Seeded normal samples (mulberry32 and Box-Muller): the same gradients for the same link. */
  function samples(mean, spread, count, seed) {
    let a = seed >>> 0;
    const uniform = () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    return Array.from({length: count}, () => {
      const u = 1 - uniform(), v = uniform();
      return mean + spread * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    });
  }

  function estimates(grads) {
    const rule = ADAMLAB_RULES.adam;
    const h = {...rule.hyperparameters};
    let theta = Float64Array.of(0);
    let state = adamlabInit(rule, theta);
    return grads.map((grad, index) => {
      const next = adamlabStep(rule, h, state, theta, Float64Array.of(grad));
      state = next.state;
      theta = next.param;
      return {step: index + 1, m: next.quantities.m[0], v: next.quantities.v[0],
              m_hat: next.quantities.m_hat[0], v_hat: next.quantities.v_hat[0]};
    });
  }

  function line(canvas, datasets, xTitle, yTitle) {
    adamlabChart(canvas, {
      type: "line", data: {datasets},
      options: {animation: false, maintainAspectRatio: false, elements: {point: {radius: 0}},
                scales: {x: {type: "linear", title: {display: true, text: xTitle}},
                         y: {title: {display: true, text: yTitle}}}},
    });
  }

  function redraw({mean, spread}) {
    const slope = ADAMLAB_MOMENTS.first_moment(mean, spread);
    const curvature = ADAMLAB_MOMENTS.second_moment(mean, spread);
    const reach = 1.2 / Math.max(1, Math.abs(mean), spread);  // near 0, where the tangent and curvature show
    const ts = Array.from({length: 101}, (_, i) => -reach + (2 * reach * i) / 100);
    moments.curve = ts.map((t) => ({t, M: ADAMLAB_MOMENTS.normal_mgf(t, mean, spread)}));
    line("mgf-chart", [
      {label: "M(t)", data: moments.curve.map((p) => ({x: p.t, y: p.M})), borderColor: "#222", borderWidth: 2},
      {label: `tangent at 0: 1 + ${slope} t (slope = mean)`, data: ts.map((t) => ({x: t, y: 1 + slope * t})),
       borderColor: "#d62728", borderDash: [6, 4]},
      {label: `1 + mean t + E[g^2] t^2 / 2 (curvature = ${Number(curvature.toPrecision(6))})`,
       data: ts.map((t) => ({x: t, y: 1 + slope * t + (curvature * t * t) / 2})),
       borderColor: "#1f77b4", borderDash: [2, 3]},
    ], "t", "M(t) = E[exp(t g)]");
    moments.grads = samples(mean, spread, STEPS, SEED);
    moments.rows = estimates(moments.grads);
    const steps = moments.rows.map((row) => row.step);
    line("mgf-estimates", [
      {label: "m_hat", data: moments.rows.map((row) => ({x: row.step, y: row.m_hat})), borderColor: "#d62728", borderWidth: 2},
      {label: "mean", data: steps.map((t) => ({x: t, y: slope})), borderColor: "#d62728", borderDash: [6, 4]},
      {label: "v_hat", data: moments.rows.map((row) => ({x: row.step, y: row.v_hat})), borderColor: "#1f77b4", borderWidth: 2},
      {label: "mean square", data: steps.map((t) => ({x: t, y: curvature})), borderColor: "#1f77b4", borderDash: [6, 4]},
    ], "step", "Adam's estimates (betas 0.9, 0.999)");
    $("mgf-numbers").textContent = `M'(0) = ${Number(slope.toPrecision(6))}, M''(0) = ${Number(curvature.toPrecision(6))}; ` +
      `after ${STEPS} gradients m_hat = ${Number(moments.rows[STEPS - 1].m_hat.toPrecision(4))}, ` +
      `v_hat = ${Number(moments.rows[STEPS - 1].v_hat.toPrecision(4))}`;
    moments.draws += 1;
  }

  adamlabView("mgf", {
    mean: {initial: "0.5", valid: (x) => x >= -100 && x <= 100, message: "mean must be a number in [-100, 100]",
           slider: [-3, 3, 0.05]},
    spread: {initial: "1", valid: (x) => x >= 0 && x <= 100, message: "spread must be a number in [0, 100]",
             slider: [0, 3, 0.05]},
  }, redraw);
})();
