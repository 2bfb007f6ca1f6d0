// optimizerd dashboard: which charts a session gets, as specs for charts.js's chartFigure
// ({key, title, series: [{name, value(record)}], logToggle?, small?, layer?}), from the session's
// optimizer and its history records (GET /v1/sessions/{id}/history). dashboard.js lays them out.
"use strict";

window.OptimizerdChartSpecs = (function () {
  const { finite } = window.OptimizerdCharts;

  /// What to chart for a session of `optimizer`: the fixed charts, then clipping and MTAdam's when present.
  function chartSpecs(optimizer, records) {
    const momo = optimizer === "momo" || optimizer === "momo_adam";
    const lrTitle = momo
      ? "Adaptive step size τ (MoMo)"
      : optimizer === "adafactor"
        ? "Learning rate (relative step when lr is unset)"
        : "Learning rate";
    const specs = [
      { key: "loss", title: "Loss", series: [{ name: "loss", value: (r) => r.loss }], logToggle: true },
      { key: "lr", title: lrTitle, series: [{ name: momo ? "τ" : "lr", value: (r) => r.lr }] },
      { key: "grad_norm", title: "Gradient norm", series: [{ name: "‖g‖", value: (r) => r.grad_norm }], logToggle: true },
      { key: "update_norm", title: "Update norm", series: [{ name: "‖Δθ‖", value: (r) => r.update_norm }], logToggle: true },
    ];
    if (records.some((r) => finite(r.clip_coefficient) != null)) {
      specs.push({ key: "clip_coefficient", title: "Clip coefficient", series: [{ name: "clip", value: (r) => r.clip_coefficient }] });
    }
    const terms = records.reduce((n, r) => Math.max(n, (r.term_grad_norms || []).length), 0);
    if (terms > 0) {
      specs.push({
        key: "term_grad_norms",
        title: "Per-term gradient norms (MTAdam)",
        logToggle: true,
        series: range(terms).map((k) => ({ name: "term " + k, value: (r) => (r.term_grad_norms || [])[k] })),
      });
    }
    return specs;
  }

  /// MTAdam: one small chart per layer, one line per term.
  function termWeightSpecs(records) {
    const layers = new Set();
    let terms = 0;
    for (const r of records) {
      if (!r.term_weights) continue;
      for (const [layer, weights] of Object.entries(r.term_weights)) {
        layers.add(layer);
        terms = Math.max(terms, weights.length);
      }
    }
    return [...layers].sort().map((layer) => ({
      key: "term_weights:" + layer,
      layer,
      title: layer,
      small: true,
      series: range(terms).map((k) => ({
        name: "term " + k,
        value: (r) => (r.term_weights && r.term_weights[layer] ? r.term_weights[layer][k] : null),
      })),
    }));
  }

  function range(n) {
    return Array.from({ length: n }, (_, i) => i);
  }

  return Object.freeze({ chartSpecs, termWeightSpecs });
})();
