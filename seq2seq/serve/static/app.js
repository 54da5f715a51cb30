// The translation page: posts the text to /translate and draws what comes back.
// The attention heatmap is drawn here, on a canvas, from the matrix the API returns.
"use strict";

const NUMBER_FIELDS = ["beam_size", "n_best", "length_penalty", "temperature", "top_k", "top_p", "seed"];
const INTEGER_FIELDS = new Set(["beam_size", "n_best", "top_k", "seed"]);
const EOS = "</s>";

const $ = (id) => document.getElementById(id);

// The language codes of the model (from /model), set on the text so browsers pick fonts and voices.
const languages = { source: null, target: null };

function languageName(code) {
  try {
    return new Intl.DisplayNames([navigator.language || "en"], { type: "language" }).of(code) || code;
  } catch (error) {
    return code;
  }
}

function withLang(attributes, code) {
  return code ? { ...attributes, lang: code } : attributes;
}

function element(tag, attributes = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

function setStatus(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

async function describeModel() {
  try {
    const response = await fetch("/model");
    const model = await response.json();
    languages.source = model.languages.source;
    languages.target = model.languages.target;
    let pair = "";
    if (languages.source && languages.target) {
      const source = languageName(languages.source);
      const target = languageName(languages.target);
      pair = `${source}→${target}`;
      $("source-label").textContent = `${source} text, one sentence per line`;
      $("source").lang = languages.source;
    }
    if (model.example) $("source").placeholder = model.example;
    const size = (model.parameters / 1e6).toFixed(1);
    $("model-info").textContent =
      `${model.checkpoint}: ${pair} ${model.family}, ${size}M parameters, ` +
      `default ${model.decoding_defaults.method} search (beam ${model.decoding_defaults.beam_size})`;
    $("source").maxLength = model.limits.max_chars * model.limits.max_sentences;
  } catch (error) {
    $("model-info").textContent = "the model description could not be loaded";
  }
}

function readSettings() {
  const settings = {};
  const method = $("method").value;
  if (method) settings.method = method;
  for (const name of NUMBER_FIELDS) {
    const raw = $(name).value.trim();
    if (raw === "") continue;
    const value = Number(raw);
    if (!Number.isFinite(value) || (INTEGER_FIELDS.has(name) && !Number.isInteger(value))) {
      throw new Error(`${name.replace("_", " ")}: ${raw} is not a valid number`);
    }
    settings[name] = value;
  }
  return settings;
}

async function translate(event) {
  event.preventDefault();
  const sentences = $("source").value.split("\n").map((line) => line.trim()).filter((line) => line);
  if (!sentences.length) {
    setStatus("Type a sentence first.", true);
    return;
  }
  let body;
  try {
    body = { text: sentences, attention: true, ...readSettings() };
  } catch (error) {
    setStatus(error.message, true);
    return;
  }
  const button = $("translate");
  button.disabled = true;
  setStatus("Translating…");
  try {
    const response = await fetch("/translate", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) {
      setStatus(answer.error ? answer.error.message : `error ${response.status}`, true);
      return;
    }
    showResults(sentences, answer);
    setStatus(`${sentences.length} sentence${sentences.length > 1 ? "s" : ""}, ` +
      `${answer.decoding.method} search, ${answer.elapsed_ms.toFixed(0)} ms`);
  } catch (error) {
    setStatus(`The server did not answer: ${error.message}`, true);
  } finally {
    button.disabled = false;
  }
}

function showResults(sentences, answer) {
  const results = $("results");
  results.replaceChildren();
  answer.translations.forEach((translation, index) => {
    const block = element("article", { class: "result" });
    block.append(element("p", withLang({ class: "source" }, languages.source), sentences[index]));
    const target = element("p", withLang({ class: "target" }, languages.target), translation.text);
    block.append(target);
    if (translation.warning) block.append(element("p", { class: "warning" }, translation.warning));
    const heatmap = element("div", { class: "heatmap" });
    const list = element("ol", { class: "nbest", "aria-label": "n-best list" });
    translation.hypotheses.forEach((hypothesis, rank) => {
      const item = element("li", withLang({ tabindex: "0" }, languages.target), hypothesis.text || "(empty)");
      const score = hypothesis.score === null ? "" : hypothesis.score.toFixed(3);
      item.append(element("span", { class: "score" }, score));
      const select = () => {
        list.querySelectorAll("li").forEach((li) => li.classList.remove("selected"));
        item.classList.add("selected");
        target.textContent = hypothesis.text;
        drawHeatmap(heatmap, translation.source_pieces, hypothesis);
      };
      item.addEventListener("click", select);
      item.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") select(); });
      if (rank === 0) item.classList.add("selected");
      list.append(item);
    });
    if (translation.hypotheses.length > 1) block.append(list);
    block.append(heatmap);
    drawHeatmap(heatmap, translation.source_pieces, translation.hypotheses[0]);
    results.append(block);
  });
}

// Rows are output pieces, columns source pieces, each followed by </s>; darker = more attention.
function drawHeatmap(container, sourcePieces, hypothesis) {
  container.replaceChildren();
  const matrix = hypothesis.attention;
  if (!matrix || !matrix.length) return;
  const columns = [...sourcePieces, EOS];
  const rows = [...hypothesis.pieces, EOS];
  const canvas = element("canvas", { role: "img", "aria-label": "attention heatmap" });
  container.append(canvas);
  const context = canvas.getContext("2d");
  const font = "13px system-ui, sans-serif";
  context.font = font;
  const labelWidth = (labels) => Math.min(140, Math.max(...labels.map((l) => context.measureText(l).width)) + 8);
  const left = labelWidth(rows);
  const top = labelWidth(columns);
  const available = Math.max(container.clientWidth, 240) - left - 4;
  const cell = Math.max(12, Math.min(28, Math.floor(available / columns.length)));
  const width = left + cell * columns.length + 4;
  const height = top + cell * rows.length + 4;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  context.scale(ratio, ratio);
  context.font = font;
  context.fillStyle = "#1d2430";
  context.textBaseline = "middle";
  context.textAlign = "right";
  rows.forEach((label, r) => context.fillText(clip(label), left - 4, top + cell * (r + 0.5)));
  columns.forEach((label, c) => {
    context.save();
    context.translate(left + cell * (c + 0.5), top - 4);
    context.rotate(-Math.PI / 2);
    context.textAlign = "left";
    context.fillText(clip(label), 0, 0);
    context.restore();
  });
  matrix.forEach((row, r) => row.forEach((weight, c) => {
    const shade = Math.round(255 * (1 - Math.max(0, Math.min(1, weight))));
    context.fillStyle = `rgb(${shade}, ${shade}, 255)`;
    context.fillRect(left + c * cell, top + r * cell, cell - 1, cell - 1);
  }));
}

function clip(label) {
  return label.length > 16 ? `${label.slice(0, 15)}…` : label;
}

document.addEventListener("DOMContentLoaded", () => {
  $("form").addEventListener("submit", translate);
  $("source").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("form").requestSubmit();
  });
  describeModel();
});
