/* The views' navigation: each button brings its view into sight, leaving the URL's fragment,
 * which holds the views' settings, as it is. */
"use strict";

for (const button of document.querySelectorAll("nav button[data-view]")) {
  button.addEventListener("click", () => {
    const view = document.getElementById(button.dataset.view);
    view.scrollIntoView({block: "start"});
    view.querySelector("input, select")?.focus({preventScroll: true});
  });
}
