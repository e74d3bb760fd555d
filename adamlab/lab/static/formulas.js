/* Each view's formulas, typeset by KaTeX (vendored: katex.min.js, katex.min.css, fonts/) from
 * the TeX in their data-tex attribute, with MathML beside the picture for screen readers. */
"use strict";

window.formulas = {typeset: 0};
for (const element of document.querySelectorAll("[data-tex]")) {
  katex.render(element.dataset.tex, element, {displayMode: true, throwOnError: true, output: "htmlAndMathml"});
  window.formulas.typeset += 1;
}
