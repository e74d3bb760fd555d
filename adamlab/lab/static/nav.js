/* The views' navigation: each button brings its view into sight, leaving the URL's fragment,
 * which holds the views' settings, as it is; a view that is a race of the server's (the flip
 * network) also chooses that race. */
"use strict";

for (const button of document.querySelectorAll("nav button[data-view]")) {
  button.addEventListener("click", () => {
    const view = document.getElementById(button.dataset.view);
    const select = document.getElementById("problem");  // a view that is one of the server's races
    if (button.dataset.problem && select.value !== button.dataset.problem
        && [...select.options].some((option) => option.value === button.dataset.problem)) {
      select.value = button.dataset.problem;
      select.dispatchEvent(new Event("change"));
    }
    view.scrollIntoView({block: "start"});
    view.querySelector("input, select")?.focus({preventScroll: true});
  });
}
