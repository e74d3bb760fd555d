/* "One step at a time": an optimizer on one number, every quantity of its step in a table,
 * computed in this page by ADAMLAB_RULES (rules.js, printed from adamlab.maths). It opens on the
 * worked example of Adam. Its settings live in the URL's fragment, so a link brings the same
 * table back; a setting that is not valid says so beside itself and the last table stays. */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const DEFAULTS = {optimizer: "adam", grads: "0.5, 0.3, 0.8, 0.6", theta: "1", lr: "0.001",
                    beta1: "0.9", beta2: "0.999"};
  const FIELDS = ["grads", "theta", "lr", "beta1", "beta2"];
  const MAX_GRADS = 1000;
  const SHOWN_ROWS = 100;  // a table of 1,000 rows took a quarter of a second to build: the rest is in the caption
  const stepper = window.stepper = {draws: 0, rows: []};

  function number(text) {
    return text.trim() === "" ? NaN : Number(text.trim());
  }

  /* The settings typed, and a message for each that is not valid. */
  function read() {
    const text = Object.fromEntries(FIELDS.map((field) => [field, $(`step-${field}`).value]));
    const errors = {};
    const parts = text.grads.split(/[\s,;]+/).filter((part) => part !== "");
    const bad = parts.find((part) => !Number.isFinite(Number(part)));
    if (parts.length === 0) errors.grads = "type at least one gradient, e.g. 0.5, 0.3";
    else if (bad !== undefined) errors.grads = `"${bad.slice(0, 20)}" is not a finite number`;
    else if (parts.length > MAX_GRADS) errors.grads = `at most ${MAX_GRADS} gradients, got ${parts.length}`;
    const values = {optimizer: $("step-optimizer").value, grads: parts.map(Number), text};
    for (const field of ["theta", "lr", "beta1", "beta2"]) values[field] = number(text[field]);
    if (!Number.isFinite(values.theta)) errors.theta = "theta0 must be a finite number";
    if (!(values.lr > 0 && values.lr <= 10)) errors.lr = "lr must be a number in (0, 10]";
    for (const beta of ["beta1", "beta2"]) {  // only the betas this optimizer has
      const applies = beta in (ADAMLAB_KNOBS[values.optimizer] || {});
      $(`step-${beta}`).disabled = !applies;
      if (applies && !(values[beta] >= 0 && values[beta] < 1)) errors[beta] = `${beta} must be a number in [0, 1)`;
    }
    return {values, errors};
  }

  /* The optimizer's steps over the gradients: one row of its quantities per step. */
  function compute(values) {
    const rule = ADAMLAB_RULES[values.optimizer];
    const knobs = ADAMLAB_KNOBS[values.optimizer];
    const h = {...rule.hyperparameters, lr: values.lr};
    for (const knob of ["beta1", "beta2"]) {
      if (knob in knobs) h[knobs[knob]] = values[knob];
    }
    let theta = Float64Array.of(values.theta);
    let state = adamlabInit(rule, theta);
    return values.grads.map((grad, index) => {
      const next = adamlabStep(rule, h, state, theta, Float64Array.of(grad));
      theta = next.param;
      state = next.state;
      const row = {step: index + 1, grad};
      for (const [name, value] of Object.entries(next.quantities)) {
        row[name] = typeof value === "number" ? value : value[0];
      }
      row.param = theta[0];
      return row;
    });
  }

  function cell(value) {
    return Number.isInteger(value) ? String(value) : Number(value.toPrecision(7)).toString();
  }

  function draw(rows, values) {
    // adamlab trace's columns in its order, then any quantity of the maths it has no header for
    const known = Object.keys(ADAMLAB_COLUMNS).filter((key) => rows.some((row) => key in row));
    const columns = [...known, ...Object.keys(rows[0] || {}).filter((key) => !(key in ADAMLAB_COLUMNS))];
    const table = $("step-table");
    const more = rows.length > SHOWN_ROWS
      ? ` (the first ${SHOWN_ROWS} of ${rows.length} steps; theta ends at ${cell(rows[rows.length - 1].param)})` : "";
    table.querySelector("caption").textContent =
      `${values.optimizer} on one number from theta0 = ${cell(values.theta)}: each step's quantities${more}`;
    const head = table.querySelector("thead");
    head.replaceChildren(document.createElement("tr"));
    for (const key of columns) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = ADAMLAB_COLUMNS[key] ?? key;
      head.firstChild.append(th);
    }
    const body = table.querySelector("tbody");
    body.replaceChildren(...rows.slice(0, SHOWN_ROWS).map((row) => {
      const tr = document.createElement("tr");
      for (const key of columns) {
        const td = document.createElement("td");
        td.textContent = key in row ? cell(row[key]) : "";
        tr.append(td);
      }
      return tr;
    }));
  }

  function update() {
    const {values, errors} = read();
    for (const field of FIELDS) {
      const input = $(`step-${field}`);
      $(`step-${field}-error`).textContent = errors[field] || "";
      input.setAttribute("aria-invalid", field in errors ? "true" : "false");
    }
    if (Object.keys(errors).length) {
      $("step-status").textContent = stepper.draws ? "The table keeps the last settings that were valid."
                                                   : "No table until the settings are valid.";
      return;
    }
    $("step-status").textContent = "";
    stepper.rows = compute(values);
    draw(stepper.rows, values);
    stepper.values = values;
    stepper.draws += 1;
    document.dispatchEvent(new CustomEvent("adamlab:stepper", {detail: values}));  // parabola.js plays them
    adamlabKeepInLink({optimizer: values.optimizer, ...values.text});
  }

  function start() {
    const select = $("step-optimizer");
    for (const name of Object.keys(ADAMLAB_RULES)) select.add(new Option(name, name));
    const wanted = new URLSearchParams(location.hash.slice(1));
    for (const [field, value] of Object.entries(DEFAULTS)) {
      const given = wanted.get(field);
      const input = $(`step-${field}`);
      input.value = given !== null && (field !== "optimizer" || Object.hasOwn(ADAMLAB_RULES, given)) ? given : value;
    }
    select.addEventListener("change", () => {  // the betas start at the chosen optimizer's defaults
      const rule = ADAMLAB_RULES[select.value];
      for (const [knob, name] of Object.entries(ADAMLAB_KNOBS[select.value])) {
        if (knob === "beta1" || knob === "beta2") $(`step-${knob}`).value = String(rule.hyperparameters[name]);
      }
      update();
    });
    for (const field of FIELDS) $(`step-${field}`).addEventListener("input", update);
    update();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
