// The report page's script: embeds the Bokeh plots (evo.views.report_plots), then filters them,
// switches the x axis and the tree's colours, and shows the candidate a click selects. The
// selection and the filters live in the URL's hash, so that a live page's reload keeps them and
// a link can point at one candidate (#c=42).
"use strict";

const data = JSON.parse(document.getElementById("evo-data").textContent);
const item = JSON.parse(document.getElementById("evo-plots").textContent);
const hash = new URLSearchParams(location.hash.slice(1));
let evoSelect = () => {};  // the plots' tap callbacks call it; set once the plots are there
let evoZoomed = () => {};  // the plots' zoom, pan and reset call it; likewise

function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function model(name) {
  return Bokeh.documents[0].get_model_by_name(name);
}

function runPage() {
  const nodes = model("nodes").data;
  const points = model("points").data;
  const edges = model("edges").data;
  const byId = new Map(Array.from(nodes.id, (id, i) => [id, i]));
  const choice = (key, fallback) => (hash.has(key) ? hash.get(key) : fallback);
  // The hash names what is hidden, so that what a live run adds later (an island, a status, a
  // model) shows after a reload.
  const shownOf = (key, values, parse = String) => {
    const hidden = new Set(choice(`hide-${key}`, "").split(",").filter(Boolean));
    return new Set(values.filter((v) => !hidden.has(String(v))).map(parse));
  };
  const islands = [...new Set(nodes.island)].sort((a, b) => a - b);
  const all = { islands, statuses: data.statuses, operators: data.operators };
  const state = {
    islands: shownOf("islands", islands, Number),
    statuses: shownOf("statuses", data.statuses),
    operators: shownOf("operators", data.operators),
    x: choice("x", "evals_done"),
    colour: choice("colour", "island"),
    selected: hash.has("c") ? Number(hash.get("c")) : null,
    // Where the reader zoomed or panned each plot to: x0, x1, y0, y1.
    views: Object.fromEntries(["best", "evaluations", "tree"].filter((name) => hash.has(`view-${name}`))
      .map((name) => [name, hash.get(`view-${name}`).split(",").map(Number)])),
  };

  function saveHash() {
    const params = new URLSearchParams();
    for (const key of ["islands", "statuses", "operators"]) {
      const hide = all[key].filter((v) => !state[key].has(v));
      if (hide.length) params.set(`hide-${key}`, hide.join(","));
    }
    params.set("x", state.x);
    params.set("colour", state.colour);
    if (state.selected !== null) params.set("c", state.selected);
    for (const [name, view] of Object.entries(state.views)) {
      params.set(`view-${name}`, view.map((v) => +v.toPrecision(6)).join(","));
    }
    history.replaceState(null, "", "#" + params.toString());
  }

  function applyViews() {
    for (const [name, [x0, x1, y0, y1]] of Object.entries(state.views)) {
      const plot = model(name);
      // As a zoom tool does: the ranges stop following the data.
      Object.assign(plot.x_range, { start: x0, end: x1, have_updated_interactively: true });
      Object.assign(plot.y_range, { start: y0, end: y1, have_updated_interactively: true });
    }
  }

  function applyFilters() {
    const shown = Array.from(nodes.id, (_, i) => state.islands.has(nodes.island[i])
      && state.statuses.has(nodes.status[i]) && state.operators.has(nodes.operator[i]));
    model("nodes-filter").booleans = shown;
    model("points-filter").booleans = Array.from(points.candidate, (i) => shown[i]);
    model("edges-filter").booleans = Array.from(edges.child, (i, k) => shown[i] && shown[edges.parent[k]]);
    for (const name of data.curves.filter((k) => k !== "run")) {
      for (const part of ["line", "dots"]) model(`best-${part}-${name}`).visible = state.islands.has(Number(name));
    }
  }

  function applyAxis() {
    const label = state.x === "minutes" ? "minutes" : "evaluations";
    const names = ["points", "best-band", ...data.curves.map((k) => `best-${k}`)];
    for (const name of names) {
      const source = model(name);
      if (source) source.data = { ...source.data, x: source.data[state.x] };
    }
    for (const name of ["best-x", "evaluations-x"]) model(name).axis_label = label;
  }

  function applyColour() {
    const source = model("nodes");
    source.data = { ...source.data, colour: source.data[`colour_${state.colour}`] };
    model("colour-bar").visible = state.colour === "fitness";
  }

  function showPanel(id) {
    const panel = document.getElementById("panel");
    const i = byId.get(id);
    if (i === undefined) {
      panel.innerHTML = "<p class='hint'>Click a point (an evaluation or a node of the tree) to see its candidate.</p>";
      return;
    }
    const highlight = model("highlight");
    highlight.data = { x: [nodes.generation[i]], y: [nodes.tree_y[i]] };
    const detail = data.details[String(id)];
    const link = (other, label) => (byId.has(other) ? `<a href="#" data-select="${other}">${label} #${other}</a>` : "");
    const status = nodes.status[i];
    const html = [
      `<h2>candidate #${id}</h2>`,
      `<p>island ${nodes.island[i]} · generation ${nodes.generation[i]} · <b class="status-${status}">${status}</b>`
        + ` · ${escapeHtml(data.metric)} ${nodes.fitness[i]}</p>`,
      `<p>${link(nodes.parent[i], "parent")} ${link(nodes.mate[i], "mate")}</p>`,
      ...(data.confirmed?.[String(id)] ?? []).map((line) => `<p class="confirmed">${escapeHtml(line)}</p>`),
      `<p><b>hypothesis:</b> <span class="hypothesis">${escapeHtml(nodes.hypothesis[i]) || "-"}</span></p>`,
      nodes.reason[i] ? `<p><b>reason:</b> ${escapeHtml(nodes.reason[i])}</p>` : "",
      `<p>operator ${escapeHtml(nodes.operator[i])}`
        + (nodes.tokens[i] ? ` · cost $${nodes.cost[i].toFixed(4)} · ${nodes.tokens[i]} tokens` : "") + "</p>",
      `<table><tr><th>seed</th><th>status</th><th>${escapeHtml(data.metric)}</th><th>measured</th></tr>`,
    ];
    let k = 0;
    points.candidate.forEach((candidate, j) => {
      if (candidate !== i) return;
      const measured = detail?.evaluations[k++]?.measured ?? {};
      const shown = Object.entries(measured).filter(([key]) => key !== "stderr_tail").map(([key, value]) =>
        `${escapeHtml(key)} ${escapeHtml(typeof value === "number" ? +value.toPrecision(4) : value)}`);
      html.push(`<tr><td>${points.seed[j]}</td><td>${points.status[j]}</td><td>${points.metric[j]}</td>`
        + `<td>${shown.join(", ")}</td></tr>`);
      if (measured.stderr_tail) {
        html.push(`<tr><td colspan="4"><pre class="stderr">${escapeHtml(measured.stderr_tail)}</pre></td></tr>`);
      }
    });
    html.push("</table>");
    if (!detail) {
      html.push(`<p class="hint">Its diff is not on this page, which holds ${Object.keys(data.details).length}`
        + ` (the best accepted and the latest candidates): <code>python -m evo show ${escapeHtml(data.folder)} ${id}</code></p>`);
    } else if (detail.diff) {
      const kind = (line) => (line.startsWith("@@") ? "hunk" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "");
      const lines = detail.diff.split("\n").map((line) => `<span class="${kind(line)}">${escapeHtml(line)}</span>`);
      html.push(`<pre class="diff">${lines.join("\n")}</pre>`);
    } else {
      html.push("<p class='hint'>No diff: the seed program, or the same code as its parent.</p>");
    }
    panel.innerHTML = html.join("\n");
  }

  function filterControls() {
    const box = document.getElementById("filters");
    const boxes = (label, key, values, names) => `<fieldset><legend>${label} `
      + `<button data-all="${key}" value="1">all</button><button data-all="${key}" value="">none</button></legend>`
      + values.map((v, k) => `<label><input type="checkbox" data-filter="${key}" value="${escapeHtml(v)}"`
        + `${state[key].has(v) ? " checked" : ""}> ${escapeHtml(names[k])}</label>`).join("") + "</fieldset>";
    const radios = (label, key, options) => `<fieldset><legend>${label}</legend>`
      + options.map(([v, name]) => `<label><input type="radio" name="${key}" data-choice="${key}" value="${v}"`
        + `${state[key] === v ? " checked" : ""}> ${escapeHtml(name)}</label>`).join("") + "</fieldset>";
    box.innerHTML = boxes("islands", "islands", islands, islands.map((k) => `island ${k}`))
      + boxes("status", "statuses", data.statuses, data.statuses)
      + boxes("operator / model", "operators", data.operators, data.operators)
      + radios("x axis", "x", [["evals_done", "evaluations"], ["minutes", "minutes"]])
      + radios("tree colour", "colour", [["island", "island"], ["fitness", data.metric]]);
    const check = (input, checked) => {
      const set = state[input.dataset.filter];
      const value = input.dataset.filter === "islands" ? Number(input.value) : input.value;
      input.checked = checked;
      if (checked) set.add(value); else set.delete(value);
    };
    box.addEventListener("change", (event) => {
      const input = event.target;
      if (input.dataset.filter) {
        check(input, input.checked);
        applyFilters();
      } else {
        if (input.dataset.choice === "x") {  // another unit: those views start afresh
          for (const name of ["best", "evaluations"]) {
            delete state.views[name];
            [...Bokeh.index.all_views()].find((view) => view.model.name === name).reset();
          }
        }
        state[input.dataset.choice] = input.value;
        applyAxis();
        applyColour();
      }
      saveHash();
    });
    box.addEventListener("click", (event) => {
      const button = event.target.closest("[data-all]");
      if (!button) return;
      event.preventDefault();
      for (const input of box.querySelectorAll(`[data-filter="${button.dataset.all}"]`)) {
        check(input, Boolean(button.value));
      }
      applyFilters();
      saveHash();
    });
  }

  evoZoomed = (name, range) => {
    if (range) state.views[name] = [range.x0, range.x1, range.y0, range.y1];
    else delete state.views[name];
    saveHash();
  };
  evoSelect = (id) => {
    state.selected = id;
    saveHash();
    showPanel(id);
  };
  document.body.addEventListener("click", (event) => {
    const link = event.target.closest("[data-select]");
    if (link) {
      event.preventDefault();
      evoSelect(Number(link.dataset.select));
    }
  });
  filterControls();
  applyFilters();
  applyAxis();
  applyColour();
  applyViews();
  showPanel(state.selected);
}

// While the run is live: every 10 s, the stamp the writer left beside the page; a newer page
// is reloaded (the selection, filters and zoom are in the hash).
function watchStamp() {
  window.evoStamp = (stamp) => {
    if (stamp !== data.stamp) location.reload();
  };
  setInterval(() => {
    const script = document.createElement("script");
    script.src = `report.stamp.js?${Date.now()}`;
    script.onload = script.onerror = () => script.remove();
    document.head.appendChild(script);
  }, 10000);
}

Bokeh.embed.embed_item(item, "plots")
  .then(() => new Promise(requestAnimationFrame))
  .then(() => {
    if (data.details) runPage();
    window.evoRendered = performance.now();
    if (data.live) watchStamp();
  });
